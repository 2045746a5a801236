//! A lock-free circuit breaker for LLM-provider clients, usable alone and ready to be
//! synchronized across a fleet of workers.
//!
//! A [`CircuitBreaker`] guards one provider. Calls ask for a [`Permit`] with
//! [`try_acquire`](CircuitBreaker::try_acquire) (or go through the async
//! [`call`](CircuitBreaker::call) helper) and settle it with their outcome; a breaker shared
//! as an `Arc` also hands out `'static` [`OwnedPermit`]s
//! ([`acquire_owned`](CircuitBreaker::acquire_owned)) that can move into a spawned task or a
//! `tower::Service::call` future (`flexiai-tower` builds on them). Failures, counted
//! as a run of consecutive failures or as a failure rate over a sliding window (slow calls
//! optionally included, errors sorted by a caller-supplied [`Classifier`]), open the breaker;
//! once the recovery timeout has passed it turns half-open by itself and lets a bounded number
//! of trial calls decide whether to close or to reopen, with optional exponential backoff and
//! jitter on the open period. Operators can [`force_open`](CircuitBreaker::force_open),
//! [`disable`](CircuitBreaker::disable) and [`reset`](CircuitBreaker::reset); a provider's
//! `Retry-After` can open it for exactly the time asked ([`open_for`](CircuitBreaker::open_for),
//! which only ever extends an open period and gives way to the operator's states). Admission and
//! outcome recording are a few atomic operations on a packed state word: no lock, no
//! allocation, no await (see *Design* below). Every local transition bumps a version and is
//! reported,
//! with every outcome, to [`BreakerObserver`]s; that and the snapshot methods
//! ([`snapshot`](CircuitBreaker::snapshot), [`restore`](CircuitBreaker::restore),
//! [`apply_remote`](CircuitBreaker::apply_remote),
//! [`absorb_remote_outcomes`](CircuitBreaker::absorb_remote_outcomes),
//! [`grant_probes`](CircuitBreaker::grant_probes),
//! [`absorb_remote_probe_successes`](CircuitBreaker::absorb_remote_probe_successes)) are all
//! `flexiai-sync` needs to share one breaker's history across workers. This crate itself
//! knows nothing of Redis, and logs nothing: transitions reach observers only. Reads
//! ([`state`](CircuitBreaker::state), [`metrics`](CircuitBreaker::metrics), `Debug`) have no
//! side effects: an open breaker whose time is up reads as half-open, and the transition is
//! made by the next call or by [`poll`](CircuitBreaker::poll).
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use flexiai_breaker::{BreakerConfig, CircuitBreaker, CircuitState, ManualClock};
//!
//! let clock = Arc::new(ManualClock::new());
//! let breaker = CircuitBreaker::builder("openai")
//!     .config(BreakerConfig::builder().failure_threshold(2).build()?)
//!     .clock(clock.clone())
//!     .build()?;
//!
//! for _ in 0..2 {
//!     let permit = breaker.try_acquire().expect("closed breakers admit");
//!     permit.failure(); // e.g. the provider answered 503
//! }
//! assert_eq!(breaker.state(), CircuitState::Open);
//! let rejected = breaker.try_acquire().unwrap_err();
//! assert_eq!(rejected.retry_after, Some(Duration::from_secs(60)));
//!
//! clock.advance(Duration::from_secs(60));
//! let probe = breaker.try_acquire().expect("the first trial call is admitted");
//! assert_eq!(breaker.state(), CircuitState::HalfOpen);
//! probe.success();
//! assert_eq!(breaker.state(), CircuitState::Closed);
//! assert_eq!(breaker.version(), 3); // closed -> open -> half-open -> closed
//! # Ok::<(), flexiai_breaker::BreakerError>(())
//! ```
//!
//! # Design
//!
//! Everything admission must see atomically lives in one `AtomicU64`:
//! `version (47 bits) | probe mode (1) | W (1) | state (3) | probe slots (12)`. Closed
//! admission is a single load of it. Taking or returning a half-open probe slot, granting
//! credits and switching probe mode are CAS loops on the whole word, so a slot can never leak
//! into another version. A transition first sets `W` by CAS (from a word without it); while it
//! is set, no other CAS can succeed, so its owner alone writes the side fields (open deadline,
//! backoff streak, time of change, counter resets) and then publishes the next word, version
//! plus one, with a release store. Readers of side fields (the open deadline, snapshots) use
//! the word as a seqlock: read, read the fields, re-read, retry on change. Hot-path callers
//! never wait on `W`: admission reads the state the word still shows (ordering the call before
//! the transition), and a hot-path transition that finds `W` set spins a few dozen times and
//! then gives way to the one being written. `restore`, `apply_remote`, `open_for` and the
//! manual controls wait for `W` like any writer; those that may decide to change nothing
//! (`apply_remote` losing to a newer version, `open_for` finding a later deadline or an
//! operator's state) decide while holding `W` and then publish the old word back unchanged. Outcome counters are tagged with the version they belong to,
//! so an outcome settled after a state change counts nothing; success counters are striped per
//! thread so two threads do not contend on one cache line (a thread finds its stripe with one
//! load of a constant-initialized thread-local). In the closed state `try_acquire` and
//! `Permit::success` inline into the caller: the rest of admission lives in an out-of-line
//! function that answers in two registers rather than a `Result` in memory, and a closed,
//! untimed success with no observer is recorded without a call (the general `settle` path
//! handles everything else, with the same counters and checks).

mod breaker;
mod classifier;
mod clock;
mod config;
mod counters;
mod error;
#[cfg(feature = "metrics")]
pub mod exporter;
mod metrics;
#[cfg(any(feature = "metrics", feature = "opentelemetry"))]
pub mod names;
mod observer;
#[cfg(feature = "opentelemetry")]
pub mod otel;
mod owned;
mod permit;
mod sync;
mod word;

pub use breaker::{BreakerBuilder, CircuitBreaker, OutcomeTotals, ProbeMode, ProbeProgress};
pub use classifier::{Classifier, CountAll, ErrorClass};
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    BreakerConfig, BreakerConfigBuilder, FailurePolicy, MAX_HALF_OPEN_CALLS, MAX_OPEN_MS,
};
pub use error::{BreakerError, CallError, Rejected};
#[cfg(feature = "metrics")]
pub use exporter::{BreakerRecorder, ExporterHandle, MetricsExporter};
pub use flexiai_events::{BreakerSnapshot, CircuitState};
pub use metrics::BreakerMetrics;
pub use observer::{
    BreakerId, BreakerObserver, NoopObserver, Outcome, OutcomeEvent, QueueStats, QueuedObserver,
    Transition, TransitionReason,
};
#[cfg(feature = "opentelemetry")]
pub use otel::OtelMetrics;
pub use owned::OwnedPermit;
pub use permit::Permit;
pub use word::MAX_VERSION;
