//! Same seed, same history: the simulator's replay guarantee, checked on whole histories.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use flexiai_sim::run_seed;

#[test]
fn a_seed_run_twice_gives_the_same_history_hash() {
    // Seed 1 covers wipes, operator overrides and failing, flapping, rate-limited providers.
    let first = run_seed(1, 1).unwrap();
    let second = run_seed(1, 1).unwrap();
    assert!(
        first.history.entries.len() > 100,
        "a run records its history"
    );
    assert_eq!(first.history, second.history);
    assert_eq!(first.hash, second.hash);
}

#[test]
fn a_seed_replays_on_another_thread_and_other_seeds_differ() {
    let here = run_seed(70, 1).unwrap().hash;
    let there = std::thread::spawn(|| run_seed(70, 1).unwrap().hash)
        .join()
        .unwrap();
    assert_eq!(here, there);
    assert_ne!(here, run_seed(71, 1).unwrap().hash);
}

/// Seed 260's plan with open-period jitter on: the breaker's jitter stream is the one
/// per-breaker random state the simulator can switch on, so it must be seeded by the run, not
/// by anything the process did before (its process-global breaker id counter).
fn jittered(seed: u64) -> flexiai_sim::Plan {
    let mut plan = flexiai_sim::Plan::generate(seed, 1);
    plan.breaker.jitter_ratio = 0.5;
    plan.breaker.backoff_multiplier = 2.0;
    plan
}

#[test]
fn a_seed_replays_identically_after_other_seeds_and_on_another_thread() {
    // Seeds reported failing only inside a 1,000-seed batch (linear history 260, 285, probe
    // budget 778): each must give the history it gives in a fresh thread of a fresh process
    // state, whatever ran before it here.
    let fresh: Vec<(u64, u64)> = std::thread::spawn(|| {
        [260, 285, 778]
            .iter()
            .map(|&s| (s, run_seed(s, 1).unwrap().hash))
            .collect()
    })
    .join()
    .unwrap();
    let jittered_fresh = flexiai_sim::run_plan(&jittered(260)).unwrap();
    // Other seeds build breakers, managers, stores and runtimes in between.
    for other in [0, 1, 2, 149, 259] {
        run_seed(other, 1).unwrap();
    }
    for &(seed, hash) in &fresh {
        assert_eq!(
            run_seed(seed, 1).unwrap().hash,
            hash,
            "seed {seed} after others"
        );
    }
    let jittered_again = flexiai_sim::run_plan(&jittered(260)).unwrap();
    assert_eq!(
        jittered_fresh.hash(),
        jittered_again.hash(),
        "a jittered plan replays after other seeds"
    );
    let there = std::thread::spawn(|| flexiai_sim::run_plan(&jittered(260)).unwrap().hash())
        .join()
        .unwrap();
    assert_eq!(jittered_fresh.hash(), there, "and on another thread");
    // Jitter is on: the plan's breakers did open (so the jitter stream was drawn from).
    assert!(
        jittered_fresh
            .entries
            .iter()
            .any(|e| format!("{:?}", e.record).contains("Open")),
        "the jittered plan opens a breaker"
    );
}
