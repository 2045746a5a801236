//! What a breaker tells the world: a [`Transition`] for every state change it makes and an
//! [`OutcomeEvent`] for every outcome it records, delivered inline to each
//! [`BreakerObserver`]. [`QueuedObserver`] moves a slow observer off the caller's thread.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use flexiai_events::{CircuitState, Timestamp};

use crate::error::BreakerError;

/// A process-unique number for one breaker, carried by its events so that one observer can
/// serve many breakers (see [`CircuitBreaker::id`](crate::CircuitBreaker::id)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BreakerId(pub(crate) u64);

impl BreakerId {
    /// The number itself.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for BreakerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "breaker#{}", self.0)
    }
}

/// Why a breaker changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransitionReason {
    /// Closed to open: the consecutive-failure threshold was reached.
    FailureThreshold,
    /// Closed to open: the failure rate over the sliding window reached its threshold.
    FailureRate,
    /// Closed to open: failures reported by other workers
    /// ([`absorb_remote_outcomes`](crate::CircuitBreaker::absorb_remote_outcomes)) reached the
    /// threshold.
    RemoteFailures,
    /// Open to half-open: the open period elapsed.
    RecoveryTimeoutElapsed,
    /// Half-open to closed: enough trial calls succeeded.
    ProbeSucceeded,
    /// Half-open to open: a trial call failed.
    ProbeFailed,
    /// An operator isolated the provider ([`force_open`](crate::CircuitBreaker::force_open)).
    ManualForceOpen,
    /// An operator bypassed the breaker ([`disable`](crate::CircuitBreaker::disable)).
    ManualDisable,
    /// An operator reset the breaker to closed ([`reset`](crate::CircuitBreaker::reset)).
    ManualReset,
    /// Closed, half-open or open to open: the provider asked not to be called for a while
    /// (a `Retry-After`), through [`open_for`](crate::CircuitBreaker::open_for). The
    /// transition's `open_for` is the period asked for (after clamping).
    RetryAfter,
}

impl TransitionReason {
    /// Whether an operator asked for this transition.
    pub const fn is_manual(self) -> bool {
        matches!(
            self,
            TransitionReason::ManualForceOpen
                | TransitionReason::ManualDisable
                | TransitionReason::ManualReset
        )
    }
}

/// One state change made by this worker's breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The breaker that changed.
    pub breaker: BreakerId,
    /// The state it left.
    pub from: CircuitState,
    /// The state it entered.
    pub to: CircuitState,
    /// The version this transition created (the previous version plus one).
    pub version: u64,
    /// Why.
    pub reason: TransitionReason,
    /// When, by this worker's clock.
    pub at: Timestamp,
    /// For a transition to `Open`: how long the open period lasts.
    pub open_for: Option<Duration>,
}

/// The result of one admitted call, as the breaker counted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The call succeeded (or failed in a way the classifier does not count).
    Success,
    /// The call failed, or was slower than the slow-call threshold.
    Failure,
}

/// One recorded outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutcomeEvent {
    /// The breaker that recorded it.
    pub breaker: BreakerId,
    /// Success or failure, after slow-call promotion.
    pub outcome: Outcome,
    /// Whether a success was turned into a failure because the call was slow.
    pub slow: bool,
    /// Whether the outcome fed the breaker's state machine. It does not when the breaker is
    /// disabled, or when the state changed while the call ran (its permit was issued under an
    /// older version). Only counted outcomes should be shared with the fleet.
    pub counted: bool,
    /// The state the call was admitted in.
    pub state: CircuitState,
    /// The version the call was admitted under.
    pub version: u64,
    /// How long the call took, when the breaker timed it (slow-call detection on).
    pub elapsed: Option<Duration>,
}

/// Receives a breaker's events.
///
/// Both methods are called inline, on the thread that caused the event (the caller of
/// `try_acquire`, of a permit's outcome or of a manual control), after the breaker's state is
/// updated and outside any critical section. They must therefore return quickly and must not
/// block or panic; wrap anything slower in a [`QueuedObserver`]. Transitions of one breaker
/// are delivered in version order unless two threads race to report consecutive ones.
pub trait BreakerObserver: Send + Sync {
    /// A state change made by this worker (never one applied from a remote snapshot).
    fn on_transition(&self, transition: &Transition) {
        let _ = transition;
    }

    /// An outcome recorded by this worker (never one absorbed from other workers).
    fn on_outcome(&self, outcome: &OutcomeEvent) {
        let _ = outcome;
    }

    /// Whether this observer wants [`on_outcome`](Self::on_outcome) calls (default `true`).
    /// An observer that answers `false` hears only transitions, and keeps the closed-state
    /// success on the inline fast path, as if no observer were attached. Read when the
    /// observer is attached.
    fn wants_outcomes(&self) -> bool {
        true
    }
}

/// An observer that ignores everything; handy in tests and benchmarks.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopObserver;

impl BreakerObserver for NoopObserver {}

enum Message {
    Transition(u64, Transition),
    Outcome(OutcomeEvent),
}

/// Counters of a [`QueuedObserver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueStats {
    /// Outcome events dropped because the queue was full.
    pub dropped_outcomes: u64,
    /// Transitions not delivered because a later transition of the same breaker superseded
    /// them while the queue was full. The latest transition of each breaker is never dropped.
    pub superseded_transitions: u64,
    /// Events handed to the wrapped observer.
    pub delivered: u64,
}

#[derive(Default)]
struct Shared {
    dropped_outcomes: AtomicU64,
    superseded_transitions: AtomicU64,
    delivered: AtomicU64,
    /// Transitions that did not fit in the queue, at most one per breaker (the latest).
    overflow: Mutex<Vec<(u64, Transition)>>,
    overflow_pending: AtomicBool,
    seq: AtomicU64,
}

/// Makes a slow observer safe to attach: events go into a bounded queue drained by a
/// dedicated thread that calls the wrapped observer.
///
/// Callers never wait on the wrapped observer. When the queue is full, outcome events are
/// dropped (and counted), and transitions are set aside, one per breaker, the newest
/// replacing an older one (counted as superseded): the latest transition of every breaker is
/// always delivered, and a transition is never delivered after a newer one of the same
/// breaker. The thread stops, after delivering what is queued, when the `QueuedObserver` is
/// dropped.
///
/// ```
/// use std::sync::Arc;
/// use flexiai_breaker::{CircuitBreaker, BreakerConfig, NoopObserver, QueuedObserver};
///
/// let breaker = CircuitBreaker::new("openai", BreakerConfig::default())?;
/// let queued = Arc::new(QueuedObserver::new(Arc::new(NoopObserver), 1024)?);
/// breaker.add_observer(queued.clone());
/// # Ok::<(), flexiai_breaker::BreakerError>(())
/// ```
pub struct QueuedObserver {
    tx: Option<SyncSender<Message>>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for QueuedObserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueuedObserver")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// How often the drainer looks at set-aside transitions when the queue is idle.
const IDLE_POLL: Duration = Duration::from_millis(20);

impl QueuedObserver {
    /// Wraps `inner` behind a queue of `capacity` events (at least 1) and starts the thread.
    pub fn new(inner: Arc<dyn BreakerObserver>, capacity: usize) -> Result<Self, BreakerError> {
        let (tx, rx) = mpsc::sync_channel(capacity.max(1));
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("flexiai-breaker-observer".into())
            .spawn(move || drain(&rx, inner.as_ref(), &thread_shared))
            .map_err(BreakerError::ObserverThread)?;
        Ok(Self {
            tx: Some(tx),
            shared,
            thread: Some(thread),
        })
    }

    /// Drop and delivery counts so far.
    pub fn stats(&self) -> QueueStats {
        QueueStats {
            dropped_outcomes: self.shared.dropped_outcomes.load(Ordering::Relaxed),
            superseded_transitions: self.shared.superseded_transitions.load(Ordering::Relaxed),
            delivered: self.shared.delivered.load(Ordering::Relaxed),
        }
    }

    fn set_aside(&self, seq: u64, transition: Transition) {
        let mut overflow = self
            .shared
            .overflow
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = overflow
            .iter_mut()
            .find(|(_, t)| t.breaker == transition.breaker)
        {
            *slot = (seq, transition);
            self.shared
                .superseded_transitions
                .fetch_add(1, Ordering::Relaxed);
        } else {
            overflow.push((seq, transition));
        }
        self.shared.overflow_pending.store(true, Ordering::Release);
    }
}

impl BreakerObserver for QueuedObserver {
    fn on_transition(&self, transition: &Transition) {
        let seq = self.shared.seq.fetch_add(1, Ordering::Relaxed);
        let Some(tx) = &self.tx else { return };
        match tx.try_send(Message::Transition(seq, *transition)) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => self.set_aside(seq, *transition),
        }
    }

    fn on_outcome(&self, outcome: &OutcomeEvent) {
        let Some(tx) = &self.tx else { return };
        if let Err(TrySendError::Full(_)) = tx.try_send(Message::Outcome(*outcome)) {
            self.shared.dropped_outcomes.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for QueuedObserver {
    fn drop(&mut self) {
        // Closing the channel ends the drainer once it has delivered what is queued.
        self.tx = None;
        if let Some(thread) = self.thread.take()
            && thread.thread().id() != thread::current().id()
        {
            let _ = thread.join();
        }
    }
}

fn drain(rx: &Receiver<Message>, inner: &dyn BreakerObserver, shared: &Shared) {
    // Newest transition sequence delivered per breaker, so a set-aside transition that
    // overtook queued ones is never followed by an older one.
    let mut latest: HashMap<crate::BreakerId, u64> = HashMap::new();
    let mut deliver_transition = |seq: u64, t: &Transition| {
        let newest = latest.entry(t.breaker).or_insert(0);
        if seq < *newest {
            shared
                .superseded_transitions
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        *newest = seq;
        inner.on_transition(t);
        shared.delivered.fetch_add(1, Ordering::Relaxed);
    };
    loop {
        let disconnected = match rx.recv_timeout(IDLE_POLL) {
            Ok(Message::Transition(seq, t)) => {
                deliver_transition(seq, &t);
                false
            }
            Ok(Message::Outcome(o)) => {
                inner.on_outcome(&o);
                shared.delivered.fetch_add(1, Ordering::Relaxed);
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        if shared.overflow_pending.swap(false, Ordering::Acquire) {
            let pending = std::mem::take(
                &mut *shared
                    .overflow
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            for (seq, t) in &pending {
                deliver_transition(*seq, t);
            }
        }
        if disconnected {
            return;
        }
    }
}
