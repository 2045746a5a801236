//! Operator controls and `Retry-After`: force open, disable, reset, open for a period.

use crate::sync::Ordering;
use std::time::Duration;

use flexiai_events::CircuitState;

use super::{CircuitBreaker, NANOS_PER_MS};
use crate::clock::duration_to_nanos;
use crate::observer::TransitionReason;

impl CircuitBreaker {
    fn manual(&self, to: CircuitState, reason: TransitionReason) -> u64 {
        let Some(old) = self.begin(None) else {
            return self.version();
        };
        let t = self.commit(old, to, reason);
        self.emit_transition(&t);
        t.version
    }

    /// Isolates the provider: every call is rejected until [`reset`](Self::reset) (or a
    /// remote snapshot) says otherwise. A transition like any other: the version goes up and
    /// observers hear of it, even if the breaker was already forced open. Returns the new
    /// version.
    pub fn force_open(&self) -> u64 {
        self.manual(CircuitState::ForcedOpen, TransitionReason::ManualForceOpen)
    }

    /// Bypasses the breaker: every call is admitted and nothing is counted, until
    /// [`reset`](Self::reset). A transition; returns the new version.
    pub fn disable(&self) -> u64 {
        self.manual(CircuitState::Disabled, TransitionReason::ManualDisable)
    }

    /// Closes the breaker and clears its counts and backoff. A transition; returns the new
    /// version.
    pub fn reset(&self) -> u64 {
        self.manual(CircuitState::Closed, TransitionReason::ManualReset)
    }

    /// Opens the breaker for exactly `period`, as a provider's `Retry-After` asks: "do not
    /// call me for this long". Returns the version of the transition it made, or `None` if it
    /// changed nothing.
    ///
    /// `period` is clamped to at least 1 ms and at most the configured cap on open periods,
    /// [`BreakerConfig::max_recovery_timeout`] (`max_recovery_timeout_ms`, never below
    /// `recovery_timeout_ms`, never above [`MAX_OPEN_MS`](crate::MAX_OPEN_MS)), so a
    /// `Retry-After` never keeps the provider out longer than the longest backoff would. It
    /// is used as it is: not multiplied by the backoff factor, not shortened by jitter.
    ///
    /// By state:
    ///
    /// * **Closed or half-open**: moves to `Open` for `period`, a local transition like any
    ///   other: the version goes up by one, observers get a [`Transition`](crate::Transition) with
    ///   [`TransitionReason::RetryAfter`] and `open_for: Some(period)`, and counts are
    ///   cleared. Trial calls running in a half-open period are settled against the old
    ///   version and count nothing. When the period is over the breaker turns half-open by
    ///   itself, as after any open period (after `period`, not after the recovery timeout).
    /// * **Open**: the open period is only ever extended. If now + `period` ends later than
    ///   the current open period, that becomes the new end, again as a transition (open to
    ///   open, version + 1, [`TransitionReason::RetryAfter`]) so that the fleet learns of it;
    ///   otherwise nothing happens and `None` is returned. A `Retry-After` never shortens an
    ///   open period set by failures, a backoff or an earlier `Retry-After`.
    /// * **Forced open or disabled**: nothing happens (`None`): an operator's decision wins
    ///   over the provider's hint.
    ///
    /// The backoff streak ([`BreakerMetrics::consecutive_opens`]) is left as it is: a
    /// `Retry-After` is neither a failed trial (which lengthens the next open period) nor a
    /// recovery (which clears it). From closed the streak is zero anyway; from half-open or
    /// open, a trial that fails after this period backs off from where the streak was. (A
    /// worker that applies the resulting snapshot while half-open counts it as a failed trial
    /// for its own backoff, as [`apply_remote`](Self::apply_remote) does for any reopening.)
    ///
    /// The snapshot's `open_remaining_ms` carries the time left, so a synchronized fleet
    /// applies the same remaining time on every worker ([`apply_remote`](Self::apply_remote)).
    /// Like the manual controls, this waits for a transition being written by another thread
    /// instead of giving way to it; it is not meant for the hot path's every call (one call
    /// per `Retry-After` received is fine).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use flexiai_breaker::{BreakerConfig, CircuitBreaker, CircuitState, ManualClock};
    ///
    /// let clock = Arc::new(ManualClock::new());
    /// let breaker = CircuitBreaker::builder("openai").clock(clock.clone()).build()?;
    /// assert_eq!(breaker.open_for(Duration::from_secs(10)), Some(1));
    /// let rejected = breaker.try_acquire().unwrap_err();
    /// assert_eq!(rejected.retry_after, Some(Duration::from_secs(10)));
    /// // A shorter Retry-After does not shorten the open period.
    /// assert_eq!(breaker.open_for(Duration::from_secs(3)), None);
    /// clock.advance(Duration::from_secs(10));
    /// assert_eq!(breaker.state(), CircuitState::HalfOpen);
    /// # Ok::<(), flexiai_breaker::BreakerError>(())
    /// ```
    ///
    /// [`BreakerConfig::max_recovery_timeout`]: crate::BreakerConfig::max_recovery_timeout
    /// [`BreakerMetrics::consecutive_opens`]: crate::BreakerMetrics::consecutive_opens
    pub fn open_for(&self, period: Duration) -> Option<u64> {
        let nanos = duration_to_nanos(period)
            .min(self.limits.max_open_nanos)
            .max(NANOS_PER_MS);
        // Cheap checks without the W bit, so that a burst of 429s on a breaker already open
        // long enough does not stall anyone; decided again under W below.
        let w = self.load();
        match w.state() {
            CircuitState::ForcedOpen | CircuitState::Disabled => return None,
            CircuitState::Open if !w.writing() => {
                if let Some(deadline) = self.read_deadline(w)
                    && self.now_nanos().saturating_add(nanos) <= deadline
                {
                    return None;
                }
            }
            _ => {}
        }
        let old = self.begin(None)?;
        let keep = match old.state() {
            CircuitState::ForcedOpen | CircuitState::Disabled => true,
            // Only the W holder writes `open_until`, so this read is exact.
            CircuitState::Open => {
                self.now_nanos().saturating_add(nanos)
                    <= self.side.open_until.load(Ordering::Relaxed)
            }
            CircuitState::Closed | CircuitState::HalfOpen => false,
        };
        if keep {
            // Nothing to do: put the word back untouched.
            self.publish(old);
            return None;
        }
        let (t, _) = self.commit_with(
            old,
            CircuitState::Open,
            TransitionReason::RetryAfter,
            false,
            Some(nanos),
        );
        self.emit_transition(&t);
        Some(t.version)
    }
}
