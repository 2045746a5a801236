//! Fleet scenarios with real worker processes (`flexiai worker`) sharing one private
//! redis-server: what the in-process scenarios show, across process boundaries.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flexiai_testkit::{FaultProxy, RedisServer, WorkerProcess};
use serde_json::Value;

mod support;

/// One `flexiai worker` process, steered line by line (the kit's [`WorkerProcess`], with
/// test-style panics).
struct Proc(WorkerProcess);

impl Proc {
    fn spawn(url: &str, prefix: &str, args: &[&str]) -> Proc {
        let mut command = Command::new(env!("CARGO_BIN_EXE_flexiai"));
        command
            .args([
                "worker",
                "--redis",
                url,
                "--prefix",
                prefix,
                "--providers",
                "x",
            ])
            .args(args);
        Proc(WorkerProcess::spawn(command).expect("flexiai worker starts"))
    }

    fn send(&mut self, line: &str) {
        self.0.send(line).unwrap();
    }

    fn read(&mut self) -> Value {
        self.0.read().unwrap()
    }

    fn cmd(&mut self, line: &str) -> Value {
        self.0.cmd(line).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    fn state(&mut self) -> (String, u64) {
        let reply = self.cmd("state x");
        (
            reply["state"].as_str().unwrap().to_owned(),
            reply["version"].as_u64().unwrap(),
        )
    }
}

fn server() -> RedisServer {
    RedisServer::start().expect("redis-server must start (apt-get install redis-server)")
}

fn fleet(url: &str, n: usize, args: &[&str]) -> Vec<Proc> {
    (0..n).map(|_| Proc::spawn(url, "fleet", args)).collect()
}

fn wait_all(procs: &mut [Proc], state: &str) {
    for p in procs.iter_mut() {
        p.send(&format!("wait x {state} 10000"));
    }
    for p in procs.iter_mut() {
        let reply = p.read();
        assert_eq!(
            reply["reached"], true,
            "a worker never reached {state}: {reply}"
        );
    }
}

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[test]
fn a_trip_on_one_process_reaches_seven_others() {
    let redis = server();
    let mut procs = fleet(&redis.url(), 8, &["--threshold", "3"]);
    let mut samples = Vec::new();
    for round in 0..5 {
        // Everyone but worker 0 waits for the trip; their replies carry when they saw it.
        for p in &mut procs[1..] {
            p.send("wait x open 10000");
        }
        let tripped = procs[0].cmd("fail x 3");
        assert_eq!(tripped["state"], "open");
        let at = tripped["at_micros"].as_i64().unwrap();
        for p in &mut procs[1..] {
            let seen = p.read();
            assert_eq!(seen["reached"], true, "round {round}: {seen}");
            samples.push((seen["at_micros"].as_i64().unwrap() - at) as f64 / 1000.0);
        }
        procs[0].cmd("reset x");
        wait_all(&mut procs, "closed");
    }
    samples.sort_by(f64::total_cmp);
    println!(
        "propagation to 7 worker processes over {} samples: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        samples.len(),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples[samples.len() - 1]
    );
    let states: Vec<(String, u64)> = procs.iter_mut().map(Proc::state).collect();
    assert!(states.windows(2).all(|w| w[0] == w[1]), "{states:?}");
}

#[test]
fn failures_spread_over_four_processes_trip_all_of_them() {
    let redis = server();
    // Fleet counting is the failure-rate policy's, summed in the store: 8 calls in all, 2
    // per process. (Consecutive counting is per worker: it never spans processes.)
    let mut procs = fleet(&redis.url(), 4, &["--rate-min-calls", "8"]);
    for p in &mut procs {
        let reply = p.cmd("fail x 2");
        assert_eq!(reply["admitted"], 2, "{reply}");
    }
    wait_all(&mut procs, "open");
}

#[test]
fn eight_processes_send_one_probe_per_half_open_period() {
    let redis = server();
    let mut procs = fleet(
        &redis.url(),
        8,
        &[
            "--threshold",
            "1",
            "--recovery-ms",
            "500",
            "--half-open-max",
            "1",
        ],
    );
    for cycle in 0..2 {
        procs[0].cmd("fail x 1");
        wait_all(&mut procs, "open");
        std::thread::sleep(Duration::from_millis(550));
        // The fake provider: count every call the fleet lets through during the period.
        let mut holders = Vec::new();
        let deadline = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < deadline {
            for (i, p) in procs.iter_mut().enumerate() {
                if !holders.contains(&i) && p.cmd("probe x")["admitted"] == true {
                    holders.push(i);
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            holders.len(),
            1,
            "cycle {cycle}: probes admitted by workers {holders:?}"
        );
        procs[holders[0]].cmd("settle x success");
        wait_all(&mut procs, "closed");
    }
}

#[test]
fn a_process_joining_late_starts_with_the_fleet_state() {
    let redis = server();
    let mut first = Proc::spawn(&redis.url(), "fleet", &[]);
    first.cmd("force_open x");
    eventually("the store holds the transition", || {
        first.cmd("stored x")["stored"]["state"] == "forced_open"
    });
    let mut late = Proc::spawn(&redis.url(), "fleet", &[]);
    assert_eq!(
        late.state(),
        first.state(),
        "start() hydrates before the worker says ready"
    );
    assert_eq!(late.state().0, "forced_open");
}

#[test]
fn concurrent_transitions_from_six_processes_converge_on_one_history() {
    let redis = server();
    let mut procs = fleet(&redis.url(), 6, &[]);
    for round in 0..10 {
        for (i, p) in procs.iter_mut().enumerate() {
            let command = ["force_open x", "reset x", "disable x"][(round + i) % 3];
            p.send(command);
        }
        for p in &mut procs {
            p.read();
        }
    }
    eventually("all six hold the same (state, version)", || {
        let states: Vec<(String, u64)> = procs.iter_mut().map(Proc::state).collect();
        states.windows(2).all(|w| w[0] == w[1])
    });
}

#[test]
fn killing_redis_degrades_the_fleet_without_blocking_calls_and_it_recovers() {
    let mut redis = server();
    let mut procs = fleet(&redis.url(), 3, &["--threshold", "3"]);
    redis.kill().unwrap();
    eventually("every worker reports degraded", || {
        procs
            .iter_mut()
            .all(|p| p.cmd("health")["mode"] == "degraded")
    });
    // Calls go on: 10,000 admissions per worker, with Redis dead. The worker times each
    // call; one that waited on Redis would take a command timeout (300 ms) or more.
    for p in &mut procs {
        let reply = p.cmd("succeed x 10000");
        assert_eq!(reply["admitted"], 10_000);
        assert!(
            reply["max_admit_us"].as_u64().unwrap() < 300_000,
            "a call blocked on a dead Redis: {reply}"
        );
    }
    procs[1].cmd("fail x 3");
    std::thread::sleep(Duration::from_secs(1));
    redis.restart().unwrap();
    eventually("every worker is synced again", || {
        procs
            .iter_mut()
            .all(|p| p.cmd("health")["mode"] == "synced")
    });
    eventually("every worker converges", || {
        let states: Vec<(String, u64)> = procs.iter_mut().map(Proc::state).collect();
        states.windows(2).all(|w| w[0] == w[1]) && states[0].0 == "open"
    });
}

#[test]
fn a_blackholed_redis_degrades_within_the_command_timeout() {
    let redis = server();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let proxy = runtime.block_on(FaultProxy::start(redis.addr())).unwrap();
    let mut procs = fleet(
        &proxy.url(),
        2,
        &["--threshold", "3", "--command-timeout-ms", "300"],
    );
    proxy.blackhole(true);
    let started = Instant::now();
    eventually("degraded behind a blackhole", || {
        procs[0].cmd("health")["mode"] == "degraded"
    });
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    let reply = procs[0].cmd("fail x 3");
    assert_eq!(
        reply["state"], "open",
        "breakers work locally while degraded"
    );
    proxy.blackhole(false);
    proxy.cut();
    eventually("synced after the path heals", || {
        procs
            .iter_mut()
            .all(|p| p.cmd("health")["mode"] == "synced")
    });
    wait_all(&mut procs, "open");
}

/// Runs a one-shot `flexiai` command against the fleet and returns its stdout.
fn flexiai(url: &str, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_flexiai"))
        .args(args)
        .args(["--redis", url, "--prefix", "fleet"])
        .output()
        .expect("run flexiai");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "flexiai {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn operator_commands_reach_every_worker_and_report_the_fleet() {
    let redis = server();
    let url = redis.url();
    let mut procs = fleet(&url, 3, &[]);

    let workers = flexiai(&url, &["workers"]);
    assert!(workers.starts_with("3 live workers"), "{workers}");

    let forced = flexiai(&url, &["force-open", "x"]);
    assert!(
        forced.contains("x is now forced_open on every worker"),
        "{forced}"
    );
    wait_all(&mut procs, "forced_open");

    let status = flexiai(&url, &["status"]);
    let row = status
        .lines()
        .find(|l| l.starts_with("x "))
        .unwrap_or_else(|| panic!("{status}"));
    assert!(row.contains("forced_open"), "{status}");

    // The tail shows the next transitions as they happen.
    let watcher = Command::new(env!("CARGO_BIN_EXE_flexiai"))
        .args([
            "watch",
            "--count",
            "1",
            "--seconds",
            "10",
            "--redis",
            &url,
            "--prefix",
            "fleet",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    flexiai(&url, &["disable", "x"]);
    wait_all(&mut procs, "disabled");
    let tail = String::from_utf8(watcher.wait_with_output().unwrap().stdout).unwrap();
    assert!(tail.contains("-> disabled"), "{tail}");

    flexiai(&url, &["reset", "x"]);
    wait_all(&mut procs, "closed");
}

#[test]
fn the_demo_runs_as_separate_processes_over_redis() {
    let redis = server();
    let output = Command::new(env!("CARGO_BIN_EXE_flexiai"))
        .args([
            "demo",
            "--quiet",
            "--redis",
            &redis.url(),
            "--processes",
            "2",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("redis)"), "{stdout}");
    support::check_demo_summary(&stdout, 2);
}
