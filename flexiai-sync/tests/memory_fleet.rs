//! The fleet scenarios on MemoryBackend: managers sharing one in-process store.

use flexiai_backend::conformance::MemoryFactory;

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            flexiai_sync::scenarios::$name(&MemoryFactory).await;
        }
    )*};
}

scenarios!(
    a_trip_reaches_every_worker,
    fleet_failures_count_together,
    half_open_probes_are_rationed_fleet_wide,
    a_late_joiner_starts_with_the_fleet_state,
    concurrent_transitions_converge,
    an_emptied_store_is_rewritten,
    stop_and_drop_are_clean,
    an_operator_override_reaches_every_worker,
    idle_workers_leave_the_probe_to_busy_ones,
);
