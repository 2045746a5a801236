//! The [`Provider`] trait: one LLM API behind a uniform chat completion call.

use async_trait::async_trait;

use crate::error::ProviderError;
use crate::types::{ChatRequest, ChatResponse};

/// One LLM provider: a chat completion call that returns a [`ChatResponse`] or a classified
/// [`ProviderError`].
///
/// The client wraps each call in the provider's circuit breaker and its configured timeout,
/// so an implementation needs neither. [`OpenAiProvider`](crate::OpenAiProvider) and
/// [`AnthropicProvider`](crate::AnthropicProvider) are the HTTP implementations; implement it
/// yourself for another API or a test double and pass it to
/// [`FlexiAIBuilder::provider`](crate::FlexiAIBuilder::provider).
///
/// ```
/// use async_trait::async_trait;
/// use flexiai_client::{ChatRequest, ChatResponse, FinishReason, Provider, ProviderError, Usage};
///
/// #[derive(Debug)]
/// struct Echo;
///
/// #[async_trait]
/// impl Provider for Echo {
///     async fn chat_completion(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
///         let last = request.messages.last().map(|m| m.content.clone()).unwrap_or_default();
///         Ok(ChatResponse {
///             content: last,
///             model: "echo-1".into(),
///             provider: "echo".into(),
///             usage: Usage::default(),
///             finish_reason: FinishReason::Stop,
///             id: None,
///         })
///     }
/// }
/// ```
#[async_trait]
pub trait Provider: Send + Sync + std::fmt::Debug {
    /// Sends `request` and returns the provider's answer.
    async fn chat_completion(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError>;
}
