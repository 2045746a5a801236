//! Model-based test: the breaker against a plain sequential reference model, in both probe
//! modes (local slots, granted credits) and under both failure policies (consecutive
//! failures, failure rate over a window longer than any case), over random sequences of
//! grant / set probe mode / acquire / success / failure / drop / advance-time / force_open / disable /
//! reset / open_for / apply_remote / absorb_remote_outcomes / poll / state reads (pure: a
//! due half-open is reported, not entered).

#![allow(clippy::unwrap_used, clippy::panic)] // Test code: a failed unwrap is a failed test.

use std::sync::Arc;
use std::time::Duration;

use flexiai_breaker::{
    BreakerConfig, BreakerSnapshot, CircuitBreaker, CircuitState, FailurePolicy, ManualClock,
    Permit, ProbeMode, Rejected,
};
use proptest::prelude::*;
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest, prop_state_machine};

use CircuitState::*;

const THRESHOLD: u64 = 3;
const RECOVERY_MS: u64 = 1000;
const MAX_OPEN_MS: u64 = 5000;
const MAX_CALLS: u64 = 2;
const SUCCESS_THRESHOLD: u64 = 2;
/// Most credits a granted-mode breaker holds.
const MAX_CREDITS: u64 = 4095;
/// Failure-rate policy: trips at half the calls failing, once 4 calls are in the window. The
/// window (an hour, one slice) outlasts any case (at most 80 steps of at most 3 s), so
/// nothing ages out of it: the model counts calls since the last reset.
const RATE_MINIMUM: u64 = 4;
const RATE_THRESHOLD: f64 = 0.5;

/// What a case runs under.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Flavor {
    mode: ProbeMode,
    rate: bool,
}

fn config(flavor: Flavor) -> BreakerConfig {
    BreakerConfig::builder()
        .failure_policy(if flavor.rate {
            FailurePolicy::FailureRate {
                window_ms: 3_600_000,
                buckets: 1,
                minimum_calls: 4,
                failure_rate_threshold: RATE_THRESHOLD,
            }
        } else {
            FailurePolicy::ConsecutiveFailures
        })
        .failure_threshold(3)
        .recovery_timeout_ms(RECOVERY_MS)
        .half_open_max_calls(2)
        .success_threshold(2)
        .backoff_multiplier(2.0)
        .max_recovery_timeout_ms(MAX_OPEN_MS)
        .build()
        .unwrap()
}

#[derive(Debug, Clone)]
enum Op {
    Acquire,
    Success(usize),
    Failure(usize),
    Drop(usize),
    Advance(u64),
    ForceOpen,
    Disable,
    Reset,
    OpenFor(u64),
    ApplyRemote {
        state: CircuitState,
        version_delta: i64,
        failures: u64,
        remaining_ms: u64,
    },
    Absorb(u64, u64),
    ReadState,
    Poll,
    Grant(u32),
    SetMode(ProbeMode),
}

/// What an operation returned, compared between model and breaker.
#[derive(Debug, Clone, PartialEq)]
enum Res {
    None,
    Admitted {
        version: u64,
        probe: bool,
    },
    Rejected(Rejected),
    Version(u64),
    OpenedFor(Option<u64>),
    Applied(bool),
    Tripped(bool),
    Polled(CircuitState),
    Credits(u32),
    State {
        state: CircuitState,
        failures: u64,
        slots: u32,
        open_remaining: Option<Duration>,
    },
}

#[derive(Debug, Clone)]
struct HeldPermit {
    version: u64,
    state: CircuitState,
    probe: bool,
    mode: ProbeMode,
}

#[derive(Debug, Clone)]
struct Model {
    flavor: Flavor,
    mode: ProbeMode,
    now: u64,
    state: CircuitState,
    version: u64,
    /// Closed-state failures: the consecutive run, or the window's failures.
    consecutive: u64,
    /// Calls in the window (failure-rate policy).
    calls: u64,
    probe_successes: u64,
    slots: u64,
    open_until: u64,
    streak: u32,
    permits: Vec<HeldPermit>,
    last: Res,
}

impl Model {
    fn enter(&mut self, to: CircuitState, probe_failed: bool) {
        self.version += 1;
        self.state = to;
        self.consecutive = 0;
        self.calls = 0;
        self.probe_successes = 0;
        self.slots = self.entry_slots(to);
        match to {
            Open => {
                self.streak = if probe_failed { self.streak + 1 } else { 0 };
                let d = (RECOVERY_MS << self.streak.min(20)).min(MAX_OPEN_MS);
                self.open_until = self.now + d;
            }
            Closed | Disabled => self.streak = 0,
            _ => {}
        }
    }

    /// `open_for(ms)`: the exact period (clamped to 1 ms ..= the cap), streak untouched, and
    /// only ever extending an open period; operator states are left alone.
    fn open_for(&mut self, ms: u64) -> Option<u64> {
        let d = ms.clamp(1, MAX_OPEN_MS);
        let applies = match self.state {
            ForcedOpen | Disabled => false,
            Open => self.now + d > self.open_until,
            Closed | HalfOpen => true,
        };
        if !applies {
            return None;
        }
        self.version += 1;
        self.state = Open;
        self.consecutive = 0;
        self.calls = 0;
        self.probe_successes = 0;
        self.slots = 0;
        self.open_until = self.now + d;
        Some(self.version)
    }

    fn entry_slots(&self, state: CircuitState) -> u64 {
        if state == HalfOpen && self.mode == ProbeMode::Local {
            MAX_CALLS
        } else {
            0
        }
    }

    fn slot_cap(&self) -> u64 {
        match self.mode {
            ProbeMode::Local => MAX_CALLS,
            ProbeMode::Granted => MAX_CREDITS,
            mode => panic!("the model does not know {mode:?}"),
        }
    }

    /// Closed-state outcomes (local or absorbed): whether they trip the breaker.
    fn closed_outcomes(&mut self, failures: u64, successes: u64) -> bool {
        if self.flavor.rate {
            self.consecutive += failures;
            self.calls += failures + successes;
            #[allow(clippy::cast_precision_loss)]
            let trip = self.calls >= RATE_MINIMUM
                && self.consecutive as f64 >= RATE_THRESHOLD * self.calls as f64;
            trip
        } else {
            if successes > 0 {
                self.consecutive = 0;
            }
            self.consecutive += failures;
            self.consecutive >= THRESHOLD
        }
    }

    fn poll(&mut self) {
        if self.state == Open && self.now >= self.open_until {
            self.enter(HalfOpen, false);
        }
    }

    fn pick(&self, i: usize) -> Option<usize> {
        (!self.permits.is_empty()).then(|| i % self.permits.len())
    }
}

struct RefMachine;

impl ReferenceStateMachine for RefMachine {
    type State = Model;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Model> {
        (
            prop::sample::select(vec![ProbeMode::Local, ProbeMode::Granted]),
            any::<bool>(),
        )
            .prop_map(|(mode, rate)| Model {
                flavor: Flavor { mode, rate },
                mode,
                now: 0,
                state: Closed,
                version: 0,
                consecutive: 0,
                calls: 0,
                probe_successes: 0,
                slots: 0,
                open_until: 0,
                streak: 0,
                permits: Vec::new(),
                last: Res::None,
            })
            .boxed()
    }

    fn transitions(_state: &Model) -> BoxedStrategy<Op> {
        let state = prop::sample::select(CircuitState::ALL.to_vec());
        prop_oneof![
            6 => Just(Op::Acquire),
            4 => any::<usize>().prop_map(Op::Success),
            5 => any::<usize>().prop_map(Op::Failure),
            2 => any::<usize>().prop_map(Op::Drop),
            4 => prop_oneof![0u64..300, 300u64..3000, Just(RECOVERY_MS)].prop_map(Op::Advance),
            1 => Just(Op::ForceOpen),
            1 => Just(Op::Disable),
            1 => Just(Op::Reset),
            2 => prop_oneof![0u64..3000, Just(0), Just(MAX_OPEN_MS + 1000)].prop_map(Op::OpenFor),
            1 => (state, -2i64..4, 0u64..4, 0u64..3000).prop_map(
                |(state, version_delta, failures, remaining_ms)| Op::ApplyRemote {
                    state,
                    version_delta,
                    failures,
                    remaining_ms,
                }
            ),
            2 => (0u64..4, 0u64..3).prop_map(|(f, s)| Op::Absorb(f, s)),
            3 => Just(Op::ReadState),
            1 => Just(Op::Poll),
            5 => prop_oneof![4 => 1u32..3, 1 => Just(0), 1 => Just(5000)].prop_map(Op::Grant),
            1 => prop::sample::select(vec![ProbeMode::Local, ProbeMode::Granted])
                .prop_map(Op::SetMode),
        ]
        .boxed()
    }

    fn apply(mut m: Model, op: &Op) -> Model {
        m.last = Res::None;
        match op {
            Op::Acquire => {
                m.last = match m.state {
                    Closed | Disabled => {
                        m.permits.push(HeldPermit {
                            version: m.version,
                            state: m.state,
                            probe: false,
                            mode: ProbeMode::Local,
                        });
                        Res::Admitted {
                            version: m.version,
                            probe: false,
                        }
                    }
                    ForcedOpen => Res::Rejected(Rejected {
                        state: ForcedOpen,
                        retry_after: None,
                    }),
                    Open if m.now < m.open_until => Res::Rejected(Rejected {
                        state: Open,
                        retry_after: Some(Duration::from_millis(m.open_until - m.now)),
                    }),
                    Open | HalfOpen => {
                        m.poll();
                        if m.slots == 0 {
                            Res::Rejected(Rejected {
                                state: HalfOpen,
                                retry_after: None,
                            })
                        } else {
                            m.slots -= 1;
                            m.permits.push(HeldPermit {
                                version: m.version,
                                state: HalfOpen,
                                probe: true,
                                mode: m.mode,
                            });
                            Res::Admitted {
                                version: m.version,
                                probe: true,
                            }
                        }
                    }
                };
            }
            Op::Success(i) => {
                if let Some(i) = m.pick(*i) {
                    let p = m.permits.remove(i);
                    if p.version == m.version {
                        match p.state {
                            Closed => {
                                // A success never trips (it only lowers the rate).
                                let _ = m.closed_outcomes(0, 1);
                            }
                            HalfOpen => {
                                m.probe_successes += 1;
                                if m.probe_successes >= SUCCESS_THRESHOLD {
                                    m.enter(Closed, false);
                                } else if p.mode == ProbeMode::Local && m.mode == ProbeMode::Local {
                                    // A local slot comes back; a granted credit is consumed.
                                    m.slots = (m.slots + 1).min(MAX_CALLS);
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
            Op::Failure(i) => {
                if let Some(i) = m.pick(*i) {
                    let p = m.permits.remove(i);
                    if p.version == m.version {
                        match p.state {
                            Closed if m.closed_outcomes(1, 0) => m.enter(Open, false),
                            HalfOpen => m.enter(Open, true),
                            _ => {}
                        }
                    }
                }
            }
            Op::Drop(i) => {
                if let Some(i) = m.pick(*i) {
                    let p = m.permits.remove(i);
                    if p.probe && p.version == m.version && m.state == HalfOpen && p.mode == m.mode
                    {
                        m.slots = (m.slots + 1).min(m.slot_cap());
                    }
                }
            }
            Op::Advance(ms) => m.now += ms,
            Op::ForceOpen => {
                m.enter(ForcedOpen, false);
                m.last = Res::Version(m.version);
            }
            Op::Disable => {
                m.enter(Disabled, false);
                m.last = Res::Version(m.version);
            }
            Op::Reset => {
                m.enter(Closed, false);
                m.last = Res::Version(m.version);
            }
            Op::OpenFor(ms) => m.last = Res::OpenedFor(m.open_for(*ms)),
            Op::ApplyRemote {
                state,
                version_delta,
                failures,
                remaining_ms,
            } => {
                let v =
                    u64::try_from(i64::try_from(m.version).unwrap() + version_delta).unwrap_or(0);
                let applied = v > m.version;
                if applied {
                    let was = m.state;
                    m.version = v;
                    m.state = *state;
                    m.consecutive = *failures;
                    m.calls = *failures;
                    m.probe_successes = 0;
                    m.slots = m.entry_slots(*state);
                    match state {
                        Open => {
                            m.open_until = m.now + remaining_ms;
                            if was == HalfOpen {
                                m.streak += 1;
                            }
                        }
                        Closed | Disabled => m.streak = 0,
                        _ => {}
                    }
                }
                m.last = Res::Applied(applied);
            }
            Op::Absorb(f, s) => {
                let mut tripped = false;
                if m.state == Closed && (*f > 0 || *s > 0) && m.closed_outcomes(*f, *s) {
                    m.enter(Open, false);
                    tripped = true;
                }
                m.last = Res::Tripped(tripped);
            }
            Op::ReadState => {
                // A pure read: a due half-open is reported, not entered.
                let due = m.state == Open && m.now >= m.open_until;
                let state = if due { HalfOpen } else { m.state };
                m.last = Res::State {
                    state,
                    failures: if state == Closed { m.consecutive } else { 0 },
                    slots: match (state, due) {
                        (HalfOpen, true) => u32::try_from(m.entry_slots(HalfOpen)).unwrap(),
                        (HalfOpen, false) => u32::try_from(m.slots).unwrap(),
                        _ => 0,
                    },
                    open_remaining: (state == Open)
                        .then(|| Duration::from_millis(m.open_until - m.now)),
                };
            }
            Op::Poll => {
                m.poll();
                m.last = Res::Polled(m.state);
            }
            Op::Grant(n) => {
                let credits = if m.state == HalfOpen && m.mode == ProbeMode::Granted {
                    m.slots = (m.slots + u64::from(*n)).min(MAX_CREDITS);
                    m.slots
                } else {
                    0
                };
                m.last = Res::Credits(u32::try_from(credits).unwrap());
            }
            Op::SetMode(mode) => {
                if m.mode != *mode {
                    m.mode = *mode;
                    if m.state == HalfOpen {
                        m.slots = m.entry_slots(HalfOpen);
                    }
                }
            }
        }
        m
    }
}

struct Sut {
    breaker: &'static CircuitBreaker,
    clock: Arc<ManualClock>,
    permits: Vec<Permit<'static>>,
}

impl StateMachineTest for Sut {
    type SystemUnderTest = Sut;
    type Reference = RefMachine;

    fn init_test(model: &Model) -> Sut {
        let clock = Arc::new(ManualClock::new());
        let breaker = CircuitBreaker::builder("model")
            .config(config(model.flavor))
            .probe_mode(model.flavor.mode)
            .clock(clock.clone())
            .build()
            .unwrap();
        // Leaked so that permits can be held across steps; a few KiB per case.
        Sut {
            breaker: Box::leak(Box::new(breaker)),
            clock,
            permits: Vec::new(),
        }
    }

    fn apply(mut sut: Sut, model: &Model, op: Op) -> Sut {
        let b = sut.breaker;
        let pick = |len: usize, i: usize| (len > 0).then(|| i % len);
        let res = match op {
            Op::Acquire => match b.try_acquire() {
                Ok(p) => {
                    let r = Res::Admitted {
                        version: p.version(),
                        probe: p.is_probe(),
                    };
                    sut.permits.push(p);
                    r
                }
                Err(rej) => Res::Rejected(rej),
            },
            Op::Success(i) => {
                if let Some(i) = pick(sut.permits.len(), i) {
                    sut.permits.remove(i).success();
                }
                Res::None
            }
            Op::Failure(i) => {
                if let Some(i) = pick(sut.permits.len(), i) {
                    sut.permits.remove(i).failure();
                }
                Res::None
            }
            Op::Drop(i) => {
                if let Some(i) = pick(sut.permits.len(), i) {
                    drop(sut.permits.remove(i));
                }
                Res::None
            }
            Op::Advance(ms) => {
                sut.clock.advance(Duration::from_millis(ms));
                Res::None
            }
            Op::ForceOpen => Res::Version(b.force_open()),
            Op::Disable => Res::Version(b.disable()),
            Op::Reset => Res::Version(b.reset()),
            Op::OpenFor(ms) => Res::OpenedFor(b.open_for(Duration::from_millis(ms))),
            Op::ApplyRemote {
                state,
                version_delta,
                failures,
                remaining_ms,
            } => {
                // The snapshot is built from the breaker's version before the step, which the
                // model had too.
                let before = b.version();
                let v = u64::try_from(i64::try_from(before).unwrap() + version_delta).unwrap_or(0);
                let mut snap = BreakerSnapshot::new(state, v);
                snap.failure_count = failures;
                snap.open_remaining_ms = Some(remaining_ms);
                Res::Applied(b.apply_remote(&snap))
            }
            Op::Absorb(f, s) => Res::Tripped(b.absorb_remote_outcomes(f, s)),
            Op::Poll => Res::Polled(b.poll()),
            Op::Grant(n) => Res::Credits(b.grant_probes(n)),
            Op::SetMode(mode) => {
                b.set_probe_mode(mode);
                Res::None
            }
            Op::ReadState => {
                assert_eq!(b.state(), b.metrics().state);
                let m = b.metrics();
                Res::State {
                    state: m.state,
                    failures: m.failure_count,
                    slots: m.probe_slots,
                    open_remaining: m.open_remaining,
                }
            }
        };
        assert_eq!(res, model.last, "result of {op:?}");
        sut
    }

    fn check_invariants(sut: &Sut, model: &Model) {
        assert_eq!(sut.breaker.version(), model.version);
        assert_eq!(sut.breaker.probe_mode(), model.mode);
        assert_eq!(sut.permits.len(), model.permits.len());
        for (p, m) in sut.permits.iter().zip(&model.permits) {
            assert_eq!(
                (p.version(), p.state(), p.is_probe()),
                (m.version, m.state, m.probe)
            );
        }
    }
}

prop_state_machine! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    #[test]
    fn breaker_matches_the_reference_model(sequential 1..80 => Sut);
}
