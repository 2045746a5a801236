//! A fault-injecting TCP proxy.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::error::{Result, TestkitError};

/// The faults currently injected.
#[derive(Debug, Clone, Default)]
struct Faults {
    blackhole: bool,
    latency: Duration,
    cut_generation: u64,
}

#[derive(Debug, Default)]
struct Counters {
    active: AtomicUsize,
    accepted: AtomicU64,
}

/// A TCP proxy on a free loopback port in front of a target address, with
/// runtime fault controls.
///
/// * pass (default): bytes flow both ways unchanged;
/// * [`cut`](Self::cut): close every current connection, keep accepting new ones;
/// * [`blackhole`](Self::blackhole): keep connections open but forward nothing,
///   like a dead network path. Bytes are held, not dropped, so turning the
///   blackhole off delivers them late (as TCP retransmission would);
/// * [`latency`](Self::latency): delay each chunk in each direction.
///
/// Needs a tokio runtime. Dropping it stops the accept loop and every
/// connection task.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    target: SocketAddr,
    control: watch::Sender<Faults>,
    counters: Arc<Counters>,
    accept_task: JoinHandle<()>,
}

impl FaultProxy {
    /// Start a proxy on `127.0.0.1:{free port}` forwarding to `target`.
    pub async fn start(target: SocketAddr) -> Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| TestkitError::io("binding the fault proxy", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| TestkitError::io("reading the fault proxy address", e))?;
        let (control, rx) = watch::channel(Faults::default());
        let counters = Arc::new(Counters::default());
        let accept_task = tokio::spawn(accept_loop(listener, target, rx, Arc::clone(&counters)));
        Ok(Self {
            addr,
            target,
            control,
            counters,
            accept_task,
        })
    }

    /// The proxy's listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `redis://127.0.0.1:{port}`, for pointing a Redis client at the proxy.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.addr.port())
    }

    /// The address the proxy forwards to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Back to normal: no blackhole, no latency.
    pub fn pass(&self) {
        self.control.send_modify(|f| {
            f.blackhole = false;
            f.latency = Duration::ZERO;
        });
    }

    /// Close all current connections; new connections are still accepted.
    pub fn cut(&self) {
        self.control.send_modify(|f| f.cut_generation += 1);
    }

    /// Turn the blackhole on or off.
    pub fn blackhole(&self, on: bool) {
        self.control.send_modify(|f| f.blackhole = on);
    }

    /// Delay every forwarded chunk by `delay`, in each direction.
    pub fn latency(&self, delay: Duration) {
        self.control.send_modify(|f| f.latency = delay);
    }

    /// Connections open right now.
    pub fn active_connections(&self) -> usize {
        self.counters.active.load(Ordering::SeqCst)
    }

    /// Connections accepted since start.
    pub fn total_connections(&self) -> u64 {
        self.counters.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Aborting the accept task drops its JoinSet, which aborts every connection.
        self.accept_task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    control: watch::Receiver<Faults>,
    counters: Arc<Counters>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => {
                    counters.accepted.fetch_add(1, Ordering::SeqCst);
                    connections.spawn(handle(socket, target, control.clone(), Arc::clone(&counters)));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

struct ActiveGuard(Arc<Counters>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn handle(
    client: TcpStream,
    target: SocketAddr,
    mut control: watch::Receiver<Faults>,
    counters: Arc<Counters>,
) {
    counters.active.fetch_add(1, Ordering::SeqCst);
    let _guard = ActiveGuard(counters);
    let generation = control.borrow_and_update().cut_generation;
    let upstream = tokio::select! {
        up = TcpStream::connect(target) => up,
        () = wait_cut(&mut control, generation) => return,
    };
    let Ok(upstream) = upstream else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (up_read, up_write) = upstream.into_split();
    // When either direction ends (EOF, error or cut), both sockets are dropped.
    tokio::select! {
        () = pump(client_read, up_write, control.clone(), generation) => {},
        () = pump(up_read, client_write, control, generation) => {},
    }
}

async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut control: watch::Receiver<Faults>,
    generation: u64,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            () = wait_cut(&mut control, generation) => return,
        };
        // Hold the chunk while the blackhole is on.
        let latency = loop {
            let faults = control.borrow_and_update().clone();
            if faults.cut_generation != generation {
                return;
            }
            if !faults.blackhole {
                break faults.latency;
            }
            if control.changed().await.is_err() {
                return;
            }
        };
        if !latency.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(latency) => {},
                () = wait_cut(&mut control, generation) => return,
            }
        }
        tokio::select! {
            written = to.write_all(&buf[..n]) => if written.is_err() { return },
            () = wait_cut(&mut control, generation) => return,
        }
    }
}

/// Resolves when the cut generation moves past `generation` or the proxy is dropped.
async fn wait_cut(control: &mut watch::Receiver<Faults>, generation: u64) {
    loop {
        if control.borrow_and_update().cut_generation != generation {
            return;
        }
        if control.changed().await.is_err() {
            return;
        }
    }
}
