//! `FlexiAI::chat_completion` over fake providers: priority order, failover, the breaker
//! skipping a failing provider, automatic recovery, what counts against the breaker, and
//! `AllProvidersFailed`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use flexiai_client::{
    AttemptError, ChatRequest, CircuitState, ClientError, FlexiAI, Message, ProviderError,
};
use support::{FakeProvider, Flavor, Mode, fast_config};

fn hi() -> ChatRequest {
    ChatRequest::new(vec![Message::user("hi")])
}

#[tokio::test]
async fn the_first_healthy_provider_by_priority_answers() {
    let a = FakeProvider::start("primary", Flavor::OpenAi).await;
    let b = FakeProvider::start("secondary", Flavor::Anthropic).await;
    // Listed out of order: priority decides.
    let mut config = fast_config(&[&b, &a]);
    config.providers[0].priority = 2;
    config.providers[1].priority = 1;
    let client = FlexiAI::new(config).await.unwrap();
    assert_eq!(client.provider_names(), ["primary", "secondary"]);
    let answer = client.chat_completion(&hi()).await.unwrap();
    assert_eq!(answer.provider, "primary");
    assert_eq!((a.requests(), b.requests()), (1, 0));
    assert!(!client.is_synced());
    client.close().await.unwrap();
}

#[tokio::test]
async fn a_failing_provider_fails_over_then_is_skipped_without_a_call() {
    let a = FakeProvider::start("primary", Flavor::OpenAi).await;
    let b = FakeProvider::start("secondary", Flavor::Anthropic).await;
    a.set_mode(Mode::Status(503));
    let client = FlexiAI::new(fast_config(&[&a, &b])).await.unwrap();

    for _ in 0..2 {
        let answer = client.chat_completion(&hi()).await.unwrap();
        assert_eq!(answer.provider, "secondary");
        assert_eq!(answer.content, "hello from secondary");
    }
    assert_eq!(a.requests(), 2);
    assert_eq!(
        client.breaker("primary").unwrap().state(),
        CircuitState::Open
    );

    // Open: the primary is not called any more.
    for _ in 0..5 {
        assert_eq!(
            client.chat_completion(&hi()).await.unwrap().provider,
            "secondary"
        );
    }
    assert_eq!(a.requests(), 2);
    assert_eq!(b.requests(), 7);

    let stats = client.stats();
    assert_eq!(stats.requests, 7);
    assert_eq!(stats.successes, 7);
    assert_eq!(stats.failovers, 7);
    assert_eq!(stats.providers[0].calls, 2);
    assert_eq!(stats.providers[0].failures, 2);
    assert_eq!(stats.providers[0].rejected, 5);
    assert_eq!(stats.providers[1].successes, 7);

    let status = client.get_provider_status();
    assert_eq!(status[0].name, "primary");
    assert_eq!(status[0].state, CircuitState::Open);
    assert!(!status[0].available);
    assert_eq!(status[0].snapshot.state, CircuitState::Open);
    assert!(status[0].snapshot.open_remaining_ms.is_some());
    assert_eq!(status[1].state, CircuitState::Closed);
    assert!(status[1].available);
}

#[tokio::test]
async fn a_recovered_provider_comes_back_by_itself() {
    let a = FakeProvider::start("primary", Flavor::OpenAi).await;
    let b = FakeProvider::start("secondary", Flavor::OpenAi).await;
    a.set_mode(Mode::Status(500));
    let client = FlexiAI::new(fast_config(&[&a, &b])).await.unwrap();
    for _ in 0..2 {
        client.chat_completion(&hi()).await.unwrap();
    }
    assert_eq!(
        client.breaker("primary").unwrap().state(),
        CircuitState::Open
    );

    a.set_mode(Mode::Healthy);
    // Still open: the secondary answers.
    assert_eq!(
        client.chat_completion(&hi()).await.unwrap().provider,
        "secondary"
    );
    tokio::time::sleep(Duration::from_millis(350)).await; // recovery timeout is 300 ms
    assert_eq!(
        client.get_provider_status()[0].state,
        CircuitState::HalfOpen
    );
    // The next request probes the primary, which answers and closes its breaker.
    assert_eq!(
        client.chat_completion(&hi()).await.unwrap().provider,
        "primary"
    );
    assert_eq!(
        client.breaker("primary").unwrap().state(),
        CircuitState::Closed
    );
    assert_eq!(
        client.chat_completion(&hi()).await.unwrap().provider,
        "primary"
    );
    assert_eq!(a.requests(), 4);
}

#[tokio::test]
async fn a_failed_probe_reopens_and_keeps_the_traffic_on_the_secondary() {
    let a = FakeProvider::start("primary", Flavor::OpenAi).await;
    let b = FakeProvider::start("secondary", Flavor::OpenAi).await;
    a.set_mode(Mode::Status(502));
    let client = FlexiAI::new(fast_config(&[&a, &b])).await.unwrap();
    for _ in 0..2 {
        client.chat_completion(&hi()).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        client.chat_completion(&hi()).await.unwrap().provider,
        "secondary"
    );
    assert_eq!(a.requests(), 3, "one probe");
    assert_eq!(
        client.breaker("primary").unwrap().state(),
        CircuitState::Open
    );
}

#[tokio::test]
async fn caller_errors_fail_over_but_do_not_trip_the_breaker() {
    let a = FakeProvider::start("primary", Flavor::OpenAi).await;
    let b = FakeProvider::start("secondary", Flavor::OpenAi).await;
    a.set_mode(Mode::Status(400));
    let client = FlexiAI::new(fast_config(&[&a, &b])).await.unwrap();
    for _ in 0..5 {
        assert_eq!(
            client.chat_completion(&hi()).await.unwrap().provider,
            "secondary"
        );
    }
    assert_eq!(a.requests(), 5, "never skipped");
    assert_eq!(
        client.breaker("primary").unwrap().state(),
        CircuitState::Closed
    );
    a.set_mode(Mode::Status(401));
    for _ in 0..3 {
        client.chat_completion(&hi()).await.unwrap();
    }
    assert_eq!(
        client.breaker("primary").unwrap().state(),
        CircuitState::Closed
    );
}

#[tokio::test]
async fn timeouts_and_malformed_answers_trip_the_breaker() {
    let a = FakeProvider::start("primary", Flavor::OpenAi).await;
    let b = FakeProvider::start("secondary", Flavor::OpenAi).await;
    let mut config = fast_config(&[&a, &b]);
    config.providers[0].timeout_ms = 200;
    a.set_mode(Mode::Hang);
    let client = FlexiAI::new(config).await.unwrap();
    client.chat_completion(&hi()).await.unwrap();
    a.set_mode(Mode::Malformed);
    client.chat_completion(&hi()).await.unwrap();
    assert_eq!(
        client.breaker("primary").unwrap().state(),
        CircuitState::Open
    );
}

#[tokio::test]
async fn when_everything_fails_every_try_is_reported() {
    let a = FakeProvider::start("primary", Flavor::OpenAi).await;
    let b = FakeProvider::start("secondary", Flavor::Anthropic).await;
    a.set_mode(Mode::Status(500));
    b.set_mode(Mode::Status(400));
    let client = FlexiAI::new(fast_config(&[&a, &b])).await.unwrap();
    let err = client.chat_completion(&hi()).await.unwrap_err();
    let ClientError::AllProvidersFailed { attempts } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0].provider, "primary");
    assert!(matches!(
        attempts[0].error,
        AttemptError::Provider(ProviderError::Server { status: 500, .. })
    ));
    assert_eq!(attempts[1].provider, "secondary");
    assert!(matches!(
        attempts[1].error,
        AttemptError::Provider(ProviderError::InvalidRequest { status: 400, .. })
    ));
    assert!(err.to_string().contains("primary (try 1"), "{err}");

    // Trip the primary: it is then reported as rejected, without a call.
    client.chat_completion(&hi()).await.unwrap_err();
    let err = client.chat_completion(&hi()).await.unwrap_err();
    let attempts = err.attempts();
    assert!(
        matches!(&attempts[0].error, AttemptError::Rejected(r) if r.state == CircuitState::Open)
    );
    assert_eq!(attempts[0].elapsed, Duration::ZERO);
    assert_eq!(a.requests(), 2);
    assert_eq!(client.stats().failures, 3);
}

#[tokio::test]
async fn resets_controls_and_close() {
    let a = FakeProvider::start("primary", Flavor::OpenAi).await;
    let b = FakeProvider::start("secondary", Flavor::OpenAi).await;
    let client = FlexiAI::new(fast_config(&[&a, &b])).await.unwrap();

    client.breaker("primary").unwrap().force_open();
    assert_eq!(
        client.chat_completion(&hi()).await.unwrap().provider,
        "secondary"
    );
    client.reset_circuit_breakers();
    assert_eq!(
        client.chat_completion(&hi()).await.unwrap().provider,
        "primary"
    );

    // Aimed at one provider: no failover.
    b.set_mode(Mode::Status(503));
    let err = client
        .chat_completion_on("secondary", &hi())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Provider { provider, source: ProviderError::Server { .. } } if provider == "secondary"),
        "{err:?}"
    );
    client.breaker("secondary").unwrap().force_open();
    let err = client
        .chat_completion_on("secondary", &hi())
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Unavailable { .. }), "{err:?}");
    client.reset_circuit_breaker("secondary").unwrap();
    assert!(matches!(
        client.reset_circuit_breaker("nope"),
        Err(ClientError::UnknownProvider(_))
    ));

    client.reset_stats();
    assert_eq!(client.stats().requests, 0);

    let clone = client.clone();
    client.close().await.unwrap();
    client.close().await.unwrap();
    assert!(clone.is_closed());
    assert!(matches!(
        clone.chat_completion(&hi()).await,
        Err(ClientError::Closed)
    ));
}

#[test]
fn the_client_and_its_futures_can_cross_threads() {
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    fn assert_send<T: Send>(_: &T) {}
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let a = FakeProvider::start("primary", Flavor::OpenAi).await;
        let client = FlexiAI::new(fast_config(&[&a])).await.unwrap();
        assert_send_sync(&client);
        let request = hi();
        let future = client.chat_completion(&request);
        assert_send(&future);
        let answer = tokio::spawn({
            let client = client.clone();
            async move { client.chat_completion(&hi()).await }
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(answer.provider, "primary");
        future.await.unwrap();
    });
}

#[tokio::test]
async fn disabled_providers_are_never_called() {
    let a = FakeProvider::start("primary", Flavor::OpenAi).await;
    let b = FakeProvider::start("secondary", Flavor::OpenAi).await;
    let mut config = fast_config(&[&a, &b]);
    config.providers[0].enabled = false;
    let client = FlexiAI::new(config).await.unwrap();
    assert_eq!(client.provider_names(), ["secondary"]);
    client.chat_completion(&hi()).await.unwrap();
    assert_eq!(a.requests(), 0);
}
