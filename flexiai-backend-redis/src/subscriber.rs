//! The pub/sub side: one dedicated RESP3 connection per subscription.
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

use crate::config::RedisConfig;
use crate::error::classify;

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

/// Opens a subscription; returns once the server confirmed `SUBSCRIBE`.
pub(crate) async fn subscribe(
    config: &RedisConfig,
    serializer: StateSerializer,
    stats: Arc<SubscriberStats>,
    shutdown: watch::Receiver<bool>,
) -> Result<Subscription, BackendError> {
    let (sender, subscription) = Subscription::channel(config.subscriber_capacity);
    let slot: Slot = Arc::new(Mutex::new(Some(sender)));
    let confirmed_once = Arc::new(AtomicBool::new(false));
    let channel = config.channel.clone();

    let push_slot = Arc::clone(&slot);
    let push_stats = Arc::clone(&stats);
    let push_channel = channel.clone();
    let on_push = move |push: PushInfo| -> Result<(), ()> {
        let notification = match push.kind {
            PushKind::Message => {
                let payload = match push.data.get(1) {
                    Some(Value::BulkString(bytes)) => bytes.as_slice(),
                    _ => return Ok(()),
                };
                match serializer.deserialize_event_on(&push_channel, payload) {
                    Ok(event) => Notification::Event(event),
                    Err(error) => {
                        push_stats.rejected.fetch_add(1, Ordering::Relaxed);
                        if error.is_authentication() {
                            push_stats.unauthenticated.fetch_add(1, Ordering::Relaxed);
                        }
                        tracing::warn!(
                            channel = %push_channel,
                            reason = error.reason(),
                            %error,
                            "rejected a payload on the event channel"
                        );
                        Notification::Rejected(error)
                    }
                }
            }
            PushKind::Subscribe => {
                if !confirmed_once.swap(true, Ordering::AcqRel) {
                    return Ok(());
                }
                push_stats.resubscribed.fetch_add(1, Ordering::Relaxed);
                tracing::info!(channel = %push_channel, "event subscriber resubscribed");
                Notification::Resubscribed
            }
            PushKind::Disconnection => {
                tracing::warn!(channel = %push_channel, "event subscriber lost its connection");
                Notification::Disconnected
            }
            _ => return Ok(()),
        };
        if deliver(&push_slot, notification) {
            Ok(())
        } else {
            Err(())
        }
    };

    let secret = config.password.as_ref().map(|p| p.expose().to_owned());
    let info = config
        .connection_info(ProtocolVersion::RESP3)
        .map_err(BackendError::from)?;
    let client = redis::Client::open(info)
        .map_err(|e| classify(&e, "subscribe", config.command_timeout, secret.as_deref()))?;
    let manager_config = ConnectionManagerConfig::new()
        .set_push_sender(on_push)
        .set_automatic_resubscription()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.command_timeout))
        .set_number_of_retries(config.reconnect_retries)
        .set_min_delay(Duration::from_millis(20))
        .set_max_delay(config.reconnect_max_delay);

    let bound = config.connect_timeout.max(config.command_timeout);
    let connect = async {
        let mut manager = ConnectionManager::new_with_config(client, manager_config).await?;
        manager.subscribe(&channel).await?;
        Ok::<_, redis::RedisError>(manager)
    };
    let manager = match tokio::time::timeout(bound, connect).await {
        Ok(Ok(manager)) => manager,
        Ok(Err(e)) => return Err(classify(&e, "subscribe", bound, secret.as_deref()).into()),
        Err(_) => {
            return Err(BackendError::Timeout {
                operation: "subscribe",
                timeout: bound,
            });
        }
    };

    tokio::spawn(keepalive(
        manager,
        slot,
        shutdown,
        config.keepalive_interval,
        config.command_timeout,
    ));
    Ok(subscription)
}

/// Pings the subscriber connection until the backend closes or the consumer goes away, then
/// ends the subscription.
async fn keepalive(
    mut manager: ConnectionManager,
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
        let ping = redis::cmd("PING");
        match tokio::time::timeout(timeout, manager.send_packed_command(&ping)).await {
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
