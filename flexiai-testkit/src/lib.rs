//! Test support: spawns redis-server instances and a fault-injecting TCP proxy.
//!
//! Not implemented yet: this crate is a placeholder so the workspace layout is in place.
