//! A small HTTP service in front of FlexiAI: `POST /chat` answers through the first healthy
//! provider, `GET /status` shows every provider's breaker (the fleet's view when synced) and
//! `GET /stats` the request counters.
//!
//! ```sh
//! FLEXIAI_CONFIG=flexiai.toml FLEXIAI_OPENAI_API_KEY=sk-... \
//!     cargo run -p flexiai-client --example axum_service
//! curl -s localhost:3000/chat -d '{"messages": [{"role": "user", "content": "Hi"}]}' \
//!     -H 'content-type: application/json'
//! ```
//!
//! `FLEXIAI_CONFIG` names a TOML or JSON file (see `FlexiAIConfig`); keys come from the
//! environment. `FLEXIAI_LISTEN` sets the address (default `127.0.0.1:3000`). Ctrl-C closes
//! the client, which stops its sync manager cleanly.

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use flexiai_client::{ChatRequest, ClientError, FlexiAI, FlexiAIConfig};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::var("FLEXIAI_CONFIG").unwrap_or_else(|_| "flexiai.toml".into());
    let config = FlexiAIConfig::load(&path)?;
    let client = FlexiAI::new(config).await?;

    let app = Router::new()
        .route("/chat", post(chat))
        .route("/status", get(status))
        .route("/stats", get(stats))
        .with_state(client.clone());

    let addr: SocketAddr = std::env::var("FLEXIAI_LISTEN")
        .unwrap_or_else(|_| "127.0.0.1:3000".into())
        .parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    client.close().await?;
    Ok(())
}

async fn chat(State(client): State<FlexiAI>, Json(request): Json<ChatRequest>) -> Response {
    match client.chat_completion(&request).await {
        Ok(answer) => Json(answer).into_response(),
        Err(ClientError::AllProvidersFailed { attempts }) => {
            let tries: Vec<String> = attempts.iter().map(ToString::to_string).collect();
            let body = json!({"error": "all providers failed", "attempts": tries});
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
        Err(other) => {
            let body = json!({"error": other.to_string()});
            (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response()
        }
    }
}

async fn status(State(client): State<FlexiAI>) -> Json<serde_json::Value> {
    let providers: Vec<_> = client
        .get_provider_status()
        .into_iter()
        .map(|p| {
            json!({
                "name": p.name,
                "priority": p.priority,
                "model": p.model,
                "state": p.state.as_str(),
                "available": p.available,
                "version": p.snapshot.version,
                "failure_count": p.snapshot.failure_count,
                "open_remaining_ms": p.snapshot.open_remaining_ms,
            })
        })
        .collect();
    let sync = client.sync_health().map(|h| h.mode.to_string());
    Json(json!({"providers": providers, "sync": sync}))
}

async fn stats(State(client): State<FlexiAI>) -> Json<serde_json::Value> {
    let s = client.stats();
    let providers: Vec<_> = s
        .providers
        .iter()
        .map(|p| {
            json!({
                "provider": p.provider,
                "calls": p.calls,
                "successes": p.successes,
                "failures": p.failures,
                "rejected": p.rejected,
                "retries": p.retries,
                "total_latency_ms": p.total_latency.as_millis(),
            })
        })
        .collect();
    Json(json!({
        "requests": s.requests,
        "successes": s.successes,
        "failures": s.failures,
        "failovers": s.failovers,
        "providers": providers,
    }))
}
