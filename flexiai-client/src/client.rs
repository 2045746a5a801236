//! [`FlexiAI`]: the multi-provider client with breaker-guarded failover, retries and optional
//! fleet synchronization.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use flexiai_backend::SyncBackend;
use flexiai_breaker::{BreakerMetrics, BreakerSnapshot, CircuitBreaker, CircuitState, Permit};
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
/// Each (provider, model) pair has its own breaker (see
/// [`ProviderConfig`](crate::ProviderConfig#models-and-their-breakers) for their names). A
/// request without a [`model`](ChatRequest::model) goes through the providers' default
/// models; one with a model goes through the pairs serving it, then along its
/// `model_fallbacks` chain. For each request, the pairs are taken in ascending priority:
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
///
/// [`chat_completion_stream`](Self::chat_completion_stream) does the same for streamed
/// answers, failing over only before the first event.
pub struct FlexiAI {
    pub(crate) inner: Arc<Inner>,
}

impl Clone for FlexiAI {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) slots: Vec<Slot>,
    pub(crate) retry: RetryConfig,
    pub(crate) policy: Arc<dyn ErrorPolicy>,
    sync: Option<StateSyncManager>,
    pub(crate) counters: ClientCounters,
    closed: AtomicBool,
    fallbacks: BTreeMap<String, Vec<String>>,
}

/// One (provider, model) pair: what a request is routed to, with its own breaker.
pub(crate) struct Slot {
    /// The provider's entry, shared by the slots of its models.
    pub(crate) config: Arc<ProviderConfig>,
    /// The model this slot asks for.
    pub(crate) model: String,
    /// Whether it is the provider's default model (requests go out with `model: None`).
    default: bool,
    pub(crate) provider: Arc<dyn Provider>,
    pub(crate) breaker: Arc<CircuitBreaker>,
    pub(crate) attempts: u32,
    pub(crate) counters: ProviderCounters,
}

impl Slot {
    /// `request` as this slot sends it: unchanged for the default model when the request
    /// names none (or names this one), else with `model` set.
    pub(crate) fn request<'a>(&self, request: &'a ChatRequest) -> Cow<'a, ChatRequest> {
        match request.model.as_deref() {
            Some(m) if m == self.model => Cow::Borrowed(request),
            None if self.default => Cow::Borrowed(request),
            _ => {
                let mut owned = request.clone();
                owned.model = Some(self.model.clone());
                Cow::Owned(owned)
            }
        }
    }

    pub(crate) fn name(&self) -> &str {
        self.breaker.name()
    }
}

impl fmt::Debug for FlexiAI {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Providers<'a>(&'a [Slot]);
        impl fmt::Debug for Providers<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_list()
                    .entries(
                        self.0
                            .iter()
                            .map(|s| (s.name(), s.config.priority, s.breaker.state().as_str())),
                    )
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

/// One (provider, model) pair's state, from [`FlexiAI::get_provider_status`].
///
/// With sync enabled, the breaker is kept in step with the fleet, so `state` and `snapshot`
/// are the fleet's view (as of the last event this worker received).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ProviderStatus {
    /// The provider's configured name.
    pub name: String,
    /// The breaker's name: `name` for the provider's default model, `name/model` for the
    /// others.
    pub breaker: String,
    /// Which API it speaks.
    pub kind: ProviderKind,
    /// Its priority (lower is tried first).
    pub priority: u32,
    /// The model of this pair.
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
    /// `kind` names; priority, timeout, retries and breaker still come from the config. A
    /// `kind = "custom"` entry must get one this way.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use async_trait::async_trait;
    /// # use flexiai_client::*;
    /// #[derive(Debug)]
    /// struct Local;
    /// #[async_trait]
    /// impl Provider for Local {
    ///     async fn chat_completion(&self, r: &ChatRequest) -> Result<ChatResponse, ProviderError> {
    ///         Ok(ChatResponse { content: "local".into(), tool_calls: vec![], model: "m".into(),
    ///             provider: String::new(), usage: Usage::default(),
    ///             finish_reason: FinishReason::Stop, id: None })
    ///     }
    /// }
    /// # async fn run() -> Result<(), ClientError> {
    /// let config = FlexiAIConfig::from_toml_str(r#"
    ///     [[providers]]
    ///     name = "local"
    ///     kind = "custom"
    ///     priority = 1
    ///     model = "in-process"
    /// "#)?;
    /// let client = FlexiAI::builder(config).provider("local", Arc::new(Local)).build().await?;
    /// let answer = client.chat_completion(&ChatRequest::new(vec![Message::user("hi")])).await?;
    /// assert_eq!((answer.provider.as_str(), answer.content.as_str()), ("local", "local"));
    /// # Ok(()) }
    /// ```
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
                        ProviderKind::Custom => {
                            let i = config
                                .providers
                                .iter()
                                .position(|c| c.name == p.name)
                                .unwrap_or_default();
                            return Err(ClientError::config(
                                format!("providers[{i}].kind"),
                                format!(
                                    "custom provider {:?} has no implementation: register one \
                                     with FlexiAIBuilder::provider",
                                    p.name
                                ),
                            ));
                        }
                    }
                }
            };
            let breaker_config = p
                .circuit_breaker
                .clone()
                .unwrap_or_else(|| config.circuit_breaker.clone());
            let shared = Arc::new(p.clone());
            for model in p.served_models() {
                slots.push(Slot {
                    breaker: Arc::new(CircuitBreaker::new(
                        p.breaker_name(model),
                        breaker_config.clone(),
                    )?),
                    model: model.to_owned(),
                    default: model == p.model,
                    provider: Arc::clone(&provider),
                    attempts: p.attempts(&config.retry),
                    counters: ProviderCounters::default(),
                    config: Arc::clone(&shared),
                });
            }
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
                fallbacks: config.model_fallbacks,
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
        let plan = self.plan(request)?;
        let inner = &*self.inner;
        bump(&inner.counters.requests);
        let mut attempts = Vec::new();
        for (position, &index) in plan.iter().enumerate() {
            let slot = &inner.slots[index];
            if let Some(response) = self.try_provider(slot, request, &mut attempts).await {
                bump(&inner.counters.successes);
                if position > 0 {
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

    /// Sends `request` to the provider named `provider` only (its model, or the provider's
    /// default), through that pair's breaker and retries, without failover.
    pub async fn chat_completion_on(
        &self,
        provider: &str,
        request: &ChatRequest,
    ) -> Result<ChatResponse, ClientError> {
        self.check_open()?;
        let slot = self.pair(provider, request.model.as_deref())?;
        let inner = &*self.inner;
        bump(&inner.counters.requests);
        let mut attempts = Vec::new();
        if let Some(response) = self.try_provider(slot, request, &mut attempts).await {
            bump(&inner.counters.successes);
            return Ok(response);
        }
        bump(&inner.counters.failures);
        let provider = slot.name().to_owned();
        Err(match attempts.pop().map(|a| a.error) {
            Some(AttemptError::Provider(source)) => ClientError::Provider { provider, source },
            Some(reason) => ClientError::Unavailable { provider, reason },
            None => ClientError::UnknownProvider(provider),
        })
    }

    /// Every (provider, model) pair, in priority order (a provider's default model first):
    /// breaker state and snapshot (the fleet's view when synced, including open periods set
    /// by a `Retry-After`), and counters.
    pub fn get_provider_status(&self) -> Vec<ProviderStatus> {
        self.inner
            .slots
            .iter()
            .map(|slot| {
                let snapshot = slot.breaker.snapshot();
                ProviderStatus {
                    name: slot.config.name.clone(),
                    breaker: slot.name().to_owned(),
                    kind: slot.config.kind,
                    priority: slot.config.priority,
                    model: slot.model.clone(),
                    state: snapshot.state,
                    available: !snapshot.state.rejects_calls(),
                    metrics: slot.breaker.metrics(),
                    stats: slot.counters.snapshot(slot.name()),
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

    /// Closes one breaker, by its name (the provider's name for its default model,
    /// `provider/model` for the others), ending an open period set by a `Retry-After` too.
    pub fn reset_circuit_breaker(&self, provider: &str) -> Result<(), ClientError> {
        self.slot(provider)?.breaker.reset();
        Ok(())
    }

    /// The breaker named `provider` (the provider's name for its default model,
    /// `provider/model` for the others), for manual controls
    /// ([`force_open`](CircuitBreaker::force_open), [`disable`](CircuitBreaker::disable)) and
    /// detailed metrics.
    pub fn breaker(&self, provider: &str) -> Option<Arc<CircuitBreaker>> {
        self.slot(provider).ok().map(|s| Arc::clone(&s.breaker))
    }

    /// The names of the providers tried, in priority order (disabled ones left out).
    pub fn provider_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for slot in &self.inner.slots {
            if names.last() != Some(&slot.config.name) {
                names.push(slot.config.name.clone());
            }
        }
        names
    }

    /// Request counters since the client was built (or [`reset_stats`](Self::reset_stats)).
    pub fn stats(&self) -> RequestStats {
        let providers = self
            .inner
            .slots
            .iter()
            .map(|s| s.counters.snapshot(s.name()))
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

    pub(crate) fn check_open(&self) -> Result<(), ClientError> {
        if self.is_closed() {
            Err(ClientError::Closed)
        } else {
            Ok(())
        }
    }

    /// The slot whose breaker is named `breaker`.
    fn slot(&self, breaker: &str) -> Result<&Slot, ClientError> {
        self.inner
            .slots
            .iter()
            .find(|s| s.name() == breaker)
            .ok_or_else(|| ClientError::UnknownProvider(breaker.to_owned()))
    }

    /// The slot of `model` (or the default) on `provider`.
    pub(crate) fn pair(&self, provider: &str, model: Option<&str>) -> Result<&Slot, ClientError> {
        let mut of_provider = self
            .inner
            .slots
            .iter()
            .filter(|s| s.config.name == provider)
            .peekable();
        if of_provider.peek().is_none() {
            return Err(ClientError::UnknownProvider(provider.to_owned()));
        }
        of_provider
            .find(|s| model.map_or(s.default, |m| s.model == m))
            .ok_or_else(|| ClientError::UnknownModel(model.unwrap_or_default().to_owned()))
    }

    /// The slots a request goes through, in order: the default models by priority, or the
    /// slots serving its model and then each model of its fallback chain.
    pub(crate) fn plan(&self, request: &ChatRequest) -> Result<Vec<usize>, ClientError> {
        let slots = &self.inner.slots;
        let Some(model) = request.model.as_deref() else {
            return Ok((0..slots.len()).filter(|&i| slots[i].default).collect());
        };
        let chain = self
            .inner
            .fallbacks
            .get(model)
            .map_or(&[][..], Vec::as_slice);
        let mut plan = Vec::new();
        for m in std::iter::once(model).chain(chain.iter().map(String::as_str)) {
            for (i, slot) in slots.iter().enumerate() {
                if slot.model == m && !plan.contains(&i) {
                    plan.push(i);
                }
            }
        }
        if plan.is_empty() {
            return Err(ClientError::UnknownModel(model.to_owned()));
        }
        Ok(plan)
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

    /// Tries one slot (with retries); pushes every failed try to `attempts`.
    async fn try_provider(
        &self,
        slot: &Slot,
        request: &ChatRequest,
        attempts: &mut Vec<Attempt>,
    ) -> Option<ChatResponse> {
        let timeout = slot.config.timeout_duration();
        let request = slot.request(request);
        for n in 1..=slot.attempts {
            let permit = self.admit(slot, n, attempts)?;
            let started = Instant::now();
            let result = match tokio::time::timeout(
                timeout,
                slot.provider.chat_completion(&request),
            )
            .await
            {
                Ok(result) => result,
                Err(_) => Err(ProviderError::Timeout { elapsed: timeout }),
            };
            let elapsed = started.elapsed();
            slot.counters.add_latency(elapsed);
            match result {
                Ok(mut response) => {
                    permit.success();
                    bump(&slot.counters.successes);
                    response.provider.clone_from(&slot.config.name);
                    return Some(response);
                }
                Err(error) => {
                    let delay = self.failed(slot, n, permit, error, elapsed, attempts)?;
                    tokio::time::sleep(delay).await;
                }
            }
        }
        None
    }

    /// Asks the slot's breaker for try `n`; a refusal is recorded in `attempts`.
    pub(crate) fn admit<'s>(
        &self,
        slot: &'s Slot,
        n: u32,
        attempts: &mut Vec<Attempt>,
    ) -> Option<Permit<'s>> {
        match slot.breaker.try_acquire() {
            Ok(permit) => {
                if n > 1 {
                    bump(&slot.counters.retries);
                }
                bump(&slot.counters.calls);
                Some(permit)
            }
            Err(rejected) => {
                bump(&slot.counters.rejected);
                debug!(provider = %slot.name(), state = %rejected.state, "skipped: breaker rejected");
                attempts.push(Attempt {
                    provider: slot.name().to_owned(),
                    attempt: n,
                    error: AttemptError::Rejected(rejected),
                    elapsed: Duration::ZERO,
                });
                None
            }
        }
    }

    /// Settles a failed try `n` as the policy says, honours a `Retry-After`, records the try
    /// in `attempts`, and returns the delay before the next try when there is one.
    pub(crate) fn failed(
        &self,
        slot: &Slot,
        n: u32,
        permit: Permit<'_>,
        error: ProviderError,
        elapsed: Duration,
        attempts: &mut Vec<Attempt>,
    ) -> Option<Duration> {
        let name = slot.name();
        let retry = &self.inner.retry;
        self.charge(slot, permit, &error);
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
            provider: name.to_owned(),
            attempt: n,
            error: AttemptError::Provider(error),
            elapsed,
        });
        if !retryable {
            return None;
        }
        let delay = self.jittered(retry.backoff(n));
        match retry_after {
            // Too long to wait here: fail over now; the open breaker skips the provider
            // until the time is up.
            Some(wait) if wait > Duration::from_millis(retry.max_backoff_ms) => None,
            Some(wait) => Some(delay.max(wait)),
            None => Some(delay),
        }
    }

    /// Records a failed call on the breaker, as the policy classifies it, and in the
    /// counters.
    pub(crate) fn charge(&self, slot: &Slot, permit: Permit<'_>, error: &ProviderError) {
        permit.record_class(self.inner.policy.classify(error));
        bump(&slot.counters.failures);
    }
}
