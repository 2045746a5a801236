//! Credentials and the text around them: [`Secret`] (zeroized on drop, never printed),
//! [`redact`] (removes a secret and URL passwords from text) and [`parse_env`] (one
//! environment value). One of each for the whole workspace, here because every crate that
//! handles a credential (the Redis backend, the sync config, the client) depends on this one
//! and it pulls in no network client.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// What [`Secret`]'s `Debug` and `Display` print, and what [`redact`] puts in a secret's place.
pub const REDACTED: &str = "<redacted>";

/// A credential (a Redis password, an event key, a provider API key).
///
/// `Debug` and `Display` print `<redacted>`, so it cannot leak through `{:?}` of a config or
/// an error, nor through a log line; [`expose`](Self::expose) is the only way to read it.
/// Its memory is overwritten with zeros when it is dropped (`zeroize`). It serializes as the
/// plain string, so a configuration file round-trips.
///
/// ```
/// use flexiai_backend::Secret;
///
/// let key = Secret::new("correct horse battery staple");
/// assert_eq!(format!("{key:?} {key}"), "<redacted> <redacted>");
/// assert_eq!(key.expose(), "correct horse battery staple");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(Zeroizing::new(secret.into()))
    }

    /// The secret itself; keep it out of logs and messages.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty (or only whitespace).
    pub fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl From<String> for Secret {
    fn from(secret: String) -> Self {
        Self::new(secret)
    }
}

impl From<&str> for Secret {
    fn from(secret: &str) -> Self {
        Self::new(secret)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

/// `text` with every occurrence of `secret` (when not empty) and the password of every
/// `scheme://user:password@host` URL in it replaced by `<redacted>`.
///
/// ```
/// use flexiai_backend::redact;
///
/// assert_eq!(redact("auth pw failed", Some("pw")), "auth <redacted> failed");
/// assert_eq!(
///     redact("cannot reach redis://app:hunter2@cache:6379/0", None),
///     "cannot reach redis://app:<redacted>@cache:6379/0"
/// );
/// ```
pub fn redact(text: &str, secret: Option<&str>) -> String {
    let text = match secret {
        Some(secret) if !secret.is_empty() => text.replace(secret, REDACTED),
        _ => text.to_owned(),
    };
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        // The authority ends at the path, the end of the word or the end of the text.
        let end = tail
            .find(|c: char| c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"')
            .unwrap_or(tail.len());
        let (authority, after) = tail.split_at(end);
        match authority.rsplit_once('@') {
            Some((userinfo, host)) if userinfo.contains(':') => {
                let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
                out.push_str(user);
                out.push(':');
                out.push_str(REDACTED);
                out.push('@');
                out.push_str(host);
            }
            _ => out.push_str(authority),
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Parses one environment value, trimmed; the error (the reason, for the caller's error that
/// names the variable) quotes the value.
pub fn parse_env<T: FromStr>(value: &str) -> Result<T, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("cannot parse {:?}", value.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_covers_secrets_and_url_passwords() {
        assert_eq!(
            redact("auth pw failed", Some("pw")),
            "auth <redacted> failed"
        );
        assert_eq!(redact("nothing", None), "nothing");
        assert_eq!(redact("x", Some("")), "x");
        assert_eq!(
            redact("redis://user:pw@host:1/0", None),
            "redis://user:<redacted>@host:1/0"
        );
        assert_eq!(redact("redis://:pw@host", None), "redis://:<redacted>@host");
        assert_eq!(redact("redis://host:6379", None), "redis://host:6379");
        assert_eq!(redact("redis://user@host", None), "redis://user@host");
        assert_eq!(
            redact("a rediss://u:p@h/1 and redis://v:q@i", None),
            "a rediss://u:<redacted>@h/1 and redis://v:<redacted>@i"
        );
    }

    #[test]
    fn secrets_round_trip_through_serde_and_never_print() {
        let secret: Secret = serde_json::from_str("\"hunter2\"").unwrap();
        assert_eq!(secret.expose(), "hunter2");
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"hunter2\"");
        assert_eq!(format!("{secret:?}/{secret}"), "<redacted>/<redacted>");
        assert!(Secret::new("  ").is_blank());
    }

    #[test]
    fn env_values_parse_trimmed() {
        assert_eq!(parse_env::<u16>(" 6380 "), Ok(6380));
        assert_eq!(parse_env::<bool>("true"), Ok(true));
        assert_eq!(parse_env::<u16>("x").unwrap_err(), "cannot parse \"x\"");
    }
}
