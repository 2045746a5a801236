//! Security of a fleet on real Redis: a fleet scenario as a least-privilege ACL user, a
//! signed fleet, key rotation, and secrets kept out of config output, errors and logs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use flexiai_backend::SyncBackend;
use flexiai_backend_redis::{RedisBackend, minimal_acl_rules};
use flexiai_breaker::BreakerConfig;
use flexiai_events::CircuitState;
use flexiai_serde::{EventAuth, MacKey};
use flexiai_sync::scenarios::{self, eventually};
use flexiai_sync::{SecretString, SyncConfig};
use flexiai_testkit::RedisServer;
use flexiai_testkit::backend::{RedisFactory, test_config};

const ACL_PASSWORD: &str = "fleet-acl-pass-31d7";
const OLD_KEY: &str = "old-fleet-key-never-logged-01";
const NEW_KEY: &str = "new-fleet-key-never-logged-02";

fn acl_factory() -> RedisFactory {
    let rules = minimal_acl_rules("flexiai");
    let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
    let server = RedisServer::builder()
        .acl_user_with_rules("flexiai", ACL_PASSWORD, &rules)
        .start()
        .expect("redis-server must start");
    RedisFactory::with_server(server)
        .prefix("flexiai:fleet")
        .configure(|c| c.username("flexiai").password(ACL_PASSWORD))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trip_reaches_every_worker_as_the_least_privilege_acl_user() {
    scenarios::a_trip_reaches_every_worker(&acl_factory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_probes_are_rationed_as_the_acl_user() {
    scenarios::half_open_probes_are_rationed_fleet_wide(&acl_factory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_fleet_converges() {
    let factory = RedisFactory::start()
        .unwrap()
        .configure(|c| c.event_auth(EventAuth::new(MacKey::new(NEW_KEY).unwrap())));
    scenarios::a_trip_reaches_every_worker(&factory).await;
    scenarios::an_emptied_store_is_rewritten(&factory).await;
}

/// Rotation: workers already on the new key still accept the old one during the grace
/// period, so the fleet keeps converging while workers move over one at a time; workers
/// still on the old key reject the new key's events (and count them) until they move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_accepts_the_previous_key_during_its_grace_period() {
    let server = RedisServer::start().unwrap();
    let config = BreakerConfig::default().with_recovery_timeout(Duration::from_secs(600));
    let old = || EventAuth::new(MacKey::new(OLD_KEY).unwrap());
    let rotated = || {
        EventAuth::new(MacKey::new(NEW_KEY).unwrap())
            .with_previous(MacKey::new(OLD_KEY).unwrap(), Duration::from_secs(600))
    };
    let backend = |auth: EventAuth| -> Arc<dyn SyncBackend> {
        Arc::new(
            RedisBackend::new(
                test_config(server.port(), "flexiai")
                    .channel("flexiai:events")
                    // Signed on Python's channel on purpose (no Python worker here).
                    .python_compatible(false)
                    .event_auth(auth),
            )
            .unwrap(),
        )
    };
    let not_yet = scenarios::worker(backend(old()), &["x"], &config).await;
    let moved = scenarios::worker(backend(rotated()), &["x"], &config).await;
    // Old-key events reach the moved worker.
    not_yet.breaker("x").force_open();
    eventually("the moved worker accepts the previous key", || {
        moved.breaker("x").state() == CircuitState::ForcedOpen
    })
    .await;
    // New-key events are refused (and counted) by the worker still on the old key.
    let rejected = not_yet.manager.metrics().events_unauthenticated;
    moved.breaker("x").disable();
    eventually(
        "the old-key worker counts the new key as unauthenticated",
        || not_yet.manager.metrics().events_unauthenticated > rejected,
    )
    .await;
    assert_eq!(not_yet.breaker("x").state(), CircuitState::ForcedOpen);
}

/// The Redis password and both event keys never show in `Debug`, `Display`, errors or logs,
/// from a config file through a running manager whose events fail authentication.
#[tokio::test(flavor = "current_thread")]
async fn secrets_stay_out_of_config_output_errors_and_logs() {
    let captured = flexiai_testkit::LogCapture::start();

    let server = RedisServer::builder()
        .password(ACL_PASSWORD)
        .start()
        .unwrap();
    let text = format!(
        r#"
        backend = "redis"
        channel = "fleet:signed"
        event_key = "{NEW_KEY}"
        previous_event_key = "{OLD_KEY}"
        flush_interval_ms = 10
        [redis]
        url = "redis://:{ACL_PASSWORD}@127.0.0.1:{}"
        "#,
        server.port()
    );
    let config = SyncConfig::from_toml_str(&text).unwrap();
    let mut texts = vec![format!("{config:?}"), format!("{:?}", config.redis)];
    // Bad keys: the errors name the field, never the value.
    for bad in [
        {
            let mut bad = SyncConfig::default();
            bad.event_key = Some(SecretString::new("short-key"));
            bad
        },
        {
            let mut bad = SyncConfig::default();
            bad.previous_event_key = Some(SecretString::new(OLD_KEY));
            bad
        },
    ] {
        let err = bad.validate().unwrap_err();
        assert!(err.to_string().contains("event_key"), "{err}");
        texts.push(err.to_string());
        texts.push(format!("{err:?}"));
    }
    let err = SyncConfig::default()
        .apply_env([(
            "FLEXIAI_SYNC_EVENT_KEY".to_owned(),
            "tiny-secret".to_owned(),
        )])
        .unwrap_err();
    assert!(!err.to_string().contains("tiny-secret"), "{err}");

    let manager = flexiai_sync::StateSyncManager::from_config(&config).unwrap();
    texts.push(format!("{manager:?}"));
    let breaker =
        Arc::new(flexiai_breaker::CircuitBreaker::new("openai", BreakerConfig::default()).unwrap());
    manager
        .register_circuit_breaker(Arc::clone(&breaker))
        .unwrap();
    manager.start().await.unwrap();
    assert!(manager.health().is_synced());
    // A hostile unsigned event and one under an unknown key: rejected, logged, counted.
    let hostile = RedisBackend::new(
        test_config(server.port(), "flexiai")
            .channel("fleet:signed")
            .password(ACL_PASSWORD),
    )
    .unwrap();
    hostile
        .publish_raw(
            br#"{"__event_type__": "CircuitBreakerEvent", "provider_name": "payload-marker"}"#,
        )
        .await
        .unwrap();
    eventually("the manager counts the unsigned payload", || {
        manager.metrics().events_unauthenticated == 1
    })
    .await;
    manager.stop().await.unwrap();
    // A wrong Redis password: the degraded reason and errors are clean too.
    let wrong = SyncConfig::from_toml_str(&format!(
        "backend = \"redis\"\nchannel = \"fleet:signed\"\nevent_key = \"{NEW_KEY}\"\n[redis]\nurl = \"redis://:wrong-pass-9@127.0.0.1:{}\"\n",
        server.port()
    ))
    .unwrap();
    let manager = flexiai_sync::StateSyncManager::from_config(&wrong).unwrap();
    manager.start().await.unwrap();
    texts.push(manager.health().mode.to_string());
    manager.stop().await.unwrap();

    let logs = captured.text();
    assert!(
        logs.contains("rejected a payload"),
        "no rejection logged:\n{logs}"
    );
    texts.push(logs);
    for text in &texts {
        for secret in [
            ACL_PASSWORD,
            NEW_KEY,
            OLD_KEY,
            "wrong-pass-9",
            "payload-marker",
            "short-key",
        ] {
            assert!(!text.contains(secret), "{secret:?} leaked into: {text}");
        }
    }
}
