//! Building a breaker: [`CircuitBreaker::new`], [`CircuitBreaker::builder`] and
//! [`BreakerBuilder`].

use std::fmt;
use std::sync::Arc;

use crate::sync::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Mutex, Ordering};

use arc_swap::ArcSwap;
use flexiai_events::{CircuitState, Timestamp};

use super::{CircuitBreaker, Limits, NANOS_PER_MS, NO_TIME, Padded, ProbeMode, Side};
use crate::classifier::{Classifier, CountAll};
use crate::clock::{Clock, SystemClock, duration_to_nanos};
use crate::config::{BreakerConfig, FailurePolicy};
use crate::counters::{ProbeCounts, Stripes, TaggedCount, Window};
use crate::error::BreakerError;
use crate::observer::{BreakerId, BreakerObserver};
use crate::word::Word;

/// Builds a [`CircuitBreaker`] with a custom clock, classifier, observers or probe mode.
///
/// ```
/// use std::sync::Arc;
/// use flexiai_breaker::{BreakerConfig, CircuitBreaker, ManualClock, ProbeMode};
///
/// let clock = Arc::new(ManualClock::new());
/// let breaker = CircuitBreaker::builder("anthropic")
///     .config(BreakerConfig::builder().failure_threshold(3).build()?)
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
    jitter_seed: Option<u64>,
}

impl fmt::Debug for BreakerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerBuilder")
            .field("name", &self.name)
            .field("config", &self.config)
            .field("clock", &self.clock)
            .field("observers", &self.observers.len())
            .field("probe_mode", &self.probe_mode)
            .field("jitter_seed", &self.jitter_seed)
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

    /// Seeds the open-period jitter stream with `seed` instead of the breaker's process-wide
    /// id and wall anchor, so that a replay (the simulator) draws the same jitter whatever
    /// else the process built before. Production leaves it unset: breakers built in the
    /// same millisecond must not jitter alike.
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.jitter_seed = Some(seed);
        self
    }

    /// Validates the name and config and builds the breaker, closed at version 0.
    pub fn build(self) -> Result<CircuitBreaker, BreakerError> {
        flexiai_events::validate_provider_name(&self.name)?;
        self.config.validate()?;
        // Process-wide, so `std` even under loom (loom atomics cannot be statics).
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
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
            probes_in_flight: ProbeCounts::default(),
            branch: AtomicU64::new(0),
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
                self.jitter_seed.unwrap_or_else(|| {
                    id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ wall.unsigned_abs()
                }),
            ),
            window,
            has_observers: AtomicBool::new(!self.observers.is_empty()),
            outcome_observers: AtomicBool::new(self.observers.iter().any(|o| o.wants_outcomes())),
            fleet_rate: AtomicBool::new(false),
            observers: ArcSwap::from_pointee(self.observers),
            observers_lock: Mutex::new(()),
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
            jitter_seed: None,
        }
    }
}
