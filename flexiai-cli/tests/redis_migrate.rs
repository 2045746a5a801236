//! `flexiai migrate-keys` against a private redis-server: a plain-layout fleet (the Python
//! original's names) moves to the hash-tagged layout and back, version-checked, idempotent.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;
use std::time::Duration;

use flexiai_backend::{CasOutcome, SyncBackend};
use flexiai_backend_redis::{KeyLayout, RedisBackend, RedisConfig};
use flexiai_events::{BreakerSnapshot, CircuitState};
use flexiai_testkit::RedisServer;

fn migrate(server: &RedisServer, to: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_flexiai"))
        .args([
            "migrate-keys",
            "--redis",
            &server.url(),
            "--prefix",
            "fleet",
            "--to",
            to,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn backend(server: &RedisServer, layout: KeyLayout) -> RedisBackend {
    RedisBackend::new(
        RedisConfig::new("127.0.0.1", server.port())
            .key_prefix("fleet")
            .channel("fleet:events")
            .key_layout(layout),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_keys_moves_a_fleet_between_layouts() {
    let server = RedisServer::start().unwrap();
    let plain = backend(&server, KeyLayout::Plain);
    let tagged = backend(&server, KeyLayout::HashTagged);
    let open = |v| BreakerSnapshot::new(CircuitState::Open, v);
    plain
        .compare_and_set("openai", &open(3), None, None)
        .await
        .unwrap();
    plain
        .compare_and_set("anthropic", &open(2), None, None)
        .await
        .unwrap();
    plain
        .compare_and_set("mistral", &open(5), None, None)
        .await
        .unwrap();
    // A worker already on the new layout wrote a newer mistral: it must win.
    tagged
        .compare_and_set(
            "mistral",
            &BreakerSnapshot::new(CircuitState::Closed, 7),
            None,
            None,
        )
        .await
        .unwrap();
    let lease = plain
        .acquire_lock("probe:openai", Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();

    let out = migrate(&server, "hash-tagged");
    assert!(
        out.contains("2 copied, 1 already current, 0 left in place, 1 fencing counters raised"),
        "{out}"
    );
    assert!(
        plain.stored_providers().await.unwrap().is_empty(),
        "source keys remain"
    );
    assert_eq!(
        tagged.stored_providers().await.unwrap(),
        ["anthropic", "mistral", "openai"]
    );
    assert_eq!(tagged.get_state("openai").await.unwrap(), Some(open(3)));
    let mistral = tagged.get_state("mistral").await.unwrap().unwrap();
    assert_eq!((mistral.state, mistral.version), (CircuitState::Closed, 7));
    // The fence only grows across the move.
    plain.release_lock(&lease).await.unwrap();
    let next = tagged
        .acquire_lock("probe:openai", Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert!(next.fencing_token() > lease.fencing_token());

    // Idempotent: a second run finds nothing to move.
    let again = migrate(&server, "hash-tagged");
    assert!(
        again.contains("0 copied, 0 already current, 0 left in place"),
        "{again}"
    );

    // And back, for a fleet returning to the Python names.
    let back = migrate(&server, "plain");
    assert!(back.contains("3 copied"), "{back}");
    assert_eq!(plain.get_state("openai").await.unwrap(), Some(open(3)));
    assert_eq!(
        plain
            .compare_and_set("openai", &open(3), None, None)
            .await
            .unwrap(),
        CasOutcome::Stale { current: open(3) }
    );
    assert!(tagged.stored_providers().await.unwrap().is_empty());
}

/// A moved open period ends when the original would have: the copy is aged by the time the
/// source snapshot had been stored (the target stamps it as written at the move).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_open_period_keeps_its_deadline() {
    let server = RedisServer::start().unwrap();
    let plain = backend(&server, KeyLayout::Plain);
    let tagged = backend(&server, KeyLayout::HashTagged);
    let mut open = BreakerSnapshot::new(CircuitState::Open, 3);
    open.open_remaining_ms = Some(60_000);
    plain
        .compare_and_set("openai", &open, None, None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let out = migrate(&server, "hash-tagged");
    assert!(out.contains("1 copied"), "{out}");
    let left = tagged
        .get_state("openai")
        .await
        .unwrap()
        .and_then(|s| s.open_remaining_ms)
        .unwrap();
    assert!(
        (30_000..=59_600).contains(&left),
        "{left} ms left after 400 ms stored and a move: the copy was not aged"
    );
}
