//! The simulator's shared state: the real store behind every view, the fault flags of each
//! worker's view, the history being recorded, and per worker and provider where its
//! breaker's state came from (so every store write can be judged against it).
//!
//! Locked briefly and never across an `.await`; breaker methods that can run observers are
//! never called while it is held (observers lock it themselves).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use flexiai_backend::MemoryBackend;
use flexiai_backend::Notification;
use flexiai_breaker::{CircuitBreaker, CircuitState};
use flexiai_events::{BreakerSnapshot, Event, Revision};
use flexiai_sync::{StateSyncManager, SyncMode};
use tokio::sync::mpsc;

use crate::history::{Actor, Base, History, Record, SnapId, SyncState};
use crate::plan::{CallFault, Health};
use crate::rng::Rng;
use crate::time;

/// Message faults of one worker's subscription.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MessageFaults {
    pub(crate) drop: u64,
    pub(crate) duplicate: u64,
    pub(crate) delay_max_ms: u64,
}

/// Something delivered to a worker that its breaker may adopt.
#[derive(Debug, Clone)]
enum Candidate {
    Snap(SnapId),
    Python(CircuitState),
}

/// Where one worker's breaker for one provider stands, as far as the history knows.
#[derive(Debug)]
pub(crate) struct Track {
    version: u64,
    state: Option<CircuitState>,
    pub(crate) base: Base,
    /// The epoch of the last stored snapshot this breaker wrote or adopted. The driver never
    /// adopts a lower revision than its base, so a candidate of an earlier epoch (a message
    /// delayed or duplicated from before an override) is never what the breaker took.
    epoch: u64,
    /// The points (version, state) this breaker went through by itself since `base`.
    pub(crate) path: Vec<(u64, CircuitState)>,
    candidates: VecDeque<Candidate>,
    /// A reconcile read handed the driver this snapshot while the breaker stood one version
    /// past it, open, on a branch below it (see [`State::note_reconcile_read`]): settled at the
    /// next look at the breaker.
    rebase_from: Option<SnapId>,
}

impl Track {
    fn fresh() -> Self {
        Self {
            version: 0,
            state: Some(CircuitState::Closed),
            base: Base::Fresh,
            epoch: 0,
            path: Vec::new(),
            candidates: VecDeque::new(),
            rebase_from: None,
        }
    }

    fn set_base(&mut self, base: Base) {
        if let Base::Known(id) = &base {
            self.epoch = id.epoch;
        }
        self.base = base;
        self.path.clear();
    }

    /// Whether the driver could adopt `id` (see [`Track::epoch`]).
    fn adoptable(&self, id: &SnapId) -> bool {
        id.epoch >= self.epoch
    }

    fn push(&mut self, candidate: Candidate) {
        if self.candidates.len() >= 64 {
            self.candidates.pop_front();
        }
        self.candidates.push_back(candidate);
    }
}

/// One worker slot: the current incarnation's breakers and the faults of its store view.
pub(crate) struct Slot {
    pub(crate) actor: Actor,
    pub(crate) alive: bool,
    pub(crate) breakers: Vec<Arc<CircuitBreaker>>,
    pub(crate) tracks: Vec<Track>,
    pub(crate) partition: Option<(CallFault, u64)>,
    pub(crate) flaky: Option<(CallFault, u64, u64)>,
    pub(crate) messages: Option<(MessageFaults, u64)>,
    /// One sender per live subscription forwarder: a message makes it report `Resubscribed`.
    pub(crate) resubscribe: Vec<mpsc::UnboundedSender<Notification>>,
    /// The subscription's connection is down (until this generation's end).
    pub(crate) disconnected: Option<u64>,
    /// The worker's manager, to read its sync mode.
    pub(crate) manager: Option<Weak<StateSyncManager>>,
    /// The sync mode last recorded for this worker.
    pub(crate) mode: Option<SyncState>,
    /// Whether the view had a fault at the last look (recorded as `Impaired`).
    pub(crate) impaired: bool,
}

/// Everything the simulator's tasks share.
pub(crate) struct State {
    pub(crate) rng: Rng,
    pub(crate) history: History,
    pub(crate) slots: Vec<Slot>,
    pub(crate) providers: Vec<String>,
    pub(crate) health: Vec<(Health, u64)>,
    pub(crate) healed: bool,
    /// What the operator last read per provider (its base for the next write).
    pub(crate) operator_base: Vec<Option<SnapId>>,
    pub(crate) generation: u64,
}

/// The shared store and state.
pub(crate) struct Shared {
    pub(crate) memory: MemoryBackend,
    state: Mutex<State>,
}

impl Shared {
    pub(crate) fn new(memory: MemoryBackend, state: State) -> Self {
        Self {
            memory,
            state: Mutex::new(state),
        }
    }

    /// Runs `f` on the state. `f` must not call breaker methods that run observers.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut guard = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }
}

impl State {
    pub(crate) fn new(rng: Rng, workers: usize, providers: Vec<String>) -> Self {
        let n = providers.len();
        Self {
            rng,
            history: History::default(),
            slots: (0..workers)
                .map(|slot| Slot {
                    actor: Actor::Worker {
                        slot,
                        incarnation: 0,
                    },
                    alive: false,
                    breakers: Vec::new(),
                    tracks: Vec::new(),
                    partition: None,
                    flaky: None,
                    messages: None,
                    resubscribe: Vec::new(),
                    disconnected: None,
                    manager: None,
                    mode: None,
                    impaired: false,
                })
                .collect(),
            health: vec![(Health::Healthy, 0); n],
            operator_base: vec![None; n],
            providers,
            healed: false,
            generation: 0,
        }
    }

    /// Appends `record`; returns its index in the history.
    pub(crate) fn record(&mut self, record: Record) -> usize {
        self.history.push(time::elapsed_ms(), record);
        self.history.entries.len() - 1
    }

    pub(crate) fn provider_index(&self, name: &str) -> Option<usize> {
        self.providers.iter().position(|p| p == name)
    }

    pub(crate) fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    /// Installs a new incarnation's breakers in `slot`.
    pub(crate) fn install(
        &mut self,
        slot: usize,
        actor: Actor,
        breakers: Vec<Arc<CircuitBreaker>>,
    ) {
        let s = &mut self.slots[slot];
        s.actor = actor;
        s.alive = true;
        s.tracks = breakers.iter().map(|_| Track::fresh()).collect();
        s.breakers = breakers;
        s.manager = None;
        s.mode = None;
        self.record(Record::Started { worker: actor });
    }

    /// The epochs running workers' breakers for `provider` stand in (the last stored
    /// snapshot each wrote or adopted).
    pub(crate) fn held_epochs(&self, provider: usize) -> Vec<u64> {
        self.slots
            .iter()
            .filter(|s| s.alive)
            .filter_map(|s| s.tracks.get(provider).map(|t| t.epoch))
            .collect()
    }

    pub(crate) fn is_current(&self, slot: usize, actor: Actor) -> bool {
        let s = &self.slots[slot];
        s.alive && s.actor == actor
    }

    /// Notices states the worker's breakers took without a local transition (adopted
    /// snapshots), by their versions: reading a version runs no observer.
    pub(crate) fn sync_slot(&mut self, slot: usize) {
        if !self.slots[slot].alive {
            return;
        }
        for i in 0..self.slots[slot].breakers.len() {
            let breaker = &self.slots[slot].breakers[i];
            // Both reads are free of side effects: a due open -> half-open transition is
            // reported, not made, so `state` may say half-open where the word is still open.
            let (version, state) = (breaker.version(), breaker.state());
            self.settle_rebase(slot, i, version);
            if version != self.slots[slot].tracks[i].version {
                self.resolve(slot, i, version, Some(state));
            } else if Some(state) != self.slots[slot].tracks[i].state {
                self.restored(slot, i, version, state);
            }
        }
    }

    /// The breaker of (`slot`, `provider`) now has `version` without having made it: find
    /// what it adopted among what was delivered to it.
    fn resolve(&mut self, slot: usize, provider: usize, version: u64, seen: Option<CircuitState>) {
        let actor = self.slots[slot].actor;
        let track = &mut self.slots[slot].tracks[provider];
        let snap = track.candidates.iter().rev().find_map(|c| match c {
            Candidate::Snap(id) if id.version == version && track.adoptable(id) => Some(id.clone()),
            _ => None,
        });
        let python = track.candidates.iter().rev().find_map(|c| match c {
            Candidate::Python(state) => Some(*state),
            Candidate::Snap(_) => None,
        });
        // A version one past the latest snapshot handed to it (a lost compare-and-set's
        // winner, a read), with no local transition, is an open deadline rebased onto that
        // snapshot as its successor (the driver's `later_deadline`): a step on top of it.
        let rebased = match track.candidates.iter().rev().find(|c| match c {
            Candidate::Snap(id) => id.version.saturating_add(1) == version && track.adoptable(id),
            Candidate::Python(_) => true,
        }) {
            Some(Candidate::Snap(id)) if snap.is_none() && seen == Some(CircuitState::Open) => {
                Some(id.clone())
            }
            _ => None,
        };
        if let Some(id) = rebased {
            track.set_base(Base::Known(id));
            track.path.push((version, CircuitState::Open));
            track.version = version;
            track.state = Some(CircuitState::Open);
            let name = self.providers[provider].clone();
            self.record(Record::Seen {
                worker: actor,
                provider: name,
                version,
                state: Some(CircuitState::Open),
                via: "rebase".to_owned(),
            });
            return;
        }
        let (state, via) = match snap {
            Some(id) => {
                let via = id.by.clone();
                let state = id.state;
                track.set_base(Base::Known(id));
                (Some(state), via)
            }
            // An unversioned (Python) transition is applied as the worker's next version and
            // published by it: a local step on its own branch.
            None if version == track.version + 1 && python.is_some() => {
                if let Some(state) = python {
                    track.path.push((version, state));
                }
                (python, "python".to_owned())
            }
            None => {
                track.set_base(Base::Unknown);
                (None, "unknown".to_owned())
            }
        };
        track.version = version;
        track.state = state;
        let name = self.providers[provider].clone();
        self.record(Record::Seen {
            worker: actor,
            provider: name,
            version,
            state,
            via,
        });
    }

    /// The breaker of (`slot`, `provider`) shows `state` at the version it had: a restore of
    /// a stored snapshot of the same version (a diverged branch dropped), if one was handed
    /// to it; otherwise a due half-open seen before it is made, which changes nothing.
    fn restored(&mut self, slot: usize, provider: usize, version: u64, state: CircuitState) {
        let actor = self.slots[slot].actor;
        let track = &mut self.slots[slot].tracks[provider];
        let Some(id) = track.candidates.iter().rev().find_map(|c| match c {
            Candidate::Snap(id)
                if id.version == version && id.state == state && track.adoptable(id) =>
            {
                Some(id.clone())
            }
            _ => None,
        }) else {
            return;
        };
        track.state = Some(state);
        track.set_base(Base::Known(id.clone()));
        let name = self.providers[provider].clone();
        self.record(Record::Seen {
            worker: actor,
            provider: name,
            version,
            state: Some(state),
            via: id.by,
        });
    }

    /// A local transition reported by the breaker's observer.
    pub(crate) fn note_transition(
        &mut self,
        slot: usize,
        actor: Actor,
        provider: usize,
        transition: &flexiai_breaker::Transition,
    ) {
        if self.slots[slot].actor != actor || self.slots[slot].tracks.len() <= provider {
            return;
        }
        let prior = transition.version.saturating_sub(1);
        self.settle_rebase(slot, provider, prior);
        if self.slots[slot].tracks[provider].version != prior {
            self.resolve(slot, provider, prior, None);
        }
        let track = &mut self.slots[slot].tracks[provider];
        track.version = transition.version;
        track.state = Some(transition.to);
        track.path.push((transition.version, transition.to));
        let name = self.providers[provider].clone();
        self.record(Record::Transition {
            worker: actor,
            provider: name,
            from: transition.from,
            to: transition.to,
            version: transition.version,
            reason: format!("{:?}", transition.reason),
        });
    }

    /// A snapshot the store returned to `slot` (a read, or the winner of a lost CAS).
    pub(crate) fn note_read(&mut self, slot: usize, provider: &str, snapshot: &BreakerSnapshot) {
        let Some(i) = self.provider_index(provider) else {
            return;
        };
        let id = SnapId::of(snapshot);
        let track = &mut self.slots[slot].tracks[i];
        // Same version and state: the worker agrees with the store (e.g. two workers made the
        // same transition and this one lost the tie), so it descends from what is stored.
        if id.version == track.version && Some(id.state) == track.state {
            track.set_base(Base::Known(id.clone()));
        }
        track.push(Candidate::Snap(id));
    }

    /// A reconcile's `get_states` reply, `snapshot` for `provider`, reached `slot`'s driver,
    /// which converges on it before anything else runs. Revision above the driver's base:
    /// it adopts it (base := it), and with the breaker at its version + 1, open, on a branch
    /// of its epoch, either restores it (the version changes, seen by [`State::sync_slot`])
    /// or rebases the open deadline onto it as v+1 (`later_deadline`): the breaker's version
    /// and state stay as they were, which nothing else can see. Noted here, attributed at the
    /// next look if the version did not change.
    pub(crate) fn note_reconcile_read(
        &mut self,
        slot: usize,
        provider: &str,
        snapshot: &BreakerSnapshot,
    ) {
        let Some(i) = self.provider_index(provider) else {
            return;
        };
        let id = SnapId::of(snapshot);
        let track = &mut self.slots[slot].tracks[i];
        let below =
            matches!(&track.base, Base::Known(b) if (b.epoch, b.version) < (id.epoch, id.version));
        track.rebase_from = (below
            && id.epoch == track.epoch
            && track.version == id.version.saturating_add(1)
            && track.state == Some(CircuitState::Open)
            && !matches!(id.state, CircuitState::ForcedOpen | CircuitState::Disabled))
        .then_some(id);
    }

    /// Settles a rebase noted by [`State::note_reconcile_read`], the breaker now at
    /// `version` (before any local transition still being reported).
    fn settle_rebase(&mut self, slot: usize, provider: usize, version: u64) {
        let actor = self.slots[slot].actor;
        let track = &mut self.slots[slot].tracks[provider];
        let Some(id) = track.rebase_from.take() else {
            return;
        };
        if version != track.version {
            return;
        }
        track.set_base(Base::Known(id));
        track.path.push((version, CircuitState::Open));
        let name = self.providers[provider].clone();
        self.record(Record::Seen {
            worker: actor,
            provider: name,
            version,
            state: Some(CircuitState::Open),
            via: "rebase".to_owned(),
        });
    }

    /// A lost compare-and-set: the driver adopts the stored winner when it has the version
    /// it wrote (restore), or will apply it if newer.
    pub(crate) fn note_cas_lost(
        &mut self,
        slot: usize,
        provider: &str,
        written: &BreakerSnapshot,
        current: &BreakerSnapshot,
    ) {
        let Some(i) = self.provider_index(provider) else {
            return;
        };
        let local = self.slots[slot].breakers[i].version();
        let actor = self.slots[slot].actor;
        let id = SnapId::of(current);
        let track = &mut self.slots[slot].tracks[i];
        track.push(Candidate::Snap(id.clone()));
        if current.version == local && local == written.version {
            let changed = track.state != Some(current.state);
            track.set_base(Base::Known(id.clone()));
            track.state = Some(current.state);
            if changed {
                self.record(Record::Seen {
                    worker: actor,
                    provider: provider.to_owned(),
                    version: id.version,
                    state: Some(id.state),
                    via: id.by,
                });
            }
        }
    }

    /// A successful compare-and-set by `slot`.
    pub(crate) fn note_written(&mut self, slot: usize, provider: &str, written: &BreakerSnapshot) {
        if let Some(i) = self.provider_index(provider) {
            self.slots[slot].tracks[i].set_base(Base::Known(SnapId::of(written)));
        }
    }

    /// The base and path to judge `slot`'s write of `written` over `before` by: its track's,
    /// unless the write is an open deadline rebased onto `before` at the version the breaker
    /// already had (the driver's `later_deadline`: its own open v(n+1), kept over a stored
    /// v(n) it read that is no operator state, in one epoch). Such a rebase leaves the
    /// breaker's version and state as they were, so [`State::sync_slot`] cannot see it: it is
    /// attributed here, to the stored snapshot handed to the writer that the write replaced.
    pub(crate) fn base_for_write(
        &mut self,
        slot: usize,
        provider: &str,
        before: Option<&BreakerSnapshot>,
        expected: Option<Revision>,
        written: &BreakerSnapshot,
    ) -> (Base, Vec<(u64, CircuitState)>) {
        let Some(i) = self.provider_index(provider) else {
            return (Base::Unknown, Vec::new());
        };
        let actor = self.slots[slot].actor;
        let track = &mut self.slots[slot].tracks[i];
        let rebase = before.map(SnapId::of).filter(|before| {
            written.epoch == before.epoch
                && written.version == before.version.saturating_add(1)
                && written.state == CircuitState::Open
                && !matches!(
                    before.state,
                    CircuitState::ForcedOpen | CircuitState::Disabled
                )
                && track.version == written.version
                && track.state == Some(CircuitState::Open)
                && !matches!(&track.base, Base::Known(id) if id == before)
                && track
                    .candidates
                    .iter()
                    .any(|c| matches!(c, Candidate::Snap(id) if id == before))
        });
        if let Some(before) = rebase {
            track.set_base(Base::Known(before));
            track.path.push((written.version, CircuitState::Open));
            self.record(Record::Seen {
                worker: actor,
                provider: provider.to_owned(),
                version: written.version,
                state: Some(CircuitState::Open),
                via: "rebase".to_owned(),
            });
            return self.base_of(slot, provider);
        }
        // The compare-and-set named the stored snapshot's revision as the writer's base, so
        // the driver had adopted it: the breaker had a sibling of the same version (its own
        // unstored step there, which the adoption replaced without a version change) and
        // made its later steps before the simulator looked (seed 53338: the adoption of v5
        // open over its own v5 closed, then a Python half_open as v6). Only a snapshot handed
        // to the writer counts, and only over a sibling the tracker saw on its path.
        let missed = before.map(SnapId::of).filter(|before| {
            expected
                == Some(Revision {
                    epoch: before.epoch,
                    version: before.version,
                })
                && !matches!(&track.base, Base::Known(id) if id == before)
                && track
                    .path
                    .iter()
                    .any(|&(v, state)| v == before.version && state != before.state)
                && track.adoptable(before)
                && track
                    .candidates
                    .iter()
                    .any(|c| matches!(c, Candidate::Snap(id) if id == before))
        });
        if let Some(before) = missed {
            let after: Vec<(u64, CircuitState)> = track
                .path
                .iter()
                .copied()
                .filter(|&(v, _)| v > before.version)
                .collect();
            let by = before.by.clone();
            track.set_base(Base::Known(before.clone()));
            track.path = after;
            self.record(Record::Seen {
                worker: actor,
                provider: provider.to_owned(),
                version: before.version,
                state: Some(before.state),
                via: format!("{by} (seen at the write)"),
            });
        }
        self.base_of(slot, provider)
    }

    /// The base the writer `slot` has for `provider` right now, and the points it went
    /// through by itself since.
    pub(crate) fn base_of(&self, slot: usize, provider: &str) -> (Base, Vec<(u64, CircuitState)>) {
        self.provider_index(provider)
            .map_or((Base::Unknown, Vec::new()), |i| {
                let track = &self.slots[slot].tracks[i];
                (track.base.clone(), track.path.clone())
            })
    }

    /// An event handed to `slot`'s subscription.
    pub(crate) fn note_event(&mut self, slot: usize, event: &Event) {
        let Some(i) = self.provider_index(event.provider_name()) else {
            return;
        };
        let candidate = match event {
            Event::StateUpdateEvent(update) => {
                let mut id = SnapId::of(&update.state_data);
                if id.by.is_empty() {
                    id.by = update.worker_id.as_str().to_owned();
                }
                Candidate::Snap(id)
            }
            Event::CircuitBreakerEvent(e) => match (e.target_state(), e.metadata.version) {
                (Some(state), Some(version)) => Candidate::Snap(SnapId {
                    epoch: e.metadata.epoch.unwrap_or(0),
                    version,
                    state,
                    by: e.worker_id.as_str().to_owned(),
                }),
                (Some(state), None) => Candidate::Python(state),
                (None, _) => return,
            },
            _ => return,
        };
        self.slots[slot].tracks[i].push(candidate);
    }

    /// What happens to one message on its way to `slot`: the delays of its deliveries
    /// (none: dropped; two: duplicated).
    pub(crate) fn message_fate(&mut self, slot: usize) -> Vec<u64> {
        if self.slots[slot].partition.is_some() || self.slots[slot].disconnected.is_some() {
            return Vec::new();
        }
        let Some((faults, _)) = self.slots[slot].messages else {
            return vec![0];
        };
        if self.rng.chance(faults.drop) {
            return Vec::new();
        }
        let copies = if self.rng.chance(faults.duplicate) {
            2
        } else {
            1
        };
        (0..copies)
            .map(|_| self.rng.range(0, faults.delay_max_ms))
            .collect()
    }

    /// How `slot`'s next store call behaves.
    pub(crate) fn call_fate(&mut self, slot: usize) -> Option<CallFault> {
        if let Some((mode, _)) = self.slots[slot].partition {
            return Some(mode);
        }
        match self.slots[slot].flaky {
            Some((mode, percent, _)) if self.rng.chance(percent) => Some(mode),
            _ => None,
        }
    }

    /// Tells every live subscription of `slot` to report a gap.
    pub(crate) fn signal_resubscribe(&mut self, slot: usize) {
        // A subscriber reconnects only once its connection can: a partition or a cut
        // subscriber connection still in force reports `Resubscribed` when it ends.
        let s = &self.slots[slot];
        if s.partition.is_some() || s.disconnected.is_some() {
            return;
        }
        self.signal(slot, &Notification::Resubscribed);
    }

    /// Hands `notification` to every live subscription of `slot`.
    pub(crate) fn signal(&mut self, slot: usize, notification: &Notification) {
        self.slots[slot]
            .resubscribe
            .retain(|tx| tx.send(notification.clone()).is_ok());
    }

    /// Records the sync mode of `slot`'s manager when it changed since the last look. Looked
    /// at before every store call and every delivery, so each change is recorded before
    /// anything the worker does or hears after it.
    pub(crate) fn observe_mode(&mut self, slot: usize) {
        if !self.slots[slot].alive {
            return;
        }
        let Some(manager) = self.slots[slot].manager.as_ref().and_then(Weak::upgrade) else {
            return;
        };
        let (mode, reason) = match manager.health().mode {
            SyncMode::Stopped => (SyncState::Stopped, String::new()),
            SyncMode::Synced => (SyncState::Synced, String::new()),
            SyncMode::Degraded { reason } => (SyncState::Degraded, reason),
            // A mode added later: recorded as degraded so the checks notice it.
            other => (SyncState::Degraded, other.to_string()),
        };
        if self.slots[slot].mode != Some(mode) {
            self.slots[slot].mode = Some(mode);
            let worker = self.slots[slot].actor;
            self.record(Record::SyncMode {
                worker,
                mode,
                reason,
            });
        }
    }

    /// Records every view whose faults started or ended since the last look.
    pub(crate) fn note_impairments(&mut self) {
        for slot in 0..self.slots.len() {
            let s = &self.slots[slot];
            let now = s.partition.is_some()
                || s.flaky.is_some()
                || s.messages.is_some()
                || s.disconnected.is_some();
            if now != s.impaired {
                self.slots[slot].impaired = now;
                self.record(Record::Impaired { slot, on: now });
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::check::check_linear_history;

    const P: &str = "openai";

    fn snap(version: u64, state: CircuitState, remaining: Option<u64>) -> BreakerSnapshot {
        let mut s = BreakerSnapshot::new(state, version);
        s.open_remaining_ms = remaining;
        s
    }

    /// One worker whose own branch grew v5 half-open, v6 open, v7 open (a Retry-After) from
    /// a stored v4 it adopted, unstored (seed 1034's w1 while its store view was impaired).
    fn diverged() -> State {
        let mut s = State::new(Rng::new(0), 1, vec![P.to_owned()]);
        s.slots[0].alive = true;
        let mut track = Track::fresh();
        track.set_base(Base::Known(SnapId::of(&snap(4, CircuitState::Open, None))));
        track.path = vec![
            (5, CircuitState::HalfOpen),
            (6, CircuitState::Open),
            (7, CircuitState::Open),
        ];
        track.version = 7;
        track.state = Some(CircuitState::Open);
        s.slots[0].tracks = vec![track];
        s
    }

    /// Judges `slot` 0 writing `written` over `before` as the simulator's store does.
    fn write(s: &mut State, before: &BreakerSnapshot, written: &BreakerSnapshot) -> usize {
        write_from(s, before, None, written)
    }

    /// [`write`], the compare-and-set naming `expected` as the writer's base.
    fn write_from(
        s: &mut State,
        before: &BreakerSnapshot,
        expected: Option<Revision>,
        written: &BreakerSnapshot,
    ) -> usize {
        let (base, path) = s.base_for_write(0, P, Some(before), expected, written);
        s.record(Record::StoreWrite {
            by: s.slots[0].actor,
            provider: P.to_owned(),
            before: Some(SnapId::of(before)),
            after: SnapId::of(written),
            base,
            path,
        });
        check_linear_history(&s.history).len()
    }

    #[test]
    fn an_open_deadline_rebased_at_the_breakers_own_version_descends_from_what_it_replaced() {
        // The worker reads the fleet's closed v6 and rebases its later open deadline onto it
        // as v7: the version and state its breaker already had, so no adoption shows.
        let closed = snap(6, CircuitState::Closed, None);
        let rebased = snap(7, CircuitState::Open, Some(5_000));
        let mut s = diverged();
        s.note_read(0, P, &closed);
        assert_eq!(write(&mut s, &closed, &rebased), 0, "{:#?}", s.history);
        assert!(s.history.entries.iter().any(|e| matches!(
            &e.record,
            Record::Seen { version: 7, via, .. } if via == "rebase"
        )));
        assert_eq!(s.slots[0].tracks[0].path, vec![(7, CircuitState::Open)]);

        // Not handed v6, the same write replaces a decision the worker never saw.
        let mut s = diverged();
        assert_eq!(write(&mut s, &closed, &rebased), 1);

        // Never over an operator's state: the driver does not rebase onto a disabled v6.
        let disabled = snap(6, CircuitState::Disabled, None);
        let mut s = diverged();
        s.note_read(0, P, &disabled);
        assert_eq!(write(&mut s, &disabled, &rebased), 1);

        // Nor onto a snapshot two versions back: a rebase is its direct successor.
        let older = snap(5, CircuitState::Closed, None);
        let mut s = diverged();
        s.note_read(0, P, &older);
        assert_eq!(write(&mut s, &older, &rebased), 1);
    }

    /// Seeds 91195, 66620, 91283: the rebase of [`an_open_deadline_rebased_at_the_breakers_own_version_descends_from_what_it_replaced`]
    /// made by a reconcile read, then a local transition (v8 half-open) before the write: the
    /// write is v8, not the rebased v7, so only the reconcile read can attribute it.
    #[test]
    fn a_rebase_made_by_a_reconcile_read_is_attributed_before_later_transitions() {
        let closed = snap(6, CircuitState::Closed, None);
        let half_open = snap(8, CircuitState::HalfOpen, None);
        let step = |s: &mut State| {
            let track = &mut s.slots[0].tracks[0];
            track.path.push((8, CircuitState::HalfOpen));
            track.version = 8;
            track.state = Some(CircuitState::HalfOpen);
        };
        // Before: the read alone leaves the write of v8 over v6 unattributed (a false report).
        let mut s = diverged();
        s.note_read(0, P, &closed);
        step(&mut s);
        assert_eq!(write(&mut s, &closed, &half_open), 1);
        // The reply reached the driver and the breaker is still at v7: rebased onto v6.
        let mut s = diverged();
        s.note_read(0, P, &closed);
        s.note_reconcile_read(0, P, &closed);
        s.settle_rebase(0, 0, 7);
        step(&mut s);
        assert_eq!(write(&mut s, &closed, &half_open), 0, "{:#?}", s.history);
        // The breaker's version changed (it restored v6): no rebase; judged as before.
        let mut s = diverged();
        s.note_reconcile_read(0, P, &closed);
        s.settle_rebase(0, 0, 6);
        step(&mut s);
        assert_eq!(write(&mut s, &closed, &half_open), 1);
        // Never onto an operator's state, nor two versions back.
        for stored in [
            snap(6, CircuitState::Disabled, None),
            snap(5, CircuitState::Closed, None),
        ] {
            let mut s = diverged();
            s.note_read(0, P, &stored);
            s.note_reconcile_read(0, P, &stored);
            s.settle_rebase(0, 0, 7);
            step(&mut s);
            assert_eq!(write(&mut s, &stored, &half_open), 1, "{stored:?}");
        }
    }

    /// Seed 53338: the worker adopted the stored v5 open over its own unstored v5 closed
    /// (no version change shows) and then took a Python half_open as v6 and closed as v7,
    /// all before the simulator looked. Its compare-and-set named v5 as its base: the
    /// adoption is attributed at the write, but only of a snapshot handed to it, over a
    /// sibling on its path.
    #[test]
    fn a_same_version_adoption_unseen_before_later_steps_is_attributed_at_the_write() {
        let fresh = || {
            let mut s = State::new(Rng::new(0), 1, vec![P.to_owned()]);
            s.slots[0].alive = true;
            let mut track = Track::fresh();
            track.set_base(Base::Known(SnapId::of(&snap(
                4,
                CircuitState::HalfOpen,
                None,
            ))));
            track.path = vec![
                (5, CircuitState::Closed),
                (6, CircuitState::HalfOpen),
                (7, CircuitState::Closed),
            ];
            track.version = 7;
            track.state = Some(CircuitState::Closed);
            s.slots[0].tracks = vec![track];
            s
        };
        let open = snap(5, CircuitState::Open, Some(1_000));
        let closed = snap(7, CircuitState::Closed, None);
        let v = |version| Some(Revision { epoch: 0, version });
        let mut s = fresh();
        s.note_read(0, P, &open);
        assert_eq!(
            write_from(&mut s, &open, v(5), &closed),
            0,
            "{:#?}",
            s.history
        );
        assert_eq!(
            s.slots[0].tracks[0].path,
            vec![(6, CircuitState::HalfOpen), (7, CircuitState::Closed)]
        );
        // Never handed v5 open, or naming its old base: a write over a decision it never saw.
        let mut s = fresh();
        assert_eq!(write_from(&mut s, &open, v(5), &closed), 1);
        let mut s = fresh();
        s.note_read(0, P, &open);
        assert_eq!(write_from(&mut s, &open, v(4), &closed), 1);
        // Its own v5 was stored (not on its path): the stored v5 open is another branch.
        let mut s = fresh();
        s.slots[0].tracks[0].path.remove(0);
        s.note_read(0, P, &open);
        assert_eq!(write_from(&mut s, &open, v(5), &closed), 1);
    }

    /// Seeds 3548 and 12059 (and nine more): a message from before an override, delayed or
    /// duplicated, carries the version the breaker reaches later in the override's epoch.
    /// The driver never adopts a revision below its base, so it is not what the breaker took.
    #[test]
    fn a_candidate_from_an_earlier_epoch_is_never_taken_for_an_adoption() {
        let stale = SnapId {
            epoch: 5,
            ..SnapId::of(&snap(3, CircuitState::HalfOpen, None))
        };
        let mut current = snap(3, CircuitState::Open, None);
        current.epoch = 9;
        let fresh = |s: &mut State| {
            let mut track = Track::fresh();
            track.set_base(Base::Known(SnapId::of(&current)));
            track.version = 3;
            track.state = Some(CircuitState::Open);
            track.push(Candidate::Snap(stale.clone()));
            s.slots[0].tracks = vec![track];
        };
        let mut s = diverged();
        fresh(&mut s);
        // Its open v3 reads half-open once the recovery timeout is due: no restore.
        s.restored(0, 0, 3, CircuitState::HalfOpen);
        assert_eq!(s.slots[0].tracks[0].base, Base::Known(SnapId::of(&current)));
        // A Python `opened` makes it v4 by itself; a stale v4 is not what it adopted.
        s.slots[0].tracks[0].push(Candidate::Snap(SnapId {
            epoch: 5,
            ..SnapId::of(&snap(4, CircuitState::Disabled, None))
        }));
        s.slots[0].tracks[0].push(Candidate::Python(CircuitState::Open));
        s.resolve(0, 0, 4, Some(CircuitState::Open));
        let track = &s.slots[0].tracks[0];
        assert_eq!(track.base, Base::Known(SnapId::of(&current)));
        assert_eq!(track.path, vec![(4, CircuitState::Open)]);

        // The same snapshot in the breaker's own epoch is a restore.
        let mut s = diverged();
        fresh(&mut s);
        let mut same = snap(3, CircuitState::HalfOpen, None);
        same.epoch = 9;
        s.slots[0].tracks[0].push(Candidate::Snap(SnapId::of(&same)));
        s.restored(0, 0, 3, CircuitState::HalfOpen);
        assert_eq!(s.slots[0].tracks[0].base, Base::Known(SnapId::of(&same)));
    }
}
