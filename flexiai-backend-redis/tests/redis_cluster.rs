//! The conformance suite on a 3-master Redis Cluster (one cluster shared by every test of
//! this binary, hash-tagged keys), plus what only a cluster can get wrong.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use flexiai_backend::SyncBackend;
use flexiai_backend::conformance::{BackendFactory, ConformanceOptions};
use flexiai_backend_redis::{KeyLayout, RedisBackend, RedisBackendError, TopologyKind};
use flexiai_events::{BreakerSnapshot, CircuitState};

fn factory() -> common::RedisFactory {
    common::RedisFactory::shared_cluster().expect("the shared cluster must start")
}

flexiai_backend::conformance_tests!(factory());

#[test]
fn the_plain_layout_is_refused_on_a_cluster() {
    let config = factory().base_config("plain").key_layout(KeyLayout::Plain);
    assert_eq!(config.topology(), TopologyKind::Cluster);
    let err = RedisBackend::new(config).unwrap_err();
    assert!(
        matches!(
            err,
            RedisBackendError::InvalidConfig {
                field: "key_layout",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("CROSSSLOT"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_lives_in_one_slot_and_status_finds_every_provider() {
    let factory = factory();
    let backends = factory.open(1, &ConformanceOptions::default()).await;
    let backend = &backends[0];
    let providers: Vec<String> = (0..20).map(|i| format!("p{i}")).collect();
    for provider in &providers {
        let snapshot = BreakerSnapshot::new(CircuitState::Open, 1);
        backend
            .compare_and_set(provider, &snapshot, None, None)
            .await
            .unwrap();
    }
    // MGET over every provider works only because they share a slot.
    let states = backend.get_states(&providers).await.unwrap();
    assert!(states.iter().all(Option::is_some));
    // The same backend as the concrete type, for the ops-only listing.
    let config = factory.base_config("listing-only");
    let listing = RedisBackend::new(config).unwrap();
    for provider in ["b", "a"] {
        listing
            .compare_and_set(
                provider,
                &BreakerSnapshot::new(CircuitState::Open, 1),
                None,
                None,
            )
            .await
            .unwrap();
    }
    assert_eq!(listing.stored_providers().await.unwrap(), ["a", "b"]);
}

/// `EVALSHA` is routed by the script's first key; when the owning node lost its script cache
/// (`SCRIPT FLUSH` on every master, as after a restart) the `NOSCRIPT` fallback reloads it
/// and the call succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_are_reloaded_after_every_node_lost_them() {
    let factory = factory();
    let backend = RedisBackend::new(factory.base_config("noscript")).unwrap();
    let open = |v| BreakerSnapshot::new(CircuitState::Open, v);
    assert_eq!(
        backend
            .compare_and_set("p", &open(1), None, None)
            .await
            .unwrap(),
        flexiai_backend::CasOutcome::Applied
    );
    let cluster = flexiai_testkit::RedisCluster::shared().unwrap();
    for (_, port) in cluster.seeds() {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        flexiai_testkit::resp::command_ok(addr, &["SCRIPT", "FLUSH"]).unwrap();
    }
    assert_eq!(
        backend
            .compare_and_set("p", &open(2), Some(open(1).revision()), None)
            .await
            .unwrap(),
        flexiai_backend::CasOutcome::Applied
    );
    let lease = backend
        .acquire_lock("probe:p", std::time::Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert!(backend.release_lock(&lease).await.unwrap());
    assert_eq!(backend.get_state("p").await.unwrap(), Some(open(2)));
}
