//! The crate's error type and its mapping onto [`BackendError`].

use std::time::Duration;

use flexiai_backend::BackendError;
use redis::{ErrorKind, RedisError, ServerErrorKind};

/// Why building or talking to a [`RedisBackend`](crate::RedisBackend) failed.
///
/// Messages never contain the password: text that comes from Redis or the driver is
/// redacted before it is stored here.
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
    },
    /// Redis could not be reached, or the connection broke.
    #[error("Redis unavailable: {message}")]
    Unavailable {
        /// What went wrong.
        message: String,
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
    },
}

impl From<RedisBackendError> for BackendError {
    fn from(error: RedisBackendError) -> Self {
        match error {
            RedisBackendError::InvalidConfig { field, reason } => {
                BackendError::InvalidArgument { field, reason }
            }
            RedisBackendError::Authentication { message } => {
                BackendError::Authentication { message }
            }
            RedisBackendError::Unavailable { message } => BackendError::Unavailable { message },
            error @ RedisBackendError::Tls { .. } => BackendError::Unavailable {
                message: error.to_string(),
            },
            RedisBackendError::Timeout { operation, timeout } => {
                BackendError::Timeout { operation, timeout }
            }
            RedisBackendError::Redis { message } => BackendError::Other { message },
        }
    }
}

pub(crate) use flexiai_backend::redact;

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
    let message = redact(&error.to_string(), secret);
    if is_auth_error(error) {
        RedisBackendError::Authentication { message }
    } else if is_tls_error(error) {
        RedisBackendError::Tls { message }
    } else if error.is_timeout() {
        RedisBackendError::Timeout { operation, timeout }
    } else if error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_unrecoverable_error()
    {
        RedisBackendError::Unavailable { message }
    } else {
        RedisBackendError::Redis { message }
    }
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
        }
        .into();
        assert!(matches!(err, BackendError::Authentication { .. }));
    }
}
