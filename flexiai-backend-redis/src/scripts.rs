//! The Lua scripts (key names come from [`crate::keys`]). Scripts run with `EVALSHA` and fall back to
//! `SCRIPT LOAD` + retry when the server's script cache is empty (after a restart).

use std::sync::LazyLock;

use redis::Script;

/// The Lua the scripts that write or read a snapshot share: the server's time `now` (unix
/// ms), the stamp a write leaves in the written-at key (`{now}:{SHA-1 of the value}`), the
/// age of a stored value by its stamp (`-1` when the stamp is missing or was made for
/// another value, such as one a Python worker `SET` since), and `store`, which writes
/// `KEYS[1]` and its stamp in `KEYS[2]` with a TTL in ms (`0`: none).
const WRITTEN: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function stamp_for(value)
  return string.format('%d:%s', now, redis.sha1hex(value))
end
local function age(key, value)
  local at, digest = string.match(redis.call('GET', key) or '', '^(%d+):(%x+)$')
  if at == nil or digest ~= redis.sha1hex(value) then
    return -1
  end
  return math.max(0, now - tonumber(at))
end
local function store(value, ttl)
  local stamp = stamp_for(value)
  if tonumber(ttl) > 0 then
    redis.call('SET', KEYS[1], value, 'PX', ttl)
    redis.call('SET', KEYS[2], stamp, 'PX', ttl)
  else
    redis.call('SET', KEYS[1], value)
    redis.call('SET', KEYS[2], stamp)
  end
end";

/// Successor-only compare-and-set that publishes the winning event in the same atomic step.
///
/// `KEYS[1]` state key; `KEYS[2]` its written-at key; `ARGV[1]` new version; `ARGV[2]` encoded snapshot; `ARGV[3]` TTL in
/// ms (`0`: none); `ARGV[4]` channel; `ARGV[5]` encoded event (empty: publish nothing);
/// `ARGV[6]` `1` when the writer requires signed snapshots; `ARGV[7]` a stored value the
/// writer could not read (empty: none), to be replaced whatever version it claims;
/// `ARGV[8]` new epoch; `ARGV[9]` `1` when the writer names the revision it grew from, then
/// `ARGV[10]` its epoch and `ARGV[11]` its version.
///
/// A readable stored value is replaced only when its revision (epoch, then version) is
/// exactly the expected one and the new revision is greater. Epochs and versions stay below
/// 2^53, so Lua's doubles hold them exactly.
///
/// The stored version is read from the stored value itself: JSON through `cjson`, a framed
/// MessagePack value (`0xc1`, schema byte, map) through `cmsgpack`, and a signed frame
/// (`0xc2`) by skipping its fixed 42-byte header to the inner payload (the script cannot
/// check the MAC; the writer does, and names a stored value that fails in `ARGV[7]`). A value
/// without a numeric `version` (a Python writer) counts as version 0; one that does not
/// decode, or is unsigned while signatures are required, counts as absent, so any write
/// repairs it.
/// Returns `{1}` when applied (the written-at key set to the server's `TIME` and the value's
/// SHA-1, as [`READ`] expects), `{0, stored, age}` when the stored value is not what the writer grew from (or not older than the new
/// one), `age` being the ms since it was written, or `-1` when not known.
pub(crate) static CAS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{WRITTEN}
local current = redis.call('GET', KEYS[1])
if current and current ~= ARGV[7] then
  local stored = 0
  local body = current
  if string.byte(current, 1) == 194 then
    body = string.sub(current, 43)
  elseif ARGV[6] == '1' then
    body = nil
  end
  local ok, decoded = pcall(function()
    if body == nil then
      return nil
    end
    if string.byte(body, 1) == 193 then
      return cmsgpack.unpack(string.sub(body, 3))
    end
    return cjson.decode(body)
  end)
  local epoch = 0
  if not ok or type(decoded) ~= 'table' then
    stored = -1
  else
    if type(decoded['version']) == 'number' then
      stored = decoded['version']
    end
    if type(decoded['epoch']) == 'number' then
      epoch = decoded['epoch']
    end
  end
  if stored >= 0 then
    local new_epoch, new_version = tonumber(ARGV[8]), tonumber(ARGV[1])
    if ARGV[9] ~= '1' or tonumber(ARGV[10]) ~= epoch or tonumber(ARGV[11]) ~= stored then
      return {{0, current, age(KEYS[2], current)}}
    end
    if new_epoch < epoch or (new_epoch == epoch and new_version <= stored) then
      return {{0, current, age(KEYS[2], current)}}
    end
  end
end
store(ARGV[2], ARGV[3])
if ARGV[5] ~= '' then
  redis.call('PUBLISH', ARGV[4], ARGV[5])
end
return {{1}}
"#
    ))
});

/// Stores a snapshot unconditionally (`set_state`), stamping when.
///
/// `KEYS[1]` state key; `KEYS[2]` its written-at key; `ARGV[1]` encoded snapshot; `ARGV[2]`
/// TTL in ms (`0`: none).
pub(crate) static STORE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{WRITTEN}
store(ARGV[1], ARGV[2])
return 1
"#
    ))
});

/// Reads snapshots with their age.
///
/// `KEYS` pairs: a state key, then its written-at key. Returns, per pair, the stored value
/// (nil when absent) and the ms since it was written by the server's `TIME` (`-1` when not
/// known: absent, or replaced by something that does not stamp, such as a Python worker's
/// `SET`: the stamp names the SHA-1 of the value it was made for).
pub(crate) static READ: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{WRITTEN}
local out = {{}}
for i = 1, #KEYS, 2 do
  local value = redis.call('GET', KEYS[i])
  local ms = -1
  if value then
    ms = age(KEYS[i + 1], value)
  end
  out[i] = value
  out[i + 1] = ms
end
return out
"#
    ))
});

/// Takes a lock and draws its fencing token atomically.
///
/// `KEYS[1]` lock key; `KEYS[2]` fence key; `ARGV[1]` owner token; `ARGV[2]` TTL in ms.
/// Returns the new fencing token, or 0 when somebody holds the lock.
pub(crate) static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0
",
    )
});

/// Compare-and-delete: `KEYS[1]` lock key; `ARGV[1]` owner token. Returns 1 if released.
pub(crate) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

/// Compare-and-expire: `KEYS[1]` lock key; `ARGV[1]` owner token; `ARGV[2]` TTL in ms.
/// Returns 1 if extended.
pub(crate) static EXTEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
",
    )
});

/// Adds one worker's outcome counts to a provider's fleet window and returns the totals.
///
/// `KEYS[1]` outcomes hash, `KEYS[2]` storm marker, `KEYS[3]` applied reports (all from
/// [`Keys::fleet`](crate::keys::Keys::fleet)); `ARGV[1]` slice length in ms; `ARGV[2]` slices
/// in the window; `ARGV[3]` the period; `ARGV[4]` the reporter (empty: the batch has no
/// report id) and `ARGV[5]` its sequence; then triples `age_ms, failures, successes`. Time is
/// the server's `TIME`, so workers' clocks never matter: a triple is filed under slice
/// `floor((now - age) / slice)` unless that has left the window. Slices that left the window
/// are deleted; the hash expires one slice after the window when nobody writes. When the
/// window holds failures after a write, the storm marker is set to the period for one window
/// length. A report whose reporter already has this or a higher sequence in `KEYS[3]` (a
/// resend after a lost reply) writes nothing; otherwise its sequence is stored there, with
/// the outcomes hash's expiry. Sequences stay below 2^53, so Lua's doubles compare them
/// exactly. Returns `{failures, successes}`.
pub(crate) static RECORD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local slice = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local oldest = math.floor(now / slice) - n + 1
local wrote = false
local first = 6
if ARGV[4] ~= '' then
  local last = redis.call('HGET', KEYS[3], ARGV[4])
  if last and tonumber(last) >= tonumber(ARGV[5]) then
    first = #ARGV + 1
  else
    redis.call('HSET', KEYS[3], ARGV[4], ARGV[5])
    redis.call('PEXPIRE', KEYS[3], slice * (n + 1))
  end
end
for i = first, #ARGV, 3 do
  local b = math.floor((now - tonumber(ARGV[i])) / slice)
  if b >= oldest then
    local f = tonumber(ARGV[i + 1])
    local s = tonumber(ARGV[i + 2])
    if f > 0 then
      redis.call('HINCRBY', KEYS[1], b .. 'f', f)
      wrote = true
    end
    if s > 0 then
      redis.call('HINCRBY', KEYS[1], b .. 's', s)
      wrote = true
    end
  end
end
local failures, successes = 0, 0
local all = redis.call('HGETALL', KEYS[1])
local stale = {}
for i = 1, #all, 2 do
  local field = all[i]
  local b = tonumber(string.sub(field, 1, -2))
  if b == nil or b < oldest then
    stale[#stale + 1] = field
  elseif string.sub(field, -1) == 'f' then
    failures = failures + tonumber(all[i + 1])
  else
    successes = successes + tonumber(all[i + 1])
  end
end
if #stale > 0 then
  redis.call('HDEL', KEYS[1], unpack(stale))
end
if wrote then
  redis.call('PEXPIRE', KEYS[1], slice * (n + 1))
  if failures > 0 then
    redis.call('SET', KEYS[2], ARGV[3], 'PX', slice * n)
  end
end
return {failures, successes}
",
    )
});

/// Heartbeat into the live-workers sorted set, by the server's clock.
///
/// `KEYS[1]` workers set; `ARGV[1]` worker id; `ARGV[2]` TTL in ms. Drops expired members,
/// then scores this one with its expiry time.
pub(crate) static HEARTBEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return 1
",
    )
});

/// The live workers: `KEYS[1]` workers set. Drops expired members and returns the rest.
pub(crate) static LIVE_WORKERS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
",
    )
});
