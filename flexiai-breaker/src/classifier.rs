//! Deciding which errors count against a provider.

use std::error::Error;

/// How an error returned by a protected call is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// The provider is at fault (timeout, 5xx, rate limit...): counts as a failure.
    Failure,
    /// The provider answered correctly and the error is the caller's (bad request, content
    /// filter...): counts as a success, proof that the provider is up.
    Success,
    /// Says nothing about the provider (cancelled by the caller...): not counted; a half-open
    /// probe slot is given back.
    Ignore,
}

/// Classifies the errors that [`CircuitBreaker::call`](crate::CircuitBreaker::call) and
/// [`Permit::record`](crate::Permit::record) see.
///
/// Errors arrive type-erased so that one breaker can protect calls with different error
/// types; downcast to inspect them. Any `Fn(&(dyn Error + 'static)) -> bool` is a classifier
/// (`true` = failure, `false` = success). The default, [`CountAll`], counts every error: the
/// Python original's classifier ignored provider errors, so its breaker never tripped.
///
/// ```
/// use flexiai_breaker::{Classifier, ErrorClass};
///
/// // Only I/O errors count; anything else is the caller's fault.
/// let classifier = |e: &(dyn std::error::Error + 'static)| e.is::<std::io::Error>();
/// let timeout = std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
/// assert_eq!(classifier.classify(&timeout), ErrorClass::Failure);
/// ```
pub trait Classifier: Send + Sync {
    /// How to count `error`.
    fn classify(&self, error: &(dyn Error + 'static)) -> ErrorClass;
}

/// The default classifier: every error is a failure.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountAll;

impl Classifier for CountAll {
    fn classify(&self, _error: &(dyn Error + 'static)) -> ErrorClass {
        ErrorClass::Failure
    }
}

impl<F> Classifier for F
where
    F: Fn(&(dyn Error + 'static)) -> bool + Send + Sync,
{
    fn classify(&self, error: &(dyn Error + 'static)) -> ErrorClass {
        if self(error) {
            ErrorClass::Failure
        } else {
            ErrorClass::Success
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;

    #[derive(Debug)]
    struct BadRequest;
    impl fmt::Display for BadRequest {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("400")
        }
    }
    impl Error for BadRequest {}

    #[test]
    fn closures_downcast_and_default_counts_everything() {
        let c = |e: &(dyn Error + 'static)| !e.is::<BadRequest>();
        assert_eq!(c.classify(&BadRequest), ErrorClass::Success);
        assert_eq!(
            c.classify(&std::io::Error::other("boom")),
            ErrorClass::Failure
        );
        assert_eq!(CountAll.classify(&BadRequest), ErrorClass::Failure);
    }
}
