//! The hot path allocates nothing: 10 000 acquire + success cycles (and failures, and
//! rejections) under a counting global allocator, with no observer and with a no-op observer.
//!
//! This file holds a single test so that no other test thread allocates while it measures.

#![allow(clippy::unwrap_used, clippy::panic)] // Test code: a failed unwrap is a failed test.

use std::alloc::System;
use std::sync::Arc;

use flexiai_breaker::{BreakerConfig, CircuitBreaker, NoopObserver};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn cycles(b: &CircuitBreaker, n: usize) {
    for i in 0..n {
        let p = b.try_acquire().unwrap();
        if i % 100 == 99 {
            p.failure();
        } else {
            p.success();
        }
    }
}

/// Allocations made while `f` runs, in the quietest of five runs. The counting allocator is
/// global, so a run can pick up a stray allocation of the test harness's own threads (seen:
/// 4, now and then, on a loaded machine, whatever `f` does). An allocation on the hot path
/// would show in every run: 10 000 cycles allocating would never read 0.
fn allocations_during(mut f: impl FnMut()) -> usize {
    (0..5)
        .map(|_| {
            let region = Region::new(GLOBAL);
            f();
            let stats = region.change();
            stats.allocations + stats.reallocations
        })
        .min()
        .unwrap_or(usize::MAX)
}

#[test]
fn acquire_and_record_do_not_allocate() {
    let b = CircuitBreaker::new("alloc", BreakerConfig::default()).unwrap();
    // Warm up: first use of thread-locals (stripe index, arc-swap's debt list).
    cycles(&b, 100);
    assert_eq!(allocations_during(|| cycles(&b, 10_000)), 0, "no observer");

    b.add_observer(Arc::new(NoopObserver));
    cycles(&b, 100);
    assert_eq!(
        allocations_during(|| cycles(&b, 10_000)),
        0,
        "no-op observer"
    );

    // Rejections while open allocate nothing either.
    let open = CircuitBreaker::new("alloc-open", BreakerConfig::default()).unwrap();
    open.force_open();
    assert!(open.try_acquire().is_err());
    let n = allocations_during(|| {
        for _ in 0..10_000 {
            assert!(open.try_acquire().is_err());
        }
    });
    assert_eq!(n, 0, "rejections");
}
