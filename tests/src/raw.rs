//! Raw ZeroMQ peers for tests that play a hostile or forged party: a DEALER
//! that sends arbitrary frames to the master's request socket, a stand-in
//! publisher, and plain TCP garbage.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use keys::{SigningKey, VerifyingKey};
use protocol::seal::{Sealed, SymmetricKey, channel_key, open_session_key};
use protocol::{
    AuthReply, AuthRequest, Envelope, MinionId, Reply, ReplyBody, Request, RequestBody,
};
use tokio::runtime::Runtime;
use zeromq::{DealerSocket, PubSocket, Socket, SocketRecv, SocketSend, ZmqMessage};

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A DEALER connected to the master's request socket.
pub struct RawDealer {
    rt: Runtime,
    sock: DealerSocket,
}

impl RawDealer {
    /// Connects to `endpoint`.
    pub fn connect(endpoint: &str) -> RawDealer {
        let rt = runtime();
        let _guard = rt.enter();
        let mut sock = DealerSocket::new();
        rt.block_on(sock.connect(endpoint)).expect("connect");
        RawDealer { rt, sock }
    }

    /// Sends one multipart message.
    pub fn send_frames(&mut self, frames: Vec<Vec<u8>>) {
        let frames: Vec<Bytes> = frames.into_iter().map(Bytes::from).collect();
        let msg = ZmqMessage::try_from(frames).expect("frames");
        self.rt.block_on(self.sock.send(msg)).expect("send");
    }

    /// Waits (up to 10 s) for the next reply and decodes it with the master
    /// key, opening a sealed reply with `channel`.
    pub fn recv_sealed_reply(
        &mut self,
        master: &VerifyingKey,
        channel: Option<&SymmetricKey>,
    ) -> Option<Reply> {
        let msg = self
            .rt
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(10), self.sock.recv()).await
            })
            .ok()?
            .ok()?;
        let frame = msg.into_vec().pop()?;
        let env = Envelope::from_bytes(&frame, usize::MAX).ok()?;
        env.open_private(master, channel, false).ok()
    }

    /// Waits for a reply that is not sealed (auth replies, refusals of
    /// unknown senders).
    pub fn recv_reply(&mut self, master: &VerifyingKey) -> Option<Reply> {
        self.recv_sealed_reply(master, None)
    }

    /// Signs and seals `body` as `signer` with `key` (the channel key agreed
    /// with `master`) and returns the master's reply.
    pub fn request(
        &mut self,
        signer: &str,
        key: &SigningKey,
        body: RequestBody,
        master: &VerifyingKey,
    ) -> Reply {
        let frame = signed_request(signer, key, body, master);
        self.send_frames(vec![frame]);
        let ch = channel(key, master, signer);
        self.recv_sealed_reply(master, ch.as_ref())
            .expect("a reply from the master")
    }

    /// Authenticates as `id` with `key` and returns the master's answer.
    pub fn auth(&mut self, id: &str, key: &SigningKey, master: &VerifyingKey) -> AuthReply {
        let nonce: Vec<u8> = (0..16).map(|_| rand_byte()).collect();
        let req = Request {
            id: 7,
            sent_at_ms: now_ms(),
            body: RequestBody::Auth(AuthRequest {
                minion: MinionId::new(id).expect("id"),
                nonce,
            }),
        };
        let env = Envelope::seal(id, key, &req)
            .expect("seal")
            .with_key(&key.verifying_key());
        self.send_frames(vec![env.to_bytes()]);
        match self.recv_reply(master).expect("auth reply").body {
            ReplyBody::Auth(a) => a,
            other => panic!("expected an auth reply, got {other:?}"),
        }
    }
}

fn rand_byte() -> u8 {
    let mut b = [0u8; 1];
    let _ = getrandom::fill(&mut b);
    b[0]
}

/// The channel key between a minion key and the master.
pub fn channel(key: &SigningKey, master: &VerifyingKey, id: &str) -> Option<SymmetricKey> {
    channel_key(key, master, id).ok()
}

/// Encodes a request signed by `key` as `signer` and sealed with the
/// channel key agreed with `master`.
pub fn signed_request(
    signer: &str,
    key: &SigningKey,
    body: RequestBody,
    master: &VerifyingKey,
) -> Vec<u8> {
    let req = Request {
        id: 1,
        sent_at_ms: now_ms(),
        body,
    };
    let ch = channel(key, master, signer).expect("channel key");
    Envelope::seal_private(signer, key, &ch, [rand_byte(); 24], &req)
        .expect("seal")
        .to_bytes()
}

/// Encodes a request signed by `key` as `signer`, not sealed.
pub fn plain_request(signer: &str, key: &SigningKey, body: RequestBody) -> Vec<u8> {
    let req = Request {
        id: 1,
        sent_at_ms: now_ms(),
        body,
    };
    Envelope::seal(signer, key, &req).expect("seal").to_bytes()
}

/// Authenticates as an accepted minion and opens the session key it is
/// handed: what that minion could read.
pub fn session_key(
    endpoint: &str,
    id: &str,
    key: &SigningKey,
    master: &VerifyingKey,
) -> (u64, SymmetricKey) {
    let mut d = RawDealer::connect(endpoint);
    let a = d.auth(id, key, master);
    let sealed = a.session.expect("accepted with a session key");
    let k = open_session_key(key, id, &sealed).expect("session key opens");
    (sealed.epoch, k)
}

/// A stand-in publisher bound on 127.0.0.1.
pub struct RawPublisher {
    rt: Runtime,
    sock: PubSocket,
}

impl RawPublisher {
    /// Binds on `port`.
    pub fn bind(port: u16) -> RawPublisher {
        let rt = runtime();
        let _guard = rt.enter();
        let mut sock = PubSocket::new();
        rt.block_on(sock.bind(&format!("tcp://127.0.0.1:{port}")))
            .expect("bind");
        RawPublisher { rt, sock }
    }

    /// Publishes a signed envelope sealed under a session key.
    pub fn publish_sealed(&mut self, epoch: u64, key: &SymmetricKey, envelope: &[u8]) {
        let nonce: [u8; 24] = std::array::from_fn(|_| rand_byte());
        let sealed = Sealed::seal(key, epoch, nonce, b"cmdb-publish", envelope);
        self.publish_raw(&sealed.to_bytes());
    }

    /// Publishes raw bytes on the broadcast topic.
    pub fn publish_raw(&mut self, bytes: &[u8]) {
        let frames = vec![Bytes::from_static(b"cmdb"), Bytes::from(bytes.to_vec())];
        let msg = ZmqMessage::try_from(frames).expect("frames");
        self.rt.block_on(self.sock.send(msg)).expect("publish");
    }
}

/// Writes `bytes` to a plain TCP connection on 127.0.0.1 and closes it.
pub fn tcp_garbage(port: u16, bytes: &[u8]) {
    if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
        let _ = s.write_all(bytes);
    }
}

/// A plain ZeroMQ SUB on the master's PUB port that records every frame,
/// as anyone who can reach the port could.
pub struct Sniffer {
    frames: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sniffer {
    /// Connects to `port` on 127.0.0.1 and subscribes to everything.
    pub fn start(port: u16) -> Sniffer {
        let frames: std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>> = Default::default();
        let stop: std::sync::Arc<std::sync::atomic::AtomicBool> = Default::default();
        let (f, st) = (frames.clone(), stop.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = runtime();
            rt.block_on(async move {
                let mut sub = zeromq::SubSocket::new();
                sub.connect(&format!("tcp://127.0.0.1:{port}"))
                    .await
                    .expect("connect");
                sub.subscribe("").await.expect("subscribe");
                let _ = ready_tx.send(());
                while !st.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Ok(Ok(msg)) =
                        tokio::time::timeout(Duration::from_millis(100), sub.recv()).await
                    {
                        let mut all = f.lock().expect("frames");
                        for frame in msg.into_vec() {
                            all.push(frame.to_vec());
                        }
                    }
                }
            });
        });
        let _ = ready_rx.recv_timeout(Duration::from_secs(10));
        Sniffer {
            frames,
            stop,
            thread: Some(thread),
        }
    }

    /// Every frame seen so far.
    pub fn frames(&self) -> Vec<Vec<u8>> {
        self.frames.lock().expect("frames").clone()
    }
}

impl Drop for Sniffer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A jid for the current time.
pub fn now_jid() -> protocol::Jid {
    let us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    protocol::Jid::from_micros(us).expect("jid")
}

/// A `cmd.run` job for every minion, issued at `issued_at_ms`.
pub fn cmd_job(cmd: &str, issued_at_ms: i64) -> protocol::Publish {
    protocol::Publish::Job(protocol::Job {
        jid: now_jid(),
        target: protocol::Target::Glob("*".into()),
        fun: "cmd.run".into(),
        args: vec![cmd.into()],
        kwargs: std::collections::BTreeMap::new(),
        timeout_secs: 10,
        issued_at_ms,
        user: "test".into(),
        expected: None,
    })
}

/// A successful return of `fun` from `minion`.
pub fn job_return(
    jid: &protocol::Jid,
    minion: &str,
    data: serde_json::Value,
    fun: &str,
) -> protocol::JobReturn {
    protocol::JobReturn {
        jid: jid.clone(),
        minion: MinionId::new(minion).expect("id"),
        fun: fun.into(),
        success: true,
        retcode: 0,
        data,
        started_ms: now_ms(),
        ended_ms: now_ms(),
    }
}

/// The kind of a refusal, if the reply is one.
pub fn refused_kind(body: &ReplyBody) -> Option<protocol::ErrorKind> {
    match body {
        ReplyBody::Error { kind, .. } => Some(*kind),
        _ => None,
    }
}
