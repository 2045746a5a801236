//! Start-up hydrate for 10, 100 and 1,000 providers (Redis commands and time of
//! `StateSyncManager::start`), and memory per registered breaker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flexiai_backend_redis::RedisBackend;
use flexiai_breaker::{BreakerConfig, CircuitBreaker};
use flexiai_events::CircuitState;
use flexiai_sync::{StateSyncManager, SyncOptions};
use flexiai_testkit::RedisServer;
use stats_alloc::Region;

use crate::redis_stats::{CommandStats, StatsReader};
use crate::stats::{Summary, summarize};

/// Results for one provider count.
#[derive(Debug, Clone)]
pub(crate) struct HydrateRow {
    /// Providers registered.
    pub(crate) providers: usize,
    /// Time of `start()` (ms), over the repetitions.
    pub(crate) time_ms: Summary,
    /// Redis commands one `start()` sent (median repetition).
    pub(crate) commands: u64,
    /// Round trips one `start()` made: commands, with each pooled checkout's pipelined
    /// `UNWATCH`+`PING` counted once.
    pub(crate) round_trips: u64,
    /// Breakdown of the median repetition.
    pub(crate) breakdown: String,
    /// Providers whose stored state was applied (should be all).
    pub(crate) applied: usize,
}

fn breakers(n: usize) -> crate::Result<Vec<Arc<CircuitBreaker>>> {
    (0..n)
        .map(|i| {
            Ok(Arc::new(CircuitBreaker::new(
                format!("p{i}"),
                BreakerConfig::default(),
            )?))
        })
        .collect()
}

/// Runs `reps` start-ups for each provider count.
pub(crate) async fn run(counts: &[usize], reps: usize) -> crate::Result<Vec<HydrateRow>> {
    let server = RedisServer::start()?;
    let url = server.url();
    let mut reader = StatsReader::connect(&url).await?;
    let mut out = Vec::new();
    for &n in counts {
        crate::report::log(&format!("hydrate: {n} providers"));
        let prefix = format!("hyd{n}");
        // A worker that made every provider's state (forced open, version 1) and stored it.
        {
            let backend = Arc::new(RedisBackend::new(crate::worker::redis_config(
                &url, &prefix,
            )?)?);
            let writer = StateSyncManager::builder(backend)
                .options(SyncOptions::default())
                .build()?;
            for b in breakers(n)? {
                b.force_open();
                writer.register_circuit_breaker(b)?;
            }
            writer.start().await?;
            writer.stop().await?;
        }
        let mut samples: Vec<(f64, CommandStats, usize)> = Vec::new();
        for _ in 0..reps {
            let backend = Arc::new(RedisBackend::new(crate::worker::redis_config(
                &url, &prefix,
            )?)?);
            let manager = StateSyncManager::builder(backend)
                .options(SyncOptions::default())
                .build()?;
            let fresh = breakers(n)?;
            for b in &fresh {
                manager.register_circuit_breaker(Arc::clone(b))?;
            }
            let before = reader.read().await?;
            let t = Instant::now();
            manager.start().await?;
            let elapsed = t.elapsed().as_secs_f64() * 1000.0;
            let delta = reader.read().await?.since(&before);
            let applied = fresh
                .iter()
                .filter(|b| b.state() == CircuitState::ForcedOpen)
                .count();
            manager.stop().await?;
            samples.push((elapsed, delta, applied));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let times: Vec<f64> = samples.iter().map(|s| s.0).collect();
        samples.sort_by_key(|s| s.1.total());
        let (_, mid, applied) = samples
            .get(samples.len() / 2)
            .cloned()
            .ok_or("no hydrate samples")?;
        out.push(HydrateRow {
            providers: n,
            time_ms: summarize(&times),
            commands: mid.total(),
            round_trips: mid.total() - mid.get("unwatch"),
            breakdown: mid.breakdown(),
            applied,
        });
    }
    drop(server);
    Ok(out)
}

/// Memory per breaker.
#[derive(Debug, Clone)]
pub(crate) struct MemoryResult {
    /// Breakers measured.
    pub(crate) count: usize,
    /// Heap bytes per `Arc<CircuitBreaker>` (default config, name `p{i}`), counting
    /// allocator.
    pub(crate) breaker_bytes: f64,
    /// Extra heap bytes per breaker for registering it with a `StateSyncManager`.
    pub(crate) register_bytes: f64,
    /// Resident set growth per breaker over both steps (bytes, page granular).
    pub(crate) rss_bytes: f64,
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

#[allow(clippy::cast_precision_loss, clippy::cast_possible_wrap)]
fn net(stats: &stats_alloc::Stats) -> f64 {
    stats.bytes_allocated as f64 - stats.bytes_deallocated as f64 + stats.bytes_reallocated as f64
}

/// Creates `count` breakers, then registers them with an unstarted manager.
pub(crate) fn memory(count: usize) -> crate::Result<MemoryResult> {
    let backend = Arc::new(RedisBackend::new(crate::worker::redis_config(
        "redis://127.0.0.1:1",
        "mem",
    )?)?);
    let manager = StateSyncManager::builder(backend)
        .options(SyncOptions::default())
        .build()?;
    let mut list: Vec<Arc<CircuitBreaker>> = Vec::with_capacity(count);
    let rss0 = rss_bytes();
    let region = Region::new(crate::GLOBAL);
    for i in 0..count {
        list.push(Arc::new(CircuitBreaker::new(
            format!("p{i}"),
            BreakerConfig::default(),
        )?));
    }
    let created = region.change();
    let region = Region::new(crate::GLOBAL);
    for b in &list {
        manager.register_circuit_breaker(Arc::clone(b))?;
    }
    let registered = region.change();
    let rss1 = rss_bytes();
    #[allow(clippy::cast_precision_loss)]
    let per = |x: f64| x / count as f64;
    #[allow(clippy::cast_precision_loss)]
    Ok(MemoryResult {
        count,
        breaker_bytes: per(net(&created)),
        register_bytes: per(net(&registered)),
        rss_bytes: per(rss1.saturating_sub(rss0) as f64),
    })
}
