use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use flexiai_backend::{MemoryBackend, SyncBackend};
use flexiai_events::WorkerId;
use flexiai_serde::{EventAuth, MacKey};
use serde::{Deserialize, Serialize};

use crate::{SyncError, SyncOptions};

/// The channel the Python FlexiAI v0.5 original publishes and subscribes on. Binary frames
/// (MessagePack, signed) on it stop every Python subscriber, so a config that signs events
/// must name another channel.
pub const PYTHON_CHANNEL: &str = "flexiai:events";

/// A secret string (an event key) that never shows in `Debug` or `Display` output, zeroized
/// on drop: the workspace's one secret type, [`flexiai_backend::Secret`], under the name this
/// crate has always used.
///
/// It serializes as the plain string, so a configuration file round-trips.
///
/// ```
/// use flexiai_sync::SecretString;
///
/// let key = SecretString::new("correct horse battery staple");
/// assert_eq!(format!("{key:?} {key}"), "<redacted> <redacted>");
/// assert_eq!(key.expose(), "correct horse battery staple");
/// ```
pub type SecretString = flexiai_backend::Secret;

/// Which store carries breaker state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum BackendKind {
    /// In-process only: for one worker, development and tests.
    #[default]
    Memory,
    /// Redis: for a fleet of workers.
    Redis,
}

/// Where Redis is, in the seed's fields or as a URL.
///
/// `#[non_exhaustive]`: build one with [`RedisSettings::builder`] or start from
/// [`Default`] and set fields.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RedisSettings {
    /// A `redis://` or `rediss://` URL; when set it replaces host, port, password, db and ssl.
    pub url: Option<String>,
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// ACL user name (Redis 6+); `None` for the default user.
    pub username: Option<String>,
    /// Password; never shown by `Debug`.
    pub password: Option<String>,
    /// Database index.
    pub db: i64,
    /// Whether to use TLS (`rediss://`).
    pub ssl: bool,
    /// With TLS, a PEM file of the CA certificate(s) to trust instead of the system's roots.
    pub ca_file: Option<String>,
    /// Bound on every Redis command, in milliseconds.
    pub command_timeout_ms: u64,
    /// Sentinels (`host:port`, default port 26379) to find the master through; needs
    /// `master_name`. Host, port and the rest then describe the data nodes' credentials.
    pub sentinels: Vec<String>,
    /// The name the Sentinels know the master by.
    pub master_name: Option<String>,
    /// ACL user name of the Sentinels themselves, when they require one.
    pub sentinel_username: Option<String>,
    /// Password of the Sentinels themselves; never shown by `Debug`.
    pub sentinel_password: Option<String>,
    /// Redis Cluster seed nodes (`host:port`, default port 6379); selects the hash-tagged
    /// key layout, which a cluster requires.
    pub cluster_nodes: Vec<String>,
    /// `plain` (default, the Python original's `flexiai:state:openai`) or `hash-tagged`
    /// (`{flexiai}:state:openai`, required on a cluster); see `flexiai migrate-keys`.
    pub key_layout: Option<String>,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: None,
            host: "localhost".into(),
            port: 6379,
            username: None,
            password: None,
            db: 0,
            ssl: false,
            ca_file: None,
            command_timeout_ms: 1000,
            sentinels: Vec::new(),
            master_name: None,
            sentinel_username: None,
            sentinel_password: None,
            cluster_nodes: Vec::new(),
            key_layout: None,
        }
    }
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("db", &self.db)
            .field("ssl", &self.ssl)
            .field("ca_file", &self.ca_file)
            .field("command_timeout_ms", &self.command_timeout_ms)
            .field("sentinels", &self.sentinels)
            .field("master_name", &self.master_name)
            .field("sentinel_username", &self.sentinel_username)
            .field(
                "sentinel_password",
                &self.sentinel_password.as_ref().map(|_| "<redacted>"),
            )
            .field("cluster_nodes", &self.cluster_nodes)
            .field("key_layout", &self.key_layout)
            .finish()
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

impl RedisSettings {
    /// A builder starting from the defaults.
    pub fn builder() -> RedisSettingsBuilder {
        RedisSettingsBuilder::default()
    }

    /// Checks the fields that do not depend on the rest of a [`SyncConfig`]; the error names
    /// the field as `redis.<field>`.
    fn validate(&self) -> Result<(), SyncError> {
        if self.url.is_none() {
            if self.host.trim().is_empty() {
                return Err(SyncError::config("redis.host", "must not be empty"));
            }
            if self.port == 0 {
                return Err(SyncError::config(
                    "redis.port",
                    "must be between 1 and 65535",
                ));
            }
            if !(0..=15).contains(&self.db) {
                return Err(SyncError::config("redis.db", "must be between 0 and 15"));
            }
        }
        if self.command_timeout_ms == 0 {
            return Err(SyncError::config(
                "redis.command_timeout_ms",
                "must be greater than zero",
            ));
        }
        Ok(())
    }
}

/// Builds [`RedisSettings`]; [`build`](Self::build) checks host, port, db and the command
/// timeout, naming the field (`redis.port`).
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct RedisSettingsBuilder {
    config: RedisSettings,
}

impl RedisSettingsBuilder {
    setters! {
        "RedisSettings";
        url: Option<String>,
        host: String,
        port: u16,
        username: Option<String>,
        password: Option<String>,
        db: i64,
        ssl: bool,
        ca_file: Option<String>,
        command_timeout_ms: u64,
        sentinels: Vec<String>,
        master_name: Option<String>,
        sentinel_username: Option<String>,
        sentinel_password: Option<String>,
        cluster_nodes: Vec<String>,
        key_layout: Option<String>,
    }

    /// Validates and returns the settings.
    pub fn build(self) -> Result<RedisSettings, SyncError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

/// Splits a comma-separated list, dropping empty items.
fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses `host[:port]` items, naming `field` on error.
#[cfg(feature = "redis")]
fn parse_nodes(
    field: &'static str,
    nodes: &[String],
    default_port: u16,
) -> Result<Vec<(String, u16)>, SyncError> {
    nodes
        .iter()
        .map(|node| {
            let (host, port) = match node.rsplit_once(':') {
                Some((host, port)) if !host.ends_with(':') => (
                    host,
                    port.parse()
                        .map_err(|_| SyncError::config(field, format!("bad port in {node:?}")))?,
                ),
                _ => (node.as_str(), default_port),
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() {
                return Err(SyncError::config(field, format!("no host in {node:?}")));
            }
            Ok((host.to_owned(), port))
        })
        .collect()
}

/// Replaces the password in `scheme://user:password@host` with `<redacted>`.
fn redact_url(url: &str) -> String {
    flexiai_backend::redact(url, None)
}

/// The seed's sync configuration, loadable from TOML, JSON and the environment.
///
/// Field names are the seed's (`enabled`, `backend`, `redis {host, port, password, db, ssl}`,
/// `worker_id`, `key_prefix`, `channel`, `state_ttl` in seconds); the rest are this crate's
/// timing options in milliseconds. Every field has a default, unknown fields are errors, and
/// [`validate`](Self::validate) names the first bad field.
///
/// `#[non_exhaustive]`: in code, use [`SyncConfig::builder`] (which validates) or start from
/// [`Default`] and set fields.
///
/// ```
/// use flexiai_sync::{BackendKind, SyncConfig};
///
/// let config = SyncConfig::from_toml_str(r#"
///     backend = "redis"
///     state_ttl = 600
///     [redis]
///     host = "cache.internal"
///     password = "hunter2"
/// "#)?;
/// assert_eq!(config.backend, BackendKind::Redis);
/// assert!(!format!("{config:?}").contains("hunter2"));
///
/// let err = SyncConfig::from_json_str(r#"{"state_ttl": 0}"#).unwrap_err();
/// assert!(err.to_string().contains("state_ttl"));
/// # Ok::<(), flexiai_sync::SyncError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct SyncConfig {
    /// Whether to synchronize at all. Disabled means a private in-memory backend: breakers
    /// work in this process exactly as they would alone.
    pub enabled: bool,
    /// Which store to use.
    pub backend: BackendKind,
    /// Redis connection settings (used when `backend = "redis"`).
    pub redis: RedisSettings,
    /// This worker's id; generated as `{hostname}:{pid}:{unix_millis}` when absent.
    pub worker_id: Option<String>,
    /// Prefix of every key (`{key_prefix}:state:{provider}`, ...).
    pub key_prefix: String,
    /// The events channel.
    pub channel: String,
    /// How long stored snapshots live after their last write, in seconds.
    pub state_ttl: u64,
    /// See [`SyncOptions::flush_interval`].
    pub flush_interval_ms: u64,
    /// See [`SyncOptions::outcome_report_interval`].
    pub outcome_report_interval_ms: u64,
    /// See [`SyncOptions::reconcile_interval`].
    pub reconcile_interval_ms: u64,
    /// See [`SyncOptions::heartbeat_interval`].
    pub heartbeat_interval_ms: u64,
    /// See [`SyncOptions::heartbeat_ttl`].
    pub heartbeat_ttl_ms: u64,
    /// See [`SyncOptions::operation_timeout`].
    pub operation_timeout_ms: u64,
    /// See [`SyncOptions::fleet_probes`].
    pub fleet_probes: bool,
    /// See [`SyncOptions::probe_lease_ttl`].
    pub probe_lease_ms: u64,
    /// The fleet's shared event key (at least 16 bytes). When set, every event and stored
    /// snapshot is signed (HMAC-SHA256) and unsigned or forged ones are rejected; Python
    /// workers, which do not sign, can then no longer share the fleet. Never shown by `Debug`.
    pub event_key: Option<SecretString>,
    /// The key being rotated away from: still accepted (never used to sign) for
    /// `previous_event_key_grace_secs` after start-up. Needs `event_key`.
    pub previous_event_key: Option<SecretString>,
    /// How long `previous_event_key` stays valid, in seconds (default 3600).
    pub previous_event_key_grace_secs: u64,
}

impl Default for SyncConfig {
    fn default() -> Self {
        let options = SyncOptions::default();
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self {
            enabled: true,
            backend: BackendKind::Memory,
            redis: RedisSettings::default(),
            worker_id: None,
            key_prefix: "flexiai".into(),
            channel: "flexiai:events".into(),
            state_ttl: 3600,
            flush_interval_ms: ms(options.flush_interval),
            outcome_report_interval_ms: ms(options.outcome_report_interval),
            reconcile_interval_ms: ms(options.reconcile_interval),
            heartbeat_interval_ms: ms(options.heartbeat_interval),
            heartbeat_ttl_ms: ms(options.heartbeat_ttl),
            operation_timeout_ms: ms(options.operation_timeout),
            fleet_probes: options.fleet_probes,
            probe_lease_ms: ms(options.probe_lease_ttl),
            event_key: None,
            previous_event_key: None,
            previous_event_key_grace_secs: 3600,
        }
    }
}

/// Builds a [`SyncConfig`]; every setter is named after the field it sets, and
/// [`build`](Self::build) validates ([`SyncConfig::validate`]), naming the first bad field.
///
/// ```
/// use flexiai_sync::SyncConfig;
///
/// let config = SyncConfig::builder().key_prefix("fleet-a".into()).state_ttl(600).build()?;
/// assert_eq!(config.key_prefix, "fleet-a");
/// let err = SyncConfig::builder().state_ttl(0).build().unwrap_err();
/// assert!(err.to_string().contains("state_ttl"));
/// # Ok::<(), flexiai_sync::SyncError>(())
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct SyncConfigBuilder {
    config: SyncConfig,
}

impl From<SyncConfig> for SyncConfigBuilder {
    /// A builder starting from `config`'s values.
    fn from(config: SyncConfig) -> Self {
        Self { config }
    }
}

impl SyncConfigBuilder {
    setters! {
        "SyncConfig";
        enabled: bool,
        backend: BackendKind,
        redis: RedisSettings,
        worker_id: Option<String>,
        key_prefix: String,
        channel: String,
        state_ttl: u64,
        flush_interval_ms: u64,
        outcome_report_interval_ms: u64,
        reconcile_interval_ms: u64,
        heartbeat_interval_ms: u64,
        heartbeat_ttl_ms: u64,
        operation_timeout_ms: u64,
        fleet_probes: bool,
        probe_lease_ms: u64,
        event_key: Option<SecretString>,
        previous_event_key: Option<SecretString>,
        previous_event_key_grace_secs: u64,
    }

    /// Validates and returns the config.
    pub fn build(self) -> Result<SyncConfig, SyncError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

impl SyncConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> SyncConfigBuilder {
        SyncConfigBuilder::default()
    }

    /// Environment variables read by [`apply_env`](Self::apply_env) start with this.
    pub const ENV_PREFIX: &'static str = "FLEXIAI_SYNC_";

    /// Parses and validates a TOML document.
    pub fn from_toml_str(text: &str) -> Result<Self, SyncError> {
        let config: Self = toml::from_str(text).map_err(|e| SyncError::Parse {
            format: "TOML",
            message: e.message().to_owned(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Parses and validates a JSON document.
    pub fn from_json_str(text: &str) -> Result<Self, SyncError> {
        let config: Self = serde_json::from_str(text).map_err(|e| SyncError::Parse {
            format: "JSON",
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Overrides fields from this process's environment; see [`apply_env`](Self::apply_env).
    pub fn with_env(self) -> Result<Self, SyncError> {
        self.apply_env(std::env::vars())
    }

    /// Overrides fields from `FLEXIAI_SYNC_*` variables in `vars`: `ENABLED`, `BACKEND`,
    /// `WORKER_ID`, `KEY_PREFIX`, `CHANNEL`, `STATE_TTL`, `REDIS_URL`, `REDIS_HOST`,
    /// `REDIS_PORT`, `REDIS_USERNAME`, `REDIS_PASSWORD`, `REDIS_DB`, `REDIS_SSL`,
    /// `REDIS_COMMAND_TIMEOUT_MS`, `FLUSH_INTERVAL_MS`, `OUTCOME_REPORT_INTERVAL_MS`,
    /// `RECONCILE_INTERVAL_MS`,
    /// `HEARTBEAT_INTERVAL_MS`, `HEARTBEAT_TTL_MS`, `OPERATION_TIMEOUT_MS`, `FLEET_PROBES`,
    /// `PROBE_LEASE_MS`, `EVENT_KEY`, `PREVIOUS_EVENT_KEY`, `PREVIOUS_EVENT_KEY_GRACE_SECS`,
    /// `REDIS_CA_FILE`, `REDIS_SENTINELS` and `REDIS_CLUSTER_NODES` (comma-separated
    /// `host:port` lists), `REDIS_MASTER_NAME`, `REDIS_SENTINEL_USERNAME`,
    /// `REDIS_SENTINEL_PASSWORD`, `REDIS_KEY_LAYOUT`. Other variables are ignored; a value that does not parse is an error
    /// naming the variable. The result is validated.
    pub fn apply_env(
        mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SyncError> {
        for (key, value) in vars {
            let Some(name) = key.strip_prefix(Self::ENV_PREFIX) else {
                continue;
            };
            let value = value.trim().to_owned();
            match name {
                "ENABLED" => self.enabled = parse_env(&key, &value)?,
                "BACKEND" => {
                    self.backend = match value.to_ascii_lowercase().as_str() {
                        "memory" => BackendKind::Memory,
                        "redis" => BackendKind::Redis,
                        _ => return Err(SyncError::config(key, "expected `memory` or `redis`")),
                    }
                }
                "WORKER_ID" => self.worker_id = Some(value),
                "KEY_PREFIX" => self.key_prefix = value,
                "CHANNEL" => self.channel = value,
                "STATE_TTL" => self.state_ttl = parse_env(&key, &value)?,
                "REDIS_URL" => self.redis.url = Some(value),
                "REDIS_HOST" => self.redis.host = value,
                "REDIS_PORT" => self.redis.port = parse_env(&key, &value)?,
                "REDIS_USERNAME" => self.redis.username = Some(value),
                "REDIS_PASSWORD" => self.redis.password = Some(value),
                "REDIS_DB" => self.redis.db = parse_env(&key, &value)?,
                "REDIS_SSL" => self.redis.ssl = parse_env(&key, &value)?,
                "REDIS_COMMAND_TIMEOUT_MS" => {
                    self.redis.command_timeout_ms = parse_env(&key, &value)?
                }
                "FLUSH_INTERVAL_MS" => self.flush_interval_ms = parse_env(&key, &value)?,
                "OUTCOME_REPORT_INTERVAL_MS" => {
                    self.outcome_report_interval_ms = parse_env(&key, &value)?
                }
                "RECONCILE_INTERVAL_MS" => self.reconcile_interval_ms = parse_env(&key, &value)?,
                "HEARTBEAT_INTERVAL_MS" => self.heartbeat_interval_ms = parse_env(&key, &value)?,
                "HEARTBEAT_TTL_MS" => self.heartbeat_ttl_ms = parse_env(&key, &value)?,
                "OPERATION_TIMEOUT_MS" => self.operation_timeout_ms = parse_env(&key, &value)?,
                "FLEET_PROBES" => self.fleet_probes = parse_env(&key, &value)?,
                "PROBE_LEASE_MS" => self.probe_lease_ms = parse_env(&key, &value)?,
                "REDIS_CA_FILE" => self.redis.ca_file = Some(value),
                "REDIS_SENTINELS" => self.redis.sentinels = split_list(&value),
                "REDIS_MASTER_NAME" => self.redis.master_name = Some(value),
                "REDIS_SENTINEL_USERNAME" => self.redis.sentinel_username = Some(value),
                "REDIS_SENTINEL_PASSWORD" => self.redis.sentinel_password = Some(value),
                "REDIS_CLUSTER_NODES" => self.redis.cluster_nodes = split_list(&value),
                "REDIS_KEY_LAYOUT" => self.redis.key_layout = Some(value),
                "EVENT_KEY" => self.event_key = Some(SecretString::new(value)),
                "PREVIOUS_EVENT_KEY" => self.previous_event_key = Some(SecretString::new(value)),
                "PREVIOUS_EVENT_KEY_GRACE_SECS" => {
                    self.previous_event_key_grace_secs = parse_env(&key, &value)?
                }
                _ => {}
            }
        }
        self.validate()?;
        Ok(self)
    }

    /// The timing options this config describes.
    pub fn options(&self) -> SyncOptions {
        SyncOptions {
            flush_interval: Duration::from_millis(self.flush_interval_ms),
            outcome_report_interval: Duration::from_millis(self.outcome_report_interval_ms),
            reconcile_interval: Duration::from_millis(self.reconcile_interval_ms),
            heartbeat_interval: Duration::from_millis(self.heartbeat_interval_ms),
            heartbeat_ttl: Duration::from_millis(self.heartbeat_ttl_ms),
            operation_timeout: Duration::from_millis(self.operation_timeout_ms),
            fleet_probes: self.fleet_probes,
            probe_lease_ttl: Duration::from_millis(self.probe_lease_ms),
            ..SyncOptions::default()
        }
    }

    /// Checks every field; the error names the first bad one as it is spelled in a file.
    pub fn validate(&self) -> Result<(), SyncError> {
        if self.state_ttl == 0 || self.state_ttl > 30 * 86_400 {
            return Err(SyncError::config(
                "state_ttl",
                "must be between 1 and 2592000 seconds",
            ));
        }
        for (field, value) in [("key_prefix", &self.key_prefix), ("channel", &self.channel)] {
            if value.is_empty()
                || value.len() > 128
                || value.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(SyncError::config(
                    field,
                    "must be 1 to 128 characters without whitespace",
                ));
            }
        }
        if let Some(id) = &self.worker_id {
            WorkerId::new(id.clone()).map_err(|e| SyncError::config("worker_id", e.to_string()))?;
        }
        if self.backend == BackendKind::Redis {
            self.redis.validate()?;
        }
        self.event_auth()?;
        if self.event_key.is_some() && self.channel == PYTHON_CHANNEL {
            return Err(SyncError::config(
                "event_key",
                format!(
                    "signed events on {PYTHON_CHANNEL}, the channel Python FlexiAI workers \
                     share, would stop every Python subscriber for good (redis-py decodes each \
                     message as text); set `channel` to one only Rust workers use"
                ),
            ));
        }
        if self.redis.command_timeout_ms == 0 {
            return Err(SyncError::config(
                "redis.command_timeout_ms",
                "must be greater than zero",
            ));
        }
        self.options().validate().map_err(|error| match error {
            SyncError::InvalidConfig { field, reason } => {
                let spelled = match field.as_str() {
                    "probe_lease_ttl" => "probe_lease_ms".to_owned(),
                    "heartbeat_ttl" => "heartbeat_ttl_ms".to_owned(),
                    other => format!("{other}_ms"),
                };
                SyncError::InvalidConfig {
                    field: spelled,
                    reason,
                }
            }
            other => other,
        })
    }

    /// The event authentication `event_key` and `previous_event_key` describe (`None`
    /// without a key). The grace period of the previous key starts now. Errors name the
    /// field and never contain a key.
    pub fn event_auth(&self) -> Result<Option<EventAuth>, SyncError> {
        let key = |field: &str, secret: &SecretString| {
            MacKey::new(secret.expose()).map_err(|e| SyncError::config(field, e.to_string()))
        };
        let Some(current) = &self.event_key else {
            if self.previous_event_key.is_some() {
                return Err(SyncError::config(
                    "previous_event_key",
                    "needs event_key (the key to sign with)",
                ));
            }
            return Ok(None);
        };
        let mut auth = EventAuth::new(key("event_key", current)?);
        if self.previous_event_key_grace_secs > 30 * 86_400 {
            return Err(SyncError::config(
                "previous_event_key_grace_secs",
                "must be at most 2592000 seconds (30 days)",
            ));
        }
        if let Some(previous) = &self.previous_event_key {
            if previous == current {
                return Err(SyncError::config(
                    "previous_event_key",
                    "must differ from event_key",
                ));
            }
            auth = auth.with_previous(
                key("previous_event_key", previous)?,
                Duration::from_secs(self.previous_event_key_grace_secs),
            );
        }
        Ok(Some(auth))
    }

    /// Builds the backend this config describes, without connecting: an unreachable Redis
    /// makes the manager start degraded, not fail.
    pub fn build_backend(&self) -> Result<Arc<dyn SyncBackend>, SyncError> {
        self.validate()?;
        let ttl = Duration::from_secs(self.state_ttl);
        if !self.enabled || self.backend == BackendKind::Memory {
            let backend = MemoryBackend::builder()
                .state_ttl(Some(ttl))
                .auth(self.event_auth()?)
                .build()?;
            return Ok(Arc::new(backend));
        }
        self.build_redis(ttl)
    }

    #[cfg(feature = "redis")]
    fn build_redis(&self, ttl: Duration) -> Result<Arc<dyn SyncBackend>, SyncError> {
        use flexiai_backend_redis::{RedisBackend, RedisConfig};
        let redis = &self.redis;
        let mut config = match &redis.url {
            Some(url) => RedisConfig::from_url(url)
                .map_err(|e| SyncError::config("redis.url", e.to_string()))?,
            None => {
                let mut config = RedisConfig::new(redis.host.clone(), redis.port)
                    .db_index(redis.db)
                    .ssl(redis.ssl);
                if let Some(password) = &redis.password {
                    config = config.password(password.clone());
                }
                config
            }
        };
        if let Some(username) = &redis.username {
            config = config.username(username.clone());
        }
        if !redis.sentinels.is_empty() && !redis.cluster_nodes.is_empty() {
            return Err(SyncError::config(
                "redis.cluster_nodes",
                "set either sentinels or cluster_nodes, not both",
            ));
        }
        if !redis.sentinels.is_empty() {
            let sentinels = parse_nodes("redis.sentinels", &redis.sentinels, 26379)?;
            let Some(master_name) = &redis.master_name else {
                return Err(SyncError::config(
                    "redis.master_name",
                    "is required with sentinels",
                ));
            };
            config = config
                .sentinel(sentinels, master_name.clone())
                .sentinel_auth(
                    redis.sentinel_username.clone(),
                    redis.sentinel_password.clone(),
                );
        }
        if !redis.cluster_nodes.is_empty() {
            config = config.cluster(parse_nodes(
                "redis.cluster_nodes",
                &redis.cluster_nodes,
                6379,
            )?);
        }
        if let Some(layout) = &redis.key_layout {
            let layout = layout
                .parse::<flexiai_backend_redis::KeyLayout>()
                .map_err(|reason| SyncError::config("redis.key_layout", reason))?;
            config = config.key_layout(layout);
        }
        if let Some(path) = &redis.ca_file {
            config = config
                .ca_certificate_file(path)
                .map_err(|e| SyncError::config("redis.ca_file", e.to_string()))?;
        }
        config = config
            .key_prefix(self.key_prefix.clone())
            .channel(self.channel.clone())
            .state_ttl(Some(ttl))
            .command_timeout(Duration::from_millis(redis.command_timeout_ms))
            .event_auth(self.event_auth()?);
        let backend =
            RedisBackend::new(config).map_err(|e| SyncError::config("redis", e.to_string()))?;
        Ok(Arc::new(backend))
    }

    #[cfg(not(feature = "redis"))]
    fn build_redis(&self, _ttl: Duration) -> Result<Arc<dyn SyncBackend>, SyncError> {
        Err(SyncError::config(
            "backend",
            "`redis` needs flexiai-sync's `redis` feature (on by default)",
        ))
    }

    /// The worker id this config asks for, generated when absent.
    pub fn worker_id(&self) -> Result<WorkerId, SyncError> {
        match &self.worker_id {
            Some(id) => {
                WorkerId::new(id.clone()).map_err(|e| SyncError::config("worker_id", e.to_string()))
            }
            None => Ok(WorkerId::generate()),
        }
    }
}

fn parse_env<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, SyncError> {
    flexiai_backend::parse_env(value).map_err(|reason| SyncError::config(key, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_seed_schema_parses_from_toml_and_json() {
        let toml = SyncConfig::from_toml_str(
            r#"
            enabled = true
            backend = "redis"
            worker_id = "web-1:42:1730000000000"
            key_prefix = "fleet"
            channel = "fleet:events"
            state_ttl = 600
            [redis]
            host = "cache"
            port = 6380
            password = "pw"
            db = 2
            ssl = true
            "#,
        )
        .unwrap();
        let json = SyncConfig::from_json_str(
            r#"{"enabled": true, "backend": "redis", "worker_id": "web-1:42:1730000000000",
                "key_prefix": "fleet", "channel": "fleet:events", "state_ttl": 600,
                "redis": {"host": "cache", "port": 6380, "password": "pw", "db": 2, "ssl": true}}"#,
        )
        .unwrap();
        assert_eq!(toml, json);
        assert_eq!(toml.redis.port, 6380);
        assert_eq!(toml.worker_id().unwrap().as_str(), "web-1:42:1730000000000");
        assert_eq!(
            SyncConfig::from_toml_str("").unwrap(),
            SyncConfig::default()
        );
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (r#"{"state_ttl": 0}"#, "state_ttl"),
            (
                r#"{"backend": "redis", "redis": {"port": 0}}"#,
                "redis.port",
            ),
            (
                r#"{"backend": "redis", "redis": {"host": " "}}"#,
                "redis.host",
            ),
            (r#"{"backend": "redis", "redis": {"db": 99}}"#, "redis.db"),
            (r#"{"key_prefix": "has space"}"#, "key_prefix"),
            (r#"{"worker_id": ""}"#, "worker_id"),
            (r#"{"flush_interval_ms": 0}"#, "flush_interval_ms"),
            (
                r#"{"outcome_report_interval_ms": 0}"#,
                "outcome_report_interval_ms",
            ),
            (r#"{"heartbeat_ttl_ms": 10}"#, "heartbeat_ttl_ms"),
            (r#"{"probe_lease_ms": 0}"#, "probe_lease_ms"),
        ];
        for (json, field) in cases {
            let err = SyncConfig::from_json_str(json).unwrap_err();
            assert!(
                matches!(&err, SyncError::InvalidConfig { field: f, .. } if f == field),
                "{json} -> {err}"
            );
        }
        let err = SyncConfig::from_json_str(r#"{"bakend": "redis"}"#).unwrap_err();
        assert!(
            err.to_string().contains("bakend"),
            "unknown fields are named: {err}"
        );
        let err = SyncConfig::from_toml_str("backend = \"etcd\"").unwrap_err();
        assert!(
            matches!(err, SyncError::Parse { format: "TOML", .. }),
            "{err}"
        );
    }

    #[test]
    fn environment_overrides_and_names_bad_variables() {
        let config = SyncConfig::default()
            .apply_env(env(&[
                ("FLEXIAI_SYNC_BACKEND", "Redis"),
                ("FLEXIAI_SYNC_REDIS_URL", "redis://:pw@cache:6380/1"),
                ("FLEXIAI_SYNC_STATE_TTL", "120"),
                ("FLEXIAI_SYNC_FLEET_PROBES", "false"),
                ("UNRELATED", "x"),
            ]))
            .unwrap();
        assert_eq!(config.backend, BackendKind::Redis);
        assert_eq!(config.state_ttl, 120);
        assert!(!config.fleet_probes);
        assert_eq!(
            config.redis.url.as_deref(),
            Some("redis://:pw@cache:6380/1")
        );

        let err = SyncConfig::default()
            .apply_env(env(&[("FLEXIAI_SYNC_REDIS_PORT", "eighty")]))
            .unwrap_err();
        assert!(err.to_string().contains("FLEXIAI_SYNC_REDIS_PORT"), "{err}");
        let err = SyncConfig::default()
            .apply_env(env(&[("FLEXIAI_SYNC_STATE_TTL", "0")]))
            .unwrap_err();
        assert!(err.to_string().contains("state_ttl"), "{err}");
    }

    /// Signed frames on the channel Python workers share would kill their subscribers:
    /// refused, naming the field, unless another channel is set.
    #[test]
    fn signing_on_the_python_channel_is_refused() {
        let signed = SyncConfig {
            event_key: Some(SecretString::new("0123456789abcdef0123")),
            ..SyncConfig::default()
        };
        let err = signed.validate().unwrap_err().to_string();
        assert!(
            err.contains("event_key") && err.contains("channel"),
            "{err}"
        );
        let separate = SyncConfig {
            channel: "fleet:signed".into(),
            ..signed
        };
        separate.validate().unwrap();
    }

    #[test]
    fn debug_never_shows_passwords() {
        let config = SyncConfig {
            redis: RedisSettings {
                url: Some("redis://admin:s3cret@cache:6379/0".into()),
                password: Some("hunter2".into()),
                ..RedisSettings::default()
            },
            ..SyncConfig::default()
        };
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("hunter2"),
            "{debug}"
        );
        assert!(debug.contains("admin:<redacted>@cache"), "{debug}");
    }

    #[tokio::test]
    async fn disabled_or_memory_configs_build_a_private_memory_backend() {
        let disabled = SyncConfig {
            enabled: false,
            backend: BackendKind::Redis,
            ..SyncConfig::default()
        };
        assert_eq!(disabled.build_backend().unwrap().kind(), "memory");
        assert_eq!(
            SyncConfig::default().build_backend().unwrap().kind(),
            "memory"
        );
    }

    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn redis_configs_build_without_connecting() {
        // Nothing listens on port 1: building must still succeed (the manager degrades).
        let config = SyncConfig {
            backend: BackendKind::Redis,
            redis: RedisSettings {
                port: 1,
                ..RedisSettings::default()
            },
            ..SyncConfig::default()
        };
        let backend = config.build_backend().unwrap();
        assert_eq!(backend.kind(), "redis");
        let err = SyncConfig {
            redis: RedisSettings {
                url: Some("http://x".into()),
                ..RedisSettings::default()
            },
            backend: BackendKind::Redis,
            ..SyncConfig::default()
        }
        .build_backend()
        .unwrap_err();
        assert!(err.to_string().contains("redis.url"), "{err}");
    }

    #[cfg(feature = "redis")]
    #[tokio::test]
    async fn sentinel_and_cluster_settings_build_and_name_their_fields() {
        let toml = SyncConfig::from_toml_str(
            r#"
            backend = "redis"
            [redis]
            sentinels = ["10.0.0.1:26379", "10.0.0.2"]
            master_name = "mymaster"
            sentinel_password = "sentinel-secret"
            "#,
        )
        .unwrap();
        assert_eq!(toml.build_backend().unwrap().kind(), "redis");
        assert!(!format!("{toml:?}").contains("sentinel-secret"));
        let from_env = SyncConfig::default()
            .apply_env(env(&[
                ("FLEXIAI_SYNC_BACKEND", "redis"),
                ("FLEXIAI_SYNC_REDIS_CLUSTER_NODES", "a:7000, b:7001"),
                ("FLEXIAI_SYNC_REDIS_KEY_LAYOUT", "hash-tagged"),
            ]))
            .unwrap();
        assert_eq!(from_env.redis.cluster_nodes, ["a:7000", "b:7001"]);
        from_env.build_backend().unwrap();
        let fails = |redis: RedisSettings, field: &str| {
            let err = SyncConfig {
                backend: BackendKind::Redis,
                redis,
                ..SyncConfig::default()
            }
            .build_backend()
            .unwrap_err();
            assert!(err.to_string().contains(field), "{err} should name {field}");
        };
        fails(
            RedisSettings {
                sentinels: vec!["s:26379".into()],
                ..RedisSettings::default()
            },
            "redis.master_name",
        );
        fails(
            RedisSettings {
                sentinels: vec!["s:port".into()],
                master_name: Some("m".into()),
                ..RedisSettings::default()
            },
            "redis.sentinels",
        );
        fails(
            RedisSettings {
                cluster_nodes: vec!["a:1".into()],
                key_layout: Some("plain".into()),
                ..RedisSettings::default()
            },
            "key_layout",
        );
        fails(
            RedisSettings {
                key_layout: Some("curly".into()),
                ..RedisSettings::default()
            },
            "redis.key_layout",
        );
        fails(
            RedisSettings {
                cluster_nodes: vec!["a:1".into()],
                sentinels: vec!["s".into()],
                master_name: Some("m".into()),
                ..RedisSettings::default()
            },
            "redis.cluster_nodes",
        );
    }
}
