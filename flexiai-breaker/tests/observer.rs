//! A slow observer behind a `QueuedObserver` cannot stall callers, and still sees the latest
//! transition.

#![allow(clippy::unwrap_used, clippy::panic)] // Test code: a failed unwrap is a failed test.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Recorder;
use flexiai_breaker::{
    BreakerConfig, BreakerObserver, CircuitBreaker, CircuitState, OutcomeEvent, QueuedObserver,
    Transition,
};

/// Sleeps on every event, as a observer doing network I/O inline would.
#[derive(Default)]
struct Sleepy {
    transitions: Mutex<Vec<Transition>>,
    outcomes: AtomicU64,
}

impl BreakerObserver for Sleepy {
    fn on_transition(&self, t: &Transition) {
        std::thread::sleep(Duration::from_millis(20));
        self.transitions.lock().unwrap().push(*t);
    }
    fn on_outcome(&self, _: &OutcomeEvent) {
        std::thread::sleep(Duration::from_millis(20));
        self.outcomes.fetch_add(1, Ordering::Relaxed);
    }
}

fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

#[test]
fn a_sleeping_observer_does_not_stall_callers_and_gets_the_latest_transition() {
    let sleepy = Arc::new(Sleepy::default());
    let queued = Arc::new(QueuedObserver::new(sleepy.clone(), 8).unwrap());
    let breaker = CircuitBreaker::builder("slow")
        .config(BreakerConfig {
            failure_threshold: 1,
            ..BreakerConfig::default()
        })
        .observer(queued.clone())
        .build()
        .unwrap();

    let started = Instant::now();
    for i in 0..10_000u32 {
        if let Ok(p) = breaker.try_acquire() {
            p.success();
        }
        if i % 1000 == 0 {
            // 10 force_open + reset pairs = 20 transitions, far more than the queue holds.
            breaker.force_open();
            breaker.reset();
        }
    }
    breaker.force_open();
    let took = started.elapsed();
    // Inline, this would take 10 000 x 20 ms = 200 s. Allow a lot of slack for a busy machine.
    assert!(
        took < Duration::from_secs(2),
        "callers were stalled: {took:?}"
    );

    let last_version = breaker.version();
    assert!(
        wait_for(|| sleepy
            .transitions
            .lock()
            .unwrap()
            .last()
            .is_some_and(|t| t.version == last_version)),
        "the latest transition was not delivered"
    );
    let delivered = sleepy.transitions.lock().unwrap().clone();
    assert_eq!(delivered.last().unwrap().to, CircuitState::ForcedOpen);
    // Delivered transitions are in version order, never an older one after a newer one.
    assert!(delivered.windows(2).all(|w| w[0].version < w[1].version));
    let stats = queued.stats();
    assert!(stats.dropped_outcomes > 9_000, "{stats:?}");
    assert_eq!(
        delivered.len() as u64 + stats.superseded_transitions,
        last_version,
        "every transition is either delivered or counted as superseded: {stats:?}"
    );
}

#[test]
fn a_queued_observer_delivers_everything_when_not_overloaded() {
    let rec = Arc::new(Recorder::default());
    let queued = Arc::new(QueuedObserver::new(rec.clone(), 1024).unwrap());
    let breaker = CircuitBreaker::new("calm", BreakerConfig::default()).unwrap();
    breaker.add_observer(queued.clone());
    for _ in 0..5 {
        breaker.try_acquire().unwrap().failure();
    }
    assert_eq!(breaker.state(), CircuitState::Open);
    assert!(wait_for(
        || rec.outcomes().len() == 5 && rec.transitions().len() == 1
    ));
    assert_eq!(queued.stats().dropped_outcomes, 0);
    assert_eq!(queued.stats().delivered, 6);
    // Dropping the breaker and the adapter stops the thread after draining.
    drop(breaker);
    drop(queued);
}
