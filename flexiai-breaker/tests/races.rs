//! The races of issue 12 defect 8, each forced into one deterministic interleaving, and the
//! rule that reads have no side effects.
//!
//! The interleavings are forced through the clock: the breaker reads it between loading its
//! state word and acting on it, so a clock that runs a hook on a chosen read lets the test
//! slip another operation in exactly there.

#![allow(clippy::unwrap_used, clippy::panic)] // Test code: a failed unwrap is a failed test.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Recorder, SEC, config};
use flexiai_breaker::{BreakerConfig, CircuitBreaker, CircuitState, Clock, ManualClock, ProbeMode};

type Hook = Box<dyn FnOnce() + Send>;

/// A manual clock that runs a hook (once) on the `n`-th read after it is armed.
#[derive(Default)]
struct HookClock {
    inner: ManualClock,
    hook: Mutex<Option<(usize, Hook)>>,
}

impl std::fmt::Debug for HookClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookClock").finish_non_exhaustive()
    }
}

impl HookClock {
    fn arm(&self, nth_read: usize, hook: impl FnOnce() + Send + 'static) {
        *self.hook.lock().unwrap() = Some((nth_read, Box::new(hook)));
    }
}

impl Clock for HookClock {
    fn now(&self) -> Duration {
        let due = {
            let mut slot = self.hook.lock().unwrap();
            match slot.as_mut() {
                Some((n, _)) if *n > 1 => {
                    *n -= 1;
                    None
                }
                Some(_) => slot.take().map(|(_, h)| h),
                None => None,
            }
        };
        if let Some(hook) = due {
            hook();
        }
        self.inner.now()
    }
}

fn hooked(config: BreakerConfig, mode: ProbeMode) -> (Arc<CircuitBreaker>, Arc<HookClock>) {
    let clock = Arc::new(HookClock::default());
    let breaker = CircuitBreaker::builder("race")
        .config(config)
        .clock(clock.clone())
        .probe_mode(mode)
        .build()
        .unwrap();
    (Arc::new(breaker), clock)
}

/// Defect 8a. The call that finds the open period over decides whether it may take the first
/// probe slot of the half-open period it enters. If the probe mode switches to `Granted`
/// between its read of the state word and the transition, it must not get a (local) probe:
/// in granted mode only a fleet credit admits a trial call. Before the fix the decision came
/// from the stale word and this call was admitted with no credit granted.
#[test]
fn a_probe_mode_switch_before_the_half_open_transition_admits_no_probe_without_a_credit() {
    let (b, clock) = hooked(config(1, 10), ProbeMode::Local);
    b.try_acquire().unwrap().failure();
    assert_eq!(b.state(), CircuitState::Open);
    clock.inner.advance(10 * SEC);
    // try_acquire reads the clock once (the deadline check) after loading the word and
    // before it starts the transition: switch the mode right there.
    let target = Arc::clone(&b);
    clock.arm(1, move || target.set_probe_mode(ProbeMode::Granted));
    let admitted = b.try_acquire();
    assert_eq!(b.probe_mode(), ProbeMode::Granted);
    assert_eq!(b.poll(), CircuitState::HalfOpen);
    assert!(
        admitted.is_err(),
        "admitted a trial call in granted mode with no credit: {admitted:?}"
    );
    assert_eq!(b.probe_credits(), 0);
    // With a credit, exactly one call gets in.
    assert_eq!(b.grant_probes(1), 1);
    let probe = b.try_acquire().unwrap();
    assert!(probe.is_probe());
    assert!(b.try_acquire().is_err());
    drop(probe);
}

/// The same interleaving the other way round (granted, then local): the call is ordered
/// before the switch, finds no credit, and the half-open period the switch filled with local
/// slots then admits callers as usual.
#[test]
fn a_switch_to_local_mode_before_the_half_open_transition_keeps_the_local_budget() {
    let cfg = flexiai_breaker::BreakerConfigBuilder::from(config(1, 10))
        .half_open_max_calls(2)
        .build()
        .unwrap();
    let (b, clock) = hooked(cfg, ProbeMode::Granted);
    b.try_acquire().unwrap().failure();
    clock.inner.advance(10 * SEC);
    let target = Arc::clone(&b);
    clock.arm(1, move || target.set_probe_mode(ProbeMode::Local));
    let first = b.try_acquire().unwrap();
    assert!(first.is_probe());
    let second = b.try_acquire().unwrap();
    assert!(second.is_probe());
    assert!(b.try_acquire().is_err(), "two local slots, two probes");
    drop((first, second));
}

/// Defect 8c. `state()`, `metrics()` and `Debug` of an open breaker whose time is up report
/// what a call would find (half-open) but make no transition: no version bump, no observer
/// call. The transition happens on the next admission or on `poll()`.
#[test]
fn reads_report_a_due_half_open_without_making_the_transition() {
    let clock = Arc::new(ManualClock::new());
    let rec = Arc::new(Recorder::default());
    let b = CircuitBreaker::builder("reads")
        .config(
            flexiai_breaker::BreakerConfigBuilder::from(config(1, 10))
                .half_open_max_calls(2)
                .build()
                .unwrap(),
        )
        .clock(clock.clone())
        .observer(rec.clone())
        .build()
        .unwrap();
    b.try_acquire().unwrap().failure();
    assert_eq!(rec.transitions().len(), 1);
    clock.advance(10 * SEC);

    assert_eq!(b.state(), CircuitState::HalfOpen);
    let m = b.metrics();
    assert_eq!(m.state, CircuitState::HalfOpen);
    assert_eq!(m.version, 1, "a read does not bump the version");
    assert_eq!(m.open_remaining, None);
    assert_eq!(m.probe_slots, 2, "the slots a call would find");
    let debug = format!("{b:?}");
    assert!(debug.contains("HalfOpen"), "{debug}");
    assert_eq!(b.version(), 1);
    assert_eq!(
        rec.transitions().len(),
        1,
        "reads told observers of a transition: {:?}",
        rec.transitions()
    );

    // poll() is the explicit advance.
    assert_eq!(b.poll(), CircuitState::HalfOpen);
    assert_eq!(b.version(), 2);
    let t = rec.transitions();
    assert_eq!(t.len(), 2);
    assert_eq!(
        (t[1].from, t[1].to),
        (CircuitState::Open, CircuitState::HalfOpen)
    );
}

/// A read of a due half-open in granted mode reports no slots (credits are the coordinator's),
/// and a due read never changes what admission then does.
#[test]
fn a_due_read_in_granted_mode_reports_no_slots_and_admission_still_transitions() {
    let clock = Arc::new(ManualClock::new());
    let rec = Arc::new(Recorder::default());
    let b = CircuitBreaker::builder("reads")
        .config(config(1, 10))
        .clock(clock.clone())
        .observer(rec.clone())
        .probe_mode(ProbeMode::Granted)
        .build()
        .unwrap();
    b.try_acquire().unwrap().failure();
    clock.advance(10 * SEC);
    let m = b.metrics();
    assert_eq!(
        (m.state, m.version, m.probe_slots),
        (CircuitState::HalfOpen, 1, 0)
    );
    assert_eq!(rec.transitions().len(), 1);
    // Admission makes the transition (and, with no credit, rejects).
    assert!(b.try_acquire().is_err());
    assert_eq!(b.version(), 2);
    assert_eq!(rec.transitions().len(), 2);
}
