//! An axum handler that calls a flaky dependency, behind a circuit breaker: after three 502s
//! the breaker opens and requests get `503` with `Retry-After` without reaching the handler,
//! until the recovery timeout lets a trial request through. `/metrics` shows the breaker in
//! Prometheus format (docs/metrics.md): the application installs the recorder, the breaker's
//! `MetricsExporter` feeds it from a background thread.
//!
//! `cargo run -p flexiai-tower --example axum_handler` then
//! `curl -i http://127.0.0.1:3000/chat` a few times and `curl http://127.0.0.1:3000/metrics`
//! (`ADDR=host:port` to listen elsewhere).

#![allow(clippy::print_stdout)] // An example prints what happens.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use flexiai_breaker::{BreakerConfig, CircuitBreaker, MetricsExporter};
use flexiai_tower::{CircuitBreakerLayer, Error, HttpClassifier, rejected_response};
use metrics_exporter_prometheus::PrometheusBuilder;
use tower::ServiceBuilder;

/// Maps the layer's error to a response: 503 + `Retry-After` for a rejection.
async fn on_error(error: Error<Infallible>) -> Response {
    match error {
        Error::Rejected(rejected) => rejected_response(&rejected),
        other => (StatusCode::INTERNAL_SERVER_ERROR, other.to_string()).into_response(),
    }
}

/// The app: `/chat` fails its first `failures` requests with 502, then succeeds.
fn app(breaker: Arc<CircuitBreaker>, failures: u64) -> Router {
    let served = Arc::new(AtomicU64::new(0));
    let chat = get(move || {
        let n = served.fetch_add(1, Ordering::SeqCst);
        async move {
            if n < failures {
                (StatusCode::BAD_GATEWAY, "the model provider failed")
            } else {
                (StatusCode::OK, "hello")
            }
        }
    })
    .layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(on_error))
            .layer(CircuitBreakerLayer::new(breaker).classifier(HttpClassifier::new())),
    );
    Router::new().route("/chat", chat)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let breaker = Arc::new(CircuitBreaker::new(
        "chat",
        BreakerConfig::builder()
            .failure_threshold(3)
            .recovery_timeout_ms(10_000)
            .build()?,
    )?);
    let prometheus = PrometheusBuilder::new().install_recorder()?;
    let _exporter = MetricsExporter::new()
        .breaker(Arc::clone(&breaker))
        .spawn(Duration::from_secs(1))?;
    let metrics = get(move || {
        let prometheus = prometheus.clone();
        async move { prometheus.render() }
    });
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("listening on http://{}/chat", listener.local_addr()?);
    axum::serve(listener, app(breaker, 3).route("/metrics", metrics)).await?;
    Ok(())
}
