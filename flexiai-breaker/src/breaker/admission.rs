//! Admission: [`CircuitBreaker::try_acquire`], probe slots taken and given back.

use crate::sync::{Ordering, fence};
use std::time::Duration;

use flexiai_events::CircuitState;

use super::{CircuitBreaker, ProbeMode, branch_tag, pause, ticket_probe_mode};
use crate::clock::duration_to_nanos;
use crate::error::Rejected;
use crate::observer::TransitionReason;
use crate::permit::{NOT_TIMED, Permit};
use crate::word::{SLOT_MAX, Word};

/// [`CircuitBreaker::acquire_slow`]'s answer, packed into two words: a permit's ticket (`W`
/// clear, as in every ticket) and start time, or a rejection: `W` set, the state, slot count 1
/// if there is a retry-after, and the retry-after in nanoseconds.
#[derive(Clone, Copy)]
struct SlowAdmission {
    word: Word,
    extra: u64,
}

impl SlowAdmission {
    #[inline]
    fn encode(result: Result<Permit<'_>, Rejected>) -> Self {
        match result {
            Ok(permit) => {
                let admission = SlowAdmission {
                    word: permit.ticket,
                    extra: permit.started,
                };
                // Rebuilt by `decode`: nothing to give back here.
                std::mem::forget(permit);
                admission
            }
            Err(Rejected { state, retry_after }) => SlowAdmission {
                word: Word::new(0, state, ProbeMode::Local, u64::from(retry_after.is_some()))
                    .with_writing(),
                extra: retry_after.map_or(0, duration_to_nanos),
            },
        }
    }

    #[inline(always)]
    fn decode(self, breaker: &CircuitBreaker) -> Result<Permit<'_>, Rejected> {
        if self.word.writing() {
            Err(Rejected {
                state: self.word.state(),
                retry_after: (self.word.slots() != 0).then(|| Duration::from_nanos(self.extra)),
            })
        } else {
            Ok(Permit {
                breaker,
                ticket: self.word,
                started: self.extra,
            })
        }
    }
}

impl CircuitBreaker {
    #[inline]
    fn started(&self) -> u64 {
        match self.limits.slow_nanos {
            Some(_) => self.now_nanos(),
            None => NOT_TIMED,
        }
    }

    /// Asks to make one call.
    ///
    /// Closed or disabled: always admitted. Open: rejected with the time left, unless the
    /// open period is over, in which case the breaker moves to half-open itself and this call
    /// may be the first trial call. Half-open: admitted while a probe slot (or, in
    /// [`ProbeMode::Granted`], a credit) is free. Forced open: rejected.
    ///
    /// Lock-free and allocation-free; in the closed state it is one atomic load and one
    /// uncontended counter increment.
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_>, Rejected> {
        let w = self.load();
        // A transition being written from closed is ordered after this admission.
        if w.is_closed() {
            self.stripes.add(|s| &s.admitted, 1);
            return Ok(self.permit(w.version(), CircuitState::Closed, None));
        }
        self.acquire_slow(w).decode(self)
    }

    /// A permit; `probe` is the mode and the branch tag ([`Self::branch_now`]) of a trial
    /// call.
    #[inline]
    fn permit(
        &self,
        version: u64,
        state: CircuitState,
        probe: Option<(ProbeMode, u64)>,
    ) -> Permit<'_> {
        let ticket = match probe {
            Some((mode, tag)) => Word::new(version, state, mode, tag),
            None => Word::new(version, state, ProbeMode::Local, 0),
        };
        Permit {
            breaker: self,
            ticket,
            started: self.started(),
        }
    }

    fn reject(&self, state: CircuitState, retry_after: Option<Duration>) -> Rejected {
        self.stripes.add(|s| &s.rejected, 1);
        Rejected { state, retry_after }
    }

    /// Every state but closed, out of line. Returns its decision in two registers rather than
    /// a `Result` in memory, so that the inlined fast path's permit is not merged with it
    /// through the stack.
    #[cold]
    #[inline(never)]
    fn acquire_slow(&self, w: Word) -> SlowAdmission {
        SlowAdmission::encode(self.acquire_other(w))
    }

    #[inline]
    fn acquire_other(&self, mut w: Word) -> Result<Permit<'_>, Rejected> {
        loop {
            match w.state() {
                CircuitState::Closed | CircuitState::Disabled => {
                    self.stripes.add(|s| &s.admitted, 1);
                    return Ok(self.permit(w.version(), w.state(), None));
                }
                CircuitState::ForcedOpen => return Err(self.reject(CircuitState::ForcedOpen, None)),
                CircuitState::Open => {
                    if w.writing() {
                        return Err(self.reject(CircuitState::Open, None));
                    }
                    let Some(deadline) = self.read_deadline(w) else {
                        w = self.load();
                        continue;
                    };
                    let now = self.now_nanos();
                    if now < deadline {
                        let left = Duration::from_nanos(deadline - now);
                        return Err(self.reject(CircuitState::Open, Some(left)));
                    }
                    let entered = self.transition_from(
                        w.version(),
                        CircuitState::Open,
                        CircuitState::HalfOpen,
                        TransitionReason::RecoveryTimeoutElapsed,
                        true,
                    );
                    if let Some((t, true)) = entered {
                        // The first probe slot was taken inside the transition itself (only
                        // ever a local one: see `commit_with`). The branch is read after: a
                        // restore in between labels the probe with the new branch, where it
                        // counts as before branches existed, never with a dropped one, where
                        // it would hold its slot for good.
                        self.stripes.add(|s| &s.admitted, 1);
                        let tag = self.branch_now();
                        return Ok(self.permit(
                            t.version,
                            CircuitState::HalfOpen,
                            Some((ProbeMode::Local, tag)),
                        ));
                    }
                    w = self.load();
                    if w.writing() {
                        // Someone else's transition is being written; this call is ordered
                        // before it.
                        return Err(self.reject(w.state(), None));
                    }
                }
                CircuitState::HalfOpen => {
                    if w.writing() || w.slots() == 0 {
                        return Err(self.reject(CircuitState::HalfOpen, None));
                    }
                    // Counted before the slot is taken, so a probe holding a slot is always
                    // in the count (a lost race only delays the holder's next grant).
                    if !self.probes_in_flight.add(w.version()) {
                        w = self.load();
                        continue;
                    }
                    let next = w.with_slots(w.slots() - 1);
                    match self.word.0.compare_exchange_weak(
                        w.0,
                        next.0,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => {
                            self.stripes.add(|s| &s.admitted, 1);
                            // Read after the slot is taken, for the reason above.
                            let tag = self.branch_now();
                            return Ok(self.permit(
                                w.version(),
                                CircuitState::HalfOpen,
                                Some((w.mode(), tag)),
                            ));
                        }
                        Err(actual) => {
                            self.probe_done(w.version());
                            w = Word(actual);
                        }
                    }
                }
            }
        }
    }

    /// The tag of the breaker's current branch, for a probe's ticket.
    pub(super) fn branch_now(&self) -> u64 {
        branch_tag(self.branch.load(Ordering::Acquire))
    }

    /// Whether a probe `ticket` was admitted on the current branch (any other ticket is).
    pub(super) fn on_branch(&self, ticket: Word) -> bool {
        ticket.slots() == 0 || ticket.slots() == self.branch_now()
    }

    /// Starts a new branch (under `W`): probes admitted before count in no later period.
    pub(super) fn new_branch(&self) {
        self.branch.fetch_add(1, Ordering::AcqRel);
    }

    /// A trial call of period `version` settled, was given back, or was never admitted.
    pub(super) fn probe_done(&self, version: u64) {
        self.around_transitions(|counts| counts.done(version).then_some(()));
    }

    /// Runs `read` on the probe counts until it finds its period, or until it did not while
    /// no transition ran (the word unchanged and `W` clear around it: a transition moves a
    /// count under `W`, and a miss in the middle of one proves nothing). `None`: no count
    /// holds the period.
    pub(super) fn around_transitions<T>(
        &self,
        read: impl Fn(&crate::counters::ProbeCounts) -> Option<T>,
    ) -> Option<T> {
        let mut spins = 0;
        loop {
            let before = self.load();
            if !before.writing() {
                if let Some(found) = read(&self.probes_in_flight) {
                    return Some(found);
                }
                if self.load() == before {
                    return None;
                }
            }
            pause(&mut spins);
        }
    }

    /// The open deadline belonging to word `w`, or `None` if the word changed meanwhile.
    pub(super) fn read_deadline(&self, w: Word) -> Option<u64> {
        let deadline = self.side.open_until.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        (self.word.0.load(Ordering::Relaxed) == w.0).then_some(deadline)
    }

    /// Gives a probe slot back after an unsettled (or ignored) half-open permit.
    pub(crate) fn release_probe(&self, ticket: Word) {
        if !self.on_branch(ticket) {
            return;
        }
        if let Some(mode) = ticket_probe_mode(ticket) {
            self.return_slot(ticket.version(), mode);
            self.probe_done(ticket.version());
        }
    }

    pub(super) fn return_slot(&self, version: u64, mode: ProbeMode) {
        let cap = match mode {
            ProbeMode::Local => self.limits.half_open_max,
            ProbeMode::Granted => SLOT_MAX,
        };
        let mut w = self.load();
        loop {
            if w.writing()
                || w.version() != version
                || w.state() != CircuitState::HalfOpen
                || w.mode() != mode
                || w.slots() >= cap
            {
                return;
            }
            match self.word.0.compare_exchange_weak(
                w.0,
                w.with_slots(w.slots() + 1).0,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => w = Word(actual),
            }
        }
    }
}
