//! The crate's error types: [`BreakerError`] for construction, [`Rejected`] for admission and
//! [`CallError`] for the [`call`](crate::CircuitBreaker::call) helper.

use std::fmt;
use std::time::Duration;

use flexiai_events::CircuitState;
use thiserror::Error;

/// Why a breaker (or a helper around one) could not be built.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BreakerError {
    /// A configuration field has a value the breaker cannot work with.
    #[error("invalid breaker configuration: `{field}` {reason}")]
    InvalidConfig {
        /// The offending field, as spelled in [`BreakerConfig`](crate::BreakerConfig) and its
        /// serialized form (e.g. `"failure_threshold"`, `"failure_policy.window_ms"`).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The breaker's name is not a valid provider name.
    #[error("invalid breaker name: {0}")]
    InvalidName(#[from] flexiai_events::EventError),
    /// The background thread of a [`QueuedObserver`](crate::QueuedObserver) could not start.
    #[error("could not start the observer thread: {0}")]
    ObserverThread(#[source] std::io::Error),
    /// The background thread of a `MetricsExporter` (feature `metrics`) could not start.
    #[error("could not start the metrics exporter thread")]
    ExporterThread(#[source] std::io::Error),
}

impl BreakerError {
    pub(crate) fn config(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidConfig {
            field,
            reason: reason.into(),
        }
    }
}

/// A call the breaker refused to admit.
///
/// Cheap to copy and allocation-free, because rejections are the hot path while a provider is
/// down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    /// The state that caused the rejection (`Open`, `ForcedOpen`, or `HalfOpen` with no probe
    /// slot left).
    pub state: CircuitState,
    /// When it is worth trying again, if known: the time left in the open period. `None` for
    /// a forced-open breaker (only an operator can close it) and for a half-open breaker whose
    /// probe slots are taken.
    pub retry_after: Option<Duration>,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "circuit breaker rejected the call: state is {}",
            self.state
        )?;
        if let Some(after) = self.retry_after {
            write!(f, ", retry after {} ms", after.as_millis())?;
        }
        Ok(())
    }
}

impl std::error::Error for Rejected {}

/// The error of [`CircuitBreaker::call`](crate::CircuitBreaker::call): either the breaker
/// refused the call or the call itself failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError<E> {
    /// The breaker did not run the call.
    Rejected(Rejected),
    /// The call ran and returned this error.
    Inner(E),
}

impl<E> CallError<E> {
    /// The inner error, if the call ran.
    pub fn into_inner(self) -> Option<E> {
        match self {
            CallError::Rejected(_) => None,
            CallError::Inner(e) => Some(e),
        }
    }

    /// Whether the breaker refused the call.
    pub fn is_rejected(&self) -> bool {
        matches!(self, CallError::Rejected(_))
    }
}

/// Says what failed, never why: a rejection is the error itself (its message, no source);
/// for a call that failed, the call's error is the [`source`](std::error::Error::source),
/// not repeated here, so an error reporter walking the chain prints each message once.
impl<E> fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Rejected(r) => r.fmt(f),
            CallError::Inner(_) => f.write_str("the call guarded by the circuit breaker failed"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for CallError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CallError::Rejected(_) => None,
            CallError::Inner(e) => Some(e),
        }
    }
}

impl<E> From<Rejected> for CallError<E> {
    fn from(r: Rejected) -> Self {
        CallError::Rejected(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message of `error`'s `source()` chain, outermost first.
    fn chain(error: &(dyn std::error::Error + 'static)) -> Vec<String> {
        let mut messages = Vec::new();
        let mut next = Some(error);
        while let Some(e) = next {
            messages.push(e.to_string());
            next = e.source();
        }
        messages
    }

    #[derive(Debug, thiserror::Error)]
    #[error("provider answered 503")]
    struct Upstream(#[source] std::io::Error);

    #[test]
    fn call_errors_print_each_cause_once_along_the_source_chain() {
        let failed: CallError<Upstream> =
            CallError::Inner(Upstream(std::io::Error::other("connection reset")));
        assert_eq!(
            chain(&failed),
            [
                "the call guarded by the circuit breaker failed",
                "provider answered 503",
                "connection reset"
            ]
        );
        let rejected: CallError<Upstream> = CallError::Rejected(Rejected {
            state: CircuitState::Open,
            retry_after: Some(Duration::from_millis(1500)),
        });
        assert_eq!(
            chain(&rejected),
            ["circuit breaker rejected the call: state is open, retry after 1500 ms"]
        );
    }

    #[test]
    fn messages_name_the_field_and_the_wait() {
        let e = BreakerError::config("failure_threshold", "must be at least 1");
        assert_eq!(
            e.to_string(),
            "invalid breaker configuration: `failure_threshold` must be at least 1"
        );
        let r = Rejected {
            state: CircuitState::Open,
            retry_after: Some(Duration::from_millis(1500)),
        };
        assert_eq!(
            r.to_string(),
            "circuit breaker rejected the call: state is open, retry after 1500 ms"
        );
        let c: CallError<std::io::Error> = r.into();
        assert!(c.is_rejected());
        assert!(c.into_inner().is_none());
    }
}
