//! Memory of the client's per-model breakers: what one more (provider, model) pair costs a
//! `FlexiAI` (its breaker, its slot, its counters), counting the global allocator.

use std::sync::Arc;

use async_trait::async_trait;
use flexiai_client::{
    ChatRequest, ChatResponse, FlexiAI, FlexiAIConfig, Provider, ProviderConfig, ProviderError,
    ProviderKind,
};
use stats_alloc::Region;

/// A provider that is never called: the measure is of building the client.
#[derive(Debug)]
struct Idle;

#[async_trait]
impl Provider for Idle {
    async fn chat_completion(&self, _: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        Err(ProviderError::Request {
            message: "not called in the memory bench".into(),
        })
    }
}

async fn build(models: usize) -> crate::Result<(FlexiAI, f64)> {
    let mut provider = ProviderConfig::new("bench", ProviderKind::Custom, 1, "m0");
    provider.models = (1..models).map(|i| format!("m{i}")).collect();
    let config = FlexiAIConfig::new(vec![provider]);
    let region = Region::new(crate::GLOBAL);
    let client = FlexiAI::builder(config)
        .provider("bench", Arc::new(Idle))
        .build()
        .await?;
    let change = region.change();
    #[allow(clippy::cast_precision_loss)]
    let net = change.bytes_allocated as f64 - change.bytes_deallocated as f64
        + change.bytes_reallocated as f64;
    Ok((client, net))
}

/// Bytes one more model costs a client: the difference between a provider entry serving
/// `count` models and one serving a single model, per extra model.
pub(crate) async fn per_model_bytes(count: usize) -> crate::Result<f64> {
    let (one, base) = build(1).await?;
    let (many, total) = build(count).await?;
    drop((one, many));
    #[allow(clippy::cast_precision_loss)]
    Ok((total - base) / (count - 1) as f64)
}
