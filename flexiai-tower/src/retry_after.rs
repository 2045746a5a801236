//! Reading `Retry-After` (and OpenAI's `retry-after-ms`) from HTTP headers.

use std::time::{Duration, SystemTime};

use http::HeaderMap;

/// Longest wait a header may ask for (a day); longer values are cut to it. The breaker caps
/// open periods further (`flexiai_breaker::MAX_OPEN_MS`).
const MAX_WAIT: Duration = Duration::from_secs(86_400);

/// How long `headers` ask the client to wait, measured from `now`.
///
/// Reads, in order: `retry-after-ms` (milliseconds, sent by OpenAI-compatible APIs), then
/// `Retry-After` as delay-seconds (RFC 9110 §10.2.3; a decimal fraction is accepted too) or
/// as an HTTP-date (IMF-fixdate, RFC 850 or asctime, through [`httpdate`]). A date in the
/// past, a negative or unreadable value, or no header at all is `None`: nothing to wait for.
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use http::HeaderMap;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("retry-after", "120".parse().unwrap());
/// assert_eq!(flexiai_tower::retry_after(&headers, SystemTime::now()), Some(Duration::from_secs(120)));
///
/// let now = UNIX_EPOCH + Duration::from_secs(1_445_412_470); // 2015-10-21 07:27:50 UTC
/// headers.insert("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
/// assert_eq!(flexiai_tower::retry_after(&headers, now), Some(Duration::from_secs(10)));
/// ```
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = get("retry-after-ms").and_then(non_negative) {
        return positive((ms / 1000.0).min(MAX_WAIT.as_secs_f64()));
    }
    let value = get("retry-after")?;
    if let Some(secs) = non_negative(value) {
        return positive(secs.min(MAX_WAIT.as_secs_f64()));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    let wait = date.duration_since(now).ok()?;
    (!wait.is_zero()).then(|| wait.min(MAX_WAIT))
}

fn non_negative(s: &str) -> Option<f64> {
    s.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0)
}

fn positive(secs: f64) -> Option<Duration> {
    (secs > 0.0).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::UNIX_EPOCH;

    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    /// 2015-10-21 07:28:00 UTC.
    fn date() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_445_412_480)
    }

    #[test]
    fn seconds_fractions_and_milliseconds() {
        let now = SystemTime::now();
        assert_eq!(retry_after(&headers(&[]), now), None);
        let secs = headers(&[("retry-after", " 2 ")]);
        assert_eq!(retry_after(&secs, now), Some(Duration::from_secs(2)));
        let half = headers(&[("retry-after", "0.5")]);
        assert_eq!(retry_after(&half, now), Some(Duration::from_millis(500)));
        let ms = headers(&[("retry-after", "7"), ("retry-after-ms", "250")]);
        assert_eq!(retry_after(&ms, now), Some(Duration::from_millis(250)));
        let huge = headers(&[("retry-after", "99999999999")]);
        assert_eq!(retry_after(&huge, now), Some(MAX_WAIT));
    }

    #[test]
    fn http_dates_in_every_format_count_from_now() {
        let before = date() - Duration::from_secs(90);
        for value in [
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "Wednesday, 21-Oct-15 07:28:00 GMT",
            "Wed Oct 21 07:28:00 2015",
        ] {
            let h = headers(&[("retry-after", value)]);
            assert_eq!(
                retry_after(&h, before),
                Some(Duration::from_secs(90)),
                "{value}"
            );
        }
    }

    #[test]
    fn nothing_to_wait_for_is_none() {
        let past = headers(&[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]);
        assert_eq!(retry_after(&past, date()), None, "now");
        assert_eq!(
            retry_after(&past, date() + Duration::from_secs(5)),
            None,
            "past"
        );
        for bad in ["-3", "soon", "NaN", "inf", "0", ""] {
            assert_eq!(
                retry_after(&headers(&[("retry-after", bad)]), date()),
                None,
                "{bad}"
            );
        }
    }
}
