//! The pub/sub side: one dedicated RESP3 connection per subscription.
//!
//! On a cluster it is a RESP3 cluster connection with a push sender, which subscribes on the
//! node owning the channel's slot and resubscribes after reconnects and slot-map refreshes
//! (global `SUBSCRIBE`: a `PUBLISH` on any node reaches every node's subscribers). With
//! Sentinel, the connection moves to each new master the backend follows.
//!
//! The connection is a [`ConnectionManager`] with automatic resubscription: when the
//! connection drops it reconnects with back-off and re-sends `SUBSCRIBE`. Every confirmation
//! after the first becomes a [`Notification::Resubscribed`], so the consumer knows events may
//! have been lost and re-reads stored state. A keep-alive task `PING`s the connection
//! periodically; a failed `PING` makes the manager start a fresh reconnect, so a subscriber
//! whose retries ran out during a long outage still comes back.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use flexiai_backend::{BackendError, Notification, Subscription, SubscriptionSender};
use flexiai_serde::StateSerializer;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ProtocolVersion, PushInfo, PushKind, Value};
use tokio::sync::watch;

use crate::config::{RedisConfig, Topology};
use crate::connection::{build_cluster, cluster_builder};
use crate::error::classify;
use crate::sentinel::SentinelMaster;

/// Counters shared by a backend and its subscriptions.
#[derive(Debug, Default)]
pub(crate) struct SubscriberStats {
    pub(crate) rejected: AtomicU64,
    pub(crate) unauthenticated: AtomicU64,
    pub(crate) resubscribed: AtomicU64,
}

type Slot = Arc<Mutex<Option<SubscriptionSender>>>;

fn deliver(slot: &Slot, notification: Notification) -> bool {
    let guard = slot.lock().unwrap_or_else(PoisonError::into_inner);
    guard
        .as_ref()
        .is_some_and(|sender| sender.send(notification))
}

fn close_slot(slot: &Slot) {
    slot.lock().unwrap_or_else(PoisonError::into_inner).take();
}

fn slot_is_closed(slot: &Slot) -> bool {
    slot.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .is_none_or(SubscriptionSender::is_closed)
}

/// Turns the connection's push messages into notifications; cheap to clone, so a
/// Sentinel-following subscription hands the same handler (and its "first confirmation
/// seen" flag) to each connection it opens.
#[derive(Clone)]
struct PushHandler {
    slot: Slot,
    stats: Arc<SubscriberStats>,
    serializer: StateSerializer,
    channel: Arc<str>,
    confirmed_once: Arc<AtomicBool>,
}

impl PushHandler {
    fn handle(&self, push: PushInfo) -> Result<(), ()> {
        let channel = &*self.channel;
        let notification = match push.kind {
            PushKind::Message => {
                let payload = match push.data.get(1) {
                    Some(Value::BulkString(bytes)) => bytes.as_slice(),
                    _ => return Ok(()),
                };
                match self.serializer.deserialize_event_on(channel, payload) {
                    Ok(event) => Notification::Event(event),
                    Err(error) => {
                        self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                        if error.is_authentication() {
                            self.stats.unauthenticated.fetch_add(1, Ordering::Relaxed);
                        }
                        tracing::warn!(
                            %channel,
                            reason = error.reason(),
                            %error,
                            "rejected a payload on the event channel"
                        );
                        Notification::Rejected(error)
                    }
                }
            }
            PushKind::Subscribe => {
                if !self.confirmed_once.swap(true, Ordering::AcqRel) {
                    return Ok(());
                }
                self.stats.resubscribed.fetch_add(1, Ordering::Relaxed);
                tracing::info!(%channel, "event subscriber resubscribed");
                Notification::Resubscribed
            }
            PushKind::Disconnection => {
                tracing::warn!(%channel, "event subscriber lost its connection");
                Notification::Disconnected
            }
            _ => return Ok(()),
        };
        if deliver(&self.slot, notification) {
            Ok(())
        } else {
            Err(())
        }
    }
}

impl redis::aio::AsyncPushSender for PushHandler {
    fn send(&self, info: PushInfo) -> Result<(), redis::aio::SendError> {
        self.handle(info).map_err(|()| redis::aio::SendError)
    }
}

/// What the keep-alive pings.
enum Pinged {
    Single(ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl Pinged {
    async fn ping(&mut self) -> redis::RedisResult<Value> {
        let ping = redis::cmd("PING");
        match self {
            Self::Single(manager) => manager.send_packed_command(&ping).await,
            Self::Cluster(conn) => ping.query_async(conn).await,
        }
    }
}

/// Opens a subscription; returns once the server confirmed `SUBSCRIBE`.
///
/// `sentinel` is the backend's followed master when the topology is Sentinel.
pub(crate) async fn subscribe(
    config: &RedisConfig,
    serializer: StateSerializer,
    stats: Arc<SubscriberStats>,
    shutdown: watch::Receiver<bool>,
    sentinel: Option<Arc<SentinelMaster>>,
) -> Result<Subscription, BackendError> {
    let (sender, subscription) = Subscription::channel(config.subscriber_capacity);
    let slot: Slot = Arc::new(Mutex::new(Some(sender)));
    let handler = PushHandler {
        slot: Arc::clone(&slot),
        stats,
        serializer,
        channel: Arc::from(config.channel.as_str()),
        confirmed_once: Arc::new(AtomicBool::new(false)),
    };
    let secret = config.password.as_ref().map(|p| p.expose().to_owned());
    let bound = config.connect_timeout.max(config.command_timeout);
    let fail = |e: &redis::RedisError| -> BackendError {
        classify(e, "subscribe", bound, secret.as_deref()).into()
    };
    let timed_out = || BackendError::Timeout {
        operation: "subscribe",
        timeout: bound,
    };
    match (&config.topology, sentinel) {
        (Topology::Cluster { seeds }, _) => {
            let builder =
                cluster_builder(config, seeds, ProtocolVersion::RESP3)?.push_sender(handler);
            let client = build_cluster(config, builder)?;
            let connect = async {
                let mut conn = client.get_async_connection().await?;
                conn.subscribe(config.channel.as_str()).await?;
                Ok::<_, redis::RedisError>(conn)
            };
            let conn = match tokio::time::timeout(bound, connect).await {
                Ok(Ok(conn)) => conn,
                Ok(Err(e)) => return Err(fail(&e)),
                Err(_) => return Err(timed_out()),
            };
            tokio::spawn(keepalive(
                Pinged::Cluster(conn),
                slot,
                shutdown,
                config.keepalive_interval,
                config.command_timeout,
            ));
        }
        (Topology::Sentinel { .. }, Some(master)) => {
            let changes = master.changes();
            let (host, port) = master.resolve().await?;
            let node = config.for_node(&host, port);
            let manager =
                match tokio::time::timeout(bound, open_manager(&node, handler.clone())).await {
                    Ok(Ok(manager)) => manager,
                    Ok(Err(e)) => {
                        master.forget();
                        return Err(fail(&e));
                    }
                    Err(_) => return Err(timed_out()),
                };
            tokio::spawn(follow_master(
                manager,
                master,
                changes,
                config.clone(),
                handler,
                shutdown,
            ));
        }
        _ => {
            let manager = match tokio::time::timeout(bound, open_manager(config, handler)).await {
                Ok(Ok(manager)) => manager,
                Ok(Err(e)) => return Err(fail(&e)),
                Err(_) => return Err(timed_out()),
            };
            tokio::spawn(keepalive(
                Pinged::Single(manager),
                slot,
                shutdown,
                config.keepalive_interval,
                config.command_timeout,
            ));
        }
    }
    Ok(subscription)
}

/// A RESP3 connection manager to `node` (a standalone config), subscribed to the channel,
/// resubscribing by itself after a reconnect.
async fn open_manager(
    node: &RedisConfig,
    handler: PushHandler,
) -> Result<ConnectionManager, redis::RedisError> {
    let channel = Arc::clone(&handler.channel);
    let info = node.connection_info(ProtocolVersion::RESP3).map_err(|e| {
        redis::RedisError::from((
            redis::ErrorKind::InvalidClientConfig,
            "config",
            e.to_string(),
        ))
    })?;
    let client = redis::Client::open(info)?;
    let manager_config = ConnectionManagerConfig::new()
        .set_push_sender(handler)
        .set_automatic_resubscription()
        .set_connection_timeout(Some(node.connect_timeout))
        .set_response_timeout(Some(node.command_timeout))
        .set_number_of_retries(node.reconnect_retries)
        .set_min_delay(Duration::from_millis(20))
        .set_max_delay(node.reconnect_max_delay);
    let mut manager = ConnectionManager::new_with_config(client, manager_config).await?;
    manager.subscribe(&*channel).await?;
    Ok(manager)
}

/// The keep-alive of a Sentinel-following subscription: pings the current master's
/// connection and moves to the new master whenever it changes (announced by a Sentinel, or
/// found after a failed `PING`); the new connection's confirmation is reported as
/// [`Notification::Resubscribed`].
async fn follow_master(
    manager: ConnectionManager,
    master: Arc<SentinelMaster>,
    mut changes: watch::Receiver<u64>,
    config: RedisConfig,
    handler: PushHandler,
    mut shutdown: watch::Receiver<bool>,
) {
    let slot = Arc::clone(&handler.slot);
    let mut current = Some(manager);
    let mut ticker = tokio::time::interval(config.keepalive_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    let bound = config.connect_timeout.max(config.command_timeout);
    loop {
        let mut moved = false;
        tokio::select! {
            _ = ticker.tick() => {}
            changed = changes.changed() => {
                if changed.is_err() {
                    break;
                }
                moved = true;
            }
            _ = shutdown.wait_for(|closed| *closed) => break,
        }
        if slot_is_closed(&slot) {
            break;
        }
        if !moved && let Some(manager) = current.as_mut() {
            let ping = redis::cmd("PING");
            match tokio::time::timeout(config.command_timeout, manager.send_packed_command(&ping))
                .await
            {
                Ok(Ok(_)) => continue,
                _ => {
                    tracing::debug!("subscriber keep-alive PING failed; asking the Sentinels");
                    master.forget();
                }
            }
        }
        let epoch_before = master.epoch();
        let Ok((host, port)) = master.resolve().await else {
            continue;
        };
        if !moved && master.epoch() == epoch_before && current.is_some() {
            // Same master: its connection manager reconnects by itself.
            continue;
        }
        changes.borrow_and_update();
        current = None;
        let node = config.for_node(&host, port);
        match tokio::time::timeout(bound, open_manager(&node, handler.clone())).await {
            Ok(Ok(manager)) => {
                tracing::info!(master = %format!("{host}:{port}"), "event subscriber moved to the new master");
                current = Some(manager);
            }
            _ => master.forget(),
        }
    }
    close_slot(&slot);
}

/// Pings the subscriber connection until the backend closes or the consumer goes away, then
/// ends the subscription.
async fn keepalive(
    mut conn: Pinged,
    slot: Slot,
    mut shutdown: watch::Receiver<bool>,
    interval: Duration,
    timeout: Duration,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            // Closed, or every handle of the backend dropped.
            _ = shutdown.wait_for(|closed| *closed) => break,
        }
        if slot_is_closed(&slot) {
            break;
        }
        match tokio::time::timeout(timeout, conn.ping()).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::debug!(
                    category = error.category(),
                    "subscriber keep-alive PING failed"
                );
            }
            Err(_) => tracing::debug!("subscriber keep-alive PING timed out"),
        }
    }
    close_slot(&slot);
}
