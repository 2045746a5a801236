//! Counters the hot path writes: per-thread stripes (so two threads recording outcomes do not
//! fight over one cache line), version-tagged counts (so an outcome from an older version can
//! never leak into the current one), and the sliding window.

use std::cell::Cell;
use std::sync::atomic::AtomicUsize;
use std::sync::{Mutex, PoisonError};

use crate::sync::{AtomicU64, Ordering};

/// Stripes owned by one thread each; threads beyond this many share one more, atomically.
// One under loom (where no thread owns a stripe) to keep the model small.
const OWNED: usize = if cfg!(loom) { 1 } else { 64 };
const SHARED: usize = OWNED;

/// Keeps each stripe on its own pair of cache lines (the adjacent-line prefetcher pulls lines
/// in twos on x86).
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct Stripe {
    pub(crate) admitted: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) successes: AtomicU64,
    /// Successes that fed the state machine; the current state's count is the sum minus a
    /// base taken at the last transition.
    pub(crate) counted_successes: AtomicU64,
    /// Failures that fed a closed state's count (read by fleet coordinators).
    pub(crate) counted_failures: AtomicU64,
}

/// Per-thread counters: each live thread owns one stripe (up to 64 threads at once) and is
/// its only writer, so an increment is a plain load and store on a cache line no other thread
/// writes, with no locked instruction. Further threads share one more stripe and use
/// `fetch_add`. Readers sum all stripes.
pub(crate) struct Stripes(Box<[Stripe; OWNED + 1]>);

/// The stripe index a thread owns, handed back when the thread exits.
struct Slot(usize);

static FREE_SLOTS: Mutex<Vec<usize>> = Mutex::new(Vec::new());
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

/// `INDEX` before the thread has claimed a stripe.
const UNCLAIMED: usize = usize::MAX;

impl Slot {
    fn claim() -> Slot {
        let reused = FREE_SLOTS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        Slot(reused.unwrap_or_else(|| {
            let next = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
            if next < OWNED { next } else { SHARED }
        }))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // From here on this thread (in later thread-local destructors) uses the shared stripe.
        let _ = INDEX.try_with(|i| i.set(SHARED));
        if self.0 < OWNED {
            // The mutex orders this thread's last writes before the next owner's first.
            FREE_SLOTS
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(self.0);
        }
    }
}

thread_local! {
    /// The claim itself, whose destructor hands the stripe back.
    static SLOT: Slot = Slot::claim();
    /// A copy of the claimed index (or `UNCLAIMED`): constant-initialized and without a
    /// destructor, so the hot path reads it with one thread-local load and no lazy-init check.
    static INDEX: Cell<usize> = const { Cell::new(UNCLAIMED) };
}

/// Claims this thread's stripe on its first use; `SHARED` once the thread is exiting.
#[cold]
fn claim_slot() -> usize {
    let i = SLOT.try_with(|s| s.0).unwrap_or(SHARED);
    INDEX.set(i);
    i
}

impl Stripes {
    pub(crate) fn new() -> Self {
        Stripes(Box::new(std::array::from_fn(|_| Stripe::default())))
    }

    /// Adds `n` to this thread's copy of `field`.
    #[inline]
    pub(crate) fn add(&self, field: fn(&Stripe) -> &AtomicU64, n: u64) {
        // Under loom every model thread shares the OS thread's thread-locals, so none owns a
        // stripe: all go to the shared one.
        let i = if cfg!(loom) { SHARED } else { INDEX.get() };
        if i < OWNED {
            let counter = field(&self.0[i]);
            counter.store(
                counter.load(Ordering::Relaxed).wrapping_add(n),
                Ordering::Relaxed,
            );
        } else {
            self.add_cold(i, field, n);
        }
    }

    #[cold]
    fn add_cold(&self, i: usize, field: fn(&Stripe) -> &AtomicU64, n: u64) {
        let i = if i == UNCLAIMED { claim_slot() } else { i };
        if i < OWNED && !cfg!(loom) {
            self.add(field, n);
        } else {
            field(&self.0[SHARED]).fetch_add(n, Ordering::Relaxed);
        }
    }

    pub(crate) fn sum(&self, field: fn(&Stripe) -> &AtomicU64) -> u64 {
        self.0.iter().fold(0u64, |acc, s| {
            acc.wrapping_add(field(s).load(Ordering::Relaxed))
        })
    }
}

/// A count tagged with the low 32 bits of the version it belongs to: `tag << 32 | count`.
///
/// Updates are CAS loops that give up when the tag is not the caller's version, so an outcome
/// recorded under an old permit never changes the count of a newer state.
#[derive(Default)]
pub(crate) struct TaggedCount(AtomicU64);

fn tag_of(version: u64) -> u64 {
    version & 0xFFFF_FFFF
}

impl TaggedCount {
    pub(crate) fn reset(&self, version: u64, count: u64) {
        self.0.store(
            (tag_of(version) << 32) | count.min(u64::from(u32::MAX)),
            Ordering::Release,
        );
    }

    /// The count, whatever version it belongs to.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire) & 0xFFFF_FFFF
    }

    /// Applies `f` to the count if it belongs to `version`; returns the new count.
    pub(crate) fn update(&self, version: u64, f: impl Fn(u64) -> u64) -> Option<u64> {
        let tag = tag_of(version) << 32;
        let mut cur = self.0.load(Ordering::Acquire);
        loop {
            if cur & !0xFFFF_FFFF != tag {
                return None;
            }
            let next = f(cur & 0xFFFF_FFFF).min(u64::from(u32::MAX));
            if next == cur & 0xFFFF_FFFF {
                return Some(next);
            }
            match self
                .0
                .compare_exchange_weak(cur, tag | next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some(next),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Whether the count for `version` is zero (or belongs to another version); the cheap
    /// check that lets a success skip the write.
    #[inline]
    pub(crate) fn is_zero_or_stale(&self, version: u64) -> bool {
        let cur = self.0.load(Ordering::Relaxed);
        cur & 0xFFFF_FFFF == 0 || cur >> 32 != tag_of(version)
    }
}

/// Sliding-window outcome counts: a ring of time buckets, each one `AtomicU64` packing
/// `slice tag (24 bits) | failures (20) | calls (20)`.
///
/// A bucket whose tag is not the current slice is stale and is replaced, not added to, by the
/// first writer of the new slice; readers count only buckets whose tag falls in the last
/// `buckets` slices. Counts saturate at about a million per slice.
pub(crate) struct Window {
    buckets: Box<[AtomicU64]>,
    slice_nanos: u64,
}

const TAG_BITS: u32 = 24;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;
const COUNT_BITS: u32 = 20;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

fn unpack(b: u64) -> (u64, u64, u64) {
    (
        b >> (2 * COUNT_BITS),
        (b >> COUNT_BITS) & COUNT_MASK,
        b & COUNT_MASK,
    )
}

fn pack(tag: u64, failures: u64, calls: u64) -> u64 {
    let calls = calls.min(COUNT_MASK);
    (tag << (2 * COUNT_BITS)) | (failures.min(calls) << COUNT_BITS) | calls
}

impl Window {
    pub(crate) fn new(window_nanos: u64, buckets: u32) -> Self {
        let n = buckets.max(1);
        Window {
            buckets: (0..n).map(|_| AtomicU64::new(0)).collect(),
            slice_nanos: (window_nanos / u64::from(n)).max(1),
        }
    }

    fn slice(&self, now_nanos: u64) -> (u64, usize) {
        let idx = now_nanos / self.slice_nanos;
        let len = self.buckets.len() as u64;
        // `idx % len < len`, which came from a usize.
        (idx & TAG_MASK, usize::try_from(idx % len).unwrap_or(0))
    }

    pub(crate) fn record(&self, now_nanos: u64, failures: u64, calls: u64) {
        let (tag, i) = self.slice(now_nanos);
        let Some(bucket) = self.buckets.get(i) else {
            return;
        };
        let mut cur = bucket.load(Ordering::Relaxed);
        loop {
            let (t, f, c) = unpack(cur);
            let next = if t == tag {
                let c2 = c.saturating_add(calls);
                if c2 > COUNT_MASK {
                    // Saturated: keep the ratio rather than let failures and calls drift apart.
                    return;
                }
                pack(tag, f + failures, c2)
            } else {
                pack(tag, failures, calls)
            };
            match bucket.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// `(failures, calls)` over the window ending at `now_nanos`.
    pub(crate) fn totals(&self, now_nanos: u64) -> (u64, u64) {
        let (tag, _) = self.slice(now_nanos);
        let len = self.buckets.len() as u64;
        self.buckets.iter().fold((0, 0), |(fs, cs), b| {
            let (t, f, c) = unpack(b.load(Ordering::Relaxed));
            if tag.wrapping_sub(t) & TAG_MASK < len {
                (fs + f, cs + c)
            } else {
                (fs, cs)
            }
        })
    }

    pub(crate) fn clear(&self) {
        for b in self.buckets.iter() {
            // Tag 0 with zero counts: harmless even when slice 0 is current.
            b.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn window_expires_old_slices() {
        let w = Window::new(1000 * MS, 10);
        w.record(50 * MS, 1, 1);
        w.record(150 * MS, 0, 3);
        assert_eq!(w.totals(150 * MS), (1, 4));
        // At 1.05 s the first slice (0-100 ms) has left the window, the second has not.
        assert_eq!(w.totals(1050 * MS), (0, 3));
        assert_eq!(w.totals(1150 * MS), (0, 0));
        // Its bucket is reused by a new slice rather than added to.
        w.record(1060 * MS, 1, 1);
        assert_eq!(w.totals(1060 * MS), (1, 4));
        assert_eq!(w.totals(1160 * MS), (1, 1));
        w.clear();
        assert_eq!(w.totals(1060 * MS), (0, 0));
    }

    #[test]
    fn window_saturates_without_skewing() {
        let w = Window::new(1000 * MS, 1);
        w.record(0, COUNT_MASK, COUNT_MASK);
        w.record(0, 0, 5);
        assert_eq!(w.totals(0), (COUNT_MASK, COUNT_MASK));
    }

    #[test]
    fn tagged_count_ignores_other_versions() {
        let c = TaggedCount::default();
        c.reset(7, 0);
        assert_eq!(c.update(7, |n| n + 1), Some(1));
        assert_eq!(c.update(6, |n| n + 1), None);
        assert!(!c.is_zero_or_stale(7));
        assert!(c.is_zero_or_stale(8));
        c.reset(8, u64::MAX);
        assert_eq!(c.get(), u64::from(u32::MAX));
    }

    #[test]
    fn stripes_count_exactly_across_many_threads() {
        let s = Stripes::new();
        // More threads than owned stripes, in several waves so that slots are reused.
        for _ in 0..3 {
            std::thread::scope(|scope| {
                for _ in 0..(OWNED + 16) {
                    scope.spawn(|| {
                        for _ in 0..1000 {
                            s.add(|s| &s.admitted, 1);
                        }
                    });
                }
            });
        }
        assert_eq!(s.sum(|s| &s.admitted), 3 * (OWNED as u64 + 16) * 1000);
    }
}

/// How many ended half-open periods keep the count of their probes still in flight.
const ENDED_PERIODS: usize = 4;

/// Trial calls in flight: the current period's, and those of the last [`ENDED_PERIODS`]
/// periods that ended with calls in flight (a lease holder keeps an ended period's lease
/// until they settle). Moves between them happen only under the state word's `W` bit; the
/// breaker's readers and `done` retry around a transition (see `CircuitBreaker::probe_done`).
#[derive(Default)]
pub(crate) struct ProbeCounts {
    current: TaggedCount,
    ended: [TaggedCount; ENDED_PERIODS],
}

impl ProbeCounts {
    /// A new period (`version`) starts with `count` in flight (under `W`). The period it
    /// replaces keeps its count if calls are still in flight, in a free ended slot or the
    /// oldest one's.
    pub(crate) fn start(&self, version: u64, count: u64) {
        let old = self.current.0.swap(
            (tag_of(version) << 32) | count.min(u64::from(u32::MAX)),
            Ordering::AcqRel,
        );
        if old & 0xFFFF_FFFF == 0 {
            return;
        }
        let word = |slot: &TaggedCount| slot.0.load(Ordering::Acquire);
        let slot = self
            .ended
            .iter()
            .find(|slot| word(slot) & 0xFFFF_FFFF == 0)
            .or_else(|| self.ended.iter().min_by_key(|slot| word(slot) >> 32));
        if let Some(slot) = slot {
            slot.0.store(old, Ordering::Release);
        }
    }

    /// Forgets every count (under `W`): a restore dropped the branch they belong to.
    pub(crate) fn clear(&self) {
        self.current.0.store(0, Ordering::Release);
        for slot in &self.ended {
            slot.0.store(0, Ordering::Release);
        }
    }

    /// One more in flight in the current period, if it is `version`'s.
    pub(crate) fn add(&self, version: u64) -> bool {
        self.current.update(version, |n| n + 1).is_some()
    }

    /// One fewer in flight in period `version`, wherever its count is; whether it was found.
    pub(crate) fn done(&self, version: u64) -> bool {
        let done = |slot: &TaggedCount| slot.update(version, |n| n.saturating_sub(1)).is_some();
        done(&self.current) || self.ended.iter().any(done)
    }

    /// The calls in flight in period `version`, if a count holds it.
    pub(crate) fn get(&self, version: u64) -> Option<u64> {
        let read = |slot: &TaggedCount| slot.update(version, |n| n);
        read(&self.current).or_else(|| self.ended.iter().find_map(read))
    }

    /// The current period's count, if it is `version`'s.
    pub(crate) fn current(&self, version: u64) -> Option<u64> {
        self.current.update(version, |n| n)
    }
}
