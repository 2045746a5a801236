//! MemoryBackend behaviour beyond the shared conformance suite.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use flexiai_backend::{BackendError, MemoryBackend, Notification, SyncBackend};
use flexiai_events::{CircuitBreakerEvent, Event, WorkerId};
use flexiai_serde::{Format, SerdeError};

fn event(n: u64) -> Event {
    let mut event = CircuitBreakerEvent::outcomes("openai", WorkerId::new("w:1:2").unwrap(), n, 0);
    // A fixed timestamp makes events built twice compare equal.
    event.timestamp = "2025-10-26T12:00:00".parse().unwrap();
    Event::from(event)
}

#[tokio::test]
async fn garbage_on_the_channel_is_rejected_counted_and_harmless() {
    let backend = MemoryBackend::new();
    let mut sub_a = backend.subscribe().await.unwrap();
    let mut sub_b = backend.clone().subscribe().await.unwrap();
    backend.publish_raw(b"not json").unwrap();
    backend
        .publish_raw(b"{\"__event_type__\": \"Nope\"}")
        .unwrap();
    backend.publish_event(&event(1)).await.unwrap();
    for sub in [&mut sub_a, &mut sub_b] {
        assert_eq!(
            sub.recv().await,
            Some(Notification::Rejected(SerdeError::UnknownFormat {
                first_byte: b'n'
            }))
        );
        assert!(matches!(
            sub.recv().await,
            Some(Notification::Rejected(SerdeError::UnknownEventKind { .. }))
        ));
        assert_eq!(sub.recv().await, Some(Notification::Event(event(1))));
    }
    assert_eq!(backend.rejected_payloads(), 4);
}

#[tokio::test]
async fn messagepack_backends_deliver_the_same_events() {
    let backend = MemoryBackend::builder()
        .format(Format::MessagePack)
        .build()
        .unwrap();
    let mut sub = backend.subscribe().await.unwrap();
    backend.publish_event(&event(3)).await.unwrap();
    assert_eq!(sub.recv().await, Some(Notification::Event(event(3))));
}

#[tokio::test]
async fn a_slow_subscriber_lags_instead_of_blocking_publishers() {
    let backend = MemoryBackend::builder()
        .subscriber_capacity(4)
        .build()
        .unwrap();
    let mut slow = backend.subscribe().await.unwrap();
    for n in 0..10 {
        backend.publish_event(&event(n)).await.unwrap();
    }
    assert_eq!(slow.recv().await, Some(Notification::Lagged { missed: 6 }));
    for n in 0..4 {
        assert_eq!(slow.recv().await, Some(Notification::Event(event(n))));
    }
}

#[tokio::test]
async fn dropped_subscriptions_are_forgotten() {
    let backend = MemoryBackend::new();
    drop(backend.subscribe().await.unwrap());
    let mut live = backend.subscribe().await.unwrap();
    backend.publish_event(&event(1)).await.unwrap();
    assert_eq!(live.recv().await, Some(Notification::Event(event(1))));
}

#[test]
fn invalid_settings_name_the_field() {
    let err = MemoryBackend::builder()
        .state_ttl(Some(Duration::ZERO))
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            BackendError::InvalidArgument {
                field: "state_ttl",
                ..
            }
        ),
        "{err}"
    );
    let err = MemoryBackend::builder()
        .subscriber_capacity(0)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("subscriber_capacity"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn ttls_follow_tokio_time() {
    let backend = MemoryBackend::builder()
        .state_ttl(Some(Duration::from_secs(3600)))
        .build()
        .unwrap();
    let snapshot = flexiai_events::BreakerSnapshot::new(flexiai_events::CircuitState::Open, 1);
    backend.set_state("p", &snapshot).await.unwrap();
    tokio::time::advance(Duration::from_secs(3599)).await;
    assert!(backend.get_state("p").await.unwrap().is_some());
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(backend.get_state("p").await.unwrap().is_none());
}
