//! `--metrics-addr`: the process's metrics in Prometheus text format at `/metrics`.
//!
//! The libraries only record through the `metrics` facade (feature `metrics`); choosing
//! `metrics-exporter-prometheus` as the recorder and serving it is this application's job.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusBuilder;

/// Installs the Prometheus recorder for the whole process and serves `/metrics` on `addr`
/// (port 0 picks a free one) from a background task; returns the bound address.
pub(crate) async fn serve(addr: SocketAddr) -> crate::Result<SocketAddr> {
    let handle = PrometheusBuilder::new().install_recorder()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let upkeep = handle.clone();
    // Histograms are drained by upkeep; a scrape renders whatever it has.
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move { handle.render() }
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the metrics endpoint stopped");
        }
    });
    Ok(bound)
}
