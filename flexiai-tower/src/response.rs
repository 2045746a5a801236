//! Answering a rejected request, for servers that put the breaker in front of a handler.

use flexiai_breaker::Rejected;
use http::{HeaderValue, StatusCode, header::RETRY_AFTER};

/// A `503 Service Unavailable` for a call the breaker refused, with `Retry-After` (whole
/// seconds, rounded up) when the breaker knows when it will admit trial calls again.
///
/// ```
/// use std::time::Duration;
/// use flexiai_breaker::{CircuitState, Rejected};
///
/// let rejected = Rejected { state: CircuitState::Open, retry_after: Some(Duration::from_millis(1500)) };
/// let response: http::Response<String> = flexiai_tower::rejected_response(&rejected);
/// assert_eq!(response.status(), 503);
/// assert_eq!(response.headers()["retry-after"], "2");
/// ```
pub fn rejected_response<B: Default>(rejected: &Rejected) -> http::Response<B> {
    let mut response = http::Response::new(B::default());
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    if let Some(wait) = rejected.retry_after {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}
