//! [`RedisBackend`]: the [`SyncBackend`] over a deadpool-redis pool.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use deadpool_redis::{Manager, Pool, PoolError, Runtime};
use flexiai_backend::{
    BackendError, CasOutcome, Health, LockLease, Subscription, SyncBackend, lock_token,
    validate_lock_name, validate_provider, validate_ttl,
};
use flexiai_events::{BreakerSnapshot, Event, Revision, WorkerId};
use flexiai_serde::StateSerializer;
use redis::{AsyncConnectionConfig, ProtocolVersion, RedisError, Value};
use tokio::sync::watch;

use crate::config::RedisConfig;
use crate::error::{RedisBackendError, classify, redact};
use crate::scripts::{ACQUIRE, CAS, EXTEND, Keys, RELEASE};
use crate::subscriber::{self, SubscriberStats};

/// A [`SyncBackend`] on Redis.
///
/// Commands go through a deadpool-redis pool and every operation, waiting for a connection
/// included, is bounded by the configured command timeout. Each [`subscribe`] opens its own
/// RESP3 connection that resubscribes by itself and reports gaps (see
/// [`Notification::Resubscribed`](flexiai_backend::Notification::Resubscribed)).
///
/// Cloning is cheap and clones share the pool. Dropping the last clone ends its
/// subscriptions, like [`close`](SyncBackend::close).
///
/// See the [crate docs](crate) for the key layout and the scripts.
///
/// [`subscribe`]: SyncBackend::subscribe
#[derive(Clone)]
pub struct RedisBackend {
    inner: Arc<Inner>,
}

struct Inner {
    config: RedisConfig,
    keys: Keys,
    serializer: StateSerializer,
    pool: Pool,
    /// A multiplexed connection taken from the pool once and shared by every command.
    /// Checking one out per command would cost a round trip each time (deadpool-redis
    /// recycles with `UNWATCH` + `PING`), doubling the latency of every transition; a
    /// multiplexed connection is made to be shared. Dropped on any error, so the next
    /// command gets a checked or fresh one from the pool.
    shared_conn: std::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
    closed: AtomicBool,
    shutdown: watch::Sender<bool>,
    stats: Arc<SubscriberStats>,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("addr", &self.inner.config.display_addr())
            .field("key_prefix", &self.inner.config.key_prefix)
            .field("channel", &self.inner.config.channel)
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "tls")]
fn install_crypto_provider() {
    // Ignore the error: it only means a provider is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(not(feature = "tls"))]
fn install_crypto_provider() {}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisBackend {
    /// Builds a backend without connecting: connections are opened on first use, so a Redis
    /// that is down at start-up does not stop the caller (operations fail fast until it is
    /// back). The configuration is checked first; the error names the bad field.
    ///
    /// Needs a tokio runtime when used (not when built).
    pub fn new(config: RedisConfig) -> Result<Self, RedisBackendError> {
        config.validate()?;
        if config.ssl {
            install_crypto_provider();
        }
        let info = config.connection_info(ProtocolVersion::RESP2)?;
        let connection_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.command_timeout));
        let secret = config.password.as_ref().map(|p| p.expose().to_owned());
        let manager = Manager::new_with_config(info, connection_config).map_err(|e| {
            RedisBackendError::InvalidConfig {
                field: "url",
                reason: redact(&e.to_string(), secret.as_deref()),
            }
        })?;
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.command_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.command_timeout))
            .build()
            .map_err(|e| RedisBackendError::InvalidConfig {
                field: "pool_size",
                reason: e.to_string(),
            })?;
        let (shutdown, _) = watch::channel(false);
        Ok(Self {
            inner: Arc::new(Inner {
                keys: Keys::new(&config.key_prefix),
                serializer: StateSerializer::new(config.format)
                    .with_limits(config.decode_limits)
                    .with_auth(config.event_auth.clone()),
                config,
                pool,
                shared_conn: std::sync::Mutex::new(None),
                closed: AtomicBool::new(false),
                shutdown,
                stats: Arc::default(),
            }),
        })
    }

    /// Builds a backend and checks that Redis answers and accepts the credentials.
    pub async fn connect(config: RedisConfig) -> Result<Self, RedisBackendError> {
        let backend = Self::new(config)?;
        backend.ping().await?;
        Ok(backend)
    }

    /// The settings in force.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// How many payloads on the channel this backend's subscriptions rejected as
    /// undecodable (counted once per subscription).
    pub fn rejected_payloads(&self) -> u64 {
        self.inner.stats.rejected.load(Ordering::Relaxed)
    }

    /// How many of the [rejected](Self::rejected_payloads) payloads failed event
    /// authentication (unsigned, forged, unknown or expired key).
    pub fn unauthenticated_payloads(&self) -> u64 {
        self.inner.stats.unauthenticated.load(Ordering::Relaxed)
    }

    /// Encodes `event` exactly as [`publish_event`](SyncBackend::publish_event) would put it
    /// on the channel (signed when authentication is on), without publishing it.
    pub fn encode_event(&self, event: &Event) -> Result<Vec<u8>, BackendError> {
        Ok(self
            .inner
            .serializer
            .serialize_event_on(&self.inner.config.channel, event)?)
    }

    /// How many times this backend's subscriptions were re-established after a gap.
    pub fn resubscriptions(&self) -> u64 {
        self.inner.stats.resubscribed.load(Ordering::Relaxed)
    }

    /// Publishes raw bytes on the event channel, as a foreign or hostile publisher could.
    pub async fn publish_raw(&self, payload: &[u8]) -> Result<(), BackendError> {
        let channel = self.inner.config.channel.as_str();
        self.bounded("publish_raw", async {
            let mut conn = self.conn("publish_raw").await?;
            redis::cmd("PUBLISH")
                .arg(channel)
                .arg(payload)
                .query_async::<i64>(&mut conn)
                .await
                .map_err(|e| self.redis_error(&e, "publish_raw"))?;
            Ok(())
        })
        .await
    }

    /// One bounded `PING`, classified.
    async fn ping(&self) -> Result<Duration, RedisBackendError> {
        let timeout = self.inner.config.command_timeout;
        let started = Instant::now();
        let attempt = async {
            let mut conn = self
                .inner
                .pool
                .get()
                .await
                .map_err(|e| self.pool_error(e, "ping"))?;
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map_err(|e| self.classify(&e, "ping"))
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(_)) => Ok(started.elapsed()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(RedisBackendError::Timeout {
                operation: "ping",
                timeout,
            }),
        }
    }

    fn secret(&self) -> Option<&str> {
        self.inner.config.password.as_ref().map(|p| p.expose())
    }

    fn classify(&self, error: &RedisError, operation: &'static str) -> RedisBackendError {
        classify(
            error,
            operation,
            self.inner.config.command_timeout,
            self.secret(),
        )
    }

    fn redis_error(&self, error: &RedisError, operation: &'static str) -> BackendError {
        self.drop_shared_conn();
        self.classify(error, operation).into()
    }

    fn pool_error(&self, error: PoolError, operation: &'static str) -> RedisBackendError {
        let timeout = self.inner.config.command_timeout;
        match error {
            PoolError::Backend(e) => self.classify(&e, operation),
            PoolError::Timeout(_) => RedisBackendError::Timeout { operation, timeout },
            PoolError::Closed => RedisBackendError::Unavailable {
                message: "connection pool is closed".into(),
            },
            other => RedisBackendError::Unavailable {
                message: redact(&other.to_string(), self.secret()),
            },
        }
    }

    async fn conn(
        &self,
        operation: &'static str,
    ) -> Result<redis::aio::MultiplexedConnection, BackendError> {
        if let Some(conn) = self.shared_conn().clone() {
            return Ok(conn);
        }
        let pooled = self
            .inner
            .pool
            .get()
            .await
            .map_err(|e| BackendError::from(self.pool_error(e, operation)))?;
        let conn = (*pooled).clone();
        *self.shared_conn() = Some(conn.clone());
        Ok(conn)
    }

    fn shared_conn(&self) -> std::sync::MutexGuard<'_, Option<redis::aio::MultiplexedConnection>> {
        self.inner
            .shared_conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets the shared connection after an error: it may be broken.
    fn drop_shared_conn(&self) {
        *self.shared_conn() = None;
    }

    fn ensure_open(&self) -> Result<(), BackendError> {
        if self.inner.closed.load(Ordering::Acquire) {
            Err(BackendError::Closed)
        } else {
            Ok(())
        }
    }

    /// Runs `work` within the command timeout, after checking the backend is open.
    async fn bounded<T>(
        &self,
        operation: &'static str,
        work: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        self.ensure_open()?;
        let timeout = self.inner.config.command_timeout;
        match tokio::time::timeout(timeout, work).await {
            Ok(result) => result,
            Err(_) => {
                self.drop_shared_conn();
                Err(BackendError::Timeout { operation, timeout })
            }
        }
    }

    fn ttl_millis(&self) -> Option<u64> {
        self.inner.config.state_ttl.map(millis)
    }

    fn decode_state(
        &self,
        key: &str,
        bytes: Option<Vec<u8>>,
    ) -> Result<Option<BreakerSnapshot>, BackendError> {
        bytes
            .map(|b| self.inner.serializer.deserialize_state_for(key, &b))
            .transpose()
            .map_err(BackendError::from)
    }
}

fn unexpected(operation: &'static str, value: &Value) -> BackendError {
    BackendError::Other {
        message: format!("unexpected reply to {operation}: {value:?}")
            .chars()
            .take(200)
            .collect(),
    }
}

#[async_trait]
impl SyncBackend for RedisBackend {
    fn kind(&self) -> &'static str {
        "redis"
    }

    async fn publish_event(&self, event: &Event) -> Result<(), BackendError> {
        self.ensure_open()?;
        let payload = self.encode_event(event)?;
        self.publish_raw(&payload).await
    }

    async fn subscribe(&self) -> Result<Subscription, BackendError> {
        self.ensure_open()?;
        // Fail fast on bad credentials or an unreachable server: the subscriber's own
        // connection would keep retrying those until its timeout.
        self.ping().await?;
        let subscription = subscriber::subscribe(
            &self.inner.config,
            self.inner.serializer.clone(),
            Arc::clone(&self.inner.stats),
            self.inner.shutdown.subscribe(),
        )
        .await?;
        // `close` may have run meanwhile; its signal reaches the new task too, but report it.
        self.ensure_open()?;
        Ok(subscription)
    }

    async fn get_state(&self, provider: &str) -> Result<Option<BreakerSnapshot>, BackendError> {
        self.ensure_open()?;
        validate_provider(provider)?;
        let key = self.inner.keys.state(provider);
        let bytes = self
            .bounded("get_state", async {
                let mut conn = self.conn("get_state").await?;
                redis::cmd("GET")
                    .arg(&key)
                    .query_async::<Option<Vec<u8>>>(&mut conn)
                    .await
                    .map_err(|e| self.redis_error(&e, "get_state"))
            })
            .await?;
        self.decode_state(&key, bytes)
    }

    async fn get_states(
        &self,
        providers: &[String],
    ) -> Result<Vec<Option<BreakerSnapshot>>, BackendError> {
        self.ensure_open()?;
        for provider in providers {
            validate_provider(provider)?;
        }
        if providers.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = providers.iter().map(|p| self.inner.keys.state(p)).collect();
        let values = self
            .bounded("get_states", async {
                let mut conn = self.conn("get_states").await?;
                redis::cmd("MGET")
                    .arg(&keys)
                    .query_async::<Vec<Option<Vec<u8>>>>(&mut conn)
                    .await
                    .map_err(|e| self.redis_error(&e, "get_states"))
            })
            .await?;
        if values.len() != providers.len() {
            return Err(BackendError::Other {
                message: format!(
                    "MGET returned {} values for {} keys",
                    values.len(),
                    providers.len()
                ),
            });
        }
        // One corrupt key must not hide every other provider (and stall reconciliation):
        // it reads as absent, so the next compare-and-set overwrites it.
        Ok(providers
            .iter()
            .zip(keys.iter())
            .zip(values)
            .map(|((provider, key), value)| match self.decode_state(key, value) {
                Ok(snapshot) => snapshot,
                Err(error) => {
                    tracing::warn!(%provider, reason = %error, "ignoring an undecodable stored snapshot");
                    None
                }
            })
            .collect())
    }

    async fn set_state(
        &self,
        provider: &str,
        snapshot: &BreakerSnapshot,
    ) -> Result<(), BackendError> {
        self.ensure_open()?;
        validate_provider(provider)?;
        let key = self.inner.keys.state(provider);
        let payload = self.inner.serializer.serialize_state_for(&key, snapshot)?;
        self.bounded("set_state", async {
            let mut conn = self.conn("set_state").await?;
            let mut cmd = redis::cmd("SET");
            cmd.arg(&key).arg(&payload);
            if let Some(ttl) = self.ttl_millis() {
                cmd.arg("PX").arg(ttl);
            }
            cmd.query_async::<()>(&mut conn)
                .await
                .map_err(|e| self.redis_error(&e, "set_state"))
        })
        .await
    }

    async fn compare_and_set(
        &self,
        provider: &str,
        snapshot: &BreakerSnapshot,
        expected: Option<Revision>,
        event: Option<&Event>,
    ) -> Result<CasOutcome, BackendError> {
        self.ensure_open()?;
        validate_provider(provider)?;
        let key = self.inner.keys.state(provider);
        let expected_args = match expected {
            Some(grew_from) => ("1", grew_from.epoch, grew_from.version),
            None => ("0", 0, 0),
        };
        let payload = self.inner.serializer.serialize_state_for(&key, snapshot)?;
        let event_payload = event
            .map(|e| self.encode_event(e))
            .transpose()?
            .unwrap_or_default();
        let signed = if self.inner.serializer.auth().is_some() {
            "1"
        } else {
            "0"
        };
        // A stored value this worker cannot read (corrupt, unsigned while signatures are
        // required, forged, signed with a key it lacks) must not block the history forever:
        // like `get_states`, treat it as absent and replace it, naming it so the script
        // replaces exactly that value and nothing a concurrent writer stored meanwhile.
        let mut unreadable: Vec<u8> = Vec::new();
        for attempt in 0..2 {
            let reply = self
                .bounded("compare_and_set", async {
                    let mut conn = self.conn("compare_and_set").await?;
                    CAS.key(&key)
                        .arg(snapshot.version)
                        .arg(&payload)
                        .arg(self.ttl_millis().unwrap_or(0))
                        .arg(&self.inner.config.channel)
                        .arg(&event_payload)
                        .arg(signed)
                        .arg(&unreadable)
                        .arg(snapshot.epoch)
                        .arg(expected_args.0)
                        .arg(expected_args.1)
                        .arg(expected_args.2)
                        .invoke_async::<Value>(&mut conn)
                        .await
                        .map_err(|e| self.redis_error(&e, "compare_and_set"))
                })
                .await?;
            let current = match &reply {
                Value::Array(items) => match items.as_slice() {
                    [Value::Int(1)] => return Ok(CasOutcome::Applied),
                    [Value::Int(0), Value::BulkString(current)] => current,
                    _ => return Err(unexpected("compare_and_set", &reply)),
                },
                _ => return Err(unexpected("compare_and_set", &reply)),
            };
            match self.inner.serializer.deserialize_state_for(&key, current) {
                Ok(current) => return Ok(CasOutcome::Stale { current }),
                Err(error) if attempt == 0 => {
                    tracing::warn!(%provider, reason = error.reason(), %error, "replacing an unreadable stored snapshot");
                    unreadable.clone_from(current);
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(BackendError::Other {
            message: "compare_and_set: the stored snapshot kept changing".into(),
        })
    }

    async fn acquire_lock(
        &self,
        name: &str,
        ttl: Duration,
    ) -> Result<Option<LockLease>, BackendError> {
        self.ensure_open()?;
        validate_lock_name(name)?;
        validate_ttl("ttl", ttl)?;
        let token = lock_token()?;
        let (lock_key, fence_key) = (self.inner.keys.lock(name), self.inner.keys.fence(name));
        let fence = self
            .bounded("acquire_lock", async {
                let mut conn = self.conn("acquire_lock").await?;
                ACQUIRE
                    .key(&lock_key)
                    .key(&fence_key)
                    .arg(&token)
                    .arg(millis(ttl))
                    .invoke_async::<u64>(&mut conn)
                    .await
                    .map_err(|e| self.redis_error(&e, "acquire_lock"))
            })
            .await?;
        Ok((fence > 0).then(|| LockLease::new(name, token, fence, ttl)))
    }

    async fn extend_lock(&self, lease: &LockLease, ttl: Duration) -> Result<bool, BackendError> {
        self.ensure_open()?;
        validate_lock_name(lease.name())?;
        validate_ttl("ttl", ttl)?;
        let key = self.inner.keys.lock(lease.name());
        let extended = self
            .bounded("extend_lock", async {
                let mut conn = self.conn("extend_lock").await?;
                EXTEND
                    .key(&key)
                    .arg(lease.token())
                    .arg(millis(ttl))
                    .invoke_async::<i64>(&mut conn)
                    .await
                    .map_err(|e| self.redis_error(&e, "extend_lock"))
            })
            .await?;
        Ok(extended == 1)
    }

    async fn release_lock(&self, lease: &LockLease) -> Result<bool, BackendError> {
        self.ensure_open()?;
        validate_lock_name(lease.name())?;
        let key = self.inner.keys.lock(lease.name());
        let released = self
            .bounded("release_lock", async {
                let mut conn = self.conn("release_lock").await?;
                RELEASE
                    .key(&key)
                    .arg(lease.token())
                    .invoke_async::<i64>(&mut conn)
                    .await
                    .map_err(|e| self.redis_error(&e, "release_lock"))
            })
            .await?;
        Ok(released == 1)
    }

    async fn heartbeat(&self, worker: &WorkerId, ttl: Duration) -> Result<(), BackendError> {
        self.ensure_open()?;
        validate_ttl("ttl", ttl)?;
        let key = self.inner.keys.worker(worker.as_str());
        self.bounded("heartbeat", async {
            let mut conn = self.conn("heartbeat").await?;
            redis::cmd("SET")
                .arg(&key)
                .arg(unix_millis())
                .arg("PX")
                .arg(millis(ttl))
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| self.redis_error(&e, "heartbeat"))
        })
        .await
    }

    async fn remove_worker(&self, worker: &WorkerId) -> Result<(), BackendError> {
        self.ensure_open()?;
        let key = self.inner.keys.worker(worker.as_str());
        self.bounded("remove_worker", async {
            let mut conn = self.conn("remove_worker").await?;
            redis::cmd("DEL")
                .arg(&key)
                .query_async::<i64>(&mut conn)
                .await
                .map(drop)
                .map_err(|e| self.redis_error(&e, "remove_worker"))
        })
        .await
    }

    async fn live_workers(&self) -> Result<Vec<WorkerId>, BackendError> {
        self.ensure_open()?;
        let pattern = self.inner.keys.worker_pattern();
        let prefix = self.inner.keys.worker_prefix();
        let keys = self
            .bounded("live_workers", async {
                let mut conn = self.conn("live_workers").await?;
                let mut keys = Vec::new();
                let mut cursor: u64 = 0;
                loop {
                    let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut conn)
                        .await
                        .map_err(|e| self.redis_error(&e, "live_workers"))?;
                    keys.extend(batch);
                    if next == 0 {
                        return Ok(keys);
                    }
                    cursor = next;
                }
            })
            .await?;
        let mut workers: Vec<WorkerId> = keys
            .iter()
            .filter_map(|key| key.strip_prefix(&prefix))
            .filter_map(|id| WorkerId::new(id).ok())
            .collect();
        workers.sort();
        workers.dedup();
        Ok(workers)
    }

    async fn health_check(&self) -> Health {
        if self.inner.closed.load(Ordering::Acquire) {
            return Health::Closed;
        }
        match self.ping().await {
            Ok(latency) => Health::Healthy { latency },
            Err(RedisBackendError::Authentication { message }) => {
                Health::AuthenticationFailed { reason: message }
            }
            Err(other) => Health::Unreachable {
                reason: other.to_string(),
            },
        }
    }

    async fn close(&self) -> Result<(), BackendError> {
        self.inner.closed.store(true, Ordering::Release);
        self.inner.shutdown.send_replace(true);
        self.inner.pool.close();
        Ok(())
    }
}
