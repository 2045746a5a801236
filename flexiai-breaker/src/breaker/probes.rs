//! Probe mode, fleet probe credits, and the fleet-wide count of successful trial calls.
//!
//! In [`ProbeMode::Granted`] a coordinator (flexiai-sync) runs the half-open period for the
//! fleet: it hands out credits ([`CircuitBreaker::grant_probes_at`]), each admitted trial
//! call consumes one whatever its outcome (a permit dropped unsettled gives it back: it made
//! no trial), and the successes of every worker's trial calls add up to the one
//! `success_threshold`. A worker reads its own progress with
//! [`CircuitBreaker::probe_progress`] and takes in the other workers' successes with
//! [`CircuitBreaker::absorb_remote_probe_successes`], which closes the breaker when the
//! fleet's total reaches the threshold. With `success_threshold` above
//! `half_open_max_calls`, the coordinator grants again as credits are used up.

use crate::sync::Ordering;

use flexiai_events::CircuitState;

use super::{CircuitBreaker, ProbeMode, pause};
use crate::observer::TransitionReason;
use crate::word::SLOT_MAX;

/// A half-open period's trial-call progress, read as one consistent view by
/// [`CircuitBreaker::probe_progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeProgress {
    /// The version of the half-open period.
    pub version: u64,
    /// Successful trial calls counted in this period: this breaker's own and those absorbed
    /// with [`CircuitBreaker::absorb_remote_probe_successes`]. Own successes are also reported
    /// one by one to observers (an [`OutcomeEvent`](crate::OutcomeEvent) with state
    /// `HalfOpen`, `counted` and this version); absorbed ones never are.
    pub successes: u64,
    /// Successes the period needs to close (`success_threshold`).
    pub needed: u64,
    /// Trial calls that may still be admitted: free local slots or unused credits.
    pub free: u32,
    /// Trial calls of this period admitted here and not yet settled (or given back).
    pub in_flight: u32,
}

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

    /// Takes back every unused probe credit of the half-open period of `version` and returns
    /// how many there were: for a coordinator whose lease for that period was lost or could
    /// not be renewed, so that no trial call starts under a lease another worker may now
    /// hold. Trial calls already admitted run on. Does nothing (returns 0) in any other state,
    /// mode or period.
    pub fn revoke_probes_at(&self, version: u64) -> u32 {
        let mut spins = 0;
        loop {
            let w = self.load();
            if w.writing() {
                pause(&mut spins);
                continue;
            }
            if w.state() != CircuitState::HalfOpen
                || w.mode() != ProbeMode::Granted
                || w.version() != version
                || w.slots() == 0
            {
                return 0;
            }
            if self
                .word
                .0
                .compare_exchange_weak(w.0, w.with_slots(0).0, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return u32::try_from(w.slots()).unwrap_or(u32::MAX);
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

    /// Trial calls of half-open period `version` admitted here and not yet settled (or given
    /// back): those of the current period, or of one of the last four that ended with calls
    /// in flight; 0 for any other. A fleet lease holder whose period ended before its end was
    /// stored keeps the lease while this is above 0, so that nobody probes beside them.
    pub fn probes_in_flight_at(&self, version: u64) -> u32 {
        self.around_transitions(|counts| counts.get(version))
            .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// The current half-open period's progress, or `None` if the breaker is not half-open
    /// (a pure read: a due half-open that has not been entered yet is `None`). The version,
    /// the success count and the free slots belong to the same period.
    pub fn probe_progress(&self) -> Option<ProbeProgress> {
        let mut spins = 0;
        loop {
            let w = self.load();
            if w.writing() {
                pause(&mut spins);
                continue;
            }
            if w.state() != CircuitState::HalfOpen {
                return None;
            }
            // The count is tagged with its period's version: `None` means a newer period
            // began after the load above; read again.
            let Some(successes) = self.half_open_successes.update(w.version(), |n| n) else {
                continue;
            };
            let Some(in_flight) = self.probes_in_flight.current(w.version()) else {
                continue;
            };
            return Some(ProbeProgress {
                version: w.version(),
                successes,
                needed: self.limits.success_threshold,
                free: u32::try_from(w.slots()).unwrap_or(u32::MAX),
                in_flight: u32::try_from(in_flight).unwrap_or(u32::MAX),
            });
        }
    }

    /// Counts `n` successful trial calls that other workers made in the half-open period of
    /// `version`, so that the fleet, not each worker, reaches `success_threshold`.
    ///
    /// Does nothing (and returns `false`) unless the breaker is still half-open at exactly
    /// `version`: successes of an earlier period, or of a period this worker has not entered,
    /// count nothing. If the period's total (own and absorbed successes) reaches the
    /// threshold, the breaker closes with [`TransitionReason::ProbeSucceeded`], a local
    /// transition (version + 1, observers told), and this returns `true`. Absorbed successes
    /// are not reported as outcome events and give back no credit or slot. The coordinator
    /// must pass each worker's successes once (they are not idempotent).
    pub fn absorb_remote_probe_successes(&self, version: u64, n: u64) -> bool {
        if n == 0 {
            return false;
        }
        let mut spins = 0;
        let w = loop {
            let w = self.load();
            if !w.writing() {
                break w;
            }
            pause(&mut spins);
        };
        if w.state() != CircuitState::HalfOpen || w.version() != version {
            return false;
        }
        let Some(total) = self
            .half_open_successes
            .update(version, |c| c.saturating_add(n))
        else {
            return false;
        };
        total >= self.limits.success_threshold
            && self
                .transition_from(
                    version,
                    CircuitState::HalfOpen,
                    CircuitState::Closed,
                    TransitionReason::ProbeSucceeded,
                    false,
                )
                .is_some()
    }
}
