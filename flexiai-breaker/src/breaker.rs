//! The breaker: admission, outcome recording, the state machine, manual controls and the
//! synchronization entry points.

use std::error::Error;
use std::fmt;
use std::future::IntoFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering, fence};
use std::time::Duration;

use arc_swap::ArcSwap;
use flexiai_events::{BreakerSnapshot, CircuitState, Timestamp};

use crate::classifier::{Classifier, CountAll, ErrorClass};
use crate::clock::{Clock, SystemClock, duration_to_nanos};
use crate::config::{BreakerConfig, FailurePolicy, MAX_OPEN_MS};
use crate::counters::{Stripes, TaggedCount, Window};
use crate::error::{BreakerError, CallError, Rejected};
use crate::metrics::BreakerMetrics;
use crate::observer::{
    BreakerId, BreakerObserver, Outcome, OutcomeEvent, Transition, TransitionReason,
};
use crate::permit::{NOT_TIMED, Permit};
use crate::word::{SLOT_MAX, Word};

/// Who decides how many trial calls a half-open breaker admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ProbeMode {
    /// This breaker alone: entering half-open opens `half_open_max_calls` probe slots; a slot
    /// comes back when its call succeeds without closing the breaker or is dropped unsettled.
    #[default]
    Local,
    /// A coordinator (flexiai-sync, holding a fleet-wide lease) hands out credits with
    /// [`CircuitBreaker::grant_probes`]; a half-open breaker admits one trial call per credit.
    /// A credit is consumed when its call is settled and given back when the permit is dropped
    /// unsettled. Credits exist only in half-open and are cleared when the breaker leaves it.
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
    observers: ArcSwap<Vec<Arc<dyn BreakerObserver>>>,
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

/// Builds a [`CircuitBreaker`] with a custom clock, classifier, observers or probe mode.
///
/// ```
/// use std::sync::Arc;
/// use flexiai_breaker::{BreakerConfig, CircuitBreaker, ManualClock, ProbeMode};
///
/// let clock = Arc::new(ManualClock::new());
/// let breaker = CircuitBreaker::builder("anthropic")
///     .config(BreakerConfig { failure_threshold: 3, ..BreakerConfig::default() })
///     .clock(clock.clone())
///     .classifier(|e: &(dyn std::error::Error + 'static)| !e.is::<std::fmt::Error>())
///     .probe_mode(ProbeMode::Granted)
///     .build()?;
/// assert_eq!(breaker.config().failure_threshold, 3);
/// # Ok::<(), flexiai_breaker::BreakerError>(())
/// ```
#[must_use]
pub struct BreakerBuilder {
    name: String,
    config: BreakerConfig,
    clock: Option<Arc<dyn Clock>>,
    classifier: Option<Arc<dyn Classifier>>,
    observers: Vec<Arc<dyn BreakerObserver>>,
    probe_mode: ProbeMode,
}

impl fmt::Debug for BreakerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerBuilder")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("clock", &self.clock)
            .field("observers", &self.observers.len())
            .field("probe_mode", &self.probe_mode)
            .finish_non_exhaustive()
    }
}

impl BreakerBuilder {
    /// Uses `config` instead of the default.
    pub fn config(mut self, config: BreakerConfig) -> Self {
        self.config = config;
        self
    }

    /// Uses `clock` instead of [`SystemClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Uses `classifier` instead of [`CountAll`].
    pub fn classifier(mut self, classifier: impl Classifier + 'static) -> Self {
        self.classifier = Some(Arc::new(classifier));
        self
    }

    /// Uses a shared classifier instead of [`CountAll`].
    pub fn shared_classifier(mut self, classifier: Arc<dyn Classifier>) -> Self {
        self.classifier = Some(classifier);
        self
    }

    /// Attaches an observer from the start (more can be added later).
    pub fn observer(mut self, observer: Arc<dyn BreakerObserver>) -> Self {
        self.observers.push(observer);
        self
    }

    /// Starts in `mode` instead of [`ProbeMode::Local`].
    pub fn probe_mode(mut self, mode: ProbeMode) -> Self {
        self.probe_mode = mode;
        self
    }

    /// Validates the name and config and builds the breaker, closed at version 0.
    pub fn build(self) -> Result<CircuitBreaker, BreakerError> {
        flexiai_events::validate_provider_name(&self.name)?;
        self.config.validate()?;
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        let id = BreakerId(NEXT_ID.fetch_add(1, Ordering::Relaxed));
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let c = &self.config;
        let (window, rate) = match &c.failure_policy {
            FailurePolicy::ConsecutiveFailures => (None, None),
            FailurePolicy::FailureRate {
                window_ms,
                buckets,
                minimum_calls,
                failure_rate_threshold,
            } => (
                Some(Window::new(
                    window_ms.saturating_mul(NANOS_PER_MS),
                    *buckets,
                )),
                Some((u64::from(*minimum_calls), *failure_rate_threshold)),
            ),
        };
        let limits = Limits {
            failure_threshold: u64::from(c.failure_threshold),
            half_open_max: u64::from(c.half_open_max_calls),
            success_threshold: u64::from(c.success_threshold),
            slow_nanos: c
                .slow_call_threshold_ms
                .map(|ms| ms.saturating_mul(NANOS_PER_MS)),
            rate,
            recovery_nanos: c.recovery_timeout_ms.saturating_mul(NANOS_PER_MS),
            max_open_nanos: duration_to_nanos(c.max_recovery_timeout()),
        };
        let now = duration_to_nanos(clock.now());
        let wall = Timestamp::now().unix_micros();
        let breaker = CircuitBreaker {
            word: Padded(AtomicU64::new(
                Word::new(0, CircuitState::Closed, self.probe_mode, 0).0,
            )),
            consecutive: Padded(TaggedCount::default()),
            stripes: Stripes::new(),
            half_open_successes: TaggedCount::default(),
            side: Side {
                open_until: AtomicU64::new(0),
                open_streak: AtomicU32::new(0),
                state_since: AtomicU64::new(now),
                state_changed_wall: AtomicI64::new(wall),
            },
            last_failure_wall: AtomicI64::new(NO_TIME),
            last_success_wall: AtomicI64::new(NO_TIME),
            success_unstamped: AtomicBool::new(false),
            total_failures: AtomicU64::new(0),
            success_base: AtomicU64::new(0),
            jitter_state: AtomicU64::new(
                id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ wall.unsigned_abs(),
            ),
            window,
            has_observers: AtomicBool::new(!self.observers.is_empty()),
            observers: ArcSwap::from_pointee(self.observers),
            classifier: self.classifier.unwrap_or_else(|| Arc::new(CountAll)),
            clock,
            wall_anchor_micros: wall,
            mono_anchor_nanos: now,
            limits,
            config: self.config,
            name: self.name,
            id,
        };
        Ok(breaker)
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.load();
        f.debug_struct("CircuitBreaker")
            .field("name", &self.name)
            .field("id", &self.id)
            .field("state", &w.state())
            .field("version", &w.version())
            .field("probe_mode", &w.mode())
            .field("config", &self.config)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// [`CircuitBreaker::acquire_slow`]'s answer, packed into two words: a permit's ticket (`W`
/// clear, as in every ticket) and start time, or a rejection: `W` set, the state, slot count 1
/// if there is a retry-after, and the retry-after in nanoseconds.
#[derive(Clone, Copy)]
struct SlowAdmission {
    word: Word,
    extra: u64,
}

impl SlowAdmission {
    #[inline]
    fn encode(result: Result<Permit<'_>, Rejected>) -> Self {
        match result {
            Ok(permit) => {
                let admission = SlowAdmission {
                    word: permit.ticket,
                    extra: permit.started,
                };
                // Rebuilt by `decode`: nothing to give back here.
                std::mem::forget(permit);
                admission
            }
            Err(Rejected { state, retry_after }) => SlowAdmission {
                word: Word::new(0, state, ProbeMode::Local, u64::from(retry_after.is_some()))
                    .with_writing(),
                extra: retry_after.map_or(0, duration_to_nanos),
            },
        }
    }

    #[inline(always)]
    fn decode(self, breaker: &CircuitBreaker) -> Result<Permit<'_>, Rejected> {
        if self.word.writing() {
            Err(Rejected {
                state: self.word.state(),
                retry_after: (self.word.slots() != 0).then(|| Duration::from_nanos(self.extra)),
            })
        } else {
            Ok(Permit {
                breaker,
                ticket: self.word,
                started: self.extra,
            })
        }
    }
}

/// For a half-open trial call's ticket, the probe mode whose slot or credit it holds.
fn ticket_probe_mode(ticket: Word) -> Option<ProbeMode> {
    (ticket.slots() != 0).then(|| ticket.mode())
}

/// Spins, then yields: for the cold paths that wait for a transition being written (a few
/// dozen nanoseconds unless its writer was preempted).
fn pause(spins: &mut u32) {
    *spins = spins.saturating_add(1);
    if *spins < 64 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

/// How long a hot-path transition spins on a transition being written before giving up.
const HOT_SPINS: u32 = 64;

impl CircuitBreaker {
    /// A breaker named `name` (a provider name: non-empty, no whitespace) with `config`, the
    /// system clock, the [`CountAll`] classifier and no observer.
    pub fn new(name: impl Into<String>, config: BreakerConfig) -> Result<Self, BreakerError> {
        Self::builder(name).config(config).build()
    }

    /// A builder for a breaker named `name`.
    pub fn builder(name: impl Into<String>) -> BreakerBuilder {
        BreakerBuilder {
            name: name.into(),
            config: BreakerConfig::default(),
            clock: None,
            classifier: None,
            observers: Vec::new(),
            probe_mode: ProbeMode::Local,
        }
    }

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

    // ----- hot path ------------------------------------------------------------------------

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

    #[inline]
    fn started(&self) -> u64 {
        match self.limits.slow_nanos {
            Some(_) => self.now_nanos(),
            None => NOT_TIMED,
        }
    }

    /// Asks to make one call.
    ///
    /// Closed or disabled: always admitted. Open: rejected with the time left, unless the
    /// open period is over, in which case the breaker moves to half-open itself and this call
    /// may be the first trial call. Half-open: admitted while a probe slot (or, in
    /// [`ProbeMode::Granted`], a credit) is free. Forced open: rejected.
    ///
    /// Lock-free and allocation-free; in the closed state it is one atomic load and one
    /// uncontended counter increment.
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_>, Rejected> {
        let w = self.load();
        // A transition being written from closed is ordered after this admission.
        if w.is_closed() {
            self.stripes.add(|s| &s.admitted, 1);
            return Ok(self.permit(w.version(), CircuitState::Closed, None));
        }
        self.acquire_slow(w).decode(self)
    }

    #[inline]
    fn permit(&self, version: u64, state: CircuitState, probe: Option<ProbeMode>) -> Permit<'_> {
        let ticket = match probe {
            Some(mode) => Word::new(version, state, mode, 1),
            None => Word::new(version, state, ProbeMode::Local, 0),
        };
        Permit {
            breaker: self,
            ticket,
            started: self.started(),
        }
    }

    fn reject(&self, state: CircuitState, retry_after: Option<Duration>) -> Rejected {
        self.stripes.add(|s| &s.rejected, 1);
        Rejected { state, retry_after }
    }

    /// Every state but closed, out of line. Returns its decision in two registers rather than
    /// a `Result` in memory, so that the inlined fast path's permit is not merged with it
    /// through the stack.
    #[cold]
    #[inline(never)]
    fn acquire_slow(&self, w: Word) -> SlowAdmission {
        SlowAdmission::encode(self.acquire_other(w))
    }

    #[inline]
    fn acquire_other(&self, mut w: Word) -> Result<Permit<'_>, Rejected> {
        loop {
            match w.state() {
                CircuitState::Closed | CircuitState::Disabled => {
                    self.stripes.add(|s| &s.admitted, 1);
                    return Ok(self.permit(w.version(), w.state(), None));
                }
                CircuitState::ForcedOpen => return Err(self.reject(CircuitState::ForcedOpen, None)),
                CircuitState::Open => {
                    if w.writing() {
                        return Err(self.reject(CircuitState::Open, None));
                    }
                    let Some(deadline) = self.read_deadline(w) else {
                        w = self.load();
                        continue;
                    };
                    let now = self.now_nanos();
                    if now < deadline {
                        let left = Duration::from_nanos(deadline - now);
                        return Err(self.reject(CircuitState::Open, Some(left)));
                    }
                    let take = w.mode() == ProbeMode::Local;
                    let entered = self.transition_from(
                        w.version(),
                        CircuitState::Open,
                        CircuitState::HalfOpen,
                        TransitionReason::RecoveryTimeoutElapsed,
                        take,
                    );
                    if let (Some(t), true) = (entered, take) {
                        // The first probe slot was taken inside the transition itself.
                        self.stripes.add(|s| &s.admitted, 1);
                        return Ok(self.permit(
                            t.version,
                            CircuitState::HalfOpen,
                            Some(ProbeMode::Local),
                        ));
                    }
                    w = self.load();
                    if w.writing() {
                        // Someone else's transition is being written; this call is ordered
                        // before it.
                        return Err(self.reject(w.state(), None));
                    }
                }
                CircuitState::HalfOpen => {
                    if w.writing() || w.slots() == 0 {
                        return Err(self.reject(CircuitState::HalfOpen, None));
                    }
                    let next = w.with_slots(w.slots() - 1);
                    match self.word.0.compare_exchange_weak(
                        w.0,
                        next.0,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => {
                            self.stripes.add(|s| &s.admitted, 1);
                            return Ok(self.permit(
                                w.version(),
                                CircuitState::HalfOpen,
                                Some(w.mode()),
                            ));
                        }
                        Err(actual) => w = Word(actual),
                    }
                }
            }
        }
    }

    /// The open deadline belonging to word `w`, or `None` if the word changed meanwhile.
    fn read_deadline(&self, w: Word) -> Option<u64> {
        let deadline = self.side.open_until.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        (self.word.0.load(Ordering::Relaxed) == w.0).then_some(deadline)
    }

    /// The closed-state success of a permit with `ticket`, recorded entirely inline when
    /// nothing else needs to see it: consecutive policy (no window to update), no slow-call
    /// timing (checked by the caller) and no observer. Returns `false`, having done nothing,
    /// when [`settle`](Self::settle) must record it instead. Does exactly what `settle`'s
    /// closed branch does, minus the parts that cannot apply.
    #[inline]
    pub(crate) fn settle_closed_success(&self, ticket: Word) -> bool {
        if !ticket.is_closed()
            || self.window.is_some()
            || self.has_observers.load(Ordering::Acquire)
        {
            return false;
        }
        let w = self.load();
        self.stripes.add(|s| &s.successes, 1);
        // Same version and no transition being written: it counts for this closed state.
        if w.same_version_unwritten(ticket) {
            let v = ticket.version();
            if !self.consecutive.0.is_zero_or_stale(v) {
                self.reset_run(v);
            }
            // Stamped lazily by the next snapshot: no clock read per success.
            if !self.success_unstamped.load(Ordering::Relaxed) {
                self.success_unstamped.store(true, Ordering::Relaxed);
            }
            self.stripes.add(|s| &s.counted_successes, 1);
        }
        true
    }

    #[cold]
    fn reset_run(&self, v: u64) {
        let _ = self.consecutive.0.update(v, |_| 0);
    }

    /// Records a settled permit's outcome (`ticket` and `started` as in [`Permit`]).
    pub(crate) fn settle(&self, ticket: Word, started: u64, outcome: Outcome) {
        let mut outcome = outcome;
        let mut slow = false;
        let mut elapsed = None;
        if let (true, Some(limit)) = (started != NOT_TIMED, self.limits.slow_nanos) {
            let took = self.now_nanos().saturating_sub(started);
            elapsed = Some(Duration::from_nanos(took));
            if outcome == Outcome::Success && took > limit {
                outcome = Outcome::Failure;
                slow = true;
            }
        }
        let counted = match outcome {
            Outcome::Success => self.record_success(ticket),
            Outcome::Failure => self.record_failure(ticket),
        };
        if self.has_observers.load(Ordering::Acquire) {
            let event = OutcomeEvent {
                breaker: self.id,
                outcome,
                slow,
                counted,
                state: ticket.state(),
                version: ticket.version(),
                elapsed,
            };
            for o in self.observers.load().iter() {
                o.on_outcome(&event);
            }
        }
    }

    fn record_success(&self, ticket: Word) -> bool {
        self.stripes.add(|s| &s.successes, 1);
        let v = ticket.version();
        match ticket.state() {
            CircuitState::Closed => {
                let w = self.load();
                if w.version() != v || w.writing() {
                    return false;
                }
                match &self.window {
                    None => {
                        if !self.consecutive.0.is_zero_or_stale(v) {
                            let _ = self.consecutive.0.update(v, |_| 0);
                        }
                        // Stamped lazily by the next snapshot: no clock read per success.
                        if !self.success_unstamped.load(Ordering::Relaxed) {
                            self.success_unstamped.store(true, Ordering::Relaxed);
                        }
                    }
                    Some(window) => {
                        let now = self.now_nanos();
                        window.record(now, 0, 1);
                        self.last_success_wall
                            .store(self.wall(now), Ordering::Relaxed);
                    }
                }
                self.stripes.add(|s| &s.counted_successes, 1);
                true
            }
            CircuitState::HalfOpen => {
                let Some(n) = self.half_open_successes.update(v, |n| n + 1) else {
                    return false;
                };
                let now = self.now_nanos();
                self.last_success_wall
                    .store(self.wall(now), Ordering::Relaxed);
                if n >= self.limits.success_threshold {
                    self.transition_from(
                        v,
                        CircuitState::HalfOpen,
                        CircuitState::Closed,
                        TransitionReason::ProbeSucceeded,
                        false,
                    );
                } else if ticket_probe_mode(ticket) == Some(ProbeMode::Local) {
                    self.return_slot(v, ProbeMode::Local);
                }
                true
            }
            _ => false,
        }
    }

    fn record_failure(&self, ticket: Word) -> bool {
        self.total_failures.fetch_add(1, Ordering::Relaxed);
        let now = self.now_nanos();
        self.last_failure_wall
            .store(self.wall(now), Ordering::Relaxed);
        let v = ticket.version();
        match ticket.state() {
            CircuitState::Closed => {
                let w = self.load();
                if w.version() != v || w.writing() {
                    return false;
                }
                self.count_closed_failures(v, now, 1, 0, false)
            }
            CircuitState::HalfOpen => {
                if self.half_open_successes.update(v, |n| n).is_none() {
                    return false;
                }
                self.transition_from(
                    v,
                    CircuitState::HalfOpen,
                    CircuitState::Open,
                    TransitionReason::ProbeFailed,
                    false,
                );
                true
            }
            _ => false,
        }
    }

    /// Adds failures (and, for absorbed batches, successes) to the closed state at version
    /// `v` and opens the breaker if that crosses the threshold. Returns whether they counted.
    fn count_closed_failures(
        &self,
        v: u64,
        now: u64,
        failures: u64,
        successes: u64,
        remote: bool,
    ) -> bool {
        let trip = match (&self.window, self.limits.rate) {
            (Some(window), Some((minimum, threshold))) => {
                window.record(now, failures, failures.saturating_add(successes));
                let (f, calls) = window.totals(now);
                #[allow(clippy::cast_precision_loss)]
                let tripped = calls >= minimum && (f as f64) >= threshold * (calls as f64);
                tripped.then_some(TransitionReason::FailureRate)
            }
            _ => {
                let Some(n) = self.consecutive.0.update(v, |c| {
                    let base = if successes > 0 { 0 } else { c };
                    base.saturating_add(failures)
                }) else {
                    return false;
                };
                (n >= self.limits.failure_threshold).then_some(TransitionReason::FailureThreshold)
            }
        };
        if let Some(reason) = trip {
            let reason = if remote {
                TransitionReason::RemoteFailures
            } else {
                reason
            };
            self.transition_from(v, CircuitState::Closed, CircuitState::Open, reason, false);
        }
        true
    }

    /// Gives a probe slot back after an unsettled (or ignored) half-open permit.
    pub(crate) fn release_probe(&self, ticket: Word) {
        if let Some(mode) = ticket_probe_mode(ticket) {
            self.return_slot(ticket.version(), mode);
        }
    }

    fn return_slot(&self, version: u64, mode: ProbeMode) {
        let cap = match mode {
            ProbeMode::Local => self.limits.half_open_max,
            ProbeMode::Granted => SLOT_MAX,
        };
        let mut w = self.load();
        loop {
            if w.writing()
                || w.version() != version
                || w.state() != CircuitState::HalfOpen
                || w.mode() != mode
                || w.slots() >= cap
            {
                return;
            }
            match self.word.0.compare_exchange_weak(
                w.0,
                w.with_slots(w.slots() + 1).0,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => w = Word(actual),
            }
        }
    }

    pub(crate) fn classify(&self, error: &(dyn Error + 'static)) -> ErrorClass {
        self.classifier.classify(error)
    }

    /// Runs `fut` if the breaker admits it, and records its outcome: `Ok` is a success, an
    /// `Err` goes through the breaker's [`Classifier`]. If the returned future is dropped
    /// before `fut` completes, nothing is counted and a probe slot is given back.
    ///
    /// ```
    /// use flexiai_breaker::{BreakerConfig, CallError, CircuitBreaker};
    ///
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// let breaker = CircuitBreaker::new("openai", BreakerConfig::default())?;
    /// let answer = breaker.call(async { Ok::<_, std::io::Error>(42) }).await;
    /// assert!(matches!(answer, Ok(42)));
    /// let failed = breaker.call(async { Err::<u32, _>(std::io::Error::other("503")) }).await;
    /// assert!(matches!(failed, Err(CallError::Inner(_))));
    /// assert_eq!(breaker.metrics().failure_count, 1);
    /// # Ok::<(), flexiai_breaker::BreakerError>(())
    /// # }).unwrap();
    /// ```
    pub async fn call<F, T, E>(&self, fut: F) -> Result<T, CallError<E>>
    where
        F: IntoFuture<Output = Result<T, E>>,
        E: Error + 'static,
    {
        let permit = self.try_acquire()?;
        let result = fut.await;
        permit.record(&result);
        result.map_err(CallError::Inner)
    }

    /// Like [`call`](Self::call), with `classify` deciding how an error counts instead of the
    /// breaker's classifier; works for any error type.
    pub async fn call_with<F, T, E, C>(&self, classify: C, fut: F) -> Result<T, CallError<E>>
    where
        F: IntoFuture<Output = Result<T, E>>,
        C: FnOnce(&E) -> ErrorClass,
    {
        let permit = self.try_acquire()?;
        match fut.await {
            Ok(v) => {
                permit.success();
                Ok(v)
            }
            Err(e) => {
                permit.record_class(classify(&e));
                Err(CallError::Inner(e))
            }
        }
    }

    // ----- transitions ---------------------------------------------------------------------

    /// Takes the `W` bit. With `expect`, only from exactly that version and state, spinning a
    /// little on a concurrent writer and then giving up (its transition supersedes ours);
    /// without, from whatever the current word is, waiting as long as needed.
    fn begin(&self, expect: Option<(u64, CircuitState)>) -> Option<Word> {
        let mut spins = 0;
        loop {
            let w = self.load();
            if w.writing() {
                if expect.is_some() && spins >= HOT_SPINS {
                    return None;
                }
                pause(&mut spins);
                continue;
            }
            if let Some((v, s)) = expect
                && (w.version() != v || w.state() != s)
            {
                return None;
            }
            if self
                .word
                .0
                .compare_exchange_weak(
                    w.0,
                    w.with_writing().0,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                // Orders the side-field stores after the W bit for seqlock readers.
                fence(Ordering::Release);
                return Some(w);
            }
        }
    }

    fn publish(&self, w: Word) {
        self.word.0.store(w.0, Ordering::Release);
    }

    /// A hot-path transition from exactly (`version`, `from`); `None` if the breaker moved on.
    fn transition_from(
        &self,
        version: u64,
        from: CircuitState,
        to: CircuitState,
        reason: TransitionReason,
        take_probe: bool,
    ) -> Option<Transition> {
        let old = self.begin(Some((version, from)))?;
        let t = self.commit(old, to, reason, take_probe);
        self.emit_transition(&t);
        Some(t)
    }

    /// Writes a local transition out of `old` (whose `W` bit the caller holds) and publishes
    /// the new word.
    fn commit(
        &self,
        old: Word,
        to: CircuitState,
        reason: TransitionReason,
        take_probe: bool,
    ) -> Transition {
        self.commit_with(old, to, reason, take_probe, None)
    }

    /// [`commit`](Self::commit), with `fixed_open` (ns) as the exact open period of a
    /// transition to `Open` instead of the backoff-and-jitter one; the backoff streak is then
    /// left as it is.
    fn commit_with(
        &self,
        old: Word,
        to: CircuitState,
        reason: TransitionReason,
        take_probe: bool,
        fixed_open: Option<u64>,
    ) -> Transition {
        let now = self.now_nanos();
        let version = old
            .version()
            .saturating_add(1)
            .min(crate::word::MAX_VERSION);
        let mut open_for = None;
        match to {
            CircuitState::Open => {
                let d = if let Some(d) = fixed_open {
                    d
                } else {
                    let streak = if reason == TransitionReason::ProbeFailed {
                        self.side
                            .open_streak
                            .load(Ordering::Relaxed)
                            .saturating_add(1)
                    } else {
                        0
                    };
                    self.side.open_streak.store(streak, Ordering::Relaxed);
                    self.open_duration(streak)
                };
                self.side
                    .open_until
                    .store(now.saturating_add(d), Ordering::Relaxed);
                open_for = Some(Duration::from_nanos(d));
            }
            CircuitState::Closed | CircuitState::Disabled => {
                self.side.open_streak.store(0, Ordering::Relaxed);
            }
            CircuitState::HalfOpen | CircuitState::ForcedOpen => {}
        }
        self.reset_counts(version, 0, 0, now);
        self.side.state_since.store(now, Ordering::Relaxed);
        self.side
            .state_changed_wall
            .store(self.wall(now), Ordering::Relaxed);
        let slots = self
            .entry_slots(to, old.mode())
            .saturating_sub(u64::from(take_probe));
        self.publish(Word::new(version, to, old.mode(), slots));
        Transition {
            breaker: self.id,
            from: old.state(),
            to,
            version,
            reason,
            at: Timestamp::from_unix_micros(self.wall(now)).unwrap_or_else(Timestamp::now),
            open_for,
        }
    }

    fn entry_slots(&self, state: CircuitState, mode: ProbeMode) -> u64 {
        match (state, mode) {
            (CircuitState::HalfOpen, ProbeMode::Local) => self.limits.half_open_max,
            _ => 0,
        }
    }

    fn reset_counts(&self, version: u64, failures: u64, successes: u64, now: u64) {
        self.consecutive.0.reset(version, failures);
        self.half_open_successes.reset(version, 0);
        // The state's successes are counted from here: the stripes are only ever written by
        // their owning threads, so they are rebased rather than zeroed.
        self.success_base.store(
            self.stripes
                .sum(|s| &s.counted_successes)
                .wrapping_sub(successes),
            Ordering::Relaxed,
        );
        if let Some(window) = &self.window {
            window.clear();
            if failures > 0 || successes > 0 {
                window.record(now, failures, failures.saturating_add(successes));
            }
        }
    }

    /// The open period after `streak` failed trials in a row: the recovery timeout times the
    /// backoff factor per failed trial, capped, then shortened by up to the jitter ratio.
    fn open_duration(&self, streak: u32) -> u64 {
        let base = self.limits.recovery_nanos;
        let cap = self.limits.max_open_nanos.max(base);
        let factor = self.config.backoff_multiplier;
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let mut d = if factor > 1.0 && streak > 0 {
            let exp = i32::try_from(streak.min(1024)).unwrap_or(1024);
            let scaled = base as f64 * factor.powi(exp);
            if scaled >= cap as f64 {
                cap
            } else {
                scaled as u64
            }
        } else {
            base
        };
        if self.config.jitter_ratio > 0.0 {
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            {
                let cut = d as f64 * self.config.jitter_ratio * self.next_unit_random();
                d = d.saturating_sub(cut as u64);
            }
        }
        d.max(1)
    }

    /// A number in [0, 1) from a splitmix64 stream: plenty for jitter, no dependency.
    fn next_unit_random(&self) -> f64 {
        let mut z = self
            .jitter_state
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        #[allow(clippy::cast_precision_loss)]
        let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
        unit
    }

    fn emit_transition(&self, t: &Transition) {
        tracing::info!(
            breaker = %self.name,
            from = %t.from,
            to = %t.to,
            version = t.version,
            reason = ?t.reason,
            "circuit breaker transition"
        );
        if self.has_observers.load(Ordering::Acquire) {
            for o in self.observers.load().iter() {
                o.on_transition(t);
            }
        }
    }

    /// Wall-clock micros for a clock reading, from the anchor taken at construction.
    fn wall(&self, now_nanos: u64) -> i64 {
        let delta_micros = (i128::from(now_nanos) - i128::from(self.mono_anchor_nanos)) / 1000;
        i64::try_from(i128::from(self.wall_anchor_micros) + delta_micros).unwrap_or(NO_TIME)
    }

    fn manual(&self, to: CircuitState, reason: TransitionReason) -> u64 {
        let Some(old) = self.begin(None) else {
            return self.version();
        };
        let t = self.commit(old, to, reason, false);
        self.emit_transition(&t);
        t.version
    }

    /// Isolates the provider: every call is rejected until [`reset`](Self::reset) (or a
    /// remote snapshot) says otherwise. A transition like any other: the version goes up and
    /// observers hear of it, even if the breaker was already forced open. Returns the new
    /// version.
    pub fn force_open(&self) -> u64 {
        self.manual(CircuitState::ForcedOpen, TransitionReason::ManualForceOpen)
    }

    /// Bypasses the breaker: every call is admitted and nothing is counted, until
    /// [`reset`](Self::reset). A transition; returns the new version.
    pub fn disable(&self) -> u64 {
        self.manual(CircuitState::Disabled, TransitionReason::ManualDisable)
    }

    /// Closes the breaker and clears its counts and backoff. A transition; returns the new
    /// version.
    pub fn reset(&self) -> u64 {
        self.manual(CircuitState::Closed, TransitionReason::ManualReset)
    }

    /// Opens the breaker for exactly `period`, as a provider's `Retry-After` asks: "do not
    /// call me for this long". Returns the version of the transition it made, or `None` if it
    /// changed nothing.
    ///
    /// `period` is clamped to at least 1 ms and at most the configured cap on open periods,
    /// [`BreakerConfig::max_recovery_timeout`] (`max_recovery_timeout_ms`, never below
    /// `recovery_timeout_ms`, never above [`MAX_OPEN_MS`](crate::MAX_OPEN_MS)), so a
    /// `Retry-After` never keeps the provider out longer than the longest backoff would. It
    /// is used as it is: not multiplied by the backoff factor, not shortened by jitter.
    ///
    /// By state:
    ///
    /// * **Closed or half-open**: moves to `Open` for `period`, a local transition like any
    ///   other: the version goes up by one, observers get a [`Transition`] with
    ///   [`TransitionReason::RetryAfter`] and `open_for: Some(period)`, and counts are
    ///   cleared. Trial calls running in a half-open period are settled against the old
    ///   version and count nothing. When the period is over the breaker turns half-open by
    ///   itself, as after any open period (after `period`, not after the recovery timeout).
    /// * **Open**: the open period is only ever extended. If now + `period` ends later than
    ///   the current open period, that becomes the new end, again as a transition (open to
    ///   open, version + 1, [`TransitionReason::RetryAfter`]) so that the fleet learns of it;
    ///   otherwise nothing happens and `None` is returned. A `Retry-After` never shortens an
    ///   open period set by failures, a backoff or an earlier `Retry-After`.
    /// * **Forced open or disabled**: nothing happens (`None`): an operator's decision wins
    ///   over the provider's hint.
    ///
    /// The backoff streak ([`BreakerMetrics::consecutive_opens`]) is left as it is: a
    /// `Retry-After` is neither a failed trial (which lengthens the next open period) nor a
    /// recovery (which clears it). From closed the streak is zero anyway; from half-open or
    /// open, a trial that fails after this period backs off from where the streak was. (A
    /// worker that applies the resulting snapshot while half-open counts it as a failed trial
    /// for its own backoff, as [`apply_remote`](Self::apply_remote) does for any reopening.)
    ///
    /// The snapshot's `open_remaining_ms` carries the time left, so a synchronized fleet
    /// applies the same remaining time on every worker ([`apply_remote`](Self::apply_remote)).
    /// Like the manual controls, this waits for a transition being written by another thread
    /// instead of giving way to it; it is not meant for the hot path's every call (one call
    /// per `Retry-After` received is fine).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use flexiai_breaker::{BreakerConfig, CircuitBreaker, CircuitState, ManualClock};
    ///
    /// let clock = Arc::new(ManualClock::new());
    /// let breaker = CircuitBreaker::builder("openai").clock(clock.clone()).build()?;
    /// assert_eq!(breaker.open_for(Duration::from_secs(10)), Some(1));
    /// let rejected = breaker.try_acquire().unwrap_err();
    /// assert_eq!(rejected.retry_after, Some(Duration::from_secs(10)));
    /// // A shorter Retry-After does not shorten the open period.
    /// assert_eq!(breaker.open_for(Duration::from_secs(3)), None);
    /// clock.advance(Duration::from_secs(10));
    /// assert_eq!(breaker.state(), CircuitState::HalfOpen);
    /// # Ok::<(), flexiai_breaker::BreakerError>(())
    /// ```
    ///
    /// [`BreakerConfig::max_recovery_timeout`]: crate::BreakerConfig::max_recovery_timeout
    /// [`BreakerMetrics::consecutive_opens`]: crate::BreakerMetrics::consecutive_opens
    pub fn open_for(&self, period: Duration) -> Option<u64> {
        let nanos = duration_to_nanos(period)
            .min(self.limits.max_open_nanos)
            .max(NANOS_PER_MS);
        // Cheap checks without the W bit, so that a burst of 429s on a breaker already open
        // long enough does not stall anyone; decided again under W below.
        let w = self.load();
        match w.state() {
            CircuitState::ForcedOpen | CircuitState::Disabled => return None,
            CircuitState::Open if !w.writing() => {
                if let Some(deadline) = self.read_deadline(w)
                    && self.now_nanos().saturating_add(nanos) <= deadline
                {
                    return None;
                }
            }
            _ => {}
        }
        let old = self.begin(None)?;
        let keep = match old.state() {
            CircuitState::ForcedOpen | CircuitState::Disabled => true,
            // Only the W holder writes `open_until`, so this read is exact.
            CircuitState::Open => {
                self.now_nanos().saturating_add(nanos)
                    <= self.side.open_until.load(Ordering::Relaxed)
            }
            CircuitState::Closed | CircuitState::HalfOpen => false,
        };
        if keep {
            // Nothing to do: put the word back untouched.
            self.publish(old);
            return None;
        }
        let t = self.commit_with(
            old,
            CircuitState::Open,
            TransitionReason::RetryAfter,
            false,
            Some(nanos),
        );
        self.emit_transition(&t);
        Some(t.version)
    }

    /// Performs the time-driven transition if it is due (open period over: open to
    /// half-open) and returns the current state. [`state`](Self::state),
    /// [`metrics`](Self::metrics) and [`snapshot`](Self::snapshot) call it, so an open
    /// breaker reports half-open as soon as its time is up, even if no call came.
    pub fn poll(&self) -> CircuitState {
        let w = self.load();
        if w.state() == CircuitState::Open
            && !w.writing()
            && let Some(deadline) = self.read_deadline(w)
            && self.now_nanos() >= deadline
        {
            self.transition_from(
                w.version(),
                CircuitState::Open,
                CircuitState::HalfOpen,
                TransitionReason::RecoveryTimeoutElapsed,
                false,
            );
        }
        self.load().state()
    }

    /// The current state, after any due time-driven transition (see [`poll`](Self::poll)).
    pub fn state(&self) -> CircuitState {
        self.poll()
    }

    /// The current version: the number of this provider's transitions, fleet-wide once
    /// synchronized.
    pub fn version(&self) -> u64 {
        self.load().version()
    }

    // ----- observers and probe mode --------------------------------------------------------

    /// Attaches an observer; it hears of every later transition and outcome. Readers on the
    /// hot path are never blocked by this (the list is swapped atomically).
    pub fn add_observer(&self, observer: Arc<dyn BreakerObserver>) {
        self.observers.rcu(|list| {
            let mut next = Vec::with_capacity(list.len() + 1);
            next.extend(list.iter().cloned());
            next.push(Arc::clone(&observer));
            next
        });
        self.has_observers.store(true, Ordering::Release);
    }

    /// Detaches an observer previously added (compared by pointer). Returns whether it was
    /// attached.
    pub fn remove_observer(&self, observer: &Arc<dyn BreakerObserver>) -> bool {
        let mut found = false;
        let target = Arc::as_ptr(observer).cast::<()>();
        let after = self.observers.rcu(|list| {
            found = false;
            list.iter()
                .filter(|o| {
                    let same = std::ptr::eq(Arc::as_ptr(o).cast::<()>(), target);
                    found |= same;
                    !same
                })
                .cloned()
                .collect::<Vec<_>>()
        });
        let _ = after;
        self.has_observers
            .store(!self.observers.load().is_empty(), Ordering::Release);
        found
    }

    /// Current probe mode.
    pub fn probe_mode(&self) -> ProbeMode {
        self.load().mode()
    }

    /// Switches the probe mode. Not a transition (the version does not change). If the
    /// breaker is half-open, its probe budget is reset for the new mode: full local slots for
    /// `Local`, no credits for `Granted`; trial calls already running under the old mode
    /// finish but give nothing back to the new budget.
    pub fn set_probe_mode(&self, mode: ProbeMode) {
        let mut spins = 0;
        loop {
            let w = self.load();
            if w.writing() {
                pause(&mut spins);
                continue;
            }
            if w.mode() == mode {
                return;
            }
            let mut next = w.with_mode(mode);
            if w.state() == CircuitState::HalfOpen {
                next = next.with_slots(self.entry_slots(CircuitState::HalfOpen, mode));
            }
            if self
                .word
                .0
                .compare_exchange_weak(w.0, next.0, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return;
            }
        }
    }

    /// Gives a half-open breaker in [`ProbeMode::Granted`] `n` more probe credits (capped at
    /// 4095) and returns the credits now available. Does nothing and returns 0 in any other
    /// state or mode: credits granted for a half-open period that has ended are void.
    pub fn grant_probes(&self, n: u32) -> u32 {
        self.grant(None, n)
    }

    /// Like [`grant_probes`](Self::grant_probes), but only while the breaker is still in the
    /// half-open period that created `version`: a coordinator that won its lease for that
    /// period cannot hand credits to a later one by mistake.
    pub fn grant_probes_at(&self, version: u64, n: u32) -> u32 {
        self.grant(Some(version), n)
    }

    fn grant(&self, version: Option<u64>, n: u32) -> u32 {
        let mut spins = 0;
        loop {
            let w = self.load();
            if w.writing() {
                pause(&mut spins);
                continue;
            }
            if w.state() != CircuitState::HalfOpen
                || w.mode() != ProbeMode::Granted
                || version.is_some_and(|v| v != w.version())
            {
                return 0;
            }
            let slots = w.slots().saturating_add(u64::from(n)).min(SLOT_MAX);
            if self
                .word
                .0
                .compare_exchange_weak(
                    w.0,
                    w.with_slots(slots).0,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
            {
                return u32::try_from(slots).unwrap_or(u32::MAX);
            }
        }
    }

    /// Probe credits available (half-open in [`ProbeMode::Granted`]); 0 otherwise.
    pub fn probe_credits(&self) -> u32 {
        let w = self.load();
        if w.state() == CircuitState::HalfOpen && w.mode() == ProbeMode::Granted {
            u32::try_from(w.slots()).unwrap_or(u32::MAX)
        } else {
            0
        }
    }

    // ----- synchronization -----------------------------------------------------------------

    /// Counts outcomes that other workers recorded, so the fleet trips together.
    ///
    /// Only a closed breaker absorbs; in every other state the counts are dropped (half-open
    /// trials are decided by whoever runs them and arrive as snapshots). Under the
    /// consecutive policy a batch is read as all its successes first, then all its failures:
    /// any success resets the run, then the failures extend it. Under the failure-rate policy
    /// both go into the current window slice. If this reaches the threshold the breaker opens
    /// with [`TransitionReason::RemoteFailures`], a local transition (version + 1, observers
    /// told). Absorbed outcomes are never reported as outcome events, and do not change
    /// totals or last-failure times. Returns whether the breaker opened.
    pub fn absorb_remote_outcomes(&self, failures: u64, successes: u64) -> bool {
        if failures == 0 && successes == 0 {
            return false;
        }
        let mut spins = 0;
        let w = loop {
            let w = self.load();
            if !w.writing() {
                break w;
            }
            pause(&mut spins);
        };
        if !w.is_closed() {
            return false;
        }
        let before = w.version();
        if successes > 0 {
            self.stripes.add(|s| &s.counted_successes, successes);
        }
        let now = self.now_nanos();
        self.count_closed_failures(before, now, failures, successes, true);
        let after = self.load();
        after.version() != before && after.state() == CircuitState::Open
    }

    /// A snapshot for the store: state, version, counts, the open time left, and wall-clock
    /// times derived from this worker's clock. Performs a due time-driven transition first.
    ///
    /// `last_success_time` is precise when the success path reads the clock anyway (half-open
    /// trials, the failure-rate policy, slow-call detection); under the consecutive policy a
    /// closed breaker records successes without a clock read, and the first snapshot (or
    /// metrics read) after them stamps the time instead, late by at most the interval between
    /// snapshots.
    pub fn snapshot(&self) -> BreakerSnapshot {
        self.poll();
        let view = self.read_consistent();
        let mut snap = BreakerSnapshot::new(view.state, view.version);
        snap.failure_count = view.failure_count;
        snap.success_count = view.success_count;
        snap.last_failure_time = timestamp(view.last_failure);
        snap.last_success_time = timestamp(view.last_success);
        snap.state_changed_at = timestamp(view.changed_wall);
        snap.open_remaining_ms = view
            .open_remaining
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        snap
    }

    /// Replaces this breaker's state with `snapshot`, whatever its version: for start-up
    /// hydration and for a worker that lost a compare-and-set to the store. The local version
    /// becomes the snapshot's (capped at [`MAX_VERSION`](crate::MAX_VERSION)); no transition
    /// event is emitted. See [`apply_remote`](Self::apply_remote) for how fields are read.
    pub fn restore(&self, snapshot: &BreakerSnapshot) {
        if let Some(old) = self.begin(None) {
            self.install(old, snapshot);
        }
    }

    /// Applies a snapshot from another worker if, and only if, its version is higher than
    /// this breaker's; returns whether it did. Nothing is emitted: the transition was
    /// announced by the worker that made it.
    ///
    /// The state, version and counts are taken as they are (failure count as the consecutive
    /// run or as window failures, success count as the state's successes). For `Open` the
    /// local deadline is now + `open_remaining_ms` (the full recovery timeout if absent, as
    /// from a Python writer): wall clocks are never compared. For `HalfOpen` the probe budget
    /// starts afresh (full local slots, or no credits in granted mode). Trial calls admitted
    /// before are settled against the old version and count nothing.
    pub fn apply_remote(&self, snapshot: &BreakerSnapshot) -> bool {
        if snapshot.version <= self.version() {
            return false;
        }
        let Some(old) = self.begin(None) else {
            return false;
        };
        if snapshot.version <= old.version() {
            // Lost a race with another apply; put the word back untouched.
            self.publish(old);
            return false;
        }
        self.install(old, snapshot);
        true
    }

    fn install(&self, old: Word, snap: &BreakerSnapshot) {
        let now = self.now_nanos();
        let state = snap.state;
        let version = snap.version.min(crate::word::MAX_VERSION);
        match state {
            CircuitState::Open => {
                let remaining = snap
                    .open_remaining_ms
                    .map_or(self.limits.recovery_nanos, |ms| {
                        ms.min(MAX_OPEN_MS).saturating_mul(NANOS_PER_MS)
                    });
                self.side
                    .open_until
                    .store(now.saturating_add(remaining), Ordering::Relaxed);
                if old.state() == CircuitState::HalfOpen {
                    // The fleet's trial failed: back off as if ours had.
                    let s = self.side.open_streak.load(Ordering::Relaxed);
                    self.side
                        .open_streak
                        .store(s.saturating_add(1), Ordering::Relaxed);
                }
            }
            CircuitState::Closed | CircuitState::Disabled => {
                self.side.open_streak.store(0, Ordering::Relaxed);
            }
            CircuitState::HalfOpen | CircuitState::ForcedOpen => {}
        }
        let (state_successes, probe_successes) = if state == CircuitState::HalfOpen {
            (0, snap.success_count)
        } else {
            (snap.success_count, 0)
        };
        self.reset_counts(version, snap.failure_count, state_successes, now);
        self.half_open_successes.reset(version, probe_successes);
        self.side.state_since.store(now, Ordering::Relaxed);
        self.side.state_changed_wall.store(
            snap.state_changed_at
                .map_or_else(|| self.wall(now), Timestamp::unix_micros),
            Ordering::Relaxed,
        );
        self.last_failure_wall.store(
            snap.last_failure_time
                .map_or(NO_TIME, Timestamp::unix_micros),
            Ordering::Relaxed,
        );
        self.last_success_wall.store(
            snap.last_success_time
                .map_or(NO_TIME, Timestamp::unix_micros),
            Ordering::Relaxed,
        );
        self.success_unstamped.store(false, Ordering::Relaxed);
        self.publish(Word::new(
            version,
            state,
            old.mode(),
            self.entry_slots(state, old.mode()),
        ));
    }

    // ----- reading -------------------------------------------------------------------------

    /// Reads the word and the side fields as one consistent view (seqlock read).
    fn read_consistent(&self) -> View {
        let mut spins = 0;
        loop {
            let w = self.load();
            if w.writing() {
                pause(&mut spins);
                continue;
            }
            let now = self.now_nanos();
            if self.success_unstamped.swap(false, Ordering::Relaxed) {
                self.last_success_wall
                    .store(self.wall(now), Ordering::Relaxed);
            }
            let open_until = self.side.open_until.load(Ordering::Relaxed);
            let since = self.side.state_since.load(Ordering::Relaxed);
            let changed_wall = self.side.state_changed_wall.load(Ordering::Relaxed);
            let streak = self.side.open_streak.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            let again = self.load();
            // Slot changes do not touch side fields; anything else means a writer got in.
            if again.with_slots(0) != w.with_slots(0) {
                continue;
            }
            let state = w.state();
            let (failure_count, success_count, window_rate) = match &self.window {
                Some(window) if state == CircuitState::Closed => {
                    let (f, c) = window.totals(now);
                    #[allow(clippy::cast_precision_loss)]
                    let rate = if c == 0 { 0.0 } else { f as f64 / c as f64 };
                    (f, c - f, Some(rate))
                }
                _ => (
                    if state == CircuitState::Closed {
                        self.consecutive.0.get()
                    } else {
                        0
                    },
                    if state == CircuitState::HalfOpen {
                        self.half_open_successes.get()
                    } else {
                        self.stripes
                            .sum(|s| &s.counted_successes)
                            .wrapping_sub(self.success_base.load(Ordering::Relaxed))
                    },
                    None,
                ),
            };
            return View {
                state,
                version: w.version(),
                mode: w.mode(),
                slots: w.slots(),
                failure_count,
                success_count,
                window_rate,
                open_remaining: (state == CircuitState::Open)
                    .then(|| Duration::from_nanos(open_until.saturating_sub(now))),
                time_in_state: Duration::from_nanos(now.saturating_sub(since)),
                changed_wall,
                last_failure: self.last_failure_wall.load(Ordering::Relaxed),
                last_success: self.last_success_wall.load(Ordering::Relaxed),
                streak,
            };
        }
    }

    /// Current counters and state (performs a due time-driven transition first).
    pub fn metrics(&self) -> BreakerMetrics {
        self.poll();
        let view = self.read_consistent();
        let total_successes = self.stripes.sum(|s| &s.successes);
        let total_failures = self.total_failures.load(Ordering::Relaxed);
        #[allow(clippy::cast_precision_loss)]
        let failure_rate = view.window_rate.unwrap_or_else(|| {
            let all = total_successes.saturating_add(total_failures);
            if all == 0 {
                0.0
            } else {
                total_failures as f64 / all as f64
            }
        });
        BreakerMetrics {
            state: view.state,
            version: view.version,
            failure_count: view.failure_count,
            success_count: view.success_count,
            failure_rate,
            time_in_state: view.time_in_state,
            calls_admitted: self.stripes.sum(|s| &s.admitted),
            calls_rejected: self.stripes.sum(|s| &s.rejected),
            total_successes,
            total_failures,
            open_remaining: view.open_remaining,
            consecutive_opens: view.streak,
            probe_mode: view.mode,
            probe_slots: if view.state == CircuitState::HalfOpen {
                u32::try_from(view.slots).unwrap_or(u32::MAX)
            } else {
                0
            },
        }
    }
}

struct View {
    state: CircuitState,
    version: u64,
    mode: ProbeMode,
    slots: u64,
    failure_count: u64,
    success_count: u64,
    window_rate: Option<f64>,
    open_remaining: Option<Duration>,
    time_in_state: Duration,
    changed_wall: i64,
    last_failure: i64,
    last_success: i64,
    streak: u32,
}

fn timestamp(micros: i64) -> Option<Timestamp> {
    if micros == NO_TIME {
        None
    } else {
        Timestamp::from_unix_micros(micros)
    }
}
