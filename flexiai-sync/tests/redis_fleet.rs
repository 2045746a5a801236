//! The fleet scenarios on real Redis (one `RedisBackend` per manager, one private
//! redis-server per test), plus what only a real server can do: die, hang, come back empty.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flexiai_backend::conformance::{BackendFactory, ConformanceOptions};
use flexiai_breaker::BreakerConfig;
use flexiai_events::CircuitState;
use flexiai_sync::scenarios::{self, Worker, eventually};
use flexiai_testkit::backend::RedisFactory;

mod common;
use common::load;

fn factory() -> RedisFactory {
    RedisFactory::start().expect("redis-server must start (apt-get install redis-server)")
}

flexiai_sync::fleet_scenarios!(factory());

fn config() -> BreakerConfig {
    BreakerConfig::builder()
        .failure_threshold(3)
        .build()
        .unwrap()
        .with_recovery_timeout(Duration::from_secs(60))
}

async fn fleet(factory: &RedisFactory, n: usize) -> Vec<Worker> {
    let backends = factory.open(n, &ConformanceOptions::default()).await;
    let mut workers = Vec::new();
    for backend in backends {
        workers.push(scenarios::worker(backend, &["x"], &config()).await);
    }
    workers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_load_degrades_then_every_worker_converges() {
    let mut factory = factory();
    let workers = fleet(&factory, 4).await;
    let stop = Arc::new(AtomicBool::new(false));
    let slowest = Arc::new(AtomicU64::new(0));
    let made = Arc::new(AtomicU64::new(0));
    let loader = load(&workers[0], Arc::clone(&stop), Arc::clone(&slowest), made);

    factory.server().kill().unwrap();
    eventually("every worker reports degraded", || {
        workers.iter().all(|w| w.manager.health().is_degraded())
    })
    .await;
    // Breakers keep working locally during the outage; worker 1 trips on its own.
    for _ in 0..3 {
        if let Ok(permit) = workers[1].breaker("x").try_acquire() {
            permit.failure();
        }
    }
    assert_eq!(workers[1].breaker("x").state(), CircuitState::Open);
    tokio::time::sleep(Duration::from_secs(2)).await;

    factory.server().restart().unwrap();
    eventually("every worker is synced again", || {
        workers.iter().all(|w| w.manager.health().is_synced())
    })
    .await;
    eventually(
        "every worker converges on worker 1's outage-time trip",
        || {
            let target = (CircuitState::Open, workers[1].breaker("x").version());
            workers
                .iter()
                .all(|w| (w.breaker("x").state(), w.breaker("x").version()) == target)
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let calls = loader.join().unwrap();
    assert!(
        calls > 10_000,
        "the load kept running through the outage ({calls} calls)"
    );
    // Not a latency benchmark (see BENCHMARKS.md): a sanity bound far below any Redis timeout.
    let slowest = Duration::from_micros(slowest.load(Ordering::Relaxed));
    assert!(
        slowest < Duration::from_millis(250),
        "a call waited {slowest:?}: the hot path blocked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_degrades_within_the_operation_timeout() {
    let mut factory = factory();
    let workers = fleet(&factory, 2).await;
    factory.server().pause().unwrap();
    let paused = Instant::now();
    eventually("degraded while Redis is hung", || {
        workers[0].manager.health().is_degraded()
    })
    .await;
    let took = paused.elapsed();
    // Heartbeat interval (100 ms) + operation timeout (500 ms), with room for a loaded machine.
    assert!(
        took < Duration::from_secs(3),
        "degraded only after {took:?}"
    );
    // Admission is untouched: the breaker still trips and rejects locally.
    for _ in 0..3 {
        workers[0].breaker("x").try_acquire().unwrap().failure();
    }
    assert!(workers[0].breaker("x").try_acquire().is_err());
    factory.server().resume().unwrap();
    eventually("synced after SIGCONT", || {
        workers.iter().all(|w| w.manager.health().is_synced())
    })
    .await;
    eventually("the trip reaches worker 1", || {
        workers[1].breaker("x").state() == CircuitState::Open
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restarted_empty_is_rewritten_within_the_reconcile_interval() {
    let mut factory = factory();
    let workers = fleet(&factory, 2).await;
    workers[0].breaker("x").force_open();
    eventually("worker 1 follows", || {
        workers[1].breaker("x").state() == CircuitState::ForcedOpen
    })
    .await;
    let version = workers[0].breaker("x").version();
    factory.server().kill().unwrap();
    factory.server().restart().unwrap();
    let backend = Arc::clone(workers[1].manager.backend());
    let restarted = Instant::now();
    loop {
        if let Ok(Some(stored)) = backend.get_state("x").await
            && stored.version == version
        {
            assert_eq!(stored.state, CircuitState::ForcedOpen);
            break;
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(10),
            "store not rewritten"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn raw(factory: &mut RedisFactory) -> redis::aio::MultiplexedConnection {
    redis::Client::open(factory.server().url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The case, on a real server: Redis loses everything (`FLUSHALL` on our private
/// server, as a restart without persistence would), `flexiai force-open` writes its override
/// into the empty store, and workers whose history reached v6 adopt it instead of writing
/// their closed v6 over it on reconcile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_override_written_into_an_emptied_redis_holds() {
    let mut factory = factory();
    let workers = fleet(&factory, 3).await;
    scenarios::advance_to(&workers, "x", 6).await;
    let mut con = raw(&mut factory).await;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut con).await.unwrap();
    let backend = Arc::clone(workers[0].manager.backend());
    let operator = flexiai_events::WorkerId::new("ops:cli:1").unwrap();
    let written = flexiai_sync::override_state(&backend, "x", CircuitState::ForcedOpen, &operator)
        .await
        .unwrap();
    scenarios::reconciled(&workers, 2).await;
    let stored = backend.get_state("x").await.unwrap().unwrap();
    assert_eq!(stored.revision(), written.revision(), "{stored:?}");
    eventually("every worker is forced open", || {
        workers
            .iter()
            .all(|w| w.breaker("x").state() == CircuitState::ForcedOpen)
    })
    .await;
}

/// A subscriber connection killed by the server (`CLIENT KILL TYPE pubsub`) is a gap in the
/// events: health says so (degraded, a drop counted) until the subscriber is back and has
/// reconciled, and never reads as synced in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_subscriber_connection_shows_in_health() {
    let mut factory = factory();
    let workers = fleet(&factory, 1).await;
    let manager = &workers[0].manager;
    assert!(manager.health().is_synced());
    let before = manager.metrics().reconciles;
    let mut con = raw(&mut factory).await;
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(killed >= 1);
    eventually("the drop is counted", || {
        manager.metrics().subscription_drops >= 1
    })
    .await;
    let health = manager.health();
    assert!(
        health.is_degraded() || health.metrics.reconciles > before,
        "synced with a dropped subscriber and no reconcile since: {health:?}"
    );
    eventually("synced again after resubscribing", || {
        let health = manager.health();
        health.is_synced() && health.metrics.reconciles > before
    })
    .await;
}
