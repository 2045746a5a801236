//! [`ApiKey`]: a credential that never shows itself in `Debug`, `Display` or logs.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A provider API key.
///
/// `Debug` and `Display` print `<redacted>`, so a key cannot leak through `{:?}` of a config,
/// a client or an error, nor through a log line. The only way to read it is
/// [`expose`](Self::expose), which the HTTP adapters call when they set the request header.
///
/// ```
/// use flexiai_client::ApiKey;
///
/// let key = ApiKey::new("sk-live-1234");
/// assert_eq!(format!("{key:?} {key}"), "<redacted> <redacted>");
/// assert_eq!(key.expose(), "sk-live-1234");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps `key`.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key itself. Only for building the request that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the key is empty (or only whitespace).
    pub fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for ApiKey {
    fn from(key: String) -> Self {
        Self(key)
    }
}

impl From<&str> for ApiKey {
    fn from(key: &str) -> Self {
        Self(key.to_owned())
    }
}

impl<'de> Deserialize<'de> for ApiKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

/// Replaces every occurrence of `key` in `text` with `<redacted>` (for provider error bodies
/// that echo the key back), and cuts `text` to at most `max` bytes on a character boundary.
pub(crate) fn scrub(text: &str, key: Option<&ApiKey>, max: usize) -> String {
    let mut out = match key {
        Some(k) if k.expose().len() >= 4 => text.replace(k.expose(), "<redacted>"),
        _ => text.to_owned(),
    };
    if out.len() > max {
        let mut cut = max;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_redacts_and_truncates() {
        let key = ApiKey::new("sk-secret-value");
        assert_eq!(
            scrub("bad key sk-secret-value given", Some(&key), 100),
            "bad key <redacted> given"
        );
        assert_eq!(scrub("ééé", None, 3), "é…");
        assert_eq!(scrub("abc", None, 3), "abc");
    }
}
