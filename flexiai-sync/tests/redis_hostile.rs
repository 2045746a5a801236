//! Hostile input on the events channel while a signed fleet runs on real Redis: 10,000
//! random, truncated, oversized, wrong-version, unsigned, forged, foreign-key and replayed
//! payloads from a raw client. Nothing panics, no breaker or stored snapshot changes, and
//! every payload is counted on every worker: rejected, or (genuine but not newer) replayed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use flexiai_backend::SyncBackend;
use flexiai_backend_redis::{RedisBackend, RedisConfig};
use flexiai_breaker::BreakerConfig;
use flexiai_events::{CircuitBreakerEvent, CircuitState, Event, StateUpdateEvent, WorkerId};
use flexiai_serde::{EventAuth, Format, MacKey, StateSerializer};
use flexiai_sync::SyncMetrics;
use flexiai_sync::scenarios::{self, Worker, eventually};
use flexiai_testkit::RedisServer;
use flexiai_testkit::backend::test_config;

const SECRET: &str = "hostile-test-fleet-secret-0001";
const PAYLOADS: usize = 10_000;
const BATCH: usize = 500;
const PROVIDERS: [&str; 2] = ["openai", "anthropic"];

fn auth() -> EventAuth {
    EventAuth::new(MacKey::new(SECRET).unwrap())
}

fn config(port: u16) -> RedisConfig {
    test_config(port, "flexiai")
        .channel("flexiai:events")
        // Signed on Python's channel on purpose (no Python worker here).
        .python_compatible(false)
        .event_auth(auth())
        // Deep enough that the flood never makes a subscription report lag (which would
        // drop notifications uncounted); the flood is also paced below.
        .subscriber_capacity(4 * BATCH)
}

/// A tiny deterministic PRNG (xorshift64*), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// What a flood payload is, and how a worker must count it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    Rejected,
    Replayed,
}

/// Every kind of bad payload, `i` choosing which. `genuine` are validly signed events the
/// fleet already has (replays); `signer` signs with the fleet's key.
fn payload(
    i: usize,
    rng: &mut Rng,
    genuine: &[Vec<u8>],
    signer: &StateSerializer,
) -> (Vec<u8>, Expect) {
    let ghost = WorkerId::new("ghost:1:1700000000000").unwrap();
    let provider = PROVIDERS[i % 2];
    match i % 10 {
        // Random bytes, sometimes dressed as a signed frame or as JSON.
        0 => {
            let len = rng.below(300);
            let mut bytes = rng.bytes(len);
            match rng.below(3) {
                0 if !bytes.is_empty() => bytes[0] = 0xc2,
                1 if !bytes.is_empty() => bytes[0] = b'{',
                _ => {}
            }
            (bytes, Expect::Rejected)
        }
        // A genuine signed frame cut short.
        1 | 2 => {
            let whole = &genuine[rng.below(genuine.len())];
            (whole[..rng.below(whole.len())].to_vec(), Expect::Rejected)
        }
        // Oversized (a few: each is 70 KB through Redis to every subscriber), or a signed
        // frame of an unknown layout version.
        3 => {
            if i % 50 == 3 {
                let mut bytes = rng.bytes(70_000);
                bytes[0] = 0xc2;
                (bytes, Expect::Rejected)
            } else {
                let mut bytes = genuine[rng.below(genuine.len())].clone();
                bytes[1] = 2 + rng.below(200) as u8;
                (bytes, Expect::Rejected)
            }
        }
        // Correctly signed, but an unknown schema version or event type inside.
        4 => {
            let inner = if rng.below(2) == 0 {
                format!(
                    r#"{{"__event_type__": "CircuitBreakerEvent", "schema_version": {}, "provider_name": "{provider}", "event_type": "opened", "worker_id": "ghost:1:1700000000000", "timestamp": "2025-10-26T12:34:56.123456", "metadata": {{}}}}"#,
                    2 + rng.below(1000)
                )
            } else {
                format!(
                    r#"{{"__event_type__": "CircuitBreakerEvent", "provider_name": "{provider}", "event_type": "exploded", "worker_id": "ghost:1:1700000000000", "timestamp": "2025-10-26T12:34:56.123456", "metadata": {{}}}}"#
                )
            };
            let auth = signer.auth().unwrap();
            (
                auth.sign(b"event:flexiai:events", inner.as_bytes()),
                Expect::Rejected,
            )
        }
        // A well-formed event that would close the breaker, unsigned (a Python worker, or
        // anyone with network access to Redis).
        5 => {
            let mut event =
                CircuitBreakerEvent::transition(provider, ghost, CircuitState::Closed, 1_000_000);
            event.metadata.failure_count = Some(0);
            let bytes = StateSerializer::new(Format::Json)
                .serialize_event(&Event::from(event))
                .unwrap();
            (bytes, Expect::Rejected)
        }
        // The same, "signed" with a random tag under the fleet's key id.
        6 => {
            let event = Event::from(CircuitBreakerEvent::transition(
                provider,
                ghost,
                CircuitState::Closed,
                1_000_000,
            ));
            let mut bytes = signer.serialize_event_on("flexiai:events", &event).unwrap();
            let tag = rng.bytes(32);
            bytes[10..42].copy_from_slice(&tag);
            (bytes, Expect::Rejected)
        }
        // Signed with somebody else's key, or for another channel.
        7 => {
            let event = Event::from(CircuitBreakerEvent::transition(
                provider,
                ghost,
                CircuitState::Closed,
                1_000_000,
            ));
            if rng.below(2) == 0 {
                let other = StateSerializer::default().with_auth(EventAuth::new(
                    MacKey::new("an attacker's own key, 32 bytes").unwrap(),
                ));
                (
                    other.serialize_event_on("flexiai:events", &event).unwrap(),
                    Expect::Rejected,
                )
            } else {
                (
                    signer
                        .serialize_event_on("another:channel", &event)
                        .unwrap(),
                    Expect::Rejected,
                )
            }
        }
        // A validly signed snapshot (from the store) published as an event.
        8 => {
            let snapshot = flexiai_events::BreakerSnapshot::new(CircuitState::Closed, 1_000_000);
            let key = format!("flexiai:state:{provider}");
            (
                signer.serialize_state_for(&key, &snapshot).unwrap(),
                Expect::Rejected,
            )
        }
        // A replay of a genuine, validly signed event the fleet already has.
        _ => (genuine[rng.below(genuine.len())].clone(), Expect::Replayed),
    }
}

fn totals(workers: &[Worker]) -> Vec<SyncMetrics> {
    workers.iter().map(|w| w.manager.metrics()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_hostile_payloads_change_nothing_and_are_all_counted() {
    let server = RedisServer::start().expect("redis-server must start");
    let breaker_config = BreakerConfig::builder()
        .failure_threshold(3)
        .build()
        .unwrap()
        .with_recovery_timeout(Duration::from_secs(600));
    let mut workers = Vec::new();
    for _ in 0..3 {
        let backend = std::sync::Arc::new(RedisBackend::new(config(server.port())).unwrap());
        workers.push(scenarios::worker(backend, &PROVIDERS, &breaker_config).await);
    }
    // Give the fleet a history: openai is forced open (version 1 and up).
    workers[0].breaker("openai").force_open();
    eventually("every worker forces openai open", || {
        workers
            .iter()
            .all(|w| w.breaker("openai").state() == CircuitState::ForcedOpen)
    })
    .await;
    eventually("every worker is synced", || {
        workers.iter().all(|w| w.manager.health().is_synced())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await; // let start-up traffic settle

    // Genuine signed events, as captured off the wire, none newer than what the fleet holds.
    let signer = StateSerializer::default().with_auth(auth());
    let ghost = WorkerId::new("ghost:1:1700000000000").unwrap();
    let mut genuine = Vec::new();
    for provider in PROVIDERS {
        let version = workers[0].breaker(provider).version();
        for v in 0..=version {
            let transition = Event::from(CircuitBreakerEvent::transition(
                provider,
                ghost.clone(),
                CircuitState::Closed,
                v,
            ));
            genuine.push(
                signer
                    .serialize_event_on("flexiai:events", &transition)
                    .unwrap(),
            );
            let snapshot = workers[0].breaker(provider).snapshot();
            let mut stale = snapshot.clone();
            stale.version = v;
            stale.state = CircuitState::Closed;
            let update = Event::from(StateUpdateEvent {
                provider_name: provider.to_owned(),
                state_data: stale,
                worker_id: ghost.clone(),
                timestamp: flexiai_events::Timestamp::now(),
            });
            genuine.push(
                signer
                    .serialize_event_on("flexiai:events", &update)
                    .unwrap(),
            );
        }
    }

    let before_states: Vec<Vec<(CircuitState, u64)>> = workers
        .iter()
        .map(|w| {
            PROVIDERS
                .iter()
                .map(|p| (w.breaker(p).state(), w.breaker(p).version()))
                .collect()
        })
        .collect();
    let reader = RedisBackend::new(config(server.port())).unwrap();
    let before_store = reader
        .get_states(&PROVIDERS.map(String::from))
        .await
        .unwrap();
    let before = totals(&workers);

    let mut raw = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    let (mut rejected, mut replayed) = (0u64, 0u64);
    let started = Instant::now();
    for batch_start in (0..PAYLOADS).step_by(BATCH) {
        let mut pipe = redis::pipe();
        for i in batch_start..(batch_start + BATCH).min(PAYLOADS) {
            let (bytes, expect) = payload(i, &mut rng, &genuine, &signer);
            match expect {
                Expect::Rejected => rejected += 1,
                Expect::Replayed => replayed += 1,
            }
            pipe.cmd("PUBLISH")
                .arg("flexiai:events")
                .arg(bytes)
                .ignore();
        }
        let () = pipe.query_async(&mut raw).await.unwrap();
        // Pace the flood: wait until every worker has counted this batch.
        let sent = (batch_start + BATCH).min(PAYLOADS) as u64;
        let counted = |m: &SyncMetrics, b: &SyncMetrics| {
            (m.events_rejected - b.events_rejected) + (m.events_replayed - b.events_replayed)
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !totals(&workers)
            .iter()
            .zip(&before)
            .all(|(m, b)| counted(m, b) >= sent)
        {
            assert!(
                Instant::now() < deadline,
                "workers stopped counting at batch {batch_start}: {:?}",
                totals(&workers)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(rejected + replayed, PAYLOADS as u64);
    // A fence instead of a pause: one more garbage payload, published after the flood on the
    // same connection, arrives after it; once every worker has counted it, anything the flood
    // could still cause has shown.
    let () = redis::cmd("PUBLISH")
        .arg("flexiai:events")
        .arg(&b"fence"[..])
        .query_async(&mut raw)
        .await
        .unwrap();
    rejected += 1;
    eventually("every worker counts the fence", || {
        totals(&workers)
            .iter()
            .zip(&before)
            .all(|(m, b)| m.events_rejected - b.events_rejected >= rejected)
    })
    .await;
    println!(
        "{PAYLOADS} hostile payloads counted by 3 workers in {:?}",
        started.elapsed()
    );

    for (i, (after, before)) in totals(&workers).iter().zip(&before).enumerate() {
        assert_eq!(
            after.events_rejected - before.events_rejected,
            rejected,
            "worker {i} rejected"
        );
        assert_eq!(
            after.events_replayed - before.events_replayed,
            replayed,
            "worker {i} replayed"
        );
        assert!(
            after.events_unauthenticated - before.events_unauthenticated >= rejected * 4 / 10,
            "worker {i}: unsigned, forged and foreign-key payloads count as unauthenticated"
        );
        assert_eq!(
            after.events_applied, before.events_applied,
            "worker {i} applied something"
        );
        assert!(
            after.reconciles - before.reconciles < 50,
            "no gap-triggered reconcile storm"
        );
        assert!(
            workers[i].manager.health().is_synced(),
            "worker {i} is still synced"
        );
    }
    let after_states: Vec<Vec<(CircuitState, u64)>> = workers
        .iter()
        .map(|w| {
            PROVIDERS
                .iter()
                .map(|p| (w.breaker(p).state(), w.breaker(p).version()))
                .collect()
        })
        .collect();
    assert_eq!(after_states, before_states, "a breaker changed");
    assert_eq!(
        reader
            .get_states(&PROVIDERS.map(String::from))
            .await
            .unwrap(),
        before_store,
        "the store changed"
    );

    // And the fleet still works: a genuine transition still reaches everyone.
    workers[1].breaker("anthropic").force_open();
    eventually("the fleet still propagates", || {
        workers
            .iter()
            .all(|w| w.breaker("anthropic").state() == CircuitState::ForcedOpen)
    })
    .await;
    for worker in &workers {
        worker.manager.stop().await.unwrap();
    }
}
