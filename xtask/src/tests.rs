//! Runs the test suites and counts what ran.
//!
//! Integration tests whose file name starts with `redis_` need a `redis-server` binary (the
//! tests spawn their own servers on free ports); everything else runs in-process. Ignored
//! tests fail the run: a test that is skipped in CI is a defect here.

use std::fmt;
use std::ops::Add;
use std::path::Path;

use xshell::{Shell, cmd};

use crate::flags::FEATURES;

/// Totals read from libtest's `test result:` lines.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counts {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Add for Counts {
    type Output = Counts;

    fn add(self, other: Counts) -> Counts {
        Counts {
            passed: self.passed + other.passed,
            failed: self.failed + other.failed,
            ignored: self.ignored + other.ignored,
        }
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} passed, {} failed", self.passed, self.failed)?;
        if self.ignored > 0 {
            write!(f, ", {} skipped", self.ignored)?;
        }
        Ok(())
    }
}

/// Unit, doc and integration tests that need no server.
pub(crate) fn run_local(sh: &Shell) -> crate::Result<Counts> {
    let (local, _) = integration_targets(sh)?;
    let mut args: Vec<String> = vec!["--lib".into(), "--bins".into()];
    for target in &local {
        args.push("--test".into());
        args.push(target.clone());
    }
    let features = FEATURES;
    let units = run_counted(
        sh,
        cmd!(sh, "cargo test --workspace {features...} {args...}"),
    )?;
    let docs = run_counted(sh, cmd!(sh, "cargo test --workspace {features...} --doc"))?;
    let light = light_client(sh)?;
    finish("in-process", units + docs + light)
}

/// The client as a user without the `redis` feature gets it: a workspace build turns the
/// feature on (the CLI asks for it), so the light build is checked on its own. Its
/// dependency tree must hold no Redis client, and its config tests run once more, including
/// the one compiled only without the feature.
fn light_client(sh: &Shell) -> crate::Result<Counts> {
    let tree = cmd!(sh, "cargo tree -p flexiai-client -e normal --prefix none")
        .quiet()
        .read()?;
    if let Some(line) = tree.lines().find(|l| l.starts_with("redis ")) {
        return Err(failure(&format!(
            "flexiai-client without features depends on a Redis client ({line})"
        )));
    }
    run_counted(sh, cmd!(sh, "cargo test -p flexiai-client --test config"))
}

/// The integration tests that spawn redis-server.
pub(crate) fn run_redis(sh: &Shell) -> crate::Result<Counts> {
    if cmd!(sh, "redis-server --version")
        .quiet()
        .ignore_stdout()
        .run()
        .is_err()
    {
        return Err(failure(
            "redis-server was not found on PATH; the Redis-backed tests need it \
             (Debian/Ubuntu: `apt-get install redis-server`, macOS: `brew install redis`). \
             They never use an existing server: each test starts its own on a free port.",
        ));
    }
    let (_, redis) = integration_targets(sh)?;
    if redis.is_empty() {
        return Err(failure(
            "no Redis-backed test targets (tests/redis_*.rs) were found",
        ));
    }
    let mut args: Vec<String> = Vec::new();
    for target in &redis {
        args.push("--test".into());
        args.push(target.clone());
    }
    let features = FEATURES;
    let counts = run_counted(
        sh,
        cmd!(sh, "cargo test --workspace {features...} {args...}"),
    )?;
    finish("Redis-backed", counts)
}

/// The loom models of the breaker's state word (`flexiai-breaker/tests/loom.rs`), built with
/// `--cfg loom` into their own target dir (so the normal build is not evicted) with a bounded
/// number of preemptions, so that the run fits CI (about 30 s on 2 cores, build included,
/// once loom's dependencies are built).
pub(crate) fn run_loom(sh: &Shell) -> crate::Result<Counts> {
    let target = crate::project_root().join("target").join("loom");
    let _flags = sh.push_env("RUSTFLAGS", "--cfg loom");
    let _target = sh.push_env("CARGO_TARGET_DIR", target);
    let _bound = sh.push_env("LOOM_MAX_PREEMPTIONS", "2");
    let counts = run_counted(
        sh,
        cmd!(sh, "cargo test -p flexiai-breaker --test loom --release"),
    )?;
    finish("loom", counts)
}

fn finish(suite: &str, counts: Counts) -> crate::Result<Counts> {
    println!("{suite} tests: {counts}");
    if counts.ignored > 0 {
        return Err(failure(&format!(
            "{} {suite} test(s) were ignored; every test must run in CI",
            counts.ignored
        )));
    }
    if counts.passed == 0 {
        return Err(failure(&format!("no {suite} test ran")));
    }
    Ok(counts)
}

/// Runs `cmd`, echoing its output, and sums the `test result:` lines. Fails if cargo fails.
fn run_counted(sh: &Shell, cmd: xshell::Cmd<'_>) -> crate::Result<Counts> {
    let _ = sh;
    println!("$ {cmd}");
    let output = cmd.ignore_status().output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    print!("{stdout}");
    eprint!("{stderr}");
    if !output.status.success() {
        return Err(failure(&format!("tests failed ({})", output.status)));
    }
    Ok(stdout
        .lines()
        .filter_map(parse_result_line)
        .fold(Counts::default(), Add::add))
}

/// Parses `test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; ...`.
fn parse_result_line(line: &str) -> Option<Counts> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let number = |label: &str| -> u64 {
        rest.split(';')
            .filter_map(|part| part.trim().rsplit_once(' '))
            .find(|(_, name)| *name == label)
            .and_then(|(n, _)| n.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0)
    };
    Some(Counts {
        passed: number("passed"),
        failed: number("failed"),
        ignored: number("ignored"),
    })
}

/// Integration test target names, split into (in-process, Redis-backed).
fn integration_targets(sh: &Shell) -> crate::Result<(Vec<String>, Vec<String>)> {
    let mut local = Vec::new();
    let mut redis = Vec::new();
    for crate_dir in sh.read_dir(".")? {
        let tests_dir = crate_dir.join("tests");
        if !crate_dir.join("Cargo.toml").is_file() || !tests_dir.is_dir() {
            continue;
        }
        for file in sh.read_dir(&tests_dir)? {
            if let Some(name) = test_target_name(&file) {
                if name.starts_with("redis_") {
                    redis.push(name);
                } else {
                    local.push(name);
                }
            }
        }
    }
    local.sort();
    local.dedup();
    redis.sort();
    redis.dedup();
    Ok((local, redis))
}

fn test_target_name(path: &Path) -> Option<String> {
    if path.extension()? != "rs" {
        return None;
    }
    Some(path.file_stem()?.to_str()?.to_owned())
}

fn failure(message: &str) -> Box<dyn std::error::Error> {
    message.into()
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn parses_libtest_summaries() {
        let c = parse_result_line(
            "test result: ok. 12 passed; 1 failed; 2 ignored; 0 measured; 3 filtered out; finished in 0.01s",
        )
        .unwrap();
        assert_eq!((c.passed, c.failed, c.ignored), (12, 1, 2));
        assert!(parse_result_line("running 3 tests").is_none());
    }
}
