//! [`RedisBackend`]: the [`SyncBackend`] over a deadpool-redis pool.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use flexiai_backend::{
    BackendError, CasOutcome, CasRequest, FleetCounts, FleetWindow, Health, LockLease,
    OutcomeBatch, Subscription, SyncBackend, lock_token, validate_cas_batch, validate_lock_name,
    validate_provider, validate_ttl,
};
use flexiai_events::{BreakerSnapshot, Event, Revision, WorkerId};
use flexiai_serde::StateSerializer;
use redis::{RedisError, Value};
use tokio::sync::watch;

use crate::config::RedisConfig;
use crate::connection::{Conn, Connections};
use crate::error::{RedisBackendError, classify};
use crate::keys::Keys;
use crate::scripts::{ACQUIRE, CAS, EXTEND, HEARTBEAT, LIVE_WORKERS, READ, RECORD, RELEASE, STORE};
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
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    config: RedisConfig,
    pub(crate) keys: Keys,
    pub(crate) serializer: StateSerializer,
    /// One multiplexed connection shared by every command (per topology, see
    /// [`crate::connection`]). Checking one out of the pool per command would cost a round
    /// trip each time (deadpool-redis recycles with `UNWATCH` + `PING`), doubling the latency
    /// of every transition. Dropped on any error, so the next command gets a fresh one.
    conns: Connections,
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
        let conns = Connections::new(&config)?;
        let (shutdown, _) = watch::channel(false);
        Ok(Self {
            inner: Arc::new(Inner {
                keys: Keys::new(&config.key_prefix, config.key_layout),
                serializer: StateSerializer::new(config.format)
                    .with_limits(config.decode_limits)
                    .with_auth(config.event_auth.clone()),
                config,
                conns,
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

    /// Every provider with a stored snapshot in this namespace, sorted, found by `SCAN`
    /// (never `KEYS`, which would block Redis). On a cluster the namespace's keys share one
    /// slot (hash-tagged layout), so one node is scanned: the master that owns it.
    pub async fn stored_providers(&self) -> Result<Vec<String>, BackendError> {
        let prefix = self.inner.keys.state_prefix();
        let keys = self.scan(&prefix, "stored_providers").await?;
        let mut providers: Vec<String> = keys
            .iter()
            .filter_map(|key| key.strip_prefix(&prefix))
            .map(str::to_owned)
            .collect();
        providers.sort();
        providers.dedup();
        Ok(providers)
    }

    /// Every key starting with `start`, by `SCAN` on the namespace's node, within the
    /// command timeout.
    pub(crate) async fn scan(
        &self,
        start: &str,
        operation: &'static str,
    ) -> Result<Vec<String>, BackendError> {
        let pattern = Keys::pattern(start);
        let slot_key = self.inner.keys.slot_key();
        self.bounded(operation, async {
            let mut conn = self.conn(operation).await?;
            let mut keys = Vec::new();
            let mut cursor: u64 = 0;
            loop {
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000);
                let (next, batch): (u64, Vec<String>) = conn
                    .query_at(scan, &slot_key)
                    .await
                    .map_err(|e| self.redis_error(&e, operation))?;
                keys.extend(batch);
                if next == 0 {
                    return Ok(keys);
                }
                cursor = next;
            }
        })
        .await
    }

    /// One bounded `PING`, classified.
    async fn ping(&self) -> Result<Duration, RedisBackendError> {
        let timeout = self.inner.config.command_timeout;
        let started = Instant::now();
        let attempt = async {
            let mut conn = self.inner.conns.for_ping().await?;
            conn.query_at::<String>(redis::cmd("PING"), &self.inner.keys.slot_key())
                .await
                .map_err(|e| {
                    self.inner.conns.on_error(Some(&e));
                    self.classify(&e, "ping")
                })
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

    pub(crate) fn redis_error(&self, error: &RedisError, operation: &'static str) -> BackendError {
        self.inner.conns.on_error(Some(error));
        self.classify(error, operation).into()
    }

    pub(crate) async fn conn(&self, operation: &'static str) -> Result<Conn, BackendError> {
        self.inner.conns.get(operation).await
    }

    /// Forgets the shared connection after an error: it may be broken.
    fn drop_shared_conn(&self) {
        self.inner.conns.on_error(None);
    }

    fn ensure_open(&self) -> Result<(), BackendError> {
        if self.inner.closed.load(Ordering::Acquire) {
            Err(BackendError::Closed)
        } else {
            Ok(())
        }
    }

    /// Runs `work` within the command timeout, after checking the backend is open.
    pub(crate) async fn bounded<T>(
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

    /// One stored value (`key`, stamped in `written`) and its age in server ms, through
    /// [`READ`].
    pub(crate) async fn read_aged(
        &self,
        key: &str,
        written: &str,
        operation: &'static str,
    ) -> Result<AgedValue, BackendError> {
        let reply = self
            .bounded(operation, async {
                let mut conn = self.conn(operation).await?;
                READ.key(key)
                    .key(written)
                    .invoke_async::<Vec<Value>>(&mut conn)
                    .await
                    .map_err(|e| self.redis_error(&e, operation))
            })
            .await?;
        Ok(read_pairs(reply, 1)?.pop().unwrap_or((None, -1)))
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

/// One compare-and-set, encoded and ready to send (once, or again naming an unreadable
/// stored value).
struct PreparedCas<'a> {
    key: String,
    written: String,
    version: u64,
    payload: Vec<u8>,
    ttl_ms: u64,
    channel: &'a str,
    event: Vec<u8>,
    signed: &'static str,
    epoch: u64,
    /// Whether the writer names the revision it grew from, and which.
    expected: (&'static str, u64, u64),
}

impl PreparedCas<'_> {
    fn invocation(&self, unreadable: &[u8]) -> redis::ScriptInvocation<'static> {
        let mut invocation = CAS.key(&self.key);
        invocation
            .key(&self.written)
            .arg(self.version)
            .arg(&self.payload)
            .arg(self.ttl_ms)
            .arg(self.channel)
            .arg(&self.event)
            .arg(self.signed)
            .arg(unreadable)
            .arg(self.epoch)
            .arg(self.expected.0)
            .arg(self.expected.1)
            .arg(self.expected.2);
        invocation
    }
}

impl RedisBackend {
    fn prepare_cas(
        &self,
        provider: &str,
        snapshot: &BreakerSnapshot,
        expected: Option<Revision>,
        event: Option<&Event>,
    ) -> Result<PreparedCas<'_>, BackendError> {
        let key = self.inner.keys.state(provider);
        let payload = self.inner.serializer.serialize_state_for(&key, snapshot)?;
        let event = event
            .map(|e| self.encode_event(e))
            .transpose()?
            .unwrap_or_default();
        Ok(PreparedCas {
            key,
            written: self.inner.keys.written(provider),
            version: snapshot.version,
            payload,
            ttl_ms: self.ttl_millis().unwrap_or(0),
            channel: &self.inner.config.channel,
            event,
            signed: if self.inner.serializer.auth().is_some() {
                "1"
            } else {
                "0"
            },
            epoch: snapshot.epoch,
            expected: match expected {
                Some(grew_from) => ("1", grew_from.epoch, grew_from.version),
                None => ("0", 0, 0),
            },
        })
    }

    /// Reads a CAS script reply: the outcome, or (inner `Err`) the stored value this worker
    /// could not read, with why.
    #[allow(clippy::type_complexity)]
    fn cas_reply(
        &self,
        key: &str,
        reply: &Value,
    ) -> Result<Result<CasOutcome, (flexiai_serde::SerdeError, Vec<u8>)>, BackendError> {
        let (current, age) = match reply {
            Value::Array(items) => match items.as_slice() {
                [Value::Int(1)] => return Ok(Ok(CasOutcome::Applied)),
                [Value::Int(0), Value::BulkString(current), Value::Int(age)] => (current, *age),
                _ => return Err(unexpected("compare_and_set", reply)),
            },
            _ => return Err(unexpected("compare_and_set", reply)),
        };
        Ok(
            match self.inner.serializer.deserialize_state_for(key, current) {
                Ok(current) => Ok(CasOutcome::Stale {
                    current: aged(current, age),
                }),
                Err(error) => Err((error, current.clone())),
            },
        )
    }
}

/// A stored snapshot as of the read: aged by `age_ms`, the server's ms since it was written
/// (negative: not known, left as written).
pub(crate) fn aged(snapshot: BreakerSnapshot, age_ms: i64) -> BreakerSnapshot {
    match u64::try_from(age_ms) {
        Ok(ms) => snapshot.aged(Duration::from_millis(ms)),
        Err(_) => snapshot,
    }
}

/// A stored value as [`READ`] returns it, with its age in server ms (negative: not known).
type AgedValue = (Option<Vec<u8>>, i64);

/// Splits a [`READ`] reply into one [`AgedValue`] per key.
fn read_pairs(reply: Vec<Value>, keys: usize) -> Result<Vec<AgedValue>, BackendError> {
    if reply.len() != keys * 2 {
        return Err(BackendError::Other {
            message: format!("read returned {} values for {keys} keys", reply.len() / 2),
        });
    }
    let mut out = Vec::with_capacity(keys);
    let mut values = reply.into_iter();
    while let (Some(value), Some(age)) = (values.next(), values.next()) {
        let value = match value {
            Value::Nil => None,
            Value::BulkString(bytes) => Some(bytes),
            other => return Err(unexpected("read", &other)),
        };
        let Value::Int(age) = age else {
            return Err(unexpected("read", &age));
        };
        out.push((value, age));
    }
    Ok(out)
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
            self.inner.conns.sentinel().cloned(),
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
        let (bytes, age) = self
            .read_aged(&key, &self.inner.keys.written(provider), "get_state")
            .await?;
        Ok(self.decode_state(&key, bytes)?.map(|s| aged(s, age)))
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
        let reply = self
            .bounded("get_states", async {
                let mut conn = self.conn("get_states").await?;
                let mut invocation = READ.prepare_invoke();
                for (key, provider) in keys.iter().zip(providers) {
                    invocation.key(key).key(self.inner.keys.written(provider));
                }
                invocation
                    .invoke_async::<Vec<Value>>(&mut conn)
                    .await
                    .map_err(|e| self.redis_error(&e, "get_states"))
            })
            .await?;
        let values = read_pairs(reply, keys.len())?;
        // One corrupt key must not hide every other provider (and stall reconciliation):
        // it reads as absent, so the next compare-and-set overwrites it.
        Ok(providers
            .iter()
            .zip(keys.iter())
            .zip(values)
            .map(|((provider, key), (value, age))| match self.decode_state(key, value) {
                Ok(snapshot) => snapshot.map(|s| aged(s, age)),
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
            STORE
                .key(&key)
                .key(self.inner.keys.written(provider))
                .arg(&payload)
                .arg(self.ttl_millis().unwrap_or(0))
                .invoke_async::<()>(&mut conn)
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
        let prepared = self.prepare_cas(provider, snapshot, expected, event)?;
        // A stored value this worker cannot read (corrupt, unsigned while signatures are
        // required, forged, signed with a key it lacks) must not block the history forever:
        // like `get_states`, treat it as absent and replace it, naming it so the script
        // replaces exactly that value and nothing a concurrent writer stored meanwhile.
        let mut unreadable: Vec<u8> = Vec::new();
        for attempt in 0..2 {
            let reply = self
                .bounded("compare_and_set", async {
                    let mut conn = self.conn("compare_and_set").await?;
                    prepared
                        .invocation(&unreadable)
                        .invoke_async::<Value>(&mut conn)
                        .await
                        .map_err(|e| self.redis_error(&e, "compare_and_set"))
                })
                .await?;
            match self.cas_reply(&prepared.key, &reply)? {
                Ok(outcome) => return Ok(outcome),
                Err((error, current)) if attempt == 0 => {
                    tracing::warn!(%provider, reason = error.reason(), %error, "replacing an unreadable stored snapshot");
                    unreadable = current;
                }
                Err((error, _)) => return Err(error.into()),
            }
        }
        Err(BackendError::Other {
            message: "compare_and_set: the stored snapshot kept changing".into(),
        })
    }

    /// One pipeline of CAS script calls: one round trip, each call atomic on its own, in
    /// order. A request whose stored value turns out unreadable is redone alone through
    /// [`compare_and_set`](SyncBackend::compare_and_set), which replaces it.
    async fn compare_and_set_many(
        &self,
        requests: &[CasRequest<'_>],
    ) -> Result<Vec<CasOutcome>, BackendError> {
        self.ensure_open()?;
        validate_cas_batch(requests)?;
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let prepared = requests
            .iter()
            .map(|r| self.prepare_cas(r.provider, r.snapshot, r.expected, r.event))
            .collect::<Result<Vec<_>, _>>()?;
        let replies = self
            .bounded("compare_and_set_many", async {
                let mut conn = self.conn("compare_and_set_many").await?;
                let invocations: Vec<_> = prepared.iter().map(|p| p.invocation(&[])).collect();
                let mut pipe = redis::pipe();
                for invocation in &invocations {
                    pipe.invoke_script(invocation);
                }
                match pipe.query_async::<Vec<Value>>(&mut conn).await {
                    Err(e)
                        if e.kind()
                            == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                    {
                        // The server lost its script cache (a restart): no call ran. Load
                        // the script and send the pipeline again.
                        CAS.load_async(&mut conn)
                            .await
                            .map_err(|e| self.redis_error(&e, "compare_and_set_many"))?;
                        pipe.query_async::<Vec<Value>>(&mut conn)
                            .await
                            .map_err(|e| self.redis_error(&e, "compare_and_set_many"))
                    }
                    other => other.map_err(|e| self.redis_error(&e, "compare_and_set_many")),
                }
            })
            .await?;
        if replies.len() != requests.len() {
            return Err(BackendError::Other {
                message: format!(
                    "compare_and_set_many: {} replies for {} requests",
                    replies.len(),
                    requests.len()
                ),
            });
        }
        let mut outcomes = Vec::with_capacity(requests.len());
        for ((request, prepared), reply) in requests.iter().zip(&prepared).zip(&replies) {
            match self.cas_reply(&prepared.key, reply)? {
                Ok(outcome) => outcomes.push(outcome),
                Err(_) => outcomes.push(
                    self.compare_and_set(
                        request.provider,
                        request.snapshot,
                        request.expected,
                        request.event,
                    )
                    .await?,
                ),
            }
        }
        Ok(outcomes)
    }

    async fn record_outcomes(
        &self,
        provider: &str,
        batch: &OutcomeBatch,
        window: &FleetWindow,
    ) -> Result<FleetCounts, BackendError> {
        self.ensure_open()?;
        validate_provider(provider)?;
        batch.validate()?;
        let keys = self.inner.keys.fleet(provider, batch.period);
        let length_ms = window.slice_ms() * u64::from(window.buckets());
        let reply = self
            .bounded("record_outcomes", async {
                let mut conn = self.conn("record_outcomes").await?;
                let mut invocation = RECORD.key(&keys.outcomes);
                let (reporter, sequence) = batch
                    .report
                    .as_ref()
                    .map_or(("", 0), |r| (r.reporter.as_str(), r.sequence));
                invocation
                    .key(&keys.storm)
                    .key(&keys.reports)
                    .arg(window.slice_ms())
                    .arg(window.buckets())
                    .arg(batch.period)
                    .arg(reporter)
                    .arg(sequence);
                for slice in &batch.slices {
                    let age = u64::try_from(slice.age.as_millis()).unwrap_or(u64::MAX);
                    if age < length_ms && (slice.failures > 0 || slice.successes > 0) {
                        invocation.arg(age).arg(slice.failures).arg(slice.successes);
                    }
                }
                invocation
                    .invoke_async::<(u64, u64)>(&mut conn)
                    .await
                    .map_err(|e| self.redis_error(&e, "record_outcomes"))
            })
            .await?;
        Ok(FleetCounts {
            failures: reply.0,
            successes: reply.1,
        })
    }

    async fn storming(&self, providers: &[String]) -> Result<Vec<Option<u64>>, BackendError> {
        self.ensure_open()?;
        for provider in providers {
            validate_provider(provider)?;
        }
        if providers.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = providers.iter().map(|p| self.inner.keys.storm(p)).collect();
        let values = self
            .bounded("storming", async {
                let mut conn = self.conn("storming").await?;
                redis::cmd("MGET")
                    .arg(&keys)
                    .query_async::<Vec<Option<String>>>(&mut conn)
                    .await
                    .map_err(|e| self.redis_error(&e, "storming"))
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
        Ok(values
            .into_iter()
            .map(|v| v.and_then(|v| v.parse().ok()))
            .collect())
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
        let key = self.inner.keys.workers();
        self.bounded("heartbeat", async {
            let mut conn = self.conn("heartbeat").await?;
            HEARTBEAT
                .key(&key)
                .arg(worker.as_str())
                .arg(millis(ttl))
                .invoke_async::<i64>(&mut conn)
                .await
                .map(drop)
                .map_err(|e| self.redis_error(&e, "heartbeat"))
        })
        .await
    }

    async fn remove_worker(&self, worker: &WorkerId) -> Result<(), BackendError> {
        self.ensure_open()?;
        let key = self.inner.keys.workers();
        self.bounded("remove_worker", async {
            let mut conn = self.conn("remove_worker").await?;
            redis::cmd("ZREM")
                .arg(&key)
                .arg(worker.as_str())
                .query_async::<i64>(&mut conn)
                .await
                .map(drop)
                .map_err(|e| self.redis_error(&e, "remove_worker"))
        })
        .await
    }

    async fn live_workers(&self) -> Result<Vec<WorkerId>, BackendError> {
        self.ensure_open()?;
        let key = self.inner.keys.workers();
        let ids = self
            .bounded("live_workers", async {
                let mut conn = self.conn("live_workers").await?;
                LIVE_WORKERS
                    .key(&key)
                    .invoke_async::<Vec<String>>(&mut conn)
                    .await
                    .map_err(|e| self.redis_error(&e, "live_workers"))
            })
            .await?;
        let mut workers: Vec<WorkerId> =
            ids.iter().filter_map(|id| WorkerId::new(id).ok()).collect();
        workers.sort();
        Ok(workers)
    }

    async fn health_check(&self) -> Health {
        if self.inner.closed.load(Ordering::Acquire) {
            return Health::Closed;
        }
        match self.ping().await {
            Ok(latency) => Health::Healthy { latency },
            Err(RedisBackendError::Authentication { message, .. }) => {
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
        self.inner.conns.close();
        Ok(())
    }
}
