//! A fleet process of the scale section: `fleet-bench fleet --design store|broadcast
//! --workers K ...` hosts K simulated workers, each with its own `RedisBackend` (a pool of
//! one multiplexed command connection, plus the backend's own subscriber connection) and
//! its own breaker `p` under the failure-rate policy, so that a few processes hold a fleet
//! of 1,000 on 2 cores.
//!
//! * `store` (the current design): each worker is a real `StateSyncManager` with default
//!   `SyncOptions`; fleet counting in the store, transitions on the channel.
//! * `broadcast` (the design before issue 14, rebuilt here as the baseline): each worker
//!   runs the old driver loop over the same `SyncBackend` API: every 50 ms flush that saw a
//!   failure it `PUBLISH`es one outcome-delta event (`CircuitBreakerEvent::outcomes` with the
//!   failure and success deltas and the period's version: the old encoding, through the
//!   backend's own serializer), and it absorbs every other worker's deltas of the same
//!   period into its breaker's window (`absorb_remote_outcomes`), which decides the trip
//!   locally. Transitions go out through the same compare-and-set script as today, the
//!   heartbeat every 1 s, a reconcile `MGET` every 5 s, as the old driver did.
//!
//! One thread calls every breaker of the process 200 times per second (one call per worker
//! each 5 ms tick) against a fake provider whose failure pattern the orchestrator sets:
//! healthy, a storm where every 4th call fails (25%: under the 50% threshold), or dead
//! (every call fails). A watcher thread polls every breaker's state word every 500 µs and
//! records when each first became open. Commands arrive one per line on stdin; each is
//! answered with one JSON line on stdout.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use flexiai_backend::{CasOutcome, Notification, SyncBackend};
use flexiai_backend_redis::RedisBackend;
use flexiai_breaker::{BreakerConfig, BreakerObserver, CircuitBreaker, FailurePolicy, Transition};
use flexiai_events::{
    BreakerSnapshot, CircuitBreakerEvent, CircuitState, Event, Revision, WorkerId,
};
use flexiai_sync::{StateSyncManager, SyncOptions};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{Notify, watch};
use tokio::time::{MissedTickBehavior, interval};

use crate::now_micros;

/// The provider every simulated worker guards.
const PROVIDER: &str = "p";
/// Calls each worker makes per tick of the call thread.
pub(crate) const TICK: Duration = Duration::from_millis(5);
/// Calls per second per worker (one per tick).
pub(crate) const CALLS_PER_SEC: u64 = 200;
/// The watcher's polling period.
pub(crate) const WATCH_MICROS: u64 = 500;
/// How many workers start (connect, subscribe, hydrate) at once in one process.
const START_CONCURRENCY: usize = 25;

/// The failure-rate policy of every breaker in the section: 50% over 10 s (10 slices), at
/// least 100 calls.
pub(crate) fn breaker_config() -> BreakerConfig {
    // Long enough that an opened fleet stays open until the orchestrator resets it.
    let mut config = BreakerConfig::default().with_recovery_timeout(Duration::from_secs(120));
    config.failure_policy = FailurePolicy::failure_rate(Duration::from_secs(10), 100, 0.5);
    config
}

/// Command-line options of a fleet process.
#[derive(Debug, clap::Args)]
pub(crate) struct FleetArgs {
    /// `store` or `broadcast`.
    #[arg(long)]
    design: String,
    /// The Redis URL.
    #[arg(long)]
    redis: String,
    /// Key prefix; the channel is `{prefix}:events`.
    #[arg(long)]
    prefix: String,
    /// Simulated workers in this process.
    #[arg(long)]
    workers: usize,
}

/// The provider's behaviour, as the call thread reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    Healthy = 0,
    Storm = 1,
    Dead = 2,
}

impl Mode {
    fn parse(word: &str) -> Option<Mode> {
        match word {
            "healthy" => Some(Mode::Healthy),
            "storm" => Some(Mode::Storm),
            "dead" => Some(Mode::Dead),
            _ => None,
        }
    }
    fn from_u8(v: u8) -> Mode {
        match v {
            1 => Mode::Storm,
            2 => Mode::Dead,
            _ => Mode::Healthy,
        }
    }
    /// Whether call number `i` of a worker fails.
    fn fails(self, i: u64) -> bool {
        match self {
            Mode::Healthy => false,
            Mode::Storm => i % 4 == 3,
            Mode::Dead => true,
        }
    }
}

/// What the orchestrator steers and the call and watcher threads read.
struct Control {
    /// Mode in force.
    mode: AtomicU8,
    /// Mode to switch to at `switch_at`.
    next: AtomicU8,
    /// Wall-clock µs of the pending switch (`u64::MAX`: none).
    switch_at: AtomicU64,
    /// Wall-clock µs at which the call thread applied the last switch.
    switched_at: AtomicU64,
    /// Calls made, all workers.
    calls: AtomicU64,
    stop: AtomicBool,
}

/// Counters of the broadcast baseline's driver loops, summed over the process's workers.
#[derive(Default)]
struct BroadcastCounters {
    /// Events from other workers decoded (every payload on the channel is decoded by the
    /// backend's subscriber before it reaches the loop).
    decoded: AtomicU64,
    /// The part of `decoded` that were outcome deltas.
    outcome_decoded: AtomicU64,
    /// Outcome deltas published.
    published: AtomicU64,
    /// Transitions stored and published.
    transitions: AtomicU64,
    /// Notifications of possible loss (lagged, resubscribed, disconnected).
    gaps: AtomicU64,
    /// Backend operations that failed.
    errors: AtomicU64,
}

/// One simulated worker.
enum Sim {
    Store {
        breaker: Arc<CircuitBreaker>,
        manager: StateSyncManager,
    },
    Broadcast {
        breaker: Arc<CircuitBreaker>,
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
    },
}

impl Sim {
    fn breaker(&self) -> &Arc<CircuitBreaker> {
        match self {
            Sim::Store { breaker, .. } | Sim::Broadcast { breaker, .. } => breaker,
        }
    }
}

fn reply(value: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

fn backend(args: &FleetArgs) -> crate::Result<Arc<RedisBackend>> {
    // One pooled command connection per worker: commands share it (multiplexed).
    let config = crate::worker::redis_config(&args.redis, &args.prefix)?.pool_size(1);
    Ok(Arc::new(RedisBackend::new(config)?))
}

async fn start_store(args: &FleetArgs) -> crate::Result<Sim> {
    let backend = backend(args)?;
    let manager = StateSyncManager::builder(backend)
        .options(SyncOptions::default())
        .build()?;
    let breaker = Arc::new(CircuitBreaker::new(PROVIDER, breaker_config())?);
    manager.register_circuit_breaker(Arc::clone(&breaker))?;
    manager.start().await?;
    Ok(Sim::Store { breaker, manager })
}

async fn start_broadcast(args: &FleetArgs, counters: Arc<BroadcastCounters>) -> crate::Result<Sim> {
    let backend = backend(args)?;
    let breaker = Arc::new(CircuitBreaker::new(PROVIDER, breaker_config())?);
    let wake = Arc::new(Notify::new());
    breaker.add_observer(Arc::new(Wake(Arc::clone(&wake))));
    let worker = WorkerId::generate();
    let subscription = backend.subscribe().await?;
    let mut old = OldDriver {
        backend,
        breaker: Arc::clone(&breaker),
        worker,
        counters,
        base: None,
        stored_version: None,
        last: breaker.outcome_totals(),
    };
    // Start-up as the old manager did: hydrate from the store, then heartbeat.
    if let Some(stored) = old.backend.get_state(PROVIDER).await? {
        old.breaker.restore(&stored);
        old.base = Some(stored.revision());
        old.stored_version = Some(stored.version);
    }
    old.backend
        .heartbeat(&old.worker, Duration::from_secs(5))
        .await?;
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(old.run(subscription, wake, stopped));
    Ok(Sim::Broadcast {
        breaker,
        stop,
        task,
    })
}

/// Wakes the baseline's driver on a transition, as the old sync observer did.
struct Wake(Arc<Notify>);

impl BreakerObserver for Wake {
    fn on_transition(&self, _: &Transition) {
        self.0.notify_one();
    }
    fn wants_outcomes(&self) -> bool {
        false
    }
}

/// The baseline's per-worker driver: the broadcast design's loop.
struct OldDriver {
    backend: Arc<RedisBackend>,
    breaker: Arc<CircuitBreaker>,
    worker: WorkerId,
    counters: Arc<BroadcastCounters>,
    /// The stored revision the local state grew from.
    base: Option<Revision>,
    /// The local version last stored (by us) or adopted.
    stored_version: Option<u64>,
    /// Outcome totals at the last flush.
    last: flexiai_breaker::OutcomeTotals,
}

impl OldDriver {
    async fn run(
        mut self,
        mut subscription: flexiai_backend::Subscription,
        wake: Arc<Notify>,
        mut stop: watch::Receiver<bool>,
    ) {
        let options = SyncOptions::default();
        let mut flush = interval(options.flush_interval);
        let mut reconcile = interval(options.reconcile_interval);
        let mut heartbeat = interval(options.heartbeat_interval);
        for timer in [&mut flush, &mut reconcile, &mut heartbeat] {
            timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        }
        reconcile.reset();
        heartbeat.reset();
        loop {
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                () = wake.notified() => self.publish_transition().await,
                _ = flush.tick() => {
                    self.publish_transition().await;
                    self.flush_outcomes().await;
                }
                _ = reconcile.tick() => self.reconcile().await,
                _ = heartbeat.tick() => {
                    if self.backend.heartbeat(&self.worker, options.heartbeat_ttl).await.is_err() {
                        self.counters.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                notification = subscription.recv() => match notification {
                    Some(Notification::Event(event)) => self.apply(&event),
                    Some(_) => {
                        self.counters.gaps.fetch_add(1, Ordering::Relaxed);
                        self.reconcile().await;
                    }
                    None => break,
                },
            }
        }
        let _ = self.backend.remove_worker(&self.worker).await;
        let _ = self.backend.close().await;
    }

    /// Stores and announces a local transition (the compare-and-set script publishes it).
    async fn publish_transition(&mut self) {
        let snapshot = self.breaker.snapshot();
        if self.stored_version == Some(snapshot.version) {
            return;
        }
        let mut event = CircuitBreakerEvent::transition(
            PROVIDER,
            self.worker.clone(),
            snapshot.state,
            snapshot.version,
        );
        event.metadata.failure_count = Some(snapshot.failure_count);
        event.metadata.success_count = Some(snapshot.success_count);
        event.metadata.open_remaining_ms = snapshot.open_remaining_ms;
        let event = Event::from(event);
        match self
            .backend
            .compare_and_set(PROVIDER, &snapshot, self.base, Some(&event))
            .await
        {
            Ok(CasOutcome::Applied) => {
                self.counters.transitions.fetch_add(1, Ordering::Relaxed);
                self.base = Some(snapshot.revision());
                self.stored_version = Some(snapshot.version);
            }
            Ok(CasOutcome::Stale { current }) => {
                self.breaker.restore(&current);
                self.base = Some(current.revision());
                self.stored_version = Some(current.version);
            }
            Err(_) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The old flush: one outcome-delta event per flush interval that saw a failure, with
    /// the successes of that interval, for the period (version) it was counted in.
    async fn flush_outcomes(&mut self) {
        let now = self.breaker.outcome_totals();
        let (failures, successes) = if now.version == self.last.version {
            (
                now.failures.saturating_sub(self.last.failures),
                now.successes.saturating_sub(self.last.successes),
            )
        } else {
            (0, 0)
        };
        self.last = now;
        if failures == 0 || now.state != CircuitState::Closed {
            return;
        }
        let mut event =
            CircuitBreakerEvent::outcomes(PROVIDER, self.worker.clone(), failures, successes);
        event.metadata.version = Some(now.version);
        match self.backend.publish_event(&Event::from(event)).await {
            Ok(()) => {
                self.counters.published.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    async fn reconcile(&mut self) {
        match self.backend.get_states(&[PROVIDER.to_owned()]).await {
            Ok(stored) => {
                if let Some(Some(stored)) = stored.into_iter().next()
                    && self.base.is_none_or(|base| stored.revision() > base)
                {
                    self.breaker.restore(&stored);
                    self.base = Some(stored.revision());
                    self.stored_version = Some(stored.version);
                }
            }
            Err(_) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The old receive path: transitions applied when newer, outcome deltas of the current
    /// period absorbed into the local window.
    fn apply(&mut self, event: &Event) {
        if event.worker_id() == &self.worker {
            return;
        }
        self.counters.decoded.fetch_add(1, Ordering::Relaxed);
        match event {
            Event::CircuitBreakerEvent(transition) => match transition.target_state() {
                Some(state) => {
                    if let Some(version) = transition.metadata.version {
                        let mut remote = BreakerSnapshot::new(state, version);
                        remote.open_remaining_ms = transition.metadata.open_remaining_ms;
                        remote.epoch = transition.metadata.epoch.unwrap_or(0);
                        if self.breaker.apply_remote(&remote) {
                            self.base = Some(remote.revision());
                            self.stored_version = Some(version);
                        }
                    }
                }
                None => {
                    self.counters
                        .outcome_decoded
                        .fetch_add(1, Ordering::Relaxed);
                    let meta = &transition.metadata;
                    if meta.version.is_none_or(|v| v == self.breaker.version()) {
                        self.breaker.absorb_remote_outcomes(
                            meta.failure_delta.unwrap_or(0),
                            meta.success_delta.unwrap_or(0),
                        );
                    }
                }
            },
            Event::StateUpdateEvent(update) if self.breaker.apply_remote(&update.state_data) => {
                self.base = Some(update.state_data.revision());
                self.stored_version = Some(update.state_data.version);
            }
            // Not adopted, or a kind the old design did not know.
            _ => {}
        }
    }
}

/// Calls every breaker once per tick against the fake provider.
fn spawn_caller(breakers: Arc<Vec<Arc<CircuitBreaker>>>, control: Arc<Control>) {
    std::thread::spawn(move || {
        let _ = nix::sys::prctl::set_timerslack(10_000);
        let mut i: u64 = 0;
        let mut next = std::time::Instant::now();
        while !control.stop.load(Ordering::Relaxed) {
            let at = control.switch_at.load(Ordering::Acquire);
            if at != u64::MAX && now_micros() >= at {
                control
                    .mode
                    .store(control.next.load(Ordering::Acquire), Ordering::Release);
                control.switch_at.store(u64::MAX, Ordering::Release);
                control.switched_at.store(now_micros(), Ordering::Release);
            }
            let mode = Mode::from_u8(control.mode.load(Ordering::Acquire));
            let fails = mode.fails(i);
            for b in breakers.iter() {
                if let Ok(permit) = b.try_acquire() {
                    if fails {
                        permit.failure();
                    } else {
                        permit.success();
                    }
                }
            }
            control
                .calls
                .fetch_add(breakers.len() as u64, Ordering::Relaxed);
            i += 1;
            next += TICK;
            let now = std::time::Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            } else {
                // Behind (a loaded machine): carry on from now rather than bursting.
                next = now;
            }
        }
    });
}

/// Records, per breaker, the first instant it was seen open since the last `arm`.
fn spawn_watcher(
    breakers: Arc<Vec<Arc<CircuitBreaker>>>,
    opened: Arc<Vec<AtomicU64>>,
    control: Arc<Control>,
) {
    std::thread::spawn(move || {
        let _ = nix::sys::prctl::set_timerslack(1_000);
        while !control.stop.load(Ordering::Relaxed) {
            for (b, slot) in breakers.iter().zip(opened.iter()) {
                if slot.load(Ordering::Relaxed) == u64::MAX && b.state() == CircuitState::Open {
                    slot.store(now_micros(), Ordering::Relaxed);
                }
            }
            std::thread::sleep(Duration::from_micros(WATCH_MICROS));
        }
    });
}

/// Runs a fleet process until `quit` or end of input.
pub(crate) async fn run(args: FleetArgs) -> crate::Result<()> {
    let broadcast = match args.design.as_str() {
        "store" => false,
        "broadcast" => true,
        other => return Err(format!("unknown design {other}").into()),
    };
    let counters = Arc::new(BroadcastCounters::default());
    let mut sims = Vec::with_capacity(args.workers);
    let mut remaining = args.workers;
    while remaining > 0 {
        let chunk = remaining.min(START_CONCURRENCY);
        let started = futures_util::future::join_all((0..chunk).map(|_| async {
            if broadcast {
                start_broadcast(&args, Arc::clone(&counters)).await
            } else {
                start_store(&args).await
            }
        }))
        .await;
        for sim in started {
            sims.push(sim?);
        }
        remaining -= chunk;
    }
    let breakers: Arc<Vec<Arc<CircuitBreaker>>> =
        Arc::new(sims.iter().map(|s| Arc::clone(s.breaker())).collect());
    let opened: Arc<Vec<AtomicU64>> =
        Arc::new((0..sims.len()).map(|_| AtomicU64::new(u64::MAX)).collect());
    let control = Arc::new(Control {
        mode: AtomicU8::new(Mode::Healthy as u8),
        next: AtomicU8::new(Mode::Healthy as u8),
        switch_at: AtomicU64::new(u64::MAX),
        switched_at: AtomicU64::new(0),
        calls: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    spawn_caller(Arc::clone(&breakers), Arc::clone(&control));
    spawn_watcher(
        Arc::clone(&breakers),
        Arc::clone(&opened),
        Arc::clone(&control),
    );
    reply(&json!({"ready": true}));

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await? {
        let words: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| -> u64 { words.get(i).and_then(|w| w.parse().ok()).unwrap_or(0) };
        match words.first().copied() {
            Some("mode") => {
                let Some(mode) = words.get(1).copied().and_then(Mode::parse) else {
                    reply(&json!({"error": "mode healthy|storm|dead AT_MICROS"}));
                    continue;
                };
                control.next.store(mode as u8, Ordering::Release);
                control.switch_at.store(num(2), Ordering::Release);
                reply(&json!({"ok": true}));
            }
            Some("arm") => {
                for slot in opened.iter() {
                    slot.store(u64::MAX, Ordering::Relaxed);
                }
                reply(&json!({"ok": true}));
            }
            Some("opened") => {
                let times: Vec<Option<u64>> = opened
                    .iter()
                    .map(|slot| Some(slot.load(Ordering::Relaxed)).filter(|t| *t != u64::MAX))
                    .collect();
                reply(&json!({
                    "opened": times,
                    "switched_at": control.switched_at.load(Ordering::Acquire),
                }));
            }
            Some("states") => {
                let open = breakers
                    .iter()
                    .filter(|b| b.state() == CircuitState::Open)
                    .count();
                let closed = breakers
                    .iter()
                    .filter(|b| b.state() == CircuitState::Closed)
                    .count();
                let min_version = breakers.iter().map(|b| b.version()).min().unwrap_or(0);
                reply(&json!({"open": open, "closed": closed, "min_version": min_version}));
            }
            Some("reset") => {
                let version = breakers.first().map_or(0, |b| b.reset());
                reply(&json!({"version": version}));
            }
            Some("stats") => reply(&stats(&sims, &counters, &control)),
            Some("quit") | None => break,
            Some(other) => reply(&json!({"error": format!("unknown command {other}")})),
        }
    }
    control.stop.store(true, Ordering::Relaxed);
    let stops = sims.into_iter().map(|sim| async move {
        match sim {
            Sim::Store { manager, .. } => {
                let _ = tokio::time::timeout(Duration::from_secs(5), manager.stop()).await;
            }
            Sim::Broadcast { stop, task, .. } => {
                let _ = stop.send(true);
                let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
            }
        }
    });
    futures_util::future::join_all(stops).await;
    Ok(())
}

/// Cumulative counters of the process, summed over its workers.
fn stats(sims: &[Sim], counters: &BroadcastCounters, control: &Control) -> Value {
    let calls = control.calls.load(Ordering::Relaxed);
    let mut decoded = 0;
    let mut outcome_decoded = 0;
    let mut published_outcomes = 0;
    let mut reports = 0;
    let mut transitions = 0;
    let mut gaps = 0;
    let mut errors = 0;
    let mut degraded = 0;
    for sim in sims {
        if let Sim::Store { manager, .. } = sim {
            let health = manager.health();
            let m = &health.metrics;
            // The channel carries transitions only: every received event is one (outcome
            // events from older workers would be counted here too, and ignored).
            decoded += m.events_received + m.events_rejected;
            reports += m.outcome_reports;
            transitions += m.events_published;
            gaps += m.subscription_drops;
            errors += m.backend_errors;
            degraded += u64::from(health.is_degraded());
        }
    }
    decoded += counters.decoded.load(Ordering::Relaxed);
    outcome_decoded += counters.outcome_decoded.load(Ordering::Relaxed);
    published_outcomes += counters.published.load(Ordering::Relaxed);
    transitions += counters.transitions.load(Ordering::Relaxed);
    gaps += counters.gaps.load(Ordering::Relaxed);
    errors += counters.errors.load(Ordering::Relaxed);
    json!({
        "calls": calls,
        "decoded": decoded,
        "outcome_decoded": outcome_decoded,
        "published_outcomes": published_outcomes,
        "reports": reports,
        "transitions": transitions,
        "gaps": gaps,
        "errors": errors,
        "degraded": degraded,
    })
}
