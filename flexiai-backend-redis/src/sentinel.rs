//! Following a Sentinel-managed master across failovers.
//!
//! redis-rs resolves a Sentinel master once and nothing follows a failover (redis-rs #1438);
//! deadpool's Sentinel pool health-checks with `PING`, which a demoted master still answers.
//! [`SentinelMaster`] does it itself:
//!
//! * the master's address is asked of the Sentinels (`SENTINEL GET-MASTER-ADDR-BY-NAME`, each
//!   in turn until one answers) and every new connection checks `ROLE` says `master`, so a
//!   node a Sentinel still names during a failover is never used once it is demoted;
//! * a watcher task subscribes to every Sentinel's `+switch-master` (the failover is done)
//!   and `+promoted-slave` (a replica was promoted, which comes earlier): either moves the
//!   backend to the new master;
//! * a `READONLY` reply or a lost connection forgets the address, so the next command asks
//!   the Sentinels again.
//!
//! Every change of address bumps an epoch: the shared command connection is dropped and
//! every subscription reconnects to the new master (reported as
//! [`Notification::Resubscribed`](flexiai_backend::Notification::Resubscribed), so the sync
//! manager reconciles).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ProtocolVersion, Value};
use tokio::sync::watch;

use crate::config::{NodeAddr, RedisConfig, Topology};
use crate::error::{RedisBackendError, classify};

/// The Sentinel events that name a new master.
const EVENTS: [&str; 2] = ["+switch-master", "+promoted-slave"];

/// The master a group of Sentinels currently names, followed across failovers.
pub(crate) struct SentinelMaster {
    config: RedisConfig,
    sentinels: Vec<NodeAddr>,
    master_name: String,
    sentinel_username: Option<String>,
    sentinel_password: Option<String>,
    /// The master in use; `None` after an error, so the next connection asks again.
    current: Mutex<Option<NodeAddr>>,
    /// Bumped on every change of master; the value is the number of changes seen.
    epoch: watch::Sender<u64>,
    /// The last master used, to tell a change from a re-resolution to the same node.
    last: Mutex<Option<NodeAddr>>,
    watching: AtomicBool,
    shutdown: watch::Sender<bool>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SentinelMaster {
    pub(crate) fn new(config: &RedisConfig) -> Result<Self, RedisBackendError> {
        let Topology::Sentinel {
            sentinels,
            master_name,
            username,
            password,
        } = &config.topology
        else {
            return Err(RedisBackendError::InvalidConfig {
                field: "sentinel",
                reason: "not a Sentinel configuration".into(),
            });
        };
        Ok(Self {
            config: config.clone(),
            sentinels: sentinels.clone(),
            master_name: master_name.clone(),
            sentinel_username: username.clone(),
            sentinel_password: password.as_ref().map(|p| p.expose().to_owned()),
            current: Mutex::new(None),
            epoch: watch::channel(0).0,
            last: Mutex::new(None),
            watching: AtomicBool::new(false),
            shutdown: watch::channel(false).0,
        })
    }

    /// How many times the master changed.
    pub(crate) fn epoch(&self) -> u64 {
        *self.epoch.borrow()
    }

    /// Wakes on every change of master.
    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.epoch.subscribe()
    }

    /// Forgets the master: the next connection asks the Sentinels again.
    pub(crate) fn forget(&self) {
        lock(&self.current).take();
    }

    /// Stops the watcher.
    pub(crate) fn close(&self) {
        self.shutdown.send_replace(true);
    }

    /// Uses `addr` from now on, bumping the epoch if it is a different node.
    fn adopt(&self, addr: NodeAddr) {
        *lock(&self.current) = Some(addr.clone());
        let mut last = lock(&self.last);
        if last.as_ref() != Some(&addr) {
            let changed = last.is_some();
            tracing::info!(master = %format!("{}:{}", addr.0, addr.1), name = %self.master_name, "following the Sentinel master");
            *last = Some(addr);
            if changed {
                self.epoch.send_modify(|e| *e += 1);
            }
        }
    }

    /// The settings for one node: a Sentinel (its own credentials, no database) or the
    /// master (the data nodes' settings).
    fn sentinel_config(&self, host: &str, port: u16) -> RedisConfig {
        let mut node = self.config.for_node(host, port);
        node.db = 0;
        node.username.clone_from(&self.sentinel_username);
        node.password = self
            .sentinel_password
            .clone()
            .map(flexiai_backend::Secret::new);
        node
    }

    async fn ask(&self, host: &str, port: u16) -> Result<NodeAddr, RedisBackendError> {
        let config = self.sentinel_config(host, port);
        let client = redis::Client::open(config.connection_info(ProtocolVersion::RESP2)?)
            .map_err(|e| self.classify(&e, "sentinel"))?;
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&self.connection_config())
            .await
            .map_err(|e| self.classify(&e, "sentinel"))?;
        let reply: Option<(String, u16)> = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(&self.master_name)
            .query_async(&mut conn)
            .await
            .map_err(|e| self.classify(&e, "sentinel"))?;
        reply.ok_or_else(|| {
            RedisBackendError::unavailable(format!(
                "Sentinel {host}:{port} knows no master named {:?}",
                self.master_name
            ))
        })
    }

    /// The master's address, asking the Sentinels unless one is in use.
    pub(crate) async fn resolve(&self) -> Result<NodeAddr, RedisBackendError> {
        if let Some(addr) = lock(&self.current).clone() {
            return Ok(addr);
        }
        let mut last_error = None;
        for (host, port) in &self.sentinels {
            match self.ask(host, *port).await {
                Ok(addr) => {
                    self.adopt(addr.clone());
                    return Ok(addr);
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or(RedisBackendError::unavailable("no Sentinel configured")))
    }

    /// A connection to the master, checked with `ROLE`; starts the watcher on first use.
    pub(crate) async fn connect(
        self: &Arc<Self>,
        operation: &'static str,
    ) -> Result<MultiplexedConnection, RedisBackendError> {
        self.ensure_watcher();
        let (host, port) = self.resolve().await?;
        let result = async {
            let node = self.config.for_node(&host, port);
            let client = redis::Client::open(node.connection_info(ProtocolVersion::RESP2)?)
                .map_err(|e| self.classify(&e, operation))?;
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&self.connection_config())
                .await
                .map_err(|e| self.classify(&e, operation))?;
            let role: Value = redis::cmd("ROLE")
                .query_async(&mut conn)
                .await
                .map_err(|e| self.classify(&e, operation))?;
            if !is_master(&role) {
                return Err(RedisBackendError::unavailable(format!(
                    "{host}:{port} is no longer master of {:?} (failover in progress)",
                    self.master_name
                )));
            }
            Ok(conn)
        }
        .await;
        if result.is_err() {
            self.forget();
        }
        result
    }

    fn connection_config(&self) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.config.connect_timeout))
            .set_response_timeout(Some(self.config.command_timeout))
    }

    fn classify(&self, error: &redis::RedisError, operation: &'static str) -> RedisBackendError {
        let secret = self.config.password.as_ref().map(|p| p.expose());
        let mut classified = classify(error, operation, self.config.command_timeout, secret);
        if let Some(sentinel_secret) = self.sentinel_password.as_deref() {
            classified.scrub(Some(sentinel_secret));
        }
        classified
    }

    /// Spawns one watcher per Sentinel, once (needs a tokio runtime: called from `connect`).
    /// Watchers hold a weak reference: they must not keep the backend alive.
    fn ensure_watcher(self: &Arc<Self>) {
        if self.watching.swap(true, Ordering::AcqRel) {
            return;
        }
        for (host, port) in &self.sentinels {
            tokio::spawn(watch_sentinel(
                self.sentinel_config(host, *port),
                Arc::downgrade(self),
                self.shutdown.subscribe(),
            ));
        }
    }
}

fn is_master(role: &Value) -> bool {
    match role {
        Value::Array(items) => {
            matches!(
                items.first(),
                Some(Value::BulkString(b)) if b == b"master"
            ) || matches!(items.first(), Some(Value::SimpleString(s)) if s == "master")
        }
        _ => false,
    }
}

/// Parses `+switch-master` (`name old-ip old-port new-ip new-port`) and `+promoted-slave`
/// (`slave ip:port ip port @ name master-ip master-port`) payloads into the new master of
/// `name`.
fn new_master(event: &str, payload: &str, name: &str) -> Option<NodeAddr> {
    let words: Vec<&str> = payload.split_whitespace().collect();
    match event {
        "+switch-master" => match words.as_slice() {
            [n, _, _, host, port] if *n == name => Some(((*host).to_owned(), port.parse().ok()?)),
            _ => None,
        },
        "+promoted-slave" => match words.as_slice() {
            [_, _, host, port, "@", n, ..] if *n == name => {
                Some(((*host).to_owned(), port.parse().ok()?))
            }
            _ => None,
        },
        _ => None,
    }
}

/// Subscribes to one Sentinel's failover events and moves `master` to every new master it
/// announces; reconnects (with a short back-off) until shut down or the backend is gone.
async fn watch_sentinel(
    config: RedisConfig,
    master: Weak<SentinelMaster>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(name) = master.upgrade().map(|m| m.master_name.clone()) else {
        return;
    };
    let mut delay = Duration::from_millis(50);
    loop {
        let session = async {
            let info = config.connection_info(ProtocolVersion::RESP2).ok()?;
            let client = redis::Client::open(info).ok()?;
            let mut pubsub =
                tokio::time::timeout(config.connect_timeout, client.get_async_pubsub())
                    .await
                    .ok()?
                    .ok()?;
            pubsub.subscribe(&EVENTS[..]).await.ok()?;
            let mut messages = pubsub.on_message();
            while let Some(message) = messages.next().await {
                let Ok(payload) = message.get_payload::<String>() else {
                    continue;
                };
                let event = message.get_channel_name();
                if let Some(addr) = new_master(event, &payload, &name) {
                    let master = master.upgrade()?;
                    tracing::info!(event, "a Sentinel announced a new master");
                    master.adopt(addr);
                }
            }
            Some(())
        };
        tokio::select! {
            _ = session => {}
            _ = shutdown.wait_for(|closed| *closed) => return,
        }
        if master.strong_count() == 0 {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = shutdown.wait_for(|closed| *closed) => return,
        }
        delay = (delay * 2).min(config.reconnect_max_delay);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_failover_events() {
        assert_eq!(
            new_master(
                "+switch-master",
                "mymaster 127.0.0.1 7000 127.0.0.1 7001",
                "mymaster"
            ),
            Some(("127.0.0.1".to_owned(), 7001))
        );
        assert_eq!(
            new_master(
                "+switch-master",
                "other 127.0.0.1 7000 127.0.0.1 7001",
                "mymaster"
            ),
            None
        );
        assert_eq!(
            new_master(
                "+promoted-slave",
                "slave 127.0.0.1:7001 127.0.0.1 7001 @ mymaster 127.0.0.1 7000",
                "mymaster"
            ),
            Some(("127.0.0.1".to_owned(), 7001))
        );
        assert_eq!(new_master("+sdown", "x", "mymaster"), None);
    }
}
