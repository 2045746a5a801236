//! Attaching and detaching observers.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::CircuitBreaker;
use crate::observer::BreakerObserver;

impl CircuitBreaker {
    /// Attaches an observer; it hears of every later transition and outcome. Readers on the
    /// hot path are never blocked by this (the list is swapped atomically).
    pub fn add_observer(&self, observer: Arc<dyn BreakerObserver>) {
        self.observers.rcu(|list| {
            let mut next = Vec::with_capacity(list.len() + 1);
            next.extend(list.iter().cloned());
            next.push(Arc::clone(&observer));
            next
        });
        self.has_observers.store(true, Ordering::Release);
        if observer.wants_outcomes() {
            self.outcome_observers.store(true, Ordering::Release);
        }
    }

    /// Detaches an observer previously added (compared by pointer). Returns whether it was
    /// attached.
    pub fn remove_observer(&self, observer: &Arc<dyn BreakerObserver>) -> bool {
        let mut found = false;
        let target = Arc::as_ptr(observer).cast::<()>();
        let after = self.observers.rcu(|list| {
            found = false;
            list.iter()
                .filter(|o| {
                    let same = std::ptr::eq(Arc::as_ptr(o).cast::<()>(), target);
                    found |= same;
                    !same
                })
                .cloned()
                .collect::<Vec<_>>()
        });
        let _ = after;
        let list = self.observers.load();
        self.has_observers
            .store(!list.is_empty(), Ordering::Release);
        self.outcome_observers
            .store(list.iter().any(|o| o.wants_outcomes()), Ordering::Release);
        found
    }
}
