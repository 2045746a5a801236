use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::truncate_for_message;
use crate::{
    BreakerSnapshot, CircuitState, EventError, Timestamp, WorkerId, validate_provider_name,
};

/// What a [`CircuitBreakerEvent`] reports.
///
/// The three transition types are the ones the Python original acts on; `failure` and
/// `success` carry outcome counts that let a fleet count failures together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventType {
    /// The breaker opened (or was forced open).
    Opened,
    /// The breaker closed (or was disabled).
    Closed,
    /// The breaker started admitting trial calls.
    HalfOpen,
    /// Failures were recorded.
    Failure,
    /// Successes were recorded.
    Success,
}

impl EventType {
    /// All event types, in declaration order.
    pub const ALL: [EventType; 5] = [
        EventType::Opened,
        EventType::Closed,
        EventType::HalfOpen,
        EventType::Failure,
        EventType::Success,
    ];

    /// The wire name, e.g. `"half_open"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventType::Opened => "opened",
            EventType::Closed => "closed",
            EventType::HalfOpen => "half_open",
            EventType::Failure => "failure",
            EventType::Success => "success",
        }
    }

    /// The event type that announces a transition into `state`.
    ///
    /// The manual overrides map onto the nearest classic type (`forced_open` is announced as
    /// `opened`, `disabled` as `closed`) so Python workers do the closest thing; Rust workers read
    /// the exact state from the metadata.
    pub const fn for_transition_to(state: CircuitState) -> Self {
        match state {
            CircuitState::Open | CircuitState::ForcedOpen => EventType::Opened,
            CircuitState::Closed | CircuitState::Disabled => EventType::Closed,
            CircuitState::HalfOpen => EventType::HalfOpen,
        }
    }

    /// Whether this type announces a state transition.
    pub const fn is_transition(self) -> bool {
        matches!(
            self,
            EventType::Opened | EventType::Closed | EventType::HalfOpen
        )
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = EventError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| EventError::UnknownName {
                kind: "event type",
                value: truncate_for_message(s),
            })
    }
}

/// Typed view of an event's `metadata` object.
///
/// Python sends `failure_count` and `success_count`; flexiai-rs adds the rest. Every field is
/// optional on the wire, and unknown keys are kept in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// The breaker's failure count after the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_count: Option<u64>,
    /// The breaker's success count after the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_count: Option<u64>,
    /// For transitions: the exact new state (distinguishes `forced_open` from `open`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<CircuitState>,
    /// For transitions: the version the transition created. For outcome events: the version
    /// the outcomes were recorded under (receivers count them only in that same period).
    /// Absent from Python events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// For transitions: the epoch of the history `version` counts in (see
    /// [`Revision`](crate::Revision)); absent means 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<u64>,
    /// For transitions into `open`: the open period left, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_remaining_ms: Option<u64>,
    /// For outcome events: failures recorded since the sender's previous outcome event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_delta: Option<u64>,
    /// For outcome events: successes recorded since the sender's previous outcome event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_delta: Option<u64>,
    /// Keys this version does not know, kept for forward compatibility.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// Something that happened to one provider's breaker on one worker.
///
/// Field order and names follow the Python original's `CircuitBreakerEvent.to_dict()`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CircuitBreakerEvent {
    /// The provider whose breaker this is about, e.g. `"openai"`.
    pub provider_name: String,
    /// What happened.
    pub event_type: EventType,
    /// The worker it happened on.
    pub worker_id: WorkerId,
    /// When it happened, by the sender's clock.
    pub timestamp: Timestamp,
    /// Counts, version and anything else the sender attached.
    #[serde(default)]
    pub metadata: EventMetadata,
}

impl CircuitBreakerEvent {
    /// An event announcing that `provider`'s breaker moved to `state`, creating `version`.
    pub fn transition(
        provider: impl Into<String>,
        worker_id: WorkerId,
        state: CircuitState,
        version: u64,
    ) -> Self {
        Self {
            provider_name: provider.into(),
            event_type: EventType::for_transition_to(state),
            worker_id,
            timestamp: Timestamp::now(),
            metadata: EventMetadata {
                state: Some(state),
                version: Some(version),
                ..EventMetadata::default()
            },
        }
    }

    /// An event carrying outcome counts recorded since the sender's previous one.
    ///
    /// Its type is `failure` when any failure is included, `success` otherwise.
    pub fn outcomes(
        provider: impl Into<String>,
        worker_id: WorkerId,
        failures: u64,
        successes: u64,
    ) -> Self {
        Self {
            provider_name: provider.into(),
            event_type: if failures > 0 {
                EventType::Failure
            } else {
                EventType::Success
            },
            worker_id,
            timestamp: Timestamp::now(),
            metadata: EventMetadata {
                failure_delta: Some(failures),
                success_delta: Some(successes),
                ..EventMetadata::default()
            },
        }
    }

    /// The state this event moves the breaker to, if it is a transition.
    ///
    /// The exact state from the metadata wins when it agrees with the event type; otherwise
    /// (Python events, or a contradictory sender) the event type decides.
    pub fn target_state(&self) -> Option<CircuitState> {
        if !self.event_type.is_transition() {
            return None;
        }
        match self.metadata.state {
            Some(state) if EventType::for_transition_to(state) == self.event_type => Some(state),
            _ => Some(match self.event_type {
                EventType::Opened => CircuitState::Open,
                EventType::HalfOpen => CircuitState::HalfOpen,
                _ => CircuitState::Closed,
            }),
        }
    }
}

/// A whole breaker snapshot sent by one worker.
///
/// Field names follow the Python original's `StateUpdateEvent.to_dict()`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateUpdateEvent {
    /// The provider whose breaker this is.
    pub provider_name: String,
    /// The snapshot.
    pub state_data: BreakerSnapshot,
    /// The worker that sent it.
    pub worker_id: WorkerId,
    /// When it was sent, by the sender's clock.
    pub timestamp: Timestamp,
}

/// Any message on the events channel.
///
/// Serialized with an `__event_type__` tag naming the variant, as the Python original does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "__event_type__")]
#[non_exhaustive]
pub enum Event {
    /// A transition or outcome report.
    CircuitBreakerEvent(CircuitBreakerEvent),
    /// A full snapshot.
    StateUpdateEvent(StateUpdateEvent),
}

impl Event {
    /// The tag values, as they appear in `__event_type__`.
    pub const KINDS: [&'static str; 2] = ["CircuitBreakerEvent", "StateUpdateEvent"];

    /// The provider this message is about.
    pub fn provider_name(&self) -> &str {
        match self {
            Event::CircuitBreakerEvent(e) => &e.provider_name,
            Event::StateUpdateEvent(e) => &e.provider_name,
        }
    }

    /// The worker that sent it.
    pub fn worker_id(&self) -> &WorkerId {
        match self {
            Event::CircuitBreakerEvent(e) => &e.worker_id,
            Event::StateUpdateEvent(e) => &e.worker_id,
        }
    }

    /// When it was sent.
    pub fn timestamp(&self) -> Timestamp {
        match self {
            Event::CircuitBreakerEvent(e) => e.timestamp,
            Event::StateUpdateEvent(e) => e.timestamp,
        }
    }

    /// The breaker version this message announces, if it carries one.
    pub fn version(&self) -> Option<u64> {
        match self {
            Event::CircuitBreakerEvent(e) => e.metadata.version,
            Event::StateUpdateEvent(e) => Some(e.state_data.version),
        }
    }

    /// Checks what serde cannot: the provider name is usable as a key.
    pub fn validate(&self) -> Result<(), EventError> {
        validate_provider_name(self.provider_name())
    }
}

impl From<CircuitBreakerEvent> for Event {
    fn from(event: CircuitBreakerEvent) -> Self {
        Event::CircuitBreakerEvent(event)
    }
}

impl From<StateUpdateEvent> for Event {
    fn from(event: StateUpdateEvent) -> Self {
        Event::StateUpdateEvent(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker() -> WorkerId {
        WorkerId::new("w:1:2").unwrap()
    }

    #[test]
    fn manual_overrides_are_announced_as_their_nearest_classic_type() {
        let forced = CircuitBreakerEvent::transition("p", worker(), CircuitState::ForcedOpen, 3);
        assert_eq!(forced.event_type, EventType::Opened);
        assert_eq!(forced.target_state(), Some(CircuitState::ForcedOpen));
        let disabled = CircuitBreakerEvent::transition("p", worker(), CircuitState::Disabled, 4);
        assert_eq!(disabled.event_type, EventType::Closed);
        assert_eq!(disabled.target_state(), Some(CircuitState::Disabled));
    }

    #[test]
    fn event_type_decides_when_metadata_contradicts_it() {
        let mut event = CircuitBreakerEvent::transition("p", worker(), CircuitState::Open, 1);
        event.metadata.state = Some(CircuitState::Closed);
        assert_eq!(event.target_state(), Some(CircuitState::Open));
        event.metadata.state = None;
        event.event_type = EventType::HalfOpen;
        assert_eq!(event.target_state(), Some(CircuitState::HalfOpen));
    }

    #[test]
    fn outcome_events_are_not_transitions() {
        let event = CircuitBreakerEvent::outcomes("p", worker(), 2, 5);
        assert_eq!(event.event_type, EventType::Failure);
        assert_eq!(event.target_state(), None);
        assert_eq!(
            CircuitBreakerEvent::outcomes("p", worker(), 0, 5).event_type,
            EventType::Success
        );
    }

    #[test]
    fn unknown_metadata_keys_survive_a_round_trip() {
        let json = r#"{"failure_count":5,"success_count":0,"region":"eu","weights":[1,2]}"#;
        let meta: EventMetadata = serde_json::from_str(json).unwrap();
        assert_eq!(meta.failure_count, Some(5));
        assert_eq!(meta.extra["region"], "eu");
        let back: serde_json::Value = serde_json::to_value(&meta).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(json).unwrap()
        );
    }

    #[test]
    fn validate_rejects_unusable_provider_names() {
        let mut event = Event::from(CircuitBreakerEvent::outcomes("ok", worker(), 1, 0));
        assert!(event.validate().is_ok());
        if let Event::CircuitBreakerEvent(e) = &mut event {
            e.provider_name = "has space".into();
        }
        assert!(event.validate().is_err());
    }

    #[test]
    fn event_type_names_parse() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(t));
        }
        assert!("exploded".parse::<EventType>().is_err());
    }
}
