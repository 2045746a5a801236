use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use flexiai_backend::{SyncBackend, validate_provider};
use flexiai_breaker::{CircuitBreaker, ProbeMode};
use flexiai_events::WorkerId;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::info;

use crate::driver::{Driver, Reports, Shared};
use crate::health::{Counters, ModeCell};
use crate::registry::{Entry, Registry};
use crate::{SyncError, SyncHealth, SyncMetrics, SyncMode, SyncOptions};

/// Keeps this worker's circuit breakers in step with the rest of the fleet.
///
/// Register breakers, then [`start`](Self::start): the manager subscribes to the events
/// channel, hydrates every breaker from the store in one batched read, and runs one
/// background task that
///
/// - publishes each local transition through the backend's versioned compare-and-set, so the
///   store and the channel agree and every provider has one linear history;
/// - shares outcome counts, coalesced per `flush_interval`, so failures anywhere count toward
///   the fleet's threshold (nothing is sent while every call succeeds);
/// - applies other workers' events when they are newer, and ignores its own;
/// - re-reads the store after every gap in the event stream and every `reconcile_interval`;
/// - heartbeats, and rations half-open probes across the fleet through a lease;
/// - degrades instead of failing when the backend is unreachable, and recovers by itself.
///
/// None of this is on the breakers' hot path: the manager's observer only sets a flag or
/// adds to a counter, and the background task does the I/O.
///
/// ```
/// use std::sync::Arc;
/// use flexiai_backend::MemoryBackend;
/// use flexiai_breaker::{BreakerConfig, CircuitBreaker, CircuitState};
/// use flexiai_sync::StateSyncManager;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let backend = Arc::new(MemoryBackend::new()); // with Redis: a RedisBackend
/// let manager = StateSyncManager::new(backend);
/// let openai = Arc::new(CircuitBreaker::new("openai", BreakerConfig::default())?);
/// manager.register_circuit_breaker(Arc::clone(&openai))?;
/// manager.start().await?;
/// assert!(manager.health().is_synced());
///
/// openai.force_open(); // every worker sharing the backend opens too
/// manager.stop().await?;
/// # Ok(())
/// # }
/// ```
pub struct StateSyncManager {
    shared: Arc<Shared>,
    running: Mutex<Option<Running>>,
    started: AtomicBool,
}

struct Running {
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Builds a [`StateSyncManager`].
#[derive(Debug)]
pub struct SyncManagerBuilder {
    backend: Arc<dyn SyncBackend>,
    worker_id: Option<WorkerId>,
    options: SyncOptions,
}

impl SyncManagerBuilder {
    /// Uses `worker_id` instead of a generated `{hostname}:{pid}:{unix_millis}`.
    #[must_use]
    pub fn worker_id(mut self, worker_id: WorkerId) -> Self {
        self.worker_id = Some(worker_id);
        self
    }

    /// Replaces the timing options.
    #[must_use]
    pub fn options(mut self, options: SyncOptions) -> Self {
        self.options = options;
        self
    }

    /// Builds the manager, checking the options.
    pub fn build(self) -> Result<StateSyncManager, SyncError> {
        self.options.validate()?;
        Ok(StateSyncManager {
            shared: Arc::new({
                let worker_id = self.worker_id.unwrap_or_else(WorkerId::generate);
                Shared {
                    backend: self.backend,
                    reports: Reports::new(&worker_id),
                    worker_id,
                    options: self.options,
                    registry: Registry::default(),
                    wake: Arc::new(Notify::new()),
                    counters: Counters::new(),
                    mode: ModeCell::new(),
                    needs_reconcile: AtomicBool::new(false),
                    subscription_down: AtomicBool::new(false),
                    degradations: AtomicU64::new(0),
                }
            }),
            running: Mutex::new(None),
            started: AtomicBool::new(false),
        })
    }
}

impl StateSyncManager {
    /// A manager over `backend` with a generated worker id and default options.
    pub fn new(backend: Arc<dyn SyncBackend>) -> Self {
        Self {
            shared: Arc::new({
                let worker_id = WorkerId::generate();
                Shared {
                    backend,
                    reports: Reports::new(&worker_id),
                    worker_id,
                    options: SyncOptions::default(),
                    registry: Registry::default(),
                    wake: Arc::new(Notify::new()),
                    counters: Counters::new(),
                    mode: ModeCell::new(),
                    needs_reconcile: AtomicBool::new(false),
                    subscription_down: AtomicBool::new(false),
                    degradations: AtomicU64::new(0),
                }
            }),
            running: Mutex::new(None),
            started: AtomicBool::new(false),
        }
    }

    /// A manager as `config` describes: its backend (not yet connected), worker id and
    /// options.
    pub fn from_config(config: &crate::SyncConfig) -> Result<Self, SyncError> {
        Self::builder(config.build_backend()?)
            .worker_id(config.worker_id()?)
            .options(config.options())
            .build()
    }

    /// Starts configuring a manager over `backend`.
    pub fn builder(backend: Arc<dyn SyncBackend>) -> SyncManagerBuilder {
        SyncManagerBuilder {
            backend,
            worker_id: None,
            options: SyncOptions::default(),
        }
    }

    /// This worker's id; events carrying it are this worker's own and are ignored.
    pub fn worker_id(&self) -> &WorkerId {
        &self.shared.worker_id
    }

    /// The backend this manager synchronizes through.
    pub fn backend(&self) -> &Arc<dyn SyncBackend> {
        &self.shared.backend
    }

    /// The options in force.
    pub fn options(&self) -> &SyncOptions {
        &self.shared.options
    }

    /// Adds a breaker to keep in step, under its own name. A breaker registered while the
    /// manager runs is hydrated from the store at the next flush.
    pub fn register_circuit_breaker(&self, breaker: Arc<CircuitBreaker>) -> Result<(), SyncError> {
        validate_provider(breaker.name())?;
        let entry = Arc::new(Entry::new(breaker, Arc::clone(&self.shared.wake)));
        if !self.shared.registry.insert(Arc::clone(&entry)) {
            return Err(SyncError::DuplicateBreaker(entry.name.clone()));
        }
        entry.breaker.add_observer(Arc::clone(&entry.observer));
        if self.is_running() {
            if !self.shared.is_degraded() {
                self.shared.attach_fleet(&entry);
            }
            self.shared.needs_reconcile.store(true, Ordering::Release);
            self.shared.wake.notify_one();
        }
        Ok(())
    }

    /// The registered breaker named `name`.
    pub fn breaker(&self, name: &str) -> Option<Arc<CircuitBreaker>> {
        self.shared
            .registry
            .get(name)
            .map(|e| Arc::clone(&e.breaker))
    }

    /// Every registered breaker, by name.
    pub fn breakers(&self) -> Vec<Arc<CircuitBreaker>> {
        self.shared
            .registry
            .all()
            .into_iter()
            .map(|e| Arc::clone(&e.breaker))
            .collect()
    }

    /// Subscribes, hydrates every registered breaker from the store, and starts the
    /// background task. An unreachable backend is not an error: the manager starts
    /// [`Degraded`](SyncMode::Degraded) and keeps trying.
    ///
    /// Must be called within a tokio runtime. A manager starts once; build a new one to
    /// start again.
    pub async fn start(&self) -> Result<(), SyncError> {
        if self.started.swap(true, Ordering::AcqRel) {
            return Err(SyncError::Lifecycle("already started"));
        }
        let shared = &self.shared;
        // Subscribe before reading the store, so nothing published in between is missed.
        let subscription = shared
            .op("subscribe", shared.backend.subscribe())
            .await
            .ok();
        let hydrated = shared.reconcile().await.is_ok();
        let _ = shared
            .op(
                "heartbeat",
                shared
                    .backend
                    .heartbeat(&shared.worker_id, shared.options.heartbeat_ttl),
            )
            .await;
        if subscription.is_some() && hydrated && !shared.is_degraded() {
            shared.mark_synced();
        } else if !shared.is_degraded() {
            shared.degrade("start-up synchronization failed".into());
        }
        if !shared.is_degraded() {
            shared.apply_probe_mode();
        }
        let (shutdown, shutdown_rx) = watch::channel(false);
        let driver = Driver::new(Arc::clone(shared), subscription);
        let task = tokio::spawn(driver.run(shutdown_rx));
        *self.running.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(Running { shutdown, task });
        info!(worker = %shared.worker_id, backend = shared.backend.kind(), mode = %shared.mode.get().0, "sync manager started");
        Ok(())
    }

    /// Flushes pending transitions and outcome counts, releases probe leases, removes this
    /// worker's heartbeat, and stops the background task. Breakers keep working locally.
    /// Bounded in time by the operation timeout, whatever the backend does.
    pub async fn stop(&self) -> Result<(), SyncError> {
        let running = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(Running { shutdown, task }) = running else {
            return Err(SyncError::Lifecycle("not running"));
        };
        let _ = shutdown.send(true);
        // Shutdown makes at most a handful of bounded backend calls per provider.
        let bound = self.shared.options.operation_timeout * 4 + std::time::Duration::from_secs(1);
        let abort = task.abort_handle();
        if tokio::time::timeout(bound, task).await.is_err() {
            abort.abort();
        }
        self.detach();
        self.shared.mode.set(SyncMode::Stopped);
        info!(worker = %self.shared.worker_id, "sync manager stopped");
        Ok(())
    }

    /// Re-reads every provider's stored state now and converges (the seed's
    /// `sync_all_states`). The background task also does this after gaps and periodically.
    pub async fn sync_all_states(&self) -> Result<(), SyncError> {
        self.shared.reconcile().await?;
        Ok(())
    }

    /// The current mode, since when, and counters.
    pub fn health(&self) -> SyncHealth {
        let (mode, since) = self.shared.mode.get();
        SyncHealth {
            mode,
            since,
            metrics: self.metrics(),
        }
    }

    /// Counters since the manager was built.
    pub fn metrics(&self) -> SyncMetrics {
        self.shared.counters.snapshot()
    }

    fn is_running(&self) -> bool {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Leaves the breakers as standalone ones: no observer, local probes.
    fn detach(&self) {
        for entry in self.shared.registry.all() {
            entry.breaker.remove_observer(&entry.observer);
            entry.breaker.set_probe_mode(ProbeMode::Local);
            entry.breaker.set_fleet_decides_rate(false);
        }
    }
}

impl Drop for StateSyncManager {
    fn drop(&mut self) {
        // Never block in drop: signal the task and abort it; breakers go back to standalone.
        let running = self
            .running
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(Running { shutdown, task }) = running {
            let _ = shutdown.send(true);
            task.abort();
            self.detach();
        }
    }
}

impl fmt::Debug for StateSyncManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateSyncManager")
            .field("worker_id", &self.shared.worker_id)
            .field("backend", &self.shared.backend.kind())
            .field("mode", &self.shared.mode.get().0)
            .finish_non_exhaustive()
    }
}
