//! Settling: recording a permit's outcome, and the `call` helpers that do it for a future.

use crate::sync::Ordering;
use std::error::Error;
use std::future::IntoFuture;
use std::time::Duration;

use flexiai_events::CircuitState;

use super::{CircuitBreaker, ProbeMode, ticket_probe_mode};
use crate::classifier::ErrorClass;
use crate::error::CallError;
use crate::observer::{Outcome, OutcomeEvent, TransitionReason};
use crate::permit::NOT_TIMED;
use crate::word::Word;

impl CircuitBreaker {
    /// The closed-state success of a permit with `ticket`, recorded entirely inline when
    /// nothing else needs to see it: consecutive policy (no window to update), no slow-call
    /// timing (checked by the caller) and no observer that wants outcomes. Returns `false`, having done nothing,
    /// when [`settle`](Self::settle) must record it instead. Does exactly what `settle`'s
    /// closed branch does, minus the parts that cannot apply.
    #[inline]
    pub(crate) fn settle_closed_success(&self, ticket: Word) -> bool {
        if !ticket.is_closed()
            || self.window.is_some()
            || self.outcome_observers.load(Ordering::Acquire)
        {
            return false;
        }
        let w = self.load();
        self.stripes.add(|s| &s.successes, 1);
        // Same version and no transition being written: it counts for this closed state.
        if w.same_version_unwritten(ticket) {
            let v = ticket.version();
            if !self.consecutive.0.is_zero_or_stale(v) {
                self.reset_run(v);
            }
            // Stamped lazily by the next snapshot: no clock read per success.
            if !self.success_unstamped.load(Ordering::Relaxed) {
                self.success_unstamped.store(true, Ordering::Relaxed);
            }
            self.stripes.add(|s| &s.counted_successes, 1);
        }
        true
    }

    #[cold]
    fn reset_run(&self, v: u64) {
        let _ = self.consecutive.0.update(v, |_| 0);
    }

    /// Records a settled permit's outcome (`ticket` and `started` as in [`Permit`]).
    pub(crate) fn settle(&self, ticket: Word, started: u64, outcome: Outcome) {
        let mut outcome = outcome;
        let mut slow = false;
        let mut elapsed = None;
        if let (true, Some(limit)) = (started != NOT_TIMED, self.limits.slow_nanos) {
            let took = self.now_nanos().saturating_sub(started);
            elapsed = Some(Duration::from_nanos(took));
            if outcome == Outcome::Success && took > limit {
                outcome = Outcome::Failure;
                slow = true;
            }
        }
        // A probe of a branch a restore dropped feeds no state: its version may have come
        // round again on the new branch (a period it never ran in). Totals still count it.
        let current = self.on_branch(ticket);
        let counted = match outcome {
            _ if !current => {
                self.count_totals_only(outcome);
                false
            }
            Outcome::Success => self.record_success(ticket),
            Outcome::Failure => self.record_failure(ticket),
        };
        if self.outcome_observers.load(Ordering::Acquire) {
            let event = OutcomeEvent {
                breaker: self.id,
                outcome,
                slow,
                counted,
                state: ticket.state(),
                version: ticket.version(),
                elapsed,
            };
            for o in self.observers.load().iter().filter(|o| o.wants_outcomes()) {
                o.on_outcome(&event);
            }
        }
        // Last: a holder that sees no probe in flight sees its outcome, and an observer that
        // panics leaves the permit to `Drop`, which gives the probe back once.
        if current && ticket_probe_mode(ticket).is_some() {
            self.probe_done(ticket.version());
        }
    }

    /// The totals of an outcome that feeds no state (a probe of a dropped branch).
    fn count_totals_only(&self, outcome: Outcome) {
        match outcome {
            Outcome::Success => self.stripes.add(|s| &s.successes, 1),
            Outcome::Failure => {
                self.total_failures.fetch_add(1, Ordering::Relaxed);
                let now = self.now_nanos();
                self.last_failure_wall
                    .store(self.wall(now), Ordering::Relaxed);
            }
        }
    }

    fn record_success(&self, ticket: Word) -> bool {
        self.stripes.add(|s| &s.successes, 1);
        let v = ticket.version();
        match ticket.state() {
            CircuitState::Closed => {
                let w = self.load();
                if w.version() != v || w.writing() {
                    return false;
                }
                match &self.window {
                    None => {
                        if !self.consecutive.0.is_zero_or_stale(v) {
                            let _ = self.consecutive.0.update(v, |_| 0);
                        }
                        // Stamped lazily by the next snapshot: no clock read per success.
                        if !self.success_unstamped.load(Ordering::Relaxed) {
                            self.success_unstamped.store(true, Ordering::Relaxed);
                        }
                    }
                    Some(window) => {
                        let now = self.now_nanos();
                        window.record(now, 0, 1);
                        self.last_success_wall
                            .store(self.wall(now), Ordering::Relaxed);
                    }
                }
                self.stripes.add(|s| &s.counted_successes, 1);
                true
            }
            CircuitState::HalfOpen => {
                let Some(n) = self.half_open_successes.update(v, |n| n + 1) else {
                    return false;
                };
                let now = self.now_nanos();
                self.last_success_wall
                    .store(self.wall(now), Ordering::Relaxed);
                if n >= self.limits.success_threshold {
                    self.transition_from(
                        v,
                        CircuitState::HalfOpen,
                        CircuitState::Closed,
                        TransitionReason::ProbeSucceeded,
                        false,
                    );
                } else if ticket_probe_mode(ticket) == Some(ProbeMode::Local) {
                    self.return_slot(v, ProbeMode::Local);
                }
                true
            }
            _ => false,
        }
    }

    fn record_failure(&self, ticket: Word) -> bool {
        self.total_failures.fetch_add(1, Ordering::Relaxed);
        let now = self.now_nanos();
        self.last_failure_wall
            .store(self.wall(now), Ordering::Relaxed);
        let v = ticket.version();
        match ticket.state() {
            CircuitState::Closed => {
                let w = self.load();
                if w.version() != v || w.writing() {
                    return false;
                }
                let counted = self.count_closed_failures(v, now, 1, 0, false);
                if counted {
                    self.stripes.add(|s| &s.counted_failures, 1);
                }
                counted
            }
            CircuitState::HalfOpen => {
                if self.half_open_successes.update(v, |n| n).is_none() {
                    return false;
                }
                self.transition_from(
                    v,
                    CircuitState::HalfOpen,
                    CircuitState::Open,
                    TransitionReason::ProbeFailed,
                    false,
                );
                true
            }
            _ => false,
        }
    }

    /// Adds failures (and, for absorbed batches, successes) to the closed state at version
    /// `v` and opens the breaker if that crosses the threshold. Returns whether they counted.
    pub(super) fn count_closed_failures(
        &self,
        v: u64,
        now: u64,
        failures: u64,
        successes: u64,
        remote: bool,
    ) -> bool {
        let trip = match (&self.window, self.limits.rate) {
            (Some(window), Some((minimum, threshold))) => {
                window.record(now, failures, failures.saturating_add(successes));
                let (f, calls) = window.totals(now);
                #[allow(clippy::cast_precision_loss)]
                let tripped = calls >= minimum
                    && (f as f64) >= threshold * (calls as f64)
                    && (remote || !self.fleet_rate.load(Ordering::Acquire));
                tripped.then_some(TransitionReason::FailureRate)
            }
            _ => {
                let Some(n) = self.consecutive.0.update(v, |c| {
                    let base = if successes > 0 { 0 } else { c };
                    base.saturating_add(failures)
                }) else {
                    return false;
                };
                (n >= self.limits.failure_threshold).then_some(TransitionReason::FailureThreshold)
            }
        };
        if let Some(reason) = trip {
            let reason = if remote {
                TransitionReason::RemoteFailures
            } else {
                reason
            };
            self.transition_from(v, CircuitState::Closed, CircuitState::Open, reason, false);
        }
        true
    }

    pub(crate) fn classify(&self, error: &(dyn Error + 'static)) -> ErrorClass {
        self.classifier.classify(error)
    }

    /// Runs `fut` if the breaker admits it, and records its outcome: `Ok` is a success, an
    /// `Err` goes through the breaker's [`Classifier`](crate::Classifier). If the returned
    /// future is dropped before `fut` completes, nothing is counted and a probe slot is given
    /// back.
    ///
    /// ```
    /// use flexiai_breaker::{BreakerConfig, CallError, CircuitBreaker};
    ///
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// let breaker = CircuitBreaker::new("openai", BreakerConfig::default())?;
    /// let answer = breaker.call(async { Ok::<_, std::io::Error>(42) }).await;
    /// assert!(matches!(answer, Ok(42)));
    /// let failed = breaker.call(async { Err::<u32, _>(std::io::Error::other("503")) }).await;
    /// assert!(matches!(failed, Err(CallError::Inner(_))));
    /// assert_eq!(breaker.metrics().failure_count, 1);
    /// # Ok::<(), flexiai_breaker::BreakerError>(())
    /// # }).unwrap();
    /// ```
    pub async fn call<F, T, E>(&self, fut: F) -> Result<T, CallError<E>>
    where
        F: IntoFuture<Output = Result<T, E>>,
        E: Error + 'static,
    {
        let permit = self.try_acquire()?;
        let result = fut.await;
        permit.record(&result);
        result.map_err(CallError::Inner)
    }

    /// Like [`call`](Self::call), with `classify` deciding how an error counts instead of the
    /// breaker's classifier; works for any error type.
    pub async fn call_with<F, T, E, C>(&self, classify: C, fut: F) -> Result<T, CallError<E>>
    where
        F: IntoFuture<Output = Result<T, E>>,
        C: FnOnce(&E) -> ErrorClass,
    {
        let permit = self.try_acquire()?;
        match fut.await {
            Ok(v) => {
                permit.success();
                Ok(v)
            }
            Err(e) => {
                permit.record_class(classify(&e));
                Err(CallError::Inner(e))
            }
        }
    }
}
