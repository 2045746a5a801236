//! Owned permits (`CircuitBreaker::acquire_owned`): `'static`, movable into spawned tasks, and
//! settled exactly like borrowed permits.

#![allow(clippy::unwrap_used, clippy::panic)] // Test code: a failed unwrap is a failed test.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Recorder, SEC, config};
use flexiai_breaker::{
    BreakerConfig, CircuitBreaker, CircuitState, ErrorClass, ManualClock, OwnedPermit,
};

fn assert_send_static<T: Send + Sync + 'static>() {}

fn shared(config: BreakerConfig) -> (Arc<CircuitBreaker>, Arc<ManualClock>, Arc<Recorder>) {
    let clock = Arc::new(ManualClock::new());
    let rec = Arc::new(Recorder::default());
    let breaker = CircuitBreaker::builder("owned")
        .config(config)
        .clock(clock.clone())
        .observer(rec.clone())
        .build()
        .unwrap();
    (Arc::new(breaker), clock, rec)
}

#[test]
fn owned_permit_is_send_and_static() {
    assert_send_static::<OwnedPermit>();
}

#[tokio::test]
async fn a_permit_moves_into_a_spawned_task_and_its_outcome_counts() {
    let (b, _clock, _rec) = shared(config(2, 10));
    let permits: Vec<OwnedPermit> = (0..2).map(|_| b.acquire_owned().unwrap()).collect();
    assert_eq!(Arc::strong_count(&b), 3, "each permit holds the breaker");
    let tasks: Vec<_> = permits
        .into_iter()
        .map(|p| tokio::spawn(async move { p.failure() }))
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        b.state(),
        CircuitState::Open,
        "two failures from tasks trip it"
    );
    assert_eq!(
        Arc::strong_count(&b),
        1,
        "settled permits let go of the breaker"
    );
    let m = b.metrics();
    assert_eq!((m.calls_admitted, m.total_failures), (2, 2));
    let rejected = b.acquire_owned().unwrap_err();
    assert_eq!(rejected.state, CircuitState::Open);
    assert_eq!(rejected.retry_after, Some(10 * SEC));
}

#[test]
fn a_dropped_probe_gives_its_slot_back_and_a_settled_one_does_not_twice() {
    let (b, clock, _rec) = shared(config(1, 1));
    b.acquire_owned().unwrap().failure();
    clock.advance(SEC);
    let probe = b.acquire_owned().unwrap();
    assert!(probe.is_probe());
    assert_eq!(probe.state(), CircuitState::HalfOpen);
    assert!(b.acquire_owned().is_err(), "the only slot is taken");
    drop(probe);
    // The slot is back: the next caller gets it and closes the breaker.
    let probe = b.acquire_owned().unwrap();
    let version = probe.version();
    probe.success();
    assert_eq!(b.state(), CircuitState::Closed);
    assert_eq!(b.version(), version + 1);
}

#[test]
fn a_probe_failure_reopens_and_record_uses_the_classifier() {
    let (b, clock, rec) = shared(config(1, 1));
    b.acquire_owned()
        .unwrap()
        .record(&Err::<(), _>(std::io::Error::other("boom")));
    assert_eq!(b.state(), CircuitState::Open);
    clock.advance(SEC);
    b.acquire_owned().unwrap().record_class(ErrorClass::Failure);
    assert_eq!(b.state(), CircuitState::Open, "a failed probe reopens");
    clock.advance(SEC);
    b.acquire_owned()
        .unwrap()
        .record(&Ok::<_, std::io::Error>(()));
    assert_eq!(b.state(), CircuitState::Closed);
    let states: Vec<_> = rec.transitions().iter().map(|t| t.to).collect();
    assert_eq!(
        states,
        [
            CircuitState::Open,
            CircuitState::HalfOpen,
            CircuitState::Open,
            CircuitState::HalfOpen,
            CircuitState::Closed
        ]
    );
}

#[test]
fn slow_owned_successes_count_as_failures() {
    let (b, clock, _rec) = shared(
        BreakerConfig::builder()
            .failure_threshold(1)
            .slow_call_threshold_ms(Some(100))
            .build()
            .unwrap(),
    );
    let p = b.acquire_owned().unwrap();
    clock.advance(Duration::from_millis(150));
    assert_eq!(p.elapsed(), Some(Duration::from_millis(150)));
    p.success();
    assert_eq!(b.state(), CircuitState::Open);
}
