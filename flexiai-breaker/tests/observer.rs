//! A slow observer behind a `QueuedObserver` cannot stall callers, and still sees the latest
//! transition.

#![allow(clippy::unwrap_used, clippy::panic)] // Test code: a failed unwrap is a failed test.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
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
        .config(
            BreakerConfig::builder()
                .failure_threshold(1)
                .build()
                .unwrap(),
        )
        .observer(queued.clone())
        .build()
        .unwrap();

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
    // Evidence that callers did not wait on the observer: they made 10 021 events, and by
    // the time they were done the observer (20 ms per event) had handled only a few; inline,
    // it would have handled every one of them before the loop could end.
    let handled =
        sleepy.outcomes.load(Ordering::Relaxed) + sleepy.transitions.lock().unwrap().len() as u64;
    assert!(
        handled < 5_000,
        "callers waited on the observer: it handled {handled}"
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
    // The latest transition can overtake older ones still queued (it went through the
    // overflow slot); those are counted as superseded only when the drainer reaches them.
    // Wait for the accounting to settle before checking it (issue 18).
    let accounted =
        || sleepy.transitions.lock().unwrap().len() as u64 + queued.stats().superseded_transitions;
    assert!(
        wait_for(|| accounted() == last_version),
        "every transition is either delivered or counted as superseded: {:?}, {} delivered",
        queued.stats(),
        sleepy.transitions.lock().unwrap().len()
    );
    let delivered = sleepy.transitions.lock().unwrap().clone();
    assert_eq!(delivered.last().unwrap().to, CircuitState::ForcedOpen);
    // Delivered transitions are in version order, never an older one after a newer one.
    assert!(delivered.windows(2).all(|w| w[0].version < w[1].version));
    let stats = queued.stats();
    assert!(stats.dropped_outcomes > 9_000, "{stats:?}");
    assert_eq!(accounted(), last_version, "{stats:?}");
}

/// Blocks in every `on_transition` until the test lets it go, telling the test which
/// version it holds.
struct Gated {
    delivered: Mutex<Vec<u64>>,
    entered: Mutex<Sender<u64>>,
    release: Mutex<Receiver<()>>,
}

impl BreakerObserver for Gated {
    fn on_transition(&self, t: &Transition) {
        self.delivered.lock().unwrap().push(t.version);
        let _ = self.entered.lock().unwrap().send(t.version);
        // Released by the test, or let go for good once the test drops the sender.
        let _ = self.release.lock().unwrap().recv();
    }
    fn on_outcome(&self, _: &OutcomeEvent) {}
}

/// Issue 18, the interleaving forced: the latest transition goes through the overflow slot,
/// is delivered before an older one still in the queue, and for a moment the older one is
/// neither delivered nor counted as superseded. It is counted once the drainer reaches it:
/// nothing is lost, a reader only has to wait for the accounting to settle.
#[test]
fn the_latest_transition_overtakes_a_queued_one_which_is_then_counted_as_superseded() {
    let (entered_tx, entered) = channel();
    let (release, release_rx) = channel();
    let gated = Arc::new(Gated {
        delivered: Mutex::new(Vec::new()),
        entered: Mutex::new(entered_tx),
        release: Mutex::new(release_rx),
    });
    let queued = Arc::new(QueuedObserver::new(gated.clone(), 1).unwrap());
    let breaker = CircuitBreaker::builder("overtake")
        .observer(queued.clone())
        .build()
        .unwrap();
    let wait = Duration::from_secs(10);

    breaker.force_open(); // v1: taken by the drainer, which blocks delivering it
    assert_eq!(entered.recv_timeout(wait).unwrap(), 1);
    breaker.reset(); // v2: fills the queue (capacity 1)
    breaker.force_open(); // v3: queue full, set aside in the overflow slot
    release.send(()).unwrap();
    // The drainer finishes v1 and delivers the set-aside v3 before reading v2 from the queue.
    assert_eq!(entered.recv_timeout(wait).unwrap(), 3);
    assert_eq!(*gated.delivered.lock().unwrap(), [1, 3]);
    assert_eq!(
        queued.stats().superseded_transitions,
        0,
        "v2 is still queued: the state the flaky test read its counters in"
    );
    release.send(()).unwrap();
    assert!(wait_for(|| queued.stats().superseded_transitions == 1));
    assert_eq!(
        *gated.delivered.lock().unwrap(),
        [1, 3],
        "v2 is never delivered after v3"
    );
    assert_eq!(queued.stats().delivered, 2);
    drop(release);
    drop(breaker);
    drop(queued);
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
