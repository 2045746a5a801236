//! `cargo xtask coverage`: line coverage of the library crates, Redis-backed tests included,
//! measured with cargo-tarpaulin (ptrace engine: no extra rustup component needed).
//!
//! Not part of `ci`: installing tarpaulin takes about ten minutes on two cores and an
//! instrumented run several more. Run it before a release or after large changes; the
//! README's coverage section records the latest figures.

use std::collections::BTreeMap;
use std::path::Path;

use xshell::{Shell, cmd};

use crate::flags::FEATURES;

/// The library crates coverage is measured for; everything else (xtask, test kits, benches,
/// the CLI binary, examples) is excluded. flexiai-sim counts with its library only: its
/// `main.rs` is argument parsing and printing around `run_seed`. flexiai-chaos is not here:
/// it is a binary with no library, a harness that drives real processes for minutes
/// (`cargo xtask chaos`), not code a user links.
const LIBRARY_CRATES: [&str; 9] = [
    "flexiai-events",
    "flexiai-serde",
    "flexiai-backend",
    "flexiai-backend-redis",
    "flexiai-breaker",
    "flexiai-sync",
    "flexiai-client",
    "flexiai-tower",
    "flexiai-sim",
];

/// Minimum line coverage of the library crates together, in percent.
const TOTAL_THRESHOLD: f64 = 90.0;
/// Minimum line coverage of every library crate, in percent.
const CRATE_THRESHOLD: f64 = 80.0;

pub(crate) fn run(sh: &Shell) -> crate::Result<()> {
    if cmd!(sh, "cargo tarpaulin --version")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_err()
    {
        println!(
            "cargo-tarpaulin is not installed; installing it (about ten minutes on two cores)"
        );
        cmd!(sh, "cargo install cargo-tarpaulin --locked").run()?;
    }
    let mut args: Vec<String> = Vec::new();
    for krate in LIBRARY_CRATES {
        args.push("--packages".into());
        args.push(krate.into());
    }
    // The workspace's client has its `redis` feature (the CLI asks for it). Without it here,
    // flexiai-sync's Redis backend is still on (its own tests need it), a mix no real build
    // has, and the tests compiled only for the light client would run against it; those run
    // in `cargo xtask test` instead.
    let features = [
        FEATURES[0].to_owned(),
        format!("{},flexiai-client/redis", FEATURES[1]),
    ];
    let out = "target/coverage";
    let report_path = Path::new(out).join("tarpaulin-report.json");
    // A stale report must not pass for this run's.
    sh.remove_path(&report_path)?;
    // --no-fail-fast: a test failing under instrumentation (slower, so timing-sensitive
    // tests are exposed) fails the task, but every other test still runs.
    let tarpaulin = cmd!(
        sh,
        "cargo tarpaulin {args...} {features...} --engine ptrace --skip-clean --timeout 300 --no-fail-fast
         --target-dir target/tarpaulin
         --exclude-files 'xtask/*' 'flexiai-testkit/*' 'flexiai-bench/*' 'flexiai-cli/*' 'flexiai-chaos/*' 'flexiai-sim/src/main.rs' '*/tests/*' '*/benches/*' '*/examples/*'
         --out Json --output-dir {out}"
    )
    .run();
    // Print the figures when tarpaulin wrote them, even if a test failed.
    let figures = match sh.read_file(&report_path) {
        Ok(report) => check(&per_crate_coverage(&report)?),
        Err(_) => Err("tarpaulin wrote no report".into()),
    };
    tarpaulin?;
    figures
}

/// (covered, coverable) lines per crate, from tarpaulin's JSON report.
fn per_crate_coverage(report: &str) -> crate::Result<BTreeMap<String, (u64, u64)>> {
    let json: serde_json::Value = serde_json::from_str(report)?;
    let files = json["files"]
        .as_array()
        .ok_or("tarpaulin report without `files`")?;
    let mut per_crate: BTreeMap<String, (u64, u64)> = LIBRARY_CRATES
        .iter()
        .map(|c| ((*c).to_owned(), (0, 0)))
        .collect();
    for file in files {
        let path: Vec<&str> = file["path"]
            .as_array()
            .map(|parts| parts.iter().filter_map(|p| p.as_str()).collect())
            .unwrap_or_default();
        let Some(krate) = path.iter().find(|part| LIBRARY_CRATES.contains(part)) else {
            continue;
        };
        if !path.contains(&"src") {
            continue;
        }
        let entry = per_crate.entry((*krate).to_owned()).or_default();
        entry.0 += file["covered"].as_u64().unwrap_or(0);
        entry.1 += file["coverable"].as_u64().unwrap_or(0);
    }
    Ok(per_crate)
}

fn percent(covered: u64, coverable: u64) -> f64 {
    if coverable == 0 {
        100.0
    } else {
        covered as f64 * 100.0 / coverable as f64
    }
}

fn check(per_crate: &BTreeMap<String, (u64, u64)>) -> crate::Result<()> {
    println!();
    println!(
        "{:<24} {:>8} {:>10} {:>8}",
        "crate", "covered", "coverable", "lines"
    );
    let mut failures = Vec::new();
    let (mut covered, mut coverable) = (0, 0);
    for (krate, (c, t)) in per_crate {
        let pct = percent(*c, *t);
        println!("{krate:<24} {c:>8} {t:>10} {pct:>7.1}%");
        if pct < CRATE_THRESHOLD {
            failures.push(format!("{krate} at {pct:.1}% (minimum {CRATE_THRESHOLD}%)"));
        }
        covered += c;
        coverable += t;
    }
    let total = percent(covered, coverable);
    println!("{:<24} {covered:>8} {coverable:>10} {total:>7.1}%", "total");
    if total < TOTAL_THRESHOLD {
        failures.push(format!("total at {total:.1}% (minimum {TOTAL_THRESHOLD}%)"));
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("coverage below threshold: {}", failures.join("; ")).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_files_by_crate_and_checks_thresholds() {
        let report = r#"{"files": [
            {"path": ["", "work", "flexiai-events", "src", "lib.rs"], "covered": 9, "coverable": 10},
            {"path": ["", "work", "flexiai-events", "tests", "x.rs"], "covered": 0, "coverable": 50},
            {"path": ["", "work", "xtask", "src", "main.rs"], "covered": 0, "coverable": 100}
        ]}"#;
        let per_crate = per_crate_coverage(report).unwrap();
        assert_eq!(per_crate["flexiai-events"], (9, 10));
        assert_eq!(per_crate["flexiai-sync"], (0, 0));
        assert!(check(&per_crate).is_ok());
        let mut low = per_crate.clone();
        low.insert("flexiai-sync".into(), (70, 100));
        let err = check(&low).unwrap_err().to_string();
        assert!(err.contains("flexiai-sync at 70.0%"), "{err}");
    }
}
