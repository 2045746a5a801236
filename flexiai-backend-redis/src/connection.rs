//! How the backend obtains its command connection, per topology.
//!
//! * Standalone: a multiplexed connection taken from a deadpool-redis pool (which creates and
//!   health-checks it).
//! * Cluster: one RESP3 [`ClusterConnection`] (redis-rs `cluster-async`), which routes each
//!   command by its first key, follows `MOVED`/`ASK`, refreshes the slot map and reconnects
//!   by itself; `EVALSHA` is routed by its first key and a `NOSCRIPT` fallback's
//!   `SCRIPT LOAD` goes to every node.
//! * Sentinel: the master is asked of the Sentinels, checked with `ROLE` (a node that is no
//!   longer master is never used), and forgotten on `READONLY`, on any connection error and
//!   when a Sentinel announces `+switch-master` (see [`crate::sentinel`]).
//!
//! Every command shares one connection ([`Connections::get`]); it is dropped on any error or
//! master change, and the next command gets a fresh one.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_redis::{Manager, Pool, PoolError, Runtime};
use flexiai_backend::BackendError;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{AsyncConnectionConfig, Cmd, ProtocolVersion, RedisError, RedisFuture, Value};

use crate::config::{RedisConfig, Topology};
use crate::error::{RedisBackendError, classify, redact};
use crate::sentinel::SentinelMaster;

/// One command connection, whatever the topology; cheap to clone (both kinds multiplex).
#[derive(Clone)]
pub(crate) enum Conn {
    /// A standalone node or a Sentinel-resolved master.
    Single(MultiplexedConnection),
    /// Every node of a Redis Cluster.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

impl Conn {
    /// Runs a keyless command (`SCAN`, `PING`) where the namespace lives: on a cluster, the
    /// master that owns `slot_key`'s slot; elsewhere, the one node.
    pub(crate) async fn query_at<T: redis::FromRedisValue>(
        &mut self,
        cmd: Cmd,
        slot_key: &str,
    ) -> Result<T, RedisError> {
        match self {
            Self::Single(conn) => cmd.query_async(conn).await,
            Self::Cluster(conn) => {
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    Route::with_key(slot_key, SlotAddr::Master),
                ));
                let value = conn.route_command(cmd, routing).await?;
                redis::from_redis_value(value).map_err(RedisError::from)
            }
        }
    }
}

/// Opens command connections for one topology.
enum Connector {
    Standalone(Pool),
    Cluster(Box<ClusterClient>),
    Sentinel(Arc<SentinelMaster>),
}

/// The shared command connection and what makes new ones.
pub(crate) struct Connections {
    connector: Connector,
    shared: Mutex<Option<(u64, Conn)>>,
    timeout: Duration,
    secret: Option<String>,
}

impl Connections {
    /// Builds the connector; connects nothing yet.
    pub(crate) fn new(config: &RedisConfig) -> Result<Self, RedisBackendError> {
        let secret = config.password.as_ref().map(|p| p.expose().to_owned());
        let connector = match &config.topology {
            Topology::Standalone => Connector::Standalone(pool(config, secret.as_deref())?),
            Topology::Cluster { seeds } => Connector::Cluster(Box::new(build_cluster(
                config,
                cluster_builder(config, seeds, ProtocolVersion::RESP3)?,
            )?)),
            Topology::Sentinel { .. } => {
                Connector::Sentinel(Arc::new(SentinelMaster::new(config)?))
            }
        };
        Ok(Self {
            connector,
            shared: Mutex::new(None),
            timeout: config.command_timeout,
            secret,
        })
    }

    /// The Sentinel-followed master, for subscriptions to follow it too.
    pub(crate) fn sentinel(&self) -> Option<&Arc<SentinelMaster>> {
        match &self.connector {
            Connector::Sentinel(master) => Some(master),
            _ => None,
        }
    }

    fn shared(&self) -> std::sync::MutexGuard<'_, Option<(u64, Conn)>> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The shared connection, opening one if there is none (or the master changed since).
    pub(crate) async fn get(&self, operation: &'static str) -> Result<Conn, BackendError> {
        self.shared_or_open(operation)
            .await
            .map_err(BackendError::from)
    }

    async fn shared_or_open(&self, operation: &'static str) -> Result<Conn, RedisBackendError> {
        let epoch = self.sentinel().map_or(0, |m| m.epoch());
        if let Some((at, conn)) = self.shared().as_ref()
            && *at == epoch
        {
            return Ok(conn.clone());
        }
        let conn = self.open(operation).await?;
        *self.shared() = Some((epoch, conn.clone()));
        Ok(conn)
    }

    /// The connection a health check pings: a pooled one on a standalone node (so the pool
    /// checks it), the shared one elsewhere (a cluster connection is costly to open).
    pub(crate) async fn for_ping(&self) -> Result<Conn, RedisBackendError> {
        match &self.connector {
            Connector::Standalone(_) => self.open("ping").await,
            _ => self.shared_or_open("ping").await,
        }
    }

    /// A connection of its own (not the shared one), for a health check.
    pub(crate) async fn open(&self, operation: &'static str) -> Result<Conn, RedisBackendError> {
        match &self.connector {
            Connector::Standalone(pool) => {
                let pooled = pool
                    .get()
                    .await
                    .map_err(|e| self.pool_error(e, operation))?;
                Ok(Conn::Single((*pooled).clone()))
            }
            Connector::Cluster(client) => client
                .get_async_connection()
                .await
                .map(Conn::Cluster)
                .map_err(|e| self.classify(&e, operation)),
            Connector::Sentinel(master) => master.connect(operation).await.map(Conn::Single),
        }
    }

    /// Forgets the shared connection after an error: it may be broken, or (`READONLY`) on a
    /// master that was demoted, which a Sentinel-followed backend then re-resolves.
    pub(crate) fn on_error(&self, error: Option<&RedisError>) {
        *self.shared() = None;
        if let Some(master) = self.sentinel() {
            let demoted = error.is_some_and(|e| e.code() == Some("READONLY"));
            let dropped = error.is_none_or(|e| {
                e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal()
            });
            if demoted || dropped {
                master.forget();
            }
        }
    }

    /// Stops handing out connections.
    pub(crate) fn close(&self) {
        *self.shared() = None;
        match &self.connector {
            Connector::Standalone(pool) => pool.close(),
            Connector::Cluster(_) => {}
            Connector::Sentinel(master) => master.close(),
        }
    }

    fn classify(&self, error: &RedisError, operation: &'static str) -> RedisBackendError {
        classify(error, operation, self.timeout, self.secret.as_deref())
    }

    fn pool_error(&self, error: PoolError, operation: &'static str) -> RedisBackendError {
        match error {
            PoolError::Backend(e) => self.classify(&e, operation),
            PoolError::Timeout(_) => RedisBackendError::Timeout {
                operation,
                timeout: self.timeout,
            },
            PoolError::Closed => RedisBackendError::unavailable("connection pool is closed"),
            other => {
                RedisBackendError::unavailable(redact(&other.to_string(), self.secret.as_deref()))
            }
        }
    }
}

fn pool(config: &RedisConfig, secret: Option<&str>) -> Result<Pool, RedisBackendError> {
    let info = config.connection_info(ProtocolVersion::RESP2)?;
    let connection_config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.command_timeout));
    let manager = Manager::new_with_config(info, connection_config).map_err(|e| {
        RedisBackendError::InvalidConfig {
            field: "url",
            reason: redact(&e.to_string(), secret),
        }
    })?;
    Pool::builder(manager)
        .max_size(config.pool_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(config.command_timeout))
        .create_timeout(Some(config.connect_timeout))
        .recycle_timeout(Some(config.command_timeout))
        .build()
        .map_err(|e| RedisBackendError::InvalidConfig {
            field: "pool_size",
            reason: e.to_string(),
        })
}

/// A cluster client builder over `seeds` with this config's credentials, TLS and timeouts.
pub(crate) fn cluster_builder(
    config: &RedisConfig,
    seeds: &[(String, u16)],
    protocol: ProtocolVersion,
) -> Result<ClusterClientBuilder, RedisBackendError> {
    let nodes = seeds
        .iter()
        .map(|(host, port)| config.for_node(host, *port).connection_info(protocol))
        .collect::<Result<Vec<_>, _>>()?;
    let retries = u32::try_from(config.reconnect_retries).unwrap_or(u32::MAX);
    let max_wait = u64::try_from(config.reconnect_max_delay.as_millis()).unwrap_or(u64::MAX);
    let builder = ClusterClientBuilder::new(nodes)
        .use_protocol(protocol)
        .connection_timeout(config.connect_timeout)
        .response_timeout(config.command_timeout)
        .retries(retries)
        .min_retry_wait(20)
        .max_retry_wait(max_wait);
    #[cfg(feature = "tls")]
    let builder = match config.ca_certificate.as_ref().filter(|_| config.ssl) {
        Some(pem) => builder.certs(redis::TlsCertificates {
            client_tls: None,
            root_cert: Some(pem.clone()),
        }),
        None => builder,
    };
    Ok(builder)
}

/// Builds a cluster client, naming the field on error.
pub(crate) fn build_cluster(
    config: &RedisConfig,
    builder: ClusterClientBuilder,
) -> Result<ClusterClient, RedisBackendError> {
    builder
        .build()
        .map_err(|e| RedisBackendError::InvalidConfig {
            field: "cluster.seeds",
            reason: redact(&e.to_string(), config.password.as_ref().map(|p| p.expose())),
        })
}
