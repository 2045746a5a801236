#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use flexiai_breaker::{
    BreakerConfig, BreakerObserver, CircuitBreaker, ManualClock, OutcomeEvent, Transition,
};

/// Remembers every event it is given.
#[derive(Default)]
pub struct Recorder {
    pub transitions: Mutex<Vec<Transition>>,
    pub outcomes: Mutex<Vec<OutcomeEvent>>,
}

impl Recorder {
    pub fn transitions(&self) -> Vec<Transition> {
        self.transitions.lock().unwrap().clone()
    }
    pub fn outcomes(&self) -> Vec<OutcomeEvent> {
        self.outcomes.lock().unwrap().clone()
    }
}

impl BreakerObserver for Recorder {
    fn on_transition(&self, t: &Transition) {
        self.transitions.lock().unwrap().push(*t);
    }
    fn on_outcome(&self, o: &OutcomeEvent) {
        self.outcomes.lock().unwrap().push(*o);
    }
}

pub const SEC: Duration = Duration::from_secs(1);

pub struct Rig {
    pub breaker: CircuitBreaker,
    pub clock: Arc<ManualClock>,
    pub rec: Arc<Recorder>,
}

pub fn rig(config: BreakerConfig) -> Rig {
    let clock = Arc::new(ManualClock::new());
    let rec = Arc::new(Recorder::default());
    let breaker = CircuitBreaker::builder("test-provider")
        .config(config)
        .clock(clock.clone())
        .observer(rec.clone())
        .build()
        .unwrap();
    Rig {
        breaker,
        clock,
        rec,
    }
}

pub fn config(failure_threshold: u32, recovery_secs: u64) -> BreakerConfig {
    BreakerConfig::builder()
        .failure_threshold(failure_threshold)
        .recovery_timeout_ms(recovery_secs * 1000)
        .build()
        .unwrap()
}

pub fn fail(b: &CircuitBreaker, n: usize) {
    for _ in 0..n {
        b.try_acquire().unwrap().failure();
    }
}

pub fn succeed(b: &CircuitBreaker, n: usize) {
    for _ in 0..n {
        b.try_acquire().unwrap().success();
    }
}
