//! Live jobs: who is expected to return, who has, who watches, and which
//! signed job envelopes a reconnecting minion may have missed.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use protocol::{Jid, JobReturn};
use tokio::sync::mpsc;

/// What became of a return handed to the tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReturnOutcome {
    /// A live job expected it and it is the first from that minion.
    New,
    /// Already had it.
    Duplicate,
    /// No live job expects that minion.
    NotLive,
}

struct LiveJob {
    envelope: Bytes,
    expected: BTreeSet<String>,
    returned: BTreeSet<String>,
    live_until: Instant,
    watchers: Vec<mpsc::Sender<JobReturn>>,
}

/// The live-job table, shared by the workers and the API.
#[derive(Default)]
pub struct JobTracker {
    live: Mutex<HashMap<Jid, LiveJob>>,
    running: Mutex<HashMap<String, (Instant, Vec<Jid>)>>,
}

impl JobTracker {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<Jid, LiveJob>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a job about to be published, returning a receiver of its
    /// returns (when `watch`).
    pub fn register(
        &self,
        jid: Jid,
        envelope: Bytes,
        expected: BTreeSet<String>,
        live_for: Duration,
        watch: bool,
    ) -> Option<mpsc::Receiver<JobReturn>> {
        let (watchers, rx) = if watch {
            let (tx, rx) = mpsc::channel(expected.len().clamp(16, 65_536));
            (vec![tx], Some(rx))
        } else {
            (Vec::new(), None)
        };
        self.live().insert(
            jid,
            LiveJob {
                envelope,
                expected,
                returned: BTreeSet::new(),
                live_until: Instant::now() + live_for,
                watchers,
            },
        );
        rx
    }

    /// Puts back a job that was live when the master stopped: `returned`
    /// already answered, and it stays live for `live_for` more.
    pub fn restore(
        &self,
        jid: Jid,
        envelope: Bytes,
        expected: BTreeSet<String>,
        returned: BTreeSet<String>,
        live_for: Duration,
    ) {
        self.live().insert(
            jid,
            LiveJob {
                envelope,
                expected,
                returned,
                live_until: Instant::now() + live_for,
                watchers: Vec::new(),
            },
        );
    }

    /// Adds a watcher to the live job `jid`: it receives every return
    /// stored from now on. `None` when the job is not live.
    pub fn watch(&self, jid: &Jid) -> Option<mpsc::Receiver<JobReturn>> {
        let mut live = self.live();
        let job = live.get_mut(jid)?;
        let (tx, rx) = mpsc::channel(job.expected.len().clamp(16, 65_536));
        job.watchers.push(tx);
        Some(rx)
    }

    /// Whether `minion` is expected by the live job `jid`.
    pub fn expects(&self, jid: &Jid, minion: &str) -> Option<bool> {
        self.live().get(jid).map(|j| j.expected.contains(minion))
    }

    /// Records a return (the caller has stored it) and passes it to watchers.
    pub fn on_return(&self, ret: &JobReturn) -> ReturnOutcome {
        let mut live = self.live();
        let Some(job) = live.get_mut(&ret.jid) else {
            return ReturnOutcome::NotLive;
        };
        if !job.expected.contains(ret.minion.as_str()) {
            return ReturnOutcome::NotLive;
        }
        if !job.returned.insert(ret.minion.to_string()) {
            return ReturnOutcome::Duplicate;
        }
        job.watchers.retain(|w| w.try_send(ret.clone()).is_ok());
        ReturnOutcome::New
    }

    /// Signed envelopes of live jobs that expect `minion` and lack its return.
    pub fn missed_by(&self, minion: &str) -> Vec<(Jid, Bytes)> {
        let now = Instant::now();
        self.live()
            .iter()
            .filter(|(_, j)| {
                j.live_until > now && j.expected.contains(minion) && !j.returned.contains(minion)
            })
            .map(|(jid, j)| (jid.clone(), j.envelope.clone()))
            .collect()
    }

    /// Records the jobs a minion reports as still running.
    pub fn set_running(&self, minion: &str, jobs: Vec<Jid>) {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(minion.to_owned(), (Instant::now(), jobs));
    }

    /// Whether `minion` reported `jid` as running within `fresh`.
    pub fn is_running(&self, minion: &str, jid: &Jid, fresh: Duration) -> bool {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(minion)
            .is_some_and(|(at, jobs)| at.elapsed() <= fresh && jobs.contains(jid))
    }

    /// Forgets jobs past their live time.
    pub fn prune(&self) {
        let now = Instant::now();
        self.live().retain(|_, j| j.live_until > now);
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
            data: serde_json::Value::Bool(true),
            started_ms: 0,
            ended_ms: 0,
        }
    }

    #[test]
    fn tracks_expected_returns_once() {
        let t = JobTracker::new();
        let jid = Jid::from_micros(1).expect("jid");
        let expected: BTreeSet<String> = ["a".to_string(), "b".to_string()].into();
        let mut rx = t
            .register(
                jid.clone(),
                Bytes::from_static(b"env"),
                expected,
                Duration::from_secs(60),
                true,
            )
            .expect("watch");
        assert_eq!(t.missed_by("a").len(), 1);
        assert_eq!(t.on_return(&ret(&jid, "a")), ReturnOutcome::New);
        assert_eq!(t.on_return(&ret(&jid, "a")), ReturnOutcome::Duplicate);
        assert_eq!(t.on_return(&ret(&jid, "c")), ReturnOutcome::NotLive);
        assert!(t.missed_by("a").is_empty());
        assert_eq!(t.missed_by("b").len(), 1);
        assert_eq!(rx.try_recv().expect("ret").minion.as_str(), "a");
        assert!(rx.try_recv().is_err());
    }
}
