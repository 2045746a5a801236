//! What a fleet coordinator (flexiai-sync) reads and decides for a breaker: the cumulative
//! outcome counts of the closed state, read once per flush interval from the breaker's own
//! striped counters (so no observer runs per outcome and the synced hot path is the unsynced
//! one), and the fleet's failure-rate trip.

use std::sync::atomic::Ordering;

use flexiai_events::CircuitState;

use super::{CircuitBreaker, pause};
use crate::observer::TransitionReason;

/// Cumulative counts of this worker's outcomes that fed a closed state, as read at one
/// version. Differences between two readings at the same version are exactly the outcomes
/// counted in between (up to calls settling at the very moment of a transition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutcomeTotals {
    /// The version the counts were read at.
    pub version: u64,
    /// The state at that version.
    pub state: CircuitState,
    /// Counted failures in closed states, since the breaker was built.
    pub failures: u64,
    /// Counted successes in closed states, since the breaker was built.
    pub successes: u64,
}

impl CircuitBreaker {
    /// Reads the cumulative closed-state outcome counts and the version they belong to.
    /// Never blocks callers: it sums the stripes between two reads of the state word.
    pub fn outcome_totals(&self) -> OutcomeTotals {
        let mut spins = 0;
        loop {
            let before = self.load();
            let failures = self.stripes.sum(|s| &s.counted_failures);
            let successes = self.stripes.sum(|s| &s.counted_successes);
            let after = self.load();
            if before == after && !before.writing() {
                return OutcomeTotals {
                    version: before.version(),
                    state: before.state(),
                    failures,
                    successes,
                };
            }
            pause(&mut spins);
        }
    }

    /// Lets a fleet coordinator decide the failure-rate trip (`true`) or gives the decision
    /// back to this breaker's own window (`false`, the default and the fallback when the
    /// coordinator cannot reach the fleet). While the fleet decides, the local window still
    /// counts (for [`metrics`](Self::metrics)) but never opens the breaker by itself; the
    /// consecutive-failure policy is always decided locally.
    pub fn set_fleet_decides_rate(&self, fleet: bool) {
        self.fleet_rate.store(fleet, Ordering::Release);
    }

    /// Whether a fleet coordinator decides the failure-rate trip.
    pub fn fleet_decides_rate(&self) -> bool {
        self.fleet_rate.load(Ordering::Acquire)
    }

    /// Opens the breaker because the fleet's failure rate crossed the threshold, if it is
    /// still closed at `version` (a local transition: version + 1, observers told, reason
    /// [`RemoteFailures`](TransitionReason::RemoteFailures)). Returns whether it opened.
    pub fn trip_for_fleet(&self, version: u64) -> bool {
        self.transition_from(
            version,
            CircuitState::Closed,
            CircuitState::Open,
            TransitionReason::RemoteFailures,
            false,
        )
        .is_some()
    }
}
