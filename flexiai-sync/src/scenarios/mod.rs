//! Fleet scenarios every backend must support, as executable checks.
//!
//! Like `flexiai_backend::conformance`, each scenario is an `async fn` over a
//! [`BackendFactory`], so the same checks run on `MemoryBackend` (managers sharing one store
//! in one process) and on real Redis (one `RedisBackend` per manager). Each builds a fleet of
//! [`StateSyncManager`]s with fast timings, drives it through the public API only, and panics
//! with a message on failure, as tests do.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    missing_docs
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use flexiai_backend::conformance::{BackendFactory, ConformanceOptions};
use flexiai_backend::{FleetCounts, FleetWindow, OutcomeBatch};
use flexiai_breaker::{BreakerConfig, CircuitBreaker, FailurePolicy, Permit};
use flexiai_events::CircuitState;
use tokio::time::sleep;

use crate::{StateSyncManager, SyncOptions};

mod protocol;
pub use protocol::*;

/// Expands to one `#[tokio::test]` per fleet scenario, each building its backends with
/// `$factory` (an expression evaluated inside the async test, so it may `.await`), as
/// `flexiai_backend::conformance_tests!` does for single backends.
#[macro_export]
macro_rules! fleet_scenarios {
    ($factory:expr) => {
        $crate::fleet_scenarios!(@cases $factory;
            a_trip_reaches_every_worker,
            fleet_failures_count_together,
            a_sub_threshold_storm_counts_exactly_and_stays_closed,
            consecutive_failures_stay_per_worker,
            half_open_probes_are_rationed_fleet_wide,
            a_late_joiner_starts_with_the_fleet_state,
            concurrent_transitions_converge,
            an_emptied_store_is_rewritten,
            stop_and_drop_are_clean,
            an_operator_override_reaches_every_worker,
            idle_workers_leave_the_probe_to_busy_ones,
            an_override_after_a_store_reset_holds,
            an_override_beats_concurrent_local_transitions,
            a_reset_beats_a_diverged_local_open,
            operator_states_outrank_python_transitions,
            a_retry_after_tie_keeps_the_latest_deadline,
            a_probe_longer_than_its_lease_stays_the_only_one,
            a_degraded_holder_keeps_the_lease_of_its_running_probe,
            a_holder_whose_period_ended_unstored_keeps_the_lease_of_its_running_probe,
            successes_before_the_lease_settle_none_of_its_credits,
            a_probe_from_before_the_lease_settles_none_of_its_credits,
            a_latency_spike_does_not_flip_probe_mode,
            a_mixed_fleet_with_a_python_worker_converges,
            a_success_threshold_above_the_probe_budget_still_closes,
            a_lease_that_moves_mid_period_still_closes,
            an_unversioned_stored_state_is_adopted_by_a_fresh_worker,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let factory = $factory;
                $crate::scenarios::$case(&factory).await;
            }
        )*
    };
}

/// Timings short enough for tests, long enough for a loaded 2-core CI machine.
pub fn fast_options() -> SyncOptions {
    SyncOptions {
        flush_interval: Duration::from_millis(10),
        // Five flushes: the scenarios run with reports held back between flushes.
        outcome_report_interval: Duration::from_millis(50),
        reconcile_interval: Duration::from_millis(300),
        heartbeat_interval: Duration::from_millis(100),
        heartbeat_ttl: Duration::from_millis(1000),
        operation_timeout: Duration::from_millis(500),
        fleet_probes: true,
        probe_lease_ttl: Duration::from_secs(5),
        min_retry_backoff: Duration::from_millis(20),
        max_retry_backoff: Duration::from_millis(200),
    }
}

/// How long a scenario waits for the fleet to converge before failing.
pub const CONVERGE: Duration = Duration::from_secs(10);

/// One worker: a manager with one breaker per provider.
pub struct Worker {
    pub manager: StateSyncManager,
    pub breakers: Vec<Arc<CircuitBreaker>>,
}

impl Worker {
    pub fn breaker(&self, provider: &str) -> &Arc<CircuitBreaker> {
        self.breakers
            .iter()
            .find(|b| b.name() == provider)
            .unwrap_or_else(|| panic!("no breaker {provider}"))
    }
}

/// Starts `n` workers over `n` handles from `factory`, each guarding `providers`.
pub async fn fleet(
    factory: &impl BackendFactory,
    n: usize,
    providers: &[&str],
    config: &BreakerConfig,
) -> Vec<Worker> {
    fleet_with(factory, n, providers, config, &fast_options()).await
}

/// [`fleet`] with `options` instead of [`fast_options`].
pub async fn fleet_with(
    factory: &impl BackendFactory,
    n: usize,
    providers: &[&str],
    config: &BreakerConfig,
    options: &SyncOptions,
) -> Vec<Worker> {
    let backends = factory.open(n, &ConformanceOptions::default()).await;
    let mut workers = Vec::new();
    for backend in backends {
        workers.push(worker_with(backend, providers, config, options.clone()).await);
    }
    workers
}

/// Starts one worker over `backend`.
pub async fn worker(
    backend: Arc<dyn flexiai_backend::SyncBackend>,
    providers: &[&str],
    config: &BreakerConfig,
) -> Worker {
    worker_with(backend, providers, config, fast_options()).await
}

/// Starts one worker over `backend` with `options`.
pub async fn worker_with(
    backend: Arc<dyn flexiai_backend::SyncBackend>,
    providers: &[&str],
    config: &BreakerConfig,
    options: SyncOptions,
) -> Worker {
    let manager = StateSyncManager::builder(backend)
        .options(options)
        .build()
        .unwrap();
    let mut breakers = Vec::new();
    for provider in providers {
        let breaker = Arc::new(CircuitBreaker::new(*provider, config.clone()).unwrap());
        manager
            .register_circuit_breaker(Arc::clone(&breaker))
            .unwrap();
        breakers.push(breaker);
    }
    manager.start().await.unwrap();
    Worker { manager, breakers }
}

/// Waits until `check` holds, failing with `what` after [`CONVERGE`]; returns how long it took.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < CONVERGE, "timed out waiting for: {what}");
        sleep(Duration::from_millis(2)).await;
    }
    start.elapsed()
}

pub(crate) fn config(threshold: u32, recovery: Duration) -> BreakerConfig {
    let mut config = BreakerConfig::default().with_recovery_timeout(recovery);
    config.failure_threshold = threshold;
    config
}

pub(crate) fn fail(breaker: &CircuitBreaker, times: u32) {
    for _ in 0..times {
        if let Ok(permit) = breaker.try_acquire() {
            permit.failure();
        }
    }
}

/// Worker 0 trips provider X; every other worker opens too, and no other provider moves.
pub async fn a_trip_reaches_every_worker(factory: &impl BackendFactory) {
    let workers = fleet(factory, 8, &["x", "y"], &config(3, Duration::from_secs(60))).await;
    fail(workers[0].breaker("x"), 3);
    assert_eq!(workers[0].breaker("x").state(), CircuitState::Open);
    let took = eventually("every worker opens x", || {
        workers
            .iter()
            .all(|w| w.breaker("x").state() == CircuitState::Open)
    })
    .await;
    println!("propagation of one trip to 7 workers: {took:?}");
    let version = workers[0].breaker("x").version();
    assert!(workers.iter().all(|w| w.breaker("x").version() == version));
    assert!(
        workers
            .iter()
            .all(|w| w.breaker("y").state() == CircuitState::Closed)
    );
    // Open workers reject with the open period left, not a fresh one.
    let rejected = workers[5].breaker("x").try_acquire().map(drop).unwrap_err();
    assert!(rejected.retry_after.unwrap() <= Duration::from_secs(60));
}

fn rate_config(minimum_calls: u32, threshold: f64) -> BreakerConfig {
    let mut config = BreakerConfig::default();
    config.failure_policy =
        FailurePolicy::failure_rate(Duration::from_secs(30), minimum_calls, threshold);
    config
}

fn succeed(breaker: &CircuitBreaker, times: u32) {
    for _ in 0..times {
        if let Ok(permit) = breaker.try_acquire() {
            permit.success();
        }
    }
}

/// The fleet's totals for `provider` in period 0, read from the store without adding to them.
pub async fn fleet_totals(worker: &Worker, provider: &str) -> FleetCounts {
    let rule = &worker.breaker(provider).config().failure_policy;
    let FailurePolicy::FailureRate {
        window_ms, buckets, ..
    } = rule
    else {
        panic!("{provider} has no failure-rate policy");
    };
    let window = FleetWindow::new(Duration::from_millis(*window_ms), *buckets).unwrap();
    let read = OutcomeBatch {
        period: worker.breaker(provider).version(),
        slices: Vec::new(),
        report: None,
    };
    worker
        .manager
        .backend()
        .record_outcomes(provider, &read, &window)
        .await
        .unwrap()
}

/// Failures spread over 4 workers, too few calls on each for a decision, trip all of them:
/// the fleet's rate over its window is summed in the store and decides.
pub async fn fleet_failures_count_together(factory: &impl BackendFactory) {
    let workers = fleet(factory, 4, &["x"], &rate_config(8, 0.5)).await;
    for worker in &workers {
        succeed(worker.breaker("x"), 1);
        fail(worker.breaker("x"), 2);
        assert_eq!(
            worker.breaker("x").state(),
            CircuitState::Closed,
            "3 calls < 8 locally"
        );
    }
    eventually(
        "the fleet's 8 failures in 12 calls open every worker",
        || {
            workers
                .iter()
                .all(|w| w.breaker("x").state() == CircuitState::Open)
        },
    )
    .await;
    let trips: u64 = workers
        .iter()
        .map(|w| w.manager.metrics().fleet_trips)
        .sum();
    assert!(trips >= 1, "the store's totals made the decision");
}

/// A storm under the threshold (25% < 50%) leaves the fleet closed, and the store counts
/// every outcome exactly, the successes of workers that saw no failure included (they learn
/// the provider is storming and send the successes they held back, into the slices they
/// happened in). A provider that only succeeds costs nothing.
pub async fn a_sub_threshold_storm_counts_exactly_and_stays_closed(factory: &impl BackendFactory) {
    // The trip is decided once every worker had a heartbeat and a flush to send what it held
    // back (`heartbeat + flush + report interval`): the default 1 s report interval gives a
    // slow machine (an instrumented coverage run) eleven heartbeat intervals to do so, where
    // the 50 ms of `fast_options` gave barely one and worker 0 could trip on its own 12 of 18
    // (seen under tarpaulin on Sentinel).
    let mut options = fast_options();
    options.outcome_report_interval = Duration::from_secs(1);
    let workers = fleet_with(factory, 4, &["calm", "x"], &rate_config(8, 0.5), &options).await;
    // Worker 0's start-up write of the closed v0 went out with an event that can reach the
    // workers started after it (a Cluster forwards a PUBLISH to the channel's node over its
    // bus; a write that timed out may be applied late). Such a late copy, sent here on
    // purpose so every run has one, is a replay: received, changing nothing.
    let stored = workers[0]
        .manager
        .backend()
        .get_state("x")
        .await
        .unwrap()
        .expect("worker 0 stored x at start-up");
    let late = flexiai_events::Event::from(flexiai_events::StateUpdateEvent {
        provider_name: "x".into(),
        state_data: stored,
        worker_id: workers[0].manager.worker_id().clone(),
        timestamp: flexiai_events::Timestamp::now(),
    });
    workers[0]
        .manager
        .backend()
        .publish_event(&late)
        .await
        .unwrap();
    eventually("the late start-up event reaches workers 1-3", || {
        workers[1..]
            .iter()
            .all(|w| w.manager.metrics().events_received >= 1)
    })
    .await;
    for worker in &workers {
        succeed(worker.breaker("calm"), 50);
    }
    // Workers 1-3 only succeed; worker 0 sees every failure.
    for worker in &workers[1..] {
        succeed(worker.breaker("x"), 10);
    }
    succeed(workers[0].breaker("x"), 6);
    fail(workers[0].breaker("x"), 12);
    let expected = FleetCounts {
        failures: 12,
        successes: 36,
    };
    let mut last = FleetCounts::default();
    let start = Instant::now();
    while last != expected {
        assert!(
            start.elapsed() < CONVERGE,
            "the store's totals never reached {expected:?}: {last:?}; {:?}",
            workers
                .iter()
                .map(|w| (
                    w.breaker("x").state(),
                    w.breaker("x").version(),
                    w.breaker("x").outcome_totals(),
                    w.manager.metrics()
                ))
                .collect::<Vec<_>>()
        );
        sleep(Duration::from_millis(10)).await;
        last = fleet_totals(&workers[0], "x").await;
    }
    // The store applies a report before its reply reaches the worker that counts it.
    eventually("healthy workers reported their successes", || {
        workers[1..]
            .iter()
            .all(|w| w.manager.metrics().outcome_reports >= 1)
    })
    .await;
    assert!(
        workers
            .iter()
            .all(|w| w.breaker("x").state() == CircuitState::Closed),
        "12 of 48 calls is 25%, under the 50% threshold"
    );
    // "calm" is flushed before "x" on every tick, and never sent.
    assert_eq!(
        fleet_totals(&workers[0], "calm").await,
        FleetCounts::default()
    );
    // No outcome event and no transition went over the channel: all a worker received were
    // replays of the start-up state it already held.
    assert!(
        workers.iter().all(|w| {
            let m = w.manager.metrics();
            // `>=`: the replay is counted before the receipt, and read after it.
            m.events_replayed >= m.events_received && m.events_applied == 0
        }),
        "events other than replays went over the channel: {:#?}",
        workers
            .iter()
            .map(|w| (w.manager.worker_id().clone(), w.manager.metrics()))
            .collect::<Vec<_>>()
    );
}

/// Consecutive-failure counting is per worker: 4 workers with 2 failures each (8 in all,
/// threshold 3) stay closed; the channel carries transitions only.
pub async fn consecutive_failures_stay_per_worker(factory: &impl BackendFactory) {
    let workers = fleet(factory, 4, &["x", "y"], &config(3, Duration::from_secs(60))).await;
    for worker in &workers {
        fail(worker.breaker("x"), 2);
    }
    // A transition on another provider, seen everywhere, shows every driver has run since.
    workers[0].breaker("y").force_open();
    eventually("every worker sees y's transition", || {
        workers
            .iter()
            .all(|w| w.breaker("y").state() == CircuitState::ForcedOpen)
    })
    .await;
    for (i, worker) in workers.iter().enumerate() {
        assert_eq!(
            worker.breaker("x").state(),
            CircuitState::Closed,
            "worker {i}"
        );
        assert_eq!(worker.manager.metrics().outcome_reports, 0, "worker {i}");
    }
}

/// With 8 workers and `half_open_max_calls = 1`, the fleet admits one probe per half-open
/// period, and its success closes the breaker everywhere.
pub async fn half_open_probes_are_rationed_fleet_wide(factory: &impl BackendFactory) {
    let recovery = Duration::from_millis(400);
    let workers = fleet(factory, 8, &["x"], &config(1, recovery)).await;
    fail(workers[0].breaker("x"), 1);
    eventually("all open", || {
        workers
            .iter()
            .all(|w| w.breaker("x").state() == CircuitState::Open)
    })
    .await;
    sleep(recovery).await;

    // Every worker keeps trying, as a busy fleet would; hold the admitted probe (the call is
    // in flight) while counting. The count is over once a probe was admitted and every
    // worker has since been refused enough times while half-open (evidence that each one
    // was in the period and asked while the probe was out), not over a wall-clock window:
    // on a slow machine the grant may come after many refusals.
    const REFUSALS: u32 = 50;
    let mut probes: Vec<Permit<'_>> = Vec::new();
    let mut refused = vec![0u32; workers.len()];
    let start = Instant::now();
    while probes.is_empty() || refused.iter().any(|&n| n < REFUSALS) {
        assert!(
            start.elapsed() < CONVERGE * 3,
            "{} probes; refusals per worker since the first: {refused:?}",
            probes.len()
        );
        for (worker, refused) in workers.iter().zip(&mut refused) {
            let breaker = worker.breaker("x");
            match breaker.try_acquire() {
                Ok(permit) => probes.push(permit),
                Err(_) if !probes.is_empty() && breaker.state() == CircuitState::HalfOpen => {
                    *refused += 1;
                }
                Err(_) => {}
            }
        }
        sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        probes.len(),
        1,
        "the fleet admitted {} probes in one half-open period",
        probes.len()
    );
    probes.pop().unwrap().success();
    eventually("the probe's success closes every worker", || {
        workers
            .iter()
            .all(|w| w.breaker("x").state() == CircuitState::Closed)
    })
    .await;
}

/// A worker that joins after the fleet opened a provider starts with it open.
pub async fn a_late_joiner_starts_with_the_fleet_state(factory: &impl BackendFactory) {
    let backends = factory.open(2, &ConformanceOptions::default()).await;
    let config = config(2, Duration::from_secs(60));
    let first = worker(Arc::clone(&backends[0]), &["x"], &config).await;
    first.breaker("x").force_open();
    // Evidence that the store holds the transition (not just the start-up write).
    let start = Instant::now();
    while backends[1]
        .get_state("x")
        .await
        .unwrap()
        .is_none_or(|s| s.state != CircuitState::ForcedOpen)
    {
        assert!(
            start.elapsed() < CONVERGE,
            "the transition was never stored"
        );
        sleep(Duration::from_millis(2)).await;
    }
    let late = worker(Arc::clone(&backends[1]), &["x"], &config).await;
    assert_eq!(
        late.breaker("x").state(),
        CircuitState::ForcedOpen,
        "start() hydrates before returning"
    );
    assert_eq!(late.breaker("x").version(), first.breaker("x").version());
}

/// Concurrent manual transitions on many workers end in one history that every worker holds.
pub async fn concurrent_transitions_converge(factory: &impl BackendFactory) {
    let workers = fleet(factory, 6, &["x"], &config(5, Duration::from_secs(60))).await;
    for round in 0..20 {
        for (i, worker) in workers.iter().enumerate() {
            match (round + i) % 3 {
                0 => worker.breaker("x").force_open(),
                1 => worker.breaker("x").reset(),
                _ => worker.breaker("x").disable(),
            };
        }
        sleep(Duration::from_millis(3)).await;
    }
    eventually("every worker holds the same (state, version)", || {
        let first = workers[0].breaker("x");
        let target = (first.state(), first.version());
        workers
            .iter()
            .all(|w| (w.breaker("x").state(), w.breaker("x").version()) == target)
    })
    .await;
    let stored = workers[0]
        .manager
        .backend()
        .get_state("x")
        .await
        .unwrap()
        .unwrap();
    eventually("and it is the stored one", || {
        workers[0].breaker("x").version() == stored.version
    })
    .await;
    assert_eq!(workers[0].breaker("x").state(), stored.state);
}

/// A restarted-empty store is rewritten by the periodic reconcile.
pub async fn an_emptied_store_is_rewritten(factory: &impl BackendFactory) {
    let workers = fleet(factory, 2, &["x"], &config(5, Duration::from_secs(60))).await;
    workers[0].breaker("x").force_open();
    let backend = workers[1].manager.backend();
    let mut stored = None;
    for _ in 0..500 {
        stored = backend.get_state("x").await.unwrap();
        if stored
            .as_ref()
            .is_some_and(|s| s.state == CircuitState::ForcedOpen)
        {
            break;
        }
        sleep(Duration::from_millis(5)).await;
    }
    let stored = stored.expect("transition stored");
    // Simulate a store that lost everything: an older snapshot replaces it.
    backend
        .set_state(
            "x",
            &flexiai_events::BreakerSnapshot::new(CircuitState::Closed, 0),
        )
        .await
        .unwrap();
    let start = Instant::now();
    loop {
        let now = backend.get_state("x").await.unwrap();
        if now.as_ref().is_some_and(|s| s.version == stored.version) {
            break;
        }
        assert!(
            start.elapsed() < CONVERGE,
            "store was not rewritten: {now:?}"
        );
        sleep(Duration::from_millis(10)).await;
    }
    assert!(
        workers
            .iter()
            .all(|w| w.breaker("x").state() == CircuitState::ForcedOpen)
    );
}

/// Stopping flushes, removes the heartbeat and leaves breakers standalone; dropping never hangs.
pub async fn stop_and_drop_are_clean(factory: &impl BackendFactory) {
    let workers = fleet(factory, 2, &["x"], &config(5, Duration::from_secs(60))).await;
    let backend = Arc::clone(workers[0].manager.backend());
    // start() heartbeats before it returns.
    let live = backend.live_workers().await.unwrap();
    assert!(
        live.contains(workers[0].manager.worker_id())
            && live.contains(workers[1].manager.worker_id())
    );
    workers[0].manager.stop().await.unwrap();
    let live = backend.live_workers().await.unwrap();
    assert!(
        !live.contains(workers[0].manager.worker_id()),
        "stop() removes the heartbeat"
    );
    assert!(
        workers[0].manager.stop().await.is_err(),
        "stopping twice is an error, not a hang"
    );
    // A stopped worker's breaker is standalone again: its transitions stay local. Evidence,
    // not a pause: worker 1 re-reads the store twice after the transition (so one read
    // began after it) and the store holds nothing newer.
    let published = workers[0].manager.metrics().events_published;
    workers[0].breaker("x").force_open();
    let reconciles = workers[1].manager.metrics().reconciles;
    eventually("worker 1 re-reads the store after the transition", || {
        workers[1].manager.metrics().reconciles >= reconciles + 2
    })
    .await;
    assert_eq!(workers[1].breaker("x").state(), CircuitState::Closed);
    assert!(
        backend
            .get_state("x")
            .await
            .unwrap()
            .is_none_or(|s| s.state == CircuitState::Closed)
    );
    assert_eq!(workers[0].manager.metrics().events_published, published);
    // Dropping returns (a blocking drop would hang the test here).
    drop(workers);
}

/// An operator's override (no breaker of its own) reaches every worker, and a reset undoes it.
pub async fn an_operator_override_reaches_every_worker(factory: &impl BackendFactory) {
    let workers = fleet(factory, 4, &["x"], &config(5, Duration::from_secs(60))).await;
    let backend = Arc::clone(workers[0].manager.backend());
    let operator = flexiai_events::WorkerId::new("ops:cli:1").unwrap();
    let written = crate::override_state(&backend, "x", CircuitState::ForcedOpen, &operator)
        .await
        .unwrap();
    eventually("every worker is forced open", || {
        workers
            .iter()
            .all(|w| w.breaker("x").state() == CircuitState::ForcedOpen)
    })
    .await;
    assert!(
        workers
            .iter()
            .all(|w| w.breaker("x").version() == written.version)
    );
    crate::override_state(&backend, "x", CircuitState::Closed, &operator)
        .await
        .unwrap();
    eventually("every worker is closed again", || {
        workers
            .iter()
            .all(|w| w.breaker("x").state() == CircuitState::Closed)
    })
    .await;
    let refused = crate::override_state(&backend, "x", CircuitState::HalfOpen, &operator).await;
    assert!(refused.unwrap_err().to_string().contains("state"));
}

/// Idle workers don't take the probe lease: a worker with traffic gets the probe promptly,
/// not after an idle holder's lease expires.
pub async fn idle_workers_leave_the_probe_to_busy_ones(factory: &impl BackendFactory) {
    let recovery = Duration::from_millis(300);
    for round in 0..3 {
        let workers = fleet(factory, 4, &["x"], &config(1, recovery)).await;
        fail(workers[0].breaker("x"), 1);
        eventually("all open", || {
            workers
                .iter()
                .all(|w| w.breaker("x").state() == CircuitState::Open)
        })
        .await;
        sleep(recovery).await;
        // Only the last worker has traffic; the others are idle but half-open too.
        let busy = workers[3].breaker("x");
        let started = Instant::now();
        let probe = loop {
            if let Ok(permit) = busy.try_acquire() {
                break permit;
            }
            assert!(
                started.elapsed() < CONVERGE,
                "round {round}: the busy worker never got a probe"
            );
            sleep(Duration::from_millis(5)).await;
        };
        // Evidence that it came promptly rather than after an idle holder's lease expired:
        // no idle worker (fresh this round) won the lease.
        for (i, w) in workers.iter().take(3).enumerate() {
            assert_eq!(
                w.manager.metrics().probe_leases,
                0,
                "round {round}: idle worker {i} took the probe lease"
            );
        }
        probe.success();
        eventually("closed everywhere", || {
            workers
                .iter()
                .all(|w| w.breaker("x").state() == CircuitState::Closed)
        })
        .await;
    }
}
