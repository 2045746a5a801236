//! Hot-path admission latency (`try_acquire` + `Permit::success`) while a `StateSyncManager`
//! over a real `RedisBackend` runs in the same process, with Redis up, killed and hung.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flexiai_backend_redis::RedisBackend;
use flexiai_breaker::{BreakerConfig, CircuitBreaker};
use flexiai_sync::{StateSyncManager, SyncOptions};
use flexiai_testkit::RedisServer;

use crate::stats::{Summary, summarize};

/// One phase.
#[derive(Debug, Clone)]
pub(crate) struct HotPathRow {
    /// `up`, `down (killed)`, `hung (SIGSTOP)`.
    pub(crate) phase: &'static str,
    /// Per-call time (ns), each call timed with `Instant::now()` on both sides.
    pub(crate) per_call: Summary,
    /// Per-call time (ns) from batches of 100 calls timed together.
    pub(crate) batched: Summary,
    /// The manager's mode during the phase.
    pub(crate) mode: String,
}

fn measure(breaker: &CircuitBreaker, calls: usize) -> (Summary, Summary) {
    let mut per_call = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        if let Ok(permit) = breaker.try_acquire() {
            permit.success();
        }
        #[allow(clippy::cast_precision_loss)]
        per_call.push(t.elapsed().as_nanos() as f64);
    }
    let mut batched = Vec::with_capacity(calls / 100);
    for _ in 0..calls / 100 {
        let t = Instant::now();
        for _ in 0..100 {
            if let Ok(permit) = std::hint::black_box(breaker).try_acquire() {
                permit.success();
            }
        }
        #[allow(clippy::cast_precision_loss)]
        batched.push(t.elapsed().as_nanos() as f64 / 100.0);
    }
    (summarize(&per_call), summarize(&batched))
}

fn mode_of(manager: &StateSyncManager) -> String {
    match manager.health().mode {
        flexiai_sync::SyncMode::Synced => "synced".to_owned(),
        flexiai_sync::SyncMode::Degraded { .. } => "degraded".to_owned(),
        flexiai_sync::SyncMode::Stopped => "stopped".to_owned(),
        other => other.to_string(),
    }
}

async fn phase(
    name: &'static str,
    manager: &StateSyncManager,
    breaker: &Arc<CircuitBreaker>,
    calls: usize,
) -> crate::Result<HotPathRow> {
    crate::report::log(&format!("hot path: Redis {name}"));
    let b = Arc::clone(breaker);
    // Warm-up, then the measurement, on a blocking thread while the driver keeps running.
    let (per_call, batched) = tokio::task::spawn_blocking(move || {
        let _ = measure(&b, calls / 10);
        measure(&b, calls)
    })
    .await?;
    Ok(HotPathRow {
        phase: name,
        per_call,
        batched,
        mode: mode_of(manager),
    })
}

/// Up, then hung (SIGSTOP), then resumed, then killed.
pub(crate) async fn run(calls: usize) -> crate::Result<Vec<HotPathRow>> {
    let mut server = RedisServer::start()?;
    let url = server.url();
    let backend = Arc::new(RedisBackend::new(crate::worker::redis_config(
        &url, "hot",
    )?)?);
    // Short timers so that the driver is busy (retrying, timing out) during the faults.
    let options = SyncOptions::builder()
        .heartbeat_interval(Duration::from_millis(100))
        .heartbeat_ttl(Duration::from_secs(1))
        .operation_timeout(Duration::from_millis(250))
        .reconcile_interval(Duration::from_millis(500))
        .build()?;
    let manager = StateSyncManager::builder(backend)
        .options(options)
        .build()?;
    let breaker = Arc::new(CircuitBreaker::new("p", BreakerConfig::default())?);
    manager.register_circuit_breaker(Arc::clone(&breaker))?;
    manager.start().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut rows = vec![phase("up", &manager, &breaker, calls).await?];

    server.pause()?;
    tokio::time::sleep(Duration::from_millis(800)).await;
    rows.push(phase("hung (SIGSTOP)", &manager, &breaker, calls).await?);
    server.resume()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !manager.health().is_synced() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    server.kill()?;
    tokio::time::sleep(Duration::from_millis(800)).await;
    rows.push(phase("down (killed)", &manager, &breaker, calls).await?);
    manager.stop().await?;
    drop(server);
    Ok(rows)
}
