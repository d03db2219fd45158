//! Job ids: 20-digit UTC timestamps `%Y%m%d%H%M%S%f`, as Salt's.

use std::fmt;

use chrono::{DateTime, NaiveDateTime};
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::ProtocolError;

const FORMAT: &str = "%Y%m%d%H%M%S%6f";

/// A job id: the UTC time the job was created, to the microsecond.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String))]
#[serde(transparent)]
pub struct Jid(String);

impl Jid {
    /// Parses and validates a jid.
    pub fn parse(s: &str) -> Result<Jid, ProtocolError> {
        let bad = || ProtocolError::InvalidJid {
            jid: s.chars().take(40).collect(),
        };
        if s.len() != 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        NaiveDateTime::parse_from_str(s, FORMAT).map_err(|_| bad())?;
        Ok(Jid(s.to_owned()))
    }

    /// The jid for a time given in unix microseconds.
    pub fn from_micros(micros: i64) -> Option<Jid> {
        let t = DateTime::from_timestamp_micros(micros)?;
        let s = t.format(FORMAT).to_string();
        (s.len() == 20).then_some(Jid(s))
    }

    /// The jid's time in unix microseconds.
    pub fn micros(&self) -> i64 {
        NaiveDateTime::parse_from_str(&self.0, FORMAT)
            .map(|t| t.and_utc().timestamp_micros())
            .unwrap_or(0)
    }

    /// The jid as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Jid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Jid::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Hands out unique, increasing jids: when two jobs start in the same
/// microsecond (or the clock steps back) the later one takes the next free
/// microsecond.
#[derive(Debug, Default)]
pub struct JidGenerator {
    last: i64,
}

impl JidGenerator {
    /// A generator that has handed out nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next jid for the current time `now_micros` (unix microseconds).
    pub fn next(&mut self, now_micros: i64) -> Jid {
        let t = now_micros.max(self.last + 1);
        self.last = t;
        // Times within chrono's range always format; fall back to the epoch.
        Jid::from_micros(t).unwrap_or_else(|| Jid("19700101000000000000".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_twenty_digits() {
        let jid = Jid::from_micros(1_700_000_000_123_456).expect("jid");
        assert_eq!(jid.as_str(), "20231114221320123456");
        assert_eq!(jid.micros(), 1_700_000_000_123_456);
    }

    #[test]
    fn same_microsecond_gives_distinct_increasing_jids() {
        let mut g = JidGenerator::new();
        let a = g.next(1_700_000_000_000_000);
        let b = g.next(1_700_000_000_000_000);
        let c = g.next(1_699_999_999_000_000);
        assert!(a < b && b < c, "{a} {b} {c}");
    }

    #[test]
    fn parse_refuses_garbage() {
        for s in ["", "2023", "2023111422132012345x", "20231399221320123456"] {
            assert!(Jid::parse(s).is_err(), "{s}");
        }
    }
}
