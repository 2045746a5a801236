//! The seam between circuit breakers and whatever carries their state between workers.
//!
//! [`SyncBackend`] is the seed's `BaseSyncBackend` made precise: publish and subscribe to
//! events, read and write stored snapshots (one at a time or many in one round trip), a
//! versioned compare-and-set that only ever moves a provider's history forward and publishes
//! the winning event in the same atomic step, owner-checked locks with fencing tokens, worker
//! heartbeats, and a health check. Fleet outcome counting ([`SyncBackend::record_outcomes`])
//! sums every worker's outcomes in the store, by the store's clock, so a fleet decides on its
//! exact failure rate at a cost linear in its size; [`SyncBackend::compare_and_set_many`]
//! sends many providers' transitions in one round trip. The trait is small and object-safe so the layers above hold
//! an `Arc<dyn SyncBackend>` and never learn which store is behind it.
//!
//! [`MemoryBackend`] implements it inside one process with the semantics Redis has: real
//! broadcast between subscribers, TTLs, expiring locks. Two sync managers sharing one
//! `MemoryBackend` behave like two workers sharing one Redis. The Redis implementation lives in
//! `flexiai-backend-redis`.
//!
//! With the `testing` feature, [`conformance`] is the suite every backend must pass; this
//! crate runs it against `MemoryBackend`, and the Redis crate runs it against real servers.
//!
//! ```
//! use std::time::Duration;
//! use flexiai_backend::{CasOutcome, MemoryBackend, SyncBackend};
//! use flexiai_events::{BreakerSnapshot, CircuitState};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), flexiai_backend::BackendError> {
//! let backend = MemoryBackend::new();
//! let open = BreakerSnapshot::new(CircuitState::Open, 2);
//! assert_eq!(backend.compare_and_set("openai", &open, None, None).await?, CasOutcome::Applied);
//!
//! // Only a successor of the stored revision is stored, whatever its version: a writer
//! // that did not grow from revision 2 loses, and the outcome says what is stored.
//! let diverged = BreakerSnapshot::new(CircuitState::Closed, 9);
//! let outcome = backend.compare_and_set("openai", &diverged, None, None).await?;
//! assert_eq!(outcome, CasOutcome::Stale { current: open.clone() });
//! let next = BreakerSnapshot::new(CircuitState::HalfOpen, 3);
//! let outcome = backend.compare_and_set("openai", &next, Some(open.revision()), None).await?;
//! assert_eq!(outcome, CasOutcome::Applied);
//!
//! let lease = backend.acquire_lock("probe:openai", Duration::from_secs(5)).await?;
//! assert!(lease.is_some());
//! # Ok(())
//! # }
//! ```

mod backend;
mod error;
mod fleet;
mod lock;
mod memory;
mod secret;
mod subscription;

#[cfg(feature = "testing")]
pub mod conformance;

pub use backend::{CasOutcome, Health, SyncBackend, validate_lock_name, validate_provider};
pub use error::BackendError;
pub use fleet::{
    CasRequest, FleetCounts, FleetWindow, MAX_CAS_BATCH, MAX_OUTCOME_SLICES, MAX_REPORT_SEQUENCE,
    MAX_REPORTER_LEN, MAX_SLICE_COUNT, OutcomeBatch, OutcomeSlice, ReportId, validate_cas_batch,
};
pub use lock::{LockLease, lock_token, validate_ttl};
pub use memory::{MemoryBackend, MemoryBackendBuilder};
pub use secret::{REDACTED, Secret, parse_env, redact};
pub use subscription::{Notification, Subscription, SubscriptionSender};
