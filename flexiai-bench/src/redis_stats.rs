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
        let conn = client.get_multiplexed_async_connection().await?;
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
