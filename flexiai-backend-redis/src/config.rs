//! Connection and behaviour settings for [`RedisBackend`](crate::RedisBackend).

use std::fmt;
use std::time::Duration;

use flexiai_serde::{DecodeLimits, EventAuth, Format};
use redis::{ConnectionAddr, IntoConnectionInfo, ProtocolVersion, RedisConnectionInfo};

use crate::error::RedisBackendError;
use crate::keys::KeyLayout;

use flexiai_backend::Secret;

/// Which kind of Redis deployment the backend talks to (see [`RedisConfig::topology`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TopologyKind {
    /// One node (or a proxy in front of several, as most managed services offer).
    Standalone,
    /// A master found through Redis Sentinel, followed across failovers.
    Sentinel,
    /// Redis Cluster: keys spread over hash slots, needs [`KeyLayout::HashTagged`].
    Cluster,
}

/// One `host:port`.
pub(crate) type NodeAddr = (String, u16);

/// Where the data lives beyond one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Topology {
    Standalone,
    Sentinel {
        sentinels: Vec<NodeAddr>,
        master_name: String,
        username: Option<String>,
        password: Option<Secret>,
    },
    Cluster {
        seeds: Vec<NodeAddr>,
    },
}

/// Default port of a Sentinel.
pub(crate) const SENTINEL_PORT: u16 = 26379;

/// Settings for a [`RedisBackend`](crate::RedisBackend).
///
/// Build one from a URL ([`RedisConfig::from_url`]) or from the seed's fields
/// ([`RedisConfig::new`] plus [`password`](Self::password), [`db`](Self::db),
/// [`ssl`](Self::ssl), and [`username`](Self::username) for ACL users), then adjust the
/// rest with the setters. Nothing is checked until
/// [`RedisBackend::new`](crate::RedisBackend::new), which names the offending field.
///
/// `Debug` output never shows the password or event keys.
///
/// ```
/// use std::time::Duration;
/// use flexiai_backend_redis::RedisConfig;
///
/// let config = RedisConfig::from_url("redis://:hunter2@cache.internal:6380/2")?
///     .key_prefix("fleet-a")
///     .command_timeout(Duration::from_millis(250));
/// assert_eq!(config.host(), "cache.internal");
/// assert_eq!(config.db(), 2);
/// assert!(!format!("{config:?}").contains("hunter2"));
/// # Ok::<(), flexiai_backend_redis::RedisBackendError>(())
/// ```
#[derive(Clone)]
pub struct RedisConfig {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<Secret>,
    pub(crate) db: i64,
    pub(crate) ssl: bool,
    pub(crate) ssl_insecure: bool,
    pub(crate) ca_certificate: Option<Vec<u8>>,
    pub(crate) key_prefix: String,
    pub(crate) channel: String,
    pub(crate) state_ttl: Option<Duration>,
    pub(crate) command_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) pool_size: usize,
    pub(crate) format: Format,
    pub(crate) decode_limits: DecodeLimits,
    pub(crate) subscriber_capacity: usize,
    pub(crate) keepalive_interval: Duration,
    pub(crate) reconnect_retries: usize,
    pub(crate) reconnect_max_delay: Duration,
    pub(crate) event_auth: Option<EventAuth>,
    pub(crate) topology: Topology,
    pub(crate) key_layout: KeyLayout,
    pub(crate) python_compatible: bool,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("db", &self.db)
            .field("ssl", &self.ssl)
            .field("ssl_insecure", &self.ssl_insecure)
            .field(
                "ca_certificate",
                &self
                    .ca_certificate
                    .as_ref()
                    .map(|pem| format!("<{} bytes of PEM>", pem.len())),
            )
            .field("key_prefix", &self.key_prefix)
            .field("channel", &self.channel)
            .field("state_ttl", &self.state_ttl)
            .field("command_timeout", &self.command_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("pool_size", &self.pool_size)
            .field("format", &self.format)
            .field("decode_limits", &self.decode_limits)
            .field("subscriber_capacity", &self.subscriber_capacity)
            .field("keepalive_interval", &self.keepalive_interval)
            .field("reconnect_retries", &self.reconnect_retries)
            .field("reconnect_max_delay", &self.reconnect_max_delay)
            .field("event_auth", &self.event_auth)
            .field("topology", &self.topology)
            .field("key_layout", &self.key_layout)
            .field("python_compatible", &self.python_compatible)
            .finish()
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self::new("127.0.0.1", 6379)
    }
}

impl RedisConfig {
    /// Default key prefix, as in the seed.
    pub const DEFAULT_KEY_PREFIX: &'static str = "flexiai";
    /// Default event channel, as in the seed.
    pub const DEFAULT_CHANNEL: &'static str = "flexiai:events";
    /// Default state TTL: one hour, as in the seed.
    pub const DEFAULT_STATE_TTL: Duration = Duration::from_secs(3600);
    /// Default bound on every command, pool wait included.
    pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(1);
    /// Default bound on establishing one connection.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
    /// Default pool size.
    pub const DEFAULT_POOL_SIZE: usize = 8;
    /// Default period of the subscriber's keep-alive `PING`.
    pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);

    /// Settings for `host:port` with every other field at its default.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            username: None,
            password: None,
            db: 0,
            ssl: false,
            ssl_insecure: false,
            ca_certificate: None,
            key_prefix: Self::DEFAULT_KEY_PREFIX.to_owned(),
            channel: Self::DEFAULT_CHANNEL.to_owned(),
            state_ttl: Some(Self::DEFAULT_STATE_TTL),
            command_timeout: Self::DEFAULT_COMMAND_TIMEOUT,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            pool_size: Self::DEFAULT_POOL_SIZE,
            format: Format::Json,
            decode_limits: DecodeLimits::default(),
            subscriber_capacity: 1024,
            keepalive_interval: Self::DEFAULT_KEEPALIVE_INTERVAL,
            reconnect_retries: 6,
            reconnect_max_delay: Duration::from_secs(2),
            event_auth: None,
            topology: Topology::Standalone,
            key_layout: KeyLayout::Plain,
            python_compatible: true,
        }
    }

    /// Settings from `redis://[user][:password@]host[:port][/db]` or `rediss://...` (TLS;
    /// append `#insecure` to skip certificate verification).
    ///
    /// Two more schemes name several nodes, comma-separated (the credentials, if any, are the
    /// data nodes'):
    ///
    /// * `redis+cluster://[user:password@]host[:port][,host[:port]...]` (or `rediss+cluster`):
    ///   Redis Cluster seeds (default port 6379); selects [`KeyLayout::HashTagged`], which
    ///   Cluster requires;
    /// * `redis+sentinel://[user:password@]host[:port][,host[:port]...]/master_name[/db]` (or
    ///   `rediss+sentinel`): Sentinels (default port 26379) and the name of the master they
    ///   watch. Sentinel credentials, if any, go through [`sentinel_auth`](Self::sentinel_auth).
    ///
    /// The error never repeats the URL, which may hold a password.
    ///
    /// ```
    /// use flexiai_backend_redis::{KeyLayout, RedisConfig, TopologyKind};
    ///
    /// let cluster = RedisConfig::from_url("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7000")?;
    /// assert_eq!(cluster.topology(), TopologyKind::Cluster);
    /// assert_eq!(cluster.layout(), KeyLayout::HashTagged);
    ///
    /// let sentinel = RedisConfig::from_url("redis+sentinel://s1,s2:26380/mymaster/2")?;
    /// assert_eq!(sentinel.topology(), TopologyKind::Sentinel);
    /// assert_eq!(sentinel.db(), 2);
    /// # Ok::<(), flexiai_backend_redis::RedisBackendError>(())
    /// ```
    pub fn from_url(url: &str) -> Result<Self, RedisBackendError> {
        if let Some((scheme, rest)) = url.split_once("://")
            && let Some((base, kind)) = scheme.split_once('+')
        {
            return Self::from_multi_node_url(base, kind, rest);
        }
        let info = url
            .into_connection_info()
            .map_err(|e| RedisBackendError::InvalidConfig {
                field: "url",
                reason: format!("not a valid Redis URL ({})", e.category()),
            })?;
        let mut config = match info.addr() {
            ConnectionAddr::Tcp(host, port) => Self::new(host.clone(), *port),
            ConnectionAddr::TcpTls {
                host,
                port,
                insecure,
                ..
            } => {
                let mut config = Self::new(host.clone(), *port).ssl(true);
                config.ssl_insecure = *insecure;
                config
            }
            _ => {
                return Err(RedisBackendError::InvalidConfig {
                    field: "url",
                    reason: "only redis:// and rediss:// TCP addresses are supported".into(),
                });
            }
        };
        let redis = info.redis_settings();
        config.username = redis.username().map(str::to_owned);
        config.password = redis.password().map(Secret::new);
        config.db = redis.db();
        Ok(config)
    }

    /// Parses the part after `scheme+kind://`.
    fn from_multi_node_url(base: &str, kind: &str, rest: &str) -> Result<Self, RedisBackendError> {
        let invalid = |reason: &str| RedisBackendError::InvalidConfig {
            field: "url",
            reason: reason.to_owned(),
        };
        if base != "redis" && base != "rediss" {
            return Err(invalid("the scheme must be redis+... or rediss+..."));
        }
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((userinfo, rest)) => (Some(userinfo), rest),
            None => (None, rest),
        };
        let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
        let default_port = match kind {
            "cluster" => 6379,
            "sentinel" => SENTINEL_PORT,
            _ => return Err(invalid("expected redis+cluster:// or redis+sentinel://")),
        };
        let mut nodes = Vec::new();
        for host in hosts.split(',').filter(|h| !h.is_empty()) {
            // Let redis-rs parse each node (IPv6 brackets, percent-decoding) as a plain URL.
            let single = match userinfo {
                Some(userinfo) => format!("{base}://{userinfo}@{host}"),
                None => format!("{base}://{host}"),
            };
            let info = single
                .as_str()
                .into_connection_info()
                .map_err(|e| invalid(&format!("not a valid node address ({})", e.category())))?;
            let (node_host, port) = match info.addr() {
                ConnectionAddr::Tcp(h, p)
                | ConnectionAddr::TcpTls {
                    host: h, port: p, ..
                } => (h.clone(), *p),
                _ => return Err(invalid("only TCP node addresses are supported")),
            };
            let port = if host.contains(':') && !host.ends_with(']') {
                port
            } else {
                default_port
            };
            if nodes.is_empty() {
                let redis = info.redis_settings();
                nodes.push((
                    node_host,
                    port,
                    redis.username().map(str::to_owned),
                    redis.password().map(Secret::new),
                ));
            } else {
                nodes.push((node_host, port, None, None));
            }
        }
        let Some((first_host, first_port, username, password)) = nodes.first().cloned() else {
            return Err(invalid("names no node"));
        };
        let addrs: Vec<NodeAddr> = nodes.into_iter().map(|(h, p, _, _)| (h, p)).collect();
        let mut segments = path.split('/').filter(|s| !s.is_empty());
        let mut config = Self::new(first_host, first_port).ssl(base == "rediss");
        config.username = username;
        config.password = password;
        if kind == "cluster" {
            if segments.next().is_some() {
                return Err(invalid(
                    "a cluster URL has no path (Redis Cluster has only db 0)",
                ));
            }
            config.topology = Topology::Cluster { seeds: addrs };
            config.key_layout = KeyLayout::HashTagged;
        } else {
            let Some(master_name) = segments.next() else {
                return Err(invalid("a sentinel URL needs the master name as its path"));
            };
            if let Some(db) = segments.next() {
                config.db = db
                    .parse()
                    .map_err(|_| invalid("the database after the master name must be a number"))?;
            }
            config.topology = Topology::Sentinel {
                sentinels: addrs,
                master_name: master_name.to_owned(),
                username: None,
                password: None,
            };
        }
        Ok(config)
    }

    /// Talks to a Redis Cluster through these seed nodes (any reachable node of the cluster
    /// will do; the rest are discovered), and selects [`KeyLayout::HashTagged`], which a
    /// cluster requires. Credentials, TLS and timeouts are those of this config.
    #[must_use]
    pub fn cluster<H: Into<String>>(mut self, seeds: impl IntoIterator<Item = (H, u16)>) -> Self {
        let seeds: Vec<NodeAddr> = seeds.into_iter().map(|(h, p)| (h.into(), p)).collect();
        if let Some((host, port)) = seeds.first() {
            self.host.clone_from(host);
            self.port = *port;
        }
        self.topology = Topology::Cluster { seeds };
        self.key_layout = KeyLayout::HashTagged;
        self
    }

    /// Finds the master named `master_name` through these Sentinels, and follows it across
    /// failovers. Credentials, TLS and the database of this config apply to the data nodes;
    /// the Sentinels' own go through [`sentinel_auth`](Self::sentinel_auth).
    #[must_use]
    pub fn sentinel<H: Into<String>>(
        mut self,
        sentinels: impl IntoIterator<Item = (H, u16)>,
        master_name: impl Into<String>,
    ) -> Self {
        let sentinels: Vec<NodeAddr> = sentinels.into_iter().map(|(h, p)| (h.into(), p)).collect();
        let (username, password) = match &self.topology {
            Topology::Sentinel {
                username, password, ..
            } => (username.clone(), password.clone()),
            _ => (None, None),
        };
        self.topology = Topology::Sentinel {
            sentinels,
            master_name: master_name.into(),
            username,
            password,
        };
        self
    }

    /// Credentials for the Sentinels themselves (`requirepass` / ACL user in
    /// `sentinel.conf`), when they differ from the data nodes'. Only applies after
    /// [`sentinel`](Self::sentinel).
    #[must_use]
    pub fn sentinel_auth(mut self, username: Option<String>, password: Option<String>) -> Self {
        if let Topology::Sentinel {
            username: u,
            password: p,
            ..
        } = &mut self.topology
        {
            *u = username;
            *p = password.map(Secret::new);
        }
        self
    }

    /// Names keys in `layout` (default [`KeyLayout::Plain`], the Python original's names;
    /// [`cluster`](Self::cluster) selects [`KeyLayout::HashTagged`]).
    #[must_use]
    pub fn key_layout(mut self, layout: KeyLayout) -> Self {
        self.key_layout = layout;
        self
    }

    /// The key layout in force.
    pub fn layout(&self) -> KeyLayout {
        self.key_layout
    }

    /// The kind of deployment.
    pub fn topology(&self) -> TopologyKind {
        match self.topology {
            Topology::Standalone => TopologyKind::Standalone,
            Topology::Sentinel { .. } => TopologyKind::Sentinel,
            Topology::Cluster { .. } => TopologyKind::Cluster,
        }
    }

    /// The server's host name or address.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The database number.
    pub fn db(&self) -> i64 {
        self.db
    }

    /// The ACL user name, if any.
    pub fn user(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// Whether a password is configured (the password itself is never exposed).
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.key_prefix
    }

    /// The event channel.
    pub fn channel_name(&self) -> &str {
        &self.channel
    }

    /// The bound on every command.
    pub fn timeout(&self) -> Duration {
        self.command_timeout
    }

    /// Sets the password (`AUTH`, or `AUTH user password` with [`username`](Self::username)).
    #[must_use]
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(Secret::new(password));
        self
    }

    /// Sets the ACL user name.
    #[must_use]
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// Selects a database (default 0).
    #[must_use]
    pub fn db_index(mut self, db: i64) -> Self {
        self.db = db;
        self
    }

    /// Connects with TLS (`rediss://`) when `true`.
    #[must_use]
    pub fn ssl(mut self, ssl: bool) -> Self {
        self.ssl = ssl;
        self
    }

    /// With TLS, skips certificate verification. For tests only.
    #[must_use]
    pub fn ssl_insecure(mut self, insecure: bool) -> Self {
        self.ssl_insecure = insecure;
        self
    }

    /// With TLS, trusts only the CA certificate(s) in this PEM document instead of the
    /// system's roots (a private CA, or a test's self-signed one).
    #[must_use]
    pub fn ca_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_certificate = Some(pem.into());
        self
    }

    /// Like [`ca_certificate`](Self::ca_certificate), reading the PEM from a file.
    pub fn ca_certificate_file(
        self,
        path: impl AsRef<std::path::Path>,
    ) -> Result<Self, RedisBackendError> {
        let pem = std::fs::read(path.as_ref()).map_err(|e| RedisBackendError::InvalidConfig {
            field: "ca_certificate",
            reason: format!("cannot read {}: {e}", path.as_ref().display()),
        })?;
        Ok(self.ca_certificate(pem))
    }

    /// Signs every event and stored snapshot, and accepts only validly signed ones (see
    /// [`EventAuth`]); `None` (the default) turns authentication off. Signatures are bound to
    /// the channel name and to each snapshot's key.
    #[must_use]
    pub fn event_auth(mut self, auth: impl Into<Option<EventAuth>>) -> Self {
        self.event_auth = auth.into();
        self
    }

    /// The event authentication in force, if any.
    pub fn auth(&self) -> Option<&EventAuth> {
        self.event_auth.as_ref()
    }

    /// Whether [`validate`](Self::validate) refuses MessagePack and signing on
    /// [`DEFAULT_CHANNEL`](Self::DEFAULT_CHANNEL) (default `true`). Python FlexiAI workers
    /// read that channel, and one binary frame (MessagePack or signed) kills their
    /// subscriber thread for good. `false` is for fleets (and tests) with no Python worker
    /// on that channel; prefer another channel name.
    #[must_use]
    pub fn python_compatible(mut self, python_compatible: bool) -> Self {
        self.python_compatible = python_compatible;
        self
    }

    /// Sets the key prefix (default `flexiai`).
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets the event channel (default `flexiai:events`).
    #[must_use]
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = channel.into();
        self
    }

    /// How long a stored snapshot lives after its last write; `None` keeps it forever.
    /// Default one hour.
    #[must_use]
    pub fn state_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.state_ttl = ttl;
        self
    }

    /// The bound on every operation, waiting for a pooled connection included (default 1 s).
    #[must_use]
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// The bound on establishing one connection (default 2 s).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The most pooled command connections (default 8). Commands share one multiplexed
    /// connection from the pool at a time, so the pool mostly bounds how many connections a
    /// burst of reconnects can open.
    #[must_use]
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size;
        self
    }

    /// The format events and snapshots are written in (default JSON; both are read).
    #[must_use]
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// Size limits for decoding payloads from the channel and the store.
    #[must_use]
    pub fn decode_limits(mut self, limits: DecodeLimits) -> Self {
        self.decode_limits = limits;
        self
    }

    /// How many notifications each subscription buffers before reporting lag (default 1024).
    #[must_use]
    pub fn subscriber_capacity(mut self, capacity: usize) -> Self {
        self.subscriber_capacity = capacity;
        self
    }

    /// Period of the subscriber's keep-alive `PING` (default 5 s), which also revives a
    /// subscriber whose reconnect retries ran out.
    #[must_use]
    pub fn keepalive_interval(mut self, interval: Duration) -> Self {
        self.keepalive_interval = interval;
        self
    }

    /// Reconnect attempts of the subscriber before it waits for the next keep-alive
    /// (default 6), and the longest back-off between them (default 2 s).
    #[must_use]
    pub fn reconnect(mut self, retries: usize, max_delay: Duration) -> Self {
        self.reconnect_retries = retries;
        self.reconnect_max_delay = max_delay;
        self
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), RedisBackendError> {
        let invalid = |field: &'static str, reason: &str| {
            Err(RedisBackendError::InvalidConfig {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.host.is_empty() {
            return invalid("host", "must not be empty");
        }
        if self.port == 0 {
            return invalid("port", "must not be 0");
        }
        if self.db < 0 {
            return invalid("db", "must not be negative");
        }
        if self.username.as_deref().is_some_and(str::is_empty) {
            return invalid("username", "must not be empty when set");
        }
        if self.ssl_insecure && !self.ssl {
            return invalid("ssl_insecure", "only applies with ssl");
        }
        if self.ca_certificate.is_some() && !self.ssl {
            return invalid("ca_certificate", "only applies with ssl");
        }
        if self
            .ca_certificate
            .as_deref()
            .is_some_and(|pem| !pem.windows(11).any(|w| w == b"-----BEGIN "))
        {
            return invalid("ca_certificate", "is not a PEM document");
        }
        if self.ssl && !cfg!(feature = "tls") {
            return invalid(
                "ssl",
                "this build has no TLS support (enable the `tls` feature)",
            );
        }
        if self.key_prefix.is_empty() || self.key_prefix.chars().any(bad_key_char) {
            return invalid(
                "key_prefix",
                "must be non-empty, without whitespace or control characters",
            );
        }
        if self.key_prefix.contains(['{', '}']) {
            return invalid(
                "key_prefix",
                "must not contain `{` or `}` (they decide a key's Redis Cluster hash slot; \
                 choose the hash-tagged key layout instead)",
            );
        }
        match &self.topology {
            Topology::Standalone => {}
            Topology::Cluster { seeds } => {
                if seeds.is_empty() {
                    return invalid("cluster.seeds", "must name at least one node");
                }
                if seeds.iter().any(|(h, p)| h.is_empty() || *p == 0) {
                    return invalid(
                        "cluster.seeds",
                        "every seed needs a host and a non-zero port",
                    );
                }
                if self.db != 0 {
                    return invalid("db", "Redis Cluster has only database 0");
                }
                if self.key_layout != KeyLayout::HashTagged {
                    return invalid(
                        "key_layout",
                        "Redis Cluster needs the hash-tagged layout (`{prefix}:state:...`): \
                         in the plain layout a script's keys hash to different slots \
                         (CROSSSLOT); move existing keys with `flexiai migrate-keys`",
                    );
                }
            }
            Topology::Sentinel {
                sentinels,
                master_name,
                username,
                ..
            } => {
                if sentinels.is_empty() {
                    return invalid("sentinel.sentinels", "must name at least one Sentinel");
                }
                if sentinels.iter().any(|(h, p)| h.is_empty() || *p == 0) {
                    return invalid(
                        "sentinel.sentinels",
                        "every Sentinel needs a host and a non-zero port",
                    );
                }
                if master_name.is_empty() || master_name.chars().any(bad_key_char) {
                    return invalid(
                        "sentinel.master_name",
                        "must be non-empty, without whitespace or control characters",
                    );
                }
                if username.as_deref().is_some_and(str::is_empty) {
                    return invalid("sentinel.username", "must not be empty when set");
                }
            }
        }
        if self.channel.is_empty() || self.channel.chars().any(bad_key_char) {
            return invalid(
                "channel",
                "must be non-empty, without whitespace or control characters",
            );
        }
        if self.python_compatible && self.channel == Self::DEFAULT_CHANNEL {
            if self.event_auth.is_some() {
                return invalid(
                    "event_auth",
                    "signed frames on flexiai:events, the channel Python FlexiAI workers read, kill their subscriber: use another channel, or python_compatible(false) if no Python worker reads it",
                );
            }
            if self.format != Format::Json {
                return invalid(
                    "format",
                    "MessagePack on flexiai:events, the channel Python FlexiAI workers read, kills their subscriber: use another channel, or python_compatible(false) if no Python worker reads it",
                );
            }
        }
        if let Some(ttl) = self.state_ttl
            && (ttl < Duration::from_millis(1) || ttl > Duration::from_secs(365 * 86_400))
        {
            return invalid("state_ttl", "must be between 1 ms and 365 days");
        }
        if self.command_timeout < Duration::from_millis(1) {
            return invalid("command_timeout", "must be at least 1 ms");
        }
        if self.connect_timeout < Duration::from_millis(1) {
            return invalid("connect_timeout", "must be at least 1 ms");
        }
        if self.pool_size == 0 {
            return invalid("pool_size", "must be at least 1");
        }
        if self.subscriber_capacity == 0 {
            return invalid("subscriber_capacity", "must be at least 1");
        }
        if self.keepalive_interval < Duration::from_millis(10) {
            return invalid("keepalive_interval", "must be at least 10 ms");
        }
        if self.decode_limits.max_bytes == 0 {
            return invalid("decode_limits", "max_bytes must be at least 1");
        }
        Ok(())
    }

    /// The address(es) with no credentials, for logs and error messages.
    pub fn display_addr(&self) -> String {
        let scheme = if self.ssl { "rediss" } else { "redis" };
        let list = |nodes: &[NodeAddr]| {
            nodes
                .iter()
                .map(|(h, p)| format!("{h}:{p}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        match &self.topology {
            Topology::Standalone => format!("{scheme}://{}:{}/{}", self.host, self.port, self.db),
            Topology::Cluster { seeds } => format!("{scheme}+cluster://{}", list(seeds)),
            Topology::Sentinel {
                sentinels,
                master_name,
                ..
            } => format!(
                "{scheme}+sentinel://{}/{master_name}/{}",
                list(sentinels),
                self.db
            ),
        }
    }

    /// The same settings pointed at one node (a cluster node, a resolved master or a
    /// Sentinel), standalone.
    pub(crate) fn for_node(&self, host: &str, port: u16) -> Self {
        let mut node = self.clone();
        node.host = host.to_owned();
        node.port = port;
        node.topology = Topology::Standalone;
        node
    }

    pub(crate) fn connection_info(
        &self,
        protocol: ProtocolVersion,
    ) -> Result<redis::ConnectionInfo, RedisBackendError> {
        let addr = if self.ssl {
            ConnectionAddr::TcpTls {
                host: self.host.clone(),
                port: self.port,
                insecure: self.ssl_insecure,
                tls_params: None,
            }
        } else {
            ConnectionAddr::Tcp(self.host.clone(), self.port)
        };
        let mut redis = RedisConnectionInfo::default()
            .set_db(self.db)
            .set_protocol(protocol);
        if let Some(user) = &self.username {
            redis = redis.set_username(user);
        }
        if let Some(password) = &self.password {
            redis = redis.set_password(password.expose());
        }
        let info = addr
            .into_connection_info()
            .map_err(|e| RedisBackendError::InvalidConfig {
                field: "host",
                reason: e.category().to_owned(),
            })?
            .set_redis_settings(redis);
        self.with_ca(info)
    }

    /// Attaches the configured CA certificate to a TLS connection's settings.
    #[cfg(feature = "tls")]
    fn with_ca(
        &self,
        info: redis::ConnectionInfo,
    ) -> Result<redis::ConnectionInfo, RedisBackendError> {
        let Some(pem) = self.ca_certificate.as_ref().filter(|_| self.ssl) else {
            return Ok(info);
        };
        let certificates = redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.clone()),
        };
        let client = redis::Client::build_with_tls(info, certificates).map_err(|e| {
            RedisBackendError::InvalidConfig {
                field: "ca_certificate",
                reason: format!("not a usable CA certificate ({})", e.category()),
            }
        })?;
        Ok(client.get_connection_info().clone())
    }

    #[cfg(not(feature = "tls"))]
    fn with_ca(
        &self,
        info: redis::ConnectionInfo,
    ) -> Result<redis::ConnectionInfo, RedisBackendError> {
        Ok(info)
    }
}

fn bad_key_char(c: char) -> bool {
    c.is_whitespace() || c.is_control()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_frames_on_the_python_channel_are_refused_unless_opted_out() {
        let auth =
            || EventAuth::new(flexiai_serde::MacKey::new("a fleet secret of some length").unwrap());
        let field = |config: RedisConfig| match config.validate() {
            Err(RedisBackendError::InvalidConfig { field, .. }) => Some(field),
            _ => None,
        };
        assert_eq!(
            field(RedisConfig::default().event_auth(auth())),
            Some("event_auth")
        );
        assert_eq!(
            field(RedisConfig::default().format(Format::MessagePack)),
            Some("format")
        );
        assert!(RedisConfig::default().validate().is_ok());
        assert!(
            RedisConfig::default()
                .channel("fleet:signed")
                .event_auth(auth())
                .format(Format::MessagePack)
                .validate()
                .is_ok()
        );
        assert!(
            RedisConfig::default()
                .python_compatible(false)
                .event_auth(auth())
                .format(Format::MessagePack)
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn url_fields_and_redaction() {
        let config = RedisConfig::from_url("redis://alice:s3cret@example.com:6390/3").unwrap();
        assert_eq!(config.host(), "example.com");
        assert_eq!(config.port(), 6390);
        assert_eq!(config.user(), Some("alice"));
        assert!(config.has_password());
        assert_eq!(config.db(), 3);
        let debug = format!("{config:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(debug.contains("<redacted>"));
        assert!(!config.display_addr().contains("s3cret"));
    }

    #[test]
    fn tls_url() {
        let config = RedisConfig::from_url("rediss://cache:6379").unwrap();
        assert!(config.ssl);
        assert!(config.display_addr().starts_with("rediss://"));
    }

    #[test]
    fn bad_url_does_not_echo_it() {
        let err = RedisConfig::from_url("http://:pw-in-url@host").unwrap_err();
        assert!(!err.to_string().contains("pw-in-url"), "{err}");
        assert!(err.to_string().contains("url"), "{err}");
    }

    #[test]
    fn multi_node_urls() {
        let config =
            RedisConfig::from_url("rediss+cluster://bob:pw@10.0.0.1:7000,10.0.0.2,[::1]:7002")
                .unwrap();
        assert_eq!(config.topology(), TopologyKind::Cluster);
        assert_eq!(config.layout(), KeyLayout::HashTagged);
        assert!(config.ssl);
        assert_eq!(config.user(), Some("bob"));
        assert!(config.has_password());
        let Topology::Cluster { seeds } = &config.topology else {
            panic!("not a cluster")
        };
        assert_eq!(seeds[0], ("10.0.0.1".to_owned(), 7000));
        assert_eq!(seeds[1], ("10.0.0.2".to_owned(), 6379));
        assert_eq!(seeds[2].1, 7002);
        config.validate().unwrap();
        assert_eq!(
            config.display_addr(),
            format!(
                "rediss+cluster://10.0.0.1:7000,10.0.0.2:6379,{}:7002",
                seeds[2].0
            )
        );
        assert!(!config.display_addr().contains("pw"));

        let config = RedisConfig::from_url("redis+sentinel://s1,s2:26380/mymaster/4").unwrap();
        let Topology::Sentinel {
            sentinels,
            master_name,
            ..
        } = &config.topology
        else {
            panic!("not sentinel")
        };
        assert_eq!(sentinels[0], ("s1".to_owned(), SENTINEL_PORT));
        assert_eq!(sentinels[1], ("s2".to_owned(), 26380));
        assert_eq!(master_name, "mymaster");
        assert_eq!(config.db(), 4);
        assert_eq!(config.layout(), KeyLayout::Plain);
        config.validate().unwrap();

        for (bad, why) in [
            ("redis+sentinel://s1", "master name"),
            ("redis+cluster://h/1", "no path"),
            ("redis+ring://h", "expected"),
            ("redis+cluster://", "no node"),
            ("redis+sentinel://:secret@s1/m/x", "number"),
        ] {
            let err = RedisConfig::from_url(bad).unwrap_err();
            let text = err.to_string();
            assert!(text.contains("url") && text.contains(why), "{bad}: {text}");
            assert!(!text.contains("secret"), "{text}");
        }
    }

    #[test]
    fn defaults_match_the_seed() {
        let config = RedisConfig::default();
        assert_eq!(config.prefix(), "flexiai");
        assert_eq!(config.channel_name(), "flexiai:events");
        assert_eq!(config.state_ttl, Some(Duration::from_secs(3600)));
        config.validate().unwrap();
    }

    #[test]
    fn validation_names_the_field() {
        let cases = [
            (RedisConfig::default().key_prefix(""), "key_prefix"),
            (RedisConfig::default().channel("a b"), "channel"),
            (RedisConfig::default().pool_size(0), "pool_size"),
            (
                RedisConfig::default().command_timeout(Duration::ZERO),
                "command_timeout",
            ),
            (
                RedisConfig::default().state_ttl(Some(Duration::ZERO)),
                "state_ttl",
            ),
            (RedisConfig::new("", 1), "host"),
            (RedisConfig::new("h", 0), "port"),
            (RedisConfig::default().db_index(-1), "db"),
            (RedisConfig::default().key_prefix("{fa}"), "key_prefix"),
            (RedisConfig::default().key_prefix("a}"), "key_prefix"),
            (
                RedisConfig::default()
                    .cluster([("h", 1)])
                    .key_layout(KeyLayout::Plain),
                "key_layout",
            ),
            (RedisConfig::default().cluster([("h", 1)]).db_index(1), "db"),
            (
                RedisConfig::default().cluster(Vec::<(String, u16)>::new()),
                "cluster.seeds",
            ),
            (
                RedisConfig::default().cluster([("h", 1), ("", 2)]),
                "cluster.seeds",
            ),
            (
                RedisConfig::default()
                    .sentinel([("h", 1)], "")
                    .sentinel_auth(None, None),
                "sentinel.master_name",
            ),
            (
                RedisConfig::default()
                    .sentinel([("h", 1)], "m")
                    .sentinel_auth(Some(String::new()), None),
                "sentinel.username",
            ),
        ];
        for (config, field) in cases {
            let err = config.validate().unwrap_err();
            assert!(err.to_string().contains(field), "{err} should name {field}");
        }
    }
}
