//! Probe mode and fleet probe credits.

use std::sync::atomic::Ordering;

use flexiai_events::CircuitState;

use super::{CircuitBreaker, ProbeMode, pause};
use crate::word::SLOT_MAX;

impl CircuitBreaker {
    /// Current probe mode.
    pub fn probe_mode(&self) -> ProbeMode {
        self.load().mode()
    }

    /// Switches the probe mode. Not a transition (the version does not change). If the
    /// breaker is half-open, its probe budget is reset for the new mode: full local slots for
    /// `Local`, no credits for `Granted`; trial calls already running under the old mode
    /// finish but give nothing back to the new budget.
    pub fn set_probe_mode(&self, mode: ProbeMode) {
        let mut spins = 0;
        loop {
            let w = self.load();
            if w.writing() {
                pause(&mut spins);
                continue;
            }
            if w.mode() == mode {
                return;
            }
            let mut next = w.with_mode(mode);
            if w.state() == CircuitState::HalfOpen {
                next = next.with_slots(self.entry_slots(CircuitState::HalfOpen, mode));
            }
            if self
                .word
                .0
                .compare_exchange_weak(w.0, next.0, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return;
            }
        }
    }

    /// Gives a half-open breaker in [`ProbeMode::Granted`] `n` more probe credits (capped at
    /// 4095) and returns the credits now available. Does nothing and returns 0 in any other
    /// state or mode: credits granted for a half-open period that has ended are void.
    pub fn grant_probes(&self, n: u32) -> u32 {
        self.grant(None, n)
    }

    /// Like [`grant_probes`](Self::grant_probes), but only while the breaker is still in the
    /// half-open period that created `version`: a coordinator that won its lease for that
    /// period cannot hand credits to a later one by mistake.
    pub fn grant_probes_at(&self, version: u64, n: u32) -> u32 {
        self.grant(Some(version), n)
    }

    fn grant(&self, version: Option<u64>, n: u32) -> u32 {
        let mut spins = 0;
        loop {
            let w = self.load();
            if w.writing() {
                pause(&mut spins);
                continue;
            }
            if w.state() != CircuitState::HalfOpen
                || w.mode() != ProbeMode::Granted
                || version.is_some_and(|v| v != w.version())
            {
                return 0;
            }
            let slots = w.slots().saturating_add(u64::from(n)).min(SLOT_MAX);
            if self
                .word
                .0
                .compare_exchange_weak(
                    w.0,
                    w.with_slots(slots).0,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
            {
                return u32::try_from(slots).unwrap_or(u32::MAX);
            }
        }
    }

    /// Probe credits available (half-open in [`ProbeMode::Granted`]); 0 otherwise.
    pub fn probe_credits(&self) -> u32 {
        let w = self.load();
        if w.state() == CircuitState::HalfOpen && w.mode() == ProbeMode::Granted {
            u32::try_from(w.slots()).unwrap_or(u32::MAX)
        } else {
            0
        }
    }
}
