//! The simulated store: a `SyncBackend` that delegates every operation to one shared
//! `MemoryBackend` (so store semantics are the real backend's, whatever they become) and
//! injects its worker's faults on the way: calls that fail, hang, or are applied but never
//! answered; a subscription whose messages are dropped, duplicated, delayed and reordered,
//! and that reports `Resubscribed` after a partition or a store restart, as the Redis
//! subscriber does. Every write is recorded with what it replaced.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use flexiai_backend::{
    BackendError, CasOutcome, CasRequest, FleetCounts, FleetWindow, Health, LockLease,
    Notification, OutcomeBatch, Subscription, SubscriptionSender, SyncBackend,
};
use flexiai_events::{BreakerSnapshot, Event, Revision, WorkerId};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use crate::history::{Actor, Record, SnapId};
use crate::plan::CallFault;
use crate::state::Shared;

/// One actor's view of the store.
pub(crate) struct SimBackend {
    shared: Arc<Shared>,
    /// The worker slot, or `None` for the operator (whose view has no faults).
    slot: Option<usize>,
    actor: Actor,
}

impl fmt::Debug for SimBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimBackend")
            .field("actor", &self.actor)
            .finish()
    }
}

fn unavailable() -> BackendError {
    BackendError::Unavailable {
        message: "simulated: store unreachable".into(),
    }
}

impl SimBackend {
    pub(crate) fn worker(shared: Arc<Shared>, slot: usize, actor: Actor) -> Self {
        Self {
            shared,
            slot: Some(slot),
            actor,
        }
    }

    pub(crate) fn operator(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            slot: None,
            actor: Actor::Operator,
        }
    }

    /// Decides how this call behaves, after noticing what the worker adopted since its
    /// last call and its manager's sync mode. A call from a crashed incarnation fails.
    fn enter(&self) -> Result<Option<CallFault>, BackendError> {
        let Some(slot) = self.slot else {
            return Ok(None);
        };
        self.shared.with(|s| {
            if !s.is_current(slot, self.actor) {
                return Err(unavailable());
            }
            s.sync_slot(slot);
            s.observe_mode(slot);
            Ok(s.call_fate(slot))
        })
    }

    /// Applies the fault before the call reaches the store. The returned call records its
    /// outcome as the manager sees it: what it returns, or a failure if the manager gives
    /// up waiting (its operation timeout drops the call).
    async fn before(&self, op: &'static str) -> Result<Call<'_>, BackendError> {
        let fate = self.enter()?;
        let call = Call {
            backend: self,
            op,
            fate,
            done: false,
        };
        match fate {
            Some(CallFault::Fail) => {
                call.record(false);
                Err(unavailable())
            }
            Some(CallFault::Hang) => std::future::pending().await,
            _ => Ok(call),
        }
    }

    /// A compare-and-set on the real store, recorded in the history.
    async fn write(
        &self,
        provider: &str,
        snapshot: &BreakerSnapshot,
        expected: Option<Revision>,
        event: Option<&Event>,
    ) -> Result<CasOutcome, BackendError> {
        // MemoryBackend answers without yielding, so nothing runs between these two calls:
        // `before` is exactly what the compare-and-set replaced.
        let before = self.shared.memory.get_state(provider).await?;
        let outcome = self
            .shared
            .memory
            .compare_and_set(provider, snapshot, expected, event)
            .await?;
        self.shared.with(|s| match &outcome {
            CasOutcome::Applied => {
                let (base, path) = match self.slot {
                    Some(slot) => {
                        s.base_for_write(slot, provider, before.as_ref(), expected, snapshot)
                    }
                    None => (
                        s.provider_index(provider)
                            .and_then(|i| s.operator_base[i].clone())
                            .map_or(crate::history::Base::Fresh, crate::history::Base::Known),
                        Vec::new(),
                    ),
                };
                s.record(Record::StoreWrite {
                    by: self.actor,
                    provider: provider.to_owned(),
                    before: before.as_ref().map(SnapId::of),
                    after: SnapId::of(snapshot),
                    base,
                    path,
                });
                match self.slot {
                    Some(slot) => s.note_written(slot, provider, snapshot),
                    None => {
                        if let Some(i) = s.provider_index(provider) {
                            s.operator_base[i] = Some(SnapId::of(snapshot));
                        }
                    }
                }
            }
            CasOutcome::Stale { current } => match self.slot {
                Some(slot) => s.note_cas_lost(slot, provider, snapshot, current),
                None => {
                    if let Some(i) = s.provider_index(provider) {
                        s.operator_base[i] = Some(SnapId::of(current));
                    }
                }
            },
        });
        Ok(outcome)
    }
}

impl SimBackend {
    /// Records a probe lock's grant, confirmation or release for the running incarnation of
    /// this worker (the manager names the lock `probe:{provider}`).
    fn note_lease(&self, lock: &str, record: impl FnOnce(Actor, String) -> Record) {
        let (Some(slot), Some(provider)) = (self.slot, lock.strip_prefix("probe:")) else {
            return;
        };
        let actor = self.actor;
        self.shared.with(|s| {
            if s.is_current(slot, actor) {
                s.record(record(actor, provider.to_owned()));
            }
        });
    }

    fn note_lock_call(&self, lock: &str, op: &'static str) {
        self.note_lease(lock, |worker, provider| Record::LockCalled {
            worker,
            provider,
            op,
        });
    }
}

/// One store call in progress, for the history (`Record::BackendCall`).
struct Call<'a> {
    backend: &'a SimBackend,
    op: &'static str,
    fate: Option<CallFault>,
    done: bool,
}

impl Call<'_> {
    fn record(mut self, ok: bool) {
        self.note(ok);
    }

    fn note(&mut self, ok: bool) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let (Some(slot), actor, op) = (self.backend.slot, self.backend.actor, self.op) else {
            return;
        };
        self.backend.shared.with(|s| {
            if s.is_current(slot, actor) {
                s.record(Record::BackendCall {
                    worker: actor,
                    op,
                    ok,
                });
            }
        });
    }

    /// Applies the fault after the store did the work (the reply may never come), and
    /// records what the caller gets.
    async fn finish<T>(mut self, value: Result<T, BackendError>) -> Result<T, BackendError> {
        if self.fate == Some(CallFault::LostReply) {
            std::future::pending::<()>().await;
        }
        self.note(value.is_ok());
        value
    }
}

impl Drop for Call<'_> {
    /// Dropped unanswered: the manager's timeout ended the wait, a failure to it.
    fn drop(&mut self) {
        self.note(false);
    }
}

#[async_trait]
impl SyncBackend for SimBackend {
    fn kind(&self) -> &'static str {
        "sim"
    }

    async fn publish_event(&self, event: &Event) -> Result<(), BackendError> {
        let call = self.before("publish_event").await?;
        let result = self.shared.memory.publish_event(event).await;
        if result.is_ok()
            && let Event::CircuitBreakerEvent(e) = event
            && e.target_state().is_none()
        {
            self.shared.with(|s| {
                s.record(Record::OutcomesPublished {
                    worker: self.actor,
                    provider: e.provider_name.clone(),
                    version: e.metadata.version,
                    failures: e.metadata.failure_delta.unwrap_or(0),
                    successes: e.metadata.success_delta.unwrap_or(0),
                });
            });
        }
        call.finish(result).await
    }

    async fn subscribe(&self) -> Result<Subscription, BackendError> {
        let Some(slot) = self.slot else {
            return self.shared.memory.subscribe().await;
        };
        let call = self.before("subscribe").await?;
        // While the view's subscriber connection is cut, a new one cannot be made either: a
        // subscription that succeeded now would lose every message without ever reporting
        // `Disconnected`.
        if self.shared.with(|s| s.slots[slot].disconnected.is_some()) {
            return call.finish(Err(unavailable())).await;
        }
        let inner = self.shared.memory.subscribe().await?;
        let (tx, outer) = Subscription::channel(1024);
        let (gap_tx, gap_rx) = mpsc::unbounded_channel();
        self.shared.with(|s| s.slots[slot].resubscribe.push(gap_tx));
        let forwarder = Forwarder {
            shared: Arc::clone(&self.shared),
            slot,
            actor: self.actor,
        };
        tokio::spawn(forward(forwarder, inner, tx, gap_rx));
        call.finish(Ok(outer)).await
    }

    async fn get_state(&self, provider: &str) -> Result<Option<BreakerSnapshot>, BackendError> {
        let call = self.before("get_state").await?;
        let result = self.shared.memory.get_state(provider).await;
        if let Ok(stored) = &result {
            self.shared.with(|s| match self.slot {
                Some(slot) => {
                    if let Some(snapshot) = stored {
                        s.note_read(slot, provider, snapshot);
                    }
                }
                None => {
                    if let Some(i) = s.provider_index(provider) {
                        s.operator_base[i] = stored.as_ref().map(SnapId::of);
                    }
                }
            });
        }
        call.finish(result).await
    }

    async fn get_states(
        &self,
        providers: &[String],
    ) -> Result<Vec<Option<BreakerSnapshot>>, BackendError> {
        let call = self.before("get_states").await?;
        let result = self.shared.memory.get_states(providers).await;
        if let (Ok(stored), Some(slot)) = (&result, self.slot) {
            self.shared.with(|s| {
                for (provider, snapshot) in providers.iter().zip(stored) {
                    if let Some(snapshot) = snapshot {
                        s.note_read(slot, provider, snapshot);
                    }
                }
            });
        }
        let result = call.finish(result).await;
        // Answered: the driver converges on the reply before anything else runs.
        if let (Ok(stored), Some(slot)) = (&result, self.slot) {
            self.shared.with(|s| {
                if s.is_current(slot, self.actor) {
                    for (provider, snapshot) in providers.iter().zip(stored) {
                        if let Some(snapshot) = snapshot {
                            s.note_reconcile_read(slot, provider, snapshot);
                        }
                    }
                }
            });
        }
        result
    }

    async fn set_state(
        &self,
        provider: &str,
        snapshot: &BreakerSnapshot,
    ) -> Result<(), BackendError> {
        let call = self.before("set_state").await?;
        let result = self.shared.memory.set_state(provider, snapshot).await;
        call.finish(result).await
    }

    async fn record_outcomes(
        &self,
        provider: &str,
        batch: &OutcomeBatch,
        window: &FleetWindow,
    ) -> Result<FleetCounts, BackendError> {
        let call = self.before("record_outcomes").await?;
        // MemoryBackend answers without yielding: nothing runs between these calls, so a
        // report id whose last applied sequence did not change was a resend, counted before.
        let last = |memory: &flexiai_backend::MemoryBackend| {
            batch
                .report
                .as_ref()
                .map(|r| memory.last_report(provider, batch.period, &r.reporter))
        };
        let before = last(&self.shared.memory);
        let result = self
            .shared
            .memory
            .record_outcomes(provider, batch, window)
            .await;
        let applied = batch.report.is_none() || last(&self.shared.memory) != before;
        if result.is_ok() && applied {
            // What `check_outcome_periods` judges: the counts a worker filed under a period.
            self.shared.with(|s| {
                s.record(Record::OutcomesPublished {
                    worker: self.actor,
                    provider: provider.to_owned(),
                    version: Some(batch.period),
                    failures: batch.slices.iter().map(|slice| slice.failures).sum(),
                    successes: batch.slices.iter().map(|slice| slice.successes).sum(),
                });
            });
        }
        call.finish(result).await
    }

    async fn storming(&self, providers: &[String]) -> Result<Vec<Option<u64>>, BackendError> {
        let call = self.before("storming").await?;
        let result = self.shared.memory.storming(providers).await;
        call.finish(result).await
    }

    async fn compare_and_set(
        &self,
        provider: &str,
        snapshot: &BreakerSnapshot,
        expected: Option<Revision>,
        event: Option<&Event>,
    ) -> Result<CasOutcome, BackendError> {
        let call = self.before("compare_and_set").await?;
        let outcome = self.write(provider, snapshot, expected, event).await?;
        call.finish(Ok(outcome)).await
    }

    /// One round trip, as on Redis: one fault decides the whole batch (it fails before any
    /// write, or every write is applied and the reply is lost), and the manager's count of
    /// failures in a row sees one call.
    async fn compare_and_set_many(
        &self,
        requests: &[CasRequest<'_>],
    ) -> Result<Vec<CasOutcome>, BackendError> {
        flexiai_backend::validate_cas_batch(requests)?;
        let call = self.before("compare_and_set_many").await?;
        let mut outcomes = Vec::with_capacity(requests.len());
        for request in requests {
            outcomes.push(
                self.write(
                    request.provider,
                    request.snapshot,
                    request.expected,
                    request.event,
                )
                .await?,
            );
        }
        call.finish(Ok(outcomes)).await
    }

    async fn acquire_lock(
        &self,
        name: &str,
        ttl: Duration,
    ) -> Result<Option<LockLease>, BackendError> {
        self.note_lock_call(name, "acquire_lock");
        let call = self.before("acquire_lock").await?;
        let result = self.shared.memory.acquire_lock(name, ttl).await;
        if matches!(result, Ok(Some(_))) {
            self.note_lease(name, |worker, provider| Record::LeaseGranted {
                worker,
                provider,
            });
        }
        let result = call.finish(result).await;
        if let Ok(lease) = &result {
            let held = lease.is_some();
            self.note_lease(name, |worker, provider| Record::LockAnswered {
                worker,
                provider,
                held,
            });
        }
        result
    }

    async fn extend_lock(&self, lease: &LockLease, ttl: Duration) -> Result<bool, BackendError> {
        self.note_lock_call(lease.name(), "extend_lock");
        let call = self.before("extend_lock").await?;
        let result = self.shared.memory.extend_lock(lease, ttl).await;
        let result = call.finish(result).await;
        if let Ok(held) = result {
            self.note_lease(lease.name(), |worker, provider| Record::LockAnswered {
                worker,
                provider,
                held,
            });
        }
        result
    }

    async fn release_lock(&self, lease: &LockLease) -> Result<bool, BackendError> {
        self.note_lock_call(lease.name(), "release_lock");
        let call = self.before("release_lock").await?;
        let result = self.shared.memory.release_lock(lease).await;
        if matches!(result, Ok(true)) {
            self.note_lease(lease.name(), |worker, provider| Record::LeaseReleased {
                worker,
                provider,
            });
        }
        let result = call.finish(result).await;
        if result.is_ok() {
            self.note_lease(lease.name(), |worker, provider| Record::LockAnswered {
                worker,
                provider,
                held: false,
            });
        }
        result
    }

    async fn heartbeat(&self, worker: &WorkerId, ttl: Duration) -> Result<(), BackendError> {
        let call = self.before("heartbeat").await?;
        let result = self.shared.memory.heartbeat(worker, ttl).await;
        call.finish(result).await
    }

    async fn remove_worker(&self, worker: &WorkerId) -> Result<(), BackendError> {
        let call = self.before("remove_worker").await?;
        let result = self.shared.memory.remove_worker(worker).await;
        call.finish(result).await
    }

    async fn live_workers(&self) -> Result<Vec<WorkerId>, BackendError> {
        let call = self.before("live_workers").await?;
        let result = self.shared.memory.live_workers().await;
        call.finish(result).await
    }

    async fn health_check(&self) -> Health {
        match self.before("health_check").await {
            Ok(call) => {
                call.record(true);
                self.shared.memory.health_check().await
            }
            Err(error) => Health::Unreachable {
                reason: error.to_string(),
            },
        }
    }

    /// The store is shared by the whole fleet: one worker's view never closes it.
    async fn close(&self) -> Result<(), BackendError> {
        Ok(())
    }
}

/// Whose subscription a forwarder carries: the incarnation that subscribed, so that a
/// crashed incarnation's forwarder never speaks for its successor in the same slot.
struct Forwarder {
    shared: Arc<Shared>,
    slot: usize,
    actor: Actor,
}

/// Carries one subscription's messages from the real store to the worker, through its
/// message faults. Ends when either side goes away.
async fn forward(
    forwarder: Forwarder,
    mut inner: Subscription,
    tx: SubscriptionSender,
    mut gaps: mpsc::UnboundedReceiver<Notification>,
) {
    let mut queue: BTreeMap<(Instant, u64), Notification> = BTreeMap::new();
    let mut seq = 0u64;
    let far = Instant::now() + Duration::from_secs(86_400 * 365);
    loop {
        if tx.is_closed() {
            return;
        }
        let next = queue.keys().next().map(|(at, _)| *at);
        tokio::select! {
            biased;
            Some(notification) = gaps.recv() => {
                if !deliver(&forwarder, &tx, notification) {
                    return;
                }
            }
            () = sleep_until(next.unwrap_or(far)), if next.is_some() => {
                if let Some((_, notification)) = queue.pop_first()
                    && !deliver(&forwarder, &tx, notification)
                {
                    return;
                }
            }
            notification = inner.recv() => match notification {
                None => return,
                Some(notification) => {
                    let delays = forwarder.shared.with(|s| s.message_fate(forwarder.slot));
                    let now = Instant::now();
                    for delay in delays {
                        queue.insert((now + Duration::from_millis(delay), seq), notification.clone());
                        seq += 1;
                    }
                }
            },
        }
    }
}

/// Hands `notification` to the worker and records what it heard; `false` once the
/// subscribing incarnation is gone (its manager may not have dropped the receiver yet, but
/// nothing it hears counts any more).
fn deliver(forwarder: &Forwarder, tx: &SubscriptionSender, notification: Notification) -> bool {
    let (slot, actor) = (forwarder.slot, forwarder.actor);
    let current = forwarder.shared.with(|s| {
        if !s.is_current(slot, actor) {
            return false;
        }
        s.sync_slot(slot);
        // The mode before the worker hears of this (its driver has not run since).
        s.observe_mode(slot);
        match &notification {
            Notification::Event(event) => s.note_event(slot, event),
            Notification::Disconnected | Notification::Resubscribed => {
                s.record(Record::Subscription {
                    worker: actor,
                    connected: notification == Notification::Resubscribed,
                });
            }
            _ => {}
        }
        true
    });
    current && tx.send(notification)
}
