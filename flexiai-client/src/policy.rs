//! Which provider errors count against a provider's breaker, and which are worth retrying.

use flexiai_breaker::ErrorClass;

use crate::error::ProviderError;

/// Decides, for each [`ProviderError`], how the provider's circuit breaker counts it and
/// whether the client retries the same provider.
///
/// The client fails over to the next provider after any error; this policy only decides what
/// the breaker learns and whether the same provider gets another try first.
pub trait ErrorPolicy: Send + Sync + std::fmt::Debug {
    /// How the breaker counts `error`.
    fn classify(&self, error: &ProviderError) -> ErrorClass;

    /// Whether another try of the same provider (after backoff) may succeed.
    fn is_retryable(&self, error: &ProviderError) -> bool;
}

/// The default policy: provider health counts, the caller's mistakes do not.
///
/// | error | breaker | retried |
/// |---|---|---|
/// | `RateLimited` (429) | failure (and, with `Retry-After`, open for that long) | yes, after `Retry-After` if it fits the backoff cap |
/// | `Timeout` (or 408) | failure | yes |
/// | `Connection` | failure | yes |
/// | `Server` (5xx, 529) | failure | yes |
/// | `InvalidResponse` (2xx with a bad body, an answer over the size cap) | failure | yes |
/// | `StreamError` (an error event in a stream) | failure | yes, before the first event only |
/// | `Authentication` (401, 403) | success (the provider answered) | no |
/// | `InvalidRequest` (other 4xx) | success (the provider answered) | no |
/// | `Request` (never sent) | ignored | no |
///
/// A 429's `Retry-After` does more than count a failure: when `retry.honor_retry_after` is on,
/// the client also opens the provider's breaker for that long
/// ([`CircuitBreaker::open_for`](flexiai_breaker::CircuitBreaker::open_for)), fleet-wide when
/// synced, so that no worker calls the provider before the time asked. That is the client's
/// doing, whatever the policy: a custom policy decides how the 429 counts and whether it is
/// retried, not whether its `Retry-After` is honoured (see the
/// [crate docs](crate#retry-after)).
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultErrorPolicy;

impl ErrorPolicy for DefaultErrorPolicy {
    fn classify(&self, error: &ProviderError) -> ErrorClass {
        match error {
            ProviderError::RateLimited { .. }
            | ProviderError::Timeout { .. }
            | ProviderError::Connection { .. }
            | ProviderError::Server { .. }
            | ProviderError::InvalidResponse { .. }
            | ProviderError::StreamError { .. } => ErrorClass::Failure,
            ProviderError::Authentication { .. } | ProviderError::InvalidRequest { .. } => {
                ErrorClass::Success
            }
            ProviderError::Request { .. } => ErrorClass::Ignore,
        }
    }

    fn is_retryable(&self, error: &ProviderError) -> bool {
        self.classify(error) == ErrorClass::Failure
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn provider_health_counts_and_caller_mistakes_do_not() {
        let p = DefaultErrorPolicy;
        let failures = [
            ProviderError::RateLimited {
                status: 429,
                retry_after: Some(Duration::from_secs(1)),
                message: String::new(),
            },
            ProviderError::Timeout {
                elapsed: Duration::from_secs(1),
            },
            ProviderError::Connection {
                message: String::new(),
            },
            ProviderError::Server {
                status: 503,
                message: String::new(),
            },
            ProviderError::InvalidResponse {
                message: String::new(),
            },
            ProviderError::StreamError {
                error_type: "overloaded_error".into(),
                message: String::new(),
            },
        ];
        for e in &failures {
            assert_eq!(p.classify(e), ErrorClass::Failure, "{e}");
            assert!(p.is_retryable(e), "{e}");
        }
        let callers = [
            ProviderError::Authentication {
                status: 401,
                message: String::new(),
            },
            ProviderError::InvalidRequest {
                status: 400,
                message: String::new(),
            },
        ];
        for e in &callers {
            assert_eq!(p.classify(e), ErrorClass::Success, "{e}");
            assert!(!p.is_retryable(e), "{e}");
        }
        let unsent = ProviderError::Request {
            message: String::new(),
        };
        assert_eq!(p.classify(&unsent), ErrorClass::Ignore);
        assert!(!p.is_retryable(&unsent));
    }
}
