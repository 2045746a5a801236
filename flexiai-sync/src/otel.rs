//! Sync telemetry through the OpenTelemetry metrics API (feature `opentelemetry`): the
//! manager's counters and mode and its breakers, as observable instruments read when the
//! application's SDK collects, never by the driver or the hot path. Names and labels:
//! `docs/metrics.md`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use flexiai_breaker::OtelMetrics;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrument, Meter};

use crate::names::{self, MODES, mode_index};
use crate::{StateSyncManager, SyncHealth, SyncMetrics};

/// Bounds for the event-lag histogram, in seconds (the SDK's defaults suit milliseconds).
const LAG_BOUNDS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Reads one counter of [`SyncMetrics`].
type Field = fn(&SyncMetrics) -> u64;

/// `events_received` before any collection.
const UNSEEN: u64 = u64::MAX;

impl StateSyncManager {
    /// Registers this manager's instruments, and those of every breaker registered with it
    /// (including ones registered later), on `meter`, with the constant attributes of
    /// `metrics` (breakers added to `metrics` itself are reported too). The callbacks hold the
    /// manager weakly: once it is dropped they report nothing for it. OpenTelemetry cannot
    /// unregister callbacks, so register a manager once per meter provider.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use flexiai_backend::MemoryBackend;
    /// use flexiai_breaker::OtelMetrics;
    /// use flexiai_sync::StateSyncManager;
    /// use opentelemetry_sdk::metrics::SdkMeterProvider;
    ///
    /// // The application's choice of exporter: OTLP in production, in-memory here.
    /// let exporter = opentelemetry_sdk::metrics::InMemoryMetricExporter::default();
    /// let provider = SdkMeterProvider::builder().with_periodic_exporter(exporter).build();
    /// opentelemetry::global::set_meter_provider(provider.clone());
    ///
    /// let manager = Arc::new(StateSyncManager::new(Arc::new(MemoryBackend::new())));
    /// let meter = opentelemetry::global::meter("chat-api");
    /// manager.register_otel(&meter, OtelMetrics::new().label("service", "chat-api"));
    /// // ... serve traffic; at shutdown, flush the last collection:
    /// provider.shutdown()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn register_otel(self: &Arc<Self>, meter: &Meter, metrics: OtelMetrics) {
        let attrs: Arc<[KeyValue]> = metrics.attributes().into();
        let weak: Weak<Self> = Arc::downgrade(self);
        let breakers = weak.clone();
        metrics
            .breakers_from(move || breakers.upgrade().map(|m| m.breakers()).unwrap_or_default())
            .register(meter);

        let counters: [(&'static str, Field); 10] = [
            (names::EVENTS_PUBLISHED, |m| m.events_published),
            (names::EVENTS_RECEIVED, |m| m.events_received),
            (names::EVENTS_APPLIED, |m| m.events_applied),
            (names::EVENTS_REJECTED, |m| m.events_rejected),
            (names::EVENTS_UNAUTHENTICATED, |m| m.events_unauthenticated),
            (names::EVENTS_REPLAYED, |m| m.events_replayed),
            (names::CAS_CONFLICTS, |m| m.cas_conflicts),
            (names::RECONCILES, |m| m.reconciles),
            (names::BACKEND_ERRORS, |m| m.backend_errors),
            (names::PROBE_LEASES, |m| m.probe_leases),
        ];
        for (name, value) in counters {
            let (weak, attrs) = (weak.clone(), Arc::clone(&attrs));
            meter
                .u64_observable_counter(name)
                .with_callback(move |o| {
                    if let Some(health) = health(&weak) {
                        o.observe(value(&health.metrics), &attrs);
                    }
                })
                .build();
        }

        let (mode_weak, mode_attrs) = (weak.clone(), Arc::clone(&attrs));
        meter
            .u64_observable_gauge(names::MODE)
            .with_description("1 for the current mode, 0 for the others")
            .with_callback(move |o: &dyn AsyncInstrument<u64>| {
                let Some(health) = health(&mode_weak) else {
                    return;
                };
                let current = mode_index(&health.mode);
                for (i, mode) in MODES.into_iter().enumerate() {
                    let mut all = mode_attrs.to_vec();
                    all.push(KeyValue::new("mode", mode));
                    o.observe(u64::from(i == current), &all);
                }
            })
            .build();

        // The histogram is synchronous; it is sampled from the lag gauge's callback, once per
        // collection in which new events arrived (the SDK runs callbacks before it reads the
        // aggregations, so the sample lands in the same collection).
        let lag = meter
            .f64_histogram(names::EVENT_LAG)
            .with_description("Age of received events, sampled once per collection")
            .with_unit("s")
            .with_boundaries(LAG_BOUNDS.to_vec())
            .build();
        let seen = AtomicU64::new(UNSEEN);
        meter
            .f64_observable_gauge(names::LAST_EVENT_LAG)
            .with_description("Age of the last received event, by its sender's clock")
            .with_unit("s")
            .with_callback(move |o| {
                let Some(health) = health(&weak) else {
                    return;
                };
                let m = &health.metrics;
                let before = seen.swap(m.events_received, Ordering::Relaxed);
                if let Some(age) = m.last_event_lag {
                    o.observe(age.as_secs_f64(), &attrs);
                    if before != UNSEEN && m.events_received > before {
                        lag.record(age.as_secs_f64(), &attrs);
                    }
                }
            })
            .build();
    }
}

fn health(manager: &Weak<StateSyncManager>) -> Option<SyncHealth> {
    manager.upgrade().map(|m| m.health())
}
