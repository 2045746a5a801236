//! The breakers a manager keeps in step, and the signals their hot paths leave for it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use flexiai_backend::{FleetCounts, FleetWindow};
use flexiai_breaker::{BreakerObserver, CircuitBreaker, FailurePolicy, OutcomeTotals, Transition};
use flexiai_events::Revision;
use tokio::sync::Notify;
use tokio::time::Instant;

/// What a breaker's hot path tells the background driver: one flag, set on the rare
/// transition. Outcomes are not reported at all: the driver reads the breaker's own striped
/// counters once per flush interval ([`CircuitBreaker::outcome_totals`]).
#[derive(Debug, Default)]
pub(crate) struct Signals {
    /// A local transition happened since the last publication.
    pub(crate) dirty: AtomicBool,
    /// This worker holds the provider's probe lease: degrading leaves the breaker on the
    /// lease's credits (switching it to local probes would drop them, see `Shared::degrade`).
    pub(crate) leased: AtomicBool,
}

impl Signals {
    pub(crate) fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::AcqRel)
    }

    pub(crate) fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }
}

/// The observer a manager attaches to each registered breaker. It hears transitions only
/// (it says so through `wants_outcomes`), so the closed-state success stays on the breaker's
/// inline fast path exactly as without sync.
pub(crate) struct SyncObserver {
    signals: Arc<Signals>,
    wake: Arc<Notify>,
}

impl BreakerObserver for SyncObserver {
    fn on_transition(&self, _transition: &Transition) {
        self.signals.mark_dirty();
        self.wake.notify_one();
    }

    fn wants_outcomes(&self) -> bool {
        false
    }
}

/// A failure-rate breaker's part in fleet counting, touched only by the driver.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// The breaker's cumulative counts at the last flush.
    pub(crate) baseline: Option<OutcomeTotals>,
    /// Counts not yet sent to the store, one group per local slice, oldest first.
    pub(crate) pending: VecDeque<Pending>,
    /// The period the store last said was storming, and until when that holds.
    pub(crate) storm: Option<(u64, Instant)>,
    /// The period this worker first knew to be storming, and when.
    pub(crate) storm_since: Option<(u64, Instant)>,
    /// The fleet's totals crossed the threshold before every worker could have reported:
    /// read them again once that time has passed.
    pub(crate) undecided: bool,
    /// A report sent whose reply never came: it may have been applied, so it is sent again
    /// as it was, under the same id, before any newer counts (the store applies it once).
    pub(crate) unacked: Option<Unacked>,
    /// When this worker last sent a report for the provider: the next waits for
    /// `outcome_report_interval` to pass.
    pub(crate) last_report: Option<Instant>,
}

/// An outcome report awaiting the store's answer: its sequence, period and counts.
#[derive(Debug, Clone)]
pub(crate) struct Unacked {
    pub(crate) sequence: u64,
    pub(crate) period: u64,
    pub(crate) groups: VecDeque<Pending>,
}

/// Unsent counts of one local slice.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pending {
    /// When the group began.
    pub(crate) started: Instant,
    /// When its last counts were added (their age is measured from here).
    pub(crate) last: Instant,
    pub(crate) failures: u64,
    pub(crate) successes: u64,
}

/// The fleet's trip rule for one breaker: its own failure-rate policy, applied to the
/// fleet's totals in the store.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FleetRule {
    pub(crate) window: FleetWindow,
    pub(crate) minimum_calls: u64,
    pub(crate) threshold: f64,
}

impl FleetRule {
    fn of(breaker: &CircuitBreaker) -> Option<Self> {
        match &breaker.config().failure_policy {
            FailurePolicy::FailureRate {
                window_ms,
                buckets,
                minimum_calls,
                failure_rate_threshold,
            } => FleetWindow::new(Duration::from_millis(*window_ms), *buckets)
                .ok()
                .map(|window| FleetRule {
                    window,
                    minimum_calls: u64::from(*minimum_calls),
                    threshold: *failure_rate_threshold,
                }),
            // Consecutive failures are counted per worker, never fleet-wide.
            _ => None,
        }
    }

    /// Whether the fleet's totals open the breaker.
    #[allow(clippy::cast_precision_loss)] // counts stay far below 2^52
    pub(crate) fn trips(&self, counts: &FleetCounts) -> bool {
        let calls = counts.calls();
        calls >= self.minimum_calls
            && calls > 0
            && counts.failures as f64 >= self.threshold * calls as f64
    }
}

/// Where one breaker's local history stands against the store's. Touched only by the
/// background driver (and `sync_all_states`), never by the hot path.
#[derive(Debug, Default)]
pub(crate) struct Lineage {
    /// The stored revision the local state grew from: the last one this worker wrote or
    /// adopted. `None` until the first successful read or write. Every compare-and-set names
    /// it, so a local branch that diverged from the store can never replace a decision it
    /// did not see.
    pub(crate) base: Option<Revision>,
    /// The epoch the local breaker's versions count in (the breaker itself only knows
    /// versions).
    pub(crate) epoch: u64,
    /// The version installed from an unversioned (Python) transition and not yet stored: it
    /// is recorded with a `StateUpdateEvent`, which Python ignores, so Python workers never
    /// get their own transition echoed back.
    pub(crate) learned_from_python: Option<u64>,
}

/// One registered breaker.
pub(crate) struct Entry {
    pub(crate) name: String,
    pub(crate) breaker: Arc<CircuitBreaker>,
    pub(crate) signals: Arc<Signals>,
    pub(crate) observer: Arc<dyn BreakerObserver>,
    /// Present for failure-rate breakers: the fleet decides their trip.
    pub(crate) rule: Option<FleetRule>,
    pub(crate) tally: Mutex<Tally>,
    lineage: Mutex<Lineage>,
}

impl Entry {
    pub(crate) fn new(breaker: Arc<CircuitBreaker>, wake: Arc<Notify>) -> Self {
        let signals = Arc::new(Signals::default());
        let observer: Arc<dyn BreakerObserver> = Arc::new(SyncObserver {
            signals: Arc::clone(&signals),
            wake,
        });
        Self {
            name: breaker.name().to_owned(),
            rule: FleetRule::of(&breaker),
            // Counted from registration on: earlier outcomes were the breaker's alone.
            tally: Mutex::new(Tally {
                baseline: Some(breaker.outcome_totals()),
                ..Tally::default()
            }),
            breaker,
            signals,
            observer,
            lineage: Mutex::default(),
        }
    }

    /// Reads or changes the lineage under its lock (never held across an await).
    pub(crate) fn lineage<T>(&self, f: impl FnOnce(&mut Lineage) -> T) -> T {
        f(&mut self.lineage.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The local breaker's position: its epoch and version.
    pub(crate) fn local_revision(&self) -> Revision {
        Revision {
            epoch: self.lineage(|l| l.epoch),
            version: self.breaker.version(),
        }
    }

    pub(crate) fn tally(&self) -> MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Name-ordered registry. Read by the driver and by status calls, written on registration;
/// never touched by the hot path.
#[derive(Default)]
pub(crate) struct Registry(RwLock<BTreeMap<String, Arc<Entry>>>);

impl Registry {
    pub(crate) fn insert(&self, entry: Arc<Entry>) -> bool {
        let mut map = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if map.contains_key(&entry.name) {
            return false;
        }
        map.insert(entry.name.clone(), entry);
        true
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<Entry>> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    pub(crate) fn all(&self) -> Vec<Arc<Entry>> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }
}
