//! [`CircuitBreakerLayer`]: wraps services in a [`CircuitBreakerService`].

use std::sync::Arc;

use flexiai_breaker::CircuitBreaker;
use tower_layer::Layer;

use crate::classify::ErrorsAreFailures;
use crate::service::CircuitBreakerService;

/// A [`Layer`] guarding every service it wraps with one shared breaker.
///
/// All services made by one layer (and their clones) share the breaker, so they trip and
/// recover together; register the same `Arc` with a `flexiai_sync::StateSyncManager` and
/// they trip and recover with the fleet.
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer<C = ErrorsAreFailures> {
    breaker: Arc<CircuitBreaker>,
    classifier: C,
}

impl CircuitBreakerLayer {
    /// A layer over `breaker`, counting every `Err` as a failure and every `Ok` as a success.
    pub fn new(breaker: Arc<CircuitBreaker>) -> Self {
        Self {
            breaker,
            classifier: ErrorsAreFailures,
        }
    }
}

impl<C> CircuitBreakerLayer<C> {
    /// The same layer with another classifier (e.g. [`HttpClassifier`](crate::HttpClassifier),
    /// or a closure: see [`Classify`](crate::Classify)). It is cloned once per call, so keep it
    /// cheap to clone.
    pub fn classifier<C2>(self, classifier: C2) -> CircuitBreakerLayer<C2> {
        CircuitBreakerLayer {
            breaker: self.breaker,
            classifier,
        }
    }

    /// The breaker this layer guards with.
    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }
}

impl<S, C: Clone> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreakerService<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreakerService::new(inner, Arc::clone(&self.breaker), self.classifier.clone())
    }
}
