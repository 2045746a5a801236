//! The fleet hooks: cumulative outcome totals read from the breaker's own counters,
//! transition-only observers, and the fleet's failure-rate decision.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flexiai_breaker::{
    BreakerConfig, BreakerObserver, CircuitBreaker, CircuitState, FailurePolicy, ManualClock,
    OutcomeEvent, Transition,
};

#[derive(Default)]
struct Counting {
    transitions: AtomicUsize,
    outcomes: AtomicUsize,
    wants: bool,
}

impl BreakerObserver for Counting {
    fn on_transition(&self, _: &Transition) {
        self.transitions.fetch_add(1, Ordering::SeqCst);
    }
    fn on_outcome(&self, _: &OutcomeEvent) {
        self.outcomes.fetch_add(1, Ordering::SeqCst);
    }
    fn wants_outcomes(&self) -> bool {
        self.wants
    }
}

fn rate_breaker(clock: &Arc<ManualClock>) -> CircuitBreaker {
    CircuitBreaker::builder("p")
        .config(
            BreakerConfig::builder()
                .failure_policy(FailurePolicy::failure_rate(Duration::from_secs(10), 4, 0.5))
                .build()
                .unwrap(),
        )
        .clock(clock.clone())
        .build()
        .unwrap()
}

#[test]
fn outcome_totals_count_this_workers_closed_outcomes_exactly() {
    let clock = Arc::new(ManualClock::new());
    let b = CircuitBreaker::builder("p")
        .config(
            BreakerConfig::builder()
                .failure_threshold(3)
                .build()
                .unwrap(),
        )
        .clock(clock.clone())
        .build()
        .unwrap();
    let start = b.outcome_totals();
    assert_eq!((start.version, start.failures, start.successes), (0, 0, 0));
    for _ in 0..7 {
        b.try_acquire().unwrap().success();
    }
    b.try_acquire().unwrap().failure();
    // Successes on other threads land in their own stripes and are summed too.
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                for _ in 0..100 {
                    b.try_acquire().unwrap().success();
                }
            });
        }
    });
    let t = b.outcome_totals();
    assert_eq!(
        (t.version, t.state, t.failures, t.successes),
        (0, CircuitState::Closed, 1, 307)
    );
    // Absorbed remote outcomes are not this worker's.
    b.absorb_remote_outcomes(0, 50);
    assert_eq!(b.outcome_totals().successes, 307);
    assert_eq!(
        b.metrics().success_count,
        357,
        "still shown in the state's count"
    );
    // A permit settled after a transition counts nothing.
    let late = b.try_acquire().unwrap();
    b.force_open();
    late.failure();
    let t = b.outcome_totals();
    assert_eq!(
        (t.version, t.state, t.failures),
        (1, CircuitState::ForcedOpen, 1)
    );
}

#[test]
fn a_transition_only_observer_hears_no_outcomes() {
    let b = CircuitBreaker::new("p", BreakerConfig::default()).unwrap();
    let quiet = Arc::new(Counting::default());
    let loud = Arc::new(Counting {
        wants: true,
        ..Counting::default()
    });
    b.add_observer(quiet.clone());
    for _ in 0..5 {
        b.try_acquire().unwrap().success();
    }
    assert_eq!(quiet.outcomes.load(Ordering::SeqCst), 0);
    let loud_dyn: Arc<dyn BreakerObserver> = loud.clone();
    b.add_observer(Arc::clone(&loud_dyn));
    b.try_acquire().unwrap().success();
    assert_eq!(loud.outcomes.load(Ordering::SeqCst), 1);
    assert!(b.remove_observer(&loud_dyn));
    b.try_acquire().unwrap().success();
    assert_eq!(loud.outcomes.load(Ordering::SeqCst), 1);
    assert_eq!(quiet.outcomes.load(Ordering::SeqCst), 0);
    b.force_open();
    assert_eq!(
        quiet.transitions.load(Ordering::SeqCst),
        1,
        "transitions still reach it"
    );
    assert_eq!(
        b.outcome_totals().successes,
        7,
        "counted without any observer call"
    );
}

#[test]
fn the_fleet_decides_the_rate_trip_when_asked_to() {
    let clock = Arc::new(ManualClock::new());
    let b = rate_breaker(&clock);
    b.set_fleet_decides_rate(true);
    assert!(b.fleet_decides_rate());
    // Far past the local threshold (minimum 4 calls, 50%): the fleet decides, not this window.
    for _ in 0..10 {
        b.try_acquire().unwrap().failure();
    }
    assert_eq!(b.state(), CircuitState::Closed);
    assert_eq!(b.outcome_totals().failures, 10);
    // A decision made at an older version changes nothing.
    assert!(!b.trip_for_fleet(7));
    let observer = Arc::new(Counting::default());
    b.add_observer(observer.clone());
    assert!(b.trip_for_fleet(0));
    assert_eq!(b.state(), CircuitState::Open);
    assert_eq!(b.version(), 1);
    assert_eq!(observer.transitions.load(Ordering::SeqCst), 1);
    assert!(!b.trip_for_fleet(0), "only a closed breaker trips");

    // Given back (degraded), the local window decides again.
    let b = rate_breaker(&clock);
    b.set_fleet_decides_rate(true);
    b.set_fleet_decides_rate(false);
    for _ in 0..4 {
        b.try_acquire().unwrap().failure();
    }
    assert_eq!(b.state(), CircuitState::Open);
}
