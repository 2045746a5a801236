//! Loading the config from TOML, JSON and the environment; validation errors that name the
//! field; API keys never printed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;

use flexiai_client::{
    ClientError, FlexiAI, FlexiAIConfig, ProviderConfig, ProviderError, ProviderKind,
};
use support::{FakeProvider, Flavor, Mode, fast_config};

const TOML: &str = r#"
[[providers]]
name = "openai"
kind = "openai"
priority = 1
model = "gpt-4o-mini"
api_key = "sk-toml-secret-AAAA"
timeout_ms = 20000
max_retries = 1

[[providers]]
name = "claude"
kind = "anthropic"
priority = 2
model = "claude-3-5-haiku-latest"
api_key = "sk-ant-toml-secret-BBBB"
base_url = "https://gateway.internal/anthropic/v1/"

[providers.circuit_breaker]
failure_threshold = 10

[circuit_breaker]
failure_threshold = 3
recovery_timeout_ms = 30000

[retry]
max_attempts = 3
initial_backoff_ms = 200
max_backoff_ms = 5000
multiplier = 2.0
jitter = 0.2

[sync]
enabled = true
backend = "redis"
worker_id = "web-1:1:1"
[sync.redis]
host = "cache.internal"
password = "redis-secret-CCCC"
"#;

fn err_field(result: Result<FlexiAIConfig, ClientError>) -> String {
    match result {
        Err(ClientError::InvalidConfig { field, .. }) => field,
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn toml_and_json_describe_the_same_config() {
    let toml = FlexiAIConfig::from_toml_str(TOML).unwrap();
    assert_eq!(toml.providers[0].kind, ProviderKind::OpenAi);
    assert_eq!(toml.providers[0].attempts(&toml.retry), 2);
    assert_eq!(toml.providers[1].attempts(&toml.retry), 3);
    assert_eq!(
        toml.providers[1].effective_base_url(),
        "https://gateway.internal/anthropic/v1"
    );
    assert_eq!(
        toml.providers[1]
            .circuit_breaker
            .as_ref()
            .unwrap()
            .failure_threshold,
        10
    );
    assert_eq!(toml.circuit_breaker.failure_threshold, 3);
    assert_eq!(toml.retry.jitter, 0.2);
    assert!(toml.sync_enabled());

    let json = FlexiAIConfig::from_json_str(
        r#"{
        "providers": [
            {"name": "openai", "kind": "openai", "priority": 1, "model": "gpt-4o-mini",
             "api_key": "sk-toml-secret-AAAA", "timeout_ms": 20000, "max_retries": 1},
            {"name": "claude", "kind": "anthropic", "priority": 2,
             "model": "claude-3-5-haiku-latest", "api_key": "sk-ant-toml-secret-BBBB",
             "base_url": "https://gateway.internal/anthropic/v1/",
             "circuit_breaker": {"failure_threshold": 10}}
        ],
        "circuit_breaker": {"failure_threshold": 3, "recovery_timeout_ms": 30000},
        "retry": {"max_attempts": 3, "initial_backoff_ms": 200, "max_backoff_ms": 5000,
                  "multiplier": 2.0, "jitter": 0.2},
        "sync": {"enabled": true, "backend": "redis", "worker_id": "web-1:1:1",
                 "redis": {"host": "cache.internal", "password": "redis-secret-CCCC"}}
    }"#,
    )
    .unwrap();
    assert_eq!(json, toml);

    let minimal = FlexiAIConfig::from_toml_str(
        "[[providers]]\nname = \"local\"\nkind = \"openai\"\npriority = 1\nmodel = \"llama\"\nbase_url = \"http://127.0.0.1:8000/v1\"\n",
    )
    .unwrap();
    assert!(minimal.sync.is_none());
    assert!(!minimal.sync_enabled());
    assert!(minimal.providers[0].api_key.is_none());
}

#[test]
fn unknown_fields_and_bad_syntax_are_parse_errors() {
    let typo = TOML.replace("max_backoff_ms", "max_backof_ms");
    assert!(matches!(
        FlexiAIConfig::from_toml_str(&typo),
        Err(ClientError::Parse { format: "TOML", .. })
    ));
    let typo = TOML.replace("timeout_ms = 20000", "timeout = 20000");
    assert!(FlexiAIConfig::from_toml_str(&typo).is_err());
    assert!(matches!(
        FlexiAIConfig::from_json_str("{"),
        Err(ClientError::Parse { format: "JSON", .. })
    ));
    let kind = TOML.replace("kind = \"openai\"", "kind = \"gemini\"");
    assert!(FlexiAIConfig::from_toml_str(&kind).is_err());
}

#[test]
fn validation_names_the_field() {
    let base = FlexiAIConfig::from_toml_str(TOML).unwrap();
    let check = |f: &dyn Fn(&mut FlexiAIConfig)| {
        let mut c = base.clone();
        f(&mut c);
        err_field(c.validate().map(|()| c))
    };
    assert_eq!(check(&|c| c.providers.clear()), "providers");
    assert_eq!(
        check(&|c| c.providers[1].name = "openai".into()),
        "providers[1].name"
    );
    assert_eq!(
        check(&|c| c.providers[1].name = "has space".into()),
        "providers[1].name"
    );
    assert_eq!(
        check(&|c| c.providers[1].priority = 1),
        "providers[1].priority"
    );
    assert_eq!(
        check(&|c| c.providers[0].model = " ".into()),
        "providers[0].model"
    );
    assert_eq!(
        check(&|c| c.providers[0].timeout_ms = 0),
        "providers[0].timeout_ms"
    );
    assert_eq!(
        check(&|c| c.providers[0].timeout_ms = 600_001),
        "providers[0].timeout_ms"
    );
    assert_eq!(
        check(&|c| c.providers[0].max_retries = Some(11)),
        "providers[0].max_retries"
    );
    assert_eq!(
        check(&|c| c.providers[0].api_key = None),
        "providers[0].api_key"
    );
    assert_eq!(
        check(&|c| c.providers[0].base_url = Some("ftp://x".into())),
        "providers[0].base_url"
    );
    assert_eq!(
        check(&|c| c.providers[0].base_url = Some("not a url".into())),
        "providers[0].base_url"
    );
    assert_eq!(
        check(&|c| {
            c.providers[0].enabled = false;
            c.providers[1].enabled = false;
        }),
        "providers"
    );
    assert_eq!(
        check(&|c| c.providers[1]
            .circuit_breaker
            .as_mut()
            .unwrap()
            .failure_threshold = 0),
        "providers[1].circuit_breaker.failure_threshold"
    );
    assert_eq!(
        check(&|c| c.circuit_breaker.recovery_timeout_ms = 0),
        "circuit_breaker.recovery_timeout_ms"
    );
    assert_eq!(check(&|c| c.retry.max_attempts = 0), "retry.max_attempts");
    assert_eq!(check(&|c| c.retry.multiplier = 0.5), "retry.multiplier");
    assert_eq!(check(&|c| c.retry.jitter = 1.5), "retry.jitter");
    assert_eq!(
        check(&|c| c.retry.initial_backoff_ms = 10_000),
        "retry.initial_backoff_ms"
    );
    assert_eq!(
        check(&|c| c.sync.as_mut().unwrap().state_ttl = 0),
        "sync.state_ttl"
    );
    assert_eq!(
        check(&|c| c.sync.as_mut().unwrap().redis.port = 0),
        "sync.redis.port"
    );

    let message = check_message(&base, |c| c.providers[1].priority = 1);
    assert!(message.contains("providers[1].priority"), "{message}");
}

fn check_message(base: &FlexiAIConfig, f: impl Fn(&mut FlexiAIConfig)) -> String {
    let mut c = base.clone();
    f(&mut c);
    c.validate().unwrap_err().to_string()
}

#[test]
fn the_environment_overrides_the_file() {
    let text = r#"
        [[providers]]
        name = "openai"
        kind = "openai"
        priority = 1
        model = "gpt-4o-mini"

        [[providers]]
        name = "azure-gpt4"
        kind = "openai"
        priority = 2
        model = "gpt-4"
    "#;
    // Keys only in the environment: the file alone does not validate.
    assert_eq!(
        err_field(FlexiAIConfig::from_toml_str(text)),
        "providers[0].api_key"
    );
    let config = FlexiAIConfig::parse_toml(text)
        .unwrap()
        .apply_env(env(&[
            ("FLEXIAI_OPENAI_API_KEY", "sk-env-1"),
            ("FLEXIAI_OPENAI_TIMEOUT_MS", "1234"),
            ("FLEXIAI_AZURE_GPT4_API_KEY", "sk-env-2"),
            ("FLEXIAI_AZURE_GPT4_BASE_URL", "https://azure.example/v1"),
            ("FLEXIAI_AZURE_GPT4_PRIORITY", "0"),
            ("FLEXIAI_AZURE_GPT4_MAX_RETRIES", "4"),
            ("FLEXIAI_RETRY_MAX_ATTEMPTS", "4"),
            ("FLEXIAI_RETRY_JITTER", "0"),
            ("FLEXIAI_CIRCUIT_BREAKER_FAILURE_THRESHOLD", "7"),
            ("FLEXIAI_SYNC_WORKER_ID", "env-worker"),
            ("FLEXIAI_SYNC_STATE_TTL", "60"),
            ("OTHER_VARIABLE", "ignored"),
        ]))
        .unwrap();
    assert_eq!(
        config.providers[0].api_key.as_ref().unwrap().expose(),
        "sk-env-1"
    );
    assert_eq!(config.providers[0].timeout_ms, 1234);
    assert_eq!(config.providers[1].priority, 0);
    assert_eq!(config.providers[1].max_retries, Some(4));
    assert_eq!(
        config.providers[1].base_url.as_deref(),
        Some("https://azure.example/v1")
    );
    assert_eq!(config.retry.max_attempts, 4);
    assert_eq!(config.retry.jitter, 0.0);
    assert_eq!(config.circuit_breaker.failure_threshold, 7);
    let sync = config.sync.as_ref().unwrap();
    assert_eq!(sync.worker_id.as_deref(), Some("env-worker"));
    assert_eq!(sync.state_ttl, 60);

    let base = FlexiAIConfig::from_toml_str(TOML).unwrap();
    let bad = |vars: &[(&str, &str)]| err_field(base.clone().apply_env(env(vars)));
    assert_eq!(
        bad(&[("FLEXIAI_OPENAI_APIKEY", "x")]),
        "FLEXIAI_OPENAI_APIKEY"
    );
    assert_eq!(
        bad(&[("FLEXIAI_OPENAI_PRIORITY", "first")]),
        "FLEXIAI_OPENAI_PRIORITY"
    );
    assert_eq!(
        bad(&[("FLEXIAI_CLAUDE_PRIORITY", "1")]),
        "providers[1].priority"
    );
    assert_eq!(bad(&[("FLEXIAI_RETRY_JITTER", "2")]), "retry.jitter");
    assert_eq!(
        bad(&[("FLEXIAI_SYNC_REDIS_PORT", "http")]),
        "FLEXIAI_SYNC_REDIS_PORT"
    );
}

#[test]
fn files_load_by_extension() {
    let dir = std::env::temp_dir().join(format!("flexiai-client-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let toml = dir.join("flexiai.toml");
    std::fs::write(&toml, TOML).unwrap();
    assert_eq!(FlexiAIConfig::from_file(&toml).unwrap().providers.len(), 2);
    let json = dir.join("flexiai.json");
    std::fs::write(&json, r#"{"providers": []}"#).unwrap();
    assert_eq!(err_field(FlexiAIConfig::from_file(&json)), "providers");
    assert!(matches!(
        FlexiAIConfig::from_file(dir.join("missing.toml")),
        Err(ClientError::Io { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn api_keys_never_appear_in_debug_or_display() {
    let config = FlexiAIConfig::from_toml_str(TOML).unwrap();
    let printed = format!("{config:?} {:?}", config.providers[0]);
    for secret in [
        "sk-toml-secret-AAAA",
        "sk-ant-toml-secret-BBBB",
        "redis-secret-CCCC",
    ] {
        assert!(!printed.contains(secret), "{secret} leaked: {printed}");
    }
    assert!(printed.contains("<redacted>"));

    // A client over a fake that echoes nothing secret, and one whose error body echoes the key.
    let a = FakeProvider::start("primary", Flavor::OpenAi).await;
    let b = FakeProvider::start("secondary", Flavor::Anthropic).await;
    let config = fast_config(&[&a, &b]);
    let keys: Vec<String> = config
        .providers
        .iter()
        .map(|p| p.api_key.as_ref().unwrap().expose().to_owned())
        .collect();
    let builder = FlexiAI::builder(config.clone());
    let builder_text = format!("{builder:?}");
    let client = builder.build().await.unwrap();
    a.set_mode(Mode::Status(401));
    b.set_mode(Mode::Status(500));
    let err = client
        .chat_completion(&flexiai_client::ChatRequest::new(vec![
            flexiai_client::Message::user("x"),
        ]))
        .await
        .unwrap_err();
    let printed = format!(
        "{config:?} {client:?} {builder_text} {err:?} {err} {:?} {:?}",
        client.get_provider_status(),
        client.stats()
    );
    for key in &keys {
        assert!(!printed.contains(key.as_str()), "{key} leaked: {printed}");
    }

    // The HTTP adapters themselves.
    let adapter = flexiai_client::OpenAiProvider::new(&config.providers[0]).unwrap();
    assert!(!format!("{adapter:?}").contains(keys[0].as_str()));
}

#[tokio::test]
async fn a_key_echoed_by_the_provider_is_scrubbed_from_errors() {
    let a = FakeProvider::start("primary", Flavor::OpenAi).await;
    let b = FakeProvider::start("secondary", Flavor::Anthropic).await;
    a.set_mode(Mode::EchoKey);
    b.set_mode(Mode::EchoKey);
    let config = fast_config(&[&a, &b]);
    let client = FlexiAI::new(config.clone()).await.unwrap();
    let err = client
        .chat_completion(&flexiai_client::ChatRequest::default())
        .await
        .unwrap_err();
    let printed = format!("{err:?} {err}");
    assert!(
        printed.contains("Incorrect API key provided: <redacted>"),
        "{printed}"
    );
    for p in &config.providers {
        assert!(
            !printed.contains(p.api_key.as_ref().unwrap().expose()),
            "{printed}"
        );
    }
}

#[tokio::test]
async fn custom_providers_replace_adapters_by_name() {
    #[derive(Debug)]
    struct Down;
    #[async_trait::async_trait]
    impl flexiai_client::Provider for Down {
        async fn chat_completion(
            &self,
            _: &flexiai_client::ChatRequest,
        ) -> Result<flexiai_client::ChatResponse, ProviderError> {
            Err(ProviderError::Connection {
                message: "refused".into(),
            })
        }
    }
    let config = FlexiAIConfig::new(vec![
        ProviderConfig::new("down", ProviderKind::OpenAi, 1, "m").api_key("sk-down-secret"),
    ]);
    let client = FlexiAI::builder(config)
        .provider("down", Arc::new(Down))
        .build()
        .await
        .unwrap();
    let err = client
        .chat_completion(&flexiai_client::ChatRequest::default())
        .await
        .unwrap_err();
    assert!(matches!(
        err.attempts()[0].error,
        flexiai_client::AttemptError::Provider(ProviderError::Connection { .. })
    ));
    assert!(!format!("{err:?} {client:?}").contains("sk-down-secret"));

    let unknown = FlexiAI::builder(FlexiAIConfig::new(vec![
        ProviderConfig::new("down", ProviderKind::OpenAi, 1, "m").api_key("k"),
    ]))
    .provider("other", Arc::new(Down))
    .build()
    .await;
    assert!(matches!(unknown, Err(ClientError::UnknownProvider(n)) if n == "other"));
}

/// Light by default: without the `redis` feature the client has no Redis backend, and a
/// config that asks for one says which feature to turn on.
#[cfg(not(feature = "redis"))]
#[tokio::test]
async fn without_the_redis_feature_a_redis_sync_section_says_so() {
    let config = flexiai_client::FlexiAIConfig::from_toml_str(
        r#"
        [[providers]]
        name = "local"
        kind = "openai"
        priority = 1
        model = "m"
        base_url = "http://127.0.0.1:9/v1"

        [sync]
        enabled = true
        backend = "redis"

        # Never the default 127.0.0.1:6379: a build where another crate turned on
        # flexiai-sync's Redis backend would connect (nothing listens on the discard port).
        [sync.redis]
        port = 9
        "#,
    )
    .unwrap();
    let err = flexiai_client::FlexiAI::new(config).await.unwrap_err();
    assert!(err.to_string().contains("`redis` feature"), "{err}");
}
