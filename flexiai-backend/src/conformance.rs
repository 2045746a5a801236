//! The rules every [`SyncBackend`] must follow, as executable checks.
//!
//! Each check is an `async fn` taking a [`BackendFactory`]; [`conformance_tests!`](crate::conformance_tests) expands to
//! one `#[tokio::test]` per check, so a backend crate runs the whole suite with one line and
//! a failure names the rule that broke:
//!
//! ```text
//! flexiai_backend::conformance_tests!(flexiai_backend::conformance::MemoryFactory);
//! ```
//!
//! The factory expression is evaluated inside each (async) test, so it may `.await`, and the
//! factory value lives until the test ends: a factory that owns a server keeps it running.
//! The calling crate needs `tokio` with the `macros` and `rt-multi-thread` features.
//!
//! Checks panic with a message on failure, as tests do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use flexiai_events::{
    BreakerSnapshot, CircuitBreakerEvent, CircuitState, Event, Revision, WorkerId,
};
use tokio::time::{sleep, timeout};

use crate::{
    BackendError, CasOutcome, CasRequest, FleetCounts, FleetWindow, Health, MemoryBackend,
    Notification, OutcomeBatch, OutcomeSlice, Subscription, SyncBackend,
};

/// Settings a check needs from the backends it is given.
#[derive(Debug, Clone)]
pub struct ConformanceOptions {
    /// The state TTL the backends must apply.
    pub state_ttl: Duration,
}

impl Default for ConformanceOptions {
    fn default() -> Self {
        Self {
            state_ttl: Duration::from_secs(60),
        }
    }
}

/// Makes backends for the suite.
#[async_trait]
pub trait BackendFactory: Send + Sync {
    /// Opens `workers` handles onto one fresh namespace (store and channel) that no other call
    /// shares: what `workers` separate processes would see. Where the backend has connections,
    /// each handle must have its own.
    async fn open(&self, workers: usize, options: &ConformanceOptions)
    -> Vec<Arc<dyn SyncBackend>>;
}

/// Runs the suite against [`MemoryBackend`]: clones of one backend are its "workers".
#[derive(Debug, Default, Clone, Copy)]
pub struct MemoryFactory;

#[async_trait]
impl BackendFactory for MemoryFactory {
    async fn open(
        &self,
        workers: usize,
        options: &ConformanceOptions,
    ) -> Vec<Arc<dyn SyncBackend>> {
        let backend = MemoryBackend::builder()
            .state_ttl(Some(options.state_ttl))
            .build()
            .expect("valid memory backend settings");
        (0..workers)
            .map(|_| Arc::new(backend.clone()) as Arc<dyn SyncBackend>)
            .collect()
    }
}

/// Expands to one `#[tokio::test]` per conformance check, each building its backends with
/// `$factory` (an expression evaluated inside the async test, so it may `.await`).
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(@cases $factory;
            publish_reaches_every_subscriber,
            state_round_trip,
            stored_open_periods_age_on_every_read,
            batched_reads_keep_order,
            state_expires_after_ttl,
            cas_stores_only_successors,
            cas_after_a_wipe_takes_any_writer_once,
            cas_publishes_only_the_winning_event,
            concurrent_cas_has_one_winner_per_version,
            lock_excludes_concurrent_holders,
            lock_release_and_extend_are_owner_only,
            lock_expires_and_extension_keeps_it,
            fencing_tokens_strictly_increase,
            heartbeats_list_live_workers,
            bad_arguments_change_nothing,
            closed_backend_refuses_everything,
            fleet_counts_sum_every_worker_per_period,
            fleet_counts_expire_with_the_window,
            storming_names_providers_with_fleet_failures,
            cas_many_matches_cas_in_order,
            fleet_arguments_are_validated,
            fleet_reports_are_applied_once,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let factory = $factory;
                $crate::conformance::$case(&factory).await;
            }
        )*
    };
}

const RECV_TIMEOUT: Duration = Duration::from_secs(5);

async fn one(factory: &impl BackendFactory) -> Arc<dyn SyncBackend> {
    many(factory, 1).await.remove(0)
}

async fn many(factory: &impl BackendFactory, n: usize) -> Vec<Arc<dyn SyncBackend>> {
    let backends = factory.open(n, &ConformanceOptions::default()).await;
    assert_eq!(
        backends.len(),
        n,
        "factory returned the wrong number of handles"
    );
    backends
}

fn worker(n: usize) -> WorkerId {
    WorkerId::new(format!("conformance:{n}:1700000000000")).unwrap()
}

fn snapshot(state: CircuitState, version: u64) -> BreakerSnapshot {
    let mut s = BreakerSnapshot::new(state, version);
    s.failure_count = version * 10;
    s.updated_by = Some(worker(0));
    s
}

fn transition(provider: &str, state: CircuitState, version: u64) -> Event {
    Event::from(CircuitBreakerEvent::transition(
        provider,
        worker(0),
        state,
        version,
    ))
}

/// The next event on `sub`, skipping (re)subscription notices; fails on timeout or rejection.
async fn next_event(sub: &mut Subscription) -> Event {
    loop {
        match timeout(RECV_TIMEOUT, sub.recv()).await {
            Ok(Some(Notification::Event(event))) => return event,
            Ok(Some(Notification::Resubscribed | Notification::Disconnected)) => continue,
            Ok(other) => panic!("expected an event, got {other:?}"),
            Err(_) => panic!("no event within {RECV_TIMEOUT:?}"),
        }
    }
}

pub async fn publish_reaches_every_subscriber(factory: &impl BackendFactory) {
    let backends = many(factory, 2).await;
    let mut subs = vec![
        backends[0].subscribe().await.unwrap(),
        backends[0].subscribe().await.unwrap(),
        backends[1].subscribe().await.unwrap(),
    ];
    let events: Vec<Event> = (1..=10)
        .map(|v| transition(&format!("p{}", v % 3), CircuitState::Open, v))
        .collect();
    for (i, event) in events.iter().enumerate() {
        // Alternate publishers: a publisher's own subscribers receive its events too.
        backends[i % 2].publish_event(event).await.unwrap();
    }
    for sub in &mut subs {
        for expected in &events {
            assert_eq!(
                &next_event(sub).await,
                expected,
                "events must arrive in order"
            );
        }
    }
}

pub async fn state_round_trip(factory: &impl BackendFactory) {
    let backends = many(factory, 2).await;
    assert_eq!(backends[0].get_state("openai").await.unwrap(), None);
    let open = snapshot(CircuitState::Open, 5);
    backends[0].set_state("openai", &open).await.unwrap();
    assert_eq!(backends[1].get_state("openai").await.unwrap(), Some(open));
    // set_state is unconditional, even backwards.
    let older = snapshot(CircuitState::Closed, 1);
    backends[1].set_state("openai", &older).await.unwrap();
    assert_eq!(backends[0].get_state("openai").await.unwrap(), Some(older));
}

/// A stored open period is read as of the read: the store ages `open_remaining_ms` by the
/// time since the write on its own clock, through every read (`get_state`, `get_states`, the
/// stored snapshot a lost compare-and-set returns), so that workers compare open periods
/// with no writer's clock involved (issue 12, #5: a tie loser read a stored deadline as if
/// written now and kept its later one only locally).
pub async fn stored_open_periods_age_on_every_read(factory: &impl BackendFactory) {
    const LEFT: u64 = 60_000;
    const WAIT: Duration = Duration::from_millis(300);
    let backend = one(factory).await;
    let mut open = snapshot(CircuitState::Open, 3);
    open.open_remaining_ms = Some(LEFT);
    assert_eq!(
        backend
            .compare_and_set("openai", &open, None, None)
            .await
            .unwrap(),
        CasOutcome::Applied
    );
    backend.set_state("anthropic", &open).await.unwrap();
    tokio::time::sleep(WAIT).await;
    // At least WAIT less; the upper bound only catches a period grown or reset to zero.
    let wait = u64::try_from(WAIT.as_millis()).unwrap();
    let aged = |s: Option<BreakerSnapshot>, how: &str| {
        let left = s.and_then(|s| s.open_remaining_ms).unwrap();
        assert!(
            left <= LEFT - wait && left > LEFT / 2,
            "{how}: {left} ms left of {LEFT} after {WAIT:?}"
        );
    };
    aged(backend.get_state("openai").await.unwrap(), "get_state");
    let both = backend
        .get_states(&["openai".to_owned(), "anthropic".to_owned()])
        .await
        .unwrap();
    for (s, how) in both
        .into_iter()
        .zip(["get_states", "get_states of set_state"])
    {
        aged(s, how);
    }
    match backend
        .compare_and_set("openai", &snapshot(CircuitState::Closed, 9), None, None)
        .await
        .unwrap()
    {
        CasOutcome::Stale { current } => aged(Some(current), "a lost compare-and-set"),
        other => panic!("a write naming no base over a stored one applied: {other:?}"),
    }
    // Every other field reads as written.
    let mut read = backend.get_state("openai").await.unwrap().unwrap();
    read.open_remaining_ms = open.open_remaining_ms;
    assert_eq!(read, open);
}

pub async fn batched_reads_keep_order(factory: &impl BackendFactory) {
    let backend = one(factory).await;
    assert_eq!(
        backend.get_states(&[]).await.unwrap(),
        Vec::<Option<BreakerSnapshot>>::new()
    );
    let names: Vec<String> = (0..50).map(|i| format!("provider-{i}")).collect();
    for (i, name) in names.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
        backend
            .set_state(name, &snapshot(CircuitState::Open, i as u64 + 1))
            .await
            .unwrap();
    }
    let read = backend.get_states(&names).await.unwrap();
    assert_eq!(read.len(), names.len());
    for (i, entry) in read.iter().enumerate() {
        if i % 3 == 0 {
            assert_eq!(
                entry.as_ref().map(|s| s.version),
                Some(i as u64 + 1),
                "provider-{i}"
            );
        } else {
            assert_eq!(entry, &None, "provider-{i}");
        }
    }
}

pub async fn state_expires_after_ttl(factory: &impl BackendFactory) {
    let options = ConformanceOptions {
        state_ttl: Duration::from_millis(300),
    };
    let backend = factory.open(1, &options).await.remove(0);
    backend
        .set_state("a", &snapshot(CircuitState::Open, 1))
        .await
        .unwrap();
    assert_eq!(
        backend
            .compare_and_set("b", &snapshot(CircuitState::Open, 1), None, None)
            .await
            .unwrap(),
        CasOutcome::Applied
    );
    assert!(backend.get_state("a").await.unwrap().is_some());
    sleep(Duration::from_millis(900)).await;
    assert_eq!(
        backend.get_state("a").await.unwrap(),
        None,
        "set_state must apply the TTL"
    );
    assert_eq!(
        backend.get_state("b").await.unwrap(),
        None,
        "compare_and_set must apply the TTL"
    );
    // An expired snapshot no longer blocks anything: the store is empty again.
    assert_eq!(
        backend
            .compare_and_set("b", &snapshot(CircuitState::Closed, 0), None, None)
            .await
            .unwrap(),
        CasOutcome::Applied
    );
}

fn rev(epoch: u64, version: u64) -> Option<Revision> {
    Some(Revision { epoch, version })
}

/// A stored snapshot is replaced only by a successor of it: the writer must name the stored
/// revision as the one it grew from, and its own must be greater. A higher version grown from
/// anything else (a diverged branch, a history from before a wipe) loses.
pub async fn cas_stores_only_successors(factory: &impl BackendFactory) {
    let backend = one(factory).await;
    let v1 = snapshot(CircuitState::Open, 1);
    let v3 = snapshot(CircuitState::HalfOpen, 3);
    assert_eq!(
        backend.compare_and_set("p", &v1, None, None).await.unwrap(),
        CasOutcome::Applied
    );
    let stale = CasOutcome::Stale {
        current: v1.clone(),
    };
    // Not a successor: grew from nothing, from another revision, or not greater.
    for (candidate, expected) in [
        (snapshot(CircuitState::Closed, 9), None),
        (snapshot(CircuitState::Closed, 9), rev(0, 0)),
        (snapshot(CircuitState::Closed, 9), rev(0, 2)),
        (snapshot(CircuitState::Closed, 9), rev(7, 1)),
        (snapshot(CircuitState::Closed, 1), rev(0, 1)),
        (snapshot(CircuitState::Closed, 0), rev(0, 1)),
    ] {
        assert_eq!(
            backend
                .compare_and_set("p", &candidate, expected, None)
                .await
                .unwrap(),
            stale,
            "v{} grown from {expected:?} replaced v1",
            candidate.version
        );
    }
    // A successor may skip versions (several local transitions published as one).
    assert_eq!(
        backend
            .compare_and_set("p", &v3, rev(0, 1), None)
            .await
            .unwrap(),
        CasOutcome::Applied
    );
    // A new epoch outranks any version of the old one, and is again successor-only.
    let mut override_ = snapshot(CircuitState::ForcedOpen, 1);
    override_.epoch = 5;
    assert_eq!(
        backend
            .compare_and_set("p", &override_, rev(0, 3), None)
            .await
            .unwrap(),
        CasOutcome::Applied
    );
    let old_epoch = snapshot(CircuitState::Closed, 50);
    assert_eq!(
        backend
            .compare_and_set("p", &old_epoch, rev(5, 1), None)
            .await
            .unwrap(),
        CasOutcome::Stale {
            current: override_.clone()
        },
        "an older epoch is not a successor, whatever its version"
    );
    assert_eq!(backend.get_state("p").await.unwrap(), Some(override_));
}

/// An empty store (never written, expired, or wiped) has no decision to protect: the first
/// writer wins whatever it grew from, and every later one must grow from that.
pub async fn cas_after_a_wipe_takes_any_writer_once(factory: &impl BackendFactory) {
    let backends = many(factory, 2).await;
    let remembered = snapshot(CircuitState::Closed, 6);
    assert_eq!(
        backends[0]
            .compare_and_set("p", &remembered, rev(0, 5), None)
            .await
            .unwrap(),
        CasOutcome::Applied
    );
    let mut override_ = snapshot(CircuitState::ForcedOpen, 7);
    override_.epoch = 1;
    assert_eq!(
        backends[1]
            .compare_and_set("p", &override_, rev(0, 6), None)
            .await
            .unwrap(),
        CasOutcome::Applied
    );
    let again = snapshot(CircuitState::Closed, 7);
    assert!(matches!(
        backends[0]
            .compare_and_set("p", &again, rev(0, 6), None)
            .await
            .unwrap(),
        CasOutcome::Stale { .. }
    ));
}

pub async fn cas_publishes_only_the_winning_event(factory: &impl BackendFactory) {
    let backends = many(factory, 2).await;
    let mut sub = backends[1].subscribe().await.unwrap();
    let win = transition("p", CircuitState::Open, 4);
    let lose = transition("p", CircuitState::Closed, 4);
    let sentinel = transition("sentinel", CircuitState::Closed, 1);
    assert_eq!(
        backends[0]
            .compare_and_set("p", &snapshot(CircuitState::Open, 4), None, Some(&win))
            .await
            .unwrap(),
        CasOutcome::Applied
    );
    assert!(matches!(
        backends[0]
            .compare_and_set(
                "p",
                &snapshot(CircuitState::Closed, 4),
                rev(0, 3),
                Some(&lose)
            )
            .await
            .unwrap(),
        CasOutcome::Stale { .. }
    ));
    backends[0].publish_event(&sentinel).await.unwrap();
    assert_eq!(next_event(&mut sub).await, win);
    assert_eq!(
        next_event(&mut sub).await,
        sentinel,
        "a losing CAS must not publish"
    );
}

pub async fn concurrent_cas_has_one_winner_per_version(factory: &impl BackendFactory) {
    const WRITERS: usize = 8;
    const VERSIONS: u64 = 10;
    let backends = many(factory, WRITERS).await;
    let mut sub = backends[0].subscribe().await.unwrap();
    for version in 1..=VERSIONS {
        let mut tasks = Vec::new();
        for (w, backend) in backends.iter().enumerate() {
            let backend = Arc::clone(backend);
            tasks.push(tokio::spawn(async move {
                let mut s = snapshot(CircuitState::Open, version);
                s.updated_by = Some(worker(w));
                let event = Event::from(CircuitBreakerEvent::transition(
                    "contended",
                    worker(w),
                    CircuitState::Open,
                    version,
                ));
                // Every writer grows from the previous winner.
                let grew_from = version.checked_sub(1).filter(|v| *v > 0);
                let grew_from = grew_from.map(|version| Revision { epoch: 0, version });
                backend
                    .compare_and_set("contended", &s, grew_from, Some(&event))
                    .await
                    .unwrap()
            }));
        }
        let mut winners = 0;
        for task in tasks {
            match task.await.unwrap() {
                CasOutcome::Applied => winners += 1,
                CasOutcome::Stale { current } => assert_eq!(current.version, version),
            }
        }
        assert_eq!(winners, 1, "version {version} must have exactly one winner");
    }
    assert_eq!(
        backends[0]
            .get_state("contended")
            .await
            .unwrap()
            .unwrap()
            .version,
        VERSIONS
    );
    // The stream carries exactly the winners, in version order.
    for version in 1..=VERSIONS {
        assert_eq!(next_event(&mut sub).await.version(), Some(version));
    }
}

pub async fn lock_excludes_concurrent_holders(factory: &impl BackendFactory) {
    const CONTENDERS: usize = 8;
    const ROUNDS: usize = 5;
    let backends = many(factory, CONTENDERS).await;
    let holders = Arc::new(AtomicUsize::new(0));
    let acquisitions = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for backend in backends {
        let holders = Arc::clone(&holders);
        let acquisitions = Arc::clone(&acquisitions);
        tasks.push(tokio::spawn(async move {
            let mut mine = 0;
            for _ in 0..200 {
                if mine == ROUNDS {
                    break;
                }
                match backend
                    .acquire_lock("mutex", Duration::from_secs(10))
                    .await
                    .unwrap()
                {
                    Some(lease) => {
                        let inside = holders.fetch_add(1, Ordering::SeqCst);
                        assert_eq!(inside, 0, "two holders of one lock");
                        sleep(Duration::from_millis(2)).await;
                        holders.fetch_sub(1, Ordering::SeqCst);
                        assert!(backend.release_lock(&lease).await.unwrap());
                        acquisitions.fetch_add(1, Ordering::SeqCst);
                        mine += 1;
                    }
                    None => sleep(Duration::from_millis(1)).await,
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(
        acquisitions.load(Ordering::SeqCst) >= CONTENDERS,
        "contenders starved"
    );
}

pub async fn lock_release_and_extend_are_owner_only(factory: &impl BackendFactory) {
    let backends = many(factory, 2).await;
    let lease = backends[0]
        .acquire_lock("owned", Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    assert!(
        backends[1]
            .acquire_lock("owned", Duration::from_secs(10))
            .await
            .unwrap()
            .is_none()
    );
    let forged =
        crate::LockLease::new("owned", "not-the-token", lease.fencing_token(), lease.ttl());
    assert!(
        !backends[1].release_lock(&forged).await.unwrap(),
        "a non-owner released the lock"
    );
    assert!(
        !backends[1]
            .extend_lock(&forged, Duration::from_secs(30))
            .await
            .unwrap()
    );
    assert!(
        backends[1]
            .acquire_lock("owned", Duration::from_secs(10))
            .await
            .unwrap()
            .is_none()
    );
    assert!(backends[0].release_lock(&lease).await.unwrap());
    assert!(
        !backends[0].release_lock(&lease).await.unwrap(),
        "released twice"
    );
    assert!(
        backends[1]
            .acquire_lock("owned", Duration::from_secs(10))
            .await
            .unwrap()
            .is_some()
    );
}

pub async fn lock_expires_and_extension_keeps_it(factory: &impl BackendFactory) {
    let backends = many(factory, 2).await;
    let expiring = backends[0]
        .acquire_lock("short", Duration::from_millis(200))
        .await
        .unwrap()
        .unwrap();
    assert!(
        backends[1]
            .acquire_lock("short", Duration::from_millis(200))
            .await
            .unwrap()
            .is_none()
    );
    sleep(Duration::from_millis(500)).await;
    let taken = backends[1]
        .acquire_lock("short", Duration::from_secs(10))
        .await
        .unwrap();
    assert!(taken.is_some(), "an expired lock must be available");
    assert!(
        !backends[0].release_lock(&expiring).await.unwrap(),
        "expired lease released the new holder's lock"
    );
    assert!(
        !backends[0]
            .extend_lock(&expiring, Duration::from_secs(5))
            .await
            .unwrap()
    );

    let kept = backends[0]
        .acquire_lock("kept", Duration::from_millis(300))
        .await
        .unwrap()
        .unwrap();
    sleep(Duration::from_millis(100)).await;
    assert!(
        backends[0]
            .extend_lock(&kept, Duration::from_secs(5))
            .await
            .unwrap()
    );
    sleep(Duration::from_millis(600)).await;
    assert!(
        backends[1]
            .acquire_lock("kept", Duration::from_secs(1))
            .await
            .unwrap()
            .is_none(),
        "extension was lost"
    );
    assert!(backends[0].release_lock(&kept).await.unwrap());
}

pub async fn fencing_tokens_strictly_increase(factory: &impl BackendFactory) {
    let backends = many(factory, 3).await;
    let mut last = 0;
    for round in 0..12 {
        let backend = &backends[round % 3];
        // Every fourth lease is left to expire instead of released: short. The others live
        // far longer than a slow machine takes to release them.
        let expires = round % 4 == 3;
        let ttl = Duration::from_millis(if expires { 150 } else { 30_000 });
        // After an expiring lease, the lock is free once its TTL ran out: retried until then.
        let start = std::time::Instant::now();
        let lease = loop {
            if let Some(lease) = backend.acquire_lock("fenced", ttl).await.unwrap() {
                break lease;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "round {round}: the lock never became free"
            );
            sleep(Duration::from_millis(20)).await;
        };
        assert!(
            lease.fencing_token() > last,
            "token {} after {last}",
            lease.fencing_token()
        );
        last = lease.fencing_token();
        if !expires {
            assert!(backend.release_lock(&lease).await.unwrap());
        }
    }
    // Tokens are per lock name.
    let other = backends[0]
        .acquire_lock("other", Duration::from_secs(1))
        .await
        .unwrap()
        .unwrap();
    assert!(other.fencing_token() >= 1);
}

pub async fn heartbeats_list_live_workers(factory: &impl BackendFactory) {
    let backends = many(factory, 2).await;
    let (a, b, c) = (worker(1), worker(2), worker(3));
    backends[0]
        .heartbeat(&a, Duration::from_secs(30))
        .await
        .unwrap();
    backends[1]
        .heartbeat(&b, Duration::from_secs(30))
        .await
        .unwrap();
    backends[1]
        .heartbeat(&c, Duration::from_millis(200))
        .await
        .unwrap();
    let mut live = backends[0].live_workers().await.unwrap();
    live.sort();
    assert_eq!(live, vec![a.clone(), b.clone(), c.clone()]);
    backends[0].remove_worker(&a).await.unwrap();
    sleep(Duration::from_millis(600)).await;
    assert_eq!(backends[1].live_workers().await.unwrap(), vec![b]);
}

pub async fn bad_arguments_change_nothing(factory: &impl BackendFactory) {
    let backend = one(factory).await;
    let s = snapshot(CircuitState::Open, 1);
    for bad in [
        "",
        "has space",
        "line\nbreak",
        "{tag}",
        "a}b",
        &"x".repeat(300),
    ] {
        let invalid =
            |r: Result<(), BackendError>| matches!(r, Err(BackendError::InvalidArgument { .. }));
        assert!(
            invalid(backend.set_state(bad, &s).await),
            "set_state({bad:?})"
        );
        assert!(
            invalid(backend.get_state(bad).await.map(drop)),
            "get_state({bad:?})"
        );
        assert!(
            invalid(backend.get_states(&[bad.to_owned()]).await.map(drop)),
            "get_states({bad:?})"
        );
        assert!(
            invalid(backend.compare_and_set(bad, &s, None, None).await.map(drop)),
            "cas({bad:?})"
        );
        assert!(
            invalid(
                backend
                    .acquire_lock(bad, Duration::from_secs(1))
                    .await
                    .map(drop)
            ),
            "lock({bad:?})"
        );
    }
    for ttl in [Duration::ZERO, Duration::from_secs(86_401)] {
        let err = backend.acquire_lock("fine", ttl).await.unwrap_err();
        assert!(
            matches!(err, BackendError::InvalidArgument { field: "ttl", .. }),
            "{err:?}"
        );
        assert!(backend.heartbeat(&worker(1), ttl).await.is_err());
    }
    assert!(
        backend
            .acquire_lock("fine", Duration::from_secs(1))
            .await
            .unwrap()
            .is_some(),
        "a rejected call took the lock"
    );
    assert!(backend.live_workers().await.unwrap().is_empty());
    let err = backend.get_state("").await.unwrap_err();
    assert!(
        err.to_string().contains("provider"),
        "error must name the field: {err}"
    );
}

pub async fn closed_backend_refuses_everything(factory: &impl BackendFactory) {
    let backends = many(factory, 1).await;
    let backend = &backends[0];
    assert!(backend.health_check().await.is_healthy());
    let mut sub = backend.subscribe().await.unwrap();
    backend.close().await.unwrap();
    backend.close().await.unwrap(); // idempotent
    assert_eq!(backend.health_check().await, Health::Closed);
    // The subscription ends instead of hanging.
    let ended = timeout(RECV_TIMEOUT, async {
        while let Some(n) = sub.recv().await {
            assert!(
                !matches!(n, Notification::Event(_)),
                "event after close: {n:?}"
            );
        }
    })
    .await;
    assert!(ended.is_ok(), "subscription did not end after close");
    let closed = |r: Result<(), BackendError>| matches!(r, Err(BackendError::Closed));
    let s = snapshot(CircuitState::Open, 1);
    assert!(closed(
        backend
            .publish_event(&transition("p", CircuitState::Open, 1))
            .await
    ));
    assert!(closed(backend.subscribe().await.map(drop)));
    assert!(closed(backend.get_state("p").await.map(drop)));
    assert!(closed(backend.get_states(&["p".into()]).await.map(drop)));
    assert!(closed(backend.set_state("p", &s).await));
    assert!(closed(
        backend.compare_and_set("p", &s, None, None).await.map(drop)
    ));
    assert!(closed(
        backend
            .acquire_lock("l", Duration::from_secs(1))
            .await
            .map(drop)
    ));
    assert!(closed(
        backend.heartbeat(&worker(1), Duration::from_secs(1)).await
    ));
    assert!(closed(backend.live_workers().await.map(drop)));
}

fn counts(failures: u64, successes: u64) -> FleetCounts {
    FleetCounts {
        failures,
        successes,
    }
}

pub async fn fleet_counts_sum_every_worker_per_period(factory: &impl BackendFactory) {
    let backends = many(factory, 3).await;
    let window = FleetWindow::new(Duration::from_secs(60), 10).unwrap();
    let mut expected = counts(0, 0);
    for (i, backend) in backends.iter().enumerate() {
        let (f, s) = (i as u64 + 1, 10 * (i as u64 + 1));
        expected.failures += f;
        expected.successes += s;
        let got = backend
            .record_outcomes("p", &OutcomeBatch::now(4, f, s), &window)
            .await
            .unwrap();
        assert_eq!(got, expected, "totals after worker {i}'s batch");
    }
    // Concurrent writers lose nothing.
    let mut tasks = Vec::new();
    for backend in &backends {
        for _ in 0..20 {
            let backend = Arc::clone(backend);
            tasks.push(tokio::spawn(async move {
                backend
                    .record_outcomes("p", &OutcomeBatch::now(4, 1, 2), &window)
                    .await
                    .unwrap()
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    expected.failures += 60;
    expected.successes += 120;
    let empty = OutcomeBatch {
        period: 4,
        slices: Vec::new(),
        report: None,
    };
    assert_eq!(
        backends[1]
            .record_outcomes("p", &empty, &window)
            .await
            .unwrap(),
        expected,
        "an empty batch reads the totals"
    );
    assert_eq!(
        backends[1]
            .record_outcomes("p", &empty, &window)
            .await
            .unwrap(),
        expected,
        "an empty batch writes nothing"
    );
    // Other periods and providers have their own windows.
    assert_eq!(
        backends[0]
            .record_outcomes("p", &OutcomeBatch::now(5, 1, 0), &window)
            .await
            .unwrap(),
        counts(1, 0)
    );
    assert_eq!(
        backends[0]
            .record_outcomes("q", &OutcomeBatch::now(4, 0, 3), &window)
            .await
            .unwrap(),
        counts(0, 3)
    );
    // Several slices in one batch add up; zero slices add nothing.
    let batch = OutcomeBatch {
        period: 9,
        slices: vec![
            OutcomeSlice {
                age: Duration::ZERO,
                failures: 2,
                successes: 0,
            },
            OutcomeSlice {
                age: Duration::from_secs(20),
                failures: 0,
                successes: 7,
            },
            OutcomeSlice::default(),
        ],
        report: None,
    };
    assert_eq!(
        backends[2]
            .record_outcomes("p", &batch, &window)
            .await
            .unwrap(),
        counts(2, 7)
    );
}

pub async fn fleet_counts_expire_with_the_window(factory: &impl BackendFactory) {
    let backend = one(factory).await;
    // Three 500 ms slices.
    let window = FleetWindow::new(Duration::from_millis(1500), 3).unwrap();
    let batch = OutcomeBatch {
        period: 1,
        slices: vec![
            OutcomeSlice {
                age: Duration::ZERO,
                failures: 1,
                successes: 0,
            },
            // Recorded 900 ms ago by the sender's clock: filed in an older slice.
            OutcomeSlice {
                age: Duration::from_millis(900),
                failures: 0,
                successes: 5,
            },
            // Older than the window: dropped.
            OutcomeSlice {
                age: Duration::from_millis(1500),
                failures: 100,
                successes: 100,
            },
        ],
        report: None,
    };
    assert_eq!(
        backend.record_outcomes("p", &batch, &window).await.unwrap(),
        counts(1, 5)
    );
    let read = OutcomeBatch {
        period: 1,
        slices: Vec::new(),
        report: None,
    };
    // 800 ms on, the aged slice (now 1.7 s old) has left the window; the fresh one has not.
    sleep(Duration::from_millis(800)).await;
    assert_eq!(
        backend.record_outcomes("p", &read, &window).await.unwrap(),
        counts(1, 0),
        "counts must leave the window slice by slice, by age"
    );
    sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        backend.record_outcomes("p", &read, &window).await.unwrap(),
        counts(0, 0),
        "counts must expire with the window"
    );
}

pub async fn storming_names_providers_with_fleet_failures(factory: &impl BackendFactory) {
    let backends = many(factory, 2).await;
    let window = FleetWindow::new(Duration::from_millis(600), 3).unwrap();
    let names = vec!["calm".to_owned(), "stormy".to_owned(), "unknown".to_owned()];
    assert_eq!(
        backends[0].storming(&names).await.unwrap(),
        vec![None, None, None]
    );
    assert_eq!(
        backends[0].storming(&[]).await.unwrap(),
        Vec::<Option<u64>>::new()
    );
    backends[0]
        .record_outcomes("calm", &OutcomeBatch::now(2, 0, 50), &window)
        .await
        .unwrap();
    backends[0]
        .record_outcomes("stormy", &OutcomeBatch::now(7, 1, 50), &window)
        .await
        .unwrap();
    assert_eq!(
        backends[1].storming(&names).await.unwrap(),
        vec![None, Some(7), None],
        "only a window with failures storms"
    );
    sleep(Duration::from_millis(900)).await;
    assert_eq!(
        backends[1].storming(&names).await.unwrap(),
        vec![None, None, None],
        "the mark expires with the window"
    );
}

pub async fn cas_many_matches_cas_in_order(factory: &impl BackendFactory) {
    let backends = many(factory, 2).await;
    assert_eq!(
        backends[0].compare_and_set_many(&[]).await.unwrap(),
        Vec::<CasOutcome>::new()
    );
    let mut sub = backends[1].subscribe().await.unwrap();
    let stored_b = snapshot(CircuitState::Open, 5);
    backends[0].set_state("b", &stored_b).await.unwrap();
    let (a1, b2, c1, a2) = (
        snapshot(CircuitState::Open, 1),
        snapshot(CircuitState::Closed, 2),
        snapshot(CircuitState::HalfOpen, 1),
        snapshot(CircuitState::Closed, 2),
    );
    let events = [
        transition("a", CircuitState::Open, 1),
        transition("b", CircuitState::Closed, 2),
        transition("c", CircuitState::HalfOpen, 1),
        transition("a", CircuitState::Closed, 2),
    ];
    let requests = [
        CasRequest {
            provider: "a",
            snapshot: &a1,
            expected: None,
            event: Some(&events[0]),
        },
        CasRequest {
            provider: "b",
            snapshot: &b2,
            expected: None,
            event: Some(&events[1]),
        },
        CasRequest {
            provider: "c",
            snapshot: &c1,
            expected: None,
            event: Some(&events[2]),
        },
        // The same provider again sees the first request's write.
        CasRequest {
            provider: "a",
            snapshot: &a2,
            expected: Some(a1.revision()),
            event: Some(&events[3]),
        },
    ];
    let outcomes = backends[0].compare_and_set_many(&requests).await.unwrap();
    assert_eq!(
        outcomes,
        vec![
            CasOutcome::Applied,
            CasOutcome::Stale {
                current: stored_b.clone()
            },
            CasOutcome::Applied,
            CasOutcome::Applied,
        ]
    );
    let read = backends[1]
        .get_states(&["a".into(), "b".into(), "c".into()])
        .await
        .unwrap();
    assert_eq!(read, vec![Some(a2), Some(stored_b), Some(c1)]);
    // Exactly the winners' events, in request order.
    let sentinel = transition("sentinel", CircuitState::Closed, 1);
    backends[0].publish_event(&sentinel).await.unwrap();
    for expected in [&events[0], &events[2], &events[3], &sentinel] {
        assert_eq!(&next_event(&mut sub).await, expected);
    }
}

pub async fn fleet_arguments_are_validated(factory: &impl BackendFactory) {
    let backend = one(factory).await;
    let window = FleetWindow::new(Duration::from_secs(10), 10).unwrap();
    for (length, buckets) in [
        (Duration::ZERO, 10),
        (Duration::from_secs(10), 0),
        (Duration::from_secs(10), 65),
        (Duration::from_millis(5), 10),
        (Duration::from_secs(86_401), 10),
    ] {
        let err = FleetWindow::new(length, buckets).unwrap_err();
        assert!(
            matches!(err, BackendError::InvalidArgument { field, .. } if field.starts_with("window.")),
            "{length:?}/{buckets}: {err:?}"
        );
    }
    let invalid = |r: Result<FleetCounts, BackendError>| {
        matches!(r, Err(BackendError::InvalidArgument { .. }))
    };
    let good = OutcomeBatch::now(1, 1, 1);
    assert!(invalid(backend.record_outcomes("", &good, &window).await));
    assert!(invalid(
        backend.record_outcomes("has space", &good, &window).await
    ));
    let too_many = OutcomeBatch {
        period: 1,
        slices: vec![OutcomeSlice::default(); 65],
        report: None,
    };
    assert!(invalid(
        backend.record_outcomes("p", &too_many, &window).await
    ));
    let too_big = OutcomeBatch::now(1, crate::MAX_SLICE_COUNT + 1, 0);
    assert!(invalid(
        backend.record_outcomes("p", &too_big, &window).await
    ));
    for bad in [
        OutcomeBatch::now(1, 1, 0).reported_as("", 1),
        OutcomeBatch::now(1, 1, 0).reported_as("r".repeat(crate::MAX_REPORTER_LEN + 1), 1),
        OutcomeBatch::now(1, 1, 0).reported_as("r", crate::MAX_REPORT_SEQUENCE + 1),
    ] {
        assert!(
            matches!(
                backend.record_outcomes("p", &bad, &window).await,
                Err(BackendError::InvalidArgument { field, .. }) if field.starts_with("batch.report")
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        backend.storming(&["bad name".into()]).await,
        Err(BackendError::InvalidArgument { .. })
    ));
    // Nothing was counted by the rejected calls.
    let read = OutcomeBatch {
        period: 1,
        slices: Vec::new(),
        report: None,
    };
    assert_eq!(
        backend.record_outcomes("p", &read, &window).await.unwrap(),
        counts(0, 0)
    );
    // One bad request fails the whole batch before anything is written.
    let s = snapshot(CircuitState::Open, 1);
    let requests = [
        CasRequest {
            provider: "fine",
            snapshot: &s,
            expected: None,
            event: None,
        },
        CasRequest {
            provider: "bad name",
            snapshot: &s,
            expected: None,
            event: None,
        },
    ];
    assert!(matches!(
        backend.compare_and_set_many(&requests).await,
        Err(BackendError::InvalidArgument { .. })
    ));
    assert_eq!(backend.get_state("fine").await.unwrap(), None);
    let oversized = vec![
        CasRequest {
            provider: "fine",
            snapshot: &s,
            expected: None,
            event: None,
        };
        crate::MAX_CAS_BATCH + 1
    ];
    assert!(matches!(
        backend.compare_and_set_many(&oversized).await,
        Err(BackendError::InvalidArgument {
            field: "requests",
            ..
        })
    ));
    assert_eq!(backend.get_state("fine").await.unwrap(), None);
    // A closed backend refuses these too.
    backend.close().await.unwrap();
    assert!(matches!(
        backend.record_outcomes("p", &good, &window).await,
        Err(BackendError::Closed)
    ));
    assert!(matches!(
        backend.storming(&["p".into()]).await,
        Err(BackendError::Closed)
    ));
    assert!(matches!(
        backend.compare_and_set_many(&requests[..1]).await,
        Err(BackendError::Closed)
    ));
}

/// A report sent again (its reply was lost: a timeout after the store applied it) is counted
/// once; a report with a higher sequence, another reporter's, or another period's is counted.
pub async fn fleet_reports_are_applied_once(factory: &impl BackendFactory) {
    let backends = many(factory, 2).await;
    let window = FleetWindow::new(Duration::from_secs(60), 10).unwrap();
    let report = |period, failures, successes, reporter: &str, sequence| {
        OutcomeBatch::now(period, failures, successes).reported_as(reporter, sequence)
    };
    let first = report(3, 2, 5, "w1/a", 1);
    assert_eq!(
        backends[0]
            .record_outcomes("p", &first, &window)
            .await
            .unwrap(),
        counts(2, 5)
    );
    // The same report again, from another connection (a reconnect after the timeout): a
    // no-op that answers the current totals.
    for backend in &backends {
        assert_eq!(
            backend.record_outcomes("p", &first, &window).await.unwrap(),
            counts(2, 5),
            "a resent report must not be counted twice"
        );
    }
    // The resend may carry the same counts at a later age: still the same report.
    let mut aged = first.clone();
    aged.slices[0].age = Duration::from_secs(1);
    assert_eq!(
        backends[1]
            .record_outcomes("p", &aged, &window)
            .await
            .unwrap(),
        counts(2, 5)
    );
    // Another reporter's first report counts; so does this reporter's next one.
    assert_eq!(
        backends[1]
            .record_outcomes("p", &report(3, 1, 0, "w2/b", 1), &window)
            .await
            .unwrap(),
        counts(3, 5)
    );
    assert_eq!(
        backends[0]
            .record_outcomes("p", &report(3, 0, 4, "w1/a", 2), &window)
            .await
            .unwrap(),
        counts(3, 9)
    );
    // A late copy of an older report (overtaken by the next one) adds nothing either.
    assert_eq!(
        backends[0]
            .record_outcomes("p", &first, &window)
            .await
            .unwrap(),
        counts(3, 9)
    );
    // Sequences are per provider and period: the same id elsewhere is a new report.
    assert_eq!(
        backends[0]
            .record_outcomes("p", &report(4, 1, 1, "w1/a", 2), &window)
            .await
            .unwrap(),
        counts(1, 1)
    );
    assert_eq!(
        backends[0]
            .record_outcomes("q", &report(3, 1, 1, "w1/a", 2), &window)
            .await
            .unwrap(),
        counts(1, 1)
    );
    // A batch without an id is counted every time (and reads nothing into the ids).
    let anonymous = OutcomeBatch::now(3, 1, 0);
    for expected in [counts(4, 9), counts(5, 9)] {
        assert_eq!(
            backends[1]
                .record_outcomes("p", &anonymous, &window)
                .await
                .unwrap(),
            expected
        );
    }
    assert_eq!(
        backends[1]
            .record_outcomes("p", &report(3, 1, 0, "w1/a", 3), &window)
            .await
            .unwrap(),
        counts(6, 9)
    );
}
