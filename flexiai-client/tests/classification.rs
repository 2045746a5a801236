//! The HTTP adapters against the fake provider: request shape, response parsing, and how
//! every kind of failure is classified.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use flexiai_client::{
    AnthropicProvider, ChatRequest, FinishReason, Message, OpenAiProvider, Provider,
    ProviderConfig, ProviderError, ProviderKind,
};
use support::{FakeProvider, Flavor, Mode};

fn request() -> ChatRequest {
    let mut r = ChatRequest::new(vec![
        Message::system("be brief"),
        Message::user("hi"),
        Message::assistant("hello"),
        Message::user("again"),
    ])
    .temperature(0.5)
    .max_tokens(42)
    .stop("END");
    r.presence_penalty = Some(0.1);
    r.user = Some("user-7".into());
    r
}

#[tokio::test]
async fn openai_request_and_response() {
    let fake = FakeProvider::start("openai", Flavor::OpenAi).await;
    let provider = OpenAiProvider::new(&fake.config(1)).unwrap();
    let answer = provider.chat_completion(&request()).await.unwrap();
    assert_eq!(answer.content, "hello from openai");
    assert_eq!(answer.model, "fake-model-2024");
    assert_eq!(answer.provider, "openai");
    assert_eq!(answer.finish_reason, FinishReason::Stop);
    assert_eq!(answer.usage.prompt_tokens, 7);
    assert_eq!(answer.usage.total_tokens, 10);
    assert_eq!(answer.id.as_deref(), Some("chatcmpl-1"));

    let seen = fake.last().unwrap();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(
        seen.header("authorization"),
        Some("Bearer sk-openai-secret-key-0123456789")
    );
    let body = seen.json();
    assert_eq!(body["model"], "fake-model");
    assert_eq!(body["messages"].as_array().unwrap().len(), 4);
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(body["max_tokens"], 42);
    assert_eq!(body["temperature"], 0.5);
    assert_eq!(body["stop"][0], "END");
    assert_eq!(body["user"], "user-7");
    assert!(body.get("top_p").is_none());
}

#[tokio::test]
async fn anthropic_request_and_response() {
    let fake = FakeProvider::start("claude", Flavor::Anthropic).await;
    let provider = AnthropicProvider::new(&fake.config(1)).unwrap();
    let answer = provider.chat_completion(&request()).await.unwrap();
    assert_eq!(answer.content, "hello from claude");
    assert_eq!(answer.model, "fake-claude-2024");
    assert_eq!(answer.finish_reason, FinishReason::Length);
    assert_eq!(answer.usage.prompt_tokens, 9);
    assert_eq!(answer.usage.completion_tokens, 4);
    assert_eq!(answer.usage.total_tokens, 13);

    let seen = fake.last().unwrap();
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(
        seen.header("x-api-key"),
        Some("sk-claude-secret-key-0123456789")
    );
    assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"));
    assert!(seen.header("authorization").is_none());
    let body = seen.json();
    assert_eq!(body["system"], "be brief");
    assert_eq!(body["messages"].as_array().unwrap().len(), 3);
    assert_eq!(body["messages"][0]["role"], "user");
    assert_eq!(body["max_tokens"], 42);
    assert_eq!(body["stop_sequences"][0], "END");
    assert_eq!(body["metadata"]["user_id"], "user-7");
    assert!(body.get("presence_penalty").is_none());

    // max_tokens is required by Anthropic: a default is sent.
    provider
        .chat_completion(&ChatRequest::new(vec![Message::user("x")]))
        .await
        .unwrap();
    assert_eq!(
        fake.last().unwrap().json()["max_tokens"],
        ChatRequest::DEFAULT_MAX_TOKENS
    );
}

async fn error_for(flavor: Flavor, mode: Mode) -> ProviderError {
    let fake = FakeProvider::start("p", flavor).await;
    fake.set_mode(mode);
    let config = fake.config(1).timeout(Duration::from_millis(300));
    let provider: Box<dyn Provider> = match flavor {
        Flavor::OpenAi => Box::new(OpenAiProvider::new(&config).unwrap()),
        Flavor::Anthropic => Box::new(AnthropicProvider::new(&config).unwrap()),
    };
    provider
        .chat_completion(&ChatRequest::new(vec![Message::user("x")]))
        .await
        .unwrap_err()
}

#[tokio::test]
async fn failures_are_classified_for_both_flavors() {
    for flavor in [Flavor::OpenAi, Flavor::Anthropic] {
        let e = error_for(flavor, Mode::Status(500)).await;
        assert_eq!(
            e,
            ProviderError::Server {
                status: 500,
                message: "fake error 500".into()
            }
        );
        assert_eq!(
            error_for(flavor, Mode::Status(529)).await.kind(),
            "server_error"
        );
        assert_eq!(
            error_for(flavor, Mode::Status(401)).await.kind(),
            "authentication"
        );
        assert_eq!(
            error_for(flavor, Mode::Status(403)).await.kind(),
            "authentication"
        );
        assert_eq!(
            error_for(flavor, Mode::Status(400)).await.kind(),
            "invalid_request"
        );
        assert_eq!(
            error_for(flavor, Mode::Status(404)).await.kind(),
            "invalid_request"
        );
        assert_eq!(error_for(flavor, Mode::Status(408)).await.kind(), "timeout");
        let limited = error_for(flavor, Mode::RateLimited(Some("7".into()))).await;
        assert_eq!(limited.kind(), "rate_limited");
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(7)));
        let bare = error_for(flavor, Mode::RateLimited(None)).await;
        assert_eq!(bare.retry_after(), None);
        assert_eq!(
            error_for(flavor, Mode::Malformed).await.kind(),
            "invalid_response"
        );
        let hang = error_for(flavor, Mode::Hang).await;
        assert_eq!(
            hang,
            ProviderError::Timeout {
                elapsed: Duration::from_millis(300)
            }
        );
        assert_eq!(error_for(flavor, Mode::Drop).await.kind(), "connection");
    }
}

#[tokio::test]
async fn connection_refused_is_a_connection_error() {
    // Bind and drop to find a port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = ProviderConfig::new("gone", ProviderKind::OpenAi, 1, "m")
        .base_url(format!("http://127.0.0.1:{port}/v1"));
    let provider = OpenAiProvider::new(&config).unwrap();
    let e = provider
        .chat_completion(&ChatRequest::new(vec![Message::user("x")]))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "connection", "{e}");
}

#[tokio::test]
async fn an_adapter_refuses_the_wrong_kind() {
    let config = ProviderConfig::new("x", ProviderKind::Anthropic, 1, "m").api_key("k");
    assert!(OpenAiProvider::new(&config).is_err());
    let config = ProviderConfig::new("x", ProviderKind::OpenAi, 1, "m").api_key("k");
    assert!(AnthropicProvider::new(&config).is_err());
    assert_eq!(
        OpenAiProvider::new(&config)
            .map(|p| p.url().to_owned())
            .ok(),
        Some("https://api.openai.com/v1/chat/completions".into())
    );
}
