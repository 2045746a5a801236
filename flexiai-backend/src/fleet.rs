//! Fleet outcome counting and batched transitions: the value types of
//! [`SyncBackend::record_outcomes`](crate::SyncBackend::record_outcomes),
//! [`SyncBackend::storming`](crate::SyncBackend::storming) and
//! [`SyncBackend::compare_and_set_many`](crate::SyncBackend::compare_and_set_many), and the
//! checks every backend applies to them before touching the store.

use std::time::Duration;

use flexiai_events::{BreakerSnapshot, Event, Revision};

use crate::BackendError;

/// Most slices one [`OutcomeBatch`] may carry (and most buckets a [`FleetWindow`] may have).
pub const MAX_OUTCOME_SLICES: usize = 64;

/// Most failures or successes one [`OutcomeSlice`] may carry (2^40, about 10^12): far past any
/// real flush interval, and small enough that the store's sums stay exact.
pub const MAX_SLICE_COUNT: u64 = 1 << 40;

/// Most requests one [`compare_and_set_many`](crate::SyncBackend::compare_and_set_many) takes.
pub const MAX_CAS_BATCH: usize = 1024;

/// Highest [`ReportId::sequence`] (2^53 - 1): Redis compares sequences in Lua, whose numbers
/// are doubles, exact up to here.
pub const MAX_REPORT_SEQUENCE: u64 = (1 << 53) - 1;

/// Longest [`ReportId::reporter`], in bytes: room for a worker id (at most 256 bytes), a
/// separator and a 128-bit token in hex.
pub const MAX_REPORTER_LEN: usize = 320;

/// The time window over which a fleet's outcomes are summed: `buckets` slices of equal
/// length, kept by the store by its own clock, so workers' wall clocks need not agree.
///
/// ```
/// use std::time::Duration;
/// use flexiai_backend::FleetWindow;
///
/// let window = FleetWindow::new(Duration::from_secs(10), 10).unwrap();
/// assert_eq!(window.slice(), Duration::from_secs(1));
/// assert!(FleetWindow::new(Duration::from_millis(5), 10).is_err()); // slices under 1 ms
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetWindow {
    slice_ms: u64,
    buckets: u32,
}

impl FleetWindow {
    /// A window of `length` cut into `buckets` slices (1 to 64, each at least 1 ms; the
    /// window at most 24 h). The length is rounded down to whole milliseconds per slice.
    pub fn new(length: Duration, buckets: u32) -> Result<Self, BackendError> {
        let invalid = |field, reason: String| BackendError::InvalidArgument { field, reason };
        if buckets == 0 || buckets as usize > MAX_OUTCOME_SLICES {
            return Err(invalid(
                "window.buckets",
                format!("must be between 1 and {MAX_OUTCOME_SLICES}, got {buckets}"),
            ));
        }
        if length.is_zero() || length > Duration::from_secs(86_400) {
            return Err(invalid(
                "window.length",
                format!("must be between 1 ms and 24 h, got {length:?}"),
            ));
        }
        let length_ms = u64::try_from(length.as_millis()).unwrap_or(u64::MAX);
        let slice_ms = length_ms / u64::from(buckets);
        if slice_ms == 0 {
            return Err(invalid(
                "window.buckets",
                format!("{buckets} buckets over {length:?} make slices shorter than 1 ms"),
            ));
        }
        Ok(Self { slice_ms, buckets })
    }

    /// The length of one slice.
    pub fn slice(&self) -> Duration {
        Duration::from_millis(self.slice_ms)
    }

    /// The length of one slice in milliseconds.
    pub fn slice_ms(&self) -> u64 {
        self.slice_ms
    }

    /// How many slices the window holds.
    pub fn buckets(&self) -> u32 {
        self.buckets
    }

    /// The whole window (`slice * buckets`).
    pub fn length(&self) -> Duration {
        self.slice() * self.buckets
    }

    /// Slice index of the store time `now_ms`, and the oldest index still in the window.
    pub(crate) fn span(&self, now_ms: u64) -> (u64, u64) {
        let current = now_ms / self.slice_ms;
        (current, current.saturating_sub(u64::from(self.buckets) - 1))
    }
}

/// Outcomes one worker recorded for one provider during one stretch of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutcomeSlice {
    /// How long ago (by the sender's monotonic clock, measured when the batch is sent) the
    /// stretch ended. The store files the counts under its own time minus `age`, so workers'
    /// wall clocks never enter; counts older than the window are dropped.
    pub age: Duration,
    /// Failed calls.
    pub failures: u64,
    /// Successful calls.
    pub successes: u64,
}

/// Names one outcome report, so that sending it again is harmless: a store applies a
/// report of `reporter` only if its `sequence` is higher than every one it applied before
/// for the same provider and period (it remembers them as long as that period's counts).
///
/// Why: a report can be applied while its reply is lost (a timeout after the store ran it);
/// the sender cannot tell that from a report that never arrived, so it sends the same report
/// again, under the same id, and the store counts it once. `reporter` must be unique per
/// sending process (the sync manager uses its worker id and a random token drawn at start,
/// so a restarted worker with the same id never collides with its previous life), and each
/// new report must take a higher `sequence` than the last.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReportId {
    /// Who sends the reports: 1 to [`MAX_REPORTER_LEN`] bytes.
    pub reporter: String,
    /// Its report number, increasing, at most [`MAX_REPORT_SEQUENCE`].
    pub sequence: u64,
}

/// The outcome counts a worker adds to the fleet's window for one provider.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutcomeBatch {
    /// The breaker period the counts belong to (the version of the closed state they were
    /// recorded in). Each period has its own window, so counts from before a transition
    /// never count toward the state after it.
    pub period: u64,
    /// The counts, at most [`MAX_OUTCOME_SLICES`]; empty to read the totals only.
    pub slices: Vec<OutcomeSlice>,
    /// The report's id, so a resend is applied at most once; `None`: every call adds its
    /// counts (a lost reply then cannot be retried without counting twice).
    pub report: Option<ReportId>,
}

impl OutcomeBatch {
    /// A batch of counts recorded just now.
    pub fn now(period: u64, failures: u64, successes: u64) -> Self {
        Self {
            period,
            slices: vec![OutcomeSlice {
                age: Duration::ZERO,
                failures,
                successes,
            }],
            report: None,
        }
    }

    /// The same batch, sent as report `sequence` of `reporter` (see [`ReportId`]).
    #[must_use]
    pub fn reported_as(mut self, reporter: impl Into<String>, sequence: u64) -> Self {
        self.report = Some(ReportId {
            reporter: reporter.into(),
            sequence,
        });
        self
    }

    /// Checks the batch; the error names the field.
    pub fn validate(&self) -> Result<(), BackendError> {
        if self.slices.len() > MAX_OUTCOME_SLICES {
            return Err(BackendError::InvalidArgument {
                field: "batch.slices",
                reason: format!(
                    "at most {MAX_OUTCOME_SLICES} slices, got {}",
                    self.slices.len()
                ),
            });
        }
        for slice in &self.slices {
            if slice.failures > MAX_SLICE_COUNT || slice.successes > MAX_SLICE_COUNT {
                return Err(BackendError::InvalidArgument {
                    field: "batch.slices",
                    reason: format!("counts are at most {MAX_SLICE_COUNT} per slice"),
                });
            }
        }
        if let Some(report) = &self.report {
            if report.reporter.is_empty() || report.reporter.len() > MAX_REPORTER_LEN {
                return Err(BackendError::InvalidArgument {
                    field: "batch.report.reporter",
                    reason: format!(
                        "must be 1 to {MAX_REPORTER_LEN} bytes, got {}",
                        report.reporter.len()
                    ),
                });
            }
            if report.sequence > MAX_REPORT_SEQUENCE {
                return Err(BackendError::InvalidArgument {
                    field: "batch.report.sequence",
                    reason: format!("at most {MAX_REPORT_SEQUENCE}, got {}", report.sequence),
                });
            }
        }
        Ok(())
    }

    /// The slices that still fall in `window` and carry something, as
    /// `(age in ms, failures, successes)`.
    pub(crate) fn live_slices(
        &self,
        window: &FleetWindow,
    ) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        let length_ms = window.slice_ms * u64::from(window.buckets);
        self.slices.iter().filter_map(move |s| {
            let age = u64::try_from(s.age.as_millis()).unwrap_or(u64::MAX);
            (age < length_ms && (s.failures > 0 || s.successes > 0)).then_some((
                age,
                s.failures,
                s.successes,
            ))
        })
    }
}

/// The fleet's totals for one provider and period over a [`FleetWindow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FleetCounts {
    /// Failed calls, every worker's.
    pub failures: u64,
    /// Successful calls, every worker's.
    pub successes: u64,
}

impl FleetCounts {
    /// Every recorded call.
    pub fn calls(&self) -> u64 {
        self.failures.saturating_add(self.successes)
    }

    /// The share of failures, or `None` without any call.
    #[allow(clippy::cast_precision_loss)] // counts stay far below 2^52
    pub fn failure_rate(&self) -> Option<f64> {
        let calls = self.calls();
        (calls > 0).then(|| self.failures as f64 / calls as f64)
    }
}

/// One provider's part of a [`compare_and_set_many`](crate::SyncBackend::compare_and_set_many).
#[derive(Debug, Clone, Copy)]
pub struct CasRequest<'a> {
    /// The provider.
    pub provider: &'a str,
    /// The snapshot to store.
    pub snapshot: &'a BreakerSnapshot,
    /// The revision the writer grew `snapshot` from, as in
    /// [`compare_and_set`](crate::SyncBackend::compare_and_set).
    pub expected: Option<Revision>,
    /// The event to publish if it is stored.
    pub event: Option<&'a Event>,
}

/// Checks a batch of compare-and-sets before any of it touches the store.
pub fn validate_cas_batch(requests: &[CasRequest<'_>]) -> Result<(), BackendError> {
    if requests.len() > MAX_CAS_BATCH {
        return Err(BackendError::InvalidArgument {
            field: "requests",
            reason: format!("at most {MAX_CAS_BATCH} per batch, got {}", requests.len()),
        });
    }
    for request in requests {
        crate::validate_provider(request.provider)?;
    }
    Ok(())
}
