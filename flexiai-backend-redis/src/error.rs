//! The crate's error type and its mapping onto [`BackendError`].

use std::time::Duration;

use flexiai_backend::BackendError;
use redis::{ErrorKind, RedisError};

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

/// Whether a driver error means "wrong credentials or permissions".
pub(crate) fn is_auth_error(error: &RedisError) -> bool {
    if error.kind() == ErrorKind::AuthenticationFailed {
        return true;
    }
    let code_is_auth = error
        .code()
        .is_some_and(|code| matches!(code, "WRONGPASS" | "NOAUTH" | "NOPERM"));
    code_is_auth || {
        let text = error.to_string();
        text.contains("WRONGPASS") || text.contains("NOAUTH") || text.contains("NOPERM")
    }
}

/// Whether driver text describes a failed TLS handshake or certificate check.
fn is_tls_error(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    ["certificate", "unknownissuer", "handshake", "tls"]
        .iter()
        .any(|needle| lower.contains(needle))
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
    } else if is_tls_error(&message) {
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
