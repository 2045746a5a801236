//! The vocabulary every flexiai-rs crate speaks.
//!
//! A fleet of workers shares circuit-breaker state by exchanging two kinds of messages:
//! a [`CircuitBreakerEvent`] says that something happened to one provider's breaker on one
//! worker (it opened, closed, went half-open, or recorded outcomes), and a
//! [`StateUpdateEvent`] carries a whole [`BreakerSnapshot`]. Both are wrapped in [`Event`]
//! for the wire. The shapes follow the Python FlexiAI v0.5 format field for field, so the
//! JSON codec in `flexiai-serde` can share a channel with Python workers; where Python used a
//! free-form dict, this crate has typed fields plus an `extra` map that keeps whatever a newer
//! worker added, so nothing is lost on a round trip.
//!
//! This crate only defines data. It does no I/O and knows nothing about Redis or breakers.
//!
//! ```
//! use flexiai_events::{CircuitBreakerEvent, CircuitState, EventType, WorkerId};
//!
//! let worker = WorkerId::new("web-1:4242:1730000000000")?;
//! let event = CircuitBreakerEvent::transition("openai", worker, CircuitState::Open, 7);
//! assert_eq!(event.event_type, EventType::Opened);
//! assert_eq!(event.metadata.version, Some(7));
//! # Ok::<(), flexiai_events::EventError>(())
//! ```

mod error;
mod event;
mod snapshot;
mod state;
mod timestamp;
mod worker;

#[cfg(feature = "arbitrary")]
pub mod arbitrary;

pub use error::EventError;
pub use event::{CircuitBreakerEvent, Event, EventMetadata, EventType, StateUpdateEvent};
pub use snapshot::{BreakerSnapshot, Revision};
pub use state::CircuitState;
pub use timestamp::Timestamp;
pub use worker::WorkerId;

/// Free-form JSON values kept in the `extra` maps for forward compatibility.
pub use serde_json::Value as ExtraValue;

/// Longest provider name accepted on the wire, in bytes.
///
/// Provider names become Redis key suffixes, so they are bounded like any other key part.
pub const MAX_PROVIDER_NAME_LEN: usize = 256;

/// Checks that `name` can be used as a provider name: non-empty, at most
/// [`MAX_PROVIDER_NAME_LEN`] bytes, and free of control characters and whitespace.
///
/// ```
/// assert!(flexiai_events::validate_provider_name("openai").is_ok());
/// assert!(flexiai_events::validate_provider_name("").is_err());
/// ```
pub fn validate_provider_name(name: &str) -> Result<(), EventError> {
    if name.is_empty() {
        return Err(EventError::InvalidProviderName {
            reason: "must not be empty",
        });
    }
    if name.len() > MAX_PROVIDER_NAME_LEN {
        return Err(EventError::InvalidProviderName {
            reason: "longer than 256 bytes",
        });
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(EventError::InvalidProviderName {
            reason: "contains whitespace or control characters",
        });
    }
    Ok(())
}
