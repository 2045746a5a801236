//! The packed state word: everything admission must see atomically, in one `AtomicU64`.
//!
//! ```text
//!  63                                17  16   15   14  12  11          0
//! +------------------------------------+----+----+------+--------------+
//! |             version (47)           |mode|  W | state| slots (12)   |
//! +------------------------------------+----+----+------+--------------+
//! ```
//!
//! * `slots`: in half-open, the probes that may still be admitted (local slots in
//!   `ProbeMode::Local`, granted credits in `ProbeMode::Granted`); zero otherwise. Taking or
//!   returning one is a CAS on the whole word, so a slot can never leak into another version.
//! * `state`: the `CircuitState`.
//! * `W`: a transition is being written. Whoever sets it (by CAS from a word without it) is
//!   the only writer of the word and of the side fields (open deadline, counters) until it
//!   publishes the next word with a plain release store. Everything else that changes the word
//!   does so by CAS from a value without `W`, so it cannot interleave with a transition.
//! * `mode`: the probe mode.
//! * `version`: bumped by every local transition; set by `restore` and `apply_remote`.
//!
//! Readers that need side fields (the open deadline, snapshot data) use it as a seqlock: load
//! the word, read the fields, load the word again and retry if it changed.

use flexiai_events::CircuitState;

use crate::ProbeMode;

const SLOT_BITS: u32 = 12;
pub(crate) const SLOT_MAX: u64 = (1 << SLOT_BITS) - 1;
const STATE_SHIFT: u32 = 12;
const STATE_MASK: u64 = 0b111;
const WRITING: u64 = 1 << 15;
const MODE_GRANTED: u64 = 1 << 16;
const VERSION_SHIFT: u32 = 17;

/// Highest version a breaker can hold (2^47 - 1). At a million transitions a second it takes
/// four years to reach; past it the version saturates.
pub const MAX_VERSION: u64 = (1 << (64 - VERSION_SHIFT)) - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Word(pub(crate) u64);

impl Word {
    #[inline]
    pub(crate) fn new(version: u64, state: CircuitState, mode: ProbeMode, slots: u64) -> Self {
        let mode_bit = match mode {
            ProbeMode::Local => 0,
            ProbeMode::Granted => MODE_GRANTED,
        };
        Word(
            (version.min(MAX_VERSION) << VERSION_SHIFT)
                | mode_bit
                | (state_code(state) << STATE_SHIFT)
                | slots.min(SLOT_MAX),
        )
    }

    #[inline]
    pub(crate) fn version(self) -> u64 {
        self.0 >> VERSION_SHIFT
    }

    #[inline]
    pub(crate) fn state(self) -> CircuitState {
        match (self.0 >> STATE_SHIFT) & STATE_MASK {
            0 => CircuitState::Closed,
            1 => CircuitState::Open,
            2 => CircuitState::HalfOpen,
            3 => CircuitState::ForcedOpen,
            _ => CircuitState::Disabled,
        }
    }

    #[inline]
    pub(crate) fn is_closed(self) -> bool {
        (self.0 >> STATE_SHIFT) & STATE_MASK == 0
    }

    /// Whether this word has `ticket`'s version and no transition is being written (the
    /// other fields may differ).
    #[inline]
    pub(crate) fn same_version_unwritten(self, ticket: Word) -> bool {
        (self.0 ^ ticket.0) >> VERSION_SHIFT == 0 && !self.writing()
    }

    #[inline]
    pub(crate) fn slots(self) -> u64 {
        self.0 & SLOT_MAX
    }

    #[inline]
    pub(crate) fn writing(self) -> bool {
        self.0 & WRITING != 0
    }

    #[inline]
    pub(crate) fn mode(self) -> ProbeMode {
        if self.0 & MODE_GRANTED != 0 {
            ProbeMode::Granted
        } else {
            ProbeMode::Local
        }
    }

    #[inline]
    pub(crate) fn with_writing(self) -> Self {
        Word(self.0 | WRITING)
    }

    #[inline]
    pub(crate) fn with_slots(self, slots: u64) -> Self {
        Word((self.0 & !SLOT_MAX) | slots.min(SLOT_MAX))
    }

    #[inline]
    pub(crate) fn with_mode(self, mode: ProbeMode) -> Self {
        Word::new(self.version(), self.state(), mode, self.slots()).with_flags_of(self)
    }

    fn with_flags_of(self, other: Word) -> Self {
        Word(self.0 | (other.0 & WRITING))
    }
}

#[inline]
const fn state_code(state: CircuitState) -> u64 {
    match state {
        CircuitState::Closed => 0,
        CircuitState::Open => 1,
        CircuitState::HalfOpen => 2,
        CircuitState::ForcedOpen => 3,
        CircuitState::Disabled => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_saturate() {
        for state in CircuitState::ALL {
            for mode in [ProbeMode::Local, ProbeMode::Granted] {
                let w = Word::new(12345, state, mode, 7);
                assert_eq!(w.state(), state);
                assert_eq!(w.mode(), mode);
                assert_eq!(w.version(), 12345);
                assert_eq!(w.slots(), 7);
                assert!(!w.writing());
                assert!(w.with_writing().writing());
                assert_eq!(w.with_slots(3).slots(), 3);
                assert_eq!(w.with_slots(3).version(), 12345);
                assert_eq!(w.is_closed(), state == CircuitState::Closed);
            }
        }
        let w = Word::new(u64::MAX, CircuitState::Open, ProbeMode::Local, u64::MAX);
        assert_eq!(w.version(), MAX_VERSION);
        assert_eq!(w.slots(), SLOT_MAX);
        assert_eq!(w.state(), CircuitState::Open);
        let g = w.with_writing().with_mode(ProbeMode::Granted);
        assert!(g.writing());
        assert_eq!(g.mode(), ProbeMode::Granted);
    }
}
