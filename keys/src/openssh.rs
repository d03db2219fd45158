//! OpenSSH key formats for API users: a public key line
//! (`ssh-ed25519 AAAA… comment`) and an unencrypted `openssh-key-v1`
//! private key file, as `ssh-keygen -t ed25519` writes them.

use std::path::Path;

use ed25519_dalek::{SigningKey, VerifyingKey};
use thiserror::Error;

/// Why an OpenSSH key was refused.
#[derive(Debug, Error)]
pub enum OpenSshError {
    /// Not an OpenSSH public key line.
    #[error("not an OpenSSH public key line ({0})")]
    BadPublic(String),
    /// Not an OpenSSH private key.
    #[error("{path}: not an OpenSSH private key ({reason})")]
    BadPrivate {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A key of another algorithm.
    #[error("a {0} key; only ssh-ed25519 keys sign API requests")]
    NotEd25519(String),
    /// A passphrase-protected private key.
    #[error(
        "{0}: the key is protected by a passphrase; give an unencrypted key (ssh-keygen -p -N '' -f FILE on a copy)"
    )]
    Encrypted(String),
    /// The file cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Parses `ssh-ed25519 AAAA… [comment]`.
pub fn public_from_line(line: &str) -> Result<VerifyingKey, OpenSshError> {
    let key = ssh_key::PublicKey::from_openssh(line.trim())
        .map_err(|e| OpenSshError::BadPublic(e.to_string()))?;
    let Some(ed) = key.key_data().ed25519() else {
        return Err(OpenSshError::NotEd25519(key.algorithm().to_string()));
    };
    VerifyingKey::from_bytes(&ed.0).map_err(|e| OpenSshError::BadPublic(e.to_string()))
}

/// The canonical line of a key, without a comment: `ssh-ed25519 AAAA…`.
pub fn public_to_line(key: &VerifyingKey) -> String {
    let data = ssh_key::public::KeyData::Ed25519(ssh_key::public::Ed25519PublicKey(key.to_bytes()));
    ssh_key::PublicKey::new(data, "")
        .to_openssh()
        .map(|l| l.trim_end().to_owned())
        .unwrap_or_default()
}

/// Reads an OpenSSH ed25519 private key file.
pub fn read_private(path: &Path) -> Result<SigningKey, OpenSshError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| OpenSshError::Io {
        path: shown.clone(),
        source,
    })?;
    let key =
        ssh_key::PrivateKey::from_openssh(text.trim()).map_err(|e| OpenSshError::BadPrivate {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
    if key.is_encrypted() {
        return Err(OpenSshError::Encrypted(shown));
    }
    match key.key_data() {
        ssh_key::private::KeypairData::Ed25519(pair) => {
            Ok(SigningKey::from_bytes(&pair.private.to_bytes()))
        }
        _ => Err(OpenSshError::NotEd25519(key.algorithm().to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_lines_round_trip_and_other_algorithms_are_refused() {
        let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
        let line = public_to_line(&key);
        assert!(line.starts_with("ssh-ed25519 AAAA"), "{line}");
        assert_eq!(
            public_from_line(&format!("{line} alice@desk")).ok(),
            Some(key)
        );
        let rsa = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC7 x";
        assert!(public_from_line(rsa).is_err());
        assert!(public_from_line("ssh-ed25519 not-base64").is_err());
    }
}
