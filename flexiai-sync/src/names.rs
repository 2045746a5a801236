//! Metric names shared by the `metrics` exporter and the OpenTelemetry instruments (each
//! carries the constant labels the application adds). Table: `docs/metrics.md`.

use crate::SyncMode;

/// Counter: events this worker published.
pub const EVENTS_PUBLISHED: &str = "flexiai_sync_events_published_total";
/// Counter: events received from other workers.
pub const EVENTS_RECEIVED: &str = "flexiai_sync_events_received_total";
/// Counter: received events that changed a local breaker.
pub const EVENTS_APPLIED: &str = "flexiai_sync_events_applied_total";
/// Counter: payloads dropped because they did not decode.
pub const EVENTS_REJECTED: &str = "flexiai_sync_events_rejected_total";
/// Counter: the part of the rejected payloads refused by event authentication.
pub const EVENTS_UNAUTHENTICATED: &str = "flexiai_sync_events_unauthenticated_total";
/// Counter: versioned events dropped as not newer than the local breaker.
pub const EVENTS_REPLAYED: &str = "flexiai_sync_events_replayed_total";
/// Counter: local transitions that lost the store's compare-and-set.
pub const CAS_CONFLICTS: &str = "flexiai_sync_cas_conflicts_total";
/// Counter: full re-reads of the stored state.
pub const RECONCILES: &str = "flexiai_sync_reconciles_total";
/// Counter: backend operations that failed or timed out.
pub const BACKEND_ERRORS: &str = "flexiai_sync_backend_errors_total";
/// Counter: probe leases this worker won.
pub const PROBE_LEASES: &str = "flexiai_sync_probe_leases_total";
/// Gauge, label `mode` = `stopped` | `synced` | `degraded`: 1 for the current mode.
pub const MODE: &str = "flexiai_sync_mode";
/// Gauge: age of the last received event by its sender's clock, in seconds.
pub const LAST_EVENT_LAG: &str = "flexiai_sync_last_event_lag_seconds";
/// Histogram: that age, sampled once per export in which new events arrived.
pub const EVENT_LAG: &str = "flexiai_sync_event_lag_seconds";

/// Values of the `mode` label, in [`mode_index`] order.
pub(crate) const MODES: [&str; 3] = ["stopped", "synced", "degraded"];

/// The position of `mode` in [`MODES`].
pub(crate) fn mode_index(mode: &SyncMode) -> usize {
    match mode {
        SyncMode::Stopped => 0,
        SyncMode::Synced => 1,
        SyncMode::Degraded { .. } => 2,
    }
}
