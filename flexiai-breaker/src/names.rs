//! Metric names shared by the `metrics` exporter and the OpenTelemetry instruments (all
//! carry a `breaker` label, plus the constant labels the application adds). Table:
//! `docs/metrics.md`.

/// Counter, label `outcome` = `success` | `failure`: outcomes recorded by this worker.
pub const CALLS: &str = "flexiai_breaker_calls_total";
/// Counter: calls admitted.
pub const ADMITTED: &str = "flexiai_breaker_calls_admitted_total";
/// Counter: calls rejected (open, forced open, half-open without a free probe slot).
pub const REJECTED: &str = "flexiai_breaker_calls_rejected_total";
/// Counter: transitions in the provider's history this breaker made or adopted (its
/// version).
pub const TRANSITIONS: &str = "flexiai_breaker_transitions_total";
/// Gauge, label `state`: 1 for the current state, 0 for the others.
pub const STATE: &str = "flexiai_breaker_state";
/// Gauge: probe slots (local mode) or credits (granted mode) free while half-open.
pub const PROBE_CREDITS: &str = "flexiai_breaker_probe_credits";
/// Gauge: the failure rate the breaker sees (window or lifetime, per policy), 0 to 1.
pub const FAILURE_RATE: &str = "flexiai_breaker_failure_rate";
/// Gauge: seconds left in the open period (0 when not open).
pub const OPEN_REMAINING: &str = "flexiai_breaker_open_remaining_seconds";
/// Gauge: trial calls failed in a row (drives backoff).
pub const CONSECUTIVE_OPENS: &str = "flexiai_breaker_consecutive_opens";
