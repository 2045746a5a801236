//! [`ApiKey`]: a credential that never shows itself in `Debug`, `Display` or logs, and
//! [`scrub`], which keeps it out of provider error text.

use flexiai_backend::redact;

/// A provider API key: the workspace's one secret type, [`flexiai_backend::Secret`]
/// (zeroized on drop), under the name this crate has always used.
///
/// `Debug` and `Display` print `<redacted>`, so a key cannot leak through `{:?}` of a config,
/// a client or an error, nor through a log line. The only way to read it is
/// [`expose`](flexiai_backend::Secret::expose), which the HTTP adapters call when they set
/// the request header.
///
/// ```
/// use flexiai_client::ApiKey;
///
/// let key = ApiKey::new("sk-live-1234");
/// assert_eq!(format!("{key:?} {key}"), "<redacted> <redacted>");
/// assert_eq!(key.expose(), "sk-live-1234");
/// ```
pub type ApiKey = flexiai_backend::Secret;

/// [`redact`]s `key` (and URL passwords) from `text` (for provider error bodies that echo the
/// key back), and cuts it to at most `max` bytes on a character boundary.
pub(crate) fn scrub(text: &str, key: Option<&ApiKey>, max: usize) -> String {
    let mut out = redact(text, key.map(ApiKey::expose));
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
