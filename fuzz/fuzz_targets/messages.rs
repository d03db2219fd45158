//! Every message type decoded from arbitrary msgpack.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::seal::{Sealed, SealedSessionKey, SymmetricKey};
use protocol::{Publish, Reply, Request};

fuzz_target!(|data: &[u8]| {
    let _ = rmp_serde::from_slice::<Request>(data);
    let _ = rmp_serde::from_slice::<Reply>(data);
    let _ = rmp_serde::from_slice::<Publish>(data);
    let _ = rmp_serde::from_slice::<SealedSessionKey>(data);
    if let Ok(s) = Sealed::from_bytes(data, 1 << 20) {
        let _ = s.open(&SymmetricKey([1; 32]), b"cmdb-publish");
    }
});
