//! `StateSyncManager::register_otel` (feature `opentelemetry`): the manager's counters, mode,
//! event lag and its breakers reach an OpenTelemetry SDK (in-memory exporter) under the names
//! of docs/metrics.md.

#![allow(clippy::unwrap_used, clippy::panic)] // Test code: a failed unwrap is a failed test.

use std::sync::Arc;

use flexiai_backend::MemoryBackend;
use flexiai_breaker::{BreakerConfig, CircuitState, OtelMetrics};
use flexiai_sync::scenarios::{eventually, worker};
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

fn collect(provider: &SdkMeterProvider, exporter: &InMemoryMetricExporter) -> ResourceMetrics {
    exporter.reset();
    provider.force_flush().unwrap();
    exporter.get_finished_metrics().unwrap().pop().unwrap()
}

fn matches(attrs: &[(&str, &str)], got: &mut dyn Iterator<Item = &KeyValue>) -> bool {
    let got: Vec<(String, String)> = got
        .map(|kv| (kv.key.to_string(), kv.value.to_string()))
        .collect();
    got.len() == attrs.len()
        && attrs
            .iter()
            .all(|(k, v)| got.iter().any(|(gk, gv)| gk == k && gv == v))
}

/// The data point of `name` with exactly `attrs`: its value (a histogram's: its count).
fn point(rm: &ResourceMetrics, name: &str, attrs: &[(&str, &str)]) -> Option<f64> {
    let metric = rm
        .scope_metrics()
        .flat_map(|s| s.metrics())
        .find(|m| m.name() == name)?;
    match metric.data() {
        AggregatedMetrics::U64(MetricData::Sum(s)) => s
            .data_points()
            .find(|p| matches(attrs, &mut p.attributes()))
            .map(|p| p.value() as f64),
        AggregatedMetrics::U64(MetricData::Gauge(g)) => g
            .data_points()
            .find(|p| matches(attrs, &mut p.attributes()))
            .map(|p| p.value() as f64),
        AggregatedMetrics::F64(MetricData::Gauge(g)) => g
            .data_points()
            .find(|p| matches(attrs, &mut p.attributes()))
            .map(|p| p.value()),
        AggregatedMetrics::F64(MetricData::Histogram(h)) => h
            .data_points()
            .find(|p| matches(attrs, &mut p.attributes()))
            .map(|p| p.count() as f64),
        other => panic!("{name}: unexpected data {other:?}"),
    }
}

#[tokio::test]
async fn a_synced_worker_reports_its_mode_events_lag_and_breakers() {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    let backend = MemoryBackend::new();
    let config = BreakerConfig::builder()
        .failure_threshold(2)
        .build()
        .unwrap();
    let a = worker(Arc::new(backend.clone()), &["openai"], &config).await;
    let b = worker(Arc::new(backend), &["openai"], &config).await;
    let b_breaker = Arc::clone(b.breaker("openai"));
    let b_manager = Arc::new(b.manager);
    b_manager.register_otel(
        &provider.meter("flexiai-test"),
        OtelMetrics::new().label("worker", "b"),
    );

    let w = [("worker", "b")];
    let rm = collect(&provider, &exporter);
    assert_eq!(
        point(&rm, "flexiai_sync_mode", &[w[0], ("mode", "synced")]),
        Some(1.0)
    );
    assert_eq!(
        point(&rm, "flexiai_sync_mode", &[w[0], ("mode", "degraded")]),
        Some(0.0)
    );
    let closed = [w[0], ("breaker", "openai"), ("state", "closed")];
    assert_eq!(point(&rm, "flexiai_breaker_state", &closed), Some(1.0));

    for _ in 0..2 {
        a.breaker("openai").try_acquire().unwrap().failure();
    }
    eventually("b adopts a's opening", || {
        b_breaker.state() == CircuitState::Open
    })
    .await;
    let rm = collect(&provider, &exporter);
    let open = [w[0], ("breaker", "openai"), ("state", "open")];
    assert_eq!(point(&rm, "flexiai_breaker_state", &open), Some(1.0));
    let me = [w[0], ("breaker", "openai")];
    assert_eq!(
        point(&rm, "flexiai_breaker_transitions_total", &me),
        Some(1.0)
    );
    assert!(point(&rm, "flexiai_sync_events_received_total", &w).unwrap() >= 1.0);
    assert!(point(&rm, "flexiai_sync_events_applied_total", &w).unwrap() >= 1.0);
    assert!(point(&rm, "flexiai_sync_last_event_lag_seconds", &w).is_some());
    assert_eq!(point(&rm, "flexiai_sync_event_lag_seconds", &w), Some(1.0));

    a.manager.stop().await.unwrap();
    b_manager.stop().await.unwrap();
    let rm = collect(&provider, &exporter);
    assert_eq!(
        point(&rm, "flexiai_sync_mode", &[w[0], ("mode", "stopped")]),
        Some(1.0)
    );
    provider.shutdown().unwrap();
}
