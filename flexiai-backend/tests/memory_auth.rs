//! `MemoryBackend` with event authentication: what it publishes is signed, and unsigned or
//! forged payloads are rejected and counted, exactly as on Redis.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use flexiai_backend::{MemoryBackend, Notification, SyncBackend};
use flexiai_events::{CircuitBreakerEvent, Event, WorkerId};
use flexiai_serde::{EventAuth, MacKey, StateSerializer};

fn auth() -> EventAuth {
    EventAuth::new(MacKey::new("memory backend test key, 32 b").unwrap())
}

#[tokio::test]
async fn signed_events_pass_and_unsigned_or_forged_ones_are_rejected() {
    let backend = MemoryBackend::builder().auth(auth()).build().unwrap();
    let mut events = backend.subscribe().await.unwrap();
    let event = Event::from(CircuitBreakerEvent::outcomes(
        "p",
        WorkerId::new("w:1:2").unwrap(),
        2,
        0,
    ));

    backend.publish_event(&event).await.unwrap();
    assert_eq!(
        events.recv().await,
        Some(Notification::Event(event.clone()))
    );

    let unsigned = StateSerializer::default().serialize_event(&event).unwrap();
    backend.publish_raw(&unsigned).unwrap();
    let mut forged = backend.encode_event(&event).unwrap();
    let last = forged.len() - 2;
    forged[last] ^= 0x20;
    backend.publish_raw(&forged).unwrap();
    // A capture replays fine at this layer: replays are the sync layer's to count.
    backend
        .publish_raw(&backend.encode_event(&event).unwrap())
        .unwrap();

    let mut reasons = Vec::new();
    for _ in 0..2 {
        match events.recv().await {
            Some(Notification::Rejected(error)) => reasons.push(error.reason()),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(reasons, ["unsigned", "bad_signature"]);
    assert_eq!(events.recv().await, Some(Notification::Event(event)));
    assert_eq!(backend.rejected_payloads(), 2);
    assert!(!format!("{backend:?}").contains("memory backend test key"));
}
