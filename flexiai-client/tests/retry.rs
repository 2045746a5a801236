//! Retries with backoff, and `Retry-After`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use flexiai_client::{AttemptError, ChatRequest, CircuitState, FlexiAI, Message};
use support::{FakeProvider, Flavor, Mode, fast_config};

fn hi() -> ChatRequest {
    ChatRequest::new(vec![Message::user("hi")])
}

#[tokio::test]
async fn a_transient_error_is_retried_on_the_same_provider() {
    let a = FakeProvider::start("primary", Flavor::OpenAi).await;
    let b = FakeProvider::start("secondary", Flavor::OpenAi).await;
    let mut config = fast_config(&[&a, &b]);
    config.retry.max_attempts = 3;
    config.circuit_breaker.failure_threshold = 5;
    a.script(Mode::Status(503), 1);
    a.script(Mode::Drop, 1);
    let client = FlexiAI::new(config).await.unwrap();
    let answer = client.chat_completion(&hi()).await.unwrap();
    assert_eq!(answer.provider, "primary");
    assert_eq!(a.requests(), 3);
    assert_eq!(b.requests(), 0);
    let stats = &client.stats().providers[0];
    assert_eq!((stats.calls, stats.retries, stats.failures), (3, 2, 2));
}

#[tokio::test]
async fn retries_stop_when_the_breaker_opens() {
    let a = FakeProvider::start("primary", Flavor::OpenAi).await;
    let b = FakeProvider::start("secondary", Flavor::OpenAi).await;
    let mut config = fast_config(&[&a, &b]);
    config.retry.max_attempts = 5;
    a.set_mode(Mode::Status(500));
    let client = FlexiAI::new(config).await.unwrap();
    let answer = client.chat_completion(&hi()).await.unwrap();
    assert_eq!(answer.provider, "secondary");
    assert_eq!(a.requests(), 2, "threshold 2: the third try is rejected");
    assert_eq!(client.stats().providers[0].rejected, 1);
}

#[tokio::test]
async fn caller_errors_are_not_retried_and_max_retries_overrides() {
    let a = FakeProvider::start("primary", Flavor::OpenAi).await;
    let b = FakeProvider::start("secondary", Flavor::OpenAi).await;
    let mut config = fast_config(&[&a, &b]);
    config.retry.max_attempts = 3;
    config.circuit_breaker.failure_threshold = 10;
    config.providers[1].max_retries = Some(0);
    a.set_mode(Mode::Status(422));
    b.set_mode(Mode::Status(500));
    let client = FlexiAI::new(config).await.unwrap();
    let err = client.chat_completion(&hi()).await.unwrap_err();
    assert_eq!(err.attempts().len(), 2);
    assert_eq!((a.requests(), b.requests()), (1, 1));
}

#[tokio::test]
async fn backoff_grows_between_tries() {
    let a = FakeProvider::start("primary", Flavor::OpenAi).await;
    let mut config = fast_config(&[&a]);
    config.retry.max_attempts = 3;
    config.retry.initial_backoff_ms = 100;
    config.retry.max_backoff_ms = 1000;
    config.circuit_breaker.failure_threshold = 10;
    a.set_mode(Mode::Status(500));
    let client = FlexiAI::new(config).await.unwrap();
    let started = Instant::now();
    let err = client.chat_completion(&hi()).await.unwrap_err();
    assert_eq!(err.attempts().len(), 3);
    // 100 ms then 200 ms, no jitter.
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn a_short_retry_after_is_waited_for_on_the_same_provider() {
    let a = FakeProvider::start("primary", Flavor::OpenAi).await;
    let b = FakeProvider::start("secondary", Flavor::OpenAi).await;
    let mut config = fast_config(&[&a, &b]);
    config.retry.max_attempts = 2;
    config.retry.max_backoff_ms = 1000;
    config.circuit_breaker.failure_threshold = 5;
    a.script(Mode::RateLimited(Some("0.3".into())), 1);
    let client = FlexiAI::new(config).await.unwrap();
    let started = Instant::now();
    let answer = client.chat_completion(&hi()).await.unwrap();
    assert_eq!(answer.provider, "primary");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(b.requests(), 0);
    // The breaker was open for the 300 ms; the retry after them was its trial call.
    let breaker = client.breaker("primary").unwrap();
    assert_eq!(
        (breaker.state(), breaker.version()),
        (CircuitState::Closed, 3)
    );
}

#[tokio::test]
async fn a_long_retry_after_opens_the_breaker_for_that_long() {
    let a = FakeProvider::start("primary", Flavor::OpenAi).await;
    let b = FakeProvider::start("secondary", Flavor::Anthropic).await;
    let mut config = fast_config(&[&a, &b]);
    config.retry.max_attempts = 3;
    // Far from tripping on failures, and a recovery timeout (300 ms) much shorter than the
    // Retry-After: what keeps the provider out is the Retry-After alone.
    config.circuit_breaker.failure_threshold = 5;
    a.set_mode(Mode::RateLimited(Some("2".into())));
    let client = FlexiAI::new(config).await.unwrap();

    // 2 s is over max_backoff (100 ms): fail over at once, no retry.
    assert_eq!(
        client.chat_completion(&hi()).await.unwrap().provider,
        "secondary"
    );
    let opened = Instant::now();
    assert_eq!(a.requests(), 1);
    let breaker = client.breaker("primary").unwrap();
    assert_eq!(
        (breaker.state(), breaker.version()),
        (CircuitState::Open, 1)
    );

    // The status shows it: open, unavailable, with the time left.
    let status = &client.get_provider_status()[0];
    assert_eq!(status.state, CircuitState::Open);
    assert!(!status.available);
    let left = status.snapshot.open_remaining_ms.unwrap();
    assert!(left > 1500 && left <= 2000, "{left} ms left");
    let left = status.metrics.open_remaining.unwrap();
    assert!(left > Duration::from_millis(1500) && left <= Duration::from_secs(2));
    assert_eq!(status.metrics.failure_count, 0, "counts were cleared");

    // Skipped without a call, past the 300 ms recovery timeout too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        client.chat_completion(&hi()).await.unwrap().provider,
        "secondary"
    );
    assert_eq!(a.requests(), 1);
    assert_eq!(client.stats().providers[0].rejected, 1);
    assert_eq!(client.get_provider_status()[0].state, CircuitState::Open);

    // Everything down: the open breaker shows up in the attempts with the time left.
    b.set_mode(Mode::Status(500));
    let err = client.chat_completion(&hi()).await.unwrap_err();
    match &err.attempts()[0].error {
        AttemptError::Rejected(rejected) => {
            assert_eq!(rejected.state, CircuitState::Open);
            let left = rejected.retry_after.unwrap();
            assert!(left > Duration::ZERO && left < Duration::from_millis(1500));
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    b.set_mode(Mode::Healthy);
    assert!(
        opened.elapsed() < Duration::from_millis(1900),
        "the machine was too slow for the checks above to mean anything"
    );

    // When the time is up, the next request is the trial call, and it brings it back.
    a.set_mode(Mode::Healthy);
    tokio::time::sleep(Duration::from_millis(2050).saturating_sub(opened.elapsed())).await;
    assert_eq!(
        client.chat_completion(&hi()).await.unwrap().provider,
        "primary"
    );
    assert_eq!(a.requests(), 2);
    assert_eq!(breaker.state(), CircuitState::Closed);
}

#[tokio::test]
async fn retry_after_can_be_ignored_and_is_capped() {
    let a = FakeProvider::start("primary", Flavor::OpenAi).await;
    let b = FakeProvider::start("secondary", Flavor::OpenAi).await;
    let mut config = fast_config(&[&a, &b]);
    config.retry.honor_retry_after = false;
    config.circuit_breaker.failure_threshold = 5;
    a.script(Mode::RateLimited(Some("60".into())), 1);
    let client = FlexiAI::new(config.clone()).await.unwrap();
    client.chat_completion(&hi()).await.unwrap();
    let breaker = client.breaker("primary").unwrap();
    assert_eq!(
        (breaker.state(), breaker.version()),
        (CircuitState::Closed, 0)
    );
    assert_eq!(
        client.chat_completion(&hi()).await.unwrap().provider,
        "primary"
    );

    config.retry.honor_retry_after = true;
    config.retry.max_retry_after_ms = 200;
    a.script(Mode::RateLimited(Some("60".into())), 1);
    let client = FlexiAI::new(config).await.unwrap();
    client.chat_completion(&hi()).await.unwrap();
    let status = &client.get_provider_status()[0];
    assert_eq!(status.state, CircuitState::Open);
    assert!(status.snapshot.open_remaining_ms.unwrap() <= 200);
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        client.chat_completion(&hi()).await.unwrap().provider,
        "primary"
    );

    // A 429 counts against the breaker.
    a.set_mode(Mode::RateLimited(None));
    for _ in 0..5 {
        client.chat_completion(&hi()).await.unwrap();
    }
    assert_eq!(
        client.breaker("primary").unwrap().state(),
        CircuitState::Open
    );
}

#[tokio::test]
async fn operator_states_win_over_retry_after() {
    let a = FakeProvider::start("primary", Flavor::OpenAi).await;
    let b = FakeProvider::start("secondary", Flavor::OpenAi).await;
    let mut config = fast_config(&[&a, &b]);
    config.circuit_breaker.failure_threshold = 5;
    a.set_mode(Mode::RateLimited(Some("60".into())));
    let client = FlexiAI::new(config).await.unwrap();
    let breaker = client.breaker("primary").unwrap();
    // Disabled: the breaker is bypassed, Retry-After included.
    breaker.disable();
    for n in 1..=2 {
        assert_eq!(
            client.chat_completion(&hi()).await.unwrap().provider,
            "secondary"
        );
        assert_eq!(a.requests(), n);
    }
    assert_eq!(
        (breaker.state(), breaker.version()),
        (CircuitState::Disabled, 1)
    );
    // Reset, the next Retry-After opens it; a reset ends that too.
    client.reset_circuit_breaker("primary").unwrap();
    client.chat_completion(&hi()).await.unwrap();
    assert_eq!(a.requests(), 3);
    assert_eq!(breaker.state(), CircuitState::Open);
    client.reset_circuit_breaker("primary").unwrap();
    a.set_mode(Mode::Healthy);
    assert_eq!(
        client.chat_completion(&hi()).await.unwrap().provider,
        "primary"
    );
}
