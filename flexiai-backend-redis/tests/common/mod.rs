//! Shared helpers for the Redis integration tests: every test gets its own redis-server.

#![allow(
    dead_code,
    unused_imports,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use flexiai_testkit::RedisServer;

/// Starts a server, failing (never skipping) with the kit's install hint if redis-server is missing.
pub fn server() -> RedisServer {
    RedisServer::start().unwrap_or_else(|e| panic!("cannot start redis-server: {e}"))
}

pub use flexiai_testkit::backend::{RedisFactory, test_config as config};

/// A raw redis-rs connection for poking at keys behind the backend's back.
pub async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}
