//! A `reqwest::Client` (a tower service) behind a circuit breaker, against a stand-in
//! upstream on loopback that answers `429 Too Many Requests` with `Retry-After: 5`.
//!
//! `cargo run -p flexiai-tower --example reqwest_service`

#![allow(clippy::print_stdout)] // An example prints what happens.

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use flexiai_breaker::{BreakerConfig, CircuitBreaker};
use flexiai_tower::{CircuitBreakerLayer, Error, HttpClassifier};
use tower::{Service, ServiceBuilder, ServiceExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let upstream = Router::new().route(
        "/v1/chat",
        get(|| async {
            (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "5")],
                "slow down",
            )
        }),
    );
    tokio::spawn(async move { axum::serve(listener, upstream).await });

    // reqwest is built without a bundled crypto provider in this workspace; plain http needs
    // none, but the client builder wants one installed. Err means one already is.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().no_proxy().build()?;

    let breaker = Arc::new(CircuitBreaker::new("upstream", BreakerConfig::default())?);
    let mut service = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(Arc::clone(&breaker)).classifier(HttpClassifier::new()))
        // The classifier reads http::Response, which reqwest's response converts into.
        .map_response(http::Response::<reqwest::Body>::from)
        .service(client.clone());

    let url = format!("http://{addr}/v1/chat");
    let response = service
        .ready()
        .await?
        .call(client.get(&url).build()?)
        .await?;
    println!("upstream answered {}", response.status());
    println!("breaker is now {} (Retry-After opened it)", breaker.state());

    match service.ready().await {
        Err(Error::Rejected(rejected)) => println!("next call refused locally: {rejected}"),
        Err(other) => println!("error: {other}"),
        Ok(_) => println!("admitted (unexpected: the breaker should be open)"),
    }
    Ok(())
}
