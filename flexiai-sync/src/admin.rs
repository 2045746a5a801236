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
/// Writes the next version of the stored history (stored version + 1) with a transition
/// event, through the same compare-and-set the workers use, so each worker applies it as a
/// newer remote transition and the store and the channel agree. `Closed` is a reset (counts
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
        let version = stored.as_ref().map_or(0, |s| s.version) + 1;
        let mut snapshot = BreakerSnapshot::new(state, version);
        snapshot.state_changed_at = Some(Timestamp::now());
        snapshot.updated_by = Some(actor.clone());
        let event = Event::from(transition_event(provider, actor, &snapshot));
        match backend
            .compare_and_set(provider, &snapshot, Some(&event))
            .await?
        {
            CasOutcome::Applied => return Ok(snapshot),
            CasOutcome::Stale { current } => stored = Some(current),
        }
    }
    Err(SyncError::Contended {
        provider: provider.to_owned(),
    })
}
