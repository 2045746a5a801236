//! [`FlexiAIConfig`]: providers, breaker, retry and sync settings, from TOML, JSON and the
//! environment, checked with errors that name the field.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use flexiai_breaker::{BreakerConfig, BreakerError};
use flexiai_sync::{SyncConfig, SyncError};
use serde::{Deserialize, Serialize};

use crate::error::ClientError;
use crate::secret::ApiKey;

/// Which wire API a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ProviderKind {
    /// OpenAI's Chat Completions API (`POST {base_url}/chat/completions`), spoken by OpenAI and
    /// by compatible servers (vLLM, Ollama, LiteLLM, Azure-style gateways...) through
    /// `base_url`. Default base URL `https://api.openai.com/v1`.
    #[serde(rename = "openai")]
    OpenAi,
    /// Anthropic's Messages API (`POST {base_url}/messages`). Default base URL
    /// `https://api.anthropic.com/v1`.
    #[serde(rename = "anthropic")]
    Anthropic,
    /// A provider implemented in code and registered with
    /// [`FlexiAIBuilder::provider`](crate::FlexiAIBuilder::provider) under the entry's name;
    /// needs no API key or base URL (building the client fails if none is registered).
    #[serde(rename = "custom")]
    Custom,
}

impl ProviderKind {
    /// The name used in config files, e.g. `"openai"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Custom => "custom",
        }
    }

    /// The base URL used when the config sets none.
    pub const fn default_base_url(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "https://api.openai.com/v1",
            ProviderKind::Anthropic => "https://api.anthropic.com/v1",
            ProviderKind::Custom => "",
        }
    }
}

/// Longest accepted provider timeout: 10 minutes.
pub const MAX_TIMEOUT_MS: u64 = 600_000;
/// Most retries accepted per provider.
pub const MAX_RETRIES: u32 = 10;

fn default_timeout_ms() -> u64 {
    30_000
}

fn default_true() -> bool {
    true
}

/// Default cap on one answer's body: 16 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 16 << 20;
/// Largest accepted `max_response_bytes`: 1 GiB.
pub const MAX_RESPONSE_BYTES: u64 = 1 << 30;

fn default_max_response_bytes() -> u64 {
    DEFAULT_MAX_RESPONSE_BYTES
}

/// One provider: which API, where, with which model and key, and how patiently.
///
/// Providers are tried in ascending `priority` (1 before 2). `api_key` is required unless
/// `base_url` is set (a local OpenAI-compatible server may need none) or the kind is
/// `custom`.
///
/// # Models and their breakers
///
/// `model` is the provider's default model; `models` lists others it serves, for requests
/// that ask for one ([`ChatRequest::model`](crate::ChatRequest::model)). Each
/// (provider, model) pair has its own circuit breaker, and so its own fleet state when
/// synced, so one model's outage leaves its siblings alone. Breaker names (the names of
/// their shared state, [`breaker_name`](Self::breaker_name)): the default model's breaker is
/// named after the provider (`openai`), each other model's `{provider}/{model}`
/// (`openai/gpt-4o-mini`); both are valid provider names of `flexiai_backend` (no whitespace,
/// at most 256 bytes), which validation checks.
///
/// ```
/// use flexiai_client::FlexiAIConfig;
///
/// let config = FlexiAIConfig::from_toml_str(r#"
///     model_fallbacks = { "gpt-4o-mini" = ["claude-3-5-haiku"] }
///
///     [[providers]]
///     name = "openai"
///     kind = "openai"
///     priority = 1
///     model = "gpt-4o"
///     models = ["gpt-4o-mini"]
///     api_key = "sk-test"
///     first_token_timeout_ms = 2000
///
///     [[providers]]
///     name = "anthropic"
///     kind = "anthropic"
///     priority = 2
///     model = "claude-3-5-haiku"
///     api_key = "sk-ant-test"
/// "#)?;
/// let openai = &config.providers[0];
/// assert_eq!(openai.served_models(), ["gpt-4o", "gpt-4o-mini"]);
/// assert_eq!(openai.breaker_name("gpt-4o"), "openai");
/// assert_eq!(openai.breaker_name("gpt-4o-mini"), "openai/gpt-4o-mini");
/// # Ok::<(), flexiai_client::ClientError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ProviderConfig {
    /// Unique name; also the circuit breaker's name and the key of its shared state, so it
    /// follows provider-name rules (non-empty, no whitespace, no `:`...).
    pub name: String,
    /// Which API it speaks.
    pub kind: ProviderKind,
    /// Order of preference: lower is tried first. Unique across providers.
    pub priority: u32,
    /// The model to request.
    pub model: String,
    /// The API key; never shown by `Debug`.
    #[serde(default)]
    pub api_key: Option<ApiKey>,
    /// Overrides [`ProviderKind::default_base_url`].
    #[serde(default)]
    pub base_url: Option<String>,
    /// Bound on one call (connect, send, full answer), in ms. Default 30 000.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Retries of this provider after its first try, for retryable errors; overrides
    /// `retry.max_attempts` (which counts the first try) for this provider.
    #[serde(default)]
    pub max_retries: Option<u32>,
    /// A disabled provider is kept in the config but never called. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// This provider's breaker settings, replacing the top-level `circuit_breaker` ones.
    #[serde(default)]
    pub circuit_breaker: Option<BreakerConfig>,
    /// Other models this provider serves, each behind its own breaker (see above).
    #[serde(default)]
    pub models: Vec<String>,
    /// For streamed requests: how long the first event may take (connect, headers and the
    /// first text or tool-call piece), in ms; running out counts as a timeout failure and
    /// fails over. Default: `timeout_ms`. After the first event, `timeout_ms` bounds the wait
    /// for each next one.
    #[serde(default)]
    pub first_token_timeout_ms: Option<u64>,
    /// Cap on an answer's body, streamed or not, in bytes; a longer one is an invalid
    /// response. Default 16 MiB.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: u64,
    /// Query parameters added to the request URL (Azure OpenAI's `api-version`).
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// For `openai` providers: send the key in this header as it is (Azure OpenAI's
    /// `api-key`) instead of `Authorization: Bearer`.
    #[serde(default)]
    pub api_key_header: Option<String>,
}

impl ProviderConfig {
    /// A provider with the default timeout, no key, no base URL override, no retry override.
    pub fn new(
        name: impl Into<String>,
        kind: ProviderKind,
        priority: u32,
        model: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            kind,
            priority,
            model: model.into(),
            api_key: None,
            base_url: None,
            timeout_ms: default_timeout_ms(),
            max_retries: None,
            enabled: true,
            circuit_breaker: None,
            models: Vec::new(),
            first_token_timeout_ms: None,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            query: BTreeMap::new(),
            api_key_header: None,
        }
    }

    /// Adds a model this provider serves besides its default.
    #[must_use]
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.models.push(model.into());
        self
    }

    /// Sets the time-to-first-event budget of streamed requests.
    #[must_use]
    pub fn first_token_timeout(mut self, timeout: Duration) -> Self {
        self.first_token_timeout_ms = Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// The time-to-first-event budget of streamed requests.
    pub fn first_token_timeout_duration(&self) -> Duration {
        Duration::from_millis(self.first_token_timeout_ms.unwrap_or(self.timeout_ms))
    }

    /// Every model served: the default first, then `models` without repeats.
    pub fn served_models(&self) -> Vec<&str> {
        let mut out: Vec<&str> = vec![self.model.as_str()];
        for m in &self.models {
            if !out.contains(&m.as_str()) {
                out.push(m);
            }
        }
        out
    }

    /// The name of the breaker (and of its fleet state) of `model` on this provider: the
    /// provider's name for its default model, `{provider}/{model}` for the others.
    pub fn breaker_name(&self, model: &str) -> String {
        if model == self.model {
            self.name.clone()
        } else {
            format!("{}/{model}", self.name)
        }
    }

    /// Sets the API key.
    #[must_use]
    pub fn api_key(mut self, key: impl Into<ApiKey>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// Sets the base URL.
    #[must_use]
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Sets the timeout (rounded down to whole milliseconds).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// Sets the number of retries after the first try.
    #[must_use]
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = Some(retries);
        self
    }

    /// The timeout as a [`Duration`].
    pub fn timeout_duration(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// The base URL in force, without a trailing slash.
    pub fn effective_base_url(&self) -> &str {
        self.base_url
            .as_deref()
            .unwrap_or(self.kind.default_base_url())
            .trim_end_matches('/')
    }

    /// Tries this provider gets per request: `max_retries + 1`, or `retry.max_attempts`.
    pub fn attempts(&self, retry: &RetryConfig) -> u32 {
        self.max_retries
            .map_or(retry.max_attempts, |r| r.saturating_add(1))
    }

    fn validate(&self, i: usize) -> Result<(), ClientError> {
        let field = |name: &str| format!("providers[{i}].{name}");
        flexiai_backend::validate_provider(&self.name).map_err(|e| {
            ClientError::config(
                field("name"),
                match e {
                    flexiai_backend::BackendError::InvalidArgument { reason, .. } => reason,
                    other => other.to_string(),
                },
            )
        })?;
        if self.model.trim().is_empty() {
            return Err(ClientError::config(field("model"), "must not be empty"));
        }
        if let Some(url) = &self.base_url {
            match reqwest::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {}
                Ok(_) => {
                    return Err(ClientError::config(
                        field("base_url"),
                        "must be an http:// or https:// URL with a host",
                    ));
                }
                Err(e) => return Err(ClientError::config(field("base_url"), e.to_string())),
            }
        }
        for (j, model) in self.models.iter().enumerate() {
            if model.trim().is_empty() {
                return Err(ClientError::config(
                    format!("providers[{i}].models[{j}]"),
                    "must not be empty",
                ));
            }
            flexiai_backend::validate_provider(&self.breaker_name(model)).map_err(|e| {
                ClientError::config(
                    format!("providers[{i}].models[{j}]"),
                    format!("breaker name {:?}: {e}", self.breaker_name(model)),
                )
            })?;
        }
        match &self.api_key {
            Some(key) if key.is_blank() => {
                return Err(ClientError::config(field("api_key"), "must not be empty"));
            }
            None if self.base_url.is_none() && self.kind != ProviderKind::Custom => {
                return Err(ClientError::config(
                    field("api_key"),
                    "is required unless base_url is set",
                ));
            }
            _ => {}
        }
        if let Some(ms) = self.first_token_timeout_ms
            && (ms == 0 || ms > MAX_TIMEOUT_MS)
        {
            return Err(ClientError::config(
                field("first_token_timeout_ms"),
                format!("must be between 1 and {MAX_TIMEOUT_MS} ms, got {ms}"),
            ));
        }
        if self.max_response_bytes == 0 || self.max_response_bytes > MAX_RESPONSE_BYTES {
            return Err(ClientError::config(
                field("max_response_bytes"),
                format!("must be between 1 and {MAX_RESPONSE_BYTES}"),
            ));
        }
        if self.timeout_ms == 0 || self.timeout_ms > MAX_TIMEOUT_MS {
            return Err(ClientError::config(
                field("timeout_ms"),
                format!(
                    "must be between 1 and {MAX_TIMEOUT_MS} ms, got {}",
                    self.timeout_ms
                ),
            ));
        }
        if let Some(retries) = self.max_retries
            && retries > MAX_RETRIES
        {
            return Err(ClientError::config(
                field("max_retries"),
                format!("must be at most {MAX_RETRIES}, got {retries}"),
            ));
        }
        if let Some(breaker) = &self.circuit_breaker {
            breaker
                .validate()
                .map_err(|e| breaker_error(&format!("providers[{i}].circuit_breaker"), e))?;
        }
        Ok(())
    }
}

/// How the client retries a provider before failing over, and how it treats `Retry-After`.
///
/// Only errors the [`ErrorPolicy`](crate::ErrorPolicy) calls retryable are retried (by
/// default: rate limits, timeouts, connection and server errors, malformed answers). The
/// delay before retry `k` (from 1) is `initial_backoff_ms * multiplier^(k-1)`, capped at
/// `max_backoff_ms`, then shortened by a random fraction of up to `jitter`.
///
/// `#[non_exhaustive]`: build one with [`RetryConfig::builder`] or start from [`Default`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RetryConfig {
    /// Tries per provider, the first included (1 = no retry). Default 2.
    pub max_attempts: u32,
    /// Delay before the first retry, in ms. Default 100.
    pub initial_backoff_ms: u64,
    /// Cap on the delay, in ms. Default 2000.
    pub max_backoff_ms: u64,
    /// Growth of the delay per retry, at least 1. Default 2.
    pub multiplier: f64,
    /// Random shortening of each delay, as a fraction in `[0, 1]`. Default 0.1.
    pub jitter: f64,
    /// Whether a 429's `Retry-After` is honoured: the provider's breaker opens for that long,
    /// so the provider is skipped (by every worker, when synced) until it is up, and a wait
    /// that fits within `max_backoff_ms` is waited for before a retry. Default true.
    pub honor_retry_after: bool,
    /// Longest `Retry-After` honoured, in ms; longer ones are cut to this (and the breaker
    /// cuts open periods to its `max_recovery_timeout_ms`). Default 300 000.
    pub max_retry_after_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 2,
            initial_backoff_ms: 100,
            max_backoff_ms: 2000,
            multiplier: 2.0,
            jitter: 0.1,
            honor_retry_after: true,
            max_retry_after_ms: 300_000,
        }
    }
}

/// Setters named after the fields they set, for the config builders below.
macro_rules! setters {
    ($owner:literal; $($field:ident: $ty:ty),* $(,)?) => {
        $(
            #[doc = concat!("Sets [`", $owner, "::", stringify!($field), "`].")]
            pub fn $field(mut self, value: $ty) -> Self {
                self.config.$field = value;
                self
            }
        )*
    };
}

/// Builds a [`RetryConfig`]; [`build`](Self::build) validates, naming the field
/// (`retry.jitter`).
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct RetryConfigBuilder {
    config: RetryConfig,
}

impl RetryConfigBuilder {
    setters! {
        "RetryConfig";
        max_attempts: u32,
        initial_backoff_ms: u64,
        max_backoff_ms: u64,
        multiplier: f64,
        jitter: f64,
        honor_retry_after: bool,
        max_retry_after_ms: u64,
    }

    /// Validates and returns the config.
    pub fn build(self) -> Result<RetryConfig, ClientError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

impl RetryConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> RetryConfigBuilder {
        RetryConfigBuilder::default()
    }

    /// Checks every field; the error names the first bad one (`retry.<field>`).
    pub fn validate(&self) -> Result<(), ClientError> {
        if self.max_attempts == 0 || self.max_attempts > MAX_RETRIES + 1 {
            return Err(ClientError::config(
                "retry.max_attempts",
                format!("must be between 1 and {}", MAX_RETRIES + 1),
            ));
        }
        if self.max_backoff_ms > MAX_TIMEOUT_MS {
            return Err(ClientError::config(
                "retry.max_backoff_ms",
                format!("must be at most {MAX_TIMEOUT_MS} ms"),
            ));
        }
        if self.initial_backoff_ms > self.max_backoff_ms {
            return Err(ClientError::config(
                "retry.initial_backoff_ms",
                "must not exceed max_backoff_ms",
            ));
        }
        if !self.multiplier.is_finite() || self.multiplier < 1.0 || self.multiplier > 100.0 {
            return Err(ClientError::config(
                "retry.multiplier",
                "must be between 1 and 100",
            ));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(ClientError::config(
                "retry.jitter",
                "must be between 0 and 1",
            ));
        }
        if self.max_retry_after_ms > 86_400_000 {
            return Err(ClientError::config(
                "retry.max_retry_after_ms",
                "must be at most 86400000 (24 h)",
            ));
        }
        Ok(())
    }

    /// The delay before retry `retry` (1 = first retry), before jitter.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let raw = self.initial_backoff_ms as f64 * self.multiplier.powi(exp);
        let capped = raw.min(self.max_backoff_ms as f64).max(0.0);
        // Capped at max_backoff_ms (a u64), so the conversion cannot overflow.
        Duration::from_millis(capped as u64)
    }
}

/// The client's whole configuration.
///
/// ```
/// use flexiai_client::FlexiAIConfig;
///
/// let config = FlexiAIConfig::from_toml_str(r#"
///     [[providers]]
///     name = "openai"
///     kind = "openai"
///     priority = 1
///     model = "gpt-4o-mini"
///     api_key = "sk-test"
///
///     [[providers]]
///     name = "claude"
///     kind = "anthropic"
///     priority = 2
///     model = "claude-3-5-haiku-latest"
///     api_key = "sk-ant-test"
///
///     [circuit_breaker]
///     failure_threshold = 3
///     recovery_timeout_ms = 30000
/// "#)?;
/// assert_eq!(config.providers.len(), 2);
/// assert!(!format!("{config:?}").contains("sk-test"));
///
/// let err = FlexiAIConfig::from_json_str(r#"{"providers": []}"#).unwrap_err();
/// assert!(err.to_string().contains("`providers`"));
/// # Ok::<(), flexiai_client::ClientError>(())
/// ```
///
/// `#[non_exhaustive]`: in code, use [`FlexiAIConfig::builder`] (which validates) or
/// [`FlexiAIConfig::new`] and set fields.
///
/// ```
/// use flexiai_client::{BreakerConfig, FlexiAIConfig, ProviderConfig, ProviderKind};
///
/// let config = FlexiAIConfig::builder()
///     .provider(ProviderConfig::new("openai", ProviderKind::OpenAi, 1, "gpt-4o-mini").api_key("sk-test"))
///     .circuit_breaker(BreakerConfig::builder().failure_threshold(3).build()?)
///     .build()?;
/// assert_eq!(config.circuit_breaker.failure_threshold, 3);
/// assert!(FlexiAIConfig::builder().build().is_err()); // no provider
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FlexiAIConfig {
    /// The providers, in any order (they are tried by `priority`).
    pub providers: Vec<ProviderConfig>,
    /// Breaker settings for every provider without its own. Default: the breaker's defaults.
    #[serde(default)]
    pub circuit_breaker: BreakerConfig,
    /// Retry settings.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Fleet synchronization of the breakers; absent (or `enabled = false`) means none: the
    /// client works in this process alone.
    #[serde(default)]
    pub sync: Option<SyncConfig>,
    /// Failover chains of models: a request for the key model goes to the providers serving
    /// it (by priority), then to those serving each listed model in turn, e.g.
    /// `model_fallbacks = { "gpt-4o" = ["claude-sonnet-4"] }`. Every model named must be
    /// served by some provider.
    #[serde(default)]
    pub model_fallbacks: BTreeMap<String, Vec<String>>,
}

/// Builds a [`FlexiAIConfig`]; [`build`](Self::build) validates
/// ([`FlexiAIConfig::validate`]), naming the first bad field.
#[derive(Debug, Clone)]
#[must_use]
pub struct FlexiAIConfigBuilder {
    config: FlexiAIConfig,
}

impl From<FlexiAIConfig> for FlexiAIConfigBuilder {
    /// A builder starting from `config`'s values.
    fn from(config: FlexiAIConfig) -> Self {
        Self { config }
    }
}

impl FlexiAIConfigBuilder {
    setters! {
        "FlexiAIConfig";
        providers: Vec<ProviderConfig>,
        circuit_breaker: BreakerConfig,
        retry: RetryConfig,
        sync: Option<SyncConfig>,
        model_fallbacks: BTreeMap<String, Vec<String>>,
    }

    /// Adds one provider to [`FlexiAIConfig::providers`].
    pub fn provider(mut self, provider: ProviderConfig) -> Self {
        self.config.providers.push(provider);
        self
    }

    /// Validates and returns the config.
    pub fn build(self) -> Result<FlexiAIConfig, ClientError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

impl FlexiAIConfig {
    /// A builder with no provider and every other setting at its default.
    pub fn builder() -> FlexiAIConfigBuilder {
        FlexiAIConfigBuilder::from(Self::new(Vec::new()))
    }

    /// Environment variables read by [`apply_env`](Self::apply_env) start with this.
    pub const ENV_PREFIX: &'static str = "FLEXIAI_";

    /// A config with these providers and every other setting at its default.
    pub fn new(providers: Vec<ProviderConfig>) -> Self {
        Self {
            providers,
            circuit_breaker: BreakerConfig::default(),
            retry: RetryConfig::default(),
            sync: None,
            model_fallbacks: BTreeMap::new(),
        }
    }

    /// Parses and validates a TOML document.
    pub fn from_toml_str(text: &str) -> Result<Self, ClientError> {
        let config = Self::parse_toml(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses and validates a JSON document.
    pub fn from_json_str(text: &str) -> Result<Self, ClientError> {
        let config = Self::parse_json(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses a TOML document without validating it: for a file whose secrets come from the
    /// environment, follow with [`with_env`](Self::with_env) (which validates).
    pub fn parse_toml(text: &str) -> Result<Self, ClientError> {
        toml::from_str(text).map_err(|e| ClientError::Parse {
            format: "TOML",
            message: e.to_string(),
        })
    }

    /// Parses a JSON document without validating it; see [`parse_toml`](Self::parse_toml).
    pub fn parse_json(text: &str) -> Result<Self, ClientError> {
        serde_json::from_str(text).map_err(|e| ClientError::Parse {
            format: "JSON",
            message: e.to_string(),
        })
    }

    /// Reads a `.json` file as JSON and anything else as TOML, then validates it.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        let config = Self::read_file(path.as_ref())?;
        config.validate()?;
        Ok(config)
    }

    /// Reads a file like [`from_file`](Self::from_file), applies this process's `FLEXIAI_*`
    /// variables (so keys can stay out of the file), then validates: the usual way to load a
    /// deployment's config.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        Self::read_file(path.as_ref())?.with_env()
    }

    fn read_file(path: &Path) -> Result<Self, ClientError> {
        let text = std::fs::read_to_string(path).map_err(|source| ClientError::Io {
            path: path.display().to_string(),
            source,
        })?;
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            Self::parse_json(&text)
        } else {
            Self::parse_toml(&text)
        }
    }

    /// Overrides fields from this process's environment; see [`apply_env`](Self::apply_env).
    pub fn with_env(self) -> Result<Self, ClientError> {
        self.apply_env(std::env::vars())
    }

    /// Overrides fields from `FLEXIAI_*` variables in `vars`, then validates.
    ///
    /// - Per provider, `FLEXIAI_<NAME>_<FIELD>` where `<NAME>` is the provider's name in upper
    ///   case with every character other than a letter or digit replaced by `_` (`openai`,
    ///   `azure-gpt4` → `AZURE_GPT4`) and `<FIELD>` is one of `API_KEY`, `BASE_URL`, `MODEL`,
    ///   `PRIORITY`, `TIMEOUT_MS`, `MAX_RETRIES`, `ENABLED`. Example:
    ///   `FLEXIAI_OPENAI_API_KEY=sk-...`. A variable that names a provider but no known field is
    ///   an error, so a typo is caught.
    /// - Retry: `FLEXIAI_RETRY_MAX_ATTEMPTS`, `FLEXIAI_RETRY_INITIAL_BACKOFF_MS`,
    ///   `FLEXIAI_RETRY_MAX_BACKOFF_MS`, `FLEXIAI_RETRY_MULTIPLIER`, `FLEXIAI_RETRY_JITTER`,
    ///   `FLEXIAI_RETRY_HONOR_RETRY_AFTER`, `FLEXIAI_RETRY_MAX_RETRY_AFTER_MS`.
    /// - Breaker: `FLEXIAI_CIRCUIT_BREAKER_FAILURE_THRESHOLD`,
    ///   `FLEXIAI_CIRCUIT_BREAKER_RECOVERY_TIMEOUT_MS`,
    ///   `FLEXIAI_CIRCUIT_BREAKER_HALF_OPEN_MAX_CALLS`,
    ///   `FLEXIAI_CIRCUIT_BREAKER_SUCCESS_THRESHOLD`.
    /// - Sync: the `FLEXIAI_SYNC_*` variables of [`SyncConfig::apply_env`]; any of them
    ///   turns a missing `sync` section into a default one (enabled).
    ///
    /// Other variables are ignored. A value that does not parse is an error naming the
    /// variable.
    pub fn apply_env(
        mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ClientError> {
        let vars: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with(Self::ENV_PREFIX))
            .collect();
        let env_names: Vec<String> = self.providers.iter().map(|p| env_name(&p.name)).collect();
        for (key, value) in &vars {
            let Some(rest) = key.strip_prefix(Self::ENV_PREFIX) else {
                continue;
            };
            let value = value.trim();
            if let Some(field) = rest.strip_prefix("RETRY_")
                && self.apply_retry_env(key, field, value)?
            {
                continue;
            }
            if let Some(field) = rest.strip_prefix("CIRCUIT_BREAKER_") {
                let b = &mut self.circuit_breaker;
                match field {
                    "FAILURE_THRESHOLD" => b.failure_threshold = parse_env(key, value)?,
                    "RECOVERY_TIMEOUT_MS" => b.recovery_timeout_ms = parse_env(key, value)?,
                    "HALF_OPEN_MAX_CALLS" => b.half_open_max_calls = parse_env(key, value)?,
                    "SUCCESS_THRESHOLD" => b.success_threshold = parse_env(key, value)?,
                    _ => {
                        return Err(ClientError::config(key.clone(), "unknown breaker setting"));
                    }
                }
                continue;
            }
            // The longest matching provider name wins (`OPENAI` vs `OPENAI_EU`).
            let matched = env_names
                .iter()
                .enumerate()
                .filter_map(|(i, n)| {
                    rest.strip_prefix(n.as_str())
                        .and_then(|r| r.strip_prefix('_'))
                        .map(|field| (i, n.len(), field))
                })
                .max_by_key(|(_, len, _)| *len);
            if let Some((i, _, field)) = matched {
                let p = &mut self.providers[i];
                match field {
                    "API_KEY" => p.api_key = Some(ApiKey::new(value)),
                    "BASE_URL" => p.base_url = Some(value.to_owned()),
                    "MODEL" => p.model = value.to_owned(),
                    "PRIORITY" => p.priority = parse_env(key, value)?,
                    "TIMEOUT_MS" => p.timeout_ms = parse_env(key, value)?,
                    "MAX_RETRIES" => p.max_retries = Some(parse_env(key, value)?),
                    "ENABLED" => p.enabled = parse_env(key, value)?,
                    // The sync section's own variables when a provider is named `sync`.
                    _ if rest.starts_with("SYNC_") => {}
                    _ => {
                        return Err(ClientError::config(
                            key.clone(),
                            "unknown provider setting (expected API_KEY, BASE_URL, MODEL, \
                             PRIORITY, TIMEOUT_MS, MAX_RETRIES or ENABLED)",
                        ));
                    }
                }
            }
        }
        let has_sync_vars = vars
            .iter()
            .any(|(k, _)| k.starts_with(SyncConfig::ENV_PREFIX));
        if has_sync_vars {
            let sync = self.sync.take().unwrap_or_default();
            self.sync = Some(sync.apply_env(vars).map_err(sync_error)?);
        }
        self.validate()?;
        Ok(self)
    }

    /// Applies one `FLEXIAI_RETRY_*` variable; returns whether `field` was a retry setting.
    fn apply_retry_env(
        &mut self,
        key: &str,
        field: &str,
        value: &str,
    ) -> Result<bool, ClientError> {
        let r = &mut self.retry;
        match field {
            "MAX_ATTEMPTS" => r.max_attempts = parse_env(key, value)?,
            "INITIAL_BACKOFF_MS" => r.initial_backoff_ms = parse_env(key, value)?,
            "MAX_BACKOFF_MS" => r.max_backoff_ms = parse_env(key, value)?,
            "MULTIPLIER" => r.multiplier = parse_env(key, value)?,
            "JITTER" => r.jitter = parse_env(key, value)?,
            "HONOR_RETRY_AFTER" => r.honor_retry_after = parse_env(key, value)?,
            "MAX_RETRY_AFTER_MS" => r.max_retry_after_ms = parse_env(key, value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks every field; the error names the first bad one as it is spelled in a file
    /// (`providers[1].priority`, `circuit_breaker.failure_threshold`, `retry.jitter`,
    /// `sync.state_ttl`).
    pub fn validate(&self) -> Result<(), ClientError> {
        if self.providers.is_empty() {
            return Err(ClientError::config(
                "providers",
                "at least one provider is required",
            ));
        }
        let mut names = HashSet::new();
        let mut env_names = HashSet::new();
        let mut priorities = HashSet::new();
        for (i, p) in self.providers.iter().enumerate() {
            p.validate(i)?;
            if !names.insert(p.name.as_str()) {
                return Err(ClientError::config(
                    format!("providers[{i}].name"),
                    format!("{:?} is used by another provider", p.name),
                ));
            }
            if !env_names.insert(env_name(&p.name)) {
                return Err(ClientError::config(
                    format!("providers[{i}].name"),
                    format!(
                        "{:?} has the same environment name ({}) as another provider",
                        p.name,
                        env_name(&p.name)
                    ),
                ));
            }
            if !priorities.insert(p.priority) {
                return Err(ClientError::config(
                    format!("providers[{i}].priority"),
                    format!("{} is used by another provider", p.priority),
                ));
            }
        }
        if !self.providers.iter().any(|p| p.enabled) {
            return Err(ClientError::config(
                "providers",
                "at least one provider must be enabled",
            ));
        }
        let served = |model: &str| {
            self.providers
                .iter()
                .any(|p| p.served_models().contains(&model))
        };
        for (model, chain) in &self.model_fallbacks {
            for (j, m) in std::iter::once(model).chain(chain).enumerate() {
                if !served(m) {
                    let field = if j == 0 {
                        format!("model_fallbacks.{model}")
                    } else {
                        format!("model_fallbacks.{model}[{}]", j - 1)
                    };
                    return Err(ClientError::config(
                        field,
                        format!("no provider serves the model {m:?}"),
                    ));
                }
            }
        }
        self.circuit_breaker
            .validate()
            .map_err(|e| breaker_error("circuit_breaker", e))?;
        self.retry.validate()?;
        if let Some(sync) = &self.sync {
            sync.validate().map_err(sync_error)?;
        }
        Ok(())
    }

    /// Whether the config asks for fleet synchronization (a `sync` section with
    /// `enabled = true`).
    pub fn sync_enabled(&self) -> bool {
        self.sync.as_ref().is_some_and(|s| s.enabled)
    }
}

/// `openai` → `OPENAI`, `azure-gpt4.eu` → `AZURE_GPT4_EU`.
pub(crate) fn env_name(provider: &str) -> String {
    provider
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn parse_env<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ClientError> {
    // The value may be a key: the reason names the variable, never its value.
    flexiai_backend::parse_env(value)
        .map_err(|_| ClientError::config(key, "cannot parse the value"))
}

fn breaker_error(prefix: &str, error: BreakerError) -> ClientError {
    match error {
        BreakerError::InvalidConfig { field, reason } => {
            ClientError::config(format!("{prefix}.{field}"), reason)
        }
        other => ClientError::config(prefix, other.to_string()),
    }
}

fn sync_error(error: SyncError) -> ClientError {
    match error {
        SyncError::InvalidConfig { field, reason } if field.starts_with("FLEXIAI_") => {
            ClientError::InvalidConfig { field, reason }
        }
        SyncError::InvalidConfig { field, reason } => {
            ClientError::config(format!("sync.{field}"), reason)
        }
        other => ClientError::config("sync", other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_and_backoff() {
        assert_eq!(env_name("azure-gpt4.eu"), "AZURE_GPT4_EU");
        let r = RetryConfig {
            initial_backoff_ms: 100,
            max_backoff_ms: 350,
            multiplier: 2.0,
            ..RetryConfig::default()
        };
        assert_eq!(r.backoff(1), Duration::from_millis(100));
        assert_eq!(r.backoff(2), Duration::from_millis(200));
        assert_eq!(r.backoff(3), Duration::from_millis(350));
        assert_eq!(r.backoff(200), Duration::from_millis(350));
    }
}
