//! The fuzz corpus's seeds (`fuzz/corpus/<target>/seed-*`) are real payloads: Python's JSON,
//! our JSON and MessagePack, and signed frames. This test builds them, checks each one decodes
//! as what it claims to be, and checks the committed files are exactly these bytes, so the
//! corpus cannot drift from the wire format. After a deliberate format change, rewrite them
//! with `FLEXIAI_BLESS_FUZZ_SEEDS=1 cargo test -p flexiai-serde --test fuzz_seeds`.
//!
//! Inputs the fuzzer adds later (minimized crashes, kept as regressions) sit beside the seeds
//! under other names; `cargo xtask fuzz` replays the whole corpus before fuzzing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use flexiai_events::{
    BreakerSnapshot, CircuitBreakerEvent, CircuitState, Event, StateUpdateEvent, Timestamp,
    WorkerId,
};
use flexiai_serde::{EventAuth, Format, MacKey, StateSerializer};

/// Captured from the Python FlexiAI v0.5, as in `golden.rs`.
const PYTHON_OPENED: &str = r#"{"provider_name": "openai", "event_type": "opened", "worker_id": "web-1:548012:1729945296.123", "timestamp": "2025-10-26T12:34:56.123456", "metadata": {"failure_count": 5, "success_count": 0}, "__event_type__": "CircuitBreakerEvent"}"#;
const PYTHON_FAILURE: &str = r#"{"provider_name": "openai", "event_type": "failure", "worker_id": "web-1:548012:1729945296.123", "timestamp": "2025-10-26T12:34:55", "metadata": {}, "__event_type__": "CircuitBreakerEvent"}"#;
const PYTHON_STATE_UPDATE: &str = r#"{"provider_name": "openai", "state_data": {"state": "open", "failure_count": 7, "success_count": 0, "last_failure_time": "2025-10-26T12:34:56.000100", "state_changed_at": "2025-10-26T12:34:56.000200"}, "worker_id": "web-1:548012:1729945296.123", "timestamp": "2025-10-26T12:34:57.000001", "__event_type__": "StateUpdateEvent"}"#;
const PYTHON_STATE: &str = r#"{"state": "closed", "failure_count": 0, "success_count": 3, "last_failure_time": null, "state_changed_at": null}"#;

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn worker() -> WorkerId {
    WorkerId::new("web-1:42:1730000000000").unwrap()
}

fn transition() -> Event {
    let mut event = CircuitBreakerEvent::transition("openai", worker(), CircuitState::Open, 7);
    event.timestamp = at("2026-01-02T03:04:05.678901Z");
    event.metadata.failure_count = Some(5);
    event.metadata.open_remaining_ms = Some(30_000);
    Event::from(event)
}

fn outcomes() -> Event {
    let mut event = CircuitBreakerEvent::outcomes("anthropic", worker(), 3, 11);
    event.timestamp = at("2026-01-02T03:04:05Z");
    event.metadata.version = Some(4);
    Event::from(event)
}

fn snapshot() -> BreakerSnapshot {
    let mut snapshot = BreakerSnapshot::new(CircuitState::HalfOpen, 9);
    snapshot.failure_count = 2;
    snapshot.success_count = 1;
    snapshot.last_failure_time = Some(at("2026-01-02T03:04:00Z"));
    snapshot.state_changed_at = Some(at("2026-01-02T03:04:05.5Z"));
    snapshot.updated_by = Some(worker());
    snapshot
}

fn state_update() -> Event {
    Event::from(StateUpdateEvent {
        provider_name: "openai".into(),
        state_data: snapshot(),
        worker_id: worker(),
        timestamp: at("2026-01-02T03:04:06Z"),
    })
}

/// Frames signed by another fleet's key: genuine frames the fuzz target's key must refuse.
fn other_fleet() -> StateSerializer {
    let key = MacKey::new("another fleet's key, not the fuzz target's").unwrap();
    StateSerializer::new(Format::MessagePack).with_auth(EventAuth::new(key))
}

/// `(target, file name, bytes)` for every seed.
fn seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let json = StateSerializer::new(Format::Json);
    let msgpack = StateSerializer::new(Format::MessagePack);
    let signed = other_fleet();
    let mut seeds = vec![
        (
            "event_decode",
            "seed-python-opened.json",
            PYTHON_OPENED.into(),
        ),
        (
            "event_decode",
            "seed-python-failure.json",
            PYTHON_FAILURE.into(),
        ),
        (
            "event_decode",
            "seed-python-state-update.json",
            PYTHON_STATE_UPDATE.into(),
        ),
        (
            "snapshot_decode",
            "seed-python-state.json",
            PYTHON_STATE.into(),
        ),
        (
            "snapshot_decode",
            "seed-snapshot.json",
            json.serialize_state(&snapshot()).unwrap(),
        ),
        (
            "snapshot_decode",
            "seed-snapshot.msgpack",
            msgpack.serialize_state(&snapshot()).unwrap(),
        ),
    ];
    for (name, event) in [
        ("transition", transition()),
        ("outcomes", outcomes()),
        ("state-update", state_update()),
    ] {
        let json_name: &'static str = format!("seed-{name}.json").leak();
        let msgpack_name: &'static str = format!("seed-{name}.msgpack").leak();
        let signed_name: &'static str = format!("seed-{name}.signed").leak();
        seeds.push((
            "event_decode",
            json_name,
            json.serialize_event(&event).unwrap(),
        ));
        seeds.push((
            "event_decode",
            msgpack_name,
            msgpack.serialize_event(&event).unwrap(),
        ));
        seeds.push((
            "signed_frame",
            signed_name,
            signed.serialize_event_on("flexiai:events", &event).unwrap(),
        ));
        // The target also splices its own key id in front of the input: give it a payload
        // that is exactly what a signed frame wraps.
        seeds.push((
            "signed_frame",
            msgpack_name,
            msgpack.serialize_event(&event).unwrap(),
        ));
    }
    seeds.push((
        "signed_frame",
        "seed-state.signed",
        signed
            .serialize_state_for("flexiai:state:p", &snapshot())
            .unwrap(),
    ));
    seeds
}

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fuzz")
        .join("corpus")
}

#[test]
fn every_seed_is_a_genuine_payload() {
    let reader = StateSerializer::default();
    let signed = other_fleet();
    for (target, name, bytes) in seeds() {
        match (target, name.rsplit('.').next().unwrap()) {
            ("event_decode", _) | ("signed_frame", "msgpack") => {
                reader.deserialize_event(&bytes).unwrap();
            }
            ("snapshot_decode", _) => {
                reader.deserialize_state(&bytes).unwrap();
            }
            ("signed_frame", _) if name.contains("state") && !name.contains("update") => {
                signed
                    .deserialize_state_for("flexiai:state:p", &bytes)
                    .unwrap();
            }
            ("signed_frame", _) => {
                signed
                    .deserialize_event_on("flexiai:events", &bytes)
                    .unwrap();
            }
            other => panic!("unexpected seed {other:?}"),
        }
    }
}

#[test]
fn the_committed_seeds_are_these_bytes() {
    let bless = std::env::var_os("FLEXIAI_BLESS_FUZZ_SEEDS").is_some();
    for (target, name, bytes) in seeds() {
        let path = corpus().join(target).join(name);
        if bless {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let committed = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; rewrite the seeds with FLEXIAI_BLESS_FUZZ_SEEDS=1",
                path.display()
            )
        });
        assert!(
            committed == bytes,
            "{} differs from the seed this test builds; rewrite with FLEXIAI_BLESS_FUZZ_SEEDS=1",
            path.display()
        );
    }
}
