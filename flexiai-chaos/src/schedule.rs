//! The seeded fault schedule: the same seed gives the same list of faults, durations and
//! targets (what the processes then do is real, so timings differ run to run).

use std::fmt;
use std::time::Duration;

/// A small seeded generator (splitmix64): reproducible schedules without a dependency.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }
}

/// An operator command, run through the real CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operator {
    ForceOpen,
    Disable,
    Reset,
}

impl Operator {
    /// The `flexiai` subcommand.
    pub(crate) fn command(self) -> &'static str {
        match self {
            Operator::ForceOpen => "force-open",
            Operator::Disable => "disable",
            Operator::Reset => "reset",
        }
    }

    /// The state it stores.
    pub(crate) fn state(self) -> &'static str {
        match self {
            Operator::ForceOpen => "forced_open",
            Operator::Disable => "disabled",
            Operator::Reset => "closed",
        }
    }
}

/// Which worker a worker fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Victim {
    Worker(usize),
    /// The worker that was admitted the latest probe (the lease holder), if any.
    ProbeHolder,
}

/// One fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// `kill -9` Redis, then restart it empty after `down`.
    RedisKill { down: Duration },
    /// SIGSTOP Redis for `paused`, then SIGCONT.
    RedisPause { paused: Duration },
    /// Blackhole one worker's proxy for `cut`.
    Blackhole { worker: usize, cut: Duration },
    /// Add `delay` to every chunk through one worker's proxy for `lasting`.
    Latency {
        worker: usize,
        delay: Duration,
        lasting: Duration,
    },
    /// `kill -9` a worker, then start it again.
    KillWorker { victim: Victim },
    /// `flexiai force-open|disable|reset x`.
    Operator(Operator),
    /// The provider starts or stops failing.
    Provider { failing: bool },
    /// Redis `kill -9` and restart empty, then at once an operator command: the override
    /// lands in an empty store while workers still hold higher versions (issue 12, defect 2).
    OperatorAfterReset(Operator),
    /// An operator command while one worker is blackholed (and the provider failing, so it
    /// trips on its own): its local history outgrows the override (issue 12, defect 2).
    OperatorDuringPartition {
        worker: usize,
        op: Operator,
        cut: Duration,
    },
}

impl Fault {
    /// A short name for the report's table.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Fault::RedisKill { .. } => "redis kill -9 + restart empty",
            Fault::RedisPause { .. } => "redis SIGSTOP/SIGCONT",
            Fault::Blackhole { .. } => "worker blackholed",
            Fault::Latency { .. } => "latency spike",
            Fault::KillWorker {
                victim: Victim::ProbeHolder,
            } => "probe holder kill -9 + restart",
            Fault::KillWorker { .. } => "worker kill -9 + restart",
            Fault::Operator(Operator::ForceOpen) => "operator force-open",
            Fault::Operator(Operator::Disable) => "operator disable",
            Fault::Operator(Operator::Reset) => "operator reset",
            Fault::Provider { failing: true } => "provider starts failing",
            Fault::Provider { failing: false } => "provider recovers",
            Fault::OperatorAfterReset(_) => "operator right after an empty restart",
            Fault::OperatorDuringPartition { .. } => "operator while a worker is partitioned",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

/// One step: wait `calm`, then inject `fault`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Step {
    pub(crate) calm: Duration,
    pub(crate) fault: Fault,
}

/// The schedule for `seed`, about `seconds` long, over `workers` workers.
pub(crate) fn plan(seed: u64, seconds: u64, workers: usize) -> Vec<Step> {
    let mut rng = Rng::new(seed);
    let mut steps = Vec::new();
    let mut total = Duration::ZERO;
    let mut failing = false;
    let budget = Duration::from_secs(seconds);
    let workers = workers.max(1) as u64;
    while total < budget {
        let calm = rng.millis(300, 1200);
        let fault = match rng.range(0, 11) {
            0 => Fault::RedisKill {
                down: rng.millis(200, 900),
            },
            1 => Fault::RedisPause {
                paused: rng.millis(600, 1500),
            },
            2 => Fault::Blackhole {
                worker: rng.range(0, workers - 1) as usize,
                cut: rng.millis(800, 2500),
            },
            3 => Fault::Latency {
                worker: rng.range(0, workers - 1) as usize,
                delay: rng.millis(100, 600),
                lasting: rng.millis(500, 2000),
            },
            4 => Fault::KillWorker {
                victim: if rng.range(0, 1) == 0 {
                    Victim::ProbeHolder
                } else {
                    Victim::Worker(rng.range(0, workers - 1) as usize)
                },
            },
            5 => Fault::Operator(match rng.range(0, 2) {
                0 => Operator::ForceOpen,
                1 => Operator::Disable,
                _ => Operator::Reset,
            }),
            // An operator override left in place would hide the breaker's own behaviour for
            // the rest of the run: resets are as likely as overrides overall.
            6 => Fault::Operator(Operator::Reset),
            7 => Fault::OperatorAfterReset(if rng.range(0, 1) == 0 {
                Operator::ForceOpen
            } else {
                Operator::Disable
            }),
            8 => Fault::OperatorDuringPartition {
                worker: rng.range(0, workers - 1) as usize,
                op: if rng.range(0, 1) == 0 {
                    Operator::ForceOpen
                } else {
                    Operator::Disable
                },
                cut: rng.millis(1500, 3000),
            },
            _ => {
                failing = !failing;
                Fault::Provider { failing }
            }
        };
        total += calm + duration(&fault);
        steps.push(Step { calm, fault });
    }
    steps
}

/// How long a fault lasts (zero for instantaneous ones).
pub(crate) fn duration(fault: &Fault) -> Duration {
    match *fault {
        Fault::RedisKill { down } => down,
        Fault::RedisPause { paused } => paused,
        Fault::Blackhole { cut, .. } => cut,
        Fault::Latency { lasting, .. } => lasting,
        Fault::OperatorDuringPartition { cut, .. } => cut,
        _ => Duration::ZERO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let a: Vec<String> = plan(7, 60, 4).iter().map(|s| format!("{s:?}")).collect();
        let b: Vec<String> = plan(7, 60, 4).iter().map(|s| format!("{s:?}")).collect();
        let c: Vec<String> = plan(8, 60, 4).iter().map(|s| format!("{s:?}")).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let kinds: std::collections::BTreeSet<&str> =
            plan(7, 600, 4).iter().map(|s| s.fault.kind()).collect();
        assert!(
            kinds.len() >= 10,
            "a long schedule uses every fault: {kinds:?}"
        );
    }
}
