//! The master's storage: jobs and their returns, and minion presence.
//!
//! [`Store`] is the interface the rest of the master uses; [`SledStore`] keeps
//! it in a sled database. Records are msgpack with named fields.

use std::collections::BTreeMap;
use std::path::Path;

use protocol::{Jid, JobReturn, Target};
use serde::{Deserialize, Serialize};

use crate::error::MasterError;

/// A job as the master recorded it when publishing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job id.
    pub jid: Jid,
    /// The target as given.
    pub target: Target,
    /// The function.
    pub fun: String,
    /// Positional arguments.
    pub args: Vec<String>,
    /// Keyword arguments.
    pub kwargs: BTreeMap<String, String>,
    /// Minions expected to return, sorted.
    pub expected: Vec<String>,
    /// Who asked.
    pub user: String,
    /// When it was published, unix milliseconds.
    pub started_ms: i64,
}

/// Storage used by the master.
pub trait Store: Send + Sync {
    /// Records a new job (on disk when this returns).
    fn put_job(&self, job: &JobRecord) -> Result<(), MasterError>;
    /// A job by id.
    fn job(&self, jid: &Jid) -> Result<Option<JobRecord>, MasterError>;
    /// The newest jobs first, at most `limit`.
    fn recent_jobs(&self, limit: usize) -> Result<Vec<JobRecord>, MasterError>;
    /// Stores a return unless one from that minion for that job is already
    /// stored; says whether it was new. A new return is on disk when this
    /// returns, so an acknowledged return survives a crash.
    fn put_return(&self, ret: &JobReturn) -> Result<bool, MasterError>;
    /// Every stored return of a job.
    fn returns(&self, jid: &Jid) -> Result<Vec<JobReturn>, MasterError>;
    /// Records when a minion was last heard from (unix milliseconds).
    fn set_last_seen(&self, minion: &str, at_ms: i64) -> Result<(), MasterError>;
    /// When a minion was last heard from.
    fn last_seen(&self, minion: &str) -> Result<Option<i64>, MasterError>;
    /// Writes everything to disk.
    fn flush(&self) -> Result<(), MasterError>;
}

fn store_err(e: impl std::fmt::Display) -> MasterError {
    MasterError::Store(e.to_string())
}

/// [`Store`] on a sled database.
pub struct SledStore {
    db: sled::Db,
    jobs: sled::Tree,
    returns: sled::Tree,
    presence: sled::Tree,
}

impl SledStore {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<SledStore, MasterError> {
        let db =
            sled::open(path).map_err(|e| MasterError::Store(format!("{}: {e}", path.display())))?;
        Ok(SledStore {
            jobs: db.open_tree("jobs").map_err(store_err)?,
            returns: db.open_tree("returns").map_err(store_err)?,
            presence: db.open_tree("presence").map_err(store_err)?,
            db,
        })
    }
}

fn return_key(jid: &Jid, minion: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(21 + minion.len());
    k.extend_from_slice(jid.as_str().as_bytes());
    k.push(b'/');
    k.extend_from_slice(minion.as_bytes());
    k
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, MasterError> {
    rmp_serde::to_vec_named(v).map_err(store_err)
}

fn decode<T: for<'de> Deserialize<'de>>(b: &[u8]) -> Result<T, MasterError> {
    rmp_serde::from_slice(b).map_err(store_err)
}

impl Store for SledStore {
    fn put_job(&self, job: &JobRecord) -> Result<(), MasterError> {
        self.jobs
            .insert(job.jid.as_str().as_bytes(), encode(job)?)
            .map_err(store_err)?;
        self.jobs.flush().map_err(store_err)?;
        Ok(())
    }

    fn job(&self, jid: &Jid) -> Result<Option<JobRecord>, MasterError> {
        match self.jobs.get(jid.as_str().as_bytes()).map_err(store_err)? {
            Some(v) => Ok(Some(decode(&v)?)),
            None => Ok(None),
        }
    }

    fn recent_jobs(&self, limit: usize) -> Result<Vec<JobRecord>, MasterError> {
        let mut out = Vec::new();
        for item in self.jobs.iter().rev().take(limit) {
            let (_, v) = item.map_err(store_err)?;
            out.push(decode(&v)?);
        }
        Ok(out)
    }

    fn put_return(&self, ret: &JobReturn) -> Result<bool, MasterError> {
        let key = return_key(&ret.jid, ret.minion.as_str());
        let swapped = self
            .returns
            .compare_and_swap(key, None as Option<&[u8]>, Some(encode(ret)?))
            .map_err(store_err)?;
        if swapped.is_ok() {
            self.returns.flush().map_err(store_err)?;
        }
        Ok(swapped.is_ok())
    }

    fn returns(&self, jid: &Jid) -> Result<Vec<JobReturn>, MasterError> {
        let mut prefix = jid.as_str().as_bytes().to_vec();
        prefix.push(b'/');
        let mut out = Vec::new();
        for item in self.returns.scan_prefix(prefix) {
            let (_, v) = item.map_err(store_err)?;
            out.push(decode(&v)?);
        }
        Ok(out)
    }

    fn set_last_seen(&self, minion: &str, at_ms: i64) -> Result<(), MasterError> {
        self.presence
            .insert(minion.as_bytes(), &at_ms.to_be_bytes())
            .map_err(store_err)?;
        Ok(())
    }

    fn last_seen(&self, minion: &str) -> Result<Option<i64>, MasterError> {
        Ok(self
            .presence
            .get(minion.as_bytes())
            .map_err(store_err)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(i64::from_be_bytes))
    }

    fn flush(&self) -> Result<(), MasterError> {
        self.db.flush().map_err(store_err)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::MinionId;

    fn ret(jid: &Jid, m: &str) -> JobReturn {
        JobReturn {
            jid: jid.clone(),
            minion: MinionId::new(m).expect("id"),
            fun: "test.ping".into(),
            success: true,
            retcode: 0,
            data: serde_json::json!(true),
            started_ms: 1,
            ended_ms: 2,
        }
    }

    #[test]
    fn returns_are_deduplicated_by_jid_and_minion() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = SledStore::open(&dir.path().join("db")).expect("open");
        let jid = Jid::from_micros(1_700_000_000_000_000).expect("jid");
        assert!(s.put_return(&ret(&jid, "a")).expect("put"));
        assert!(!s.put_return(&ret(&jid, "a")).expect("put"));
        assert!(s.put_return(&ret(&jid, "b")).expect("put"));
        assert_eq!(s.returns(&jid).expect("list").len(), 2);
    }

    #[test]
    fn jobs_survive_reopen_newest_first() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("db");
        {
            let s = SledStore::open(&path).expect("open");
            for us in [1, 2, 3] {
                let jid = Jid::from_micros(1_700_000_000_000_000 + us).expect("jid");
                s.put_job(&JobRecord {
                    jid,
                    target: Target::Glob("*".into()),
                    fun: "test.ping".into(),
                    args: vec![],
                    kwargs: BTreeMap::new(),
                    expected: vec!["a".into()],
                    user: "root".into(),
                    started_ms: 0,
                })
                .expect("put");
            }
            s.flush().expect("flush");
        }
        let s = SledStore::open(&path).expect("reopen");
        let jobs = s.recent_jobs(2).expect("recent");
        assert_eq!(jobs.len(), 2);
        assert!(jobs[0].jid > jobs[1].jid);
    }
}
