//! An axum handler behind CircuitBreakerLayer, served over loopback and called with reqwest:
//! failures trip the breaker, rejected requests get 503 + Retry-After without reaching the
//! handler, and a trial request after the recovery timeout closes it again.

#![allow(clippy::unwrap_used, clippy::panic)] // Test code: a failed unwrap is a failed test.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use flexiai_breaker::{BreakerConfig, CircuitBreaker, CircuitState};
use flexiai_tower::{CircuitBreakerLayer, Error, HttpClassifier, rejected_response};
use tower::ServiceBuilder;

async fn on_error(error: Error<Infallible>) -> Response {
    match error {
        Error::Rejected(rejected) => rejected_response(&rejected),
        other => (StatusCode::INTERNAL_SERVER_ERROR, other.to_string()).into_response(),
    }
}

#[tokio::test]
async fn a_served_handler_trips_rejects_with_retry_after_and_recovers() {
    let breaker = Arc::new(
        CircuitBreaker::new(
            "chat",
            BreakerConfig::builder()
                .failure_threshold(2)
                .recovery_timeout_ms(300)
                .build()
                .unwrap(),
        )
        .unwrap(),
    );
    let served = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&served);
    let chat = get(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            if n < 2 {
                (StatusCode::BAD_GATEWAY, "provider failed")
            } else {
                (StatusCode::OK, "hello")
            }
        }
    })
    .layer(
        ServiceBuilder::new()
            .layer(HandleErrorLayer::new(on_error))
            .layer(
                CircuitBreakerLayer::new(Arc::clone(&breaker)).classifier(HttpClassifier::new()),
            ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/chat", listener.local_addr().unwrap());
    let server =
        tokio::spawn(
            async move { axum::serve(listener, Router::new().route("/chat", chat)).await },
        );

    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let get = || async { client.get(&url).send().await.unwrap() };

    for _ in 0..2 {
        assert_eq!(get().await.status(), 502);
    }
    assert_eq!(breaker.state(), CircuitState::Open);
    let refused = get().await;
    assert_eq!(refused.status(), 503);
    assert_eq!(
        refused.headers()["retry-after"],
        "1",
        "300 ms rounds up to 1 s"
    );
    assert_eq!(
        served.load(Ordering::SeqCst),
        2,
        "the handler was not reached"
    );

    let start = Instant::now();
    while breaker.state() != CircuitState::HalfOpen {
        assert!(start.elapsed() < Duration::from_secs(10), "never half-open");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let trial = get().await;
    assert_eq!(trial.status(), 200);
    assert_eq!(trial.text().await.unwrap(), "hello");
    assert_eq!(breaker.state(), CircuitState::Closed);
    assert_eq!(served.load(Ordering::SeqCst), 3);
    server.abort();
}
