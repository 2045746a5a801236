//! Spawning and steering worker processes (this same binary, `worker` subcommand).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::Value;

/// One worker process, steered line by line.
pub(crate) struct Proc {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Proc {
    /// Spawns `fleet-bench worker --mode MODE --redis URL --prefix PREFIX EXTRA...` and waits
    /// for its `ready` line.
    pub(crate) fn spawn(
        mode: &str,
        url: &str,
        prefix: &str,
        extra: &[&str],
    ) -> crate::Result<Proc> {
        let mut args = vec!["worker", "--mode", mode, "--redis", url, "--prefix", prefix];
        args.extend_from_slice(extra);
        let mut proc = Proc::launch(&args)?;
        proc.wait_ready()?;
        Ok(proc)
    }

    /// Spawns `fleet-bench ARGS...` without waiting for it to be ready (so that many can
    /// start at once); see [`wait_ready`](Self::wait_ready).
    pub(crate) fn launch(args: &[&str]) -> crate::Result<Proc> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdin = child.stdin.take().ok_or("worker has no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("worker has no stdout")?);
        Ok(Proc {
            child,
            stdin,
            stdout,
        })
    }

    /// Waits for the process's `ready` line.
    pub(crate) fn wait_ready(&mut self) -> crate::Result<()> {
        let ready = self.read()?;
        if ready.get("ready") != Some(&Value::Bool(true)) {
            return Err(format!("worker did not start: {ready}").into());
        }
        Ok(())
    }

    /// Sends one command line without waiting for the reply.
    pub(crate) fn send(&mut self, line: &str) -> crate::Result<()> {
        writeln!(self.stdin, "{line}")?;
        self.stdin.flush()?;
        Ok(())
    }

    /// Reads one reply.
    pub(crate) fn read(&mut self) -> crate::Result<Value> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            return Err("worker exited".into());
        }
        let value: Value = serde_json::from_str(&line)?;
        if let Some(error) = value.get("error") {
            return Err(format!("worker error: {error}").into());
        }
        Ok(value)
    }

    /// Sends a command and reads its reply.
    pub(crate) fn cmd(&mut self, line: &str) -> crate::Result<Value> {
        self.send(line)?;
        self.read()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `line` to every process, then reads every reply (so they work concurrently).
pub(crate) fn broadcast(procs: &mut [Proc], line: &str) -> crate::Result<Vec<Value>> {
    for p in procs.iter_mut() {
        p.send(line)?;
    }
    procs.iter_mut().map(Proc::read).collect()
}

/// The `[[a, b, c], ...]` array under `key`, as rows of integers.
pub(crate) fn rows(value: &Value, key: &str) -> Vec<Vec<u64>> {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(|rows| {
            rows.iter()
                .filter_map(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_u64).collect())
                .collect()
        })
        .unwrap_or_default()
}
