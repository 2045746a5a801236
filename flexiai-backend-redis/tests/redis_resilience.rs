//! Failure paths against real redis-server processes: kill -9 and restart, SIGSTOP, a
//! blackholing network path, bad credentials, hostile payloads, contention.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{config, raw, server};
use flexiai_backend::{BackendError, CasOutcome, Health, Notification, Subscription, SyncBackend};
use flexiai_backend_redis::{RedisBackend, RedisBackendError};
use flexiai_events::{
    BreakerSnapshot, CircuitBreakerEvent, CircuitState, Event, Revision, WorkerId,
};
use flexiai_testkit::{FaultProxy, RedisServer};
use redis::AsyncCommands;
use tokio::time::{sleep, timeout};

fn worker() -> WorkerId {
    WorkerId::new("resilience:1:1700000000000").unwrap()
}

fn event(provider: &str, version: u64) -> Event {
    Event::from(CircuitBreakerEvent::transition(
        provider,
        worker(),
        CircuitState::Open,
        version,
    ))
}

/// Retries `op` until it succeeds or `limit` passes.
async fn eventually<T, F, Fut>(limit: Duration, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, BackendError>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match op().await {
            Ok(value) => return value,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("still failing after {limit:?}: {e}"),
        }
    }
}

async fn next(sub: &mut Subscription) -> Notification {
    timeout(Duration::from_secs(10), sub.recv())
        .await
        .expect("no notification within 10 s")
        .expect("subscription ended")
}

/// What identifies an event here (timestamps differ between two `event()` calls).
fn id(e: &Event) -> (String, Option<u64>) {
    (e.provider_name().to_owned(), e.version())
}

async fn next_event(sub: &mut Subscription) -> Event {
    loop {
        match next(sub).await {
            Notification::Event(e) => return e,
            Notification::Resubscribed | Notification::Disconnected => continue,
            other => panic!("expected an event, got {other:?}"),
        }
    }
}

async fn kill_restart_and_resume(
    server: &mut RedisServer,
    backend: &RedisBackend,
    outage: Duration,
) {
    let mut sub = backend.subscribe().await.unwrap();
    backend.publish_event(&event("before", 1)).await.unwrap();
    assert_eq!(id(&next_event(&mut sub).await), id(&event("before", 1)));

    let port = server.port();
    server.kill().unwrap();
    // Commands fail fast while the server is gone.
    let started = Instant::now();
    assert!(backend.get_state("p").await.is_err());
    assert!(started.elapsed() < Duration::from_secs(2));
    sleep(outage).await;
    server.restart().unwrap();
    assert_eq!(server.port(), port);

    // The subscriber reports the gap: the drop, then the new subscription.
    match next(&mut sub).await {
        Notification::Disconnected => {}
        other => panic!("expected Disconnected, got {other:?}"),
    }
    loop {
        match next(&mut sub).await {
            Notification::Resubscribed => break,
            Notification::Disconnected => {}
            other => panic!("expected Resubscribed, got {other:?}"),
        }
    }
    assert!(backend.resubscriptions() >= 1);
    // ...and receives what is published after the restart.
    let after = event("after", 2);
    eventually(Duration::from_secs(3), || backend.publish_event(&after)).await;
    assert_eq!(id(&next_event(&mut sub).await), id(&event("after", 2)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_and_restart_mid_subscription() {
    let mut server = server();
    let backend = RedisBackend::new(config(server.port(), "kr")).unwrap();
    kill_restart_and_resume(&mut server, &backend, Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_recovers_after_its_reconnect_retries_ran_out() {
    let mut server = server();
    // One quick retry: it is long exhausted when the server comes back; only the
    // keep-alive PING can revive the subscriber.
    let config = config(server.port(), "ro").reconnect(1, Duration::from_millis(20));
    let backend = RedisBackend::new(config).unwrap();
    kill_restart_and_resume(&mut server, &backend, Duration::from_millis(1500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_server_times_out_within_the_bound_then_recovers() {
    let mut server = server();
    let bound = Duration::from_millis(300);
    let backend = RedisBackend::new(config(server.port(), "ps").command_timeout(bound)).unwrap();
    let snapshot = BreakerSnapshot::new(CircuitState::Open, 1);
    backend.set_state("p", &snapshot).await.unwrap();

    server.pause().unwrap();
    for _ in 0..3 {
        let started = Instant::now();
        let err = backend.get_state("p").await.unwrap_err();
        let took = started.elapsed();
        assert!(matches!(err, BackendError::Timeout { .. }), "{err:?}");
        assert!(took >= bound - Duration::from_millis(50), "{took:?}");
        assert!(
            took < bound + Duration::from_millis(400),
            "took {took:?}, bound {bound:?}"
        );
    }
    let health = backend.health_check().await;
    assert!(matches!(health, Health::Unreachable { .. }), "{health:?}");

    server.resume().unwrap();
    let read = eventually(Duration::from_secs(2), || backend.get_state("p")).await;
    assert_eq!(read, Some(snapshot));
    assert!(backend.health_check().await.is_healthy());
}

#[tokio::test]
async fn blackholed_network_times_out_and_health_reports_unreachable() {
    let server = server();
    let proxy = FaultProxy::start(server.addr()).await.unwrap();
    let bound = Duration::from_millis(300);
    let backend = RedisBackend::new(config(proxy.port(), "bh").command_timeout(bound)).unwrap();
    let snapshot = BreakerSnapshot::new(CircuitState::HalfOpen, 3);
    backend.set_state("p", &snapshot).await.unwrap();
    assert!(backend.health_check().await.is_healthy());

    proxy.blackhole(true);
    let started = Instant::now();
    let err = backend.get_state("p").await.unwrap_err();
    assert!(matches!(err, BackendError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < bound + Duration::from_millis(400));
    let health = backend.health_check().await;
    assert!(matches!(health, Health::Unreachable { .. }), "{health:?}");
    assert!(health.to_string().contains("timed out"), "{health}");

    proxy.blackhole(false);
    let read = eventually(Duration::from_secs(2), || backend.get_state("p")).await;
    assert_eq!(read, Some(snapshot));

    // A cut connection is replaced transparently on the next operations.
    proxy.cut();
    let read = eventually(Duration::from_secs(2), || backend.get_state("p")).await;
    assert!(read.is_some());
}

#[tokio::test]
async fn wrong_password_is_a_clear_authentication_error() {
    const PASSWORD: &str = "correct-horse-battery";
    const WRONG: &str = "definitely-not-it-1234";
    let server = RedisServer::builder()
        .password(PASSWORD)
        .acl_user("svc", "svc-secret-99")
        .start()
        .unwrap();

    let bad = RedisBackend::new(config(server.port(), "auth").password(WRONG)).unwrap();
    let health = bad.health_check().await;
    assert!(
        matches!(health, Health::AuthenticationFailed { .. }),
        "{health:?}"
    );
    assert!(!health.to_string().contains(WRONG));
    let err = bad.get_state("p").await.unwrap_err();
    assert!(
        matches!(err, BackendError::Authentication { .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains(WRONG), "{err}");
    assert!(!format!("{bad:?}").contains(WRONG));
    let err = bad.subscribe().await.unwrap_err();
    assert!(
        matches!(err, BackendError::Authentication { .. }),
        "{err:?}"
    );
    let err = RedisBackend::connect(config(server.port(), "auth").password(WRONG))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RedisBackendError::Authentication { .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains(WRONG), "{err}");

    // No password at all is an authentication failure too, not "unreachable".
    let none = RedisBackend::new(config(server.port(), "auth")).unwrap();
    let health = none.health_check().await;
    assert!(
        matches!(health, Health::AuthenticationFailed { .. }),
        "{health:?}"
    );

    let good = RedisBackend::connect(config(server.port(), "auth").password(PASSWORD))
        .await
        .unwrap();
    good.set_state("p", &BreakerSnapshot::new(CircuitState::Open, 1))
        .await
        .unwrap();
    // An ACL user from a URL, with a subscription.
    let url = format!("redis://svc:svc-secret-99@127.0.0.1:{}/0", server.port());
    let acl_config = flexiai_backend_redis::RedisConfig::from_url(&url)
        .unwrap()
        .key_prefix("auth")
        .channel("auth:events");
    assert!(!format!("{acl_config:?}").contains("svc-secret-99"));
    let acl = RedisBackend::connect(acl_config).await.unwrap();
    let mut sub = acl.subscribe().await.unwrap();
    assert!(acl.get_state("p").await.unwrap().is_some());
    good.publish_event(&event("p", 1)).await.unwrap();
    assert_eq!(id(&next_event(&mut sub).await), id(&event("p", 1)));
}

#[tokio::test]
async fn garbage_on_the_channel_is_rejected_counted_and_harmless() {
    let server = server();
    let backend = RedisBackend::new(config(server.port(), "gb")).unwrap();
    let mut sub = backend.subscribe().await.unwrap();
    let mut publisher = raw(&server.url()).await;
    let garbage: Vec<Vec<u8>> = vec![
        b"not json at all".to_vec(),
        Vec::new(),
        br#"{"__event_type__": "Nope", "provider_name": "p"}"#.to_vec(),
        br#"{"__event_type__": "CircuitBreakerEvent", "provider_name": "p", "event_type": "exploded"}"#.to_vec(),
        br#"{"__event_type__": "CircuitBreakerEvent", "provider_name": "#.to_vec(),
        vec![0xc1, 0x09, 0x80],
        vec![0xc1],
        format!("{{\"pad\": \"{}\"}}", "x".repeat(100 * 1024)).into_bytes(),
    ];
    for payload in &garbage {
        let _: i64 = publisher
            .publish("gb:events", payload.as_slice())
            .await
            .unwrap();
    }
    for _ in &garbage {
        match next(&mut sub).await {
            Notification::Rejected(_) => {}
            other => panic!("expected a rejection, got {other:?}"),
        }
    }
    assert_eq!(backend.rejected_payloads(), garbage.len() as u64);
    // Nothing was stored, and the subscriber still works.
    assert_eq!(backend.get_state("p").await.unwrap(), None);
    backend.publish_event(&event("p", 7)).await.unwrap();
    assert_eq!(id(&next_event(&mut sub).await), id(&event("p", 7)));
    backend.publish_raw(b"\xff\xfe").await.unwrap();
    assert!(matches!(next(&mut sub).await, Notification::Rejected(_)));
    assert_eq!(backend.rejected_payloads(), garbage.len() as u64 + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_cas_writers_have_one_winner_per_version() {
    const WRITERS: usize = 8;
    const VERSIONS: u64 = 25;
    let server = server();
    let backends: Vec<Arc<RedisBackend>> = (0..WRITERS)
        .map(|_| Arc::new(RedisBackend::new(config(server.port(), "cas8")).unwrap()))
        .collect();
    let mut sub = backends[0].subscribe().await.unwrap();
    for version in 1..=VERSIONS {
        let tasks: Vec<_> = backends
            .iter()
            .enumerate()
            .map(|(w, backend)| {
                let backend = Arc::clone(backend);
                tokio::spawn(async move {
                    let mut snapshot = BreakerSnapshot::new(CircuitState::Open, version);
                    snapshot.failure_count = w as u64;
                    // Every writer grows from the previous version's winner.
                    let grew_from = (version > 1).then(|| Revision {
                        epoch: 0,
                        version: version - 1,
                    });
                    backend
                        .compare_and_set("hot", &snapshot, grew_from, Some(&event("hot", version)))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut winners = 0;
        for task in tasks {
            match task.await.unwrap() {
                CasOutcome::Applied => winners += 1,
                CasOutcome::Stale { current } => assert_eq!(current.version, version),
            }
        }
        assert_eq!(winners, 1, "version {version}");
    }
    for version in 1..=VERSIONS {
        assert_eq!(next_event(&mut sub).await.version(), Some(version));
    }
    assert!(sub.try_recv().is_none(), "a losing writer published");
}

#[tokio::test]
async fn key_layout_and_ttls_are_as_documented() {
    let server = server();
    let ttl = Duration::from_millis(400);
    let backend = RedisBackend::new(config(server.port(), "lay").state_ttl(Some(ttl))).unwrap();
    let mut con = raw(&server.url()).await;

    let snapshot = BreakerSnapshot::new(CircuitState::Open, 4);
    backend.set_state("openai", &snapshot).await.unwrap();
    let stored: String = con.get("lay:state:openai").await.unwrap();
    let json: serde_json_value::Value = serde_json_value::from_str(&stored);
    assert_eq!(json.version, 4);
    let pttl: i64 = con.pttl("lay:state:openai").await.unwrap();
    assert!(pttl > 0 && pttl <= 400, "{pttl}");

    let lease = backend
        .acquire_lock("probe", Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    let token: String = con.get("lay:lock:probe").await.unwrap();
    assert_eq!(token, lease.token());
    let fence: u64 = con.get("lay:fence:probe").await.unwrap();
    assert_eq!(fence, lease.fencing_token());
    let fence_ttl: i64 = con.pttl("lay:fence:probe").await.unwrap();
    assert_eq!(fence_ttl, -1, "the fence must never expire");

    backend
        .heartbeat(&worker(), Duration::from_secs(5))
        .await
        .unwrap();
    // Live workers are one sorted set scored by heartbeat expiry, not a key per worker.
    let score: Option<f64> = con.zscore("lay:workers", worker().as_str()).await.unwrap();
    assert!(score.is_some_and(|s| s > 0.0), "{score:?}");

    sleep(ttl + Duration::from_millis(300)).await;
    assert_eq!(backend.get_state("openai").await.unwrap(), None);
    let exists: bool = con.exists("lay:state:openai").await.unwrap();
    assert!(!exists, "the state key must expire");
}

#[tokio::test]
async fn python_written_snapshot_counts_as_version_zero() {
    let server = server();
    let backend = RedisBackend::new(config(server.port(), "py")).unwrap();
    let mut con = raw(&server.url()).await;
    let python = r#"{"state": "open", "failure_count": 5, "success_count": 0,
        "last_failure_time": "2025-10-26T12:34:56.123456", "state_changed_at": "2025-10-26T12:34:56.123456"}"#;
    let _: () = con.set("py:state:openai", python).await.unwrap();
    let read = backend.get_state("openai").await.unwrap().unwrap();
    assert_eq!(read.version, 0);
    assert_eq!(read.failure_count, 5);
    let unversioned = BreakerSnapshot::new(CircuitState::Closed, 0);
    assert!(matches!(
        backend
            .compare_and_set("openai", &unversioned, Some(Revision::default()), None)
            .await
            .unwrap(),
        CasOutcome::Stale { current } if current.version == 0
    ));
    let v1 = BreakerSnapshot::new(CircuitState::Closed, 1);
    assert_eq!(
        backend
            .compare_and_set("openai", &v1, Some(Revision::default()), None)
            .await
            .unwrap(),
        CasOutcome::Applied
    );
    assert_eq!(backend.get_state("openai").await.unwrap(), Some(v1));
}

#[tokio::test]
async fn a_corrupt_stored_snapshot_hides_nothing_else_and_is_overwritten() {
    let server = server();
    let backend = RedisBackend::new(config(server.port(), "cx")).unwrap();
    let good = BreakerSnapshot::new(CircuitState::Open, 3);
    backend.set_state("good", &good).await.unwrap();
    let mut con = raw(&server.url()).await;
    let _: () = con.set("cx:state:bad", "\x00not a snapshot").await.unwrap();
    // The batch read used by reconciliation still sees every other provider.
    let read = backend
        .get_states(&["bad".to_owned(), "good".to_owned()])
        .await
        .unwrap();
    assert_eq!(read, vec![None, Some(good)]);
    // A single read says what is wrong.
    assert!(matches!(
        backend.get_state("bad").await,
        Err(flexiai_backend::BackendError::Codec(_))
    ));
    // And the next compare-and-set repairs it.
    let fresh = BreakerSnapshot::new(CircuitState::Closed, 0);
    assert_eq!(
        backend
            .compare_and_set("bad", &fresh, None, None)
            .await
            .unwrap(),
        CasOutcome::Applied
    );
    assert_eq!(backend.get_state("bad").await.unwrap(), Some(fresh));
}

#[tokio::test]
async fn scripts_survive_a_flushed_script_cache() {
    let server = server();
    let backend = RedisBackend::new(config(server.port(), "sc")).unwrap();
    let v1 = BreakerSnapshot::new(CircuitState::Open, 1);
    assert_eq!(
        backend.compare_and_set("p", &v1, None, None).await.unwrap(),
        CasOutcome::Applied
    );
    let lease = backend
        .acquire_lock("l", Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    let mut con = raw(&server.url()).await;
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut con)
        .await
        .unwrap();
    let v2 = BreakerSnapshot::new(CircuitState::Closed, 2);
    assert_eq!(
        backend
            .compare_and_set("p", &v2, Some(v1.revision()), None)
            .await
            .unwrap(),
        CasOutcome::Applied
    );
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(backend.release_lock(&lease).await.unwrap());
}

#[tokio::test]
async fn unreachable_server_fails_fast_and_never_blocks() {
    let port = flexiai_testkit::free_port().unwrap();
    // Building does not connect: a Redis that is down at start-up doesn't stop the caller.
    let backend = RedisBackend::new(config(port, "down")).unwrap();
    let started = Instant::now();
    let err = backend.get_state("p").await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(backend.subscribe().await.is_err());
    let health = backend.health_check().await;
    assert!(matches!(health, Health::Unreachable { .. }), "{health:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let err = RedisBackend::connect(config(port, "down"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RedisBackendError::Unavailable { .. } | RedisBackendError::Timeout { .. }
        ),
        "{err:?}"
    );
}

#[test]
fn bad_configuration_names_the_field() {
    let err = RedisBackend::new(config(6379, "x").pool_size(0)).unwrap_err();
    assert!(err.to_string().contains("pool_size"), "{err}");
    let err = RedisBackend::new(config(6379, "has space")).unwrap_err();
    assert!(err.to_string().contains("key_prefix"), "{err}");
}

/// Tiny JSON peek so the test doesn't need serde_json as a dependency.
mod serde_json_value {
    pub(super) struct Value {
        pub(super) version: u64,
    }

    pub(super) fn from_str(text: &str) -> Value {
        let at = text.find("\"version\":").expect("a version field");
        let digits: String = text[at + 10..]
            .chars()
            .skip_while(|c| c.is_whitespace())
            .take_while(char::is_ascii_digit)
            .collect();
        Value {
            version: digits.parse().unwrap(),
        }
    }
}

#[tokio::test]
async fn rediss_tls_connection_works() {
    let server = RedisServer::builder().tls().unwrap().start().unwrap();
    // `#insecure`: the test certificate is self-signed.
    let url = format!("{}/#insecure", server.tls_url().unwrap());
    let config = flexiai_backend_redis::RedisConfig::from_url(&url)
        .unwrap()
        .key_prefix("tls")
        .channel("tls:events");
    assert!(config.display_addr().starts_with("rediss://"));
    let backend = RedisBackend::connect(config).await.unwrap();
    let mut sub = backend.subscribe().await.unwrap();
    let v1 = BreakerSnapshot::new(CircuitState::Open, 1);
    assert_eq!(
        backend
            .compare_and_set("p", &v1, None, Some(&event("p", 1)))
            .await
            .unwrap(),
        CasOutcome::Applied
    );
    assert_eq!(id(&next_event(&mut sub).await), id(&event("p", 1)));
    // Plain text to the TLS port is not Redis: verification of the setup itself.
    let plain = RedisBackend::new(config_for_plain(server.tls_port().unwrap())).unwrap();
    assert!(!plain.health_check().await.is_healthy());
}

fn config_for_plain(port: u16) -> flexiai_backend_redis::RedisConfig {
    config(port, "tls").command_timeout(Duration::from_millis(300))
}
