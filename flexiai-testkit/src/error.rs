//! The one error type of the test kit.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while starting or driving test infrastructure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TestkitError {
    /// The `redis-server` binary could not be found.
    #[error(
        "redis-server not found ({searched}); install it with `apt-get install redis-server` \
         (Debian/Ubuntu) or `brew install redis` (macOS), or point FLEXIAI_REDIS_SERVER at the binary"
    )]
    RedisServerNotFound {
        /// Where the kit looked.
        searched: String,
    },

    /// An I/O operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the kit was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// redis-server did not answer PING within the startup timeout.
    #[error(
        "redis-server on port {port} did not answer PING within {timeout:?}; log tail:\n{log_tail}"
    )]
    StartTimeout {
        /// The port it was started on.
        port: u16,
        /// How long the kit waited.
        timeout: Duration,
        /// The last lines of the server's log.
        log_tail: String,
    },

    /// redis-server exited during startup.
    #[error("redis-server on port {port} exited during startup ({status}); log tail:\n{log_tail}")]
    ServerExited {
        /// The port it was started on.
        port: u16,
        /// The exit status, as text.
        status: String,
        /// The last lines of the server's log.
        log_tail: String,
    },

    /// The operation needs a running server, but it is stopped or killed.
    #[error("redis-server on port {port} is not running")]
    NotRunning {
        /// The server's port.
        port: u16,
    },

    /// Sending a signal to the server process failed.
    #[error("sending {signal} to redis-server (pid {pid}) failed: {source}")]
    Signal {
        /// The signal's name.
        signal: &'static str,
        /// The process id.
        pid: u32,
        /// The underlying error.
        #[source]
        source: nix::Error,
    },

    /// A PING got no valid answer.
    #[error("PING to {addr} failed: {reason}")]
    Ping {
        /// The address pinged.
        addr: SocketAddr,
        /// What went wrong (time-out, refused, unexpected reply).
        reason: String,
    },

    /// A command sent to a test server failed, or a cluster / Sentinel group did not reach
    /// the awaited state in time.
    #[error("{context}: {reason}")]
    Topology {
        /// What was being done.
        context: String,
        /// What went wrong.
        reason: String,
    },

    /// A line-protocol worker process misbehaved: exited, or sent a bad or error reply.
    #[error("worker process: {0}")]
    Worker(String),

    /// A test certificate could not be made.
    #[error("making a test certificate: {0}")]
    Certificate(String),

    /// The binary path is not valid.
    #[error("invalid redis-server binary path {0}")]
    InvalidBinary(PathBuf),

    /// A testcontainers operation failed (feature `testcontainers`).
    #[cfg(feature = "testcontainers")]
    #[error("testcontainers: {0}")]
    Container(#[from] testcontainers::TestcontainersError),
}

impl TestkitError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result alias for the kit.
pub type Result<T, E = TestkitError> = std::result::Result<T, E>;
