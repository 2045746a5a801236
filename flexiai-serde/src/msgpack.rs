use flexiai_events::{BreakerSnapshot, Event};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::peek::EventPeek;
use crate::{Codec, Format, SCHEMA_VERSION, SerdeError};

/// First byte of every MessagePack frame: 0xc1 is the one byte the MessagePack spec never
/// uses, so a frame can't be mistaken for bare MessagePack or for JSON.
pub(crate) const FRAME_MARKER: u8 = 0xc1;

/// Nesting deeper than this is rejected before it can exhaust the stack.
const MAX_DEPTH: usize = 64;

/// Framed MessagePack: `0xc1`, the [`SCHEMA_VERSION`] byte, then the value as a map with
/// field names (rmp-serde's named encoding), so fields can be added without breaking older
/// readers.
///
/// ```
/// use flexiai_events::{BreakerSnapshot, CircuitState};
/// use flexiai_serde::{Codec, MessagePackCodec};
///
/// let snapshot = BreakerSnapshot::new(CircuitState::Open, 9);
/// let bytes = MessagePackCodec.encode_snapshot(&snapshot)?;
/// assert_eq!(&bytes[..2], &[0xc1, flexiai_serde::SCHEMA_VERSION]);
/// assert_eq!(MessagePackCodec.decode_snapshot(&bytes)?, snapshot);
/// # Ok::<(), flexiai_serde::SerdeError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct MessagePackCodec;

impl MessagePackCodec {
    fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, SerdeError> {
        let mut out = vec![FRAME_MARKER, SCHEMA_VERSION];
        rmp_serde::encode::write_named(&mut out, value)
            .map_err(|e| SerdeError::encode(Format::MessagePack, e))?;
        Ok(out)
    }

    fn body(bytes: &[u8]) -> Result<&[u8], SerdeError> {
        match bytes {
            [] => Err(SerdeError::Empty),
            [FRAME_MARKER, version, body @ ..] => {
                if *version == SCHEMA_VERSION {
                    Ok(body)
                } else {
                    Err(SerdeError::UnknownSchemaVersion {
                        found: u64::from(*version),
                        supported: SCHEMA_VERSION,
                    })
                }
            }
            [FRAME_MARKER] => Err(SerdeError::malformed(
                Format::MessagePack,
                "truncated frame header",
            )),
            [first, ..] => Err(SerdeError::UnknownFormat { first_byte: *first }),
        }
    }

    fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, SerdeError> {
        let mut de = rmp_serde::Deserializer::from_read_ref(body);
        de.set_max_depth(MAX_DEPTH);
        T::deserialize(&mut de).map_err(|e| SerdeError::malformed(Format::MessagePack, e))
    }
}

impl Codec for MessagePackCodec {
    fn format(&self) -> Format {
        Format::MessagePack
    }

    fn encode_event(&self, event: &Event) -> Result<Vec<u8>, SerdeError> {
        Self::encode(event)
    }

    fn decode_event(&self, bytes: &[u8]) -> Result<Event, SerdeError> {
        let body = Self::body(bytes)?;
        Self::decode::<EventPeek>(body)?.check()?;
        let event: Event = Self::decode(body)?;
        event.validate()?;
        Ok(event)
    }

    fn encode_snapshot(&self, snapshot: &BreakerSnapshot) -> Result<Vec<u8>, SerdeError> {
        Self::encode(snapshot)
    }

    fn decode_snapshot(&self, bytes: &[u8]) -> Result<BreakerSnapshot, SerdeError> {
        Self::decode(Self::body(bytes)?)
    }
}
