//! The signed envelope every message travels in.
//!
//! On the wire an envelope is a msgpack map with named fields
//! `{version, signer, key, payload, signature}`. The signature is ed25519 over
//! a domain-separated digest input of the version, the signer id and the
//! payload bytes, so none of them can be swapped without breaking it.
//! Receivers check the frame size first, then decode the envelope, then verify
//! the signature strictly, and only then decode the payload.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::ProtocolError;
use crate::seal::{Sealed, SymmetricKey};

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 2;

/// The oldest protocol version this build accepts: version 1 sent requests
/// and publishes in the clear, so it is refused (no downgrade).
pub const MIN_PROTOCOL_VERSION: u16 = 2;

/// Default maximum size of one frame, in bytes.
pub const MAX_FRAME_DEFAULT: usize = 4 * 1024 * 1024;

const DOMAIN: &[u8] = b"cmdb-envelope\0";

/// A signed message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Protocol version of the sender.
    pub version: u16,
    /// Who signed: a minion id, or `master`.
    pub signer: String,
    /// The signer's public key, sent only with an auth request so that the
    /// master can check possession of a key it has not seen yet.
    #[serde(default, with = "serde_bytes")]
    pub key: Option<Vec<u8>>,
    /// Whether `payload` is a [`Sealed`] message under the channel key.
    #[serde(default)]
    pub sealed: bool,
    /// The msgpack-encoded message (sealed or not).
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
    /// ed25519 signature over version, signer and payload.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

fn signed_bytes(version: u16, signer: &str, sealed: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(DOMAIN.len() + 3 + 8 + signer.len() + payload.len());
    out.extend_from_slice(DOMAIN);
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&(signer.len() as u64).to_be_bytes());
    out.extend_from_slice(signer.as_bytes());
    out.push(u8::from(sealed));
    out.extend_from_slice(payload);
    out
}

/// Encodes any message as msgpack with named fields.
pub fn encode_message<M: Serialize>(msg: &M) -> Result<Vec<u8>, ProtocolError> {
    rmp_serde::to_vec_named(msg).map_err(|source| ProtocolError::Encode { source })
}

impl Envelope {
    /// Encodes `msg` and signs it as `signer`.
    pub fn seal<M: Serialize>(
        signer: &str,
        key: &SigningKey,
        msg: &M,
    ) -> Result<Envelope, ProtocolError> {
        let payload = encode_message(msg)?;
        Ok(Self::seal_bytes(signer, key, payload))
    }

    /// Signs already-encoded payload bytes as `signer`.
    pub fn seal_bytes(signer: &str, key: &SigningKey, payload: Vec<u8>) -> Envelope {
        Self::sign_payload(signer, key, false, payload)
    }

    fn sign_payload(signer: &str, key: &SigningKey, sealed: bool, payload: Vec<u8>) -> Envelope {
        let signature = key.sign(&signed_bytes(PROTOCOL_VERSION, signer, sealed, &payload));
        Envelope {
            version: PROTOCOL_VERSION,
            signer: signer.to_owned(),
            key: None,
            sealed,
            payload,
            signature: signature.to_bytes().to_vec(),
        }
    }

    /// Encodes `msg`, seals it under the channel key `channel` (binding the
    /// signer id) and signs the sealed bytes as `signer`.
    pub fn seal_private<M: Serialize>(
        signer: &str,
        key: &SigningKey,
        channel: &SymmetricKey,
        nonce: [u8; 24],
        msg: &M,
    ) -> Result<Envelope, ProtocolError> {
        let plain = encode_message(msg)?;
        let sealed = Sealed::seal(channel, 0, nonce, signer.as_bytes(), &plain);
        Ok(Self::sign_payload(signer, key, true, sealed.to_bytes()))
    }

    /// Verifies the signature against `key`, opens a sealed payload with
    /// `channel`, then decodes. A sealed payload without a channel key, or a
    /// plain one when `require_sealed`, is refused.
    pub fn open_private<M: DeserializeOwned>(
        &self,
        key: &VerifyingKey,
        channel: Option<&SymmetricKey>,
        require_sealed: bool,
    ) -> Result<M, ProtocolError> {
        self.verify(key)?;
        self.open_verified(channel, require_sealed)
    }

    /// [`Envelope::open_private`] for an envelope whose signature was
    /// already checked (by [`verify_batch`]).
    pub fn open_verified<M: DeserializeOwned>(
        &self,
        channel: Option<&SymmetricKey>,
        require_sealed: bool,
    ) -> Result<M, ProtocolError> {
        let plain = match (self.sealed, channel) {
            (true, Some(ch)) => {
                Sealed::from_bytes(&self.payload, usize::MAX)?.open(ch, self.signer.as_bytes())?
            }
            (true, None) => return Err(ProtocolError::Decrypt),
            (false, _) if require_sealed => return Err(ProtocolError::NotSealed),
            (false, _) => self.payload.clone(),
        };
        rmp_serde::from_slice(&plain).map_err(|source| ProtocolError::MalformedPayload { source })
    }

    /// Attaches the signer's public key (auth requests only).
    pub fn with_key(mut self, key: &VerifyingKey) -> Envelope {
        self.key = Some(key.to_bytes().to_vec());
        self
    }

    /// Encodes the envelope for the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Encoding a struct of strings and byte vectors into a Vec cannot fail.
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }

    /// Decodes an envelope from a frame after checking its size and version.
    pub fn from_bytes(frame: &[u8], max_frame: usize) -> Result<Envelope, ProtocolError> {
        if frame.len() > max_frame {
            return Err(ProtocolError::FrameTooLarge {
                size: frame.len(),
                max: max_frame,
            });
        }
        let env: Envelope = rmp_serde::from_slice(frame)
            .map_err(|source| ProtocolError::MalformedEnvelope { source })?;
        if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&env.version) {
            return Err(ProtocolError::UnsupportedVersion {
                got: env.version,
                min: MIN_PROTOCOL_VERSION,
                max: PROTOCOL_VERSION,
            });
        }
        Ok(env)
    }

    /// The public key carried in the envelope, if any and if valid.
    pub fn carried_key(&self) -> Result<VerifyingKey, ProtocolError> {
        let bytes: [u8; 32] = self
            .key
            .as_deref()
            .and_then(|k| k.try_into().ok())
            .ok_or(ProtocolError::InvalidPublicKey)?;
        VerifyingKey::from_bytes(&bytes).map_err(|_| ProtocolError::InvalidPublicKey)
    }

    /// Verifies the signature strictly against `key`.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), ProtocolError> {
        let bad = || ProtocolError::BadSignature {
            signer: self.signer.clone(),
        };
        let sig: [u8; 64] = self.signature.as_slice().try_into().map_err(|_| bad())?;
        let sig = Signature::from_bytes(&sig);
        key.verify_strict(
            &signed_bytes(self.version, &self.signer, self.sealed, &self.payload),
            &sig,
        )
        .map_err(|_| bad())
    }

    /// Verifies the signature against `key`, then decodes a plain payload.
    pub fn open<M: DeserializeOwned>(&self, key: &VerifyingKey) -> Result<M, ProtocolError> {
        self.verify(key)?;
        if self.sealed {
            return Err(ProtocolError::Decrypt);
        }
        rmp_serde::from_slice(&self.payload)
            .map_err(|source| ProtocolError::MalformedPayload { source })
    }
}

/// Checks the signatures of many envelopes at once (ed25519 batch
/// verification: about half the work of checking them one by one). `true`
/// means every signature is valid for its key; on `false` the caller checks
/// them one by one to find the bad ones. Entries a strict check would refuse
/// for reasons the batch equation does not see (a weak key, a small-order
/// `R`, a malformed signature) make the whole batch `false`.
pub fn verify_batch(items: &[(&Envelope, &VerifyingKey)]) -> bool {
    let mut messages = Vec::with_capacity(items.len());
    let mut signatures = Vec::with_capacity(items.len());
    let mut keys = Vec::with_capacity(items.len());
    for (env, key) in items {
        let Ok(sig) = <[u8; 64]>::try_from(env.signature.as_slice()) else {
            return false;
        };
        let sig = Signature::from_bytes(&sig);
        if key.is_weak() || small_order_encoding(sig.r_bytes()) {
            return false;
        }
        messages.push(signed_bytes(
            env.version,
            &env.signer,
            env.sealed,
            &env.payload,
        ));
        signatures.push(sig);
        keys.push(**key);
    }
    let messages: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
}

/// Whether `r` encodes a point of small order, told from its bytes alone:
/// what `CompressedEdwardsY(r).decompress().is_some_and(|p| p.is_small_order())`
/// says, without the square root a decompression costs (the batch check
/// decompresses every `R` once more itself).
///
/// A point is of small order exactly when its y coordinate is one of the
/// eight small-order points' (the sign bit picks between a point and its
/// negation, both of small order or neither), and an encoded y of p or more
/// stands for y - p, as decompression reads it.
fn small_order_encoding(r: &[u8; 32]) -> bool {
    static SMALL_Y: std::sync::OnceLock<[[u8; 32]; 8]> = std::sync::OnceLock::new();
    let small_y = SMALL_Y.get_or_init(|| {
        curve25519_dalek::constants::EIGHT_TORSION.map(|p| {
            let mut y = p.compress().to_bytes();
            y[31] &= 0x7f;
            y
        })
    });
    let mut y = *r;
    y[31] &= 0x7f;
    // p = 2^255 - 19, little-endian: 0xed, thirty 0xff, 0x7f.
    if y[31] == 0x7f && y[1..31].iter().all(|&b| b == 0xff) && y[0] >= 0xed {
        y = [0; 32];
        y[0] = r[0] - 0xed;
    }
    small_y.contains(&y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Request, RequestBody};

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn seal_then_open_round_trips() {
        let k = key(1);
        let msg = Request {
            id: 7,
            sent_at_ms: 1,
            body: RequestBody::MissedJobs(crate::message::MissedJobs {}),
        };
        let env = Envelope::seal("web01", &k, &msg).expect("seal");
        let wire = env.to_bytes();
        let back = Envelope::from_bytes(&wire, MAX_FRAME_DEFAULT).expect("decode");
        let opened: Request = back.open(&k.verifying_key()).expect("open");
        assert_eq!(opened, msg);
    }

    /// `n` keys, their verifying keys, and an envelope signed by each.
    fn signed_by(n: u8) -> (Vec<SigningKey>, Vec<VerifyingKey>, Vec<Envelope>) {
        let keys: Vec<SigningKey> = (1..=n).map(key).collect();
        let vks: Vec<VerifyingKey> = keys.iter().map(SigningKey::verifying_key).collect();
        let envs: Vec<Envelope> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| Envelope::seal_bytes(&format!("m{i}"), k, vec![i as u8; 40]))
            .collect();
        (keys, vks, envs)
    }

    /// Whether `envs`, each against the verifying key at its place, pass
    /// one batch check.
    fn batch_passes(envs: &[Envelope], vks: &[VerifyingKey]) -> bool {
        let pairs: Vec<(&Envelope, &VerifyingKey)> = envs.iter().zip(vks).collect();
        verify_batch(&pairs)
    }

    #[test]
    fn a_batch_verifies_only_when_every_signature_does() {
        let (keys, vks, mut envs) = signed_by(8);
        let items = |envs: &[Envelope]| batch_passes(envs, &vks);
        assert!(items(&envs));
        // A changed payload, a signature by another key, a truncated signature.
        envs[3].payload[0] ^= 1;
        assert!(!items(&envs));
        envs[3] = Envelope::seal_bytes("m3", &key(99), vec![3; 40]);
        assert!(!items(&envs));
        envs[3] = Envelope::seal_bytes("m3", &keys[3], vec![3; 40]);
        assert!(items(&envs));
        envs[5].signature.truncate(10);
        assert!(!items(&envs));
    }

    #[test]
    fn a_batch_with_a_small_order_r_fails() {
        let k = key(1);
        let mut env = Envelope::seal_bytes("web01", &k, b"x".to_vec());
        // The identity point (encoded as y = 1) has order 1.
        let mut r = [0u8; 32];
        r[0] = 1;
        env.signature[..32].copy_from_slice(&r);
        assert!(!verify_batch(&[(&env, &k.verifying_key())]));
    }

    /// A signature whose `R` is a small-order point `T`, made with the
    /// secret scalar `a` as `s = h·a`: `sB - R - hA = -T`, so it passes
    /// the batch's cofactored equation, and only the small-order check
    /// refuses it (as `verify_strict` does).
    #[test]
    fn a_batch_refuses_a_small_order_r_that_passes_the_batch_equation() {
        use curve25519_dalek::scalar::Scalar;
        use sha2::{Digest, Sha512};
        let (keys, vks, mut envs) = signed_by(4);
        assert!(batch_passes(&envs, &vks));
        for t in curve25519_dalek::constants::EIGHT_TORSION {
            let r = t.compress().to_bytes();
            let env = &mut envs[2];
            let h = Scalar::from_hash(
                Sha512::new()
                    .chain_update(r)
                    .chain_update(vks[2].as_bytes())
                    .chain_update(signed_bytes(
                        env.version,
                        &env.signer,
                        env.sealed,
                        &env.payload,
                    )),
            );
            let s = h * keys[2].to_scalar();
            env.signature = [r, s.to_bytes()].concat();
            assert!(env.verify(&vks[2]).is_err());
            assert!(!batch_passes(&envs, &vks), "R = {r:?}");
        }
    }

    /// Every encoding of every small-order point (either sign, and y + p
    /// where it fits in 255 bits) is told apart from other points' as
    /// decompressing it would.
    #[test]
    fn small_order_encodings_are_told_from_their_bytes() {
        let decompressed = |b: &[u8; 32]| {
            curve25519_dalek::edwards::CompressedEdwardsY(*b)
                .decompress()
                .is_some_and(|p| p.is_small_order())
        };
        let mut seen = 0;
        for t in curve25519_dalek::constants::EIGHT_TORSION {
            let canonical = t.compress().to_bytes();
            let mut flipped = canonical;
            flipped[31] ^= 0x80;
            let mut encodings = vec![canonical, flipped];
            // y < 19: y + p is also below 2^255.
            if canonical[1..31].iter().all(|&b| b == 0)
                && canonical[31] & 0x7f == 0
                && canonical[0] < 19
            {
                let mut plus_p = [0xff; 32];
                plus_p[0] = 0xed + canonical[0];
                plus_p[31] = 0x7f | (canonical[31] & 0x80);
                let mut other = plus_p;
                other[31] ^= 0x80;
                encodings.extend([plus_p, other]);
            }
            for e in encodings {
                assert!(decompressed(&e), "{e:?}");
                assert!(small_order_encoding(&e), "{e:?}");
                seen += 1;
            }
        }
        // Three of the points have y < 19: the identity (y = 1) and both
        // points of order 4 (y = 0).
        assert_eq!(seen, 8 * 2 + 3 * 2);
        // Points of large order: real signatures' R.
        for i in 0..64u8 {
            let env = Envelope::seal_bytes("m", &key(i), vec![i; 8]);
            let r: [u8; 32] = env.signature[..32].try_into().expect("32 bytes");
            assert!(!small_order_encoding(&r));
            assert_eq!(small_order_encoding(&r), decompressed(&r));
        }
    }

    proptest::proptest! {
        #[test]
        fn small_order_check_agrees_with_decompression(b in proptest::array::uniform32(proptest::num::u8::ANY)) {
            let decompressed = curve25519_dalek::edwards::CompressedEdwardsY(b)
                .decompress()
                .is_some_and(|p| p.is_small_order());
            proptest::prop_assert_eq!(small_order_encoding(&b), decompressed);
        }
    }

    #[test]
    fn another_key_does_not_verify() {
        let env = Envelope::seal_bytes("web01", &key(1), b"x".to_vec());
        assert!(matches!(
            env.verify(&key(2).verifying_key()),
            Err(ProtocolError::BadSignature { .. })
        ));
    }

    #[test]
    fn changing_the_signer_breaks_the_signature() {
        let mut env = Envelope::seal_bytes("web01", &key(1), b"x".to_vec());
        env.signer = "web02".into();
        assert!(env.verify(&key(1).verifying_key()).is_err());
    }

    #[test]
    fn oversized_frame_is_refused_before_decoding() {
        let frame = vec![0u8; 11];
        assert!(matches!(
            Envelope::from_bytes(&frame, 10),
            Err(ProtocolError::FrameTooLarge { size: 11, max: 10 })
        ));
    }

    #[test]
    fn private_envelopes_hide_the_payload_and_need_the_channel_key() {
        let k = key(1);
        let ch = SymmetricKey([5; 32]);
        let msg = Request {
            id: 1,
            sent_at_ms: 2,
            body: RequestBody::MissedJobs(crate::message::MissedJobs {}),
        };
        let env = Envelope::seal_private("web01", &k, &ch, [0; 24], &msg).expect("seal");
        let wire = env.to_bytes();
        assert!(!wire.windows(11).any(|w| w == b"missed_jobs"));
        let back = Envelope::from_bytes(&wire, MAX_FRAME_DEFAULT).expect("decode");
        let opened: Request = back
            .open_private(&k.verifying_key(), Some(&ch), true)
            .expect("open");
        assert_eq!(opened, msg);
        assert!(
            back.open_private::<Request>(&k.verifying_key(), None, true)
                .is_err()
        );
        let mut flipped = back.clone();
        flipped.sealed = false;
        assert!(matches!(
            flipped.open_private::<Request>(&k.verifying_key(), Some(&ch), false),
            Err(ProtocolError::BadSignature { .. })
        ));
        let plain = Envelope::seal("web01", &k, &msg).expect("plain");
        assert!(matches!(
            plain.open_private::<Request>(&k.verifying_key(), Some(&ch), true),
            Err(ProtocolError::NotSealed)
        ));
    }

    #[test]
    fn older_version_is_refused() {
        let mut env = Envelope::seal_bytes("m", &key(1), vec![]);
        env.version = 1;
        assert!(matches!(
            Envelope::from_bytes(&env.to_bytes(), MAX_FRAME_DEFAULT),
            Err(ProtocolError::UnsupportedVersion { got: 1, .. })
        ));
    }

    #[test]
    fn future_version_is_refused() {
        let mut env = Envelope::seal_bytes("m", &key(1), vec![]);
        env.version = PROTOCOL_VERSION + 1;
        assert!(matches!(
            Envelope::from_bytes(&env.to_bytes(), MAX_FRAME_DEFAULT),
            Err(ProtocolError::UnsupportedVersion { .. })
        ));
    }
}
