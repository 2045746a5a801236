//! The synchronization hooks: snapshots out, snapshots and remote outcomes in.

use crate::sync::Ordering;

use flexiai_events::{BreakerSnapshot, CircuitState, Timestamp};

use super::reads::timestamp;
use super::{CircuitBreaker, NANOS_PER_MS, NO_TIME, pause};
use crate::config::MAX_OPEN_MS;
use crate::word::Word;

impl CircuitBreaker {
    /// Counts outcomes that other workers recorded, so the fleet trips together.
    ///
    /// Only a closed breaker absorbs; in every other state the counts are dropped (half-open
    /// trials are decided by whoever runs them and arrive as snapshots). Under the
    /// consecutive policy a batch is read as all its successes first, then all its failures:
    /// any success resets the run, then the failures extend it. Under the failure-rate policy
    /// both go into the current window slice. If this reaches the threshold the breaker opens
    /// with [`RemoteFailures`](crate::TransitionReason::RemoteFailures), a local transition
    /// (version + 1, observers told). Absorbed outcomes are never reported as outcome events, and do not change
    /// totals or last-failure times. Returns whether the breaker opened.
    pub fn absorb_remote_outcomes(&self, failures: u64, successes: u64) -> bool {
        if failures == 0 && successes == 0 {
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
        if !w.is_closed() {
            return false;
        }
        let before = w.version();
        if successes > 0 {
            // Shown in the state's success count through its base, so that the stripes
            // count this worker's own outcomes only (see `outcome_totals`).
            self.success_base.fetch_sub(successes, Ordering::Relaxed);
        }
        let now = self.now_nanos();
        self.count_closed_failures(before, now, failures, successes, true);
        let after = self.load();
        after.version() != before && after.state() == CircuitState::Open
    }

    /// A snapshot for the store: state, version, counts, the open time left, and wall-clock
    /// times derived from this worker's clock. Performs a due time-driven transition first
    /// (it calls [`poll`](Self::poll)): a snapshot only ever carries a committed state.
    ///
    /// `last_success_time` is precise when the success path reads the clock anyway (half-open
    /// trials, the failure-rate policy, slow-call detection); under the consecutive policy a
    /// closed breaker records successes without a clock read, and the first snapshot after
    /// them stamps the time instead, late by at most the interval between
    /// snapshots.
    pub fn snapshot(&self) -> BreakerSnapshot {
        self.poll();
        let view = self.read_consistent(true);
        let mut snap = BreakerSnapshot::new(view.state, view.version);
        snap.failure_count = view.failure_count;
        snap.success_count = view.success_count;
        snap.last_failure_time = timestamp(view.last_failure);
        snap.last_success_time = timestamp(view.last_success);
        snap.state_changed_at = timestamp(view.changed_wall);
        snap.open_remaining_ms = view
            .open_remaining
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        snap
    }

    /// Replaces this breaker's state with `snapshot`, whatever its version: for start-up
    /// hydration and for a worker that lost a compare-and-set to the store. The local version
    /// becomes the snapshot's (capped at [`MAX_VERSION`](crate::MAX_VERSION)); no transition
    /// event is emitted. See [`apply_remote`](Self::apply_remote) for how fields are read.
    pub fn restore(&self, snapshot: &BreakerSnapshot) {
        if let Some(old) = self.begin(None) {
            // The local branch is dropped (under `W`, before the new word is published): its
            // probes still in flight count in no period of the new one (their version may
            // come round again).
            self.new_branch();
            self.probes_in_flight.clear();
            self.install(old, snapshot);
        }
    }

    /// Applies a snapshot from another worker if, and only if, its version is higher than
    /// this breaker's; returns whether it did. Nothing is emitted: the transition was
    /// announced by the worker that made it.
    ///
    /// The state, version and counts are taken as they are (failure count as the consecutive
    /// run or as window failures, success count as the state's successes). For `Open` the
    /// local deadline is now + `open_remaining_ms` (the full recovery timeout if absent, as
    /// from a Python writer): wall clocks are never compared. For `HalfOpen` the probe budget
    /// starts afresh (full local slots, or no credits in granted mode). Trial calls admitted
    /// before are settled against the old version and count nothing.
    pub fn apply_remote(&self, snapshot: &BreakerSnapshot) -> bool {
        if snapshot.version <= self.version() {
            return false;
        }
        let Some(old) = self.begin(None) else {
            return false;
        };
        if snapshot.version <= old.version() {
            // Lost a race with another apply; put the word back untouched.
            self.publish(old);
            return false;
        }
        self.install(old, snapshot);
        true
    }

    fn install(&self, old: Word, snap: &BreakerSnapshot) {
        let now = self.now_nanos();
        let state = snap.state;
        let version = snap.version.min(crate::word::MAX_VERSION);
        match state {
            CircuitState::Open => {
                let remaining = snap
                    .open_remaining_ms
                    .map_or(self.limits.recovery_nanos, |ms| {
                        ms.min(MAX_OPEN_MS).saturating_mul(NANOS_PER_MS)
                    });
                self.side
                    .open_until
                    .store(now.saturating_add(remaining), Ordering::Relaxed);
                if old.state() == CircuitState::HalfOpen {
                    // The fleet's trial failed: back off as if ours had.
                    let s = self.side.open_streak.load(Ordering::Relaxed);
                    self.side
                        .open_streak
                        .store(s.saturating_add(1), Ordering::Relaxed);
                }
            }
            CircuitState::Closed | CircuitState::Disabled => {
                self.side.open_streak.store(0, Ordering::Relaxed);
            }
            CircuitState::HalfOpen | CircuitState::ForcedOpen => {}
        }
        let (state_successes, probe_successes) = if state == CircuitState::HalfOpen {
            (0, snap.success_count)
        } else {
            (snap.success_count, 0)
        };
        self.reset_counts(version, snap.failure_count, state_successes, now);
        self.half_open_successes.reset(version, probe_successes);
        self.side.state_since.store(now, Ordering::Relaxed);
        self.side.state_changed_wall.store(
            snap.state_changed_at
                .map_or_else(|| self.wall(now), Timestamp::unix_micros),
            Ordering::Relaxed,
        );
        self.last_failure_wall.store(
            snap.last_failure_time
                .map_or(NO_TIME, Timestamp::unix_micros),
            Ordering::Relaxed,
        );
        self.last_success_wall.store(
            snap.last_success_time
                .map_or(NO_TIME, Timestamp::unix_micros),
            Ordering::Relaxed,
        );
        self.success_unstamped.store(false, Ordering::Relaxed);
        self.publish(Word::new(
            version,
            state,
            old.mode(),
            self.entry_slots(state, old.mode()),
        ));
    }
}
