//! A private Redis Cluster made of [`RedisServer`]s, and a process-wide shared one.

use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::error::{Result, TestkitError};
use crate::resp::{command_ok, wait_until};
use crate::server::RedisServer;

/// Total hash slots of a Redis Cluster.
pub const SLOTS: u16 = 16384;

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A Redis Cluster of `redis-server` processes on free loopback ports: `masters` masters
/// with the slots split evenly (`CLUSTER ADDSLOTSRANGE`), joined with `CLUSTER MEET`, each
/// with `replicas` replicas (`CLUSTER REPLICATE`), ready once every node reports
/// `cluster_state:ok`. A short `cluster-node-timeout` (1 s) makes failovers quick.
///
/// Dropping it kills every node.
#[derive(Debug)]
pub struct RedisCluster {
    masters: Vec<RedisServer>,
    replicas: Vec<RedisServer>,
}

fn node(extra: &[&str]) -> Result<RedisServer> {
    RedisServer::builder()
        .args([
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "1000",
            "--cluster-replica-validity-factor",
            "0",
        ])
        .args(extra.iter().copied())
        .start()
}

impl RedisCluster {
    /// Starts `masters` masters (at least 1) with `replicas` replicas each.
    pub fn start(masters: usize, replicas: usize) -> Result<Self> {
        let masters_n = masters.max(1);
        let masters = (0..masters_n)
            .map(|_| node(&[]))
            .collect::<Result<Vec<_>>>()?;
        let replicas = (0..masters_n * replicas)
            .map(|_| node(&[]))
            .collect::<Result<Vec<_>>>()?;
        let cluster = Self { masters, replicas };
        let per = usize::from(SLOTS) / masters_n;
        for (i, master) in cluster.masters.iter().enumerate() {
            let start = i * per;
            let end = if i + 1 == masters_n {
                usize::from(SLOTS) - 1
            } else {
                (i + 1) * per - 1
            };
            command_ok(
                master.addr(),
                &[
                    "CLUSTER",
                    "ADDSLOTSRANGE",
                    &start.to_string(),
                    &end.to_string(),
                ],
            )?;
        }
        let first = cluster.masters[0].addr();
        for other in cluster.all().skip(1) {
            command_ok(
                first,
                &["CLUSTER", "MEET", "127.0.0.1", &other.port().to_string()],
            )?;
        }
        let total = cluster.all().count();
        for server in cluster.all() {
            wait_until("every node to know every other", READY_TIMEOUT, || {
                let nodes = command_ok(server.addr(), &["CLUSTER", "NODES"])?;
                Ok(nodes.lines().filter(|l| !l.trim().is_empty()).count() == total)
            })?;
        }
        for (i, replica) in cluster.replicas.iter().enumerate() {
            let master = &cluster.masters[i % masters_n];
            let id = command_ok(master.addr(), &["CLUSTER", "MYID"])?;
            wait_until("a replica to accept its master", READY_TIMEOUT, || {
                Ok(command_ok(replica.addr(), &["CLUSTER", "REPLICATE", &id]).is_ok())
            })?;
        }
        cluster.wait_ok()?;
        for replica in &cluster.replicas {
            wait_until("replication links to come up", READY_TIMEOUT, || {
                let info = command_ok(replica.addr(), &["INFO", "replication"])?;
                Ok(info.contains("master_link_status:up"))
            })?;
        }
        Ok(cluster)
    }

    /// A 3-master cluster without replicas shared by every test of this process (started
    /// on first use). Its nodes outlive the process's statics, so a watchdog process kills
    /// them and removes their directories when this process exits.
    pub fn shared() -> Result<&'static RedisCluster> {
        static SHARED: OnceLock<std::result::Result<RedisCluster, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                let cluster = RedisCluster::start(3, 0).map_err(|e| e.to_string())?;
                reap_on_exit(cluster.all()).map_err(|e| e.to_string())?;
                Ok(cluster)
            })
            .as_ref()
            .map_err(|reason| TestkitError::Topology {
                context: "starting the shared cluster".into(),
                reason: reason.clone(),
            })
    }

    fn all(&self) -> impl Iterator<Item = &RedisServer> {
        self.masters.iter().chain(self.replicas.iter())
    }

    /// Waits until every running node reports `cluster_state:ok`.
    pub fn wait_ok(&self) -> Result<()> {
        for server in self.all().filter(|s| s.pid().is_some()) {
            wait_until("cluster_state:ok", READY_TIMEOUT, || {
                let info = command_ok(server.addr(), &["CLUSTER", "INFO"])?;
                Ok(info.contains("cluster_state:ok"))
            })?;
        }
        Ok(())
    }

    /// `(host, port)` of every master, as seeds for a cluster client.
    pub fn seeds(&self) -> Vec<(String, u16)> {
        self.masters
            .iter()
            .map(|s| ("127.0.0.1".to_owned(), s.port()))
            .collect()
    }

    /// The masters the cluster started with (index `i` owns the `i`-th slot range).
    pub fn masters(&mut self) -> &mut [RedisServer] {
        &mut self.masters
    }

    /// The replicas; replica `i` replicates master `i % masters`.
    pub fn replicas(&mut self) -> &mut [RedisServer] {
        &mut self.replicas
    }

    /// The port of the master that serves `slot` now, asked of a running node.
    pub fn owner_of(&self, slot: u16) -> Result<u16> {
        let node = self
            .all()
            .find(|s| s.pid().is_some())
            .ok_or(TestkitError::NotRunning { port: 0 })?;
        let reply = command_ok(node.addr(), &["CLUSTER", "NODES"])?;
        for line in reply.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            for range in &fields[8..] {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                if let (Ok(lo), Ok(hi)) = (lo.parse::<u16>(), hi.parse::<u16>())
                    && (lo..=hi).contains(&slot)
                {
                    let port = fields[1]
                        .split(['@', ':'])
                        .nth(1)
                        .and_then(|p| p.parse().ok());
                    return port.ok_or_else(|| TestkitError::Topology {
                        context: "reading CLUSTER NODES".into(),
                        reason: format!("bad address {}", fields[1]),
                    });
                }
            }
        }
        Err(TestkitError::Topology {
            context: format!("finding the owner of slot {slot}"),
            reason: "no master serves it".into(),
        })
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`).
    pub fn slot_of(&self, key: &str) -> Result<u16> {
        let node = self
            .all()
            .find(|s| s.pid().is_some())
            .ok_or(TestkitError::NotRunning { port: 0 })?;
        let slot = command_ok(node.addr(), &["CLUSTER", "KEYSLOT", key])?;
        slot.parse().map_err(|_| TestkitError::Topology {
            context: "CLUSTER KEYSLOT".into(),
            reason: format!("unexpected reply {slot:?}"),
        })
    }

    /// Moves `slot` and its keys from its current master to the master on `to_port`, the
    /// way `redis-cli --cluster reshard` does: `SETSLOT IMPORTING` / `MIGRATING`, `MIGRATE`
    /// every key, then `SETSLOT NODE` on every master.
    pub fn migrate_slot(&self, slot: u16, to_port: u16) -> Result<()> {
        let from_port = self.owner_of(slot)?;
        let addr = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let (from, to) = (addr(from_port), addr(to_port));
        let from_id = command_ok(from, &["CLUSTER", "MYID"])?;
        let to_id = command_ok(to, &["CLUSTER", "MYID"])?;
        let slot_s = slot.to_string();
        command_ok(to, &["CLUSTER", "SETSLOT", &slot_s, "IMPORTING", &from_id])?;
        command_ok(from, &["CLUSTER", "SETSLOT", &slot_s, "MIGRATING", &to_id])?;
        loop {
            let keys = command_ok(from, &["CLUSTER", "GETKEYSINSLOT", &slot_s, "100"])?;
            let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
            if keys.is_empty() {
                break;
            }
            let port = to_port.to_string();
            let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
            args.extend(keys);
            command_ok(from, &args)?;
        }
        for master in self.masters.iter().filter(|s| s.pid().is_some()) {
            let role = command_ok(master.addr(), &["ROLE"])?;
            if role.starts_with("master") {
                command_ok(
                    master.addr(),
                    &["CLUSTER", "SETSLOT", &slot_s, "NODE", &to_id],
                )?;
            }
        }
        Ok(())
    }
}

/// Starts a watchdog shell that kills `servers` (and removes their directories) once this
/// process is gone, for servers held in statics, which are never dropped.
pub(crate) fn reap_on_exit<'a>(servers: impl Iterator<Item = &'a RedisServer>) -> Result<()> {
    let mut pids = Vec::new();
    let mut dirs = Vec::new();
    for server in servers {
        if let Some(pid) = server.pid() {
            pids.push(pid.to_string());
        }
        dirs.push(format!("'{}'", server.dir().display()));
    }
    let script = format!(
        "while kill -0 {parent} 2>/dev/null; do sleep 0.5; done; kill -9 {pids} 2>/dev/null; rm -rf {dirs}",
        parent = std::process::id(),
        pids = pids.join(" "),
        dirs = dirs.join(" "),
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|e| TestkitError::io("spawning the cluster watchdog", e))
}
