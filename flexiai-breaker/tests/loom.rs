//! loom models of the breaker's state word (issue 13 §2): every interleaving, within the
//! preemption bound (`LOOM_MAX_PREEMPTIONS`, set by `cargo xtask loom`), of admission,
//! transitions, probe slots, credits granted and given back, observer add/remove and
//! snapshot/restore/apply_remote.
//!
//! Built with `--cfg loom`, the breaker's atomics and its observer lock come from loom (see
//! `src/sync.rs`, which lists what is not modelled: the observer list itself, behind
//! arc-swap, is swapped atomically outside loom's view, so the observer model checks the
//! `has_observers` flag logic around it). Run with `cargo xtask loom`.
#![cfg(loom)]
#![allow(clippy::unwrap_used, clippy::panic)] // Test code: a failed unwrap is a failed test.

use std::sync::Arc;
use std::time::Duration;

use flexiai_breaker::{
    BreakerConfig, BreakerObserver, BreakerSnapshot, CircuitBreaker, CircuitState, ManualClock,
    OutcomeEvent, ProbeMode, Transition,
};
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

const RECOVERY: Duration = Duration::from_secs(10);

fn breaker(max_calls: u32, mode: ProbeMode) -> (Arc<CircuitBreaker>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    let b = CircuitBreaker::builder("loom")
        .config(
            BreakerConfig::builder()
                .failure_threshold(1)
                .half_open_max_calls(max_calls)
                .success_threshold(1)
                .recovery_timeout_ms(10_000)
                .jitter_ratio(0.0)
                .build()
                .unwrap(),
        )
        .clock(clock.clone())
        .probe_mode(mode)
        .build()
        .unwrap();
    (Arc::new(b), clock)
}

/// Opened, with its open period over: the next admission (or poll) makes it half-open.
fn due(max_calls: u32, mode: ProbeMode) -> Arc<CircuitBreaker> {
    let (b, clock) = breaker(max_calls, mode);
    b.try_acquire().unwrap().failure();
    clock.advance(RECOVERY);
    b
}

/// Admits a call and, if it is a probe, holds it while checking that no more than `max`
/// probes are in flight; then drops it (giving its slot or credit back).
fn probe_once(b: &CircuitBreaker, in_flight: &AtomicUsize, max: usize) -> bool {
    let Ok(permit) = b.try_acquire() else {
        return false;
    };
    if !permit.is_probe() {
        return false;
    }
    let n = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    assert!(n <= max, "{n} probes in flight, at most {max} allowed");
    in_flight.fetch_sub(1, Ordering::SeqCst);
    drop(permit);
    true
}

/// Two callers reach an open breaker at its deadline: exactly one open -> half-open
/// transition, and never more probes at once than the local slots.
#[test]
fn callers_racing_the_half_open_transition_share_its_slots() {
    loom::model(|| {
        let b = due(1, ProbeMode::Local);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (b, in_flight) = (Arc::clone(&b), Arc::clone(&in_flight));
                thread::spawn(move || probe_once(&b, &in_flight, 1))
            })
            .collect();
        let admitted = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|a| *a)
            .count();
        assert!(
            admitted >= 1,
            "the first caller at the deadline gets the probe"
        );
        assert_eq!(b.version(), 2, "one transition, made once");
        assert_eq!(b.poll(), CircuitState::HalfOpen);
        assert_eq!(b.metrics().probe_slots, 1, "every slot came back");
    });
}

/// Issue 12 defect 8a as a model: a switch to granted mode racing the transition that
/// would take the first local slot. Whatever the order, once both are done the breaker is
/// half-open in granted mode with no credit, and no caller that comes after gets in.
#[test]
fn a_probe_mode_switch_racing_the_half_open_transition_leaves_no_credit() {
    loom::model(|| {
        let b = due(1, ProbeMode::Local);
        let caller = {
            let b = Arc::clone(&b);
            thread::spawn(move || b.try_acquire().map(|p| p.is_probe()).unwrap_or(false))
        };
        let switch = {
            let b = Arc::clone(&b);
            thread::spawn(move || b.set_probe_mode(ProbeMode::Granted))
        };
        caller.join().unwrap();
        switch.join().unwrap();
        assert_eq!(b.poll(), CircuitState::HalfOpen);
        assert_eq!(b.version(), 2);
        assert_eq!(b.probe_credits(), 0);
        assert!(
            b.try_acquire().is_err(),
            "granted mode with no credit admits nobody"
        );
    });
}

/// Credits granted, taken, given back (a dropped permit) and consumed (a success) by
/// different threads: never more probes at once than granted, and a credit is never lost or
/// duplicated.
#[test]
fn granted_credits_are_taken_given_back_and_consumed_exactly_once() {
    loom::model(|| {
        let b = due(1, ProbeMode::Granted);
        assert_eq!(b.poll(), CircuitState::HalfOpen);
        let v = b.version();
        let in_flight = Arc::new(AtomicUsize::new(0));
        let granter = {
            let b = Arc::clone(&b);
            thread::spawn(move || b.grant_probes_at(v, 1))
        };
        let dropper = {
            let (b, in_flight) = (Arc::clone(&b), Arc::clone(&in_flight));
            thread::spawn(move || probe_once(&b, &in_flight, 1))
        };
        let closer = {
            let b = Arc::clone(&b);
            thread::spawn(move || match b.try_acquire() {
                Ok(p) => {
                    p.success();
                    true
                }
                Err(_) => false,
            })
        };
        granter.join().unwrap();
        dropper.join().unwrap();
        let closed = closer.join().unwrap();
        if closed {
            assert_eq!((b.state(), b.version()), (CircuitState::Closed, v + 1));
        } else {
            assert_eq!(b.state(), CircuitState::HalfOpen);
            assert_eq!(b.probe_credits(), 1, "the one credit is still there");
        }
    });
}

#[derive(Default)]
struct Counting(std::sync::atomic::AtomicUsize);

impl BreakerObserver for Counting {
    fn on_transition(&self, _: &Transition) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    fn on_outcome(&self, _: &OutcomeEvent) {}
}

/// Issue 12 defect 8b as a model: removing one observer while another is added must not
/// leave the `has_observers` flag false with an observer attached (before the fix, the
/// remove could store `false` computed from the list before the add).
#[test]
fn removing_an_observer_while_another_is_added_never_silences_the_new_one() {
    loom::model(|| {
        let (b, _clock) = breaker(1, ProbeMode::Local);
        let old: Arc<dyn BreakerObserver> = Arc::new(Counting::default());
        b.add_observer(Arc::clone(&old));
        let new = Arc::new(Counting::default());
        let remover = {
            let (b, old) = (Arc::clone(&b), Arc::clone(&old));
            thread::spawn(move || assert!(b.remove_observer(&old)))
        };
        let adder = {
            let (b, new) = (Arc::clone(&b), Arc::clone(&new));
            thread::spawn(move || b.add_observer(new))
        };
        remover.join().unwrap();
        adder.join().unwrap();
        b.force_open();
        assert_eq!(
            new.0.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "the observer attached last was not told of the transition"
        );
    });
}

/// A snapshot taken while a failure opens the breaker is one of the two states, whole: never
/// the new state with the old version or the other way round.
#[test]
fn a_snapshot_racing_a_transition_is_one_consistent_state() {
    loom::model(|| {
        let (b, _clock) = breaker(1, ProbeMode::Local);
        let failer = {
            let b = Arc::clone(&b);
            thread::spawn(move || b.try_acquire().unwrap().failure())
        };
        let snap = b.snapshot();
        failer.join().unwrap();
        match (snap.state, snap.version) {
            (CircuitState::Closed, 0) => assert_eq!(snap.open_remaining_ms, None),
            (CircuitState::Open, 1) => assert_eq!(snap.open_remaining_ms, Some(10_000)),
            other => panic!("torn snapshot: {other:?}"),
        }
        assert_eq!((b.state(), b.version()), (CircuitState::Open, 1));
    });
}

/// A newer remote snapshot applied while a local call fails: whatever the order, the fleet's
/// newer state wins; a call admitted under the old version counts nothing after it, and only
/// a call admitted after it (under version 5) can open it again. A restore racing the same failure leaves either the restored state, or the
/// restored state's successor made by the failure.
#[test]
fn apply_remote_and_restore_race_a_local_transition() {
    loom::model(|| {
        let (b, _clock) = breaker(1, ProbeMode::Local);
        let failer = {
            let b = Arc::clone(&b);
            thread::spawn(move || {
                let permit = b.try_acquire().unwrap();
                let admitted_at = permit.version();
                permit.failure();
                admitted_at
            })
        };
        let applied = b.apply_remote(&BreakerSnapshot::new(CircuitState::Closed, 5));
        let admitted_at = failer.join().unwrap();
        assert!(applied, "version 5 is newer than anything local");
        let end = (b.state(), b.version());
        match admitted_at {
            0 => assert_eq!(
                end,
                (CircuitState::Closed, 5),
                "a v0 failure counted after v5"
            ),
            5 => assert_eq!(end, (CircuitState::Open, 6)),
            v => panic!("admitted under version {v}"),
        }
    });
    loom::model(|| {
        let (b, _clock) = breaker(1, ProbeMode::Local);
        let failer = {
            let b = Arc::clone(&b);
            thread::spawn(move || {
                if let Ok(p) = b.try_acquire() {
                    p.failure();
                }
            })
        };
        b.restore(&BreakerSnapshot::new(CircuitState::HalfOpen, 3));
        failer.join().unwrap();
        let end = (b.state(), b.version());
        assert!(
            end == (CircuitState::HalfOpen, 3) || end == (CircuitState::Open, 4),
            "{end:?}"
        );
    });
}

/// A probe settling while another probe's failure ends its period: its count moves (under
/// `W`) to the ended periods as it is decremented, and the decrement is never lost (it was:
/// a settlement that missed both places mid-move returned once `W` had cleared, leaving the
/// ended period one call in flight for good, and a degraded lease holder holding its lease
/// for good). At the end nothing of the period is in flight.
#[test]
fn a_probe_settling_across_its_periods_end_is_counted_out_once() {
    loom::model(|| {
        let b = due(2, ProbeMode::Local);
        assert_eq!(b.poll(), CircuitState::HalfOpen);
        let v = b.version();
        let running = b.acquire_owned().unwrap();
        let ender = {
            let b = Arc::clone(&b);
            thread::spawn(move || {
                if let Ok(p) = b.try_acquire() {
                    p.failure();
                }
            })
        };
        let settler = thread::spawn(move || running.success());
        ender.join().unwrap();
        settler.join().unwrap();
        assert_eq!(b.probes_in_flight_at(v), 0, "a settled probe still counted");
    });
}
