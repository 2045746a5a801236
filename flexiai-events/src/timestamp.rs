use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::EventError;
use crate::error::truncate_for_message;

/// A UTC wall-clock instant with microsecond precision.
///
/// Human-readable formats (JSON) carry it as Python's `datetime.utcnow().isoformat()` does:
/// `2025-10-26T12:34:56.123456`, with no offset, which `datetime.fromisoformat` reads on every
/// Python 3 release. Binary formats (MessagePack) carry microseconds since the Unix epoch.
///
/// Reading is lenient where Python is: an offset-less string is UTC, a `Z` or `+hh:mm` offset
/// is honoured, the fraction may have 0 to 9 digits, the date and time may be separated by `T`
/// or a space, an integer is microseconds and a float is seconds since the epoch.
///
/// Timestamps are informational (logs, lag metrics, ordering of unversioned Python events).
/// Breaker logic never compares wall clocks across hosts: open time travels as a remaining
/// duration instead.
///
/// ```
/// use flexiai_events::Timestamp;
///
/// let t: Timestamp = "2025-10-26T12:34:56.123456".parse()?;
/// assert_eq!(t.to_string(), "2025-10-26T12:34:56.123456");
/// assert_eq!("2025-10-26T12:34:56.123456Z".parse::<Timestamp>()?, t);
/// # Ok::<(), flexiai_events::EventError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp {
    micros: i64,
}

#[cfg(feature = "testing")]
thread_local! {
    /// The wall clock [`Timestamp::now`] reads on this thread, if not the system's.
    static THREAD_CLOCK: std::cell::Cell<Option<fn() -> Timestamp>> = const { std::cell::Cell::new(None) };
}

/// Years outside 1..=9999 have no four-digit ISO form and are rejected.
const MIN_MICROS: i64 = -62_135_596_800_000_000; // 0001-01-01T00:00:00
const MAX_MICROS: i64 = 253_402_300_799_999_999; // 9999-12-31T23:59:59.999999

impl Timestamp {
    /// The current time: the system clock, or on a thread given a clock with
    /// [`set_thread_clock`](Self::set_thread_clock) (feature `testing`), that clock.
    pub fn now() -> Self {
        #[cfg(feature = "testing")]
        if let Some(clock) = THREAD_CLOCK.with(std::cell::Cell::get) {
            return clock();
        }
        Self::from(SystemTime::now())
    }

    /// Makes [`now`](Self::now) on the calling thread read `clock` instead of the system
    /// clock; `None` restores the system clock. For deterministic simulation (flexiai-sim),
    /// where a whole fleet runs as tasks of one current-thread runtime on virtual time, so
    /// every wall-clock read (event timestamps, operator overrides) must follow that time.
    #[cfg(feature = "testing")]
    pub fn set_thread_clock(clock: Option<fn() -> Timestamp>) {
        THREAD_CLOCK.with(|cell| cell.set(clock));
    }

    /// A timestamp from microseconds since the Unix epoch, or `None` outside years 1..=9999.
    pub const fn from_unix_micros(micros: i64) -> Option<Self> {
        if micros < MIN_MICROS || micros > MAX_MICROS {
            None
        } else {
            Some(Self { micros })
        }
    }

    /// Microseconds since the Unix epoch.
    pub const fn unix_micros(self) -> i64 {
        self.micros
    }

    /// Milliseconds since the Unix epoch.
    pub const fn unix_millis(self) -> i64 {
        self.micros.div_euclid(1_000)
    }

    /// How long after `earlier` this instant is, or zero if it is not later.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        let diff = self.micros.saturating_sub(earlier.micros);
        Duration::from_micros(u64::try_from(diff).unwrap_or(0))
    }

    fn to_datetime(self) -> DateTime<Utc> {
        // In range by construction; the epoch fallback is unreachable but keeps this total.
        DateTime::from_timestamp_micros(self.micros).unwrap_or(DateTime::UNIX_EPOCH)
    }

    fn parse(input: &str) -> Result<Self, EventError> {
        let invalid = || EventError::InvalidTimestamp {
            input: truncate_for_message(input),
        };
        let s = input.trim();
        if s.len() > 64 {
            return Err(invalid());
        }
        let micros = if let Ok(with_offset) = DateTime::parse_from_rfc3339(s) {
            with_offset.timestamp_micros()
        } else {
            let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
                .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f"))
                .map_err(|_| invalid())?;
            naive.and_utc().timestamp_micros()
        };
        Self::from_unix_micros(micros).ok_or_else(invalid)
    }
}

impl From<SystemTime> for Timestamp {
    fn from(time: SystemTime) -> Self {
        let micros = match time.duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_micros()).unwrap_or(MAX_MICROS),
            Err(before) => i64::try_from(before.duration().as_micros())
                .map(|m| -m)
                .unwrap_or(MIN_MICROS),
        };
        Self {
            micros: micros.clamp(MIN_MICROS, MAX_MICROS),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Always six fraction digits: Python 3.8-3.10 `fromisoformat` accepts only 3 or 6.
        write!(f, "{}", self.to_datetime().format("%Y-%m-%dT%H:%M:%S%.6f"))
    }
}

impl FromStr for Timestamp {
    type Err = EventError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_i64(self.micros)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Self-describing input either way: accept every representation, whatever
        // `is_human_readable` claims (serde's buffered content always claims true).
        deserializer.deserialize_any(TimestampVisitor)
    }
}

struct TimestampVisitor;

impl Visitor<'_> for TimestampVisitor {
    type Value = Timestamp;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an ISO-8601 timestamp string or microseconds since the Unix epoch")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
        Timestamp::parse(v).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
        Timestamp::from_unix_micros(v)
            .ok_or_else(|| E::custom(format_args!("timestamp {v} out of range")))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
        let v = i64::try_from(v).map_err(|_| E::custom("timestamp out of range"))?;
        self.visit_i64(v)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Timestamp, E> {
        // Python's `time.time()`: seconds as a float.
        let micros = v * 1e6;
        if !micros.is_finite() || micros < MIN_MICROS as f64 || micros > MAX_MICROS as f64 {
            return Err(E::custom("timestamp out of range"));
        }
        #[allow(clippy::cast_possible_truncation)]
        self.visit_i64(micros.round() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn python_isoformat_variants_are_read_as_utc() {
        let expected = ts("2025-10-26T12:34:56.123456+00:00");
        assert_eq!(ts("2025-10-26T12:34:56.123456"), expected);
        assert_eq!(ts("2025-10-26 12:34:56.123456"), expected);
        assert_eq!(ts("2025-10-26T12:34:56.123456Z"), expected);
        assert_eq!(ts("2025-10-26T14:34:56.123456+02:00"), expected);
        // `isoformat()` drops the fraction when it is zero.
        assert_eq!(ts("2025-10-26T12:34:56").unix_micros() % 1_000_000, 0);
        assert_eq!(
            ts("2025-10-26T12:34:56.123").unix_micros() % 1_000_000,
            123_000
        );
    }

    #[test]
    fn display_always_has_six_fraction_digits_and_no_offset() {
        assert_eq!(
            ts("2025-10-26T12:34:56").to_string(),
            "2025-10-26T12:34:56.000000"
        );
        assert_eq!(ts("1970-01-01T00:00:00Z").unix_micros(), 0);
    }

    #[test]
    fn garbage_and_out_of_range_inputs_are_errors() {
        for bad in [
            "",
            "yesterday",
            "2025-13-01T00:00:00",
            "2025-10-26T25:00:00",
            "10000-01-01T00:00:00",
        ] {
            assert!(
                bad.parse::<Timestamp>().is_err(),
                "{bad:?} should be rejected"
            );
        }
        assert!(Timestamp::from_unix_micros(i64::MAX).is_none());
        assert!(Timestamp::from_unix_micros(i64::MIN).is_none());
    }

    #[test]
    fn numbers_are_micros_and_floats_are_seconds() {
        let from_int: Timestamp = serde_json::from_str("1500000").unwrap();
        assert_eq!(from_int.unix_micros(), 1_500_000);
        let from_float: Timestamp = serde_json::from_str("1.5").unwrap();
        assert_eq!(from_float.unix_micros(), 1_500_000);
        assert!(serde_json::from_str::<Timestamp>("1e300").is_err());
    }

    #[test]
    fn durations_saturate() {
        let a = ts("2025-10-26T12:00:00");
        let b = ts("2025-10-26T12:00:01.5");
        assert_eq!(b.saturating_duration_since(a), Duration::from_millis(1500));
        assert_eq!(a.saturating_duration_since(b), Duration::ZERO);
    }
}
