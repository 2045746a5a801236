//! Redis cost: commands per 1,000 guarded calls, flexiai against a breaker that reads and
//! writes its shared state in Redis on every call (as gobreaker's distributed breaker and
//! pybreaker's Redis storage do).

use std::sync::Arc;
use std::time::{Duration, Instant};

use flexiai_backend_redis::RedisBackend;
use flexiai_breaker::{BreakerConfig, CircuitBreaker};
use flexiai_sync::{StateSyncManager, SyncOptions};
use flexiai_testkit::RedisServer;

use crate::redis_stats::{CommandStats, StatsReader};

/// What the calls see from the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Load {
    /// Every call succeeds.
    Steady,
    /// Every call fails; the failure threshold is out of reach, so the breaker stays closed
    /// and every call is still admitted and counted (the worst case for outcome sharing).
    StormClosed,
    /// Every call fails with the default threshold (5): the breaker opens and rejects.
    StormOpen,
}

impl Load {
    /// Label for the report.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Load::Steady => "steady (all succeed)",
            Load::StormClosed => "storm, breaker held closed",
            Load::StormOpen => "storm, breaker opens (threshold 5)",
        }
    }
    fn threshold(self) -> u32 {
        match self {
            Load::StormClosed => 1_000_000_000,
            Load::Steady | Load::StormOpen => 5,
        }
    }
}

/// One measurement.
#[derive(Debug, Clone)]
pub(crate) struct CostRow {
    /// `flexiai` or `per-call Redis`.
    pub(crate) strategy: &'static str,
    /// The load.
    pub(crate) load: Load,
    /// Target calls per second.
    pub(crate) target_rate: u64,
    /// Calls made (admitted or rejected).
    pub(crate) calls: u64,
    /// Achieved calls per second.
    pub(crate) achieved_rate: f64,
    /// Redis commands during the run (everything the server counted except `INFO`).
    pub(crate) commands: u64,
    /// Commands minus the idle background rate times the run's length.
    pub(crate) net_commands: f64,
    /// Per-command breakdown.
    pub(crate) breakdown: String,
}

impl CostRow {
    /// All commands per 1,000 calls.
    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn per_1000(&self) -> f64 {
        self.commands as f64 * 1000.0 / self.calls.max(1) as f64
    }
    /// Commands above background per 1,000 calls.
    #[allow(clippy::cast_precision_loss)]
    pub(crate) fn net_per_1000(&self) -> f64 {
        self.net_commands.max(0.0) * 1000.0 / self.calls.max(1) as f64
    }
}

/// The section's results.
#[derive(Debug, Clone)]
pub(crate) struct CostResult {
    /// Background commands per second of an idle flexiai worker (heartbeat, reconcile,
    /// subscriber keep-alive, pool health checks).
    pub(crate) background_per_sec: f64,
    /// Breakdown of the idle background.
    pub(crate) background_breakdown: String,
    /// How long the idle background was measured.
    pub(crate) background_secs: f64,
    /// The measurements.
    pub(crate) rows: Vec<CostRow>,
}

/// The baseline: shared state read and written in Redis on every call.
struct PerCallRedisBreaker {
    conn: redis::aio::MultiplexedConnection,
    state_key: String,
    failures_key: String,
    threshold: u64,
}

impl PerCallRedisBreaker {
    /// One guarded call: `GET` the state (reject when open), then record the outcome:
    /// `SET failures 0` on success, `INCR failures` on failure (and `SET state open` when
    /// the count reaches the threshold). Returns whether the call was admitted.
    async fn call(&mut self, fails: bool) -> crate::Result<bool> {
        let state: Option<String> = redis::cmd("GET")
            .arg(&self.state_key)
            .query_async(&mut self.conn)
            .await?;
        if state.as_deref() == Some("open") {
            return Ok(false);
        }
        if fails {
            let n: u64 = redis::cmd("INCR")
                .arg(&self.failures_key)
                .query_async(&mut self.conn)
                .await?;
            if n >= self.threshold {
                redis::cmd("SET")
                    .arg(&self.state_key)
                    .arg("open")
                    .arg("PX")
                    .arg(60_000)
                    .query_async::<()>(&mut self.conn)
                    .await?;
            }
        } else {
            redis::cmd("SET")
                .arg(&self.failures_key)
                .arg(0)
                .query_async::<()>(&mut self.conn)
                .await?;
        }
        Ok(true)
    }
}

/// Paces call `i` of a run at `rate` per second: sleeps when well ahead, spins when close.
fn pace(start: Instant, i: u64, rate: u64) {
    let target = start + Duration::from_nanos(i.saturating_mul(1_000_000_000) / rate);
    loop {
        let now = Instant::now();
        if now >= target {
            return;
        }
        let ahead = target - now;
        if ahead > Duration::from_micros(300) {
            std::thread::sleep(ahead - Duration::from_micros(200));
        } else {
            std::hint::spin_loop();
        }
    }
}

fn run_flexiai_calls(breaker: &CircuitBreaker, load: Load, rate: u64, secs: f64) -> (u64, f64) {
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut i = 0;
    while Instant::now() < end {
        pace(start, i, rate);
        if let Ok(permit) = breaker.try_acquire() {
            if load == Load::Steady {
                permit.success();
            } else {
                permit.failure();
            }
        }
        i += 1;
    }
    (i, start.elapsed().as_secs_f64())
}

async fn run_baseline_calls(
    breaker: &mut PerCallRedisBreaker,
    load: Load,
    rate: u64,
    secs: f64,
) -> crate::Result<(u64, f64)> {
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut i = 0u64;
    while Instant::now() < end {
        let target = start + Duration::from_nanos(i.saturating_mul(1_000_000_000) / rate);
        if target > Instant::now() + Duration::from_millis(1) {
            tokio::time::sleep_until(target.into()).await;
        }
        breaker.call(load != Load::Steady).await?;
        i += 1;
    }
    Ok((i, start.elapsed().as_secs_f64()))
}

/// Runs every (strategy, load, rate) for `secs` seconds each.
pub(crate) async fn run(rates: &[u64], secs: f64, idle_secs: f64) -> crate::Result<CostResult> {
    let server = RedisServer::start()?;
    let url = server.url();
    let mut reader = StatsReader::connect(&url).await?;
    let backend = Arc::new(RedisBackend::new(crate::worker::redis_config(
        &url, "cost",
    )?)?);
    let manager = StateSyncManager::builder(backend)
        .options(SyncOptions::default())
        .build()?;
    let warm = Arc::new(CircuitBreaker::new("warm", BreakerConfig::default())?);
    manager.register_circuit_breaker(warm)?;
    manager.start().await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    crate::report::log(&format!("cost: idle background for {idle_secs} s"));
    let before = reader.read().await?;
    let idle_start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(idle_secs)).await;
    let idle = reader.read().await?.since(&before);
    let idle_elapsed = idle_start.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let background_per_sec = idle.total() as f64 / idle_elapsed;

    let client = redis::Client::open(url.as_str())?;
    let mut rows = Vec::new();
    let mut serial = 0;
    for load in [Load::Steady, Load::StormClosed, Load::StormOpen] {
        for &rate in rates {
            serial += 1;
            crate::report::log(&format!("cost: {} at {rate}/s", load.label()));
            // flexiai: a fresh breaker, registered and hydrated before the window opens.
            let config = BreakerConfig::builder()
                .failure_threshold(load.threshold())
                .build()?
                .with_recovery_timeout(Duration::from_secs(120));
            let breaker = Arc::new(CircuitBreaker::new(format!("p{serial}"), config)?);
            manager.register_circuit_breaker(Arc::clone(&breaker))?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let before = reader.read().await?;
            let secs = if load == Load::Steady {
                secs
            } else {
                secs / 3.0
            };
            let b = Arc::clone(&breaker);
            let (calls, elapsed) =
                tokio::task::spawn_blocking(move || run_flexiai_calls(&b, load, rate, secs))
                    .await?;
            // Let the last flush interval go out: it belongs to this run.
            tokio::time::sleep(Duration::from_millis(120)).await;
            let delta: CommandStats = reader.read().await?.since(&before);
            rows.push(row(
                "flexiai",
                load,
                rate,
                calls,
                elapsed + 0.12,
                &delta,
                background_per_sec,
            ));

            let mut baseline = PerCallRedisBreaker {
                conn: client.get_multiplexed_async_connection().await?,
                state_key: format!("base:{serial}:state"),
                failures_key: format!("base:{serial}:failures"),
                threshold: u64::from(load.threshold()),
            };
            let before = reader.read().await?;
            let (calls, elapsed) = run_baseline_calls(&mut baseline, load, rate, secs).await?;
            let delta = reader.read().await?.since(&before);
            rows.push(row(
                "per-call Redis",
                load,
                rate,
                calls,
                elapsed,
                &delta,
                background_per_sec,
            ));
        }
    }
    manager.stop().await?;
    drop(server);
    Ok(CostResult {
        background_per_sec,
        background_breakdown: idle.breakdown(),
        background_secs: idle_elapsed,
        rows,
    })
}

fn row(
    strategy: &'static str,
    load: Load,
    target_rate: u64,
    calls: u64,
    elapsed: f64,
    delta: &CommandStats,
    background_per_sec: f64,
) -> CostRow {
    #[allow(clippy::cast_precision_loss)]
    let commands = delta.total() as f64;
    // The flexiai manager runs during the baseline's windows too: subtract it from both.
    let background = background_per_sec * elapsed;
    #[allow(clippy::cast_precision_loss)]
    CostRow {
        strategy,
        load,
        target_rate,
        calls,
        achieved_rate: calls as f64 / elapsed.max(1e-9),
        commands: delta.total(),
        net_commands: commands - background,
        breakdown: delta.breakdown(),
    }
}
