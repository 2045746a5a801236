//! Moving a namespace's keys between [`KeyLayout`](crate::KeyLayout)s (`flexiai migrate-keys`).
//!
//! Safe to run while workers write, and idempotent:
//!
//! * each stored snapshot is read from the source layout, decoded, and written to the
//!   target with the same version-checked compare-and-set the workers use (a target already
//!   holding that version or a newer one is left alone), then the source key is deleted only
//!   if it still holds exactly the bytes that were copied (a worker that wrote meanwhile
//!   keeps its write; the next run moves it);
//! * fencing counters are raised on the target to at least the source's value (they must
//!   only grow), and kept on the source for workers still on the old layout;
//! * locks and heartbeats are not copied: they expire within their TTLs and are re-made by
//!   the workers on the new layout.

use std::sync::LazyLock;

use flexiai_backend::{BackendError, CasOutcome, SyncBackend};
use redis::Script;

use crate::RedisBackend;

/// Deletes `KEYS[1]` (a snapshot) and `KEYS[2]` (its written stamp) only if `KEYS[1]` holds
/// exactly `ARGV[1]`. Returns 1 if deleted.
static DELETE_IF_EQUAL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

/// Raises the counter `KEYS[1]` to at least `ARGV[1]`. Returns the value afterwards.
static RAISE_TO: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local wanted = tonumber(ARGV[1])
if wanted > current then
  redis.call('SET', KEYS[1], ARGV[1])
  return wanted
end
return current
",
    )
});

/// What [`migrate_keys`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MigrationReport {
    /// Providers whose snapshot was written to the target layout.
    pub copied: Vec<String>,
    /// Providers the target already held at the same or a newer version (source removed).
    pub already_current: Vec<String>,
    /// Providers whose source snapshot changed while being moved, or does not decode: left
    /// in place (run again to move a changed one).
    pub left_in_place: Vec<String>,
    /// Fencing counters raised on the target.
    pub fences: usize,
}

/// Moves every stored snapshot and fencing counter of `source`'s namespace to `target`'s
/// (same Redis, same prefix, another [`KeyLayout`](crate::KeyLayout)). See the
/// [module docs](self) for why this is safe under concurrent writers and idempotent.
pub async fn migrate_keys(
    source: &RedisBackend,
    target: &RedisBackend,
) -> Result<MigrationReport, BackendError> {
    let mut report = MigrationReport::default();
    for provider in source.stored_providers().await? {
        let key = source.inner.keys.state(&provider);
        let written = source.inner.keys.written(&provider);
        // With its age, so the copy's open period ends when the original's does (the target
        // stamps the copy as written now).
        let (raw, age) = source.read_aged(&key, &written, "migrate_keys").await?;
        let Some(raw) = raw else { continue };
        let Ok(snapshot) = source.inner.serializer.deserialize_state_for(&key, &raw) else {
            tracing::warn!(%provider, "not moving an undecodable stored snapshot");
            report.left_in_place.push(provider);
            continue;
        };
        let snapshot = crate::backend::aged(snapshot, age);
        // `expected: None`: only an empty target takes the copy; anything already there was
        // written by a worker on the new layout and wins.
        let outcome = target
            .compare_and_set(&provider, &snapshot, None, None)
            .await?;
        let deleted: i64 = source
            .bounded("migrate_keys", async {
                let mut conn = source.conn("migrate_keys").await?;
                DELETE_IF_EQUAL
                    .key(&key)
                    .key(&written)
                    .arg(&raw)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(|e| source.redis_error(&e, "migrate_keys"))
            })
            .await?;
        match (outcome, deleted) {
            (_, 0) => report.left_in_place.push(provider),
            (CasOutcome::Applied, _) => report.copied.push(provider),
            (CasOutcome::Stale { .. }, _) => report.already_current.push(provider),
        }
    }
    let fence_prefix = source.inner.keys.fence_prefix();
    for key in source.scan(&fence_prefix, "migrate_keys").await? {
        let Some(name) = key.strip_prefix(&fence_prefix) else {
            continue;
        };
        let target_key = target.inner.keys.fence(name);
        let value: Option<u64> = source
            .bounded("migrate_keys", async {
                let mut conn = source.conn("migrate_keys").await?;
                redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| source.redis_error(&e, "migrate_keys"))
            })
            .await?;
        let Some(value) = value else { continue };
        target
            .bounded("migrate_keys", async {
                let mut conn = target.conn("migrate_keys").await?;
                RAISE_TO
                    .key(&target_key)
                    .arg(value)
                    .invoke_async::<u64>(&mut conn)
                    .await
                    .map_err(|e| target.redis_error(&e, "migrate_keys"))
            })
            .await?;
        report.fences += 1;
    }
    Ok(report)
}
