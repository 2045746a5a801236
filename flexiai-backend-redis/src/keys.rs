//! The key layout: every key name the backend and its scripts use is built here.
//!
//! Two layouts share one shape, `{base}:{kind}:{name}`:
//!
//! * [`KeyLayout::Plain`]: `base` is the prefix (`flexiai:state:openai`), as the Python
//!   original reads it;
//! * [`KeyLayout::HashTagged`]: `base` is the prefix in braces (`{flexiai}:state:openai`).
//!   Redis Cluster hashes only the part between the first `{` and `}`, so every key of a
//!   namespace lands in one slot: a script touching a lock and its fence, an `MGET` of every
//!   provider and a `SCAN` of the namespace all stay on one node. That is why the prefix and
//!   provider names may not contain braces (a `}` in a provider name would end no tag, but a
//!   `{` in the prefix would move the tag).

use std::fmt;
use std::str::FromStr;

/// How keys are named (see the [crate docs](crate) for the full layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum KeyLayout {
    /// `{prefix}:state:{provider}`: the Python original's names. Refused on Redis Cluster,
    /// where a script's keys would hash to different slots (`CROSSSLOT`).
    #[default]
    Plain,
    /// `{{prefix}}:state:{provider}` (e.g. `{flexiai}:state:openai`): one hash slot per
    /// namespace. Required on Redis Cluster, opt-in elsewhere.
    HashTagged,
}

impl KeyLayout {
    /// The layout's name in configuration (`plain`, `hash-tagged`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::HashTagged => "hash-tagged",
        }
    }

    /// The start every key of the namespace shares: `prefix` or `{prefix}`.
    pub fn base(self, prefix: &str) -> String {
        match self {
            Self::Plain => prefix.to_owned(),
            Self::HashTagged => format!("{{{prefix}}}"),
        }
    }
}

impl fmt::Display for KeyLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyLayout {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "plain" => Ok(Self::Plain),
            "hash-tagged" | "hash_tagged" | "hashtagged" => Ok(Self::HashTagged),
            _ => Err("expected `plain` or `hash-tagged`".to_owned()),
        }
    }
}

/// Builds the keys of one namespace in one layout.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    base: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str, layout: KeyLayout) -> Self {
        Self {
            base: layout.base(prefix),
        }
    }

    /// `{base}:state:{provider}`: the encoded snapshot, a plain string with the state TTL.
    pub(crate) fn state(&self, provider: &str) -> String {
        format!("{}:state:{provider}", self.base)
    }

    /// `{base}:written:{provider}`: when the snapshot at [`state`](Self::state) was written,
    /// in the server's unix ms (`TIME`), with the state's TTL: reads age the stored open
    /// period by the time since (see `BreakerSnapshot::aged`). Outside the `state:` prefix,
    /// so a `SCAN` of the snapshots never meets it.
    pub(crate) fn written(&self, provider: &str) -> String {
        format!("{}:written:{provider}", self.base)
    }

    /// The part of a state key before the provider.
    pub(crate) fn state_prefix(&self) -> String {
        format!("{}:state:", self.base)
    }

    /// `{base}:lock:{name}`: the owner token, with the lease TTL.
    pub(crate) fn lock(&self, name: &str) -> String {
        format!("{}:lock:{name}", self.base)
    }

    /// `{base}:fence:{name}`: the fencing counter, no TTL.
    pub(crate) fn fence(&self, name: &str) -> String {
        format!("{}:fence:{name}", self.base)
    }

    /// The part of a fence key before the lock name.
    pub(crate) fn fence_prefix(&self) -> String {
        format!("{}:fence:", self.base)
    }

    /// `{base}:workers`: live workers, a sorted set of worker ids scored by the store
    /// time (unix ms) their heartbeat expires at. Scored by expiry rather than by beat time
    /// because each worker names its own TTL.
    pub(crate) fn workers(&self) -> String {
        format!("{}:workers", self.base)
    }

    /// The keys of one provider's fleet counting, the only keys
    /// [`RECORD`](crate::scripts::RECORD) touches: `{base}:outcomes:{provider}:{period}` (a
    /// hash of `{slice}f` / `{slice}s` counters, expiring with the window),
    /// `{base}:storm:{provider}` (the period last seen with failures, expiring after one
    /// window) and `{base}:reports:{provider}:{period}` (a hash of reporter -> last applied
    /// report sequence, expiring with the counters). In the hash-tagged layout all three
    /// share the namespace's slot.
    pub(crate) fn fleet(&self, provider: &str, period: u64) -> FleetKeys {
        FleetKeys {
            outcomes: format!("{}:outcomes:{provider}:{period}", self.base),
            storm: self.storm(provider),
            reports: format!("{}:reports:{provider}:{period}", self.base),
        }
    }

    /// `{base}:storm:{provider}`: see [`fleet`](Self::fleet).
    pub(crate) fn storm(&self, provider: &str) -> String {
        format!("{}:storm:{provider}", self.base)
    }

    /// A key in the namespace's slot (hash-tagged layout), to route a keyless command such
    /// as `SCAN` to the node that holds the namespace.
    pub(crate) fn slot_key(&self) -> String {
        self.state_prefix()
    }

    /// A `SCAN MATCH` pattern for every key starting with `start` (a `*_prefix()`), glob
    /// characters escaped.
    pub(crate) fn pattern(start: &str) -> String {
        let mut pattern = String::with_capacity(start.len() + 2);
        for c in start.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('*');
        pattern
    }
}

/// The keys of [`Keys::fleet`].
#[derive(Debug, Clone)]
pub(crate) struct FleetKeys {
    pub(crate) outcomes: String,
    pub(crate) storm: String,
    pub(crate) reports: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_layout_is_the_python_one() {
        let keys = Keys::new("fa", KeyLayout::Plain);
        assert_eq!(keys.state("openai"), "fa:state:openai");
        assert_eq!(keys.lock("probe"), "fa:lock:probe");
        assert_eq!(keys.fence("probe"), "fa:fence:probe");
        assert_eq!(keys.workers(), "fa:workers");
        let fleet = keys.fleet("openai", 7);
        assert_eq!(fleet.outcomes, "fa:outcomes:openai:7");
        assert_eq!(fleet.storm, "fa:storm:openai");
        assert_eq!(fleet.reports, "fa:reports:openai:7");
        assert_eq!(
            Keys::pattern(&Keys::new("a*b", KeyLayout::Plain).state_prefix()),
            "a\\*b:state:*"
        );
    }

    #[test]
    fn hash_tagged_layout_keeps_a_namespace_in_one_slot() {
        let keys = Keys::new("flexiai", KeyLayout::HashTagged);
        assert_eq!(keys.state("openai"), "{flexiai}:state:openai");
        assert_eq!(keys.lock("probe:openai"), "{flexiai}:lock:probe:openai");
        assert_eq!(keys.fence("probe:openai"), "{flexiai}:fence:probe:openai");
        assert_eq!(keys.workers(), "{flexiai}:workers");
        let slot = |key: &str| redis::cluster_routing::Slot::for_key(key);
        let expected = slot(&keys.slot_key());
        for key in [
            keys.state("openai"),
            keys.state("anthropic"),
            keys.lock("probe:openai"),
            keys.fence("probe:openai"),
            keys.workers(),
            keys.fleet("openai", 7).outcomes,
            keys.fleet("openai", 7).reports,
            keys.storm("openai"),
        ] {
            assert_eq!(slot(&key), expected, "{key}");
        }
        // The plain layout spreads them, which is what a cluster refuses.
        let plain = Keys::new("flexiai", KeyLayout::Plain);
        assert_ne!(
            slot(&plain.lock("probe:openai")),
            slot(&plain.fence("probe:openai"))
        );
    }

    #[test]
    fn layout_names_parse() {
        assert_eq!("hash-tagged".parse(), Ok(KeyLayout::HashTagged));
        assert_eq!("Plain".parse(), Ok(KeyLayout::Plain));
        assert!("braces".parse::<KeyLayout>().is_err());
        assert_eq!(KeyLayout::HashTagged.to_string(), "hash-tagged");
    }
}
