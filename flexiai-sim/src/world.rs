//! One run: builds the fleet (real `StateSyncManager`s and `CircuitBreaker`s over the
//! simulated store), drives callers, the fault schedule and the operator on virtual time,
//! heals everything at the end of the fault phase, and samples every worker once the
//! liveness bound has passed.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use flexiai_backend::{MemoryBackend, SyncBackend};
use flexiai_breaker::{
    BreakerObserver, CircuitBreaker, CircuitState, Outcome, OutcomeEvent, Transition,
};
use flexiai_events::WorkerId;
use flexiai_sync::{StateSyncManager, override_state};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until, timeout};

use crate::SimError;
use crate::history::{Actor, History, Record, SnapId};
use crate::plan::{
    Action, DOWN_LATENCY_MAX_MS, HEALTHY_LATENCY_MAX_MS, Health, Plan, SLOW_LATENCY_MAX_MS,
};
use crate::rng::Rng;
use crate::state::{MessageFaults, Shared, State};
use crate::store::SimBackend;
use crate::time::{self, VirtualClock};

/// Records a worker's local transitions and outcomes into the history.
struct Recorder {
    shared: Weak<Shared>,
    slot: usize,
    actor: Actor,
    provider: usize,
}

impl BreakerObserver for Recorder {
    fn on_transition(&self, transition: &Transition) {
        if let Some(shared) = self.shared.upgrade() {
            shared.with(|s| s.note_transition(self.slot, self.actor, self.provider, transition));
        }
    }

    fn on_outcome(&self, outcome: &OutcomeEvent) {
        if let Some(shared) = self.shared.upgrade() {
            shared.with(|s| {
                if s.is_current(self.slot, self.actor) {
                    let provider = s.providers[self.provider].clone();
                    s.record(Record::Outcome {
                        worker: self.actor,
                        provider,
                        version: outcome.version,
                        failure: outcome.outcome == Outcome::Failure,
                        counted: outcome.counted,
                    });
                }
            });
        }
    }
}

/// A running worker process.
struct Worker {
    /// Owned here: dropping the worker drops its manager, which aborts its driver.
    _manager: Arc<StateSyncManager>,
    lanes: Vec<JoinHandle<()>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        for lane in &self.lanes {
            lane.abort();
        }
    }
}

/// What a provider call answers.
enum Answer {
    Ok,
    Fail,
    RateLimited(Duration),
}

/// Something the main loop does at a time.
#[derive(Debug)]
enum Step {
    Act(Action),
    EndPartition { slot: usize, generation: u64 },
    EndFlaky { slot: usize, generation: u64 },
    EndMessages { slot: usize, generation: u64 },
    Reconnect { slot: usize, generation: u64 },
    EndProvider { provider: usize, generation: u64 },
    Restart { slot: usize },
    Resubscribe,
    Heal,
    Sample,
}

struct Run<'p> {
    plan: &'p Plan,
    shared: Arc<Shared>,
    origin: Instant,
    workers: Vec<Option<Worker>>,
    incarnations: Vec<u32>,
    steps: BTreeMap<(u64, u64), Step>,
    seq: u64,
    operator_actions: u32,
    last_override: Vec<Option<CircuitState>>,
    /// The epoch of each provider's last acknowledged override, and whether the store was
    /// wiped since.
    override_epoch: Vec<Option<(u64, bool)>>,
}

/// The jitter seed of one breaker: a function of the seed and the breaker's place in the run.
fn jitter_seed(seed: u64, slot: usize, incarnation: u32, provider: usize) -> u64 {
    let place = (u64::try_from(slot).unwrap_or(u64::MAX) << 40)
        ^ (u64::from(incarnation) << 16)
        ^ u64::try_from(provider).unwrap_or(u64::MAX);
    Rng::new(seed ^ place.wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64()
}

/// Runs `plan` and returns its history.
pub fn run_plan(plan: &Plan) -> Result<History, SimError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(SimError::Runtime)?;
    let result = runtime.block_on(async {
        let origin = Instant::now();
        time::install(origin);
        let out = run_inner(plan, origin).await;
        time::uninstall();
        out
    });
    drop(runtime);
    result
}

async fn run_inner(plan: &Plan, origin: Instant) -> Result<History, SimError> {
    let memory = MemoryBackend::builder()
        .build()
        .map_err(SimError::Backend)?;
    let state = State::new(
        Rng::new(plan.seed ^ 0xA5A5_5A5A_F00D_BEEF),
        plan.workers,
        plan.providers.clone(),
    );
    let shared = Arc::new(Shared::new(memory, state));
    let mut run = Run {
        plan,
        shared: Arc::clone(&shared),
        origin,
        workers: (0..plan.workers).map(|_| None).collect(),
        incarnations: vec![0; plan.workers],
        steps: BTreeMap::new(),
        seq: 0,
        operator_actions: 0,
        last_override: vec![None; plan.providers.len()],
        override_epoch: vec![None; plan.providers.len()],
    };
    for slot in 0..plan.workers {
        run.start_worker(slot).await?;
    }
    for (at, action) in &plan.actions {
        run.schedule(*at, Step::Act(action.clone()));
    }
    run.schedule(plan.fault_ms, Step::Heal);
    let end = plan.fault_ms + u64::try_from(plan.liveness_bound().as_millis()).unwrap_or(u64::MAX);
    run.schedule(end, Step::Sample);
    while let Some(((at, _), step)) = run.steps.pop_first() {
        sleep_until(origin + Duration::from_millis(at)).await;
        let done = matches!(step, Step::Sample);
        run.apply(step).await?;
        shared.with(State::note_impairments);
        if done {
            break;
        }
    }
    // Stop everything before taking the history: crash every worker (no clean stop).
    shared.with(|s| {
        for slot in &mut s.slots {
            slot.alive = false;
        }
    });
    run.workers.clear();
    let history = shared.with(|s| {
        for slot in &mut s.slots {
            slot.breakers.clear();
            slot.resubscribe.clear();
        }
        std::mem::take(&mut s.history)
    });
    Ok(history)
}

impl Run<'_> {
    fn schedule(&mut self, at: u64, step: Step) {
        self.seq += 1;
        self.steps.insert((at, self.seq), step);
    }

    fn now_ms(&self) -> u64 {
        time::elapsed_ms()
    }

    fn fault(&self, text: String) {
        self.shared.with(|s| s.record(Record::Fault(text)));
    }

    async fn start_worker(&mut self, slot: usize) -> Result<(), SimError> {
        let incarnation = self.incarnations[slot];
        self.incarnations[slot] += 1;
        let actor = Actor::Worker { slot, incarnation };
        let offset = self.plan.clock_offsets_ms[slot];
        let origin = self.origin;
        let breakers = time::with_wall_offset(offset, || {
            self.plan
                .providers
                .iter()
                .enumerate()
                .map(|(provider, name)| {
                    CircuitBreaker::builder(name.clone())
                        .config(self.plan.breaker.clone())
                        .clock(Arc::new(VirtualClock::new(origin)))
                        // From the run, not the process: the default seed uses the breaker's
                        // process-wide id, which depends on how many breakers were built before.
                        .jitter_seed(jitter_seed(self.plan.seed, slot, incarnation, provider))
                        .build()
                        .map(Arc::new)
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(SimError::Breaker)?;
        for (provider, breaker) in breakers.iter().enumerate() {
            breaker.add_observer(Arc::new(Recorder {
                shared: Arc::downgrade(&self.shared),
                slot,
                actor,
                provider,
            }));
        }
        self.shared
            .with(|s| s.install(slot, actor, breakers.clone()));
        let backend: Arc<dyn SyncBackend> =
            Arc::new(SimBackend::worker(Arc::clone(&self.shared), slot, actor));
        let worker_id = WorkerId::new(actor.to_string()).map_err(SimError::Events)?;
        let manager = StateSyncManager::builder(backend)
            .worker_id(worker_id)
            .options(self.plan.options.clone())
            .build()
            .map_err(SimError::Sync)?;
        for breaker in &breakers {
            manager
                .register_circuit_breaker(Arc::clone(breaker))
                .map_err(SimError::Sync)?;
        }
        let manager = Arc::new(manager);
        self.shared
            .with(|s| s.slots[slot].manager = Some(Arc::downgrade(&manager)));
        manager.start().await.map_err(SimError::Sync)?;
        self.shared.with(|s| s.observe_mode(slot));
        let mut lanes = Vec::new();
        for (provider, breaker) in breakers.iter().enumerate() {
            for _ in 0..self.plan.lanes {
                lanes.push(tokio::spawn(lane(
                    Arc::clone(&self.shared),
                    slot,
                    actor,
                    provider,
                    Arc::clone(breaker),
                    Arc::downgrade(&manager),
                    self.plan.gap_ms,
                )));
            }
        }
        self.workers[slot] = Some(Worker {
            _manager: manager,
            lanes,
        });
        Ok(())
    }

    fn crash(&mut self, slot: usize) {
        if let Some(worker) = self.workers[slot].take() {
            let actor = self.shared.with(|s| {
                let actor = s.slots[slot].actor;
                s.slots[slot].alive = false;
                s.record(Record::Crashed { worker: actor });
                actor
            });
            let _ = actor;
            drop(worker);
        }
    }

    async fn operator(&mut self, provider: usize, state: CircuitState) {
        self.operator_actions += 1;
        let id = self.operator_actions;
        let name = self.plan.providers[provider].clone();
        self.last_override[provider] = Some(state);
        self.override_epoch[provider] = None;
        self.shared.with(|s| {
            s.record(Record::OperatorAction {
                id,
                provider: name.clone(),
                state,
            });
        });
        let backend: Arc<dyn SyncBackend> =
            Arc::new(SimBackend::operator(Arc::clone(&self.shared)));
        let record = match WorkerId::new("operator") {
            Ok(actor) => match timeout(
                Duration::from_secs(5),
                override_state(&backend, &name, state, &actor),
            )
            .await
            {
                Ok(Ok(written)) => {
                    self.override_epoch[provider] = Some((written.epoch, false));
                    Record::OperatorAck {
                        id,
                        provider: name,
                        state,
                        version: written.version,
                    }
                }
                Ok(Err(error)) => Record::OperatorFailed {
                    id,
                    provider: name,
                    error: error.to_string(),
                },
                Err(_) => Record::OperatorFailed {
                    id,
                    provider: name,
                    error: "timed out".into(),
                },
            },
            Err(error) => Record::OperatorFailed {
                id,
                provider: name,
                error: error.to_string(),
            },
        };
        self.shared.with(|s| s.record(record));
    }

    async fn apply(&mut self, step: Step) -> Result<(), SimError> {
        let now = self.now_ms();
        match step {
            Step::Act(action) => self.act(action, now).await?,
            Step::EndPartition { slot, generation } => {
                let ended = self.shared.with(|s| {
                    let ends = s.slots[slot]
                        .partition
                        .is_some_and(|(_, g)| g == generation);
                    if ends {
                        s.slots[slot].partition = None;
                        s.signal_resubscribe(slot);
                    }
                    ends
                });
                if ended {
                    self.fault(format!("partition of w{slot} healed"));
                }
            }
            Step::EndFlaky { slot, generation } => self.shared.with(|s| {
                if s.slots[slot].flaky.is_some_and(|(_, _, g)| g == generation) {
                    s.slots[slot].flaky = None;
                }
            }),
            Step::EndMessages { slot, generation } => self.shared.with(|s| {
                if s.slots[slot].messages.is_some_and(|(_, g)| g == generation) {
                    s.slots[slot].messages = None;
                }
            }),
            Step::Reconnect { slot, generation } => self.shared.with(|s| {
                if s.slots[slot].disconnected == Some(generation) {
                    s.slots[slot].disconnected = None;
                    s.signal_resubscribe(slot);
                }
            }),
            Step::EndProvider {
                provider,
                generation,
            } => self.shared.with(|s| {
                if s.health[provider].1 == generation {
                    s.health[provider] = (Health::Healthy, generation);
                }
            }),
            Step::Restart { slot } => {
                if self.workers[slot].is_none() {
                    self.start_worker(slot).await?;
                }
            }
            Step::Resubscribe => self.shared.with(|s| {
                for slot in 0..s.slots.len() {
                    s.signal_resubscribe(slot);
                }
            }),
            Step::Heal => self.heal().await?,
            Step::Sample => self.sample().await,
        }
        Ok(())
    }

    async fn act(&mut self, action: Action, now: u64) -> Result<(), SimError> {
        self.fault(format!("{action:?}"));
        match action {
            Action::Partition { slot, mode, dur_ms } => {
                let generation = self.shared.with(|s| {
                    let g = s.next_generation();
                    s.slots[slot].partition = Some((mode, g));
                    g
                });
                self.schedule(now + dur_ms, Step::EndPartition { slot, generation });
            }
            Action::Flaky {
                slot,
                mode,
                percent,
                dur_ms,
            } => {
                let generation = self.shared.with(|s| {
                    let g = s.next_generation();
                    s.slots[slot].flaky = Some((mode, percent, g));
                    g
                });
                self.schedule(now + dur_ms, Step::EndFlaky { slot, generation });
            }
            Action::Messages {
                slot,
                drop,
                duplicate,
                delay_max_ms,
                dur_ms,
            } => {
                let generation = self.shared.with(|s| {
                    let g = s.next_generation();
                    s.slots[slot].messages = Some((
                        MessageFaults {
                            drop,
                            duplicate,
                            delay_max_ms,
                        },
                        g,
                    ));
                    g
                });
                self.schedule(now + dur_ms, Step::EndMessages { slot, generation });
            }
            Action::Disconnect { slot, dur_ms } => {
                let generation = self.shared.with(|s| {
                    let g = s.next_generation();
                    if s.slots[slot].disconnected.is_none() {
                        s.signal(slot, &flexiai_backend::Notification::Disconnected);
                    }
                    s.slots[slot].disconnected = Some(g);
                    g
                });
                self.schedule(now + dur_ms, Step::Reconnect { slot, generation });
            }
            Action::Wipe => {
                self.shared.memory.wipe();
                for held in self.override_epoch.iter_mut().flatten() {
                    held.1 = true;
                }
                let delay = self.shared.with(|s| {
                    s.record(Record::StoreWiped);
                    s.rng.range(100, 1000)
                });
                self.schedule(now + delay, Step::Resubscribe);
            }
            Action::Crash { slot, down_ms } => {
                self.crash(slot);
                self.schedule(now + down_ms, Step::Restart { slot });
            }
            Action::Operator { provider, state } => self.operator(provider, state).await,
            Action::Python {
                provider,
                event_type,
                skew_ms,
            } => self.python(provider, event_type, skew_ms),
            Action::Provider {
                provider,
                health,
                dur_ms,
            } => {
                let generation = self.shared.with(|s| {
                    let g = s.next_generation();
                    s.health[provider] = (health, g);
                    g
                });
                self.schedule(
                    now + dur_ms,
                    Step::EndProvider {
                        provider,
                        generation,
                    },
                );
            }
        }
        Ok(())
    }

    /// Publishes a transition exactly as FlexiAI v0.5's `StateSerializer.serialize_event`
    /// writes it: `to_dict()` field order, `json.dumps` separators, an offset-less
    /// `isoformat()` timestamp by the Python host's clock, no version.
    fn python(&self, provider: usize, event_type: &str, skew_ms: i64) {
        let name = &self.plan.providers[provider];
        let timestamp = time::wall_with_offset(skew_ms);
        let failures = if event_type == "opened" { 5 } else { 0 };
        let json = format!(
            r#"{{"provider_name": "{name}", "event_type": "{event_type}", "worker_id": "py-web-1:4242:1767225600.123", "timestamp": "{timestamp}", "metadata": {{"failure_count": {failures}, "success_count": 0}}, "__event_type__": "CircuitBreakerEvent"}}"#
        );
        let published = self.shared.memory.publish_raw(json.as_bytes());
        self.shared.with(|s| {
            s.record(Record::PythonEvent {
                provider: name.clone(),
                event_type: if published.is_ok() {
                    event_type.to_owned()
                } else {
                    format!("{event_type} (not published)")
                },
            });
        });
    }

    /// Ends every fault: views heal (and report the gap), crashed workers restart, providers
    /// answer, and the operator settles each provider it overrode: a reset, or its last
    /// override once more.
    async fn heal(&mut self) -> Result<(), SimError> {
        self.shared.with(|s| {
            s.healed = true;
            for slot in 0..s.slots.len() {
                let partitioned = s.slots[slot].partition.take().is_some();
                let disconnected = s.slots[slot].disconnected.take().is_some();
                s.slots[slot].flaky = None;
                s.slots[slot].messages = None;
                if partitioned || disconnected {
                    s.signal_resubscribe(slot);
                }
            }
            for health in &mut s.health {
                health.0 = Health::Healthy;
            }
            s.record(Record::Healed);
        });
        for slot in 0..self.plan.workers {
            if self.workers[slot].is_none() {
                self.start_worker(slot).await?;
            }
        }
        for provider in 0..self.plan.providers.len() {
            let lost = self.reset_lost(provider).await;
            match self.last_override[provider] {
                Some(CircuitState::ForcedOpen | CircuitState::Disabled)
                    if self.plan.final_resets.contains(&provider) =>
                {
                    self.operator(provider, CircuitState::Closed).await;
                }
                Some(state @ (CircuitState::ForcedOpen | CircuitState::Disabled)) => {
                    self.operator(provider, state).await;
                }
                // A reset lost in a wipe before any running worker held it is lost by design
                // (ARCHITECTURE.md, "Not guaranteed"): the fleet may bring back the override
                // it replaced. The operator, checking, resets again; a reset that some worker
                // or the store still holds is left for check_liveness to judge.
                Some(CircuitState::Closed) if lost => {
                    self.operator(provider, CircuitState::Closed).await;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether the provider's last override was wiped out of the store and no running worker
    /// holds its epoch (see [`lost_in_a_wipe`]).
    async fn reset_lost(&self, provider: usize) -> bool {
        let Some((epoch, wiped)) = self.override_epoch[provider] else {
            return false;
        };
        let stored = self
            .shared
            .memory
            .get_state(&self.plan.providers[provider])
            .await
            .ok()
            .flatten()
            .map(|s| s.epoch);
        let held = self.shared.with(|s| s.held_epochs(provider));
        lost_in_a_wipe(epoch, wiped, stored, &held)
    }

    async fn sample(&mut self) {
        for provider in 0..self.plan.providers.len() {
            let name = self.plan.providers[provider].clone();
            let expected = match self.last_override[provider] {
                Some(state @ (CircuitState::ForcedOpen | CircuitState::Disabled)) => state,
                _ => CircuitState::Closed,
            };
            let stored = self
                .shared
                .memory
                .get_state(&name)
                .await
                .ok()
                .flatten()
                .map(|s| SnapId::of(&s));
            for slot in 0..self.plan.workers {
                let Some(breaker) = self.shared.with(|s| {
                    s.sync_slot(slot);
                    s.slots[slot].breakers.get(provider).cloned()
                }) else {
                    continue;
                };
                let state = breaker.state();
                let version = breaker.version();
                self.shared.with(|s| {
                    let worker = s.slots[slot].actor;
                    if provider == 0 {
                        s.observe_mode(slot);
                        if let Some(mode) = s.slots[slot].mode {
                            s.record(Record::FinalMode { worker, mode });
                        }
                    }
                    s.record(Record::Final {
                        worker,
                        provider: name.clone(),
                        state,
                        version,
                        stored: stored.clone(),
                        expected,
                    });
                });
            }
        }
    }
}

/// An override of epoch `epoch` is lost when the store was wiped since it was acknowledged
/// and neither the store (`stored`: its epoch now) nor any running worker (`held`) stands in
/// its epoch or a later one: nobody can bring it back. Without a wipe, an override gone from
/// everywhere is a lost update, for the checks to report.
fn lost_in_a_wipe(epoch: u64, wiped: bool, stored: Option<u64>, held: &[u64]) -> bool {
    wiped && stored.is_none_or(|s| s < epoch) && held.iter().all(|&h| h < epoch)
}

/// One caller: pauses, asks the breaker, calls the provider, settles.
async fn lane(
    shared: Arc<Shared>,
    slot: usize,
    actor: Actor,
    provider: usize,
    breaker: Arc<CircuitBreaker>,
    manager: Weak<StateSyncManager>,
    gap_ms: (u64, u64),
) {
    let name = shared.with(|s| s.providers[provider].clone());
    loop {
        let pause = shared.with(|s| s.rng.range(gap_ms.0, gap_ms.1));
        sleep(Duration::from_millis(pause)).await;
        shared.with(|s| s.sync_slot(slot));
        let Ok(permit) = breaker.try_acquire() else {
            continue;
        };
        let probe = permit.is_probe();
        let version = permit.version();
        let admitted = probe.then(|| {
            let synced = manager.upgrade().is_some_and(|m| m.health().is_synced());
            shared.with(|s| {
                s.record(Record::ProbeAdmitted {
                    worker: actor,
                    provider: name.clone(),
                    version,
                    synced,
                })
            })
        });
        let (latency, answer) = shared.with(|s| provider_answer(s, provider));
        sleep(latency).await;
        match answer {
            Answer::Ok => permit.success(),
            Answer::Fail => permit.failure(),
            Answer::RateLimited(wait) => {
                permit.failure();
                // The period as `open_for` clamps it: at least 1 ms, at most the cap.
                let period = wait
                    .min(breaker.config().max_recovery_timeout())
                    .max(Duration::from_millis(1));
                let version = breaker.open_for(wait);
                shared.with(|s| {
                    if s.is_current(slot, actor) {
                        let until_ms = time::elapsed_ms()
                            + u64::try_from(period.as_millis()).unwrap_or(u64::MAX);
                        s.record(Record::RetryAfter {
                            worker: actor,
                            provider: name.clone(),
                            version,
                            until_ms,
                        });
                    }
                });
            }
        }
        if let Some(admitted) = admitted {
            shared.with(|s| {
                s.record(Record::ProbeSettled {
                    worker: actor,
                    provider: name.clone(),
                    version,
                    admitted,
                });
            });
        }
    }
}

fn provider_answer(s: &mut State, provider: usize) -> (Duration, Answer) {
    let health = if s.healed {
        Health::Healthy
    } else {
        s.health[provider].0
    };
    let healthy = |s: &mut State| {
        (
            Duration::from_millis(s.rng.range(5, HEALTHY_LATENCY_MAX_MS)),
            Answer::Ok,
        )
    };
    let down = |s: &mut State| {
        let ms = if s.rng.chance(20) {
            s.rng.range(1000, DOWN_LATENCY_MAX_MS)
        } else {
            s.rng.range(5, 300)
        };
        (Duration::from_millis(ms), Answer::Fail)
    };
    match health {
        Health::Healthy => healthy(s),
        Health::Down => down(s),
        Health::Flapping { period_ms } => {
            if (time::elapsed_ms() / period_ms.max(1)).is_multiple_of(2) {
                down(s)
            } else {
                healthy(s)
            }
        }
        Health::RetryAfterStorm {
            percent,
            min_ms,
            max_ms,
        } => {
            if s.rng.chance(percent) {
                let wait = s.rng.range(min_ms, max_ms);
                // A gateway's 429s take a while too: many calls are in flight when the
                // first lands, so workers open the same version at once.
                (
                    Duration::from_millis(s.rng.range(50, 400)),
                    Answer::RateLimited(Duration::from_millis(wait)),
                )
            } else {
                healthy(s)
            }
        }
        Health::RateLimited {
            percent,
            retry_after_ms,
        } => {
            if s.rng.chance(percent) {
                (
                    Duration::from_millis(s.rng.range(5, 50)),
                    Answer::RateLimited(Duration::from_millis(retry_after_ms)),
                )
            } else {
                healthy(s)
            }
        }
        Health::Slow => (
            Duration::from_millis(s.rng.range(500, SLOW_LATENCY_MAX_MS)),
            Answer::Ok,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::lost_in_a_wipe;

    #[test]
    fn an_override_is_lost_only_when_wiped_and_held_by_nobody() {
        // Seeds 42252, 65739: the reset (epoch 30) acknowledged while every worker was cut
        // off, then the store wiped; a worker wrote back the forced_open of epoch 20.
        assert!(lost_in_a_wipe(30, true, Some(20), &[20, 0]));
        assert!(lost_in_a_wipe(30, true, None, &[]));
        // A running worker still holds it (it must write it back): not lost, judged.
        assert!(!lost_in_a_wipe(30, true, Some(20), &[30, 20]));
        // The store holds it or a later epoch.
        assert!(!lost_in_a_wipe(30, true, Some(30), &[20]));
        // No wipe: gone from everywhere is a lost update, for the checks.
        assert!(!lost_in_a_wipe(30, false, Some(20), &[20]));
    }
}
