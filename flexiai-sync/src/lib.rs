//! StateSyncManager: keeps circuit breakers in step across a fleet of workers.
//!
//! Not implemented yet: this crate is a placeholder so the workspace layout is in place.
