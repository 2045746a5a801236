//! Time sources. The breaker only ever measures durations, so a clock is a monotonic
//! `Duration` since an arbitrary origin; wall-clock timestamps for snapshots are derived from
//! one anchor taken at construction.

use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A monotonic time source.
///
/// `now` must never go backwards. The breaker calls it on failures, in the open state and on
/// transitions, but never when admitting or recording a success in the closed state under
/// the default policy, so a slow clock does not tax the hot path.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Time elapsed since this clock's (arbitrary, fixed) origin.
    fn now(&self) -> Duration;
}

/// The real monotonic clock ([`Instant`]), measured from the first time any `SystemClock` was
/// read in this process.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

fn process_origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        process_origin().elapsed()
    }
}

/// A clock that only moves when told to, for tests (in this crate and in others).
///
/// ```
/// use std::time::Duration;
/// use flexiai_breaker::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// clock.advance(Duration::from_secs(3));
/// assert_eq!(clock.now(), Duration::from_secs(3));
/// ```
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: AtomicU64,
}

impl ManualClock {
    /// A clock standing at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by` (saturating at about 584 years).
    pub fn advance(&self, by: Duration) {
        let add = duration_to_nanos(by);
        // fetch_update never fails with a closure that always returns Some.
        let _ = self
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_add(add))
            });
    }

    /// Sets the clock to `to` if that is not earlier than now; a monotonic clock cannot go back.
    pub fn set(&self, to: Duration) {
        self.nanos
            .fetch_max(duration_to_nanos(to), Ordering::AcqRel);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }
}

/// Nanoseconds in `d`, saturating at `u64::MAX` (about 584 years).
pub(crate) fn duration_to_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_forward() {
        let c = ManualClock::new();
        c.advance(Duration::from_millis(5));
        c.set(Duration::from_millis(2));
        assert_eq!(c.now(), Duration::from_millis(5));
        c.set(Duration::from_millis(9));
        assert_eq!(c.now(), Duration::from_millis(9));
        c.advance(Duration::MAX);
        assert_eq!(c.now(), Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn system_clock_is_monotonic() {
        let a = SystemClock.now();
        let b = SystemClock.now();
        assert!(b >= a);
    }
}
