//! Returns not yet acknowledged by the master, kept on disk
//! (`<state_dir>/outbox/<jid>.ret`, mode 0600) from the moment a job ends
//! until the master acknowledges them, so a minion stopped or restarted in
//! between delivers them when it is back.

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Mutex;

use protocol::{Jid, JobReturn};
use serde::{Deserialize, Serialize};
use tracing::warn;

/// One kept return.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The return.
    pub ret: JobReturn,
    /// Whether it is self-collected facts (`push`) rather than a job's return.
    pub push: bool,
}

/// The outbox directory and the returns being delivered now.
pub struct Outbox {
    dir: PathBuf,
    delivering: Mutex<HashSet<Jid>>,
}

impl Outbox {
    /// The outbox under `state_dir`.
    pub fn new(state_dir: &std::path::Path) -> Outbox {
        Outbox {
            dir: state_dir.join("outbox"),
            delivering: Mutex::new(HashSet::new()),
        }
    }

    fn path(&self, jid: &Jid) -> PathBuf {
        self.dir.join(format!("{jid}.ret"))
    }

    /// Keeps `entry` until [`Outbox::done`]; false when it is already being
    /// delivered. A failure to write is logged: delivery goes on in memory.
    pub fn keep(&self, entry: &Entry) -> bool {
        if !self
            .delivering
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(entry.ret.jid.clone())
        {
            return false;
        }
        self.write(entry);
        true
    }

    /// Writes `entry` over the kept return of the same job (one that is
    /// being delivered and was replaced, such as by a too-large error).
    pub fn write(&self, entry: &Entry) {
        let written = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            let bytes = rmp_serde::to_vec_named(entry).map_err(std::io::Error::other)?;
            let tmp = self.dir.join(format!(".{}.tmp", entry.ret.jid));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, self.path(&entry.ret.jid))
        })();
        if let Err(e) = written {
            warn!(jid = %entry.ret.jid, error = %e, "could not keep the return in the outbox");
        }
    }

    /// The master acknowledged (or finally refused) the return of `jid`.
    pub fn done(&self, jid: &Jid) {
        let _ = std::fs::remove_file(self.path(jid));
        self.release(jid);
    }

    /// Delivery of `jid` stopped (shutdown); the file stays for next time.
    pub fn release(&self, jid: &Jid) {
        self.delivering
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(jid);
    }

    /// The kept returns not being delivered now, oldest first. Unreadable
    /// files are logged and set aside as `*.bad`.
    pub fn pending(&self) -> Vec<Entry> {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let busy = self
            .delivering
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut out: Vec<Entry> = Vec::new();
        for e in rd.filter_map(Result::ok) {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "ret") {
                continue;
            }
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| rmp_serde::from_slice::<Entry>(&b).map_err(|e| e.to_string()))
            {
                Ok(entry) if !busy.contains(&entry.ret.jid) => out.push(entry),
                Ok(_) => {}
                Err(err) => {
                    warn!(path = %path.display(), error = %err, "unreadable return in the outbox; set aside");
                    let _ = std::fs::rename(&path, path.with_extension("bad"));
                }
            }
        }
        out.sort_by(|a, b| a.ret.jid.cmp(&b.ret.jid));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: i64) -> Entry {
        Entry {
            ret: JobReturn {
                jid: Jid::from_micros(1_700_000_000_000_000 + n).expect("jid"),
                minion: protocol::MinionId::new("m").expect("id"),
                fun: "test.ping".into(),
                success: true,
                retcode: 0,
                data: serde_json::json!(true),
                started_ms: 0,
                ended_ms: 0,
            },
            push: false,
        }
    }

    #[test]
    fn kept_returns_outlive_the_process_until_done() {
        let dir = tempfile::tempdir().expect("tmp");
        let a = Outbox::new(dir.path());
        assert!(a.keep(&entry(1)) && a.keep(&entry(2)));
        assert!(!a.keep(&entry(1)), "already being delivered");
        assert!(a.pending().is_empty(), "both are being delivered");
        a.done(&entry(1).ret.jid);
        // A new process finds what was not acknowledged.
        let b = Outbox::new(dir.path());
        assert_eq!(b.pending(), vec![entry(2)]);
        std::fs::write(dir.path().join("outbox/garbage.ret"), b"\xff\x00").expect("write");
        assert_eq!(b.pending(), vec![entry(2)]);
        assert!(dir.path().join("outbox/garbage.bad").exists());
    }
}
