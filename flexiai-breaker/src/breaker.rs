//! The breaker: the packed state and the side fields it guards, split by job into
//! [`builder`] (construction), [`admission`] (try_acquire, probe slots), [`settle`] (recording
//! outcomes), [`transition`] (the `W`-bit protocol and open periods), [`manual`] (operator
//! controls, `Retry-After`), [`observers`], [`probes`] (probe mode, fleet credits), [`remote`]
//! (snapshots and remote outcomes for flexiai-sync) and [`reads`] (state, metrics, `Debug`).

mod admission;
mod builder;
mod fleet;
mod manual;
mod observers;
mod probes;
mod reads;
mod remote;
mod settle;
mod transition;

pub use builder::BreakerBuilder;
pub use fleet::OutcomeTotals;
pub use probes::ProbeProgress;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;

use crate::classifier::Classifier;
use crate::clock::{Clock, duration_to_nanos};
use crate::config::BreakerConfig;
use crate::counters::{ProbeCounts, Stripes, TaggedCount, Window};
use crate::observer::{BreakerId, BreakerObserver};
use crate::sync::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Mutex, Ordering};
use crate::word::Word;

/// Who decides how many trial calls a half-open breaker admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ProbeMode {
    /// This breaker alone: entering half-open opens `half_open_max_calls` probe slots; a slot
    /// comes back when its call succeeds without closing the breaker or is dropped unsettled.
    #[default]
    Local,
    /// A coordinator (flexiai-sync, holding a fleet-wide lease) hands out credits with
    /// [`CircuitBreaker::grant_probes`]; a half-open breaker admits one trial call per credit.
    /// A credit is consumed when its call is settled, whatever the outcome (a success that
    /// does not close the breaker keeps nothing), and given back only when the permit is
    /// dropped unsettled. Credits exist only in half-open and are cleared when the breaker
    /// leaves it. Successes count towards `success_threshold` fleet-wide once the coordinator
    /// passes other workers' successes to
    /// [`CircuitBreaker::absorb_remote_probe_successes`] (see [`ProbeProgress`]).
    Granted,
}

/// Marks an unset wall-clock field.
const NO_TIME: i64 = i64::MIN;
const NANOS_PER_MS: u64 = 1_000_000;

/// Keeps a hot field alone on its cache lines.
#[repr(align(128))]
struct Padded<T>(T);

/// Side fields written only under the word's `W` bit (see [`crate::word`]).
struct Side {
    /// Clock reading (ns) at which an open period ends.
    open_until: AtomicU64,
    /// Trial failures in a row; each multiplies the next open period by the backoff factor.
    open_streak: AtomicU32,
    /// Clock reading (ns) of the last state change.
    state_since: AtomicU64,
    /// Wall-clock micros of the last state change, as reported in snapshots.
    state_changed_wall: AtomicI64,
}

/// A circuit breaker for one provider.
///
/// Share it behind an [`Arc`]; every method takes `&self`. See the [crate docs](crate) for
/// the life cycle and the synchronization contract.
pub struct CircuitBreaker {
    word: Padded<AtomicU64>,
    consecutive: Padded<TaggedCount>,
    stripes: Stripes,
    half_open_successes: TaggedCount,
    /// Trial calls admitted and not yet settled or given back, of the current half-open
    /// period (the lease holder grants again only when none is in flight, so a settled probe
    /// of an earlier spell is never taken for one of the lease's) and of periods that ended
    /// with calls in flight (a lease holder keeps such a period's lease until they settle,
    /// so nobody probes beside them before the period's end is stored).
    probes_in_flight: ProbeCounts,
    /// The local history branch, bumped by every [`restore`](CircuitBreaker::restore) (which
    /// drops the breaker's own branch for the store's): a version can then come round again,
    /// so a probe's ticket carries the branch's tag, and a probe admitted on a dropped
    /// branch counts in no later period of the same version.
    branch: AtomicU64,
    side: Side,
    last_failure_wall: AtomicI64,
    last_success_wall: AtomicI64,
    /// A success was recorded without reading the clock; the next snapshot stamps it.
    success_unstamped: AtomicBool,
    total_failures: AtomicU64,
    /// Sum of counted successes when the current state began (minus restored successes).
    success_base: AtomicU64,
    jitter_state: AtomicU64,
    window: Option<Window>,
    has_observers: AtomicBool,
    /// Some observer wants every outcome ([`BreakerObserver::wants_outcomes`]): successes
    /// then take the general settle path.
    outcome_observers: AtomicBool,
    /// A fleet coordinator decides the failure-rate trip ([`CircuitBreaker::set_fleet_decides_rate`]).
    fleet_rate: AtomicBool,
    observers: ArcSwap<Vec<Arc<dyn BreakerObserver>>>,
    /// Serializes observer adds and removes (never taken by the hot path).
    observers_lock: Mutex<()>,
    classifier: Arc<dyn Classifier>,
    clock: Arc<dyn Clock>,
    wall_anchor_micros: i64,
    mono_anchor_nanos: u64,
    limits: Limits,
    config: BreakerConfig,
    name: String,
    id: BreakerId,
}

/// The config, pre-digested into the integers the hot path compares against.
struct Limits {
    failure_threshold: u64,
    half_open_max: u64,
    success_threshold: u64,
    slow_nanos: Option<u64>,
    rate: Option<(u64, f64)>,
    recovery_nanos: u64,
    max_open_nanos: u64,
}

/// For a half-open trial call's ticket, the probe mode whose slot or credit it holds.
fn ticket_probe_mode(ticket: Word) -> Option<ProbeMode> {
    (ticket.slots() != 0).then(|| ticket.mode())
}

/// A probe ticket's slot field holds its branch's tag (never 0: 0 marks no probe).
fn branch_tag(branch: u64) -> u64 {
    1 + branch % crate::word::SLOT_MAX
}

/// Spins, then yields: for the cold paths that wait for a transition being written (a few
/// dozen nanoseconds unless its writer was preempted).
fn pause(spins: &mut u32) {
    *spins = spins.saturating_add(1);
    crate::sync::wait_round(*spins);
}

/// How long a hot-path transition spins on a transition being written before giving up.
const HOT_SPINS: u32 = 64;

impl CircuitBreaker {
    /// The breaker's (provider) name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process-unique id carried by this breaker's events.
    pub fn id(&self) -> BreakerId {
        self.id
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    #[inline]
    fn load(&self) -> Word {
        Word(self.word.0.load(Ordering::Acquire))
    }

    #[inline]
    pub(crate) fn clock_now(&self) -> Duration {
        self.clock.now()
    }

    #[inline]
    fn now_nanos(&self) -> u64 {
        duration_to_nanos(self.clock.now())
    }

    /// Wall-clock micros for a clock reading, from the anchor taken at construction.
    fn wall(&self, now_nanos: u64) -> i64 {
        let delta_micros = (i128::from(now_nanos) - i128::from(self.mono_anchor_nanos)) / 1000;
        i64::try_from(i128::from(self.wall_anchor_micros) + delta_micros).unwrap_or(NO_TIME)
    }
}
