//! The operator commands (`status`, `watch`, `workers`, overrides) through Redis Sentinel.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use flexiai_testkit::SentinelGroup;
use flexiai_testkit::sentinel::MASTER_NAME;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_work_through_sentinel() {
    let group = SentinelGroup::start(1, 1).unwrap();
    let (host, port) = group.sentinel_addrs().remove(0);
    let url = format!("redis+sentinel://{host}:{port}/{MASTER_NAME}");
    support::ops_round_trip(&url).await;
}
