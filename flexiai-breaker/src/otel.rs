//! Breaker telemetry through the OpenTelemetry metrics API (feature `opentelemetry`).
//!
//! The same instruments as the `metrics` exporter ([`names`]), as OpenTelemetry
//! *observable* instruments: their callbacks read each breaker's own atomics
//! ([`BreakerMetrics`]) when the application's SDK collects (a periodic reader's thread, a
//! Prometheus scrape), so nothing runs on the hot path and no thread of ours is needed.
//! Counters report absolute totals (cumulative), gauges the current value. This crate depends
//! on the `opentelemetry` API crate only; the application picks and installs the SDK.
//! Names and labels: `docs/metrics.md`.

use std::fmt;
use std::sync::{Arc, Weak};

use flexiai_events::CircuitState;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrument, Meter};

use crate::{BreakerMetrics, CircuitBreaker, names};

/// Lists breakers to read at each collection (e.g. a sync manager's current breakers).
type Source = Box<dyn Fn() -> Vec<Arc<CircuitBreaker>> + Send + Sync>;

/// What every callback reads: the constant attributes and the breakers to report.
struct Shared {
    attributes: Vec<KeyValue>,
    breakers: Vec<Weak<CircuitBreaker>>,
    sources: Vec<Source>,
}

impl Shared {
    /// Calls `f` with the attributes (constants, then `breaker`) and a reading of every live
    /// breaker.
    fn each(&self, mut f: impl FnMut(&[KeyValue], &BreakerMetrics)) {
        let mut read = |breaker: &CircuitBreaker| {
            let mut attrs = self.attributes.clone();
            attrs.push(KeyValue::new("breaker", breaker.name().to_owned()));
            f(&attrs, &breaker.metrics());
        };
        for breaker in self.breakers.iter().filter_map(Weak::upgrade) {
            read(&breaker);
        }
        for source in &self.sources {
            for breaker in source() {
                read(&breaker);
            }
        }
    }
}

/// Registers breaker instruments with an OpenTelemetry [`Meter`].
///
/// Breakers are held weakly: one that is dropped stops being reported. OpenTelemetry offers
/// no way to unregister a callback, so the instruments live as long as the meter provider;
/// register each breaker once (registering it twice reports it twice).
///
/// ```
/// use std::sync::Arc;
/// use flexiai_breaker::{BreakerConfig, CircuitBreaker, OtelMetrics};
///
/// let meter = opentelemetry::global::meter("chat-api");
/// let breaker = Arc::new(CircuitBreaker::new("openai", BreakerConfig::default())?);
/// OtelMetrics::new()
///     .label("service", "chat-api")
///     .breaker(&breaker)
///     .register(&meter);
/// // The application's MeterProvider (opentelemetry_sdk) reads the breaker at each collection.
/// # Ok::<(), flexiai_breaker::BreakerError>(())
/// ```
#[derive(Default)]
pub struct OtelMetrics {
    attributes: Vec<KeyValue>,
    breakers: Vec<Weak<CircuitBreaker>>,
    sources: Vec<Source>,
}

impl fmt::Debug for OtelMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtelMetrics")
            .field("attributes", &self.attributes)
            .field("breakers", &self.breakers.len())
            .field("sources", &self.sources.len())
            .finish()
    }
}

impl OtelMetrics {
    /// Nothing to report yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a constant attribute to every data point (e.g. a worker name when several workers
    /// share one process).
    pub fn label(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.attributes.push(KeyValue::new(key, value.into()));
        self
    }

    /// The constant attributes set so far.
    pub fn attributes(&self) -> &[KeyValue] {
        &self.attributes
    }

    /// Reports `breaker` (held weakly).
    pub fn breaker(mut self, breaker: &Arc<CircuitBreaker>) -> Self {
        self.breakers.push(Arc::downgrade(breaker));
        self
    }

    /// Reports, at each collection, the breakers `source` lists then (`flexiai-sync` passes
    /// a manager's registered breakers, so later registrations are reported too).
    pub fn breakers_from(
        mut self,
        source: impl Fn() -> Vec<Arc<CircuitBreaker>> + Send + Sync + 'static,
    ) -> Self {
        self.sources.push(Box::new(source));
        self
    }

    /// Creates the instruments on `meter`, each with a callback reading the breakers.
    pub fn register(self, meter: &Meter) {
        let shared = Arc::new(Shared {
            attributes: self.attributes,
            breakers: self.breakers,
            sources: self.sources,
        });
        counter(
            meter,
            &shared,
            names::CALLS,
            "Outcomes recorded by this worker",
            |m, o, a| {
                o.observe(m.total_successes, &with(a, "outcome", "success"));
                o.observe(m.total_failures, &with(a, "outcome", "failure"));
            },
        );
        counter(
            meter,
            &shared,
            names::ADMITTED,
            "Calls admitted",
            |m, o, a| {
                o.observe(m.calls_admitted, a);
            },
        );
        counter(
            meter,
            &shared,
            names::REJECTED,
            "Calls rejected",
            |m, o, a| {
                o.observe(m.calls_rejected, a);
            },
        );
        let about = "Transitions this breaker made or adopted";
        counter(meter, &shared, names::TRANSITIONS, about, |m, o, a| {
            o.observe(m.version, a);
        });
        let about = "1 for the current state, 0 for the others";
        gauge_u64(meter, &shared, names::STATE, about, |m, o, a| {
            for state in CircuitState::ALL {
                o.observe(
                    u64::from(state == m.state),
                    &with(a, "state", state.as_str()),
                );
            }
        });
        let about = "Probe slots or credits free while half-open";
        gauge_u64(meter, &shared, names::PROBE_CREDITS, about, |m, o, a| {
            o.observe(u64::from(m.probe_slots), a);
        });
        let about = "Consecutive failed trial calls";
        gauge_u64(
            meter,
            &shared,
            names::CONSECUTIVE_OPENS,
            about,
            |m, o, a| {
                o.observe(u64::from(m.consecutive_opens), a);
            },
        );
        let state = Arc::clone(&shared);
        meter
            .f64_observable_gauge(names::FAILURE_RATE)
            .with_description("Failure share, 0 to 1")
            .with_callback(move |o| state.each(|a, m| o.observe(m.failure_rate, a)))
            .build();
        let state = shared;
        meter
            .f64_observable_gauge(names::OPEN_REMAINING)
            .with_description("Time left in the open period")
            .with_unit("s")
            .with_callback(move |o| {
                state.each(|a, m| {
                    o.observe(m.open_remaining.unwrap_or_default().as_secs_f64(), a);
                });
            })
            .build();
    }
}

/// `attrs` plus one more.
fn with(attrs: &[KeyValue], key: &'static str, value: &'static str) -> Vec<KeyValue> {
    let mut all = attrs.to_vec();
    all.push(KeyValue::new(key, value));
    all
}

type Observe = fn(&BreakerMetrics, &dyn AsyncInstrument<u64>, &[KeyValue]);

fn counter(
    meter: &Meter,
    shared: &Arc<Shared>,
    name: &'static str,
    about: &'static str,
    f: Observe,
) {
    let shared = Arc::clone(shared);
    meter
        .u64_observable_counter(name)
        .with_description(about)
        .with_callback(move |o| shared.each(|a, m| f(m, o, a)))
        .build();
}

fn gauge_u64(
    meter: &Meter,
    shared: &Arc<Shared>,
    name: &'static str,
    about: &'static str,
    f: Observe,
) {
    let shared = Arc::clone(shared);
    meter
        .u64_observable_gauge(name)
        .with_description(about)
        .with_callback(move |o| shared.each(|a, m| f(m, o, a)))
        .build();
}
