//! Minion ids.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::ProtocolError;

/// Longest minion id accepted, in bytes.
pub const MAX_ID_LEN: usize = 255;

/// A validated minion id: safe to use as a file name and in log lines.
///
/// Rules: not empty, at most 255 bytes, no `/`, `\`, `..`, NUL or control
/// characters, and not `.`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String))]
#[serde(transparent)]
pub struct MinionId(String);

impl MinionId {
    /// Validates `id`.
    pub fn new(id: impl Into<String>) -> Result<MinionId, ProtocolError> {
        let id = id.into();
        let reason = if id.is_empty() {
            Some("empty")
        } else if id.len() > MAX_ID_LEN {
            Some("longer than 255 bytes")
        } else if id.contains('/') || id.contains('\\') {
            Some("contains a path separator")
        } else if id.contains("..") || id == "." {
            Some("contains '..' or is '.'")
        } else if id.contains('\0') {
            Some("contains NUL")
        } else if id.chars().any(char::is_control) {
            Some("contains a control character")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(ProtocolError::InvalidMinionId {
                id: id.chars().take(64).collect(),
                reason,
            }),
            None => Ok(MinionId(id)),
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MinionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for MinionId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for MinionId {
    type Err = ProtocolError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MinionId::new(s)
    }
}

impl<'de> Deserialize<'de> for MinionId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        MinionId::new(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_ids() {
        for id in ["web01", "db-1.example.com", "a_b", "x"] {
            assert!(MinionId::new(id).is_ok(), "{id}");
        }
    }

    #[test]
    fn refuses_path_tricks_and_control_characters() {
        for id in [
            "",
            "a/b",
            "..",
            "a..b",
            "a\\b",
            "a\0b",
            "a\nb",
            ".",
            "../../etc/passwd",
        ] {
            assert!(MinionId::new(id).is_err(), "{id:?}");
        }
        assert!(MinionId::new("a".repeat(256)).is_err());
        assert!(MinionId::new("a".repeat(255)).is_ok());
    }

    #[test]
    fn deserializing_validates() {
        let bytes = rmp_serde::to_vec("../x").expect("encode");
        assert!(rmp_serde::from_slice::<MinionId>(&bytes).is_err());
    }
}
