//! Project automation, run as `cargo xtask <command>`.
//!
//! One place knows how this workspace is checked, so CI, the pre-commit hook and a developer
//! at a terminal all run exactly the same thing.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod api;
mod chaos;
mod coverage;
mod flags;
mod fuzz;
mod hooks;
mod sim;
mod tests;

use std::process::ExitCode;

use xshell::{Shell, cmd};

/// Every failure is reported once, at the top, with its message.
type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first().map(String::as_str) else {
        eprintln!("{}", flags::USAGE);
        return ExitCode::FAILURE;
    };
    let result = (|| -> Result<()> {
        let sh = Shell::new()?;
        sh.change_dir(project_root());
        let sh = &sh;
        match command {
            "ci" => ci(sh),
            "api" => api::run(&project_root(), args.iter().any(|a| a == "--bless")),
            "lint" => lint(sh),
            "lint-fast" => {
                let features = flags::FEATURES;
                cmd!(
                    sh,
                    "cargo clippy --workspace --all-targets {features...} -- -D warnings"
                )
                .run()?;
                Ok(())
            }
            "coverage" => coverage::run(sh),
            "publish-check" => publish_check(sh),
            "fuzz" => fuzz::run(sh, &args[1..]),
            "chaos" => chaos::run(sh, &args[1..]),
            "install-hooks" => hooks::install(sh),
            "test" => tests::run_local(sh).map(|_| ()),
            "test-redis" => tests::run_redis(sh).map(|_| ()),
            "loom" => tests::run_loom(sh).map(|_| ()),
            "sim" => sim::run(sh, &args[1..]),
            "bench" => {
                // The fleet benchmarks (flexiai-bench): release build, then a run that spawns
                // its own redis-server instances and rewrites the fleet section of
                // BENCHMARKS.md and docs/bench/propagation.svg. `--quick` shortens it;
                // `--criterion` also runs the criterion micro-benchmarks first;
                // `--section scale` runs the fleet-scale section instead (its own markers in
                // BENCHMARKS.md, docs/bench/scale.svg).
                let rest = &args[1..];
                if rest.iter().any(|a| a == "--criterion") {
                    let features = flags::FEATURES;
                    cmd!(sh, "cargo bench --workspace {features...}").run()?;
                }
                let pass: Vec<&String> = rest.iter().filter(|a| *a != "--criterion").collect();
                cmd!(
                    sh,
                    "cargo build --release -p flexiai-bench --bin fleet-bench"
                )
                .run()?;
                let root = project_root();
                let target = std::env::var_os("CARGO_TARGET_DIR")
                    .map_or_else(|| root.join("target"), std::path::PathBuf::from);
                let bench = target.join("release").join("fleet-bench");
                cmd!(sh, "{bench} run --root {root} {pass...}").run()?;
                Ok(())
            }
            "help" | "--help" | "-h" => {
                println!("{}", flags::USAGE);
                Ok(())
            }
            other => {
                eprintln!("unknown command `{other}`\n\n{}", flags::USAGE);
                Err("unknown command".into())
            }
        }
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask {command}: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Seconds of fuzzing per target in `ci`; `cargo xtask fuzz --seconds N` is the long run.
const CI_FUZZ_SECONDS: u64 = 10;

/// Everything CI checks, in order of cost.
fn ci(sh: &Shell) -> crate::Result<()> {
    lint(sh)?;
    api::run(&project_root(), false)?;
    let local = tests::run_local(sh)?;
    let redis = tests::run_redis(sh)?;
    let loom = tests::run_loom(sh)?;
    sim::ci(sh)?;
    chaos::ci(sh)?;
    // Replays each committed corpus, then a few seconds of fuzzing per target.
    fuzz::fuzz(sh, CI_FUZZ_SECONDS, None)?;
    println!();
    println!("in-process tests: {local}");
    println!("Redis-backed tests: {redis}");
    println!("loom models: {loom}");
    println!("total: {}", local + redis + loom);
    Ok(())
}

/// `cargo publish --workspace --dry-run`: packages every publishable crate and builds each
/// package against the others through cargo's local registry overlay (cargo >= 1.90), so a
/// crate whose siblings are not on crates.io yet is still checked. `publish = false` crates
/// (testkit, chaos, bench, sim, fuzz, xtask) are skipped by cargo; the CLI is excluded
/// because it depends on flexiai-testkit. Not part of `ci`: it rebuilds every library crate
/// from its package (about 2.5 minutes). `--allow-dirty` so that it checks the working tree.
fn publish_check(sh: &Shell) -> crate::Result<()> {
    cmd!(
        sh,
        "cargo publish --workspace --dry-run --allow-dirty --exclude flexiai-cli"
    )
    .run()?;
    Ok(())
}

/// Formatting, clippy with warnings denied, and rustdoc with warnings denied.
fn lint(sh: &Shell) -> crate::Result<()> {
    let features = flags::FEATURES;
    cmd!(sh, "cargo fmt --all -- --check").run()?;
    cmd!(
        sh,
        "cargo clippy --workspace --all-targets {features...} -- -D warnings"
    )
    .run()?;
    let _doc_flags = sh.push_env("RUSTDOCFLAGS", "-D warnings");
    cmd!(sh, "cargo doc --workspace --no-deps {features...}").run()?;
    Ok(())
}

fn project_root() -> std::path::PathBuf {
    let manifest_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}
