//! The floor: what one core needs to take in the returns of one job on `n`
//! minions, measured in the same run as everything else so that figures
//! from machines (or days) 2-4x apart can be compared as ratios.
//!
//! Each return is built as a swarm minion sends it: a [`Request`] carrying a
//! [`JobReturn`], sealed under the minion's channel key and signed with its
//! own key ([`Envelope::seal_private`]), encoded to bytes. The timed part is
//! what the master does with each frame before it acts on it
//! (`master/src/requests.rs`): decode the envelope, find the signer's key
//! and channel key, verify the ed25519 signature, open the
//! XChaCha20-Poly1305 seal, decode the msgpack request and check its age.
//! One thread, nothing stored.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

use anyhow::{Context, bail};
use keys::VerifyingKey;
use protocol::message::check_fresh;
use protocol::seal::{SymmetricKey, channel_key};
use protocol::{Envelope, Jid, JobReturn, MinionId, Request, RequestBody};

/// Which job the returns answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `test.ping`: `true`.
    Ping,
    /// `collect`: a host's facts ([`crate::facts::host_facts`]).
    Collect,
}

/// `n` return frames and the keys the master holds for their signers.
pub struct Returns {
    frames: Vec<Vec<u8>>,
    keys: HashMap<String, (VerifyingKey, SymmetricKey)>,
}

impl Returns {
    /// Bytes of all frames together.
    pub fn bytes(&self) -> usize {
        self.frames.iter().map(Vec::len).sum()
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Builds the return frames of one `kind` job on `n` minions named like the
/// swarm's (`swarm-00000` …).
pub fn build(n: usize, kind: Kind) -> anyhow::Result<Returns> {
    let master = keys::generate().context("master key")?;
    let master_pub = master.verifying_key();
    let jid = Jid::from_micros(now_ms() * 1000).context("jid")?;
    let mut frames = Vec::with_capacity(n);
    let mut keys = HashMap::with_capacity(n);
    for i in 0..n {
        let id = MinionId::new(format!("swarm-{i:05}"))?;
        let key = keys::generate().context("minion key")?;
        // The minion derives it from its key and the master's public key; the
        // master from the other two halves. It is the same key, cached by the
        // master per minion, so derive it once here.
        let channel = channel_key(&key, &master_pub, id.as_str())?;
        let (fun, data) = match kind {
            Kind::Ping => ("test.ping", serde_json::Value::Bool(true)),
            Kind::Collect => ("collect", crate::facts::host_facts(id.as_str(), i, 1, 0.01)),
        };
        let started = now_ms();
        let req = Request {
            id: 1,
            sent_at_ms: started,
            body: RequestBody::Return(JobReturn {
                jid: jid.clone(),
                minion: id.clone(),
                fun: fun.to_owned(),
                success: true,
                retcode: 0,
                data,
                started_ms: started,
                ended_ms: started,
            }),
        };
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let env = Envelope::seal_private(id.as_str(), &key, &channel, nonce, &req)?;
        frames.push(env.to_bytes());
        keys.insert(id.as_str().to_owned(), (key.verifying_key(), channel));
    }
    Ok(Returns { frames, keys })
}

/// Seconds one thread takes to decode, verify, open and decode every frame.
pub fn time_once(r: &Returns) -> anyhow::Result<f64> {
    let window = 300_000;
    let started = Instant::now();
    let now = now_ms();
    for frame in &r.frames {
        let env = Envelope::from_bytes(frame, protocol::MAX_FRAME_DEFAULT)?;
        let (key, channel) = r.keys.get(&env.signer).context("unknown signer")?;
        let req: Request = env.open_private(key, Some(channel), true)?;
        check_fresh(req.sent_at_ms, now, window)?;
        let RequestBody::Return(ret) = req.body else {
            bail!("not a return");
        };
        if ret.minion.as_str() != env.signer {
            bail!("return of {} signed by {}", ret.minion, env.signer);
        }
        black_box(ret);
    }
    Ok(started.elapsed().as_secs_f64())
}

/// The floor for `n` returns of `kind`: the fastest of `reps` passes over
/// the same frames (built once, not timed).
pub fn measure(n: usize, kind: Kind, reps: usize) -> anyhow::Result<f64> {
    let r = build(n, kind)?;
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        best = best.min(time_once(&r)?);
    }
    Ok(best)
}
