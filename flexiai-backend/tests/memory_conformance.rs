//! MemoryBackend against the conformance suite every backend must pass.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

flexiai_backend::conformance_tests!(flexiai_backend::conformance::MemoryFactory);
