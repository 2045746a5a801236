//! The fleet scenarios through Redis Sentinel (a master + replica + Sentinel group shared by
//! the scenarios of this binary), and the fleet through `SENTINEL FAILOVER` under load.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Load, converge_on, fleet_on, trip};
use flexiai_events::CircuitState;
use flexiai_sync::scenarios::eventually;
use flexiai_testkit::SentinelGroup;
use flexiai_testkit::backend::RedisFactory;

fn factory() -> RedisFactory {
    RedisFactory::shared_sentinel().expect("the shared Sentinel group must start")
}

flexiai_sync::fleet_scenarios!(factory());

/// `SENTINEL FAILOVER` while worker 1 serves calls: the calls never wait on Redis, every
/// worker is synced again, no worker keeps a connection on the demoted master, and a trip
/// made after the failover is stored on the new master and reaches every worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_under_load_moves_every_worker_to_the_new_master() {
    let group = SentinelGroup::start(1, 1).expect("Sentinel group");
    let mut factory = RedisFactory::with_sentinel(group);
    let config = factory.base_config("failover");
    let workers = fleet_on(&config, 3).await;
    trip(&workers, 0);
    converge_on(
        &workers,
        0,
        CircuitState::Open,
        "the first trip reaches everyone",
    )
    .await;
    let load = Load::start(&workers[1]);

    let group = factory.sentinel().unwrap();
    let old = group.master_port().unwrap();
    let new = group.failover().unwrap();

    eventually("every worker is synced after the failover", || {
        workers.iter().all(|w| w.manager.health().is_synced())
    })
    .await;
    workers[2].breaker("x").reset();
    converge_on(
        &workers,
        2,
        CircuitState::Closed,
        "the reset reaches everyone",
    )
    .await;
    trip(&workers, 2);
    converge_on(
        &workers,
        2,
        CircuitState::Open,
        "the post-failover trip reaches everyone",
    )
    .await;
    load.finish();

    let raw = |port: u16| async move {
        redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    };
    let stored: Option<String> = redis::cmd("GET")
        .arg("failover:state:x")
        .query_async(&mut raw(new).await)
        .await
        .unwrap();
    let version = workers[2].breaker("x").version();
    assert!(
        stored.is_some_and(|s| s.contains(&format!("\"version\":{version}"))),
        "the new master holds the latest snapshot"
    );
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut raw(old).await)
        .await
        .unwrap();
    // Left on the demoted master: the Sentinels' links, this test's connection, and the
    // replication link; nothing that subscribes or writes.
    let ours: Vec<&str> = clients
        .lines()
        .filter(|l| !l.contains("name=sentinel-") && !l.contains("cmd=client|list"))
        .filter(|l| l.contains(" sub=1") || l.contains("cmd=evalsha") || l.contains("cmd=set"))
        .collect();
    assert!(
        ours.is_empty(),
        "workers stayed on the demoted master: {ours:?}"
    );
}
