//! Redis implementation of the flexiai-rs SyncBackend.
//!
//! Not implemented yet: this crate is a placeholder so the workspace layout is in place.
