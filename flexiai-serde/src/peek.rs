//! Reads just the discriminating fields of an event, so that an unknown kind, event type or
//! schema version becomes a typed error instead of a generic parse failure.

use flexiai_events::{Event, EventType};
use serde::Deserialize;

use crate::{SCHEMA_VERSION, SerdeError};

#[derive(Deserialize)]
pub(crate) struct EventPeek {
    #[serde(rename = "__event_type__", default)]
    kind: Option<String>,
    #[serde(default)]
    event_type: Option<String>,
    #[serde(default)]
    schema_version: Option<u64>,
}

impl EventPeek {
    pub(crate) fn check(self) -> Result<(), SerdeError> {
        if let Some(found) = self.schema_version
            && found != u64::from(SCHEMA_VERSION)
        {
            return Err(SerdeError::UnknownSchemaVersion {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        let kind = self.kind.unwrap_or_default();
        if !Event::KINDS.contains(&kind.as_str()) {
            return Err(SerdeError::UnknownEventKind {
                kind: kind.chars().take(64).collect(),
            });
        }
        if kind == "CircuitBreakerEvent"
            && let Some(event_type) = self.event_type
            && event_type.parse::<EventType>().is_err()
        {
            return Err(SerdeError::UnknownEventType {
                event_type: event_type.chars().take(64).collect(),
            });
        }
        Ok(())
    }
}
