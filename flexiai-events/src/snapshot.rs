use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{CircuitState, Timestamp, WorkerId};

/// A position in one provider's stored history, ordered by epoch, then version.
///
/// The version counts transitions; the epoch says which history they count in. Workers
/// never start an epoch: they continue the one they hold. An operator override writes the
/// next epoch (at least the stored one + 1, and at least the operator's clock in unix
/// milliseconds), so that written into an emptied store it still outranks what workers
/// remember. A compare-and-set names the revision the writer grew from, and the store takes
/// only a successor of what it holds.
///
/// ```
/// use flexiai_events::Revision;
/// let worker = Revision { epoch: 0, version: 6 };
/// let override_after_reset = Revision { epoch: 1_700_000_000_000, version: 1 };
/// assert!(override_after_reset > worker);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Revision {
    /// The history: 0 until an operator override starts a new one.
    pub epoch: u64,
    /// The position within it.
    pub version: u64,
}

impl std::fmt::Display for Revision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.epoch, self.version)
    }
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// The state Python FlexiAI v0.5 knows that is nearest to `state`.
const fn python_state(state: CircuitState) -> CircuitState {
    match state {
        CircuitState::ForcedOpen => CircuitState::Open,
        CircuitState::Disabled => CircuitState::Closed,
        other => other,
    }
}

/// [`BreakerSnapshot`] as written: `state` in Python's vocabulary, the exact one beside it.
#[derive(Serialize, Deserialize)]
struct WireSnapshot {
    state: CircuitState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    flexiai_state: Option<CircuitState>,
    #[serde(default)]
    failure_count: u64,
    #[serde(default)]
    success_count: u64,
    #[serde(default)]
    last_failure_time: Option<Timestamp>,
    #[serde(default)]
    state_changed_at: Option<Timestamp>,
    #[serde(default)]
    version: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    epoch: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_success_time: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    open_remaining_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    updated_by: Option<WorkerId>,
    #[serde(flatten)]
    extra: BTreeMap<String, serde_json::Value>,
}

impl From<WireSnapshot> for BreakerSnapshot {
    fn from(wire: WireSnapshot) -> Self {
        // The exact state counts only where it agrees with what Python would read.
        let state = match wire.flexiai_state {
            Some(exact) if python_state(exact) == python_state(wire.state) => exact,
            _ => wire.state,
        };
        Self {
            state,
            failure_count: wire.failure_count,
            success_count: wire.success_count,
            last_failure_time: wire.last_failure_time,
            state_changed_at: wire.state_changed_at,
            version: wire.version,
            epoch: wire.epoch,
            last_success_time: wire.last_success_time,
            open_remaining_ms: wire.open_remaining_ms,
            updated_by: wire.updated_by,
            extra: wire.extra,
        }
    }
}

impl From<BreakerSnapshot> for WireSnapshot {
    fn from(s: BreakerSnapshot) -> Self {
        let python = python_state(s.state);
        Self {
            state: python,
            flexiai_state: (python != s.state).then_some(s.state),
            failure_count: s.failure_count,
            success_count: s.success_count,
            last_failure_time: s.last_failure_time,
            state_changed_at: s.state_changed_at,
            version: s.version,
            epoch: s.epoch,
            last_success_time: s.last_success_time,
            open_remaining_ms: s.open_remaining_ms,
            updated_by: s.updated_by,
            extra: s.extra,
        }
    }
}

/// Everything needed to recreate one provider's breaker on another worker.
///
/// This is what is stored at `flexiai:state:{provider}` and what a [`StateUpdateEvent`]
/// carries. Field names match the Python original's `get_state_dict()` (`state`,
/// `failure_count`, `success_count`, `last_failure_time`, `state_changed_at`); the rest are
/// flexiai-rs additions that Python ignores.
///
/// `(epoch, version)`, its [`Revision`], orders the breaker's history: every transition
/// increments the version, and an operator override starts a new epoch, so an override
/// written into a store that lost its history (Redis restarted empty) still outranks
/// everything workers remember from before. A snapshot written by Python has neither and
/// reads as revision `(0, 0)`, older than anything a Rust worker makes.
///
/// On the wire (JSON and MessagePack alike) `state` is always one Python FlexiAI knows:
/// `forced_open` is written as `"open"` and `disabled` as `"closed"`, with the exact state in
/// `flexiai_state`, so a Python worker reading a stored override does the nearest thing
/// instead of failing to parse it and starting closed.
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
#[serde(from = "WireSnapshot", into = "WireSnapshot")]
pub struct BreakerSnapshot {
    /// The breaker's state.
    pub state: CircuitState,
    /// Failures counted in the current window (consecutive failures for the default policy).
    pub failure_count: u64,
    /// Successes counted in the current state.
    pub success_count: u64,
    /// When the last failure was recorded.
    pub last_failure_time: Option<Timestamp>,
    /// When the breaker last changed state.
    pub state_changed_at: Option<Timestamp>,
    /// Position in this provider's linear history; 0 means unversioned (a Python writer).
    pub version: u64,
    /// Which history the version counts in: 0 for the history workers start, bumped by
    /// every operator override (see [`Revision`]). Omitted on the wire when 0.
    pub epoch: u64,
    /// When the last success was recorded.
    pub last_success_time: Option<Timestamp>,
    /// For `open`: how much of the open period was left when the snapshot was taken.
    pub open_remaining_ms: Option<u64>,
    /// The worker that produced this snapshot.
    pub updated_by: Option<WorkerId>,
    /// Fields written by newer or foreign workers, kept so a round trip loses nothing.
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
            epoch: 0,
            last_success_time: None,
            open_remaining_ms: None,
            updated_by: None,
            extra: BTreeMap::new(),
        }
    }

    /// Whether this snapshot is later in the history than `other`: strictly higher
    /// [`Revision`].
    pub fn is_newer_than(&self, other: &BreakerSnapshot) -> bool {
        self.revision() > other.revision()
    }

    /// Where this snapshot sits in its provider's history.
    pub fn revision(&self) -> Revision {
        Revision {
            epoch: self.epoch,
            version: self.version,
        }
    }

    /// The remaining open period as a [`Duration`], if one was recorded.
    pub fn open_remaining(&self) -> Option<Duration> {
        self.open_remaining_ms.map(Duration::from_millis)
    }

    /// This snapshot as read `age` after it was taken: its open period that much shorter
    /// (never below zero). Stores apply it on every read, with the time since the write on
    /// their own clock, so that a reader compares open periods as of now, not as of each
    /// writer's moment.
    ///
    /// ```
    /// use std::time::Duration;
    /// use flexiai_events::{BreakerSnapshot, CircuitState};
    ///
    /// let mut open = BreakerSnapshot::new(CircuitState::Open, 4);
    /// open.open_remaining_ms = Some(1_000);
    /// let read = open.aged(Duration::from_millis(300));
    /// assert_eq!(read.open_remaining_ms, Some(700));
    /// assert_eq!(read.aged(Duration::from_secs(5)).open_remaining_ms, Some(0));
    /// ```
    #[must_use]
    pub fn aged(mut self, age: Duration) -> Self {
        let age_ms = u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
        self.open_remaining_ms = self
            .open_remaining_ms
            .map(|left| left.saturating_sub(age_ms));
        self
    }
}
