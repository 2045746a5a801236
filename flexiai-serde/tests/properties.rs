//! Property tests: everything round-trips through both codecs, and no input panics a decoder.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use flexiai_events::arbitrary;
use flexiai_serde::{Format, StateSerializer};
use proptest::prelude::*;

fn serializers() -> [StateSerializer; 2] {
    [
        StateSerializer::new(Format::Json),
        StateSerializer::new(Format::MessagePack),
    ]
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        prop_oneof![
            Just("CircuitBreakerEvent".to_owned()),
            Just("StateUpdateEvent".to_owned()),
            Just("opened".to_owned()),
            Just("2025-10-26T12:34:56".to_owned()),
            ".{0,12}",
        ]
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("__event_type__".to_owned()),
                    Just("provider_name".to_owned()),
                    Just("event_type".to_owned()),
                    Just("worker_id".to_owned()),
                    Just("timestamp".to_owned()),
                    Just("metadata".to_owned()),
                    Just("state_data".to_owned()),
                    Just("state".to_owned()),
                    Just("version".to_owned()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..8,
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn events_round_trip_through_both_codecs(event in arbitrary::event()) {
        for serializer in serializers() {
            let bytes = serializer.serialize_event(&event).unwrap();
            prop_assert_eq!(serializer.deserialize_event(&bytes).unwrap(), event.clone());
        }
    }

    #[test]
    fn snapshots_round_trip_through_both_codecs(snapshot in arbitrary::snapshot()) {
        for serializer in serializers() {
            let bytes = serializer.serialize_state(&snapshot).unwrap();
            prop_assert_eq!(serializer.deserialize_state(&bytes).unwrap(), snapshot.clone());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let serializer = StateSerializer::default();
        let _ = serializer.deserialize_event(&bytes);
        let _ = serializer.deserialize_state(&bytes);
        let mut framed = vec![0xc1, 1];
        framed.extend_from_slice(&bytes);
        let _ = serializer.deserialize_event(&framed);
        let _ = serializer.deserialize_state(&framed);
    }

    #[test]
    fn arbitrary_json_values_never_panic(value in json_value()) {
        let serializer = StateSerializer::default();
        let json = serde_json::to_vec(&value).unwrap();
        let _ = serializer.deserialize_event(&json);
        let _ = serializer.deserialize_state(&json);
        // The same structure as a MessagePack frame exercises the other decoder.
        let mut framed = vec![0xc1, 1];
        rmp_serde::encode::write_named(&mut framed, &value).unwrap();
        let _ = serializer.deserialize_event(&framed);
        let _ = serializer.deserialize_state(&framed);
    }

    #[test]
    fn corrupted_valid_payloads_never_panic_and_never_decode_to_something_else(
        event in arbitrary::event(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        for serializer in serializers() {
            let mut bytes = serializer.serialize_event(&event).unwrap();
            for (index, byte) in &flips {
                let i = index.index(bytes.len());
                bytes[i] = *byte;
            }
            // Either rejected, or it still decodes to a valid event (a flip may hit a digit).
            if let Ok(decoded) = serializer.deserialize_event(&bytes) {
                prop_assert!(decoded.validate().is_ok());
            }
        }
    }
}
