//! Request statistics: lock-free counters per client and per provider.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counters of one provider since the client was built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProviderStats {
    /// The provider's name.
    pub provider: String,
    /// Calls actually sent (retries included).
    pub calls: u64,
    /// Calls that returned an answer.
    pub successes: u64,
    /// Calls that returned an error.
    pub failures: u64,
    /// Tries skipped because the breaker refused them (open after failures or after a
    /// `Retry-After`, half-open without a free trial slot, forced open).
    pub rejected: u64,
    /// Retries (calls after the first try within one request).
    pub retries: u64,
    /// Total time spent in calls.
    pub total_latency: Duration,
}

/// Counters of the whole client since it was built, from
/// [`FlexiAI::stats`](crate::FlexiAI::stats).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestStats {
    /// `chat_completion` requests made.
    pub requests: u64,
    /// Requests that got an answer.
    pub successes: u64,
    /// Requests that failed (every provider failed or was skipped).
    pub failures: u64,
    /// Successful requests answered by a provider other than the first one in priority
    /// order.
    pub failovers: u64,
    /// Per provider, in priority order.
    pub providers: Vec<ProviderStats>,
}

#[derive(Debug, Default)]
pub(crate) struct ClientCounters {
    pub(crate) requests: AtomicU64,
    pub(crate) successes: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) failovers: AtomicU64,
}

#[derive(Debug, Default)]
pub(crate) struct ProviderCounters {
    pub(crate) calls: AtomicU64,
    pub(crate) successes: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) latency_micros: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl ProviderCounters {
    pub(crate) fn add_latency(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.latency_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self, provider: &str) -> ProviderStats {
        ProviderStats {
            provider: provider.to_owned(),
            calls: get(&self.calls),
            successes: get(&self.successes),
            failures: get(&self.failures),
            rejected: get(&self.rejected),
            retries: get(&self.retries),
            total_latency: Duration::from_micros(get(&self.latency_micros)),
        }
    }

    pub(crate) fn reset(&self) {
        for c in [
            &self.calls,
            &self.successes,
            &self.failures,
            &self.rejected,
            &self.retries,
            &self.latency_micros,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

impl ClientCounters {
    pub(crate) fn snapshot(&self, providers: Vec<ProviderStats>) -> RequestStats {
        RequestStats {
            requests: get(&self.requests),
            successes: get(&self.successes),
            failures: get(&self.failures),
            failovers: get(&self.failovers),
            providers,
        }
    }

    pub(crate) fn reset(&self) {
        for c in [
            &self.requests,
            &self.successes,
            &self.failures,
            &self.failovers,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}
