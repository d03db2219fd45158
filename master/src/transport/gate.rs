//! Limits on connections that have not authenticated.
//!
//! ZeroMQ's NULL mechanism lets anyone finish the greeting, so the master
//! decides which connections it keeps. A request connection is trusted once
//! a request on it verified against an accepted key, or an auth request
//! admitted its key to `accepted/` or `pending/`. A publish connection (a
//! SUB socket only ever sends subscriptions) is trusted while its address
//! holds a trusted request connection: a minion connects both from the same
//! host. A connection still untrusted after `auth_grace_secs` is closed, and
//! at most `max_unauthenticated` untrusted connections per socket are kept;
//! newer ones beyond it are closed at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use zeromq::{Endpoint, MultiPeerBackend, SocketEvent, ZmqError};

use crate::throttle::LogThrottle;

/// Which of the master's sockets a connection is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Port {
    /// The PUB socket (`publish_port`).
    Publish,
    /// The ROUTER request socket (`ret_port`).
    Request,
}

impl Port {
    fn name(self) -> &'static str {
        match self {
            Port::Publish => "publish",
            Port::Request => "request",
        }
    }
}

#[derive(Debug)]
struct Conn {
    addr: Option<IpAddr>,
    since: Instant,
    trusted: bool,
}

#[derive(Default)]
struct Table {
    conns: HashMap<(Port, Bytes), Conn>,
    /// Untrusted connections per port.
    untrusted: HashMap<Port, usize>,
    /// Trusted request connections per remote address.
    trusted_addrs: HashMap<IpAddr, usize>,
    /// Untrusted publish connections per remote address, promoted when a
    /// request connection from there is trusted.
    waiting_publish: HashMap<IpAddr, Vec<Bytes>>,
    /// Request connections closed or refused lately, and when: requests
    /// they sent that still wait in the queue are not worth answering.
    gone: HashMap<Bytes, Instant>,
}

/// How long a closed request connection is remembered as gone: longer than
/// a request waits in the queue.
const GONE_KEEP: Duration = Duration::from_secs(300);

impl Table {
    fn untrusted_mut(&mut self, port: Port) -> &mut usize {
        self.untrusted.entry(port).or_default()
    }

    fn remove(&mut self, port: Port, peer: &[u8]) -> Option<Conn> {
        let conn = self.conns.remove(&(port, Bytes::copy_from_slice(peer)))?;
        if port == Port::Request {
            self.gone
                .insert(Bytes::copy_from_slice(peer), Instant::now());
        }
        if conn.trusted {
            if port == Port::Request
                && let Some(addr) = conn.addr
                && let Some(n) = self.trusted_addrs.get_mut(&addr)
            {
                *n -= 1;
                if *n == 0 {
                    self.trusted_addrs.remove(&addr);
                }
            }
        } else {
            let n = self.untrusted_mut(port);
            *n = n.saturating_sub(1);
            if port == Port::Publish
                && let Some(addr) = conn.addr
            {
                self.forget_waiting(addr, peer);
            }
        }
        Some(conn)
    }

    fn forget_waiting(&mut self, addr: IpAddr, peer: &[u8]) {
        if let Some(list) = self.waiting_publish.get_mut(&addr) {
            list.retain(|p| p.as_ref() != peer);
            if list.is_empty() {
                self.waiting_publish.remove(&addr);
            }
        }
    }

    fn mark_trusted(&mut self, port: Port, peer: &[u8]) {
        let Some(conn) = self.conns.get_mut(&(port, Bytes::copy_from_slice(peer))) else {
            return;
        };
        if conn.trusted {
            return;
        }
        conn.trusted = true;
        let addr = conn.addr;
        let n = self.untrusted_mut(port);
        *n = n.saturating_sub(1);
        let Some(addr) = addr else { return };
        match port {
            Port::Request => {
                *self.trusted_addrs.entry(addr).or_default() += 1;
                for sub in self.waiting_publish.remove(&addr).unwrap_or_default() {
                    self.mark_trusted(Port::Publish, &sub);
                }
            }
            Port::Publish => self.forget_waiting(addr, peer),
        }
    }
}

/// The table of connections and the limits applied to them.
pub struct Gate {
    grace: Duration,
    max_untrusted: usize,
    table: Mutex<Table>,
    log: LogThrottle,
}

/// What the gate decided about a newly accepted connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Keep it.
    Keep,
    /// Close it: the socket holds `max_unauthenticated` untrusted ones.
    Refuse,
}

impl Gate {
    /// A gate closing connections untrusted after `grace`, and holding at
    /// most `max_untrusted` of them per socket.
    pub fn new(grace: Duration, max_untrusted: usize) -> Gate {
        Gate {
            grace,
            max_untrusted,
            table: Mutex::new(Table::default()),
            log: LogThrottle::new(Duration::from_secs(10), 20),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a connection that finished the ZMTP handshake.
    pub fn accepted(
        &self,
        port: Port,
        peer: &[u8],
        addr: Option<IpAddr>,
        now: Instant,
    ) -> Admission {
        let mut t = self.table();
        // A reused identity replaces the old connection.
        t.remove(port, peer);
        let trusted =
            port == Port::Publish && addr.is_some_and(|a| t.trusted_addrs.contains_key(&a));
        if !trusted && *t.untrusted_mut(port) >= self.max_untrusted {
            if port == Port::Request {
                t.gone.insert(Bytes::copy_from_slice(peer), now);
            }
            return Admission::Refuse;
        }
        if port == Port::Request {
            t.gone.remove(peer);
        }
        if !trusted {
            *t.untrusted_mut(port) += 1;
            if port == Port::Publish
                && let Some(addr) = addr
            {
                t.waiting_publish
                    .entry(addr)
                    .or_default()
                    .push(Bytes::copy_from_slice(peer));
            }
        }
        t.conns.insert(
            (port, Bytes::copy_from_slice(peer)),
            Conn {
                addr,
                since: now,
                trusted,
            },
        );
        Admission::Keep
    }

    /// Forgets a connection that closed.
    pub fn disconnected(&self, port: Port, peer: &[u8]) {
        self.table().remove(port, peer);
    }

    /// Marks the request connection `peer` as authenticated.
    pub fn trust(&self, peer: &[u8]) {
        self.table().mark_trusted(Port::Request, peer);
    }

    /// For each request connection of `peers`, whether it closed (or was
    /// refused) since its requests were read: they are not worth handling,
    /// as a reply cannot reach it and its minion sends them again on a new
    /// connection. Under load this keeps the workers on requests that can
    /// still be answered.
    pub fn gone(&self, peers: &[&[u8]]) -> Vec<bool> {
        let t = self.table();
        peers.iter().map(|p| t.gone.contains_key(*p)).collect()
    }

    /// Untrusted connections per socket.
    pub fn untrusted(&self, port: Port) -> usize {
        self.table().untrusted.get(&port).copied().unwrap_or(0)
    }

    /// Removes and returns the connections still untrusted after the grace
    /// period.
    pub fn expire(&self, now: Instant) -> Vec<(Port, Bytes)> {
        let mut t = self.table();
        t.gone
            .retain(|_, at| now.saturating_duration_since(*at) < GONE_KEEP);
        let expired: Vec<(Port, Bytes)> = t
            .conns
            .iter()
            .filter(|(_, c)| !c.trusted && now.duration_since(c.since) >= self.grace)
            .map(|(k, _)| k.clone())
            .collect();
        for (port, peer) in &expired {
            t.remove(*port, peer);
        }
        expired
    }

    fn warn_refused(
        &self,
        port: Port,
        addr: &dyn std::fmt::Display,
        reason: &dyn std::fmt::Display,
    ) {
        if let Some(suppressed) = self.log.allow(Instant::now()) {
            warn!(port = port.name(), peer = %addr, reason = %reason, suppressed, "dropped a connection");
        }
    }
}

fn ip_of(endpoint: &Endpoint) -> Option<IpAddr> {
    match endpoint {
        Endpoint::Tcp(zeromq::Host::Ipv4(a), _) => Some(IpAddr::V4(*a)),
        Endpoint::Tcp(zeromq::Host::Ipv6(a), _) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

fn peer_name(peer: &[u8]) -> String {
    peer.iter().map(|b| format!("{b:02x}")).collect()
}

/// One socket the gate watches: its monitor and a handle to drop its peers.
pub struct Watched {
    /// Which socket.
    pub port: Port,
    /// Its monitor events.
    pub events: BoxStream<'static, SocketEvent>,
    /// Its backend, to disconnect peers.
    pub backend: Arc<dyn MultiPeerBackend>,
}

fn drop_peer(backend: &Arc<dyn MultiPeerBackend>, peer: &[u8]) {
    if let Ok(id) = zeromq::util::PeerIdentity::try_from(peer) {
        backend.peer_disconnected(&id);
    }
}

fn on_event(gate: &Gate, port: Port, backend: &Arc<dyn MultiPeerBackend>, ev: SocketEvent) {
    match ev {
        SocketEvent::Accepted(endpoint, peer) => {
            let admitted = gate.accepted(port, &peer, ip_of(&endpoint), Instant::now());
            if admitted == Admission::Refuse {
                drop_peer(backend, &peer);
                gate.warn_refused(
                    port,
                    &endpoint,
                    &"too many connections that have not authenticated",
                );
            }
        }
        SocketEvent::Disconnected(peer) => gate.disconnected(port, &peer),
        SocketEvent::Refused(endpoint, ZmqError::ConnectionLimit(_)) => {
            gate.warn_refused(port, &endpoint, &"max_connections reached");
        }
        SocketEvent::Refused(endpoint, error) => {
            gate.warn_refused(port, &endpoint, &format_args!("handshake failed: {error}"));
        }
        SocketEvent::PeerError(peer, error) => {
            let addr = gate
                .table()
                .conns
                .get(&(port, Bytes::copy_from_slice(&peer)))
                .and_then(|c| c.addr);
            let who = match addr {
                Some(a) => a.to_string(),
                None => format!("peer {}", peer_name(&peer)),
            };
            gate.warn_refused(port, &who, &error);
        }
        SocketEvent::AcceptFailed(error) => {
            gate.warn_refused(port, &"(accept)", &error);
        }
        other => debug!(port = port.name(), event = ?other, "socket event"),
    }
}

/// Follows the sockets' monitors and closes connections that stay
/// untrusted past the grace period, until cancelled.
pub async fn run(gate: Arc<Gate>, sockets: Vec<Watched>, cancel: CancellationToken) {
    let mut backends = HashMap::new();
    let mut streams = futures_util::stream::SelectAll::new();
    for w in sockets {
        backends.insert(w.port, w.backend);
        let port = w.port;
        streams.push(w.events.map(move |ev| (port, ev)));
    }
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            ev = streams.next() => match ev {
                Some((port, ev)) => {
                    if let Some(backend) = backends.get(&port) {
                        on_event(&gate, port, backend, ev);
                    }
                }
                None => break,
            },
            _ = tick.tick() => {
                for (port, peer) in gate.expire(Instant::now()) {
                    if let Some(backend) = backends.get(&port) {
                        drop_peer(backend, &peer);
                    }
                    gate.warn_refused(port, &format_args!("peer {}", peer_name(&peer)), &"did not authenticate in time");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn untrusted_connections_expire_and_trusted_ones_stay() {
        let gate = Gate::new(Duration::from_secs(10), 100);
        let t0 = Instant::now();
        gate.accepted(Port::Request, b"a", ip("127.0.0.1"), t0);
        gate.accepted(Port::Request, b"b", ip("127.0.0.1"), t0);
        gate.trust(b"a");
        assert_eq!(gate.untrusted(Port::Request), 1);
        assert!(gate.expire(t0 + Duration::from_secs(9)).is_empty());
        let gone = gate.expire(t0 + Duration::from_secs(10));
        assert_eq!(gone, vec![(Port::Request, Bytes::from_static(b"b"))]);
        assert_eq!(gate.untrusted(Port::Request), 0);
        assert!(gate.expire(t0 + Duration::from_secs(100)).is_empty());
    }

    #[test]
    fn publish_connections_follow_the_trust_of_their_address() {
        let gate = Gate::new(Duration::from_secs(10), 100);
        let t0 = Instant::now();
        // The SUB connection arrives before the minion authenticated.
        gate.accepted(Port::Publish, b"sub", ip("10.0.0.1"), t0);
        gate.accepted(Port::Publish, b"stranger", ip("10.0.0.2"), t0);
        gate.accepted(Port::Request, b"dealer", ip("10.0.0.1"), t0);
        gate.trust(b"dealer");
        let gone = gate.expire(t0 + Duration::from_secs(10));
        assert_eq!(gone, vec![(Port::Publish, Bytes::from_static(b"stranger"))]);
        // Later SUB connections from a trusted address are trusted at once.
        gate.accepted(Port::Publish, b"sub2", ip("10.0.0.1"), t0);
        assert_eq!(gate.untrusted(Port::Publish), 0);
        // Once the address has no trusted request connection, new ones wait.
        gate.disconnected(Port::Request, b"dealer");
        gate.accepted(Port::Publish, b"sub3", ip("10.0.0.1"), t0);
        assert_eq!(gate.untrusted(Port::Publish), 1);
    }

    #[test]
    fn closed_and_refused_request_connections_are_gone_until_forgotten() {
        let gate = Gate::new(Duration::from_secs(10), 2);
        let t0 = Instant::now();
        for p in [b"a", b"b", b"c"] {
            gate.accepted(Port::Request, p, None, t0);
        }
        gate.accepted(Port::Publish, b"s", None, t0);
        gate.disconnected(Port::Request, b"a");
        gate.disconnected(Port::Publish, b"s");
        // a closed, b open, c refused (over the cap), d never seen.
        assert_eq!(
            gate.gone(&[b"a", b"b", b"c", b"d"]),
            vec![true, false, true, false]
        );
        // An identity used again by a new connection is live again.
        gate.accepted(Port::Request, b"a", None, t0);
        assert_eq!(gate.gone(&[b"a"]), vec![false]);
        gate.expire(t0 + GONE_KEEP + Duration::from_secs(1));
        assert_eq!(gate.gone(&[b"c"]), vec![false], "forgotten");
    }

    #[test]
    fn untrusted_connections_beyond_the_cap_are_refused() {
        let gate = Gate::new(Duration::from_secs(10), 2);
        let t0 = Instant::now();
        assert_eq!(
            gate.accepted(Port::Request, b"1", None, t0),
            Admission::Keep
        );
        assert_eq!(
            gate.accepted(Port::Request, b"2", None, t0),
            Admission::Keep
        );
        assert_eq!(
            gate.accepted(Port::Request, b"3", None, t0),
            Admission::Refuse
        );
        // The other socket has its own count.
        assert_eq!(
            gate.accepted(Port::Publish, b"3", None, t0),
            Admission::Keep
        );
        gate.trust(b"1");
        assert_eq!(
            gate.accepted(Port::Request, b"3", None, t0),
            Admission::Keep
        );
        gate.disconnected(Port::Request, b"2");
        assert_eq!(gate.untrusted(Port::Request), 1);
    }
}
