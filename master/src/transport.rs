//! The master's ZeroMQ sockets: a PUB socket for jobs and a ROUTER request
//! socket whose receive loop only queues frames for the worker pool.
//!
//! Both bind through listeners made with a backlog of 4,096 so a reconnect
//! storm of thousands of minions is accepted at once.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use bytes::Bytes;
use socket2::{Domain, Socket as RawSocket, Type};
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use zeromq::{PubSocket, RouterSocket, Socket, SocketRecv, SocketSend, ZmqMessage};

use crate::error::MasterError;

/// Listen backlog for both sockets.
pub const LISTEN_BACKLOG: i32 = 4096;

/// A frame received on the request socket, with what is needed to answer it.
pub struct Inbound {
    /// Routing frames to send back before the reply (identity, and the empty
    /// delimiter for REQ clients).
    pub route: Vec<Bytes>,
    /// The request envelope.
    pub payload: Bytes,
}

fn listener(addr: &str) -> Result<TcpListener, MasterError> {
    let bind_err = |reason: String| MasterError::Bind {
        addr: addr.to_owned(),
        reason,
    };
    let sa: SocketAddr = addr
        .parse()
        .map_err(|e: std::net::AddrParseError| bind_err(e.to_string()))?;
    let sock = RawSocket::new(Domain::for_address(sa), Type::STREAM, None)
        .map_err(|e| bind_err(e.to_string()))?;
    sock.set_reuse_address(true)
        .map_err(|e| bind_err(e.to_string()))?;
    sock.bind(&sa.into()).map_err(|e| bind_err(e.to_string()))?;
    sock.listen(LISTEN_BACKLOG)
        .map_err(|e| bind_err(e.to_string()))?;
    sock.set_nonblocking(true)
        .map_err(|e| bind_err(e.to_string()))?;
    Ok(sock.into())
}

fn host_port(interface: &str, port: u16) -> String {
    if interface.contains(':') {
        format!("[{interface}]:{port}")
    } else {
        format!("{interface}:{port}")
    }
}

/// Makes a socket of type `S` bound on `interface:port` with the large backlog.
pub async fn bind<S: Socket>(interface: &str, port: u16) -> Result<S, MasterError> {
    let addr = host_port(interface, port);
    let mut sock = S::new();
    sock.bind_listener(listener(&addr)?)
        .await
        .map_err(|e| MasterError::Bind {
            addr,
            reason: e.to_string(),
        })?;
    Ok(sock)
}

/// Sends every frame set from `rx` on the PUB socket until cancelled.
pub async fn publish_loop(
    mut sock: PubSocket,
    mut rx: mpsc::Receiver<Vec<Bytes>>,
    cancel: CancellationToken,
) {
    loop {
        let frames = tokio::select! {
            _ = cancel.cancelled() => break,
            f = rx.recv() => match f { Some(f) => f, None => break },
        };
        let Ok(msg) = ZmqMessage::try_from(frames) else {
            continue;
        };
        if let Err(e) = sock.send(msg).await {
            warn!(error = %e, "publish failed");
        }
    }
    let _ = sock.close().await;
}

/// Runs the request socket: a receive loop that only queues, and a sender
/// that writes replies produced by the workers.
pub async fn request_loop(
    sock: RouterSocket,
    queue: mpsc::Sender<Inbound>,
    mut replies: mpsc::Receiver<Vec<Bytes>>,
    cancel: CancellationToken,
) {
    let (mut tx, mut rx) = sock.split();
    let send_cancel = cancel.clone();
    let sender = tokio::spawn(async move {
        loop {
            let frames = tokio::select! {
                _ = send_cancel.cancelled() => break,
                r = replies.recv() => match r { Some(r) => r, None => break },
            };
            let Ok(msg) = ZmqMessage::try_from(frames) else {
                continue;
            };
            if let Err(e) = tx.send(msg).await {
                debug!(error = %e, "reply could not be sent; peer gone");
            }
        }
    });
    loop {
        let msg = tokio::select! {
            _ = cancel.cancelled() => break,
            m = rx.recv() => match m {
                Ok(m) => m,
                Err(e) => {
                    warn!(error = %e, "request socket receive failed");
                    continue;
                }
            },
        };
        let mut frames = msg.into_vec();
        // [identity, payload] from DEALER; [identity, "", payload] from REQ.
        let route_len = match frames.len() {
            2 => 1,
            3 if frames[1].is_empty() => 2,
            n => {
                warn!(
                    frames = n,
                    "dropped request with an unexpected frame layout"
                );
                continue;
            }
        };
        let Some(payload) = frames.pop() else {
            continue;
        };
        frames.truncate(route_len);
        let inbound = Inbound {
            route: frames,
            payload,
        };
        if queue.try_send(inbound).is_err() {
            warn!("request queue full; dropped a request (the minion will retry)");
        }
    }
    sender.abort();
}

/// A receiver shared by the worker pool.
pub type SharedQueue = Arc<Mutex<mpsc::Receiver<Inbound>>>;
