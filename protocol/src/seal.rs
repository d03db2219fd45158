//! Confidentiality: XChaCha20-Poly1305 sealing with keys agreed over x25519.
//!
//! - The **channel key** between a minion and the master is static: x25519
//!   between the two ed25519 keys (converted to their Montgomery forms),
//!   through HKDF-SHA256 bound to the minion id. Requests and replies on the
//!   request socket are sealed with it.
//! - The **session key** seals publishes. The master makes it, hands it to
//!   each accepted minion sealed to that minion (an ephemeral x25519 key and
//!   the minion's key), and replaces it (a new epoch) when a key is deleted
//!   or rejected and on a period.
//!
//! Nothing here draws randomness or reads the clock: callers pass nonces and
//! ephemeral secrets.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use curve25519_dalek::MontgomeryPoint;
use ed25519_dalek::{SigningKey, VerifyingKey};
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::ProtocolError;

/// A 256-bit symmetric key.
#[derive(Clone, PartialEq, Eq)]
pub struct SymmetricKey(pub [u8; 32]);

impl std::fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SymmetricKey(..)")
    }
}

/// A sealed message: which key (a session epoch, or 0 for the channel key),
/// the nonce, and the ciphertext with its tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// Key id: the session epoch, or 0 for a channel key.
    pub key_id: u64,
    /// 24-byte XChaCha20 nonce.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// Ciphertext and Poly1305 tag.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

fn decrypt_err() -> ProtocolError {
    ProtocolError::Decrypt
}

impl Sealed {
    /// Seals `plaintext` under `key`, binding `aad`.
    pub fn seal(
        key: &SymmetricKey,
        key_id: u64,
        nonce: [u8; 24],
        aad: &[u8],
        plaintext: &[u8],
    ) -> Sealed {
        let cipher = XChaCha20Poly1305::new(&key.0.into());
        let ciphertext = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .unwrap_or_default();
        Sealed {
            key_id,
            nonce: nonce.to_vec(),
            ciphertext,
        }
    }

    /// Opens a sealed message under `key`, checking `aad`.
    pub fn open(&self, key: &SymmetricKey, aad: &[u8]) -> Result<Vec<u8>, ProtocolError> {
        let nonce: [u8; 24] = self
            .nonce
            .as_slice()
            .try_into()
            .map_err(|_| decrypt_err())?;
        let cipher = XChaCha20Poly1305::new(&key.0.into());
        cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: &self.ciphertext,
                    aad,
                },
            )
            .map_err(|_| decrypt_err())
    }

    /// Encodes for the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }

    /// Decodes from the wire, checking the size first.
    pub fn from_bytes(bytes: &[u8], max: usize) -> Result<Sealed, ProtocolError> {
        if bytes.len() > max {
            return Err(ProtocolError::FrameTooLarge {
                size: bytes.len(),
                max,
            });
        }
        rmp_serde::from_slice(bytes).map_err(|source| ProtocolError::MalformedEnvelope { source })
    }
}

fn dh(secret_scalar: [u8; 32], public: MontgomeryPoint) -> Result<[u8; 32], ProtocolError> {
    let shared = public.mul_clamped(secret_scalar).to_bytes();
    if shared == [0u8; 32] {
        return Err(ProtocolError::InvalidPublicKey);
    }
    Ok(shared)
}

fn kdf(shared: &[u8], info: &[&[u8]]) -> SymmetricKey {
    let hk = Hkdf::<Sha256>::new(Some(b"cmdb-kdf-v1"), shared);
    let mut okm = [0u8; 32];
    let _ = hk.expand_multi_info(info, &mut okm);
    SymmetricKey(okm)
}

/// The static channel key between `mine` and `theirs` for minion `minion_id`
/// (the same on both sides).
pub fn channel_key(
    mine: &SigningKey,
    theirs: &VerifyingKey,
    minion_id: &str,
) -> Result<SymmetricKey, ProtocolError> {
    let shared = dh(mine.to_scalar_bytes(), theirs.to_montgomery())?;
    Ok(kdf(&shared, &[b"cmdb channel", minion_id.as_bytes()]))
}

/// A session key sealed to one minion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedSessionKey {
    /// The key's epoch.
    pub epoch: u64,
    /// The master's ephemeral x25519 public key.
    #[serde(with = "serde_bytes")]
    pub ephemeral: Vec<u8>,
    /// The session key sealed under the agreed key.
    pub sealed: Sealed,
}

/// Seals the session key of `epoch` to the minion holding `recipient`.
pub fn seal_session_key(
    recipient: &VerifyingKey,
    minion_id: &str,
    ephemeral_secret: [u8; 32],
    nonce: [u8; 24],
    epoch: u64,
    key: &SymmetricKey,
) -> Result<SealedSessionKey, ProtocolError> {
    let eph_pub = MontgomeryPoint::mul_base_clamped(ephemeral_secret);
    let shared = dh(ephemeral_secret, recipient.to_montgomery())?;
    let wrap = kdf(
        &shared,
        &[b"cmdb session", minion_id.as_bytes(), eph_pub.as_bytes()],
    );
    let aad = epoch.to_be_bytes();
    Ok(SealedSessionKey {
        epoch,
        ephemeral: eph_pub.to_bytes().to_vec(),
        sealed: Sealed::seal(&wrap, epoch, nonce, &aad, &key.0),
    })
}

/// Opens a session key sealed to `me`.
pub fn open_session_key(
    me: &SigningKey,
    minion_id: &str,
    sk: &SealedSessionKey,
) -> Result<SymmetricKey, ProtocolError> {
    let eph: [u8; 32] = sk
        .ephemeral
        .as_slice()
        .try_into()
        .map_err(|_| decrypt_err())?;
    let eph = MontgomeryPoint(eph);
    let shared = dh(me.to_scalar_bytes(), eph)?;
    let wrap = kdf(
        &shared,
        &[b"cmdb session", minion_id.as_bytes(), eph.as_bytes()],
    );
    let key = sk.sealed.open(&wrap, &sk.epoch.to_be_bytes())?;
    let key: [u8; 32] = key.try_into().map_err(|_| decrypt_err())?;
    Ok(SymmetricKey(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn channel_keys_agree_and_differ_per_minion() {
        let (m, n) = (key(1), key(2));
        let a = channel_key(&m, &n.verifying_key(), "web01").expect("a");
        let b = channel_key(&n, &m.verifying_key(), "web01").expect("b");
        assert_eq!(a, b);
        let c = channel_key(&n, &m.verifying_key(), "web02").expect("c");
        assert_ne!(a, c);
    }

    #[test]
    fn seal_open_and_tamper() {
        let k = SymmetricKey([9; 32]);
        let s = Sealed::seal(&k, 3, [1; 24], b"aad", b"secret");
        assert_eq!(s.open(&k, b"aad").expect("open"), b"secret");
        assert!(s.open(&k, b"other").is_err());
        assert!(s.open(&SymmetricKey([8; 32]), b"aad").is_err());
        let mut t = s.clone();
        t.ciphertext[0] ^= 1;
        assert!(t.open(&k, b"aad").is_err());
        let wire = s.to_bytes();
        assert_eq!(Sealed::from_bytes(&wire, 1024).expect("decode"), s);
        assert!(!wire.windows(6).any(|w| w == b"secret"));
    }

    #[test]
    fn session_key_opens_only_for_its_minion() {
        let minion = key(5);
        let other = key(6);
        let session = SymmetricKey([7; 32]);
        let sk = seal_session_key(
            &minion.verifying_key(),
            "web01",
            [3; 32],
            [4; 24],
            2,
            &session,
        )
        .expect("seal");
        assert_eq!(
            open_session_key(&minion, "web01", &sk).expect("open"),
            session
        );
        assert!(open_session_key(&other, "web01", &sk).is_err());
        assert!(open_session_key(&minion, "web02", &sk).is_err());
    }
}
