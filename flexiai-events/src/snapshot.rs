use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{CircuitState, Timestamp, WorkerId};

/// Everything needed to recreate one provider's breaker on another worker.
///
/// This is what is stored at `flexiai:state:{provider}` and what a [`StateUpdateEvent`]
/// carries. Field names match the Python original's `get_state_dict()` (`state`,
/// `failure_count`, `success_count`, `last_failure_time`, `state_changed_at`); the rest are
/// flexiai-rs additions that Python ignores.
///
/// `version` orders the breaker's history: every transition increments it, and a worker never
/// replaces a snapshot with one of a lower or equal version. A snapshot written by Python has
/// no version and reads as version 0, older than any transition a Rust worker makes.
///
/// The open period travels as `open_remaining_ms`, the time left as measured by the writer
/// when it took the snapshot, so that receivers never compare their wall clock with the
/// writer's.
///
/// [`StateUpdateEvent`]: crate::StateUpdateEvent
///
/// ```
/// use flexiai_events::{BreakerSnapshot, CircuitState};
///
/// let older = BreakerSnapshot::new(CircuitState::Closed, 3);
/// let newer = BreakerSnapshot::new(CircuitState::Open, 4);
/// assert!(newer.is_newer_than(&older));
/// assert!(!older.is_newer_than(&older));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakerSnapshot {
    /// The breaker's state.
    pub state: CircuitState,
    /// Failures counted in the current window (consecutive failures for the default policy).
    #[serde(default)]
    pub failure_count: u64,
    /// Successes counted in the current state.
    #[serde(default)]
    pub success_count: u64,
    /// When the last failure was recorded.
    #[serde(default)]
    pub last_failure_time: Option<Timestamp>,
    /// When the breaker last changed state.
    #[serde(default)]
    pub state_changed_at: Option<Timestamp>,
    /// Position in this provider's linear history; 0 means unversioned (a Python writer).
    #[serde(default)]
    pub version: u64,
    /// When the last success was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success_time: Option<Timestamp>,
    /// For `open`: how much of the open period was left when the snapshot was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_remaining_ms: Option<u64>,
    /// The worker that produced this snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<WorkerId>,
    /// Fields written by newer or foreign workers, kept so a round trip loses nothing.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl BreakerSnapshot {
    /// A snapshot in `state` at `version` with zero counts and no timestamps.
    pub fn new(state: CircuitState, version: u64) -> Self {
        Self {
            state,
            failure_count: 0,
            success_count: 0,
            last_failure_time: None,
            state_changed_at: None,
            version,
            last_success_time: None,
            open_remaining_ms: None,
            updated_by: None,
            extra: BTreeMap::new(),
        }
    }

    /// Whether this snapshot should replace `other`: strictly higher version.
    pub fn is_newer_than(&self, other: &BreakerSnapshot) -> bool {
        self.version > other.version
    }

    /// The remaining open period as a [`Duration`], if one was recorded.
    pub fn open_remaining(&self) -> Option<Duration> {
        self.open_remaining_ms.map(Duration::from_millis)
    }
}
