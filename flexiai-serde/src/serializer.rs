use std::sync::Arc;

use flexiai_events::{BreakerSnapshot, Event};

use crate::{Codec, EventAuth, Format, JsonCodec, MessagePackCodec, SerdeError, is_signed_frame};

/// Bounds on what a reader accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Payloads longer than this many bytes are rejected before parsing. Default 64 KiB,
    /// far above any real event (a few hundred bytes).
    pub max_bytes: usize,
}

impl DecodeLimits {
    /// The default limit, 64 KiB.
    pub const DEFAULT_MAX_BYTES: usize = 64 * 1024;
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_bytes: Self::DEFAULT_MAX_BYTES,
        }
    }
}

/// The seed's `StateSerializer`: writes in one format, reads both.
///
/// Writing uses the [`Format`] it was built with. Reading detects the format from the first
/// bytes, so a fleet can switch formats one worker at a time. Reading also enforces
/// [`DecodeLimits`], and writing refuses to produce a payload that readers with the same
/// limits would reject.
///
/// With [`with_auth`](Self::with_auth), payloads are signed on the way out and must carry a
/// valid signature on the way in. The `*_on` / `*_for` methods bind the signature to the
/// channel or store key the payload travels on (backends use those); the plain methods bind
/// it to the empty channel / key. Without auth the context is ignored.
///
/// ```
/// use flexiai_events::{BreakerSnapshot, CircuitState};
/// use flexiai_serde::{DecodeLimits, Format, SerdeError, StateSerializer};
///
/// let serializer = StateSerializer::new(Format::Json).with_limits(DecodeLimits { max_bytes: 16 });
/// let err = serializer.deserialize_state(&[b' '; 17]).unwrap_err();
/// assert!(matches!(err, SerdeError::TooLarge { size: 17, limit: 16 }));
/// ```
#[derive(Debug, Clone, Default)]
pub struct StateSerializer {
    format: Format,
    limits: DecodeLimits,
    auth: Option<Arc<EventAuth>>,
}

impl StateSerializer {
    /// A serializer writing `format` with default limits.
    pub fn new(format: Format) -> Self {
        Self {
            format,
            limits: DecodeLimits::default(),
            auth: None,
        }
    }

    /// Signs everything written and requires a valid signature on everything read
    /// (`None`: no authentication, the default).
    ///
    /// ```
    /// use flexiai_events::{BreakerSnapshot, CircuitState};
    /// use flexiai_serde::{EventAuth, Format, MacKey, SerdeError, StateSerializer};
    ///
    /// let auth = EventAuth::new(MacKey::new("a shared secret of the whole fleet")?);
    /// let signed = StateSerializer::new(Format::Json).with_auth(auth);
    /// let snapshot = BreakerSnapshot::new(CircuitState::Open, 3);
    /// let bytes = signed.serialize_state_for("flexiai:state:openai", &snapshot)?;
    /// assert_eq!(signed.deserialize_state_for("flexiai:state:openai", &bytes)?, snapshot);
    /// // Bound to its key: the same bytes under another key are refused.
    /// let err = signed.deserialize_state_for("flexiai:state:other", &bytes).unwrap_err();
    /// assert_eq!(err.reason(), "bad_signature");
    /// // Unsigned input is refused.
    /// let plain = StateSerializer::new(Format::Json).serialize_state(&snapshot)?;
    /// assert_eq!(signed.deserialize_state(&plain), Err(SerdeError::Unsigned));
    /// # Ok::<(), SerdeError>(())
    /// ```
    #[must_use]
    pub fn with_auth(mut self, auth: impl Into<Option<EventAuth>>) -> Self {
        self.auth = auth.into().map(Arc::new);
        self
    }

    /// The authentication in force, if any.
    pub fn auth(&self) -> Option<&EventAuth> {
        self.auth.as_deref()
    }

    /// Replaces the limits.
    #[must_use]
    pub fn with_limits(mut self, limits: DecodeLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The format this serializer writes.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The limits this serializer enforces.
    pub fn limits(&self) -> DecodeLimits {
        self.limits
    }

    /// Encodes a breaker snapshot for the state store (signed for the empty key).
    pub fn serialize_state(&self, snapshot: &BreakerSnapshot) -> Result<Vec<u8>, SerdeError> {
        self.serialize_state_for("", snapshot)
    }

    /// Decodes a stored breaker snapshot, in either format (signed for the empty key).
    pub fn deserialize_state(&self, bytes: &[u8]) -> Result<BreakerSnapshot, SerdeError> {
        self.deserialize_state_for("", bytes)
    }

    /// Encodes a breaker snapshot to be stored under `key`.
    pub fn serialize_state_for(
        &self,
        key: &str,
        snapshot: &BreakerSnapshot,
    ) -> Result<Vec<u8>, SerdeError> {
        let inner = codec(self.format).encode_snapshot(snapshot)?;
        self.checked(self.seal(STATE_CONTEXT, key, inner))
    }

    /// Decodes a snapshot stored under `key`, in either format.
    pub fn deserialize_state_for(
        &self,
        key: &str,
        bytes: &[u8],
    ) -> Result<BreakerSnapshot, SerdeError> {
        let inner = self.open(STATE_CONTEXT, key, bytes)?;
        codec(detect(inner)?).decode_snapshot(inner)
    }

    /// Encodes an event for the channel (signed for the empty channel).
    pub fn serialize_event(&self, event: &Event) -> Result<Vec<u8>, SerdeError> {
        self.serialize_event_on("", event)
    }

    /// Decodes an event from the channel, in either format (signed for the empty channel).
    pub fn deserialize_event(&self, bytes: &[u8]) -> Result<Event, SerdeError> {
        self.deserialize_event_on("", bytes)
    }

    /// Encodes an event to be published on `channel`.
    pub fn serialize_event_on(&self, channel: &str, event: &Event) -> Result<Vec<u8>, SerdeError> {
        let inner = codec(self.format).encode_event(event)?;
        self.checked(self.seal(EVENT_CONTEXT, channel, inner))
    }

    /// Decodes an event received on `channel`, in either format.
    pub fn deserialize_event_on(&self, channel: &str, bytes: &[u8]) -> Result<Event, SerdeError> {
        let inner = self.open(EVENT_CONTEXT, channel, bytes)?;
        codec(detect(inner)?).decode_event(inner)
    }

    fn seal(&self, kind: &[u8], name: &str, inner: Vec<u8>) -> Vec<u8> {
        match &self.auth {
            Some(auth) => auth.sign(&context(kind, name), &inner),
            None => inner,
        }
    }

    /// Checks size and signature; returns the inner payload.
    fn open<'a>(&self, kind: &[u8], name: &str, bytes: &'a [u8]) -> Result<&'a [u8], SerdeError> {
        if bytes.len() > self.limits.max_bytes {
            return Err(SerdeError::TooLarge {
                size: bytes.len(),
                limit: self.limits.max_bytes,
            });
        }
        match &self.auth {
            Some(auth) => auth.verify(&context(kind, name), bytes),
            None if is_signed_frame(bytes) => Err(SerdeError::UnexpectedSignature),
            None => Ok(bytes),
        }
    }
}

const EVENT_CONTEXT: &[u8] = b"event:";
const STATE_CONTEXT: &[u8] = b"state:";

fn context(kind: &[u8], name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(kind.len() + name.len());
    out.extend_from_slice(kind);
    out.extend_from_slice(name.as_bytes());
    out
}

fn detect(bytes: &[u8]) -> Result<Format, SerdeError> {
    match bytes.first() {
        None => Err(SerdeError::Empty),
        Some(&first_byte) => Format::detect(bytes).ok_or(SerdeError::UnknownFormat { first_byte }),
    }
}

impl StateSerializer {
    fn checked(&self, bytes: Vec<u8>) -> Result<Vec<u8>, SerdeError> {
        if bytes.len() > self.limits.max_bytes {
            return Err(SerdeError::Encode {
                format: self.format,
                message: format!(
                    "{} bytes exceeds the decode limit of {} bytes",
                    bytes.len(),
                    self.limits.max_bytes
                ),
            });
        }
        Ok(bytes)
    }
}

fn codec(format: Format) -> &'static dyn Codec {
    match format {
        Format::Json => &JsonCodec,
        Format::MessagePack => &MessagePackCodec,
    }
}
