use std::fmt;
use std::time::Duration;

use crate::BackendError;

/// Proof of holding a named distributed lock, returned by
/// [`acquire_lock`](crate::SyncBackend::acquire_lock).
///
/// Only the holder of the lease can extend or release the lock: the random `token` is
/// compared by the store. The `fencing_token` grows with every acquisition of the same name,
/// so a resource guarded by the lock can refuse a holder whose lease has since expired.
#[derive(Clone, PartialEq, Eq)]
pub struct LockLease {
    name: String,
    token: String,
    fencing_token: u64,
    ttl: Duration,
}

impl LockLease {
    /// Builds a lease; for backend implementations.
    pub fn new(
        name: impl Into<String>,
        token: impl Into<String>,
        fencing_token: u64,
        ttl: Duration,
    ) -> Self {
        Self {
            name: name.into(),
            token: token.into(),
            fencing_token,
            ttl,
        }
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The owner token the store compares on release and extend.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The fencing token of this acquisition: larger than that of every earlier one.
    pub fn fencing_token(&self) -> u64 {
        self.fencing_token
    }

    /// The TTL the lock was acquired or last extended with.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Records a successful extension.
    pub fn set_ttl(&mut self, ttl: Duration) {
        self.ttl = ttl;
    }
}

impl fmt::Debug for LockLease {
    // The token is a bearer credential for the lock: keep it out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockLease")
            .field("name", &self.name)
            .field("token", &"<redacted>")
            .field("fencing_token", &self.fencing_token)
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// A fresh random owner token: 128 bits from the OS, hex-encoded.
pub fn lock_token() -> Result<String, BackendError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| BackendError::Other {
        message: format!("no randomness for a lock token: {e}"),
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Checks a lock or heartbeat TTL: at least 1 ms (stores count in milliseconds) and at most a
/// day (anything longer is a bug, not a lease).
pub fn validate_ttl(field: &'static str, ttl: Duration) -> Result<(), BackendError> {
    if ttl < Duration::from_millis(1) || ttl > Duration::from_secs(86_400) {
        return Err(BackendError::InvalidArgument {
            field,
            reason: format!("{ttl:?} is outside 1 ms ..= 24 h"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex() {
        let a = lock_token().unwrap();
        let b = lock_token().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn debug_hides_the_token() {
        let lease = LockLease::new("l", "secret-token", 3, Duration::from_secs(1));
        assert!(!format!("{lease:?}").contains("secret-token"));
    }

    #[test]
    fn ttl_bounds() {
        assert!(validate_ttl("ttl", Duration::ZERO).is_err());
        assert!(validate_ttl("ttl", Duration::from_secs(86_401)).is_err());
        assert!(validate_ttl("ttl", Duration::from_millis(1)).is_ok());
    }
}
