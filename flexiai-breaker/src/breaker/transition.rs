//! Transitions: taking the `W` bit, writing the side fields, publishing the next word, and
//! the open period's backoff and jitter.

use crate::sync::{Ordering, fence};
use std::time::Duration;

use flexiai_events::{CircuitState, Timestamp};

use super::{CircuitBreaker, HOT_SPINS, ProbeMode, pause};
use crate::observer::{Transition, TransitionReason};
use crate::word::Word;

impl CircuitBreaker {
    /// Takes the `W` bit. With `expect`, only from exactly that version and state, spinning a
    /// little on a concurrent writer and then giving up (its transition supersedes ours);
    /// without, from whatever the current word is, waiting as long as needed.
    pub(super) fn begin(&self, expect: Option<(u64, CircuitState)>) -> Option<Word> {
        let mut spins = 0;
        loop {
            let w = self.load();
            if w.writing() {
                if expect.is_some() && spins >= HOT_SPINS {
                    return None;
                }
                pause(&mut spins);
                continue;
            }
            if let Some((v, s)) = expect
                && (w.version() != v || w.state() != s)
            {
                return None;
            }
            if self
                .word
                .0
                .compare_exchange_weak(
                    w.0,
                    w.with_writing().0,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                // Orders the side-field stores after the W bit for seqlock readers.
                fence(Ordering::Release);
                return Some(w);
            }
        }
    }

    pub(super) fn publish(&self, w: Word) {
        self.word.0.store(w.0, Ordering::Release);
    }

    /// A hot-path transition from exactly (`version`, `from`); `None` if the breaker moved on.
    /// With `take_probe`, see [`commit_with`](Self::commit_with); the flag returned says
    /// whether a probe slot was taken for the caller.
    pub(super) fn transition_from(
        &self,
        version: u64,
        from: CircuitState,
        to: CircuitState,
        reason: TransitionReason,
        take_probe: bool,
    ) -> Option<(Transition, bool)> {
        let old = self.begin(Some((version, from)))?;
        let (t, took) = self.commit_with(old, to, reason, take_probe, None);
        self.emit_transition(&t);
        Some((t, took))
    }

    /// Writes a local transition out of `old` (whose `W` bit the caller holds) and publishes
    /// the new word.
    pub(super) fn commit(
        &self,
        old: Word,
        to: CircuitState,
        reason: TransitionReason,
    ) -> Transition {
        self.commit_with(old, to, reason, false, None).0
    }

    /// [`commit`](Self::commit), with `fixed_open` (ns) as the exact open period of a
    /// transition to `Open` instead of the backoff-and-jitter one (the backoff streak is then
    /// left as it is), and `take_probe`: take the first probe slot of the half-open period
    /// being entered for the caller. Whether there is one is decided here, from `old`, the
    /// word held under `W`: only a local-mode breaker has slots of its own, and the probe
    /// mode can change between the caller's earlier read and this commit (a granted-mode
    /// breaker admits no probe without a credit). Returns the transition and whether a slot
    /// was taken.
    pub(super) fn commit_with(
        &self,
        old: Word,
        to: CircuitState,
        reason: TransitionReason,
        take_probe: bool,
        fixed_open: Option<u64>,
    ) -> (Transition, bool) {
        let now = self.now_nanos();
        let version = old
            .version()
            .saturating_add(1)
            .min(crate::word::MAX_VERSION);
        let mut open_for = None;
        match to {
            CircuitState::Open => {
                let d = if let Some(d) = fixed_open {
                    d
                } else {
                    let streak = if reason == TransitionReason::ProbeFailed {
                        self.side
                            .open_streak
                            .load(Ordering::Relaxed)
                            .saturating_add(1)
                    } else {
                        0
                    };
                    self.side.open_streak.store(streak, Ordering::Relaxed);
                    self.open_duration(streak)
                };
                self.side
                    .open_until
                    .store(now.saturating_add(d), Ordering::Relaxed);
                open_for = Some(Duration::from_nanos(d));
            }
            CircuitState::Closed | CircuitState::Disabled => {
                self.side.open_streak.store(0, Ordering::Relaxed);
            }
            CircuitState::HalfOpen | CircuitState::ForcedOpen => {}
        }
        self.reset_counts(version, 0, 0, now);
        self.side.state_since.store(now, Ordering::Relaxed);
        self.side
            .state_changed_wall
            .store(self.wall(now), Ordering::Relaxed);
        let entry = self.entry_slots(to, old.mode());
        let took = take_probe && entry > 0;
        if took {
            self.probes_in_flight.start(version, 1);
        }
        self.publish(Word::new(version, to, old.mode(), entry - u64::from(took)));
        let t = Transition {
            breaker: self.id,
            from: old.state(),
            to,
            version,
            reason,
            at: Timestamp::from_unix_micros(self.wall(now)).unwrap_or_else(Timestamp::now),
            open_for,
        };
        (t, took)
    }

    pub(super) fn entry_slots(&self, state: CircuitState, mode: ProbeMode) -> u64 {
        match (state, mode) {
            (CircuitState::HalfOpen, ProbeMode::Local) => self.limits.half_open_max,
            _ => 0,
        }
    }

    pub(super) fn reset_counts(&self, version: u64, failures: u64, successes: u64, now: u64) {
        self.consecutive.0.reset(version, failures);
        self.half_open_successes.reset(version, 0);
        // Under the `W` bit: `probe_done` retries around it to find a count that moved.
        self.probes_in_flight.start(version, 0);
        // The state's successes are counted from here: the stripes are only ever written by
        // their owning threads, so they are rebased rather than zeroed.
        self.success_base.store(
            self.stripes
                .sum(|s| &s.counted_successes)
                .wrapping_sub(successes),
            Ordering::Relaxed,
        );
        if let Some(window) = &self.window {
            window.clear();
            if failures > 0 || successes > 0 {
                window.record(now, failures, failures.saturating_add(successes));
            }
        }
    }

    /// The open period after `streak` failed trials in a row: the recovery timeout times the
    /// backoff factor per failed trial, capped, then shortened by up to the jitter ratio.
    fn open_duration(&self, streak: u32) -> u64 {
        let base = self.limits.recovery_nanos;
        let cap = self.limits.max_open_nanos.max(base);
        let factor = self.config.backoff_multiplier;
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let mut d = if factor > 1.0 && streak > 0 {
            let exp = i32::try_from(streak.min(1024)).unwrap_or(1024);
            let scaled = base as f64 * factor.powi(exp);
            if scaled >= cap as f64 {
                cap
            } else {
                scaled as u64
            }
        } else {
            base
        };
        if self.config.jitter_ratio > 0.0 {
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            {
                let cut = d as f64 * self.config.jitter_ratio * self.next_unit_random();
                d = d.saturating_sub(cut as u64);
            }
        }
        d.max(1)
    }

    /// A number in [0, 1) from a splitmix64 stream: plenty for jitter, no dependency.
    fn next_unit_random(&self) -> f64 {
        let mut z = self
            .jitter_state
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        #[allow(clippy::cast_precision_loss)]
        let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
        unit
    }

    /// Tells the observers of a transition, on the thread that made it. Nothing here logs:
    /// the hot path (admission, settling, the transitions they make) never writes a log line;
    /// a log of transitions is for an observer to write elsewhere (e.g. a `QueuedObserver`
    /// drained by a background task).
    pub(super) fn emit_transition(&self, t: &Transition) {
        if self.has_observers.load(Ordering::Acquire) {
            for o in self.observers.load().iter() {
                o.on_transition(t);
            }
        }
    }
}
