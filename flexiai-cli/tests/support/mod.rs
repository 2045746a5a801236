//! Checks shared by the CLI's test files.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// Reads `label ... N` from the summary.
fn number(summary: &str, label: &str) -> u64 {
    let line = summary
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} in {summary}"));
    line.split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no number in {line:?}"))
}

/// Checks the summary `flexiai demo` prints at the end of a run.
pub(crate) fn check_demo_summary(stdout: &str, workers: usize) {
    assert!(
        stdout.contains(&format!("summary ({workers} workers")),
        "{stdout}"
    );
    assert!(number(stdout, "requests served by openai") > 0, "{stdout}");
    assert!(
        number(stdout, "failovers to anthropic") > 0,
        "the fleet never failed over: {stdout}"
    );
    assert_eq!(number(stdout, "requests no provider served"), 0, "{stdout}");
    assert!(
        stdout.contains("openai opened on the first worker"),
        "not every worker opened: {stdout}"
    );
    assert!(
        stdout.contains("openai closed again on the first worker"),
        "not every worker recovered: {stdout}"
    );
    // One probe per half-open period for the whole fleet: the outage spans at most four.
    let probes: u64 = stdout
        .split("half-open probes among them: ")
        .nth(1)
        .and_then(|rest| {
            rest.trim_end_matches(|c: char| !c.is_ascii_digit())
                .split(')')
                .next()
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no probe count in {stdout}"));
    assert!((1..=4).contains(&probes), "{probes} probes: {stdout}");
}

/// Runs `flexiai ARGS --redis URL --prefix ops` and returns its stdout, failing on error.
pub(crate) fn flexiai(url: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_flexiai"))
        .args(args)
        .args(["--redis", url, "--prefix", "ops"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "flexiai {args:?}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The operator commands against the fleet at `url` (any topology): an override is stored
/// and shown by `status`, `watch` sees the next one, `workers` lists a heartbeat, `reset`
/// closes the provider again.
pub(crate) async fn ops_round_trip(url: &str) {
    use flexiai_backend::SyncBackend;
    let out = flexiai(url, &["force-open", "openai"]);
    assert!(out.contains("openai is now forced_open"), "{out}");
    let status = flexiai(url, &["status"]);
    let row = status
        .lines()
        .find(|l| l.starts_with("openai"))
        .unwrap_or_else(|| panic!("no openai row: {status}"));
    assert!(row.contains("forced_open"), "{status}");

    let watcher = std::process::Command::new(env!("CARGO_BIN_EXE_flexiai"))
        .args([
            "watch",
            "--count",
            "1",
            "--seconds",
            "30",
            "--redis",
            url,
            "--prefix",
            "ops",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The watcher subscribes asynchronously: repeat the override until it has seen one.
    let started = std::time::Instant::now();
    let mut watcher = watcher;
    loop {
        flexiai(url, &["disable", "openai"]);
        if watcher.try_wait().unwrap().is_some() {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "watch saw nothing"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let output = watcher.wait_with_output().unwrap();
    let seen = String::from_utf8_lossy(&output.stdout);
    assert!(
        seen.contains("openai") && seen.contains("disabled"),
        "{seen}"
    );

    let config = flexiai_backend_redis::RedisConfig::from_url(url)
        .unwrap()
        .key_prefix("ops")
        .channel("ops:events");
    let backend = flexiai_backend_redis::RedisBackend::new(config).unwrap();
    let worker = flexiai_events::WorkerId::new("web-1:42:1").unwrap();
    backend
        .heartbeat(&worker, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    let workers = flexiai(url, &["workers"]);
    assert!(
        workers.contains("1 live workers") && workers.contains("web-1:42:1"),
        "{workers}"
    );

    let out = flexiai(url, &["reset", "openai"]);
    assert!(out.contains("openai is now closed"), "{out}");
    let status = flexiai(url, &["status"]);
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("openai") && l.contains("closed")),
        "{status}"
    );
}
