//! Bad input gets a typed error, for every way a payload can be bad.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use flexiai_events::{CircuitBreakerEvent, Event, WorkerId};
use flexiai_serde::{DecodeLimits, Format, SerdeError, StateSerializer};

fn decode(bytes: &[u8]) -> SerdeError {
    StateSerializer::default()
        .deserialize_event(bytes)
        .expect_err("payload should be rejected")
}

fn valid_event() -> Event {
    Event::from(CircuitBreakerEvent::outcomes(
        "openai",
        WorkerId::new("w:1:2").unwrap(),
        3,
        1,
    ))
}

#[test]
fn oversized_payloads_are_rejected_before_parsing() {
    let serializer = StateSerializer::default().with_limits(DecodeLimits { max_bytes: 100 });
    // Not even valid JSON: proves the size check comes first.
    let err = serializer.deserialize_event(&[b'{'; 101]).unwrap_err();
    assert_eq!(
        err,
        SerdeError::TooLarge {
            size: 101,
            limit: 100
        }
    );
    assert_eq!(err.reason(), "too_large");
}

#[test]
fn writers_refuse_to_emit_what_readers_would_reject() {
    let serializer = StateSerializer::new(Format::Json).with_limits(DecodeLimits { max_bytes: 20 });
    let err = serializer.serialize_event(&valid_event()).unwrap_err();
    assert!(matches!(err, SerdeError::Encode { .. }), "{err:?}");
}

#[test]
fn empty_and_unrecognised_formats() {
    assert_eq!(decode(b""), SerdeError::Empty);
    assert_eq!(
        decode(b"hello"),
        SerdeError::UnknownFormat { first_byte: b'h' }
    );
    // Bare MessagePack without our frame is not accepted either.
    assert_eq!(
        decode(&[0x81, 0xa1, b'a', 0x01]),
        SerdeError::UnknownFormat { first_byte: 0x81 }
    );
}

#[test]
fn unknown_schema_versions_are_rejected_in_both_formats() {
    let mut frame = StateSerializer::new(Format::MessagePack)
        .serialize_event(&valid_event())
        .unwrap();
    frame[1] = 2;
    assert_eq!(
        decode(&frame),
        SerdeError::UnknownSchemaVersion {
            found: 2,
            supported: 1
        }
    );
    let json = StateSerializer::new(Format::Json)
        .serialize_event(&valid_event())
        .unwrap();
    let mut value: serde_json::Value = serde_json::from_slice(&json).unwrap();
    value["schema_version"] = 7.into();
    assert_eq!(
        decode(value.to_string().as_bytes()),
        SerdeError::UnknownSchemaVersion {
            found: 7,
            supported: 1
        }
    );
    value["schema_version"] = 1.into();
    assert!(
        StateSerializer::default()
            .deserialize_event(value.to_string().as_bytes())
            .is_ok()
    );
}

#[test]
fn unknown_kinds_and_event_types_are_typed_errors() {
    let err = decode(br#"{"__event_type__": "Telemetry", "provider_name": "x"}"#);
    assert_eq!(
        err,
        SerdeError::UnknownEventKind {
            kind: "Telemetry".into()
        }
    );
    let err = decode(br#"{"provider_name": "x"}"#);
    assert_eq!(
        err,
        SerdeError::UnknownEventKind {
            kind: String::new()
        }
    );
    let err = decode(
        br#"{"__event_type__": "CircuitBreakerEvent", "provider_name": "x", "event_type": "exploded",
            "worker_id": "w", "timestamp": "2025-10-26T12:00:00", "metadata": {}}"#,
    );
    assert_eq!(
        err,
        SerdeError::UnknownEventType {
            event_type: "exploded".into()
        }
    );
    assert_eq!(err.reason(), "unknown_event_type");
}

#[test]
fn structurally_wrong_events_are_malformed_or_invalid() {
    let base = r#"{"__event_type__": "CircuitBreakerEvent", "provider_name": "openai", "event_type": "opened", "worker_id": "w:1:2", "timestamp": "2025-10-26T12:00:00", "metadata": {}}"#;
    assert!(
        StateSerializer::default()
            .deserialize_event(base.as_bytes())
            .is_ok()
    );
    for (from, to) in [
        (
            r#""timestamp": "2025-10-26T12:00:00""#,
            r#""timestamp": "yesterday""#,
        ),
        (r#""worker_id": "w:1:2""#, r#""worker_id": """#),
        (r#""metadata": {}"#, r#""metadata": {"failure_count": -1}"#),
        (r#", "event_type": "opened""#, ""),
    ] {
        let bad = base.replace(from, to);
        assert!(
            matches!(
                decode(bad.as_bytes()),
                SerdeError::Malformed {
                    format: Format::Json,
                    ..
                }
            ),
            "{bad}"
        );
    }
    let bad_provider = base.replace(
        r#""provider_name": "openai""#,
        r#""provider_name": "two words""#,
    );
    assert!(matches!(
        decode(bad_provider.as_bytes()),
        SerdeError::Invalid(_)
    ));
    assert!(matches!(
        decode(b"{\"__event_type__\": "),
        SerdeError::Malformed { .. }
    ));
}

#[test]
fn deeply_nested_input_is_rejected_without_overflowing_the_stack() {
    let depth = 100_000;
    let mut json = String::from(r#"{"__event_type__": "CircuitBreakerEvent", "x": "#);
    json.push_str(&"[".repeat(depth));
    let serializer = StateSerializer::default().with_limits(DecodeLimits { max_bytes: 1 << 20 });
    assert!(serializer.deserialize_event(json.as_bytes()).is_err());

    let mut frame = vec![0xc1, 1, 0x81, 0xa1, b'x'];
    frame.extend(std::iter::repeat_n(0x91, depth));
    assert!(serializer.deserialize_event(&frame).is_err());
    assert!(serializer.deserialize_state(&frame).is_err());
}

#[test]
fn truncated_messagepack_frames_are_rejected() {
    let frame = StateSerializer::new(Format::MessagePack)
        .serialize_event(&valid_event())
        .unwrap();
    for len in 1..frame.len() {
        assert!(
            StateSerializer::default()
                .deserialize_event(&frame[..len])
                .is_err(),
            "prefix of {len} bytes was accepted"
        );
    }
}
