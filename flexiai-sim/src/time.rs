//! Virtual time. The whole fleet runs on one current-thread tokio runtime whose clock is
//! paused, so time only moves when every task waits, and it jumps straight to the next
//! timer: an hour of fleet life takes as long as the work done in it, and no run depends on
//! how fast the machine is.
//!
//! Three readers follow that clock: the breakers (through [`VirtualClock`], a
//! `flexiai_breaker::Clock`), the backend (MemoryBackend already reads tokio's clock), and
//! every wall-clock read of the shipped code (`Timestamp::now`, redirected on this thread by
//! `install`). Wall time starts at [`EPOCH_MICROS`]; a worker's clock offset shifts the
//! wall anchor its breakers take when they are built.

use std::cell::Cell;
use std::time::Duration;

use flexiai_breaker::Clock;
use flexiai_events::Timestamp;
use tokio::time::Instant;

/// Wall-clock time at the start of every run: 2026-01-01T00:00:00 UTC.
pub const EPOCH_MICROS: i64 = 1_767_225_600_000_000;

thread_local! {
    static ORIGIN: Cell<Option<Instant>> = const { Cell::new(None) };
    static WALL_OFFSET_MS: Cell<i64> = const { Cell::new(0) };
}

/// Starts virtual wall time on this thread at `origin` (a tokio instant of the paused
/// runtime), and points `Timestamp::now` at it.
pub(crate) fn install(origin: Instant) {
    ORIGIN.with(|o| o.set(Some(origin)));
    Timestamp::set_thread_clock(Some(virtual_now));
}

/// Gives this thread its system wall clock back.
pub(crate) fn uninstall() {
    ORIGIN.with(|o| o.set(None));
    Timestamp::set_thread_clock(None);
}

/// Milliseconds of virtual time since the run started.
pub(crate) fn elapsed_ms() -> u64 {
    let elapsed = ORIGIN.with(Cell::get).map_or(Duration::ZERO, |o| {
        Instant::now().saturating_duration_since(o)
    });
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}

/// Virtual wall time shifted by `offset_ms` (a host whose clock is off by that much).
pub(crate) fn wall_with_offset(offset_ms: i64) -> Timestamp {
    let elapsed = ORIGIN.with(Cell::get).map_or(Duration::ZERO, |o| {
        Instant::now().saturating_duration_since(o)
    });
    let micros = EPOCH_MICROS
        .saturating_add(i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX))
        .saturating_add(offset_ms.saturating_mul(1000));
    Timestamp::from_unix_micros(micros)
        .unwrap_or(Timestamp::from_unix_micros(EPOCH_MICROS).unwrap_or_else(Timestamp::now))
}

fn virtual_now() -> Timestamp {
    wall_with_offset(WALL_OFFSET_MS.with(Cell::get))
}

/// Runs `f` (e.g. building a worker's breakers, which anchor their wall clock once) as if
/// this host's clock were off by `offset_ms`.
pub(crate) fn with_wall_offset<T>(offset_ms: i64, f: impl FnOnce() -> T) -> T {
    let previous = WALL_OFFSET_MS.with(|o| o.replace(offset_ms));
    let out = f();
    WALL_OFFSET_MS.with(|o| o.set(previous));
    out
}

/// A breaker clock reading tokio's (paused, virtual) clock.
#[derive(Debug, Clone, Copy)]
pub struct VirtualClock {
    origin: Instant,
}

impl VirtualClock {
    /// A clock measuring from `origin`.
    pub fn new(origin: Instant) -> Self {
        Self { origin }
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.origin)
    }
}
