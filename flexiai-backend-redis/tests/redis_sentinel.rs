//! The conformance suite through Redis Sentinel (one master + replica + Sentinel group
//! shared by every test of this binary), and the backend following a `SENTINEL FAILOVER`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use flexiai_backend::{CasOutcome, Notification, SyncBackend};
use flexiai_backend_redis::{RedisBackend, RedisBackendError, RedisConfig, TopologyKind};
use flexiai_events::{BreakerSnapshot, CircuitBreakerEvent, CircuitState, Event, WorkerId};
use flexiai_testkit::SentinelGroup;

fn factory() -> common::RedisFactory {
    common::RedisFactory::shared_sentinel().expect("the shared Sentinel group must start")
}

flexiai_backend::conformance_tests!(factory());

#[test]
fn sentinel_settings_name_their_field() {
    let err = RedisBackend::new(RedisConfig::default().sentinel(Vec::<(String, u16)>::new(), "m"))
        .unwrap_err();
    assert!(
        matches!(
            err,
            RedisBackendError::InvalidConfig {
                field: "sentinel.sentinels",
                ..
            }
        ),
        "{err}"
    );
    let err = RedisBackend::new(RedisConfig::default().sentinel([("127.0.0.1", 26379)], " "))
        .unwrap_err();
    assert!(
        matches!(
            err,
            RedisBackendError::InvalidConfig {
                field: "sentinel.master_name",
                ..
            }
        ),
        "{err}"
    );
    let config = RedisConfig::from_url("redis+sentinel://:pw@a:1,b/m/3").unwrap();
    assert_eq!(config.topology(), TopologyKind::Sentinel);
    assert_eq!(config.db(), 3);
    assert!(!format!("{config:?}").contains("pw"));
}

/// Writes keep going through `SENTINEL FAILOVER`: once the new master is named, every write
/// lands on it (read back from the new master directly), nothing stays connected to the
/// demoted one (no subscriber left on it), and the subscription moved to the new master (it
/// reports `Resubscribed`, then receives what is published there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_moves_commands_and_the_subscription_to_the_new_master() {
    let group = SentinelGroup::start(1, 1).expect("Sentinel group");
    let mut factory = common::RedisFactory::with_sentinel(group);
    let config = factory.base_config("failover");
    let writer = RedisBackend::new(config.clone()).unwrap();
    let reader = RedisBackend::new(config).unwrap();
    let mut sub = reader.subscribe().await.unwrap();
    let old_port = factory.sentinel().unwrap().master_port().unwrap();
    let open = |v| BreakerSnapshot::new(CircuitState::Open, v);
    assert_eq!(
        writer
            .compare_and_set("p", &open(1), None, None)
            .await
            .unwrap(),
        CasOutcome::Applied
    );

    let new_port = factory.sentinel().unwrap().failover().unwrap();
    assert_ne!(new_port, old_port);
    let mut on_new = common::raw(&format!("redis://127.0.0.1:{new_port}")).await;
    let stored_version = |raw: String| {
        let digits: String = raw
            .split("\"version\":")
            .nth(1)?
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse::<u64>().ok()
    };
    // Writes fail or land on the old master only until the backend follows; then every
    // write is applied on the new master.
    let mut version = 1;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        version += 1;
        // Grown from what the store holds now: a write lost with the old master left the
        // new one behind, and the successor rule wants the writer to name what it replaces.
        let grown_from = writer
            .get_state("p")
            .await
            .ok()
            .flatten()
            .map(|s| s.revision());
        let applied = writer
            .compare_and_set("p", &open(version), grown_from, None)
            .await;
        let stored: Option<String> = redis::cmd("GET")
            .arg("failover:state:p")
            .query_async(&mut on_new)
            .await
            .unwrap();
        if matches!(applied, Ok(CasOutcome::Applied))
            && stored.and_then(stored_version) == Some(version)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes never reached the new master"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..5 {
        version += 1;
        assert_eq!(
            writer
                .compare_and_set(
                    "p",
                    &open(version),
                    Some(open(version - 1).revision()),
                    None
                )
                .await
                .unwrap(),
            CasOutcome::Applied
        );
        let stored: Option<String> = redis::cmd("GET")
            .arg("failover:state:p")
            .query_async(&mut on_new)
            .await
            .unwrap();
        assert_eq!(stored.and_then(stored_version), Some(version));
    }

    // The subscription reports the gap, then hears the new master.
    let resubscribed = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(n) = sub.recv().await {
            if matches!(n, Notification::Resubscribed) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(resubscribed, Ok(true), "no Resubscribed after the failover");
    let mut on_old = common::raw(&format!("redis://127.0.0.1:{old_port}")).await;
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut on_old)
        .await
        .unwrap();
    assert!(
        !clients
            .lines()
            .any(|l| l.contains(" sub=1") && !l.contains("name=sentinel-")),
        "a subscriber stayed on the demoted master:\n{clients}"
    );
    let event = Event::from(CircuitBreakerEvent::transition(
        "p",
        WorkerId::new("h:1:1").unwrap(),
        CircuitState::Open,
        version + 1,
    ));
    writer.publish_event(&event).await.unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(n) = sub.recv().await {
            if let Notification::Event(e) = n {
                return Some(e);
            }
        }
        None
    })
    .await
    .unwrap();
    assert_eq!(heard, Some(event));
}
