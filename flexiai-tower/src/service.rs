//! [`CircuitBreakerService`]: admission in `poll_ready`, outcome when the response is ready.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use flexiai_breaker::{CircuitBreaker, OwnedPermit, Rejected};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::classify::Classify;
use crate::error::Error;

/// A service guarded by a circuit breaker; made by [`CircuitBreakerLayer`](crate::CircuitBreakerLayer).
///
/// # The `poll_ready` / `call` contract
///
/// Admission happens in `poll_ready`, like tower's own `ConcurrencyLimit` takes its semaphore
/// permit there: the service asks the breaker for an [`OwnedPermit`] first and, if refused,
/// answers `Ready(Err(Error::Rejected))` without polling the inner service, so an open
/// breaker costs the inner service nothing (a load balancer or `Buffer` in front sees the
/// service as failed right away). Once admitted, it polls the inner service's readiness and
/// keeps the permit until `call` moves it into the response future, where the outcome is
/// recorded when the response (or error) is ready. Consequences:
///
/// - A permit held across `Pending` readiness holds a half-open probe slot; that is bounded
///   by the inner service's readiness, and the slot comes back if the service is dropped.
/// - A readiness error of the inner service is classified like a call's error.
/// - A clone starts without a permit (as tower's services do): readiness is per instance.
/// - A response future dropped before completion records nothing (a cancelled call says
///   nothing about the provider) and gives a probe slot back.
/// - `call` without a successful `poll_ready` breaks tower's contract; instead of panicking,
///   the service asks the breaker then and, if refused, returns a future that fails with
///   [`Error::Rejected`] (the inner service's `call` is then not invoked).
///
/// tower-resilience takes the other common route (readiness forwarded, the state checked in
/// `call`); this one needs a permit that outlives `poll_ready`, which is what owned permits
/// are for, and keeps rejected requests away from the inner service's readiness entirely.
#[derive(Debug)]
pub struct CircuitBreakerService<S, C> {
    inner: S,
    breaker: Arc<CircuitBreaker>,
    classifier: C,
    permit: Option<OwnedPermit>,
}

impl<S, C> CircuitBreakerService<S, C> {
    /// Guards `inner` with `breaker`, classifying results with `classifier`.
    pub fn new(inner: S, breaker: Arc<CircuitBreaker>, classifier: C) -> Self {
        Self {
            inner,
            breaker,
            classifier,
            permit: None,
        }
    }

    /// The breaker guarding this service.
    pub fn breaker(&self) -> &Arc<CircuitBreaker> {
        &self.breaker
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service (a permit taken by `poll_ready` is released, counting nothing).
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, C: Clone> Clone for CircuitBreakerService<S, C> {
    fn clone(&self) -> Self {
        Self::new(
            self.inner.clone(),
            Arc::clone(&self.breaker),
            self.classifier.clone(),
        )
    }
}

impl<S, C, Req> Service<Req> for CircuitBreakerService<S, C>
where
    S: Service<Req>,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = Error<S::Error>;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.permit.is_none() {
            match self.breaker.acquire_owned() {
                Ok(permit) => self.permit = Some(permit),
                Err(rejected) => return Poll::Ready(Err(Error::Rejected(rejected))),
            }
        }
        match ready!(self.inner.poll_ready(cx)) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(e) => {
                if let Some(permit) = self.permit.take() {
                    settle::<S::Response, _, _>(permit, &self.classifier, Err(&e));
                }
                Poll::Ready(Err(Error::Inner(e)))
            }
        }
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let permit = match self.permit.take() {
            Some(permit) => permit,
            None => match self.breaker.acquire_owned() {
                Ok(permit) => permit,
                Err(rejected) => {
                    return ResponseFuture {
                        kind: Kind::Rejected {
                            rejected: Some(rejected),
                        },
                    };
                }
            },
        };
        ResponseFuture {
            kind: Kind::Called {
                future: self.inner.call(request),
                permit: Some(permit),
                classifier: self.classifier.clone(),
            },
        }
    }
}

/// Records `result` on `permit`, then applies a requested open period: after the outcome,
/// which may trip the breaker on its own, as `flexiai-client` does for `Retry-After`.
fn settle<Res, E, C: Classify<Res, E>>(
    permit: OwnedPermit,
    classifier: &C,
    result: Result<&Res, &E>,
) {
    let verdict = classifier.classify(result);
    match verdict.open_for {
        Some(period) => {
            let breaker = Arc::clone(permit.breaker());
            permit.record_class(verdict.class);
            breaker.open_for(period);
        }
        None => permit.record_class(verdict.class),
    }
}

pin_project! {
    /// The response future of a [`CircuitBreakerService`]: the inner future, and the permit
    /// whose outcome it records when it completes.
    pub struct ResponseFuture<F, C> {
        #[pin]
        kind: Kind<F, C>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, C> {
        Called {
            #[pin]
            future: F,
            permit: Option<OwnedPermit>,
            classifier: C,
        },
        Rejected {
            rejected: Option<Rejected>,
        },
    }
}

impl<F, C> std::fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, C, Res, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<Res, E>>,
    C: Classify<Res, E>,
{
    type Output = Result<Res, Error<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Called {
                future,
                permit,
                classifier,
            } => {
                let result = ready!(future.poll(cx));
                if let Some(permit) = permit.take() {
                    settle(permit, &*classifier, result.as_ref());
                }
                Poll::Ready(result.map_err(Error::Inner))
            }
            KindProj::Rejected { rejected } => match rejected.take() {
                Some(r) => Poll::Ready(Err(Error::Rejected(r))),
                // Polled after completion: the contract allows anything but a panic here.
                None => Poll::Pending,
            },
        }
    }
}
