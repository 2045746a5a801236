//! Reads: state, version, metrics, `Debug`, and the consistent (seqlock) view they share.

use crate::sync::{Ordering, fence};
use std::fmt;
use std::time::Duration;

use flexiai_events::{CircuitState, Timestamp};

use super::{CircuitBreaker, NO_TIME, ProbeMode, pause};
use crate::metrics::BreakerMetrics;
use crate::observer::TransitionReason;

impl CircuitBreaker {
    /// Performs the time-driven transition if it is due (open period over: open to
    /// half-open, version + 1, observers told) and returns the current state.
    ///
    /// This is the explicit "advance" call: admission makes the same transition when a call
    /// arrives, and [`snapshot`](Self::snapshot) calls it so that what goes to the store is a
    /// state the breaker has committed. The pure reads ([`state`](Self::state),
    /// [`metrics`](Self::metrics), `Debug`) never make it: they report the state a call would
    /// find without committing anything.
    pub fn poll(&self) -> CircuitState {
        let w = self.load();
        if w.state() == CircuitState::Open
            && !w.writing()
            && let Some(deadline) = self.read_deadline(w)
            && self.now_nanos() >= deadline
        {
            self.transition_from(
                w.version(),
                CircuitState::Open,
                CircuitState::HalfOpen,
                TransitionReason::RecoveryTimeoutElapsed,
                false,
            );
        }
        self.load().state()
    }

    /// The state a call would find now: an open breaker whose open period is over reads as
    /// half-open. A pure read: the transition itself (version + 1, observers told) is left to
    /// the next admission or [`poll`](Self::poll).
    pub fn state(&self) -> CircuitState {
        let w = self.load();
        if w.state() == CircuitState::Open
            && !w.writing()
            && let Some(deadline) = self.read_deadline(w)
            && self.now_nanos() >= deadline
        {
            return CircuitState::HalfOpen;
        }
        w.state()
    }

    /// The current version: the number of this provider's transitions, fleet-wide once
    /// synchronized.
    pub fn version(&self) -> u64 {
        self.load().version()
    }

    /// Reads the word and the side fields as one consistent view (seqlock read). With
    /// `stamp`, a success recorded without a clock read gets its time now (snapshots do it,
    /// so the time they carry stays put; metrics do not report it).
    pub(super) fn read_consistent(&self, stamp: bool) -> View {
        let mut spins = 0;
        loop {
            let w = self.load();
            if w.writing() {
                pause(&mut spins);
                continue;
            }
            let now = self.now_nanos();
            if stamp && self.success_unstamped.swap(false, Ordering::Relaxed) {
                self.last_success_wall
                    .store(self.wall(now), Ordering::Relaxed);
            }
            let open_until = self.side.open_until.load(Ordering::Relaxed);
            let since = self.side.state_since.load(Ordering::Relaxed);
            let changed_wall = self.side.state_changed_wall.load(Ordering::Relaxed);
            let streak = self.side.open_streak.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            let again = self.load();
            // Slot changes do not touch side fields; anything else means a writer got in.
            if again.with_slots(0) != w.with_slots(0) {
                continue;
            }
            let state = w.state();
            let (failure_count, success_count, window_rate) = match &self.window {
                Some(window) if state == CircuitState::Closed => {
                    let (f, c) = window.totals(now);
                    #[allow(clippy::cast_precision_loss)]
                    let rate = if c == 0 { 0.0 } else { f as f64 / c as f64 };
                    (f, c - f, Some(rate))
                }
                _ => (
                    if state == CircuitState::Closed {
                        self.consecutive.0.get()
                    } else {
                        0
                    },
                    if state == CircuitState::HalfOpen {
                        self.half_open_successes.get()
                    } else {
                        self.stripes
                            .sum(|s| &s.counted_successes)
                            .wrapping_sub(self.success_base.load(Ordering::Relaxed))
                    },
                    None,
                ),
            };
            return View {
                state,
                version: w.version(),
                mode: w.mode(),
                slots: w.slots(),
                failure_count,
                success_count,
                window_rate,
                open_remaining: (state == CircuitState::Open)
                    .then(|| Duration::from_nanos(open_until.saturating_sub(now))),
                time_in_state: Duration::from_nanos(now.saturating_sub(since)),
                changed_wall,
                last_failure: self.last_failure_wall.load(Ordering::Relaxed),
                last_success: self.last_success_wall.load(Ordering::Relaxed),
                streak,
            };
        }
    }

    /// Current counters and state. A pure read, like [`state`](Self::state): an open breaker
    /// whose open period is over is reported as the half-open breaker a call would find
    /// (state `HalfOpen`, no open time left, the probe slots it would open), at the version it
    /// still has; `time_in_state` counts from the last committed transition.
    pub fn metrics(&self) -> BreakerMetrics {
        let mut view = self.read_consistent(false);
        if view.state == CircuitState::Open && view.open_remaining == Some(Duration::ZERO) {
            view.state = CircuitState::HalfOpen;
            view.open_remaining = None;
            view.slots = self.entry_slots(CircuitState::HalfOpen, view.mode);
        }
        let total_successes = self.stripes.sum(|s| &s.successes);
        let total_failures = self.total_failures.load(Ordering::Relaxed);
        #[allow(clippy::cast_precision_loss)]
        let failure_rate = view.window_rate.unwrap_or_else(|| {
            let all = total_successes.saturating_add(total_failures);
            if all == 0 {
                0.0
            } else {
                total_failures as f64 / all as f64
            }
        });
        BreakerMetrics {
            state: view.state,
            version: view.version,
            failure_count: view.failure_count,
            success_count: view.success_count,
            failure_rate,
            time_in_state: view.time_in_state,
            calls_admitted: self.stripes.sum(|s| &s.admitted),
            calls_rejected: self.stripes.sum(|s| &s.rejected),
            total_successes,
            total_failures,
            open_remaining: view.open_remaining,
            consecutive_opens: view.streak,
            probe_mode: view.mode,
            probe_slots: if view.state == CircuitState::HalfOpen {
                u32::try_from(view.slots).unwrap_or(u32::MAX)
            } else {
                0
            },
        }
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The state a call would find, like `state()`: no transition from a Debug print.
        let state = self.state();
        let w = self.load();
        f.debug_struct("CircuitBreaker")
            .field("name", &self.name)
            .field("id", &self.id)
            .field("state", &state)
            .field("version", &w.version())
            .field("probe_mode", &w.mode())
            .field("config", &self.config)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// Everything a read reports, taken as one consistent view.
pub(super) struct View {
    pub(super) state: CircuitState,
    pub(super) version: u64,
    pub(super) mode: ProbeMode,
    pub(super) slots: u64,
    pub(super) failure_count: u64,
    pub(super) success_count: u64,
    pub(super) window_rate: Option<f64>,
    pub(super) open_remaining: Option<Duration>,
    pub(super) time_in_state: Duration,
    pub(super) changed_wall: i64,
    pub(super) last_failure: i64,
    pub(super) last_success: i64,
    pub(super) streak: u32,
}

/// A stored wall-clock field as a timestamp.
pub(super) fn timestamp(micros: i64) -> Option<Timestamp> {
    if micros == NO_TIME {
        None
    } else {
        Timestamp::from_unix_micros(micros)
    }
}
