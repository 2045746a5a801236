use flexiai_events::EventError;
use thiserror::Error;

use crate::Format;

/// Why bytes could not be decoded, or a value could not be encoded.
///
/// Every variant's message is safe to log: untrusted input is quoted at most 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SerdeError {
    /// The payload is larger than the configured limit; it was not parsed.
    #[error("payload of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The payload's size.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The payload is empty.
    #[error("empty payload")]
    Empty,
    /// The payload is neither JSON nor a framed MessagePack message.
    #[error("unrecognised payload format (first byte {first_byte:#04x})")]
    UnknownFormat {
        /// The payload's first byte.
        first_byte: u8,
    },
    /// The payload declares a schema version this reader does not know.
    #[error("unsupported schema version {found} (this reader supports {supported})")]
    UnknownSchemaVersion {
        /// The version found in the payload.
        found: u64,
        /// The version this reader supports.
        supported: u8,
    },
    /// `__event_type__` is missing or names no known message kind.
    #[error("unknown message kind {kind:?} (expected CircuitBreakerEvent or StateUpdateEvent)")]
    UnknownEventKind {
        /// The kind found, cut to 64 characters; empty when the tag was missing.
        kind: String,
    },
    /// A circuit breaker event's `event_type` is not one this reader knows.
    #[error("unknown event type {event_type:?}")]
    UnknownEventType {
        /// The event type found, cut to 64 characters.
        event_type: String,
    },
    /// The payload is syntactically or structurally invalid.
    #[error("malformed {format} payload: {message}")]
    Malformed {
        /// The format it claimed to be.
        format: Format,
        /// The parser's complaint, cut to 200 characters.
        message: String,
    },
    /// The payload parsed but a value in it is unusable (e.g. an empty provider name).
    #[error("invalid payload: {0}")]
    Invalid(#[from] EventError),
    /// Event authentication is required and the payload is not a signed frame.
    #[error("unsigned payload rejected: event authentication is required")]
    Unsigned,
    /// The payload is a signed frame but no event key is configured to check it.
    #[error("signed payload rejected: no event key is configured")]
    UnexpectedSignature,
    /// A signed frame's header is cut short or inconsistent.
    #[error("malformed signed frame: {0}")]
    MalformedFrame(&'static str),
    /// A signed frame's MAC does not match its content and context: forged, corrupted, or
    /// signed for another channel or key.
    #[error("signature check failed (key {key_id})")]
    BadSignature {
        /// The id of the key the frame named (one this reader holds).
        key_id: String,
    },
    /// A signed frame names a key this reader does not hold.
    #[error("signed with unknown key {key_id:?}")]
    UnknownKeyId {
        /// The key id found, non-alphanumeric bytes replaced by `?`.
        key_id: String,
    },
    /// A signed frame names the previous key after its grace period ended.
    #[error("signed with key {key_id}, whose grace period has ended")]
    ExpiredKey {
        /// The previous key's id.
        key_id: String,
    },
    /// An event key is unusable (too short, too long). Never contains the key.
    #[error("invalid event key: {reason}")]
    InvalidKey {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A value could not be encoded.
    #[error("cannot encode as {format}: {message}")]
    Encode {
        /// The target format.
        format: Format,
        /// The encoder's complaint.
        message: String,
    },
}

impl SerdeError {
    /// A short, stable label for metrics, e.g. `"too_large"`.
    pub fn reason(&self) -> &'static str {
        match self {
            SerdeError::TooLarge { .. } => "too_large",
            SerdeError::Empty => "empty",
            SerdeError::UnknownFormat { .. } => "unknown_format",
            SerdeError::UnknownSchemaVersion { .. } => "unknown_schema_version",
            SerdeError::UnknownEventKind { .. } => "unknown_event_kind",
            SerdeError::UnknownEventType { .. } => "unknown_event_type",
            SerdeError::Malformed { .. } => "malformed",
            SerdeError::Invalid(_) => "invalid",
            SerdeError::Encode { .. } => "encode",
            SerdeError::Unsigned => "unsigned",
            SerdeError::UnexpectedSignature => "unexpected_signature",
            SerdeError::MalformedFrame(_) => "malformed_frame",
            SerdeError::BadSignature { .. } => "bad_signature",
            SerdeError::UnknownKeyId { .. } => "unknown_key_id",
            SerdeError::ExpiredKey { .. } => "expired_key",
            SerdeError::InvalidKey { .. } => "invalid_key",
        }
    }

    /// Whether the payload was refused by event authentication (unsigned, forged, signed with
    /// an unknown or expired key, or a truncated signed frame) rather than for its content.
    pub fn is_authentication(&self) -> bool {
        matches!(
            self,
            SerdeError::Unsigned
                | SerdeError::UnexpectedSignature
                | SerdeError::MalformedFrame(_)
                | SerdeError::BadSignature { .. }
                | SerdeError::UnknownKeyId { .. }
                | SerdeError::ExpiredKey { .. }
        )
    }

    pub(crate) fn malformed(format: Format, error: impl std::fmt::Display) -> Self {
        SerdeError::Malformed {
            format,
            message: error.to_string().chars().take(200).collect(),
        }
    }

    pub(crate) fn encode(format: Format, error: impl std::fmt::Display) -> Self {
        SerdeError::Encode {
            format,
            message: error.to_string(),
        }
    }
}
