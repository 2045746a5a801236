//! The processes under test and what they report: `flexiai worker` processes (each behind its
//! own fault proxy) under load, a `flexiai watch` recording every stored write, and operator
//! commands through the CLI. Everything observed goes into one [`History`].

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use flexiai_testkit::{FaultProxy, WorkerProcess};
use serde_json::Value;

use crate::schedule::Operator;

/// The provider every worker guards.
pub(crate) const PROVIDER: &str = "x";
/// The key prefix (and `{prefix}:events` channel) of the chaos fleet.
pub(crate) const PREFIX: &str = "chaos";
/// The fleet-wide probe budget the workers run with.
pub(crate) const HALF_OPEN_MAX: u64 = 1;
/// The workers' Redis command timeout: a call that waited on Redis would take about this
/// long while Redis is paused or blackholed.
pub(crate) const COMMAND_TIMEOUT_MS: u64 = 300;

/// One batch of calls a worker made, as it reported it.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    pub(crate) t_ms: u64,
    pub(crate) worker: usize,
    pub(crate) state: String,
    pub(crate) version: u64,
    pub(crate) calls: u64,
    pub(crate) max_admit_us: u64,
    pub(crate) probes: Vec<u64>,
    pub(crate) synced: bool,
}

/// A transition a worker's breaker made (its observer's record).
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) worker: usize,
    pub(crate) to: String,
    pub(crate) version: u64,
    pub(crate) reason: String,
}

/// A stored write, as the events channel announced it (every compare-and-set that applies
/// publishes its event atomically with it).
#[derive(Debug, Clone)]
pub(crate) struct Write {
    pub(crate) t_ms: u64,
    pub(crate) state: String,
    pub(crate) version: u64,
    pub(crate) by: String,
}

/// An operator command and its result.
#[derive(Debug, Clone)]
pub(crate) struct OperatorAction {
    pub(crate) start_ms: u64,
    pub(crate) ack_ms: u64,
    pub(crate) op: Operator,
    /// The version the CLI reported writing, if it succeeded.
    pub(crate) version: Option<u64>,
}

/// Everything observed during a run.
#[derive(Debug, Default)]
pub(crate) struct History {
    pub(crate) batches: Vec<Batch>,
    pub(crate) seen: Vec<Seen>,
    pub(crate) writes: Vec<Write>,
    pub(crate) operators: Vec<OperatorAction>,
    /// `(t_ms, worker, last probe version)` of every worker kill.
    pub(crate) kills: Vec<(u64, usize, Option<u64>)>,
    /// Runner times at which Redis came back empty.
    pub(crate) redis_restarts: Vec<u64>,
    /// `(start_ms, end_ms)` of every Redis outage (killed or paused).
    pub(crate) redis_outages: Vec<(u64, u64)>,
    /// Times the watcher lost its subscription (writes in the gap may be missing).
    pub(crate) watch_gaps: Vec<u64>,
}

/// Shared by the runner's threads.
pub(crate) struct Shared {
    pub(crate) start: Instant,
    pub(crate) history: Mutex<History>,
    pub(crate) failing: AtomicBool,
    /// Stops the load threads.
    pub(crate) stop: AtomicBool,
    /// Stops the watcher (after the load: it records the convergence too).
    watch_stop: AtomicBool,
    watch_pid: AtomicU32,
}

impl Shared {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            start: Instant::now(),
            history: Mutex::new(History::default()),
            failing: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            watch_stop: AtomicBool::new(false),
            watch_pid: AtomicU32::new(0),
        })
    }

    /// Stops the watcher: its `flexiai watch` child is killed, its thread then ends.
    pub(crate) fn stop_watcher(&self) {
        self.watch_stop.store(true, Ordering::SeqCst);
        if let Ok(raw) = i32::try_from(self.watch_pid.load(Ordering::SeqCst))
            && raw > 0
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(raw),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn history(&self) -> MutexGuard<'_, History> {
        self.history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One worker: its proxy, its current process (none while killed) and its load thread.
pub(crate) struct Slot {
    pub(crate) index: usize,
    pub(crate) proxy: FaultProxy,
    pub(crate) process: Mutex<Option<WorkerProcess>>,
    pub(crate) pid: AtomicU32,
    pub(crate) last_probe: Mutex<Option<u64>>,
}

impl Slot {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Option<WorkerProcess>> {
        self.process
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts this worker's process (through its proxy) and installs it.
    pub(crate) fn start(&self, flexiai: &Path) -> Result<(), String> {
        let mut command = Command::new(flexiai);
        command
            .args(["worker", "--redis", &self.proxy.url(), "--prefix", PREFIX])
            .args([
                "--providers",
                PROVIDER,
                "--threshold",
                "3",
                "--recovery-ms",
                "800",
            ])
            .args(["--half-open-max", &HALF_OPEN_MAX.to_string()])
            .args(["--command-timeout-ms", &COMMAND_TIMEOUT_MS.to_string()])
            .env("RUST_LOG", "error");
        let process = WorkerProcess::spawn(command).map_err(|e| e.to_string())?;
        self.pid.store(process.pid(), Ordering::SeqCst);
        *self.lock() = Some(process);
        Ok(())
    }

    /// `kill -9` the current process (without waiting for the load thread's lock).
    pub(crate) fn kill9(&self) {
        let pid = self.pid.swap(0, Ordering::SeqCst);
        if let Ok(raw) = i32::try_from(pid)
            && raw > 0
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(raw),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        *self.lock() = None;
    }

    /// One command to the current process, if there is one.
    pub(crate) fn cmd(&self, line: &str) -> Option<Value> {
        let mut guard = self.lock();
        let process = guard.as_mut()?;
        match process.cmd(line) {
            Ok(value) => Some(value),
            Err(_) => {
                // Died (killed, or crashed: a crash shows as a missing worker at the end).
                *guard = None;
                None
            }
        }
    }
}

/// The load on one worker: batches of calls until told to stop, failing ones while the
/// provider is failing.
pub(crate) fn load(slot: Arc<Slot>, shared: Arc<Shared>) -> JoinHandle<()> {
    thread::spawn(move || {
        while !shared.stop.load(Ordering::SeqCst) {
            let line = if shared.failing.load(Ordering::SeqCst) {
                format!("fail {PROVIDER} 5")
            } else {
                format!("succeed {PROVIDER} 20")
            };
            if let Some(reply) = slot.cmd(&line) {
                record(&slot, &shared, &reply);
            }
            thread::sleep(Duration::from_millis(20));
        }
    })
}

fn record(slot: &Slot, shared: &Shared, reply: &Value) {
    let u = |key: &str| reply.get(key).and_then(Value::as_u64).unwrap_or(0);
    let probes: Vec<u64> = reply
        .get("probes")
        .and_then(Value::as_array)
        .map(|p| p.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    if let Some(&last) = probes.last()
        && let Ok(mut held) = slot.last_probe.lock()
    {
        *held = Some(last);
    }
    let batch = Batch {
        t_ms: shared.now_ms(),
        worker: slot.index,
        state: reply["state"].as_str().unwrap_or_default().to_owned(),
        version: u("version"),
        calls: u("admitted") + u("rejected"),
        max_admit_us: u("max_admit_us"),
        probes,
        synced: reply["synced"].as_bool().unwrap_or(false),
    };
    let seen: Vec<Seen> = reply
        .get("transitions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| Seen {
            worker: slot.index,
            to: t["to"].as_str().unwrap_or_default().to_owned(),
            version: t["version"].as_u64().unwrap_or(0),
            reason: t["reason"].as_str().unwrap_or_default().to_owned(),
        })
        .collect();
    let mut history = shared.history();
    history.batches.push(batch);
    history.seen.extend(seen);
}

/// `flexiai watch` on Redis directly (no proxy), restarted whenever it exits (Redis was
/// killed): every stored write's event goes into the history.
pub(crate) fn watch(flexiai: PathBuf, url: String, shared: Arc<Shared>) -> JoinHandle<()> {
    thread::spawn(move || {
        while !shared.watch_stop.load(Ordering::SeqCst) {
            let child = Command::new(&flexiai)
                .args(["watch", "--redis", &url, "--prefix", PREFIX])
                .env("RUST_LOG", "off")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn();
            let Ok(mut child) = child else {
                thread::sleep(Duration::from_millis(100));
                continue;
            };
            shared.watch_pid.store(child.id(), Ordering::SeqCst);
            if shared.watch_stop.load(Ordering::SeqCst) {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            if let Some(stdout) = child.stdout.take() {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if line.contains("resubscribed") || line.contains("disconnected") {
                        let t = shared.now_ms();
                        shared.history().watch_gaps.push(t);
                    } else if let Some(write) = parse_write(&line, shared.now_ms()) {
                        shared.history().writes.push(write);
                    }
                }
            }
            let _ = child.kill();
            let _ = child.wait();
            let t = shared.now_ms();
            shared.history().watch_gaps.push(t);
            thread::sleep(Duration::from_millis(100));
        }
    })
}

/// `TS x opened -> open (v7)  [worker]` or `TS x snapshot open (v7)  [worker]`.
fn parse_write(line: &str, t_ms: u64) -> Option<Write> {
    let words: Vec<&str> = line.split_whitespace().collect();
    if words.get(1) != Some(&PROVIDER) {
        return None;
    }
    let (state, version) = match (words.get(2), words.get(3)) {
        (_, Some(&"->")) => (words.get(4)?, words.get(5)?),
        (Some(&"snapshot"), Some(state)) => (state, words.get(4)?),
        _ => return None,
    };
    let version = version
        .strip_prefix("(v")?
        .strip_suffix(')')?
        .parse()
        .ok()?;
    let by = words.last()?.trim_matches(|c| c == '[' || c == ']');
    Some(Write {
        t_ms,
        state: (*state).to_owned(),
        version,
        by: by.to_owned(),
    })
}

/// Runs `flexiai <op> x` against Redis and records it.
pub(crate) fn operator(flexiai: &Path, url: &str, op: Operator, shared: &Shared) {
    let start_ms = shared.now_ms();
    let output = Command::new(flexiai)
        .args([op.command(), PROVIDER, "--redis", url, "--prefix", PREFIX])
        .env("RUST_LOG", "off")
        .output();
    let ack_ms = shared.now_ms();
    let version = output.ok().filter(|o| o.status.success()).and_then(|o| {
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        text.rsplit("(version ")
            .next()
            .and_then(|v| v.trim().trim_end_matches(')').parse().ok())
    });
    shared.history().operators.push(OperatorAction {
        start_ms,
        ack_ms,
        op,
        version,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_lines_parse_into_writes() {
        let w = parse_write(
            "2026-01-01T00:00:00.000000 x                opened     -> open (v7)  [h:1:2]",
            5,
        )
        .unwrap();
        assert_eq!(
            (w.state.as_str(), w.version, w.by.as_str()),
            ("open", 7, "h:1:2")
        );
        let s = parse_write(
            "2026-01-01T00:00:00.000000 x                snapshot   forced_open (v3)  [flexiai-cli@h:1:2]",
            5,
        )
        .unwrap();
        assert_eq!((s.state.as_str(), s.version), ("forced_open", 3));
        assert!(parse_write("2026 x failure 3 failures, 0 successes  [h]", 5).is_none());
    }
}
