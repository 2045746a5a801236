//! Fleet scenarios for the protocol's invariants: one linear history per provider, operator
//! precedence, Retry-After, probe leases, and mixed Python/Rust fleets.

use std::sync::Arc;
use std::time::Duration;

use flexiai_backend::SyncBackend;
use flexiai_backend::conformance::BackendFactory;
use flexiai_events::{
    BreakerSnapshot, CircuitBreakerEvent, CircuitState, Event, EventMetadata, EventType, Timestamp,
    WorkerId,
};

use super::{Worker, config, eventually, fail, fleet};

/// A Python FlexiAI v0.5 worker id: `{hostname}:{pid}:{unix_millis}`.
pub fn python_worker() -> WorkerId {
    WorkerId::new("py-host:4242:1700000000000").unwrap()
}

/// A transition exactly as the Python original publishes it: no version, no exact state,
/// only `failure_count` and `success_count` in the metadata, a naive UTC timestamp.
pub fn python_transition(provider: &str, event_type: EventType, at: Timestamp) -> Event {
    Event::from(CircuitBreakerEvent {
        provider_name: provider.to_owned(),
        event_type,
        worker_id: python_worker(),
        timestamp: at,
        metadata: EventMetadata {
            failure_count: Some(0),
            success_count: Some(0),
            ..EventMetadata::default()
        },
    })
}

/// Waits until every worker has re-read the store at least `n` more times: evidence that a
/// reconcile ran after whatever the caller did before.
pub async fn reconciled(workers: &[Worker], n: u64) {
    let start: Vec<u64> = workers
        .iter()
        .map(|w| w.manager.metrics().reconciles)
        .collect();
    eventually("every worker reconciles again", || {
        workers
            .iter()
            .zip(&start)
            .all(|(w, s)| w.manager.metrics().reconciles >= s + n)
    })
    .await;
}

/// Waits until every worker received at least `n` more events from others.
pub async fn received(workers: &[Worker], before: &[u64], n: u64) {
    eventually("every worker receives the event", || {
        workers
            .iter()
            .zip(before)
            .all(|(w, b)| w.manager.metrics().events_received >= b + n)
    })
    .await;
}

async fn stored(backend: &Arc<dyn SyncBackend>, provider: &str) -> Option<BreakerSnapshot> {
    backend.get_state(provider).await.unwrap()
}

/// Moves `provider` to version `target` through manual transitions on worker 0 and waits
/// until the store and every worker hold it.
async fn advance_to(workers: &[Worker], provider: &str, target: u64) {
    let breaker = workers[0].breaker(provider);
    while breaker.version() < target {
        if breaker.state() == CircuitState::Closed {
            breaker.disable();
        } else {
            breaker.reset();
        }
    }
    let backend = Arc::clone(workers[0].manager.backend());
    let mut synced = false;
    for _ in 0..1000 {
        let at = stored(&backend, provider).await.map(|s| s.version);
        if at == Some(target)
            && workers
                .iter()
                .all(|w| w.breaker(provider).version() == target)
        {
            synced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(synced, "fleet did not reach version {target}");
}

/// After the store lost its history (here: a snapshot older than the fleet's replaces it, as
/// a restarted-empty Redis followed by a lagging writer would leave it), an operator's
/// `force_open` holds: workers adopt it and no reconcile writes their older history over it.
pub async fn an_override_after_a_store_reset_holds(factory: &impl BackendFactory) {
    let workers = fleet(factory, 3, &["x"], &config(5, Duration::from_secs(60))).await;
    advance_to(&workers, "x", 6).await;
    let backend = Arc::clone(workers[0].manager.backend());
    backend
        .set_state("x", &BreakerSnapshot::new(CircuitState::Closed, 0))
        .await
        .unwrap();
    let operator = WorkerId::new("ops:cli:1").unwrap();
    let written = crate::override_state(&backend, "x", CircuitState::ForcedOpen, &operator)
        .await
        .unwrap();
    assert_eq!(written.state, CircuitState::ForcedOpen);
    reconciled(&workers, 2).await;
    let now = stored(&backend, "x").await.unwrap();
    assert_eq!(
        now.state,
        CircuitState::ForcedOpen,
        "a worker wrote its older history over the override: {now:?}"
    );
    eventually("every worker is forced open", || {
        workers
            .iter()
            .all(|w| w.breaker("x").state() == CircuitState::ForcedOpen)
    })
    .await;
}

/// A worker that makes two breaker-made transitions (a trip, then a Retry-After) while an
/// operator writes the next version ends on the operator's decision: its diverged branch is
/// dropped, never stored over it. The worker's first write is held at a gate until the
/// operator's has landed, so the race goes the bad way every time.
pub async fn an_override_beats_concurrent_local_transitions(factory: &impl BackendFactory) {
    let backends = factory
        .open(
            2,
            &flexiai_backend::conformance::ConformanceOptions::default(),
        )
        .await;
    let gated = GatedBackend::new(Arc::clone(&backends[0]));
    let config = config(2, Duration::from_secs(10));
    let workers = vec![
        super::worker(Arc::clone(&gated) as Arc<dyn SyncBackend>, &["x"], &config).await,
        super::worker(Arc::clone(&backends[1]), &["x"], &config).await,
    ];
    advance_to(&workers, "x", 4).await;
    gated.hold();
    let breaker = workers[0].breaker("x");
    fail(breaker, 2);
    assert_eq!(breaker.state(), CircuitState::Open);
    eventually("the trip's write waits at the gate", || gated.waited() > 0).await;
    assert!(breaker.open_for(Duration::from_secs(30)).is_some());
    let operator = WorkerId::new("ops:cli:1").unwrap();
    let written = crate::override_state(&backends[1], "x", CircuitState::Disabled, &operator)
        .await
        .unwrap();
    gated.release();
    reconciled(&workers, 2).await;
    let now = stored(&backends[1], "x").await.unwrap();
    assert_eq!(
        (now.state, now.version),
        (CircuitState::Disabled, written.version),
        "the override was overwritten: {now:?}"
    );
    eventually("every worker is disabled", || {
        workers
            .iter()
            .all(|w| w.breaker("x").state() == CircuitState::Disabled)
    })
    .await;
}

/// Python workers' unversioned `closed`/`opened`/`half_open` never undo an operator's
/// `forced_open` or `disabled`, however new their timestamp.
pub async fn operator_states_outrank_python_transitions(factory: &impl BackendFactory) {
    let workers = fleet(factory, 2, &["x", "y"], &config(5, Duration::from_secs(60))).await;
    let backend = Arc::clone(workers[0].manager.backend());
    let operator = WorkerId::new("ops:cli:1").unwrap();
    crate::override_state(&backend, "x", CircuitState::ForcedOpen, &operator)
        .await
        .unwrap();
    crate::override_state(&backend, "y", CircuitState::Disabled, &operator)
        .await
        .unwrap();
    eventually("overrides applied", || {
        workers.iter().all(|w| {
            w.breaker("x").state() == CircuitState::ForcedOpen
                && w.breaker("y").state() == CircuitState::Disabled
        })
    })
    .await;
    let later = Timestamp::from_unix_micros(Timestamp::now().unix_micros() + 1_000).unwrap();
    let events = [
        python_transition("x", EventType::HalfOpen, later),
        python_transition("x", EventType::Closed, later),
        python_transition("y", EventType::Opened, later),
    ];
    for event in &events {
        let before: Vec<u64> = workers
            .iter()
            .map(|w| w.manager.metrics().events_received)
            .collect();
        backend.publish_event(event).await.unwrap();
        received(&workers, &before, 1).await;
    }
    reconciled(&workers, 1).await;
    for worker in &workers {
        assert_eq!(worker.breaker("x").state(), CircuitState::ForcedOpen);
        assert_eq!(worker.breaker("y").state(), CircuitState::Disabled);
    }
    assert_eq!(
        stored(&backend, "x").await.unwrap().state,
        CircuitState::ForcedOpen
    );
    assert_eq!(
        stored(&backend, "y").await.unwrap().state,
        CircuitState::Disabled
    );
}

/// A backend whose `compare_and_set` calls can be held at a gate: what a slow network
/// between one worker and the store looks like, so a scenario can make that worker's write
/// land after someone else's, deterministically. Everything else passes straight through.
#[derive(Debug)]
pub struct GatedBackend {
    inner: Arc<dyn SyncBackend>,
    open: tokio::sync::watch::Sender<bool>,
    waiting: std::sync::atomic::AtomicU64,
}

impl GatedBackend {
    /// Wraps `inner`, gate open.
    pub fn new(inner: Arc<dyn SyncBackend>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            open: tokio::sync::watch::channel(true).0,
            waiting: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Holds every later `compare_and_set` until [`release`](Self::release).
    pub fn hold(&self) {
        self.open.send_replace(false);
    }

    /// Lets held and later calls through.
    pub fn release(&self) {
        self.open.send_replace(true);
    }

    /// How many `compare_and_set` calls have waited at the gate so far.
    pub fn waited(&self) -> u64 {
        self.waiting.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl SyncBackend for GatedBackend {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    async fn publish_event(&self, event: &Event) -> Result<(), flexiai_backend::BackendError> {
        self.inner.publish_event(event).await
    }
    async fn subscribe(
        &self,
    ) -> Result<flexiai_backend::Subscription, flexiai_backend::BackendError> {
        self.inner.subscribe().await
    }
    async fn get_state(
        &self,
        provider: &str,
    ) -> Result<Option<BreakerSnapshot>, flexiai_backend::BackendError> {
        self.inner.get_state(provider).await
    }
    async fn get_states(
        &self,
        providers: &[String],
    ) -> Result<Vec<Option<BreakerSnapshot>>, flexiai_backend::BackendError> {
        self.inner.get_states(providers).await
    }
    async fn set_state(
        &self,
        provider: &str,
        snapshot: &BreakerSnapshot,
    ) -> Result<(), flexiai_backend::BackendError> {
        self.inner.set_state(provider, snapshot).await
    }
    async fn compare_and_set(
        &self,
        provider: &str,
        snapshot: &BreakerSnapshot,
        expected: Option<flexiai_events::Revision>,
        event: Option<&Event>,
    ) -> Result<flexiai_backend::CasOutcome, flexiai_backend::BackendError> {
        if !*self.open.borrow() {
            self.waiting
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut open = self.open.subscribe();
            let _ = open.wait_for(|open| *open).await;
        }
        self.inner
            .compare_and_set(provider, snapshot, expected, event)
            .await
    }
    // Batched writes use the provided loop, so each goes through the gate above.
    async fn record_outcomes(
        &self,
        provider: &str,
        batch: &flexiai_backend::OutcomeBatch,
        window: &flexiai_backend::FleetWindow,
    ) -> Result<flexiai_backend::FleetCounts, flexiai_backend::BackendError> {
        self.inner.record_outcomes(provider, batch, window).await
    }
    async fn storming(
        &self,
        providers: &[String],
    ) -> Result<Vec<Option<u64>>, flexiai_backend::BackendError> {
        self.inner.storming(providers).await
    }
    async fn acquire_lock(
        &self,
        name: &str,
        ttl: Duration,
    ) -> Result<Option<flexiai_backend::LockLease>, flexiai_backend::BackendError> {
        self.inner.acquire_lock(name, ttl).await
    }
    async fn extend_lock(
        &self,
        lease: &flexiai_backend::LockLease,
        ttl: Duration,
    ) -> Result<bool, flexiai_backend::BackendError> {
        self.inner.extend_lock(lease, ttl).await
    }
    async fn release_lock(
        &self,
        lease: &flexiai_backend::LockLease,
    ) -> Result<bool, flexiai_backend::BackendError> {
        self.inner.release_lock(lease).await
    }
    async fn heartbeat(
        &self,
        worker: &WorkerId,
        ttl: Duration,
    ) -> Result<(), flexiai_backend::BackendError> {
        self.inner.heartbeat(worker, ttl).await
    }
    async fn remove_worker(&self, worker: &WorkerId) -> Result<(), flexiai_backend::BackendError> {
        self.inner.remove_worker(worker).await
    }
    async fn live_workers(&self) -> Result<Vec<WorkerId>, flexiai_backend::BackendError> {
        self.inner.live_workers().await
    }
    async fn health_check(&self) -> flexiai_backend::Health {
        self.inner.health_check().await
    }
    async fn close(&self) -> Result<(), flexiai_backend::BackendError> {
        self.inner.close().await
    }
}
