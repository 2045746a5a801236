//! A private `redis-server` process on a free loopback port.

use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;

use crate::error::{Result, TestkitError};

/// Environment variable that overrides where the `redis-server` binary is.
pub const REDIS_SERVER_ENV: &str = "FLEXIAI_REDIS_SERVER";

const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
const PORT_ATTEMPTS: usize = 8;
const LOG_TAIL_LINES: usize = 30;

/// Pick a free TCP port on 127.0.0.1 (bound, then released).
///
/// Another process may take the port before it is used again; callers retry on
/// "address in use".
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| TestkitError::io("binding 127.0.0.1:0 to pick a free port", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| TestkitError::io("reading the picked port", e))?
        .port();
    Ok(port)
}

/// Send `PING` as raw RESP to `addr` and wait at most `timeout` for the reply.
///
/// Succeeds on `+PONG` and on error replies that prove the server is serving
/// (such as `-NOAUTH` on a password-protected server); fails on `-LOADING`,
/// time-outs, refused connections and anything else.
pub fn ping(addr: SocketAddr, timeout: Duration) -> Result<()> {
    let fail = |reason: String| TestkitError::Ping { addr, reason };
    let started = Instant::now();
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| fail(format!("connect: {e}")))?;
    let remaining = timeout
        .checked_sub(started.elapsed())
        .filter(|d| !d.is_zero())
        .unwrap_or(Duration::from_millis(1));
    stream
        .set_read_timeout(Some(remaining))
        .and_then(|()| stream.set_write_timeout(Some(remaining)))
        .map_err(|e| fail(format!("set timeout: {e}")))?;
    stream
        .write_all(b"*1\r\n$4\r\nPING\r\n")
        .map_err(|e| fail(format!("write: {e}")))?;
    let mut reply = Vec::with_capacity(64);
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\r\n") {
        if reply.len() > 512 {
            break;
        }
        if started.elapsed() > timeout {
            return Err(fail(format!("timed out after {timeout:?}")));
        }
        match stream.read(&mut byte) {
            Ok(0) => return Err(fail("connection closed".to_owned())),
            Ok(_) => reply.push(byte[0]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(fail(format!("timed out after {timeout:?}")));
            }
            Err(e) => return Err(fail(format!("read: {e}"))),
        }
    }
    let text = String::from_utf8_lossy(&reply).trim_end().to_owned();
    if text.starts_with("+PONG") || (text.starts_with('-') && !text.starts_with("-LOADING")) {
        Ok(())
    } else {
        Err(fail(format!("unexpected reply {text:?}")))
    }
}

fn find_redis_server() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(REDIS_SERVER_ENV) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(TestkitError::RedisServerNotFound {
                searched: format!("{REDIS_SERVER_ENV}={}", path.display()),
            })
        };
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path_var) {
        let candidate = dir.join("redis-server");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(TestkitError::RedisServerNotFound {
        searched: format!("PATH={}", path_var.to_string_lossy()),
    })
}

/// Configures and starts a [`RedisServer`].
#[derive(Debug, Clone)]
pub struct RedisServerBuilder {
    args: Vec<String>,
    password: Option<String>,
    startup_timeout: Duration,
    binary: Option<PathBuf>,
    tls: Option<TlsFiles>,
    config_file: Option<String>,
}

/// PEM documents for the server's TLS port.
#[derive(Clone)]
struct TlsFiles {
    cert_pem: String,
    key_pem: String,
    ca_pem: String,
}

impl fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsFiles { .. }")
    }
}

impl Default for RedisServerBuilder {
    fn default() -> Self {
        Self {
            args: Vec::new(),
            password: None,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            binary: None,
            tls: None,
            config_file: None,
        }
    }
}

impl RedisServerBuilder {
    /// Add one extra command-line argument, e.g. `"--maxmemory"` then `"10mb"`.
    #[must_use]
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Add several extra command-line arguments.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Protect the default user with a password (`--requirepass`).
    #[must_use]
    pub fn password(mut self, password: impl Into<String>) -> Self {
        let password = password.into();
        self.args.push("--requirepass".to_owned());
        self.args.push(password.clone());
        self.password = Some(password);
        self
    }

    /// Add an ACL user with full access and the given password
    /// (`--user NAME on >PASSWORD ~* &* +@all`).
    #[must_use]
    pub fn acl_user(mut self, name: &str, password: &str) -> Self {
        // Each rule is its own argument: redis-server quotes every argument.
        self.args.push("--user".to_owned());
        self.args.push(name.to_owned());
        self.args.push("on".to_owned());
        self.args.push(format!(">{password}"));
        self.args
            .extend(["~*", "&*", "+@all"].into_iter().map(str::to_owned));
        self
    }

    /// Add an ACL user with the given password and exactly the given rules, e.g.
    /// `["~flexiai:*", "&flexiai:*", "-@all", "+get"]` (`--user NAME on >PASSWORD RULES...`).
    #[must_use]
    pub fn acl_user_with_rules(mut self, name: &str, password: &str, rules: &[&str]) -> Self {
        self.args.push("--user".to_owned());
        self.args.push(name.to_owned());
        self.args.push("on".to_owned());
        self.args.push(format!(">{password}"));
        self.args.extend(rules.iter().map(|r| (*r).to_owned()));
        self
    }

    /// Also listen for TLS on a second free port, with a certificate for
    /// `127.0.0.1`/`localhost` signed by a fresh private CA made in-process
    /// ([`TestCa`](crate::tls::TestCa); clients need not present one, and trust the CA at
    /// [`RedisServer::tls_certificate`]). The plain port stays open for the readiness check
    /// and raw clients.
    pub fn tls(self) -> Result<Self> {
        let ca = crate::tls::TestCa::new("flexiai-testkit CA")?;
        let server = ca.issue(&["localhost", "127.0.0.1"])?;
        Ok(self.tls_pem(server.cert_pem, server.key_pem, ca.cert_pem()))
    }

    /// Also listen for TLS on a second free port with the given server certificate, its key
    /// and the CA (all PEM), written into the server's private directory.
    #[must_use]
    pub fn tls_pem(
        mut self,
        cert_pem: impl Into<String>,
        key_pem: impl Into<String>,
        ca_pem: impl Into<String>,
    ) -> Self {
        self.tls = Some(TlsFiles {
            cert_pem: cert_pem.into(),
            key_pem: key_pem.into(),
            ca_pem: ca_pem.into(),
        });
        self
    }

    /// Start from a configuration file with these contents (written into the server's
    /// private directory and passed first, as `redis-server FILE --sentinel` needs: a
    /// Sentinel rewrites its file).
    #[must_use]
    pub fn config_file(mut self, contents: impl Into<String>) -> Self {
        self.config_file = Some(contents.into());
        self
    }

    /// How long to wait for the first `PING` answer (default 10 s).
    #[must_use]
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Use this `redis-server` binary instead of searching `PATH`.
    #[must_use]
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Start the server on a free loopback port and wait until it answers `PING`.
    pub fn start(self) -> Result<RedisServer> {
        let binary = match self.binary {
            Some(path) if path.is_file() => path,
            Some(path) => {
                return Err(TestkitError::RedisServerNotFound {
                    searched: path.display().to_string(),
                });
            }
            None => find_redis_server()?,
        };
        let dir = tempfile::Builder::new()
            .prefix("flexiai-redis-")
            .tempdir()
            .map_err(|e| TestkitError::io("creating a temp dir for redis-server", e))?;
        if let Some(tls) = &self.tls {
            for (name, pem) in [
                ("cert.pem", &tls.cert_pem),
                ("key.pem", &tls.key_pem),
                ("ca.pem", &tls.ca_pem),
            ] {
                fs::write(dir.path().join(name), pem)
                    .map_err(|e| TestkitError::io(format!("writing {name}"), e))?;
            }
        }
        let config_file = match &self.config_file {
            Some(contents) => {
                let path = dir.path().join("server.conf");
                fs::write(&path, contents)
                    .map_err(|e| TestkitError::io("writing server.conf", e))?;
                Some(path)
            }
            None => None,
        };
        let mut server = RedisServer {
            config_file,
            binary,
            dir,
            port: 0,
            tls_port: None,
            args: self.args,
            password: self.password,
            startup_timeout: self.startup_timeout,
            child: None,
            paused: false,
        };
        let mut last_err = None;
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port()?;
            if self.tls.is_some() {
                server.tls_port = Some(free_port()?);
            }
            match server.spawn_and_wait() {
                Ok(()) => return Ok(server),
                Err(err) if is_addr_in_use(&err) => last_err = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last_err.unwrap_or(TestkitError::NotRunning { port: server.port }))
    }
}

fn is_addr_in_use(err: &TestkitError) -> bool {
    match err {
        TestkitError::ServerExited { log_tail, .. } => {
            log_tail.contains("Address already in use") || log_tail.contains("EADDRINUSE")
        }
        _ => false,
    }
}

/// A `redis-server` child process on `127.0.0.1:{port}`, in its own temp dir,
/// with persistence off (`--save "" --appendonly no`).
///
/// Dropping it kills the process (resuming it first if paused) and removes the
/// temp dir.
pub struct RedisServer {
    config_file: Option<PathBuf>,
    binary: PathBuf,
    dir: TempDir,
    port: u16,
    tls_port: Option<u16>,
    args: Vec<String>,
    password: Option<String>,
    startup_timeout: Duration,
    child: Option<Child>,
    paused: bool,
}

impl fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .field("pid", &self.pid())
            .field("paused", &self.paused)
            .field("dir", &self.dir.path())
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl RedisServer {
    /// Start a server with default settings.
    pub fn start() -> Result<Self> {
        Self::builder().start()
    }

    /// A builder for extra arguments, a password, ACL users or a custom binary.
    pub fn builder() -> RedisServerBuilder {
        RedisServerBuilder::default()
    }

    /// `redis://127.0.0.1:{port}` (no credentials; see [`Self::authenticated_url`]).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Like [`Self::url`], with the password given to the builder, if any.
    pub fn authenticated_url(&self) -> String {
        match &self.password {
            Some(pw) => format!("redis://:{pw}@127.0.0.1:{}", self.port),
            None => self.url(),
        }
    }

    /// The TCP port the server listens on (kept across [`Self::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS port, when built with [`RedisServerBuilder::tls`].
    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    /// `rediss://127.0.0.1:{tls_port}`, when built with [`RedisServerBuilder::tls`].
    pub fn tls_url(&self) -> Option<String> {
        self.tls_port.map(|p| format!("rediss://127.0.0.1:{p}"))
    }

    /// The CA certificate (PEM) that signed the server's certificate, when built with TLS.
    pub fn tls_certificate(&self) -> Option<PathBuf> {
        self.tls_port.map(|_| self.dir.path().join("ca.pem"))
    }

    /// The socket address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port))
    }

    /// The password given to the builder, if any.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The server's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is stopped by [`Self::pause`].
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// The server's private working directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Send a raw `PING` to the server (see [`ping`]).
    pub fn ping(&self, timeout: Duration) -> Result<()> {
        ping(self.addr(), timeout)
    }

    /// The last lines of the server's log and of its stdout/stderr.
    pub fn log_tail(&self) -> String {
        let mut out = String::new();
        for name in ["redis.log", "stdio.log"] {
            if let Ok(text) = fs::read_to_string(self.dir.path().join(name)) {
                let lines: Vec<&str> = text.lines().collect();
                let start = lines.len().saturating_sub(LOG_TAIL_LINES);
                for line in &lines[start..] {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        out
    }

    /// Graceful shutdown: SIGTERM, then SIGKILL if it has not exited within 5 s.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = child.id();
        if self.paused {
            signal(pid, Signal::SIGCONT)?;
            self.paused = false;
        }
        signal(pid, Signal::SIGTERM)?;
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                _ => break,
            }
        }
        reap_with_kill(&mut child)
    }

    /// Kill the server with SIGKILL (like `kill -9`); nothing is persisted.
    pub fn kill(&mut self) -> Result<()> {
        self.paused = false;
        match self.child.take() {
            Some(mut child) => reap_with_kill(&mut child),
            None => Ok(()),
        }
    }

    /// Start the server again on the same port (stopping it first if it runs).
    /// Its data is empty afterwards.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        let deadline = Instant::now() + self.startup_timeout;
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return Ok(()),
                Err(err) if is_addr_in_use(&err) && Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(50));
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Freeze the process with SIGSTOP: connections stay open but nothing is answered.
    pub fn pause(&mut self) -> Result<()> {
        let pid = self
            .pid()
            .ok_or(TestkitError::NotRunning { port: self.port })?;
        signal(pid, Signal::SIGSTOP)?;
        self.paused = true;
        Ok(())
    }

    /// Continue a paused process with SIGCONT.
    pub fn resume(&mut self) -> Result<()> {
        let pid = self
            .pid()
            .ok_or(TestkitError::NotRunning { port: self.port })?;
        signal(pid, Signal::SIGCONT)?;
        self.paused = false;
        Ok(())
    }

    fn spawn_and_wait(&mut self) -> Result<()> {
        let dir = self.dir.path();
        let stdio = File::options()
            .create(true)
            .append(true)
            .open(dir.join("stdio.log"))
            .map_err(|e| TestkitError::io("opening stdio.log", e))?;
        let stdio_err = stdio
            .try_clone()
            .map_err(|e| TestkitError::io("cloning stdio.log handle", e))?;
        let mut cmd = Command::new(&self.binary);
        if let Some(path) = &self.config_file {
            cmd.arg(path);
        }
        if let Some(tls_port) = self.tls_port {
            cmd.arg("--tls-port")
                .arg(tls_port.to_string())
                .arg("--tls-cert-file")
                .arg(dir.join("cert.pem"))
                .arg("--tls-key-file")
                .arg(dir.join("key.pem"))
                .arg("--tls-ca-cert-file")
                .arg(dir.join("ca.pem"))
                .args(["--tls-auth-clients", "no"]);
        }
        cmd.arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(stdio)
            .stderr(stdio_err);
        let child = cmd.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                TestkitError::RedisServerNotFound {
                    searched: self.binary.display().to_string(),
                }
            } else {
                TestkitError::io(format!("spawning {}", self.binary.display()), e)
            }
        })?;
        self.child = Some(child);
        self.paused = false;
        let deadline = Instant::now() + self.startup_timeout;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return Err(TestkitError::ServerExited {
                    port: self.port,
                    status: status.to_string(),
                    log_tail: self.log_tail(),
                });
            }
            if ping(self.addr(), Duration::from_millis(250)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let log_tail = self.log_tail();
                let _ = self.kill();
                return Err(TestkitError::StartTimeout {
                    port: self.port,
                    timeout: self.startup_timeout,
                    log_tail,
                });
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

fn signal(pid: u32, sig: Signal) -> Result<()> {
    let raw = i32::try_from(pid).map_err(|_| TestkitError::Signal {
        signal: sig.as_str(),
        pid,
        source: nix::Error::EINVAL,
    })?;
    kill(Pid::from_raw(raw), sig).map_err(|source| TestkitError::Signal {
        signal: sig.as_str(),
        pid,
        source,
    })
}

fn reap_with_kill(child: &mut Child) -> Result<()> {
    // SIGKILL also ends a stopped process; SIGCONT first keeps it tidy.
    let _ = signal(child.id(), Signal::SIGCONT);
    match child.kill() {
        Ok(()) => {}
        // Already exited: fall through to reap it.
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {}
        Err(e) => return Err(TestkitError::io("killing redis-server", e)),
    }
    child
        .wait()
        .map(|_| ())
        .map_err(|e| TestkitError::io("waiting for redis-server to exit", e))
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = reap_with_kill(&mut child);
        }
    }
}
