//! `flexiai worker`: one fleet worker driven over stdin, answering on stdout, one JSON object
//! per line. Multi-process tests spawn several against one Redis and steer them.
//!
//! Commands (one per line): `state P`, `fail P N`, `succeed P N`, `probe P` (take a permit
//! and hold it), `settle P success|failure`, `force_open P`, `disable P`, `reset P`,
//! `wait P STATE TIMEOUT_MS`, `stored P` (the store's snapshot, read through this worker's
//! backend), `health`, `quit`.
//!
//! For the chaos runner, `fail`/`succeed` replies also carry what the batch saw: the longest
//! admission (acquire plus recording the outcome, in microseconds, measured here), the
//! versions of the probes admitted, whether the manager was synced before and after, and
//! `transitions`: every transition this worker's breakers made since the previous such
//! reply (from a breaker observer, with version and reason).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use flexiai_backend_redis::{RedisBackend, RedisConfig};
use flexiai_breaker::{BreakerConfig, BreakerObserver, CircuitBreaker, FailurePolicy, Transition};
use flexiai_events::{CircuitState, Timestamp};
use flexiai_sync::{StateSyncManager, SyncOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Options of `flexiai worker`.
#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// The Redis to share state through.
    #[arg(long)]
    redis: String,
    /// Key prefix (the channel is `{prefix}:events`).
    #[arg(long, default_value = "flexiai")]
    prefix: String,
    /// Comma-separated provider names.
    #[arg(long, default_value = "openai")]
    providers: String,
    /// Breaker failure threshold (consecutive failures, counted by this worker alone).
    #[arg(long, default_value_t = 5)]
    threshold: u32,
    /// Use the failure-rate policy instead (50% over 30 s, at least this many calls),
    /// which the fleet counts together in the store.
    #[arg(long)]
    rate_min_calls: Option<u32>,
    /// Breaker recovery timeout, in milliseconds.
    #[arg(long, default_value_t = 60_000)]
    recovery_ms: u64,
    /// Fleet-wide half-open probe budget.
    #[arg(long, default_value_t = 1)]
    half_open_max: u32,
    /// Redis command timeout, in milliseconds.
    #[arg(long, default_value_t = 300)]
    command_timeout_ms: u64,
}

/// Records the transitions of this worker's breakers for the chaos runner (a test harness:
/// a mutex is fine here, it is not the library's hot path).
#[derive(Debug, Default)]
struct Recorder {
    names: Mutex<HashMap<u64, String>>,
    log: Mutex<Vec<Value>>,
}

impl BreakerObserver for Recorder {
    fn on_transition(&self, t: &Transition) {
        let name = self
            .names
            .lock()
            .ok()
            .and_then(|n| n.get(&t.breaker.get()).cloned())
            .unwrap_or_default();
        if let Ok(mut log) = self.log.lock() {
            log.push(json!({
                "provider": name,
                "from": t.from.as_str(),
                "to": t.to.as_str(),
                "version": t.version,
                "reason": format!("{:?}", t.reason),
                "at_micros": t.at.unix_micros(),
            }));
        }
    }
}

impl Recorder {
    fn drain(&self) -> Value {
        self.log
            .lock()
            .map(|mut log| Value::Array(std::mem::take(&mut *log)))
            .unwrap_or(Value::Null)
    }
}

pub(crate) async fn run(args: WorkerArgs) -> crate::Result<()> {
    let config = RedisConfig::from_url(&args.redis)?
        .key_prefix(args.prefix.clone())
        .channel(format!("{}:events", args.prefix))
        .command_timeout(Duration::from_millis(args.command_timeout_ms))
        .connect_timeout(Duration::from_millis(args.command_timeout_ms))
        .keepalive_interval(Duration::from_millis(200))
        .state_ttl(Some(Duration::from_secs(300)));
    let backend = Arc::new(RedisBackend::new(config)?);
    let options = SyncOptions::builder()
        .flush_interval(Duration::from_millis(10))
        .reconcile_interval(Duration::from_millis(500))
        .heartbeat_interval(Duration::from_millis(100))
        .heartbeat_ttl(Duration::from_millis(1000))
        .operation_timeout(Duration::from_millis(args.command_timeout_ms))
        .probe_lease_ttl(Duration::from_secs(5))
        .min_retry_backoff(Duration::from_millis(20))
        .max_retry_backoff(Duration::from_millis(200))
        .build()?;
    let manager = StateSyncManager::builder(backend)
        .options(options)
        .build()?;
    let mut breaker_config = BreakerConfig::builder()
        .failure_threshold(args.threshold)
        .half_open_max_calls(args.half_open_max)
        .build()?
        .with_recovery_timeout(Duration::from_millis(args.recovery_ms));
    if let Some(minimum_calls) = args.rate_min_calls {
        breaker_config.failure_policy =
            FailurePolicy::failure_rate(Duration::from_secs(30), minimum_calls, 0.5);
    }
    let mut breakers = HashMap::new();
    let recorder = Arc::new(Recorder::default());
    for name in args.providers.split(',').filter(|s| !s.is_empty()) {
        let breaker = Arc::new(CircuitBreaker::new(name, breaker_config.clone())?);
        if let Ok(mut names) = recorder.names.lock() {
            names.insert(breaker.id().get(), name.to_owned());
        }
        breaker.add_observer(Arc::clone(&recorder) as Arc<dyn BreakerObserver>);
        manager.register_circuit_breaker(Arc::clone(&breaker))?;
        breakers.insert(name.to_owned(), breaker);
    }
    manager.start().await?;
    println!(
        "{}",
        json!({"ready": true, "worker_id": manager.worker_id().as_str()})
    );

    let mut held = HashMap::new();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"quit") {
            break;
        }
        let reply = match handle(&words, &breakers, &manager, &mut held, &recorder).await {
            Ok(value) => value,
            Err(message) => json!({"error": message}),
        };
        println!("{reply}");
    }
    drop(held);
    manager.stop().await?;
    Ok(())
}

fn state_json(breaker: &CircuitBreaker) -> Value {
    json!({"state": breaker.state().as_str(), "version": breaker.version(), "at_micros": Timestamp::now().unix_micros()})
}

async fn handle<'a>(
    words: &[&str],
    breakers: &'a HashMap<String, Arc<CircuitBreaker>>,
    manager: &StateSyncManager,
    held: &mut HashMap<String, flexiai_breaker::Permit<'a>>,
    recorder: &Recorder,
) -> Result<Value, String> {
    let breaker = |i: usize| {
        words
            .get(i)
            .and_then(|name| breakers.get(*name))
            .ok_or_else(|| format!("unknown provider in {words:?}"))
    };
    let number = |i: usize| -> Result<u64, String> {
        words
            .get(i)
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("expected a number at position {i} in {words:?}"))
    };
    match words.first().copied() {
        Some("state") => Ok(state_json(breaker(1)?)),
        Some("fail" | "succeed") => {
            let b = breaker(1)?;
            let synced_before = manager.health().is_synced();
            let (mut admitted, mut rejected, mut max_admit) = (0, 0, Duration::ZERO);
            let mut probes = Vec::new();
            for _ in 0..number(2)? {
                let started = Instant::now();
                match b.try_acquire() {
                    Ok(permit) => {
                        if permit.is_probe() {
                            probes.push(permit.version());
                        }
                        if words[0] == "fail" {
                            permit.failure();
                        } else {
                            permit.success();
                        }
                        admitted += 1;
                    }
                    Err(_) => rejected += 1,
                }
                max_admit = max_admit.max(started.elapsed());
            }
            let mut reply = state_json(b);
            reply["admitted"] = admitted.into();
            reply["rejected"] = rejected.into();
            reply["max_admit_us"] = u64::try_from(max_admit.as_micros())
                .unwrap_or(u64::MAX)
                .into();
            reply["probes"] = probes.into();
            reply["synced"] = (synced_before && manager.health().is_synced()).into();
            reply["transitions"] = recorder.drain();
            Ok(reply)
        }
        Some("probe") => {
            let name = words.get(1).copied().unwrap_or_default();
            match breaker(1)?.try_acquire() {
                Ok(permit) => {
                    let probe = permit.is_probe();
                    held.insert(name.to_owned(), permit);
                    Ok(json!({"admitted": true, "probe": probe}))
                }
                Err(rejected) => Ok(json!({"admitted": false, "state": rejected.state.as_str()})),
            }
        }
        Some("settle") => {
            let name = words.get(1).copied().unwrap_or_default();
            let permit = held.remove(name).ok_or("no permit held")?;
            match words.get(2).copied() {
                Some("success") => permit.success(),
                Some("failure") => permit.failure(),
                _ => return Err("settle P success|failure".into()),
            }
            Ok(state_json(breaker(1)?))
        }
        Some("force_open") => {
            breaker(1)?.force_open();
            Ok(state_json(breaker(1)?))
        }
        Some("disable") => {
            breaker(1)?.disable();
            Ok(state_json(breaker(1)?))
        }
        Some("reset") => {
            breaker(1)?.reset();
            Ok(state_json(breaker(1)?))
        }
        Some("wait") => {
            let b = breaker(1)?;
            let target: CircuitState = words
                .get(2)
                .and_then(|s| s.parse().ok())
                .ok_or("wait P STATE TIMEOUT_MS")?;
            let deadline = Instant::now() + Duration::from_millis(number(3)?);
            // Polls the lock-free state word: cheap, and the first poll after the change sees it.
            while b.state() != target && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            let mut reply = state_json(b);
            reply["reached"] = (b.state() == target).into();
            Ok(reply)
        }
        Some("stored") => {
            let name = words.get(1).copied().unwrap_or_default();
            breaker(1)?;
            let read = tokio::time::timeout(
                manager.options().operation_timeout,
                manager.backend().get_state(name),
            )
            .await;
            match read {
                Ok(Ok(Some(s))) => {
                    Ok(json!({"stored": {"state": s.state.as_str(), "version": s.version}}))
                }
                Ok(Ok(None)) => Ok(json!({"stored": null})),
                Ok(Err(e)) => Err(format!("stored {name}: {e}")),
                Err(_) => Err(format!("stored {name}: timed out")),
            }
        }
        Some("health") => {
            let health = manager.health();
            Ok(json!({
                "mode": match health.mode { flexiai_sync::SyncMode::Synced => "synced", flexiai_sync::SyncMode::Degraded { .. } => "degraded", flexiai_sync::SyncMode::Stopped => "stopped", _ => "unknown" },
                "published": health.metrics.events_published,
                "received": health.metrics.events_received,
                "rejected": health.metrics.events_rejected,
                "backend_errors": health.metrics.backend_errors,
            }))
        }
        _ => Err(format!("unknown command {words:?}")),
    }
}
