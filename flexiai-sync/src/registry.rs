//! The breakers a manager keeps in step, and the signals their hot paths leave for it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use flexiai_breaker::{BreakerObserver, CircuitBreaker, Outcome, OutcomeEvent, Transition};
use flexiai_events::Revision;
use tokio::sync::Notify;

/// What a breaker's hot path tells the background driver: a flag and two counters, so that
/// recording an outcome is one atomic operation and a burst of transitions is one publication.
#[derive(Debug, Default)]
pub(crate) struct Signals {
    /// A local transition happened since the last publication.
    pub(crate) dirty: AtomicBool,
    /// Counted local failures since the last flush, with their version.
    failures: VersionedCount,
    /// Counted local successes since the last flush, with their version; counted only once a
    /// failure has been (only intervals with a failure are reported).
    successes: VersionedCount,
    /// The highest version any count was recorded under, from which a count's 32-bit tag is
    /// widened back to the full version (raised before the count is added).
    latest: AtomicU64,
}

impl Signals {
    pub(crate) fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::AcqRel)
    }

    pub(crate) fn mark_dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    /// Takes the outcome counts accumulated since the last call, and the version they
    /// belong to: `(failures, successes, version)`.
    ///
    /// Each count is read and cleared together with its version in one atomic operation, so
    /// failures recorded under one version never go out labelled with the next (issue 12
    /// defect 4). Counts from an older version are dropped when a newer one arrives (the
    /// transition in between told the fleet what they amounted to); successes are reported
    /// only if they belong to the failures' version.
    pub(crate) fn take_outcomes(&self) -> (u64, u64, u64) {
        let (tag, failures) = self.failures.take();
        let (success_tag, successes) = self.successes.take();
        let successes = if success_tag == tag { successes } else { 0 };
        // `latest` was raised before any count under `tag` was added, and the take above
        // synchronizes with that add, so `latest` is at least the count's version.
        let latest = self.latest.load(Ordering::Acquire);
        let version = latest.wrapping_sub(u64::from(low32(latest).wrapping_sub(tag)));
        (failures, successes, version)
    }

    /// Records one counted outcome under `version` (the hot path: a load and a CAS).
    fn record(&self, version: u64, outcome: Outcome) {
        if self.latest.load(Ordering::Relaxed) < version {
            self.latest.fetch_max(version, Ordering::AcqRel);
        }
        let tag = low32(version);
        match outcome {
            Outcome::Failure => self.failures.add(tag),
            // Successes only matter in an interval that will be reported, i.e. one that saw
            // a failure. Skipping them otherwise means a healthy worker's hot path only
            // reads this cache line and never writes it, so threads don't contend on it.
            Outcome::Success => {
                let (failures_tag, failures) = self.failures.peek();
                if failures_tag == tag && failures > 0 {
                    self.successes.add(tag);
                }
            }
        }
    }
}

/// The low 32 bits of a version: the tag a [`VersionedCount`] stores.
#[allow(clippy::cast_possible_truncation)]
fn low32(version: u64) -> u32 {
    version as u32
}

const COUNT_MASK: u64 = 0xFFFF_FFFF;

/// A count and the version it belongs to in one word (the version's low 32 bits in the high
/// half, the count in the low half), so both are read and cleared at once. Fewer than 2^32
/// transitions happen between a record and the next flush, so 32 bits identify the version.
#[derive(Debug, Default)]
struct VersionedCount(AtomicU64);

impl VersionedCount {
    /// Adds one under `tag`. A newer tag starts a fresh count; an older one (an outcome that
    /// arrives after a newer version's) is dropped. Saturates at 2^32 - 1 per flush.
    fn add(&self, tag: u32) {
        let mut current = self.0.load(Ordering::Relaxed);
        loop {
            let stored = low32(current >> 32);
            let next = if stored == tag {
                if current & COUNT_MASK == COUNT_MASK {
                    return;
                }
                current + 1
            } else if newer(tag, stored) {
                (u64::from(tag) << 32) | 1
            } else {
                return;
            };
            match self
                .0
                .compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// The tag and count, clearing the count (the tag stays, so later adds continue it).
    fn take(&self) -> (u32, u64) {
        let previous = self.0.fetch_and(!COUNT_MASK, Ordering::AcqRel);
        (low32(previous >> 32), previous & COUNT_MASK)
    }

    fn peek(&self) -> (u32, u64) {
        let current = self.0.load(Ordering::Relaxed);
        (low32(current >> 32), current & COUNT_MASK)
    }
}

/// Whether tag `a` is a later version than tag `b` (wrapping, as versions only move forward).
#[allow(clippy::cast_possible_wrap)]
fn newer(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
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
        if outcome.counted {
            self.signals.record(outcome.version, outcome.outcome);
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, atomic::Ordering};

    use super::{Outcome, Signals};

    /// Issue 12 defect 4: a flush taken while the hot path moves from one version to the next
    /// must label every failure with the version it was recorded under. One failure is
    /// recorded per version, so a version that collects more than one got someone else's.
    /// Before the fix (counts swapped, version read separately) a failure of version v went
    /// out labelled v + 1 next to v + 1's own.
    #[test]
    fn failures_go_out_with_the_version_they_were_recorded_under() {
        const VERSIONS: u64 = 200_000;
        let signals = Arc::new(Signals::default());
        let done = Arc::new(AtomicBool::new(false));
        let recorder = {
            let (signals, done) = (Arc::clone(&signals), Arc::clone(&done));
            std::thread::spawn(move || {
                for v in 1..=VERSIONS {
                    signals.record(v, Outcome::Failure);
                    signals.record(v, Outcome::Success);
                }
                done.store(true, Ordering::Release);
            })
        };
        let mut taken: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
        let mut flushes = 0u64;
        loop {
            let finished = done.load(Ordering::Acquire);
            let (f, s, v) = signals.take_outcomes();
            if f > 0 || s > 0 {
                let e = taken.entry(v).or_default();
                e.0 += f;
                e.1 += s;
            }
            flushes += 1;
            if finished {
                break;
            }
        }
        recorder.join().unwrap();
        assert!(flushes > 1 && !taken.is_empty());
        for (v, (f, s)) in &taken {
            assert!(
                (1..=VERSIONS).contains(v) && *f <= 1 && *s <= 1,
                "version {v} went out with {f} failures and {s} successes; one of each was \
                 recorded under it"
            );
        }
        // The last version's counts are never superseded: they all go out, with it.
        assert_eq!(taken.get(&VERSIONS).map(|e| e.0), Some(1));
    }

    #[test]
    fn an_older_versions_outcome_is_dropped_and_versions_widen_back() {
        let signals = Signals::default();
        let big = (7u64 << 32) + 5;
        signals.record(big, Outcome::Failure);
        signals.record(big - 1, Outcome::Failure); // late, from the previous version
        signals.record(big, Outcome::Success);
        assert_eq!(signals.take_outcomes(), (1, 1, big));
        assert_eq!(signals.take_outcomes(), (0, 0, big));
        // A success with no failure in the interval is not counted.
        signals.record(big, Outcome::Success);
        assert_eq!(signals.take_outcomes(), (0, 0, big));
    }
}
