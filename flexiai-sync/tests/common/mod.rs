//! Helpers shared by the Redis fleet tests (single node, Cluster, Sentinel).

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flexiai_backend_redis::{RedisBackend, RedisConfig};
use flexiai_breaker::BreakerConfig;
use flexiai_events::CircuitState;
use flexiai_sync::scenarios::{self, Worker, eventually};

/// Calls through worker 0's breaker in a loop, as request handlers would; records the
/// slowest admission+record and counts the calls made (`calls`, readable while it runs).
pub fn load(
    worker: &Worker,
    stop: Arc<AtomicBool>,
    slowest: Arc<AtomicU64>,
    made: Arc<AtomicU64>,
) -> std::thread::JoinHandle<u64> {
    let breaker = Arc::clone(worker.breaker("x"));
    std::thread::spawn(move || {
        let mut calls = 0;
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            if let Ok(permit) = breaker.try_acquire() {
                permit.success();
            }
            let took = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            slowest.fetch_max(took, Ordering::Relaxed);
            calls += 1;
            made.store(calls, Ordering::Relaxed);
            if calls % 1000 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        calls
    })
}

/// Breakers that trip after 3 failures and stay open for a minute.
pub fn config() -> BreakerConfig {
    BreakerConfig::builder()
        .failure_threshold(3)
        .build()
        .unwrap()
        .with_recovery_timeout(Duration::from_secs(60))
}

/// `n` workers guarding provider `x`, each with its own backend built from `config`.
pub async fn fleet_on(redis: &RedisConfig, n: usize) -> Vec<Worker> {
    let mut workers = Vec::new();
    for _ in 0..n {
        let backend = Arc::new(RedisBackend::new(redis.clone()).unwrap());
        workers.push(scenarios::worker(backend, &["x"], &config()).await);
    }
    workers
}

/// Trips worker `w`'s breaker `x` locally.
pub fn trip(workers: &[Worker], w: usize) {
    for _ in 0..3 {
        if let Ok(permit) = workers[w].breaker("x").try_acquire() {
            permit.failure();
        }
    }
}

/// Waits until every worker holds `x` in `state` at worker `w`'s version.
pub async fn converge_on(workers: &[Worker], w: usize, state: CircuitState, what: &str) {
    eventually(what, || {
        let target = (state, workers[w].breaker("x").version());
        workers
            .iter()
            .all(|worker| (worker.breaker("x").state(), worker.breaker("x").version()) == target)
    })
    .await;
}

/// Runs the load on worker 0 until `stop`, then checks it kept running and never blocked.
pub struct Load {
    stop: Arc<AtomicBool>,
    slowest: Arc<AtomicU64>,
    made: Arc<AtomicU64>,
    handle: std::thread::JoinHandle<u64>,
}

impl Load {
    pub fn start(worker: &Worker) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let slowest = Arc::new(AtomicU64::new(0));
        let made = Arc::new(AtomicU64::new(0));
        let handle = load(
            worker,
            Arc::clone(&stop),
            Arc::clone(&slowest),
            Arc::clone(&made),
        );
        Self {
            stop,
            slowest,
            made,
            handle,
        }
    }

    /// The calls made so far: read before and after an outage, the difference shows calls
    /// went on while Redis could not answer (a hot path waiting on Redis makes a handful).
    pub fn calls(&self) -> u64 {
        self.made.load(Ordering::Relaxed)
    }

    /// Stops the load; asserts it ran throughout and no call waited on Redis.
    pub fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        let calls = self.handle.join().unwrap();
        assert!(calls > 1_000, "the load kept running ({calls} calls)");
        // Not a latency benchmark (see BENCHMARKS.md), nor the main evidence (calls made
        // during an outage, see `calls`): a call waiting on Redis through a failover takes
        // seconds. The bound leaves room for a slow machine (an instrumented run stops
        // threads for tens of milliseconds).
        let slowest = Duration::from_micros(self.slowest.load(Ordering::Relaxed));
        assert!(
            slowest < Duration::from_secs(1),
            "a call waited {slowest:?}: the hot path blocked"
        );
    }
}

/// Polls `check` until it holds, for `what`, at most `limit`.
pub async fn within(limit: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
