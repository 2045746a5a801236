use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use flexiai_events::{BreakerSnapshot, Event, EventError, Revision, WorkerId};

use crate::{
    BackendError, CasRequest, FleetCounts, FleetWindow, LockLease, OutcomeBatch, Subscription,
};

/// What a [`SyncBackend::compare_and_set`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum CasOutcome {
    /// The snapshot was stored (and its event published).
    Applied,
    /// The store holds something other than what the writer grew from (or the snapshot is
    /// not later than it); nothing changed. `current` is what it holds, so the caller can
    /// adopt it or rebase onto it.
    Stale {
        /// The stored snapshot that won.
        current: BreakerSnapshot,
    },
}

/// The result of a [`SyncBackend::health_check`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Health {
    /// The store answered.
    Healthy {
        /// How long the round trip took.
        latency: Duration,
    },
    /// The store could not be reached or did not answer in time.
    Unreachable {
        /// Why, with credentials redacted.
        reason: String,
    },
    /// The store answered but refused our credentials.
    AuthenticationFailed {
        /// The store's complaint.
        reason: String,
    },
    /// The backend was closed.
    Closed,
}

impl Health {
    /// Whether the store answered.
    pub fn is_healthy(&self) -> bool {
        matches!(self, Health::Healthy { .. })
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Health::Healthy { latency } => write!(f, "healthy ({latency:?})"),
            Health::Unreachable { reason } => write!(f, "unreachable: {reason}"),
            Health::AuthenticationFailed { reason } => write!(f, "authentication failed: {reason}"),
            Health::Closed => f.write_str("closed"),
        }
    }
}

/// Carries circuit-breaker state between the workers of a fleet.
///
/// Implementations must be cheap to share (`Arc<dyn SyncBackend>`), must bound every
/// operation in time (a hung store yields [`BackendError::Timeout`], never a hang), and must
/// validate arguments before touching the store (bad input changes nothing). The conformance
/// suite in `flexiai_backend::conformance` (feature `testing`) pins down every rule below.
///
/// Events are at-most-once: a subscriber may miss some (reconnects, slow consumers), and is
/// told so through [`Notification`](crate::Notification)s; stored snapshots are the truth.
#[async_trait]
pub trait SyncBackend: Send + Sync + fmt::Debug + 'static {
    /// A short name for logs and metrics, e.g. `"memory"` or `"redis"`.
    fn kind(&self) -> &'static str;

    /// Broadcasts an event to every subscriber, this backend's own included.
    async fn publish_event(&self, event: &Event) -> Result<(), BackendError>;

    /// Subscribes to the event channel.
    ///
    /// When this returns, the subscription is live: every event published afterwards is
    /// delivered unless a [`Notification::Lagged`](crate::Notification::Lagged) or
    /// [`Notification::Resubscribed`](crate::Notification::Resubscribed) says otherwise. The
    /// subscription ends (`recv` returns `None`) when the backend is closed.
    async fn subscribe(&self) -> Result<Subscription, BackendError>;

    /// Reads one provider's stored snapshot, or `None` if there is none (or it expired).
    async fn get_state(&self, provider: &str) -> Result<Option<BreakerSnapshot>, BackendError>;

    /// Reads many providers' snapshots in one round trip; the result is in `providers` order.
    ///
    /// A stored value that does not decode reads as `None` here (and is logged), so that one
    /// corrupt key cannot stall reconciliation of every other provider; the next
    /// compare-and-set for that provider overwrites it. [`get_state`](SyncBackend::get_state)
    /// reports the decode error instead.
    async fn get_states(
        &self,
        providers: &[String],
    ) -> Result<Vec<Option<BreakerSnapshot>>, BackendError>;

    /// Stores a snapshot unconditionally, with the backend's state TTL.
    ///
    /// This is the seed's `set_state`. Synchronization uses
    /// [`compare_and_set`](SyncBackend::compare_and_set) instead, which cannot move history
    /// backwards.
    async fn set_state(
        &self,
        provider: &str,
        snapshot: &BreakerSnapshot,
    ) -> Result<(), BackendError>;

    /// Stores `snapshot` only if it is a successor of what the store holds, and if so
    /// publishes `event` in the same atomic step, so the store and the stream never disagree.
    ///
    /// `expected` is the revision the writer grew `snapshot` from. The write is applied when
    ///
    /// - the store holds nothing for `provider` (never written, expired, wiped, or a value
    ///   the writer cannot read): there is no decision to overwrite, whatever `expected`; or
    /// - the store holds exactly revision `expected` and `snapshot.revision()` is greater.
    ///
    /// Otherwise nothing changes and [`CasOutcome::Stale`] returns what is stored: a writer
    /// whose history diverged from the store's can never replace a decision it did not see,
    /// however high its version. Among concurrent writers growing from one revision exactly
    /// one wins.
    async fn compare_and_set(
        &self,
        provider: &str,
        snapshot: &BreakerSnapshot,
        expected: Option<Revision>,
        event: Option<&Event>,
    ) -> Result<CasOutcome, BackendError>;

    /// Many [`compare_and_set`](SyncBackend::compare_and_set)s in one round trip, with the
    /// same semantics per request, applied in order (a later request for the same provider
    /// sees the earlier one's result). Every request is checked before any touches the store:
    /// one bad provider name fails the batch and changes nothing. The outcomes are in
    /// `requests` order.
    ///
    /// The provided implementation loops over `compare_and_set` (one round trip each);
    /// stores that can pipeline override it.
    async fn compare_and_set_many(
        &self,
        requests: &[CasRequest<'_>],
    ) -> Result<Vec<CasOutcome>, BackendError> {
        crate::validate_cas_batch(requests)?;
        let mut outcomes = Vec::with_capacity(requests.len());
        for request in requests {
            outcomes.push(
                self.compare_and_set(
                    request.provider,
                    request.snapshot,
                    request.expected,
                    request.event,
                )
                .await?,
            );
        }
        Ok(outcomes)
    }

    /// Adds one worker's outcome counts to the fleet's window for `provider` and returns
    /// the fleet's totals over `window` for the batch's period, in one atomic step.
    ///
    /// Counts are filed in time slices by the store's own clock (a slice's `age` is
    /// subtracted from the store's time), so workers' clocks need not agree; each period has
    /// its own slices, which expire with the window. An empty batch reads the totals and
    /// writes nothing. When the window holds failures after the write, the provider is
    /// marked [`storming`](SyncBackend::storming) for one window length.
    ///
    /// A batch with a [`report`](OutcomeBatch::report) id is applied at most once: if the
    /// store already applied a report of the same reporter with this or a higher sequence
    /// for this provider and period, it adds nothing (and marks no storm) and returns the
    /// current totals, so a report whose reply was lost can be sent again safely. The store
    /// remembers each reporter's last sequence per provider and period with the same
    /// retention as the period's counts (one slice past the window after the last write).
    async fn record_outcomes(
        &self,
        provider: &str,
        batch: &OutcomeBatch,
        window: &FleetWindow,
    ) -> Result<FleetCounts, BackendError>;

    /// For each provider (in order), the period whose fleet window held failures at its
    /// last [`record_outcomes`](SyncBackend::record_outcomes) within the last window length,
    /// or `None`. One round trip: how a worker that saw no failure itself learns that its
    /// successes count now.
    async fn storming(&self, providers: &[String]) -> Result<Vec<Option<u64>>, BackendError>;

    /// Takes the named lock for `ttl` if nobody holds it; `None` if somebody does.
    async fn acquire_lock(
        &self,
        name: &str,
        ttl: Duration,
    ) -> Result<Option<LockLease>, BackendError>;

    /// Extends a held lock to `ttl` from now. `false` if `lease` no longer owns it.
    async fn extend_lock(&self, lease: &LockLease, ttl: Duration) -> Result<bool, BackendError>;

    /// Releases a held lock. `false` if `lease` no longer owns it (expired, or taken over);
    /// then nothing is released.
    async fn release_lock(&self, lease: &LockLease) -> Result<bool, BackendError>;

    /// Records that `worker` is alive for the next `ttl` (by the store's clock).
    async fn heartbeat(&self, worker: &WorkerId, ttl: Duration) -> Result<(), BackendError>;

    /// Removes `worker`'s heartbeat (graceful shutdown).
    async fn remove_worker(&self, worker: &WorkerId) -> Result<(), BackendError>;

    /// The workers whose heartbeat has not expired.
    async fn live_workers(&self) -> Result<Vec<WorkerId>, BackendError>;

    /// Probes the store without changing anything.
    async fn health_check(&self) -> Health;

    /// Ends every subscription and refuses further operations. Idempotent.
    async fn close(&self) -> Result<(), BackendError>;
}

/// Checks a provider name before it becomes part of a key: non-empty, at most 256 bytes, no
/// whitespace or control characters, and no `{` or `}` (in Redis they pick a key's Cluster
/// hash slot: a provider named `{x}` would move its keys out of its namespace's slot).
pub fn validate_provider(provider: &str) -> Result<(), BackendError> {
    validate_key_part("provider", provider)
}

/// Checks a lock name before it becomes part of a key; same rules as provider names.
pub fn validate_lock_name(name: &str) -> Result<(), BackendError> {
    validate_key_part("lock name", name)
}

fn validate_key_part(field: &'static str, value: &str) -> Result<(), BackendError> {
    if value.contains(['{', '}']) {
        return Err(BackendError::InvalidArgument {
            field,
            reason: "contains `{` or `}` (reserved for Redis Cluster hash tags)".to_owned(),
        });
    }
    flexiai_events::validate_provider_name(value).map_err(|error| {
        let reason = match error {
            EventError::InvalidProviderName { reason } => reason.to_owned(),
            other => other.to_string(),
        };
        BackendError::InvalidArgument { field, reason }
    })
}
