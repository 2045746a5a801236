//! The README's main job: `flexiai demo` on the in-memory default.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

mod support;

#[test]
fn the_in_memory_demo_fails_over_and_recovers() {
    let output = Command::new(env!("CARGO_BIN_EXE_flexiai"))
        .args(["demo", "--quiet", "--workers", "3"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    support::check_demo_summary(&stdout, 3);
}
