//! `flexiai demo`: a fleet of workers, two fake providers, one outage.
//!
//! Every worker sends a steady stream of requests, primary provider first. Three seconds in,
//! the primary starts failing: the first worker to see enough failures opens its breaker,
//! the rest follow through the sync backend (sooner than their own failures would make them),
//! and traffic fails over to the secondary. When the primary comes back, one probe from the
//! whole fleet finds out, and every worker closes together.
//!
//! In memory (default) the workers are tasks of this process. With `--redis URL` they share a
//! real Redis, and with `--processes N` each is a separate `flexiai demo-worker` process; the
//! timeline is anchored to one wall-clock start so every process fails and recovers together.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use flexiai_backend::{MemoryBackend, SyncBackend};
use flexiai_backend_redis::{RedisBackend, RedisConfig};
use flexiai_breaker::{BreakerConfig, CircuitBreaker, MetricsExporter};
use flexiai_events::CircuitState;
use flexiai_sync::{StateSyncManager, SyncOptions};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::task::JoinSet;
use tokio::time::sleep;

const PRIMARY: &str = "openai";
const SECONDARY: &str = "anthropic";
const OUTAGE_START: Duration = Duration::from_secs(3);
const OUTAGE_END: Duration = Duration::from_secs(8);
const TOTAL: Duration = Duration::from_secs(12);

/// Options of `flexiai demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// How many workers the fleet has.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    workers: u16,
    /// Share state through this Redis (e.g. redis://127.0.0.1:6379) instead of in memory.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Run the workers as this many separate processes (needs --redis).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64), requires = "redis")]
    processes: Option<u16>,
    /// Requests per second each worker sends.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=2000))]
    rate: u32,
    /// Print only the summary, not the live view.
    #[arg(long)]
    quiet: bool,
    /// Serve the workers' metrics in Prometheus format at http://ADDR/metrics while the demo
    /// runs (port 0 picks a free port; the address is printed). In-process workers only.
    #[arg(long, value_name = "ADDR", conflicts_with = "processes")]
    metrics_addr: Option<std::net::SocketAddr>,
}

/// Options of the hidden `flexiai demo-worker`: one worker process of `demo --processes`.
#[derive(Debug, Args)]
pub(crate) struct DemoWorkerArgs {
    #[arg(long)]
    redis: String,
    #[arg(long)]
    prefix: String,
    /// The shared timeline's start, in Unix milliseconds.
    #[arg(long)]
    start_ms: u64,
    #[arg(long)]
    rate: u32,
}

/// What a fleet (or one worker process of it) did.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Report {
    served_primary: u64,
    served_secondary: u64,
    failovers: u64,
    unserved: u64,
    primary_calls: u64,
    probes: u64,
    /// Per worker: when its primary breaker first opened, ms into the timeline.
    opened_ms: Vec<Option<f64>>,
    /// Per worker: when it first closed again after that.
    closed_ms: Vec<Option<f64>>,
    published: u64,
    received: u64,
}

impl Report {
    fn merge(&mut self, other: Report) {
        self.served_primary += other.served_primary;
        self.served_secondary += other.served_secondary;
        self.failovers += other.failovers;
        self.unserved += other.unserved;
        self.primary_calls += other.primary_calls;
        self.probes += other.probes;
        self.opened_ms.extend(other.opened_ms);
        self.closed_ms.extend(other.closed_ms);
        self.published += other.published;
        self.received += other.received;
    }
}

/// A provider whose health the timeline controls.
struct FakeProvider {
    healthy: AtomicBool,
    calls: AtomicU64,
    probes: AtomicU64,
}

impl FakeProvider {
    fn healthy() -> Arc<Self> {
        Arc::new(Self {
            healthy: AtomicBool::new(true),
            calls: AtomicU64::new(0),
            probes: AtomicU64::new(0),
        })
    }

    async fn complete(&self) -> bool {
        self.calls.fetch_add(1, Ordering::Relaxed);
        sleep(Duration::from_millis(2)).await;
        self.healthy.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
struct Tally {
    served_primary: AtomicU64,
    served_secondary: AtomicU64,
    failovers: AtomicU64,
    unserved: AtomicU64,
}

struct Worker {
    manager: Arc<StateSyncManager>,
    breakers: [Arc<CircuitBreaker>; 2],
}

/// Time since the shared start (zero before it).
fn elapsed_since(start: SystemTime) -> Duration {
    SystemTime::now()
        .duration_since(start)
        .unwrap_or(Duration::ZERO)
}

fn breaker_config() -> BreakerConfig {
    let mut config = BreakerConfig::default().with_recovery_timeout(Duration::from_millis(1500));
    config.failure_threshold = 5;
    config.half_open_max_calls = 1;
    config
}

fn sync_options() -> SyncOptions {
    let mut options = SyncOptions::default();
    options.flush_interval = Duration::from_millis(20);
    options.reconcile_interval = Duration::from_secs(1);
    options.heartbeat_interval = Duration::from_millis(500);
    options.heartbeat_ttl = Duration::from_secs(3);
    options.probe_lease_ttl = Duration::from_secs(2);
    options
}

pub(crate) async fn run(args: DemoArgs) -> crate::Result<()> {
    let start = SystemTime::now() + Duration::from_millis(200);
    let n = usize::from(args.processes.unwrap_or(args.workers));
    let (report, backend_kind) = match (&args.redis, args.processes) {
        (Some(url), Some(processes)) => {
            let prefix = demo_prefix();
            print_intro(n, &args, &format!("redis, {processes} processes"));
            (
                run_processes(url, &prefix, processes, start, &args).await?,
                "redis",
            )
        }
        (redis, _) => {
            if let Some(addr) = args.metrics_addr {
                let bound = crate::metrics::serve(addr).await?;
                println!("metrics at http://{bound}/metrics");
            }
            let backends = match redis {
                None => memory_backends(n),
                Some(url) => redis_backends(url, &demo_prefix(), n).await?,
            };
            let kind = backends.first().map_or("memory", |b| b.kind());
            print_intro(n, &args, kind);
            (
                run_fleet(
                    backends,
                    start,
                    args.rate,
                    !args.quiet,
                    args.metrics_addr.is_some(),
                )
                .await?,
                kind,
            )
        }
    };
    summary(&report, backend_kind);
    Ok(())
}

/// `flexiai demo-worker`: one worker, reporting as one JSON line at the end.
pub(crate) async fn run_worker(args: DemoWorkerArgs) -> crate::Result<()> {
    let start = UNIX_EPOCH + Duration::from_millis(args.start_ms);
    let backends = redis_backends(&args.redis, &args.prefix, 1).await?;
    let report = run_fleet(backends, start, args.rate, false, false).await?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn demo_prefix() -> String {
    // A fresh key prefix per run, so demos never see each other's state.
    format!("flexiai-demo-{}", std::process::id())
}

fn print_intro(n: usize, args: &DemoArgs, through: &str) {
    println!(
        "flexiai demo: {n} workers, {} req/s each, state shared through {through}",
        args.rate
    );
    println!(
        "  {PRIMARY} fails from {:.1}s to {:.1}s; {SECONDARY} stays healthy",
        OUTAGE_START.as_secs_f64(),
        OUTAGE_END.as_secs_f64()
    );
}

fn memory_backends(n: usize) -> Vec<Arc<dyn SyncBackend>> {
    let shared = MemoryBackend::new();
    (0..n)
        .map(|_| Arc::new(shared.clone()) as Arc<dyn SyncBackend>)
        .collect()
}

async fn redis_backends(
    url: &str,
    prefix: &str,
    n: usize,
) -> crate::Result<Vec<Arc<dyn SyncBackend>>> {
    let mut backends: Vec<Arc<dyn SyncBackend>> = Vec::with_capacity(n);
    for _ in 0..n {
        backends.push(Arc::new(
            RedisBackend::connect(redis_config(url, prefix)?).await?,
        ));
    }
    Ok(backends)
}

fn redis_config(url: &str, prefix: &str) -> crate::Result<RedisConfig> {
    Ok(RedisConfig::from_url(url)?
        .key_prefix(prefix)
        .channel(format!("{prefix}:events"))
        .state_ttl(Some(Duration::from_secs(120))))
}

/// Runs workers over `backends` along the timeline starting at `start`; with `export`, each
/// worker's manager and breakers are recorded (label `worker` = `w0`, `w1`, ...) every 250 ms.
async fn run_fleet(
    backends: Vec<Arc<dyn SyncBackend>>,
    start: SystemTime,
    rate: u32,
    live_view: bool,
    export: bool,
) -> crate::Result<Report> {
    let mut workers = Vec::with_capacity(backends.len());
    for backend in backends {
        let manager = StateSyncManager::builder(backend)
            .options(sync_options())
            .build()?;
        let primary = Arc::new(CircuitBreaker::new(PRIMARY, breaker_config())?);
        let secondary = Arc::new(CircuitBreaker::new(SECONDARY, breaker_config())?);
        manager.register_circuit_breaker(Arc::clone(&primary))?;
        manager.register_circuit_breaker(Arc::clone(&secondary))?;
        manager.start().await?;
        workers.push(Arc::new(Worker {
            manager: Arc::new(manager),
            breakers: [primary, secondary],
        }));
    }
    let mut exporters = Vec::new();
    if export {
        for (i, worker) in workers.iter().enumerate() {
            let labelled = MetricsExporter::new().label("worker", format!("w{i}"));
            exporters.push(
                worker
                    .manager
                    .metrics_exporter(labelled)
                    .spawn(Duration::from_millis(250))?,
            );
        }
    }
    let providers = [FakeProvider::healthy(), FakeProvider::healthy()];
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    while elapsed_since(start).is_zero() && SystemTime::now() < start {
        sleep(Duration::from_millis(1)).await;
    }

    let mut tasks = JoinSet::new();
    let period = Duration::from_secs_f64(1.0 / f64::from(rate));
    for worker in &workers {
        let (worker, providers, tally, stop) = (
            Arc::clone(worker),
            providers.clone(),
            Arc::clone(&tally),
            Arc::clone(&stop),
        );
        tasks.spawn(async move { serve(worker, providers, tally, stop, period).await });
    }

    // The timeline and the sampling run on their own thread: sampling every 100 µs keeps the
    // reported spread from being the sampling period, and must not occupy a runtime thread.
    let watched = {
        let (workers, providers, tally) = (workers.clone(), providers.clone(), Arc::clone(&tally));
        tokio::task::spawn_blocking(move || watch(&workers, &providers, &tally, start, live_view))
    };
    let (opened, closed) = watched.await?;
    stop.store(true, Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}

    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e3);
    let report = Report {
        served_primary: load(&tally.served_primary),
        served_secondary: load(&tally.served_secondary),
        failovers: load(&tally.failovers),
        unserved: load(&tally.unserved),
        primary_calls: load(&providers[0].calls),
        probes: load(&providers[0].probes),
        opened_ms: opened.into_iter().map(ms).collect(),
        closed_ms: closed.into_iter().map(ms).collect(),
        published: workers
            .iter()
            .map(|w| w.manager.metrics().events_published)
            .sum(),
        received: workers
            .iter()
            .map(|w| w.manager.metrics().events_received)
            .sum(),
    };
    for worker in &workers {
        worker.manager.stop().await?;
    }
    // Each records once more as it stops: a last scrape sees the final totals.
    drop(exporters);
    Ok(report)
}

/// Drives the timeline and records when each worker's primary breaker opened and closed.
fn watch(
    workers: &[Arc<Worker>],
    providers: &[Arc<FakeProvider>; 2],
    tally: &Tally,
    start: SystemTime,
    live_view: bool,
) -> (Vec<Option<Duration>>, Vec<Option<Duration>>) {
    let n = workers.len();
    let (mut opened, mut closed) = (vec![None; n], vec![None; n]);
    let mut next_view = Duration::ZERO;
    let (mut outage_announced, mut recovery_announced) = (false, false);
    loop {
        let now = elapsed_since(start);
        if now >= TOTAL {
            return (opened, closed);
        }
        let healthy = now < OUTAGE_START || now >= OUTAGE_END;
        providers[0].healthy.store(healthy, Ordering::Relaxed);
        if live_view && !outage_announced && now >= OUTAGE_START {
            outage_announced = true;
            println!("{:>5.1}s  {PRIMARY} starts failing", now.as_secs_f64());
        }
        if live_view && !recovery_announced && now >= OUTAGE_END {
            recovery_announced = true;
            println!("{:>5.1}s  {PRIMARY} is healthy again", now.as_secs_f64());
        }
        for (i, worker) in workers.iter().enumerate() {
            let state = worker.breakers[0].state();
            if opened[i].is_none() && state == CircuitState::Open {
                opened[i] = Some(now);
            }
            if opened[i].is_some() && closed[i].is_none() && state == CircuitState::Closed {
                closed[i] = Some(now);
            }
        }
        if live_view && now >= next_view {
            let states: Vec<CircuitState> = workers.iter().map(|w| w.breakers[0].state()).collect();
            let synced = workers
                .iter()
                .filter(|w| w.manager.health().is_synced())
                .count();
            print_view(now, &states, tally, synced);
            next_view += Duration::from_millis(500);
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// Spawns `processes` demo workers and shows the fleet from Redis while they run.
async fn run_processes(
    url: &str,
    prefix: &str,
    processes: u16,
    start: SystemTime,
    args: &DemoArgs,
) -> crate::Result<Report> {
    let exe = std::env::current_exe()?;
    let start_ms = start.duration_since(UNIX_EPOCH)?.as_millis().to_string();
    let mut children = Vec::new();
    for _ in 0..processes {
        let child = tokio::process::Command::new(&exe)
            .args([
                "demo-worker",
                "--redis",
                url,
                "--prefix",
                prefix,
                "--start-ms",
                &start_ms,
            ])
            .args(["--rate", &args.rate.to_string()])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        children.push(child);
    }
    // The live view reads what every process wrote to the store.
    let observer: Arc<dyn SyncBackend> =
        Arc::new(RedisBackend::connect(redis_config(url, prefix)?).await?);
    let mut next_view = Duration::ZERO;
    while elapsed_since(start) < TOTAL + Duration::from_millis(300) {
        let now = elapsed_since(start);
        if !args.quiet && now >= next_view && !now.is_zero() {
            let stored = observer.get_states(&[PRIMARY.to_owned()]).await?;
            let state = stored
                .first()
                .cloned()
                .flatten()
                .map_or(CircuitState::Closed, |s| s.state);
            let live = observer.live_workers().await?.len();
            println!(
                "{:>5.1}s  {PRIMARY} stored state: {:<9} | live workers {live}/{processes}",
                now.as_secs_f64(),
                state.as_str()
            );
            next_view += Duration::from_millis(500);
        }
        sleep(Duration::from_millis(20)).await;
    }
    let mut report = Report::default();
    for child in children {
        let stdout = child.stdout.ok_or("demo worker without stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
            .await
            .map_err(|_| "a demo worker did not report")??
            .ok_or("a demo worker exited without a report")?;
        report.merge(serde_json::from_str(&line)?);
    }
    Ok(report)
}

async fn serve(
    worker: Arc<Worker>,
    providers: [Arc<FakeProvider>; 2],
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    period: Duration,
) {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while !stop.load(Ordering::Relaxed) {
        ticker.tick().await;
        let mut served = false;
        for (rank, (breaker, provider)) in worker.breakers.iter().zip(&providers).enumerate() {
            let Ok(permit) = breaker.try_acquire() else {
                continue; // open: skip without calling the provider
            };
            if permit.is_probe() {
                provider.probes.fetch_add(1, Ordering::Relaxed);
            }
            if provider.complete().await {
                permit.success();
                let counter = if rank == 0 {
                    &tally.served_primary
                } else {
                    &tally.served_secondary
                };
                counter.fetch_add(1, Ordering::Relaxed);
                if rank > 0 {
                    tally.failovers.fetch_add(1, Ordering::Relaxed);
                }
                served = true;
                break;
            }
            permit.failure();
        }
        if !served {
            tally.unserved.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn print_view(now: Duration, states: &[CircuitState], tally: &Tally, synced: usize) {
    let states: Vec<String> = states
        .iter()
        .enumerate()
        .map(|(i, s)| format!("w{}:{:<9}", i + 1, s.as_str()))
        .collect();
    println!(
        "{:>5.1}s  {PRIMARY} {}| served {PRIMARY} {:>5} {SECONDARY} {:>5} | synced {synced}/{}",
        now.as_secs_f64(),
        states.join(" "),
        tally.served_primary.load(Ordering::Relaxed),
        tally.served_secondary.load(Ordering::Relaxed),
        states.len(),
    );
}

/// The first time, and how much later the last worker followed; `None` unless all did.
fn spread(times: &[Option<f64>]) -> Option<(f64, f64)> {
    let seen: Vec<f64> = times.iter().flatten().copied().collect();
    if seen.is_empty() || seen.len() != times.len() {
        return None;
    }
    let first = seen.iter().copied().fold(f64::INFINITY, f64::min);
    let last = seen.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((first, last - first))
}

fn summary(report: &Report, backend: &str) {
    println!();
    println!("summary ({} workers, {backend})", report.opened_ms.len());
    println!(
        "  requests served by {PRIMARY:<10} {:>6}",
        report.served_primary
    );
    println!(
        "  requests served by {SECONDARY:<10} {:>6}",
        report.served_secondary
    );
    println!("  failovers to {SECONDARY:<16} {:>6}", report.failovers);
    println!("  requests no provider served   {:>6}", report.unserved);
    println!(
        "  calls that reached {PRIMARY:<10} {:>6} (half-open probes among them: {})",
        report.primary_calls, report.probes
    );
    for (what, times) in [
        ("opened", &report.opened_ms),
        ("closed again", &report.closed_ms),
    ] {
        match spread(times) {
            Some((first, took)) => println!(
                "  {PRIMARY} {what} on the first worker at {:.2}s; on every worker {:.2} ms later",
                first / 1e3,
                took
            ),
            None => println!("  {PRIMARY} was not {what} on every worker"),
        }
    }
    println!(
        "  sync events published {}, received {}",
        report.published, report.received
    );
}
