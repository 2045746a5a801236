//! Sync telemetry through the [`metrics`] facade (feature `metrics`): the manager's own
//! counters ([`SyncMetrics`](crate::SyncMetrics)) and mode, and its breakers, recorded by a
//! [`MetricsExporter`] on its background thread, never by the driver or the hot path.
//! Names and labels: `docs/metrics.md`.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use flexiai_breaker::{BreakerId, BreakerRecorder, MetricsExporter};
use metrics::{Counter, Gauge, Histogram, Label, counter, gauge, histogram};

use crate::{StateSyncManager, SyncHealth};

pub use crate::names;
use crate::names::{MODES, mode_index};

/// The metric handles of one manager; [`record`](SyncRecorder::record) sets them from a
/// [`SyncHealth`].
#[derive(Debug)]
pub struct SyncRecorder {
    counters: [Counter; 10],
    modes: [Gauge; 3],
    last_lag: Gauge,
    lag: Histogram,
    /// `events_received` at the previous record, to sample the lag only when it moved.
    seen: Option<u64>,
}

impl SyncRecorder {
    /// Handles with `labels` on every metric.
    pub fn new(labels: &[Label]) -> Self {
        let with = |extra: Option<Label>| labels.iter().cloned().chain(extra).collect::<Vec<_>>();
        let c = |name: &'static str| counter!(name, with(None));
        Self {
            counters: [
                c(names::EVENTS_PUBLISHED),
                c(names::EVENTS_RECEIVED),
                c(names::EVENTS_APPLIED),
                c(names::EVENTS_REJECTED),
                c(names::EVENTS_UNAUTHENTICATED),
                c(names::EVENTS_REPLAYED),
                c(names::CAS_CONFLICTS),
                c(names::RECONCILES),
                c(names::BACKEND_ERRORS),
                c(names::PROBE_LEASES),
            ],
            modes: MODES.map(|m| gauge!(names::MODE, with(Some(Label::new("mode", m))))),
            last_lag: gauge!(names::LAST_EVENT_LAG, with(None)),
            lag: histogram!(names::EVENT_LAG, with(None)),
            seen: None,
        }
    }

    /// Records one reading of a manager.
    pub fn record(&mut self, health: &SyncHealth) {
        let m = &health.metrics;
        let values = [
            m.events_published,
            m.events_received,
            m.events_applied,
            m.events_rejected,
            m.events_unauthenticated,
            m.events_replayed,
            m.cas_conflicts,
            m.reconciles,
            m.backend_errors,
            m.probe_leases,
        ];
        for (counter, value) in self.counters.iter().zip(values) {
            counter.absolute(value);
        }
        let current = mode_index(&health.mode);
        for (i, gauge) in self.modes.iter().enumerate() {
            gauge.set(if i == current { 1.0 } else { 0.0 });
        }
        if let Some(lag) = m.last_event_lag {
            self.last_lag.set(lag.as_secs_f64());
            if self.seen.is_some_and(|seen| m.events_received > seen) {
                self.lag.record(lag.as_secs_f64());
            }
        }
        self.seen = Some(m.events_received);
    }
}

impl StateSyncManager {
    /// Adds this manager to `exporter`: at every export, its [`SyncHealth`] and every breaker
    /// registered with it (including ones registered later), under the exporter's constant
    /// labels. The exporter holds the manager weakly: once the manager is dropped it records
    /// nothing more for it.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use flexiai_backend::MemoryBackend;
    /// use flexiai_breaker::MetricsExporter;
    /// use flexiai_sync::StateSyncManager;
    ///
    /// let manager = Arc::new(StateSyncManager::new(Arc::new(MemoryBackend::new())));
    /// let exporter = manager
    ///     .metrics_exporter(MetricsExporter::new().label("service", "chat-api"))
    ///     .spawn(Duration::from_secs(5))?;
    /// # drop(exporter);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn metrics_exporter(self: &Arc<Self>, exporter: MetricsExporter) -> MetricsExporter {
        let labels = exporter.labels().to_vec();
        let manager: Weak<Self> = Arc::downgrade(self);
        let mut sync = SyncRecorder::new(&labels);
        let mut breakers: HashMap<BreakerId, BreakerRecorder> = HashMap::new();
        exporter.source(move || {
            let Some(manager) = manager.upgrade() else {
                return;
            };
            sync.record(&manager.health());
            for breaker in manager.breakers() {
                breakers
                    .entry(breaker.id())
                    .or_insert_with(|| BreakerRecorder::new(breaker.name(), &labels))
                    .record(&breaker.metrics());
            }
        })
    }
}
