//! `flexiai worker`: one fleet worker driven over stdin, answering on stdout, one JSON object
//! per line. Multi-process tests spawn several against one Redis and steer them.
//!
//! Commands (one per line): `state P`, `fail P N`, `succeed P N`, `probe P` (take a permit
//! and hold it), `settle P success|failure`, `force_open P`, `disable P`, `reset P`,
//! `wait P STATE TIMEOUT_MS`, `health`, `quit`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use flexiai_backend_redis::{RedisBackend, RedisConfig};
use flexiai_breaker::{BreakerConfig, CircuitBreaker};
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
    /// Breaker failure threshold.
    #[arg(long, default_value_t = 5)]
    threshold: u32,
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

pub(crate) async fn run(args: WorkerArgs) -> crate::Result<()> {
    let config = RedisConfig::from_url(&args.redis)?
        .key_prefix(args.prefix.clone())
        .channel(format!("{}:events", args.prefix))
        .command_timeout(Duration::from_millis(args.command_timeout_ms))
        .connect_timeout(Duration::from_millis(args.command_timeout_ms))
        .keepalive_interval(Duration::from_millis(200))
        .state_ttl(Some(Duration::from_secs(300)));
    let backend = Arc::new(RedisBackend::new(config)?);
    let options = SyncOptions {
        flush_interval: Duration::from_millis(10),
        reconcile_interval: Duration::from_millis(500),
        heartbeat_interval: Duration::from_millis(100),
        heartbeat_ttl: Duration::from_millis(1000),
        operation_timeout: Duration::from_millis(args.command_timeout_ms),
        probe_lease_ttl: Duration::from_secs(5),
        min_retry_backoff: Duration::from_millis(20),
        max_retry_backoff: Duration::from_millis(200),
        ..SyncOptions::default()
    };
    let manager = StateSyncManager::builder(backend)
        .options(options)
        .build()?;
    let breaker_config = BreakerConfig {
        failure_threshold: args.threshold,
        half_open_max_calls: args.half_open_max,
        ..BreakerConfig::default()
    }
    .with_recovery_timeout(Duration::from_millis(args.recovery_ms));
    let mut breakers = HashMap::new();
    for name in args.providers.split(',').filter(|s| !s.is_empty()) {
        let breaker = Arc::new(CircuitBreaker::new(name, breaker_config.clone())?);
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
        let reply = match handle(&words, &breakers, &manager, &mut held).await {
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
            let (mut admitted, mut rejected) = (0, 0);
            for _ in 0..number(2)? {
                match b.try_acquire() {
                    Ok(permit) if words[0] == "fail" => {
                        permit.failure();
                        admitted += 1;
                    }
                    Ok(permit) => {
                        permit.success();
                        admitted += 1;
                    }
                    Err(_) => rejected += 1,
                }
            }
            let mut reply = state_json(b);
            reply["admitted"] = admitted.into();
            reply["rejected"] = rejected.into();
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
        Some("health") => {
            let health = manager.health();
            Ok(json!({
                "mode": match health.mode { flexiai_sync::SyncMode::Synced => "synced", flexiai_sync::SyncMode::Degraded { .. } => "degraded", flexiai_sync::SyncMode::Stopped => "stopped" },
                "published": health.metrics.events_published,
                "received": health.metrics.events_received,
                "rejected": health.metrics.events_rejected,
                "backend_errors": health.metrics.backend_errors,
            }))
        }
        _ => Err(format!("unknown command {words:?}")),
    }
}
