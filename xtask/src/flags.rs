//! The command line and the feature set every check builds with.

pub(crate) const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci          everything CI runs: lint, api, test, test-redis, loom, the bounded sim seeds,
              chaos (seed 1, 45 s), fuzz (10 s per target)
  api         check the public-API snapshots in api/ (--bless to accept changes)
  lint        cargo fmt --check, clippy -D warnings, rustdoc -D warnings
  test        every test that runs in-process (no Redis server needed)
  test-redis  every Redis-backed test, against redis-server instances the tests spawn
  loom        the loom models of the breaker's state word (--cfg loom, target/loom)
  sim         the deterministic fleet simulation: --seeds N, --seed S, --known-bugs, --ci
  bench       the fleet benchmarks (writes BENCHMARKS.md); --quick, --criterion,
              --section scale (fleets of 10 to 1,000 workers, its own part of BENCHMARKS.md)
  chaos       real-process chaos run; --seconds S (60), --seed N (1), --workers W (4), --exclude CHECKS
  fuzz        libFuzzer targets on stable (fuzz/); --seconds N (60), --target T
  coverage    line coverage of the library crates (cargo-tarpaulin), with thresholds
  publish-check  cargo publish --workspace --dry-run: every library crate packages and builds
  install-hooks  a git pre-commit hook running fmt and clippy
  lint-fast   clippy only (what the pre-commit hook runs after fmt)";

/// Features that turn on test support across the workspace; additive, so enabling them all
/// at once is what a user enabling any of them gets too.
pub(crate) const FEATURES: [&str; 2] = [
    "--features",
    "flexiai-events/arbitrary,flexiai-backend/testing,flexiai-sync/testing,flexiai-breaker/metrics,flexiai-sync/metrics,flexiai-breaker/opentelemetry,flexiai-sync/opentelemetry",
];
