//! The protocol's error type.

use thiserror::Error;

/// Everything that can go wrong while checking or decoding protocol data.
#[derive(Debug, Error)]
pub enum ProtocolError {
    /// A frame is larger than the configured maximum; it was not decoded.
    #[error("frame of {size} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// Size of the frame received.
        size: usize,
        /// Configured maximum.
        max: usize,
    },
    /// The envelope could not be decoded.
    #[error("malformed envelope: {source}")]
    MalformedEnvelope {
        /// The decoder's complaint.
        #[source]
        source: rmp_serde::decode::Error,
    },
    /// The payload inside a verified envelope could not be decoded.
    #[error("malformed payload: {source}")]
    MalformedPayload {
        /// The decoder's complaint.
        #[source]
        source: rmp_serde::decode::Error,
    },
    /// A message could not be encoded.
    #[error("could not encode message: {source}")]
    Encode {
        /// The encoder's complaint.
        #[source]
        source: rmp_serde::encode::Error,
    },
    /// The envelope speaks a protocol version this side does not accept.
    #[error("protocol version {got} is not supported (this side speaks {min}..={max})")]
    UnsupportedVersion {
        /// Version found in the envelope.
        got: u16,
        /// Lowest version accepted.
        min: u16,
        /// Highest version accepted.
        max: u16,
    },
    /// The signature does not verify against the signer's key.
    #[error("bad signature from {signer:?}")]
    BadSignature {
        /// The claimed signer.
        signer: String,
    },
    /// A public key is not a valid ed25519 point.
    #[error("invalid public key")]
    InvalidPublicKey,
    /// A minion id breaks the id rules.
    #[error("invalid minion id {id:?}: {reason}")]
    InvalidMinionId {
        /// The offending id (possibly truncated).
        id: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A job id is not 20 digits of a valid UTC time.
    #[error("invalid job id {jid:?}: expected 20 digits %Y%m%d%H%M%S%f")]
    InvalidJid {
        /// The offending text.
        jid: String,
    },
    /// A target expression does not parse.
    #[error("invalid target {expr:?}: {reason}")]
    InvalidTarget {
        /// The expression.
        expr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A payload that must be sealed came in the clear.
    #[error("payload must be sealed")]
    NotSealed,
    /// Sealed data did not open with the key at hand.
    #[error("sealed data does not open with the key at hand")]
    Decrypt,
    /// A timestamp is outside the accepted window.
    #[error("timestamp {at_ms} is outside the accepted window around {now_ms} ({window_ms} ms)")]
    Stale {
        /// The message time, unix milliseconds.
        at_ms: i64,
        /// The receiver's time, unix milliseconds.
        now_ms: i64,
        /// The allowed distance.
        window_ms: i64,
    },
}
