//! The [`Provider`] trait: one LLM API behind a uniform chat completion call.

use async_trait::async_trait;

use crate::error::ProviderError;
use crate::events::{ProviderEventStream, response_events};
use crate::types::{ChatRequest, ChatResponse};

/// One LLM provider: a chat completion call that returns a [`ChatResponse`] or a classified
/// [`ProviderError`], and its streamed form.
///
/// The client wraps each call in the provider's circuit breaker and its configured timeout,
/// so an implementation needs neither. The request's `model` is always set to the model the
/// client routes it to (a provider entry may serve several). A provider that cannot stream
/// keeps the default [`chat_completion_stream`](Self::chat_completion_stream), which serves
/// the whole answer as a stream of a few events. This is also how a `kind = "custom"`
/// provider of the config gets its implementation. [`OpenAiProvider`](crate::OpenAiProvider) and
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
///         let last = request.messages.last();
///         Ok(ChatResponse {
///             content: last.map(|m| m.text()).unwrap_or_default(),
///             tool_calls: Vec::new(),
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

    /// Sends `request` for a streamed answer. An error before the stream is returned (HTTP
    /// status, connection) is returned as the `Err`; one met later is the stream's last
    /// item, and a stream that ends without error must have delivered the whole answer.
    async fn chat_completion_stream(
        &self,
        request: &ChatRequest,
    ) -> Result<ProviderEventStream, ProviderError> {
        let events = response_events(self.chat_completion(request).await?);
        Ok(Box::pin(futures_util::stream::iter(
            events.into_iter().map(Ok),
        )))
    }
}
