//! The command line and the feature set every check builds with.

pub(crate) const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci          everything CI runs: lint, test, test-redis, loom
  lint        cargo fmt --check, clippy -D warnings, rustdoc -D warnings
  test        every test that runs in-process (no Redis server needed)
  test-redis  every Redis-backed test, against redis-server instances the tests spawn
  loom        the loom models of the breaker's state word (--cfg loom, target/loom)
  bench       the fleet benchmarks (writes BENCHMARKS.md); --quick, --criterion
  coverage    line coverage of the library crates (cargo-tarpaulin), with thresholds
  install-hooks  a git pre-commit hook running fmt and clippy
  lint-fast   clippy only (what the pre-commit hook runs after fmt)";

/// Features that turn on test support across the workspace; additive, so enabling them all
/// at once is what a user enabling any of them gets too.
pub(crate) const FEATURES: [&str; 2] = [
    "--features",
    "flexiai-events/arbitrary,flexiai-backend/testing,flexiai-sync/testing",
];
