//! The master's ZeroMQ sockets: a PUB socket for jobs and a ROUTER request
//! socket whose receive loop only queues frames for the worker pool.
//!
//! Both bind through listeners made with a backlog of 4,096 so a reconnect
//! storm of thousands of minions is accepted at once.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use bytes::Bytes;
use socket2::{Domain, Socket as RawSocket, Type};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use zeromq::{PubSocket, RouterSocket, Socket, SocketRecv, SocketSend, ZmqMessage};

use crate::config::MasterConfig;
use crate::error::MasterError;

pub mod gate;

/// Listen backlog for both sockets.
pub const LISTEN_BACKLOG: i32 = 4096;

/// Largest frame a subscriber may send on the publish socket. Subscribers
/// only send subscriptions (the topic is a few bytes), so anything larger is
/// refused on its header.
pub const PUBLISH_PEER_MAX_FRAME: usize = 1024;

/// Most subscriptions one subscriber holds (minions make one).
pub const PUBLISH_PEER_MAX_SUBSCRIPTIONS: usize = 16;

/// Bytes a request may carry beyond its envelope (routing frames).
const ROUTING_SLACK: usize = 1024;

/// File descriptors kept back from the connection limit for the store, the
/// API and logs.
const RESERVED_FDS: usize = 512;

/// Events the socket monitors can hold; more than the connections a socket
/// admits, so the gate misses none in a reconnect storm.
const MONITOR_CAPACITY: usize = 65_536;

/// The most connections each socket holds: `max_connections`, or else half
/// the open-file limit (each minion holds one connection per socket) less a
/// reserve.
pub fn connection_limit(cfg: &MasterConfig, nofile: u64) -> usize {
    if cfg.max_connections > 0 {
        return cfg.max_connections;
    }
    let nofile = usize::try_from(nofile).unwrap_or(usize::MAX);
    (nofile.saturating_sub(RESERVED_FDS) / 2).max(64)
}

fn common_options(cfg: &MasterConfig, max_connections: usize) -> zeromq::SocketOptions {
    let mut o = zeromq::SocketOptions::default();
    o.handshake_timeout(std::time::Duration::from_secs(cfg.auth_grace_secs))
        .max_connections(max_connections)
        .monitor_capacity(MONITOR_CAPACITY);
    o
}

/// Options of the request socket: frames up to `max_frame_bytes`, refused
/// on their header beyond it.
pub fn request_options(cfg: &MasterConfig, max_connections: usize) -> zeromq::SocketOptions {
    let mut o = common_options(cfg, max_connections);
    o.max_frame_size(cfg.max_frame_bytes)
        .max_message_size(cfg.max_frame_bytes.saturating_add(ROUTING_SLACK));
    o
}

/// Options of the publish socket: subscribers may send small frames only.
pub fn publish_options(cfg: &MasterConfig, max_connections: usize) -> zeromq::SocketOptions {
    let mut o = common_options(cfg, max_connections);
    o.max_frame_size(PUBLISH_PEER_MAX_FRAME)
        .max_message_size(PUBLISH_PEER_MAX_FRAME)
        .max_subscriptions(PUBLISH_PEER_MAX_SUBSCRIPTIONS);
    o
}

/// A frame received on the request socket, with what is needed to answer it.
pub struct Inbound {
    /// Routing frames to send back before the reply (identity, and the empty
    /// delimiter for REQ clients).
    pub route: Vec<Bytes>,
    /// The request envelope.
    pub payload: Bytes,
    /// Its share of the queue's byte budget, given back when it is dropped.
    pub held: Option<OwnedSemaphorePermit>,
}

/// The request queue's bound in bytes: the receive loop takes a request's
/// size from it before queueing, the request gives it back when it is
/// dropped. Counted in KiB, so any bound fits the semaphore.
#[derive(Clone)]
pub struct QueueBudget {
    kib: Arc<Semaphore>,
    total_kib: u32,
}

impl QueueBudget {
    /// A budget of `bytes` (at least 1 KiB).
    pub fn new(bytes: usize) -> QueueBudget {
        let total_kib = u32::try_from(bytes / 1024)
            .unwrap_or(u32::MAX >> 3)
            .clamp(1, u32::MAX >> 3);
        QueueBudget {
            kib: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    /// Waits until `bytes` fit (a request larger than the whole budget waits
    /// for all of it), and holds them.
    pub async fn take(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total_kib);
        self.kib.clone().acquire_many_owned(kib).await.ok()
    }

    /// Bytes (rounded to KiB) held by queued requests now.
    #[cfg(test)]
    fn held_bytes(&self) -> usize {
        (self.total_kib as usize - self.kib.available_permits()) * 1024
    }
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

/// Makes a socket of type `S` with `options`, bound on `interface:port`
/// with the large backlog, and its monitor for the gate (taken before the
/// bind so no connection is missed).
pub async fn bind<S: Socket>(
    interface: &str,
    port: u16,
    options: zeromq::SocketOptions,
    which: gate::Port,
) -> Result<(S, gate::Watched), MasterError> {
    use futures_util::StreamExt;
    let addr = host_port(interface, port);
    let mut sock = S::with_options(options);
    let watched = gate::Watched {
        port: which,
        events: sock.monitor().boxed(),
        backend: sock.backend(),
    };
    sock.bind_listener(listener(&addr)?)
        .await
        .map_err(|e| MasterError::Bind {
            addr,
            reason: e.to_string(),
        })?;
    Ok((sock, watched))
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
/// that writes replies produced by the workers, a batch at a time. While
/// the queued requests hold all of `budget`, the loop reads nothing more.
pub async fn request_loop(
    sock: RouterSocket,
    queue: mpsc::Sender<Inbound>,
    budget: QueueBudget,
    mut replies: mpsc::Receiver<Vec<Vec<Bytes>>>,
    cancel: CancellationToken,
) {
    let (mut tx, mut rx) = sock.split();
    let send_cancel = cancel.clone();
    let sender = tokio::spawn(async move {
        loop {
            let batch = tokio::select! {
                _ = send_cancel.cancelled() => break,
                r = replies.recv() => match r { Some(r) => r, None => break },
            };
            for frames in batch {
                let Ok(msg) = ZmqMessage::try_from(frames) else {
                    continue;
                };
                if let Err(e) = tx.send(msg).await {
                    debug!(error = %e, "reply could not be sent; peer gone");
                }
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
        let size = payload.len() + frames.iter().map(Bytes::len).sum::<usize>();
        let held = tokio::select! {
            _ = cancel.cancelled() => break,
            held = budget.take(size) => held,
        };
        let inbound = Inbound {
            route: frames,
            payload,
            held,
        };
        if queue.try_send(inbound).is_err() {
            warn!("request queue full; dropped a request (the minion will retry)");
        }
    }
    sender.abort();
}

/// A receiver shared by the worker pool.
pub type SharedQueue = Arc<Mutex<mpsc::Receiver<Inbound>>>;

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::QueueBudget;

    #[tokio::test]
    async fn a_full_budget_holds_the_next_request_until_one_is_dropped() {
        let budget = QueueBudget::new(64 * 1024);
        let first = budget.take(40 * 1024).await;
        let second = budget.take(20 * 1024).await;
        assert_eq!(budget.held_bytes(), 60 * 1024);
        assert!(
            budget.take(10 * 1024).now_or_never().is_none(),
            "10 KiB more fit in 4 KiB left"
        );
        drop(first);
        let third = budget.take(10 * 1024).now_or_never().flatten();
        assert!(third.is_some(), "40 KiB given back make room");
        assert_eq!(budget.held_bytes(), 30 * 1024);
        drop((second, third));
        assert_eq!(budget.held_bytes(), 0);
    }

    #[tokio::test]
    async fn a_request_larger_than_the_budget_takes_all_of_it() {
        let budget = QueueBudget::new(1024 * 1024);
        let big = budget.take(5 * 1024 * 1024).await;
        assert_eq!(budget.held_bytes(), 1024 * 1024);
        drop(big);
        let small = budget.take(1).await;
        assert_eq!(budget.held_bytes(), 1024, "a byte holds one KiB");
        drop(small);
    }
}
