//! The closed hot path (`try_acquire()` + `Permit::success()`) with and without sync
//! attached, in one binary, for instruction counts under callgrind, which do not depend on
//! how loaded the machine is:
//!
//! ```text
//! valgrind --tool=callgrind --callgrind-out-file=target/callgrind.out \
//!     target/release/fleet-bench callgrind --iters 1000000
//! callgrind_annotate --inclusive=yes target/callgrind.out | grep hot_loop
//! ```
//!
//! Each configuration runs in its own never-inlined function (`hot_loop_plain`,
//! `hot_loop_synced`, and the failure-rate pair), so its inclusive instruction count over
//! `--iters` calls is the cost of the path. "synced" is a breaker registered with a real,
//! started `StateSyncManager` (over a `MemoryBackend`: the driver's I/O is not on the hot
//! path, and a `RedisBackend` would only add its threads), exactly what a fleet worker runs.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use flexiai_backend::MemoryBackend;
use flexiai_breaker::{BreakerConfig, CircuitBreaker, FailurePolicy};
use flexiai_sync::StateSyncManager;

/// Options of `fleet-bench callgrind`.
#[derive(Debug, clap::Args)]
pub(crate) struct CallgrindArgs {
    /// Calls per configuration.
    #[arg(long, default_value_t = 1_000_000)]
    iters: u64,
}

#[inline(always)]
fn call(b: &CircuitBreaker) {
    match b.try_acquire() {
        Ok(permit) => permit.success(),
        Err(rejected) => {
            black_box(rejected);
        }
    }
}

/// The unsynced breaker, default config (consecutive policy).
#[inline(never)]
fn hot_loop_plain(b: &CircuitBreaker, iters: u64) {
    for _ in 0..black_box(iters) {
        call(black_box(b));
    }
}

/// The same breaker configuration registered with a started `StateSyncManager`.
#[inline(never)]
fn hot_loop_synced(b: &CircuitBreaker, iters: u64) {
    // A distinct constant, so the linker cannot fold the two identical loops into one.
    black_box(1u8);
    for _ in 0..black_box(iters) {
        call(black_box(b));
    }
}

/// Failure-rate policy, unsynced.
#[inline(never)]
fn hot_loop_rate_plain(b: &CircuitBreaker, iters: u64) {
    black_box(2u8);
    for _ in 0..black_box(iters) {
        call(black_box(b));
    }
}

/// Failure-rate policy, registered with a started `StateSyncManager` (the fleet decides
/// its trip).
#[inline(never)]
fn hot_loop_rate_synced(b: &CircuitBreaker, iters: u64) {
    black_box(3u8);
    for _ in 0..black_box(iters) {
        call(black_box(b));
    }
}

/// `fleet-bench callgrind`.
pub(crate) async fn run(args: &CallgrindArgs) -> crate::Result<()> {
    let mut rate = BreakerConfig::default();
    rate.failure_policy = FailurePolicy::failure_rate(Duration::from_secs(10), 100, 0.5);
    let plain = CircuitBreaker::new("plain", BreakerConfig::default())?;
    let rate_plain = CircuitBreaker::new("rate_plain", rate.clone())?;
    let synced = Arc::new(CircuitBreaker::new("synced", BreakerConfig::default())?);
    let rate_synced = Arc::new(CircuitBreaker::new("rate_synced", rate)?);
    let manager = StateSyncManager::new(Arc::new(MemoryBackend::new()));
    manager.register_circuit_breaker(Arc::clone(&synced))?;
    manager.register_circuit_breaker(Arc::clone(&rate_synced))?;
    manager.start().await?;
    if !rate_synced.fleet_decides_rate() {
        return Err("the started manager did not take over the failure-rate trip".into());
    }
    let iters = args.iters;
    tokio::task::block_in_place(|| {
        hot_loop_plain(&plain, iters);
        hot_loop_synced(&synced, iters);
        hot_loop_rate_plain(&rate_plain, iters);
        hot_loop_rate_synced(&rate_synced, iters);
    });
    manager.stop().await?;
    crate::report::log(&format!(
        "ran {iters} closed calls per configuration; read the inclusive counts of hot_loop_* with callgrind_annotate --inclusive=yes"
    ));
    Ok(())
}
