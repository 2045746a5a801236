//! FlexiAI: a multi-provider LLM client with circuit-breaker failover.
//!
//! Not implemented yet: this crate is a placeholder so the workspace layout is in place.
