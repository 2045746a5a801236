//! What one seed runs: the fleet's shape, its configuration, and the fault schedule, all
//! drawn from the seed before the run starts (the run itself draws message faults, call
//! latencies and provider answers from a second stream of the same seed).

use std::fmt;
use std::time::Duration;

use flexiai_breaker::{BreakerConfig, CircuitState, FailurePolicy};
use flexiai_sync::SyncOptions;

use crate::rng::Rng;

/// How a faulty store call behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallFault {
    /// Fails at once (connection refused); nothing is applied.
    Fail,
    /// Never answers (a blackholed connection); nothing is applied. The manager's operation
    /// timeout ends the wait.
    Hang,
    /// Is applied, but the reply never comes (the store did it; the worker cannot know).
    LostReply,
}

/// How a provider answers for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Answers, quickly.
    Healthy,
    /// Fails every call (some fail slowly, like timeouts).
    Down,
    /// Alternates between healthy and down every `period_ms`.
    Flapping {
        /// Length of each half of the cycle.
        period_ms: u64,
    },
    /// Answers `percent`% of calls with 429 and `Retry-After: retry_after_ms`.
    RateLimited {
        /// Share of calls answered 429.
        percent: u64,
        /// The Retry-After asked for.
        retry_after_ms: u64,
    },
    /// Answers, slowly (up to several probe lease lengths).
    Slow,
    /// Answers `percent`% of calls with 429, each with its own `Retry-After` between
    /// `min_ms` and `max_ms`: workers open the same version at once with different
    /// deadlines (a compare-and-set tie), which the fleet must settle on the latest.
    RetryAfterStorm {
        /// Share of calls answered 429.
        percent: u64,
        /// Shortest Retry-After.
        min_ms: u64,
        /// Longest Retry-After.
        max_ms: u64,
    },
}

/// One scheduled fault or action.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Worker `slot` cannot reach the store for `dur_ms`: every call behaves as `mode`, and
    /// its subscription loses everything until it heals (then it reports `Resubscribed`).
    Partition {
        /// The worker.
        slot: usize,
        /// How its calls fail.
        mode: CallFault,
        /// For how long.
        dur_ms: u64,
    },
    /// `percent`% of worker `slot`'s store calls behave as `mode`, for `dur_ms`.
    Flaky {
        /// The worker.
        slot: usize,
        /// How the failing calls fail.
        mode: CallFault,
        /// Share of calls that fail.
        percent: u64,
        /// For how long.
        dur_ms: u64,
    },
    /// Worker `slot`'s pub/sub messages are dropped, duplicated and delayed (so reordered).
    Messages {
        /// The worker.
        slot: usize,
        /// Share dropped.
        drop: u64,
        /// Share delivered twice.
        duplicate: u64,
        /// Longest delay, in ms.
        delay_max_ms: u64,
        /// For how long.
        dur_ms: u64,
    },
    /// Worker `slot`'s subscription loses its connection for `dur_ms`: it reports
    /// `Disconnected`, loses every message, then reports `Resubscribed` (as the Redis
    /// subscriber does); store calls are unaffected.
    Disconnect {
        /// The worker.
        slot: usize,
        /// For how long.
        dur_ms: u64,
    },
    /// The store restarts empty; every subscription reports `Resubscribed` shortly after.
    Wipe,
    /// Worker `slot` crashes (no clean stop) and restarts `down_ms` later as a new process.
    Crash {
        /// The worker.
        slot: usize,
        /// How long it stays down.
        down_ms: u64,
    },
    /// The operator overrides a provider's state (`flexiai force-open | disable | reset`).
    Operator {
        /// The provider index.
        provider: usize,
        /// ForcedOpen, Disabled or Closed.
        state: CircuitState,
    },
    /// A Python worker publishes an unversioned transition, exactly as FlexiAI v0.5 does.
    Python {
        /// The provider index.
        provider: usize,
        /// `opened`, `closed` or `half_open`.
        event_type: &'static str,
        /// The Python host's clock offset, in ms.
        skew_ms: i64,
    },
    /// A provider answers as `health` for `dur_ms`.
    Provider {
        /// The provider index.
        provider: usize,
        /// How it answers.
        health: Health,
        /// For how long.
        dur_ms: u64,
    },
}

/// Which kinds of fault a seed draws. Each seed picks a profile, so some seeds isolate one
/// area (and a defect in one area does not hide the others).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Store and network faults only: partitions, flaky calls, message faults, crashes.
    Network,
    /// Providers that fail, flap, rate-limit and slow down; nothing else.
    Providers,
    /// Operator overrides with providers failing, store wipes and Python-shaped workers.
    Operators,
    /// Python-shaped workers on the channel, with failing providers.
    MixedFleet,
    /// Everything at once.
    Chaos,
}

/// Everything one seed runs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The seed.
    pub seed: u64,
    /// What kinds of faults it draws.
    pub profile: Profile,
    /// Number of workers.
    pub workers: usize,
    /// Provider names.
    pub providers: Vec<String>,
    /// Every worker's breaker configuration.
    pub breaker: BreakerConfig,
    /// Every worker's sync options.
    pub options: SyncOptions,
    /// Concurrent callers per worker and provider.
    pub lanes: usize,
    /// Pause between one lane's calls, in ms (lower and upper bound).
    pub gap_ms: (u64, u64),
    /// Each worker's wall-clock offset, in ms.
    pub clock_offsets_ms: Vec<i64>,
    /// Length of the fault phase; everything heals at its end.
    pub fault_ms: u64,
    /// The schedule: (virtual ms, action), sorted by time.
    pub actions: Vec<(u64, Action)>,
    /// Providers the operator resets when everything heals (their last override is undone
    /// on purpose); the others keep the operator's last state.
    pub final_resets: Vec<usize>,
}

/// Longest healthy call, in ms (the liveness bound counts on it).
pub const HEALTHY_LATENCY_MAX_MS: u64 = 200;
/// Longest failing call, in ms.
pub const DOWN_LATENCY_MAX_MS: u64 = 3_000;
/// Longest slow call, in ms.
pub const SLOW_LATENCY_MAX_MS: u64 = 8_000;

impl Plan {
    /// Draws the plan of `seed`; `scale` stretches the fault phase (1 = CI size).
    pub fn generate(seed: u64, scale: u64) -> Self {
        let mut rng = Rng::new(seed);
        let profile = match rng.range(0, 9) {
            0 | 1 => Profile::Network,
            2 | 3 => Profile::Providers,
            4 | 5 => Profile::Operators,
            6 | 7 => Profile::MixedFleet,
            _ => Profile::Chaos,
        };
        let workers = usize::try_from(rng.range(2, 5)).unwrap_or(2);
        let providers: Vec<String> = ["openai", "anthropic"]
            [..usize::try_from(rng.range(1, 2)).unwrap_or(1)]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let half_open_max_calls = u32::try_from(rng.range(1, 3)).unwrap_or(1);
        let breaker = {
            let mut config = BreakerConfig::default();
            config.failure_threshold = u32::try_from(rng.range(2, 5)).unwrap_or(3);
            config.recovery_timeout_ms = rng.range(1, 5) * 1000;
            config.half_open_max_calls = half_open_max_calls;
            config.success_threshold = u32::try_from(rng.range(1, 4)).unwrap_or(1);
            config.failure_policy = if rng.chance(25) {
                FailurePolicy::failure_rate(Duration::from_secs(10), 5, 0.5)
            } else {
                FailurePolicy::ConsecutiveFailures
            };
            config.slow_call_threshold_ms = None;
            config.backoff_multiplier = if rng.chance(50) { 2.0 } else { 1.0 };
            config.max_recovery_timeout_ms = 10_000;
            // Jitter would replay (the world seeds each breaker's stream from the run:
            // `jitter_seed`); it stays off so that seeds keep the plans and histories they
            // were triaged with. tests/determinism.rs runs a jittered plan.
            config.jitter_ratio = 0.0;
            config
        };
        // Every field set (in the rng's draw order), so a new default cannot shift a seed's plan.
        let mut options = SyncOptions::default();
        options.flush_interval = Duration::from_millis(50);
        options.outcome_report_interval = Duration::from_millis(500);
        options.reconcile_interval = Duration::from_millis(rng.range(2, 5) * 1000);
        options.heartbeat_interval = Duration::from_secs(1);
        options.heartbeat_ttl = Duration::from_secs(3);
        options.operation_timeout = Duration::from_millis(500);
        options.fleet_probes = true;
        options.probe_lease_ttl = Duration::from_millis(rng.range(2, 5) * 1000);
        options.min_retry_backoff = Duration::from_millis(100);
        options.max_retry_backoff = Duration::from_secs(2);
        let lanes = usize::try_from(rng.range(1, 2)).unwrap_or(1);
        let gap_ms = (20, rng.range(100, 400));
        let clock_offsets_ms = (0..workers).map(|_| rng.signed(60_000)).collect();
        let fault_ms = rng.range(20, 60) * 1000 * scale.max(1);
        let mut actions = Vec::new();
        let count = rng.range(4, 12) * scale.max(1);
        let p = providers.len();
        for _ in 0..count {
            let at = rng.range(0, fault_ms.saturating_sub(1));
            if let Some(action) = draw_action(&mut rng, profile, workers, p) {
                actions.push((at, action));
            }
        }
        // Every profile has some provider trouble, or nothing ever trips.
        if !matches!(profile, Profile::Network) {
            for provider in 0..p {
                let at = rng.range(0, fault_ms / 2);
                actions.push((
                    at,
                    Action::Provider {
                        provider,
                        health: Health::Down,
                        dur_ms: rng.range(3, 15) * 1000,
                    },
                ));
            }
        } else {
            actions.push((
                rng.range(0, fault_ms / 2),
                Action::Provider {
                    provider: 0,
                    health: Health::Down,
                    dur_ms: rng.range(3, 10) * 1000,
                },
            ));
        }
        let final_resets = (0..p).filter(|_| rng.chance(50)).collect();
        // Drawn last, so every plan's earlier part is what it was before these were added:
        // faults for the retry-after and degrade checks (issue 12, #5 and #7).
        draw_extras(&mut rng, profile, workers, p, fault_ms, &mut actions);
        actions.sort_by_key(|(at, _)| *at);
        Plan {
            seed,
            profile,
            workers,
            providers,
            breaker,
            options,
            lanes,
            gap_ms,
            clock_offsets_ms,
            fault_ms,
            actions,
            final_resets,
        }
    }

    /// How long after everything heals every worker must be closed (or in the operator's
    /// state) and agree with the store, derived from the config:
    ///
    /// - an open period still running (at most the capped recovery timeout, which also caps
    ///   a Retry-After), twice: a probe already running when the faults healed may fail and
    ///   reopen with backoff;
    /// - a probe lease held by a worker that crashed, until its TTL runs out;
    /// - `success_threshold` trial calls one after the other, each a healthy call, a lane's
    ///   pause and two flush intervals (demand is noticed at one flush, credits granted at
    ///   the next);
    /// - a degraded worker's way back (heartbeat, resubscription backoff, an operation
    ///   timeout) and the periodic reconcile that repairs lost messages;
    /// - one second of slack for the scheduling of the tasks themselves.
    pub fn liveness_bound(&self) -> Duration {
        let o = &self.options;
        let max_open = self.breaker.max_recovery_timeout();
        let flush = o.flush_interval;
        let call = Duration::from_millis(HEALTHY_LATENCY_MAX_MS + self.gap_ms.1);
        let probe_round = call + flush * 2;
        let probes = probe_round * self.breaker.success_threshold;
        let in_flight = Duration::from_millis(SLOW_LATENCY_MAX_MS);
        (max_open + o.probe_lease_ttl + probe_round) * 2
            + in_flight
            + probes
            + o.heartbeat_interval
            + o.max_retry_backoff
            + o.operation_timeout * 4
            + o.reconcile_interval
            + Duration::from_secs(1)
    }

    /// The virtual time one run covers: the fault phase and the liveness bound.
    pub fn duration(&self) -> Duration {
        Duration::from_millis(self.fault_ms) + self.liveness_bound()
    }
}

/// The faults added for the retry-after and degrade checks, each in a third of the seeds:
/// 429 storms with a different `Retry-After` per call (compare-and-set ties between
/// different deadlines), isolated store call failures (one in ten to twenty: rarely three in
/// a row), and dropped subscriptions.
fn draw_extras(
    rng: &mut Rng,
    profile: Profile,
    workers: usize,
    providers: usize,
    fault_ms: u64,
    actions: &mut Vec<(u64, Action)>,
) {
    if !matches!(profile, Profile::Network) && rng.chance(33) {
        for _ in 0..rng.range(1, 3) {
            actions.push((
                rng.range(0, fault_ms.saturating_sub(1)),
                Action::Provider {
                    provider: rng.index(providers),
                    health: Health::RetryAfterStorm {
                        percent: rng.range(30, 90),
                        min_ms: 500,
                        max_ms: rng.range(2, 8) * 1000,
                    },
                    dur_ms: rng.range(5, 20) * 1000,
                },
            ));
        }
    }
    if rng.chance(33) {
        actions.push((
            rng.range(0, fault_ms.saturating_sub(1)),
            Action::Flaky {
                slot: rng.index(workers),
                mode: if rng.chance(50) {
                    CallFault::Fail
                } else {
                    CallFault::Hang
                },
                percent: rng.range(5, 10),
                dur_ms: rng.range(5, 20) * 1000,
            },
        ));
    }
    if rng.chance(33) {
        for _ in 0..rng.range(1, 2) {
            actions.push((
                rng.range(0, fault_ms.saturating_sub(1)),
                Action::Disconnect {
                    slot: rng.index(workers),
                    dur_ms: rng.range(1, 8) * 1000,
                },
            ));
        }
    }
}

fn draw_action(
    rng: &mut Rng,
    profile: Profile,
    workers: usize,
    providers: usize,
) -> Option<Action> {
    let slot = rng.index(workers);
    let provider = rng.index(providers);
    let kinds: &[u8] = match profile {
        Profile::Network => &[0, 1, 2, 4],
        Profile::Providers => &[7],
        Profile::Operators => &[5, 5, 3, 6, 7],
        Profile::MixedFleet => &[6, 6, 7],
        Profile::Chaos => &[0, 1, 2, 3, 4, 5, 6, 7],
    };
    let kind = kinds[rng.index(kinds.len())];
    let mode = match rng.range(0, 2) {
        0 => CallFault::Fail,
        1 => CallFault::Hang,
        _ => CallFault::LostReply,
    };
    Some(match kind {
        0 => Action::Partition {
            slot,
            mode: if mode == CallFault::LostReply {
                CallFault::Hang
            } else {
                mode
            },
            dur_ms: rng.range(1, 15) * 1000,
        },
        1 => Action::Flaky {
            slot,
            mode,
            percent: rng.range(5, 50),
            dur_ms: rng.range(1, 10) * 1000,
        },
        2 => Action::Messages {
            slot,
            drop: rng.range(0, 50),
            duplicate: rng.range(0, 30),
            delay_max_ms: rng.range(0, 2000),
            dur_ms: rng.range(2, 20) * 1000,
        },
        3 => Action::Wipe,
        4 => Action::Crash {
            slot,
            down_ms: rng.range(0, 10) * 1000,
        },
        5 => Action::Operator {
            provider,
            state: match rng.range(0, 2) {
                0 => CircuitState::ForcedOpen,
                1 => CircuitState::Disabled,
                _ => CircuitState::Closed,
            },
        },
        6 => Action::Python {
            provider,
            event_type: ["opened", "closed", "half_open"][rng.index(3)],
            skew_ms: rng.signed(30_000),
        },
        _ => Action::Provider {
            provider,
            health: match rng.range(0, 4) {
                0 => Health::Down,
                1 => Health::Flapping {
                    period_ms: rng.range(1, 5) * 500,
                },
                2 => Health::RateLimited {
                    percent: rng.range(20, 80),
                    retry_after_ms: rng.range(1, 15) * 1000,
                },
                3 => Health::Slow,
                _ => Health::Healthy,
            },
            dur_ms: rng.range(2, 20) * 1000,
        },
    })
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.breaker;
        let o = &self.options;
        writeln!(
            f,
            "seed {} profile {:?}: {} workers, providers {:?}, {} lane(s), gaps {:?} ms",
            self.seed, self.profile, self.workers, self.providers, self.lanes, self.gap_ms
        )?;
        writeln!(
            f,
            "  breaker: failure_threshold {} recovery {} ms half_open_max_calls {} success_threshold {} policy {:?} backoff {} max_recovery {} ms",
            b.failure_threshold,
            b.recovery_timeout_ms,
            b.half_open_max_calls,
            b.success_threshold,
            b.failure_policy,
            b.backoff_multiplier,
            b.max_recovery_timeout_ms
        )?;
        writeln!(
            f,
            "  sync: reconcile {:?} probe_lease_ttl {:?} op_timeout {:?}; clock offsets {:?} ms",
            o.reconcile_interval, o.probe_lease_ttl, o.operation_timeout, self.clock_offsets_ms
        )?;
        writeln!(
            f,
            "  fault phase {} ms, liveness bound {:?}, final resets {:?}",
            self.fault_ms,
            self.liveness_bound(),
            self.final_resets
        )?;
        for (at, action) in &self.actions {
            writeln!(f, "  @{at:>7} ms {action:?}")?;
        }
        Ok(())
    }
}
