//! `flexiai chat --config FILE PROMPT` against in-process fake providers (the client's own
//! fake, `flexiai-client/tests/support`): the answer streamed to stdout, the failover
//! reported on stderr, and the environment's proxy honoured.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../flexiai-client/tests/support/mod.rs"]
mod fake;

use std::process::{Command, Output};

use fake::{FakeProvider, Flavor, Mode};

const PROXY_VARS: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
];

fn provider_toml(name: &str, kind: &str, priority: u32, base_url: &str) -> String {
    format!(
        r#"
        [[providers]]
        name = "{name}"
        kind = "{kind}"
        priority = {priority}
        model = "fake-model"
        base_url = "{base_url}"
        api_key = "sk-{name}-test"
        timeout_ms = 5000
        "#
    )
}

/// Runs `flexiai chat` on `config` (a TOML text) with `env` set and every proxy variable
/// cleared otherwise; off the test's runtime, which serves the fakes meanwhile.
async fn chat(config: String, env: Vec<(&'static str, String)>) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flexiai.toml");
    std::fs::write(&path, config + "\n[retry]\nmax_attempts = 1\n").unwrap();
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_flexiai"));
        for var in PROXY_VARS {
            command.env_remove(var);
        }
        command
            .envs(env)
            .args(["chat", "--config"])
            .arg(&path)
            .arg("Say hello")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_streams_the_answer_and_shows_the_failover() {
    let primary = FakeProvider::start("primary", Flavor::OpenAi).await;
    let secondary = FakeProvider::start("secondary", Flavor::Anthropic).await;
    primary.set_mode(Mode::Status(503));
    let config = provider_toml("primary", "openai", 1, &primary.base_url())
        + &provider_toml("secondary", "anthropic", 2, &secondary.base_url());
    let output = chat(config, Vec::new()).await;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout, "Hello world\n");
    assert!(
        stderr.contains("failed: primary (try 1, ")
            && stderr.contains("server error (HTTP 503): fake error 503"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "answered by secondary (fake-model): finish stop, 25 prompt + 15 completion tokens"
        ),
        "{stderr}"
    );
    assert_eq!(secondary.last().unwrap().json()["stream"], true);

    // Nothing answers: every try is listed and the command fails.
    secondary.set_mode(Mode::Status(500));
    let config = provider_toml("primary", "openai", 1, &primary.base_url())
        + &provider_toml("secondary", "anthropic", 2, &secondary.base_url());
    let output = chat(config, Vec::new()).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("failed: primary") && stderr.contains("failed: secondary"),
        "{stderr}"
    );
    assert!(stderr.contains("every provider failed"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_goes_through_the_environment_proxy() {
    // The fake plays the proxy: a proxied plain-HTTP request names the upstream URL in full.
    let proxy = FakeProvider::start("upstream", Flavor::OpenAi).await;
    let upstream = "http://upstream.invalid:9/v1";
    let config = provider_toml("upstream", "openai", 1, upstream);
    let proxy_url = proxy.base_url().trim_end_matches("/v1").to_owned();
    let output = chat(config.clone(), vec![("HTTP_PROXY", proxy_url.clone())]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        proxy.last().unwrap().path,
        "http://upstream.invalid:9/v1/chat/completions"
    );

    // NO_PROXY exempts the host: the call goes direct, and `.invalid` does not resolve.
    let before = proxy.requests();
    let output = chat(
        config,
        vec![
            ("HTTP_PROXY", proxy_url),
            ("NO_PROXY", "upstream.invalid".into()),
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("connection failed"), "{stderr}");
    assert_eq!(proxy.requests(), before);
}
