use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flexiai_events::Event;
use flexiai_serde::SerdeError;
use tokio::sync::mpsc;

/// One item from a [`Subscription`].
#[derive(Debug, Clone, PartialEq)]
pub enum Notification {
    /// An event from the channel.
    Event(Event),
    /// A payload on the channel could not be decoded and was dropped; nothing else happened.
    Rejected(SerdeError),
    /// The subscription was re-established after a gap: events published during the gap are
    /// lost, so stored state should be re-read.
    Resubscribed,
    /// The connection carrying the subscription dropped: until a
    /// [`Resubscribed`](Notification::Resubscribed) follows, events are being missed, so the
    /// consumer must not consider itself in step. Backends without connections never send it.
    Disconnected,
    /// The consumer fell behind and `missed` notifications were dropped.
    Lagged {
        /// How many were dropped.
        missed: u64,
    },
}

#[derive(Debug, Default)]
struct Shared {
    dropped: AtomicU64,
}

/// A stream of [`Notification`]s from a backend's event channel.
///
/// Bounded: a consumer that falls behind loses notifications instead of growing memory, and
/// is told how many with [`Notification::Lagged`].
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::Receiver<Notification>,
    shared: Arc<Shared>,
}

/// The producing side of a [`Subscription`], for backend implementations.
#[derive(Debug, Clone)]
pub struct SubscriptionSender {
    tx: mpsc::Sender<Notification>,
    shared: Arc<Shared>,
}

impl Subscription {
    /// A subscription buffering at most `capacity` notifications (at least 1).
    pub fn channel(capacity: usize) -> (SubscriptionSender, Subscription) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let shared = Arc::new(Shared::default());
        (
            SubscriptionSender {
                tx,
                shared: Arc::clone(&shared),
            },
            Subscription { rx, shared },
        )
    }

    /// The next notification, or `None` once the backend has closed the subscription.
    ///
    /// Drops are reported as [`Notification::Lagged`] at the next call after they happen.
    pub async fn recv(&mut self) -> Option<Notification> {
        match self.take_lag() {
            Some(lag) => Some(lag),
            None => self.rx.recv().await,
        }
    }

    /// The next notification if one is ready, without waiting.
    pub fn try_recv(&mut self) -> Option<Notification> {
        self.take_lag().or_else(|| self.rx.try_recv().ok())
    }

    fn take_lag(&self) -> Option<Notification> {
        match self.shared.dropped.swap(0, Ordering::Relaxed) {
            0 => None,
            missed => Some(Notification::Lagged { missed }),
        }
    }
}

impl SubscriptionSender {
    /// Delivers without waiting. If the buffer is full the notification is dropped and
    /// counted, and the consumer later sees a [`Notification::Lagged`]. Returns `false` once
    /// the consumer has gone away.
    pub fn send(&self, notification: Notification) -> bool {
        match self.tx.try_send(notification) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Whether the consumer has dropped its [`Subscription`].
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn overflow_is_reported_as_lag_and_never_blocks() {
        let (tx, mut rx) = Subscription::channel(2);
        for _ in 0..5 {
            assert!(tx.send(Notification::Resubscribed));
        }
        assert_eq!(rx.recv().await, Some(Notification::Lagged { missed: 3 }));
        assert_eq!(rx.recv().await, Some(Notification::Resubscribed));
        assert_eq!(rx.try_recv(), Some(Notification::Resubscribed));
        assert_eq!(rx.try_recv(), None);
        drop(tx);
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn sender_notices_a_dropped_consumer() {
        let (tx, rx) = Subscription::channel(1);
        assert!(!tx.is_closed());
        drop(rx);
        assert!(tx.is_closed());
        assert!(!tx.send(Notification::Resubscribed));
    }
}
