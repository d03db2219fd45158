//! The minion's ZeroMQ sockets: a DEALER for requests (replies matched to
//! requests by id, so a request can time out and be retried) and a SUB for
//! published jobs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt;
use keys::{SigningKey, VerifyingKey, random};
use protocol::seal::SymmetricKey;
use protocol::{Envelope, ErrorKind, Reply, ReplyBody, Request, RequestBody};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use zeromq::{
    DealerSendHalf, DealerSocket, Socket, SocketEvent, SocketOptions, SocketRecv, SocketSend,
    SubSocket, ZmqMessage,
};

use crate::error::MinionError;

/// The PUB topic the master sends jobs on.
pub const BROADCAST_TOPIC: &str = "cmdb";

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A verified reply and the master key it verified with.
pub struct VerifiedReply {
    /// The reply.
    pub body: ReplyBody,
    /// The key that signed it.
    pub master_key: VerifyingKey,
}

type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<VerifiedReply>>>>;

/// The channel key shared with the master, once known.
pub type ChannelSlot = Arc<RwLock<Option<SymmetricKey>>>;

/// How a link checks the signatures of its replies: against the pinned
/// master key (before one is pinned, against the key an auth reply
/// carries), one by one or, with [`ReplyKeys::batched`], together with
/// other links' replies.
#[derive(Clone)]
pub struct ReplyKeys {
    master: Arc<RwLock<Option<VerifyingKey>>>,
    batch: Option<BatchVerifier>,
}

impl ReplyKeys {
    /// Replies signed by `master` (once pinned), checked through `batch`.
    pub fn batched(master: Arc<RwLock<Option<VerifyingKey>>>, batch: BatchVerifier) -> ReplyKeys {
        ReplyKeys {
            master,
            batch: Some(batch),
        }
    }
}

impl From<Arc<RwLock<Option<VerifyingKey>>>> for ReplyKeys {
    fn from(master: Arc<RwLock<Option<VerifyingKey>>>) -> ReplyKeys {
        ReplyKeys {
            master,
            batch: None,
        }
    }
}

/// Checks the signatures of replies arriving on many links at once, with
/// ed25519 batch verification (about half the work of checking them one
/// by one), so that a process simulating thousands of minions takes less
/// of a shared machine. No reply waits for another: the replies that
/// arrived while one batch was checked make the next. A batch with a bad
/// signature is checked again one by one, and only the bad replies fail.
#[derive(Clone)]
pub struct BatchVerifier {
    tx: tokio::sync::mpsc::UnboundedSender<Check>,
}

/// A reply waiting for [`BatchVerifier`]: it comes back with the verdict.
struct Check {
    env: Envelope,
    key: VerifyingKey,
    done: oneshot::Sender<(Envelope, bool)>,
}

/// The most replies one batch checks.
const BATCH: usize = 64;

impl BatchVerifier {
    /// Starts the checking task on the current runtime; it ends when the
    /// last clone of the verifier is dropped.
    pub fn start() -> BatchVerifier {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Check>();
        tokio::spawn(async move {
            let mut batch: Vec<Check> = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                let all_valid = batch.len() > 1 && {
                    let items: Vec<(&Envelope, &VerifyingKey)> =
                        batch.iter().map(|c| (&c.env, &c.key)).collect();
                    protocol::envelope::verify_batch(&items)
                };
                for c in batch.drain(..) {
                    let valid = all_valid || c.env.verify(&c.key).is_ok();
                    let _ = c.done.send((c.env, valid));
                }
            }
        });
        BatchVerifier { tx }
    }

    /// Whether `env` is signed by `key`; `None` once the task has ended.
    async fn check(&self, env: Envelope, key: VerifyingKey) -> Option<(Envelope, bool)> {
        let (done, verdict) = oneshot::channel();
        self.tx.send(Check { env, key, done }).ok()?;
        verdict.await.ok()
    }
}

/// One connection to the master's request socket.
pub struct Link {
    sender: tokio::sync::Mutex<DealerSendHalf>,
    waiters: Waiters,
    reader: tokio::task::JoinHandle<()>,
    watcher: tokio::task::JoinHandle<()>,
    /// Cancelled when the connection to the master drops.
    pub broken: CancellationToken,
    next_id: AtomicU64,
    signer: String,
    key: SigningKey,
    channel: ChannelSlot,
    timeout: Duration,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.reader.abort();
        self.watcher.abort();
    }
}

/// A token cancelled when `events` (a socket's monitor) reports the
/// master's end of the connection gone, and the task watching for it.
fn watch_disconnect(
    mut events: impl futures_util::Stream<Item = SocketEvent> + Unpin + Send + 'static,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let lost = CancellationToken::new();
    let flag = lost.clone();
    let watcher = tokio::spawn(async move {
        while let Some(ev) = events.next().await {
            if let SocketEvent::Disconnected(_) = ev {
                flag.cancel();
                break;
            }
        }
    });
    (lost, watcher)
}

/// Bytes a message may carry beyond its largest frame (routing frames).
const ROUTING_SLACK: usize = 1024;

/// Socket options for a connection to the master: the connect timeout, and
/// frames larger than `max_frame` refused on their header, before anything
/// is allocated for them, so a hostile master (or a peer in its place)
/// cannot make the minion reserve memory it announces.
fn connect_options(timeout: Duration, max_frame: usize) -> SocketOptions {
    let mut o = SocketOptions::default();
    o.connect_timeout(timeout)
        .max_frame_size(max_frame)
        .max_message_size(max_frame.saturating_add(ROUTING_SLACK));
    o
}

impl Link {
    /// Connects a DEALER to `endpoint` and starts the reply reader. Replies
    /// are verified as `reply_keys` says: against the master key once
    /// pinned or, before that, against the key the master sends along with
    /// an auth reply.
    pub async fn connect(
        endpoint: &str,
        signer: &str,
        key: SigningKey,
        reply_keys: impl Into<ReplyKeys>,
        channel: ChannelSlot,
        timeout: Duration,
        max_frame: usize,
    ) -> Result<Link, MinionError> {
        let mut sock = DealerSocket::with_options(connect_options(timeout, max_frame));
        let events = sock.monitor();
        sock.connect(endpoint)
            .await
            .map_err(|e| MinionError::Unreachable(format!("{endpoint}: {e}")))?;
        let (broken, watcher) = watch_disconnect(events);
        let (tx, mut rx) = sock.split();
        let waiters: Waiters = Arc::default();
        let w = waiters.clone();
        let ch = channel.clone();
        let ended = broken.clone();
        let reply_keys = reply_keys.into();
        let reader = tokio::spawn(async move {
            loop {
                let msg = match rx.recv().await {
                    Ok(m) => m,
                    Err(zeromq::ZmqError::Codec(e)) => {
                        warn!(error = %e, "dropped the connection to the master: it sent a frame that was refused");
                        break;
                    }
                    Err(e) => {
                        debug!(error = %e, "request socket closed");
                        break;
                    }
                };
                let Some(frame) = msg.into_vec().pop() else {
                    continue;
                };
                match verify_reply(&frame, &reply_keys, &ch, max_frame).await {
                    Ok((reply, mk)) => {
                        let waiter = w
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&reply.re);
                        if let Some(waiter) = waiter {
                            let _ = waiter.send(VerifiedReply {
                                body: reply.body,
                                master_key: mk,
                            });
                        }
                    }
                    Err(e) => warn!(error = %e, "dropped a reply that failed verification"),
                }
            }
            // The socket reports a connection reset (the master exited
            // with requests unread) as a receive error, with no
            // disconnect event: the link is broken all the same.
            ended.cancel();
        });
        Ok(Link {
            sender: tokio::sync::Mutex::new(tx),
            waiters,
            reader,
            watcher,
            broken,
            next_id: AtomicU64::new(1),
            signer: signer.to_owned(),
            key,
            channel,
            timeout,
        })
    }

    /// Sends a request and waits for its reply (up to the request timeout).
    /// `with_key` attaches the public key (auth requests).
    pub async fn request(
        &self,
        body: RequestBody,
        with_key: bool,
    ) -> Result<VerifiedReply, MinionError> {
        self.request_ref(&body, with_key).await
    }

    /// [`Link::request`] with a borrowed body, for a request that may be
    /// sent again (a return until it is acknowledged) without copying it.
    pub async fn request_ref(
        &self,
        body: &RequestBody,
        with_key: bool,
    ) -> Result<VerifiedReply, MinionError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let req = Request {
            id,
            sent_at_ms: now_ms(),
            body,
        };
        let env = if with_key {
            Envelope::seal(&self.signer, &self.key, &req)?.with_key(&self.key.verifying_key())
        } else {
            let channel = self
                .channel
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .ok_or_else(|| MinionError::Unreachable("no channel key yet".into()))?;
            Envelope::seal_private(&self.signer, &self.key, &channel, random(), &req)?
        };
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        let msg = ZmqMessage::from(Bytes::from(env.to_bytes()));
        let exchange = async {
            let sent = tokio::time::timeout(self.timeout, async {
                self.sender.lock().await.send(msg).await
            })
            .await;
            match sent {
                Ok(Ok(())) => match tokio::time::timeout(self.timeout, rx).await {
                    Ok(Ok(r)) => Ok(r),
                    _ => Err(MinionError::Unreachable("no reply from the master".into())),
                },
                Ok(Err(e)) => Err(MinionError::Unreachable(e.to_string())),
                Err(_) => Err(MinionError::Unreachable("send timed out".into())),
            }
        };
        // A request the connection's end cut short fails then, not after
        // the timeout: its answer cannot come (a master that restarted
        // knows neither the request nor the channel key it was sealed
        // with), and the session ends at once instead of a request
        // timeout later.
        let result = tokio::select! {
            r = exchange => r,
            _ = self.broken.cancelled() => Err(MinionError::Unreachable(
                "the connection to the master was lost".into(),
            )),
        };
        self.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        let reply = result?;
        if let ReplyBody::Error { kind, message } = &reply.body {
            return Err(MinionError::Refused {
                kind: *kind,
                message: message.clone(),
            });
        }
        Ok(reply)
    }
}

async fn verify_reply(
    frame: &[u8],
    keys: &ReplyKeys,
    channel: &RwLock<Option<SymmetricKey>>,
    max_frame: usize,
) -> Result<(Reply, VerifyingKey), MinionError> {
    let env = Envelope::from_bytes(frame, max_frame)?;
    let pinned = *keys.master.read().unwrap_or_else(|p| p.into_inner());
    let key = match pinned {
        Some(k) => k,
        None => env.carried_key()?,
    };
    let channel = channel.read().unwrap_or_else(|p| p.into_inner()).clone();
    let reply: Reply = match (&keys.batch, pinned) {
        (Some(batch), Some(_)) => {
            let (env, valid) = batch
                .check(env, key)
                .await
                .ok_or_else(|| MinionError::Unreachable("the reply verifier has stopped".into()))?;
            if !valid {
                return Err(protocol::ProtocolError::BadSignature { signer: env.signer }.into());
            }
            env.open_verified(channel.as_ref(), false)?
        }
        _ => env.open_private(&key, channel.as_ref(), false)?,
    };
    if pinned.is_none() && !matches!(reply.body, ReplyBody::Auth(_) | ReplyBody::Error { .. }) {
        return Err(MinionError::Refused {
            kind: ErrorKind::BadSignature,
            message: "unpinned master key on a non-auth reply".into(),
        });
    }
    Ok((reply, key))
}

/// Connects a SUB socket to the master's publish port and subscribes to
/// jobs and to the session keys handed over to minion `id`.
pub async fn subscribe(
    endpoint: &str,
    id: &str,
    timeout: Duration,
    max_frame: usize,
) -> Result<Subscription, MinionError> {
    let mut sock = SubSocket::with_options(connect_options(timeout, max_frame));
    let events = sock.monitor();
    sock.connect(endpoint)
        .await
        .map_err(|e| MinionError::Unreachable(format!("{endpoint}: {e}")))?;
    for topic in [BROADCAST_TOPIC, &protocol::key_topic(id)] {
        sock.subscribe(topic)
            .await
            .map_err(|e| MinionError::Unreachable(e.to_string()))?;
    }
    let (lost, watcher) = watch_disconnect(events);
    Ok(Subscription {
        sock,
        lost,
        watcher,
    })
}

/// A subscription to the master's publish socket. Its connection dropping
/// (the master stopped or restarted) ends [`next_publish`] with an error,
/// as the request connection's does the session: either connection may be
/// the first to see it.
pub struct Subscription {
    sock: SubSocket,
    lost: CancellationToken,
    watcher: tokio::task::JoinHandle<()>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// A message from the publish socket.
#[derive(Debug)]
pub enum Published {
    /// A job sealed under the session key.
    Job(Bytes),
    /// A session key handed over to this minion (a signed [`protocol::KeyHandOver`]).
    Key(Bytes),
}

/// Opens the key for minion `id` (sealed to `me`) in a session key
/// hand-over signed by `master`. Returns its epoch and key.
pub fn open_handover(
    frame: &[u8],
    master: &keys::VerifyingKey,
    me: &keys::SigningKey,
    id: &str,
    max_frame: usize,
) -> Result<(u64, protocol::seal::SymmetricKey), MinionError> {
    let env = protocol::Envelope::from_bytes(frame, max_frame)?;
    let hand: protocol::KeyHandOver = env.open(master)?;
    let mine = hand
        .keys
        .iter()
        .find(|k| k.minion.as_str() == id)
        .ok_or_else(|| MinionError::Refused {
            kind: protocol::ErrorKind::NotFound,
            message: "a session key hand-over without a key for this minion".into(),
        })?;
    let key = protocol::seal::open_session_key(me, id, &mine.key)?;
    Ok((mine.key.epoch, key))
}

/// Receives the next published message: a job or a handed-over key, told
/// apart by its topic.
pub async fn next_publish(sub: &mut Subscription) -> Result<Published, MinionError> {
    loop {
        let msg = tokio::select! {
            _ = sub.lost.cancelled() => {
                return Err(MinionError::Unreachable(
                    "the publish connection to the master was lost".into(),
                ));
            }
            m = sub.sock.recv() => m.map_err(|e| MinionError::Unreachable(e.to_string()))?,
        };
        let mut frames = msg.into_vec();
        let Some(frame) = frames.pop() else {
            continue;
        };
        let is_key = frames.first().is_some_and(|t| t.starts_with(b"key/"));
        return Ok(if is_key {
            Published::Key(frame)
        } else {
            Published::Job(frame)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeromq::PubSocket;

    /// Completes a ZMTP 3.0 NULL handshake as a ROUTER on `stream`.
    async fn zmtp_accept(stream: &mut tokio::net::TcpStream) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut greeting = [0u8; 64];
        greeting[0] = 0xff;
        greeting[9] = 0x7f;
        greeting[10] = 3;
        greeting[12..16].copy_from_slice(b"NULL");
        stream.write_all(&greeting).await.expect("greeting");
        let mut theirs = [0u8; 64];
        stream
            .read_exact(&mut theirs)
            .await
            .expect("their greeting");
        // Their READY command: flags, size, body.
        let mut head = [0u8; 2];
        stream.read_exact(&mut head).await.expect("ready head");
        let mut body = vec![0u8; usize::from(head[1])];
        stream.read_exact(&mut body).await.expect("ready body");
        let mut ready = b"\x05READY\x0bSocket-Type".to_vec();
        ready.extend_from_slice(&6u32.to_be_bytes());
        ready.extend_from_slice(b"ROUTER");
        let mut command = vec![0x04, u8::try_from(ready.len()).expect("short")];
        command.extend_from_slice(&ready);
        stream.write_all(&command).await.expect("ready");
    }

    /// Replies checked together pass or fail one by one: the forged one
    /// among them fails, the others pass, and a reply that arrives alone
    /// is checked alone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replies_checked_in_a_batch_fail_only_the_forged_one() {
        let (master, forger) = (
            keys::generate().expect("key"),
            keys::generate().expect("key"),
        );
        let keys = ReplyKeys::batched(
            Arc::new(RwLock::new(Some(master.verifying_key()))),
            BatchVerifier::start(),
        );
        let no_channel: RwLock<Option<SymmetricKey>> = RwLock::new(None);
        let frame = |i: u64, by: &SigningKey| {
            let reply = Reply {
                re: i,
                body: ReplyBody::Error {
                    kind: ErrorKind::Internal,
                    message: format!("reply {i}"),
                },
            };
            Envelope::seal("master", by, &reply)
                .expect("seal")
                .to_bytes()
        };
        let frames: Vec<Vec<u8>> = (0..40)
            .map(|i| frame(i, if i == 17 { &forger } else { &master }))
            .collect();
        let checks = frames
            .iter()
            .map(|f| verify_reply(f, &keys, &no_channel, 1 << 20));
        let verdicts = futures_util::future::join_all(checks).await;
        for (i, verdict) in verdicts.into_iter().enumerate() {
            match (i, verdict) {
                (17, Err(MinionError::Protocol(protocol::ProtocolError::BadSignature { .. }))) => {}
                (17, other) => panic!("the forged reply passed: {:?}", other.map(|r| r.0.re)),
                (i, Ok((reply, key))) => {
                    assert_eq!(reply.re, i as u64);
                    assert_eq!(key, master.verifying_key());
                }
                (i, Err(e)) => panic!("reply {i} failed: {e}"),
            }
        }
        let alone = verify_reply(&frame(99, &master), &keys, &no_channel, 1 << 20).await;
        assert_eq!(alone.expect("a reply alone").0.re, 99);
        let forged = verify_reply(&frame(98, &forger), &keys, &no_channel, 1 << 20).await;
        assert!(forged.is_err(), "a forged reply alone passed");
    }

    /// A master that exits with a request unread resets the connection
    /// (no disconnect event from the socket): a request waiting on it
    /// fails at once, not after the request timeout, so the session ends
    /// and the minion reconnects.
    #[tokio::test]
    async fn a_reset_connection_fails_the_request_waiting_on_it() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let endpoint = format!("tcp://{}", listener.local_addr().expect("addr"));
        let master = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            zmtp_accept(&mut stream).await;
            // The request's first bytes arrive; the rest stay unread.
            let mut some = [0u8; 4];
            stream.read_exact(&mut some).await.expect("request");
            stream.set_zero_linger().expect("linger");
            drop(stream);
        });
        let key = keys::generate().expect("key");
        let link = Link::connect(
            &endpoint,
            "m1",
            key.clone(),
            Arc::new(RwLock::new(None)),
            Arc::new(RwLock::new(None)),
            Duration::from_secs(600),
            1 << 20,
        )
        .await
        .expect("connect");
        let auth = RequestBody::Auth(protocol::AuthRequest {
            minion: protocol::MinionId::new("m1").expect("id"),
            nonce: vec![0; 16],
        });
        let answer = tokio::time::timeout(Duration::from_secs(60), link.request(auth, true))
            .await
            .expect("the request ends well before its timeout");
        master.await.expect("master");
        match answer {
            Err(MinionError::Unreachable(why)) => {
                assert!(why.contains("connection to the master was lost"), "{why}");
            }
            Err(other) => panic!("expected the lost connection, got {other}"),
            Ok(_) => panic!("expected the lost connection, got a reply"),
        }
        assert!(link.broken.is_cancelled());
    }

    /// The publish connection dropping ends `next_publish` with an error
    /// (the session then reconnects), even though the request connection
    /// may not have noticed yet.
    #[tokio::test]
    async fn a_lost_publish_connection_ends_the_subscription() {
        let mut publisher = PubSocket::new();
        let bound = publisher.bind("tcp://127.0.0.1:0").await.expect("bind");
        let endpoint = bound.to_string();
        let mut sub = subscribe(&endpoint, "m1", Duration::from_secs(5), 1 << 20)
            .await
            .expect("subscribe");
        // A publish gets through once the subscription has reached the
        // publisher (subscriptions travel asynchronously).
        let got = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                publisher
                    .send(ZmqMessage::from(BROADCAST_TOPIC.to_owned()))
                    .await
                    .expect("send");
                tokio::select! {
                    r = next_publish(&mut sub) => break r,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        })
        .await
        .expect("a publish within 10 s");
        assert!(got.is_ok(), "{got:?}");
        drop(publisher);
        let ended = tokio::time::timeout(Duration::from_secs(10), next_publish(&mut sub))
            .await
            .expect("the subscription ends within 10 s of the publisher going");
        match ended {
            Err(MinionError::Unreachable(m)) => assert!(m.contains("lost"), "{m}"),
            other => panic!("expected the connection lost, got {other:?}"),
        }
    }
}
