//! Envelope decoding, signature checks and unsealing on arbitrary frames.
#![no_main]

use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use protocol::seal::SymmetricKey;
use protocol::{Envelope, MAX_FRAME_DEFAULT, Reply, Request};

fuzz_target!(|data: &[u8]| {
    let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
    let channel = SymmetricKey([3; 32]);
    if let Ok(env) = Envelope::from_bytes(data, MAX_FRAME_DEFAULT) {
        let _ = env.carried_key();
        let _ = env.open::<Request>(&key);
        let _ = env.open_private::<Request>(&key, Some(&channel), true);
        let _ = env.open_private::<Reply>(&key, None, false);
        if let Ok(k) = env.carried_key() {
            let _ = env.open::<Request>(&k);
        }
    }
});
