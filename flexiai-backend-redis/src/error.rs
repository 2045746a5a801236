//! The crate's error type and its mapping onto [`BackendError`].

use std::time::Duration;

use flexiai_backend::BackendError;
use redis::{ErrorKind, RedisError, ServerErrorKind};

/// Why building or talking to a [`RedisBackend`](crate::RedisBackend) failed.
///
/// Messages never contain the password: text that comes from Redis or the driver is
/// redacted before it is stored here. Errors that came from the driver keep its
/// [`RedisError`] as their `source()` (and in their `source` field), so callers can downcast
/// to it, unless the `Display` or `Debug` of that error or of anything in its own source
/// chain would show the password or a URL's credentials: then `source` is `None` and only the
/// redacted message remains.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RedisBackendError {
    /// A configuration field is unusable; nothing was connected.
    #[error("invalid Redis configuration field `{field}`: {reason}")]
    InvalidConfig {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Redis refused the credentials or the user's permissions.
    #[error("Redis authentication failed: {message}")]
    Authentication {
        /// The server's complaint.
        message: String,
        /// The driver's error, when it shows no secret.
        #[source]
        source: Option<RedisError>,
    },
    /// Redis could not be reached, or the connection broke.
    #[error("Redis unavailable: {message}")]
    Unavailable {
        /// What went wrong.
        message: String,
        /// The driver's error, when it shows no secret.
        #[source]
        source: Option<RedisError>,
    },
    /// The TLS handshake failed: most often the server's certificate is not signed by a
    /// trusted CA (see [`RedisConfig::ca_certificate`](crate::RedisConfig::ca_certificate)) or
    /// does not name the host.
    #[error(
        "Redis TLS handshake failed (is the server certificate signed by a trusted CA?): {message}"
    )]
    Tls {
        /// The TLS library's complaint.
        message: String,
        /// The driver's error, when it shows no secret.
        #[source]
        source: Option<RedisError>,
    },
    /// An operation did not finish within its bound.
    #[error("Redis {operation} timed out after {timeout:?}")]
    Timeout {
        /// The operation.
        operation: &'static str,
        /// The bound.
        timeout: Duration,
    },
    /// Any other error reported by Redis or the driver.
    #[error("Redis error: {message}")]
    Redis {
        /// What went wrong.
        message: String,
        /// The driver's error, when it shows no secret.
        #[source]
        source: Option<RedisError>,
    },
}

impl From<RedisBackendError> for BackendError {
    fn from(error: RedisBackendError) -> Self {
        match error {
            RedisBackendError::InvalidConfig { field, reason } => {
                BackendError::InvalidArgument { field, reason }
            }
            RedisBackendError::Authentication { message, .. } => {
                BackendError::Authentication { message }
            }
            RedisBackendError::Unavailable { message, .. } => BackendError::Unavailable { message },
            error @ RedisBackendError::Tls { .. } => BackendError::Unavailable {
                message: error.to_string(),
            },
            RedisBackendError::Timeout { operation, timeout } => {
                BackendError::Timeout { operation, timeout }
            }
            RedisBackendError::Redis { message, .. } => BackendError::Other { message },
        }
    }
}

pub(crate) use flexiai_backend::redact;

impl RedisBackendError {
    /// An `Unavailable` error of this crate's own, with no driver error behind it.
    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable {
            message: message.into(),
            source: None,
        }
    }

    /// Redacts `secret` from the message and drops the driver error if it would show it.
    pub(crate) fn scrub(&mut self, secret: Option<&str>) {
        if let Self::Unavailable { message, source }
        | Self::Redis { message, source }
        | Self::Authentication { message, source }
        | Self::Tls { message, source } = self
        {
            *message = redact(message, secret);
            if source.as_ref().is_some_and(|e| shows_secret(e, secret)) {
                *source = None;
            }
        }
    }
}

/// Whether the `Display` or `Debug` of `error`, or of anything in its source chain, contains
/// `secret` (also as `Debug` escapes it) or a URL's credentials.
fn shows_secret(error: &RedisError, secret: Option<&str>) -> bool {
    let escaped = secret.map(|s| format!("{s:?}").trim_matches('"').to_owned());
    let leaks = |text: String| {
        redact(&text, secret) != text
            || escaped
                .as_deref()
                .is_some_and(|e| !e.is_empty() && text.contains(e))
    };
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = next {
        if leaks(current.to_string()) || leaks(format!("{current:?}")) {
            return true;
        }
        next = current.source();
    }
    false
}

/// Whether a driver error means "wrong credentials or permissions": the driver's
/// [`ErrorKind::AuthenticationFailed`], the server's `NOPERM` kind, or a `WRONGPASS` /
/// `NOAUTH` error code (codes the driver has no kind for). The message text is not read.
pub(crate) fn is_auth_error(error: &RedisError) -> bool {
    matches!(
        error.kind(),
        ErrorKind::AuthenticationFailed | ErrorKind::Server(ServerErrorKind::NoPerm)
    ) || error
        .code()
        .is_some_and(|code| matches!(code, "WRONGPASS" | "NOAUTH" | "NOPERM"))
}

/// Whether a driver error is a failed TLS handshake or certificate check: some error in its
/// `source()` chain, or inside an `io::Error` of it (where tokio-rustls puts the handshake's
/// error), is a `rustls::Error` or an invalid server name. The message text is not read.
#[cfg(feature = "tls")]
fn is_tls_error(error: &RedisError) -> bool {
    fn is_tls(error: &(dyn std::error::Error + 'static)) -> bool {
        error.is::<rustls::Error>() || error.is::<rustls::pki_types::InvalidDnsNameError>()
    }
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = next {
        if is_tls(current) {
            return true;
        }
        // The driver keeps a wrapped error as an `Arc<dyn Error>`, and `io::Error::source`
        // skips the error it wraps (its `Display` shows it), so look inside both explicitly.
        let io = current.downcast_ref::<std::io::Error>().or_else(|| {
            current
                .downcast_ref::<std::sync::Arc<dyn std::error::Error + Send + Sync>>()
                .and_then(|shared| shared.downcast_ref::<std::io::Error>())
        });
        if let Some(inner) = io.and_then(std::io::Error::get_ref)
            && is_tls(inner)
        {
            return true;
        }
        next = current.source();
    }
    false
}

#[cfg(not(feature = "tls"))]
fn is_tls_error(_error: &RedisError) -> bool {
    false
}

/// Classifies a driver error, redacting `secret` from its message.
pub(crate) fn classify(
    error: &RedisError,
    operation: &'static str,
    timeout: Duration,
    secret: Option<&str>,
) -> RedisBackendError {
    let message = error.to_string();
    let source = Some(error.clone());
    let mut classified = if is_auth_error(error) {
        RedisBackendError::Authentication { message, source }
    } else if is_tls_error(error) {
        RedisBackendError::Tls { message, source }
    } else if error.is_timeout() {
        RedisBackendError::Timeout { operation, timeout }
    } else if error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_unrecoverable_error()
    {
        RedisBackendError::Unavailable { message, source }
    } else {
        RedisBackendError::Redis { message, source }
    };
    classified.scrub(secret);
    classified
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_errors_are_recognised_by_kind_and_code_not_text() {
        let failed = RedisError::from((ErrorKind::AuthenticationFailed, "auth"));
        assert!(is_auth_error(&failed));
        let no_perm = RedisError::from((ErrorKind::Server(ServerErrorKind::NoPerm), "noperm"));
        assert!(is_auth_error(&no_perm));
        // A message that merely mentions a code is not an authentication failure.
        let chatter = RedisError::from((ErrorKind::Client, "client", "WRONGPASS".to_owned()));
        assert!(!is_auth_error(&chatter));
        assert!(matches!(
            classify(&failed, "ping", Duration::from_secs(1), None),
            RedisBackendError::Authentication { .. }
        ));
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_errors_are_recognised_through_the_source_chain_not_text() {
        let handshake = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let error = RedisError::from(handshake);
        assert!(is_tls_error(&error));
        assert!(matches!(
            classify(&error, "ping", Duration::from_secs(1), None),
            RedisBackendError::Tls { .. }
        ));
        // Text that talks about certificates, without a TLS error inside, is not one.
        let chatter = RedisError::from(std::io::Error::other("certificate handshake tls"));
        assert!(!is_tls_error(&chatter));
        assert!(matches!(
            classify(&chatter, "ping", Duration::from_secs(1), None),
            RedisBackendError::Unavailable { .. }
        ));
    }

    /// Every `Display` and `Debug` along `error`'s `source()` chain.
    fn chain_texts(error: &(dyn std::error::Error + 'static)) -> Vec<String> {
        let mut texts = Vec::new();
        let mut next = Some(error);
        while let Some(current) = next {
            texts.push(current.to_string());
            texts.push(format!("{current:?}"));
            next = current.source();
        }
        texts
    }

    #[test]
    fn a_driver_error_from_a_url_with_a_password_is_the_source_and_shows_no_password() {
        const PASSWORD: &str = "url-password-8d1f";
        // The driver rejects the database path after parsing the credentials.
        let driver = redis::Client::open(format!("redis://user:{PASSWORD}@localhost/not-a-db"))
            .err()
            .unwrap();
        let error = classify(&driver, "connect", Duration::from_secs(1), Some(PASSWORD));
        let source = std::error::Error::source(&error).unwrap();
        let redis = source.downcast_ref::<RedisError>().unwrap();
        assert_eq!(redis.kind(), ErrorKind::InvalidClientConfig);
        let texts = chain_texts(&error);
        assert!(texts.len() >= 4, "{texts:?}");
        for text in texts {
            assert!(!text.contains(PASSWORD), "the password leaked into: {text}");
        }
    }

    /// Fails without `scrub`'s check: the driver's own text would carry the secret.
    #[test]
    fn a_driver_error_that_would_show_a_secret_is_not_kept_as_the_source() {
        const PASSWORD: &str = "pa\"ss-3e9a";
        for detail in [
            format!("while connecting to redis://user:{PASSWORD}@h:6379"),
            format!("AUTH {PASSWORD} rejected"),
            "to rediss://other:credentials@h:6380 failed".to_owned(),
        ] {
            let driver = RedisError::from((ErrorKind::Io, "connect", detail));
            let error = classify(&driver, "connect", Duration::from_secs(1), Some(PASSWORD));
            assert!(std::error::Error::source(&error).is_none(), "{error:?}");
            for text in chain_texts(&error) {
                assert!(!text.contains(PASSWORD), "the password leaked into: {text}");
                assert!(
                    !text.contains("credentials"),
                    "credentials leaked into: {text}"
                );
            }
        }
        // Debug escapes a quote; the escaped form counts as the secret too.
        let driver = RedisError::from((ErrorKind::Io, "connect", format!("{PASSWORD:?}")));
        assert!(shows_secret(&driver, Some(PASSWORD)));
        let clean = RedisError::from((ErrorKind::Io, "connect", "refused".to_owned()));
        assert!(!shows_secret(&clean, Some(PASSWORD)));
    }

    #[test]
    fn maps_onto_backend_error() {
        let err: BackendError = RedisBackendError::InvalidConfig {
            field: "pool_size",
            reason: "zero".into(),
        }
        .into();
        assert!(matches!(
            err,
            BackendError::InvalidArgument {
                field: "pool_size",
                ..
            }
        ));
        let err: BackendError = RedisBackendError::Authentication {
            message: "WRONGPASS".into(),
            source: None,
        }
        .into();
        assert!(matches!(err, BackendError::Authentication { .. }));
    }
}
