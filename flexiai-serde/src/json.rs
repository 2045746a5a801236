use flexiai_events::{BreakerSnapshot, Event};

use crate::peek::EventPeek;
use crate::{Codec, Format, SerdeError};

/// The Python FlexiAI v0.5 wire format.
///
/// Events are objects with an `__event_type__` tag (`"CircuitBreakerEvent"` or
/// `"StateUpdateEvent"`), `provider_name`, `event_type` (`"opened"`, `"closed"`,
/// `"half_open"`, `"failure"`, `"success"`), `worker_id`, an offset-less ISO-8601 `timestamp`
/// and a `metadata` object; snapshots are the breaker's state dict. Fields Python does not
/// know are ignored by Python and kept by this crate.
///
/// ```
/// use flexiai_serde::{Codec, JsonCodec};
///
/// let python = br#"{"provider_name": "openai", "event_type": "opened",
///     "worker_id": "web-1:548012:1729945296123", "timestamp": "2025-10-26T12:34:56.123456",
///     "metadata": {"failure_count": 5, "success_count": 0},
///     "__event_type__": "CircuitBreakerEvent"}"#;
/// let event = JsonCodec.decode_event(python)?;
/// assert_eq!(event.provider_name(), "openai");
/// # Ok::<(), flexiai_serde::SerdeError>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonCodec;

impl Codec for JsonCodec {
    fn format(&self) -> Format {
        Format::Json
    }

    fn encode_event(&self, event: &Event) -> Result<Vec<u8>, SerdeError> {
        serde_json::to_vec(event).map_err(|e| SerdeError::encode(Format::Json, e))
    }

    fn decode_event(&self, bytes: &[u8]) -> Result<Event, SerdeError> {
        serde_json::from_slice::<EventPeek>(bytes)
            .map_err(|e| SerdeError::malformed(Format::Json, e))?
            .check()?;
        let event: Event =
            serde_json::from_slice(bytes).map_err(|e| SerdeError::malformed(Format::Json, e))?;
        event.validate()?;
        Ok(event)
    }

    fn encode_snapshot(&self, snapshot: &BreakerSnapshot) -> Result<Vec<u8>, SerdeError> {
        serde_json::to_vec(snapshot).map_err(|e| SerdeError::encode(Format::Json, e))
    }

    fn decode_snapshot(&self, bytes: &[u8]) -> Result<BreakerSnapshot, SerdeError> {
        serde_json::from_slice(bytes).map_err(|e| SerdeError::malformed(Format::Json, e))
    }
}
