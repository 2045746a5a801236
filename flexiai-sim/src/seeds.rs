//! Named seeds: the defects the simulator found, by the seed that shows each one, and the
//! fixed seed set CI runs.
//!
//! A seed whose defect is fixed is a regression seed and runs in CI
//! (`tests/regressions.rs`, `cargo xtask sim --ci`); one whose defect is still open cannot be a
//! passing test, so it is listed in [`KNOWN_BUGS`] and run by `cargo xtask sim --known-bugs`,
//! which reports which of them still fail.

use crate::SeedReport;

/// A seed and the defect it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamedSeed {
    /// The seed (`cargo xtask sim --seed S`).
    pub seed: u64,
    /// The check that reports it.
    pub invariant: &'static str,
    /// The defect, as issue 12 numbers and names it.
    pub defect: &'static str,
}

const STUCK: &str = "#1 fleet stuck half-open when success_threshold > half_open_max_calls";
const LOST_UPDATE: &str =
    "#2 lost update: CAS stores 'newer', not 'follows' (diverged branch or wiped store)";
const PYTHON: &str = "#3 unversioned Python events undo operator states";
const LATE: &str = "#4 outcome counts reported under a later version";
const LEASE: &str = "#6 probe lease expires under a long probe; credits outlive it";

/// Seeds that showed a defect which is now fixed: every invariant must hold on them.
pub const REGRESSION_SEEDS: &[NamedSeed] = &[];

/// Seeds that show a defect still open on this branch (found on the code of 2026-12-01).
pub const KNOWN_BUGS: &[NamedSeed] = &[
    named(9, "check_liveness", STUCK),
    named(13, "check_liveness", STUCK),
    named(1, "check_linear_history", LOST_UPDATE),
    named(70, "check_linear_history", LOST_UPDATE),
    named(305, "check_linear_history", LOST_UPDATE),
    named(34, "check_operator_precedence", PYTHON),
    named(21, "check_operator_precedence", PYTHON),
    named(5, "check_probe_budget", LEASE),
    named(23, "check_probe_budget", LEASE),
];

const fn named(seed: u64, invariant: &'static str, defect: &'static str) -> NamedSeed {
    NamedSeed {
        seed,
        invariant,
        defect,
    }
}

/// The fixed seeds `cargo xtask ci` runs besides the regression seeds: seeds on which every
/// invariant held when they were chosen.
pub const CI_SEEDS: &[u64] = &[
    2, 3, 4, 6, 10, 11, 12, 15, 16, 18, 19, 22, 24, 28, 31, 33, 36, 38, 40, 43, 45, 47, 49, 51, 52,
    57, 60, 61, 63, 65, 66, 67, 69, 73, 75, 76, 77, 79, 80, 82,
];

/// The CI seed set.
pub fn ci_seeds() -> Vec<u64> {
    CI_SEEDS.to_vec()
}

/// Names the defect behind each violation of `report`, from the check that found it, its
/// message and the plan's config: how a failing seed is triaged.
pub fn diagnose(report: &SeedReport) -> Vec<&'static str> {
    let b = &report.plan.breaker;
    // A Python event that moved a worker out of an operator's state also makes that worker
    // store the result: both violations are the same defect.
    let python = report
        .violations
        .iter()
        .any(|v| v.message.contains("via python"));
    // A lost update of an operator's override leaves the fleet out of the operator's state.
    let lost = report
        .violations
        .iter()
        .any(|v| v.invariant == "check_linear_history");
    let mut out: Vec<&'static str> = report
        .violations
        .iter()
        .map(|v| match v.invariant {
            "check_liveness"
                if b.success_threshold > b.half_open_max_calls
                    && v.message.contains("is half_open") =>
            {
                STUCK
            }
            "check_liveness" if lost => LOST_UPDATE,
            "check_liveness" => "liveness (unclassified)",
            "check_operator_precedence" if python => PYTHON,
            "check_operator_precedence" | "check_linear_history" => LOST_UPDATE,
            "check_probe_budget" => LEASE,
            "check_outcome_periods" => LATE,
            _ => "unclassified",
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}
