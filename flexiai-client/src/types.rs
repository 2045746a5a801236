//! The provider-neutral request and response of a chat completion.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::content::{
    ContentPart, ResponseFormat, Tool, ToolCall, ToolChoice, deserialize_content,
};

/// Who wrote a [`Message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Role {
    /// Instructions for the model. Anthropic takes these apart from the conversation; the
    /// adapter joins them into its `system` field.
    System,
    /// The person (or program) asking.
    User,
    /// The model's earlier answers (and the tool calls they made).
    Assistant,
    /// The result of a tool call (OpenAI `tool` messages; Anthropic `tool_result` blocks in
    /// a user message).
    Tool,
}

impl Role {
    /// The wire name (`"system"`, `"user"`, `"assistant"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// One message of a conversation: text or multi-part content, and for tool use the calls an
/// assistant message made or the call a tool message answers.
///
/// In JSON, `content` may be a string (one text part) or a list of parts.
///
/// ```
/// use flexiai_client::{Message, Role, ToolCall};
///
/// let call = ToolCall { id: "call_1".into(), name: "get_weather".into(),
///                       arguments: r#"{"city":"Paris"}"#.into() };
/// let history = vec![
///     Message::user("Weather in Paris?"),
///     Message::assistant_tool_calls("", vec![call]),
///     Message::tool_result("call_1", r#"{"temp_c": 18}"#),
/// ];
/// assert_eq!(history[2].role, Role::Tool);
/// let parsed: Message = serde_json::from_str(r#"{"role": "user", "content": "Hi"}"#)?;
/// assert_eq!(parsed, Message::user("Hi"));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Its content, in order.
    #[serde(deserialize_with = "deserialize_content")]
    pub content: Vec<ContentPart>,
    /// For an assistant message: the tool calls it made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a tool message: the id of the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    fn new(role: Role, content: Vec<ContentPart>) -> Self {
        Self {
            role,
            content,
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }

    fn text_parts(text: String) -> Vec<ContentPart> {
        if text.is_empty() {
            Vec::new()
        } else {
            vec![ContentPart::Text { text }]
        }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, vec![ContentPart::text(content)])
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, vec![ContentPart::text(content)])
    }

    /// A user message of several parts (text and images).
    pub fn user_parts(parts: Vec<ContentPart>) -> Self {
        Self::new(Role::User, parts)
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, vec![ContentPart::text(content)])
    }

    /// An assistant message that called tools (its text may be empty), to send back with
    /// their results.
    pub fn assistant_tool_calls(text: impl Into<String>, calls: Vec<ToolCall>) -> Self {
        let mut message = Self::new(Role::Assistant, Self::text_parts(text.into()));
        message.tool_calls = calls;
        message
    }

    /// The result of the tool call `call_id`.
    pub fn tool_result(call_id: impl Into<String>, content: impl Into<String>) -> Self {
        let mut message = Self::new(Role::Tool, vec![ContentPart::text(content)]);
        message.tool_call_id = Some(call_id.into());
        message
    }

    /// The text parts, joined.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|p| match p {
                ContentPart::Text { text } => Some(text.as_str()),
                ContentPart::Image(_) => None,
            })
            .collect()
    }

    /// Whether the content is one text part (sent as a plain string).
    pub(crate) fn plain_text(&self) -> Option<&str> {
        match self.content.as_slice() {
            [ContentPart::Text { text }] => Some(text),
            [] => Some(""),
            _ => None,
        }
    }
}

/// A chat completion request, the same for every provider.
///
/// Without [`model`](Self::model), each provider uses its default model (`model` in its
/// config), so one request can fail over from an OpenAI model to an Anthropic one. With it,
/// the request goes to the providers that list that model, then along the model's fallback
/// chain (`model_fallbacks` in [`FlexiAIConfig`](crate::FlexiAIConfig)). Parameters a
/// provider does not know are left out of its request (Anthropic has no penalties, `seed` or
/// `response_format`); [`extra`](Self::extra) fields are added to every provider's request
/// body as they are.
///
/// ```
/// use flexiai_client::{ChatRequest, Message, ResponseFormat};
///
/// let request = ChatRequest::new(vec![Message::user("Hello")])
///     .model("gpt-4o")
///     .temperature(0.2)
///     .max_tokens(256)
///     .seed(7)
///     .response_format(ResponseFormat::JsonObject)
///     .extra("logprobs", serde_json::json!(true));
/// assert_eq!(request.max_tokens, Some(256));
/// assert_eq!(request.model.as_deref(), Some("gpt-4o"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChatRequest {
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Most tokens to generate. Anthropic requires a value; its adapter sends
    /// [`ChatRequest::DEFAULT_MAX_TOKENS`] when this is `None`.
    pub max_tokens: Option<u32>,
    /// Nucleus sampling.
    pub top_p: Option<f32>,
    /// Sequences that stop generation.
    pub stop: Vec<String>,
    /// OpenAI's presence penalty (ignored by Anthropic).
    pub presence_penalty: Option<f32>,
    /// OpenAI's frequency penalty (ignored by Anthropic).
    pub frequency_penalty: Option<f32>,
    /// An end-user id for the provider's abuse monitoring (`user` for OpenAI,
    /// `metadata.user_id` for Anthropic).
    pub user: Option<String>,
    /// The model to ask for instead of the providers' defaults (see above).
    #[serde(default)]
    pub model: Option<String>,
    /// Tools the model may call.
    #[serde(default)]
    pub tools: Vec<Tool>,
    /// Whether and which tool must be called.
    #[serde(default)]
    pub tool_choice: Option<ToolChoice>,
    /// The answer's format (OpenAI only).
    #[serde(default)]
    pub response_format: Option<ResponseFormat>,
    /// Seed for deterministic sampling (OpenAI only).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Provider-specific fields, added to the top level of the request body (after the
    /// client's own, so they can also override one).
    #[serde(default)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ChatRequest {
    /// `max_tokens` sent to providers that require it when the request has none.
    pub const DEFAULT_MAX_TOKENS: u32 = 1024;

    /// A request for `messages` with every parameter at the provider's default.
    pub fn new(messages: Vec<Message>) -> Self {
        Self {
            messages,
            ..Self::default()
        }
    }

    /// Sets the temperature.
    #[must_use]
    pub fn temperature(mut self, temperature: f32) -> Self {
        self.temperature = Some(temperature);
        self
    }

    /// Sets the token limit.
    #[must_use]
    pub fn max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// Sets nucleus sampling.
    #[must_use]
    pub fn top_p(mut self, top_p: f32) -> Self {
        self.top_p = Some(top_p);
        self
    }

    /// Asks for `model` instead of the providers' defaults.
    #[must_use]
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Adds a tool the model may call.
    #[must_use]
    pub fn tool(mut self, tool: Tool) -> Self {
        self.tools.push(tool);
        self
    }

    /// Sets the tool choice.
    #[must_use]
    pub fn tool_choice(mut self, choice: ToolChoice) -> Self {
        self.tool_choice = Some(choice);
        self
    }

    /// Sets the answer's format.
    #[must_use]
    pub fn response_format(mut self, format: ResponseFormat) -> Self {
        self.response_format = Some(format);
        self
    }

    /// Sets the seed.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Adds a provider-specific field to the request body.
    #[must_use]
    pub fn extra(mut self, key: impl Into<String>, value: serde_json::Value) -> Self {
        self.extra.insert(key.into(), value);
        self
    }

    /// Adds a stop sequence.
    #[must_use]
    pub fn stop(mut self, sequence: impl Into<String>) -> Self {
        self.stop.push(sequence.into());
        self
    }
}

/// Token counts reported by the provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens in the request.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
    /// Their sum.
    pub total_tokens: u32,
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FinishReason {
    /// A natural end or a stop sequence (OpenAI `stop`, Anthropic `end_turn`/`stop_sequence`).
    Stop,
    /// The token limit was reached (OpenAI `length`, Anthropic `max_tokens`).
    Length,
    /// The provider's content filter cut the answer.
    ContentFilter,
    /// The model asked for a tool (OpenAI `tool_calls`, Anthropic `tool_use`).
    ToolCalls,
    /// A reason this crate does not know, as the provider spelled it.
    Other(String),
    /// The provider did not say.
    Unknown,
}

impl fmt::Display for FinishReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FinishReason::Stop => f.write_str("stop"),
            FinishReason::Length => f.write_str("length"),
            FinishReason::ContentFilter => f.write_str("content_filter"),
            FinishReason::ToolCalls => f.write_str("tool_calls"),
            FinishReason::Other(other) => f.write_str(other),
            FinishReason::Unknown => f.write_str("unknown"),
        }
    }
}

/// A chat completion, the same for every provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The generated text (text blocks joined, for Anthropic).
    pub content: String,
    /// The tools the model called, in order (`finish_reason` is then
    /// [`FinishReason::ToolCalls`]).
    #[serde(default)]
    pub tool_calls: Vec<ToolCall>,
    /// The model that answered, as the provider reported it.
    pub model: String,
    /// The configured name of the provider that answered.
    pub provider: String,
    /// Token counts.
    pub usage: Usage,
    /// Why generation stopped.
    pub finish_reason: FinishReason,
    /// The provider's id for the completion, if it sent one.
    pub id: Option<String>,
}
