//! Fleet counting, batched transitions and live workers on real redis-server: key layout
//! and TTLs, the script cache lost under a pipeline, unreadable values inside a batch.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{config, raw, server};
use flexiai_backend::{
    CasOutcome, CasRequest, FleetCounts, FleetWindow, OutcomeBatch, SyncBackend,
};
use flexiai_backend_redis::RedisBackend;
use flexiai_events::{BreakerSnapshot, CircuitState, WorkerId};
use redis::AsyncCommands;

#[tokio::test]
async fn fleet_keys_live_in_one_hash_per_period_and_expire() {
    let server = server();
    let backend = RedisBackend::new(config(server.port(), "fk")).unwrap();
    let mut con = raw(&server.url()).await;
    let window = FleetWindow::new(Duration::from_millis(800), 4).unwrap();
    let totals = backend
        .record_outcomes("openai", &OutcomeBatch::now(3, 2, 5), &window)
        .await
        .unwrap();
    assert_eq!(
        totals,
        FleetCounts {
            failures: 2,
            successes: 5
        }
    );
    let fields: std::collections::HashMap<String, u64> =
        con.hgetall("fk:outcomes:openai:3").await.unwrap();
    assert_eq!(fields.len(), 2, "{fields:?}");
    assert_eq!(fields.values().sum::<u64>(), 7);
    let pttl: i64 = con.pttl("fk:outcomes:openai:3").await.unwrap();
    assert!(
        pttl > 0 && pttl <= 1000,
        "outcomes expire after window + slice: {pttl}"
    );
    let storm: String = con.get("fk:storm:openai").await.unwrap();
    assert_eq!(storm, "3");
    let pttl: i64 = con.pttl("fk:storm:openai").await.unwrap();
    assert!(pttl > 0 && pttl <= 800, "{pttl}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let exists: bool = con.exists("fk:outcomes:openai:3").await.unwrap();
    assert!(!exists, "an idle period's counts must not stay behind");
}

#[tokio::test]
async fn batched_cas_survives_a_flushed_script_cache() {
    let server = server();
    let backend = RedisBackend::new(config(server.port(), "bc")).unwrap();
    let v1 = BreakerSnapshot::new(CircuitState::Open, 1);
    assert_eq!(
        backend.compare_and_set("p", &v1, None, None).await.unwrap(),
        CasOutcome::Applied
    );
    let mut con = raw(&server.url()).await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut con)
        .await
        .unwrap();
    let (v2, q1) = (
        BreakerSnapshot::new(CircuitState::Closed, 2),
        BreakerSnapshot::new(CircuitState::Open, 1),
    );
    let requests = [
        CasRequest {
            provider: "p",
            snapshot: &v2,
            expected: Some(v1.revision()),
            event: None,
        },
        CasRequest {
            provider: "q",
            snapshot: &q1,
            expected: None,
            event: None,
        },
    ];
    assert_eq!(
        backend.compare_and_set_many(&requests).await.unwrap(),
        vec![CasOutcome::Applied, CasOutcome::Applied]
    );
    assert_eq!(
        backend.get_states(&["p".into(), "q".into()]).await.unwrap(),
        vec![Some(v2), Some(q1)]
    );
}

#[tokio::test]
async fn batched_cas_replaces_an_unreadable_stored_value() {
    let server = server();
    let backend = RedisBackend::new(config(server.port(), "bu")).unwrap();
    let mut con = raw(&server.url()).await;
    // Decodes as JSON with a huge version, but is no snapshot: it must not block history.
    let _: () = con
        .set("bu:state:bad", r#"{"version": 1e15, "state": 7}"#)
        .await
        .unwrap();
    let (fresh, other) = (
        BreakerSnapshot::new(CircuitState::Open, 1),
        BreakerSnapshot::new(CircuitState::Open, 1),
    );
    let requests = [
        CasRequest {
            provider: "bad",
            snapshot: &fresh,
            expected: None,
            event: None,
        },
        CasRequest {
            provider: "good",
            snapshot: &other,
            expected: None,
            event: None,
        },
    ];
    assert_eq!(
        backend.compare_and_set_many(&requests).await.unwrap(),
        vec![CasOutcome::Applied, CasOutcome::Applied]
    );
    assert_eq!(backend.get_state("bad").await.unwrap(), Some(fresh));
}

#[tokio::test]
async fn live_workers_never_scan_and_expire_by_server_time() {
    let server = server();
    let backend = RedisBackend::new(config(server.port(), "lw")).unwrap();
    let mut con = raw(&server.url()).await;
    let workers: Vec<WorkerId> = (0..50)
        .map(|i| WorkerId::new(format!("host:{i}:1700000000000")).unwrap())
        .collect();
    for (i, worker) in workers.iter().enumerate() {
        let ttl = if i % 2 == 0 {
            Duration::from_millis(300)
        } else {
            Duration::from_secs(30)
        };
        backend.heartbeat(worker, ttl).await.unwrap();
    }
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(backend.live_workers().await.unwrap().len(), 50);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut expected: Vec<WorkerId> = workers.iter().skip(1).step_by(2).cloned().collect();
    expected.sort();
    assert_eq!(backend.live_workers().await.unwrap(), expected);
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(
        !stats.contains("cmdstat_scan"),
        "live_workers scanned: {stats}"
    );
    // Expired members were dropped from the set itself.
    let members: u64 = con.zcard("lw:workers").await.unwrap();
    assert_eq!(members, 25);
    backend.remove_worker(&workers[1]).await.unwrap();
    assert_eq!(backend.live_workers().await.unwrap().len(), 24);
}

/// The written-at stamp: set with the state's TTL by every write, made for the value it was
/// written with, so a value another writer `SET` since (a Python worker) reads as written,
/// not aged by the stamp of the value it replaced.
#[tokio::test]
async fn the_written_stamp_ages_only_the_value_it_was_made_for() {
    let server = server();
    let backend = RedisBackend::new(config(server.port(), "ws")).unwrap();
    let mut con = raw(&server.url()).await;
    let mut open = BreakerSnapshot::new(CircuitState::Open, 1);
    open.open_remaining_ms = Some(60_000);
    assert_eq!(
        backend
            .compare_and_set("p", &open, None, None)
            .await
            .unwrap(),
        CasOutcome::Applied
    );
    let stamp: String = con.get("ws:written:p").await.unwrap();
    let (at, digest) = stamp.split_once(':').unwrap();
    assert!(at.parse::<u64>().unwrap() > 1_600_000_000_000, "{stamp}");
    assert_eq!(digest.len(), 40, "{stamp}");
    let state_ttl: i64 = con.pttl("ws:state:p").await.unwrap();
    let stamp_ttl: i64 = con.pttl("ws:written:p").await.unwrap();
    assert!(
        state_ttl > 0 && (state_ttl - stamp_ttl).abs() < 1_000,
        "{state_ttl} {stamp_ttl}"
    );
    // Another writer's value, in the same encoding, without a stamp of its own.
    let mut foreign = open.clone();
    foreign.open_remaining_ms = Some(50_000);
    let _: () = con
        .set(
            "ws:state:p",
            flexiai_serde::StateSerializer::new(flexiai_serde::Format::Json)
                .serialize_state(&foreign)
                .unwrap(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        backend
            .get_state("p")
            .await
            .unwrap()
            .and_then(|s| s.open_remaining_ms),
        Some(50_000),
        "a value the stamp was not made for was aged"
    );
    // Our next write stamps again, and that value ages.
    let mut next = open.clone();
    next.version = 2;
    assert_eq!(
        backend
            .compare_and_set("p", &next, Some(foreign.revision()), None)
            .await
            .unwrap(),
        CasOutcome::Applied
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let left = backend
        .get_state("p")
        .await
        .unwrap()
        .and_then(|s| s.open_remaining_ms);
    assert!(left.is_some_and(|ms| ms <= 59_700), "{left:?}");
}
