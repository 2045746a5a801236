//! Operator controls that reach a whole fleet without being one of its workers.

use std::sync::Arc;

use flexiai_backend::{CasOutcome, SyncBackend, validate_provider};
use flexiai_events::{BreakerSnapshot, CircuitState, Event, Timestamp, WorkerId};

use crate::SyncError;
use crate::driver::transition_event;

/// How many times [`override_state`] retries when workers keep winning the race.
const MAX_ATTEMPTS: usize = 16;

/// Moves `provider`'s breaker to `state` on every worker of the fleet behind `backend`.
///
/// Writes a successor of the stored snapshot with a transition event, through the same
/// compare-and-set the workers use, so the store and the channel agree. The successor
/// starts a new epoch (at least the stored one + 1, at least this host's clock in unix
/// milliseconds), so it outranks everything workers remember even when the store had lost
/// its history (Redis restarted empty): workers adopt it, and no reconcile writes their
/// older history over it. Returns once the store holds it (read back); if a worker wins the
/// race, it retries on top of the winner. `Closed` is a reset (counts
/// cleared), `ForcedOpen` isolates the provider, `Disabled` bypasses its breaker. Returns the
/// snapshot written.
///
/// ```
/// use std::sync::Arc;
/// use flexiai_backend::{MemoryBackend, SyncBackend};
/// use flexiai_events::{CircuitState, WorkerId};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), flexiai_sync::SyncError> {
/// let backend: Arc<dyn SyncBackend> = Arc::new(MemoryBackend::new());
/// let operator = WorkerId::generate();
/// let written = flexiai_sync::override_state(&backend, "openai", CircuitState::ForcedOpen, &operator).await?;
/// assert_eq!(written.version, 1);
/// # Ok(())
/// # }
/// ```
pub async fn override_state(
    backend: &Arc<dyn SyncBackend>,
    provider: &str,
    state: CircuitState,
    actor: &WorkerId,
) -> Result<BreakerSnapshot, SyncError> {
    validate_provider(provider)?;
    if matches!(state, CircuitState::Open | CircuitState::HalfOpen) {
        return Err(SyncError::config(
            "state",
            "operators can force_open, disable or reset (closed); open and half_open are the breaker's own",
        ));
    }
    let mut stored = backend.get_state(provider).await?;
    for _ in 0..MAX_ATTEMPTS {
        let grew_from = stored.as_ref().map(BreakerSnapshot::revision);
        let now_ms = u64::try_from(Timestamp::now().unix_millis()).unwrap_or(0);
        let epoch = grew_from
            .map_or(0, |r| r.epoch.saturating_add(1))
            .max(now_ms);
        let mut snapshot = BreakerSnapshot::new(state, grew_from.map_or(0, |r| r.version) + 1);
        snapshot.epoch = epoch;
        snapshot.state_changed_at = Some(Timestamp::now());
        snapshot.updated_by = Some(actor.clone());
        let event = Event::from(transition_event(provider, actor, &snapshot));
        match backend
            .compare_and_set(provider, &snapshot, grew_from, Some(&event))
            .await?
        {
            CasOutcome::Applied => {
                // Report success only for what the store really holds.
                let held = backend.get_state(provider).await?;
                match held {
                    Some(held) if held.revision() == snapshot.revision() => return Ok(snapshot),
                    Some(held) if held.revision() > snapshot.revision() && held.state == state => {
                        return Ok(held);
                    }
                    other => stored = other,
                }
            }
            CasOutcome::Stale { current } => stored = Some(current),
        }
    }
    Err(SyncError::Contended {
        provider: provider.to_owned(),
    })
}
