//! Test support for flexiai-rs (not published).
//!
//! * [`RedisServer`] spawns a private `redis-server` on a free loopback port, in
//!   its own temp dir, with persistence off, and can stop, kill (`-9`), restart
//!   on the same port, and pause/resume (SIGSTOP/SIGCONT) it.
//! * [`RedisCluster`] spawns a Redis Cluster of such servers (slots assigned, `MEET`,
//!   replicas, `cluster_state:ok`), can move a slot, and offers one cluster shared by every
//!   test of a process ([`RedisCluster::shared`]).
//! * [`SentinelGroup`] spawns a master, replicas and Sentinels, and runs `SENTINEL FAILOVER`.
//! * [`FaultProxy`] is a TCP proxy with runtime faults: cut, blackhole, latency.
//! * [`WorkerProcess`] steers a child over stdin/stdout, one JSON object per line (the
//!   `flexiai worker` processes of the multi-process tests and the chaos runner).
//! * [`tls::TestCa`] makes a private CA and server certificates in-process (rcgen), for
//!   `RedisServerBuilder::tls` / `tls_pem`.
//! * `RedisContainer` (feature `testcontainers`) starts Redis in Docker instead.
//! * `backend::RedisFactory` (feature `backend`) opens real `RedisBackend`s for suites
//!   written against `flexiai_backend::conformance::BackendFactory`.
//!
//! ```no_run
//! # fn main() -> Result<(), flexiai_testkit::TestkitError> {
//! use std::time::Duration;
//! use flexiai_testkit::RedisServer;
//!
//! let mut server = RedisServer::start()?;
//! server.ping(Duration::from_secs(1))?;
//! server.kill()?;
//! server.restart()?; // same port, empty data
//! # Ok(()) }
//! ```

#[cfg(feature = "backend")]
pub mod backend;
mod cluster;
#[cfg(feature = "testcontainers")]
mod container;
mod error;
mod logs;
mod process;
mod proxy;
pub mod resp;
pub mod sentinel;
mod server;
pub mod tls;

pub use cluster::{RedisCluster, SLOTS};
#[cfg(feature = "testcontainers")]
pub use container::{DEFAULT_IMAGE, RedisContainer};
pub use error::{Result, TestkitError};
pub use logs::LogCapture;
pub use process::WorkerProcess;
pub use proxy::FaultProxy;
pub use sentinel::SentinelGroup;
pub use server::{REDIS_SERVER_ENV, RedisServer, RedisServerBuilder, free_port, ping};
