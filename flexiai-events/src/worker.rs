use std::fmt;
use std::process;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::EventError;
use crate::timestamp::Timestamp;

/// Identifies one worker process in a fleet: `{hostname}:{pid}:{unix_millis}`.
///
/// The start-up millis make the id unique even when a pid is reused after a restart. Ids read
/// from the wire are only checked for sanity (non-empty, at most 256 bytes, no control
/// characters), because Python workers and operators may use other shapes.
///
/// ```
/// use flexiai_events::WorkerId;
///
/// let me = WorkerId::generate();
/// assert_eq!(me.as_str().split(':').count(), 3);
/// assert!(WorkerId::new("").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkerId(String);

impl WorkerId {
    /// Longest accepted id, in bytes.
    pub const MAX_LEN: usize = 256;

    /// Generates this process's id from its hostname, pid and the current time.
    pub fn generate() -> Self {
        let host = gethostname::gethostname();
        let host = host.to_string_lossy();
        let host: String = host
            .chars()
            .filter(|c| !c.is_control() && !c.is_whitespace())
            .take(200)
            .collect();
        let host = if host.is_empty() { "unknown" } else { &host };
        Self(format!(
            "{host}:{}:{}",
            process::id(),
            Timestamp::now().unix_millis()
        ))
    }

    /// Wraps an id, checking that it is non-empty, short enough and free of control characters.
    pub fn new(id: impl Into<String>) -> Result<Self, EventError> {
        let id = id.into();
        if id.is_empty() {
            return Err(EventError::InvalidWorkerId {
                reason: "must not be empty",
            });
        }
        if id.len() > Self::MAX_LEN {
            return Err(EventError::InvalidWorkerId {
                reason: "longer than 256 bytes",
            });
        }
        if id.chars().any(char::is_control) {
            return Err(EventError::InvalidWorkerId {
                reason: "contains control characters",
            });
        }
        Ok(Self(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for WorkerId {
    type Err = EventError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for WorkerId {
    type Error = EventError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<WorkerId> for String {
    fn from(id: WorkerId) -> Self {
        id.0
    }
}

impl AsRef<str> for WorkerId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_have_host_pid_and_millis() {
        let id = WorkerId::generate();
        let parts: Vec<&str> = id.as_str().rsplitn(3, ':').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[1], process::id().to_string());
        let millis: i64 = parts[0].parse().unwrap();
        assert!((millis - Timestamp::now().unix_millis()).abs() < 60_000);
        assert!(!parts[2].is_empty());
    }

    #[test]
    fn bad_ids_are_rejected_on_the_wire_too() {
        assert!(WorkerId::new("x".repeat(257)).is_err());
        assert!(WorkerId::new("a\nb").is_err());
        assert!(serde_json::from_str::<WorkerId>("\"\"").is_err());
        assert_eq!(
            serde_json::from_str::<WorkerId>("\"h:1:2\"")
                .unwrap()
                .as_str(),
            "h:1:2"
        );
    }
}
