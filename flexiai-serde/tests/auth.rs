//! Signed frames: what a keyed reader accepts and refuses, key rotation, and that no input
//! (random, truncated, forged) panics the signed-frame decoder or gets past it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, SystemTime};

use flexiai_events::{
    BreakerSnapshot, CircuitBreakerEvent, CircuitState, Event, WorkerId, arbitrary,
};
use flexiai_serde::{
    EventAuth, Format, MacKey, SIGNED_FRAME_MARKER, SIGNED_HEADER_LEN, SerdeError, StateSerializer,
};
use proptest::prelude::*;

const CHANNEL: &str = "flexiai:events";

fn key(secret: &str) -> MacKey {
    MacKey::new(secret).unwrap()
}

fn signed(format: Format, secret: &str) -> StateSerializer {
    StateSerializer::new(format).with_auth(EventAuth::new(key(secret)))
}

fn event() -> Event {
    let mut event = CircuitBreakerEvent::transition(
        "openai",
        WorkerId::new("w:1:2").unwrap(),
        CircuitState::Open,
        7,
    );
    event.timestamp = flexiai_events::Timestamp::from_unix_micros(1_761_480_000_000_000).unwrap();
    Event::from(event)
}

#[test]
fn signed_events_round_trip_in_both_formats_and_carry_the_documented_header() {
    for format in [Format::Json, Format::MessagePack] {
        let serializer = signed(format, "fleet secret, 32 bytes or so...");
        let bytes = serializer.serialize_event_on(CHANNEL, &event()).unwrap();
        assert_eq!(bytes[0], SIGNED_FRAME_MARKER);
        assert_eq!(bytes[1], 1);
        assert_eq!(
            &bytes[2..10],
            serializer.auth().unwrap().current_key_id().as_bytes()
        );
        // The inner payload is exactly the unsigned encoding.
        let plain = StateSerializer::new(format)
            .serialize_event(&event())
            .unwrap();
        assert_eq!(&bytes[SIGNED_HEADER_LEN..], plain.as_slice());
        assert_eq!(
            serializer.deserialize_event_on(CHANNEL, &bytes).unwrap(),
            event()
        );
    }
}

#[test]
fn without_a_key_nothing_changes_and_signed_frames_are_refused() {
    let plain = StateSerializer::default();
    let bytes = plain.serialize_event_on(CHANNEL, &event()).unwrap();
    assert_eq!(bytes[0], b'{', "JSON stays Python's");
    assert_eq!(
        plain.deserialize_event_on(CHANNEL, &bytes).unwrap(),
        event()
    );
    let signed_bytes = signed(Format::Json, "fleet secret, 32 bytes or so...")
        .serialize_event_on(CHANNEL, &event())
        .unwrap();
    assert_eq!(
        plain.deserialize_event_on(CHANNEL, &signed_bytes),
        Err(SerdeError::UnexpectedSignature)
    );
    assert_eq!(
        SerdeError::UnexpectedSignature.reason(),
        "unexpected_signature"
    );
}

#[test]
fn unsigned_forged_and_misdirected_payloads_are_refused_with_typed_errors() {
    let serializer = signed(Format::Json, "fleet secret, 32 bytes or so...");
    let plain = StateSerializer::default()
        .serialize_event(&event())
        .unwrap();
    let err = serializer
        .deserialize_event_on(CHANNEL, &plain)
        .unwrap_err();
    assert_eq!(err, SerdeError::Unsigned);
    assert_eq!(err.reason(), "unsigned");
    assert!(err.is_authentication());

    let good = serializer.serialize_event_on(CHANNEL, &event()).unwrap();
    // Another channel.
    let err = serializer.deserialize_event_on("other", &good).unwrap_err();
    assert_eq!(err.reason(), "bad_signature");
    // A flipped bit in the tag, and in the payload.
    for index in [20, good.len() - 3] {
        let mut forged = good.clone();
        forged[index] ^= 0x01;
        let err = serializer
            .deserialize_event_on(CHANNEL, &forged)
            .unwrap_err();
        assert_eq!(err.reason(), "bad_signature", "flip at {index}");
    }
    // A different key with its own id, and an attacker's key reusing our id.
    let attacker = signed(Format::Json, "attacker's own secret, long enough")
        .serialize_event_on(CHANNEL, &event())
        .unwrap();
    assert_eq!(
        serializer
            .deserialize_event_on(CHANNEL, &attacker)
            .unwrap_err()
            .reason(),
        "unknown_key_id"
    );
    let mut spoofed = attacker.clone();
    spoofed[2..10].copy_from_slice(&good[2..10]);
    assert_eq!(
        serializer
            .deserialize_event_on(CHANNEL, &spoofed)
            .unwrap_err()
            .reason(),
        "bad_signature"
    );
    // A snapshot signed for a key is not an event on the channel.
    let snapshot = serializer
        .serialize_state_for(CHANNEL, &BreakerSnapshot::new(CircuitState::Open, 1))
        .unwrap();
    assert_eq!(
        serializer
            .deserialize_event_on(CHANNEL, &snapshot)
            .unwrap_err()
            .reason(),
        "bad_signature"
    );
    // Truncated headers and an unknown frame version.
    for cut in [1, 2, 10, SIGNED_HEADER_LEN - 1] {
        let err = serializer
            .deserialize_event_on(CHANNEL, &good[..cut])
            .unwrap_err();
        assert!(
            err.is_authentication() || err.reason() == "malformed_frame",
            "{err:?}"
        );
    }
    let mut future = good.clone();
    future[1] = 9;
    assert_eq!(
        serializer
            .deserialize_event_on(CHANNEL, &future)
            .unwrap_err()
            .reason(),
        "unknown_schema_version"
    );
}

#[test]
fn the_previous_key_is_accepted_until_its_grace_period_ends() {
    let old = signed(Format::Json, "the old fleet secret, rotating")
        .serialize_event_on(CHANNEL, &event())
        .unwrap();
    let rotating = StateSerializer::default().with_auth(
        EventAuth::new(key("the new fleet secret, current")).with_previous(
            key("the old fleet secret, rotating"),
            Duration::from_secs(60),
        ),
    );
    assert_eq!(
        rotating.deserialize_event_on(CHANNEL, &old).unwrap(),
        event()
    );
    // It signs with the new key only.
    let new = rotating.serialize_event_on(CHANNEL, &event()).unwrap();
    assert_eq!(
        &new[2..10],
        key("the new fleet secret, current").id().as_bytes()
    );
    let expired = StateSerializer::default().with_auth(
        EventAuth::new(key("the new fleet secret, current")).with_previous_until(
            key("the old fleet secret, rotating"),
            SystemTime::now() - Duration::from_secs(1),
        ),
    );
    let err = expired.deserialize_event_on(CHANNEL, &old).unwrap_err();
    assert_eq!(err.reason(), "expired_key");
}

#[test]
fn size_limits_apply_to_the_whole_frame() {
    let serializer = signed(Format::Json, "fleet secret, 32 bytes or so...")
        .with_limits(flexiai_serde::DecodeLimits { max_bytes: 100 });
    assert!(matches!(
        serializer.deserialize_event_on(CHANNEL, &[SIGNED_FRAME_MARKER; 101]),
        Err(SerdeError::TooLarge {
            size: 101,
            limit: 100
        })
    ));
    assert!(matches!(
        serializer.serialize_event_on(CHANNEL, &event()),
        Err(SerdeError::Encode { .. })
    ));
}

#[test]
fn keys_never_show_in_debug_display_or_errors() {
    let secret = "do-not-print-this-secret-0123";
    let auth = EventAuth::new(key(secret))
        .with_previous(key("and-not-this-one-either-4567"), Duration::from_secs(5));
    let serializer = StateSerializer::default().with_auth(auth.clone());
    let texts = [
        format!("{auth:?}"),
        format!("{:?}", key(secret)),
        format!("{}", key(secret)),
        format!("{serializer:?}"),
        MacKey::new("short-secret").unwrap_err().to_string(),
        format!("{:?}", MacKey::new("short-secret").unwrap_err()),
        serializer.deserialize_event(b"{}").unwrap_err().to_string(),
    ];
    for text in texts {
        for needle in [secret, "and-not-this-one-either", "short-secret"] {
            assert!(!text.contains(needle), "{text}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The bounded, CI-run equivalent of the `signed_frame` fuzz target.
    #[test]
    fn arbitrary_bytes_never_panic_or_pass_a_keyed_reader(
        body in proptest::collection::vec(any::<u8>(), 0..256),
        key_id_from_us in any::<bool>(),
    ) {
        let serializer = signed(Format::Json, "fleet secret, 32 bytes or so...");
        let mut frame = vec![SIGNED_FRAME_MARKER, 1];
        if key_id_from_us {
            frame.extend_from_slice(serializer.auth().unwrap().current_key_id().as_bytes());
        }
        frame.extend_from_slice(&body);
        for bytes in [&body[..], &frame[..]] {
            prop_assert!(serializer.deserialize_event_on(CHANNEL, bytes).is_err());
            prop_assert!(serializer.deserialize_state_for(CHANNEL, bytes).is_err());
            // And the unkeyed reader never panics on them either.
            let _ = StateSerializer::default().deserialize_event(bytes);
        }
    }

    #[test]
    fn tampering_with_any_byte_of_a_signed_event_is_detected(
        event in arbitrary::event(),
        index in any::<prop::sample::Index>(),
        flip in 1u8..=255,
        format in prop_oneof![Just(Format::Json), Just(Format::MessagePack)],
    ) {
        let serializer = signed(format, "fleet secret, 32 bytes or so...");
        let mut bytes = serializer.serialize_event_on(CHANNEL, &event).unwrap();
        prop_assert_eq!(serializer.deserialize_event_on(CHANNEL, &bytes).unwrap(), event);
        let i = index.index(bytes.len());
        bytes[i] ^= flip;
        prop_assert!(serializer.deserialize_event_on(CHANNEL, &bytes).is_err());
    }

    #[test]
    fn signed_snapshots_round_trip_bound_to_their_key(snapshot in arbitrary::snapshot()) {
        let serializer = signed(Format::MessagePack, "fleet secret, 32 bytes or so...");
        let bytes = serializer.serialize_state_for("flexiai:state:p", &snapshot).unwrap();
        prop_assert_eq!(serializer.deserialize_state_for("flexiai:state:p", &bytes).unwrap(), snapshot);
        prop_assert!(serializer.deserialize_state_for("flexiai:state:q", &bytes).is_err());
    }
}
