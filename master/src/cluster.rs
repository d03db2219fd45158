//! The peers of a master cluster (`cluster_id`, `nats_url`): masters on one
//! PostgreSQL database that tell each other, over NATS, of the jobs they
//! publish and the returns they store.
//!
//! A peer publishing a job sends its signed envelope and expected minions;
//! every other peer takes the job into its live table and publishes it to
//! the minions connected to it, sealed under its own session key. A peer
//! storing a return sends it on, so a `cmdb run` on any peer sees every
//! return, whichever peer the minion reached. Messages are sealed under a
//! key derived from the master keypair the peers share and the cluster id,
//! so NATS carries nothing readable and a peer ignores what another
//! cluster, or anyone without the master key, sends. A job sent again is
//! taken only while it is not live yet and younger than its live time.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use protocol::seal::{Sealed, SymmetricKey};
use protocol::{Jid, MinionId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::jobs::{Finished, ReturnJson};
use crate::server::Shared;

/// Bound on the bytes of one cluster message (a return's JSON included).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;
/// Bound on messages waiting to go out; beyond it returns are dropped
/// (logged): they are in the database, and show in `cmdb jobs show`.
pub const OUTBOX: usize = 65_536;
const AAD: &[u8] = b"cmdb cluster v1";
/// Messages waiting in the outbox go out together, in one NATS message of
/// about this many bytes at most (NATS refuses payloads over its
/// `max_payload`, 1 MiB by default); a larger message goes alone.
const BUNDLE_BYTES: usize = 512 * 1024;

/// What one peer tells the others.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Message {
    /// A job was published.
    Job {
        /// Its id.
        jid: Jid,
        /// Its envelope, signed with the master key.
        #[serde(with = "serde_bytes")]
        envelope: Vec<u8>,
        /// The minions expected to return.
        expected: Vec<String>,
        /// Seconds it stays live for minions that missed it.
        live_secs: u64,
    },
    /// The session key was rotated (to this epoch; the key is in the
    /// database).
    Session {
        /// The new epoch.
        epoch: u64,
    },
    /// A wave of a batch job: the job signed anew for `minions`.
    Wave {
        /// The job.
        jid: Jid,
        /// Its envelope for this wave, signed with the master key.
        #[serde(with = "serde_bytes")]
        envelope: Vec<u8>,
        /// The minions it starts.
        minions: Vec<String>,
    },
    /// A job was killed: the other peers stop handing it to minions that
    /// missed it.
    Stop {
        /// The killed job.
        jid: Jid,
    },
    /// A watcher on the sending peer follows a job another peer published:
    /// every peer sends its returns on with their JSON from now on.
    Watch {
        /// The job.
        jid: Jid,
    },
    /// A return was stored.
    Return {
        /// The job.
        jid: Jid,
        /// The minion.
        minion: String,
        /// The function.
        fun: String,
        /// Whether it succeeded.
        success: bool,
        /// Its return code.
        retcode: i32,
        /// The return as JSON; none for facts a minion pushed on its own.
        json: Option<String>,
    },
}

impl Message {
    /// About how many bytes it takes on the wire.
    fn weight(&self) -> usize {
        64 + match self {
            Message::Job {
                envelope, expected, ..
            } => envelope.len() + expected.iter().map(|e| e.len() + 2).sum::<usize>(),
            Message::Wave {
                envelope, minions, ..
            } => envelope.len() + minions.iter().map(|m| m.len() + 2).sum::<usize>(),
            Message::Session { .. } | Message::Stop { .. } | Message::Watch { .. } => 0,
            Message::Return {
                minion, fun, json, ..
            } => minion.len() + fun.len() + json.as_ref().map_or(0, String::len),
        }
    }
}

/// An envelope: the sender, so a peer skips its own messages, and the
/// messages, in the order they were sent.
#[derive(Serialize, Deserialize)]
struct Wire {
    peer: u64,
    messages: Vec<Message>,
}

/// The key that seals cluster messages: the master key and the cluster id
/// through SHA-256.
fn cluster_key(master: &keys::SigningKey, cluster_id: &str) -> SymmetricKey {
    let mut h = Sha256::new();
    h.update(AAD);
    h.update((cluster_id.len() as u64).to_be_bytes());
    h.update(cluster_id.as_bytes());
    h.update(master.to_bytes());
    SymmetricKey(h.finalize().into())
}

/// Seals and opens cluster messages.
#[derive(Clone)]
pub struct Codec {
    key: SymmetricKey,
    peer: u64,
}

impl Codec {
    /// The codec of peer `peer` in cluster `cluster_id`.
    pub fn new(master: &keys::SigningKey, cluster_id: &str, peer: u64) -> Codec {
        Codec {
            key: cluster_key(master, cluster_id),
            peer,
        }
    }

    /// `messages` sealed for the wire, as one.
    pub fn seal(&self, messages: Vec<Message>) -> Option<Vec<u8>> {
        let plain = rmp_serde::to_vec_named(&Wire {
            peer: self.peer,
            messages,
        })
        .ok()?;
        Some(Sealed::seal(&self.key, 0, crate::keyring::random(), AAD, &plain).to_bytes())
    }

    /// The messages in `bytes`, in order; none when they come from this
    /// peer. An error when they do not open under this cluster's key.
    pub fn open(&self, bytes: &[u8]) -> Result<Vec<Message>, String> {
        let sealed = Sealed::from_bytes(bytes, MAX_MESSAGE).map_err(|e| e.to_string())?;
        let plain = sealed.open(&self.key, AAD).map_err(|e| e.to_string())?;
        let wire: Wire = rmp_serde::from_slice(&plain).map_err(|e| e.to_string())?;
        Ok(if wire.peer == self.peer {
            Vec::new()
        } else {
            wire.messages
        })
    }
}

/// The subject of a cluster's messages.
fn subject(cluster_id: &str) -> String {
    format!("cmdb.{cluster_id}.events")
}

/// A NATS URL without its credentials, for messages.
pub fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Connects to NATS, the first time within `wait`; afterwards the client
/// reconnects on its own.
pub async fn connect(url: &str, wait: Duration) -> Result<async_nats::Client, String> {
    let shown = redact(url);
    let attempt = async_nats::ConnectOptions::new()
        .no_echo()
        .name("cmdb-master")
        .retry_on_initial_connect()
        .connect(url);
    match tokio::time::timeout(wait, attempt).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(format!("NATS {shown}: {e}")),
        Err(_) => Err(format!("NATS {shown}: unreachable for {wait:?}")),
    }
}

/// Sends what the outbox holds to the other peers until `cancel`.
pub async fn send_loop(
    client: async_nats::Client,
    cluster_id: String,
    codec: Codec,
    mut outbox: mpsc::Receiver<Message>,
    cancel: CancellationToken,
) {
    let subject = subject(&cluster_id);
    // A message that did not fit the last bundle starts the next.
    let mut carried: Option<Message> = None;
    loop {
        let first = match carried.take() {
            Some(m) => m,
            None => tokio::select! {
                _ = cancel.cancelled() => break,
                m = outbox.recv() => match m { Some(m) => m, None => break },
            },
        };
        // What else waits goes along, up to the bundle's size.
        let mut weight = first.weight();
        let mut bundle = vec![first];
        while weight < BUNDLE_BYTES {
            let Ok(m) = outbox.try_recv() else { break };
            if weight + m.weight() > BUNDLE_BYTES {
                carried = Some(m);
                break;
            }
            weight += m.weight();
            bundle.push(m);
        }
        let Some(bytes) = codec.seal(bundle) else {
            continue;
        };
        if let Err(e) = client.publish(subject.clone(), Bytes::from(bytes)).await {
            warn!(error = %e, "could not tell the other peers");
        }
    }
    let _ = client.flush().await;
}

/// Subscribes to the other peers' messages (before the master takes
/// work: a peer that cannot hear the others does not start).
pub async fn subscribe(
    client: &async_nats::Client,
    cluster_id: &str,
) -> Result<async_nats::Subscriber, String> {
    client
        .subscribe(subject(cluster_id))
        .await
        .map_err(|e| format!("subscribing to the other peers: {e}"))
}

/// Takes in what the other peers send until `cancel`.
pub async fn receive_loop(
    shared: Arc<Shared>,
    mut sub: async_nats::Subscriber,
    codec: Codec,
    cancel: CancellationToken,
) {
    let mut refetch = Refetch::default();
    loop {
        let msg = tokio::select! {
            _ = cancel.cancelled() => break,
            _ = refetch.due() => {
                refetch.run(&shared);
                continue;
            }
            m = sub.next() => match m {
                Some(m) => m,
                None => {
                    tracing::error!("the subscription to the other peers ended: this peer no longer hears their jobs, returns or key rotations; restart it");
                    break;
                }
            },
        };
        match codec.open(&msg.payload) {
            Ok(messages) => {
                for m in messages {
                    take(&shared, m, &mut refetch).await;
                }
            }
            Err(e) => warn!(error = %e, "dropped a cluster message that does not open"),
        }
    }
}

/// How long returns sent without their JSON for a job followed here are
/// gathered before they are read back from the database together.
const REFETCH_AFTER: Duration = Duration::from_millis(200);

/// Returns another peer sent without their JSON (it stored them before it
/// heard that a watcher here follows their job), held back from the
/// watchers until they are read back from the database, a job at a time.
#[derive(Default)]
struct Refetch {
    due: Option<tokio::time::Instant>,
    held: std::collections::HashMap<Jid, Vec<Finished>>,
}

impl Refetch {
    /// Holds `ret` back.
    fn hold(&mut self, ret: Finished) {
        self.due
            .get_or_insert_with(|| tokio::time::Instant::now() + REFETCH_AFTER);
        self.held.entry(ret.jid.clone()).or_default().push(ret);
    }

    /// Ready when held returns are due to be read back; never when none
    /// are held.
    async fn due(&self) {
        match self.due {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }

    /// Reads the held returns back, a job at a time in the background, and
    /// hands them to the watchers (without their JSON when they are not
    /// found).
    fn run(&mut self, shared: &Arc<Shared>) {
        self.due = None;
        for (jid, held) in std::mem::take(&mut self.held) {
            let shared = shared.clone();
            tokio::spawn(async move {
                let store = shared.store.clone();
                let read = jid.clone();
                let stored = match tokio::task::spawn_blocking(move || store.returns(&read)).await {
                    Ok(Ok(stored)) => stored,
                    Ok(Err(e)) => {
                        warn!(jid = %jid, error = %e, "cannot read back returns another peer stored");
                        Vec::new()
                    }
                    Err(e) => {
                        warn!(jid = %jid, error = %e, "reading back returns another peer stored failed");
                        Vec::new()
                    }
                };
                let mut by_minion: std::collections::HashMap<&str, &protocol::JobReturn> =
                    stored.iter().map(|r| (r.minion.as_str(), r)).collect();
                for mut ret in held {
                    ret.json = by_minion.remove(ret.minion.as_str()).map(ReturnJson::of);
                    crate::requests::notify_stored_from(
                        &shared,
                        &ret,
                        &store::Stored::Duplicate,
                        "cluster",
                    );
                }
            });
        }
    }
}

/// Acts on another peer's message.
async fn take(shared: &Arc<Shared>, message: Message, refetch: &mut Refetch) {
    match message {
        Message::Job {
            jid,
            envelope,
            expected,
            live_secs,
        } => {
            let expected: BTreeSet<String> = expected.into_iter().collect();
            debug!(jid = %jid, expected = expected.len(), "job from another peer");
            shared
                .jobs
                .adopt(
                    jid,
                    Bytes::from(envelope),
                    expected,
                    Duration::from_secs(live_secs),
                )
                .await;
        }
        Message::Session { epoch } => {
            if epoch <= shared.keyring.session().0 {
                return;
            }
            let Some(share) = shared.session_share.clone() else {
                return;
            };
            match tokio::task::spawn_blocking(move || share.load()).await {
                Ok(Ok(Some((e, key)))) => {
                    let (e, handed) = crate::server::hand_over(shared, e, key).await;
                    info!(epoch = e, handed, "session key rotated by another peer");
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => warn!(error = %e, "cannot read the cluster's session key"),
                Err(e) => warn!(error = %e, "reading the cluster's session key failed"),
            }
        }
        Message::Wave {
            jid,
            envelope,
            minions,
        } => {
            debug!(jid = %jid, minions = minions.len(), "batch wave from another peer");
            shared
                .jobs
                .adopt_wave(&jid, Bytes::from(envelope), &minions)
                .await;
        }
        Message::Stop { jid } => {
            if shared.jobs.tracker().stop(&jid).is_some() {
                info!(jid = %jid, "job killed on another peer");
            }
        }
        Message::Watch { jid } => {
            if shared.jobs.tracker().relay(&jid) {
                debug!(jid = %jid, "a watcher on another peer follows a job");
            }
        }
        Message::Return {
            jid,
            minion,
            fun,
            success,
            retcode,
            json,
        } => {
            let Ok(id) = MinionId::new(minion.as_str()) else {
                return;
            };
            let finished_id = id.clone();
            let finished = Finished {
                jid,
                minion: id,
                fun,
                success,
                retcode,
                json: json.map(|json| ReturnJson {
                    minion: finished_id.clone(),
                    json: json.into(),
                }),
                relay: false,
            };
            if finished.json.is_none() && shared.jobs.tracker().watched(&finished.jid) {
                refetch.hold(finished);
                return;
            }
            crate::requests::notify_stored_from(
                shared,
                &finished,
                &store::Stored::Duplicate,
                "cluster",
            );
        }
    }
}

/// The session key the peers share, kept in the database sealed under a
/// key derived from the master key and the cluster id.
#[derive(Clone)]
pub struct SessionShare {
    pg: Arc<store::PgStore>,
    key: SymmetricKey,
}

const SESSION_AAD: &[u8] = b"cmdb cluster session key v1";

impl SessionShare {
    /// The share of cluster `cluster_id` in `pg`.
    pub fn new(pg: Arc<store::PgStore>, master: &keys::SigningKey, cluster_id: &str) -> Self {
        let mut h = Sha256::new();
        h.update(SESSION_AAD);
        h.update(cluster_key(master, cluster_id).0);
        SessionShare {
            pg,
            key: SymmetricKey(h.finalize().into()),
        }
    }

    /// The shared key and its epoch, if there is one.
    pub fn load(&self) -> Result<Option<(u64, SymmetricKey)>, String> {
        let Some((epoch, sealed)) = self.pg.session_key().map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let plain = Sealed::from_bytes(&sealed, 1024)
            .and_then(|s| s.open(&self.key, SESSION_AAD))
            .map_err(|e| {
                format!("the stored session key does not open ({e}): another master key?")
            })?;
        let bytes: [u8; 32] = plain
            .try_into()
            .map_err(|_| "the stored session key is not 32 bytes".to_owned())?;
        Ok(Some((epoch, SymmetricKey(bytes))))
    }

    /// Offers `key` of `epoch` as the successor of epoch `seen` (none: the
    /// first); returns the key every peer now holds: this one, or the one
    /// another peer offered first.
    pub fn agree(
        &self,
        seen: Option<u64>,
        epoch: u64,
        key: SymmetricKey,
    ) -> Result<(u64, SymmetricKey), String> {
        let sealed = Sealed::seal(
            &self.key,
            epoch,
            crate::keyring::random(),
            SESSION_AAD,
            &key.0,
        )
        .to_bytes();
        // At start there may be a key already: it is the one.
        if seen.is_none()
            && let Some(current) = self.load()?
        {
            return Ok(current);
        }
        if self
            .pg
            .offer_session_key(seen, epoch, &sealed)
            .map_err(|e| e.to_string())?
        {
            return Ok((epoch, key));
        }
        self.load()?
            .ok_or_else(|| "no session key after an offer was refused".to_owned())
    }
}

/// Tells the other peers of a stored return (dropped when the outbox is
/// full), with its JSON when a peer follows its job ([`Finished::relay`]).
pub fn announce_return(outbox: &mpsc::Sender<Message>, ret: &Finished) {
    let m = Message::Return {
        jid: ret.jid.clone(),
        minion: ret.minion.to_string(),
        fun: ret.fun.clone(),
        success: ret.success,
        retcode: ret.retcode,
        json: ret
            .json
            .as_ref()
            .filter(|_| ret.relay)
            .map(|j| j.json.to_string()),
    };
    if outbox.try_send(m).is_err() {
        warn!(jid = %ret.jid, minion_id = %ret.minion, "cluster outbox full; a return was not sent to the other peers");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_open_for_other_peers_of_the_cluster_only() {
        let master = keys::generate().expect("key");
        let a = Codec::new(&master, "dc1", 1);
        let b = Codec::new(&master, "dc1", 2);
        let other_cluster = Codec::new(&master, "dc2", 3);
        let other_master = Codec::new(&keys::generate().expect("key"), "dc1", 4);
        let m = Message::Job {
            jid: Jid::from_micros(1_800_000_000_000_000).expect("jid"),
            envelope: vec![1, 2, 3],
            expected: vec!["web01".into()],
            live_secs: 600,
        };
        let bytes = a
            .seal(vec![m, Message::Session { epoch: 7 }])
            .expect("seal");
        assert!(matches!(
            b.open(&bytes).as_deref(),
            Ok([Message::Job { .. }, Message::Session { epoch: 7 }])
        ));
        assert!(
            matches!(a.open(&bytes).as_deref(), Ok([])),
            "its own messages"
        );
        assert!(other_cluster.open(&bytes).is_err());
        assert!(other_master.open(&bytes).is_err());
        let mut tampered = bytes.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(b.open(&tampered).is_err());
        assert!(b.open(b"not a message").is_err());
    }
}
