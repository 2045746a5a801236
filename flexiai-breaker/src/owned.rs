//! [`OwnedPermit`]: a permit that holds its breaker through an `Arc`, so it is `'static` and
//! can move into a spawned task or a `tower::Service::call` future.
//!
//! It settles through the borrowed [`Permit`]'s code (built on the spot from the same three
//! fields), so both kinds count, time and release probe slots identically; the only extra
//! cost is the `Arc`'s reference count (an atomic increment at admission, a decrement when
//! the permit goes away). Nothing allocates.

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use flexiai_events::CircuitState;

use crate::CircuitBreaker;
use crate::classifier::ErrorClass;
use crate::error::Rejected;
use crate::permit::Permit;
use crate::word::Word;

/// Permission to make one call, owning a reference to its breaker: the `'static` twin of
/// [`Permit`], returned by [`CircuitBreaker::acquire_owned`].
///
/// Same rules as [`Permit`]: settle it with [`success`](OwnedPermit::success),
/// [`failure`](OwnedPermit::failure), [`record`](OwnedPermit::record) or
/// [`ignore`](OwnedPermit::ignore); dropped unsettled it counts nothing and gives a half-open
/// probe slot back.
#[must_use = "a permit should be settled with success(), failure() or record()"]
pub struct OwnedPermit {
    breaker: Arc<CircuitBreaker>,
    /// As in [`Permit`]; its slot count is cleared once settled, so `Drop` releases nothing.
    ticket: Word,
    started: u64,
}

impl CircuitBreaker {
    /// Like [`try_acquire`](CircuitBreaker::try_acquire), but the permit holds a clone of the
    /// `Arc` instead of a borrow, so it can outlive the caller's stack frame.
    ///
    /// Allocation-free like `try_acquire`: cloning an `Arc` only bumps its count.
    #[inline]
    pub fn acquire_owned(self: &Arc<Self>) -> Result<OwnedPermit, Rejected> {
        let permit = self.try_acquire()?;
        let (ticket, started) = (permit.ticket, permit.started);
        // Ownership of the slot (if any) moves to the owned permit.
        std::mem::forget(permit);
        Ok(OwnedPermit {
            breaker: Arc::clone(self),
            ticket,
            started,
        })
    }
}

impl fmt::Debug for OwnedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit")
            .field("breaker", &self.breaker.name())
            .field("version", &self.version())
            .field("state", &self.state())
            .field("probe", &self.is_probe())
            .finish_non_exhaustive()
    }
}

impl OwnedPermit {
    /// The breaker this permit belongs to.
    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }

    /// The state the call was admitted in (`Closed`, `HalfOpen` or `Disabled`).
    pub fn state(&self) -> CircuitState {
        self.ticket.state()
    }

    /// The breaker version the call was admitted under.
    pub fn version(&self) -> u64 {
        self.ticket.version()
    }

    /// Whether this is a half-open trial call.
    pub fn is_probe(&self) -> bool {
        self.ticket.slots() != 0
    }

    /// Time since admission, when slow-call detection is on.
    pub fn elapsed(&self) -> Option<Duration> {
        self.borrowed_view(|p| p.elapsed())
    }

    /// Runs `f` on a borrowed view with the same fields, never settled nor dropped.
    fn borrowed_view<T>(&self, f: impl FnOnce(&Permit<'_>) -> T) -> T {
        let p = Permit {
            breaker: &self.breaker,
            ticket: self.ticket,
            started: self.started,
        };
        let out = f(&p);
        std::mem::forget(p);
        out
    }

    /// Moves the admission into a borrowed permit, which settles it (or, if dropped, gives
    /// the slot back). The slot count is cleared here first, so that our own `Drop` (after
    /// settling, or while unwinding from a panicking observer) releases nothing twice.
    #[inline(always)]
    fn take(&mut self) -> Permit<'_> {
        let ticket = self.ticket;
        self.ticket = ticket.with_slots(0);
        Permit {
            breaker: &self.breaker,
            ticket,
            started: self.started,
        }
    }

    /// The call succeeded (a failure if it was slower than the slow-call threshold).
    #[inline(always)]
    pub fn success(mut self) {
        self.take().success();
    }

    /// The call failed.
    pub fn failure(mut self) {
        self.take().failure();
    }

    /// Settles the permit as `class` says.
    pub fn record_class(mut self, class: ErrorClass) {
        self.take().record_class(class);
    }

    /// Settles the permit with an error, classified by the breaker's classifier.
    pub fn record_error<E: Error + 'static>(mut self, error: &E) {
        self.take().record_error(error);
    }

    /// Settles the permit with a call's result: `Ok` is a success, `Err` goes through the
    /// breaker's classifier.
    pub fn record<T, E: Error + 'static>(mut self, result: &Result<T, E>) {
        self.take().record(result);
    }

    /// Releases the permit without counting anything (same as dropping it).
    pub fn ignore(self) {}
}

impl Drop for OwnedPermit {
    fn drop(&mut self) {
        // Unsettled: gives a probe slot back. Settled: the slot count is clear, nothing to do.
        drop(self.take());
    }
}
