//! Breaker telemetry through the [`metrics`] facade (feature `metrics`).
//!
//! The hot path never calls a metrics recorder: a recorder may lock, allocate label sets or
//! do I/O, and admission must do none of that. The breaker already keeps exact counters in
//! its own atomics ([`BreakerMetrics`]), so a background [`MetricsExporter`] reads them every
//! few seconds and records *absolute* values (`Counter::absolute`, gauges). A scrape sees the
//! same totals as a per-call recorder would, at most one export period late. Transitions are
//! counted from the breaker's version (every transition it made or adopted adds one), so
//! none is missed between two exports even when the state itself changed back meanwhile.
//! Names and labels: `docs/metrics.md`.

use std::fmt;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use flexiai_events::CircuitState;
use metrics::{Counter, Gauge, Label, counter, gauge};

use crate::error::BreakerError;
use crate::{BreakerMetrics, CircuitBreaker};

pub use crate::names;

/// The metric handles of one breaker, registered once with the installed recorder; each
/// [`record`](BreakerRecorder::record) sets them from a [`BreakerMetrics`].
pub struct BreakerRecorder {
    successes: Counter,
    failures: Counter,
    admitted: Counter,
    rejected: Counter,
    transitions: Counter,
    states: [Gauge; 5],
    probe_credits: Gauge,
    failure_rate: Gauge,
    open_remaining: Gauge,
    consecutive_opens: Gauge,
}

impl fmt::Debug for BreakerRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerRecorder").finish_non_exhaustive()
    }
}

impl BreakerRecorder {
    /// Handles for the breaker `name`, with `labels` added to every metric.
    pub fn new(name: &str, labels: &[Label]) -> Self {
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut all = labels.to_vec();
            all.push(Label::new("breaker", name.to_owned()));
            all.extend(extra.iter().map(|(k, v)| Label::new(*k, *v)));
            all
        };
        Self {
            successes: counter!(names::CALLS, with(&[("outcome", "success")])),
            failures: counter!(names::CALLS, with(&[("outcome", "failure")])),
            admitted: counter!(names::ADMITTED, with(&[])),
            rejected: counter!(names::REJECTED, with(&[])),
            transitions: counter!(names::TRANSITIONS, with(&[])),
            states: CircuitState::ALL.map(|s| gauge!(names::STATE, with(&[("state", s.as_str())]))),
            probe_credits: gauge!(names::PROBE_CREDITS, with(&[])),
            failure_rate: gauge!(names::FAILURE_RATE, with(&[])),
            open_remaining: gauge!(names::OPEN_REMAINING, with(&[])),
            consecutive_opens: gauge!(names::CONSECUTIVE_OPENS, with(&[])),
        }
    }

    /// Records one reading of a breaker.
    pub fn record(&self, m: &BreakerMetrics) {
        self.successes.absolute(m.total_successes);
        self.failures.absolute(m.total_failures);
        self.admitted.absolute(m.calls_admitted);
        self.rejected.absolute(m.calls_rejected);
        self.transitions.absolute(m.version);
        for (gauge, state) in self.states.iter().zip(CircuitState::ALL) {
            gauge.set(if state == m.state { 1.0 } else { 0.0 });
        }
        self.probe_credits.set(f64::from(m.probe_slots));
        self.failure_rate.set(m.failure_rate);
        self.open_remaining
            .set(m.open_remaining.unwrap_or_default().as_secs_f64());
        self.consecutive_opens.set(f64::from(m.consecutive_opens));
    }
}

/// Something else to record at every export (e.g. `flexiai-sync`'s manager metrics).
type Source = Box<dyn FnMut() + Send>;

/// Reads breakers' own counters and records them through the `metrics` facade, on demand
/// ([`record`](MetricsExporter::record)) or every period on a background thread
/// ([`spawn`](MetricsExporter::spawn)).
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use flexiai_breaker::{BreakerConfig, CircuitBreaker, MetricsExporter};
///
/// let breaker = Arc::new(CircuitBreaker::new("openai", BreakerConfig::default())?);
/// let exporter = MetricsExporter::new()
///     .label("service", "chat-api")
///     .breaker(Arc::clone(&breaker))
///     .spawn(Duration::from_secs(5))?;
/// // ... serve traffic; a metrics recorder installed by the application sees the values.
/// drop(exporter); // stops the thread (after one last export)
/// # Ok::<(), flexiai_breaker::BreakerError>(())
/// ```
#[derive(Default)]
pub struct MetricsExporter {
    labels: Vec<Label>,
    breakers: Vec<(Arc<CircuitBreaker>, BreakerRecorder)>,
    sources: Vec<Source>,
}

impl fmt::Debug for MetricsExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsExporter")
            .field("labels", &self.labels)
            .field(
                "breakers",
                &self
                    .breakers
                    .iter()
                    .map(|(b, _)| b.name())
                    .collect::<Vec<_>>(),
            )
            .field("sources", &self.sources.len())
            .finish()
    }
}

impl MetricsExporter {
    /// An exporter with nothing to export yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a constant label to the metrics of breakers added after this call (e.g. a worker
    /// name when several workers share one process).
    pub fn label(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.labels.push(Label::new(key, value.into()));
        self
    }

    /// The constant labels set so far.
    pub fn labels(&self) -> &[Label] {
        &self.labels
    }

    /// Exports `breaker` (its handles are registered now, with the labels set so far).
    pub fn breaker(mut self, breaker: Arc<CircuitBreaker>) -> Self {
        let recorder = BreakerRecorder::new(breaker.name(), &self.labels);
        self.breakers.push((breaker, recorder));
        self
    }

    /// Runs `source` at every export, after the breakers.
    pub fn source(mut self, source: impl FnMut() + Send + 'static) -> Self {
        self.sources.push(Box::new(source));
        self
    }

    /// Records every breaker and source once.
    pub fn record(&mut self) {
        for (breaker, recorder) in &self.breakers {
            recorder.record(&breaker.metrics());
        }
        for source in &mut self.sources {
            source();
        }
    }

    /// Records now and then every `period` on a thread of its own, until the handle is
    /// dropped (or [`stop`](ExporterHandle::stop)ped), which records once more.
    pub fn spawn(mut self, period: Duration) -> Result<ExporterHandle, BreakerError> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = thread::Builder::new()
            .name("flexiai-metrics".into())
            .spawn(move || {
                loop {
                    self.record();
                    match stopped.recv_timeout(period) {
                        Err(RecvTimeoutError::Timeout) => {}
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                self.record();
            })
            .map_err(BreakerError::ExporterThread)?;
        Ok(ExporterHandle {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// Keeps a spawned [`MetricsExporter`] running; dropping it stops the thread.
#[derive(Debug)]
pub struct ExporterHandle {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ExporterHandle {
    /// Stops the exporter after one last export and waits for its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panicking source already printed its message; nothing more to report here.
            let _ = thread.join();
        }
    }
}

impl Drop for ExporterHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}
