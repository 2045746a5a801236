//! [`OpenAiProvider`]: OpenAI's Chat Completions API, and every server that speaks it.

use async_trait::async_trait;
use reqwest::RequestBuilder;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{ProviderConfig, ProviderKind};
use crate::content::{ContentPart, ImageSource, ResponseFormat, ToolCall, ToolChoice};
use crate::error::{ClientError, ProviderError};
use crate::events::{MAX_TOOL_CALLS, ProviderEventStream, StreamEvent, ToolCallDelta};
use crate::http::{Endpoint, KeyIn, SseDecoder, http_client, merge_extra, parse_body};
use crate::provider::Provider;
use crate::sse::SseEvent;
use crate::types::{ChatRequest, ChatResponse, FinishReason, Message, Usage};

/// An OpenAI-compatible provider: `POST {base_url}/chat/completions` with
/// `Authorization: Bearer <key>` (no header when no key is configured), or the key in the
/// header `api_key_header` names (Azure OpenAI's `api-key`); `query` parameters (Azure's
/// `api-version`) are added to the URL.
///
/// Tools go out as `tools`/`tool_choice`, tool calls come back from `tool_calls`; images as
/// `image_url` parts (inline ones as `data:` URLs). Streams are `data:` chunks up to
/// `data: [DONE]`, with `stream_options.include_usage` so the last chunk carries the usage.
#[derive(Debug, Clone)]
pub struct OpenAiProvider {
    endpoint: Endpoint,
    api_key_header: Option<String>,
}

impl OpenAiProvider {
    /// An adapter for `config` with its own HTTP client.
    pub fn new(config: &ProviderConfig) -> Result<Self, ClientError> {
        Self::with_client(config, http_client()?)
    }

    /// An adapter for `config` sharing `http` (see [`http_client`]).
    pub fn with_client(
        config: &ProviderConfig,
        http: reqwest::Client,
    ) -> Result<Self, ClientError> {
        Ok(Self {
            endpoint: Endpoint::new(config, http, ProviderKind::OpenAi, "chat/completions")?,
            api_key_header: config.api_key_header.clone(),
        })
    }

    /// The URL requests go to.
    pub fn url(&self) -> &str {
        &self.endpoint.url
    }
}

/// The request body: the conversation, tools and parameters in OpenAI's shape, then the
/// request's `extra` fields.
fn body(request: &ChatRequest, model: &str, stream: bool) -> Result<Value, ProviderError> {
    let messages: Vec<Value> = request.messages.iter().map(message).collect();
    let mut body = json!({ "model": model, "messages": messages });
    let object = body.as_object_mut().ok_or_else(|| ProviderError::Request {
        message: "request body is not an object".into(),
    })?;
    let mut put = |k: &str, v: Value| {
        object.insert(k.to_owned(), v);
    };
    if let Some(t) = request.temperature {
        put("temperature", json!(t));
    }
    if let Some(n) = request.max_tokens {
        put("max_tokens", json!(n));
    }
    if let Some(p) = request.top_p {
        put("top_p", json!(p));
    }
    if !request.stop.is_empty() {
        put("stop", json!(request.stop));
    }
    if let Some(p) = request.presence_penalty {
        put("presence_penalty", json!(p));
    }
    if let Some(p) = request.frequency_penalty {
        put("frequency_penalty", json!(p));
    }
    if let Some(u) = &request.user {
        put("user", json!(u));
    }
    if let Some(seed) = request.seed {
        put("seed", json!(seed));
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| {
                let mut function = json!({"name": t.name, "parameters": t.parameters});
                if let (Some(d), Some(f)) = (&t.description, function.as_object_mut()) {
                    f.insert("description".into(), json!(d));
                }
                json!({"type": "function", "function": function})
            })
            .collect();
        put("tools", Value::Array(tools));
    }
    if let Some(choice) = &request.tool_choice {
        put(
            "tool_choice",
            match choice {
                ToolChoice::Auto => json!("auto"),
                ToolChoice::None => json!("none"),
                ToolChoice::Required => json!("required"),
                ToolChoice::Tool(name) => json!({"type": "function", "function": {"name": name}}),
            },
        );
    }
    if let Some(format) = &request.response_format {
        put(
            "response_format",
            match format {
                ResponseFormat::Text => json!({"type": "text"}),
                ResponseFormat::JsonObject => json!({"type": "json_object"}),
                ResponseFormat::JsonSchema {
                    name,
                    schema,
                    strict,
                } => json!({"type": "json_schema",
                            "json_schema": {"name": name, "schema": schema, "strict": strict}}),
            },
        );
    }
    if stream {
        put("stream", json!(true));
        put("stream_options", json!({"include_usage": true}));
    }
    merge_extra(&mut body, &request.extra);
    Ok(body)
}

fn message(m: &Message) -> Value {
    let content = match m.plain_text() {
        Some(text) if !text.is_empty() || m.tool_calls.is_empty() => json!(text),
        Some(_) => Value::Null,
        None => Value::Array(m.content.iter().map(part).collect()),
    };
    let mut out = json!({"role": m.role.as_str(), "content": content});
    if let Some(object) = out.as_object_mut() {
        if !m.tool_calls.is_empty() {
            let calls: Vec<Value> = m
                .tool_calls
                .iter()
                .map(|c| {
                    json!({"id": c.id, "type": "function",
                                "function": {"name": c.name, "arguments": c.arguments}})
                })
                .collect();
            object.insert("tool_calls".into(), Value::Array(calls));
        }
        if let Some(id) = &m.tool_call_id {
            object.insert("tool_call_id".into(), json!(id));
        }
    }
    out
}

fn part(p: &ContentPart) -> Value {
    match p {
        ContentPart::Text { text } => json!({"type": "text", "text": text}),
        ContentPart::Image(ImageSource::Url { url }) => {
            json!({"type": "image_url", "image_url": {"url": url}})
        }
        ContentPart::Image(ImageSource::Base64 { media_type, data }) => json!({
            "type": "image_url",
            "image_url": {"url": format!("data:{media_type};base64,{data}")}
        }),
    }
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    choices: Vec<WireChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    message: WireAnswer,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireAnswer {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<WireToolCall>,
}

#[derive(Deserialize)]
struct WireToolCall {
    #[serde(default)]
    id: String,
    function: WireFunction,
}

#[derive(Deserialize)]
struct WireFunction {
    #[serde(default)]
    name: String,
    #[serde(default)]
    arguments: String,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
    #[serde(default)]
    total_tokens: u32,
}

impl WireUsage {
    fn usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            total_tokens: if self.total_tokens == 0 {
                self.prompt_tokens.saturating_add(self.completion_tokens)
            } else {
                self.total_tokens
            },
        }
    }
}

fn finish_reason(reason: Option<&str>) -> FinishReason {
    match reason {
        Some("stop") => FinishReason::Stop,
        Some("length") => FinishReason::Length,
        Some("content_filter") => FinishReason::ContentFilter,
        Some("tool_calls" | "function_call") => FinishReason::ToolCalls,
        Some(other) => FinishReason::Other(other.to_owned()),
        None => FinishReason::Unknown,
    }
}

/// One `data:` chunk of a streamed answer.
#[derive(Deserialize)]
struct WireChunk {
    #[serde(default)]
    choices: Vec<WireChunkChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct WireChunkChoice {
    #[serde(default)]
    delta: Option<WireDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<WireToolCallDelta>,
}

#[derive(Deserialize)]
struct WireToolCallDelta {
    #[serde(default)]
    index: usize,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<WireFunctionDelta>,
}

#[derive(Deserialize)]
struct WireFunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

/// Decodes `data: {chunk}` events up to `data: [DONE]`; an `{"error": ...}` chunk ends the
/// stream with [`ProviderError::StreamError`].
#[derive(Debug, Default)]
struct Decoder {
    finished: bool,
}

impl SseDecoder for Decoder {
    fn decode(
        &mut self,
        event: &SseEvent,
        out: &mut Vec<StreamEvent>,
    ) -> Result<bool, ProviderError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            return Ok(true);
        }
        let chunk: WireChunk =
            serde_json::from_str(data).map_err(|e| ProviderError::InvalidResponse {
                message: format!("a stream chunk is not the expected JSON: {e}"),
            })?;
        if let Some(error) = chunk.error {
            return Err(stream_error(&error));
        }
        for choice in chunk.choices {
            if let Some(delta) = choice.delta {
                if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                    out.push(StreamEvent::TextDelta { text });
                }
                for call in delta.tool_calls {
                    if call.index >= MAX_TOOL_CALLS {
                        return Err(ProviderError::InvalidResponse {
                            message: format!("more than {MAX_TOOL_CALLS} tool calls"),
                        });
                    }
                    let (name, arguments) = call
                        .function
                        .map_or((None, None), |f| (f.name, f.arguments));
                    out.push(StreamEvent::ToolCallDelta(ToolCallDelta {
                        index: call.index,
                        id: call.id,
                        name,
                        arguments: arguments.unwrap_or_default(),
                    }));
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.finished = true;
                out.push(StreamEvent::Finish {
                    reason: finish_reason(Some(&reason)),
                });
            }
        }
        if let Some(usage) = chunk.usage {
            out.push(StreamEvent::Usage(usage.usage()));
        }
        Ok(false)
    }

    fn complete_without_marker(&self) -> bool {
        // The answer is whole once its finish reason came; only the usage chunk and the
        // marker are missing.
        self.finished
    }
}

/// An error object met in a stream, OpenAI's shape (`{"message", "type", "code"}`).
pub(crate) fn stream_error(error: &Value) -> ProviderError {
    let text = |k: &str| error.get(k).and_then(Value::as_str).map(str::to_owned);
    ProviderError::StreamError {
        error_type: text("type")
            .or_else(|| error.get("code").map(|c| c.to_string()))
            .unwrap_or_else(|| "error".into()),
        message: text("message").unwrap_or_else(|| error.to_string()),
    }
}

impl OpenAiProvider {
    fn post(&self, request: &ChatRequest, stream: bool) -> Result<RequestBuilder, ProviderError> {
        let body = body(request, self.endpoint.model(request), stream)?;
        let key_in = match &self.api_key_header {
            None => KeyIn::Bearer,
            Some(header) => KeyIn::Header(header),
        };
        self.endpoint.post(&body, &[], key_in)
    }
}

#[async_trait]
impl Provider for OpenAiProvider {
    async fn chat_completion(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let bytes = self.endpoint.complete(self.post(request, false)?).await?;
        let wire: WireResponse = parse_body(&bytes, self.endpoint.api_key.as_ref())?;
        let Some(choice) = wire.choices.into_iter().next() else {
            return Err(ProviderError::InvalidResponse {
                message: "no choices in the answer".into(),
            });
        };
        let usage = wire.usage.map_or_else(Usage::default, |u| u.usage());
        Ok(ChatResponse {
            content: choice.message.content.unwrap_or_default(),
            tool_calls: choice
                .message
                .tool_calls
                .into_iter()
                .map(|c| ToolCall {
                    id: c.id,
                    name: c.function.name,
                    arguments: c.function.arguments,
                })
                .collect(),
            model: wire
                .model
                .unwrap_or_else(|| self.endpoint.model(request).to_owned()),
            provider: self.endpoint.name.clone(),
            usage,
            finish_reason: finish_reason(choice.finish_reason.as_deref()),
            id: wire.id,
        })
    }

    async fn chat_completion_stream(
        &self,
        request: &ChatRequest,
    ) -> Result<ProviderEventStream, ProviderError> {
        let http = self.post(request, true)?;
        self.endpoint.stream(http, Decoder::default()).await
    }
}
