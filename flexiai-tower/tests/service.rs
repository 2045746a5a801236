//! CircuitBreakerLayer over real tower services: admission in `poll_ready`, outcomes from
//! the classifier, `Retry-After`, probe slots, and a breaker synced through a fleet.

#![allow(clippy::unwrap_used, clippy::panic)] // Test code: a failed unwrap is a failed test.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use flexiai_backend::MemoryBackend;
use flexiai_breaker::{BreakerConfig, CircuitBreaker, CircuitState, ErrorClass, ManualClock};
use flexiai_sync::scenarios::{eventually, worker};
use flexiai_tower::{CircuitBreakerLayer, Error, HttpClassifier, Verdict};
use tower::{Layer, Service, ServiceExt, service_fn};

fn breaker(threshold: u32, clock: Arc<ManualClock>) -> Arc<CircuitBreaker> {
    let config = BreakerConfig::builder()
        .failure_threshold(threshold)
        .recovery_timeout_ms(10_000)
        .build()
        .unwrap();
    Arc::new(
        CircuitBreaker::builder("upstream")
            .config(config)
            .clock(clock)
            .build()
            .unwrap(),
    )
}

/// Counts how often the breaker let anything reach it.
#[derive(Debug, Clone, Default)]
struct Counting {
    polls: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
    ready_error: bool,
}

impl Service<bool> for Counting {
    type Response = &'static str;
    type Error = std::io::Error;
    type Future = Ready<Result<&'static str, std::io::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), std::io::Error>> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        if self.ready_error {
            return Poll::Ready(Err(std::io::Error::other("pool closed")));
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, fail: bool) -> Self::Future {
        self.calls.fetch_add(1, Ordering::SeqCst);
        ready(if fail {
            Err(std::io::Error::other("upstream failed"))
        } else {
            Ok("ok")
        })
    }
}

#[tokio::test]
async fn an_open_breaker_fails_readiness_without_touching_the_inner_service() {
    let clock = Arc::new(ManualClock::new());
    let b = breaker(2, clock.clone());
    let inner = Counting::default();
    let mut svc = CircuitBreakerLayer::new(b.clone()).layer(inner.clone());

    assert_eq!(svc.ready().await.unwrap().call(false).await.unwrap(), "ok");
    for _ in 0..2 {
        let err = svc.ready().await.unwrap().call(true).await.unwrap_err();
        let Error::Inner(e) = err else {
            panic!("not inner: {err:?}")
        };
        assert_eq!(e.to_string(), "upstream failed");
    }
    assert_eq!(b.state(), CircuitState::Open);
    let m = b.metrics();
    assert_eq!((m.total_successes, m.total_failures), (1, 2));
    let (polls, calls) = (
        inner.polls.load(Ordering::SeqCst),
        inner.calls.load(Ordering::SeqCst),
    );
    assert_eq!((polls, calls), (3, 3));

    let err = svc.ready().await.unwrap_err();
    let rejected = *err.rejected().unwrap();
    assert_eq!(rejected.state, CircuitState::Open);
    assert_eq!(rejected.retry_after, Some(Duration::from_secs(10)));
    // The typed error's message is the rejection's; nothing reached the inner service.
    assert!(err.to_string().contains("state is open"), "{err}");
    assert_eq!(inner.polls.load(Ordering::SeqCst), polls);
    assert_eq!(inner.calls.load(Ordering::SeqCst), calls);
    assert_eq!(b.metrics().calls_rejected, 1);

    // `call` without readiness does not panic: the future fails with the rejection.
    let err = svc.call(false).await.unwrap_err();
    assert!(err.rejected().is_some());
    assert_eq!(inner.calls.load(Ordering::SeqCst), calls);
}

#[tokio::test]
async fn the_permit_taken_in_poll_ready_holds_the_probe_slot_until_the_call() {
    let clock = Arc::new(ManualClock::new());
    let b = breaker(1, clock.clone());
    let svc = CircuitBreakerLayer::new(b.clone()).layer(service_fn(|fail: bool| async move {
        if fail { Err("down") } else { Ok(()) }
    }));
    b.try_acquire().unwrap().failure();
    clock.advance(Duration::from_secs(10));
    assert_eq!(b.state(), CircuitState::HalfOpen);

    let mut first = svc.clone();
    let mut second = svc.clone();
    first.ready().await.unwrap();
    // The one probe slot is held by `first`'s readiness: a clone is refused.
    let err = second.ready().await.unwrap_err();
    assert_eq!(err.rejected().unwrap().state, CircuitState::HalfOpen);
    // Dropping the ready service gives the slot back.
    drop(first);
    let mut third = svc.clone();
    third.ready().await.unwrap();
    third.call(false).await.unwrap();
    assert_eq!(b.state(), CircuitState::Closed);
}

#[tokio::test]
async fn cancelled_calls_count_nothing_and_readiness_errors_are_classified() {
    let clock = Arc::new(ManualClock::new());
    let b = breaker(1, clock);
    let pending = service_fn(|(): ()| std::future::pending::<Result<(), Infallible>>());
    let mut svc = CircuitBreakerLayer::new(b.clone()).layer(pending);
    let future = svc.ready().await.unwrap().call(());
    drop(future);
    let m = b.metrics();
    assert_eq!(
        (m.calls_admitted, m.total_successes, m.total_failures),
        (1, 0, 0)
    );

    let broken = Counting {
        ready_error: true,
        ..Counting::default()
    };
    let mut svc = CircuitBreakerLayer::new(b.clone()).layer(broken.clone());
    let err = svc.ready().await.unwrap_err();
    assert_eq!(err.into_inner().unwrap().to_string(), "pool closed");
    assert_eq!(
        b.state(),
        CircuitState::Open,
        "a readiness error is a failure"
    );
    assert_eq!(broken.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_closure_classifier_decides_what_counts() {
    let clock = Arc::new(ManualClock::new());
    let b = breaker(1, clock);
    // "Not found" answers are fine; only the error counts.
    let classify = |r: Result<&u16, &&str>| match r {
        Ok(_) => ErrorClass::Success,
        Err(_) => ErrorClass::Ignore,
    };
    let mut svc = CircuitBreakerLayer::new(b.clone())
        .classifier(classify)
        .layer(service_fn(|code: u16| async move {
            if code == 0 {
                Err("transport")
            } else {
                Ok(code)
            }
        }));
    assert_eq!(svc.ready().await.unwrap().call(404).await.unwrap(), 404);
    assert!(svc.ready().await.unwrap().call(0).await.is_err());
    assert_eq!(
        b.state(),
        CircuitState::Closed,
        "ignored errors do not trip it"
    );
    let m = b.metrics();
    assert_eq!(
        (m.calls_admitted, m.total_successes, m.total_failures),
        (2, 1, 0)
    );
}

fn throttled(
    retry_after: String,
) -> impl Service<
    (),
    Response = http::Response<()>,
    Error = Infallible,
    Future = Ready<Result<http::Response<()>, Infallible>>,
> + Clone
+ std::fmt::Debug {
    service_fn(move |()| {
        ready(Ok(http::Response::builder()
            .status(429)
            .header("retry-after", retry_after.as_str())
            .body(())
            .unwrap()))
    })
}

#[tokio::test]
async fn retry_after_in_seconds_or_as_a_date_opens_the_breaker_for_that_long() {
    let clock = Arc::new(ManualClock::new());
    let b = breaker(100, clock.clone());
    let layer = CircuitBreakerLayer::new(b.clone()).classifier(HttpClassifier::new());

    let mut svc = layer.layer(throttled("30".into()));
    let response = svc.ready().await.unwrap().call(()).await.unwrap();
    assert_eq!(
        response.status(),
        429,
        "the response still reaches the caller"
    );
    let rejected = *svc.ready().await.unwrap_err().rejected().unwrap();
    assert_eq!(rejected.retry_after, Some(Duration::from_secs(30)));
    assert_eq!(b.metrics().total_failures, 1);

    b.reset();
    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
    let mut svc = layer.layer(throttled(date));
    svc.ready().await.unwrap().call(()).await.unwrap();
    let rejected = *svc.ready().await.unwrap_err().rejected().unwrap();
    let wait = rejected.retry_after.unwrap();
    // An HTTP-date has one-second resolution, and a moment passed since it was written.
    assert!(
        wait > Duration::from_secs(117) && wait <= Duration::from_secs(120),
        "{wait:?}"
    );
    clock.advance(wait);
    assert_eq!(b.state(), CircuitState::HalfOpen);
}

#[tokio::test]
async fn a_synced_breaker_works_unchanged_and_rejects_on_every_worker() {
    let backend = MemoryBackend::new();
    let config = BreakerConfig::builder()
        .failure_threshold(2)
        .build()
        .unwrap();
    let a = worker(Arc::new(backend.clone()), &["upstream"], &config).await;
    let b = worker(Arc::new(backend), &["upstream"], &config).await;
    let classify = |r: Result<&(), &&str>| {
        if r.is_ok() {
            Verdict::SUCCESS
        } else {
            Verdict::FAILURE
        }
    };
    let failing = service_fn(|()| async { Err::<(), _>("down") });
    let mut on_a = CircuitBreakerLayer::new(a.breaker("upstream").clone())
        .classifier(classify)
        .layer(failing);
    let inner_b = Counting::default();
    let mut on_b = CircuitBreakerLayer::new(b.breaker("upstream").clone()).layer(inner_b.clone());

    for _ in 0..2 {
        assert!(on_a.ready().await.unwrap().call(()).await.is_err());
    }
    assert_eq!(a.breaker("upstream").state(), CircuitState::Open);
    let b_breaker = b.breaker("upstream").clone();
    eventually("worker b's breaker opens", || {
        b_breaker.state() == CircuitState::Open
    })
    .await;
    let err = on_b.ready().await.unwrap_err();
    assert_eq!(err.rejected().unwrap().state, CircuitState::Open);
    assert_eq!(
        inner_b.polls.load(Ordering::SeqCst),
        0,
        "b's service was never touched"
    );
    a.manager.stop().await.unwrap();
    b.manager.stop().await.unwrap();
}

/// The layer and the service hand out the breaker and the inner service; the typed error
/// tells a rejection from an inner failure either way round.
#[tokio::test]
async fn accessors_return_the_breaker_and_the_inner_service() {
    let clock = Arc::new(ManualClock::new());
    let b = breaker(1, clock);
    let layer = CircuitBreakerLayer::new(b.clone());
    assert!(Arc::ptr_eq(layer.breaker(), &b));
    let inner = Counting::default();
    let mut svc = layer.layer(inner.clone());
    assert!(Arc::ptr_eq(svc.breaker(), &b));
    assert!(Arc::ptr_eq(&svc.get_ref().calls, &inner.calls));
    svc.get_mut().ready_error = true;

    let err = svc.ready().await.unwrap_err();
    assert!(err.rejected().is_none(), "{err:?}");
    assert_eq!(err.into_inner().unwrap().to_string(), "pool closed");

    svc.get_mut().ready_error = false;
    b.force_open();
    let err = svc.ready().await.unwrap_err();
    assert!(err.into_inner().is_none(), "a rejection has no inner error");
    let unwrapped = svc.into_inner();
    assert!(Arc::ptr_eq(&unwrapped.calls, &inner.calls));
    assert_eq!(inner.calls.load(Ordering::SeqCst), 0);
}
