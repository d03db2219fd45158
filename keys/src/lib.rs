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

/// Random bytes from the operating system, for keys, nonces and anything
/// else that must not be guessed. Without them nothing a process seals or
/// signs would stay safe (a nonce of zeros used twice under one key gives
/// the key stream away), so when the system cannot give any the process
/// stops, saying why on stderr, instead of going on with predictable bytes.
pub fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    if let Err(e) = getrandom::fill(&mut b) {
        eprintln!("cmdb: the operating system gave no random bytes ({e}); stopping");
        std::process::abort();
    }
    b
}

#[cfg(test)]
mod tests {
    #[test]
    fn random_bytes_differ_from_draw_to_draw() {
        let draws: Vec<[u8; 32]> = (0..4).map(|_| super::random()).collect();
        assert!(draws.iter().all(|d| *d != [0u8; 32]));
        assert!(draws.windows(2).all(|w| w[0] != w[1]));
    }
}
