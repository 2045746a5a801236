//! What the HTTP adapters share: the reqwest client (rustls with the ring provider and the
//! platform's roots, the environment's proxies), status and transport error classification,
//! `Retry-After` parsing, size-capped bodies and the SSE event loop of streamed answers.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::config::{ProviderConfig, ProviderKind};
use crate::error::{ClientError, ProviderError};
use crate::events::{ProviderEventStream, StreamEvent};
use crate::secret::{ApiKey, scrub};
use crate::sse::{SseEvent, SseParser};

/// Longest piece of a provider's error body kept in a [`ProviderError`] message.
const MAX_MESSAGE: usize = 512;

/// Longest single SSE event accepted in a streamed answer.
const MAX_SSE_EVENT: usize = 1 << 20;

/// Builds the HTTP client the adapters use: rustls with the `ring` provider, certificates
/// checked against the platform's roots, HTTP/1.1, and the proxies of the environment:
/// `HTTPS_PROXY`/`https_proxy` for `https://` URLs, `HTTP_PROXY`/`http_proxy` for `http://`
/// ones, `ALL_PROXY` for both, minus the hosts `NO_PROXY`/`no_proxy` lists (reqwest's
/// reading of them). Checked by the `flexiai chat` test
/// `chat_goes_through_the_environment_proxy`.
///
/// When the platform has no usable root certificates, the client is still built (plain
/// `http://` works, e.g. for a local server) and every `https://` call fails with a
/// [`ProviderError::Connection`] naming the cause.
pub fn http_client() -> Result<reqwest::Client, ClientError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::HttpClient(e.to_string()))?;
    let verifier: Arc<dyn ServerCertVerifier> =
        match rustls_platform_verifier::Verifier::new(Arc::clone(&provider)) {
            Ok(v) => Arc::new(v),
            Err(e) => {
                tracing::warn!(error = %e, "no platform root certificates: https calls will fail");
                Arc::new(NoRoots {
                    reason: e.to_string(),
                    provider,
                })
            }
        };
    let tls = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .build()
        .map_err(|e| ClientError::HttpClient(e.to_string()))
}

/// Refuses every certificate: used when the platform has no root to check against.
#[derive(Debug)]
struct NoRoots {
    reason: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for NoRoots {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Err(rustls::Error::General(format!(
            "no trusted root certificates: {}",
            self.reason
        )))
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General(
            "no trusted root certificates".into(),
        ))
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General(
            "no trusted root certificates".into(),
        ))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Sorts a transport error from reqwest.
pub(crate) fn transport_error(error: &reqwest::Error, timeout: Duration) -> ProviderError {
    if error.is_timeout() {
        return ProviderError::Timeout { elapsed: timeout };
    }
    if error.is_builder() {
        return ProviderError::Request {
            message: error_chain(error),
        };
    }
    ProviderError::Connection {
        message: error_chain(error),
    }
}

/// An error and its causes on one line, without the URL.
fn error_chain(error: &reqwest::Error) -> String {
    use std::error::Error;
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Sorts a non-success HTTP answer; `body` is the provider's error text.
pub(crate) fn status_error(
    status: StatusCode,
    headers: &HeaderMap,
    body: &str,
    key: Option<&ApiKey>,
    timeout: Duration,
) -> ProviderError {
    let message = scrub(&error_message(body), key, MAX_MESSAGE);
    let code = status.as_u16();
    match code {
        429 => ProviderError::RateLimited {
            status: code,
            retry_after: retry_after(headers),
            message,
        },
        408 => ProviderError::Timeout { elapsed: timeout },
        401 | 403 => ProviderError::Authentication {
            status: code,
            message,
        },
        500..=599 => ProviderError::Server {
            status: code,
            message,
        },
        400..=499 => ProviderError::InvalidRequest {
            status: code,
            message,
        },
        // 1xx/3xx that reqwest did not resolve: the provider is misbehaving.
        _ => ProviderError::InvalidResponse {
            message: format!("unexpected HTTP {code}: {message}"),
        },
    }
}

/// The `message` of an OpenAI- or Anthropic-style error body (`{"error": {"message": ...}}`),
/// or the body itself.
fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let error = v.get("error")?;
            error
                .get("message")
                .and_then(|m| m.as_str())
                .map(str::to_owned)
                .or_else(|| error.as_str().map(str::to_owned))
        })
        .unwrap_or_else(|| body.trim().to_owned())
}

/// The wait a 429 asks for: `retry-after-ms` (OpenAI), or `Retry-After` in seconds (integer
/// or decimal) or as an HTTP date (the time until then); `None` when there is nothing to
/// wait for (no header, zero, a date in the past). The same reader as
/// [`flexiai_tower::retry_after`], at the current time.
///
/// ```
/// use std::time::Duration;
/// use reqwest::header::{HeaderMap, HeaderValue};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("retry-after", HeaderValue::from_static("1.5"));
/// assert_eq!(flexiai_client::retry_after(&headers), Some(Duration::from_millis(1500)));
/// headers.insert("retry-after", HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
/// assert_eq!(flexiai_client::retry_after(&headers), None); // long past: no wait
/// ```
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    retry_after_at(headers, SystemTime::now())
}

/// The one `Retry-After` reader of the workspace is `flexiai_tower`'s (reqwest's `HeaderMap`
/// is `http`'s).
fn retry_after_at(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    flexiai_tower::retry_after(headers, now)
}

/// Sends `request` and returns the body of a success answer (at most `max_body` bytes), or
/// a classified error.
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    key: Option<&ApiKey>,
    timeout: Duration,
    max_body: usize,
) -> Result<Vec<u8>, ProviderError> {
    let response = request
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| transport_error(&e, timeout))?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = read_capped(response, max_body, timeout).await?;
    if status.is_success() {
        return Ok(body);
    }
    let text = String::from_utf8_lossy(&body);
    Err(status_error(status, &headers, &text, key, timeout))
}

/// Reads a body chunk by chunk, refusing one longer than `max_body` bytes before holding it.
async fn read_capped(
    mut response: reqwest::Response,
    max_body: usize,
    timeout: Duration,
) -> Result<Vec<u8>, ProviderError> {
    if response
        .content_length()
        .is_some_and(|n| n > max_body as u64)
    {
        return Err(too_large(max_body));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(&e, timeout))?
    {
        if body.len() + chunk.len() > max_body {
            return Err(too_large(max_body));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn too_large(max_body: usize) -> ProviderError {
    ProviderError::InvalidResponse {
        message: format!("the answer is longer than {max_body} bytes"),
    }
}

/// Sends a streaming `request`: a success answer is returned for its body to be read as
/// events; any other is read (capped) and classified. No total timeout: the client bounds
/// the time to the first event and between events.
pub(crate) async fn send_stream(
    request: reqwest::RequestBuilder,
    key: Option<&ApiKey>,
    timeout: Duration,
    max_body: usize,
) -> Result<reqwest::Response, ProviderError> {
    let response = request
        .send()
        .await
        .map_err(|e| transport_error(&e, timeout))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let headers = response.headers().clone();
    let body = read_capped(response, max_body.min(64 * 1024), timeout).await?;
    let text = String::from_utf8_lossy(&body);
    Err(status_error(status, &headers, &text, key, timeout))
}

/// Turns the SSE events of one provider's wire format into [`StreamEvent`]s.
pub(crate) trait SseDecoder: Send + 'static {
    /// Decodes one SSE event, appending what it says to `out`; `Ok(true)` when it is the
    /// stream's end marker.
    fn decode(
        &mut self,
        event: &SseEvent,
        out: &mut Vec<StreamEvent>,
    ) -> Result<bool, ProviderError>;

    /// Whether a body that ends (without its end marker) after what was decoded is still a
    /// complete answer.
    fn complete_without_marker(&self) -> bool;
}

/// The events of a streamed answer: reads the body chunk by chunk (at most `max_body` bytes
/// in all, one SSE event at most [`MAX_SSE_EVENT`] bytes), decodes them, and ends with an
/// error when the body breaks off, breaks the format or carries an error event, so a cut
/// answer never looks complete.
pub(crate) fn sse_stream<D: SseDecoder>(
    mut response: reqwest::Response,
    mut decoder: D,
    key: Option<ApiKey>,
    timeout: Duration,
    max_body: usize,
) -> ProviderEventStream {
    Box::pin(async_stream::stream! {
        let mut parser = SseParser::new(MAX_SSE_EVENT.min(max_body));
        let mut read = 0usize;
        let mut sse = Vec::new();
        let mut out = Vec::new();
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => {
                    if !decoder.complete_without_marker() {
                        yield Err(ProviderError::Connection {
                            message: "the stream ended before its end marker".into(),
                        });
                    }
                    return;
                }
                Err(e) => {
                    yield Err(transport_error(&e, timeout));
                    return;
                }
            };
            read = read.saturating_add(chunk.len());
            if read > max_body {
                yield Err(too_large(max_body));
                return;
            }
            if let Err(e) = parser.feed(&chunk, &mut sse) {
                yield Err(ProviderError::InvalidResponse {
                    message: format!("not an event stream: {}", e.0),
                });
                return;
            }
            for event in sse.drain(..) {
                let done = decoder.decode(&event, &mut out).map_err(|e| scrub_error(e, key.as_ref()));
                for decoded in out.drain(..) {
                    yield Ok(decoded);
                }
                match done {
                    Ok(true) => return,
                    Ok(false) => {}
                    Err(e) => {
                        yield Err(e);
                        return;
                    }
                }
            }
        }
    })
}

/// Keeps the key out of a decoder's message, which may quote the provider.
fn scrub_error(error: ProviderError, key: Option<&ApiKey>) -> ProviderError {
    match error {
        ProviderError::StreamError {
            error_type,
            message,
        } => ProviderError::StreamError {
            error_type,
            message: scrub(&message, key, MAX_MESSAGE),
        },
        ProviderError::InvalidResponse { message } => ProviderError::InvalidResponse {
            message: scrub(&message, key, MAX_MESSAGE),
        },
        other => other,
    }
}

/// Parses a success body as `T`; a body that does not parse is the provider's fault.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    key: Option<&ApiKey>,
) -> Result<T, ProviderError> {
    serde_json::from_slice(body).map_err(|e| ProviderError::InvalidResponse {
        message: scrub(&format!("not the expected JSON: {e}"), key, MAX_MESSAGE),
    })
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn statuses_are_sorted() {
        let h = HeaderMap::new();
        let t = Duration::from_secs(1);
        let e = |code: u16| status_error(StatusCode::from_u16(code).unwrap(), &h, "{}", None, t);
        assert_eq!(e(429).kind(), "rate_limited");
        assert_eq!(e(408).kind(), "timeout");
        assert_eq!(e(401).kind(), "authentication");
        assert_eq!(e(403).kind(), "authentication");
        assert_eq!(e(400).kind(), "invalid_request");
        assert_eq!(e(404).kind(), "invalid_request");
        assert_eq!(e(422).kind(), "invalid_request");
        assert_eq!(e(500).kind(), "server_error");
        assert_eq!(e(503).kind(), "server_error");
        assert_eq!(e(529).kind(), "server_error");
    }

    #[test]
    fn messages_come_from_the_error_object_and_hide_the_key() {
        let key = ApiKey::new("sk-abcdef");
        let body =
            r#"{"error": {"message": "Incorrect API key provided: sk-abcdef", "type": "x"}}"#;
        let err = status_error(
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new(),
            body,
            Some(&key),
            Duration::from_secs(1),
        );
        assert_eq!(
            err.to_string(),
            "authentication failed (HTTP 401): Incorrect API key provided: <redacted>"
        );
    }

    #[test]
    fn retry_after_in_seconds_or_milliseconds() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after", HeaderValue::from_static("0.5"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(500)));
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        h.remove("retry-after-ms");
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        // An HTTP date: the time until then, none when it is past.
        let date = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(
            retry_after_at(&h, date - Duration::from_secs(90)),
            Some(Duration::from_secs(90))
        );
        assert_eq!(retry_after(&h), None);
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }
}

/// What every HTTP adapter needs to reach its provider, built once from its config.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) name: String,
    pub(crate) model: String,
    pub(crate) url: String,
    pub(crate) api_key: Option<ApiKey>,
    pub(crate) timeout: Duration,
    pub(crate) max_body: usize,
    pub(crate) http: reqwest::Client,
}

impl Endpoint {
    /// The endpoint `{base_url}/{path}` of `config`, which must be of `kind`.
    pub(crate) fn new(
        config: &ProviderConfig,
        http: reqwest::Client,
        kind: ProviderKind,
        path: &str,
    ) -> Result<Self, ClientError> {
        if config.kind != kind {
            return Err(ClientError::config(
                "kind",
                format!(
                    "provider {:?} is not an {} provider",
                    config.name,
                    kind.as_str()
                ),
            ));
        }
        let mut url = format!("{}/{path}", config.effective_base_url());
        if !config.query.is_empty() {
            let mut parsed = reqwest::Url::parse(&url)
                .map_err(|e| ClientError::config("base_url", e.to_string()))?;
            parsed.query_pairs_mut().extend_pairs(&config.query);
            url = parsed.into();
        }
        Ok(Self {
            name: config.name.clone(),
            model: config.model.clone(),
            url,
            api_key: config.api_key.clone(),
            timeout: config.timeout_duration(),
            max_body: usize::try_from(config.max_response_bytes).unwrap_or(usize::MAX),
            http,
        })
    }

    /// The model a request asks for: its override, or the configured one.
    pub(crate) fn model<'a>(&'a self, request: &'a crate::types::ChatRequest) -> &'a str {
        request.model.as_deref().unwrap_or(&self.model)
    }

    /// A JSON `POST` of `body` to the endpoint with `headers`, and the API key (when one is
    /// configured) where `key_in` says.
    pub(crate) fn post(
        &self,
        body: &serde_json::Value,
        headers: &[(&'static str, &'static str)],
        key_in: KeyIn<'_>,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let mut http = self.http.post(&self.url);
        for &(name, value) in headers {
            http = http.header(name, value);
        }
        let mut http = http.json(body);
        if let Some(key) = &self.api_key {
            http =
                match key_in {
                    KeyIn::Bearer => http.bearer_auth(key.expose()),
                    KeyIn::Header(name) => {
                        let mut value = reqwest::header::HeaderValue::from_str(key.expose())
                            .map_err(|_| ProviderError::Request {
                                message: "the API key is not a valid header value".into(),
                            })?;
                        // Kept out of `Debug` and of HTTP/2 header compression tables.
                        value.set_sensitive(true);
                        http.header(name, value)
                    }
                };
        }
        Ok(http)
    }

    /// Sends `request` and returns the body of a success answer (see [`send`]).
    pub(crate) async fn complete(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, ProviderError> {
        send(request, self.api_key.as_ref(), self.timeout, self.max_body).await
    }

    /// Sends a streamed `request`: an error status becomes a classified error (with its
    /// `Retry-After`) before any event, a success's body is decoded by `decoder`
    /// ([`send_stream`], [`sse_stream`]).
    pub(crate) async fn stream<D: SseDecoder>(
        &self,
        request: reqwest::RequestBuilder,
        decoder: D,
    ) -> Result<ProviderEventStream, ProviderError> {
        let key = self.api_key.as_ref();
        let response = send_stream(request, key, self.timeout, self.max_body).await?;
        Ok(sse_stream(
            response,
            decoder,
            self.api_key.clone(),
            self.timeout,
            self.max_body,
        ))
    }
}

/// Where a request carries the API key.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KeyIn<'a> {
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// The key alone in the named header (marked sensitive).
    Header(&'a str),
}

/// Adds `extra` to the top level of a JSON request body.
pub(crate) fn merge_extra(
    body: &mut serde_json::Value,
    extra: &serde_json::Map<String, serde_json::Value>,
) {
    if let Some(object) = body.as_object_mut() {
        for (k, v) in extra {
            object.insert(k.clone(), v.clone());
        }
    }
}
