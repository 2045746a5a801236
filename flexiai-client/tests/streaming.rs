//! `FlexiAI::chat_completion_stream` over fake providers speaking real SSE (the captured
//! OpenAI and Anthropic shapes in `tests/fixtures/`): events in order, tool-call deltas
//! assembled, failover only before the first event (time-to-first-token budget), typed
//! errors after it (error event, cut connection), and cancellation by the caller.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use flexiai_client::{
    AttemptError, ChatRequest, CircuitState, ClientError, FinishReason, FlexiAI, Message,
    ProviderError, StreamEvent, Usage,
};
use futures_util::StreamExt;
use support::{FakeProvider, Flavor, Mode, Sse, fast_config};

fn hi() -> ChatRequest {
    ChatRequest::new(vec![Message::user("hi")])
}

/// Every item of a stream, errors included.
async fn drain(stream: &mut flexiai_client::ChatStream) -> Vec<Result<StreamEvent, ClientError>> {
    let mut items = Vec::new();
    while let Some(item) = stream.next().await {
        items.push(item);
    }
    items
}

fn text(items: &[Result<StreamEvent, ClientError>]) -> String {
    items
        .iter()
        .filter_map(|i| match i {
            Ok(StreamEvent::TextDelta { text }) => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn text_streams_arrive_in_order_in_both_formats() {
    for (flavor, usage) in [
        (
            Flavor::OpenAi,
            Usage {
                prompt_tokens: 9,
                completion_tokens: 2,
                total_tokens: 11,
            },
        ),
        (
            Flavor::Anthropic,
            Usage {
                prompt_tokens: 25,
                completion_tokens: 15,
                total_tokens: 40,
            },
        ),
    ] {
        let fake = FakeProvider::start("primary", flavor).await;
        let client = FlexiAI::new(fast_config(&[&fake])).await.unwrap();
        let mut stream = client.chat_completion_stream(&hi()).await.unwrap();
        assert_eq!(
            (stream.provider(), stream.model()),
            ("primary", "fake-model")
        );
        assert!(stream.attempts().is_empty());
        let items = drain(&mut stream).await;
        assert_eq!(text(&items), "Hello world", "{flavor:?}");
        let events: Vec<StreamEvent> = items.into_iter().map(Result::unwrap).collect();
        assert!(
            events.contains(&StreamEvent::Usage(usage)),
            "{flavor:?}: {events:?}"
        );
        assert!(events.contains(&StreamEvent::Finish {
            reason: FinishReason::Stop
        }));
        // The request asked for a stream.
        let body = fake.last().unwrap().json();
        assert_eq!(body["stream"], true);
        let metrics = client.breaker("primary").unwrap().metrics();
        assert_eq!((metrics.total_successes, metrics.total_failures), (1, 0));
        assert_eq!(client.stats().successes, 1);
    }
}

#[tokio::test]
async fn tool_call_deltas_are_assembled_into_calls_in_both_formats() {
    for (flavor, fixture, first_id, text) in [
        (Flavor::OpenAi, "openai_tools.sse", "call_abc123", ""),
        (
            Flavor::Anthropic,
            "anthropic_tools.sse",
            "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "Let me check.",
        ),
    ] {
        let fake = FakeProvider::start("primary", flavor).await;
        fake.set_mode(Mode::Sse(Sse::of(fixture)));
        let client = FlexiAI::new(fast_config(&[&fake])).await.unwrap();
        let answer = client
            .chat_completion_stream(&hi())
            .await
            .unwrap()
            .into_response()
            .await
            .unwrap();
        assert_eq!(answer.finish_reason, FinishReason::ToolCalls, "{flavor:?}");
        assert_eq!(answer.content, text);
        assert_eq!(answer.tool_calls.len(), 2, "{flavor:?}: {answer:?}");
        assert_eq!(answer.tool_calls[0].id, first_id);
        assert_eq!(answer.tool_calls[0].name, "get_weather");
        let args: serde_json::Value =
            serde_json::from_str(&answer.tool_calls[0].arguments).unwrap();
        assert_eq!(args, serde_json::json!({"city": "Paris"}));
        assert_eq!(answer.tool_calls[1].name, "get_time");
        assert_eq!(answer.tool_calls[1].arguments, r#"{"tz": "CET"}"#);
    }
}

#[tokio::test]
async fn a_first_token_timeout_counts_as_a_failure_and_fails_over() {
    let slow = FakeProvider::start("primary", Flavor::OpenAi).await;
    let fast = FakeProvider::start("secondary", Flavor::Anthropic).await;
    slow.set_mode(Mode::Sse(Sse {
        first_delay: Duration::from_secs(3),
        ..Sse::of("openai_text.sse")
    }));
    let mut config = fast_config(&[&slow, &fast]);
    config.providers[0].first_token_timeout_ms = Some(200);
    let client = FlexiAI::new(config).await.unwrap();
    let mut stream = client.chat_completion_stream(&hi()).await.unwrap();
    assert_eq!(stream.provider(), "secondary");
    assert_eq!(stream.attempts().len(), 1);
    assert!(
        matches!(
            &stream.attempts()[0].error,
            AttemptError::Provider(ProviderError::Timeout { elapsed }) if *elapsed == Duration::from_millis(200)
        ),
        "{:?}",
        stream.attempts()
    );
    assert_eq!(text(&drain(&mut stream).await), "Hello world");
    let metrics = client.breaker("primary").unwrap().metrics();
    assert_eq!((metrics.total_failures, metrics.total_successes), (1, 0));
    assert_eq!(client.stats().failovers, 1);
}

#[tokio::test]
async fn an_error_event_mid_stream_ends_it_with_a_typed_error_without_retry() {
    for (flavor, fixture, error_type) in [
        (Flavor::OpenAi, "openai_error.sse", "server_error"),
        (Flavor::Anthropic, "anthropic_error.sse", "overloaded_error"),
    ] {
        let primary = FakeProvider::start("primary", flavor).await;
        let secondary = FakeProvider::start("secondary", flavor).await;
        primary.set_mode(Mode::Sse(Sse::of(fixture)));
        let mut config = fast_config(&[&primary, &secondary]);
        config.retry.max_attempts = 3;
        let client = FlexiAI::new(config).await.unwrap();
        let mut stream = client.chat_completion_stream(&hi()).await.unwrap();
        let items = drain(&mut stream).await;
        assert_eq!(text(&items), "Hel", "{flavor:?}");
        match items.last().unwrap() {
            Err(ClientError::Interrupted {
                provider,
                source: ProviderError::StreamError { error_type: t, .. },
                ..
            }) => {
                assert_eq!(provider, "primary");
                assert_eq!(t, error_type);
            }
            other => panic!("{flavor:?}: {other:?}"),
        }
        assert!(items[..items.len() - 1].iter().all(Result::is_ok));
        // Charged to the provider, not retried, not failed over.
        let metrics = client.breaker("primary").unwrap().metrics();
        assert_eq!((metrics.total_failures, metrics.total_successes), (1, 0));
        assert_eq!((primary.requests(), secondary.requests()), (1, 0));
        assert_eq!(client.stats().failures, 1);
    }
}

#[tokio::test]
async fn a_connection_cut_mid_stream_is_an_error_not_a_clean_end() {
    for (flavor, fixture) in [
        (Flavor::OpenAi, "openai_text.sse"),
        (Flavor::Anthropic, "anthropic_text.sse"),
    ] {
        let fake = FakeProvider::start("primary", flavor).await;
        // The first text delta, then the connection closes.
        let events = if flavor == Flavor::OpenAi { 2 } else { 4 };
        fake.set_mode(Mode::Sse(Sse {
            events: Some(events),
            ..Sse::of(fixture)
        }));
        let client = FlexiAI::new(fast_config(&[&fake])).await.unwrap();
        let mut stream = client.chat_completion_stream(&hi()).await.unwrap();
        let items = drain(&mut stream).await;
        assert_eq!(text(&items), "Hello", "{flavor:?}");
        assert!(
            matches!(
                items.last().unwrap(),
                Err(ClientError::Interrupted {
                    source: ProviderError::Connection { .. },
                    ..
                })
            ),
            "{flavor:?}: {items:?}"
        );
        assert_eq!(
            client.breaker("primary").unwrap().metrics().total_failures,
            1
        );
    }
}

#[tokio::test]
async fn a_stream_cancelled_by_the_caller_settles_its_permit_without_a_failure() {
    let fake = FakeProvider::start("primary", Flavor::Anthropic).await;
    fake.set_mode(Mode::Sse(Sse {
        events: Some(4),
        hang: true,
        ..Sse::of("anthropic_text.sse")
    }));
    let client = FlexiAI::new(fast_config(&[&fake])).await.unwrap();
    let breaker = client.breaker("primary").unwrap();

    let mut stream = client.chat_completion_stream(&hi()).await.unwrap();
    assert!(matches!(
        stream.next().await,
        Some(Ok(StreamEvent::TextDelta { .. }))
    ));
    drop(stream);
    let metrics = breaker.metrics();
    assert_eq!(metrics.calls_admitted, 1);
    assert_eq!((metrics.total_failures, metrics.total_successes), (0, 0));
    assert_eq!(metrics.state, CircuitState::Closed);

    // A cancelled half-open trial call gives its slot back: the next request is admitted.
    breaker.force_open();
    breaker.reset();
    for _ in 0..2 {
        client
            .breaker("primary")
            .unwrap()
            .try_acquire()
            .unwrap()
            .failure();
    }
    assert_eq!(breaker.state(), CircuitState::Open);
    tokio::time::sleep(Duration::from_millis(350)).await; // recovery timeout is 300 ms
    assert_eq!(breaker.poll(), CircuitState::HalfOpen);
    let slots = breaker.metrics().probe_slots;
    let stream = client.chat_completion_stream(&hi()).await.unwrap();
    assert_eq!(breaker.metrics().probe_slots, slots - 1);
    drop(stream);
    let metrics = breaker.metrics();
    assert_eq!(metrics.probe_slots, slots);
    assert_eq!(metrics.state, CircuitState::HalfOpen);
    assert_eq!(metrics.total_failures, 2, "only the two recorded by hand");
}

#[tokio::test]
async fn errors_before_the_first_event_fail_over_and_all_failing_lists_every_try() {
    let a = FakeProvider::start("primary", Flavor::OpenAi).await;
    let b = FakeProvider::start("secondary", Flavor::Anthropic).await;
    a.set_mode(Mode::Status(503));
    let client = FlexiAI::new(fast_config(&[&a, &b])).await.unwrap();
    let mut stream = client.chat_completion_stream(&hi()).await.unwrap();
    assert_eq!(stream.provider(), "secondary");
    assert_eq!(
        stream.attempts()[0].error.to_string(),
        "server error (HTTP 503): fake error 503"
    );
    assert_eq!(text(&drain(&mut stream).await), "Hello world");

    b.set_mode(Mode::Drop);
    let err = client.chat_completion_stream(&hi()).await.unwrap_err();
    let tries: Vec<&str> = err.attempts().iter().map(|a| a.provider.as_str()).collect();
    assert_eq!(tries, ["primary", "secondary"]);
}

#[tokio::test]
async fn a_streamed_body_over_the_cap_is_an_invalid_response() {
    let fake = FakeProvider::start("primary", Flavor::OpenAi).await;
    fake.set_mode(Mode::Sse(Sse::of("openai_text.sse")));
    let mut config = fast_config(&[&fake]);
    config.providers[0].max_response_bytes = 700;
    let client = FlexiAI::new(config).await.unwrap();
    let mut stream = client.chat_completion_stream(&hi()).await.unwrap();
    let items = drain(&mut stream).await;
    assert!(
        matches!(
            items.last().unwrap(),
            Err(ClientError::Interrupted { source: ProviderError::InvalidResponse { message }, .. })
                if message.contains("longer than 700 bytes")
        ),
        "{items:?}"
    );
}

#[tokio::test]
async fn a_retryable_error_before_the_first_event_is_retried_on_the_same_provider() {
    let a = FakeProvider::start("primary", Flavor::OpenAi).await;
    let b = FakeProvider::start("secondary", Flavor::OpenAi).await;
    a.script(Mode::Status(502), 1);
    let mut config = fast_config(&[&a, &b]);
    config.retry.max_attempts = 2;
    let client = FlexiAI::new(config).await.unwrap();
    let mut stream = client.chat_completion_stream(&hi()).await.unwrap();
    assert_eq!(stream.provider(), "primary");
    assert_eq!(stream.attempts().len(), 1);
    assert_eq!(stream.attempts()[0].attempt, 1);
    assert_eq!(text(&drain(&mut stream).await), "Hello world");
    assert_eq!((a.requests(), b.requests()), (2, 0));
    assert_eq!(client.stats().providers[0].retries, 1);
}
