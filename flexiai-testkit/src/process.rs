//! A child process steered over stdin/stdout, one JSON object per line: the multi-process
//! tests and the chaos runner drive `flexiai worker` processes through it.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::error::{Result, TestkitError};

/// One line-protocol child: write a command line, read one JSON reply line.
///
/// The child must print a first line with `"ready": true` once it is serving. A reply
/// with an `"error"` field is an error. Dropping it sends `quit`, waits up to 3 s, then
/// kills the child.
#[derive(Debug)]
pub struct WorkerProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    ready: Value,
}

impl WorkerProcess {
    /// Spawns `command` (stdin and stdout are piped; stderr is inherited) and waits for
    /// its ready line.
    pub fn spawn(mut command: Command) -> Result<Self> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| TestkitError::io("spawning a worker process", e))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(TestkitError::Worker(
                "the worker has no stdin/stdout".into(),
            ));
        };
        let mut process = Self {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            ready: Value::Null,
        };
        let ready = process.read()?;
        if ready.get("ready") != Some(&Value::Bool(true)) {
            return Err(TestkitError::Worker(format!("did not start: {ready}")));
        }
        process.ready = ready;
        Ok(process)
    }

    /// The ready line the worker printed.
    pub fn ready(&self) -> &Value {
        &self.ready
    }

    /// The child's process id (for signals: `kill -9`, SIGSTOP).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends one command line without waiting for the reply.
    pub fn send(&mut self, line: &str) -> Result<()> {
        writeln!(self.stdin, "{line}")
            .and_then(|()| self.stdin.flush())
            .map_err(|e| TestkitError::io("writing to a worker", e))
    }

    /// Reads one reply line.
    pub fn read(&mut self) -> Result<Value> {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .map_err(|e| TestkitError::io("reading from a worker", e))?;
        if n == 0 {
            return Err(TestkitError::Worker("the worker exited".into()));
        }
        let value: Value = serde_json::from_str(&line)
            .map_err(|e| TestkitError::Worker(format!("bad reply {line:?}: {e}")))?;
        if let Some(error) = value.get("error") {
            return Err(TestkitError::Worker(format!("error reply: {error}")));
        }
        Ok(value)
    }

    /// Sends a command and reads its reply.
    pub fn cmd(&mut self, line: &str) -> Result<Value> {
        self.send(line)?;
        self.read()
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
