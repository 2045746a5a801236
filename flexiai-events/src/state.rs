use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::EventError;
use crate::error::truncate_for_message;

/// The state of one provider's circuit breaker.
///
/// The first three are the classic breaker states; the last two are manual overrides that an
/// operator sets and only an operator clears. On the wire they are lowercase snake case
/// (`"half_open"`, `"forced_open"`), as in the Python original.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Calls flow; outcomes are counted.
    Closed,
    /// Calls are rejected until the open period ends.
    Open,
    /// A limited number of trial calls decide whether to close or reopen.
    HalfOpen,
    /// Isolated by an operator: every call is rejected until reset.
    ForcedOpen,
    /// Bypassed by an operator: every call is allowed and nothing is counted.
    Disabled,
}

impl CircuitState {
    /// All states, in declaration order.
    pub const ALL: [CircuitState; 5] = [
        CircuitState::Closed,
        CircuitState::Open,
        CircuitState::HalfOpen,
        CircuitState::ForcedOpen,
        CircuitState::Disabled,
    ];

    /// The wire name, e.g. `"half_open"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
            CircuitState::ForcedOpen => "forced_open",
            CircuitState::Disabled => "disabled",
        }
    }

    /// Whether a breaker in this state rejects ordinary calls.
    ///
    /// ```
    /// use flexiai_events::CircuitState;
    /// assert!(CircuitState::ForcedOpen.rejects_calls());
    /// assert!(!CircuitState::HalfOpen.rejects_calls());
    /// ```
    pub const fn rejects_calls(self) -> bool {
        matches!(self, CircuitState::Open | CircuitState::ForcedOpen)
    }
}

impl fmt::Display for CircuitState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CircuitState {
    type Err = EventError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CircuitState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| EventError::UnknownName {
                kind: "circuit state",
                value: truncate_for_message(s),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_from_str_and_serde() {
        for state in CircuitState::ALL {
            assert_eq!(state.as_str().parse::<CircuitState>(), Ok(state));
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
        }
    }

    #[test]
    fn unknown_names_are_rejected() {
        let err = "melted".parse::<CircuitState>().unwrap_err();
        assert_eq!(err.to_string(), "unknown circuit state \"melted\"");
    }
}
