//! The breakers a manager keeps in step, and the signals their hot paths leave for it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use flexiai_breaker::{BreakerObserver, CircuitBreaker, Outcome, OutcomeEvent, Transition};
use flexiai_events::Revision;
use tokio::sync::Notify;

/// What a breaker's hot path tells the background driver: a flag and two counters, so that
/// recording an outcome is one atomic add and a burst of transitions is one publication.
#[derive(Debug, Default)]
pub(crate) struct Signals {
    /// A local transition happened since the last publication.
    pub(crate) dirty: AtomicBool,
    /// Counted local failures since the last flush.
    pub(crate) failures: AtomicU64,
    /// Counted local successes since the last flush, counted only once a failure has been
    /// (only intervals with a failure are reported).
    pub(crate) successes: AtomicU64,
    /// The breaker version the counts were recorded under. Counts from an older version
    /// are dropped when a newer one arrives: the transition in between already told the
    /// fleet what they amounted to.
    pub(crate) version: AtomicU64,
}

impl Signals {
    pub(crate) fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::AcqRel)
    }

    pub(crate) fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    /// Takes the outcome counts accumulated since the last call, and the version they
    /// belong to.
    pub(crate) fn take_outcomes(&self) -> (u64, u64, u64) {
        (
            self.failures.swap(0, Ordering::AcqRel),
            self.successes.swap(0, Ordering::AcqRel),
            self.version.load(Ordering::Acquire),
        )
    }
}

/// The observer a manager attaches to each registered breaker. It runs on the caller's
/// thread, so it only touches atomics (and wakes the driver on the rare transition).
pub(crate) struct SyncObserver {
    signals: Arc<Signals>,
    wake: Arc<Notify>,
}

impl BreakerObserver for SyncObserver {
    fn on_transition(&self, _transition: &Transition) {
        self.signals.mark_dirty();
        self.wake.notify_one();
    }

    fn on_outcome(&self, outcome: &OutcomeEvent) {
        // Outcomes the breaker did not count (disabled, or settled after a state change)
        // must not count for the fleet either.
        if !outcome.counted {
            return;
        }
        // Rare (once per state change): start counting for the new version. Racing threads
        // may lose a count or two here; deltas are advisory, the breaker's own are exact.
        if self.signals.version.load(Ordering::Relaxed) != outcome.version {
            self.signals
                .version
                .store(outcome.version, Ordering::Relaxed);
            self.signals.failures.store(0, Ordering::Relaxed);
            self.signals.successes.store(0, Ordering::Relaxed);
        }
        match outcome.outcome {
            Outcome::Failure => {
                self.signals.failures.fetch_add(1, Ordering::Relaxed);
            }
            // Successes only matter in an interval that will be reported, i.e. one that saw
            // a failure. Skipping them otherwise means a healthy worker's hot path only
            // reads this cache line and never writes it, so threads don't contend on it.
            Outcome::Success => {
                if self.signals.failures.load(Ordering::Relaxed) > 0 {
                    self.signals.successes.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
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
