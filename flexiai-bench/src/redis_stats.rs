//! Reading `INFO commandstats` from a bench server.

use std::collections::BTreeMap;

/// Calls per command name (lower case), `info` itself excluded.
#[derive(Debug, Clone, Default)]
pub(crate) struct CommandStats(pub(crate) BTreeMap<String, u64>);

/// One open connection that reads the counters (so its own set-up is not counted twice).
pub(crate) struct StatsReader {
    conn: redis::aio::MultiplexedConnection,
}

impl StatsReader {
    /// Connects to the bench server.
    pub(crate) async fn connect(url: &str) -> crate::Result<StatsReader> {
        let client = redis::Client::open(url)?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        // A saturated server (the scale section drives it there) answers late, not never.
        conn.set_response_timeout(std::time::Duration::from_secs(30));
        Ok(StatsReader { conn })
    }

    /// Reads the server's counters now.
    pub(crate) async fn read(&mut self) -> crate::Result<CommandStats> {
        let text: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.conn)
            .await?;
        Ok(CommandStats::parse(&text))
    }
}

impl CommandStats {
    /// Parses the text of `INFO commandstats`.
    pub(crate) fn parse(text: &str) -> CommandStats {
        let mut map = BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("cmdstat_") else {
                continue;
            };
            let Some((name, fields)) = rest.split_once(':') else {
                continue;
            };
            let calls = fields
                .split(',')
                .find_map(|f| f.strip_prefix("calls="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if name != "info" {
                map.insert(name.to_owned(), calls);
            }
        }
        CommandStats(map)
    }

    /// Counts since `earlier`.
    pub(crate) fn since(&self, earlier: &CommandStats) -> CommandStats {
        CommandStats(
            self.0
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.saturating_sub(earlier.0.get(k).copied().unwrap_or(0)),
                    )
                })
                .filter(|(_, v)| *v > 0)
                .collect(),
        )
    }

    /// Total calls.
    pub(crate) fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Calls of one command.
    pub(crate) fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }

    /// `evalsha 3, ping 2, ...`, largest first.
    pub(crate) fn breakdown(&self) -> String {
        let mut items: Vec<_> = self.0.iter().collect();
        items.sort_by(|a, b| b.1.cmp(a.1));
        items
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The server-wide counters the scale section reads from plain `INFO`: CPU seconds
/// (`used_cpu_sys` + `used_cpu_user`), bytes sent to clients (`total_net_output_bytes`),
/// commands processed (`total_commands_processed`, which counts the `INFO` calls too: two
/// per phase), and two gauges.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ServerInfo {
    /// `used_cpu_sys` + `used_cpu_user`, seconds.
    pub(crate) cpu_secs: f64,
    /// `total_net_output_bytes`.
    pub(crate) net_out_bytes: u64,
    /// `total_commands_processed`.
    pub(crate) commands: u64,
    /// `connected_clients`.
    pub(crate) clients: u64,
    /// `used_memory`, bytes.
    pub(crate) used_memory: u64,
}

impl ServerInfo {
    /// Parses the text of `INFO`.
    pub(crate) fn parse(text: &str) -> ServerInfo {
        let mut info = ServerInfo::default();
        for line in text.lines() {
            let Some((key, value)) = line.trim().split_once(':') else {
                continue;
            };
            let float = || value.parse::<f64>().unwrap_or(0.0);
            let int = || value.parse::<u64>().unwrap_or(0);
            match key {
                "used_cpu_sys" | "used_cpu_user" => info.cpu_secs += float(),
                "total_net_output_bytes" => info.net_out_bytes = int(),
                "total_commands_processed" => info.commands = int(),
                "connected_clients" => info.clients = int(),
                "used_memory" => info.used_memory = int(),
                _ => {}
            }
        }
        info
    }
}

impl StatsReader {
    /// Reads `INFO` (default sections) now.
    pub(crate) async fn info(&mut self) -> crate::Result<ServerInfo> {
        let text: String = redis::cmd("INFO").query_async(&mut self.conn).await?;
        Ok(ServerInfo::parse(&text))
    }
}
