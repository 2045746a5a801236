//! The fleet scenarios on MemoryBackend: managers sharing one in-process store.

flexiai_sync::fleet_scenarios!(flexiai_backend::conformance::MemoryFactory);
