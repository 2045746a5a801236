use std::fmt;

use flexiai_events::{BreakerSnapshot, Event};

use crate::SerdeError;

/// A wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Format {
    /// Python-compatible JSON, readable in `redis-cli MONITOR`.
    #[default]
    Json,
    /// Framed MessagePack with named fields: smaller and faster to decode.
    MessagePack,
}

impl Format {
    /// Guesses the format of a payload from its first bytes, without parsing it.
    ///
    /// ```
    /// use flexiai_serde::Format;
    /// assert_eq!(Format::detect(b"  {\"a\":1}"), Some(Format::Json));
    /// assert_eq!(Format::detect(b"\xc1\x01\x80"), Some(Format::MessagePack));
    /// assert_eq!(Format::detect(b"hello"), None);
    /// ```
    pub fn detect(bytes: &[u8]) -> Option<Format> {
        match bytes.first()? {
            &crate::msgpack::FRAME_MARKER => Some(Format::MessagePack),
            _ => match bytes.iter().find(|b| !b.is_ascii_whitespace())? {
                b'{' => Some(Format::Json),
                _ => None,
            },
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Json => "JSON",
            Format::MessagePack => "MessagePack",
        })
    }
}

/// Encodes and decodes events and snapshots in one [`Format`].
///
/// Codecs are the raw layer: they do not check sizes. Read untrusted input through
/// [`StateSerializer`](crate::StateSerializer), which does.
pub trait Codec: Send + Sync + fmt::Debug {
    /// The format this codec writes.
    fn format(&self) -> Format;
    /// Encodes an event.
    fn encode_event(&self, event: &Event) -> Result<Vec<u8>, SerdeError>;
    /// Decodes an event, checking its schema version, kind and event type.
    fn decode_event(&self, bytes: &[u8]) -> Result<Event, SerdeError>;
    /// Encodes a stored snapshot.
    fn encode_snapshot(&self, snapshot: &BreakerSnapshot) -> Result<Vec<u8>, SerdeError>;
    /// Decodes a stored snapshot.
    fn decode_snapshot(&self, bytes: &[u8]) -> Result<BreakerSnapshot, SerdeError>;
}
