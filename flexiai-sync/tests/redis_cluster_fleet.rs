//! The fleet scenarios on a 3-master Redis Cluster (shared by the scenarios of this binary),
//! and the fleet through what a cluster does in production: a master with a replica killed
//! under load, and the namespace's slot migrated to another master.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Load, converge_on, fleet_on, trip, within};
use flexiai_backend::SyncBackend;
use flexiai_backend_redis::RedisBackend;
use flexiai_events::CircuitState;
use flexiai_testkit::RedisCluster;
use flexiai_testkit::backend::RedisFactory;

fn factory() -> RedisFactory {
    RedisFactory::shared_cluster().expect("the shared cluster must start")
}

flexiai_sync::fleet_scenarios!(factory());

/// Kill -9 of the master that owns the fleet's slot, while worker 0 serves calls: its
/// replica is promoted, every worker gets back to synced, and a trip made after the
/// failover reaches every worker and the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_fails_over_to_its_replica_and_every_worker_converges() {
    let cluster = RedisCluster::start(3, 1).expect("cluster with replicas");
    let mut factory = RedisFactory::with_cluster(cluster);
    let config = factory.base_config("killed");
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

    let cluster = factory.cluster().unwrap();
    let slot = cluster.slot_of("{killed}").unwrap();
    let owner = cluster.owner_of(slot).unwrap();
    let master = cluster
        .masters()
        .iter_mut()
        .find(|m| m.port() == owner)
        .unwrap();
    let calls_before = load.calls();
    master.kill().unwrap();
    within(
        Duration::from_secs(60),
        "the replica takes over the slot",
        async || cluster.owner_of(slot).is_ok_and(|port| port != owner),
    )
    .await;
    // The failover took at least the cluster's node timeout (1 s): calls went on meanwhile.
    let during = load.calls() - calls_before;
    assert!(
        during > 100,
        "{during} calls while the slot had no master: the hot path waited on Redis"
    );
    cluster.wait_ok().unwrap();

    // Generous: reconnecting and the recovery hysteresis take many round trips, and an
    // instrumented or loaded machine makes each one several times slower.
    within(
        Duration::from_secs(60),
        "every worker is synced again",
        async || workers.iter().all(|w| w.manager.health().is_synced()),
    )
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
    let fresh = RedisBackend::new(config).unwrap();
    let stored = fresh.get_state("x").await.unwrap().unwrap();
    assert_eq!(stored.version, workers[2].breaker("x").version());
    load.finish();
}

/// The fleet's slot moves to another master (`SETSLOT IMPORTING`/`MIGRATING`, `MIGRATE`,
/// `SETSLOT NODE`) between two transitions: both reach every worker, the second is stored on
/// the new owner, and the subscription (global pub/sub) never noticed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migrated_slot_keeps_the_fleet_converging() {
    let factory = factory();
    let config = factory.base_config("migrating");
    let workers = fleet_on(&config, 3).await;
    trip(&workers, 0);
    converge_on(&workers, 0, CircuitState::Open, "the trip reaches everyone").await;

    let cluster = RedisCluster::shared().unwrap();
    let slot = cluster.slot_of("{migrating}").unwrap();
    let owner = cluster.owner_of(slot).unwrap();
    let target = cluster
        .seeds()
        .into_iter()
        .map(|(_, port)| port)
        .find(|port| *port != owner)
        .unwrap();
    cluster.migrate_slot(slot, target).unwrap();
    assert_eq!(cluster.owner_of(slot).unwrap(), target);

    workers[1].breaker("x").reset();
    converge_on(
        &workers,
        1,
        CircuitState::Closed,
        "the reset after the move reaches everyone",
    )
    .await;
    trip(&workers, 2);
    converge_on(
        &workers,
        2,
        CircuitState::Open,
        "a second trip reaches everyone",
    )
    .await;
    let mut on_target = redis::Client::open(format!("redis://127.0.0.1:{target}"))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stored: Option<String> = redis::cmd("GET")
        .arg("{migrating}:state:x")
        .query_async(&mut on_target)
        .await
        .unwrap();
    let version = workers[2].breaker("x").version();
    assert!(
        stored.is_some_and(|s| s.contains(&format!("\"version\":{version}"))),
        "the new owner holds the latest snapshot"
    );
}
