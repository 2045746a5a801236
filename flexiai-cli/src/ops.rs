//! Operating a Redis-synced fleet from outside it: `status`, `watch`, `workers`, and the
//! manual controls `force-open`, `disable` and `reset`, which reach every worker because they
//! write the next version of the provider's history, as a worker's own transition would.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use flexiai_backend::{Notification, SyncBackend};
use flexiai_backend_redis::{KeyLayout, RedisBackend, RedisConfig, migrate_keys};
use flexiai_events::{CircuitState, Event, Timestamp, WorkerId};

/// Where the fleet's state lives.
#[derive(Debug, Clone, Args)]
pub(crate) struct FleetArgs {
    /// The fleet's Redis: `redis://host:port/db`, `rediss://...`,
    /// `redis+sentinel://sentinel1:26379,sentinel2/master-name[/db]` or
    /// `redis+cluster://node1:6379,node2:6379`.
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
    /// The fleet's key layout, `plain` (`flexiai:state:openai`) or `hash-tagged`
    /// (`{flexiai}:state:openai`); defaults to `hash-tagged` on a cluster, `plain` elsewhere.
    #[arg(long)]
    key_layout: Option<KeyLayout>,
    /// The Sentinels' own password, when they require one.
    #[arg(long, env = "FLEXIAI_SENTINEL_PASSWORD", hide_env_values = true)]
    sentinel_password: Option<String>,
}

impl FleetArgs {
    fn channel(&self) -> String {
        self.channel
            .clone()
            .unwrap_or_else(|| format!("{}:events", self.prefix))
    }

    fn config(&self) -> crate::Result<RedisConfig> {
        let mut config = RedisConfig::from_url(&self.redis)?
            .key_prefix(self.prefix.clone())
            .channel(self.channel());
        if let Some(layout) = self.key_layout {
            config = config.key_layout(layout);
        }
        if self.sentinel_password.is_some() {
            config = config.sentinel_auth(None, self.sentinel_password.clone());
        }
        Ok(config)
    }

    async fn redis_backend(&self) -> crate::Result<RedisBackend> {
        Ok(RedisBackend::connect(self.config()?).await?)
    }

    async fn backend(&self) -> crate::Result<Arc<dyn SyncBackend>> {
        Ok(Arc::new(self.redis_backend().await?))
    }
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
    let backend = fleet.redis_backend().await?;
    let providers = backend.stored_providers().await?;
    let workers = backend.live_workers().await?;
    let config = backend.config();
    println!(
        "fleet {} on {} ({} live workers)",
        fleet.prefix,
        config.display_addr(),
        workers.len()
    );
    if providers.is_empty() {
        println!(
            "no stored breaker state under {}:state:*",
            config.layout().base(&fleet.prefix)
        );
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
        Notification::Event(other) => format!(
            "{} {:<16} (an event kind this version does not know)",
            Timestamp::now(),
            other.provider_name()
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

/// Options of `flexiai migrate-keys`.
#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    #[command(flatten)]
    fleet: FleetArgs,
    /// The layout to move the fleet's keys to (from the other one).
    #[arg(long)]
    to: KeyLayout,
}

/// `flexiai migrate-keys --to L`: moves stored snapshots and fencing counters to layout `L`.
pub(crate) async fn migrate(args: MigrateArgs) -> crate::Result<()> {
    let from = match args.to {
        KeyLayout::Plain => KeyLayout::HashTagged,
        KeyLayout::HashTagged => KeyLayout::Plain,
        other => return Err(format!("no migration to the {other} layout").into()),
    };
    let base = args.fleet.config()?;
    let source = RedisBackend::connect(base.clone().key_layout(from)).await?;
    let target = RedisBackend::connect(base.key_layout(args.to)).await?;
    let report = migrate_keys(&source, &target).await?;
    println!(
        "moved {} from {from} to {} layout: {} copied, {} already current, {} left in place, {} fencing counters raised",
        args.fleet.prefix,
        args.to,
        report.copied.len(),
        report.already_current.len(),
        report.left_in_place.len(),
        report.fences
    );
    for provider in &report.left_in_place {
        println!("left in place (changed while moving, or unreadable): {provider}; run again");
    }
    Ok(())
}
