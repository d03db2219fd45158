//! Live jobs: who is expected to return, who has, who watches, and which
//! signed job envelopes a reconnecting minion may have missed.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::sync::Arc;

use bytes::Bytes;
use protocol::{Jid, JobReturn, MinionId};
use tokio::sync::mpsc;

/// A return as a job's watchers get it: encoded as JSON once, with the
/// minion it came from. Far smaller than the decoded return (whose facts
/// are a tree of many small values), so a fleet's returns waiting for the
/// store's flush, or for a slow watcher, hold a fraction of the memory.
#[derive(Debug, Clone)]
pub struct ReturnJson {
    /// The minion.
    pub minion: MinionId,
    /// The whole [`JobReturn`] as JSON.
    pub json: Arc<str>,
}

impl ReturnJson {
    /// Encodes `ret`.
    pub fn of(ret: &JobReturn) -> ReturnJson {
        let json = serde_json::to_string(ret).unwrap_or_else(|e| {
            // A return is plain data; this would be a bug, said plainly.
            serde_json::json!({"jid": ret.jid, "minion": ret.minion, "fun": ret.fun,
                "success": false, "retcode": 1,
                "data": format!("the master could not encode this return: {e}"),
                "started_ms": ret.started_ms, "ended_ms": ret.ended_ms})
            .to_string()
        });
        ReturnJson {
            minion: ret.minion.clone(),
            json: json.into(),
        }
    }

    /// The return again.
    pub fn decode(&self) -> Result<JobReturn, serde_json::Error> {
        serde_json::from_str(&self.json)
    }
}

/// What is kept of a stored return until the store is flushed: what
/// events name, and the return as JSON when its job had watchers as it was
/// stored (a watcher that comes later reads the stored returns first).
#[derive(Debug, Clone)]
pub struct Finished {
    /// The job.
    pub jid: Jid,
    /// The minion.
    pub minion: MinionId,
    /// The function.
    pub fun: String,
    /// Whether it succeeded.
    pub success: bool,
    /// Its return code.
    pub retcode: i32,
    /// The return for watchers.
    pub json: Option<ReturnJson>,
    /// The other peers of a cluster get it with its JSON (one of them
    /// follows its job: see [`JobTracker::relay`]).
    pub relay: bool,
}

impl Finished {
    /// What is kept of `ret`, encoding it when `watched`.
    pub fn of(ret: &JobReturn, watched: bool) -> Finished {
        Finished {
            jid: ret.jid.clone(),
            minion: ret.minion.clone(),
            fun: ret.fun.clone(),
            success: ret.success,
            retcode: ret.retcode,
            json: watched.then(|| ReturnJson::of(ret)),
            relay: false,
        }
    }

    /// What is kept of `ret` on a peer of a cluster (`cluster`): encoded
    /// when a watcher here or another peer follows its job, and sent on
    /// with its JSON in the latter case.
    pub fn for_watchers(ret: &JobReturn, tracker: &JobTracker, cluster: bool) -> Finished {
        let (here, peers) = tracker.followers(&ret.jid);
        let relay = cluster && peers;
        Finished {
            relay,
            ..Finished::of(ret, here || relay)
        }
    }
}

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
    registered: Instant,
    watchers: Vec<mpsc::Sender<ReturnJson>>,
    batch: Option<Batch>,
    /// Killed: no longer handed to minions that missed it.
    stopped: bool,
    /// Its returns go to the other peers of a cluster with their JSON: it
    /// was published by another peer, or a watcher on another asked.
    relayed: bool,
}

/// A job started a few minions at a time: who has been sent which
/// envelope (each wave names its own minions), and whether more are to come.
struct Batch {
    sent: HashMap<String, Bytes>,
    open: bool,
    stop: tokio_util::sync::CancellationToken,
}

impl LiveJob {
    /// Whether `minion` was sent the job (every expected minion, unless it
    /// is a batch).
    fn sent_to(&self, minion: &str) -> bool {
        match &self.batch {
            Some(b) => b.sent.contains_key(minion),
            None => self.expected.contains(minion),
        }
    }
}

/// A live job's progress, for `jobs active`.
#[derive(Debug, Clone)]
pub struct LiveState {
    /// The job.
    pub jid: Jid,
    /// How many minions it expects.
    pub expected: usize,
    /// How many returned.
    pub returned: usize,
    /// Minions sent the job that have not returned.
    pub pending: Vec<String>,
    /// Whether a batch still has minions to start.
    pub batch_open: bool,
    /// How long ago it was published.
    pub age: Duration,
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
    ) -> Option<mpsc::Receiver<ReturnJson>> {
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
                registered: Instant::now(),
                watchers,
                batch: None,
                stopped: false,
                relayed: false,
            },
        );
        rx
    }

    /// Whether `jid` is in the live table.
    pub fn is_live(&self, jid: &Jid) -> bool {
        self.live().contains_key(jid)
    }

    /// Makes the live job `jid` a batch: no minion counts as sent the job
    /// until [`JobTracker::dispatch`] names it. `stop` fires when the job
    /// is killed.
    pub fn start_batch(&self, jid: &Jid, stop: tokio_util::sync::CancellationToken) {
        if let Some(job) = self.live().get_mut(jid) {
            job.batch = Some(Batch {
                sent: HashMap::new(),
                open: true,
                stop,
            });
        }
    }

    /// Records a wave of a batch that another peer of a cluster drives:
    /// `minions` were sent `envelope`. The live job becomes a batch (closed:
    /// this master starts no minions of it) if it is not one yet. False
    /// when `jid` is not live here.
    pub fn adopt_wave(&self, jid: &Jid, minions: &[String], envelope: &Bytes) -> bool {
        let mut live = self.live();
        let Some(job) = live.get_mut(jid) else {
            return false;
        };
        if job.stopped {
            // Killed here while the peer driving it sent this wave.
            return false;
        }
        let batch = job.batch.get_or_insert_with(|| Batch {
            sent: HashMap::new(),
            open: false,
            stop: tokio_util::sync::CancellationToken::new(),
        });
        for m in minions {
            batch.sent.insert(m.clone(), envelope.clone());
        }
        true
    }

    /// Records that `minions` were sent `envelope` (a batch's wave).
    pub fn dispatch(&self, jid: &Jid, minions: &[String], envelope: &Bytes) {
        if let Some(b) = self.live().get_mut(jid).and_then(|j| j.batch.as_mut()) {
            for m in minions {
                b.sent.insert(m.clone(), envelope.clone());
            }
        }
    }

    /// Marks a batch as having started every minion it will.
    pub fn close_batch(&self, jid: &Jid) {
        if let Some(b) = self.live().get_mut(jid).and_then(|j| j.batch.as_mut()) {
            b.open = false;
        }
    }

    /// Whether `jid` is a batch with minions still to start.
    pub fn batch_open(&self, jid: &Jid) -> bool {
        self.live()
            .get(jid)
            .and_then(|j| j.batch.as_ref())
            .is_some_and(|b| b.open)
    }

    /// Stops a job (it is killed): it is no longer handed to minions that
    /// missed it, and a batch starts no more minions. Answers who was sent
    /// the job and has not returned (`None` when the job is not live).
    pub fn stop(&self, jid: &Jid) -> Option<Vec<String>> {
        let mut live = self.live();
        let job = live.get_mut(jid)?;
        job.stopped = true;
        if let Some(b) = &mut job.batch {
            b.stop.cancel();
            b.open = false;
        }
        let job = &*job;
        Some(
            job.expected
                .iter()
                .filter(|m| job.sent_to(m) && !job.returned.contains(*m))
                .cloned()
                .collect(),
        )
    }

    /// The live jobs that still wait for a minion, or still have minions
    /// to start.
    pub fn unfinished(&self) -> Vec<LiveState> {
        let now = Instant::now();
        self.live()
            .iter()
            .filter(|(_, j)| j.live_until > now)
            .filter_map(|(jid, j)| {
                let pending: Vec<String> = j
                    .expected
                    .iter()
                    .filter(|m| j.sent_to(m) && !j.returned.contains(*m))
                    .cloned()
                    .collect();
                let batch_open = j.batch.as_ref().is_some_and(|b| b.open);
                (!pending.is_empty() || batch_open).then(|| LiveState {
                    jid: jid.clone(),
                    expected: j.expected.len(),
                    returned: j.returned.len(),
                    pending,
                    batch_open,
                    age: now.saturating_duration_since(j.registered),
                })
            })
            .collect()
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
                registered: Instant::now(),
                watchers: Vec::new(),
                batch: None,
                stopped: false,
                relayed: false,
            },
        );
    }

    /// Sends the returns of the live job `jid` to the other peers with
    /// their JSON from now on; false when it is not live.
    pub fn relay(&self, jid: &Jid) -> bool {
        self.live().get_mut(jid).map(|j| j.relayed = true).is_some()
    }

    /// Whether the returns of `jid` go to the other peers with their JSON.
    pub fn relayed(&self, jid: &Jid) -> bool {
        self.followers(jid).1
    }

    /// Who follows the live job `jid`: a watcher here, and the other
    /// peers (its returns are relayed).
    fn followers(&self, jid: &Jid) -> (bool, bool) {
        self.live().get(jid).map_or((false, false), |j| {
            (j.watchers.iter().any(|w| !w.is_closed()), j.relayed)
        })
    }

    /// Adds a watcher to the live job `jid`: it receives every return
    /// stored from now on. `None` when the job is not live.
    pub fn watch(&self, jid: &Jid) -> Option<mpsc::Receiver<ReturnJson>> {
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

    /// Whether the live job `jid` has a watcher: its returns are then
    /// encoded for it as they are stored.
    pub fn watched(&self, jid: &Jid) -> bool {
        self.followers(jid).0
    }

    /// Records a return (the caller has stored it) and passes it to
    /// watchers (when it was encoded for them: see [`Finished`]).
    pub fn on_return(&self, ret: &Finished) -> ReturnOutcome {
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
        match &ret.json {
            Some(json) => job.watchers.retain(|w| w.try_send(json.clone()).is_ok()),
            None => job.watchers.retain(|w| !w.is_closed()),
        }
        ReturnOutcome::New
    }

    /// Signed envelopes of live jobs that expect `minion` and lack its return.
    pub fn missed_by(&self, minion: &str) -> Vec<(Jid, Bytes)> {
        let now = Instant::now();
        self.live()
            .iter()
            .filter(|(_, j)| {
                j.live_until > now
                    && !j.stopped
                    && j.sent_to(minion)
                    && !j.returned.contains(minion)
            })
            .map(|(jid, j)| {
                let envelope = j
                    .batch
                    .as_ref()
                    .and_then(|b| b.sent.get(minion))
                    .unwrap_or(&j.envelope);
                (jid.clone(), envelope.clone())
            })
            .collect()
    }

    /// Records the jobs a minion reports as still running.
    pub fn set_running(&self, minion: &str, jobs: Vec<Jid>) {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(minion.to_owned(), (Instant::now(), jobs));
    }

    /// The minions among `minions` that reported `jid` as running within
    /// `fresh`.
    pub fn running_on(&self, jid: &Jid, minions: &[String], fresh: Duration) -> Vec<String> {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        minions
            .iter()
            .filter(|m| {
                running
                    .get(m.as_str())
                    .is_some_and(|(at, jobs)| at.elapsed() <= fresh && jobs.contains(jid))
            })
            .cloned()
            .collect()
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
        assert!(t.watched(&jid));
        let a = Finished::of(&ret(&jid, "a"), true);
        assert_eq!(t.on_return(&a), ReturnOutcome::New);
        assert_eq!(t.on_return(&a), ReturnOutcome::Duplicate);
        let c = Finished::of(&ret(&jid, "c"), true);
        assert_eq!(t.on_return(&c), ReturnOutcome::NotLive);
        assert!(t.missed_by("a").is_empty());
        assert_eq!(t.missed_by("b").len(), 1);
        let got = rx.try_recv().expect("ret");
        assert_eq!(got.minion.as_str(), "a");
        let back = got.decode().expect("decode");
        assert_eq!((back.jid, back.minion.as_str()), (jid.clone(), "a"));
        assert!(rx.try_recv().is_err());
        drop(rx);
        assert!(!t.watched(&jid));
    }

    #[test]
    fn waves_of_another_peers_batch_are_handed_to_their_own_minions() {
        let t = JobTracker::new();
        let jid = Jid::from_micros(5).expect("jid");
        let expected: BTreeSet<String> = ["a".to_string(), "b".to_string()].into();
        assert!(!t.adopt_wave(&jid, &["a".to_owned()], &Bytes::from_static(b"w1")));
        let _ = t.register(
            jid.clone(),
            Bytes::from_static(b"w1"),
            expected,
            Duration::from_secs(60),
            false,
        );
        assert!(t.adopt_wave(&jid, &["a".to_owned()], &Bytes::from_static(b"w1")));
        assert_eq!(t.missed_by("a")[0].1, Bytes::from_static(b"w1"));
        assert!(t.missed_by("b").is_empty(), "not started yet");
        assert!(!t.batch_open(&jid), "driven by the other peer");
        assert!(t.adopt_wave(&jid, &["b".to_owned()], &Bytes::from_static(b"w2")));
        assert_eq!(t.missed_by("b")[0].1, Bytes::from_static(b"w2"));
        t.stop(&jid);
        assert!(
            !t.adopt_wave(&jid, &["c".to_owned()], &Bytes::from_static(b"w3")),
            "a wave of a job killed here is not taken"
        );
    }

    #[test]
    fn a_killed_job_is_not_handed_to_minions_that_missed_it() {
        let t = JobTracker::new();
        let jid = Jid::from_micros(3).expect("jid");
        let expected: BTreeSet<String> = ["a".to_string(), "b".to_string()].into();
        let _ = t.register(
            jid.clone(),
            Bytes::from_static(b"env"),
            expected,
            Duration::from_secs(60),
            false,
        );
        assert_eq!(
            t.on_return(&Finished::of(&ret(&jid, "a"), false)),
            ReturnOutcome::New
        );
        assert_eq!(t.missed_by("b").len(), 1);
        assert_eq!(t.stop(&jid), Some(vec!["b".to_owned()]));
        assert!(t.missed_by("b").is_empty(), "killed");
        assert_eq!(t.stop(&jid), Some(vec!["b".to_owned()]), "still live");
        assert_eq!(t.stop(&Jid::from_micros(4).expect("jid")), None);
    }

    #[test]
    fn a_batch_offers_each_minion_only_its_own_wave() {
        let t = JobTracker::new();
        let jid = Jid::from_micros(2).expect("jid");
        let expected: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
        t.register(
            jid.clone(),
            Bytes::from_static(b"first"),
            expected,
            Duration::from_secs(60),
            false,
        );
        let stop = tokio_util::sync::CancellationToken::new();
        t.start_batch(&jid, stop.clone());
        assert!(t.missed_by("a").is_empty());
        t.dispatch(&jid, &["a".into()], &Bytes::from_static(b"wave1"));
        t.dispatch(&jid, &["b".into()], &Bytes::from_static(b"wave2"));
        assert_eq!(t.missed_by("a")[0].1, Bytes::from_static(b"wave1"));
        assert_eq!(t.missed_by("b")[0].1, Bytes::from_static(b"wave2"));
        assert!(t.missed_by("c").is_empty());
        assert!(t.batch_open(&jid));
        assert_eq!(t.unfinished()[0].pending, vec!["a", "b"]);
        t.on_return(&Finished::of(&ret(&jid, "a"), false));
        assert_eq!(t.stop(&jid), Some(vec!["b".to_string()]));
        assert!(stop.is_cancelled());
        assert!(!t.batch_open(&jid));
    }
}
