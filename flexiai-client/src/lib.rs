//! FlexiAI: a multi-provider LLM client with circuit-breaker failover.
//!
//! [`FlexiAI`] sends a chat completion to the first available provider in priority order.
//! Each (provider, model) pair is guarded by its own
//! [`CircuitBreaker`](flexiai_breaker::CircuitBreaker): a pair that keeps failing (5xx,
//! timeouts, connection errors, 429) is skipped without a call until its recovery timeout is
//! over, then probed, and comes back by itself when the probe succeeds; its sibling models on
//! the same provider are not affected. Retryable errors are retried with exponential backoff
//! and jitter; a 429's `Retry-After` opens the breaker for that long. When nothing answers,
//! the error lists every try. With a `sync` section, breaker state is shared across a fleet
//! through [`flexiai_sync`], so every worker skips a failing provider together; without it
//! the client behaves the same in one process.
//!
//! What a request can carry: multi-part content ([`ContentPart`]: text, images by URL or
//! base64), tools ([`Tool`], [`ToolChoice`]) and the tool calls and results of earlier turns
//! ([`ToolCall`], [`Message::tool_result`]), a model override ([`ChatRequest::model`], routed
//! along `model_fallbacks`), `response_format`, `seed`, `stop`, `temperature`, `top_p`, and
//! provider-specific fields passed through ([`ChatRequest::extra`]). Answers carry the
//! model's [`tool_calls`](ChatResponse::tool_calls).
//!
//! Streaming: [`FlexiAI::chat_completion_stream`] returns a [`ChatStream`] of typed
//! [`StreamEvent`]s (text and tool-call deltas, usage, finish reason), parsed from
//! server-sent events for both APIs. It fails over only before the first event (within a
//! time-to-first-token budget that counts as a failure when missed); after it, an error or a
//! cut ends the stream with [`ClientError::Interrupted`], never a silent clean end.
//! [`StreamAccumulator`] folds events back into a [`ChatResponse`].
//!
//! Providers: [`OpenAiProvider`] (OpenAI and OpenAI-compatible servers through `base_url`:
//! vLLM, Ollama, LM Studio, Azure OpenAI; configs in `docs/providers.md`) and
//! [`AnthropicProvider`] (the Messages API), over reqwest with rustls, honouring the
//! environment's `HTTPS_PROXY`/`NO_PROXY` and capping answer bodies
//! (`max_response_bytes`); or any [`Provider`] of your own, declared as `kind = "custom"`.
//! API keys are [`ApiKey`]s, which never print.
//!
//! # Features
//!
//! None by default: the crate pulls no Redis client. `redis` adds `backend = "redis"` to
//! the `sync` section (flexiai-sync's Redis backend); in-process sync over any
//! [`SyncBackend`](flexiai_backend::SyncBackend) works without it.
//!
//! # Errors and the breaker
//!
//! Adapters sort every failure into a [`ProviderError`]; the [`ErrorPolicy`] (by default
//! [`DefaultErrorPolicy`], whose docs hold the full table) decides how the breaker counts it
//! and whether it is retried: rate limits, timeouts, connection errors, 5xx and malformed
//! answers count against the provider and are retried; authentication errors and other 4xx
//! are the caller's, count as proof that the provider is up, and fail over without a retry.
//!
//! # `Retry-After`
//!
//! When `retry.honor_retry_after` is on (the default), a 429's `Retry-After` (or
//! `retry-after-ms`) opens the provider's breaker for that long, cut to
//! `retry.max_retry_after_ms` and to the breaker's cap on open periods
//! ([`BreakerConfig::max_recovery_timeout`]), through
//! [`CircuitBreaker::open_for`](flexiai_breaker::CircuitBreaker::open_for):
//!
//! - The 429 is first recorded as a breaker failure (as the [`ErrorPolicy`] says; it may trip
//!   the breaker by itself), then the breaker is held open for *at least* the time asked: a
//!   longer `Retry-After` extends an open period, a shorter one never cuts it short.
//! - While it is open the provider is skipped without a call: the try is reported as
//!   [`AttemptError::Rejected`] with the time left, and [`ProviderStatus`] shows `Open` with
//!   the time left in `snapshot.open_remaining_ms`. When the time is up the breaker is
//!   half-open and the next call is its trial call (after the `Retry-After`, not after the
//!   recovery timeout); one success brings the provider back.
//! - With sync, the open period is a breaker transition like any other: it is published
//!   with the time left and every worker applies it, so the whole fleet leaves the provider
//!   alone for as long as it asked, without calling it.
//! - A forced-open or disabled breaker is left as the operator set it (a disabled breaker
//!   is bypassed, `Retry-After` included).
//! - A `Retry-After` that fits within `retry.max_backoff_ms` is also waited for before the
//!   retry on the same provider, which is then the half-open trial call. In a synced fleet
//!   trial calls are handed out fleet-wide (probe leases), so that retry may find no trial
//!   for this worker and fail over instead. A longer one fails over at once.
//!
//! The breaker is the only record of the wait (there is no separate client-side hold), so
//! [`FlexiAI::reset_circuit_breaker`] ends it too.
//!
//! # Example
//!
//! ```no_run
//! use flexiai_client::{ChatRequest, FlexiAI, FlexiAIConfig, Message};
//!
//! # async fn run() -> Result<(), flexiai_client::ClientError> {
//! // Keys stay out of the file: FLEXIAI_OPENAI_API_KEY, FLEXIAI_ANTHROPIC_API_KEY.
//! let config = FlexiAIConfig::parse_toml(r#"
//!     [[providers]]
//!     name = "openai"
//!     kind = "openai"
//!     priority = 1
//!     model = "gpt-4o-mini"
//!
//!     [[providers]]
//!     name = "anthropic"
//!     kind = "anthropic"
//!     priority = 2
//!     model = "claude-3-5-haiku-latest"
//!
//!     [circuit_breaker]
//!     failure_threshold = 3
//!     recovery_timeout_ms = 30000
//!
//!     [retry]
//!     max_attempts = 2
//! "#)?
//! .with_env()?; // applies the environment, then validates
//!
//! let client = FlexiAI::new(config).await?;
//! let answer = client
//!     .chat_completion(&ChatRequest::new(vec![Message::user("Say hi")]).max_tokens(50))
//!     .await?;
//! println!("{} answered: {}", answer.provider, answer.content);
//! // The same, streamed: failover happens before the first event arrives.
//! let answer = client
//!     .chat_completion_stream(&ChatRequest::new(vec![Message::user("Say hi")]))
//!     .await?
//!     .into_response()
//!     .await?;
//! println!("{} streamed: {}", answer.provider, answer.content);
//! for status in client.get_provider_status() {
//!     println!("{}: {}", status.name, status.state);
//! }
//! client.close().await?;
//! # Ok(())
//! # }
//! ```

mod anthropic;
mod client;
mod config;
mod content;
mod error;
mod events;
mod http;
mod openai;
mod policy;
mod provider;
mod secret;
mod sse;
mod stats;
mod streaming;
mod types;

pub use anthropic::{ANTHROPIC_VERSION, AnthropicProvider};
pub use client::{FlexiAI, FlexiAIBuilder, ProviderStatus};
pub use config::{
    DEFAULT_MAX_RESPONSE_BYTES, FlexiAIConfig, FlexiAIConfigBuilder, MAX_RESPONSE_BYTES,
    MAX_RETRIES, MAX_TIMEOUT_MS, ProviderConfig, ProviderKind, RetryConfig, RetryConfigBuilder,
};
pub use content::{ContentPart, ImageSource, ResponseFormat, Tool, ToolCall, ToolChoice};
pub use error::{Attempt, AttemptError, ClientError, ProviderError};
pub use events::{
    MAX_TOOL_CALLS, ProviderEventStream, StreamAccumulator, StreamEvent, ToolCallDelta,
    response_events,
};
pub use flexiai_breaker::{BreakerConfig, BreakerConfigBuilder, CircuitState, ErrorClass};
pub use flexiai_sync::{SyncConfig, SyncConfigBuilder};
pub use http::{http_client, retry_after};
pub use openai::OpenAiProvider;
pub use policy::{DefaultErrorPolicy, ErrorPolicy};
pub use provider::Provider;
pub use secret::ApiKey;
pub use stats::{ProviderStats, RequestStats};
pub use streaming::ChatStream;
pub use types::{ChatRequest, ChatResponse, FinishReason, Message, Role, Usage};
