//! How flexiai-rs events and snapshots become bytes, and how untrusted bytes become them again.
//!
//! Two [`Codec`]s are provided. [`JsonCodec`] writes exactly the shape the Python FlexiAI v0.5
//! writes (an `__event_type__` tag, lowercase enum names, offset-less ISO-8601 timestamps), so
//! Rust and Python workers can share one channel during a migration. [`MessagePackCodec`] is the
//! compact one: a two-byte frame header (a marker byte MessagePack never uses, then the
//! [`SCHEMA_VERSION`]) followed by a named-field map, so fields can be added without breaking
//! older readers.
//!
//! Most code wants [`StateSerializer`]: it writes with the codec you pick, and when reading it
//! detects the format, rejects payloads over the size limit before parsing, and turns unknown
//! schema versions, unknown event types and malformed input into a typed [`SerdeError`]. It
//! never panics, whatever the input.
//!
//! With an [`EventAuth`] ([`StateSerializer::with_auth`]), every payload written is wrapped
//! in a signed frame (HMAC-SHA256 over the payload and the channel or key it is meant for)
//! and every payload read must be one; see [`EventAuth`] for the layout. Without one nothing
//! changes: the JSON stays exactly Python's.
//!
//! ```
//! use flexiai_events::{CircuitBreakerEvent, CircuitState, Event, WorkerId};
//! use flexiai_serde::{Format, StateSerializer};
//!
//! let worker = WorkerId::new("web-1:42:1730000000000")?;
//! let event = Event::from(CircuitBreakerEvent::transition("openai", worker, CircuitState::Open, 3));
//!
//! let msgpack = StateSerializer::new(Format::MessagePack);
//! let bytes = msgpack.serialize_event(&event)?;
//!
//! // Any serializer reads either format.
//! let back = StateSerializer::default().deserialize_event(&bytes)?;
//! assert_eq!(back, event);
//! assert!(StateSerializer::default().deserialize_event(b"\x00garbage").is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod auth;
mod codec;
mod error;
mod json;
mod msgpack;
mod peek;
mod serializer;

pub use auth::{
    EventAuth, KEY_ID_LEN, MAC_LEN, MacKey, SIGNED_FRAME_MARKER, SIGNED_FRAME_VERSION,
    SIGNED_HEADER_LEN, is_signed_frame,
};
pub use codec::{Codec, Format};
pub use error::SerdeError;
pub use json::JsonCodec;
pub use msgpack::MessagePackCodec;
pub use serializer::{DecodeLimits, StateSerializer};

/// The MessagePack frame's schema version. Readers reject frames with any other version.
///
/// The JSON format is the Python-compatible one and is frozen at version 1; a JSON payload may
/// state its version in a top-level `schema_version` field, and anything but 1 is rejected.
pub const SCHEMA_VERSION: u8 = 1;
