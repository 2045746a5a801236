//! `StateSyncManager::metrics_exporter` (feature `metrics`): the manager's counters, mode,
//! event lag and its breakers reach a real recorder (Prometheus text) under the names of
//! docs/metrics.md.

#![allow(clippy::unwrap_used, clippy::panic)] // Test code: a failed unwrap is a failed test.

use std::sync::Arc;

use flexiai_backend::MemoryBackend;
use flexiai_breaker::{BreakerConfig, CircuitState, MetricsExporter};
use flexiai_sync::scenarios::{eventually, worker};
use metrics_exporter_prometheus::PrometheusBuilder;

fn sample(text: &str, line_prefix: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line_prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn a_synced_worker_exports_its_mode_events_lag_and_breakers() {
    let backend = MemoryBackend::new();
    let config = BreakerConfig::builder()
        .failure_threshold(2)
        .build()
        .unwrap();
    let a = worker(Arc::new(backend.clone()), &["openai"], &config).await;
    let b = worker(Arc::new(backend), &["openai"], &config).await;
    let b_breaker = Arc::clone(b.breaker("openai"));
    let b_manager = Arc::new(b.manager);

    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let mut exporter = metrics::with_local_recorder(&recorder, || {
        let mut e = b_manager.metrics_exporter(MetricsExporter::new().label("worker", "b"));
        e.record();
        e
    });
    let text = handle.render();
    assert_eq!(
        sample(&text, r#"flexiai_sync_mode{worker="b",mode="synced"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"flexiai_sync_mode{worker="b",mode="degraded"}"#),
        Some(0.0),
        "{text}"
    );
    let closed = r#"flexiai_breaker_state{worker="b",breaker="openai",state="closed"}"#;
    assert_eq!(sample(&text, closed), Some(1.0), "{text}");

    for _ in 0..2 {
        a.breaker("openai").try_acquire().unwrap().failure();
    }
    eventually("b adopts a's opening", || {
        b_breaker.state() == CircuitState::Open
    })
    .await;
    metrics::with_local_recorder(&recorder, || exporter.record());
    let text = handle.render();
    let open = r#"flexiai_breaker_state{worker="b",breaker="openai",state="open"}"#;
    assert_eq!(sample(&text, open), Some(1.0), "{text}");
    let transitions = r#"flexiai_breaker_transitions_total{worker="b",breaker="openai"}"#;
    assert_eq!(sample(&text, transitions), Some(1.0), "{text}");
    let got = sample(&text, r#"flexiai_sync_events_received_total{worker="b"}"#).unwrap();
    assert!(got >= 1.0, "{text}");
    let applied = sample(&text, r#"flexiai_sync_events_applied_total{worker="b"}"#).unwrap();
    assert!(applied >= 1.0, "{text}");
    assert!(
        sample(&text, r#"flexiai_sync_last_event_lag_seconds{worker="b"}"#).is_some(),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"flexiai_sync_event_lag_seconds_count{worker="b"}"#),
        Some(1.0),
        "{text}"
    );

    a.manager.stop().await.unwrap();
    b_manager.stop().await.unwrap();
    metrics::with_local_recorder(&recorder, || exporter.record());
    let text = handle.render();
    assert_eq!(
        sample(&text, r#"flexiai_sync_mode{worker="b",mode="stopped"}"#),
        Some(1.0),
        "{text}"
    );
}
