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
