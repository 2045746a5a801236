//! Admission plus success recording in the closed state: flexiai-breaker (borrowed permits,
//! and owned ones from `acquire_owned`) against recloser and failsafe, single-threaded and with two threads sharing one breaker. `flexiai_synced` is the
//! configuration a fleet runs: the observer a `StateSyncManager` attaches (transitions only;
//! the driver reads outcomes from the breaker's counters), next to `flexiai_outcome_observer`,
//! an observer that hears every outcome (what sync used to attach). The `failure_rate` group
//! compares flexiai's sliding failure-rate window with recloser's ring buffer.
//!
//! `cargo bench -p flexiai-breaker --bench peers -- --warm-up-time 1 --measurement-time 3`

#![allow(clippy::unwrap_used, clippy::panic)] // Test code: a failed unwrap is a failed test.

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

use flexiai_breaker::{
    BreakerConfig, BreakerObserver, CircuitBreaker, FailurePolicy, OutcomeEvent, Transition,
};

fn flexiai() -> CircuitBreaker {
    CircuitBreaker::new("bench", BreakerConfig::default()).unwrap()
}

/// What flexiai-sync attaches: marks a flag on transitions, wants no outcomes.
struct TransitionsOnly(std::sync::atomic::AtomicBool);

impl BreakerObserver for TransitionsOnly {
    fn on_transition(&self, _: &Transition) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }
    fn wants_outcomes(&self) -> bool {
        false
    }
}

/// An observer that hears every outcome (and does as little as possible with it).
struct EveryOutcome(std::sync::atomic::AtomicU64);

impl BreakerObserver for EveryOutcome {
    fn on_outcome(&self, _: &OutcomeEvent) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

fn flexiai_synced() -> CircuitBreaker {
    let b = flexiai();
    b.add_observer(Arc::new(TransitionsOnly(Default::default())));
    b
}

fn flexiai_outcome_observer() -> CircuitBreaker {
    let b = flexiai();
    b.add_observer(Arc::new(EveryOutcome(Default::default())));
    b
}

fn flexiai_rate() -> CircuitBreaker {
    // recloser's default: a 50% failure rate over the last 100 calls; here over 10 s.
    let config = BreakerConfig::builder()
        .failure_policy(FailurePolicy::failure_rate(
            Duration::from_secs(10),
            100,
            0.5,
        ))
        .build()
        .unwrap();
    CircuitBreaker::new("bench", config).unwrap()
}

#[inline]
fn flexiai_op(b: &CircuitBreaker) {
    match b.try_acquire() {
        Ok(permit) => permit.success(),
        Err(rejected) => {
            black_box(rejected);
        }
    }
}

#[inline]
fn flexiai_owned_op(b: &Arc<CircuitBreaker>) {
    match b.acquire_owned() {
        Ok(permit) => permit.success(),
        Err(rejected) => {
            black_box(rejected);
        }
    }
}

#[inline]
fn recloser_op(r: &recloser::Recloser) {
    let _ = black_box(r.call(|| Ok::<(), ()>(())));
}

#[inline]
fn failsafe_op<B: failsafe::CircuitBreaker>(f: &B) {
    let _ = black_box(f.call(|| Ok::<(), ()>(())));
}

fn single_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("closed_acquire_success/1_thread");
    let b = flexiai();
    g.bench_function("flexiai", |bench| bench.iter(|| flexiai_op(black_box(&b))));
    let owned = Arc::new(flexiai());
    g.bench_function("flexiai_owned", |bench| {
        bench.iter(|| flexiai_owned_op(black_box(&owned)))
    });
    let synced = flexiai_synced();
    g.bench_function("flexiai_synced", |bench| {
        bench.iter(|| flexiai_op(black_box(&synced)))
    });
    let observed = flexiai_outcome_observer();
    g.bench_function("flexiai_outcome_observer", |bench| {
        bench.iter(|| flexiai_op(black_box(&observed)))
    });
    let r = recloser::Recloser::default();
    g.bench_function("recloser", |bench| {
        bench.iter(|| recloser_op(black_box(&r)))
    });
    let f = failsafe::Config::new().build();
    g.bench_function("failsafe", |bench| {
        bench.iter(|| failsafe_op(black_box(&f)))
    });
    g.finish();
}

fn failure_rate(c: &mut Criterion) {
    let mut g = c.benchmark_group("closed_acquire_success/failure_rate/1_thread");
    let b = flexiai_rate();
    g.bench_function("flexiai", |bench| bench.iter(|| flexiai_op(black_box(&b))));
    let synced = flexiai_rate();
    synced.add_observer(Arc::new(TransitionsOnly(Default::default())));
    synced.set_fleet_decides_rate(true);
    g.bench_function("flexiai_synced", |bench| {
        bench.iter(|| flexiai_op(black_box(&synced)))
    });
    let r = recloser::Recloser::default();
    g.bench_function("recloser", |bench| {
        bench.iter(|| recloser_op(black_box(&r)))
    });
    g.finish();
}

/// Both threads do `iters` operations on the shared breaker; the time reported per iteration
/// is the wall time for each thread to do one operation while the other does too.
fn two_threads<T: Sync>(target: &T, iters: u64, op: fn(&T)) -> Duration {
    let barrier = Barrier::new(3);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                barrier.wait();
                for _ in 0..iters {
                    op(black_box(target));
                }
            });
        }
        barrier.wait();
        let start = Instant::now();
        // Leaving the scope joins both threads.
        start
    })
    .elapsed()
}

fn two_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("closed_acquire_success/2_threads");
    let b = flexiai();
    g.bench_function("flexiai", |bench| {
        bench.iter_custom(|iters| two_threads(&b, iters, flexiai_op))
    });
    let owned = Arc::new(flexiai());
    g.bench_function("flexiai_owned", |bench| {
        bench.iter_custom(|iters| two_threads(&owned, iters, flexiai_owned_op))
    });
    let synced = flexiai_synced();
    g.bench_function("flexiai_synced", |bench| {
        bench.iter_custom(|iters| two_threads(&synced, iters, flexiai_op))
    });
    let r = recloser::Recloser::default();
    g.bench_function("recloser", |bench| {
        bench.iter_custom(|iters| two_threads(&r, iters, recloser_op))
    });
    let f = failsafe::Config::new().build();
    g.bench_function("failsafe", |bench| {
        bench.iter_custom(|iters| two_threads(&f, iters, failsafe_op))
    });
    g.finish();
}

criterion_group!(benches, single_thread, failure_rate, two_thread);
criterion_main!(benches);
