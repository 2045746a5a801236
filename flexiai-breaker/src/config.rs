//! Breaker configuration: plain data, serializable with durations in milliseconds, checked by
//! [`BreakerConfig::validate`] before any breaker is built from it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::BreakerError;

/// Most probe slots or credits a half-open breaker can hold (the width of its field in the
/// packed state word).
pub const MAX_HALF_OPEN_CALLS: u32 = 4095;

/// Longest open period accepted, 30 days: far past any sensible value, and short enough that
/// deadline arithmetic in nanoseconds cannot overflow.
pub const MAX_OPEN_MS: u64 = 30 * 24 * 60 * 60 * 1000;

/// How failures are counted in the closed state to decide when to open.
///
/// `#[non_exhaustive]`: new policies may be added, so a `match` needs a wildcard arm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[non_exhaustive]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FailurePolicy {
    /// Open after [`BreakerConfig::failure_threshold`] failures in a row; any counted success
    /// resets the run. This is the Python original's behaviour.
    #[default]
    ConsecutiveFailures,
    /// Open when, over the last `window_ms`, at least `minimum_calls` outcomes were recorded
    /// and the share of failures among them reached `failure_rate_threshold`.
    ///
    /// The window is a ring of `buckets` time slices, so outcomes expire one slice at a time.
    FailureRate {
        /// Length of the sliding window, in milliseconds.
        window_ms: u64,
        /// Number of slices the window is cut into (1 to 64); each must last at least 1 ms.
        buckets: u32,
        /// Outcomes needed in the window before the rate is considered.
        minimum_calls: u32,
        /// Failure share that opens the breaker, in `(0, 1]` (e.g. `0.5`).
        failure_rate_threshold: f64,
    },
}

impl FailurePolicy {
    /// A failure-rate policy with 10 buckets over `window`.
    pub fn failure_rate(window: Duration, minimum_calls: u32, threshold: f64) -> Self {
        FailurePolicy::FailureRate {
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
            buckets: 10,
            minimum_calls,
            failure_rate_threshold: threshold,
        }
    }
}

/// Settings of one circuit breaker.
///
/// Durations are whole milliseconds in fields ending in `_ms`, so a config file reads
/// naturally (`recovery_timeout_ms = 30000`); the `Duration` accessors are for code. Missing
/// fields take their defaults and unknown fields are an error, so a typo is caught.
///
/// `#[non_exhaustive]`: build one in code with [`BreakerConfig::builder`] (which validates),
/// or start from [`Default`] and set fields; a struct literal does not compile outside this
/// crate, so adding a field is not a breaking change.
///
/// ```
/// use std::time::Duration;
/// use flexiai_breaker::BreakerConfig;
///
/// let config: BreakerConfig = serde_json::from_str(r#"{"failure_threshold": 3}"#).unwrap();
/// assert_eq!(config.failure_threshold, 3);
/// assert_eq!(config.recovery_timeout().as_secs(), 60);
/// assert!(config.validate().is_ok());
///
/// let built = BreakerConfig::builder()
///     .failure_threshold(3)
///     .recovery_timeout(Duration::from_secs(60))
///     .build()?;
/// assert_eq!(built, config);
/// # Ok::<(), flexiai_breaker::BreakerError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker (consecutive policy). Default 5.
    pub failure_threshold: u32,
    /// How long the breaker stays open before admitting trial calls, in ms. Default 60 000.
    pub recovery_timeout_ms: u64,
    /// Trial calls a half-open breaker admits at once (per worker in [`ProbeMode::Local`],
    /// per grant in [`ProbeMode::Granted`]). Default 1.
    ///
    /// [`ProbeMode::Local`]: crate::ProbeMode::Local
    /// [`ProbeMode::Granted`]: crate::ProbeMode::Granted
    pub half_open_max_calls: u32,
    /// Successful trial calls needed to close a half-open breaker. Default 1.
    pub success_threshold: u32,
    /// How failures are counted while closed. Default: consecutive failures.
    pub failure_policy: FailurePolicy,
    /// Calls slower than this count as failures even when they succeed, in ms. Default: off.
    pub slow_call_threshold_ms: Option<u64>,
    /// Each time a trial call fails and the breaker reopens, the open period is multiplied by
    /// this factor (1.0 = no backoff, the default), up to `max_recovery_timeout_ms`.
    pub backoff_multiplier: f64,
    /// Cap on the open period under backoff, in ms. Default 600 000 (10 minutes), or
    /// `recovery_timeout_ms` if that is larger.
    pub max_recovery_timeout_ms: u64,
    /// Random shortening of each open period, as a fraction in `[0, 1)`: with 0.2 an open
    /// period lasts between 80% and 100% of its nominal length, so a fleet that opened together
    /// does not probe together. Default 0 (no jitter).
    pub jitter_ratio: f64,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            recovery_timeout_ms: 60_000,
            half_open_max_calls: 1,
            success_threshold: 1,
            failure_policy: FailurePolicy::ConsecutiveFailures,
            slow_call_threshold_ms: None,
            backoff_multiplier: 1.0,
            max_recovery_timeout_ms: 600_000,
            jitter_ratio: 0.0,
        }
    }
}

/// Builds a [`BreakerConfig`]: every setter is named after the field it sets, and
/// [`build`](Self::build) validates ([`BreakerConfig::validate`]), naming the first bad field.
///
/// ```
/// use flexiai_breaker::{BreakerConfig, BreakerError};
///
/// let err = BreakerConfig::builder().failure_threshold(0).build().unwrap_err();
/// assert!(matches!(err, BreakerError::InvalidConfig { field: "failure_threshold", .. }));
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct BreakerConfigBuilder {
    config: BreakerConfig,
}

impl From<BreakerConfig> for BreakerConfigBuilder {
    /// A builder starting from `config`'s values.
    fn from(config: BreakerConfig) -> Self {
        Self { config }
    }
}

impl BreakerConfigBuilder {
    /// Sets [`BreakerConfig::failure_threshold`].
    pub fn failure_threshold(mut self, value: u32) -> Self {
        self.config.failure_threshold = value;
        self
    }

    /// Sets [`BreakerConfig::recovery_timeout_ms`].
    pub fn recovery_timeout_ms(mut self, value: u64) -> Self {
        self.config.recovery_timeout_ms = value;
        self
    }

    /// Sets the open period (rounded down to whole milliseconds).
    pub fn recovery_timeout(mut self, timeout: Duration) -> Self {
        self.config = self.config.with_recovery_timeout(timeout);
        self
    }

    /// Sets [`BreakerConfig::half_open_max_calls`].
    pub fn half_open_max_calls(mut self, value: u32) -> Self {
        self.config.half_open_max_calls = value;
        self
    }

    /// Sets [`BreakerConfig::success_threshold`].
    pub fn success_threshold(mut self, value: u32) -> Self {
        self.config.success_threshold = value;
        self
    }

    /// Sets [`BreakerConfig::failure_policy`].
    pub fn failure_policy(mut self, value: FailurePolicy) -> Self {
        self.config.failure_policy = value;
        self
    }

    /// Sets [`BreakerConfig::slow_call_threshold_ms`] (`None` turns slow-call detection off).
    pub fn slow_call_threshold_ms(mut self, value: impl Into<Option<u64>>) -> Self {
        self.config.slow_call_threshold_ms = value.into();
        self
    }

    /// Sets [`BreakerConfig::backoff_multiplier`].
    pub fn backoff_multiplier(mut self, value: f64) -> Self {
        self.config.backoff_multiplier = value;
        self
    }

    /// Sets [`BreakerConfig::max_recovery_timeout_ms`].
    pub fn max_recovery_timeout_ms(mut self, value: u64) -> Self {
        self.config.max_recovery_timeout_ms = value;
        self
    }

    /// Sets [`BreakerConfig::jitter_ratio`].
    pub fn jitter_ratio(mut self, value: f64) -> Self {
        self.config.jitter_ratio = value;
        self
    }

    /// Validates and returns the config; the error names the first bad field.
    pub fn build(self) -> Result<BreakerConfig, BreakerError> {
        self.config.validate()?;
        Ok(self.config)
    }
}

impl BreakerConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> BreakerConfigBuilder {
        BreakerConfigBuilder::default()
    }

    /// The open period before the first trial call.
    pub fn recovery_timeout(&self) -> Duration {
        Duration::from_millis(self.recovery_timeout_ms)
    }

    /// Sets the open period (rounded down to whole milliseconds).
    #[must_use]
    pub fn with_recovery_timeout(mut self, timeout: Duration) -> Self {
        self.recovery_timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self
    }

    /// The slow-call threshold, if any.
    pub fn slow_call_threshold(&self) -> Option<Duration> {
        self.slow_call_threshold_ms.map(Duration::from_millis)
    }

    /// The cap on the open period: `max_recovery_timeout_ms`, but never below
    /// `recovery_timeout_ms`.
    pub fn max_recovery_timeout(&self) -> Duration {
        Duration::from_millis(self.max_recovery_timeout_ms.max(self.recovery_timeout_ms))
    }

    /// Checks every field; the error names the first bad one.
    ///
    /// ```
    /// use flexiai_breaker::{BreakerConfig, BreakerError};
    ///
    /// let mut bad = BreakerConfig::default();
    /// bad.failure_threshold = 0;
    /// match bad.validate() {
    ///     Err(BreakerError::InvalidConfig { field, .. }) => assert_eq!(field, "failure_threshold"),
    ///     other => panic!("unexpected {other:?}"),
    /// }
    /// ```
    pub fn validate(&self) -> Result<(), BreakerError> {
        if self.failure_threshold == 0 {
            return Err(BreakerError::config(
                "failure_threshold",
                "must be at least 1",
            ));
        }
        if self.recovery_timeout_ms == 0 || self.recovery_timeout_ms > MAX_OPEN_MS {
            return Err(BreakerError::config(
                "recovery_timeout_ms",
                format!(
                    "must be between 1 and {MAX_OPEN_MS} ms, got {}",
                    self.recovery_timeout_ms
                ),
            ));
        }
        if self.half_open_max_calls == 0 || self.half_open_max_calls > MAX_HALF_OPEN_CALLS {
            return Err(BreakerError::config(
                "half_open_max_calls",
                format!(
                    "must be between 1 and {MAX_HALF_OPEN_CALLS}, got {}",
                    self.half_open_max_calls
                ),
            ));
        }
        if self.success_threshold == 0 {
            return Err(BreakerError::config(
                "success_threshold",
                "must be at least 1",
            ));
        }
        if let FailurePolicy::FailureRate {
            window_ms,
            buckets,
            minimum_calls,
            failure_rate_threshold,
        } = &self.failure_policy
        {
            if *window_ms == 0 || *window_ms > MAX_OPEN_MS {
                return Err(BreakerError::config(
                    "failure_policy.window_ms",
                    format!("must be between 1 and {MAX_OPEN_MS} ms, got {window_ms}"),
                ));
            }
            if *buckets == 0 || *buckets > 64 {
                return Err(BreakerError::config(
                    "failure_policy.buckets",
                    format!("must be between 1 and 64, got {buckets}"),
                ));
            }
            if window_ms / u64::from(*buckets) == 0 {
                return Err(BreakerError::config(
                    "failure_policy.buckets",
                    format!("{buckets} buckets over {window_ms} ms make slices shorter than 1 ms"),
                ));
            }
            if *minimum_calls == 0 {
                return Err(BreakerError::config(
                    "failure_policy.minimum_calls",
                    "must be at least 1",
                ));
            }
            if !(failure_rate_threshold.is_finite()
                && *failure_rate_threshold > 0.0
                && *failure_rate_threshold <= 1.0)
            {
                return Err(BreakerError::config(
                    "failure_policy.failure_rate_threshold",
                    format!("must be in (0, 1], got {failure_rate_threshold}"),
                ));
            }
        }
        if self.slow_call_threshold_ms == Some(0) {
            return Err(BreakerError::config(
                "slow_call_threshold_ms",
                "must be at least 1 ms (leave it out to disable slow-call detection)",
            ));
        }
        if !(self.backoff_multiplier.is_finite()
            && self.backoff_multiplier >= 1.0
            && self.backoff_multiplier <= 100.0)
        {
            return Err(BreakerError::config(
                "backoff_multiplier",
                format!(
                    "must be between 1.0 and 100.0, got {}",
                    self.backoff_multiplier
                ),
            ));
        }
        if self.max_recovery_timeout_ms > MAX_OPEN_MS {
            return Err(BreakerError::config(
                "max_recovery_timeout_ms",
                format!(
                    "must be at most {MAX_OPEN_MS} ms, got {}",
                    self.max_recovery_timeout_ms
                ),
            ));
        }
        if !(self.jitter_ratio.is_finite() && (0.0..1.0).contains(&self.jitter_ratio)) {
            return Err(BreakerError::config(
                "jitter_ratio",
                format!("must be in [0, 1), got {}", self.jitter_ratio),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(config: &BreakerConfig) -> &'static str {
        match config.validate() {
            Err(BreakerError::InvalidConfig { field, .. }) => field,
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_the_seeds_and_valid() {
        let c = BreakerConfig::default();
        assert_eq!(c.failure_threshold, 5);
        assert_eq!(c.recovery_timeout(), Duration::from_secs(60));
        assert_eq!(c.half_open_max_calls, 1);
        assert_eq!(c.success_threshold, 1);
        assert!(c.validate().is_ok());
    }

    #[test]
    fn every_bad_field_is_named() {
        let d = BreakerConfig::default;
        let rate = |window_ms, buckets, minimum_calls, failure_rate_threshold| BreakerConfig {
            failure_policy: FailurePolicy::FailureRate {
                window_ms,
                buckets,
                minimum_calls,
                failure_rate_threshold,
            },
            ..d()
        };
        let cases: Vec<(BreakerConfig, &str)> = vec![
            (
                BreakerConfig {
                    failure_threshold: 0,
                    ..d()
                },
                "failure_threshold",
            ),
            (
                BreakerConfig {
                    recovery_timeout_ms: 0,
                    ..d()
                },
                "recovery_timeout_ms",
            ),
            (
                BreakerConfig {
                    recovery_timeout_ms: MAX_OPEN_MS + 1,
                    ..d()
                },
                "recovery_timeout_ms",
            ),
            (
                BreakerConfig {
                    half_open_max_calls: 0,
                    ..d()
                },
                "half_open_max_calls",
            ),
            (
                BreakerConfig {
                    half_open_max_calls: 5000,
                    ..d()
                },
                "half_open_max_calls",
            ),
            (
                BreakerConfig {
                    success_threshold: 0,
                    ..d()
                },
                "success_threshold",
            ),
            (
                BreakerConfig {
                    slow_call_threshold_ms: Some(0),
                    ..d()
                },
                "slow_call_threshold_ms",
            ),
            (
                BreakerConfig {
                    backoff_multiplier: 0.5,
                    ..d()
                },
                "backoff_multiplier",
            ),
            (
                BreakerConfig {
                    backoff_multiplier: f64::NAN,
                    ..d()
                },
                "backoff_multiplier",
            ),
            (
                BreakerConfig {
                    max_recovery_timeout_ms: u64::MAX,
                    ..d()
                },
                "max_recovery_timeout_ms",
            ),
            (
                BreakerConfig {
                    jitter_ratio: 1.0,
                    ..d()
                },
                "jitter_ratio",
            ),
            (
                BreakerConfig {
                    jitter_ratio: -0.1,
                    ..d()
                },
                "jitter_ratio",
            ),
            (rate(0, 10, 5, 0.5), "failure_policy.window_ms"),
            (rate(1000, 0, 5, 0.5), "failure_policy.buckets"),
            (rate(1000, 65, 5, 0.5), "failure_policy.buckets"),
            (rate(10, 20, 5, 0.5), "failure_policy.buckets"),
            (rate(1000, 10, 0, 0.5), "failure_policy.minimum_calls"),
            (
                rate(1000, 10, 5, 0.0),
                "failure_policy.failure_rate_threshold",
            ),
            (
                rate(1000, 10, 5, 1.5),
                "failure_policy.failure_rate_threshold",
            ),
        ];
        for (config, field) in &cases {
            assert_eq!(field_of(config), *field, "{config:?}");
        }
        assert!(rate(1000, 10, 5, 1.0).validate().is_ok());
    }

    #[test]
    fn serde_uses_milliseconds_and_rejects_typos() {
        let json = r#"{
            "failure_threshold": 2,
            "recovery_timeout_ms": 1500,
            "failure_policy": {"kind": "failure_rate", "window_ms": 10000, "buckets": 10,
                               "minimum_calls": 20, "failure_rate_threshold": 0.5},
            "slow_call_threshold_ms": 2000
        }"#;
        let c: BreakerConfig = serde_json::from_str(json).unwrap();
        assert_eq!(c.recovery_timeout(), Duration::from_millis(1500));
        assert_eq!(c.slow_call_threshold(), Some(Duration::from_secs(2)));
        assert_eq!(
            c.failure_policy,
            FailurePolicy::failure_rate(Duration::from_secs(10), 20, 0.5)
        );
        let back: BreakerConfig =
            serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        assert!(serde_json::from_str::<BreakerConfig>(r#"{"failure_treshold": 2}"#).is_err());
    }
}
