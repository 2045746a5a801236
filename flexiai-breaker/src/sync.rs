//! The synchronization primitives the breaker's state lives in: `std`'s, or `loom`'s when
//! built with `--cfg loom` so that `tests/loom.rs` can explore every interleaving of them.
//!
//! Not modelled under loom (they keep `std` types): the observer list (`arc-swap`), the
//! process-wide breaker id counter, the clocks, the success stripes' slot registry and the
//! `QueuedObserver`.

#[cfg(loom)]
pub(crate) use loom::sync::Mutex;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, fence};

#[cfg(not(loom))]
pub(crate) use std::sync::Mutex;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, fence};

pub(crate) use std::sync::atomic::Ordering;

/// One round of waiting for another thread: a spin hint, or a yield after `spins` rounds.
/// Under loom every round yields, so the model checker can run the thread being waited for.
#[inline]
pub(crate) fn wait_round(spins: u32) {
    #[cfg(loom)]
    {
        let _ = spins;
        loom::thread::yield_now();
    }
    #[cfg(not(loom))]
    {
        if spins < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}
