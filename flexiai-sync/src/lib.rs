//! Keeps a fleet's circuit breakers in step.
//!
//! Each worker process builds a [`StateSyncManager`] over a `SyncBackend` (Redis in
//! production, `MemoryBackend` in one process), registers its breakers, and starts it. From
//! then on a transition on any worker reaches every worker, failures seen anywhere count
//! toward the fleet's threshold, a recovering provider gets a few probes from the whole fleet
//! instead of a few from each worker, and a worker that joins late starts with the fleet's
//! state. When the backend is unreachable the manager reports [`SyncMode::Degraded`], the
//! breakers carry on locally with nothing added to their hot path, and the manager converges
//! again by itself once the backend is back.
//!
//! See [`StateSyncManager`] for an example.

mod admin;
mod config;
mod driver;
mod error;
mod health;
mod manager;
#[cfg(any(feature = "metrics", feature = "opentelemetry"))]
pub mod names;
mod options;
#[cfg(feature = "opentelemetry")]
mod otel;
mod registry;
#[cfg(feature = "metrics")]
pub mod telemetry;

#[cfg(feature = "testing")]
pub mod scenarios;

pub use admin::override_state;
pub use config::{
    BackendKind, PYTHON_CHANNEL, RedisSettings, RedisSettingsBuilder, SecretString, SyncConfig,
    SyncConfigBuilder,
};
pub use driver::{
    DEADLINE_SLACK, DEGRADE_AFTER_FAILURES, PYTHON_CLOCK_SKEW, RECOVER_AFTER_SUCCESSES,
};
pub use error::SyncError;
pub use health::{SyncHealth, SyncMetrics, SyncMode};
pub use manager::{StateSyncManager, SyncManagerBuilder};
pub use options::{SyncOptions, SyncOptionsBuilder};

/// Compiles the README's examples, so they stay true (one wires OpenTelemetry: with the
/// feature only; `cargo xtask ci` enables it).
#[cfg(all(doctest, feature = "opentelemetry"))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

/// Compiles the deployment guide's example, so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../docs/multi-worker-deployment.md")]
pub struct DeploymentGuideDoctests;
