//! The manager's background work: one task that publishes local transitions, shares outcome
//! counts, applies what other workers send, reconciles with the store, heartbeats, and
//! rations half-open probes. Every backend call is bounded by `operation_timeout`; a failure
//! degrades the manager instead of surfacing anywhere near a caller.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use std::collections::VecDeque;

use flexiai_backend::{
    BackendError, CasOutcome, CasRequest, LockLease, MAX_OUTCOME_SLICES, Notification,
    OutcomeBatch, OutcomeSlice, ReportId, Subscription, SyncBackend,
};
use flexiai_breaker::ProbeMode;
use flexiai_events::{
    BreakerSnapshot, CircuitBreakerEvent, CircuitState, Event, Revision, StateUpdateEvent,
    Timestamp, WorkerId,
};
use tokio::sync::{Notify, watch};
use tokio::time::{Instant, MissedTickBehavior, interval, sleep_until, timeout};
use tracing::{debug, info, warn};

use crate::health::{Counters, ModeCell};
use crate::registry::{Entry, FleetRule, Pending, Registry, Unacked};

/// A planned compare-and-set: the entry, the snapshot, the revision it grew from, its event.
type Write = (Arc<Entry>, BreakerSnapshot, Option<Revision>, Event);
use crate::{SyncMode, SyncOptions};

/// Open deadlines closer than this count as the same one: a tie between workers that opened
/// at the same moment (ms apart) is not worth another write.
pub const DEADLINE_SLACK: Duration = Duration::from_millis(250);

/// Backend operations that must fail in a row before the manager degrades.
pub const DEGRADE_AFTER_FAILURES: u64 = 3;

/// Backend operations that must succeed in a row before a degraded manager reports `Synced`.
pub const RECOVER_AFTER_SUCCESSES: u64 = 2;

/// Names this process's outcome reports ([`ReportId`]): the worker id and a random token
/// drawn at start (a restarted worker with the same id is another reporter, so its first
/// reports are not taken for resends of its previous life's), and the last sequence used.
pub(crate) struct Reports {
    reporter: String,
    sequence: AtomicU64,
}

impl Reports {
    pub(crate) fn new(worker: &WorkerId) -> Self {
        // Without randomness, the start time still tells two lives of one id apart.
        let token = flexiai_backend::lock_token()
            .unwrap_or_else(|_| format!("{:x}", Timestamp::now().unix_micros()));
        Self {
            reporter: format!("{worker}/{token}"),
            sequence: AtomicU64::new(0),
        }
    }

    fn next(&self) -> u64 {
        self.sequence.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn id(&self, sequence: u64) -> ReportId {
        ReportId {
            reporter: self.reporter.clone(),
            sequence,
        }
    }
}

/// State shared by the manager handle and its driver task.
pub(crate) struct Shared {
    pub(crate) backend: Arc<dyn SyncBackend>,
    pub(crate) worker_id: WorkerId,
    /// Ids of this worker's outcome reports.
    pub(crate) reports: Reports,
    pub(crate) options: SyncOptions,
    pub(crate) registry: Registry,
    pub(crate) wake: Arc<Notify>,
    pub(crate) counters: Counters,
    pub(crate) mode: ModeCell,
    /// Set when a breaker is registered while running: it needs hydrating.
    pub(crate) needs_reconcile: AtomicBool,
    /// The subscription reported its connection lost and has not reported it back
    /// (`Resubscribed`) nor been replaced: events are being missed, so the manager stays
    /// degraded whatever the command connection says.
    pub(crate) subscription_down: AtomicBool,
}

impl Shared {
    /// Runs one backend operation within the time bound. Its outcome is evidence about the
    /// backend: [`DEGRADE_AFTER_FAILURES`] failures in a row degrade the manager (one lost
    /// call is not an outage, and degrading flips every breaker to local probes, the
    /// stampede fleet probes exist to prevent), and any success resets the count.
    #[tracing::instrument(name = "sync.backend_op", level = "debug", skip_all, fields(operation = name))]
    pub(crate) async fn op<T>(
        &self,
        name: &'static str,
        fut: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        let result = self.bounded(name, fut).await;
        match &result {
            Ok(_) => {
                self.counters.failures_in_a_row.store(0, Ordering::Relaxed);
                Counters::bump(&self.counters.successes_in_a_row);
            }
            Err(error) => {
                self.counters.successes_in_a_row.store(0, Ordering::Relaxed);
                let failures = self
                    .counters
                    .failures_in_a_row
                    .fetch_add(1, Ordering::Relaxed)
                    + 1;
                if failures >= DEGRADE_AFTER_FAILURES {
                    self.degrade(format!("{name}: {error} ({failures} failures in a row)"));
                } else {
                    debug!(operation = name, %error, failures, "backend operation failed");
                }
            }
        }
        result
    }

    /// Runs a best-effort operation (releasing a lease that expires anyway) within the time
    /// bound. Failures are counted in `backend_errors` but are no evidence either way.
    pub(crate) async fn best_effort<T>(
        &self,
        name: &'static str,
        fut: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        let result = self.bounded(name, fut).await;
        if let Err(error) = &result {
            debug!(operation = name, %error, "best-effort backend operation failed");
        }
        result
    }

    async fn bounded<T>(
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
        if result.is_err() {
            Counters::bump(&self.counters.backend_errors);
        }
        result
    }

    /// The event subscription dropped: events are being missed, so this worker is not in
    /// step, whatever the command connection says.
    pub(crate) fn subscription_dropped(&self, reason: &str) {
        self.subscription_down.store(true, Ordering::Release);
        self.counters.successes_in_a_row.store(0, Ordering::Relaxed);
        self.degrade(reason.to_owned());
        // Counted once handled, so a reader that sees the drop also sees the degraded mode.
        Counters::bump(&self.counters.subscription_drops);
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
            // rather than sit half-open forever. One whose lease this worker holds keeps its
            // credits: the driver goes on extending the lease and switches the breaker when
            // it lets the lease go (`Driver::forget_lease`).
            for entry in self.registry.all() {
                if self.options.fleet_probes && !entry.signals.leased.load(Ordering::SeqCst) {
                    entry.breaker.set_probe_mode(ProbeMode::Local);
                }
                // Nobody can read the fleet's counts either: each breaker's own window
                // decides again.
                entry.breaker.set_fleet_decides_rate(false);
            }
        }
    }

    /// Reports `Synced` again, but out of degraded mode only after
    /// [`RECOVER_AFTER_SUCCESSES`] backend operations in a row succeeded (hysteresis: a
    /// flapping backend does not flap every breaker's probe mode), and never while the
    /// subscription is disconnected (the store answering says nothing about the channel).
    pub(crate) fn mark_synced(&self) {
        if self.subscription_down.load(Ordering::Acquire) {
            return;
        }
        if self.is_degraded()
            && self.counters.successes_in_a_row.load(Ordering::Relaxed) < RECOVER_AFTER_SUCCESSES
        {
            return;
        }
        if let Some(previous) = self.mode.set(SyncMode::Synced) {
            info!(worker = %self.worker_id, ?previous, "sync established");
            self.apply_probe_mode();
        }
    }

    /// Hands the fleet what it coordinates: half-open probes (with `fleet_probes`) and the
    /// failure-rate trip of every failure-rate breaker.
    pub(crate) fn apply_probe_mode(&self) {
        for entry in self.registry.all() {
            self.attach_fleet(&entry);
        }
    }

    pub(crate) fn attach_fleet(&self, entry: &Entry) {
        if self.options.fleet_probes {
            entry.breaker.set_probe_mode(ProbeMode::Granted);
        }
        if entry.rule.is_some() {
            entry.breaker.set_fleet_decides_rate(true);
        }
    }

    /// Re-reads every provider from the store in one batch and converges each (see
    /// [`converge`](Self::converge)); the writes that takes go out in one more round trip.
    #[tracing::instrument(name = "sync.reconcile", level = "debug", skip_all)]
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
        let writes: Vec<Write> = entries
            .iter()
            .zip(stored)
            .filter_map(|(entry, stored)| self.converge(entry, stored))
            .collect();
        self.write_many(&writes).await
    }

    /// Brings one provider in line with the store, returning the write that takes, if any.
    ///
    /// - Nothing stored (first start, expired, or the store lost everything): ours is the
    ///   only history there is, so it is written back.
    /// - The store holds what we grew from: local transitions not yet stored go out next.
    /// - The store holds less than we know (emptied, then refilled by a worker that had not
    ///   seen the latest decisions): ours is written back on top of it, as its successor.
    /// - Anything else is a decision we did not see: adopted, dropping any local branch.
    fn converge(&self, entry: &Arc<Entry>, stored: Option<BreakerSnapshot>) -> Option<Write> {
        let base = entry.lineage(|l| l.base);
        let Some(stored) = stored else {
            let snapshot = self.own_snapshot(entry);
            let event = self.event_for(entry, &snapshot, base);
            return Some((Arc::clone(entry), snapshot, base, event));
        };
        let held = stored.revision();
        match base {
            Some(base) if held == base => {
                if entry.local_revision() != base {
                    entry.signals.mark_dirty();
                }
            }
            Some(base) if held < base => {
                let snapshot = self.own_snapshot(entry);
                let event = self.event_for(entry, &snapshot, Some(base));
                debug!(provider = %entry.name, %held, %base, "the store lost history we hold: writing it back");
                return Some((Arc::clone(entry), snapshot, Some(held), event));
            }
            _ => {
                if self.adopt(entry, &stored, None) {
                    Counters::bump(&self.counters.events_applied);
                    debug!(provider = %entry.name, revision = %held, state = %stored.state, "reconciled from store");
                }
            }
        }
        None
    }

    fn own_snapshot(&self, entry: &Entry) -> BreakerSnapshot {
        let mut snapshot = entry.breaker.snapshot();
        snapshot.epoch = entry.lineage(|l| l.epoch);
        snapshot.updated_by = Some(self.worker_id.clone());
        snapshot
    }

    /// The event that goes with storing `snapshot`. A transition Python workers have not seen
    /// is a `CircuitBreakerEvent` (the only kind Python acts on); a state the fleet already
    /// knows (put back into an emptied store, a fresh worker's closed v0) or one learned from
    /// a Python worker (which must not be echoed back to Python) is a `StateUpdateEvent`.
    fn event_for(
        &self,
        entry: &Entry,
        snapshot: &BreakerSnapshot,
        base: Option<Revision>,
    ) -> Event {
        let learned = entry.lineage(|l| l.learned_from_python);
        let unseen = snapshot.version != 0
            && base != Some(snapshot.revision())
            && learned != Some(snapshot.version);
        if unseen {
            Event::from(transition_event(&entry.name, &self.worker_id, snapshot))
        } else {
            Event::from(StateUpdateEvent {
                provider_name: entry.name.clone(),
                state_data: snapshot.clone(),
                worker_id: self.worker_id.clone(),
                timestamp: Timestamp::now(),
            })
        }
    }

    /// Makes the stored `stored` this worker's state and its new base: the store sequences
    /// the fleet, so a local branch that grew from anything older is dropped. `attempted` is
    /// the snapshot a lost write tried to store (else the breaker's current one): when it is
    /// the same transition (same revision and state), the breaker is left alone, keeping its
    /// probe credits and any later local transition. Returns whether the breaker changed.
    fn adopt(
        &self,
        entry: &Entry,
        stored: &BreakerSnapshot,
        attempted: Option<&BreakerSnapshot>,
    ) -> bool {
        let local = attempted
            .cloned()
            .unwrap_or_else(|| self.own_snapshot(entry));
        let unstored = entry
            .lineage(|l| l.base)
            .is_none_or(|base| local.revision() > base);
        // A branch grown in an earlier epoch than the stored snapshot's is older than an
        // operator's decision (only overrides start epochs): dropped, never rebased onto it.
        let same_epoch = entry.lineage(|l| l.epoch) == stored.epoch;
        entry.lineage(|l| {
            l.base = Some(stored.revision());
            l.epoch = stored.epoch;
            l.learned_from_python = None;
        });
        if unstored
            && same_epoch
            && let Some(rebased) = self.later_deadline(&local, stored)
        {
            entry.breaker.restore(&rebased);
            entry.signals.mark_dirty();
            debug!(provider = %entry.name, remaining_ms = ?rebased.open_remaining_ms, "rebased a later open deadline onto the store's history");
            return true;
        }
        if local.revision() == stored.revision()
            && local.state == stored.state
            && !ends_later(stored, &local)
        {
            return false;
        }
        // Same revision, but the stored open period ends later: a CAS tie this worker lost
        // with a shorter Retry-After (issue 12, #5). The fleet keeps the latest deadline.
        entry.breaker.restore(stored);
        true
    }

    /// When a local open period not yet stored ends later than what the store holds (a
    /// `Retry-After` that lost a race to a shorter one, or to a breaker-made transition), the
    /// successor of `stored` that keeps it: the fleet's open period is the latest deadline
    /// anyone asked for. Never over an operator's state. Deadlines within
    /// [`DEADLINE_SLACK`] count as the same.
    fn later_deadline(
        &self,
        local: &BreakerSnapshot,
        stored: &BreakerSnapshot,
    ) -> Option<BreakerSnapshot> {
        if local.state != CircuitState::Open
            || matches!(
                stored.state,
                CircuitState::ForcedOpen | CircuitState::Disabled
            )
        {
            return None;
        }
        let ours = local.open_remaining_ms?;
        let theirs = match stored.state {
            CircuitState::Open => stored.open_remaining_ms.unwrap_or(u64::MAX),
            _ => 0,
        };
        let slack = u64::try_from(DEADLINE_SLACK.as_millis()).unwrap_or(u64::MAX);
        if ours <= theirs.saturating_add(slack) {
            return None;
        }
        let mut rebased = stored.clone();
        rebased.state = CircuitState::Open;
        rebased.version = stored.version.saturating_add(1);
        rebased.open_remaining_ms = Some(ours);
        rebased.state_changed_at = local.state_changed_at.or(Some(Timestamp::now()));
        rebased.updated_by = Some(self.worker_id.clone());
        Some(rebased)
    }

    /// Compare-and-sets every planned write (`snapshot` grown from `expected`, with its
    /// event) in one round trip, then settles each outcome.
    async fn write_many(&self, writes: &[Write]) -> Result<(), BackendError> {
        if writes.is_empty() {
            return Ok(());
        }
        let requests: Vec<CasRequest<'_>> = writes
            .iter()
            .map(|(entry, snapshot, expected, event)| CasRequest {
                provider: &entry.name,
                snapshot,
                expected: *expected,
                event: Some(event),
            })
            .collect();
        let outcomes = self
            .op(
                "compare_and_set_many",
                self.backend.compare_and_set_many(&requests),
            )
            .await?;
        for ((entry, snapshot, _, _), outcome) in writes.iter().zip(outcomes) {
            self.settle_cas(entry, snapshot, outcome);
        }
        Ok(())
    }

    /// Acts on one compare-and-set's outcome. Applied, the snapshot becomes the base. Lost,
    /// the stored winner is adopted, or, when the store holds less than our base (it lost
    /// history), ours is queued to go back on top of it.
    fn settle_cas(&self, entry: &Entry, snapshot: &BreakerSnapshot, outcome: CasOutcome) {
        match outcome {
            CasOutcome::Applied => {
                Counters::bump(&self.counters.events_published);
                entry.lineage(|l| {
                    l.base = Some(snapshot.revision());
                    if l.learned_from_python == Some(snapshot.version) {
                        l.learned_from_python = None;
                    }
                });
            }
            CasOutcome::Stale { current } => {
                Counters::bump(&self.counters.cas_conflicts);
                let held = current.revision();
                let base = entry.lineage(|l| l.base);
                if base.is_some_and(|base| held < base) {
                    entry.lineage(|l| l.base = Some(held));
                    entry.signals.mark_dirty();
                } else {
                    self.adopt(entry, &current, Some(snapshot));
                }
                debug!(provider = %entry.name, stored = %held, tried = %snapshot.revision(), "lost compare-and-set, adopted the store's history");
            }
        }
    }

    /// Publishes every breaker's pending transition (the latest snapshot stands for all the
    /// transitions since the last publication), grown from the last stored revision we know,
    /// all providers in one round trip.
    #[tracing::instrument(name = "sync.publish_transitions", level = "debug", skip_all)]
    pub(crate) async fn publish_transitions(&self) {
        if self.is_degraded() {
            return; // kept dirty; reconcile writes it when the backend is back
        }
        let mut writes: Vec<Write> = Vec::new();
        for entry in self.registry.all() {
            if !entry.signals.take_dirty() {
                continue;
            }
            let snapshot = self.own_snapshot(&entry);
            let base = entry.lineage(|l| l.base);
            if base == Some(snapshot.revision()) {
                continue; // already stored: adopted from the store or the channel
            }
            let event = self.event_for(&entry, &snapshot, base);
            writes.push((entry, snapshot, base, event));
        }
        if self.write_many(&writes).await.is_err() {
            for (entry, _, _, _) in &writes {
                entry.signals.mark_dirty();
            }
        }
    }

    /// Fleet counting, once per flush interval, for failure-rate breakers: reads each
    /// breaker's counts since the last flush from its own counters, and sends what this
    /// worker has not sent yet to the store (one `record_outcomes` per provider, at most
    /// once per `outcome_report_interval`) when it saw a failure or the store said the
    /// provider is storming; nothing otherwise. Unsent
    /// successes wait, per local slice, until then, so that every outcome in the window
    /// counts, in the slice it happened in, and the fleet's rate is not overstated. The
    /// store's totals decide the trip. Counts from a degraded period, or straddling a
    /// transition, are dropped: the transition tells the fleet what they amounted to.
    ///
    /// Each report carries an id ([`ReportId`]: this worker's reporter name and a new
    /// sequence). A report that failed (it may have been applied with its reply lost) is
    /// sent again as it was, same id and counts, at the next flush, before newer counts go
    /// out: the store applies it once, so a lost reply costs neither a double count nor an
    /// undercount.
    ///
    /// `last` (shutdown) sends what is due regardless of the report interval. The settled
    /// re-check that decides a trip is not held back either: it comes once per storm.
    #[tracing::instrument(name = "sync.flush_outcomes", level = "debug", skip_all)]
    pub(crate) async fn flush_outcomes(&self, last: bool) {
        let degraded = self.is_degraded();
        for entry in self.registry.all() {
            let Some(rule) = entry.rule else {
                continue;
            };
            let now = Instant::now();
            let totals = entry.breaker.outcome_totals();
            let batch = {
                let mut tally = entry.tally();
                let delta = match tally.baseline {
                    Some(before) if before.version == totals.version => (
                        totals.failures.saturating_sub(before.failures),
                        totals.successes.saturating_sub(before.successes),
                    ),
                    _ => {
                        tally.pending.clear();
                        (0, 0)
                    }
                };
                tally.baseline = Some(totals);
                if degraded || totals.state != CircuitState::Closed {
                    tally.pending.clear();
                    tally.unacked = None;
                    continue;
                }
                add_pending(&mut tally.pending, &rule, now, delta);
                if let Some(unacked) = &mut tally.unacked {
                    // Groups that left the window were dropped by the store's window too.
                    let length = rule.window.length();
                    unacked
                        .groups
                        .retain(|p| now.saturating_duration_since(p.last) < length);
                    if unacked.period != totals.version || unacked.groups.is_empty() {
                        tally.unacked = None;
                    }
                }
                let recheck = tally.undecided && self.settled(&tally, totals.version, now);
                if !last && !recheck && !self.report_due(&tally, now) {
                    continue;
                }
                if tally.unacked.is_none() {
                    let storming = tally
                        .storm
                        .is_some_and(|(period, until)| period == totals.version && until > now);
                    let failures = tally.pending.iter().any(|p| p.failures > 0);
                    if !recheck && (tally.pending.is_empty() || !(failures || storming)) {
                        continue;
                    }
                    tally.unacked = Some(Unacked {
                        sequence: self.reports.next(),
                        period: totals.version,
                        groups: std::mem::take(&mut tally.pending),
                    });
                }
                if tally.unacked.is_none() {
                    continue;
                }
                tally.last_report = Some(now);
                let Some(unacked) = &tally.unacked else {
                    continue;
                };
                OutcomeBatch {
                    period: unacked.period,
                    slices: unacked
                        .groups
                        .iter()
                        .map(|p| OutcomeSlice {
                            age: now.saturating_duration_since(p.last),
                            failures: p.failures,
                            successes: p.successes,
                        })
                        .collect(),
                    report: (!unacked.groups.is_empty()).then(|| self.reports.id(unacked.sequence)),
                }
            };
            let Ok(fleet) = self
                .op(
                    "record_outcomes",
                    self.backend
                        .record_outcomes(&entry.name, &batch, &rule.window),
                )
                .await
            else {
                return;
            };
            Counters::bump(&self.counters.outcome_reports);
            let decide = {
                let mut tally = entry.tally();
                tally.unacked = None;
                if fleet.failures > 0 {
                    tally.storm = Some((batch.period, now + rule.window.length()));
                    if tally
                        .storm_since
                        .is_none_or(|(period, _)| period != batch.period)
                    {
                        tally.storm_since = Some((batch.period, now));
                    }
                }
                // Decide only once every worker has had a heartbeat to learn of the storm
                // and a flush to send the successes it held back: before that the totals
                // may hold the failures without those successes, overstating the rate.
                let trips = rule.trips(&fleet);
                let settled = self.settled(&tally, batch.period, now);
                tally.undecided = trips && !settled;
                trips && settled
            };
            if decide && entry.breaker.trip_for_fleet(batch.period) {
                Counters::bump(&self.counters.fleet_trips);
                debug!(provider = %entry.name, failures = fleet.failures, successes = fleet.successes, "the fleet's failure rate opened the breaker");
            }
        }
    }

    /// Whether this worker may send a report for the provider: `outcome_report_interval`
    /// has passed since its last one. Flush ticks jitter, so a report is due half a flush
    /// early; otherwise an interval equal to the flush interval could skip every other tick.
    fn report_due(&self, tally: &crate::registry::Tally, now: Instant) -> bool {
        let wait = self
            .options
            .outcome_report_interval
            .saturating_sub(self.options.flush_interval / 2);
        tally
            .last_report
            .is_none_or(|at| now.saturating_duration_since(at) >= wait)
    }

    /// Whether every worker has had time to report into `period`'s storm since this worker
    /// first knew of it: a heartbeat (to learn of it), then up to a report interval until its
    /// next report is due and a flush until the tick that sends it.
    fn settled(&self, tally: &crate::registry::Tally, period: u64, now: Instant) -> bool {
        let options = &self.options;
        let settle = options.heartbeat_interval
            + options.flush_interval
            + options.outcome_report_interval.max(options.flush_interval);
        tally
            .storm_since
            .is_some_and(|(p, since)| p == period && now.saturating_duration_since(since) >= settle)
    }

    /// Asks the store which failure-rate providers are storming (one round trip, with the
    /// heartbeat): a worker that saw no failure itself then sends its successes too.
    pub(crate) async fn learn_storms(&self) {
        let entries: Vec<_> = self
            .registry
            .all()
            .into_iter()
            .filter(|e| e.rule.is_some())
            .collect();
        if entries.is_empty() || self.is_degraded() {
            return;
        }
        let names: Vec<String> = entries.iter().map(|e| e.name.clone()).collect();
        let Ok(storms) = self.op("storming", self.backend.storming(&names)).await else {
            return;
        };
        let now = Instant::now();
        for (entry, storm) in entries.iter().zip(storms) {
            if let (Some(period), Some(rule)) = (storm, entry.rule) {
                let mut tally = entry.tally();
                tally.storm = Some((period, now + rule.window.length()));
                if tally.storm_since.is_none_or(|(p, _)| p != period) {
                    tally.storm_since = Some((period, now));
                }
            }
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
            Notification::Disconnected => {
                self.subscription_dropped("event subscription disconnected");
            }
            Notification::Resubscribed | Notification::Lagged { .. } => {
                if notification == Notification::Resubscribed {
                    self.subscription_down.store(false, Ordering::Release);
                }
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
        let lag = Timestamp::now().saturating_duration_since(event.timestamp());
        self.counters.last_event_lag_micros.store(
            u64::try_from(lag.as_micros()).unwrap_or(u64::MAX - 1),
            Ordering::Relaxed,
        );
        let effect = self.apply_received(event);
        // Counted once handled, so a reader that sees the count also sees the effect.
        match effect {
            Effect::Applied => Counters::bump(&self.counters.events_applied),
            Effect::Ignored => Counters::bump(&self.counters.events_ignored),
        }
        Counters::bump(&self.counters.events_received);
    }

    fn apply_received(&self, event: &Event) -> Effect {
        let Some(entry) = self.registry.get(event.provider_name()) else {
            return Effect::Ignored;
        };
        match event {
            Event::StateUpdateEvent(update) => self
                .apply_versioned(&entry, &update.state_data, event)
                .into(),
            Event::CircuitBreakerEvent(transition) => match transition.target_state() {
                Some(state) => match transition.metadata.version {
                    Some(version) => {
                        let mut remote = snapshot_from_event(transition, state, version);
                        remote.epoch = transition.metadata.epoch.unwrap_or(0);
                        self.apply_versioned(&entry, &remote, event).into()
                    }
                    None => apply_python_transition(&entry, transition, state).into(),
                },
                // Outcome events (from older workers, or Python's bare failure/success) are
                // not counted: the fleet's outcomes are summed in the store.
                None => Effect::Ignored,
            },
            // A kind of event this version does not know: nothing to apply.
            _ => Effect::Ignored,
        }
    }
}

/// What a received event did to the local breaker.
enum Effect {
    /// Changed its state or version.
    Applied,
    /// Nothing: not newer, an outcome event (the fleet counts in the store), or a provider
    /// not registered here.
    Ignored,
}

impl From<bool> for Effect {
    fn from(applied: bool) -> Self {
        if applied {
            Self::Applied
        } else {
            Self::Ignored
        }
    }
}

impl Shared {
    /// Applies a stored revision announced on the channel when it is later than the one
    /// this worker's state grew from (events are only published by winning writes, so a
    /// later one is a decision of the fleet's history); anything else is a duplicate or a
    /// replay.
    fn apply_versioned(&self, entry: &Entry, remote: &BreakerSnapshot, event: &Event) -> bool {
        let base = entry
            .lineage(|l| l.base)
            .unwrap_or_else(|| entry.local_revision());
        if remote.revision() <= base {
            self.replayed(event, remote.version, entry);
            return false;
        }
        self.adopt(entry, remote, None)
    }

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

/// How far ahead of this worker's clock a Python event's timestamp is believed. Python events
/// are ordered by their sender's wall clock; a later one is clamped to now + this bound, so a
/// host whose clock runs ahead can hold back later transitions for at most this long.
pub const PYTHON_CLOCK_SKEW: Duration = Duration::from_secs(2);

/// Applies an unversioned (Python) transition: ordered by its timestamp (trusted up to
/// [`PYTHON_CLOCK_SKEW`] ahead) against the local last state change, never over an operator's
/// `forced_open` or `disabled`, and, when applied, recorded in the versioned history as this
/// worker's next version (with a `StateUpdateEvent`, so Python does not hear it twice).
fn apply_python_transition(
    entry: &Entry,
    event: &CircuitBreakerEvent,
    state: CircuitState,
) -> bool {
    let local = entry.breaker.snapshot();
    if matches!(
        local.state,
        CircuitState::ForcedOpen | CircuitState::Disabled
    ) || local.state == state
    {
        return false;
    }
    let at = trusted_python_time(event.timestamp);
    if local.state_changed_at.is_some_and(|changed| at <= changed) {
        return false;
    }
    let version = local.version.saturating_add(1);
    let mut snapshot = snapshot_from_event(event, state, version);
    snapshot.state_changed_at = Some(at);
    let applied = entry.breaker.apply_remote(&snapshot);
    if applied {
        entry.lineage(|l| l.learned_from_python = Some(version));
        entry.signals.mark_dirty();
    }
    applied
}

/// A Python timestamp, clamped to at most [`PYTHON_CLOCK_SKEW`] ahead of this worker's clock.
fn trusted_python_time(at: Timestamp) -> Timestamp {
    let now = Timestamp::now().unix_micros();
    let bound =
        now.saturating_add(i64::try_from(PYTHON_CLOCK_SKEW.as_micros()).unwrap_or(i64::MAX));
    if at.unix_micros() > bound {
        Timestamp::from_unix_micros(bound).unwrap_or(at)
    } else {
        at
    }
}

/// Whether `stored` is an open period ending later than `local`'s, by more than
/// [`DEADLINE_SLACK`].
fn ends_later(stored: &BreakerSnapshot, local: &BreakerSnapshot) -> bool {
    let slack = u64::try_from(DEADLINE_SLACK.as_millis()).unwrap_or(u64::MAX);
    stored.state == CircuitState::Open
        && local.state == CircuitState::Open
        && stored.open_remaining_ms.is_some_and(|theirs| {
            theirs > local.open_remaining_ms.unwrap_or(0).saturating_add(slack)
        })
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

/// Adds one flush's counts to the unsent groups: to the newest group while it is younger
/// than a slice, else as a new group; groups older than the window are dropped (their
/// slices have left the fleet's window too).
fn add_pending(pending: &mut VecDeque<Pending>, rule: &FleetRule, now: Instant, delta: (u64, u64)) {
    let length = rule.window.length();
    while pending
        .front()
        .is_some_and(|p| now.saturating_duration_since(p.last) >= length)
    {
        pending.pop_front();
    }
    let (failures, successes) = delta;
    if failures == 0 && successes == 0 {
        return;
    }
    match pending.back_mut() {
        Some(group) if now.saturating_duration_since(group.started) < rule.window.slice() => {
            group.failures = group.failures.saturating_add(failures);
            group.successes = group.successes.saturating_add(successes);
            group.last = now;
        }
        _ => {
            if pending.len() >= MAX_OUTCOME_SLICES {
                pending.pop_front();
            }
            pending.push_back(Pending {
                started: now,
                last: now,
                failures,
                successes,
            });
        }
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
    event.metadata.epoch = (snapshot.epoch != 0).then_some(snapshot.epoch);
    event
}

struct HeldLease {
    lease: LockLease,
    version: u64,
    /// Probe credits granted under it so far in this period.
    granted: u64,
    /// The period's successes counted before the lease was won (local probes while
    /// degraded, an earlier lease of this worker): not settlements of this lease's credits.
    successes_before: u64,
    /// When to extend it next: a third of the TTL after the last extension, so a slow
    /// backend still has two chances before it expires.
    renew_at: Instant,
    /// When the store last confirmed it (the moment the acquire or extend that succeeded was
    /// sent: the store's TTL runs from later than this). Unconfirmed for two thirds of the
    /// TTL, its unused credits are revoked: the lease may be gone by the time they are used.
    confirmed_at: Instant,
    /// No credits before this: a lease taken from a fencing counter that restarted waits one
    /// TTL (see `ration_probes`).
    grant_after: Instant,
}

/// The background task.
pub(crate) struct Driver {
    shared: Arc<Shared>,
    subscription: Option<Subscription>,
    leases: BTreeMap<String, HeldLease>,
    /// The highest fencing token seen per probe lock: a lease that does not beat it is stale
    /// (handed out before one this worker already saw) and is not acted on.
    fences: BTreeMap<String, u64>,
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
            fences: BTreeMap::new(),
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
                    self.shared.flush_outcomes(false).await;
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
                        self.shared.subscription_dropped("event subscription ended");
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

    #[tracing::instrument(name = "sync.resubscribe", level = "debug", skip_all)]
    async fn resubscribe(&mut self) {
        match self
            .shared
            .op("subscribe", self.shared.backend.subscribe())
            .await
        {
            Ok(subscription) => {
                self.subscription = Some(subscription);
                self.shared
                    .subscription_down
                    .store(false, Ordering::Release);
                self.backoff = self.shared.options.min_retry_backoff;
                if self.shared.reconcile().await.is_ok() {
                    self.shared.mark_synced();
                }
            }
            Err(_) => self.schedule_resubscribe(),
        }
    }

    #[tracing::instrument(name = "sync.heartbeat", level = "trace", skip_all)]
    async fn heartbeat(&mut self) {
        self.shared.learn_storms().await;
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
    #[tracing::instrument(name = "sync.ration_probes", level = "trace", skip_all)]
    async fn ration_probes(&mut self) {
        let shared = Arc::clone(&self.shared);
        if !shared.options.fleet_probes {
            return;
        }
        if shared.is_degraded() {
            self.keep_leases_while_degraded().await;
            return;
        }
        for entry in shared.registry.all() {
            let state = entry.breaker.poll();
            if entry.signals.dirty.load(Ordering::Acquire) {
                // An unpublished transition may still lose its compare-and-set and be
                // replaced: ration once this worker's version is the fleet's. A lease held
                // meanwhile is kept: until the transition is stored, the store still holds
                // the period, and a probe admitted under it may still run.
                if self.leases.contains_key(&entry.name) {
                    self.keep_lease(&entry).await;
                }
                continue;
            }
            let version = entry.breaker.version();
            let current = self.leases.get(&entry.name).map(|held| held.version);
            if state == CircuitState::HalfOpen && current == Some(version) {
                self.keep_lease(&entry).await;
                self.regrant(&entry);
                continue;
            }
            if let Some(held) = self.forget_lease(&entry) {
                entry.breaker.revoke_probes_at(held.version);
                // Best effort: an unreleased lease expires by its TTL. One still fencing off
                // a restart (see `ration_probes`) is left to do so.
                if Instant::now() >= held.grant_after {
                    let _ = shared
                        .best_effort("release_lock", shared.backend.release_lock(&held.lease))
                        .await;
                }
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
            let sent = Instant::now();
            if let Ok(Some(lease)) = acquired {
                // Fencing tokens only grow within one store lifetime, so a token not above one
                // this worker saw, or a first token for a provider past its first half-open
                // period (v2), means the counter was lost: the store restarted empty and
                // forgot the lease with it, while its holder may still spend credits it has
                // not yet learned are void. Such a lease is held without granting until that
                // holder must have revoked them (see `keep_lease`: two thirds of the TTL
                // after its last confirmation, which preceded the restart).
                let seen = self.fences.get(&lock).copied().unwrap_or(0);
                let fence = lease.fencing_token();
                let restarted = fence <= seen || (fence == 1 && version > 2);
                if restarted {
                    debug!(provider = %entry.name, fence, seen, "the probe lock's fencing counter restarted: holding the lease one TTL before granting");
                }
                self.fences.insert(lock.clone(), fence);
                // The lease is for this half-open period only: read, while holding it, that
                // the store still holds the period. A holder releases only after the store
                // moved past its period, and the store only moves forward, so a worker that
                // has not heard of that yet (late or lost messages) finds out here instead of
                // probing an ended period beside the old holder's probe still in flight.
                let epoch = entry.lineage(|l| l.epoch);
                let current = match shared
                    .op("get_state", shared.backend.get_state(&entry.name))
                    .await
                {
                    Ok(Some(stored)) => {
                        stored.state == CircuitState::HalfOpen
                            && stored.version == version
                            && stored.epoch == epoch
                    }
                    _ => false,
                };
                if !current {
                    debug!(provider = %entry.name, version, "the store moved past this half-open period: not probing");
                    // A lease from a restarted counter is left to expire instead: until then
                    // it keeps everybody from probing beside the forgotten lease's holder.
                    if !restarted {
                        let _ = shared
                            .best_effort("release_lock", shared.backend.release_lock(&lease))
                            .await;
                    }
                    shared.needs_reconcile.store(true, Ordering::Release);
                    continue;
                }
                let max = entry.breaker.config().half_open_max_calls;
                let ttl = shared.options.probe_lease_ttl;
                // Flagged before the grant: a manager degrading meanwhile leaves the credits be.
                entry.signals.leased.store(true, Ordering::SeqCst);
                // Successes this period already counted (probes of a degraded spell, or of an
                // earlier lease) settle none of the credits granted now.
                let successes_before = entry
                    .breaker
                    .probe_progress()
                    .filter(|p| p.version == version)
                    .map_or(0, |p| p.successes);
                let granted = if restarted {
                    0
                } else {
                    entry.breaker.grant_probes_at(version, max)
                };
                if granted == 0 && !restarted {
                    // The half-open period ended while we took the lease (or the manager
                    // degraded and switched the breaker to local probes): hand it back.
                    self.unflag(&entry);
                    let _ = shared
                        .best_effort("release_lock", shared.backend.release_lock(&lease))
                        .await;
                    continue;
                }
                Counters::bump(&shared.counters.probe_leases);
                debug!(provider = %entry.name, version, granted, fence = lease.fencing_token(), "won the probe lease");
                let renew_at = Instant::now() + ttl / 3;
                self.leases.insert(
                    entry.name.clone(),
                    HeldLease {
                        lease,
                        version,
                        granted: u64::from(granted),
                        successes_before,
                        renew_at,
                        confirmed_at: sent,
                        grant_after: if restarted { sent + ttl } else { sent },
                    },
                );
            }
        }
    }

    /// A degraded manager takes and releases no lease, but keeps the ones it holds while
    /// their half-open period runs here: it extends them, and its breaker stays on their
    /// credits (granted as when synced). A probe admitted under one may still be in flight,
    /// and a lease let expire would hand a synced worker a second probe beside it: degraded
    /// by a dropped subscription, the store still answers (seed 1204). When the store does
    /// not answer, `keep_lease` revokes the credits as usual. A lease whose period ended here
    /// is kept while probes admitted under it still run (the end is not stored until the
    /// manager is back, so the store still offers the period to whoever takes the lease:
    /// seeds 22637, 53755), then let expire; the breaker meanwhile probes locally, as every
    /// other breaker of a degraded manager does.
    async fn keep_leases_while_degraded(&mut self) {
        for entry in self.shared.registry.all() {
            let Some(held) = self.leases.get(&entry.name) else {
                continue;
            };
            let version = held.version;
            if entry.breaker.poll() == CircuitState::HalfOpen && entry.breaker.version() == version
            {
                self.keep_lease(&entry).await;
                self.regrant(&entry);
            } else if entry.breaker.probes_in_flight_at(version) > 0 {
                // The breaker itself is past the period: it probes locally meanwhile.
                self.unflag(&entry);
                self.keep_lease(&entry).await;
            } else {
                self.forget_lease(&entry);
            }
        }
    }

    /// Drops this worker's hold on `entry`'s lease (not the lease itself: releasing is the
    /// caller's choice) and returns it.
    fn forget_lease(&mut self, entry: &Entry) -> Option<HeldLease> {
        let held = self.leases.remove(&entry.name);
        self.unflag(entry);
        held
    }

    /// Clears `entry`'s lease flag; a degraded manager's breaker then probes locally, as
    /// `Shared::degrade` would have switched it.
    fn unflag(&self, entry: &Entry) {
        entry.signals.leased.store(false, Ordering::SeqCst);
        if self.shared.is_degraded() {
            entry.breaker.set_probe_mode(ProbeMode::Local);
        }
    }

    /// Grants the lease holder's breaker its next probes once every probe granted so far has
    /// settled and the period still lacks successes: with `success_threshold` above
    /// `half_open_max_calls` one grant cannot close the period, and the fleet must still
    /// reach the threshold. Never more than `half_open_max_calls` in flight: a grant waits
    /// until no probe of the period is in flight here and the successes counted since the
    /// lease was won equal the credits granted (a failure reopens the breaker and ends the
    /// period; a probe dropped unsettled gives its credit back). Successes counted before it
    /// (seed 5825: a local probe of a degraded spell in the same period) settle none of
    /// them, and neither does one that settles after it (seeds 45237, 29290: a probe of a
    /// degraded spell, or of a lease the store forgot, admitted before the lease).
    fn regrant(&mut self, entry: &Entry) {
        let Some(held) = self.leases.get_mut(&entry.name) else {
            return;
        };
        if Instant::now() < held.grant_after {
            return;
        }
        let Some(progress) = entry.breaker.probe_progress() else {
            return;
        };
        if progress.version != held.version
            || progress.free > 0
            || progress.in_flight > 0
            || progress.successes >= progress.needed
            || held.granted > progress.successes.saturating_sub(held.successes_before)
        {
            return;
        }
        let max = u64::from(entry.breaker.config().half_open_max_calls);
        let next = max.min(progress.needed - progress.successes);
        let next = u32::try_from(next).unwrap_or(u32::MAX);
        if entry.breaker.grant_probes_at(held.version, next) > 0 {
            held.granted += u64::from(next);
            debug!(provider = %entry.name, version = held.version, successes = progress.successes, needed = progress.needed, "granted the next probes");
        }
    }

    /// Extends the probe lease of a half-open period that is still running (its probe may
    /// take longer than the TTL), so no other worker can take it and probe too. A lease
    /// found lost (expired, taken over) is dropped and never acted on again.
    ///
    /// Credits are only as good as the lease: when it is found lost, or has gone unconfirmed
    /// for two thirds of its TTL (the store may have let it expire, or restarted empty and
    /// forgotten it), the unused credits are revoked before another worker can win it.
    async fn keep_lease(&mut self, entry: &Entry) {
        let shared = Arc::clone(&self.shared);
        let ttl = shared.options.probe_lease_ttl;
        let provider = entry.name.as_str();
        let Some(held) = self.leases.get_mut(provider) else {
            return;
        };
        let now = Instant::now();
        if now >= held.confirmed_at + ttl * 2 / 3 {
            let revoked = entry.breaker.revoke_probes_at(held.version);
            Counters::bump(&shared.counters.probe_leases_lost);
            warn!(
                provider,
                revoked, "probe lease not renewed in time: revoked its credits"
            );
            self.forget_lease(entry);
            return;
        }
        if now < held.renew_at {
            return;
        }
        match shared
            .op("extend_lock", shared.backend.extend_lock(&held.lease, ttl))
            .await
        {
            Ok(true) => {
                held.renew_at = Instant::now() + ttl / 3;
                held.confirmed_at = now;
            }
            Ok(false) => {
                let revoked = entry.breaker.revoke_probes_at(held.version);
                Counters::bump(&shared.counters.probe_leases_lost);
                warn!(
                    provider,
                    fence = held.lease.fencing_token(),
                    revoked,
                    "lost the probe lease: revoked its credits, granting no more under it"
                );
                self.forget_lease(entry);
            }
            Err(_) => {} // tried again next flush; failures count toward degraded mode
        }
    }

    async fn shutdown(mut self) {
        let shared = Arc::clone(&self.shared);
        if !shared.is_degraded() {
            shared.publish_transitions().await;
            shared.flush_outcomes(true).await;
        }
        for held in std::mem::take(&mut self.leases).into_values() {
            if Instant::now() >= held.grant_after {
                let _ = shared
                    .best_effort("release_lock", shared.backend.release_lock(&held.lease))
                    .await;
            }
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
