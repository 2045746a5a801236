//! Golden tests: the JSON the Python FlexiAI v0.5 writes, byte for byte as `json.dumps` emits
//! it, must decode; and the JSON we write must have the same shape.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use flexiai_events::{
    BreakerSnapshot, CircuitBreakerEvent, CircuitState, Event, EventType, StateUpdateEvent,
    Timestamp, WorkerId,
};
use flexiai_serde::{Format, StateSerializer};
use serde_json::Value;

/// `StateSerializer.serialize_event(CircuitBreakerEvent(...))` in Python: `to_dict()` order,
/// then `__event_type__` appended, `json.dumps` default separators.
const PYTHON_OPENED: &str = r#"{"provider_name": "openai", "event_type": "opened", "worker_id": "web-1:548012:1729945296.123", "timestamp": "2025-10-26T12:34:56.123456", "metadata": {"failure_count": 5, "success_count": 0}, "__event_type__": "CircuitBreakerEvent"}"#;

/// `isoformat()` drops the fraction when microseconds are zero, and `metadata` may be empty.
const PYTHON_CLOSED_WHOLE_SECOND: &str = r#"{"provider_name": "anthropic", "event_type": "closed", "worker_id": "web-2:77:1729945296.5", "timestamp": "2025-10-26T12:35:00", "metadata": {}, "__event_type__": "CircuitBreakerEvent"}"#;

/// A `StateUpdateEvent` carrying the breaker's `get_state_dict()`.
const PYTHON_STATE_UPDATE: &str = r#"{"provider_name": "openai", "state_data": {"state": "open", "failure_count": 7, "success_count": 0, "last_failure_time": "2025-10-26T12:34:56.000100", "state_changed_at": "2025-10-26T12:34:56.000200"}, "worker_id": "web-1:548012:1729945296.123", "timestamp": "2025-10-26T12:34:57.000001", "__event_type__": "StateUpdateEvent"}"#;

/// `serialize_state(breaker.get_state_dict())`, with a breaker that never failed.
const PYTHON_STATE: &str = r#"{"state": "closed", "failure_count": 0, "success_count": 3, "last_failure_time": null, "state_changed_at": null}"#;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn keys(value: &Value) -> BTreeSet<String> {
    value.as_object().unwrap().keys().cloned().collect()
}

#[test]
fn python_opened_event_decodes_exactly() {
    let event = StateSerializer::default()
        .deserialize_event(PYTHON_OPENED.as_bytes())
        .unwrap();
    let Event::CircuitBreakerEvent(event) = event else {
        panic!("expected a CircuitBreakerEvent, got {event:?}");
    };
    assert_eq!(event.provider_name, "openai");
    assert_eq!(event.event_type, EventType::Opened);
    assert_eq!(event.worker_id.as_str(), "web-1:548012:1729945296.123");
    assert_eq!(event.timestamp, ts("2025-10-26T12:34:56.123456Z"));
    assert_eq!(event.metadata.failure_count, Some(5));
    assert_eq!(event.metadata.success_count, Some(0));
    assert_eq!(
        event.metadata.version, None,
        "Python events carry no version"
    );
    assert!(event.metadata.extra.is_empty());
    assert_eq!(event.target_state(), Some(CircuitState::Open));
}

#[test]
fn python_whole_second_timestamp_and_empty_metadata_decode() {
    let event = StateSerializer::default()
        .deserialize_event(PYTHON_CLOSED_WHOLE_SECOND.as_bytes())
        .unwrap();
    assert_eq!(event.timestamp(), ts("2025-10-26T12:35:00Z"));
    let Event::CircuitBreakerEvent(event) = event else {
        panic!("expected a CircuitBreakerEvent");
    };
    assert_eq!(event.target_state(), Some(CircuitState::Closed));
    assert_eq!(event.metadata, Default::default());
}

#[test]
fn python_state_update_and_state_dict_decode() {
    let serializer = StateSerializer::default();
    let Event::StateUpdateEvent(update) = serializer
        .deserialize_event(PYTHON_STATE_UPDATE.as_bytes())
        .unwrap()
    else {
        panic!("expected a StateUpdateEvent");
    };
    let snapshot = &update.state_data;
    assert_eq!(snapshot.state, CircuitState::Open);
    assert_eq!(snapshot.failure_count, 7);
    assert_eq!(
        snapshot.version, 0,
        "unversioned snapshots read as version 0"
    );
    assert_eq!(
        snapshot.last_failure_time,
        Some(ts("2025-10-26T12:34:56.0001"))
    );
    assert_eq!(
        snapshot.state_changed_at,
        Some(ts("2025-10-26T12:34:56.0002"))
    );

    let state = serializer
        .deserialize_state(PYTHON_STATE.as_bytes())
        .unwrap();
    assert_eq!(state.state, CircuitState::Closed);
    assert_eq!(state.success_count, 3);
    assert_eq!(state.last_failure_time, None);
    assert_eq!(state.state_changed_at, None);
}

#[test]
fn emitted_event_json_has_the_python_shape() {
    let python: Value = serde_json::from_str(PYTHON_OPENED).unwrap();
    let mut ours = CircuitBreakerEvent::transition(
        "openai",
        WorkerId::new("web-1:548012:1729945296123").unwrap(),
        CircuitState::Open,
        12,
    );
    ours.metadata.failure_count = Some(5);
    ours.metadata.success_count = Some(0);
    let bytes = StateSerializer::new(Format::Json)
        .serialize_event(&Event::from(ours))
        .unwrap();
    let ours: Value = serde_json::from_slice(&bytes).unwrap();

    assert_eq!(keys(&ours), keys(&python));
    assert_eq!(ours["__event_type__"], "CircuitBreakerEvent");
    assert_eq!(ours["event_type"], "opened");
    for key in ["provider_name", "worker_id", "timestamp"] {
        assert!(ours[key].is_string(), "{key} must be a string");
    }
    // What Python's `apply_remote_state` reads from metadata is there, with the same types.
    assert_eq!(ours["metadata"]["failure_count"], 5);
    assert_eq!(ours["metadata"]["success_count"], 0);
    // `datetime.fromisoformat` on 3.8+ accepts exactly this: six fraction digits, no offset.
    let timestamp = ours["timestamp"].as_str().unwrap();
    assert_eq!(timestamp.len(), "2025-10-26T12:34:56.123456".len());
    assert_eq!(&timestamp[10..11], "T");
    assert_eq!(&timestamp[19..20], ".");
    assert!(!timestamp.ends_with('Z') && !timestamp.contains('+'));
}

#[test]
fn emitted_state_update_json_has_the_python_shape() {
    let python: Value = serde_json::from_str(PYTHON_STATE_UPDATE).unwrap();
    let mut snapshot = BreakerSnapshot::new(CircuitState::Open, 4);
    snapshot.failure_count = 7;
    snapshot.last_failure_time = Some(Timestamp::now());
    snapshot.state_changed_at = Some(Timestamp::now());
    let update = StateUpdateEvent {
        provider_name: "openai".into(),
        state_data: snapshot,
        worker_id: WorkerId::generate(),
        timestamp: Timestamp::now(),
    };
    let bytes = StateSerializer::new(Format::Json)
        .serialize_event(&Event::from(update))
        .unwrap();
    let ours: Value = serde_json::from_slice(&bytes).unwrap();

    assert_eq!(keys(&ours), keys(&python));
    // Every key Python's `get_state_dict()` has is present with the same JSON type.
    for (key, value) in python["state_data"].as_object().unwrap() {
        let mine = &ours["state_data"][key];
        assert_eq!(
            std::mem::discriminant(mine),
            std::mem::discriminant(value),
            "state_data.{key}: {mine} vs {value}"
        );
    }
    assert_eq!(ours["state_data"]["state"], "open");
}

#[test]
fn python_events_with_unknown_extra_fields_still_decode() {
    let with_extras = PYTHON_OPENED.replace(
        r#""metadata": {"#,
        r#""region": "eu-west-1", "metadata": {"latency_ms": 12.5, "#,
    );
    let event = StateSerializer::default()
        .deserialize_event(with_extras.as_bytes())
        .unwrap();
    let Event::CircuitBreakerEvent(event) = event else {
        panic!("expected a CircuitBreakerEvent");
    };
    assert_eq!(event.metadata.extra["latency_ms"], 12.5);
}

/// Python's `CircuitState(value)` knows only these; anything else makes a fresh Python worker
/// fail to read the stored state and start closed.
const PYTHON_STATES: [&str; 3] = ["closed", "open", "half_open"];

#[test]
fn stored_overrides_carry_a_state_python_knows_and_the_exact_one_beside_it() {
    let serializer = StateSerializer::default();
    for (state, python) in [
        (CircuitState::ForcedOpen, "open"),
        (CircuitState::Disabled, "closed"),
        (CircuitState::Open, "open"),
        (CircuitState::HalfOpen, "half_open"),
        (CircuitState::Closed, "closed"),
    ] {
        let mut snapshot = BreakerSnapshot::new(state, 4);
        snapshot.epoch = 1_700_000_000_000;
        let bytes = serializer.serialize_state(&snapshot).unwrap();
        let json: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["state"], python, "{state}");
        assert!(PYTHON_STATES.contains(&json["state"].as_str().unwrap()));
        if state.as_str() == python {
            assert!(json.get("flexiai_state").is_none(), "{state}");
        } else {
            assert_eq!(json["flexiai_state"], state.as_str());
        }
        assert_eq!(serializer.deserialize_state(&bytes).unwrap(), snapshot);
    }
    // The exact state counts only where it agrees with Python's: a contradiction reads as
    // what Python would read.
    let contradictory = r#"{"state": "closed", "flexiai_state": "forced_open", "version": 2}"#;
    let read = serializer
        .deserialize_state(contradictory.as_bytes())
        .unwrap();
    assert_eq!(read.state, CircuitState::Closed);
}
