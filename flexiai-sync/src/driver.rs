//! The manager's background work: one task that publishes local transitions, shares outcome
//! counts, applies what other workers send, reconciles with the store, heartbeats, and
//! rations half-open probes. Every backend call is bounded by `operation_timeout`; a failure
//! degrades the manager instead of surfacing anywhere near a caller.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use flexiai_backend::{
    BackendError, CasOutcome, LockLease, Notification, Subscription, SyncBackend,
};
use flexiai_breaker::ProbeMode;
use flexiai_events::{
    BreakerSnapshot, CircuitBreakerEvent, CircuitState, Event, EventType, StateUpdateEvent,
    Timestamp, WorkerId,
};
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, MissedTickBehavior, interval, sleep_until, timeout};
use tracing::{debug, info, warn};

use crate::health::{Counters, ModeCell};
use crate::registry::{Entry, Registry};
use crate::{SyncMode, SyncOptions};

/// State shared by the manager handle and its driver task.
pub(crate) struct Shared {
    pub(crate) backend: Arc<dyn SyncBackend>,
    pub(crate) worker_id: WorkerId,
    pub(crate) options: SyncOptions,
    pub(crate) registry: Registry,
    pub(crate) wake: Arc<Notify>,
    pub(crate) counters: Counters,
    pub(crate) mode: ModeCell,
    /// Set when a breaker is registered while running: it needs hydrating.
    pub(crate) needs_reconcile: AtomicBool,
}

impl Shared {
    /// Runs one backend operation within the time bound, counting and degrading on failure.
    pub(crate) async fn op<T>(
        &self,
        name: &'static str,
        fut: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        let bound = self.options.operation_timeout;
        let result = match timeout(bound, fut).await {
            Ok(result) => result,
            Err(_) => Err(BackendError::Timeout {
                operation: name,
                timeout: bound,
            }),
        };
        if let Err(error) = &result {
            Counters::bump(&self.counters.backend_errors);
            self.degrade(format!("{name}: {error}"));
        }
        result
    }

    pub(crate) fn is_degraded(&self) -> bool {
        matches!(self.mode.get().0, SyncMode::Degraded { .. })
    }

    pub(crate) fn degrade(&self, reason: String) {
        if let Some(previous) = self.mode.set(SyncMode::Degraded {
            reason: reason.clone(),
        }) {
            warn!(worker = %self.worker_id, %reason, ?previous, "sync degraded: breakers continue locally");
            // Nobody can hand out fleet probe leases now: let each breaker probe for itself
            // rather than sit half-open forever.
            if self.options.fleet_probes {
                for entry in self.registry.all() {
                    entry.breaker.set_probe_mode(ProbeMode::Local);
                }
            }
        }
    }

    pub(crate) fn mark_synced(&self) {
        if let Some(previous) = self.mode.set(SyncMode::Synced) {
            info!(worker = %self.worker_id, ?previous, "sync established");
            self.apply_probe_mode();
        }
    }

    pub(crate) fn apply_probe_mode(&self) {
        if self.options.fleet_probes {
            for entry in self.registry.all() {
                entry.breaker.set_probe_mode(ProbeMode::Granted);
            }
        }
    }

    /// Re-reads every provider from the store in one batch and converges: newer stored
    /// state is applied, older or missing stored state is overwritten with ours (with a
    /// `StateUpdateEvent`, so workers that missed our transitions catch up now).
    pub(crate) async fn reconcile(&self) -> Result<(), BackendError> {
        let entries = self.registry.all();
        if entries.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = entries.iter().map(|e| e.name.clone()).collect();
        let stored = self
            .op("get_states", self.backend.get_states(&names))
            .await?;
        Counters::bump(&self.counters.reconciles);
        for (entry, stored) in entries.iter().zip(stored) {
            let local_version = entry.breaker.version();
            match stored {
                Some(stored) if stored.version > local_version => {
                    if entry.breaker.apply_remote(&stored) {
                        Counters::bump(&self.counters.events_applied);
                        debug!(provider = %entry.name, version = stored.version, state = %stored.state, "reconciled from store");
                    }
                }
                Some(stored) if stored.version == local_version => {}
                _ => {
                    let snapshot = self.own_snapshot(entry);
                    let event = Event::from(StateUpdateEvent {
                        provider_name: entry.name.clone(),
                        state_data: snapshot.clone(),
                        worker_id: self.worker_id.clone(),
                        timestamp: Timestamp::now(),
                    });
                    self.write(entry, &snapshot, &event).await?;
                }
            }
        }
        Ok(())
    }

    fn own_snapshot(&self, entry: &Entry) -> BreakerSnapshot {
        let mut snapshot = entry.breaker.snapshot();
        snapshot.updated_by = Some(self.worker_id.clone());
        snapshot
    }

    /// Compare-and-sets `snapshot` with `event`; on losing, adopts the stored winner.
    async fn write(
        &self,
        entry: &Entry,
        snapshot: &BreakerSnapshot,
        event: &Event,
    ) -> Result<(), BackendError> {
        let outcome = self
            .op(
                "compare_and_set",
                self.backend
                    .compare_and_set(&entry.name, snapshot, Some(event)),
            )
            .await?;
        match outcome {
            CasOutcome::Applied => {
                Counters::bump(&self.counters.events_published);
            }
            CasOutcome::Stale { current } => {
                Counters::bump(&self.counters.cas_conflicts);
                let local = entry.breaker.version();
                if current.version > local {
                    entry.breaker.apply_remote(&current);
                } else if current.version == local && local == snapshot.version {
                    // Another worker reached the same version first. The same state (e.g.
                    // every worker's open period ending at once) needs nothing, and keeping
                    // ours keeps any probe credits; a different state loses to the store,
                    // which sequences the fleet.
                    if current.state != snapshot.state {
                        entry.breaker.restore(&current);
                    }
                } else {
                    // We moved on while writing; the newer local version goes next.
                    entry.signals.mark_dirty();
                }
                debug!(provider = %entry.name, stored = current.version, local, "lost compare-and-set, adopted the store's history");
            }
        }
        Ok(())
    }

    /// Publishes every breaker's pending transition (the latest snapshot stands for all the
    /// transitions since the last publication).
    pub(crate) async fn publish_transitions(&self) {
        if self.is_degraded() {
            return; // kept dirty; reconcile writes it when the backend is back
        }
        for entry in self.registry.all() {
            if !entry.signals.take_dirty() {
                continue;
            }
            let snapshot = self.own_snapshot(&entry);
            let event = Event::from(transition_event(&entry.name, &self.worker_id, &snapshot));
            if self.write(&entry, &snapshot, &event).await.is_err() {
                entry.signals.mark_dirty();
                return;
            }
        }
    }

    /// Shares the outcome counts of the last interval: one message per provider that saw a
    /// failure, none in steady healthy state. Counts from a degraded period are dropped: they
    /// would arrive too late to mean anything.
    pub(crate) async fn flush_outcomes(&self) {
        let degraded = self.is_degraded();
        for entry in self.registry.all() {
            let (failures, successes, version) = entry.signals.take_outcomes();
            if failures == 0 || degraded {
                continue;
            }
            let mut event = CircuitBreakerEvent::outcomes(
                entry.name.clone(),
                self.worker_id.clone(),
                failures,
                successes,
            );
            // Receivers count these only while they are in the same closed period.
            event.metadata.version = Some(version);
            let event = Event::from(event);
            if self
                .op("publish_event", self.backend.publish_event(&event))
                .await
                .is_err()
            {
                return;
            }
            Counters::bump(&self.counters.events_published);
        }
    }

    /// Applies one notification from the channel.
    pub(crate) async fn handle(&self, notification: Notification) {
        match notification {
            Notification::Event(event) => self.apply_event(&event),
            Notification::Rejected(error) => {
                Counters::bump(&self.counters.events_rejected);
                if error.is_authentication() {
                    Counters::bump(&self.counters.events_unauthenticated);
                }
                // The error is safe to log (no payload, no key); the payload is never logged.
                warn!(reason = error.reason(), error = %error, "rejected a payload on the events channel");
            }
            Notification::Resubscribed | Notification::Lagged { .. } => {
                debug!(?notification, "possible gap in events: reconciling");
                if self.reconcile().await.is_ok() {
                    self.mark_synced();
                }
            }
        }
    }

    fn apply_event(&self, event: &Event) {
        if event.worker_id() == &self.worker_id {
            return;
        }
        Counters::bump(&self.counters.events_received);
        let lag = Timestamp::now().saturating_duration_since(event.timestamp());
        self.counters.last_event_lag_micros.store(
            u64::try_from(lag.as_micros()).unwrap_or(u64::MAX - 1),
            Ordering::Relaxed,
        );
        let Some(entry) = self.registry.get(event.provider_name()) else {
            return;
        };
        let applied = match event {
            Event::StateUpdateEvent(update) => {
                let applied = entry.breaker.apply_remote(&update.state_data);
                if !applied {
                    self.replayed(event, update.state_data.version, &entry);
                }
                applied
            }
            Event::CircuitBreakerEvent(transition) => match transition.target_state() {
                Some(state) => {
                    let applied = apply_transition(&entry, transition, state);
                    if let (false, Some(version)) = (applied, transition.metadata.version) {
                        self.replayed(event, version, &entry);
                    }
                    applied
                }
                None => {
                    // Outcomes recorded under another version belong to a period this
                    // worker has left (or not reached): the transitions carry their effect.
                    if transition
                        .metadata
                        .version
                        .is_none_or(|v| v == entry.breaker.version())
                    {
                        let (failures, successes) = outcome_counts(transition);
                        entry.breaker.absorb_remote_outcomes(failures, successes);
                    }
                    false
                }
            },
        };
        if applied {
            Counters::bump(&self.counters.events_applied);
        }
    }
}

impl Shared {
    /// Counts and reports a versioned event that was not newer than the local breaker. The
    /// payload is not logged: only who sent it, for which provider, and the versions. The
    /// same version is routine (workers racing to one transition, or the event of a race
    /// this worker lost and already adopted): debug level. An older one is a late or
    /// replayed message: a warning.
    fn replayed(&self, event: &Event, version: u64, entry: &Entry) {
        Counters::bump(&self.counters.events_replayed);
        let local_version = entry.breaker.version();
        if version < local_version {
            warn!(
                provider = %entry.name,
                sender = %event.worker_id(),
                version,
                local_version,
                "dropped an older event (replayed or late)"
            );
        } else {
            debug!(
                provider = %entry.name,
                sender = %event.worker_id(),
                version,
                "dropped a duplicate event (version not newer)"
            );
        }
    }
}

/// Applies a transition event. Versioned events apply only when newer. Unversioned ones
/// (Python workers) are ordered by timestamp against the local last state change and, when
/// applied, re-published into the versioned history as this worker's next version.
fn apply_transition(entry: &Entry, event: &CircuitBreakerEvent, state: CircuitState) -> bool {
    match event.metadata.version {
        Some(version) => entry
            .breaker
            .apply_remote(&snapshot_from_event(event, state, version)),
        None => {
            let local = entry.breaker.snapshot();
            if local.state == state
                || local
                    .state_changed_at
                    .is_some_and(|at| event.timestamp <= at)
            {
                return false;
            }
            let applied = entry.breaker.apply_remote(&snapshot_from_event(
                event,
                state,
                local.version.saturating_add(1),
            ));
            if applied {
                entry.signals.mark_dirty();
            }
            applied
        }
    }
}

fn snapshot_from_event(
    event: &CircuitBreakerEvent,
    state: CircuitState,
    version: u64,
) -> BreakerSnapshot {
    let mut snapshot = BreakerSnapshot::new(state, version);
    snapshot.failure_count = event.metadata.failure_count.unwrap_or(0);
    snapshot.success_count = event.metadata.success_count.unwrap_or(0);
    snapshot.open_remaining_ms = event.metadata.open_remaining_ms;
    snapshot.state_changed_at = Some(event.timestamp);
    snapshot.updated_by = Some(event.worker_id.clone());
    snapshot
}

/// Outcome deltas of an outcome event; a bare Python-style `failure`/`success` counts one.
fn outcome_counts(event: &CircuitBreakerEvent) -> (u64, u64) {
    let meta = &event.metadata;
    match (meta.failure_delta, meta.success_delta) {
        (None, None) => match event.event_type {
            EventType::Failure => (1, 0),
            EventType::Success => (0, 1),
            _ => (0, 0),
        },
        (failures, successes) => (failures.unwrap_or(0), successes.unwrap_or(0)),
    }
}

/// The event announcing `snapshot`'s state, carrying what Python reads (`failure_count`,
/// `success_count`) and what Rust workers need (exact state, version, open time left).
pub(crate) fn transition_event(
    provider: &str,
    worker: &WorkerId,
    snapshot: &BreakerSnapshot,
) -> CircuitBreakerEvent {
    let mut event =
        CircuitBreakerEvent::transition(provider, worker.clone(), snapshot.state, snapshot.version);
    event.metadata.failure_count = Some(snapshot.failure_count);
    event.metadata.success_count = Some(snapshot.success_count);
    event.metadata.open_remaining_ms = snapshot.open_remaining_ms;
    event
}

struct HeldLease {
    lease: LockLease,
    version: u64,
}

/// The background task.
pub(crate) struct Driver {
    shared: Arc<Shared>,
    subscription: Option<Subscription>,
    leases: BTreeMap<String, HeldLease>,
    /// Per half-open provider: the version of the period and the breaker's rejected-call
    /// count when it was first seen, to tell a worker with demand from an idle one.
    demand: BTreeMap<String, (u64, u64)>,
    next_subscribe: Instant,
    backoff: Duration,
}

impl Driver {
    pub(crate) fn new(shared: Arc<Shared>, subscription: Option<Subscription>) -> Self {
        let backoff = shared.options.min_retry_backoff;
        Self {
            shared,
            subscription,
            leases: BTreeMap::new(),
            demand: BTreeMap::new(),
            next_subscribe: Instant::now() + backoff,
            backoff,
        }
    }

    pub(crate) async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let options = self.shared.options.clone();
        let mut flush = interval(options.flush_interval);
        let mut reconcile = interval(options.reconcile_interval);
        let mut heartbeat = interval(options.heartbeat_interval);
        for timer in [&mut flush, &mut reconcile, &mut heartbeat] {
            timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
        }
        // The first tick of an interval fires at once; start-up already did that work.
        reconcile.reset();
        heartbeat.reset();
        let wake = Arc::clone(&self.shared.wake);
        loop {
            let subscribed = self.subscription.is_some();
            // Biased: branches are polled in this order, not from a random start, so a run is
            // a function of its inputs (the fleet simulator replays seeds exactly), and the
            // periodic work comes before the channel, so a flood of events cannot starve it.
            tokio::select! {
                biased;
                _ = shutdown.changed() => break,
                () = wake.notified() => {
                    self.reconcile_if_needed().await;
                    self.shared.publish_transitions().await;
                }
                _ = flush.tick() => {
                    self.reconcile_if_needed().await;
                    self.shared.publish_transitions().await;
                    self.shared.flush_outcomes().await;
                    self.ration_probes().await;
                }
                _ = reconcile.tick() => {
                    if self.shared.reconcile().await.is_ok() && self.subscription.is_some() {
                        self.shared.mark_synced();
                    }
                }
                _ = heartbeat.tick() => self.heartbeat().await,
                () = sleep_until(self.next_subscribe), if !subscribed => self.resubscribe().await,
                notification = next_notification(&mut self.subscription) => match notification {
                    Some(notification) => self.shared.handle(notification).await,
                    None => {
                        self.subscription = None;
                        self.schedule_resubscribe();
                        self.shared.degrade("event subscription ended".into());
                    }
                },
            }
        }
        self.shutdown().await;
    }

    async fn reconcile_if_needed(&self) {
        if self.shared.needs_reconcile.swap(false, Ordering::AcqRel)
            && self.shared.reconcile().await.is_err()
        {
            self.shared.needs_reconcile.store(true, Ordering::Release);
        }
    }

    fn schedule_resubscribe(&mut self) {
        self.next_subscribe = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(self.shared.options.max_retry_backoff);
    }

    async fn resubscribe(&mut self) {
        match self
            .shared
            .op("subscribe", self.shared.backend.subscribe())
            .await
        {
            Ok(subscription) => {
                self.subscription = Some(subscription);
                self.backoff = self.shared.options.min_retry_backoff;
                if self.shared.reconcile().await.is_ok() {
                    self.shared.mark_synced();
                }
            }
            Err(_) => self.schedule_resubscribe(),
        }
    }

    async fn heartbeat(&mut self) {
        let shared = &self.shared;
        let beat = shared
            .op(
                "heartbeat",
                shared
                    .backend
                    .heartbeat(&shared.worker_id, shared.options.heartbeat_ttl),
            )
            .await;
        // A degraded manager recovers here: the backend answers again, so re-read the truth.
        if beat.is_ok()
            && shared.is_degraded()
            && self.subscription.is_some()
            && shared.reconcile().await.is_ok()
        {
            shared.mark_synced();
        }
    }

    /// Gives this worker's half-open breakers probe credits when it wins the provider's
    /// probe lease, so the fleet as a whole sends at most `half_open_max_calls` probes per
    /// half-open period; releases the lease when the period ends.
    async fn ration_probes(&mut self) {
        let shared = Arc::clone(&self.shared);
        if !shared.options.fleet_probes || shared.is_degraded() {
            return;
        }
        for entry in shared.registry.all() {
            let state = entry.breaker.poll();
            if entry.signals.dirty.load(Ordering::Acquire) {
                // An unpublished transition may still lose its compare-and-set and be
                // replaced: ration once this worker's version is the fleet's.
                continue;
            }
            let version = entry.breaker.version();
            let current = self.leases.get(&entry.name).map(|held| held.version);
            if state == CircuitState::HalfOpen && current == Some(version) {
                continue;
            }
            if let Some(held) = self.leases.remove(&entry.name) {
                // Best effort: an unreleased lease expires by its TTL.
                let _ = shared
                    .op("release_lock", shared.backend.release_lock(&held.lease))
                    .await;
            }
            if state != CircuitState::HalfOpen || entry.breaker.probe_credits() > 0 {
                self.demand.remove(&entry.name);
                continue;
            }
            // Only a worker whose callers are being turned away competes for the lease: an
            // idle worker holding it would keep the whole fleet waiting for its TTL.
            let rejected = entry.breaker.metrics().calls_rejected;
            match self.demand.get(&entry.name) {
                Some(&(seen_version, baseline)) if seen_version == version => {
                    if rejected <= baseline {
                        continue;
                    }
                }
                _ => {
                    self.demand.insert(entry.name.clone(), (version, rejected));
                    continue;
                }
            }
            let lock = probe_lock_name(&entry.name);
            let acquired = shared
                .op(
                    "acquire_lock",
                    shared
                        .backend
                        .acquire_lock(&lock, shared.options.probe_lease_ttl),
                )
                .await;
            if let Ok(Some(lease)) = acquired {
                let max = entry.breaker.config().half_open_max_calls;
                let granted = entry.breaker.grant_probes_at(version, max);
                if granted == 0 {
                    // The half-open period ended while we took the lease: hand it back.
                    let _ = shared
                        .op("release_lock", shared.backend.release_lock(&lease))
                        .await;
                    continue;
                }
                Counters::bump(&shared.counters.probe_leases);
                debug!(provider = %entry.name, version, granted, fence = lease.fencing_token(), "won the probe lease");
                self.leases
                    .insert(entry.name.clone(), HeldLease { lease, version });
            }
        }
    }

    async fn shutdown(mut self) {
        let shared = Arc::clone(&self.shared);
        if !shared.is_degraded() {
            shared.publish_transitions().await;
            shared.flush_outcomes().await;
        }
        for held in std::mem::take(&mut self.leases).into_values() {
            let _ = shared
                .op("release_lock", shared.backend.release_lock(&held.lease))
                .await;
        }
        if !shared.is_degraded() {
            let _ = shared
                .op(
                    "remove_worker",
                    shared.backend.remove_worker(&shared.worker_id),
                )
                .await;
        }
        self.subscription = None;
    }
}

/// The lock that rations one provider's half-open probes across the fleet.
pub(crate) fn probe_lock_name(provider: &str) -> String {
    format!("probe:{provider}")
}

async fn next_notification(subscription: &mut Option<Subscription>) -> Option<Notification> {
    match subscription {
        Some(subscription) => subscription.recv().await,
        None => std::future::pending().await,
    }
}
