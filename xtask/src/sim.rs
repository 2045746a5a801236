//! `cargo xtask sim`: the deterministic fleet simulation (flexiai-sim, see RELIABILITY.md).

use xshell::{Shell, cmd};

/// Runs the simulator with the given arguments (`--seeds N`, `--seed S`, `--known-bugs`,
/// ...), built with optimizations: long runs are CPU-bound.
pub(crate) fn run(sh: &Shell, args: &[String]) -> crate::Result<()> {
    cmd!(
        sh,
        "cargo run --release -p flexiai-sim --bin flexiai-sim -- {args...}"
    )
    .run()?;
    Ok(())
}

/// The bounded CI run: the regression seeds and the fixed CI seed set, on two threads. A dev
/// build, so CI compiles nothing in release mode for it.
pub(crate) fn ci(sh: &Shell) -> crate::Result<()> {
    cmd!(
        sh,
        "cargo run -p flexiai-sim --bin flexiai-sim -- --ci --jobs 2"
    )
    .run()?;
    Ok(())
}
