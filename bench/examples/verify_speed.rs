//! The signature work of one request on one core: signing an envelope,
//! checking one alone (`verify_strict`), and checking a batch of 64 from
//! different keys (`protocol::envelope::verify_batch`, as the master's
//! request workers and the swarm's reply checker do), in microseconds per
//! signature.
//!
//! ```sh
//! cargo run --release -p bench --example verify_speed -- 200
//! ```
//! Argument: rounds (200) of 64 envelopes each; the best of three runs of
//! each measure is printed.

use std::hint::black_box;
use std::time::Instant;

use keys::{SigningKey, VerifyingKey};
use protocol::envelope::{Envelope, verify_batch};

/// Envelopes per batch: `master::requests::BATCH`.
const BATCH: usize = 64;

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let signers: Vec<SigningKey> = (1..=u8::try_from(BATCH).expect("a batch fits a byte"))
        .map(|seed| SigningKey::from_bytes(&[seed; 32]))
        .collect();
    let keys: Vec<VerifyingKey> = signers.iter().map(SigningKey::verifying_key).collect();
    // A ping return's size: a sealed payload of about 200 bytes.
    let envs: Vec<Envelope> = signers
        .iter()
        .enumerate()
        .map(|(i, k)| Envelope::seal_bytes(&format!("minion-{i:05}"), k, vec![7; 200]))
        .collect();
    let pairs: Vec<(&Envelope, &VerifyingKey)> = envs.iter().zip(&keys).collect();
    let per_signature = |f: &dyn Fn()| -> f64 {
        (0..3)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..rounds {
                    f();
                }
                t.elapsed().as_secs_f64() * 1e6 / (rounds * BATCH) as f64
            })
            .fold(f64::INFINITY, f64::min)
    };
    let sign = per_signature(&|| {
        for k in &signers {
            black_box(Envelope::seal_bytes("minion", k, vec![7; 200]));
        }
    });
    let alone = per_signature(&|| {
        for (env, key) in &pairs {
            assert!(env.verify(key).is_ok());
        }
    });
    let batch = per_signature(&|| assert!(verify_batch(&pairs)));
    println!(
        "sign {sign:.2} us, check alone {alone:.2} us, check in batches of {BATCH} {batch:.2} us (per signature, one core)"
    );
}
