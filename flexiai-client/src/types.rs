//! The provider-neutral request and response of a chat completion.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Who wrote a [`Message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model. Anthropic takes these apart from the conversation; the
    /// adapter joins them into its `system` field.
    System,
    /// The person (or program) asking.
    User,
    /// The model's earlier answers.
    Assistant,
}

impl Role {
    /// The wire name (`"system"`, `"user"`, `"assistant"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Its text.
    pub content: String,
}

impl Message {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: content.into(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// A chat completion request, the same for every provider.
///
/// The model is not part of the request: each provider uses the one configured for it, so one
/// request can fail over from an OpenAI model to an Anthropic one. Parameters a provider does
/// not know are left out of its request (Anthropic has no penalties).
///
/// ```
/// use flexiai_client::{ChatRequest, Message};
///
/// let request = ChatRequest::new(vec![Message::user("Hello")])
///     .temperature(0.2)
///     .max_tokens(256);
/// assert_eq!(request.max_tokens, Some(256));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
