//! Turning a service's result into what the breaker records.

use std::time::{Duration, SystemTime};

use flexiai_breaker::ErrorClass;

use crate::retry_after::retry_after;

/// What one finished call means to the breaker: how to count it and, optionally, how long the
/// server asked everyone to stay away (fed to
/// [`CircuitBreaker::open_for`](flexiai_breaker::CircuitBreaker::open_for) after the outcome
/// is recorded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// How the call is counted.
    pub class: ErrorClass,
    /// Keep the breaker open at least this long (a `Retry-After`).
    pub open_for: Option<Duration>,
}

impl Verdict {
    /// A success.
    pub const SUCCESS: Verdict = Verdict::new(ErrorClass::Success);
    /// A failure.
    pub const FAILURE: Verdict = Verdict::new(ErrorClass::Failure);
    /// Counted as nothing (the permit is released, a probe slot given back).
    pub const IGNORE: Verdict = Verdict::new(ErrorClass::Ignore);

    /// A verdict of `class` with no open period.
    pub const fn new(class: ErrorClass) -> Self {
        Self {
            class,
            open_for: None,
        }
    }

    /// The same verdict, also asking the breaker to stay open for `period` if it is `Some`.
    pub const fn with_open_for(mut self, period: Option<Duration>) -> Self {
        self.open_for = period;
        self
    }
}

impl From<ErrorClass> for Verdict {
    fn from(class: ErrorClass) -> Self {
        Self::new(class)
    }
}

/// Decides what a service's result means to the breaker.
///
/// Implemented by [`ErrorsAreFailures`] (the default), [`HttpClassifier`], and any
/// `Fn(Result<&Res, &E>) -> V` where `V: Into<Verdict>` (an [`ErrorClass`] or a [`Verdict`]):
///
/// ```
/// use flexiai_breaker::ErrorClass;
/// use flexiai_tower::Classify;
///
/// // Timeouts count, "not found" does not.
/// let classify = |r: Result<&u16, &std::io::Error>| match r {
///     Ok(404) | Ok(200..300) => ErrorClass::Success,
///     Ok(_) => ErrorClass::Failure,
///     Err(e) if e.kind() == std::io::ErrorKind::TimedOut => ErrorClass::Failure,
///     Err(_) => ErrorClass::Ignore,
/// };
/// assert_eq!(classify.classify(Ok(&503)).class, ErrorClass::Failure);
/// ```
pub trait Classify<Res, E> {
    /// The verdict on one call's result.
    fn classify(&self, result: Result<&Res, &E>) -> Verdict;
}

impl<F, V, Res, E> Classify<Res, E> for F
where
    F: Fn(Result<&Res, &E>) -> V,
    V: Into<Verdict>,
{
    fn classify(&self, result: Result<&Res, &E>) -> Verdict {
        self(result).into()
    }
}

/// The default classifier: every `Ok` is a success, every `Err` a failure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorsAreFailures;

impl<Res, E> Classify<Res, E> for ErrorsAreFailures {
    fn classify(&self, result: Result<&Res, &E>) -> Verdict {
        match result {
            Ok(_) => Verdict::SUCCESS,
            Err(_) => Verdict::FAILURE,
        }
    }
}

/// A classifier for services answering [`http::Response`]s: server errors (5xx), 429 and
/// transport errors (`Err`) are failures; everything else, the caller's own 4xx included, is
/// a success. A 429 or 503 carrying `Retry-After` (seconds or an HTTP-date, see
/// [`retry_after`](crate::retry_after())) also opens the breaker for that long, so a synced
/// fleet stays away for exactly what the server asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpClassifier {
    honor_retry_after: bool,
    max_retry_after: Option<Duration>,
}

impl Default for HttpClassifier {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClassifier {
    /// Honors `Retry-After`, with no cap beyond the breaker's own.
    pub const fn new() -> Self {
        Self {
            honor_retry_after: true,
            max_retry_after: None,
        }
    }

    /// Whether a `Retry-After` opens the breaker (default on).
    pub const fn honor_retry_after(mut self, on: bool) -> Self {
        self.honor_retry_after = on;
        self
    }

    /// Cuts every `Retry-After` to at most `max` (a misbehaving server cannot keep the
    /// breaker open for a day).
    pub const fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = Some(max);
        self
    }

    /// The verdict on a response's status and headers.
    pub fn classify_response<B>(&self, response: &http::Response<B>) -> Verdict {
        let status = response.status();
        let throttled = status == http::StatusCode::TOO_MANY_REQUESTS
            || status == http::StatusCode::SERVICE_UNAVAILABLE;
        let class = if status.is_server_error() || throttled {
            ErrorClass::Failure
        } else {
            ErrorClass::Success
        };
        let open_for = (throttled && self.honor_retry_after)
            .then(|| retry_after(response.headers(), SystemTime::now()))
            .flatten()
            .map(|d| self.max_retry_after.map_or(d, |max| d.min(max)));
        Verdict::new(class).with_open_for(open_for)
    }
}

impl<B, E> Classify<http::Response<B>, E> for HttpClassifier {
    fn classify(&self, result: Result<&http::Response<B>, &E>) -> Verdict {
        match result {
            Ok(response) => self.classify_response(response),
            Err(_) => Verdict::FAILURE,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn response(status: u16, retry_after: Option<&'static str>) -> http::Response<()> {
        let mut b = http::Response::builder().status(status);
        if let Some(v) = retry_after {
            b = b.header("retry-after", v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn statuses_map_to_outcomes() {
        let c = HttpClassifier::new();
        for (status, class) in [
            (200, ErrorClass::Success),
            (204, ErrorClass::Success),
            (400, ErrorClass::Success),
            (404, ErrorClass::Success),
            (429, ErrorClass::Failure),
            (500, ErrorClass::Failure),
            (502, ErrorClass::Failure),
            (503, ErrorClass::Failure),
        ] {
            let v = Classify::<_, ()>::classify(&c, Ok(&response(status, None)));
            assert_eq!(v, Verdict::new(class), "{status}");
        }
        assert_eq!(
            Classify::<http::Response<()>, _>::classify(&c, Err(&())),
            Verdict::FAILURE
        );
    }

    #[test]
    fn retry_after_on_throttling_answers_only_and_capped() {
        let c = HttpClassifier::new();
        let wait = |c: &HttpClassifier, status| c.classify_response(&response(status, Some("30")));
        assert_eq!(wait(&c, 429).open_for, Some(Duration::from_secs(30)));
        assert_eq!(wait(&c, 503).open_for, Some(Duration::from_secs(30)));
        assert_eq!(
            wait(&c, 500).open_for,
            None,
            "only 429 and 503 carry a wait"
        );
        assert_eq!(wait(&c, 200).open_for, None);
        let capped = c.max_retry_after(Duration::from_secs(5));
        assert_eq!(wait(&capped, 429).open_for, Some(Duration::from_secs(5)));
        let off = c.honor_retry_after(false);
        assert_eq!(wait(&off, 429), Verdict::FAILURE);
    }

    #[test]
    fn closures_and_the_default_classify_too() {
        assert_eq!(
            Classify::<(), ()>::classify(&ErrorsAreFailures, Ok(&())),
            Verdict::SUCCESS
        );
        assert_eq!(
            Classify::<(), ()>::classify(&ErrorsAreFailures, Err(&())),
            Verdict::FAILURE
        );
        let ignore_errors = |r: Result<&(), &()>| {
            if r.is_ok() {
                Verdict::SUCCESS
            } else {
                Verdict::IGNORE
            }
        };
        assert_eq!(ignore_errors.classify(Err(&())), Verdict::IGNORE);
    }
}
