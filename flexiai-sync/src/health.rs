use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use flexiai_events::Timestamp;

/// Whether this worker is currently in step with the fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncMode {
    /// Not started yet, or stopped.
    Stopped,
    /// Subscribed, and the backend answers.
    Synced,
    /// The backend failed several operations in a row, or the event subscription dropped:
    /// breakers work locally, the manager keeps retrying and will reconcile when the backend
    /// is back.
    Degraded {
        /// The last error, credentials redacted.
        reason: String,
    },
}

impl fmt::Display for SyncMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncMode::Stopped => f.write_str("stopped"),
            SyncMode::Synced => f.write_str("synced"),
            SyncMode::Degraded { reason } => write!(f, "degraded: {reason}"),
        }
    }
}

/// A point-in-time health report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncHealth {
    /// The current mode.
    pub mode: SyncMode,
    /// When the manager entered it.
    pub since: Timestamp,
    /// Counters since start.
    pub metrics: SyncMetrics,
}

impl SyncHealth {
    /// Whether the manager is synced.
    pub fn is_synced(&self) -> bool {
        self.mode == SyncMode::Synced
    }

    /// Whether the manager is degraded.
    pub fn is_degraded(&self) -> bool {
        matches!(self.mode, SyncMode::Degraded { .. })
    }
}

/// Counters describing the manager's work since it was built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncMetrics {
    /// Events this worker published (transitions and state updates that won their
    /// compare-and-set).
    pub events_published: u64,
    /// Events received from other workers, counted once handled: a reader that sees the
    /// count also sees the event's effect (applied, absorbed or ignored).
    pub events_received: u64,
    /// Received events that changed a local breaker.
    pub events_applied: u64,
    /// Payloads on the channel that failed to decode (malformed, oversized, unknown version or
    /// type) and were dropped.
    pub events_rejected: u64,
    /// Received events that changed nothing locally: not newer than the local breaker
    /// (`events_replayed` among them), an older unversioned (Python) transition, outcome
    /// counts from another period, or a provider not registered here.
    pub events_ignored: u64,
    /// The part of `events_rejected` refused by event authentication: unsigned payloads while
    /// a key is configured, forged or corrupted signatures, unknown keys, a previous key past
    /// its grace period.
    pub events_unauthenticated: u64,
    /// Versioned transitions and state updates from other workers that decoded (and, with a
    /// key configured, authenticated) but were not newer than the local breaker, and were
    /// dropped. A replayed capture lands here; so do ordinary duplicates, e.g. the winning
    /// event of a compare-and-set this worker lost and had already adopted from the store,
    /// so a healthy fleet shows a few. Unversioned (Python) transitions, ordered by
    /// timestamp, are not counted.
    pub events_replayed: u64,
    /// Local transitions that lost the store's compare-and-set to another worker's.
    pub cas_conflicts: u64,
    /// Full re-reads of stored state (start-up, after gaps, periodic).
    pub reconciles: u64,
    /// Backend operations that failed or timed out.
    pub backend_errors: u64,
    /// Probe leases this worker won.
    pub probe_leases: u64,
    /// Outcome counts this worker added to the fleet's window in the store (one command
    /// each).
    pub outcome_reports: u64,
    /// Breakers this worker opened because the fleet's failure rate in the store crossed
    /// their threshold.
    pub fleet_trips: u64,
    /// Probe leases this worker found lost while its half-open period was still running
    /// (expired before it could extend them, or taken over).
    pub probe_leases_lost: u64,
    /// Times the event subscription dropped (connection lost or ended). Each one makes the
    /// manager degraded until it is subscribed and reconciled again.
    pub subscription_drops: u64,
    /// Age of the last received event by its sender's clock (cross-host clock skew included).
    pub last_event_lag: Option<Duration>,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) events_published: AtomicU64,
    pub(crate) events_received: AtomicU64,
    pub(crate) events_applied: AtomicU64,
    pub(crate) events_rejected: AtomicU64,
    pub(crate) events_ignored: AtomicU64,
    pub(crate) events_unauthenticated: AtomicU64,
    pub(crate) events_replayed: AtomicU64,
    pub(crate) cas_conflicts: AtomicU64,
    pub(crate) reconciles: AtomicU64,
    pub(crate) backend_errors: AtomicU64,
    pub(crate) probe_leases: AtomicU64,
    pub(crate) outcome_reports: AtomicU64,
    pub(crate) fleet_trips: AtomicU64,
    pub(crate) subscription_drops: AtomicU64,
    pub(crate) probe_leases_lost: AtomicU64,
    /// Backend operations failed in a row (any success resets it): the evidence degraded
    /// mode waits for.
    pub(crate) failures_in_a_row: AtomicU64,
    /// Backend operations succeeded in a row (any failure resets it): the evidence recovery
    /// waits for.
    pub(crate) successes_in_a_row: AtomicU64,
    /// Microseconds, `u64::MAX` meaning none yet.
    pub(crate) last_event_lag_micros: AtomicU64,
}

impl Counters {
    pub(crate) fn new() -> Self {
        Self {
            last_event_lag_micros: AtomicU64::new(u64::MAX),
            ..Self::default()
        }
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        // Release/Acquire: a test or operator that reads a count sees what preceded it.
        counter.fetch_add(1, Ordering::Release);
    }

    pub(crate) fn snapshot(&self) -> SyncMetrics {
        let get = |c: &AtomicU64| c.load(Ordering::Acquire);
        let lag = get(&self.last_event_lag_micros);
        SyncMetrics {
            events_published: get(&self.events_published),
            events_received: get(&self.events_received),
            events_applied: get(&self.events_applied),
            events_rejected: get(&self.events_rejected),
            events_ignored: get(&self.events_ignored),
            events_unauthenticated: get(&self.events_unauthenticated),
            events_replayed: get(&self.events_replayed),
            cas_conflicts: get(&self.cas_conflicts),
            reconciles: get(&self.reconciles),
            backend_errors: get(&self.backend_errors),
            probe_leases: get(&self.probe_leases),
            outcome_reports: get(&self.outcome_reports),
            fleet_trips: get(&self.fleet_trips),
            subscription_drops: get(&self.subscription_drops),
            probe_leases_lost: get(&self.probe_leases_lost),
            last_event_lag: (lag != u64::MAX).then(|| Duration::from_micros(lag)),
        }
    }
}

/// The mode and when it was entered; read rarely (health checks), written by the driver.
#[derive(Debug)]
pub(crate) struct ModeCell(Mutex<(SyncMode, Timestamp)>);

impl ModeCell {
    pub(crate) fn new() -> Self {
        Self(Mutex::new((SyncMode::Stopped, Timestamp::now())))
    }

    pub(crate) fn get(&self) -> (SyncMode, Timestamp) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Sets the mode; returns the previous one if it changed.
    pub(crate) fn set(&self, mode: SyncMode) -> Option<SyncMode> {
        let mut guard = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let same_kind = std::mem::discriminant(&guard.0) == std::mem::discriminant(&mode);
        if same_kind {
            // Keep `since` for the whole outage; only refresh the reason.
            guard.0 = mode;
            return None;
        }
        let previous = std::mem::replace(&mut guard.0, mode);
        guard.1 = Timestamp::now();
        Some(previous)
    }
}
