//! `cargo xtask fuzz [--seconds N] [--target T]`: the libFuzzer targets in `fuzz/`, on stable.
//!
//! cargo-fuzz wants nightly only for the sanitizer (`-Zsanitizer=address`). The coverage
//! instrumentation libFuzzer needs is plain stable codegen (`-Cpasses=sancov-module` and the
//! `-sanitizer-coverage-*` LLVM options), and `libfuzzer-sys` compiles libFuzzer from its
//! bundled C++ sources with the machine's C++ compiler. So this task builds the fuzz crate
//! itself with those flags (no sanitizer: the code is `#![forbid(unsafe_code)]` Rust, so a
//! panic, an overflow or an out-of-memory is what a finding looks like), into its own target
//! dir (`target/fuzz`), then runs each target for N seconds.
//!
//! Each target starts from its committed corpus `fuzz/corpus/<target>/` (real payloads plus
//! every regression input), which libFuzzer replays in full before mutating; what it learns
//! goes to `target/fuzz/corpus/<target>/`, not the repository. A crash is minimized by
//! libFuzzer into `fuzz/artifacts/<target>/` and fails the task with the command that
//! reproduces it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use xshell::{Shell, cmd};

/// The coverage instrumentation cargo-fuzz uses, minus the sanitizer; `--cfg fuzzing` is what
/// `libfuzzer-sys` and `arbitrary` key on. Overflow checks and debug assertions stay on: in a
/// release build they are what turns a silent wrap into a finding.
const RUSTFLAGS: &str = "-Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    --cfg fuzzing -Cdebug-assertions -Coverflow-checks";

/// What one target's run did.
struct Outcome {
    target: String,
    seconds: f64,
    runs: u64,
    corpus: usize,
    crashes: Vec<PathBuf>,
}

/// Parses `--seconds N` (default 60) and `--target T` (default: every target).
pub(crate) fn run(sh: &Shell, args: &[String]) -> crate::Result<()> {
    let mut seconds = 60u64;
    let mut only = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .ok_or("--seconds needs a value")?
                    .parse()
                    .map_err(|e| format!("--seconds: {e}"))?;
            }
            "--target" => only = Some(args.next().ok_or("--target needs a value")?.clone()),
            other => return Err(format!("fuzz: unknown argument `{other}`").into()),
        }
    }
    fuzz(sh, seconds, only.as_deref())
}

/// Builds the targets and runs each (or `only`) for `seconds`.
pub(crate) fn fuzz(sh: &Shell, seconds: u64, only: Option<&str>) -> crate::Result<()> {
    let root = crate::project_root();
    let fuzz_dir = root.join("fuzz");
    let mut targets = target_names(&fuzz_dir.join("fuzz_targets"))?;
    if let Some(only) = only {
        if !targets.iter().any(|t| t == only) {
            return Err(format!("fuzz: no target `{only}` (have: {})", targets.join(", ")).into());
        }
        targets.retain(|t| t == only);
    }
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), PathBuf::from)
        .join("fuzz");
    let host = host_triple(sh)?;
    let manifest = fuzz_dir.join("Cargo.toml");
    let built = Instant::now();
    {
        let _target = sh.push_env("CARGO_TARGET_DIR", &target_dir);
        let _flags = sh.push_env("RUSTFLAGS", RUSTFLAGS);
        // `--target` keeps the flags off build scripts and proc macros, as cargo-fuzz does.
        cmd!(
            sh,
            "cargo build --release --locked --manifest-path {manifest} --target {host} --bins"
        )
        .run()?;
    }
    println!("fuzz: built in {:.0} s", built.elapsed().as_secs_f64());

    let bin_dir = target_dir.join(&host).join("release");
    let mut outcomes = Vec::new();
    for target in &targets {
        outcomes.push(run_target(
            &bin_dir.join(target),
            target,
            seconds,
            &fuzz_dir,
            &target_dir,
        )?);
    }

    println!();
    println!("| target | seconds | executions | corpus | crashes |");
    println!("|---|---:|---:|---:|---:|");
    for o in &outcomes {
        println!(
            "| {} | {:.0} | {} | {} | {} |",
            o.target,
            o.seconds,
            o.runs,
            o.corpus,
            o.crashes.len()
        );
    }
    let crashes: Vec<(&str, &PathBuf)> = outcomes
        .iter()
        .flat_map(|o| o.crashes.iter().map(move |c| (o.target.as_str(), c)))
        .collect();
    if crashes.is_empty() {
        return Ok(());
    }
    for (target, crash) in &crashes {
        eprintln!(
            "fuzz: {target} crashed on {}; reproduce with {} {}",
            crash.display(),
            bin_dir.join(target).display(),
            crash.display()
        );
    }
    Err(format!("{} fuzz finding(s)", crashes.len()).into())
}

fn run_target(
    bin: &Path,
    target: &str,
    seconds: u64,
    fuzz_dir: &Path,
    target_dir: &Path,
) -> crate::Result<Outcome> {
    let seeds = fuzz_dir.join("corpus").join(target);
    let work = target_dir.join("corpus").join(target);
    let artifacts = fuzz_dir.join("artifacts").join(target);
    for dir in [&seeds, &work, &artifacts] {
        std::fs::create_dir_all(dir)?;
    }
    let before = files(&artifacts)?;
    println!("fuzz: {target} for {seconds} s");
    let started = Instant::now();
    // New inputs go to the first directory (the scratch one); the committed corpus is read.
    let output = Command::new(bin)
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg("-timeout=10")
        .arg("-rss_limit_mb=2048")
        .arg("-print_final_stats=1")
        .arg(&work)
        .arg(&seeds)
        .output()?;
    let elapsed = started.elapsed().as_secs_f64();
    let log = String::from_utf8_lossy(&output.stderr);
    let runs = log
        .lines()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let crashes: Vec<PathBuf> = files(&artifacts)?
        .difference(&before)
        .map(|name| artifacts.join(name))
        .collect();
    if !output.status.success() || !crashes.is_empty() {
        // The panic message and libFuzzer's report: the tail of the log is what matters.
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        for line in tail.into_iter().rev() {
            eprintln!("  {line}");
        }
        if crashes.is_empty() {
            return Err(format!(
                "fuzz: {target} failed ({}) without an artifact",
                output.status
            )
            .into());
        }
    }
    Ok(Outcome {
        target: target.to_owned(),
        seconds: elapsed,
        runs,
        corpus: files(&work)?.len() + files(&seeds)?.len(),
        crashes,
    })
}

/// The target names: `fuzz/fuzz_targets/*.rs` stems, sorted.
fn target_names(dir: &Path) -> crate::Result<Vec<String>> {
    let mut names: Vec<String> = files(dir)?
        .into_iter()
        .filter_map(|f| f.strip_suffix(".rs").map(str::to_owned))
        .collect();
    names.sort();
    Ok(names)
}

fn files(dir: &Path) -> crate::Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            names.insert(entry.file_name().to_string_lossy().into_owned());
        }
    }
    Ok(names)
}

fn host_triple(sh: &Shell) -> crate::Result<String> {
    let version = cmd!(sh, "rustc -vV").read()?;
    version
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .ok_or_else(|| "rustc -vV printed no host triple".into())
}
