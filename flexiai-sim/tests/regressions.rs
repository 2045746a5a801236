//! Regression seeds: seeds that once showed a defect (see `flexiai_sim::seeds`), which every
//! invariant must now hold on, and a sample of the CI seed set. Seeds of defects still open
//! are not here: `cargo xtask sim --known-bugs` runs and reports those.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use flexiai_sim::seeds::{REGRESSION_SEEDS, ci_seeds};
use flexiai_sim::{FailureReport, run_seed};

fn assert_holds(seed: u64, what: &str) {
    let report = run_seed(seed, 1).unwrap();
    assert!(
        report.violations.is_empty(),
        "{what}:\n{}",
        FailureReport(&report)
    );
}

#[test]
fn every_regression_seed_holds_every_invariant() {
    for named in REGRESSION_SEEDS {
        assert_holds(named.seed, named.defect);
    }
}

#[test]
fn the_first_ci_seeds_hold_every_invariant() {
    let seeds = ci_seeds();
    assert!(!seeds.is_empty(), "the CI seed set is empty");
    for seed in seeds.into_iter().take(4) {
        assert_holds(seed, "CI seed");
    }
}
