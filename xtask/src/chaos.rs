//! `cargo xtask chaos [--seconds S] [--seed N] [--workers W] [--exclude CHECKS]`: a
//! real-process chaos run (the `flexiai-chaos` crate: redis-server, a fault proxy per worker,
//! `flexiai worker` processes, a seeded fault schedule and an invariant checker).

use xshell::{Shell, cmd};

/// The seed and length `ci` runs: one fixed schedule, about a minute of faults.
pub(crate) const CI_SEED: &str = "1";
/// Seconds of faults in `ci` (plus start-up and up to 20 s of convergence).
pub(crate) const CI_SECONDS: &str = "45";
/// Checks that fail on today's code because of known protocol bugs (issue 12): `ci` still
/// runs and prints them but does not fail on them. Remove a name when its fix lands.
///
/// Empty: `probe_budget` (defect 6: a second worker took the lease and probed a period
/// whose probe already ran, before it heard the period ended) holds since the lease is
/// granted under only after reading that the store still holds its period (h2-proto);
/// `operator_holds` (defect 2) holds since h-proto's successor-only compare-and-set.
pub(crate) const KNOWN_BUGS: &[&str] = &[];

/// Builds the CLI and the runner (debug: the hot path is not what is measured) and runs.
/// `--ci` alone runs exactly what `ci` runs.
pub(crate) fn run(sh: &Shell, args: &[String]) -> crate::Result<()> {
    if args == ["--ci"] {
        return ci(sh);
    }
    cmd!(sh, "cargo build --quiet -p flexiai-cli -p flexiai-chaos").run()?;
    let root = crate::project_root();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), std::path::PathBuf::from)
        .join("debug");
    let runner = target.join("flexiai-chaos");
    let flexiai = target.join("flexiai");
    cmd!(sh, "{runner} --flexiai {flexiai} {args...}").run()?;
    Ok(())
}

/// The bounded run `ci` makes.
pub(crate) fn ci(sh: &Shell) -> crate::Result<()> {
    let mut args: Vec<String> = ["--seed", CI_SEED, "--seconds", CI_SECONDS]
        .map(String::from)
        .to_vec();
    if !KNOWN_BUGS.is_empty() {
        println!(
            "chaos: excluded from failing CI (known protocol bugs, issue 12): {}",
            KNOWN_BUGS.join(", ")
        );
        args.push("--exclude".into());
        args.push(KNOWN_BUGS.join(","));
    }
    run(sh, &args)
}
