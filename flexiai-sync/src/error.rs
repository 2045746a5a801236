use flexiai_backend::BackendError;
use thiserror::Error;

/// Why a sync manager could not be built, configured or operated.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum SyncError {
    /// A configuration value is unusable; `field` names it as it appears in the config file
    /// (e.g. `redis.port`) or the environment variable that set it.
    #[error("invalid sync config `{field}`: {reason}")]
    InvalidConfig {
        /// The offending field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A configuration document could not be parsed.
    #[error("cannot parse sync config ({format}): {message}")]
    Parse {
        /// `"TOML"` or `"JSON"`.
        format: &'static str,
        /// The parser's complaint.
        message: String,
    },
    /// A breaker with this name is already registered.
    #[error("a circuit breaker named {0:?} is already registered")]
    DuplicateBreaker(String),
    /// `start` was called on a running manager, or an operation needs a running one.
    #[error("sync manager is {0}")]
    Lifecycle(&'static str),
    /// An operator override kept losing the compare-and-set to workers writing newer versions.
    #[error("the fleet kept writing newer versions of {provider:?}; try again")]
    Contended {
        /// The provider being overridden.
        provider: String,
    },
    /// The backend failed an explicit request (background work never surfaces errors this
    /// way: it degrades instead).
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl SyncError {
    pub(crate) fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        SyncError::InvalidConfig {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
