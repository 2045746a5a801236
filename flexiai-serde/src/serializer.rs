use flexiai_events::{BreakerSnapshot, Event};

use crate::{Codec, Format, JsonCodec, MessagePackCodec, SerdeError};

/// Bounds on what a reader accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Payloads longer than this many bytes are rejected before parsing. Default 64 KiB,
    /// far above any real event (a few hundred bytes).
    pub max_bytes: usize,
}

impl DecodeLimits {
    /// The default limit, 64 KiB.
    pub const DEFAULT_MAX_BYTES: usize = 64 * 1024;
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_bytes: Self::DEFAULT_MAX_BYTES,
        }
    }
}

/// The seed's `StateSerializer`: writes in one format, reads both.
///
/// Writing uses the [`Format`] it was built with. Reading detects the format from the first
/// bytes, so a fleet can switch formats one worker at a time. Reading also enforces
/// [`DecodeLimits`], and writing refuses to produce a payload that readers with the same
/// limits would reject.
///
/// ```
/// use flexiai_events::{BreakerSnapshot, CircuitState};
/// use flexiai_serde::{DecodeLimits, Format, SerdeError, StateSerializer};
///
/// let serializer = StateSerializer::new(Format::Json).with_limits(DecodeLimits { max_bytes: 16 });
/// let err = serializer.deserialize_state(&[b' '; 17]).unwrap_err();
/// assert!(matches!(err, SerdeError::TooLarge { size: 17, limit: 16 }));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct StateSerializer {
    format: Format,
    limits: DecodeLimits,
}

impl StateSerializer {
    /// A serializer writing `format` with default limits.
    pub fn new(format: Format) -> Self {
        Self {
            format,
            limits: DecodeLimits::default(),
        }
    }

    /// Replaces the limits.
    #[must_use]
    pub fn with_limits(mut self, limits: DecodeLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The format this serializer writes.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The limits this serializer enforces.
    pub fn limits(&self) -> DecodeLimits {
        self.limits
    }

    /// Encodes a breaker snapshot for the state store.
    pub fn serialize_state(&self, snapshot: &BreakerSnapshot) -> Result<Vec<u8>, SerdeError> {
        self.checked(codec(self.format).encode_snapshot(snapshot)?)
    }

    /// Decodes a stored breaker snapshot, in either format.
    pub fn deserialize_state(&self, bytes: &[u8]) -> Result<BreakerSnapshot, SerdeError> {
        codec(self.detect(bytes)?).decode_snapshot(bytes)
    }

    /// Encodes an event for the channel.
    pub fn serialize_event(&self, event: &Event) -> Result<Vec<u8>, SerdeError> {
        self.checked(codec(self.format).encode_event(event)?)
    }

    /// Decodes an event from the channel, in either format.
    pub fn deserialize_event(&self, bytes: &[u8]) -> Result<Event, SerdeError> {
        codec(self.detect(bytes)?).decode_event(bytes)
    }

    fn detect(&self, bytes: &[u8]) -> Result<Format, SerdeError> {
        if bytes.len() > self.limits.max_bytes {
            return Err(SerdeError::TooLarge {
                size: bytes.len(),
                limit: self.limits.max_bytes,
            });
        }
        match bytes.first() {
            None => Err(SerdeError::Empty),
            Some(&first_byte) => {
                Format::detect(bytes).ok_or(SerdeError::UnknownFormat { first_byte })
            }
        }
    }

    fn checked(&self, bytes: Vec<u8>) -> Result<Vec<u8>, SerdeError> {
        if bytes.len() > self.limits.max_bytes {
            return Err(SerdeError::Encode {
                format: self.format,
                message: format!(
                    "{} bytes exceeds the decode limit of {} bytes",
                    bytes.len(),
                    self.limits.max_bytes
                ),
            });
        }
        Ok(bytes)
    }
}

fn codec(format: Format) -> &'static dyn Codec {
    match format {
        Format::Json => &JsonCodec,
        Format::MessagePack => &MessagePackCodec,
    }
}
