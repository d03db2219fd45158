//! Returns too large for one frame arrive in parts ([`ReturnChunk`]); this
//! puts them back together, within `max_return_bytes` per return and a
//! bound on what is held at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use protocol::{ErrorKind, Jid, ReturnChunk};

/// What a part of a return gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Assembled {
    /// More parts are to come; this many bytes are held.
    Partial(u64),
    /// The whole encoded return.
    Whole(Vec<u8>),
}

struct Partial {
    buf: Vec<u8>,
    total: u64,
    touched: Instant,
}

/// Returns being assembled, by minion and job.
pub struct Assembly {
    parts: Mutex<HashMap<(String, Jid), Partial>>,
    max_return: u64,
    max_held: u64,
}

impl Assembly {
    /// Accepts returns up to `max_return` bytes, holding at most
    /// `max_held` bytes of unfinished ones at once.
    pub fn new(max_return: u64, max_held: u64) -> Assembly {
        Assembly {
            parts: Mutex::new(HashMap::new()),
            max_return,
            max_held,
        }
    }

    /// Adds a part sent by `minion`. A part starting at 0 starts the
    /// return anew; a part already received (a resend) is acknowledged
    /// again.
    pub fn add(
        &self,
        minion: &str,
        chunk: ReturnChunk,
        now: Instant,
    ) -> Result<Assembled, (ErrorKind, String)> {
        if chunk.total > self.max_return {
            return Err((
                ErrorKind::TooLarge,
                format!(
                    "a return of {} bytes is over max_return_bytes ({} bytes)",
                    chunk.total, self.max_return
                ),
            ));
        }
        let mut parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        let key = (minion.to_owned(), chunk.jid.clone());
        if chunk.offset == 0 {
            parts.remove(&key);
            let held: u64 = parts.values().map(|p| p.total).sum();
            if held + chunk.total > self.max_held {
                return Err((
                    ErrorKind::LimitReached,
                    format!(
                        "the master holds {held} bytes of large returns being sent; retry later"
                    ),
                ));
            }
            parts.insert(
                key.clone(),
                Partial {
                    buf: Vec::with_capacity(chunk.total.min(8 << 20) as usize),
                    total: chunk.total,
                    touched: now,
                },
            );
        }
        let Some(p) = parts.get_mut(&key) else {
            return Err((
                ErrorKind::Malformed,
                format!(
                    "a part at offset {} of a return of job {} that was not started",
                    chunk.offset, chunk.jid
                ),
            ));
        };
        let have = p.buf.len() as u64;
        let end = chunk.offset + chunk.data.len() as u64;
        if chunk.total != p.total {
            return Err((
                ErrorKind::Malformed,
                format!(
                    "a part says the return has {} bytes, the first said {}",
                    chunk.total, p.total
                ),
            ));
        }
        if end == have && chunk.offset < have.max(1) {
            p.touched = now;
            return Ok(Assembled::Partial(have));
        }
        if chunk.offset != have || end > p.total {
            let why = format!(
                "a part covers bytes {}..{end} of {}, but {have} were received",
                chunk.offset, p.total
            );
            parts.remove(&key);
            return Err((ErrorKind::Malformed, why));
        }
        p.buf.extend_from_slice(&chunk.data);
        p.touched = now;
        if end < p.total {
            return Ok(Assembled::Partial(end));
        }
        let whole = parts.remove(&key).map(|p| p.buf).unwrap_or_default();
        Ok(Assembled::Whole(whole))
    }

    /// Drops returns no part of which came for `idle`.
    pub fn expire(&self, now: Instant, idle: Duration) -> usize {
        let mut parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        let before = parts.len();
        parts.retain(|_, p| now.saturating_duration_since(p.touched) < idle);
        before - parts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(offset: u64, total: u64, data: &[u8]) -> ReturnChunk {
        ReturnChunk {
            jid: Jid::from_micros(1).expect("jid"),
            offset,
            total,
            data: data.to_vec(),
            push: false,
        }
    }

    #[test]
    fn parts_in_order_make_the_whole_and_resends_are_acknowledged() {
        let a = Assembly::new(100, 1000);
        let now = Instant::now();
        assert_eq!(
            a.add("m", part(0, 6, b"abc"), now),
            Ok(Assembled::Partial(3))
        );
        assert_eq!(
            a.add("m", part(0, 6, b"abc"), now),
            Ok(Assembled::Partial(3))
        );
        assert_eq!(
            a.add("m", part(3, 6, b"def"), now),
            Ok(Assembled::Whole(b"abcdef".to_vec()))
        );
    }

    #[test]
    fn sizes_gaps_and_strangers_are_refused() {
        let a = Assembly::new(10, 15);
        let now = Instant::now();
        let (kind, msg) = a.add("m", part(0, 11, b"x"), now).expect_err("too large");
        assert_eq!(kind, ErrorKind::TooLarge);
        assert!(
            msg.contains("11 bytes is over max_return_bytes (10 bytes)"),
            "{msg}"
        );
        assert_eq!(
            a.add("m", part(0, 10, b"ab"), now),
            Ok(Assembled::Partial(2))
        );
        let (kind, _) = a.add("n", part(0, 10, b"ab"), now).expect_err("held");
        assert_eq!(kind, ErrorKind::LimitReached);
        let (kind, _) = a.add("m", part(5, 10, b"zz"), now).expect_err("gap");
        assert_eq!(kind, ErrorKind::Malformed);
        let (kind, _) = a
            .add("m", part(2, 10, b"cd"), now)
            .expect_err("dropped after a gap");
        assert_eq!(kind, ErrorKind::Malformed);
        assert_eq!(
            a.add("m", part(0, 10, b"ab"), now),
            Ok(Assembled::Partial(2))
        );
        assert_eq!(
            a.expire(now + Duration::from_secs(600), Duration::from_secs(300)),
            1
        );
    }
}
