//! Fleet synchronization: two clients sharing one backend fail over together and recover
//! together; sync is optional and `close` stops it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use flexiai_backend::MemoryBackend;
use flexiai_client::{ChatRequest, CircuitState, FlexiAI, FlexiAIConfig, Message, SyncConfig};
use flexiai_sync::SyncMode;
use support::{FakeProvider, Flavor, Mode, fast_config};

/// How long the fleet gets to converge on a loaded 2-core machine.
const CONVERGE: Duration = Duration::from_secs(10);

fn hi() -> ChatRequest {
    ChatRequest::new(vec![Message::user("hi")])
}

fn sync_config(worker: &str) -> SyncConfig {
    SyncConfig::builder()
        .worker_id(Some(worker.to_owned()))
        .flush_interval_ms(10)
        .reconcile_interval_ms(300)
        .heartbeat_interval_ms(100)
        .heartbeat_ttl_ms(1000)
        .operation_timeout_ms(500)
        .probe_lease_ms(1000)
        .build()
        .unwrap()
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < CONVERGE, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn client(config: &FlexiAIConfig, worker: &str, backend: &Arc<MemoryBackend>) -> FlexiAI {
    let mut config = config.clone();
    config.sync = Some(sync_config(worker));
    FlexiAI::builder(config)
        .sync_backend(Arc::clone(backend) as Arc<dyn flexiai_backend::SyncBackend>)
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_sharing_one_backend_fail_over_together() {
    let primary = FakeProvider::start("primary", Flavor::OpenAi).await;
    let secondary = FakeProvider::start("secondary", Flavor::Anthropic).await;
    let mut config = fast_config(&[&primary, &secondary]);
    config.circuit_breaker.recovery_timeout_ms = 600;
    let backend = Arc::new(MemoryBackend::new());
    let a = client(&config, "worker-a:1:1", &backend).await;
    let b = client(&config, "worker-b:1:1", &backend).await;
    assert!(a.is_synced() && b.is_synced());
    assert!(a.sync_health().unwrap().is_synced());

    // Both start on the primary.
    assert_eq!(a.chat_completion(&hi()).await.unwrap().provider, "primary");
    assert_eq!(b.chat_completion(&hi()).await.unwrap().provider, "primary");

    // The primary goes down; only worker A sees it and trips.
    primary.set_mode(Mode::Status(503));
    for _ in 0..2 {
        assert_eq!(
            a.chat_completion(&hi()).await.unwrap().provider,
            "secondary"
        );
    }
    assert_eq!(primary.requests(), 4);
    let b_primary = b.breaker("primary").unwrap();
    eventually("worker B's primary opens", || {
        b_primary.state() == CircuitState::Open
    })
    .await;

    // Worker B fails over without ever calling the primary itself.
    for _ in 0..3 {
        assert_eq!(
            b.chat_completion(&hi()).await.unwrap().provider,
            "secondary"
        );
    }
    assert_eq!(primary.requests(), 4);
    assert_eq!(b.stats().providers[0].failures, 0);
    assert_eq!(b.stats().providers[0].rejected, 3);
    let status = b.get_provider_status();
    assert_eq!(status[0].state, CircuitState::Open);
    assert!(status[0].snapshot.version >= 1);

    // The primary recovers: once the open period is over, a probe closes it and the whole
    // fleet goes back to it.
    primary.set_mode(Mode::Healthy);
    let before = primary.requests();
    let start = Instant::now();
    loop {
        assert!(start.elapsed() < CONVERGE, "worker A never came back");
        if a.chat_completion(&hi()).await.unwrap().provider == "primary" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eventually("worker B's primary closes", || {
        b_primary.state() == CircuitState::Closed
    })
    .await;
    assert_eq!(b.chat_completion(&hi()).await.unwrap().provider, "primary");
    // A's probe and successful call, B's call: B did not have to probe on its own.
    assert_eq!(primary.requests() - before, 2);

    a.close().await.unwrap();
    b.close().await.unwrap();
    assert_eq!(a.sync_health().unwrap().mode, SyncMode::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_on_two_clients_count_toward_one_threshold() {
    let primary = FakeProvider::start("primary", Flavor::OpenAi).await;
    let secondary = FakeProvider::start("secondary", Flavor::OpenAi).await;
    let mut config = fast_config(&[&primary, &secondary]);
    // The fleet counts under the failure-rate policy, in the store: a rate over at least 4
    // calls. (Consecutive counting is per worker by design: across interleaved workers
    // "consecutive" means nothing.)
    config.circuit_breaker.failure_policy =
        flexiai_breaker::FailurePolicy::failure_rate(Duration::from_secs(30), 4, 0.5);
    config.circuit_breaker.recovery_timeout_ms = 60_000;
    let backend = Arc::new(MemoryBackend::new());
    let a = client(&config, "worker-a:1:2", &backend).await;
    let b = client(&config, "worker-b:1:2", &backend).await;
    primary.set_mode(Mode::Status(500));
    // Two failures each: neither reaches the 4 calls alone, the fleet does.
    for _ in 0..2 {
        a.chat_completion(&hi()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        b.chat_completion(&hi()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (ab, bb) = (a.breaker("primary").unwrap(), b.breaker("primary").unwrap());
    eventually("both open", || {
        ab.state() == CircuitState::Open && bb.state() == CircuitState::Open
    })
    .await;
    assert_eq!(primary.requests(), 4);
    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_seen_by_one_client_keeps_every_client_away_for_that_long() {
    let primary = FakeProvider::start("primary", Flavor::OpenAi).await;
    let secondary = FakeProvider::start("secondary", Flavor::Anthropic).await;
    let mut config = fast_config(&[&primary, &secondary]);
    // Far from tripping on failures, and a recovery timeout much longer than the Retry-After:
    // the open period is the provider's, and so is its end.
    config.circuit_breaker.failure_threshold = 5;
    config.circuit_breaker.recovery_timeout_ms = 60_000;
    let backend = Arc::new(MemoryBackend::new());
    let a = client(&config, "worker-a:1:3", &backend).await;
    let b = client(&config, "worker-b:1:3", &backend).await;
    assert_eq!(a.chat_completion(&hi()).await.unwrap().provider, "primary");
    assert_eq!(b.chat_completion(&hi()).await.unwrap().provider, "primary");

    // Worker A gets a 429 asking for 2 s, and fails over. The 429 arrives after `before` and
    // before `asked`, so the provider's deadline lies between `before` + 2 s and `asked` + 2 s:
    // the "not yet" checks count from `before`, the "no later than" ones from `asked` (an
    // instrumented run can spend hundreds of ms between the two).
    let before = Instant::now();
    primary.script(Mode::RateLimited(Some("2".into())), 1);
    assert_eq!(
        a.chat_completion(&hi()).await.unwrap().provider,
        "secondary"
    );
    let asked = Instant::now();
    assert_eq!(primary.requests(), 3);
    let (a_primary, b_primary) = (a.breaker("primary").unwrap(), b.breaker("primary").unwrap());
    assert_eq!(a_primary.state(), CircuitState::Open);
    eventually("worker B's primary opens", || {
        b_primary.state() == CircuitState::Open
    })
    .await;
    assert_eq!(b_primary.version(), a_primary.version(), "one history");

    // Worker B skips the primary without calling it, and shows the time left.
    for _ in 0..3 {
        assert_eq!(
            b.chat_completion(&hi()).await.unwrap().provider,
            "secondary"
        );
    }
    assert_eq!(primary.requests(), 3);
    assert_eq!(b.stats().providers[0].failures, 0);
    assert_eq!(b.stats().providers[0].rejected, 3);
    let status = &b.get_provider_status()[0];
    assert_eq!(status.state, CircuitState::Open);
    assert!(!status.available);
    let left = status.snapshot.open_remaining_ms.unwrap();
    let bound = 2000u64.saturating_sub(u64::try_from(asked.elapsed().as_millis()).unwrap());
    assert!(
        left > 0 && left <= bound + 50,
        "{left} ms left, at most {bound}"
    );

    // Nobody calls the primary before the time is up (checked before each call, so a slow
    // call cannot carry the next one past the deadline).
    let early = || before.elapsed() < Duration::from_millis(1800);
    while early() {
        a.chat_completion(&hi()).await.unwrap();
        if !early() {
            break;
        }
        b.chat_completion(&hi()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        primary.requests(),
        3,
        "called before the Retry-After was over"
    );

    // After it (and well before the 60 s recovery timeout), both go back to the primary: one
    // worker holds the fleet's probe lease and its trial closes the breaker everywhere.
    let (mut a_back, mut b_back) = (false, false);
    let start = Instant::now();
    while !(a_back && b_back) {
        assert!(start.elapsed() < CONVERGE, "the fleet never came back");
        a_back |= a.chat_completion(&hi()).await.unwrap().provider == "primary";
        b_back |= b.chat_completion(&hi()).await.unwrap().provider == "primary";
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(before.elapsed() >= Duration::from_secs(2));
    eventually("both closed", || {
        a_primary.state() == CircuitState::Closed && b_primary.state() == CircuitState::Closed
    })
    .await;

    a.close().await.unwrap();
    b.close().await.unwrap();
}

#[tokio::test]
async fn sync_from_the_config_and_without_it() {
    let primary = FakeProvider::start("primary", Flavor::OpenAi).await;
    let mut config = fast_config(&[&primary]);

    // No sync section: a plain single-process client.
    let plain = FlexiAI::new(config.clone()).await.unwrap();
    assert!(!plain.is_synced());
    assert!(plain.sync_health().is_none());
    plain.close().await.unwrap();

    // `enabled = false`: the same.
    config.sync = Some(
        flexiai_sync::SyncConfigBuilder::from(sync_config("w:1:1"))
            .enabled(false)
            .build()
            .unwrap(),
    );
    let disabled = FlexiAI::new(config.clone()).await.unwrap();
    assert!(!disabled.is_synced());

    // Enabled (memory backend): a manager runs and stops on close.
    config.sync = Some(sync_config("w:1:1"));
    let synced = FlexiAI::new(config).await.unwrap();
    assert!(synced.is_synced());
    assert_eq!(synced.sync_health().unwrap().mode, SyncMode::Synced);
    assert_eq!(
        synced.chat_completion(&hi()).await.unwrap().provider,
        "primary"
    );
    synced.close().await.unwrap();
    assert_eq!(synced.sync_health().unwrap().mode, SyncMode::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_sharing_one_backend_fail_over_one_model_together() {
    let openai = FakeProvider::start("openai", Flavor::OpenAi).await;
    let claude = FakeProvider::start("claude", Flavor::Anthropic).await;
    let mut config = support::per_model_config(&openai, &claude);
    config.circuit_breaker.recovery_timeout_ms = 60_000;
    let backend = Arc::new(MemoryBackend::new());
    let a = client(&config, "worker-a:1:4", &backend).await;
    let b = client(&config, "worker-b:1:4", &backend).await;
    let mini = || hi().model("gpt-4o-mini");

    // gpt-4o-mini goes down; only worker A sees it and trips that model's breaker.
    openai.set_model_mode("gpt-4o-mini", Mode::Status(503));
    for _ in 0..2 {
        assert_eq!(a.chat_completion(&mini()).await.unwrap().provider, "claude");
    }
    assert_eq!(openai.requests(), 2);
    let b_mini = b.breaker("openai/gpt-4o-mini").unwrap();
    eventually("worker B's openai/gpt-4o-mini opens", || {
        b_mini.state() == CircuitState::Open
    })
    .await;

    // B fails over along the chain without calling the broken model...
    assert_eq!(b.chat_completion(&mini()).await.unwrap().provider, "claude");
    assert_eq!(openai.requests(), 2);
    // ...and keeps using its sibling, whose breaker stayed closed fleet-wide.
    assert_eq!(b.breaker("openai").unwrap().state(), CircuitState::Closed);
    assert_eq!(b.chat_completion(&hi()).await.unwrap().provider, "openai");
    assert_eq!(openai.requests(), 3);
    a.close().await.unwrap();
    b.close().await.unwrap();
}
