//! [`AnthropicProvider`]: Anthropic's Messages API.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::config::{ProviderConfig, ProviderKind};
use crate::error::{ClientError, ProviderError};
use crate::http::{Endpoint, http_client, parse_body, send};
use crate::provider::Provider;
use crate::types::{ChatRequest, ChatResponse, FinishReason, Role, Usage};

/// The `anthropic-version` header sent with every request.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Anthropic's Messages API: `POST {base_url}/messages` with `x-api-key` and
/// `anthropic-version` headers.
///
/// System messages are joined (blank line between) into the request's `system` field;
/// `max_tokens` defaults to [`ChatRequest::DEFAULT_MAX_TOKENS`]; text blocks of the answer are
/// concatenated.
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

#[derive(Serialize)]
struct WireRequest<'a> {
    model: &'a str,
    max_tokens: u32,
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop_sequences: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<WireMetadata<'a>>,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct WireMetadata<'a> {
    user_id: &'a str,
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
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: u32,
    #[serde(default)]
    output_tokens: u32,
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

#[async_trait]
impl Provider for AnthropicProvider {
    async fn chat_completion(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let system: Vec<&str> = request
            .messages
            .iter()
            .filter(|m| m.role == Role::System)
            .map(|m| m.content.as_str())
            .collect();
        let body = WireRequest {
            model: &self.endpoint.model,
            max_tokens: request
                .max_tokens
                .unwrap_or(ChatRequest::DEFAULT_MAX_TOKENS),
            messages: request
                .messages
                .iter()
                .filter(|m| m.role != Role::System)
                .map(|m| WireMessage {
                    role: m.role.as_str(),
                    content: &m.content,
                })
                .collect(),
            system: (!system.is_empty()).then(|| system.join("\n\n")),
            temperature: request.temperature,
            top_p: request.top_p,
            stop_sequences: &request.stop,
            metadata: request
                .user
                .as_deref()
                .map(|user_id| WireMetadata { user_id }),
        };
        let mut http = self
            .endpoint
            .http
            .post(&self.endpoint.url)
            .header("anthropic-version", ANTHROPIC_VERSION)
            .json(&body);
        if let Some(key) = &self.endpoint.api_key {
            let mut value = reqwest::header::HeaderValue::from_str(key.expose()).map_err(|_| {
                ProviderError::Request {
                    message: "the API key is not a valid header value".into(),
                }
            })?;
            value.set_sensitive(true);
            http = http.header("x-api-key", value);
        }
        let bytes = send(http, self.endpoint.api_key.as_ref(), self.endpoint.timeout).await?;
        let wire: WireResponse = parse_body(&bytes, self.endpoint.api_key.as_ref())?;
        let content: String = wire
            .content
            .iter()
            .filter(|b| b.kind == "text")
            .filter_map(|b| b.text.as_deref())
            .collect();
        let usage = wire.usage.map_or_else(Usage::default, |u| Usage {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            total_tokens: u.input_tokens.saturating_add(u.output_tokens),
        });
        Ok(ChatResponse {
            content,
            model: wire.model.unwrap_or_else(|| self.endpoint.model.clone()),
            provider: self.endpoint.name.clone(),
            usage,
            finish_reason: finish_reason(wire.stop_reason.as_deref()),
            id: wire.id,
        })
    }
}
