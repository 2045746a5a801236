//! A point-in-time view of a breaker for dashboards and health checks.

use std::time::Duration;

use flexiai_events::CircuitState;

use crate::ProbeMode;

/// Counters and state of one breaker, as returned by
/// [`CircuitBreaker::metrics`](crate::CircuitBreaker::metrics).
///
/// Totals count every outcome this worker recorded since construction (including those in
/// the disabled state and those that arrived after a state change); the per-state counts are
/// what the state machine uses.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct BreakerMetrics {
    /// Current state.
    pub state: CircuitState,
    /// Current version.
    pub version: u64,
    /// Failures counting toward opening: the current run of consecutive failures, or the
    /// failures in the sliding window (including absorbed remote ones).
    pub failure_count: u64,
    /// Successes in the current state (probe successes when half-open; successes in the
    /// window under the failure-rate policy).
    pub success_count: u64,
    /// Share of failures: over the sliding window under the failure-rate policy, over the
    /// breaker's lifetime totals under the consecutive policy. 0 when nothing was recorded.
    pub failure_rate: f64,
    /// Time since the last state change (local transition, restore or remote apply).
    pub time_in_state: Duration,
    /// Calls admitted since construction.
    pub calls_admitted: u64,
    /// Calls rejected since construction.
    pub calls_rejected: u64,
    /// Successes recorded since construction.
    pub total_successes: u64,
    /// Failures recorded since construction (slow calls included).
    pub total_failures: u64,
    /// For `Open`: time left before trial calls are admitted.
    pub open_remaining: Option<Duration>,
    /// How many times in a row a trial call failed and reopened the breaker (drives backoff).
    pub consecutive_opens: u32,
    /// Current probe mode.
    pub probe_mode: ProbeMode,
    /// In half-open: probe slots (local mode) or credits (granted mode) still available.
    pub probe_slots: u32,
}
