//! The recorded history of one run: every store write with what it replaced, every state
//! each worker's breaker showed (local transitions and adopted snapshots), every probe,
//! every outcome and outcome report, every operator action with its acknowledgement, and
//! every fault. The invariant checker reads only this.

use std::fmt;

use flexiai_events::{BreakerSnapshot, CircuitState};

/// Who acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Actor {
    /// Worker `slot` in its `incarnation`-th life (a restart is a new incarnation).
    Worker {
        /// The worker's slot, 0-based.
        slot: usize,
        /// How many times this slot was restarted before.
        incarnation: u32,
    },
    /// The operator (`flexiai_sync::override_state`, as `flexiai force-open` runs it).
    Operator,
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Worker { slot, incarnation } => write!(f, "w{slot}.{incarnation}"),
            Actor::Operator => f.write_str("operator"),
        }
    }
}

/// One stored snapshot's identity in a provider's history: version, state and writer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SnapId {
    /// The snapshot's epoch (0 until an operator override starts a new history).
    pub epoch: u64,
    /// The snapshot's version.
    pub version: u64,
    /// Its state.
    pub state: CircuitState,
    /// Its writer's worker id (`updated_by`), empty if none.
    pub by: String,
}

impl SnapId {
    /// The identity of `snapshot`.
    pub fn of(snapshot: &BreakerSnapshot) -> Self {
        Self {
            epoch: snapshot.epoch,
            version: snapshot.version,
            state: snapshot.state,
            by: snapshot
                .updated_by
                .as_ref()
                .map(|w| w.as_str().to_owned())
                .unwrap_or_default(),
        }
    }
}

impl fmt::Display for SnapId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.epoch == 0 {
            write!(f, "v{} {} by {}", self.version, self.state, self.by)
        } else {
            write!(
                f,
                "e{} v{} {} by {}",
                self.epoch, self.version, self.state, self.by
            )
        }
    }
}

/// Where a writer's state came from in the shared history when it wrote.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Base {
    /// It started fresh and has adopted nothing yet.
    Fresh,
    /// It descends from this stored snapshot (adopted it, wrote it, or read it and agreed).
    Known(SnapId),
    /// It adopted something the simulator could not attribute; writes are not judged.
    Unknown,
}

/// A worker's sync mode, as its manager's health reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SyncState {
    /// Not started (or stopped).
    Stopped,
    /// In step with the store and the channel.
    Synced,
    /// Breakers run on their own.
    Degraded,
}

/// One thing that happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A fault started or ended, or a phase changed.
    Fault(String),
    /// A compare-and-set stored `after` over `before` (`None`: nothing was stored).
    StoreWrite {
        /// The writer.
        by: Actor,
        /// The provider.
        provider: String,
        /// What the store held just before.
        before: Option<SnapId>,
        /// What it holds now.
        after: SnapId,
        /// Where the writer's state came from.
        base: Base,
        /// The points (version, state) the writer went through by itself since `base`.
        path: Vec<(u64, CircuitState)>,
    },
    /// The store lost everything (Redis restarted empty).
    StoreWiped,
    /// A worker's breaker made a local transition.
    Transition {
        /// The worker.
        worker: Actor,
        /// The provider.
        provider: String,
        /// Its state before.
        from: CircuitState,
        /// Its state after.
        to: CircuitState,
        /// The version created.
        version: u64,
        /// Why (the breaker's `TransitionReason`).
        reason: String,
    },
    /// A worker's breaker took a state it did not make itself (remote snapshot, restore, or
    /// a Python event): `via` names the source.
    Seen {
        /// The worker.
        worker: Actor,
        /// The provider.
        provider: String,
        /// The version it now has.
        version: u64,
        /// The state it now has, if known.
        state: Option<CircuitState>,
        /// The writer of the adopted snapshot, `python` or `unknown`.
        via: String,
    },
    /// A half-open trial call was admitted.
    ProbeAdmitted {
        /// The worker.
        worker: Actor,
        /// The provider.
        provider: String,
        /// The half-open period's version.
        version: u64,
        /// Whether the worker's manager reported `Synced` at admission.
        synced: bool,
    },
    /// A trial call finished.
    ProbeSettled {
        /// The worker.
        worker: Actor,
        /// The provider.
        provider: String,
        /// The period it was admitted in.
        version: u64,
        /// The index of its [`Record::ProbeAdmitted`] in the history: which probe settled.
        admitted: usize,
    },
    /// A call's outcome as the breaker recorded it.
    Outcome {
        /// The worker.
        worker: Actor,
        /// The provider.
        provider: String,
        /// The version it was admitted under.
        version: u64,
        /// Failure or success.
        failure: bool,
        /// Whether the breaker counted it.
        counted: bool,
    },
    /// A worker published outcome counts labelled with `version`.
    OutcomesPublished {
        /// The worker.
        worker: Actor,
        /// The provider.
        provider: String,
        /// The version label.
        version: Option<u64>,
        /// Failures reported.
        failures: u64,
        /// Successes reported.
        successes: u64,
    },
    /// The operator started an override.
    OperatorAction {
        /// Sequence number of the action.
        id: u32,
        /// The provider.
        provider: String,
        /// The state asked for.
        state: CircuitState,
    },
    /// The override returned success: the operator was told it holds.
    OperatorAck {
        /// The action.
        id: u32,
        /// The provider.
        provider: String,
        /// The state written.
        state: CircuitState,
        /// The version written.
        version: u64,
    },
    /// The override failed (the operator was told so).
    OperatorFailed {
        /// The action.
        id: u32,
        /// The provider.
        provider: String,
        /// The error.
        error: String,
    },
    /// A Python-shaped (unversioned) transition event went on the channel.
    PythonEvent {
        /// The provider.
        provider: String,
        /// `opened`, `closed` or `half_open`.
        event_type: String,
    },
    /// A worker crashed (its in-flight calls vanish with it).
    Crashed {
        /// The worker.
        worker: Actor,
    },
    /// A worker (re)started.
    Started {
        /// The worker.
        worker: Actor,
    },
    /// A worker's store call ended as its manager sees it: answered (`ok`: `Ok`), failed,
    /// or given up on by the manager's operation timeout (a hang, a lost reply).
    BackendCall {
        /// The worker.
        worker: Actor,
        /// The `SyncBackend` method.
        op: &'static str,
        /// Whether the manager got `Ok`.
        ok: bool,
    },
    /// The store granted a provider's probe lock to a worker (the store's view: recorded
    /// whether or not the reply reaches it). The store grants only a lock that is free, so
    /// a grant while another worker's lease was not released means that lease expired.
    LeaseGranted {
        /// The worker.
        worker: Actor,
        /// The provider whose probes the lock rations.
        provider: String,
    },
    /// A worker's manager calls the store about a provider's probe lock (recorded before
    /// any fault applies: a call refused at once was still tried).
    LockCalled {
        /// The worker.
        worker: Actor,
        /// The provider.
        provider: String,
        /// `acquire_lock`, `extend_lock` or `release_lock`.
        op: &'static str,
    },
    /// A worker's manager got an answer to a probe-lock call: what it learned of its lease.
    LockAnswered {
        /// The worker.
        worker: Actor,
        /// The provider.
        provider: String,
        /// The lease is held (an acquire or an extension that kept it).
        held: bool,
    },
    /// The store released a worker's probe lock.
    LeaseReleased {
        /// The worker.
        worker: Actor,
        /// The provider.
        provider: String,
    },
    /// A worker's manager reported a new sync mode (seen before its next store call or
    /// delivery).
    SyncMode {
        /// The worker.
        worker: Actor,
        /// The mode.
        mode: SyncState,
        /// Why, when degraded.
        reason: String,
    },
    /// A worker's subscription reported its connection lost (`Disconnected`) or back
    /// (`Resubscribed`), as the Redis subscriber does.
    Subscription {
        /// The worker.
        worker: Actor,
        /// `true` for `Resubscribed`.
        connected: bool,
    },
    /// Worker slot `slot`'s view of the store got a fault (`on`) or lost its last one: a
    /// partition, flaky calls, message faults or a dropped subscription.
    Impaired {
        /// The slot.
        slot: usize,
        /// Whether some fault is active now.
        on: bool,
    },
    /// A caller got a 429 with `Retry-After` and called `open_for`.
    RetryAfter {
        /// The worker.
        worker: Actor,
        /// The provider.
        provider: String,
        /// What `open_for` returned: the version of the open period it made, or `None`.
        version: Option<u64>,
        /// When the period asked for ends (virtual ms; the `Retry-After` clamped as the
        /// breaker clamps it).
        until_ms: u64,
    },
    /// Every fault healed and every provider is healthy from here on.
    Healed,
    /// A worker's sync mode at the final sample.
    FinalMode {
        /// The worker.
        worker: Actor,
        /// Its mode.
        mode: SyncState,
    },
    /// The final sample, taken at the end of the liveness bound.
    Final {
        /// The worker.
        worker: Actor,
        /// The provider.
        provider: String,
        /// The breaker's state.
        state: CircuitState,
        /// The breaker's version.
        version: u64,
        /// What the store holds.
        stored: Option<SnapId>,
        /// The state every worker is expected in (closed, or the operator's last state).
        expected: CircuitState,
    },
}

impl Record {
    /// The provider this record is about, if any.
    pub fn provider(&self) -> Option<&str> {
        match self {
            Record::StoreWrite { provider, .. }
            | Record::Transition { provider, .. }
            | Record::Seen { provider, .. }
            | Record::ProbeAdmitted { provider, .. }
            | Record::ProbeSettled { provider, .. }
            | Record::Outcome { provider, .. }
            | Record::OutcomesPublished { provider, .. }
            | Record::OperatorAction { provider, .. }
            | Record::OperatorAck { provider, .. }
            | Record::OperatorFailed { provider, .. }
            | Record::PythonEvent { provider, .. }
            | Record::RetryAfter { provider, .. }
            | Record::LeaseGranted { provider, .. }
            | Record::LockCalled { provider, .. }
            | Record::LockAnswered { provider, .. }
            | Record::LeaseReleased { provider, .. }
            | Record::Final { provider, .. } => Some(provider),
            Record::Fault(_)
            | Record::StoreWiped
            | Record::Crashed { .. }
            | Record::Started { .. }
            | Record::BackendCall { .. }
            | Record::SyncMode { .. }
            | Record::Subscription { .. }
            | Record::Impaired { .. }
            | Record::FinalMode { .. }
            | Record::Healed => None,
        }
    }
}

/// A record and when it happened (virtual milliseconds since the run started).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Virtual milliseconds since the start.
    pub at_ms: u64,
    /// What happened.
    pub record: Record,
}

/// Every record of one run, in the order they happened.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// The records.
    pub entries: Vec<Entry>,
}

impl History {
    /// Appends a record.
    pub fn push(&mut self, at_ms: u64, record: Record) {
        self.entries.push(Entry { at_ms, record });
    }

    /// A 64-bit FNV-1a hash of the whole history (every record's debug form and time): two
    /// runs of one seed must give the same value.
    pub fn hash(&self) -> u64 {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for entry in &self.entries {
            let text = format!("{}:{:?}\n", entry.at_ms, entry.record);
            for byte in text.bytes() {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
        hash
    }

    /// The records up to `index` (inclusive) that concern `provider` or no provider, the
    /// last `count` of them: the context of a violation.
    pub fn slice(
        &self,
        index: usize,
        provider: Option<&str>,
        count: usize,
    ) -> Vec<(usize, &Entry)> {
        let mut out: Vec<(usize, &Entry)> = self.entries
            [..=index.min(self.entries.len().saturating_sub(1))]
            .iter()
            .enumerate()
            .rev()
            .filter(|(_, e)| {
                let noise = matches!(e.record, Record::Outcome { .. })
                    || (provider.is_some() && matches!(e.record, Record::BackendCall { .. }));
                !noise
                    && match (provider, e.record.provider()) {
                        (Some(want), Some(have)) => want == have,
                        _ => true,
                    }
            })
            .take(count)
            .collect();
        out.reverse();
        out
    }
}
