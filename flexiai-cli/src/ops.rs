//! Operating a Redis-synced fleet from outside it: `status`, `watch`, `workers`, and the
//! manual controls `force-open`, `disable` and `reset`, which reach every worker because they
//! write the next version of the provider's history, as a worker's own transition would.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use flexiai_backend::{Notification, SyncBackend};
use flexiai_backend_redis::{RedisBackend, RedisConfig};
use flexiai_events::{CircuitState, Event, Timestamp, WorkerId};

/// Where the fleet's state lives.
#[derive(Debug, Clone, Args)]
pub(crate) struct FleetArgs {
    /// The fleet's Redis.
    #[arg(
        long,
        env = "FLEXIAI_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis: String,
    /// The fleet's key prefix (`key_prefix` in the sync config).
    #[arg(long, default_value = "flexiai")]
    prefix: String,
    /// The fleet's events channel; defaults to `{prefix}:events`.
    #[arg(long)]
    channel: Option<String>,
}

impl FleetArgs {
    fn channel(&self) -> String {
        self.channel
            .clone()
            .unwrap_or_else(|| format!("{}:events", self.prefix))
    }

    async fn backend(&self) -> crate::Result<Arc<dyn SyncBackend>> {
        let config = RedisConfig::from_url(&self.redis)?
            .key_prefix(self.prefix.clone())
            .channel(self.channel());
        Ok(Arc::new(RedisBackend::connect(config).await?))
    }

    /// Every provider with a stored snapshot, by SCAN (never KEYS: it would block Redis).
    async fn providers(&self) -> crate::Result<Vec<String>> {
        let client = redis::Client::open(self.redis.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let prefix = format!("{}:state:", self.prefix);
        let pattern = format!("{}*", escape_glob(&prefix));
        let mut cursor: u64 = 0;
        let mut providers = Vec::new();
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .query_async(&mut conn)
                .await?;
            providers.extend(
                keys.into_iter()
                    .filter_map(|k| k.strip_prefix(&prefix).map(str::to_owned)),
            );
            if next == 0 {
                break;
            }
            cursor = next;
        }
        providers.sort();
        providers.dedup();
        Ok(providers)
    }
}

fn escape_glob(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '*' | '?' | '[' | ']' | '\\' => vec!['\\', c],
            _ => vec![c],
        })
        .collect()
}

/// Options of `flexiai watch`.
#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    #[command(flatten)]
    fleet: FleetArgs,
    /// Stop after this many events (default: run until interrupted).
    #[arg(long)]
    count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    seconds: Option<u64>,
}

/// Options of the manual controls.
#[derive(Debug, Args)]
pub(crate) struct ControlArgs {
    #[command(flatten)]
    fleet: FleetArgs,
    /// The provider to act on.
    provider: String,
}

/// `flexiai status`: the fleet-wide breaker table.
pub(crate) async fn status(fleet: FleetArgs) -> crate::Result<()> {
    let backend = fleet.backend().await?;
    let providers = fleet.providers().await?;
    let workers = backend.live_workers().await?;
    println!(
        "fleet {} on {} ({} live workers)",
        fleet.prefix,
        redact(&fleet.redis),
        workers.len()
    );
    if providers.is_empty() {
        println!("no stored breaker state under {}:state:*", fleet.prefix);
        return Ok(());
    }
    println!(
        "{:<24} {:<12} {:>8} {:>9} {:>9} {:>10}  last change (by)",
        "provider", "state", "version", "failures", "successes", "open left"
    );
    let snapshots = backend.get_states(&providers).await?;
    for (provider, snapshot) in providers.iter().zip(snapshots) {
        let Some(s) = snapshot else {
            println!("{provider:<24} (unreadable or expired)");
            continue;
        };
        let open_left = s
            .open_remaining_ms
            .filter(|_| s.state == CircuitState::Open)
            .map_or_else(
                || "-".to_owned(),
                |ms| format!("{:.1}s", ms as f64 / 1000.0),
            );
        let changed = s
            .state_changed_at
            .map_or_else(|| "-".to_owned(), |t| t.to_string());
        let by = s.updated_by.as_ref().map_or("-", WorkerId::as_str);
        println!(
            "{provider:<24} {:<12} {:>8} {:>9} {:>9} {:>10}  {changed} ({by})",
            s.state.as_str(),
            s.version,
            s.failure_count,
            s.success_count,
            open_left
        );
    }
    Ok(())
}

/// `flexiai workers`: live workers from their heartbeats.
pub(crate) async fn workers(fleet: FleetArgs) -> crate::Result<()> {
    let backend = fleet.backend().await?;
    let workers = backend.live_workers().await?;
    println!("{} live workers", workers.len());
    for worker in workers {
        println!("{worker}");
    }
    Ok(())
}

/// `flexiai watch`: a live tail of the events channel.
pub(crate) async fn watch(args: WatchArgs) -> crate::Result<()> {
    let backend = args.fleet.backend().await?;
    let mut subscription = backend.subscribe().await?;
    println!("watching {} (Ctrl-C to stop)", args.fleet.channel());
    let deadline = args
        .seconds
        .map(|s| Instant::now() + Duration::from_secs(s));
    let mut seen = 0;
    loop {
        if args.count.is_some_and(|count| seen >= count) {
            return Ok(());
        }
        let wait = deadline.map_or(Duration::from_secs(3600), |d| {
            d.saturating_duration_since(Instant::now())
        });
        if wait.is_zero() {
            return Ok(());
        }
        let next = tokio::select! {
            next = tokio::time::timeout(wait, subscription.recv()) => next,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        match next {
            Err(_) => return Ok(()),
            Ok(None) => return Err("the subscription ended".into()),
            Ok(Some(notification)) => {
                println!("{}", describe(&notification));
                if matches!(notification, Notification::Event(_)) {
                    seen += 1;
                }
            }
        }
    }
}

fn describe(notification: &Notification) -> String {
    match notification {
        Notification::Event(Event::CircuitBreakerEvent(e)) => {
            let what = match (e.target_state(), e.metadata.version) {
                (Some(state), Some(v)) => format!("-> {state} (v{v})"),
                (Some(state), None) => format!("-> {state} (unversioned)"),
                (None, _) => format!(
                    "{} failures, {} successes",
                    e.metadata.failure_delta.unwrap_or(0),
                    e.metadata.success_delta.unwrap_or(0)
                ),
            };
            format!(
                "{} {:<16} {:<10} {what}  [{}]",
                e.timestamp,
                e.provider_name,
                e.event_type.as_str(),
                e.worker_id
            )
        }
        Notification::Event(Event::StateUpdateEvent(e)) => format!(
            "{} {:<16} {:<10} {} (v{})  [{}]",
            e.timestamp,
            e.provider_name,
            "snapshot",
            e.state_data.state,
            e.state_data.version,
            e.worker_id
        ),
        Notification::Rejected(error) => {
            format!("{} rejected payload: {}", Timestamp::now(), error.reason())
        }
        Notification::Resubscribed => format!(
            "{} resubscribed (events may have been missed)",
            Timestamp::now()
        ),
        Notification::Disconnected => format!(
            "{} disconnected (events are being missed until resubscribed)",
            Timestamp::now()
        ),
        Notification::Lagged { missed } => {
            format!("{} lagged: {missed} events dropped", Timestamp::now())
        }
    }
}

/// `flexiai force-open|disable|reset P`.
pub(crate) async fn control(args: ControlArgs, state: CircuitState) -> crate::Result<()> {
    let backend = args.fleet.backend().await?;
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "operator".into());
    let actor = WorkerId::new(format!(
        "flexiai-cli@{host}:{}:{}",
        std::process::id(),
        Timestamp::now().unix_millis()
    ))?;
    let written = flexiai_sync::override_state(&backend, &args.provider, state, &actor).await?;
    println!(
        "{} is now {} on every worker of {} (version {})",
        args.provider, written.state, args.fleet.prefix, written.version
    );
    Ok(())
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://<credentials>@{host}"),
        _ => url.to_owned(),
    }
}
