//! A private Sentinel group: one master, its replicas and Sentinels watching it.

use std::sync::OnceLock;
use std::time::Duration;

use crate::error::Result;
use crate::resp::{command_ok, wait_until};
use crate::server::RedisServer;

/// The name the group's Sentinels know the master by.
pub const MASTER_NAME: &str = "flexiai-master";

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A master, `replicas` replicas (`--replicaof`) and `sentinels` Sentinels
/// (`redis-server FILE --sentinel`, quorum 1, `down-after-milliseconds` 1000,
/// `failover-timeout` 3000), ready once every Sentinel knows every replica.
///
/// Dropping it kills every process.
#[derive(Debug)]
pub struct SentinelGroup {
    nodes: Vec<RedisServer>,
    sentinels: Vec<RedisServer>,
}

impl SentinelGroup {
    /// Starts the group.
    pub fn start(replicas: usize, sentinels: usize) -> Result<Self> {
        let master = RedisServer::start()?;
        let master_port = master.port().to_string();
        let mut nodes = vec![master];
        for _ in 0..replicas {
            nodes.push(
                RedisServer::builder()
                    .args(["--replicaof", "127.0.0.1", &master_port])
                    .start()?,
            );
        }
        for replica in &nodes[1..] {
            wait_until("replication links to come up", READY_TIMEOUT, || {
                let info = command_ok(replica.addr(), &["INFO", "replication"])?;
                Ok(info.contains("master_link_status:up"))
            })?;
        }
        let conf = format!(
            "sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 1\n\
             sentinel down-after-milliseconds {MASTER_NAME} 1000\n\
             sentinel failover-timeout {MASTER_NAME} 3000\n\
             sentinel parallel-syncs {MASTER_NAME} 1\n"
        );
        let sentinels = (0..sentinels.max(1))
            .map(|_| {
                RedisServer::builder()
                    .config_file(conf.clone())
                    .arg("--sentinel")
                    .start()
            })
            .collect::<Result<Vec<_>>>()?;
        let group = Self { nodes, sentinels };
        group.wait_known(replicas)?;
        Ok(group)
    }

    /// A master, one replica and one Sentinel shared by every test of this process (started
    /// on first use; a watchdog process kills them when this process exits).
    pub fn shared() -> Result<&'static SentinelGroup> {
        static SHARED: OnceLock<std::result::Result<SentinelGroup, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                let group = SentinelGroup::start(1, 1).map_err(|e| e.to_string())?;
                crate::cluster::reap_on_exit(group.nodes.iter().chain(group.sentinels.iter()))
                    .map_err(|e| e.to_string())?;
                Ok(group)
            })
            .as_ref()
            .map_err(|reason| crate::TestkitError::Topology {
                context: "starting the shared Sentinel group".into(),
                reason: reason.clone(),
            })
    }

    /// Waits until every Sentinel lists `replicas` healthy replicas of the master.
    fn wait_known(&self, replicas: usize) -> Result<()> {
        for sentinel in &self.sentinels {
            wait_until("Sentinels to discover the replicas", READY_TIMEOUT, || {
                let reply = command_ok(sentinel.addr(), &["SENTINEL", "REPLICAS", MASTER_NAME])?;
                let healthy = reply
                    .split("name\n")
                    .skip(1)
                    .filter(|r| !r.contains("s_down") && !r.contains("disconnected"))
                    .count();
                Ok(healthy >= replicas)
            })?;
        }
        Ok(())
    }

    /// `(host, port)` of every Sentinel.
    pub fn sentinel_addrs(&self) -> Vec<(String, u16)> {
        self.sentinels
            .iter()
            .map(|s| ("127.0.0.1".to_owned(), s.port()))
            .collect()
    }

    /// The data nodes: index 0 is the master the group started with, then the replicas.
    pub fn nodes(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }

    /// The Sentinels.
    pub fn sentinels(&mut self) -> &mut [RedisServer] {
        &mut self.sentinels
    }

    /// The port of the master the first running Sentinel names now.
    pub fn master_port(&self) -> Result<u16> {
        let sentinel = self
            .sentinels
            .iter()
            .find(|s| s.pid().is_some())
            .ok_or(crate::TestkitError::NotRunning { port: 0 })?;
        let reply = command_ok(
            sentinel.addr(),
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME],
        )?;
        reply
            .lines()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| crate::TestkitError::Topology {
                context: "asking a Sentinel for the master".into(),
                reason: format!("unexpected reply {reply:?}"),
            })
    }

    /// `SENTINEL FAILOVER`, then waits until the Sentinels name a new master that says so
    /// itself (`ROLE`), and the old one replicates it. Returns the new master's port.
    pub fn failover(&self) -> Result<u16> {
        let old = self.master_port()?;
        command_ok(
            self.sentinels[0].addr(),
            &["SENTINEL", "FAILOVER", MASTER_NAME],
        )?;
        let mut new = old;
        wait_until("the Sentinels to name a new master", READY_TIMEOUT, || {
            new = self.master_port()?;
            if new == old {
                return Ok(false);
            }
            let role = command_ok(std::net::SocketAddr::from(([127, 0, 0, 1], new)), &["ROLE"])?;
            Ok(role.starts_with("master"))
        })?;
        let old_addr = std::net::SocketAddr::from(([127, 0, 0, 1], old));
        wait_until("the old master to become a replica", READY_TIMEOUT, || {
            Ok(command_ok(old_addr, &["ROLE"])?.starts_with("slave"))
        })?;
        Ok(new)
    }
}
