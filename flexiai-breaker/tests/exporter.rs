//! MetricsExporter (feature `metrics`): the breaker's own counters reach a real metrics
//! recorder (Prometheus text) under the names and labels of docs/metrics.md.

#![allow(clippy::unwrap_used, clippy::panic)] // Test code: a failed unwrap is a failed test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flexiai_breaker::{BreakerConfig, CircuitBreaker, MetricsExporter};
use metrics_exporter_prometheus::PrometheusBuilder;

fn breaker(name: &str) -> Arc<CircuitBreaker> {
    let config = BreakerConfig::builder()
        .failure_threshold(2)
        .build()
        .unwrap();
    Arc::new(CircuitBreaker::new(name, config).unwrap())
}

/// The value of the sample `line_prefix` (name and labels, as rendered) in `text`.
fn sample(text: &str, line_prefix: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn record_sets_absolute_counters_and_one_hot_state() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let b = breaker("openai");
    metrics::with_local_recorder(&recorder, || {
        let mut exporter = MetricsExporter::new()
            .label("worker", "w1")
            .breaker(Arc::clone(&b));
        for _ in 0..3 {
            b.try_acquire().unwrap().success();
        }
        exporter.record();
        // Recording twice does not double anything: values are absolute.
        exporter.record();
        let text = handle.render();
        let calls =
            r#"flexiai_breaker_calls_total{worker="w1",breaker="openai",outcome="success"}"#;
        assert_eq!(sample(&text, calls), Some(3.0), "{text}");
        let closed = r#"flexiai_breaker_state{worker="w1",breaker="openai",state="closed"}"#;
        assert_eq!(sample(&text, closed), Some(1.0), "{text}");

        b.try_acquire().unwrap().failure();
        b.try_acquire().unwrap().failure();
        assert!(b.try_acquire().is_err());
        exporter.record();
        let text = handle.render();
        let failures =
            r#"flexiai_breaker_calls_total{worker="w1",breaker="openai",outcome="failure"}"#;
        assert_eq!(sample(&text, failures), Some(2.0), "{text}");
        let rejected = r#"flexiai_breaker_calls_rejected_total{worker="w1",breaker="openai"}"#;
        assert_eq!(sample(&text, rejected), Some(1.0), "{text}");
        let admitted = r#"flexiai_breaker_calls_admitted_total{worker="w1",breaker="openai"}"#;
        assert_eq!(sample(&text, admitted), Some(5.0), "{text}");
        let transitions = r#"flexiai_breaker_transitions_total{worker="w1",breaker="openai"}"#;
        assert_eq!(sample(&text, transitions), Some(1.0), "{text}");
        let open = r#"flexiai_breaker_state{worker="w1",breaker="openai",state="open"}"#;
        assert_eq!(sample(&text, open), Some(1.0), "{text}");
        assert_eq!(sample(&text, closed), Some(0.0), "{text}");
        let remaining = r#"flexiai_breaker_open_remaining_seconds{worker="w1",breaker="openai"}"#;
        let left = sample(&text, remaining).unwrap();
        assert!(left > 59.0 && left <= 60.0, "{left}");
    });
}

#[test]
fn a_spawned_exporter_records_in_the_background_and_once_more_on_stop() {
    let handle = PrometheusBuilder::new().install_recorder().unwrap();
    let b = breaker("anthropic");
    let mut sourced = 0u64;
    let exporter = MetricsExporter::new()
        .breaker(Arc::clone(&b))
        .source(move || {
            sourced += 1;
            metrics::counter!("test_source_runs_total").absolute(sourced);
        })
        .spawn(Duration::from_millis(10))
        .unwrap();
    b.try_acquire().unwrap().success();
    let line = r#"flexiai_breaker_calls_total{breaker="anthropic",outcome="success"}"#;
    let start = Instant::now();
    while sample(&handle.render(), line) != Some(1.0) {
        assert!(start.elapsed() < Duration::from_secs(10), "never exported");
        std::thread::sleep(Duration::from_millis(5));
    }
    b.try_acquire().unwrap().success();
    exporter.stop();
    // The last export ran before stop() returned.
    let text = handle.render();
    assert_eq!(sample(&text, line), Some(2.0), "{text}");
    assert!(
        sample(&text, "test_source_runs_total").unwrap() >= 2.0,
        "{text}"
    );
}
