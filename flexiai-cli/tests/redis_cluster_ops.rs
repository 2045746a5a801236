//! The operator commands (`status`, `watch`, `workers`, overrides) on a Redis Cluster.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use flexiai_testkit::RedisCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_work_on_a_cluster() {
    let cluster = RedisCluster::start(3, 0).unwrap();
    let seeds: Vec<String> = cluster
        .seeds()
        .iter()
        .map(|(host, port)| format!("{host}:{port}"))
        .collect();
    let url = format!("redis+cluster://{}", seeds.join(","));
    support::ops_round_trip(&url).await;
}
