//! A fake LLM provider over HTTP/1.1 on a loopback port, speaking either OpenAI's Chat
//! Completions or Anthropic's Messages shape, controllable while it runs: the steady mode,
//! a script of one-off answers served first, modes per requested model, a request counter
//! and the last request seen. Streamed answers are real SSE, replayed event by event from
//! the captured shapes in `tests/fixtures/*.sse`, with a delay before the first event, a
//! cut or a stall after some events.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flexiai_client::{FlexiAIConfig, ProviderConfig, ProviderKind, RetryConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Which API the fake speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    OpenAi,
    Anthropic,
}

/// How the fake answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// 200 with a well-formed completion.
    Healthy,
    /// This status with an error body in the provider's shape.
    Status(u16),
    /// 429, with this `Retry-After` header value if any.
    RateLimited(Option<String>),
    /// Never answers (holds the connection for a minute).
    Hang,
    /// 200 with a body that is not JSON.
    Malformed,
    /// Closes the connection without answering.
    Drop,
    /// 401 whose error message repeats the API key it received (as some providers do).
    EchoKey,
    /// 200 with this JSON body.
    Json(serde_json::Value),
    /// 200 `text/event-stream`: the events of a fixture, one write each.
    Sse(Sse),
}

/// A streamed answer: which fixture, and how it is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sse {
    /// File name under `tests/fixtures/` (e.g. `openai_text.sse`).
    pub fixture: &'static str,
    /// Wait before the first event.
    pub first_delay: Duration,
    /// Serve only this many events.
    pub events: Option<usize>,
    /// After the events: close the connection (`false`) or hold it open for a minute.
    pub hang: bool,
}

impl Sse {
    /// The whole fixture, at once.
    pub fn of(fixture: &'static str) -> Self {
        Self {
            fixture,
            first_delay: Duration::ZERO,
            events: None,
            hang: false,
        }
    }

    /// The events of a fixture, split on blank lines. The fixtures are compiled in, so this
    /// file also serves the CLI's tests.
    pub fn fixture_events(fixture: &str) -> Vec<String> {
        let text = match fixture {
            "openai_text.sse" => include_str!("../fixtures/openai_text.sse"),
            "openai_tools.sse" => include_str!("../fixtures/openai_tools.sse"),
            "openai_error.sse" => include_str!("../fixtures/openai_error.sse"),
            "anthropic_text.sse" => include_str!("../fixtures/anthropic_text.sse"),
            "anthropic_tools.sse" => include_str!("../fixtures/anthropic_tools.sse"),
            "anthropic_error.sse" => include_str!("../fixtures/anthropic_error.sse"),
            other => panic!("no fixture {other}"),
        };
        text.split("\n\n")
            .filter(|e| !e.trim().is_empty())
            .map(|e| format!("{e}\n\n"))
            .collect()
    }
}

/// What the fake received.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

struct State {
    flavor: Flavor,
    name: String,
    mode: Mutex<Mode>,
    script: Mutex<VecDeque<Mode>>,
    requests: AtomicUsize,
    last: Mutex<Option<Seen>>,
    by_model: Mutex<Vec<(String, Mode)>>,
}

/// A running fake provider; stops accepting when dropped.
pub struct FakeProvider {
    state: Arc<State>,
    port: u16,
    task: JoinHandle<()>,
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeProvider {
    /// Starts a healthy fake named `name` on a free loopback port.
    pub async fn start(name: &str, flavor: Flavor) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State {
            flavor,
            name: name.to_owned(),
            mode: Mutex::new(Mode::Healthy),
            script: Mutex::new(VecDeque::new()),
            requests: AtomicUsize::new(0),
            last: Mutex::new(None),
            by_model: Mutex::new(Vec::new()),
        });
        let shared = Arc::clone(&state);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, Arc::clone(&shared)));
            }
        });
        Self { state, port, task }
    }

    /// Base URL to configure (`http://127.0.0.1:PORT/v1`).
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// Sets the steady mode.
    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    /// Serves `mode` for the next `times` requests, before the steady mode.
    pub fn script(&self, mode: Mode, times: usize) {
        let mut script = self.state.script.lock().unwrap();
        for _ in 0..times {
            script.push_back(mode.clone());
        }
    }

    /// Answers requests for `model` with `mode` (before the script and the steady mode).
    pub fn set_model_mode(&self, model: &str, mode: Mode) {
        let mut by_model = self.state.by_model.lock().unwrap();
        by_model.retain(|(m, _)| m != model);
        by_model.push((model.to_owned(), mode));
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// The last request received.
    pub fn last(&self) -> Option<Seen> {
        self.state.last.lock().unwrap().clone()
    }

    /// A provider config pointing at this fake.
    pub fn config(&self, priority: u32) -> ProviderConfig {
        let kind = match self.state.flavor {
            Flavor::OpenAi => ProviderKind::OpenAi,
            Flavor::Anthropic => ProviderKind::Anthropic,
        };
        ProviderConfig::new(self.state.name.clone(), kind, priority, "fake-model")
            .base_url(self.base_url())
            .api_key(format!("sk-{}-secret-key-0123456789", self.state.name))
            .timeout(Duration::from_secs(5))
    }
}

/// A config over `fakes` (priorities 1, 2, ...) with a fast breaker (opens after 2
/// failures, 300 ms recovery) and no retry.
pub fn fast_config(fakes: &[&FakeProvider]) -> FlexiAIConfig {
    let providers = fakes
        .iter()
        .enumerate()
        .map(|(i, f)| f.config(u32::try_from(i).unwrap() + 1))
        .collect();
    let mut config = FlexiAIConfig::new(providers);
    config.circuit_breaker.failure_threshold = 2;
    config.circuit_breaker.recovery_timeout_ms = 300;
    config.retry = RetryConfig::builder()
        .max_attempts(1)
        .initial_backoff_ms(10)
        .max_backoff_ms(100)
        .jitter(0.0)
        .build()
        .unwrap();
    config
}

async fn serve(mut stream: TcpStream, state: Arc<State>) {
    let Some(seen) = read_request(&mut stream).await else {
        return;
    };
    state.requests.fetch_add(1, Ordering::SeqCst);
    let key = seen
        .header("x-api-key")
        .or_else(|| {
            seen.header("authorization")
                .map(|a| a.trim_start_matches("Bearer "))
        })
        .unwrap_or_default()
        .to_owned();
    let body = serde_json::from_str::<serde_json::Value>(&seen.body).unwrap_or_default();
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let streamed = body["stream"] == serde_json::json!(true);
    *state.last.lock().unwrap() = Some(seen);
    let for_model = state
        .by_model
        .lock()
        .unwrap()
        .iter()
        .find(|(m, _)| *m == model)
        .map(|(_, mode)| mode.clone());
    let mode = for_model.unwrap_or_else(|| {
        let scripted = state.script.lock().unwrap().pop_front();
        scripted.unwrap_or_else(|| state.mode.lock().unwrap().clone())
    });
    let (status, extra, body) = match mode {
        // A healthy streamed answer: "Hello world" in the flavor's shape.
        Mode::Healthy if streamed => {
            let fixture = match state.flavor {
                Flavor::OpenAi => "openai_text.sse",
                Flavor::Anthropic => "anthropic_text.sse",
            };
            serve_sse(&mut stream, &Sse::of(fixture)).await;
            return;
        }
        Mode::Healthy => (200, String::new(), healthy_body(&state)),
        Mode::Status(code) => (code, String::new(), error_body(state.flavor, code)),
        Mode::RateLimited(after) => (
            429,
            after.map_or_else(String::new, |a| format!("Retry-After: {a}\r\n")),
            error_body(state.flavor, 429),
        ),
        Mode::EchoKey => (
            401,
            String::new(),
            serde_json::json!({"error": {"message": format!("Incorrect API key provided: {key}")}})
                .to_string(),
        ),
        Mode::Malformed => (200, String::new(), "{\"choices\": [oops".to_owned()),
        Mode::Json(body) => (200, String::new(), body.to_string()),
        Mode::Sse(sse) => {
            serve_sse(&mut stream, &sse).await;
            return;
        }
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            return;
        }
        Mode::Drop => return,
    };
    let response = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn serve_sse(stream: &mut TcpStream, sse: &Sse) {
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n";
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    tokio::time::sleep(sse.first_delay).await;
    let events = Sse::fixture_events(sse.fixture);
    let n = sse.events.unwrap_or(events.len());
    for event in events.iter().take(n) {
        if stream.write_all(event.as_bytes()).await.is_err() {
            return;
        }
        let _ = stream.flush().await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    if sse.hang {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    let _ = stream.shutdown().await;
}

fn healthy_body(state: &State) -> String {
    let content = format!("hello from {}", state.name);
    match state.flavor {
        Flavor::OpenAi => serde_json::json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "fake-model-2024",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
        }),
        Flavor::Anthropic => serde_json::json!({
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "fake-claude-2024",
            "content": [{"type": "text", "text": content}],
            "stop_reason": "max_tokens",
            "usage": {"input_tokens": 9, "output_tokens": 4}
        }),
    }
    .to_string()
}

fn error_body(flavor: Flavor, code: u16) -> String {
    let message = format!("fake error {code}");
    match flavor {
        Flavor::OpenAi => serde_json::json!({"error": {"message": message, "type": "fake"}}),
        Flavor::Anthropic => serde_json::json!({"type": "error",
                                               "error": {"type": "fake", "message": message}}),
    }
    .to_string()
}

async fn read_request(stream: &mut TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let path = first.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string();
    Some(Seen {
        method,
        path,
        headers,
        body,
    })
}

/// Two fakes as one provider serving two models plus a fallback: `openai` (default model
/// `gpt-4o`, also `gpt-4o-mini`) and `claude` (`claude-sonnet`), with the chain
/// `gpt-4o-mini -> claude-sonnet`.
pub fn per_model_config(openai: &FakeProvider, claude: &FakeProvider) -> FlexiAIConfig {
    let mut config = fast_config(&[openai, claude]);
    config.providers[0].model = "gpt-4o".into();
    config.providers[0].models = vec!["gpt-4o-mini".into()];
    config.providers[1].model = "claude-sonnet".into();
    config
        .model_fallbacks
        .insert("gpt-4o-mini".into(), vec!["claude-sonnet".into()]);
    config
}
