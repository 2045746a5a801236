//! [`AnthropicProvider`]: Anthropic's Messages API.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::{ProviderConfig, ProviderKind};
use crate::content::{ContentPart, ImageSource, ToolCall, ToolChoice};
use crate::error::{ClientError, ProviderError};
use crate::events::{MAX_TOOL_CALLS, ProviderEventStream, StreamEvent, ToolCallDelta};
use crate::http::{Endpoint, KeyIn, SseDecoder, http_client, merge_extra, parse_body};
use crate::provider::Provider;
use crate::sse::SseEvent;
use crate::types::{ChatRequest, ChatResponse, FinishReason, Message, Role, Usage};

/// The `anthropic-version` header sent with every request.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Anthropic's Messages API: `POST {base_url}/messages` with `x-api-key` and
/// `anthropic-version` headers.
///
/// System messages are joined (blank line between) into the request's `system` field;
/// `max_tokens` defaults to [`ChatRequest::DEFAULT_MAX_TOKENS`]; text blocks of the answer are
/// concatenated. Tools go out as `tools` with `input_schema`; an assistant's tool calls as
/// `tool_use` blocks, tool results as `tool_result` blocks of a user turn; images as `image`
/// blocks. `seed` and `response_format` have no Messages equivalent and are left out.
#[derive(Debug, Clone)]
pub struct AnthropicProvider {
    endpoint: Endpoint,
}

impl AnthropicProvider {
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
            endpoint: Endpoint::new(config, http, ProviderKind::Anthropic, "messages")?,
        })
    }

    /// The URL requests go to.
    pub fn url(&self) -> &str {
        &self.endpoint.url
    }
}

/// The request body in the Messages API's shape, then the request's `extra` fields.
fn body(request: &ChatRequest, model: &str, stream: bool) -> Result<Value, ProviderError> {
    let system: Vec<String> = request
        .messages
        .iter()
        .filter(|m| m.role == Role::System)
        .map(Message::text)
        .collect();
    let mut messages: Vec<Value> = Vec::with_capacity(request.messages.len());
    for m in request.messages.iter().filter(|m| m.role != Role::System) {
        let (role, blocks) = blocks(m)?;
        // Tool results travel as user messages; consecutive ones are merged, as the API
        // wants user and assistant turns to alternate.
        if m.role == Role::Tool
            && let Some(last) = messages.last_mut()
            && last.get("role").and_then(Value::as_str) == Some("user")
            && let Some(content) = last.get_mut("content").and_then(Value::as_array_mut)
            && content
                .iter()
                .all(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
        {
            content.extend(blocks);
            continue;
        }
        messages.push(json!({"role": role, "content": blocks}));
    }
    let mut body = json!({
        "model": model,
        "max_tokens": request.max_tokens.unwrap_or(ChatRequest::DEFAULT_MAX_TOKENS),
        "messages": messages,
    });
    let object = body.as_object_mut().ok_or_else(|| ProviderError::Request {
        message: "request body is not an object".into(),
    })?;
    let mut put = |k: &str, v: Value| {
        object.insert(k.to_owned(), v);
    };
    if !system.is_empty() {
        put("system", json!(system.join("\n\n")));
    }
    if let Some(t) = request.temperature {
        put("temperature", json!(t));
    }
    if let Some(p) = request.top_p {
        put("top_p", json!(p));
    }
    if !request.stop.is_empty() {
        put("stop_sequences", json!(request.stop));
    }
    if let Some(user) = &request.user {
        put("metadata", json!({"user_id": user}));
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| {
                let mut tool = json!({"name": t.name, "input_schema": t.parameters});
                if let (Some(d), Some(o)) = (&t.description, tool.as_object_mut()) {
                    o.insert("description".into(), json!(d));
                }
                tool
            })
            .collect();
        put("tools", Value::Array(tools));
    }
    if let Some(choice) = &request.tool_choice {
        put(
            "tool_choice",
            match choice {
                ToolChoice::Auto => json!({"type": "auto"}),
                ToolChoice::None => json!({"type": "none"}),
                ToolChoice::Required => json!({"type": "any"}),
                ToolChoice::Tool(name) => json!({"type": "tool", "name": name}),
            },
        );
    }
    if stream {
        put("stream", json!(true));
    }
    merge_extra(&mut body, &request.extra);
    Ok(body)
}

/// A message's role and content blocks: text and images; an assistant's tool calls as
/// `tool_use` blocks; a tool message as one `tool_result` block in a user turn.
fn blocks(m: &Message) -> Result<(&'static str, Vec<Value>), ProviderError> {
    if m.role == Role::Tool {
        let id = m
            .tool_call_id
            .as_deref()
            .ok_or_else(|| ProviderError::Request {
                message: "a tool message has no tool_call_id".into(),
            })?;
        return Ok((
            "user",
            vec![json!({"type": "tool_result", "tool_use_id": id, "content": m.text()})],
        ));
    }
    let mut blocks: Vec<Value> = m
        .content
        .iter()
        .filter(|p| !matches!(p, ContentPart::Text { text } if text.is_empty()))
        .map(|p| match p {
            ContentPart::Text { text } => json!({"type": "text", "text": text}),
            ContentPart::Image(ImageSource::Url { url }) => {
                json!({"type": "image", "source": {"type": "url", "url": url}})
            }
            ContentPart::Image(ImageSource::Base64 { media_type, data }) => json!({
                "type": "image",
                "source": {"type": "base64", "media_type": media_type, "data": data}
            }),
        })
        .collect();
    for call in &m.tool_calls {
        let input: Value = if call.arguments.trim().is_empty() {
            json!({})
        } else {
            serde_json::from_str(&call.arguments).map_err(|e| ProviderError::Request {
                message: format!("tool call {} has arguments that are not JSON: {e}", call.id),
            })?
        };
        blocks.push(json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input}));
    }
    Ok((m.role.as_str(), blocks))
}

#[derive(Deserialize)]
struct WireResponse {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    content: Vec<WireBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireBlock {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    input: Option<Value>,
}

#[derive(Deserialize, Default)]
struct WireUsage {
    #[serde(default)]
    input_tokens: u32,
    #[serde(default)]
    output_tokens: u32,
}

fn usage(input: u32, output: u32) -> Usage {
    Usage {
        prompt_tokens: input,
        completion_tokens: output,
        total_tokens: input.saturating_add(output),
    }
}

fn finish_reason(reason: Option<&str>) -> FinishReason {
    match reason {
        Some("end_turn" | "stop_sequence") => FinishReason::Stop,
        Some("max_tokens") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("refusal") => FinishReason::ContentFilter,
        Some(other) => FinishReason::Other(other.to_owned()),
        None => FinishReason::Unknown,
    }
}

/// Decodes the Messages stream (`message_start`, `content_block_*`, `message_delta`,
/// `message_stop`, `ping`, `error`). Tool calls are numbered by their order among the
/// answer's `tool_use` blocks, whatever the text blocks between them.
#[derive(Debug, Default)]
struct Decoder {
    input_tokens: u32,
    /// `(block index, tool-call index)` of every `tool_use` block so far (at most
    /// [`MAX_TOOL_CALLS`]).
    tools: Vec<(u64, usize)>,
    finished: bool,
}

impl Decoder {
    fn tool_index(&self, block: u64) -> Option<usize> {
        self.tools
            .iter()
            .find(|(b, _)| *b == block)
            .map(|(_, t)| *t)
    }
}

fn field<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

fn text_at(v: &Value, path: &[&str]) -> Option<String> {
    field(v, path).and_then(Value::as_str).map(str::to_owned)
}

fn u32_at(v: &Value, path: &[&str]) -> Option<u32> {
    field(v, path)
        .and_then(Value::as_u64)
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

impl SseDecoder for Decoder {
    fn decode(
        &mut self,
        event: &SseEvent,
        out: &mut Vec<StreamEvent>,
    ) -> Result<bool, ProviderError> {
        let data: Value =
            serde_json::from_str(&event.data).map_err(|e| ProviderError::InvalidResponse {
                message: format!("a stream event is not JSON: {e}"),
            })?;
        let kind = data
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(&event.event);
        match kind {
            "message_start" => {
                self.input_tokens =
                    u32_at(&data, &["message", "usage", "input_tokens"]).unwrap_or(0);
            }
            "content_block_start" => {
                let block = field(&data, &["index"])
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                let start = field(&data, &["content_block"]).unwrap_or(&Value::Null);
                match start.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        let index = self.tools.len();
                        if index >= MAX_TOOL_CALLS {
                            return Err(ProviderError::InvalidResponse {
                                message: format!("more than {MAX_TOOL_CALLS} tool calls"),
                            });
                        }
                        self.tools.push((block, index));
                        out.push(StreamEvent::ToolCallDelta(ToolCallDelta {
                            index,
                            id: text_at(start, &["id"]),
                            name: text_at(start, &["name"]),
                            arguments: String::new(),
                        }));
                    }
                    Some("text") => {
                        if let Some(text) = text_at(start, &["text"]).filter(|t| !t.is_empty()) {
                            out.push(StreamEvent::TextDelta { text });
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let block = field(&data, &["index"])
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                let delta = field(&data, &["delta"]).unwrap_or(&Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        if let Some(text) = text_at(delta, &["text"]).filter(|t| !t.is_empty()) {
                            out.push(StreamEvent::TextDelta { text });
                        }
                    }
                    Some("input_json_delta") => {
                        let index = self.tool_index(block).ok_or_else(|| {
                            ProviderError::InvalidResponse {
                                message: format!(
                                    "input_json_delta for block {block}, not a tool_use"
                                ),
                            }
                        })?;
                        out.push(StreamEvent::ToolCallDelta(ToolCallDelta {
                            index,
                            id: None,
                            name: None,
                            arguments: text_at(delta, &["partial_json"]).unwrap_or_default(),
                        }));
                    }
                    _ => {} // thinking and signature deltas: not surfaced
                }
            }
            "message_delta" => {
                if let Some(output) = u32_at(&data, &["usage", "output_tokens"]) {
                    out.push(StreamEvent::Usage(usage(self.input_tokens, output)));
                }
                if let Some(reason) = text_at(&data, &["delta", "stop_reason"]) {
                    self.finished = true;
                    out.push(StreamEvent::Finish {
                        reason: finish_reason(Some(&reason)),
                    });
                }
            }
            "message_stop" => return Ok(true),
            "error" => {
                return Err(crate::openai::stream_error(
                    data.get("error").unwrap_or(&Value::Null),
                ));
            }
            _ => {} // ping, content_block_stop, and events added later
        }
        Ok(false)
    }

    fn complete_without_marker(&self) -> bool {
        self.finished
    }
}

impl AnthropicProvider {
    fn post(
        &self,
        request: &ChatRequest,
        stream: bool,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        let body = body(request, self.endpoint.model(request), stream)?;
        self.endpoint.post(
            &body,
            &[("anthropic-version", ANTHROPIC_VERSION)],
            KeyIn::Header("x-api-key"),
        )
    }
}

#[async_trait]
impl Provider for AnthropicProvider {
    async fn chat_completion(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let bytes = self.endpoint.complete(self.post(request, false)?).await?;
        let wire: WireResponse = parse_body(&bytes, self.endpoint.api_key.as_ref())?;
        let content: String = wire
            .content
            .iter()
            .filter(|b| b.kind == "text")
            .filter_map(|b| b.text.as_deref())
            .collect();
        let tool_calls = wire
            .content
            .iter()
            .filter(|b| b.kind == "tool_use")
            .map(|b| ToolCall {
                id: b.id.clone().unwrap_or_default(),
                name: b.name.clone().unwrap_or_default(),
                arguments: b
                    .input
                    .as_ref()
                    .map_or_else(|| "{}".to_owned(), Value::to_string),
            })
            .collect();
        let u = wire.usage.unwrap_or_default();
        Ok(ChatResponse {
            content,
            tool_calls,
            model: wire
                .model
                .unwrap_or_else(|| self.endpoint.model(request).to_owned()),
            provider: self.endpoint.name.clone(),
            usage: usage(u.input_tokens, u.output_tokens),
            finish_reason: finish_reason(wire.stop_reason.as_deref()),
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
