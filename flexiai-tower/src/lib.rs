//! A [tower] [`Layer`](tower_layer::Layer) that guards any
//! [`Service`](tower_service::Service) with a [`flexiai_breaker::CircuitBreaker`].
//!
//! Build a breaker, share it as an `Arc`, and wrap services with [`CircuitBreakerLayer`]:
//! while the breaker is closed calls go through and their results are counted; once it
//! opens, `poll_ready` answers [`Error::Rejected`] without touching the inner service; after
//! the recovery timeout a limited number of trial calls decide whether it closes again.
//! A [`Classify`] implementation decides what a result means: [`ErrorsAreFailures`] by
//! default, [`HttpClassifier`] for `http::Response`s (5xx and 429 fail, and a 429/503's
//! `Retry-After` opens the breaker for that long through
//! [`CircuitBreaker::open_for`](flexiai_breaker::CircuitBreaker::open_for)), or a closure.
//!
//! Nothing here knows about sync: register the same `Arc<CircuitBreaker>` with a
//! `flexiai_sync::StateSyncManager` and the layer trips, rejects and recovers with the fleet,
//! a `Retry-After` seen by one worker keeping every worker away.
//!
//! ```
//! use std::sync::Arc;
//! use flexiai_breaker::{BreakerConfig, CircuitBreaker};
//! use flexiai_tower::{CircuitBreakerLayer, Error};
//! use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let breaker = Arc::new(CircuitBreaker::new(
//!     "upstream",
//!     BreakerConfig::builder().failure_threshold(1).build()?,
//! )?);
//! let mut svc = ServiceBuilder::new()
//!     .layer(CircuitBreakerLayer::new(breaker.clone()))
//!     .service(service_fn(|fail: bool| async move {
//!         if fail { Err(std::io::Error::other("down")) } else { Ok("ok") }
//!     }));
//! assert_eq!(svc.ready().await?.call(false).await?, "ok");
//! assert!(matches!(svc.ready().await?.call(true).await, Err(Error::Inner(_))));
//! // One failure tripped it: readiness now reports the open breaker.
//! assert!(matches!(svc.ready().await, Err(Error::Rejected(_))));
//! # Ok(())
//! # }
//! ```
//!
//! A server that guards a handler answers rejected requests with
//! [`rejected_response`] (503 with `Retry-After`); `examples/axum_handler.rs` does that with
//! axum's `HandleErrorLayer`, and `examples/reqwest_service.rs` guards a reqwest client.
//!
//! The permit taken in `poll_ready` lives until the response is ready: see
//! [`CircuitBreakerService`] for how this meets tower's `poll_ready`/`call` contract.
//!
//! [tower]: https://docs.rs/tower

mod classify;
mod error;
mod layer;
mod response;
mod retry_after;
mod service;

pub use classify::{Classify, ErrorsAreFailures, HttpClassifier, Verdict};
pub use error::Error;
pub use layer::CircuitBreakerLayer;
pub use response::rejected_response;
pub use retry_after::retry_after;
pub use service::{CircuitBreakerService, ResponseFuture};
