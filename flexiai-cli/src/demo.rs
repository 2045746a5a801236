//! `flexiai demo`: a fleet of workers, two fake providers, one outage.
//!
//! Every worker sends a steady stream of requests, primary provider first. Three seconds in,
//! the primary starts failing: the first worker to see enough failures opens its breaker,
//! the rest follow through the sync backend (faster than their own failures would make them),
//! and traffic fails over to the secondary. When the primary comes back, one probe from the
//! whole fleet finds out, and every worker closes together.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use flexiai_backend::{MemoryBackend, SyncBackend};
use flexiai_backend_redis::{RedisBackend, RedisConfig};
use flexiai_breaker::{BreakerConfig, CircuitBreaker};
use flexiai_events::CircuitState;
use flexiai_sync::{StateSyncManager, SyncOptions};
use tokio::task::JoinSet;
use tokio::time::sleep;

const PRIMARY: &str = "openai";
const SECONDARY: &str = "anthropic";

/// Options of `flexiai demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// How many workers the fleet has.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    workers: u16,
    /// Share state through this Redis (e.g. redis://127.0.0.1:6379) instead of in memory.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Requests per second each worker sends.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=2000))]
    rate: u32,
    /// Print only the summary, not the live view.
    #[arg(long)]
    quiet: bool,
}

/// A provider whose health the script controls.
struct FakeProvider {
    healthy: AtomicBool,
    calls: AtomicU64,
    probes: AtomicU64,
}

impl FakeProvider {
    fn new() -> Arc<Self> {
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
    manager: StateSyncManager,
    breakers: [Arc<CircuitBreaker>; 2],
}

/// When each worker's primary breaker first opened and first closed again, since the start.
struct Watch {
    opened: Vec<Option<Duration>>,
    closed: Vec<Option<Duration>>,
}

pub(crate) async fn run(args: DemoArgs) -> crate::Result<()> {
    let n = usize::from(args.workers);
    let backends = backends(&args, n).await?;
    let breaker_config = BreakerConfig {
        failure_threshold: 5,
        half_open_max_calls: 1,
        ..BreakerConfig::default()
    }
    .with_recovery_timeout(Duration::from_millis(1500));
    let options = SyncOptions {
        flush_interval: Duration::from_millis(20),
        reconcile_interval: Duration::from_secs(1),
        heartbeat_interval: Duration::from_millis(500),
        heartbeat_ttl: Duration::from_secs(3),
        probe_lease_ttl: Duration::from_secs(2),
        ..SyncOptions::default()
    };

    let mut workers = Vec::with_capacity(n);
    for backend in backends {
        let manager = StateSyncManager::builder(backend)
            .options(options.clone())
            .build()?;
        let primary = Arc::new(CircuitBreaker::new(PRIMARY, breaker_config.clone())?);
        let secondary = Arc::new(CircuitBreaker::new(SECONDARY, breaker_config.clone())?);
        manager.register_circuit_breaker(Arc::clone(&primary))?;
        manager.register_circuit_breaker(Arc::clone(&secondary))?;
        manager.start().await?;
        workers.push(Arc::new(Worker {
            manager,
            breakers: [primary, secondary],
        }));
    }

    let providers = [FakeProvider::new(), FakeProvider::new()];
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let backend_kind = workers[0].manager.backend().kind();
    println!(
        "flexiai demo: {n} workers, {} req/s each, state shared through {backend_kind}",
        args.rate
    );
    println!("  0.0s  {PRIMARY} healthy; it will fail from 3.0s to 8.0s");

    let mut tasks = JoinSet::new();
    for worker in &workers {
        let (worker, providers, tally, stop) = (
            Arc::clone(worker),
            providers.clone(),
            Arc::clone(&tally),
            Arc::clone(&stop),
        );
        let period = Duration::from_secs_f64(1.0 / f64::from(args.rate));
        tasks.spawn(async move { serve(worker, providers, tally, stop, period).await });
    }

    let mut watch = Watch {
        opened: vec![None; n],
        closed: vec![None; n],
    };
    let mut next_view = Duration::ZERO;
    let mut announced_outage = false;
    let mut announced_recovery = false;
    let total = Duration::from_secs(12);
    while start.elapsed() < total {
        let now = start.elapsed();
        if !announced_outage && now >= Duration::from_secs(3) {
            providers[0].healthy.store(false, Ordering::Relaxed);
            announced_outage = true;
            println!("{:>5.1}s  {PRIMARY} starts failing", now.as_secs_f64());
        }
        if !announced_recovery && now >= Duration::from_secs(8) {
            providers[0].healthy.store(true, Ordering::Relaxed);
            announced_recovery = true;
            println!("{:>5.1}s  {PRIMARY} is healthy again", now.as_secs_f64());
        }
        for (i, worker) in workers.iter().enumerate() {
            let state = worker.breakers[0].state();
            if watch.opened[i].is_none() && state == CircuitState::Open {
                watch.opened[i] = Some(now);
            }
            if watch.opened[i].is_some()
                && watch.closed[i].is_none()
                && state == CircuitState::Closed
            {
                watch.closed[i] = Some(now);
            }
        }
        if !args.quiet && now >= next_view {
            print_view(now, &workers, &tally);
            next_view += Duration::from_millis(500);
        }
        sleep(Duration::from_millis(1)).await;
    }
    stop.store(true, Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}

    summary(&workers, &providers, &tally, &watch);
    for worker in &workers {
        worker.manager.stop().await?;
    }
    Ok(())
}

async fn backends(args: &DemoArgs, n: usize) -> crate::Result<Vec<Arc<dyn SyncBackend>>> {
    match &args.redis {
        None => {
            let shared = MemoryBackend::new();
            Ok((0..n)
                .map(|_| Arc::new(shared.clone()) as Arc<dyn SyncBackend>)
                .collect())
        }
        Some(url) => {
            // A fresh key prefix per run, so demos never see each other's state.
            let prefix = format!("flexiai-demo-{}", std::process::id());
            let mut backends: Vec<Arc<dyn SyncBackend>> = Vec::with_capacity(n);
            for _ in 0..n {
                let config = RedisConfig::from_url(url)?
                    .key_prefix(prefix.clone())
                    .channel(format!("{prefix}:events"))
                    .state_ttl(Some(Duration::from_secs(120)));
                backends.push(Arc::new(RedisBackend::connect(config).await?));
            }
            Ok(backends)
        }
    }
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

fn print_view(now: Duration, workers: &[Arc<Worker>], tally: &Tally) {
    let states: Vec<String> = workers
        .iter()
        .enumerate()
        .map(|(i, w)| format!("w{}:{:<9}", i + 1, w.breakers[0].state().as_str()))
        .collect();
    let synced = workers
        .iter()
        .filter(|w| w.manager.health().is_synced())
        .count();
    println!(
        "{:>5.1}s  {PRIMARY} {}| served {PRIMARY} {:>5} {SECONDARY} {:>5} | synced {synced}/{}",
        now.as_secs_f64(),
        states.join(" "),
        tally.served_primary.load(Ordering::Relaxed),
        tally.served_secondary.load(Ordering::Relaxed),
        workers.len(),
    );
}

fn spread(times: &[Option<Duration>]) -> Option<(Duration, Duration)> {
    let seen: Vec<Duration> = times.iter().flatten().copied().collect();
    if seen.len() != times.len() {
        return None;
    }
    let first = *seen.iter().min()?;
    let last = *seen.iter().max()?;
    Some((first, last - first))
}

fn summary(
    workers: &[Arc<Worker>],
    providers: &[Arc<FakeProvider>; 2],
    tally: &Tally,
    watch: &Watch,
) {
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    println!();
    println!("summary");
    println!(
        "  requests served by {PRIMARY:<10} {:>6}",
        load(&tally.served_primary)
    );
    println!(
        "  requests served by {SECONDARY:<10} {:>6}",
        load(&tally.served_secondary)
    );
    println!(
        "  failovers                     {:>6}",
        load(&tally.failovers)
    );
    println!(
        "  requests no provider served   {:>6}",
        load(&tally.unserved)
    );
    println!(
        "  calls that reached {PRIMARY:<10} {:>6} (of which half-open probes: {})",
        load(&providers[0].calls),
        load(&providers[0].probes)
    );
    match spread(&watch.opened) {
        Some((first, took)) => println!(
            "  {PRIMARY} opened on the first worker at {:.2}s; every worker was open {:.1} ms later",
            first.as_secs_f64(),
            took.as_secs_f64() * 1e3
        ),
        None => println!("  {PRIMARY} did not open on every worker"),
    }
    match spread(&watch.closed) {
        Some((first, took)) => println!(
            "  {PRIMARY} closed on the first worker at {:.2}s; every worker was closed {:.1} ms later",
            first.as_secs_f64(),
            took.as_secs_f64() * 1e3
        ),
        None => println!("  {PRIMARY} did not close again on every worker"),
    }
    let published: u64 = workers
        .iter()
        .map(|w| w.manager.metrics().events_published)
        .sum();
    let received: u64 = workers
        .iter()
        .map(|w| w.manager.metrics().events_received)
        .sum();
    println!("  sync events published {published}, received {received}");
}
