//! Deterministic fleet simulation for flexiai-rs.
//!
//! A seed becomes a [`Plan`]: a fleet of two to five workers, each a real
//! `flexiai_sync::StateSyncManager` with real `flexiai_breaker::CircuitBreaker`s (the code
//! that ships), callers hitting simulated providers that fail, flap, slow down and answer 429
//! with `Retry-After`, an operator overriding states, Python-shaped workers publishing
//! unversioned events, and a fault schedule: partitions, failing, hanging and unanswered
//! store calls, dropped, duplicated, delayed and reordered messages, store wipes, crashes and
//! restarts, per-host clock offsets. Everything runs as tasks of one current-thread tokio
//! runtime on paused (virtual) time, over a fault-injecting view of one shared
//! `MemoryBackend`, so a seed always produces the same [`History`], and an hour of fleet life
//! takes well under a second.
//!
//! The history records every store write with what it replaced, every state each worker's
//! breaker took (with version and origin), every probe, outcome and outcome report, every
//! operator action and its acknowledgement. [`check`] judges it against the fleet protocol's
//! invariants; a violation names the seed, the plan and the records that led to it, and
//! `cargo xtask sim --seed S` replays it exactly.
//!
//! ```
//! let report = flexiai_sim::run_seed(3, 1)?;
//! assert_eq!(report.hash, flexiai_sim::run_seed(3, 1)?.hash); // same seed, same history
//! # Ok::<(), flexiai_sim::SimError>(())
//! ```

pub mod check;
pub mod history;
pub mod plan;
pub mod rng;
pub mod seeds;
mod state;
mod store;
pub mod time;
mod world;

use std::fmt;
use std::time::Duration;

pub use check::Violation;
pub use history::History;
pub use plan::Plan;
pub use world::run_plan;

/// Why a run could not be carried out (as opposed to the fleet misbehaving, which is a
/// [`Violation`]).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The tokio runtime could not be built.
    #[error("building the simulation runtime")]
    Runtime(#[source] std::io::Error),
    /// A breaker could not be built from the plan's config.
    #[error("building a breaker")]
    Breaker(#[source] flexiai_breaker::BreakerError),
    /// A sync manager could not be built, registered or started.
    #[error("setting up a sync manager")]
    Sync(#[source] flexiai_sync::SyncError),
    /// The store could not be built.
    #[error("building the store")]
    Backend(#[source] flexiai_backend::BackendError),
    /// An id was refused.
    #[error("building a worker id")]
    Events(#[source] flexiai_events::EventError),
}

/// The result of one seed.
#[derive(Debug, Clone)]
pub struct SeedReport {
    /// What ran.
    pub plan: Plan,
    /// What happened.
    pub history: History,
    /// The history's hash ([`History::hash`]).
    pub hash: u64,
    /// Virtual time covered.
    pub simulated: Duration,
    /// Every invariant violation found.
    pub violations: Vec<Violation>,
}

impl SeedReport {
    /// The distinct invariants broken, in check order.
    pub fn broken(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.violations.iter().map(|v| v.invariant).collect();
        names.dedup();
        names.sort_unstable();
        names.dedup();
        names
    }
}

/// Runs `seed` (fault phase scaled by `scale`; 1 is the CI size) and checks its history.
pub fn run_seed(seed: u64, scale: u64) -> Result<SeedReport, SimError> {
    let plan = Plan::generate(seed, scale);
    let history = run_plan(&plan)?;
    let ttl_ms = u64::try_from(plan.options.probe_lease_ttl.as_millis()).unwrap_or(u64::MAX);
    let violations = check::check_all(&history, plan.breaker.half_open_max_calls, ttl_ms);
    Ok(SeedReport {
        hash: history.hash(),
        simulated: plan.duration(),
        plan,
        history,
        violations,
    })
}

/// Prints a failing seed: the seed, its fault schedule, and for the first violations of each
/// invariant the history slice that led to it.
pub struct FailureReport<'a>(pub &'a SeedReport);

impl fmt::Display for FailureReport<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let report = self.0;
        writeln!(
            f,
            "seed {} FAILED: {} violation(s) of {:?} (history hash {:016x})",
            report.plan.seed,
            report.violations.len(),
            report.broken(),
            report.hash
        )?;
        writeln!(f, "diagnosis: {:?}", seeds::diagnose(report))?;
        write!(f, "{}", report.plan)?;
        let mut shown: Vec<&'static str> = Vec::new();
        for violation in &report.violations {
            if shown.iter().filter(|s| **s == violation.invariant).count() >= 2 {
                continue;
            }
            shown.push(violation.invariant);
            writeln!(f, "\n  {}: {}", violation.invariant, violation.message)?;
            writeln!(f, "  history up to record #{}:", violation.index)?;
            for (index, entry) in
                report
                    .history
                    .slice(violation.index, violation.provider.as_deref(), 30)
            {
                writeln!(
                    f,
                    "    #{index:<6} @{:>7} ms {:?}",
                    entry.at_ms, entry.record
                )?;
            }
        }
        writeln!(f, "\n  rerun: cargo xtask sim --seed {}", report.plan.seed)
    }
}
