use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use flexiai_events::{BreakerSnapshot, Event, Revision, WorkerId};
use flexiai_serde::{EventAuth, Format, StateSerializer};
use tokio::time::Instant;

use crate::{
    BackendError, CasOutcome, FleetCounts, FleetWindow, Health, LockLease, Notification,
    OutcomeBatch, Subscription, SubscriptionSender, SyncBackend, lock_token, validate_lock_name,
    validate_provider, validate_ttl,
};

/// An in-process [`SyncBackend`] with the same semantics as Redis.
///
/// Clones share one store and one channel, so handing clones to several sync managers in one
/// process gives them the view separate workers have of one Redis: events are encoded and
/// decoded on the way through (a subscriber of a [`Format::MessagePack`] backend sees exactly
/// what it would over the wire), snapshots expire after the state TTL, locks expire and only
/// their owner can release them, and fencing tokens only grow.
///
/// Time is tokio's clock, so tests that pause time control TTLs too.
///
/// ```
/// use flexiai_backend::{MemoryBackend, Notification, SyncBackend};
/// use flexiai_events::{CircuitBreakerEvent, Event, WorkerId};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), flexiai_backend::BackendError> {
/// let worker_a = MemoryBackend::new();
/// let worker_b = worker_a.clone();
/// let mut events = worker_b.subscribe().await?;
///
/// let event = Event::from(CircuitBreakerEvent::outcomes("openai", WorkerId::generate(), 1, 0));
/// worker_a.publish_event(&event).await?;
/// assert_eq!(events.recv().await, Some(Notification::Event(event)));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MemoryBackend {
    inner: Arc<Inner>,
}

/// Configures a [`MemoryBackend`].
#[derive(Debug, Clone)]
pub struct MemoryBackendBuilder {
    state_ttl: Option<Duration>,
    subscriber_capacity: usize,
    format: Format,
    auth: Option<EventAuth>,
}

/// The channel name event signatures are bound to (the Redis default, so a payload captured
/// from one backend means the same on the other).
const CHANNEL: &str = "flexiai:events";

#[derive(Debug)]
struct Inner {
    state_ttl: Option<Duration>,
    subscriber_capacity: usize,
    serializer: StateSerializer,
    store: Mutex<Store>,
    subscribers: Mutex<Vec<SubscriptionSender>>,
    closed: AtomicBool,
    rejected: AtomicU64,
    /// The store clock's zero: fleet windows are sliced by time since then, as Redis slices
    /// them by its own `TIME`.
    origin: Instant,
}

/// One period's fleet window: slice index -> (failures, successes).
type Slices = BTreeMap<u64, (u64, u64)>;

#[derive(Debug, Default)]
struct Store {
    /// Each snapshot with when it was written: reads age its open period (see
    /// [`BreakerSnapshot::aged`]).
    states: HashMap<String, Expiring<(BreakerSnapshot, Instant)>>,
    locks: HashMap<String, Expiring<String>>,
    fences: HashMap<String, u64>,
    workers: HashMap<WorkerId, Instant>,
    /// Per provider and period: slice index -> (failures, successes).
    outcomes: HashMap<(String, u64), Expiring<Slices>>,
    /// Per provider: the period last seen with failures in its window.
    storms: HashMap<String, Expiring<u64>>,
    /// Per provider and period: each reporter's last applied report sequence, kept as long
    /// as the period's counts, so a resent report is applied once.
    reports: HashMap<(String, u64), Expiring<HashMap<String, u64>>>,
}

#[derive(Debug)]
struct Expiring<T> {
    value: T,
    expires_at: Option<Instant>,
}

impl<T> Expiring<T> {
    fn live(&self, now: Instant) -> Option<&T> {
        match self.expires_at {
            Some(at) if at <= now => None,
            _ => Some(&self.value),
        }
    }
}

/// A stored snapshot as read at `now`: its open period aged by the time since the write.
fn read_at((snapshot, written): &(BreakerSnapshot, Instant), now: Instant) -> BreakerSnapshot {
    snapshot
        .clone()
        .aged(now.saturating_duration_since(*written))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves the maps consistent, so a panic elsewhere can't have
    // left them half-updated: recover instead of poisoning the whole backend.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Default for MemoryBackendBuilder {
    fn default() -> Self {
        Self {
            state_ttl: Some(MemoryBackend::DEFAULT_STATE_TTL),
            subscriber_capacity: 1024,
            format: Format::Json,
            auth: None,
        }
    }
}

impl MemoryBackendBuilder {
    /// How long a stored snapshot lives after its last write; `None` keeps it forever.
    /// Default: one hour, as in the seed's `state_ttl`.
    #[must_use]
    pub fn state_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.state_ttl = ttl;
        self
    }

    /// How many notifications each subscription buffers before reporting lag. Default 1024.
    #[must_use]
    pub fn subscriber_capacity(mut self, capacity: usize) -> Self {
        self.subscriber_capacity = capacity;
        self
    }

    /// The format events are encoded in on their way through. Default JSON.
    #[must_use]
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// Signs every event and requires a valid signature on every payload received (see
    /// [`EventAuth`]); `None` (the default) turns authentication off. Events are bound to the
    /// channel name `flexiai:events`, snapshots to their provider name.
    #[must_use]
    pub fn auth(mut self, auth: impl Into<Option<EventAuth>>) -> Self {
        self.auth = auth.into();
        self
    }

    /// Builds the backend, checking the settings.
    pub fn build(self) -> Result<MemoryBackend, BackendError> {
        if let Some(ttl) = self.state_ttl {
            validate_ttl("state_ttl", ttl)?;
        }
        if self.subscriber_capacity == 0 {
            return Err(BackendError::InvalidArgument {
                field: "subscriber_capacity",
                reason: "must be at least 1".into(),
            });
        }
        Ok(MemoryBackend::with_settings(&self))
    }
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBackend {
    /// The default state TTL: one hour.
    pub const DEFAULT_STATE_TTL: Duration = Duration::from_secs(3600);

    /// A backend with default settings.
    pub fn new() -> Self {
        MemoryBackend::with_settings(&MemoryBackendBuilder::default())
    }

    fn with_settings(settings: &MemoryBackendBuilder) -> Self {
        MemoryBackend {
            inner: Arc::new(Inner {
                state_ttl: settings.state_ttl,
                subscriber_capacity: settings.subscriber_capacity,
                serializer: StateSerializer::new(settings.format).with_auth(settings.auth.clone()),
                store: Mutex::default(),
                subscribers: Mutex::default(),
                closed: AtomicBool::new(false),
                rejected: AtomicU64::new(0),
                origin: Instant::now(),
            }),
        }
    }

    /// Starts configuring a backend.
    pub fn builder() -> MemoryBackendBuilder {
        MemoryBackendBuilder::default()
    }

    /// Encodes `event` exactly as [`publish_event`](SyncBackend::publish_event) would put it
    /// on the channel (signed when authentication is on), without publishing it: what an
    /// eavesdropper could capture and replay with [`publish_raw`](Self::publish_raw).
    pub fn encode_event(&self, event: &Event) -> Result<Vec<u8>, BackendError> {
        Ok(self.inner.serializer.serialize_event_on(CHANNEL, event)?)
    }

    /// Broadcasts raw bytes as if a foreign or hostile publisher had sent them.
    ///
    /// Each subscriber decodes them like any payload; undecodable ones arrive as
    /// [`Notification::Rejected`] and are counted in [`rejected_payloads`](Self::rejected_payloads).
    pub fn publish_raw(&self, payload: &[u8]) -> Result<(), BackendError> {
        self.ensure_open()?;
        self.broadcast(payload);
        Ok(())
    }

    /// How many payloads subscribers of this backend rejected, counted once per subscriber.
    pub fn rejected_payloads(&self) -> u64 {
        self.inner.rejected.load(Ordering::Relaxed)
    }

    /// Forgets every stored snapshot, lock, fencing counter and heartbeat, as a Redis
    /// restarted without persistence does (feature `testing`, for the fleet simulator).
    /// Subscriptions stay open: a simulator reports the gap to them itself, as a reconnecting
    /// Redis subscriber would.
    #[cfg(feature = "testing")]
    pub fn wipe(&self) {
        *lock(&self.inner.store) = Store::default();
    }

    /// The last report sequence of `reporter` applied for `provider` and `period`, while
    /// the store remembers it (feature `testing`: the fleet simulator tells applied reports
    /// from resends this way).
    #[cfg(feature = "testing")]
    pub fn last_report(&self, provider: &str, period: u64, reporter: &str) -> Option<u64> {
        let now = Instant::now();
        lock(&self.inner.store)
            .reports
            .get(&(provider.to_owned(), period))
            .and_then(|seen| seen.live(now))
            .and_then(|seen| seen.get(reporter))
            .copied()
    }

    fn ensure_open(&self) -> Result<(), BackendError> {
        if self.inner.closed.load(Ordering::Acquire) {
            Err(BackendError::Closed)
        } else {
            Ok(())
        }
    }

    fn broadcast(&self, payload: &[u8]) {
        let decoded = self.inner.serializer.deserialize_event_on(CHANNEL, payload);
        let mut subscribers = lock(&self.inner.subscribers);
        subscribers.retain(|subscriber| {
            let notification = match &decoded {
                Ok(event) => Notification::Event(event.clone()),
                Err(error) => {
                    self.inner.rejected.fetch_add(1, Ordering::Relaxed);
                    Notification::Rejected(error.clone())
                }
            };
            subscriber.send(notification)
        });
    }

    fn state_expiry(&self, now: Instant) -> Option<Instant> {
        self.inner.state_ttl.map(|ttl| now + ttl)
    }
}

#[async_trait]
impl SyncBackend for MemoryBackend {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn publish_event(&self, event: &Event) -> Result<(), BackendError> {
        self.ensure_open()?;
        let payload = self.inner.serializer.serialize_event_on(CHANNEL, event)?;
        self.broadcast(&payload);
        Ok(())
    }

    async fn subscribe(&self) -> Result<Subscription, BackendError> {
        self.ensure_open()?;
        let (sender, subscription) = Subscription::channel(self.inner.subscriber_capacity);
        lock(&self.inner.subscribers).push(sender);
        // `close` may have run between the check and the push; don't leave a live subscriber.
        if self.inner.closed.load(Ordering::Acquire) {
            lock(&self.inner.subscribers).clear();
            return Err(BackendError::Closed);
        }
        Ok(subscription)
    }

    async fn get_state(&self, provider: &str) -> Result<Option<BreakerSnapshot>, BackendError> {
        self.ensure_open()?;
        validate_provider(provider)?;
        let now = Instant::now();
        let store = lock(&self.inner.store);
        Ok(store
            .states
            .get(provider)
            .and_then(|entry| entry.live(now))
            .map(|written| read_at(written, now)))
    }

    async fn get_states(
        &self,
        providers: &[String],
    ) -> Result<Vec<Option<BreakerSnapshot>>, BackendError> {
        self.ensure_open()?;
        for provider in providers {
            validate_provider(provider)?;
        }
        let now = Instant::now();
        let store = lock(&self.inner.store);
        Ok(providers
            .iter()
            .map(|p| {
                store
                    .states
                    .get(p)
                    .and_then(|e| e.live(now))
                    .map(|written| read_at(written, now))
            })
            .collect())
    }

    async fn set_state(
        &self,
        provider: &str,
        snapshot: &BreakerSnapshot,
    ) -> Result<(), BackendError> {
        self.ensure_open()?;
        validate_provider(provider)?;
        // Encode anyway: a snapshot Redis could not store must fail here too.
        self.inner
            .serializer
            .serialize_state_for(provider, snapshot)?;
        let now = Instant::now();
        lock(&self.inner.store).states.insert(
            provider.to_owned(),
            Expiring {
                value: (snapshot.clone(), now),
                expires_at: self.state_expiry(now),
            },
        );
        Ok(())
    }

    async fn compare_and_set(
        &self,
        provider: &str,
        snapshot: &BreakerSnapshot,
        expected: Option<Revision>,
        event: Option<&Event>,
    ) -> Result<CasOutcome, BackendError> {
        self.ensure_open()?;
        validate_provider(provider)?;
        self.inner
            .serializer
            .serialize_state_for(provider, snapshot)?;
        let payload = event
            .map(|e| self.inner.serializer.serialize_event_on(CHANNEL, e))
            .transpose()?;
        let now = Instant::now();
        {
            let mut store = lock(&self.inner.store);
            if let Some(written) = store.states.get(provider).and_then(|e| e.live(now))
                && (expected != Some(written.0.revision())
                    || snapshot.revision() <= written.0.revision())
            {
                return Ok(CasOutcome::Stale {
                    current: read_at(written, now),
                });
            }
            store.states.insert(
                provider.to_owned(),
                Expiring {
                    value: (snapshot.clone(), now),
                    expires_at: self.state_expiry(now),
                },
            );
            // Publish while still holding the store lock so no reader can see the new
            // snapshot before subscribers were sent its event, and no later CAS's event
            // can overtake this one: store and stream agree, as with the Redis Lua script.
            if let Some(payload) = &payload {
                self.broadcast(payload);
            }
        }
        Ok(CasOutcome::Applied)
    }

    async fn record_outcomes(
        &self,
        provider: &str,
        batch: &OutcomeBatch,
        window: &FleetWindow,
    ) -> Result<FleetCounts, BackendError> {
        self.ensure_open()?;
        validate_provider(provider)?;
        batch.validate()?;
        let now = Instant::now();
        // Start the store clock a day in, so every valid age lands after its zero.
        let now_ms = u64::try_from((now - self.inner.origin).as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(86_400_000);
        let (_, oldest) = window.span(now_ms);
        let slice_ms = window.slice_ms();
        let mut store = lock(&self.inner.store);
        store.outcomes.retain(|_, e| e.live(now).is_some());
        store.storms.retain(|_, e| e.live(now).is_some());
        store.reports.retain(|_, e| e.live(now).is_some());
        let key = (provider.to_owned(), batch.period);
        let retention = now + window.length() + window.slice();
        let duplicate = batch.report.as_ref().is_some_and(|report| {
            store
                .reports
                .get(&key)
                .and_then(|seen| seen.value.get(&report.reporter))
                .is_some_and(|last| *last >= report.sequence)
        });
        if let (Some(report), false) = (&batch.report, duplicate) {
            let seen = store.reports.entry(key.clone()).or_insert(Expiring {
                value: HashMap::new(),
                expires_at: None,
            });
            seen.value.insert(report.reporter.clone(), report.sequence);
            seen.expires_at = Some(retention);
        }
        let mut wrote = false;
        for (age, failures, successes) in batch.live_slices(window).filter(|_| !duplicate) {
            let slice = now_ms.saturating_sub(age) / slice_ms;
            if slice < oldest {
                continue;
            }
            let entry = store.outcomes.entry(key.clone()).or_insert(Expiring {
                value: BTreeMap::new(),
                expires_at: None,
            });
            let counts = entry.value.entry(slice).or_default();
            counts.0 = counts.0.saturating_add(failures);
            counts.1 = counts.1.saturating_add(successes);
            entry.expires_at = Some(retention);
            wrote = true;
        }
        let mut totals = FleetCounts::default();
        if let Some(entry) = store.outcomes.get_mut(&key) {
            entry.value.retain(|slice, _| *slice >= oldest);
            for (failures, successes) in entry.value.values() {
                totals.failures = totals.failures.saturating_add(*failures);
                totals.successes = totals.successes.saturating_add(*successes);
            }
        }
        if wrote && totals.failures > 0 {
            store.storms.insert(
                provider.to_owned(),
                Expiring {
                    value: batch.period,
                    expires_at: Some(now + window.length()),
                },
            );
        }
        Ok(totals)
    }

    async fn storming(&self, providers: &[String]) -> Result<Vec<Option<u64>>, BackendError> {
        self.ensure_open()?;
        for provider in providers {
            validate_provider(provider)?;
        }
        let now = Instant::now();
        let store = lock(&self.inner.store);
        Ok(providers
            .iter()
            .map(|p| store.storms.get(p).and_then(|e| e.live(now)).copied())
            .collect())
    }

    async fn acquire_lock(
        &self,
        name: &str,
        ttl: Duration,
    ) -> Result<Option<LockLease>, BackendError> {
        self.ensure_open()?;
        validate_lock_name(name)?;
        validate_ttl("ttl", ttl)?;
        let token = lock_token()?;
        let now = Instant::now();
        let mut store = lock(&self.inner.store);
        if store.locks.get(name).and_then(|l| l.live(now)).is_some() {
            return Ok(None);
        }
        store.locks.insert(
            name.to_owned(),
            Expiring {
                value: token.clone(),
                expires_at: Some(now + ttl),
            },
        );
        let fence = store.fences.entry(name.to_owned()).or_insert(0);
        *fence += 1;
        Ok(Some(LockLease::new(name, token, *fence, ttl)))
    }

    async fn extend_lock(&self, lease: &LockLease, ttl: Duration) -> Result<bool, BackendError> {
        self.ensure_open()?;
        validate_ttl("ttl", ttl)?;
        let now = Instant::now();
        let mut store = lock(&self.inner.store);
        match store.locks.get_mut(lease.name()) {
            Some(held) if held.live(now) == Some(&lease.token().to_owned()) => {
                held.expires_at = Some(now + ttl);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_lock(&self, lease: &LockLease) -> Result<bool, BackendError> {
        self.ensure_open()?;
        let now = Instant::now();
        let mut store = lock(&self.inner.store);
        let owned = store
            .locks
            .get(lease.name())
            .and_then(|held| held.live(now))
            .is_some_and(|token| token == lease.token());
        if owned {
            store.locks.remove(lease.name());
        }
        Ok(owned)
    }

    async fn heartbeat(&self, worker: &WorkerId, ttl: Duration) -> Result<(), BackendError> {
        self.ensure_open()?;
        validate_ttl("ttl", ttl)?;
        let now = Instant::now();
        let mut store = lock(&self.inner.store);
        store.workers.retain(|_, expires| *expires > now);
        store.workers.insert(worker.clone(), now + ttl);
        Ok(())
    }

    async fn remove_worker(&self, worker: &WorkerId) -> Result<(), BackendError> {
        self.ensure_open()?;
        lock(&self.inner.store).workers.remove(worker);
        Ok(())
    }

    async fn live_workers(&self) -> Result<Vec<WorkerId>, BackendError> {
        self.ensure_open()?;
        let now = Instant::now();
        let store = lock(&self.inner.store);
        let mut workers: Vec<WorkerId> = store
            .workers
            .iter()
            .filter(|(_, expires)| **expires > now)
            .map(|(id, _)| id.clone())
            .collect();
        workers.sort();
        Ok(workers)
    }

    async fn health_check(&self) -> Health {
        if self.inner.closed.load(Ordering::Acquire) {
            Health::Closed
        } else {
            Health::Healthy {
                latency: Duration::ZERO,
            }
        }
    }

    async fn close(&self) -> Result<(), BackendError> {
        self.inner.closed.store(true, Ordering::Release);
        // Dropping the senders ends every subscription.
        lock(&self.inner.subscribers).clear();
        Ok(())
    }
}
