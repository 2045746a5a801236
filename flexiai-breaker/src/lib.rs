//! A lock-free circuit breaker that can be synchronized across workers.
//!
//! Not implemented yet: this crate is a placeholder so the workspace layout is in place.
