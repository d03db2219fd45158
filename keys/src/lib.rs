//! cmdb keys: ed25519 keypairs, key files, fingerprints and the pki store in
//! which the master keeps minion keys by state (`accepted/`, `pending/`,
//! `rejected/`, `denied/`), with Salt's rules.

pub mod error;
pub mod file;
pub mod fingerprint;
pub mod httpsig;
pub mod openssh;
pub mod pki;

pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use error::KeyError;
pub use file::{
    generate, load_or_create_keypair, read_private, read_public, write_private, write_public,
};
pub use fingerprint::Fingerprint;
pub use pki::{AuthDecision, KeyListing, KeyStamp, KeyState, KeyStore, KeyWrite, PkiStore, decide};
