//! Many threads on one breaker: probes never exceed the limit, no transition is lost or
//! duplicated, and versions only grow.

#![allow(clippy::unwrap_used, clippy::panic)] // Test code: a failed unwrap is a failed test.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Recorder;
use flexiai_breaker::{
    BreakerConfig, BreakerSnapshot, CircuitBreaker, CircuitState, ManualClock, ProbeMode,
};

const THREADS: usize = 8;
const MAX_PROBES: u32 = 2;

/// Cheap per-thread pseudo-random numbers.
fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn hammer(mode: ProbeMode, iterations: usize) {
    let clock = Arc::new(ManualClock::new());
    let rec = Arc::new(Recorder::default());
    let breaker = CircuitBreaker::builder("hammer")
        .config(
            BreakerConfig::builder()
                .failure_threshold(3)
                .recovery_timeout_ms(2)
                .half_open_max_calls(MAX_PROBES)
                .success_threshold(2)
                .build()
                .unwrap(),
        )
        .clock(clock.clone())
        .observer(rec.clone())
        .probe_mode(mode)
        .build()
        .unwrap();
    // Probes in flight per version (a probe belongs to one half-open period).
    let in_flight: Mutex<HashMap<u64, u32>> = Mutex::new(HashMap::new());
    let max_seen = AtomicU64::new(0);
    let probes = AtomicU64::new(0);

    std::thread::scope(|s| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (breaker, in_flight, max_seen, probes, clock) =
                    (&breaker, &in_flight, &max_seen, &probes, &clock);
                s.spawn(move || {
                    let mut seed = 0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1);
                    let mut last_version = 0;
                    let mut granted_for = u64::MAX;
                    for i in 0.. {
                        // Past `iterations`, on until the first probe (bounded): scheduled
                        // unevenly (an instrumented run), the coordinator may have finished
                        // its grants before anyone reached half-open.
                        if i >= iterations
                            && (probes.load(Ordering::Relaxed) > 0 || i >= iterations * 50)
                        {
                            break;
                        }
                        let r = xorshift(&mut seed);
                        if i % 16 == 0 {
                            // Time moves on with the work, however the threads are scheduled.
                            clock.advance(Duration::from_micros(100));
                        }
                        if t == 1 && i % 16 == 0 {
                            // The coordinator: one grant of MAX_PROBES credits per half-open
                            // period, as a lease holder would give.
                            let v = breaker.version();
                            if mode == ProbeMode::Granted
                                && v != granted_for
                                && breaker.grant_probes_at(v, MAX_PROBES) > 0
                            {
                                granted_for = v;
                            }
                        }
                        // An operator now and then, isolating the provider briefly (never for
                        // good, so threads scheduled late still see the breaker work).
                        if t == 0 && i % 5000 == 2000 {
                            breaker.force_open();
                        }
                        if t == 0 && i % 5000 == 2100 {
                            breaker.reset();
                        }
                        // A provider's Retry-After now and then: opens or extends.
                        if t == 2 && i % 700 == 350 {
                            breaker.open_for(Duration::from_millis(1 + r % 3));
                        }
                        let Ok(permit) = breaker.try_acquire() else {
                            continue;
                        };
                        assert!(permit.version() >= last_version, "versions went back");
                        last_version = permit.version();
                        let probe = permit.is_probe();
                        if probe {
                            probes.fetch_add(1, Ordering::Relaxed);
                            let mut map = in_flight.lock().unwrap();
                            let n = map.entry(permit.version()).or_insert(0);
                            *n += 1;
                            max_seen.fetch_max(u64::from(*n), Ordering::Relaxed);
                            assert!(*n <= MAX_PROBES, "{n} probes at once");
                        }
                        if probe {
                            // Leaves the count before settling: settling may hand the slot to
                            // another thread at once.
                            *in_flight
                                .lock()
                                .unwrap()
                                .get_mut(&permit.version())
                                .unwrap() -= 1;
                        }
                        match r % 10 {
                            0..=3 => permit.failure(),
                            4 => drop(permit),
                            _ => permit.success(),
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
    });

    // Make any due time-driven transition (reads alone never do) before reading the history.
    let final_state = breaker.poll();
    let mut transitions = rec.transitions();
    let final_version = breaker.version();
    assert!(
        final_version > 10,
        "the test should exercise many transitions"
    );
    assert!(
        probes.load(Ordering::Relaxed) > 0,
        "half-open was never reached: {:?}",
        breaker.metrics()
    );
    assert!(max_seen.load(Ordering::Relaxed) <= u64::from(MAX_PROBES));
    transitions.sort_by_key(|t| t.version);
    // Exactly one transition per version, 1..=final: none lost, none duplicated...
    let versions: Vec<u64> = transitions.iter().map(|t| t.version).collect();
    assert_eq!(versions, (1..=final_version).collect::<Vec<_>>());
    // ...and they chain: each starts where the previous one ended.
    let mut state = CircuitState::Closed;
    for t in &transitions {
        assert_eq!(t.from, state, "broken chain at {t:?}");
        state = t.to;
    }
    assert_eq!(state, final_state);
}

#[test]
fn hammering_in_local_probe_mode() {
    hammer(ProbeMode::Local, 40_000);
}

#[test]
fn hammering_in_granted_probe_mode() {
    hammer(ProbeMode::Granted, 40_000);
}

#[test]
fn remote_snapshots_race_safely_with_callers() {
    let clock = Arc::new(ManualClock::new());
    let breaker = CircuitBreaker::builder("remote")
        .config(
            BreakerConfig::builder()
                .failure_threshold(2)
                .recovery_timeout_ms(1)
                .build()
                .unwrap(),
        )
        .clock(clock.clone())
        .build()
        .unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let states = CircuitState::ALL;
            for v in 1..5_000u64 {
                let mut snap = BreakerSnapshot::new(states[(v % 5) as usize], v * 3);
                snap.open_remaining_ms = Some(1);
                breaker.apply_remote(&snap);
                clock.advance(Duration::from_micros(300));
            }
            done.store(true, Ordering::Relaxed);
        });
        for t in 0..3 {
            let breaker = &breaker;
            let done = &done;
            s.spawn(move || {
                let mut last = 0;
                let mut i = 0u64;
                while !done.load(Ordering::Relaxed) {
                    i += 1;
                    let v = breaker.version();
                    assert!(v >= last, "version went from {last} to {v}");
                    last = v;
                    if let Ok(p) = breaker.try_acquire() {
                        if (i + t).is_multiple_of(3) {
                            p.failure();
                        } else {
                            p.success();
                        }
                    }
                }
            });
        }
    });
    assert!(breaker.version() >= 4_999 * 3);
}
