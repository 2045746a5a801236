//! Per-model breakers: each (provider, model) pair has its own breaker, so one model's
//! outage leaves its siblings alone, and a request for a model fails over along its
//! configured chain. Also custom providers declared in config and registered in code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use async_trait::async_trait;
use flexiai_client::{
    ChatRequest, ChatResponse, CircuitState, ClientError, FinishReason, FlexiAI, FlexiAIConfig,
    Message, Provider, ProviderError, StreamEvent, Usage,
};
use support::{FakeProvider, Flavor, Mode, per_model_config};

fn ask(model: Option<&str>) -> ChatRequest {
    let request = ChatRequest::new(vec![Message::user("hi")]);
    match model {
        Some(m) => request.model(m),
        None => request,
    }
}

#[tokio::test]
async fn one_models_outage_leaves_its_siblings_alone_and_fails_over_along_its_chain() {
    let openai = FakeProvider::start("openai", Flavor::OpenAi).await;
    let claude = FakeProvider::start("claude", Flavor::Anthropic).await;
    openai.set_model_mode("gpt-4o-mini", Mode::Status(503));
    let client = FlexiAI::new(per_model_config(&openai, &claude))
        .await
        .unwrap();
    let names: Vec<String> = client
        .get_provider_status()
        .into_iter()
        .map(|s| s.breaker)
        .collect();
    assert_eq!(names, ["openai", "openai/gpt-4o-mini", "claude"]);

    // gpt-4o-mini fails twice and trips its own breaker; claude-sonnet answers.
    for _ in 0..2 {
        let answer = client
            .chat_completion(&ask(Some("gpt-4o-mini")))
            .await
            .unwrap();
        assert_eq!(answer.provider, "claude");
        assert_eq!(claude.last().unwrap().json()["model"], "claude-sonnet");
    }
    assert_eq!(openai.requests(), 2);
    let mini = client.breaker("openai/gpt-4o-mini").unwrap();
    assert_eq!(mini.state(), CircuitState::Open);

    // Open: skipped without a call, streamed requests included.
    let stream = client
        .chat_completion_stream(&ask(Some("gpt-4o-mini")))
        .await
        .unwrap();
    assert_eq!(
        (stream.provider(), stream.model()),
        ("claude", "claude-sonnet")
    );
    assert_eq!(stream.attempts()[0].provider, "openai/gpt-4o-mini");
    drop(stream);
    assert_eq!(openai.requests(), 2);

    // Its sibling on the same provider is untouched.
    assert_eq!(
        client.breaker("openai").unwrap().state(),
        CircuitState::Closed
    );
    for request in [ask(None), ask(Some("gpt-4o"))] {
        let answer = client.chat_completion(&request).await.unwrap();
        assert_eq!(answer.provider, "openai");
        assert_eq!(openai.last().unwrap().json()["model"], "gpt-4o");
    }
    assert_eq!(openai.requests(), 4);
}

#[tokio::test]
async fn unknown_models_and_chains_naming_unserved_models_are_refused() {
    let openai = FakeProvider::start("openai", Flavor::OpenAi).await;
    let claude = FakeProvider::start("claude", Flavor::Anthropic).await;
    let config = per_model_config(&openai, &claude);
    let client = FlexiAI::new(config.clone()).await.unwrap();
    let err = client
        .chat_completion(&ask(Some("gpt-5")))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::UnknownModel(m) if m == "gpt-5"),
        "{err}"
    );
    let err = client
        .chat_completion_on("claude", &ask(Some("gpt-4o")))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::UnknownModel(_)), "{err}");
    assert_eq!(openai.requests() + claude.requests(), 0);

    let mut bad = config;
    bad.model_fallbacks
        .insert("gpt-4o".into(), vec!["llama-3".into()]);
    let err = bad.validate().unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid config `model_fallbacks.gpt-4o[0]`: no provider serves the model \"llama-3\""
    );
}

/// An in-process provider that cannot stream: the default `chat_completion_stream` serves
/// its answer as events.
#[derive(Debug)]
struct Canned;

#[async_trait]
impl Provider for Canned {
    async fn chat_completion(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        Ok(ChatResponse {
            content: format!(
                "canned for {}",
                request.model.as_deref().unwrap_or("default")
            ),
            tool_calls: Vec::new(),
            model: "canned-1".into(),
            provider: String::new(),
            usage: Usage::default(),
            finish_reason: FinishReason::Stop,
            id: None,
        })
    }
}

#[tokio::test]
async fn custom_providers_are_declared_in_config_and_registered_in_code() {
    let config = FlexiAIConfig::from_toml_str(
        r#"
        [[providers]]
        name = "in-house"
        kind = "custom"
        priority = 1
        model = "house-default"
        models = ["house-large"]
        "#,
    )
    .unwrap();
    let err = FlexiAI::new(config.clone()).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::InvalidConfig { field, .. } if field == "providers[0].kind"),
        "{err}"
    );
    let client = FlexiAI::builder(config)
        .provider("in-house", Arc::new(Canned))
        .build()
        .await
        .unwrap();
    let answer = client.chat_completion(&ask(None)).await.unwrap();
    assert_eq!(
        (answer.provider.as_str(), answer.content.as_str()),
        ("in-house", "canned for default")
    );
    let mut stream = client
        .chat_completion_stream(&ask(Some("house-large")))
        .await
        .unwrap();
    assert_eq!(
        stream.next_event().await.unwrap().unwrap(),
        StreamEvent::TextDelta {
            text: "canned for house-large".into()
        }
    );
    assert_eq!(
        stream.into_response().await.unwrap().finish_reason,
        FinishReason::Stop
    );
    assert_eq!(
        client
            .breaker("in-house/house-large")
            .unwrap()
            .metrics()
            .total_successes,
        1
    );
}
