//! Key fingerprints: SHA-256 of the public key, colon-separated hex.

use std::fmt;

use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};

/// A key fingerprint such as `3f:a1:…` (32 bytes).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The fingerprint of a public key.
    pub fn of(key: &VerifyingKey) -> Fingerprint {
        let digest = Sha256::digest(key.as_bytes());
        let hex: Vec<String> = digest.iter().map(|b| format!("{b:02x}")).collect();
        Fingerprint(hex.join(":"))
    }

    /// The fingerprint as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `text` names this fingerprint (case and separators ignored).
    pub fn matches(&self, text: &str) -> bool {
        let norm = |s: &str| -> String {
            s.chars()
                .filter(char::is_ascii_hexdigit)
                .map(|c| c.to_ascii_lowercase())
                .collect()
        };
        norm(&self.0) == norm(text)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    #[test]
    fn is_colon_separated_sha256() {
        let k = SigningKey::from_bytes(&[7; 32]).verifying_key();
        let fp = Fingerprint::of(&k);
        assert_eq!(fp.as_str().len(), 32 * 3 - 1);
        assert_eq!(fp.as_str().split(':').count(), 32);
        assert!(fp.matches(&fp.as_str().replace(':', "").to_uppercase()));
    }
}
