//! The error of a [`CircuitBreakerService`](crate::CircuitBreakerService).

use flexiai_breaker::Rejected;
use thiserror::Error;

/// Either the breaker refused the call (the inner service was not touched), or the inner
/// service failed (its error is the [`source`](std::error::Error::source), not repeated in
/// this error's message).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error<E> {
    /// The breaker is open, forced open, or half-open with no probe slot free. The inner
    /// service's `poll_ready` and `call` were not invoked.
    #[error(transparent)]
    Rejected(Rejected),
    /// The inner service (its `poll_ready` or its response future) failed.
    #[error("the service behind the circuit breaker failed")]
    Inner(#[source] E),
}

impl<E> Error<E> {
    /// The rejection, if the breaker refused the call.
    pub fn rejected(&self) -> Option<&Rejected> {
        match self {
            Error::Rejected(r) => Some(r),
            Error::Inner(_) => None,
        }
    }

    /// The inner service's error, if it ran and failed.
    pub fn into_inner(self) -> Option<E> {
        match self {
            Error::Rejected(_) => None,
            Error::Inner(e) => Some(e),
        }
    }
}
