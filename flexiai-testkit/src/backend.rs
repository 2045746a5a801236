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

use crate::{RedisServer, Result};

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

/// Opens backends on one private `redis-server`; every [`open`](BackendFactory::open) gets a
/// fresh key prefix and channel (`{prefix}{n}` and `{prefix}{n}:events`), so suites sharing
/// the server never see each other.
pub struct RedisFactory {
    server: RedisServer,
    format: Format,
    prefix: String,
    configure: Option<ConfigHook>,
    namespaces: AtomicUsize,
}

impl std::fmt::Debug for RedisFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisFactory")
            .field("server", &self.server)
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
        Self {
            server,
            format: Format::Json,
            prefix: "suite".to_owned(),
            configure: None,
            namespaces: AtomicUsize::new(0),
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
    pub fn server(&mut self) -> &mut RedisServer {
        &mut self.server
    }
}

#[async_trait]
impl BackendFactory for RedisFactory {
    async fn open(
        &self,
        workers: usize,
        options: &ConformanceOptions,
    ) -> Vec<Arc<dyn SyncBackend>> {
        let n = self.namespaces.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("{}{n}", self.prefix);
        let mut backends: Vec<Arc<dyn SyncBackend>> = Vec::with_capacity(workers);
        for _ in 0..workers {
            let mut config = test_config(self.server.port(), &prefix)
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
