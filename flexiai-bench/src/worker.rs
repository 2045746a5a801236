//! The worker processes the orchestrator spawns: `fleet-bench worker --mode flexiai|raw-sub|raw-pub`.
//!
//! Each reads one command per line on stdin and answers one JSON object per line on stdout.
//!
//! * `flexiai`: a `StateSyncManager` over a `RedisBackend` with one breaker `p`. A watcher
//!   thread (started by `arm`) polls the breaker's lock-free state word every 50 µs and records the
//!   wall-clock microsecond at which each new version becomes visible; `transitions N GAP_US`
//!   makes N transitions (alternating `force_open` / `reset`) and returns when each was made;
//!   `load RATE` starts a call loop against a fake provider that fails from `die AT_MICROS`
//!   until `heal`.
//! * `raw-sub`: a plain redis-rs async pub/sub subscriber on `--channel`. Each message's
//!   sequence number (leading decimal digits, or `metadata.version` of a flexiai JSON event)
//!   is stored into an atomic that the same polling watcher observes, so the raw baseline is
//!   observed exactly like the flexiai receivers; the handler also records its own arrival
//!   time ("direct").
//! * `raw-pub`: `transitions N GAP_US` publishes N padded messages with plain `PUBLISH`.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use flexiai_backend_redis::{RedisBackend, RedisConfig};
use flexiai_breaker::{BreakerConfig, CircuitBreaker};
use flexiai_events::CircuitState;
use flexiai_sync::{StateSyncManager, SyncOptions};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::now_micros;

/// Size of a raw baseline message, close to a flexiai JSON transition event.
pub(crate) const RAW_PAYLOAD_BYTES: usize = 420;

/// Command-line options of a worker process.
#[derive(Debug, clap::Args)]
pub(crate) struct WorkerArgs {
    /// `flexiai`, `raw-sub` or `raw-pub`.
    #[arg(long)]
    mode: String,
    /// The Redis URL.
    #[arg(long)]
    redis: String,
    /// Key prefix (flexiai) and channel `{prefix}:events`.
    #[arg(long)]
    prefix: String,
    /// Channel for the raw modes (defaults to `{prefix}:events`).
    #[arg(long)]
    channel: Option<String>,
    /// Breaker failure threshold (flexiai mode).
    #[arg(long, default_value_t = 5)]
    threshold: u32,
}

/// Locks a mutex, ignoring poisoning (a panicked recorder loses nothing we need).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How often a watcher polls the state word. A poll is a `nanosleep` with the thread's
/// timer slack set to 1 µs, so the observed instant is at most about this much late (the
/// same for flexiai and the raw baseline), and 17 watchers on 2 cores cost a few percent of
/// a core instead of saturating it as spinning would.
pub(crate) const POLL_MICROS: u64 = 50;

/// Polls `read` every [`POLL_MICROS`] and records each new value with the time it became
/// visible, until `stop` is set.
fn spawn_watcher(
    read: impl Fn() -> (u64, u64) + Send + 'static,
    seen: Arc<Mutex<Vec<[u64; 3]>>>,
    stop: Arc<AtomicBool>,
) {
    std::thread::spawn(move || {
        let _ = nix::sys::prctl::set_timerslack(1_000);
        let (mut last, _) = read();
        while !stop.load(Ordering::Relaxed) {
            let (value, tag) = read();
            if value != last {
                let at = now_micros();
                last = value;
                lock(&seen).push([value, tag, at]);
            }
            std::thread::sleep(Duration::from_micros(POLL_MICROS));
        }
    });
}

fn reply(value: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

fn state_code(state: CircuitState) -> u64 {
    match state {
        CircuitState::Closed => 0,
        CircuitState::Open => 1,
        CircuitState::HalfOpen => 2,
        CircuitState::ForcedOpen => 3,
        CircuitState::Disabled => 4,
    }
}

/// Runs a worker until `quit` or end of input.
pub(crate) async fn run(args: WorkerArgs) -> crate::Result<()> {
    match args.mode.as_str() {
        "flexiai" => run_flexiai(args).await,
        "raw-sub" => run_raw_sub(args).await,
        "raw-pub" => run_raw_pub(args).await,
        other => Err(format!("unknown worker mode {other}").into()),
    }
}

/// The manager and backend configuration every flexiai worker of the bench uses: the
/// library defaults, with the prefix and channel of this run.
pub(crate) fn redis_config(url: &str, prefix: &str) -> crate::Result<RedisConfig> {
    Ok(RedisConfig::from_url(url)?
        .key_prefix(prefix.to_owned())
        .channel(format!("{prefix}:events")))
}

async fn run_flexiai(args: WorkerArgs) -> crate::Result<()> {
    let backend = Arc::new(RedisBackend::new(redis_config(&args.redis, &args.prefix)?)?);
    let manager = StateSyncManager::builder(backend)
        .options(SyncOptions::default())
        .build()?;
    let config = BreakerConfig::builder()
        .failure_threshold(args.threshold)
        .build()?
        .with_recovery_timeout(Duration::from_secs(60));
    let breaker = Arc::new(CircuitBreaker::new("p", config)?);
    manager.register_circuit_breaker(Arc::clone(&breaker))?;
    manager.start().await?;
    reply(&json!({"ready": true}));

    let seen = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let die_at = Arc::new(AtomicU64::new(u64::MAX));
    let load_running = Arc::new(AtomicBool::new(false));
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let words: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| -> u64 { words.get(i).and_then(|w| w.parse().ok()).unwrap_or(0) };
        match words.first().copied() {
            Some("arm") => {
                let b = Arc::clone(&breaker);
                spawn_watcher(
                    move || (b.version(), state_code(b.state())),
                    Arc::clone(&seen),
                    Arc::clone(&stop),
                );
                reply(&json!({"ok": true}));
            }
            Some("transitions") => {
                let (count, gap) = (num(1), num(2));
                let b = Arc::clone(&breaker);
                let sent = tokio::task::spawn_blocking(move || {
                    let mut sent = Vec::new();
                    for i in 0..count {
                        std::thread::sleep(Duration::from_micros(gap + (i * 7919) % 1000));
                        let at = now_micros();
                        let version = if b.state() == CircuitState::ForcedOpen {
                            b.reset()
                        } else {
                            b.force_open()
                        };
                        sent.push([version, at]);
                    }
                    sent
                })
                .await?;
                reply(&json!({"sent": sent}));
            }
            Some("load") => {
                let rate = num(1).max(1);
                if !load_running.swap(true, Ordering::AcqRel) {
                    let b = Arc::clone(&breaker);
                    let die = Arc::clone(&die_at);
                    let stop = Arc::clone(&stop);
                    std::thread::spawn(move || {
                        let period = Duration::from_micros(1_000_000 / rate);
                        while !stop.load(Ordering::Relaxed) {
                            if let Ok(permit) = b.try_acquire() {
                                if now_micros() >= die.load(Ordering::Relaxed) {
                                    permit.failure();
                                } else {
                                    permit.success();
                                }
                            }
                            std::thread::sleep(period);
                        }
                    });
                }
                reply(&json!({"ok": true}));
            }
            Some("die") => {
                die_at.store(num(1), Ordering::Relaxed);
                reply(&json!({"ok": true}));
            }
            Some("heal") => {
                die_at.store(u64::MAX, Ordering::Relaxed);
                reply(&json!({"ok": true}));
            }
            Some("reset") => {
                let version = breaker.reset();
                reply(&json!({"version": version}));
            }
            Some("state") => reply(&json!({
                "version": breaker.version(),
                "state": breaker.state().as_str(),
            })),
            Some("report") => {
                let taken = std::mem::take(&mut *lock(&seen));
                reply(&json!({"seen": taken}));
            }
            Some("health") => {
                let health = manager.health();
                reply(&json!({
                    "synced": health.is_synced(),
                    "published": health.metrics.events_published,
                    "received": health.metrics.events_received,
                    "applied": health.metrics.events_applied,
                }));
            }
            Some("quit") | None => break,
            Some(other) => reply(&json!({"error": format!("unknown command {other}")})),
        }
    }
    stop.store(true, Ordering::Relaxed);
    manager.stop().await?;
    Ok(())
}

/// The sequence number a raw subscriber reads from a message.
fn sequence_of(payload: &[u8]) -> Option<u64> {
    let digits: &[u8] = {
        let end = payload
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(payload.len());
        &payload[..end]
    };
    if !digits.is_empty() {
        return std::str::from_utf8(digits).ok()?.parse().ok();
    }
    let value: Value = serde_json::from_slice(payload).ok()?;
    value
        .get("metadata")
        .and_then(|m| m.get("version"))
        .and_then(Value::as_u64)
        .or_else(|| {
            value
                .get("state_data")
                .and_then(|s| s.get("version"))
                .and_then(Value::as_u64)
        })
}

async fn run_raw_sub(args: WorkerArgs) -> crate::Result<()> {
    let channel = args
        .channel
        .clone()
        .unwrap_or_else(|| format!("{}:events", args.prefix));
    let client = redis::Client::open(args.redis.as_str())?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(&channel).await?;
    let latest = Arc::new(AtomicU64::new(0));
    let direct = Arc::new(Mutex::new(Vec::<[u64; 2]>::new()));
    {
        let latest = Arc::clone(&latest);
        let direct = Arc::clone(&direct);
        tokio::spawn(async move {
            let mut stream = pubsub.on_message();
            while let Some(message) = stream.next().await {
                let at = now_micros();
                if let Some(seq) = sequence_of(message.get_payload_bytes()) {
                    latest.store(seq, Ordering::Release);
                    lock(&direct).push([seq, at]);
                }
            }
        });
    }
    reply(&json!({"ready": true}));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        match line.split_whitespace().next() {
            Some("arm") => {
                let l = Arc::clone(&latest);
                spawn_watcher(
                    move || (l.load(Ordering::Acquire), 0),
                    Arc::clone(&seen),
                    Arc::clone(&stop),
                );
                reply(&json!({"ok": true}));
            }
            Some("report") => {
                let taken = std::mem::take(&mut *lock(&seen));
                let direct = std::mem::take(&mut *lock(&direct));
                reply(&json!({"seen": taken, "direct": direct}));
            }
            Some("quit") | None => break,
            Some(other) => reply(&json!({"error": format!("unknown command {other}")})),
        }
    }
    stop.store(true, Ordering::Relaxed);
    Ok(())
}

async fn run_raw_pub(args: WorkerArgs) -> crate::Result<()> {
    let channel = args
        .channel
        .clone()
        .unwrap_or_else(|| format!("{}:events", args.prefix));
    let client = redis::Client::open(args.redis.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    reply(&json!({"ready": true}));
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut seq = 0u64;
    while let Some(line) = lines.next_line().await? {
        let words: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| -> u64 { words.get(i).and_then(|w| w.parse().ok()).unwrap_or(0) };
        match words.first().copied() {
            Some("transitions") => {
                let (count, gap) = (num(1), num(2));
                let mut sent = Vec::new();
                for i in 0..count {
                    // Same pacing as the flexiai sender, on a blocking sleep too.
                    tokio::task::block_in_place(|| {
                        std::thread::sleep(Duration::from_micros(gap + (i * 7919) % 1000));
                    });
                    seq += 1;
                    let mut payload = seq.to_string().into_bytes();
                    payload.push(b'|');
                    payload.resize(RAW_PAYLOAD_BYTES, b'x');
                    let at = now_micros();
                    redis::cmd("PUBLISH")
                        .arg(&channel)
                        .arg(payload)
                        .query_async::<i64>(&mut conn)
                        .await?;
                    sent.push([seq, at]);
                }
                reply(&json!({"sent": sent}));
            }
            Some("quit") | None => break,
            Some(other) => reply(&json!({"error": format!("unknown command {other}")})),
        }
    }
    Ok(())
}
