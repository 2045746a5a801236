//! Named seeds: the defects the simulator found, by the seed that shows each one.
//!
//! A seed whose defect is fixed is a regression seed and runs in CI
//! (`tests/regressions.rs`, `cargo xtask sim --ci`); one whose defect is still open cannot be a
//! passing test, so it is listed in [`KNOWN_BUGS`] and run by `cargo xtask sim --known-bugs`,
//! which reports which of them still fail.

/// A seed and the defect it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamedSeed {
    /// The seed (`cargo xtask sim --seed S`).
    pub seed: u64,
    /// The check that reports it.
    pub invariant: &'static str,
    /// The defect, as issue 12 names it.
    pub defect: &'static str,
}

/// Seeds that showed a defect which is now fixed: every invariant must hold on them.
pub const REGRESSION_SEEDS: &[NamedSeed] = &[];

/// Seeds that show a defect still open on this branch.
pub const KNOWN_BUGS: &[NamedSeed] = &[];

/// The seeds `cargo xtask ci` runs (besides the regression seeds): a fixed range, minus the
/// known-bug seeds.
pub fn ci_seeds() -> Vec<u64> {
    (0..CI_SEED_COUNT)
        .filter(|s| !KNOWN_BUGS.iter().any(|k| k.seed == *s) && !CI_EXCLUDED.contains(s))
        .collect()
}

/// How many seeds CI draws from.
pub const CI_SEED_COUNT: u64 = 40;

/// Seeds of the CI range that fail on an open defect but are not its named seed.
pub const CI_EXCLUDED: &[u64] = &[];
