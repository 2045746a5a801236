use thiserror::Error;

/// Why a value could not be turned into one of this crate's types.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EventError {
    /// A worker id was empty, too long or contained control characters.
    #[error("invalid worker id: {reason}")]
    InvalidWorkerId {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A provider name was empty, too long or contained whitespace or control characters.
    #[error("invalid provider name: {reason}")]
    InvalidProviderName {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A timestamp string was not ISO-8601, or a number was outside the supported range.
    #[error("invalid timestamp {input:?}: expected ISO-8601 such as 2025-10-26T12:34:56.123456")]
    InvalidTimestamp {
        /// The rejected input, cut to 64 characters.
        input: String,
    },
    /// A state or event type name that this version does not know.
    #[error("unknown {kind} {value:?}")]
    UnknownName {
        /// Which enum was being parsed (`"circuit state"` or `"event type"`).
        kind: &'static str,
        /// The rejected name, cut to 64 characters.
        value: String,
    },
}

/// Cuts untrusted input to a length that is safe to put in an error message or a log line.
pub(crate) fn truncate_for_message(input: &str) -> String {
    input.chars().take(64).collect()
}
