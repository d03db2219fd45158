//! A ZMTP 3.0 peer written by hand over a plain TCP socket, for tests that
//! send what no ZeroMQ library would: frame headers announcing absurd
//! lengths, trickled frames, malformed greetings and commands. It plays
//! either side: [`Zmtp::connect`] is a client of the master, [`Zmtp::accept`]
//! a stand-in master that a minion connects to.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Flag bits of a frame header.
pub mod flags {
    /// More frames of this message follow.
    pub const MORE: u8 = 0b001;
    /// An eight-byte length follows the flags.
    pub const LONG: u8 = 0b010;
    /// The frame is a command.
    pub const COMMAND: u8 = 0b100;
}

/// A 64-byte ZMTP 3.0 greeting with the NULL mechanism.
pub fn greeting() -> [u8; 64] {
    let mut g = [0u8; 64];
    g[0] = 0xff;
    g[9] = 0x7f;
    g[10] = 3; // major
    g[11] = 0; // minor
    g[12..16].copy_from_slice(b"NULL");
    g
}

/// The body of a READY command announcing `socket_type`.
pub fn ready_body(socket_type: &str) -> Vec<u8> {
    let mut b = vec![5];
    b.extend_from_slice(b"READY");
    b.push(11);
    b.extend_from_slice(b"Socket-Type");
    b.extend_from_slice(&(socket_type.len() as u32).to_be_bytes());
    b.extend_from_slice(socket_type.as_bytes());
    b
}

/// A frame with `flags` and `body`, short or long as its size needs.
pub fn frame(flag_bits: u8, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(body.len() + 9);
    if body.len() > 255 {
        f.push(flag_bits | flags::LONG);
        f.extend_from_slice(&(body.len() as u64).to_be_bytes());
    } else {
        f.push(flag_bits & !flags::LONG);
        f.push(body.len() as u8);
    }
    f.extend_from_slice(body);
    f
}

/// A long frame header announcing `len` bytes, with no body.
pub fn long_header(flag_bits: u8, len: u64) -> Vec<u8> {
    let mut h = vec![flag_bits | flags::LONG];
    h.extend_from_slice(&len.to_be_bytes());
    h
}

/// One end of a hand-driven ZMTP connection.
pub struct Zmtp {
    stream: TcpStream,
}

impl Zmtp {
    /// Connects to `127.0.0.1:port`.
    pub fn connect(port: u16) -> io::Result<Zmtp> {
        Self::connect_from(Ipv4Addr::LOCALHOST, port)
    }

    /// Connects to `127.0.0.1:port` from the local address `source` (any
    /// 127.0.0.0/8 address works on Linux without configuration).
    pub fn connect_from(source: Ipv4Addr, port: u16) -> io::Result<Zmtp> {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
        sock.bind(&SocketAddr::from((source, 0)).into())?;
        sock.connect_timeout(
            &SocketAddr::from((Ipv4Addr::LOCALHOST, port)).into(),
            Duration::from_secs(10),
        )?;
        let stream: TcpStream = sock.into();
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        Ok(Zmtp { stream })
    }

    /// Accepts one connection on `listener` (a stand-in master).
    pub fn accept(listener: &TcpListener) -> io::Result<Zmtp> {
        let (stream, _) = listener.accept()?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        Ok(Zmtp { stream })
    }

    /// Exchanges greetings: sends ours, reads the peer's 64 bytes.
    pub fn greet(&mut self) -> io::Result<()> {
        self.stream.write_all(&greeting())?;
        let mut theirs = [0u8; 64];
        self.stream.read_exact(&mut theirs)?;
        if theirs[0] != 0xff || &theirs[12..16] != b"NULL" {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not a ZMTP NULL greeting",
            ));
        }
        Ok(())
    }

    /// Sends READY for `socket_type` and reads the peer's READY command.
    pub fn ready(&mut self, socket_type: &str) -> io::Result<()> {
        self.send(&frame(flags::COMMAND, &ready_body(socket_type)))?;
        let (flag_bits, body) = self.read_frame()?;
        if flag_bits & flags::COMMAND == 0 || !body.starts_with(b"\x05READY") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "no READY from the peer",
            ));
        }
        Ok(())
    }

    /// Connects to `port` and completes the handshake as `socket_type`.
    pub fn handshake(port: u16, socket_type: &str) -> io::Result<Zmtp> {
        let mut z = Self::connect(port)?;
        z.greet()?;
        z.ready(socket_type)?;
        Ok(z)
    }

    /// Writes raw bytes.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads one frame: its flags and body (bodies over 16 MiB are refused).
    pub fn read_frame(&mut self) -> io::Result<(u8, Vec<u8>)> {
        let mut f = [0u8; 1];
        self.stream.read_exact(&mut f)?;
        let len = if f[0] & flags::LONG != 0 {
            let mut l = [0u8; 8];
            self.stream.read_exact(&mut l)?;
            u64::from_be_bytes(l)
        } else {
            let mut l = [0u8; 1];
            self.stream.read_exact(&mut l)?;
            u64::from(l[0])
        };
        if len > 16 << 20 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "frame too large",
            ));
        }
        let mut body = vec![0u8; len as usize];
        self.stream.read_exact(&mut body)?;
        Ok((f[0], body))
    }

    /// Whether the peer closes the connection within `limit`: reads (and
    /// discards) until end of stream or a reset.
    pub fn closed_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            if self.stream.set_read_timeout(Some(left)).is_err() {
                return true;
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return false;
                }
                Err(_) => return true,
            }
        }
    }

    /// Whether the peer has closed the connection, without waiting.
    pub fn is_closed_now(&mut self) -> bool {
        if self.stream.set_nonblocking(true).is_err() {
            return true;
        }
        let mut buf = [0u8; 4096];
        let closed = loop {
            match self.stream.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                Err(_) => break true,
            }
        };
        let _ = self.stream.set_nonblocking(false);
        closed
    }

    /// Writes `total` bytes in writes of `chunk` until the peer refuses
    /// them; returns how many bytes were written before that, or `None` if
    /// all of them were.
    pub fn trickle(&mut self, total: u64, chunk: usize) -> Option<u64> {
        let block = vec![0x5a; chunk];
        let mut sent = 0u64;
        let _ = self.stream.set_write_timeout(Some(Duration::from_secs(10)));
        while sent < total {
            match self.stream.write(&block) {
                Ok(0) | Err(_) => return Some(sent),
                Ok(n) => sent += n as u64,
            }
        }
        None
    }
}

/// Resident memory of process `pid` in bytes, from `/proc`.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Raises this process's soft open-file limit to its hard limit.
pub fn raise_nofile() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_pick_short_or_long_headers() {
        assert_eq!(frame(0, b"ab"), vec![0, 2, b'a', b'b']);
        let long = frame(flags::MORE, &[1; 300]);
        assert_eq!(long[0], flags::MORE | flags::LONG);
        assert_eq!(&long[1..9], &300u64.to_be_bytes());
        assert_eq!(long_header(0, u64::MAX)[1..], [0xff; 8]);
        assert_eq!(greeting().len(), 64);
        assert!(ready_body("DEALER").ends_with(b"\x00\x00\x00\x06DEALER"));
    }
}
