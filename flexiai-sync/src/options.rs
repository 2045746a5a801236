use std::time::Duration;

use crate::SyncError;

/// How often and how long the manager's background work runs.
///
/// The defaults suit a fleet behind a load balancer: transitions go out as soon as they
/// happen (checked every 50 ms), a storming provider's outcome counts go to the store at most
/// every second per worker, stored state is re-read every 5 s as a
/// backstop for lost messages, and a worker that stops heartbeating drops off the live list
/// within 5 s.
///
/// Non-exhaustive: build it with [`SyncOptions::builder`] (validated), or start from
/// [`Default`] and assign fields.
///
/// ```
/// use std::time::Duration;
/// use flexiai_sync::SyncOptions;
///
/// let options = SyncOptions::builder().reconcile_interval(Duration::from_secs(2)).build()?;
/// assert_eq!(options.reconcile_interval, Duration::from_secs(2));
///
/// let mut options = SyncOptions::default();
/// options.flush_interval = Duration::ZERO;
/// assert!(options.validate().unwrap_err().to_string().contains("flush_interval"));
/// # Ok::<(), flexiai_sync::SyncError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SyncOptions {
    /// How often local transitions are published and the breakers' outcome counts are read.
    pub flush_interval: Duration,
    /// The shortest time between two outcome reports (`record_outcomes`) of one provider by
    /// this worker: counts read every flush accumulate, per local slice, until then. Redis
    /// traffic for outcomes is at most one command per provider per interval (while failures
    /// occur; nothing while healthy), whatever the request or flush rate, so a storming
    /// fleet of N workers costs Redis N / interval script calls per second. The price is
    /// latency: a fleet trip waits up to one more interval for the last reports (the settle
    /// time is `heartbeat_interval` + `flush_interval` + this interval). Reports go out on
    /// flushes, so a value below `flush_interval` means one report per flush.
    pub outcome_report_interval: Duration,
    /// How often stored state is re-read for every provider (the backstop for lost messages).
    pub reconcile_interval: Duration,
    /// How often this worker's heartbeat is refreshed.
    pub heartbeat_interval: Duration,
    /// How long a heartbeat lives; must exceed `heartbeat_interval`.
    pub heartbeat_ttl: Duration,
    /// Upper bound on every backend call the manager makes.
    pub operation_timeout: Duration,
    /// Whether half-open probes are rationed across the fleet through a distributed lease.
    /// Without it each worker sends its own `half_open_max_calls` probes.
    pub fleet_probes: bool,
    /// How long a worker holds the probe lease of one half-open period. It should exceed the
    /// provider call timeout, so that a holder's probes finish before another worker's start.
    pub probe_lease_ttl: Duration,
    /// First delay before re-subscribing after the subscription failed; doubles up to
    /// `max_retry_backoff`.
    pub min_retry_backoff: Duration,
    /// Longest delay between re-subscription attempts.
    pub max_retry_backoff: Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_millis(50),
            outcome_report_interval: Duration::from_secs(1),
            reconcile_interval: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_ttl: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(2),
            fleet_probes: true,
            probe_lease_ttl: Duration::from_secs(30),
            min_retry_backoff: Duration::from_millis(100),
            max_retry_backoff: Duration::from_secs(5),
        }
    }
}

/// Builds [`SyncOptions`]: every setter is named after the field it sets, and
/// [`build`](Self::build) validates ([`SyncOptions::validate`]), naming the first bad field.
///
/// ```
/// use std::time::Duration;
/// use flexiai_sync::{SyncError, SyncOptions};
///
/// let err = SyncOptions::builder().heartbeat_ttl(Duration::from_millis(10)).build().unwrap_err();
/// assert!(matches!(err, SyncError::InvalidConfig { ref field, .. } if field == "heartbeat_ttl"));
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct SyncOptionsBuilder {
    options: SyncOptions,
}

impl From<SyncOptions> for SyncOptionsBuilder {
    /// A builder starting from `options`' values.
    fn from(options: SyncOptions) -> Self {
        Self { options }
    }
}

impl SyncOptionsBuilder {
    /// Sets [`SyncOptions::flush_interval`].
    pub fn flush_interval(mut self, value: Duration) -> Self {
        self.options.flush_interval = value;
        self
    }

    /// Sets [`SyncOptions::outcome_report_interval`].
    pub fn outcome_report_interval(mut self, value: Duration) -> Self {
        self.options.outcome_report_interval = value;
        self
    }

    /// Sets [`SyncOptions::reconcile_interval`].
    pub fn reconcile_interval(mut self, value: Duration) -> Self {
        self.options.reconcile_interval = value;
        self
    }

    /// Sets [`SyncOptions::heartbeat_interval`].
    pub fn heartbeat_interval(mut self, value: Duration) -> Self {
        self.options.heartbeat_interval = value;
        self
    }

    /// Sets [`SyncOptions::heartbeat_ttl`].
    pub fn heartbeat_ttl(mut self, value: Duration) -> Self {
        self.options.heartbeat_ttl = value;
        self
    }

    /// Sets [`SyncOptions::operation_timeout`].
    pub fn operation_timeout(mut self, value: Duration) -> Self {
        self.options.operation_timeout = value;
        self
    }

    /// Sets [`SyncOptions::fleet_probes`].
    pub fn fleet_probes(mut self, value: bool) -> Self {
        self.options.fleet_probes = value;
        self
    }

    /// Sets [`SyncOptions::probe_lease_ttl`].
    pub fn probe_lease_ttl(mut self, value: Duration) -> Self {
        self.options.probe_lease_ttl = value;
        self
    }

    /// Sets [`SyncOptions::min_retry_backoff`].
    pub fn min_retry_backoff(mut self, value: Duration) -> Self {
        self.options.min_retry_backoff = value;
        self
    }

    /// Sets [`SyncOptions::max_retry_backoff`].
    pub fn max_retry_backoff(mut self, value: Duration) -> Self {
        self.options.max_retry_backoff = value;
        self
    }

    /// Validates and returns the options; the error names the first bad field.
    pub fn build(self) -> Result<SyncOptions, SyncError> {
        self.options.validate()?;
        Ok(self.options)
    }
}

impl SyncOptions {
    /// A builder starting from the defaults.
    pub fn builder() -> SyncOptionsBuilder {
        SyncOptionsBuilder::default()
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), SyncError> {
        let positive = [
            ("flush_interval", self.flush_interval),
            ("outcome_report_interval", self.outcome_report_interval),
            ("reconcile_interval", self.reconcile_interval),
            ("heartbeat_interval", self.heartbeat_interval),
            ("heartbeat_ttl", self.heartbeat_ttl),
            ("operation_timeout", self.operation_timeout),
            ("probe_lease_ttl", self.probe_lease_ttl),
            ("min_retry_backoff", self.min_retry_backoff),
            ("max_retry_backoff", self.max_retry_backoff),
        ];
        for (field, value) in positive {
            if value.is_zero() {
                return Err(SyncError::config(field, "must be greater than zero"));
            }
            if value > Duration::from_secs(86_400) {
                return Err(SyncError::config(field, "must be at most 24 h"));
            }
        }
        if self.heartbeat_ttl <= self.heartbeat_interval {
            return Err(SyncError::config(
                "heartbeat_ttl",
                format!(
                    "{:?} must exceed heartbeat_interval ({:?}) or live workers expire between beats",
                    self.heartbeat_ttl, self.heartbeat_interval
                ),
            ));
        }
        if self.max_retry_backoff < self.min_retry_backoff {
            return Err(SyncError::config(
                "max_retry_backoff",
                "must be at least min_retry_backoff",
            ));
        }
        Ok(())
    }
}
