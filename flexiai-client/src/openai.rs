//! [`OpenAiProvider`]: OpenAI's Chat Completions API, and every server that speaks it.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::config::{ProviderConfig, ProviderKind};
use crate::error::{ClientError, ProviderError};
use crate::http::{Endpoint, http_client, parse_body, send};
use crate::provider::Provider;
use crate::types::{ChatRequest, ChatResponse, FinishReason, Usage};

/// An OpenAI-compatible provider: `POST {base_url}/chat/completions` with
/// `Authorization: Bearer <key>` (no header when no key is configured).
#[derive(Debug, Clone)]
pub struct OpenAiProvider {
    endpoint: Endpoint,
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
    messages: Vec<WireMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    presence_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    frequency_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
}

#[derive(Serialize)]
struct WireMessage<'a> {
    role: &'static str,
    content: &'a str,
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

#[async_trait]
impl Provider for OpenAiProvider {
    async fn chat_completion(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        let body = WireRequest {
            model: &self.endpoint.model,
            messages: request
                .messages
                .iter()
                .map(|m| WireMessage {
                    role: m.role.as_str(),
                    content: &m.content,
                })
                .collect(),
            temperature: request.temperature,
            max_tokens: request.max_tokens,
            top_p: request.top_p,
            stop: &request.stop,
            presence_penalty: request.presence_penalty,
            frequency_penalty: request.frequency_penalty,
            user: request.user.as_deref(),
        };
        let mut http = self.endpoint.http.post(&self.endpoint.url).json(&body);
        if let Some(key) = &self.endpoint.api_key {
            http = http.bearer_auth(key.expose());
        }
        let bytes = send(http, self.endpoint.api_key.as_ref(), self.endpoint.timeout).await?;
        let wire: WireResponse = parse_body(&bytes, self.endpoint.api_key.as_ref())?;
        let Some(choice) = wire.choices.into_iter().next() else {
            return Err(ProviderError::InvalidResponse {
                message: "no choices in the answer".into(),
            });
        };
        let usage = wire.usage.map_or_else(Usage::default, |u| Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: if u.total_tokens == 0 {
                u.prompt_tokens.saturating_add(u.completion_tokens)
            } else {
                u.total_tokens
            },
        });
        Ok(ChatResponse {
            content: choice.message.content.unwrap_or_default(),
            model: wire.model.unwrap_or_else(|| self.endpoint.model.clone()),
            provider: self.endpoint.name.clone(),
            usage,
            finish_reason: finish_reason(choice.finish_reason.as_deref()),
            id: wire.id,
        })
    }
}
