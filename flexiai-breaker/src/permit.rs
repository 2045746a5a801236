//! The admission ticket returned by [`CircuitBreaker::try_acquire`].

use std::error::Error;
use std::fmt;
use std::time::Duration;

use flexiai_events::CircuitState;

use crate::ProbeMode;
use crate::breaker::CircuitBreaker;
use crate::classifier::ErrorClass;
use crate::observer::Outcome;
use crate::word::Word;

/// Permission to make one call, to be settled with its outcome.
///
/// Settle it with [`success`](Permit::success), [`failure`](Permit::failure),
/// [`record`](Permit::record) (classifier decides) or [`ignore`](Permit::ignore). A permit
/// dropped unsettled counts nothing and, if it was a half-open trial call, gives its probe slot
/// back, so a cancelled future cannot wedge a half-open breaker.
///
/// When a slow-call threshold is configured the permit remembers when it was issued and a
/// success slower than the threshold is recorded as a failure.
#[must_use = "a permit should be settled with success(), failure() or record()"]
pub struct Permit<'a> {
    pub(crate) breaker: &'a CircuitBreaker,
    /// Version and state of admission, in the state word's encoding (`W` always clear); for a
    /// half-open trial call, the mode whose slot it holds and a slot count of 1. Three
    /// word-sized fields that [`success`](Permit::success), always inlined, reads straight
    /// from registers: no copy of the permit through the stack on the closed path.
    pub(crate) ticket: Word,
    /// Clock reading (ns) at admission, only taken when slow-call detection is on.
    pub(crate) started: u64,
}

/// `started` when the call is not timed.
pub(crate) const NOT_TIMED: u64 = u64::MAX;

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("breaker", &self.breaker.name())
            .field("version", &self.version())
            .field("state", &self.state())
            .field("probe", &self.probe_mode())
            .finish_non_exhaustive()
    }
}

impl Permit<'_> {
    /// The state the call was admitted in (`Closed`, `HalfOpen` or `Disabled`).
    pub fn state(&self) -> CircuitState {
        self.ticket.state()
    }

    /// The breaker version the call was admitted under. Its outcome only feeds the state
    /// machine if the breaker is still at this version when the outcome is recorded.
    pub fn version(&self) -> u64 {
        self.ticket.version()
    }

    /// Whether this is a half-open trial call.
    pub fn is_probe(&self) -> bool {
        self.ticket.slots() != 0
    }

    /// For a half-open trial call, the probe mode whose slot or credit it holds.
    pub(crate) fn probe_mode(&self) -> Option<ProbeMode> {
        self.is_probe().then(|| self.ticket.mode())
    }

    /// Time since admission, when slow-call detection is on.
    pub fn elapsed(&self) -> Option<Duration> {
        (self.started != NOT_TIMED).then(|| {
            self.breaker
                .clock_now()
                .saturating_sub(Duration::from_nanos(self.started))
        })
    }

    /// The call succeeded (a failure if it was slower than the slow-call threshold).
    // Always inlined so that the permit's fields stay in registers from admission to here.
    #[inline(always)]
    pub fn success(self) {
        let (breaker, ticket, started) = (self.breaker, self.ticket, self.started);
        // Taken apart so that the inline path holds nothing to drop (the fast path cannot
        // unwind); the general path gets the permit back and settles it as before.
        std::mem::forget(self);
        if started != NOT_TIMED || !breaker.settle_closed_success(ticket) {
            Permit {
                breaker,
                ticket,
                started,
            }
            .settle(Outcome::Success);
        }
    }

    /// The call failed.
    pub fn failure(self) {
        self.settle(Outcome::Failure);
    }

    /// Records the outcome; if an observer panics, the permit is dropped as if unsettled.
    #[inline(never)]
    fn settle(self, outcome: Outcome) {
        self.breaker.settle(self.ticket, self.started, outcome);
        // Settled: nothing left for Drop to give back.
        std::mem::forget(self);
    }

    /// Settles the permit as `class` says.
    pub fn record_class(self, class: ErrorClass) {
        match class {
            ErrorClass::Failure => self.failure(),
            ErrorClass::Success => self.success(),
            ErrorClass::Ignore => drop(self),
        }
    }

    /// Settles the permit with an error, classified by the breaker's classifier.
    pub fn record_error<E: Error + 'static>(self, error: &E) {
        let class = self.breaker.classify(error);
        self.record_class(class);
    }

    /// Settles the permit with a call's result: `Ok` is a success, `Err` goes through the
    /// breaker's classifier.
    pub fn record<T, E: Error + 'static>(self, result: &Result<T, E>) {
        match result {
            Ok(_) => self.success(),
            Err(e) => self.record_error(e),
        }
    }

    /// Releases the permit without counting anything (same as dropping it).
    pub fn ignore(self) {}
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        // Only reached unsettled: settling forgets the permit.
        if self.is_probe() {
            self.breaker.release_probe(self.ticket);
        }
    }
}
