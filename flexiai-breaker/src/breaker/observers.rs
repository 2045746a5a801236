//! Attaching and detaching observers.
//!
//! The hot path reads `has_observers` (one load) before it touches the list. Adding and
//! removing are serialized by `observers_lock`, so the flag is always written from the list
//! just stored, never from a copy that another add or remove has replaced meanwhile (issue 12
//! defect 8b: a remove could write `false` over an add's `true` and silence the observer the
//! add attached). The hot path never takes the lock.

use crate::sync::Ordering;
use std::sync::{Arc, PoisonError};

use super::CircuitBreaker;
use crate::observer::BreakerObserver;

impl CircuitBreaker {
    /// Attaches an observer; it hears of every later transition and outcome. Readers on the
    /// hot path are never blocked by this (the list is swapped atomically).
    pub fn add_observer(&self, observer: Arc<dyn BreakerObserver>) {
        let _serial = self
            .observers_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let list = self.observers.load_full();
        let mut next = Vec::with_capacity(list.len() + 1);
        next.extend(list.iter().cloned());
        let wants_outcomes = observer.wants_outcomes();
        next.push(observer);
        self.observers.store(Arc::new(next));
        self.has_observers.store(true, Ordering::Release);
        if wants_outcomes {
            self.outcome_observers.store(true, Ordering::Release);
        }
    }

    /// Detaches an observer previously added (compared by pointer). Returns whether it was
    /// attached.
    pub fn remove_observer(&self, observer: &Arc<dyn BreakerObserver>) -> bool {
        let _serial = self
            .observers_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let target = Arc::as_ptr(observer).cast::<()>();
        let list = self.observers.load_full();
        let next: Vec<_> = list
            .iter()
            .filter(|o| !std::ptr::eq(Arc::as_ptr(o).cast::<()>(), target))
            .cloned()
            .collect();
        if next.len() == list.len() {
            return false;
        }
        let empty = next.is_empty();
        let wants_outcomes = next.iter().any(|o| o.wants_outcomes());
        self.observers.store(Arc::new(next));
        self.has_observers.store(!empty, Ordering::Release);
        self.outcome_observers
            .store(wants_outcomes, Ordering::Release);
        true
    }
}
