//! Event authentication: keyed MACs over encoded payloads.
//!
//! With an [`EventAuth`] configured, a [`StateSerializer`](crate::StateSerializer) wraps every
//! payload it writes in a *signed frame* and refuses every payload it reads that is not one,
//! or whose MAC does not verify under a key it holds.
//!
//! ```text
//! offset  size  field
//! 0       1     0xc2 (SIGNED_FRAME_MARKER: neither `{`, whitespace, nor the 0xc1 MessagePack marker)
//! 1       1     frame version (1)
//! 2       8     key id: 8 lowercase hex digits naming the key (derived from the key itself)
//! 10      32    HMAC-SHA256 tag
//! 42      ..    the inner payload, exactly as the unsigned codec writes it (JSON or 0xc1 frame)
//! ```
//!
//! The tag covers a domain-separation label, the frame version, the key id, the *context* and
//! the inner bytes, where the context is `event:{channel}` for events and `state:{key}` for
//! stored snapshots. A payload signed for one channel or key therefore fails on any other,
//! and a stored snapshot can't be replayed as an event (or the reverse). Because the header
//! has a fixed length, a Lua script that only needs the inner payload (the compare-and-set
//! reading the stored version) skips the first [`SIGNED_HEADER_LEN`] bytes.

use std::fmt;
use std::time::{Duration, SystemTime};

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::SerdeError;

/// First byte of a signed frame.
pub const SIGNED_FRAME_MARKER: u8 = 0xc2;
/// The signed frame's layout version; readers reject any other.
pub const SIGNED_FRAME_VERSION: u8 = 1;
/// Length of the key id in a signed frame (8 lowercase hex digits).
pub const KEY_ID_LEN: usize = 8;
/// Length of the HMAC-SHA256 tag.
pub const MAC_LEN: usize = 32;
/// Length of the whole signed-frame header; the inner payload starts here.
pub const SIGNED_HEADER_LEN: usize = 2 + KEY_ID_LEN + MAC_LEN;

const MAC_LABEL: &[u8] = b"flexiai-mac-v1\0";
const KEY_ID_LABEL: &[u8] = b"flexiai-key-id-v1\0";

type HmacSha256 = Hmac<Sha256>;

/// Whether `bytes` starts like a signed frame (it may still be truncated or forged).
pub fn is_signed_frame(bytes: &[u8]) -> bool {
    bytes.first() == Some(&SIGNED_FRAME_MARKER)
}

/// A shared secret for event MACs.
///
/// Its id (8 hex digits of a hash of the secret) travels in every frame so a receiver knows
/// which of its keys to check; every worker given the same secret derives the same id. The
/// secret never appears in `Debug` or `Display` output.
///
/// ```
/// use flexiai_serde::MacKey;
///
/// let key = MacKey::new("a long, random shared secret")?;
/// assert_eq!(key.id().len(), 8);
/// assert!(!format!("{key:?} {key}").contains("shared secret"));
/// assert!(MacKey::new("short").is_err());
/// # Ok::<(), flexiai_serde::SerdeError>(())
/// ```
#[derive(Clone)]
pub struct MacKey {
    id: [u8; KEY_ID_LEN],
    /// HMAC state keyed with the secret, cloned for every tag.
    keyed: HmacSha256,
}

impl MacKey {
    /// The shortest secret accepted, in bytes.
    pub const MIN_LEN: usize = 16;
    /// The longest secret accepted, in bytes.
    pub const MAX_LEN: usize = 1024;

    /// A key from a secret of [`MIN_LEN`](Self::MIN_LEN) to [`MAX_LEN`](Self::MAX_LEN) bytes.
    /// The error never contains the secret.
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, SerdeError> {
        let secret = secret.as_ref();
        if secret.len() < Self::MIN_LEN {
            return Err(SerdeError::InvalidKey {
                reason: "must be at least 16 bytes",
            });
        }
        if secret.len() > Self::MAX_LEN {
            return Err(SerdeError::InvalidKey {
                reason: "must be at most 1024 bytes",
            });
        }
        let mut hasher = Sha256::new();
        hasher.update(KEY_ID_LABEL);
        hasher.update(secret);
        let digest = hasher.finalize();
        let mut id = [0u8; KEY_ID_LEN];
        for (i, byte) in digest.iter().take(KEY_ID_LEN / 2).enumerate() {
            id[2 * i] = hex_digit(byte >> 4);
            id[2 * i + 1] = hex_digit(byte & 0x0f);
        }
        let keyed = HmacSha256::new_from_slice(secret).map_err(|_| SerdeError::InvalidKey {
            reason: "rejected by HMAC-SHA256",
        })?;
        Ok(Self { id, keyed })
    }

    /// The key's id, 8 lowercase hex digits.
    pub fn id(&self) -> &str {
        // Always ASCII hex digits, by construction.
        std::str::from_utf8(&self.id).unwrap_or("????????")
    }

    fn mac(&self, context: &[u8], inner: &[u8]) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(MAC_LABEL);
        mac.update(&[SIGNED_FRAME_VERSION]);
        mac.update(&self.id);
        mac.update(&(context.len() as u64).to_be_bytes());
        mac.update(context);
        mac.update(inner);
        mac
    }
}

fn hex_digit(nibble: u8) -> u8 {
    match nibble {
        0..=9 => b'0' + nibble,
        _ => b'a' + (nibble - 10),
    }
}

impl fmt::Debug for MacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MacKey")
            .field("id", &self.id())
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl fmt::Display for MacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MAC key {}", self.id())
    }
}

/// The keys a worker signs with and accepts: the current key, and optionally the previous
/// one, accepted (never used to sign) until its grace period ends, so a fleet can rotate keys
/// one worker at a time.
///
/// ```
/// use std::time::Duration;
/// use flexiai_serde::{EventAuth, MacKey};
///
/// let old = MacKey::new("the key we are rotating away from")?;
/// let new = MacKey::new("the key every worker moves to now")?;
/// let auth = EventAuth::new(new).with_previous(old, Duration::from_secs(3600));
/// assert!(!format!("{auth:?}").contains("rotating"));
/// # Ok::<(), flexiai_serde::SerdeError>(())
/// ```
#[derive(Clone)]
pub struct EventAuth {
    current: MacKey,
    previous: Option<(MacKey, SystemTime)>,
}

impl EventAuth {
    /// Signs with `current` and accepts only it.
    pub fn new(current: MacKey) -> Self {
        Self {
            current,
            previous: None,
        }
    }

    /// Also accepts `previous` for `grace` from now.
    #[must_use]
    pub fn with_previous(self, previous: MacKey, grace: Duration) -> Self {
        let until = SystemTime::now()
            .checked_add(grace)
            .unwrap_or_else(|| SystemTime::now() + Duration::from_secs(86_400 * 365));
        self.with_previous_until(previous, until)
    }

    /// Also accepts `previous` until `valid_until`.
    #[must_use]
    pub fn with_previous_until(mut self, previous: MacKey, valid_until: SystemTime) -> Self {
        self.previous = Some((previous, valid_until));
        self
    }

    /// The id of the key payloads are signed with.
    pub fn current_key_id(&self) -> &str {
        self.current.id()
    }

    /// The id of the previous key and when it stops being accepted, if one is configured.
    pub fn previous_key(&self) -> Option<(&str, SystemTime)> {
        self.previous
            .as_ref()
            .map(|(key, until)| (key.id(), *until))
    }

    /// Wraps `inner` in a signed frame bound to `context`.
    pub fn sign(&self, context: &[u8], inner: &[u8]) -> Vec<u8> {
        let tag = self.current.mac(context, inner).finalize().into_bytes();
        let mut out = Vec::with_capacity(SIGNED_HEADER_LEN + inner.len());
        out.push(SIGNED_FRAME_MARKER);
        out.push(SIGNED_FRAME_VERSION);
        out.extend_from_slice(&self.current.id);
        out.extend_from_slice(&tag);
        out.extend_from_slice(inner);
        out
    }

    /// Checks a signed frame bound to `context` and returns its inner payload.
    ///
    /// Unsigned payloads, truncated frames, unknown frame versions, unknown key ids, a
    /// previous key past its grace period and tags that do not verify are all errors; the
    /// tag comparison is constant-time.
    pub fn verify<'a>(&self, context: &[u8], frame: &'a [u8]) -> Result<&'a [u8], SerdeError> {
        let (key_id, tag, inner) = split_frame(frame)?;
        let key = if key_id == self.current.id {
            &self.current
        } else {
            match &self.previous {
                Some((previous, until)) if key_id == previous.id => {
                    if SystemTime::now() > *until {
                        return Err(SerdeError::ExpiredKey {
                            key_id: previous.id().to_owned(),
                        });
                    }
                    previous
                }
                _ => {
                    return Err(SerdeError::UnknownKeyId {
                        key_id: printable_key_id(key_id),
                    });
                }
            }
        };
        key.mac(context, inner)
            .verify_slice(tag)
            .map_err(|_| SerdeError::BadSignature {
                key_id: key.id().to_owned(),
            })?;
        Ok(inner)
    }
}

/// A signed frame's parts: key id, tag, inner payload.
type FrameParts<'a> = (&'a [u8], &'a [u8], &'a [u8]);

/// Splits a frame into key id, tag and inner payload, checking marker, version and length.
fn split_frame(frame: &[u8]) -> Result<FrameParts<'_>, SerdeError> {
    match frame {
        [] => Err(SerdeError::Empty),
        [SIGNED_FRAME_MARKER, rest @ ..] => {
            match rest.first() {
                None => return Err(SerdeError::MalformedFrame("truncated signed-frame header")),
                Some(&SIGNED_FRAME_VERSION) => {}
                Some(&other) => {
                    return Err(SerdeError::UnknownSchemaVersion {
                        found: u64::from(other),
                        supported: SIGNED_FRAME_VERSION,
                    });
                }
            }
            if frame.len() < SIGNED_HEADER_LEN {
                return Err(SerdeError::MalformedFrame("truncated signed-frame header"));
            }
            let key_id = &frame[2..2 + KEY_ID_LEN];
            let tag = &frame[2 + KEY_ID_LEN..SIGNED_HEADER_LEN];
            Ok((key_id, tag, &frame[SIGNED_HEADER_LEN..]))
        }
        _ => Err(SerdeError::Unsigned),
    }
}

/// An untrusted key id, made safe to log.
fn printable_key_id(id: &[u8]) -> String {
    id.iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() {
                char::from(b)
            } else {
                '?'
            }
        })
        .collect()
}

impl fmt::Debug for EventAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventAuth")
            .field("current", &self.current)
            .field("previous", &self.previous)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn key(s: &str) -> MacKey {
        MacKey::new(s).unwrap()
    }

    #[test]
    fn sign_and_verify() {
        let auth = EventAuth::new(key("0123456789abcdef-one"));
        let frame = auth.sign(b"event:c", b"{}");
        assert_eq!(frame.len(), SIGNED_HEADER_LEN + 2);
        assert_eq!(&frame[2..10], auth.current_key_id().as_bytes());
        assert_eq!(auth.verify(b"event:c", &frame).unwrap(), b"{}");
        assert!(matches!(
            auth.verify(b"event:other", &frame),
            Err(SerdeError::BadSignature { .. })
        ));
        assert_eq!(auth.verify(b"event:c", b"{}"), Err(SerdeError::Unsigned));
        assert!(matches!(
            auth.verify(b"event:c", &frame[..20]),
            Err(SerdeError::MalformedFrame(_))
        ));
    }

    #[test]
    fn key_ids_are_stable_hex() {
        let a = key("0123456789abcdef-one");
        assert_eq!(a.id(), key("0123456789abcdef-one").id());
        assert_ne!(a.id(), key("0123456789abcdef-two").id());
        assert!(a.id().bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn previous_key_until_grace_ends() {
        let old = key("0123456789abcdef-old");
        let new = key("0123456789abcdef-new");
        let frame = EventAuth::new(old.clone()).sign(b"x", b"payload");
        let rotating =
            EventAuth::new(new.clone()).with_previous(old.clone(), Duration::from_secs(60));
        assert_eq!(rotating.verify(b"x", &frame).unwrap(), b"payload");
        let expired = EventAuth::new(new.clone())
            .with_previous_until(old, SystemTime::now() - Duration::from_secs(1));
        assert!(matches!(
            expired.verify(b"x", &frame),
            Err(SerdeError::ExpiredKey { .. })
        ));
        assert!(matches!(
            EventAuth::new(new).verify(b"x", &frame),
            Err(SerdeError::UnknownKeyId { .. })
        ));
    }
}
