//! OtelMetrics (feature `opentelemetry`): a breaker's own counters reach an OpenTelemetry SDK
//! (in-memory exporter) under the names and attributes of docs/metrics.md.

#![allow(clippy::unwrap_used, clippy::panic)] // Test code: a failed unwrap is a failed test.

use std::sync::Arc;

use flexiai_breaker::{BreakerConfig, CircuitBreaker, OtelMetrics};
use opentelemetry::KeyValue;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

fn provider() -> (SdkMeterProvider, InMemoryMetricExporter) {
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    (provider, exporter)
}

/// Collects now and returns the latest export.
fn collect(provider: &SdkMeterProvider, exporter: &InMemoryMetricExporter) -> ResourceMetrics {
    exporter.reset();
    provider.force_flush().unwrap();
    exporter.get_finished_metrics().unwrap().pop().unwrap()
}

fn has(attrs: &[(&str, &str)], got: &mut dyn Iterator<Item = &KeyValue>) -> bool {
    let got: Vec<(String, String)> = got
        .map(|kv| (kv.key.to_string(), kv.value.to_string()))
        .collect();
    got.len() == attrs.len()
        && attrs
            .iter()
            .all(|(k, v)| got.iter().any(|(gk, gv)| gk == k && gv == v))
}

/// The value of the data point of `name` with exactly `attrs`, as f64 (counters are u64
/// sums, gauges u64 or f64).
fn point(rm: &ResourceMetrics, name: &str, attrs: &[(&str, &str)]) -> Option<f64> {
    let metric = rm
        .scope_metrics()
        .flat_map(|s| s.metrics())
        .find(|m| m.name() == name)?;
    match metric.data() {
        AggregatedMetrics::U64(MetricData::Sum(sum)) => {
            assert!(sum.is_monotonic(), "{name} is a counter");
            sum.data_points()
                .find(|p| has(attrs, &mut p.attributes()))
                .map(|p| p.value() as f64)
        }
        AggregatedMetrics::U64(MetricData::Gauge(g)) => g
            .data_points()
            .find(|p| has(attrs, &mut p.attributes()))
            .map(|p| p.value() as f64),
        AggregatedMetrics::F64(MetricData::Gauge(g)) => g
            .data_points()
            .find(|p| has(attrs, &mut p.attributes()))
            .map(|p| p.value()),
        other => panic!("{name}: unexpected data {other:?}"),
    }
}

#[test]
fn calls_and_a_transition_reach_the_sdk_with_the_documented_names_and_attributes() {
    let (provider, exporter) = provider();
    let config = BreakerConfig::builder()
        .failure_threshold(2)
        .build()
        .unwrap();
    let b = Arc::new(CircuitBreaker::new("openai", config.clone()).unwrap());
    let other = Arc::new(CircuitBreaker::new("anthropic", config).unwrap());
    OtelMetrics::new()
        .label("worker", "w1")
        .breaker(&b)
        .breaker(&other)
        .register(&provider.meter("flexiai-test"));

    for _ in 0..3 {
        b.try_acquire().unwrap().success();
    }
    let rm = collect(&provider, &exporter);
    let me = [("worker", "w1"), ("breaker", "openai")];
    let ok = [me[0], me[1], ("outcome", "success")];
    assert_eq!(point(&rm, "flexiai_breaker_calls_total", &ok), Some(3.0));
    let closed = [me[0], me[1], ("state", "closed")];
    assert_eq!(point(&rm, "flexiai_breaker_state", &closed), Some(1.0));
    // Collecting again reports the same totals: values are absolute (cumulative).
    let rm = collect(&provider, &exporter);
    assert_eq!(point(&rm, "flexiai_breaker_calls_total", &ok), Some(3.0));

    b.try_acquire().unwrap().failure();
    b.try_acquire().unwrap().failure();
    assert!(b.try_acquire().is_err());
    let rm = collect(&provider, &exporter);
    let failed = [me[0], me[1], ("outcome", "failure")];
    assert_eq!(
        point(&rm, "flexiai_breaker_calls_total", &failed),
        Some(2.0)
    );
    assert_eq!(
        point(&rm, "flexiai_breaker_calls_admitted_total", &me),
        Some(5.0)
    );
    assert_eq!(
        point(&rm, "flexiai_breaker_calls_rejected_total", &me),
        Some(1.0)
    );
    assert_eq!(
        point(&rm, "flexiai_breaker_transitions_total", &me),
        Some(1.0)
    );
    let open = [me[0], me[1], ("state", "open")];
    assert_eq!(point(&rm, "flexiai_breaker_state", &open), Some(1.0));
    assert_eq!(point(&rm, "flexiai_breaker_state", &closed), Some(0.0));
    assert_eq!(point(&rm, "flexiai_breaker_failure_rate", &me), Some(0.4));
    let left = point(&rm, "flexiai_breaker_open_remaining_seconds", &me).unwrap();
    assert!(left > 59.0 && left <= 60.0, "{left}");
    assert_eq!(point(&rm, "flexiai_breaker_probe_credits", &me), Some(0.0));
    assert_eq!(
        point(&rm, "flexiai_breaker_consecutive_opens", &me),
        Some(0.0)
    );

    // Each breaker has its own data points.
    let them = [("worker", "w1"), ("breaker", "anthropic")];
    assert_eq!(
        point(&rm, "flexiai_breaker_calls_admitted_total", &them),
        Some(0.0)
    );
    let closed_too = [them[0], them[1], ("state", "closed")];
    assert_eq!(point(&rm, "flexiai_breaker_state", &closed_too), Some(1.0));

    // A dropped breaker is no longer reported; the other still is.
    drop(b);
    let rm = collect(&provider, &exporter);
    assert_eq!(
        point(&rm, "flexiai_breaker_calls_admitted_total", &me),
        None
    );
    assert_eq!(
        point(&rm, "flexiai_breaker_calls_admitted_total", &them),
        Some(0.0)
    );
    provider.shutdown().unwrap();
}
