//! Raw ZeroMQ peers for tests that play a hostile or forged party: a DEALER
//! that sends arbitrary frames to the master's request socket, a stand-in
//! publisher, and plain TCP garbage.

use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use keys::{SigningKey, VerifyingKey};
use protocol::{Envelope, Reply, Request, RequestBody};
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

    /// Waits (up to 10 s) for the next reply and decodes it with the master key.
    pub fn recv_reply(&mut self, master: &VerifyingKey) -> Option<Reply> {
        let msg = self
            .rt
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(10), self.sock.recv()).await
            })
            .ok()?
            .ok()?;
        let frame = msg.into_vec().pop()?;
        let env = Envelope::from_bytes(&frame, usize::MAX).ok()?;
        env.open(master).ok()
    }

    /// Signs `body` as `signer` with `key` and returns the master's reply.
    pub fn request(
        &mut self,
        signer: &str,
        key: &SigningKey,
        body: RequestBody,
        master: &VerifyingKey,
    ) -> Reply {
        let frame = signed_request(signer, key, body);
        self.send_frames(vec![frame]);
        self.recv_reply(master).expect("a reply from the master")
    }
}

/// Encodes a signed request envelope.
pub fn signed_request(signer: &str, key: &SigningKey, body: RequestBody) -> Vec<u8> {
    let req = Request {
        id: 1,
        sent_at_ms: now_ms(),
        body,
    };
    Envelope::seal(signer, key, &req).expect("seal").to_bytes()
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

    /// Publishes an envelope on the broadcast topic.
    pub fn publish(&mut self, envelope: &[u8]) {
        let frames = vec![Bytes::from_static(b"cmdb"), Bytes::from(envelope.to_vec())];
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
