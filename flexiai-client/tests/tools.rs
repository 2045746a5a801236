//! Tools and content on the wire: what each adapter sends for tool definitions, tool choice,
//! tool calls and results, multi-part content, the model override, sampling parameters and
//! pass-through fields, and how it reads tool calls back from a (non-streamed) answer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use flexiai_client::{
    ChatRequest, ClientError, ContentPart, FinishReason, FlexiAI, Message, ProviderError,
    ResponseFormat, Tool, ToolCall, ToolChoice,
};
use serde_json::json;
use support::{FakeProvider, Flavor, Mode, fast_config};

fn conversation() -> ChatRequest {
    let call = |id: &str, city: &str| ToolCall {
        id: id.into(),
        name: "get_weather".into(),
        arguments: format!(r#"{{"city":"{city}"}}"#),
    };
    ChatRequest::new(vec![
        Message::system("Be brief."),
        Message::user_parts(vec![
            ContentPart::text("Weather where these are?"),
            ContentPart::image_url("https://example.com/a.png"),
            ContentPart::image_base64("image/png", "iVBORw0KGgo="),
        ]),
        Message::assistant_tool_calls("", vec![call("call_1", "Paris"), call("call_2", "Rome")]),
        Message::tool_result("call_1", "18C"),
        Message::tool_result("call_2", "25C"),
    ])
    .tool(
        Tool::new(
            "get_weather",
            json!({"type": "object", "properties": {"city": {"type": "string"}}}),
        )
        .description("Weather in a city"),
    )
    .tool_choice(ToolChoice::Tool("get_weather".into()))
    .model("other-model")
    .temperature(0.5)
    .top_p(0.9)
    .stop("END")
    .seed(42)
    .response_format(ResponseFormat::JsonObject)
    .extra("logprobs", json!(true))
}

async fn client_for(fake: &FakeProvider) -> FlexiAI {
    let mut config = fast_config(&[fake]);
    config.providers[0].models = vec!["other-model".into()];
    FlexiAI::new(config).await.unwrap()
}

#[tokio::test]
async fn openai_requests_carry_tools_parts_tool_messages_and_parameters() {
    let fake = FakeProvider::start("openai", Flavor::OpenAi).await;
    let client = client_for(&fake).await;
    let answer = client.chat_completion(&conversation()).await.unwrap();
    assert_eq!(answer.provider, "openai");
    let body = fake.last().unwrap().json();
    assert_eq!(body["model"], "other-model");
    assert_eq!(
        body["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(
        body["messages"][1]["content"],
        json!([
            {"type": "text", "text": "Weather where these are?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ])
    );
    assert_eq!(body["messages"][2]["content"], serde_json::Value::Null);
    assert_eq!(
        body["messages"][2]["tool_calls"][0],
        json!({"id": "call_1", "type": "function",
               "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}})
    );
    assert_eq!(
        body["messages"][3],
        json!({"role": "tool", "tool_call_id": "call_1", "content": "18C"})
    );
    assert_eq!(body["tools"][0]["type"], "function");
    assert_eq!(body["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(
        body["tools"][0]["function"]["description"],
        "Weather in a city"
    );
    assert_eq!(
        body["tool_choice"],
        json!({"type": "function", "function": {"name": "get_weather"}})
    );
    assert_eq!(body["response_format"], json!({"type": "json_object"}));
    assert_eq!(
        (body["seed"].clone(), body["stop"].clone()),
        (json!(42), json!(["END"]))
    );
    assert_eq!(body["temperature"], 0.5);
    assert_eq!(body["logprobs"], true);
    assert!(body.get("stream").is_none());
    // The override went through the (openai, other-model) breaker, not the default one.
    let breaker = client.breaker("openai/other-model").unwrap();
    assert_eq!(breaker.metrics().total_successes, 1);
    assert_eq!(
        client.breaker("openai").unwrap().metrics().calls_admitted,
        0
    );
}

#[tokio::test]
async fn anthropic_requests_carry_tool_use_and_tool_result_blocks() {
    let fake = FakeProvider::start("claude", Flavor::Anthropic).await;
    let client = client_for(&fake).await;
    client.chat_completion(&conversation()).await.unwrap();
    let body = fake.last().unwrap().json();
    assert_eq!(body["model"], "other-model");
    assert_eq!(body["system"], "Be brief.");
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(
        messages.len(),
        3,
        "tool results merged into one user turn: {messages:?}"
    );
    assert_eq!(
        messages[0]["content"],
        json!([
            {"type": "text", "text": "Weather where these are?"},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": "iVBORw0KGgo="}},
        ])
    );
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(
        messages[1]["content"][0],
        json!({"type": "tool_use", "id": "call_1", "name": "get_weather",
               "input": {"city": "Paris"}})
    );
    assert_eq!(messages[2]["role"], "user");
    assert_eq!(
        messages[2]["content"],
        json!([
            {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "25C"},
        ])
    );
    assert_eq!(
        body["tools"][0],
        json!({"name": "get_weather", "description": "Weather in a city",
               "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}})
    );
    assert_eq!(
        body["tool_choice"],
        json!({"type": "tool", "name": "get_weather"})
    );
    assert_eq!(body["stop_sequences"], json!(["END"]));
    assert_eq!(body["logprobs"], true, "extra fields pass through");
    // No Messages equivalent: left out.
    assert!(body.get("seed").is_none() && body.get("response_format").is_none());
}

#[tokio::test]
async fn tool_calls_are_read_from_answers_of_both_adapters() {
    let openai = FakeProvider::start("openai", Flavor::OpenAi).await;
    openai.set_mode(Mode::Json(json!({
        "id": "chatcmpl-9", "object": "chat.completion", "model": "gpt-4o",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": null,
            "tool_calls": [{"id": "call_9", "type": "function",
                            "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}]}}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    })));
    let claude = FakeProvider::start("claude", Flavor::Anthropic).await;
    claude.set_mode(Mode::Json(json!({
        "id": "msg_9", "type": "message", "role": "assistant", "model": "claude-sonnet-4",
        "content": [{"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_9", "name": "get_weather",
                     "input": {"city": "Oslo"}}],
        "stop_reason": "tool_use", "usage": {"input_tokens": 5, "output_tokens": 7}
    })));
    for (fake, id, content) in [(&openai, "call_9", ""), (&claude, "toolu_9", "Checking.")] {
        let client = FlexiAI::new(fast_config(&[fake])).await.unwrap();
        let answer = client
            .chat_completion(&ChatRequest::new(vec![Message::user("Oslo?")]))
            .await
            .unwrap();
        assert_eq!(answer.finish_reason, FinishReason::ToolCalls);
        assert_eq!(answer.content, content);
        assert_eq!(answer.tool_calls.len(), 1);
        assert_eq!(answer.tool_calls[0].id, id);
        assert_eq!(answer.tool_calls[0].name, "get_weather");
        let args: serde_json::Value =
            serde_json::from_str(&answer.tool_calls[0].arguments).unwrap();
        assert_eq!(args, json!({"city": "Oslo"}));
    }
}

#[tokio::test]
async fn an_answer_over_the_body_cap_is_an_invalid_response() {
    let fake = FakeProvider::start("openai", Flavor::OpenAi).await;
    fake.set_mode(Mode::Json(json!({"padding": "x".repeat(4096)})));
    let mut config = fast_config(&[&fake]);
    config.providers[0].max_response_bytes = 1024;
    let client = FlexiAI::new(config).await.unwrap();
    let err = client
        .chat_completion_on("openai", &ChatRequest::new(vec![Message::user("hi")]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Provider { source: ProviderError::InvalidResponse { message }, .. }
            if message.contains("longer than 1024 bytes")),
        "{err}"
    );
}

#[tokio::test]
async fn azure_style_endpoints_get_the_query_and_key_header() {
    let fake = FakeProvider::start("azure", Flavor::OpenAi).await;
    let mut config = fast_config(&[&fake]);
    config.providers[0]
        .query
        .insert("api-version".into(), "2024-10-21".into());
    config.providers[0].api_key_header = Some("api-key".into());
    let client = FlexiAI::new(config).await.unwrap();
    client
        .chat_completion(&ChatRequest::new(vec![Message::user("hi")]))
        .await
        .unwrap();
    let seen = fake.last().unwrap();
    assert_eq!(seen.path, "/v1/chat/completions?api-version=2024-10-21");
    assert_eq!(
        seen.header("api-key"),
        Some("sk-azure-secret-key-0123456789")
    );
    assert_eq!(seen.header("authorization"), None);
}
