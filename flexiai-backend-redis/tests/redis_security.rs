//! Security against real redis-server processes: TLS with a CA made in the test, a
//! least-privilege ACL user running the whole conformance suite, signed events and snapshots
//! (with the CAS script reading versions under the signature), and secrets kept out of
//! `Debug`, `Display`, errors and logs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use flexiai_backend::{BackendError, CasOutcome, Notification, SyncBackend};
use flexiai_backend_redis::{RedisBackend, RedisBackendError, RedisConfig, minimal_acl_rules};
use flexiai_events::{BreakerSnapshot, CircuitBreakerEvent, CircuitState, Event, WorkerId};
use flexiai_serde::{EventAuth, Format, MacKey, SIGNED_HEADER_LEN};
use flexiai_testkit::RedisServer;
use flexiai_testkit::backend::RedisFactory;
use flexiai_testkit::tls::TestCa;

const ACL_USER: &str = "flexiai";
const ACL_PASSWORD: &str = "acl-pass-7f3a9c";
const EVENT_SECRET: &str = "event-secret-do-not-log-8e1d";

fn auth() -> EventAuth {
    EventAuth::new(MacKey::new(EVENT_SECRET).unwrap())
}

/// A server whose only useful user is restricted to `flexiai:*` keys and channels and to
/// the commands the backend sends.
fn acl_server() -> RedisServer {
    let rules = minimal_acl_rules("flexiai");
    let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
    RedisServer::builder()
        .acl_user_with_rules(ACL_USER, ACL_PASSWORD, &rules)
        .start()
        .expect("redis-server must start")
}

fn acl_factory() -> RedisFactory {
    RedisFactory::with_server(acl_server())
        .prefix("flexiai:suite")
        .configure(|config| config.username(ACL_USER).password(ACL_PASSWORD))
}

/// The whole conformance suite as the least-privilege ACL user.
mod acl {
    flexiai_backend::conformance_tests!(super::acl_factory());
}

/// The whole conformance suite with signed events and snapshots, in both formats.
mod signed_json {
    flexiai_backend::conformance_tests!(
        flexiai_testkit::backend::RedisFactory::start()
            .unwrap()
            .configure(|config| config.event_auth(super::auth()))
    );
}

mod signed_msgpack {
    flexiai_backend::conformance_tests!(
        flexiai_testkit::backend::RedisFactory::with_format(flexiai_serde::Format::MessagePack)
            .unwrap()
            .configure(|config| config.event_auth(super::auth()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acl_user_cannot_reach_outside_its_namespace() {
    let server = acl_server();
    let url = format!(
        "redis://{ACL_USER}:{ACL_PASSWORD}@127.0.0.1:{}",
        server.port()
    );
    let mut conn = common::raw(&url).await;
    let denied: redis::RedisResult<Option<String>> = redis::cmd("GET")
        .arg("other:key")
        .query_async(&mut conn)
        .await;
    assert!(denied.is_err(), "a key outside flexiai:* was readable");
    let denied: redis::RedisResult<String> = redis::cmd("FLUSHALL").query_async(&mut conn).await;
    assert!(denied.is_err(), "FLUSHALL was allowed");
    // A backend outside the namespace fails with a clear authentication (permission) error.
    let outside = RedisBackend::new(
        common::config(server.port(), "elsewhere")
            .username(ACL_USER)
            .password(ACL_PASSWORD),
    )
    .unwrap();
    let err = outside.get_state("p").await.unwrap_err();
    assert!(
        matches!(err, BackendError::Authentication { .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains(ACL_PASSWORD), "{err}");
}

fn tls_server(ca: &TestCa) -> RedisServer {
    let cert = ca.issue(&["localhost", "127.0.0.1"]).unwrap();
    RedisServer::builder()
        .tls_pem(cert.cert_pem, cert.key_pem, ca.cert_pem())
        .start()
        .expect("redis-server with TLS must start")
}

fn tls_config(server: &RedisServer, ca_pem: &str) -> RedisConfig {
    RedisConfig::from_url(&server.tls_url().unwrap())
        .unwrap()
        .ca_certificate(ca_pem.as_bytes().to_vec())
        .key_prefix("tls")
        .channel("tls:events")
        .command_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_a_ca_made_in_the_test_verifies_the_server() {
    let ca = TestCa::new("flexiai test CA").unwrap();
    let server = tls_server(&ca);
    let backend = RedisBackend::connect(tls_config(&server, ca.cert_pem()))
        .await
        .unwrap();
    let mut events = backend.subscribe().await.unwrap();
    let open = BreakerSnapshot::new(CircuitState::Open, 1);
    let event = Event::from(CircuitBreakerEvent::transition(
        "p",
        WorkerId::new("w:1:2").unwrap(),
        CircuitState::Open,
        1,
    ));
    assert_eq!(
        backend
            .compare_and_set("p", &open, None, Some(&event))
            .await
            .unwrap(),
        CasOutcome::Applied
    );
    assert_eq!(backend.get_state("p").await.unwrap(), Some(open));
    let received = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap();
    assert_eq!(received, Some(Notification::Event(event)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_trusting_another_ca_fails_with_a_clear_error() {
    let ca = TestCa::new("flexiai test CA").unwrap();
    let server = tls_server(&ca);
    let stranger = TestCa::new("some other CA").unwrap();
    let err = RedisBackend::connect(tls_config(&server, stranger.cert_pem()))
        .await
        .unwrap_err();
    assert!(matches!(err, RedisBackendError::Tls { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("TLS") && text.contains("certificate"),
        "{text}"
    );
    // Through the trait too.
    let backend = RedisBackend::new(tls_config(&server, stranger.cert_pem())).unwrap();
    let err = backend.get_state("p").await.unwrap_err().to_string();
    assert!(err.contains("TLS"), "{err}");
    // Not a PEM document at all: refused when building, naming the field.
    let err = RedisBackend::new(
        tls_config(&server, ca.cert_pem()).ca_certificate(b"not a certificate".to_vec()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("ca_certificate"), "{err}");
}

/// Signed snapshots against the real CAS script: versions are read under the signature,
/// unreadable stored values (unsigned while a key is required, forged, moved from another
/// key) are replaced instead of blocking history, and Python's unversioned JSON still counts
/// as version 0 for an unsigned fleet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_snapshots_and_the_cas_script() {
    let server = common::server();
    let signed = RedisBackend::new(
        common::config(server.port(), "flexiai")
            .python_compatible(false)
            .event_auth(auth()),
    )
    .unwrap();
    let plain = RedisBackend::new(common::config(server.port(), "flexiai")).unwrap();
    let mut raw = common::raw(&server.url()).await;
    let snapshot = |v| BreakerSnapshot::new(CircuitState::Open, v);

    // A signed v5 is stored with the documented header; v3 loses, v6 wins.
    assert_eq!(
        signed
            .compare_and_set("a", &snapshot(5), None, None)
            .await
            .unwrap(),
        CasOutcome::Applied
    );
    let stored: Vec<u8> = redis::cmd("GET")
        .arg("flexiai:state:a")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(stored[0], 0xc2);
    assert_eq!(stored[SIGNED_HEADER_LEN], b'{');
    assert_eq!(
        signed
            .compare_and_set("a", &snapshot(3), Some(snapshot(5).revision()), None)
            .await
            .unwrap(),
        CasOutcome::Stale {
            current: snapshot(5)
        }
    );
    assert_eq!(
        signed
            .compare_and_set("a", &snapshot(6), Some(snapshot(5).revision()), None)
            .await
            .unwrap(),
        CasOutcome::Applied
    );
    // A worker without the key cannot read it, and says why.
    let err = plain.get_state("a").await.unwrap_err();
    assert!(
        matches!(err, BackendError::Codec(ref e) if e.reason() == "unexpected_signature"),
        "{err:?}"
    );

    // An unsigned value (a Python writer, or a hostile one) with a huge version does not
    // block a keyed fleet: it reads as unauthenticated and the next CAS replaces it.
    let _: () = redis::cmd("SET")
        .arg("flexiai:state:b")
        .arg(r#"{"state": "closed", "failure_count": 0, "version": 999999}"#)
        .query_async(&mut raw)
        .await
        .unwrap();
    let err = signed.get_state("b").await.unwrap_err();
    assert!(
        matches!(err, BackendError::Codec(ref e) if e.reason() == "unsigned"),
        "{err:?}"
    );
    assert_eq!(signed.get_states(&["b".into()]).await.unwrap(), vec![None]);
    assert_eq!(
        signed
            .compare_and_set("b", &snapshot(1), None, None)
            .await
            .unwrap(),
        CasOutcome::Applied
    );
    assert_eq!(signed.get_state("b").await.unwrap(), Some(snapshot(1)));

    // A forged signed value (right layout, wrong MAC) claiming a huge version: replaced too.
    let forger = RedisBackend::new(
        common::config(server.port(), "flexiai")
            .python_compatible(false)
            .event_auth(EventAuth::new(
                MacKey::new("not the fleet's secret at all").unwrap(),
            )),
    )
    .unwrap();
    forger.set_state("c", &snapshot(999_999)).await.unwrap();
    let mut forged: Vec<u8> = redis::cmd("GET")
        .arg("flexiai:state:c")
        .query_async(&mut raw)
        .await
        .unwrap();
    forged[2..10].copy_from_slice(auth().current_key_id().as_bytes());
    let _: () = redis::cmd("SET")
        .arg("flexiai:state:c")
        .arg(&forged)
        .query_async(&mut raw)
        .await
        .unwrap();
    let err = signed.get_state("c").await.unwrap_err();
    assert!(
        matches!(err, BackendError::Codec(ref e) if e.reason() == "bad_signature"),
        "{err:?}"
    );
    assert_eq!(
        signed
            .compare_and_set("c", &snapshot(1), None, None)
            .await
            .unwrap(),
        CasOutcome::Applied
    );

    // A genuine signed snapshot copied onto another provider's key does not verify there.
    let genuine: Vec<u8> = redis::cmd("GET")
        .arg("flexiai:state:a")
        .query_async(&mut raw)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("flexiai:state:d")
        .arg(&genuine)
        .query_async(&mut raw)
        .await
        .unwrap();
    let err = signed.get_state("d").await.unwrap_err();
    assert!(
        matches!(err, BackendError::Codec(ref e) if e.reason() == "bad_signature"),
        "{err:?}"
    );

    // Without a key nothing changed: Python's unversioned JSON counts as version 0.
    let _: () = redis::cmd("SET")
        .arg("flexiai:state:e")
        .arg(r#"{"state": "open", "failure_count": 5, "success_count": 0}"#)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(plain.get_state("e").await.unwrap().unwrap().version, 0);
    assert_eq!(
        plain
            .compare_and_set("e", &snapshot(1), Some(Default::default()), None)
            .await
            .unwrap(),
        CasOutcome::Applied
    );
    let stored: Vec<u8> = redis::cmd("GET")
        .arg("flexiai:state:e")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(
        stored[0], b'{',
        "an unsigned fleet still writes Python's JSON"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_and_forged_events_are_rejected_and_counted() {
    let server = common::server();
    let receiver = RedisBackend::new(
        common::config(server.port(), "flexiai")
            .python_compatible(false)
            .event_auth(auth()),
    )
    .unwrap();
    let plain = RedisBackend::new(common::config(server.port(), "flexiai")).unwrap();
    let mut events = receiver.subscribe().await.unwrap();
    let event = Event::from(CircuitBreakerEvent::outcomes(
        "p",
        WorkerId::new("w:1:2").unwrap(),
        1,
        0,
    ));
    plain.publish_event(&event).await.unwrap(); // unsigned
    let mut forged = receiver.encode_event(&event).unwrap();
    let last = forged.len() - 2;
    forged[last] ^= 1;
    plain.publish_raw(&forged).await.unwrap();
    receiver.publish_event(&event).await.unwrap(); // genuine
    let mut reasons = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .unwrap()
        {
            Some(Notification::Rejected(error)) => reasons.push(error.reason()),
            Some(Notification::Event(received)) => {
                assert_eq!(received, event);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(reasons, ["unsigned", "bad_signature"]);
    assert_eq!(receiver.rejected_payloads(), 2);
    assert_eq!(receiver.unauthenticated_payloads(), 2);
}

/// Passwords and event keys never show in `Debug`, `Display`, errors or logs, even while
/// authentication fails.
#[tokio::test(flavor = "current_thread")]
async fn secrets_stay_out_of_debug_display_errors_and_logs() {
    const WRONG: &str = "wrong-password-5b2c71";
    let captured = flexiai_testkit::LogCapture::start();

    let server = RedisServer::builder()
        .acl_user("svc", ACL_PASSWORD)
        .start()
        .unwrap();
    let rotating = auth().with_previous(
        MacKey::new("previous-secret-also-hidden-42").unwrap(),
        Duration::from_secs(60),
    );
    let config = common::config(server.port(), "flexiai")
        .python_compatible(false)
        .username("svc")
        .password(WRONG)
        .event_auth(rotating.clone());
    let mut texts = vec![format!("{config:?}"), config.display_addr()];
    let bad = RedisBackend::new(config).unwrap();
    texts.push(format!("{bad:?}"));
    texts.push(bad.health_check().await.to_string());
    texts.push(bad.get_state("p").await.unwrap_err().to_string());
    texts.push(format!("{:?}", bad.subscribe().await.unwrap_err()));
    let err = RedisBackend::connect(
        common::config(server.port(), "flexiai")
            .python_compatible(false)
            .username("svc")
            .password(WRONG),
    )
    .await
    .unwrap_err();
    // The driver's error is kept as the source (it shows no password), and every error of
    // the chain is checked below.
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    let mut depth = 0;
    while let Some(current) = next {
        texts.push(current.to_string());
        texts.push(format!("{current:?}"));
        next = current.source();
        depth += 1;
    }
    assert!(
        std::error::Error::source(&err)
            .and_then(|s| s.downcast_ref::<redis::RedisError>())
            .is_some(),
        "{err:?}"
    );
    assert!(depth >= 2, "{err:?}");

    // Authentication failures of events are logged; the payload and keys are not.
    let good = RedisBackend::new(
        common::config(server.port(), "flexiai")
            .python_compatible(false)
            .username("svc")
            .password(ACL_PASSWORD)
            .event_auth(rotating),
    )
    .unwrap();
    let mut events = good.subscribe().await.unwrap();
    let marker = "payload-marker-never-logged";
    let forged =
        format!(r#"{{"__event_type__": "CircuitBreakerEvent", "provider_name": "{marker}"}}"#);
    good.publish_raw(forged.as_bytes()).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
    {
        Some(Notification::Rejected(error)) => texts.push(error.to_string()),
        other => panic!("{other:?}"),
    }
    let logs = captured.text();
    assert!(
        logs.contains("rejected a payload"),
        "the rejection was not logged:\n{logs}"
    );
    texts.push(logs);
    for text in &texts {
        for secret in [
            WRONG,
            ACL_PASSWORD,
            EVENT_SECRET,
            "previous-secret-also-hidden",
            marker,
        ] {
            assert!(!text.contains(secret), "{secret:?} leaked into: {text}");
        }
    }
}

#[test]
fn config_debug_redacts_password_and_keys() {
    let config = RedisConfig::from_url("rediss://user:url-password-123@host:6380")
        .unwrap()
        .event_auth(auth())
        .ca_certificate(b"-----BEGIN CERTIFICATE-----\n".to_vec());
    let debug = format!("{config:?}");
    assert!(!debug.contains("url-password-123"), "{debug}");
    assert!(!debug.contains(EVENT_SECRET), "{debug}");
    assert!(
        debug.contains(auth().current_key_id()),
        "the key id is fine to show: {debug}"
    );
    let _ = Format::Json;
}
