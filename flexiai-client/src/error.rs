//! The crate's errors: [`ProviderError`] for one call to one provider, [`ClientError`] for
//! everything the client returns, and [`Attempt`], one entry of a failover's history.

use std::fmt;
use std::time::Duration;

use flexiai_breaker::{BreakerError, Rejected};
use flexiai_sync::SyncError;
use thiserror::Error;

/// Why one call to one provider failed, sorted by what it says about the provider.
///
/// Messages are the provider's own (its error body, cut to a few hundred bytes, with the
/// configured API key scrubbed out) or the transport's; they never contain the key.
/// See [`ErrorPolicy`](crate::ErrorPolicy) for which kinds count against the breaker and which
/// are retried.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// HTTP 429: the provider is shedding load.
    #[error("rate limited (HTTP {status}){}: {message}", fmt_retry_after(*retry_after))]
    RateLimited {
        /// The HTTP status (429).
        status: u16,
        /// The provider's `Retry-After` (or `retry-after-ms`), when it sent one.
        retry_after: Option<Duration>,
        /// The provider's message.
        message: String,
    },
    /// No complete answer within the provider's timeout (or HTTP 408).
    #[error("timed out after {} ms", elapsed.as_millis())]
    Timeout {
        /// How long the call was given.
        elapsed: Duration,
    },
    /// The provider could not be reached, or the connection broke mid-call.
    #[error("connection failed: {message}")]
    Connection {
        /// The transport's message.
        message: String,
    },
    /// HTTP 5xx (including Anthropic's 529 "overloaded").
    #[error("server error (HTTP {status}): {message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// HTTP 401 or 403: the key is missing, wrong or not allowed to do this.
    #[error("authentication failed (HTTP {status}): {message}")]
    Authentication {
        /// The HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// Any other HTTP 4xx: the request itself is wrong for this provider (bad parameter,
    /// unknown model, context too long...).
    #[error("invalid request (HTTP {status}): {message}")]
    InvalidRequest {
        /// The HTTP status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// A success status with a body that is not the expected JSON.
    #[error("invalid response: {message}")]
    InvalidResponse {
        /// What did not parse.
        message: String,
    },
    /// The provider sent an error event in the middle of a streamed answer (OpenAI-style
    /// `{"error": ...}` chunks, Anthropic `event: error`, e.g. `overloaded_error`).
    #[error("error event in the stream ({error_type}): {message}")]
    StreamError {
        /// The provider's error type (`overloaded_error`, `server_error`...).
        error_type: String,
        /// The provider's message.
        message: String,
    },
    /// The request could not be built or sent for a reason on this side (bad URL...); the
    /// provider never saw it.
    #[error("request not sent: {message}")]
    Request {
        /// What went wrong.
        message: String,
    },
}

fn fmt_retry_after(retry_after: Option<Duration>) -> String {
    retry_after.map_or_else(String::new, |d| {
        format!(", retry after {} ms", d.as_millis())
    })
}

impl ProviderError {
    /// A short stable name of the kind (`"rate_limited"`, `"timeout"`, ...), for metrics and
    /// logs.
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderError::RateLimited { .. } => "rate_limited",
            ProviderError::Timeout { .. } => "timeout",
            ProviderError::Connection { .. } => "connection",
            ProviderError::Server { .. } => "server_error",
            ProviderError::Authentication { .. } => "authentication",
            ProviderError::InvalidRequest { .. } => "invalid_request",
            ProviderError::InvalidResponse { .. } => "invalid_response",
            ProviderError::StreamError { .. } => "stream_error",
            ProviderError::Request { .. } => "request",
        }
    }

    /// The HTTP status, when the provider answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ProviderError::RateLimited { status, .. }
            | ProviderError::Server { status, .. }
            | ProviderError::Authentication { status, .. }
            | ProviderError::InvalidRequest { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The provider's `Retry-After`, for a rate limit that carried one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// What happened to one try of one provider during a failover.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AttemptError {
    /// The provider's circuit breaker refused the call; the provider was not called. This is
    /// also how a provider that asked (with `Retry-After`) not to be called for a while is
    /// skipped: its breaker is open, and `retry_after` is the time left.
    #[error("{0}")]
    Rejected(Rejected),
    /// The provider was called and failed.
    #[error("{0}")]
    Provider(ProviderError),
}

/// One try of one provider, as reported by [`ClientError::AllProvidersFailed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The provider's configured name.
    pub provider: String,
    /// Which try of this provider it was, from 1 (retries count up).
    pub attempt: u32,
    /// What went wrong.
    pub error: AttemptError,
    /// How long the try took (zero when the provider was skipped).
    pub elapsed: Duration,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (try {}, {} ms): {}",
            self.provider,
            self.attempt,
            self.elapsed.as_millis(),
            self.error
        )
    }
}

struct AttemptList<'a>(&'a [Attempt]);

impl fmt::Display for AttemptList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, attempt) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            attempt.fmt(f)?;
        }
        Ok(())
    }
}

/// Everything [`FlexiAI`](crate::FlexiAI) and its configuration can fail with.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// A configuration value is unusable; `field` names it as it is spelled in the file
    /// (`providers[1].priority`, `retry.multiplier`, `sync.state_ttl`...) or the environment
    /// variable that set it.
    #[error("invalid config `{field}`: {reason}")]
    InvalidConfig {
        /// The offending field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A configuration document could not be parsed.
    #[error("cannot parse config ({format}): {message}")]
    Parse {
        /// `"TOML"` or `"JSON"`.
        format: &'static str,
        /// The parser's complaint.
        message: String,
    },
    /// A configuration file could not be read.
    #[error("cannot read config file {path}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Every provider was tried (or skipped) and none answered; `attempts` lists each try in
    /// order, skipped providers included.
    #[error("all providers failed: {}", AttemptList(attempts))]
    AllProvidersFailed {
        /// Every try, in order.
        attempts: Vec<Attempt>,
    },
    /// A call aimed at one provider
    /// ([`chat_completion_on`](crate::FlexiAI::chat_completion_on)) failed.
    #[error("provider {provider} failed")]
    Provider {
        /// The provider's configured name.
        provider: String,
        /// Its error.
        #[source]
        source: ProviderError,
    },
    /// A call aimed at one provider was refused by its breaker (which a `Retry-After` may
    /// have opened).
    #[error("provider {provider} was not called: {reason}")]
    Unavailable {
        /// The provider's configured name.
        provider: String,
        /// Why it was skipped.
        reason: AttemptError,
    },
    /// A streamed answer broke off after its first event: an error event, a cut
    /// connection, a stall longer than the provider's timeout, or a body that ended before
    /// the end of the answer. The provider was charged with the failure (as the
    /// [`ErrorPolicy`](crate::ErrorPolicy) says) and the request was not retried elsewhere,
    /// since part of the answer was already delivered.
    #[error("the stream from {provider} ({model}) broke off")]
    Interrupted {
        /// The provider's configured name.
        provider: String,
        /// The model that was answering.
        model: String,
        /// What went wrong.
        #[source]
        source: ProviderError,
    },
    /// No provider has this name.
    #[error("no provider named {0:?}")]
    UnknownProvider(String),
    /// No provider serves this model (the request's `model`, or a provider-and-model pair
    /// asked for by [`chat_completion_on`](crate::FlexiAI::chat_completion_on)).
    #[error("no provider serves the model {0:?}")]
    UnknownModel(String),
    /// A circuit breaker could not be built.
    #[error(transparent)]
    Breaker(#[from] BreakerError),
    /// The sync manager could not be built or started.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
    /// [`close`](crate::FlexiAI::close) was called.
    #[error("the client is closed")]
    Closed,
}

impl ClientError {
    pub(crate) fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ClientError::InvalidConfig {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// For [`AllProvidersFailed`](Self::AllProvidersFailed), every try; empty otherwise.
    pub fn attempts(&self) -> &[Attempt] {
        match self {
            ClientError::AllProvidersFailed { attempts } => attempts,
            _ => &[],
        }
    }
}
