//! Issue 12 defect 1, breaker side: in granted mode every admitted trial call consumes its
//! credit whatever its outcome, and the fleet's successes add up to one `success_threshold`
//! (`probe_progress` + `absorb_remote_probe_successes`), so a fleet with
//! `success_threshold` > `half_open_max_calls` closes. Local mode closes alone for any config.

#![allow(clippy::unwrap_used, clippy::panic)] // Test code: a failed unwrap is a failed test.

mod common;

use std::sync::Arc;

use common::{Recorder, SEC, config};
use flexiai_breaker::{
    BreakerConfig, CircuitBreaker, CircuitState, ManualClock, ProbeMode, ProbeProgress,
    TransitionReason,
};

fn cfg() -> BreakerConfig {
    flexiai_breaker::BreakerConfigBuilder::from(config(1, 10))
        .half_open_max_calls(1)
        .success_threshold(3)
        .build()
        .unwrap()
}

/// A worker: a granted-mode breaker of its own, brought to half-open.
fn half_open_worker(clock: &Arc<ManualClock>, rec: &Arc<Recorder>) -> CircuitBreaker {
    let b = CircuitBreaker::builder("fleet")
        .config(cfg())
        .clock(clock.clone())
        .observer(rec.clone())
        .probe_mode(ProbeMode::Granted)
        .build()
        .unwrap();
    b.try_acquire().unwrap().failure();
    b
}

/// One worker's breaker in its first half-open period: its clock, the breaker, the
/// period's version.
fn in_half_open() -> (Arc<ManualClock>, CircuitBreaker, u64) {
    let clock = Arc::new(ManualClock::new());
    let b = half_open_worker(&clock, &Arc::new(Recorder::default()));
    clock.advance(10 * SEC);
    assert_eq!(b.poll(), CircuitState::HalfOpen);
    let v = b.version();
    (clock, b, v)
}

#[test]
fn a_granted_success_that_does_not_close_consumes_its_credit() {
    let (_clock, b, v) = in_half_open();
    assert_eq!(b.grant_probes_at(v, 1), 1);
    b.try_acquire().unwrap().success();
    assert_eq!(b.probe_credits(), 0, "the credit was used by a trial call");
    assert!(b.try_acquire().is_err());
    assert_eq!(
        b.probe_progress(),
        Some(ProbeProgress {
            version: v,
            successes: 1,
            needed: 3,
            free: 0,
            in_flight: 0,
        })
    );
    // A permit dropped unsettled made no trial: its credit comes back.
    assert_eq!(b.grant_probes_at(v, 1), 1);
    drop(b.try_acquire().unwrap());
    assert_eq!(b.probe_credits(), 1);
}

/// The probes of a period in flight are counted from admission to settlement (or an
/// unsettled drop), whichever mode admitted them: the lease holder grants again only when
/// none is left (seed 45237: a local probe admitted before the lease settled while the
/// lease's second probe ran, and was taken for that probe's settlement).
#[test]
fn probes_in_flight_count_from_admission_to_settlement() {
    let (clock, b, v) = in_half_open();
    let in_flight = |b: &CircuitBreaker| b.probe_progress().map(|p| p.in_flight);
    assert_eq!(in_flight(&b), Some(0));
    // A local probe (a degraded spell), then, back in step, a granted one beside it.
    b.set_probe_mode(ProbeMode::Local);
    let local = b.try_acquire().unwrap();
    assert_eq!(in_flight(&b), Some(1));
    b.set_probe_mode(ProbeMode::Granted);
    assert_eq!(b.grant_probes_at(v, 1), 1);
    let granted = b.try_acquire().unwrap();
    assert_eq!(in_flight(&b), Some(2));
    assert!(b.try_acquire().is_err(), "no credit left");
    assert_eq!(in_flight(&b), Some(2), "a rejected call is not in flight");
    local.success();
    assert_eq!(in_flight(&b), Some(1), "the granted probe still runs");
    drop(granted);
    assert_eq!(in_flight(&b), Some(0));
    // The dropped probe gave its credit back; one that ends the period leaves the next at
    // zero.
    assert_eq!(b.probe_credits(), 1);
    b.try_acquire().unwrap().failure();
    assert_eq!(b.state(), CircuitState::Open);
    clock.advance(60 * SEC);
    assert_eq!(b.poll(), CircuitState::HalfOpen);
    assert_eq!(in_flight(&b), Some(0));
}

/// Two workers, one credit each per grant, success_threshold 3: before the fix each
/// stayed half-open for good (one success each, per worker, credit kept or never renewed).
/// With the coordinator passing each worker's successes to the other, the fleet closes on
/// its third success in total.
#[test]
fn a_fleet_with_success_threshold_above_half_open_max_calls_closes() {
    let clock = Arc::new(ManualClock::new());
    let rec = Arc::new(Recorder::default());
    let workers = [
        half_open_worker(&clock, &rec),
        half_open_worker(&clock, &rec),
    ];
    clock.advance(10 * SEC);
    for w in &workers {
        assert_eq!(w.poll(), CircuitState::HalfOpen);
    }
    let v = workers[0].version();
    assert_eq!(workers[1].version(), v);
    // The coordinator: grant one credit at a time to alternating workers, relay every
    // success to the others, until someone closes.
    let mut total = 0;
    for round in 0..10 {
        let (me, other) = if round % 2 == 0 { (0, 1) } else { (1, 0) };
        assert_eq!(workers[me].grant_probes_at(v, 1), 1);
        workers[me].try_acquire().unwrap().success();
        total += 1;
        let closed_here = workers[me].state() == CircuitState::Closed;
        let closed_there = workers[other].absorb_remote_probe_successes(v, 1);
        if total < 3 {
            assert!(
                !closed_here && !closed_there,
                "closed after {total} successes"
            );
            assert_eq!(workers[other].probe_progress().unwrap().successes, total);
        } else {
            break;
        }
    }
    assert_eq!(total, 3, "the third success in total closes the fleet");
    for w in &workers {
        assert_eq!(w.state(), CircuitState::Closed);
        assert_eq!(w.version(), v + 1);
    }
    let closes: Vec<_> = rec
        .transitions()
        .into_iter()
        .filter(|t| t.to == CircuitState::Closed)
        .collect();
    assert_eq!(closes.len(), 2);
    assert!(
        closes
            .iter()
            .all(|t| t.reason == TransitionReason::ProbeSucceeded)
    );
}

#[test]
fn remote_probe_successes_of_another_period_count_nothing() {
    let clock = Arc::new(ManualClock::new());
    let rec = Arc::new(Recorder::default());
    let b = half_open_worker(&clock, &rec);
    // Not half-open yet (open, and then a due half-open not entered): nothing counts.
    assert!(!b.absorb_remote_probe_successes(b.version(), 5));
    clock.advance(10 * SEC);
    assert!(
        b.probe_progress().is_none(),
        "a read does not enter half-open"
    );
    assert!(!b.absorb_remote_probe_successes(b.version() + 1, 5));
    assert_eq!(b.poll(), CircuitState::HalfOpen);
    let v = b.version();
    assert!(
        !b.absorb_remote_probe_successes(v - 1, 5),
        "an older period"
    );
    assert!(!b.absorb_remote_probe_successes(v, 0));
    assert_eq!(b.probe_progress().unwrap().successes, 0);
    assert!(!b.absorb_remote_probe_successes(v, 2));
    assert!(b.absorb_remote_probe_successes(v, 1));
    assert_eq!((b.state(), b.version()), (CircuitState::Closed, v + 1));
    assert!(!b.absorb_remote_probe_successes(v, 1), "the period is over");
}

/// A single worker in local mode closes on its own, whatever the ratio of
/// `success_threshold` to `half_open_max_calls`: a success that does not close gives its
/// slot back.
#[test]
fn local_mode_closes_alone_for_any_threshold_and_slot_count() {
    for (max_calls, threshold) in [(1, 1), (1, 3), (2, 5), (3, 2), (4, 4)] {
        let clock = Arc::new(ManualClock::new());
        let b = CircuitBreaker::builder("local")
            .config(
                flexiai_breaker::BreakerConfigBuilder::from(config(1, 10))
                    .half_open_max_calls(max_calls)
                    .success_threshold(threshold)
                    .build()
                    .unwrap(),
            )
            .clock(clock.clone())
            .build()
            .unwrap();
        b.try_acquire().unwrap().failure();
        clock.advance(10 * SEC);
        for i in 0..threshold {
            assert_eq!(b.state(), CircuitState::HalfOpen, "{max_calls}/{threshold}");
            b.try_acquire().unwrap().success();
            let p = b.probe_progress();
            if i + 1 < threshold {
                assert_eq!(p.unwrap().successes, u64::from(i + 1));
                assert_eq!(p.unwrap().free, max_calls);
            }
        }
        assert_eq!(b.state(), CircuitState::Closed, "{max_calls}/{threshold}");
    }
}

/// Issue 12 defect 6: a coordinator that lost its lease takes back the credits not yet used,
/// so no trial call starts under a lease another worker may hold; calls already admitted run
/// on, and credits of another period are left alone.
#[test]
fn revoked_credits_admit_nothing_and_admitted_calls_run_on() {
    let (_clock, b, v) = in_half_open();
    assert_eq!(b.grant_probes_at(v, 3), 3);
    let running = b.try_acquire().unwrap();
    assert_eq!(b.revoke_probes_at(v + 1), 0, "another period's revocation");
    assert_eq!(b.probe_credits(), 2);
    assert_eq!(b.revoke_probes_at(v), 2);
    assert_eq!(b.probe_credits(), 0);
    assert!(b.try_acquire().is_err(), "no trial call after revocation");
    assert_eq!(b.revoke_probes_at(v), 0, "nothing left to revoke");
    running.success();
    assert_eq!(
        b.probe_progress().map(|p| (p.version, p.successes)),
        Some((v, 1)),
        "the call admitted before counts"
    );
    // Closed, or local mode: nothing to revoke.
    b.set_probe_mode(ProbeMode::Local);
    assert_eq!(b.revoke_probes_at(v), 0);
}

/// A period that ends with trial calls in flight keeps their count (the lease holder holds
/// its lease until they settle): through the open state and into the next half-open period.
#[test]
fn probes_of_an_ended_period_stay_counted_until_they_settle() {
    let (clock, b, v) = in_half_open();
    b.set_probe_mode(ProbeMode::Local);
    let failing = b.try_acquire().unwrap();
    b.set_probe_mode(ProbeMode::Granted);
    assert_eq!(b.grant_probes_at(v, 1), 1);
    let running = b.try_acquire().unwrap();
    assert_eq!(b.probes_in_flight_at(v), 2);
    failing.failure();
    assert_eq!(b.state(), CircuitState::Open);
    assert_eq!(b.probes_in_flight_at(v), 1, "the granted probe still runs");
    assert_eq!(b.probes_in_flight_at(b.version()), 0);
    clock.advance(60 * SEC);
    assert_eq!(b.poll(), CircuitState::HalfOpen);
    assert_eq!(
        b.probes_in_flight_at(v),
        1,
        "an open state in between keeps it"
    );
    running.success();
    assert_eq!(b.probes_in_flight_at(v), 0);
    assert_eq!(
        b.probes_in_flight_at(v + 7),
        0,
        "a period never seen has none"
    );
}

/// A restore drops the breaker's own branch for the store's, so a version can come round
/// again: a probe admitted in the dropped branch's half-open v2 that settles in the new
/// branch's v2 counts nothing there, neither a success, nor a failure that reopens, nor the
/// end of the new period's probe (seed 52118: the late success of a degraded spell's local
/// probe was taken for the settlement of the lease's first credit, and a second came).
#[test]
fn a_probe_of_a_dropped_branch_counts_in_no_later_period_of_its_version() {
    let clock = Arc::new(ManualClock::new());
    let rec = Arc::new(Recorder::default());
    let b = half_open_worker(&clock, &rec);
    let stored_open = b.snapshot();
    clock.advance(10 * SEC);
    assert_eq!(b.poll(), CircuitState::HalfOpen);
    let v = b.version();
    b.set_probe_mode(ProbeMode::Local);
    let dropped = [b.try_acquire().unwrap()];
    // The store holds the fleet's open v1: the local half-open v2 is dropped for it.
    b.restore(&stored_open);
    assert_eq!((b.state(), b.version()), (CircuitState::Open, v - 1));
    b.set_probe_mode(ProbeMode::Granted);
    clock.advance(60 * SEC);
    assert_eq!(b.poll(), CircuitState::HalfOpen);
    assert_eq!(b.version(), v, "the version came round again");
    assert_eq!(b.grant_probes_at(v, 1), 1);
    let granted = b.try_acquire().unwrap();
    let [late] = dropped;
    late.success();
    let progress = b.probe_progress().unwrap();
    assert_eq!(
        (progress.successes, progress.in_flight),
        (0, 1),
        "the dropped branch's probe counted in the new period"
    );
    // Its failure, or an unsettled drop, changes nothing either.
    b.set_probe_mode(ProbeMode::Local);
    let [late] = {
        // Another dropped-branch probe, made the same way.
        b.restore(&stored_open);
        clock.advance(60 * SEC);
        assert_eq!(b.poll(), CircuitState::HalfOpen);
        [b.try_acquire().unwrap()]
    };
    b.restore(&stored_open);
    clock.advance(60 * SEC);
    assert_eq!(b.poll(), CircuitState::HalfOpen);
    late.failure();
    assert_eq!(
        b.state(),
        CircuitState::HalfOpen,
        "a dropped branch's failure reopened"
    );
    assert_eq!(b.probe_progress().map(|p| p.free), Some(1));
    drop(granted);
}

/// A later period ending with a probe in flight does not wipe the count of an earlier one
/// whose probe still runs (a lease holder may hold that earlier period's lease): the breaker
/// keeps several ended periods' counts.
#[test]
fn an_ended_periods_count_survives_a_later_period_ending_with_calls_in_flight() {
    let (clock, b, v) = in_half_open();
    let mut running = Vec::new();
    let mut first = None;
    for round in 0..3 {
        let period = b.version();
        assert_eq!(b.grant_probes_at(period, 2), 2);
        let long = b.try_acquire().unwrap();
        b.try_acquire().unwrap().failure();
        assert_eq!(b.state(), CircuitState::Open, "round {round}");
        if round == 0 {
            first = Some(period);
        }
        running.push((period, long));
        clock.advance(60 * SEC);
        assert_eq!(b.poll(), CircuitState::HalfOpen);
    }
    assert_eq!(first, Some(v));
    for (period, _) in &running {
        assert_eq!(b.probes_in_flight_at(*period), 1, "period v{period}");
    }
    for (period, long) in running {
        long.success();
        assert_eq!(b.probes_in_flight_at(period), 0, "period v{period}");
    }
}
