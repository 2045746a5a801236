//! [`FlexiAI`]: the multi-provider client with breaker-guarded failover, retries and optional
//! fleet synchronization.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use flexiai_backend::SyncBackend;
use flexiai_breaker::{BreakerMetrics, BreakerSnapshot, CircuitBreaker, CircuitState};
use flexiai_sync::{StateSyncManager, SyncHealth};
use tracing::{debug, warn};

use crate::anthropic::AnthropicProvider;
use crate::config::{FlexiAIConfig, ProviderConfig, ProviderKind, RetryConfig};
use crate::error::{Attempt, AttemptError, ClientError, ProviderError};
use crate::http::http_client;
use crate::openai::OpenAiProvider;
use crate::policy::{DefaultErrorPolicy, ErrorPolicy};
use crate::provider::Provider;
use crate::stats::{ClientCounters, ProviderCounters, ProviderStats, RequestStats, bump};
use crate::types::{ChatRequest, ChatResponse};

/// A multi-provider LLM client: tries providers in priority order, each guarded by its own
/// circuit breaker, retries retryable errors with backoff, and reports every try when all
/// fail.
///
/// Cheap to clone (the clones share everything, [`close`](Self::close) included).
///
/// For each request, providers are taken in ascending priority:
///
/// 1. its breaker is asked for a permit ([`CircuitBreaker::try_acquire`]); an open breaker
///    skips it without a call. An open breaker whose open period is over admits a trial
///    call, so a recovered provider comes back by itself;
/// 2. the call runs under the provider's timeout and its outcome is recorded as the
///    [`ErrorPolicy`] says;
/// 3. a 429 with a `Retry-After` (when `retry.honor_retry_after` is on) also opens the
///    breaker for that long ([`CircuitBreaker::open_for`]; see the
///    [crate docs](crate#retry-after));
/// 4. a retryable error is retried on the same provider after backoff, up to its number of
///    tries; any other error, or the last try, moves on to the next provider.
///
/// With sync enabled, every breaker is registered with a [`StateSyncManager`], so a provider
/// that trips on one worker, or that asked one worker to wait, is skipped by all of them.
pub struct FlexiAI {
    inner: Arc<Inner>,
}

impl Clone for FlexiAI {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner {
    slots: Vec<Slot>,
    retry: RetryConfig,
    policy: Arc<dyn ErrorPolicy>,
    sync: Option<StateSyncManager>,
    counters: ClientCounters,
    closed: AtomicBool,
}

struct Slot {
    config: ProviderConfig,
    provider: Arc<dyn Provider>,
    breaker: Arc<CircuitBreaker>,
    attempts: u32,
    counters: ProviderCounters,
}

impl fmt::Debug for FlexiAI {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Providers<'a>(&'a [Slot]);
        impl fmt::Debug for Providers<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list()
                    .entries(self.0.iter().map(|s| {
                        (
                            s.config.name.as_str(),
                            s.config.priority,
                            s.breaker.state().as_str(),
                        )
                    }))
                    .finish()
            }
        }
        f.debug_struct("FlexiAI")
            .field("providers", &Providers(&self.inner.slots))
            .field("retry", &self.inner.retry)
            .field("policy", &self.inner.policy)
            .field("synced", &self.inner.sync.is_some())
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish()
    }
}

/// One provider's state, from [`FlexiAI::get_provider_status`].
///
/// With sync enabled, the breaker is kept in step with the fleet, so `state` and `snapshot`
/// are the fleet's view (as of the last event this worker received).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ProviderStatus {
    /// The configured name.
    pub name: String,
    /// Which API it speaks.
    pub kind: ProviderKind,
    /// Its priority (lower is tried first).
    pub priority: u32,
    /// The configured model.
    pub model: String,
    /// The breaker's state. A provider that answered 429 with a `Retry-After` shows `Open`
    /// until that time is up (on every worker, when synced).
    pub state: CircuitState,
    /// Whether a request would try it now: the breaker does not reject calls outright.
    pub available: bool,
    /// The breaker's snapshot (what the fleet shares); while open, `open_remaining_ms` is the
    /// time left, whether the breaker tripped on failures or a `Retry-After` opened it.
    pub snapshot: BreakerSnapshot,
    /// The breaker's counters on this worker.
    pub metrics: BreakerMetrics,
    /// This client's request counters for the provider.
    pub stats: ProviderStats,
}

/// Builds a [`FlexiAI`] with custom providers, error policy, sync backend or HTTP client.
pub struct FlexiAIBuilder {
    config: FlexiAIConfig,
    providers: HashMap<String, Arc<dyn Provider>>,
    policy: Arc<dyn ErrorPolicy>,
    sync_backend: Option<Arc<dyn SyncBackend>>,
    http: Option<reqwest::Client>,
}

impl fmt::Debug for FlexiAIBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlexiAIBuilder")
            .field("config", &self.config)
            .field(
                "custom_providers",
                &self.providers.keys().collect::<Vec<_>>(),
            )
            .field("policy", &self.policy)
            .field(
                "sync_backend",
                &self.sync_backend.as_ref().map(|b| b.kind()),
            )
            .finish_non_exhaustive()
    }
}

impl FlexiAIBuilder {
    /// Uses `provider` for the configured provider `name` instead of the HTTP adapter its
    /// `kind` names; priority, timeout, retries and breaker still come from the config.
    #[must_use]
    pub fn provider(mut self, name: impl Into<String>, provider: Arc<dyn Provider>) -> Self {
        self.providers.insert(name.into(), provider);
        self
    }

    /// Replaces the [`DefaultErrorPolicy`].
    #[must_use]
    pub fn error_policy(mut self, policy: impl ErrorPolicy + 'static) -> Self {
        self.policy = Arc::new(policy);
        self
    }

    /// Synchronizes the breakers through `backend` instead of the one the `sync` section
    /// describes, with that section's options and worker id (or their defaults). Sync is on
    /// with an explicit backend, whatever `sync.enabled` says. Workers (or clients) sharing
    /// one backend share their breakers' state.
    #[must_use]
    pub fn sync_backend(mut self, backend: Arc<dyn SyncBackend>) -> Self {
        self.sync_backend = Some(backend);
        self
    }

    /// Shares `client` among the HTTP adapters instead of building one (see
    /// [`http_client`](crate::http_client) for the default).
    #[must_use]
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Validates the config, builds the providers and breakers, and, when sync is on,
    /// registers the breakers and starts the sync manager (an unreachable backend makes it
    /// start degraded, not fail).
    pub async fn build(mut self) -> Result<FlexiAI, ClientError> {
        let config = self.config;
        config.validate()?;
        if let Some(name) = self
            .providers
            .keys()
            .find(|n| !config.providers.iter().any(|p| &p.name == *n))
        {
            return Err(ClientError::UnknownProvider(name.clone()));
        }
        let mut enabled: Vec<&ProviderConfig> =
            config.providers.iter().filter(|p| p.enabled).collect();
        enabled.sort_by_key(|p| p.priority);
        let mut slots = Vec::with_capacity(enabled.len());
        for p in enabled {
            let provider: Arc<dyn Provider> = match self.providers.remove(&p.name) {
                Some(custom) => custom,
                None => {
                    let http = match &self.http {
                        Some(http) => http.clone(),
                        None => {
                            let http = http_client()?;
                            self.http = Some(http.clone());
                            http
                        }
                    };
                    match p.kind {
                        ProviderKind::OpenAi => Arc::new(OpenAiProvider::with_client(p, http)?),
                        ProviderKind::Anthropic => {
                            Arc::new(AnthropicProvider::with_client(p, http)?)
                        }
                    }
                }
            };
            let breaker_config = p
                .circuit_breaker
                .clone()
                .unwrap_or_else(|| config.circuit_breaker.clone());
            slots.push(Slot {
                breaker: Arc::new(CircuitBreaker::new(p.name.clone(), breaker_config)?),
                provider,
                attempts: p.attempts(&config.retry),
                counters: ProviderCounters::default(),
                config: p.clone(),
            });
        }
        let sync = match (self.sync_backend, &config.sync) {
            (Some(backend), sync) => {
                let sync = sync.clone().unwrap_or_default();
                Some(
                    StateSyncManager::builder(backend)
                        .worker_id(sync.worker_id()?)
                        .options(sync.options())
                        .build()?,
                )
            }
            (None, Some(sync)) if sync.enabled => Some(StateSyncManager::from_config(sync)?),
            (None, _) => None,
        };
        if let Some(manager) = &sync {
            for slot in &slots {
                manager.register_circuit_breaker(Arc::clone(&slot.breaker))?;
            }
            manager.start().await?;
        }
        Ok(FlexiAI {
            inner: Arc::new(Inner {
                slots,
                retry: config.retry,
                policy: self.policy,
                sync,
                counters: ClientCounters::default(),
                closed: AtomicBool::new(false),
            }),
        })
    }
}

impl FlexiAI {
    /// A client for `config` with the HTTP adapters and the default error policy; starts
    /// sync when the config enables it.
    pub async fn new(config: FlexiAIConfig) -> Result<Self, ClientError> {
        Self::builder(config).build().await
    }

    /// Starts building a client for `config`.
    pub fn builder(config: FlexiAIConfig) -> FlexiAIBuilder {
        FlexiAIBuilder {
            config,
            providers: HashMap::new(),
            policy: Arc::new(DefaultErrorPolicy),
            sync_backend: None,
            http: None,
        }
    }

    /// Sends `request` to the first provider, in priority order, that is available and
    /// answers; see the [type docs](Self) for the procedure.
    ///
    /// Fails with [`ClientError::AllProvidersFailed`], listing every try (skipped providers
    /// included), when none answers, and with [`ClientError::Closed`] after
    /// [`close`](Self::close).
    pub async fn chat_completion(
        &self,
        request: &ChatRequest,
    ) -> Result<ChatResponse, ClientError> {
        self.check_open()?;
        let inner = &*self.inner;
        bump(&inner.counters.requests);
        let mut attempts = Vec::new();
        for (index, slot) in inner.slots.iter().enumerate() {
            if let Some(response) = self.try_provider(slot, request, &mut attempts).await {
                bump(&inner.counters.successes);
                if index > 0 {
                    bump(&inner.counters.failovers);
                }
                return Ok(response);
            }
        }
        bump(&inner.counters.failures);
        warn!(
            tries = attempts.len(),
            "every provider failed or was skipped"
        );
        Err(ClientError::AllProvidersFailed { attempts })
    }

    /// Sends `request` to the provider named `provider` only, through its breaker and
    /// retries, without failover.
    pub async fn chat_completion_on(
        &self,
        provider: &str,
        request: &ChatRequest,
    ) -> Result<ChatResponse, ClientError> {
        self.check_open()?;
        let slot = self.slot(provider)?;
        let inner = &*self.inner;
        bump(&inner.counters.requests);
        let mut attempts = Vec::new();
        if let Some(response) = self.try_provider(slot, request, &mut attempts).await {
            bump(&inner.counters.successes);
            return Ok(response);
        }
        bump(&inner.counters.failures);
        let provider = slot.config.name.clone();
        Err(match attempts.pop().map(|a| a.error) {
            Some(AttemptError::Provider(source)) => ClientError::Provider { provider, source },
            Some(reason) => ClientError::Unavailable { provider, reason },
            None => ClientError::UnknownProvider(provider),
        })
    }

    /// Every tried provider, in priority order: breaker state and snapshot (the fleet's view
    /// when synced, including open periods set by a `Retry-After`), and counters.
    pub fn get_provider_status(&self) -> Vec<ProviderStatus> {
        self.inner
            .slots
            .iter()
            .map(|slot| {
                let snapshot = slot.breaker.snapshot();
                ProviderStatus {
                    name: slot.config.name.clone(),
                    kind: slot.config.kind,
                    priority: slot.config.priority,
                    model: slot.config.model.clone(),
                    state: snapshot.state,
                    available: !snapshot.state.rejects_calls(),
                    metrics: slot.breaker.metrics(),
                    stats: slot.counters.snapshot(&slot.config.name),
                    snapshot,
                }
            })
            .collect()
    }

    /// Closes every breaker (clearing counts and backoff, and ending open periods set by a
    /// `Retry-After`). With sync, the resets reach the fleet like any transition.
    pub fn reset_circuit_breakers(&self) {
        for slot in &self.inner.slots {
            slot.breaker.reset();
        }
    }

    /// Closes one provider's breaker (ending an open period set by a `Retry-After` too).
    pub fn reset_circuit_breaker(&self, provider: &str) -> Result<(), ClientError> {
        self.slot(provider)?.breaker.reset();
        Ok(())
    }

    /// The breaker guarding `provider`, for manual controls
    /// ([`force_open`](CircuitBreaker::force_open), [`disable`](CircuitBreaker::disable)) and
    /// detailed metrics.
    pub fn breaker(&self, provider: &str) -> Option<Arc<CircuitBreaker>> {
        self.slot(provider).ok().map(|s| Arc::clone(&s.breaker))
    }

    /// The names of the providers tried, in priority order (disabled ones left out).
    pub fn provider_names(&self) -> Vec<String> {
        self.inner
            .slots
            .iter()
            .map(|s| s.config.name.clone())
            .collect()
    }

    /// Request counters since the client was built (or [`reset_stats`](Self::reset_stats)).
    pub fn stats(&self) -> RequestStats {
        let providers = self
            .inner
            .slots
            .iter()
            .map(|s| s.counters.snapshot(&s.config.name))
            .collect();
        self.inner.counters.snapshot(providers)
    }

    /// Sets every request counter back to zero.
    pub fn reset_stats(&self) {
        self.inner.counters.reset();
        for slot in &self.inner.slots {
            slot.counters.reset();
        }
    }

    /// The sync manager's health, when sync is on.
    pub fn sync_health(&self) -> Option<SyncHealth> {
        self.inner.sync.as_ref().map(StateSyncManager::health)
    }

    /// Whether the breakers are synchronized with a fleet.
    pub fn is_synced(&self) -> bool {
        self.inner.sync.is_some()
    }

    /// Stops the sync manager (flushing pending state, releasing probe leases, removing this
    /// worker's heartbeat) and refuses further requests with [`ClientError::Closed`].
    /// Idempotent; affects every clone.
    pub async fn close(&self) -> Result<(), ClientError> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        if let Some(manager) = &self.inner.sync {
            manager.stop().await?;
        }
        Ok(())
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }

    fn check_open(&self) -> Result<(), ClientError> {
        if self.is_closed() {
            Err(ClientError::Closed)
        } else {
            Ok(())
        }
    }

    fn slot(&self, provider: &str) -> Result<&Slot, ClientError> {
        self.inner
            .slots
            .iter()
            .find(|s| s.config.name == provider)
            .ok_or_else(|| ClientError::UnknownProvider(provider.to_owned()))
    }

    fn jittered(&self, delay: Duration) -> Duration {
        let jitter = self.inner.retry.jitter;
        if jitter <= 0.0 || delay.is_zero() {
            return delay;
        }
        // 53 random bits as a fraction in [0, 1).
        let unit = getrandom::u64().map_or(0.0, |r| (r >> 11) as f64 / (1u64 << 53) as f64);
        delay.mul_f64((1.0 - jitter * unit).clamp(0.0, 1.0))
    }

    /// Tries one provider (with retries); pushes every failed try to `attempts`.
    async fn try_provider(
        &self,
        slot: &Slot,
        request: &ChatRequest,
        attempts: &mut Vec<Attempt>,
    ) -> Option<ChatResponse> {
        let name = &slot.config.name;
        let retry = &self.inner.retry;
        let timeout = slot.config.timeout_duration();
        for n in 1..=slot.attempts {
            let permit = match slot.breaker.try_acquire() {
                Ok(permit) => permit,
                Err(rejected) => {
                    bump(&slot.counters.rejected);
                    debug!(provider = %name, state = %rejected.state, "skipped: breaker rejected");
                    attempts.push(Attempt {
                        provider: name.clone(),
                        attempt: n,
                        error: AttemptError::Rejected(rejected),
                        elapsed: Duration::ZERO,
                    });
                    return None;
                }
            };
            if n > 1 {
                bump(&slot.counters.retries);
            }
            bump(&slot.counters.calls);
            let started = Instant::now();
            let result =
                match tokio::time::timeout(timeout, slot.provider.chat_completion(request)).await {
                    Ok(result) => result,
                    Err(_) => Err(ProviderError::Timeout { elapsed: timeout }),
                };
            let elapsed = started.elapsed();
            slot.counters.add_latency(elapsed);
            let error = match result {
                Ok(mut response) => {
                    permit.success();
                    bump(&slot.counters.successes);
                    response.provider.clone_from(name);
                    return Some(response);
                }
                Err(error) => error,
            };
            permit.record_class(self.inner.policy.classify(&error));
            bump(&slot.counters.failures);
            warn!(provider = %name, attempt = n, kind = error.kind(), error = %error, "provider call failed");
            let retry_after = error
                .retry_after()
                .filter(|_| retry.honor_retry_after)
                .map(|d| d.min(Duration::from_millis(retry.max_retry_after_ms)));
            if let Some(wait) = retry_after {
                // After the failure is recorded (it may trip the breaker on its own): the
                // breaker then stays open for at least `wait`, on every worker when synced.
                // Forced-open and disabled breakers are left as the operator set them.
                if let Some(version) = slot.breaker.open_for(wait) {
                    debug!(provider = %name, wait_ms = wait.as_millis(), version, "breaker opened for Retry-After");
                }
            }
            let retryable = n < slot.attempts && self.inner.policy.is_retryable(&error);
            attempts.push(Attempt {
                provider: name.clone(),
                attempt: n,
                error: AttemptError::Provider(error),
                elapsed,
            });
            if !retryable {
                return None;
            }
            let mut delay = self.jittered(retry.backoff(n));
            if let Some(wait) = retry_after {
                if wait > Duration::from_millis(retry.max_backoff_ms) {
                    // Too long to wait here: fail over now; the open breaker skips the
                    // provider until the time is up.
                    return None;
                }
                delay = delay.max(wait);
            }
            tokio::time::sleep(delay).await;
        }
        None
    }
}
