use std::time::Duration;

use flexiai_serde::SerdeError;
use thiserror::Error;

/// Why a backend operation failed.
///
/// Messages never include credentials: implementations redact connection strings before
/// building one of these.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum BackendError {
    /// [`close`](crate::SyncBackend::close) was called; the backend does nothing any more.
    #[error("backend is closed")]
    Closed,
    /// The store could not be reached (connection refused or dropped, pool exhausted, ...).
    #[error("backend unavailable: {message}")]
    Unavailable {
        /// What went wrong.
        message: String,
    },
    /// The operation did not complete within the configured bound.
    #[error("{operation} timed out after {timeout:?}")]
    Timeout {
        /// The operation, e.g. `"get_state"`.
        operation: &'static str,
        /// The bound that was exceeded.
        timeout: Duration,
    },
    /// The store rejected our credentials or permissions.
    #[error("authentication failed: {message}")]
    Authentication {
        /// The store's complaint.
        message: String,
    },
    /// Stored or received bytes could not be decoded, or a value could not be encoded.
    #[error(transparent)]
    Codec(#[from] SerdeError),
    /// An argument was unusable (an empty provider name, a zero TTL, ...); nothing was changed.
    #[error("invalid {field}: {reason}")]
    InvalidArgument {
        /// The argument's name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// Any other failure reported by the store.
    #[error("backend error: {message}")]
    Other {
        /// What went wrong.
        message: String,
    },
}

impl BackendError {
    /// Whether retrying later may succeed: the store was unreachable or slow, as opposed to
    /// the request being wrong or the backend closed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            BackendError::Unavailable { .. }
                | BackendError::Timeout { .. }
                | BackendError::Other { .. }
        )
    }
}
