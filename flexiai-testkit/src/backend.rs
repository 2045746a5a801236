//! [`RedisFactory`]: real `RedisBackend`s for suites written against
//! [`BackendFactory`], so the conformance suite and the fleet scenarios run on Redis with
//! the same code that runs them in memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use flexiai_backend::SyncBackend;
use flexiai_backend::conformance::{BackendFactory, ConformanceOptions};
use flexiai_backend_redis::{RedisBackend, RedisConfig};
use flexiai_serde::Format;

use crate::{RedisCluster, RedisServer, Result, SentinelGroup};

/// Backend settings for tests: short timeouts so failure paths are quick, a fast keep-alive
/// so a subscriber notices a dead server within a fraction of a second.
pub fn test_config(port: u16, prefix: &str) -> RedisConfig {
    RedisConfig::new("127.0.0.1", port)
        .key_prefix(prefix)
        .channel(format!("{prefix}:events"))
        .command_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_millis(500))
        .keepalive_interval(Duration::from_millis(200))
        .reconnect(4, Duration::from_millis(200))
        .pool_size(4)
}

/// Adjusts every backend's settings (credentials, event keys, ...).
pub type ConfigHook = Arc<dyn Fn(RedisConfig) -> RedisConfig + Send + Sync>;

/// What a [`RedisFactory`]'s backends talk to.
#[derive(Debug)]
enum Target {
    Server(RedisServer),
    SharedCluster(&'static RedisCluster),
    Cluster(RedisCluster),
    Sentinel(SentinelGroup),
    SharedSentinel(&'static SentinelGroup),
}

impl Target {
    fn config(&self, prefix: &str) -> RedisConfig {
        let sentinel = |group: &SentinelGroup| {
            test_config(1, prefix).sentinel(group.sentinel_addrs(), crate::sentinel::MASTER_NAME)
        };
        let cluster = |c: &RedisCluster| {
            let seeds = c.seeds();
            test_config(seeds[0].1, prefix).cluster(seeds)
        };
        match self {
            Self::Server(server) => test_config(server.port(), prefix),
            Self::SharedCluster(c) => cluster(c),
            Self::Cluster(c) => cluster(c),
            Self::Sentinel(group) => sentinel(group),
            Self::SharedSentinel(group) => sentinel(group),
        }
    }
}

/// Opens backends on one private `redis-server` (or a cluster, or a Sentinel group); every
/// [`open`](BackendFactory::open) gets a fresh key prefix and channel (`{prefix}{n}` and
/// `{prefix}{n}:events`), so suites sharing the server never see each other.
pub struct RedisFactory {
    target: Target,
    format: Format,
    prefix: String,
    configure: Option<ConfigHook>,
}

impl std::fmt::Debug for RedisFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisFactory")
            .field("target", &self.target)
            .field("format", &self.format)
            .field("prefix", &self.prefix)
            .field("configured", &self.configure.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisFactory {
    /// Starts a server; backends use the JSON format.
    pub fn start() -> Result<Self> {
        Self::with_format(Format::Json)
    }

    /// Starts a server; backends use `format`.
    pub fn with_format(format: Format) -> Result<Self> {
        Ok(Self::with_server(RedisServer::start()?).format(format))
    }

    /// Uses an already started server (with TLS, ACL users, ...); JSON, prefix `suite`.
    pub fn with_server(server: RedisServer) -> Self {
        Self::with_target(Target::Server(server))
    }

    /// Backends on the process-wide shared 3-master cluster ([`RedisCluster::shared`]),
    /// hash-tagged keys.
    pub fn shared_cluster() -> Result<Self> {
        Ok(Self::with_target(Target::SharedCluster(
            RedisCluster::shared()?,
        )))
    }

    /// Backends on this cluster (for tests that kill nodes or move slots).
    pub fn with_cluster(cluster: RedisCluster) -> Self {
        Self::with_target(Target::Cluster(cluster))
    }

    /// Backends following the master of the process-wide shared Sentinel group
    /// ([`SentinelGroup::shared`]).
    pub fn shared_sentinel() -> Result<Self> {
        Ok(Self::with_target(Target::SharedSentinel(
            SentinelGroup::shared()?,
        )))
    }

    /// Backends following this Sentinel group's master.
    pub fn with_sentinel(group: SentinelGroup) -> Self {
        Self::with_target(Target::Sentinel(group))
    }

    fn with_target(target: Target) -> Self {
        Self {
            target,
            format: Format::Json,
            prefix: "suite".to_owned(),
            configure: None,
        }
    }

    /// The format backends write.
    #[must_use]
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// The start of every namespace's key prefix (default `suite`); e.g. `flexiai:suite` puts
    /// every key and channel under `flexiai:`, as an ACL user restricted to it needs.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Applies `hook` to every backend's settings after the factory's own.
    #[must_use]
    pub fn configure(
        mut self,
        hook: impl Fn(RedisConfig) -> RedisConfig + Send + Sync + 'static,
    ) -> Self {
        self.configure = Some(Arc::new(hook));
        self
    }

    /// The server, to kill, pause or restart it mid-test.
    ///
    /// # Panics
    /// When the factory was built on a cluster or a Sentinel group.
    #[allow(clippy::panic)]
    pub fn server(&mut self) -> &mut RedisServer {
        match &mut self.target {
            Target::Server(server) => server,
            other => panic!("RedisFactory::server on {other:?}"),
        }
    }

    /// The cluster, when built with [`with_cluster`](Self::with_cluster).
    pub fn cluster(&mut self) -> Option<&mut RedisCluster> {
        match &mut self.target {
            Target::Cluster(cluster) => Some(cluster),
            _ => None,
        }
    }

    /// The Sentinel group, when built with [`with_sentinel`](Self::with_sentinel).
    pub fn sentinel(&mut self) -> Option<&mut SentinelGroup> {
        match &mut self.target {
            Target::Sentinel(group) => Some(group),
            _ => None,
        }
    }

    /// The settings of the backends [`open`](BackendFactory::open) builds for the next
    /// namespace, before the options and the hook are applied.
    pub fn base_config(&self, prefix: &str) -> RedisConfig {
        self.target.config(prefix)
    }
}

#[async_trait]
impl BackendFactory for RedisFactory {
    async fn open(
        &self,
        workers: usize,
        options: &ConformanceOptions,
    ) -> Vec<Arc<dyn SyncBackend>> {
        // Process-wide, so factories sharing a cluster or Sentinel group never collide.
        static NAMESPACES: AtomicUsize = AtomicUsize::new(0);
        let n = NAMESPACES.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("{}{n}", self.prefix);
        let mut backends: Vec<Arc<dyn SyncBackend>> = Vec::with_capacity(workers);
        for _ in 0..workers {
            let mut config = self
                .target
                .config(&prefix)
                .state_ttl(Some(options.state_ttl))
                .format(self.format);
            if let Some(hook) = &self.configure {
                config = hook(config);
            }
            // `open` has no error path: a factory that cannot build is a broken test setup.
            #[allow(clippy::panic)]
            let backend = RedisBackend::new(config)
                .unwrap_or_else(|e| panic!("RedisFactory cannot build a backend: {e}"));
            backends.push(Arc::new(backend));
        }
        backends
    }
}
