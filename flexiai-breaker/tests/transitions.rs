//! Every transition and control, driven by a manual clock.

#![allow(clippy::unwrap_used, clippy::panic)] // Test code: a failed unwrap is a failed test.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Recorder, SEC, config, fail, rig, succeed};
use flexiai_breaker::{
    BreakerConfig, BreakerError, BreakerObserver, BreakerSnapshot, CallError, CircuitBreaker,
    CircuitState, ErrorClass, FailurePolicy, ManualClock, Outcome, ProbeMode, Rejected,
    TransitionReason,
};
use flexiai_events::Timestamp;

use CircuitState::*;

#[test]
fn consecutive_failures_open_and_a_success_resets_the_run() {
    let r = rig(config(3, 10));
    let b = &r.breaker;
    fail(b, 2);
    succeed(b, 1);
    fail(b, 2);
    assert_eq!(b.state(), Closed);
    assert_eq!(b.metrics().failure_count, 2);
    fail(b, 1);
    assert_eq!(b.state(), Open);
    assert_eq!(b.version(), 1);
    let t = r.rec.transitions();
    assert_eq!(t.len(), 1);
    assert_eq!((t[0].from, t[0].to, t[0].version), (Closed, Open, 1));
    assert_eq!(t[0].reason, TransitionReason::FailureThreshold);
    assert_eq!(t[0].open_for, Some(10 * SEC));
}

#[test]
fn open_rejects_with_time_left_and_counts_rejections() {
    let r = rig(config(1, 10));
    let b = &r.breaker;
    fail(b, 1);
    r.clock.advance(4 * SEC);
    let rej = b.try_acquire().unwrap_err();
    assert_eq!(
        rej,
        Rejected {
            state: Open,
            retry_after: Some(6 * SEC)
        }
    );
    assert!(b.try_acquire().is_err());
    let m = b.metrics();
    assert_eq!((m.calls_admitted, m.calls_rejected), (1, 2));
    assert_eq!(m.open_remaining, Some(6 * SEC));
    assert_eq!(m.time_in_state, 4 * SEC);
}

#[test]
fn open_turns_half_open_by_itself_when_the_timeout_passes() {
    let r = rig(config(1, 10));
    let b = &r.breaker;
    fail(b, 1);
    r.clock.advance(10 * SEC - Duration::from_nanos(1));
    assert_eq!(b.state(), Open);
    r.clock.advance(Duration::from_nanos(1));
    // Reading the state reports what a call would find, without making the transition...
    assert_eq!(b.state(), HalfOpen);
    assert_eq!(b.version(), 1);
    // ...which poll() (or the next call) makes, with no call needed.
    assert_eq!(b.poll(), HalfOpen);
    assert_eq!(b.version(), 2);
    let t = r.rec.transitions();
    assert_eq!(t[1].reason, TransitionReason::RecoveryTimeoutElapsed);
    assert_eq!((t[1].from, t[1].to), (Open, HalfOpen));
}

#[test]
fn half_open_admits_at_most_max_calls_and_a_dropped_permit_gives_its_slot_back() {
    let r = rig(flexiai_breaker::BreakerConfigBuilder::from(config(1, 10))
        .half_open_max_calls(2)
        .success_threshold(3)
        .build()
        .unwrap());
    let b = &r.breaker;
    fail(b, 1);
    r.clock.advance(10 * SEC);
    let p1 = b.try_acquire().unwrap();
    let p2 = b.try_acquire().unwrap();
    assert!(p1.is_probe() && p2.is_probe());
    assert_eq!(
        b.try_acquire().unwrap_err(),
        Rejected {
            state: HalfOpen,
            retry_after: None
        }
    );
    drop(p2);
    let p3 = b.try_acquire().unwrap();
    assert!(b.try_acquire().is_err());
    // A success below the threshold returns its slot.
    p1.success();
    let p4 = b.try_acquire().unwrap();
    p3.success();
    assert_eq!(b.state(), HalfOpen);
    assert_eq!(b.metrics().success_count, 2);
    p4.success();
    assert_eq!(b.state(), Closed);
    let last = *r.rec.transitions().last().unwrap();
    assert_eq!(last.reason, TransitionReason::ProbeSucceeded);
    assert_eq!(last.version, 3);
}

#[test]
fn a_failed_trial_reopens_with_exponential_backoff_up_to_the_cap() {
    let r = rig(flexiai_breaker::BreakerConfigBuilder::from(config(1, 10))
        .backoff_multiplier(2.0)
        .max_recovery_timeout_ms(35_000)
        .build()
        .unwrap());
    let b = &r.breaker;
    fail(b, 1);
    let mut expected = vec![10, 20, 35, 35];
    expected.reverse();
    let mut open_for = 10 * SEC;
    assert_eq!(b.metrics().open_remaining, Some(open_for));
    expected.pop();
    while let Some(next) = expected.pop() {
        r.clock.advance(open_for);
        b.try_acquire().unwrap().failure();
        assert_eq!(b.state(), Open);
        let t = *r.rec.transitions().last().unwrap();
        assert_eq!(t.reason, TransitionReason::ProbeFailed);
        open_for = Duration::from_secs(next);
        assert_eq!(t.open_for, Some(open_for));
        assert_eq!(b.metrics().open_remaining, Some(open_for));
    }
    assert_eq!(b.metrics().consecutive_opens, 3);
    // Closing resets the backoff.
    r.clock.advance(open_for);
    b.try_acquire().unwrap().success();
    assert_eq!(b.state(), Closed);
    fail(b, 1);
    assert_eq!(b.metrics().open_remaining, Some(10 * SEC));
}

#[test]
fn jitter_shortens_open_periods_within_the_ratio() {
    let r = rig(flexiai_breaker::BreakerConfigBuilder::from(config(1, 10))
        .jitter_ratio(0.5)
        .build()
        .unwrap());
    let b = &r.breaker;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..20 {
        fail(b, 1);
        let d = r.rec.transitions().last().unwrap().open_for.unwrap();
        assert!(d > 5 * SEC && d <= 10 * SEC, "{d:?}");
        seen.insert(d);
        b.reset();
    }
    assert!(seen.len() > 10, "jitter should vary: {seen:?}");
}

#[test]
fn a_jitter_seed_makes_the_open_periods_replayable() {
    // Two breakers (distinct process-wide ids) with one seed draw the same periods; the
    // default seed (id and wall anchor) differs between them.
    let periods = |seed: Option<u64>| {
        let clock = Arc::new(ManualClock::new());
        let mut builder = CircuitBreaker::builder("openai")
            .config({
                let mut c = config(1, 10);
                c.jitter_ratio = 0.5;
                c
            })
            .clock(clock);
        if let Some(seed) = seed {
            builder = builder.jitter_seed(seed);
        }
        let b = builder.build().unwrap();
        (0..8)
            .map(|_| {
                fail(&b, 1);
                let d = b.metrics().open_remaining.unwrap();
                b.reset();
                d
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(periods(Some(7)), periods(Some(7)));
    assert_ne!(periods(Some(7)), periods(Some(8)));
    assert_ne!(periods(None), periods(None));
}

#[test]
fn manual_controls_are_transitions() {
    let r = rig(config(1, 10));
    let b = &r.breaker;
    assert_eq!(b.force_open(), 1);
    assert_eq!(
        b.try_acquire().unwrap_err(),
        Rejected {
            state: ForcedOpen,
            retry_after: None
        }
    );
    // Time does not close a forced-open breaker.
    r.clock.advance(1000 * SEC);
    assert_eq!(b.state(), ForcedOpen);
    assert_eq!(b.disable(), 2);
    // Disabled: everything admitted, nothing counted.
    fail(b, 10);
    assert_eq!(b.state(), Disabled);
    assert_eq!(b.metrics().failure_count, 0);
    assert!(r.rec.outcomes().iter().all(|o| !o.counted));
    assert_eq!(b.reset(), 3);
    assert_eq!(b.state(), Closed);
    // Resetting a closed breaker is still a transition (an operator's act is recorded).
    assert_eq!(b.reset(), 4);
    let reasons: Vec<_> = r.rec.transitions().iter().map(|t| t.reason).collect();
    assert_eq!(
        reasons,
        [
            TransitionReason::ManualForceOpen,
            TransitionReason::ManualDisable,
            TransitionReason::ManualReset,
            TransitionReason::ManualReset
        ]
    );
    assert!(reasons.iter().all(|r| r.is_manual()));
}

#[test]
fn reset_clears_counts_and_open_state() {
    let r = rig(config(3, 10));
    let b = &r.breaker;
    fail(b, 2);
    b.reset();
    fail(b, 2);
    assert_eq!(b.state(), Closed);
    fail(b, 1);
    assert_eq!(b.state(), Open);
    b.reset();
    assert!(b.try_acquire().is_ok());
}

#[test]
fn failure_rate_policy_needs_minimum_calls_and_expires_old_outcomes() {
    let r = rig(flexiai_breaker::BreakerConfigBuilder::from(config(1, 30))
        .failure_policy(FailurePolicy::FailureRate {
            window_ms: 10_000,
            buckets: 10,
            minimum_calls: 10,
            failure_rate_threshold: 0.5,
        })
        .build()
        .unwrap());
    let b = &r.breaker;
    // Nine failures in a row: below the minimum number of calls.
    fail(b, 9);
    assert_eq!(b.state(), Closed);
    let m = b.metrics();
    assert_eq!((m.failure_count, m.success_count), (9, 0));
    assert!((m.failure_rate - 1.0).abs() < 1e-9);
    // Let them expire, then 6 successes and 4 failures (40%): stays closed.
    r.clock.advance(11 * SEC);
    assert_eq!(b.metrics().failure_count, 0);
    succeed(b, 6);
    fail(b, 4);
    assert_eq!(b.state(), Closed);
    // A fifth failure makes it 5 of 11 (45%), a sixth 6 of 12 (50%): open.
    fail(b, 1);
    assert_eq!(b.state(), Closed);
    fail(b, 1);
    assert_eq!(b.state(), Open);
    assert_eq!(r.rec.transitions()[0].reason, TransitionReason::FailureRate);
}

#[test]
fn slow_successes_count_as_failures() {
    let r = rig(flexiai_breaker::BreakerConfigBuilder::from(config(2, 10))
        .slow_call_threshold_ms(Some(2000))
        .build()
        .unwrap());
    let b = &r.breaker;
    let p = b.try_acquire().unwrap();
    r.clock.advance(3 * SEC);
    assert_eq!(p.elapsed(), Some(3 * SEC));
    p.success();
    let p = b.try_acquire().unwrap();
    r.clock.advance(SEC);
    p.success();
    assert_eq!(
        b.metrics().failure_count,
        0,
        "a fast success resets the run"
    );
    for _ in 0..2 {
        let p = b.try_acquire().unwrap();
        r.clock.advance(5 * SEC);
        p.success();
    }
    assert_eq!(b.state(), Open);
    let outcomes = r.rec.outcomes();
    assert_eq!(outcomes.len(), 4);
    assert!(outcomes[0].slow && outcomes[0].outcome == Outcome::Failure);
    assert_eq!(outcomes[0].elapsed, Some(3 * SEC));
    assert!(!outcomes[1].slow && outcomes[1].outcome == Outcome::Success);
}

#[derive(Debug)]
struct BadRequest;
impl std::fmt::Display for BadRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("400 bad request")
    }
}
impl std::error::Error for BadRequest {}

#[tokio::test]
async fn call_uses_the_classifier_and_rejects_when_open() {
    let clock = Arc::new(ManualClock::new());
    let b = CircuitBreaker::builder("p")
        .config(config(2, 10))
        .clock(clock.clone())
        .classifier(|e: &(dyn std::error::Error + 'static)| !e.is::<BadRequest>())
        .build()
        .unwrap();
    for _ in 0..5 {
        let r = b.call(async { Err::<(), _>(BadRequest) }).await;
        assert!(matches!(r, Err(CallError::Inner(BadRequest))));
    }
    assert_eq!(
        b.state(),
        Closed,
        "caller errors are not the provider's fault"
    );
    for _ in 0..2 {
        let r = b
            .call(async { Err::<(), _>(std::io::Error::other("503")) })
            .await;
        assert!(matches!(r, Err(CallError::Inner(_))));
    }
    assert_eq!(b.state(), Open);
    let r = b.call(async { Ok::<_, std::io::Error>(1) }).await;
    match r {
        Err(CallError::Rejected(rej)) => assert_eq!(rej.retry_after, Some(10 * SEC)),
        other => panic!("expected a rejection, got {other:?}"),
    }
    // call_with decides per call, for any error type.
    clock.advance(10 * SEC);
    let r = b
        .call_with(|_: &u32| ErrorClass::Ignore, async { Err::<(), u32>(7) })
        .await;
    assert!(matches!(r, Err(CallError::Inner(7))));
    assert_eq!(b.state(), HalfOpen, "an ignored trial decides nothing");
    let r = b
        .call_with(|_: &u32| ErrorClass::Failure, async { Ok::<u8, u32>(1) })
        .await;
    assert!(matches!(r, Ok(1)));
    assert_eq!(b.state(), Closed);
}

#[tokio::test]
async fn a_cancelled_call_gives_its_probe_slot_back() {
    let r = rig(config(1, 10));
    let b = &r.breaker;
    fail(b, 1);
    r.clock.advance(10 * SEC);
    let never = std::future::pending::<Result<(), std::io::Error>>();
    let res = tokio::time::timeout(Duration::from_millis(10), b.call(never)).await;
    assert!(res.is_err(), "the call timed out and was dropped");
    assert_eq!(b.state(), HalfOpen);
    let p = b.try_acquire().expect("the slot came back");
    p.success();
    assert_eq!(b.state(), Closed);
}

#[test]
fn outcomes_of_permits_from_an_older_version_count_nothing() {
    let r = rig(flexiai_breaker::BreakerConfigBuilder::from(config(2, 10))
        .half_open_max_calls(2)
        .build()
        .unwrap());
    let b = &r.breaker;
    let stale = b.try_acquire().unwrap();
    fail(b, 2);
    assert_eq!(b.state(), Open);
    stale.success();
    assert!(!r.rec.outcomes().last().unwrap().counted);
    // A trial admitted in one half-open period cannot close the next one.
    r.clock.advance(10 * SEC);
    let old_probe = b.try_acquire().unwrap();
    b.try_acquire().unwrap().failure();
    assert_eq!(b.state(), Open);
    r.clock.advance(10 * SEC);
    assert_eq!(b.state(), HalfOpen);
    old_probe.success();
    assert_eq!(b.state(), HalfOpen);
    assert_eq!(
        b.metrics().probe_slots,
        2,
        "the old slot is not returned to the new period"
    );
}

#[test]
fn granted_mode_admits_only_against_credits() {
    let r = rig(flexiai_breaker::BreakerConfigBuilder::from(config(1, 10))
        .half_open_max_calls(3)
        .success_threshold(2)
        .build()
        .unwrap());
    let b = &r.breaker;
    b.set_probe_mode(ProbeMode::Granted);
    assert_eq!(b.grant_probes(5), 0, "credits exist only in half-open");
    fail(b, 1);
    r.clock.advance(10 * SEC);
    assert_eq!(
        b.try_acquire().unwrap_err(),
        Rejected {
            state: HalfOpen,
            retry_after: None
        }
    );
    assert_eq!(b.state(), HalfOpen);
    assert_eq!(b.probe_credits(), 0);
    assert_eq!(b.grant_probes(2), 2);
    let p1 = b.try_acquire().unwrap();
    let p2 = b.try_acquire().unwrap();
    assert!(b.try_acquire().is_err());
    drop(p2);
    assert_eq!(b.probe_credits(), 1, "a dropped permit returns its credit");
    p1.success();
    assert_eq!(b.probe_credits(), 1, "a settled trial consumes its credit");
    let p3 = b.try_acquire().unwrap();
    assert_eq!(b.probe_credits(), 0);
    p3.failure();
    assert_eq!(b.state(), Open);
    assert_eq!(b.probe_credits(), 0);
    r.clock.advance(10 * SEC);
    assert_eq!(b.poll(), HalfOpen);
    assert_eq!(
        b.probe_credits(),
        0,
        "credits are cleared on leaving half-open"
    );
    assert_eq!(
        b.grant_probes_at(b.version() - 1, 1),
        0,
        "not for an older period"
    );
    assert_eq!(b.grant_probes_at(b.version(), 1), 1);
    b.reset();
    assert_eq!(b.probe_credits(), 0);
}

#[test]
fn switching_probe_mode_in_half_open_resets_the_budget() {
    let r = rig(flexiai_breaker::BreakerConfigBuilder::from(config(1, 10))
        .half_open_max_calls(2)
        .build()
        .unwrap());
    let b = &r.breaker;
    fail(b, 1);
    r.clock.advance(10 * SEC);
    assert_eq!(b.state(), HalfOpen);
    let version = b.version();
    b.set_probe_mode(ProbeMode::Granted);
    assert_eq!(b.version(), version, "not a transition");
    assert!(b.try_acquire().is_err());
    b.set_probe_mode(ProbeMode::Local);
    assert_eq!(b.metrics().probe_slots, 2);
}

#[test]
fn snapshot_reports_counts_times_and_the_open_time_left() {
    let before = Timestamp::now();
    let r = rig(config(3, 10));
    let b = &r.breaker;
    succeed(b, 2);
    fail(b, 2);
    let s = b.snapshot();
    assert_eq!(
        (s.state, s.version, s.failure_count, s.success_count),
        (Closed, 0, 2, 2)
    );
    assert!(s.last_failure_time.unwrap() >= before);
    assert!(s.last_success_time.is_some());
    assert!(s.open_remaining_ms.is_none());
    fail(b, 1);
    r.clock.advance(3 * SEC);
    let s = b.snapshot();
    assert_eq!((s.state, s.version), (Open, 1));
    assert_eq!(s.open_remaining_ms, Some(7000));
    let changed = s.state_changed_at.unwrap();
    assert!(changed >= before);
}

#[test]
fn restore_replaces_everything_without_an_event() {
    let r = rig(config(3, 10));
    let b = &r.breaker;
    fail(b, 1);
    b.force_open();
    let events = r.rec.transitions().len();
    let mut s = BreakerSnapshot::new(Closed, 0);
    s.failure_count = 2;
    b.restore(&s);
    assert_eq!(
        (b.state(), b.version()),
        (Closed, 0),
        "restore may lower the version"
    );
    assert_eq!(r.rec.transitions().len(), events);
    // The restored run of two failures continues.
    fail(b, 1);
    assert_eq!(b.state(), Open);
    assert_eq!(b.version(), 1);
}

#[test]
fn apply_remote_only_moves_forward_and_carries_open_time_as_remaining() {
    let r = rig(config(3, 10));
    let b = &r.breaker;
    b.force_open();
    b.reset();
    assert_eq!(b.version(), 2);
    let events = r.rec.transitions().len();
    let mut s = BreakerSnapshot::new(Open, 2);
    s.open_remaining_ms = Some(4000);
    // Wall times from a host whose clock is an hour off must not matter.
    s.state_changed_at =
        Timestamp::from_unix_micros(Timestamp::now().unix_micros() - 3_600_000_000);
    assert!(!b.apply_remote(&s), "equal version is not newer");
    s.version = 7;
    assert!(b.apply_remote(&s));
    assert_eq!((b.state(), b.version()), (Open, 7));
    assert_eq!(b.metrics().open_remaining, Some(4 * SEC));
    assert_eq!(r.rec.transitions().len(), events, "no re-emit");
    assert_eq!(b.snapshot().state_changed_at, s.state_changed_at);
    assert!(!b.apply_remote(&BreakerSnapshot::new(Closed, 6)));
    r.clock.advance(4 * SEC);
    assert_eq!(b.poll(), HalfOpen);
    assert_eq!(b.version(), 8, "the local transition continues the history");
    // A Python writer: no version, no remaining time.
    assert!(!b.apply_remote(&BreakerSnapshot::new(Open, 0)));
    let mut py = BreakerSnapshot::new(Open, 9);
    py.open_remaining_ms = None;
    assert!(b.apply_remote(&py));
    assert_eq!(b.metrics().open_remaining, Some(10 * SEC));
}

#[test]
fn apply_remote_half_open_in_granted_mode_starts_without_credits() {
    let r = rig(config(1, 10));
    let b = &r.breaker;
    b.set_probe_mode(ProbeMode::Granted);
    assert!(b.apply_remote(&BreakerSnapshot::new(HalfOpen, 3)));
    assert!(b.try_acquire().is_err());
    b.grant_probes(1);
    b.try_acquire().unwrap().success();
    assert_eq!(b.state(), Closed);
    assert_eq!(b.version(), 4);
}

#[test]
fn absorbed_remote_failures_trip_the_breaker_as_a_local_transition() {
    let r = rig(config(5, 10));
    let b = &r.breaker;
    fail(b, 2);
    // Successes first, then failures: the batch resets the run, then adds 3.
    assert!(!b.absorb_remote_outcomes(3, 1));
    assert_eq!(b.metrics().failure_count, 3);
    assert!(
        r.rec.outcomes().len() == 2,
        "absorbed outcomes are not re-emitted"
    );
    assert!(b.absorb_remote_outcomes(2, 0));
    assert_eq!((b.state(), b.version()), (Open, 1));
    let t = r.rec.transitions();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].reason, TransitionReason::RemoteFailures);
    // Ignored when not closed.
    assert!(!b.absorb_remote_outcomes(100, 0));
    assert_eq!(b.version(), 1);
    assert!(!b.absorb_remote_outcomes(0, 0));
}

#[test]
fn absorbed_outcomes_enter_the_failure_rate_window() {
    let r = rig(flexiai_breaker::BreakerConfigBuilder::from(config(1, 10))
        .failure_policy(FailurePolicy::failure_rate(10 * SEC, 10, 0.5))
        .build()
        .unwrap());
    let b = &r.breaker;
    succeed(b, 5);
    assert!(!b.absorb_remote_outcomes(4, 1));
    assert_eq!(b.metrics().failure_count, 4);
    assert!(b.absorb_remote_outcomes(2, 0));
    assert_eq!(b.state(), Open);
}

#[test]
fn observers_can_be_added_and_removed_after_construction() {
    let b = CircuitBreaker::new("late", config(1, 10)).unwrap();
    let rec = Arc::new(Recorder::default());
    let as_dyn: Arc<dyn BreakerObserver> = rec.clone();
    b.add_observer(as_dyn.clone());
    fail(&b, 1);
    assert_eq!(rec.transitions().len(), 1);
    assert_eq!(rec.outcomes().len(), 1);
    assert_eq!(rec.transitions()[0].breaker, b.id());
    assert!(b.remove_observer(&as_dyn));
    assert!(!b.remove_observer(&as_dyn));
    b.reset();
    assert_eq!(rec.transitions().len(), 1);
}

#[test]
fn metrics_add_up() {
    let r = rig(config(3, 10));
    let b = &r.breaker;
    succeed(b, 4);
    fail(b, 1);
    drop(b.try_acquire().unwrap());
    let m = b.metrics();
    assert_eq!(m.state, Closed);
    assert_eq!(m.calls_admitted, 6);
    assert_eq!((m.total_successes, m.total_failures), (4, 1));
    assert_eq!((m.failure_count, m.success_count), (1, 4));
    assert!((m.failure_rate - 0.2).abs() < 1e-9);
    assert_eq!(m.probe_mode, ProbeMode::Local);
}

#[test]
fn construction_rejects_bad_names_and_configs() {
    assert!(matches!(
        CircuitBreaker::new("has space", BreakerConfig::default()),
        Err(BreakerError::InvalidName(_))
    ));
    let mut bad = BreakerConfig::default();
    bad.half_open_max_calls = 0;
    match CircuitBreaker::new("ok", bad) {
        Err(BreakerError::InvalidConfig { field, .. }) => assert_eq!(field, "half_open_max_calls"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn permit_record_uses_ok_err_and_ignore() {
    let r = rig(config(1, 10));
    let b = &r.breaker;
    b.try_acquire().unwrap().record(&Ok::<(), BadRequest>(()));
    b.try_acquire().unwrap().ignore();
    assert_eq!(b.state(), Closed);
    b.try_acquire().unwrap().record(&Err::<(), _>(BadRequest));
    assert_eq!(b.state(), Open, "the default classifier counts every error");
}

// ----- open_for (a provider's Retry-After) ---------------------------------------------------

#[test]
fn open_for_opens_a_closed_breaker_for_exactly_that_long() {
    let r = rig(config(5, 60));
    let b = &r.breaker;
    fail(b, 2);
    assert_eq!(b.open_for(10 * SEC), Some(1));
    assert_eq!((b.state(), b.version()), (Open, 1));
    assert_eq!(
        b.try_acquire().unwrap_err(),
        Rejected {
            state: Open,
            retry_after: Some(10 * SEC)
        }
    );
    let m = b.metrics();
    assert_eq!(m.open_remaining, Some(10 * SEC));
    assert_eq!(m.consecutive_opens, 0);
    let t = r.rec.transitions();
    assert_eq!(t.len(), 1);
    assert_eq!((t[0].from, t[0].to, t[0].version), (Closed, Open, 1));
    assert_eq!(t[0].reason, TransitionReason::RetryAfter);
    assert!(!t[0].reason.is_manual());
    assert_eq!(t[0].open_for, Some(10 * SEC));
    // Half-open after the period asked for, not after the 60 s recovery timeout.
    r.clock.advance(10 * SEC - Duration::from_nanos(1));
    assert_eq!(b.state(), Open);
    assert_eq!(
        b.try_acquire().unwrap_err().retry_after,
        Some(Duration::from_nanos(1))
    );
    r.clock.advance(Duration::from_nanos(1));
    let probe = b.try_acquire().unwrap();
    assert!(probe.is_probe());
    assert_eq!(b.state(), HalfOpen);
    probe.success();
    assert_eq!((b.state(), b.version()), (Closed, 3));
    let reasons: Vec<_> = r.rec.transitions().iter().map(|t| t.reason).collect();
    assert_eq!(
        reasons,
        [
            TransitionReason::RetryAfter,
            TransitionReason::RecoveryTimeoutElapsed,
            TransitionReason::ProbeSucceeded
        ]
    );
    // Counts were cleared by the transition: the two earlier failures are gone.
    fail(b, 4);
    assert_eq!(b.state(), Closed);
}

#[test]
fn open_for_travels_in_the_snapshot_and_another_breaker_applies_the_same_time_left() {
    let a = rig(config(5, 60));
    let b = rig(config(5, 60));
    // The two breakers' clocks have nothing in common.
    b.clock.advance(12_345 * SEC);
    assert_eq!(a.breaker.open_for(10 * SEC), Some(1));
    a.clock.advance(3 * SEC);
    let snap = a.breaker.snapshot();
    assert_eq!((snap.state, snap.version), (Open, 1));
    assert_eq!(snap.open_remaining_ms, Some(7000));
    assert!(b.breaker.apply_remote(&snap));
    assert_eq!((b.breaker.state(), b.breaker.version()), (Open, 1));
    assert_eq!(b.breaker.metrics().open_remaining, Some(7 * SEC));
    assert_eq!(
        b.breaker.try_acquire().unwrap_err().retry_after,
        Some(7 * SEC)
    );
    assert!(b.rec.transitions().is_empty(), "applied, not re-announced");
    b.clock.advance(7 * SEC - Duration::from_millis(1));
    assert_eq!(b.breaker.state(), Open);
    b.clock.advance(Duration::from_millis(1));
    assert_eq!(b.breaker.state(), HalfOpen);
    a.clock.advance(7 * SEC);
    assert_eq!(a.breaker.state(), HalfOpen);
    // An extension is a new version, so it travels too.
    let a2 = rig(config(5, 60));
    let b2 = rig(config(5, 60));
    a2.breaker.open_for(2 * SEC);
    assert!(b2.breaker.apply_remote(&a2.breaker.snapshot()));
    a2.breaker.open_for(30 * SEC);
    let snap = a2.breaker.snapshot();
    assert_eq!((snap.version, snap.open_remaining_ms), (2, Some(30_000)));
    assert!(b2.breaker.apply_remote(&snap));
    assert_eq!(b2.breaker.metrics().open_remaining, Some(30 * SEC));
}

#[test]
fn open_for_only_ever_extends_an_open_period() {
    let r = rig(config(1, 10));
    let b = &r.breaker;
    fail(b, 1);
    assert_eq!(b.version(), 1);
    // Shorter than the 10 s left: nothing happens, no event, no version.
    assert_eq!(b.open_for(5 * SEC), None);
    assert_eq!(b.open_for(10 * SEC), None, "ending at the same instant");
    assert_eq!(b.version(), 1);
    assert_eq!(r.rec.transitions().len(), 1);
    assert_eq!(b.metrics().open_remaining, Some(10 * SEC));
    // Later: the period is extended, as an open-to-open transition.
    r.clock.advance(2 * SEC);
    assert_eq!(b.open_for(20 * SEC), Some(2));
    assert_eq!(b.metrics().open_remaining, Some(20 * SEC));
    let t = *r.rec.transitions().last().unwrap();
    assert_eq!((t.from, t.to, t.version), (Open, Open, 2));
    assert_eq!(t.reason, TransitionReason::RetryAfter);
    assert_eq!(t.open_for, Some(20 * SEC));
    r.clock.advance(SEC);
    assert_eq!(b.open_for(19 * SEC), None);
    assert_eq!(b.open_for(19 * SEC + Duration::from_millis(1)), Some(3));
    assert_eq!(
        b.try_acquire().unwrap_err().retry_after,
        Some(19 * SEC + Duration::from_millis(1))
    );
    // An open period that is over (not yet polled) is simply replaced.
    r.clock.advance(60 * SEC);
    assert_eq!(b.open_for(SEC), Some(4));
    assert_eq!(b.metrics().open_remaining, Some(SEC));
    let t = *r.rec.transitions().last().unwrap();
    assert_eq!((t.from, t.to), (Open, Open));
}

#[test]
fn open_for_from_half_open_voids_the_trials_and_keeps_the_backoff_streak() {
    let r = rig(flexiai_breaker::BreakerConfigBuilder::from(config(1, 10))
        .backoff_multiplier(2.0)
        .max_recovery_timeout_ms(100_000)
        .build()
        .unwrap());
    let b = &r.breaker;
    fail(b, 1);
    r.clock.advance(10 * SEC);
    b.try_acquire().unwrap().failure();
    assert_eq!(b.metrics().open_remaining, Some(20 * SEC));
    assert_eq!(b.metrics().consecutive_opens, 1);
    r.clock.advance(20 * SEC);
    let trial = b.try_acquire().unwrap();
    assert_eq!(b.state(), HalfOpen);
    assert_eq!(b.open_for(5 * SEC), Some(b.version()));
    let t = *r.rec.transitions().last().unwrap();
    assert_eq!((t.from, t.to, t.open_for), (HalfOpen, Open, Some(5 * SEC)));
    // Neither a failed trial nor a recovery: the streak stays, and no backoff or jitter
    // applies to the period itself.
    assert_eq!(b.metrics().consecutive_opens, 1);
    assert_eq!(b.metrics().open_remaining, Some(5 * SEC));
    // The trial admitted before belongs to the old period and decides nothing.
    trial.success();
    assert!(!r.rec.outcomes().last().unwrap().counted);
    assert_eq!(b.state(), Open);
    r.clock.advance(5 * SEC);
    b.try_acquire().unwrap().failure();
    assert_eq!(b.metrics().consecutive_opens, 2);
    assert_eq!(b.metrics().open_remaining, Some(40 * SEC));
}

#[test]
fn open_for_leaves_forced_open_and_disabled_alone() {
    let r = rig(config(1, 10));
    let b = &r.breaker;
    b.force_open();
    assert_eq!(b.open_for(10 * SEC), None);
    assert_eq!((b.state(), b.version()), (ForcedOpen, 1));
    assert_eq!(b.metrics().open_remaining, None);
    assert_eq!(b.try_acquire().unwrap_err().retry_after, None);
    b.disable();
    assert_eq!(b.open_for(10 * SEC), None);
    assert_eq!((b.state(), b.version()), (Disabled, 2));
    assert!(b.try_acquire().is_ok(), "disabled still admits everything");
    assert_eq!(r.rec.transitions().len(), 2);
    assert!(
        r.rec
            .transitions()
            .iter()
            .all(|t| t.reason != TransitionReason::RetryAfter)
    );
    // Back under the breaker's control, it applies again.
    b.reset();
    assert_eq!(b.open_for(10 * SEC), Some(4));
}

#[test]
fn open_for_is_clamped_to_one_millisecond_and_the_open_period_cap() {
    let r = rig(flexiai_breaker::BreakerConfigBuilder::from(config(1, 10))
        .max_recovery_timeout_ms(30_000)
        .build()
        .unwrap());
    let b = &r.breaker;
    b.open_for(Duration::from_secs(3600));
    assert_eq!(b.metrics().open_remaining, Some(30 * SEC));
    assert_eq!(r.rec.transitions()[0].open_for, Some(30 * SEC));
    b.reset();
    b.open_for(Duration::ZERO);
    assert_eq!(b.state(), Open);
    assert_eq!(b.metrics().open_remaining, Some(Duration::from_millis(1)));
    r.clock.advance(Duration::from_millis(1));
    assert_eq!(b.state(), HalfOpen);
    // The cap is never below the recovery timeout.
    let r = rig(flexiai_breaker::BreakerConfigBuilder::from(config(1, 60))
        .max_recovery_timeout_ms(1_000)
        .build()
        .unwrap());
    r.breaker.open_for(Duration::MAX);
    assert_eq!(r.breaker.metrics().open_remaining, Some(60 * SEC));
}
