//! Redis implementation of the flexiai-rs [`SyncBackend`](flexiai_backend::SyncBackend).
//!
//! [`RedisBackend`] carries circuit-breaker state between worker processes through Redis
//! (redis-rs 1.8, deadpool-redis 0.23):
//!
//! * commands share one multiplexed connection taken from a deadpool-redis pool (which
//!   creates and health-checks it; it is dropped on any error and replaced from the pool on
//!   the next command), and every operation is bounded by
//!   [`RedisConfig::command_timeout`], so a slow or hung Redis yields
//!   [`BackendError::Timeout`](flexiai_backend::BackendError::Timeout) instead of blocking;
//! * each subscription has a dedicated RESP3 connection that resubscribes by itself after a
//!   disconnect, is kept alive by a periodic `PING` (which also revives it after its reconnect
//!   retries ran out), and reports every re-established subscription as
//!   [`Notification::Resubscribed`](flexiai_backend::Notification::Resubscribed), so the sync
//!   manager re-reads stored state after a gap; payloads that do not decode are rejected,
//!   counted and reported, never applied;
//! * the same holds on a Redis Cluster (one RESP3 cluster connection for commands, one for
//!   the subscription, global pub/sub) and through Redis Sentinel (the master is followed
//!   across failovers and subscriptions move with it); see [`RedisConfig::from_url`] for
//!   `redis+cluster://` and `redis+sentinel://`, and [`TopologyKind`];
//! * [`compare_and_set`](flexiai_backend::SyncBackend::compare_and_set) is one Lua script
//!   that checks the write is a successor of the stored revision, writes, and `PUBLISH`es
//!   the event, so store and stream agree;
//!   scripts run by `EVALSHA` and are reloaded when the server lost its script cache.
//!
//! # Key layout
//!
//! `{base}` is the prefix (`flexiai`) in the default [`KeyLayout::Plain`], and the prefix in
//! braces (`{flexiai}`, one Cluster hash slot per namespace) in [`KeyLayout::HashTagged`],
//! which a cluster requires; [`migrate_keys`] moves a namespace between them.
//!
//! | key | type | value | TTL |
//! |---|---|---|---|
//! | `{base}:state:{provider}` | string | the encoded [`BreakerSnapshot`](flexiai_events::BreakerSnapshot) (JSON or framed MessagePack) | state TTL (default 1 h) |
//! | `{base}:written:{provider}` | string | `{unix ms}:{SHA-1 of the snapshot}`: when the state key was written, by the server's `TIME` | state TTL |
//! | `{base}:lock:{name}` | string | the holder's random 128-bit token | the lease's TTL |
//! | `{base}:fence:{name}` | integer | the last fencing token (`INCR`) | none: only grows |
//! | `{base}:workers` | sorted set | worker ids scored by heartbeat expiry (server time, unix ms) | none; expired members are dropped on every heartbeat and read |
//! | `{base}:outcomes:{provider}:{period}` | hash | fleet outcome counts, `{slice}f` / `{slice}s` per time slice | the fleet window plus one slice |
//! | `{base}:storm:{provider}` | string | the period last seen with failures in its window | one window length |
//! | `{base}:reports:{provider}:{period}` | hash | reporter -> its last applied outcome report sequence | the fleet window plus one slice |
//!
//! Events go to the channel (default `flexiai:events`). The snapshot is a plain string so the
//! Python original (and `redis-cli GET`) can read it; the compare-and-set script reads its
//! `version` with Redis's built-in `cjson` / `cmsgpack`, a few microseconds per transition.
//! A snapshot without a version (written by Python) counts as version 0.
//!
//! # Scripts
//!
//! * CAS: `GET` the state, read its revision; if it is not the one the writer grew from
//!   return `{0, stored, age}`; otherwise `SET … PX ttl`, stamp the written key with the
//!   server's `TIME`, `PUBLISH` the event, return `{1}`.
//! * read (`get_state`, `get_states`): `GET` each state and its stamp, return each value
//!   with its age in server ms. Every snapshot read (and the stored one a lost
//!   compare-and-set returns) has its open period aged by that much
//!   ([`BreakerSnapshot::aged`](flexiai_events::BreakerSnapshot::aged)), so readers compare
//!   open periods as of now with no worker's clock involved. A stamp made for another value
//!   (a Python worker's `SET` since) is ignored: that value reads as written.
//! * acquire: `SET lock token NX PX ttl`, and only if that succeeded `INCR fence`.
//! * release / extend: compare the token, then `DEL` / `PEXPIRE`.
//! * record outcomes: read the server's `TIME`, `HINCRBY` each slice of counts into the
//!   period's hash under slice `(now - age) / slice_ms`, drop slices that left the window,
//!   sum the rest and return `{failures, successes}`; set the storm marker when they hold
//!   failures. A report whose reporter already has this sequence (or a higher one) in the
//!   period's reports hash is a resend after a lost reply: it adds nothing (`HGET`, then
//!   `HSET` of the new sequence when it is new). One command per provider per flush for a
//!   worker, whatever the fleet's size.
//! * heartbeat / live workers: `TIME`, `ZREMRANGEBYSCORE` the expired, `ZADD` / `ZRANGE`.
//! * [`compare_and_set_many`](flexiai_backend::SyncBackend::compare_and_set_many) pipelines
//!   the CAS script, one call per provider, in one round trip.
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use flexiai_backend::{CasOutcome, SyncBackend};
//! use flexiai_backend_redis::{RedisBackend, RedisConfig};
//! use flexiai_events::{BreakerSnapshot, CircuitState};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = RedisConfig::from_url("redis://127.0.0.1:6379/0")?
//!     .command_timeout(Duration::from_millis(200));
//! let backend = RedisBackend::connect(config).await?;
//!
//! let open = BreakerSnapshot::new(CircuitState::Open, 1);
//! assert_eq!(backend.compare_and_set("openai", &open, None, None).await?, CasOutcome::Applied);
//! assert_eq!(backend.get_state("openai").await?, Some(open));
//! # Ok(())
//! # }
//! ```

mod backend;
mod config;
mod connection;
mod error;
mod keys;
pub mod migrate;
mod scripts;
mod sentinel;
mod subscriber;

pub use backend::RedisBackend;
pub use config::{RedisConfig, TopologyKind};
pub use error::RedisBackendError;
pub use keys::KeyLayout;
pub use migrate::{MigrationReport, migrate_keys};

/// The commands a [`RedisBackend`] needs, as Redis ACL rules: `PING` (health and
/// keep-alive), `GET`, `MGET`, `SET`, `DEL`, `SCAN` (state; `SCAN` for the CLI's provider
/// listing), `ZREM` (a stopping worker), `EVALSHA` and `SCRIPT LOAD` (the Lua scripts, which
/// call `GET`, `SET`, `PUBLISH`, `INCR`, `DEL`, `PEXPIRE`, `TIME`, `HINCRBY`, `HGET`, `HSET`, `HGETALL`,
/// `HDEL`, `ZADD`, `ZRANGE`, `ZREMRANGEBYSCORE` themselves: Redis checks those against the
/// ACL too), `PUBLISH` and `SUBSCRIBE`. `AUTH` and `HELLO` are always allowed by Redis.
///
/// Add `+select` for a database other than 0, `+cluster|slots` on a Redis Cluster, and
/// `+role` on Sentinel-managed data nodes (the master is checked with `ROLE`). On Redis 7.2 and later the driver also sends
/// `CLIENT SETINFO` and ignores a refusal; add `+client|setinfo` to keep it out of the ACL log.
pub const ACL_COMMANDS: &[&str] = &[
    "-@all",
    "+ping",
    "+get",
    "+mget",
    "+set",
    "+del",
    "+scan",
    "+incr",
    "+pexpire",
    "+time",
    "+hincrby",
    "+hget",
    "+hset",
    "+hgetall",
    "+hdel",
    "+zadd",
    "+zrem",
    "+zrange",
    "+zremrangebyscore",
    "+evalsha",
    "+script|load",
    "+publish",
    "+subscribe",
];

/// The least a Redis ACL user needs to run a [`RedisBackend`] whose key prefix and channel
/// start with `namespace` (e.g. `flexiai`, covering `flexiai:state:*` and `flexiai:events`):
/// keys and channels matching `{namespace}:*`, and [`ACL_COMMANDS`]. With
/// [`KeyLayout::HashTagged`] the keys are `{{namespace}}:*` instead: replace the first rule.
///
/// ```
/// let rules = flexiai_backend_redis::minimal_acl_rules("flexiai");
/// assert_eq!(&rules[..2], ["~flexiai:*", "&flexiai:*"]);
/// // ACL SETUSER flexiai on >password ~flexiai:* &flexiai:* -@all +ping ...
/// println!("ACL SETUSER flexiai on >password {}", rules.join(" "));
/// ```
pub fn minimal_acl_rules(namespace: &str) -> Vec<String> {
    let mut rules = vec![format!("~{namespace}:*"), format!("&{namespace}:*")];
    rules.extend(ACL_COMMANDS.iter().map(|c| (*c).to_owned()));
    rules
}
