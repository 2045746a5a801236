//! [proptest](mod@proptest) strategies for every type in this crate, for property tests in other crates.
//!
//! Generated values are valid (they pass [`Event::validate`]) and round-trip exactly through
//! both codecs: `extra` maps hold only keys the typed fields don't use and values without
//! floats, whose text form is not exact.

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::{
    BreakerSnapshot, CircuitBreakerEvent, CircuitState, Event, EventMetadata, EventType,
    StateUpdateEvent, Timestamp, WorkerId,
};

/// Any [`CircuitState`].
pub fn circuit_state() -> impl Strategy<Value = CircuitState> {
    proptest::sample::select(CircuitState::ALL.to_vec())
}

/// Any [`EventType`].
pub fn event_type() -> impl Strategy<Value = EventType> {
    proptest::sample::select(EventType::ALL.to_vec())
}

/// Timestamps between 1970 and 2200.
pub fn timestamp() -> impl Strategy<Value = Timestamp> {
    (0i64..7_258_118_400_000_000)
        .prop_map(|m| Timestamp::from_unix_micros(m).unwrap_or_else(Timestamp::now))
}

/// Worker ids, both generated-looking and free-form.
pub fn worker_id() -> impl Strategy<Value = WorkerId> {
    "[a-z0-9.-]{1,20}:[0-9]{1,7}:[0-9]{13}"
        .prop_map(|s| WorkerId::new(s).unwrap_or_else(|_| WorkerId::generate()))
}

/// Provider names.
pub fn provider_name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_.-]{0,30}"
}

fn extra() -> impl Strategy<Value = BTreeMap<String, serde_json::Value>> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[ -~]{0,12}".prop_map(serde_json::Value::from),
    ];
    let value = leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    });
    proptest::collection::btree_map("x_[a-z]{1,8}", value, 0..3)
}

/// Event metadata with any mix of typed and unknown fields.
pub fn metadata() -> impl Strategy<Value = EventMetadata> {
    (
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(circuit_state()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<u64>()),
        extra(),
    )
        .prop_map(
            |(failure_count, success_count, state, version, open, fd, sd, extra)| EventMetadata {
                failure_count,
                success_count,
                state,
                version,
                epoch: version.map(|v| v % 3),
                open_remaining_ms: open,
                failure_delta: fd,
                success_delta: sd,
                extra,
            },
        )
}

/// Breaker snapshots.
pub fn snapshot() -> impl Strategy<Value = BreakerSnapshot> {
    (
        circuit_state(),
        any::<u64>(),
        any::<u64>(),
        proptest::option::of(timestamp()),
        proptest::option::of(timestamp()),
        any::<u64>(),
        proptest::option::of(timestamp()),
        proptest::option::of(any::<u64>()),
        proptest::option::of(worker_id()),
        extra(),
    )
        .prop_map(
            |(state, fc, sc, lf, changed, version, ls, open, by, extra)| BreakerSnapshot {
                state,
                failure_count: fc,
                success_count: sc,
                last_failure_time: lf,
                state_changed_at: changed,
                version,
                epoch: version % 3,
                last_success_time: ls,
                open_remaining_ms: open,
                updated_by: by,
                extra,
            },
        )
}

/// Circuit breaker events.
pub fn circuit_breaker_event() -> impl Strategy<Value = CircuitBreakerEvent> {
    (
        provider_name(),
        event_type(),
        worker_id(),
        timestamp(),
        metadata(),
    )
        .prop_map(
            |(provider_name, event_type, worker_id, timestamp, metadata)| CircuitBreakerEvent {
                provider_name,
                event_type,
                worker_id,
                timestamp,
                metadata,
            },
        )
}

/// State update events.
pub fn state_update_event() -> impl Strategy<Value = StateUpdateEvent> {
    (provider_name(), snapshot(), worker_id(), timestamp()).prop_map(
        |(provider_name, state_data, worker_id, timestamp)| StateUpdateEvent {
            provider_name,
            state_data,
            worker_id,
            timestamp,
        },
    )
}

/// Any [`Event`].
pub fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        circuit_breaker_event().prop_map(Event::from),
        state_update_event().prop_map(Event::from),
    ]
}
