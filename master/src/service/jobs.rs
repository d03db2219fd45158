//! The jobs service: computes who a target expects, signs, seals, records
//! and publishes jobs, keeps the live job table, and follows a job's returns
//! until every expected minion answered or the wait is over.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use keys::{KeyStore, SigningKey};
use protocol::seal::Sealed;
use protocol::{Envelope, Jid, JidGenerator, Job, JobReturn, Publish, Target};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{Page, ServiceError};
use crate::config::MasterConfig;
use crate::events::EventBus;
use crate::jobs::{JobTracker, ReturnJson};
use crate::keyring::{Keyring, random};
use crate::server::{BROADCAST_TOPIC, PUBLISH_AAD, now_ms, now_us};
use store::access::User;
use store::{JobRecord, JobSummary, Store};

/// A job to publish.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Target.
    pub target: Target,
    /// Function.
    pub fun: String,
    /// Positional arguments.
    pub args: Vec<String>,
    /// Keyword arguments.
    pub kwargs: BTreeMap<String, String>,
    /// Who asks.
    pub user: String,
    /// Start it a few minions at a time.
    pub batch: Option<BatchSpec>,
}

/// How many minions of a batch run at once: a count or a share of the
/// expected minions (`25%`, at least one).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BatchSize {
    /// This many.
    Count(usize),
    /// This share, in percent.
    Percent(f64),
}

impl BatchSize {
    /// Reads `N` or `N%`.
    pub fn parse(text: &str) -> Result<BatchSize, ServiceError> {
        let bad = || {
            ServiceError::Unprocessable(format!(
                "batch {text:?} is not a number of minions (such as 10) or a percentage (such as 25%)"
            ))
        };
        let t = text.trim();
        match t.strip_suffix('%') {
            Some(p) => match p.trim().parse::<f64>() {
                Ok(p) if p > 0.0 && p <= 100.0 => Ok(BatchSize::Percent(p)),
                _ => Err(bad()),
            },
            None => match t.parse::<usize>() {
                Ok(n) if n > 0 => Ok(BatchSize::Count(n)),
                _ => Err(bad()),
            },
        }
    }

    /// How many run at once out of `total`.
    pub fn of(self, total: usize) -> usize {
        match self {
            BatchSize::Count(n) => n,
            BatchSize::Percent(p) => ((total as f64 * p / 100.0) as usize).max(1),
        }
    }
}

/// A batch: how many at once, how long a freed place waits before the next
/// minion starts, and how long a minion is waited for (longer while it
/// reports the job as running).
#[derive(Debug, Clone, Copy)]
pub struct BatchSpec {
    /// How many at once.
    pub size: BatchSize,
    /// Wait after a return before the next minion starts.
    pub wait: Duration,
    /// Wait for a return before the place is given to the next minion.
    pub timeout: Duration,
}

/// What killing a job did.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KillReport {
    /// The killed job.
    pub jid: Jid,
    /// The job that carried the kill to the minions.
    pub kill_jid: Jid,
    /// Minions that killed it.
    pub killed: Vec<String>,
    /// Minions where it had already ended.
    pub not_running: Vec<String>,
    /// Minions that did not answer the kill.
    pub no_answer: Vec<String>,
}

/// A job still running or waiting for minions, for `jobs active`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActiveJob {
    /// The job id.
    pub jid: Jid,
    /// Function.
    pub fun: String,
    /// Target, as typed.
    pub target: String,
    /// Who published it.
    pub user: String,
    /// When it was published, unix milliseconds.
    pub started_ms: i64,
    /// How many minions it expects.
    pub expected_count: usize,
    /// How many returned.
    pub returned_count: usize,
    /// Minions that report it as running.
    pub running: Vec<String>,
    /// How many minions were sent it and have not returned.
    pub pending_count: usize,
    /// Whether a batch still has minions to start.
    pub batch_open: bool,
}

/// Signs jobs and publishes them sealed under the current session key.
struct Publisher {
    master_key: SigningKey,
    keyring: Arc<Keyring>,
    publish: mpsc::Sender<Vec<Bytes>>,
}

impl Publisher {
    /// The signed envelope of `job`.
    fn sign(&self, job: &Job) -> Result<Bytes, ServiceError> {
        let env = Envelope::seal("master", &self.master_key, &Publish::Job(job.clone()))
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        Ok(Bytes::from(env.to_bytes()))
    }

    /// Seals `envelope` under the session key and hands it to the PUB
    /// socket; after a key was removed, once the session key has rotated.
    async fn send(&self, jid: &Jid, envelope: &Bytes) {
        self.keyring.wait_settled(Duration::from_secs(10)).await;
        let (epoch, session) = self.keyring.session();
        let sealed = Sealed::seal(&session, epoch, random(), PUBLISH_AAD, envelope);
        let frames = vec![
            Bytes::from_static(BROADCAST_TOPIC),
            Bytes::from(sealed.to_bytes()),
        ];
        if self.publish.send(frames).await.is_err() {
            warn!(jid = %jid, "publisher is gone; minions will fetch the job as missed");
        }
    }
}

/// A job that was published.
pub struct Published {
    /// Its id.
    pub jid: Jid,
    /// Minions expected to return.
    pub expected: BTreeSet<String>,
    /// Returns as they arrive, when watched.
    pub returns: Option<mpsc::Receiver<ReturnJson>>,
}

/// What following a job yields.
#[derive(Debug, Clone)]
pub enum JobEvent {
    /// A minion returned (stored on disk before this is sent).
    Return(ReturnJson),
    /// The wait is over.
    Done {
        /// Expected minions that did not return.
        missing: Vec<String>,
    },
}

/// A stored job and its returns.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobView {
    /// The job.
    pub job: JobRecord,
    /// Its stored returns.
    pub returns: Vec<JobReturn>,
}

/// The settings the service needs.
#[derive(Debug, Clone, Copy)]
struct Timing {
    job_timeout: u64,
    job_live_secs: u64,
    presence_secs: u64,
}

/// Publishing and following jobs.
pub struct JobsService {
    timing: Timing,
    store: Arc<dyn Store>,
    pki: Arc<dyn KeyStore>,
    publisher: Arc<Publisher>,
    tracker: Arc<JobTracker>,
    jids: Mutex<JidGenerator>,
    events: Arc<EventBus>,
    /// The other peers of a master cluster, told of every job published.
    peers: Option<Peers>,
}

/// How a peer tells the others of its jobs.
struct Peers {
    outbox: mpsc::Sender<crate::cluster::Message>,
    nats: async_nats::Client,
    url: String,
}

impl JobsService {
    /// A service publishing on `publish` (frames for the PUB socket).
    pub fn new(
        cfg: &MasterConfig,
        store: Arc<dyn Store>,
        pki: Arc<dyn KeyStore>,
        master_key: SigningKey,
        keyring: Arc<Keyring>,
        publish: mpsc::Sender<Vec<Bytes>>,
        events: Arc<EventBus>,
    ) -> JobsService {
        JobsService {
            timing: Timing {
                job_timeout: cfg.job_timeout,
                job_live_secs: cfg.job_live_secs,
                presence_secs: cfg.presence_secs,
            },
            store,
            pki,
            publisher: Arc::new(Publisher {
                master_key,
                keyring,
                publish,
            }),
            tracker: Arc::new(JobTracker::new()),
            jids: Mutex::new(JidGenerator::new()),
            events,
            peers: None,
        }
    }

    /// Tells the other peers of a master cluster of every job published,
    /// through `outbox` to the NATS server at `url` (`nats`); while it is
    /// unreachable, jobs are refused.
    pub fn with_peers(
        mut self,
        outbox: mpsc::Sender<crate::cluster::Message>,
        nats: async_nats::Client,
        url: String,
    ) -> JobsService {
        self.peers = Some(Peers { outbox, nats, url });
        self
    }

    /// Takes in a job another peer published: it becomes live here too and
    /// goes out to the minions connected to this master. A job already live
    /// here, or older than its live time (a message sent again), is left
    /// alone.
    pub async fn adopt(
        &self,
        jid: Jid,
        envelope: Bytes,
        expected: BTreeSet<String>,
        live: Duration,
    ) {
        let age_ms = now_ms().saturating_sub(jid.micros() / 1000);
        if expected.is_empty()
            || self.tracker.is_live(&jid)
            || age_ms > i64::try_from(live.as_millis()).unwrap_or(i64::MAX)
        {
            return;
        }
        let _ = self
            .tracker
            .register(jid.clone(), envelope.clone(), expected, live, false);
        // Its publisher's `cmdb run` follows it there.
        self.tracker.relay(&jid);
        self.publisher.send(&jid, &envelope).await;
    }

    /// Takes a wave of a batch another peer drives: recorded for the
    /// minions it names and published to this master's minions.
    pub async fn adopt_wave(&self, jid: &Jid, envelope: Bytes, minions: &[String]) {
        if self.tracker.adopt_wave(jid, minions, &envelope) {
            self.publisher.send(jid, &envelope).await;
        }
    }

    /// Puts the jobs still live when the master stopped back into the live
    /// table, so minions that missed them get them when they reconnect.
    /// Returns how many.
    pub fn restore(&self) -> Result<usize, ServiceError> {
        let live_ms = i64::try_from(
            self.timing
                .job_live_secs
                .max(self.timing.job_timeout)
                .saturating_mul(1000),
        )
        .unwrap_or(i64::MAX);
        let now = now_ms();
        let mut restored = 0;
        for (job, envelope) in self.store.live_jobs(now.saturating_sub(live_ms))? {
            let returned: BTreeSet<String> =
                self.store.returned_minions(&job.jid)?.into_iter().collect();
            let expected: BTreeSet<String> = job.expected.iter().cloned().collect();
            if expected.is_subset(&returned) {
                continue;
            }
            let left = u64::try_from(job.started_ms.saturating_add(live_ms) - now).unwrap_or(0);
            self.tracker.restore(
                job.jid.clone(),
                Bytes::from(envelope),
                expected,
                returned,
                Duration::from_millis(left),
            );
            // Which peer published it, and who follows it, is not known.
            if self.peers.is_some() {
                self.tracker.relay(&job.jid);
            }
            restored += 1;
        }
        Ok(restored)
    }

    /// Hands `frames` to the PUB socket, after everything published before.
    pub async fn send_frames(&self, frames: Vec<Bytes>) {
        if self.publisher.publish.send(frames).await.is_err() {
            warn!("publisher is gone");
        }
    }

    /// A new job id, unique on this master.
    pub fn next_jid(&self) -> Jid {
        self.jids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next(now_us())
    }

    /// The live job table.
    pub fn tracker(&self) -> &JobTracker {
        &self.tracker
    }

    /// The accepted minions a target selects.
    pub fn expected_for(&self, target: &Target) -> Result<BTreeSet<String>, ServiceError> {
        let matcher = target
            .matcher()
            .map_err(|e| ServiceError::Invalid(e.to_string()))?;
        let listing = self
            .pki
            .list()
            .map_err(|e| ServiceError::Unavailable(e.to_string()))?;
        let mut out = BTreeSet::new();
        for id in listing.accepted {
            let facts = if matcher.uses_grains() {
                self.store.asset_of_minion(&id)?.map(|a| a.full_facts())
            } else {
                None
            };
            if matcher.matches(&id, facts.as_ref()) {
                out.insert(id);
            }
        }
        Ok(out)
    }

    /// Signs, records and publishes a job; with `watch`, its returns are
    /// handed over as they are stored. With `acl`, a job whose function or
    /// any expected minion the user may not use is refused whole, before
    /// anything is published.
    pub async fn publish(
        &self,
        new: NewJob,
        watch: bool,
        acl: Option<&User>,
    ) -> Result<Published, ServiceError> {
        let expected = self.expected_for(&new.target)?;
        if let Some(user) = acl {
            if !user.may_run(&new.fun) {
                return Err(ServiceError::Forbidden(format!(
                    "user {} may not run {}",
                    user.name, new.fun
                )));
            }
            let outside: Vec<&str> = expected
                .iter()
                .filter(|m| !user.may_target(m))
                .map(String::as_str)
                .take(10)
                .collect();
            if !outside.is_empty() {
                return Err(ServiceError::Forbidden(format!(
                    "user {} may not target {}; nothing was published",
                    user.name,
                    outside.join(", ")
                )));
            }
        }
        if let Some(p) = &self.peers
            && p.nats.connection_state() != async_nats::connection::State::Connected
        {
            return Err(ServiceError::Unavailable(format!(
                "NATS {} is unreachable: the other peers of the cluster would not get \
                 the job, so it is not published; try again once it is back",
                p.url
            )));
        }
        let order: Vec<String> = expected.iter().cloned().collect();
        let first = match &new.batch {
            Some(b) => order.len().min(b.size.of(order.len())),
            None => order.len(),
        };
        // On a store shared by several masters another may have taken the
        // job id in the same microsecond: then the next one.
        let mut tries = 0;
        let (jid, job, bytes, record) = loop {
            let jid = self
                .jids
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .next(now_us());
            let issued = now_ms();
            let job = Job {
                jid: jid.clone(),
                target: new.target.clone(),
                fun: new.fun.clone(),
                args: new.args.clone(),
                kwargs: new.kwargs.clone(),
                timeout_secs: self.timing.job_timeout,
                issued_at_ms: issued,
                user: new.user.clone(),
                // Facts on the minion may differ from what the master knows:
                // name who runs it. A batch names each wave's minions.
                expected: if new.batch.is_some() {
                    Some(order[..first].to_vec())
                } else {
                    new.target
                        .matcher()
                        .is_ok_and(|m| m.uses_grains())
                        .then(|| order.clone())
                },
            };
            let bytes = self.publisher.sign(&job)?;
            let record = JobRecord {
                jid: jid.clone(),
                target: new.target.clone(),
                fun: new.fun.clone(),
                args: new.args.clone(),
                kwargs: new.kwargs.clone(),
                expected: order.clone(),
                user: new.user.clone(),
                started_ms: issued,
                transport: Default::default(),
                refused: Default::default(),
            };
            match self.store.put_live_job(&record, &bytes) {
                Ok(()) => break (jid, job, bytes, record),
                Err(store::StoreError::Precondition(m)) if tries < 5 => {
                    tries += 1;
                    tracing::debug!(jid = %jid, reason = %m, "job id taken by another master; taking the next");
                }
                Err(e) => return Err(e.into()),
            }
        };
        let returns = self.tracker.register(
            jid.clone(),
            bytes.clone(),
            expected.clone(),
            Duration::from_secs(self.timing.job_live_secs.max(self.timing.job_timeout)),
            watch,
        );
        let is_batch = new.batch.is_some();
        if let Some(spec) = new.batch {
            let stop = CancellationToken::new();
            self.tracker.start_batch(&jid, stop.clone());
            self.tracker.dispatch(&jid, &order[..first], &bytes);
            let driver = BatchDriver {
                peers: self.peers.as_ref().map(|p| p.outbox.clone()),
                publisher: self.publisher.clone(),
                tracker: self.tracker.clone(),
                returns: self.tracker.watch(&jid),
                job,
                spec,
                fresh: Duration::from_secs(self.timing.presence_secs),
                job_timeout: Duration::from_secs(self.timing.job_timeout),
                stop,
            };
            let queue: VecDeque<String> = order[first..].iter().cloned().collect();
            let wave: Vec<String> = order[..first].to_vec();
            tokio::spawn(driver.run(wave, queue));
        }
        if !expected.is_empty() {
            self.publisher.send(&jid, &bytes).await;
            if let Some(peers) = &self.peers {
                let m = crate::cluster::Message::Job {
                    jid: jid.clone(),
                    envelope: bytes.to_vec(),
                    expected: order.clone(),
                    live_secs: self.timing.job_live_secs.max(self.timing.job_timeout),
                };
                if peers.outbox.send(m).await.is_err() {
                    warn!(jid = %jid, "the other peers could not be told of a job");
                }
                if is_batch {
                    let wave = crate::cluster::Message::Wave {
                        jid: jid.clone(),
                        envelope: bytes.to_vec(),
                        minions: order[..first].to_vec(),
                    };
                    if peers.outbox.send(wave).await.is_err() {
                        warn!(jid = %jid, "the other peers could not be told of a batch wave");
                    }
                }
            }
        }
        info!(jid = %jid, fun = %new.fun, expected = expected.len(), "published job");
        self.events.emit(|| format!("cmdb/job/{jid}/new"), &record);
        Ok(Published {
            jid,
            expected,
            returns,
        })
    }

    /// Kills the job `jid` on every minion that was sent it and has not
    /// returned (a batch starts no more minions): publishes
    /// `saltutil.kill_job` to them and waits a few seconds for their
    /// answers. The killed job's own returns say it was killed.
    pub async fn kill(&self, jid: &str, user: &User) -> Result<KillReport, ServiceError> {
        let jid = Jid::parse(jid).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        let job = self
            .store
            .job(&jid)?
            .ok_or_else(|| ServiceError::NotFound(format!("no job {jid}")))?;
        if !user.may_run(&job.fun) || job.expected.iter().any(|m| !user.may_target(m)) {
            return Err(ServiceError::Forbidden(format!(
                "user {} may not kill job {jid} ({} on its minions)",
                user.name, job.fun
            )));
        }
        let pending = self
            .tracker
            .stop(&jid)
            .ok_or_else(|| ServiceError::Conflict(format!("job {jid} is no longer live")))?;
        // A master started again (or a peer) does not hand it out either.
        self.store.drop_envelope(&jid)?;
        if let Some(peers) = &self.peers {
            let stop = crate::cluster::Message::Stop { jid: jid.clone() };
            if peers.outbox.send(stop).await.is_err() {
                warn!(jid = %jid, "the other peers could not be told of a kill");
            }
        }
        if job.transport == store::Transport::Ssh {
            // Stopping it killed its sessions; each host returns that.
            let returned: BTreeSet<String> =
                self.store.returned_minions(&jid)?.into_iter().collect();
            let killed: Vec<String> = job
                .expected
                .iter()
                .filter(|m| !returned.contains(*m))
                .cloned()
                .collect();
            info!(jid = %jid, killed = killed.len(), "killed a job over SSH");
            return Ok(KillReport {
                kill_jid: jid.clone(),
                jid,
                killed,
                not_running: returned.into_iter().collect(),
                no_answer: Vec::new(),
            });
        }
        if pending.is_empty() {
            return Err(ServiceError::Conflict(format!(
                "job {jid} is not running: every minion it started has returned"
            )));
        }
        let published = self
            .publish(
                NewJob {
                    target: Target::List(pending.clone()),
                    fun: "saltutil.kill_job".into(),
                    args: vec![jid.to_string()],
                    kwargs: BTreeMap::new(),
                    user: user.name.clone(),
                    batch: None,
                },
                true,
                None,
            )
            .await?;
        let kill_jid = published.jid.clone();
        let mut events = self.follow(published, 5, CancellationToken::new());
        let mut report = KillReport {
            jid,
            kill_jid,
            killed: Vec::new(),
            not_running: Vec::new(),
            no_answer: Vec::new(),
        };
        while let Some(ev) = events.recv().await {
            match ev {
                JobEvent::Return(ret)
                    if ret
                        .decode()
                        .is_ok_and(|r| r.data["killed"] == serde_json::Value::Bool(true)) =>
                {
                    report.killed.push(ret.minion.to_string());
                }
                JobEvent::Return(ret) => report.not_running.push(ret.minion.to_string()),
                JobEvent::Done { missing } => report.no_answer = missing,
            }
        }
        info!(jid = %report.jid, killed = report.killed.len(), "killed a job");
        Ok(report)
    }

    /// Jobs still running on a minion, just published, or with batch
    /// minions still to start, oldest first.
    pub fn active(&self) -> Result<Vec<ActiveJob>, ServiceError> {
        let fresh = Duration::from_secs(self.timing.presence_secs);
        let mut out = Vec::new();
        for live in self.tracker.unfinished() {
            let running = self.tracker.running_on(&live.jid, &live.pending, fresh);
            // A minion reports a job as running after two seconds.
            let young = live.age < Duration::from_secs(5);
            if running.is_empty() && !live.batch_open && !young {
                continue;
            }
            let Some(job) = self.store.job(&live.jid)? else {
                continue;
            };
            out.push(ActiveJob {
                jid: live.jid,
                fun: job.fun,
                target: job.target.describe(),
                user: job.user,
                started_ms: job.started_ms,
                expected_count: live.expected,
                returned_count: live.returned,
                running,
                pending_count: live.pending.len(),
                batch_open: live.batch_open,
            });
        }
        out.sort_by(|a, b| a.jid.cmp(&b.jid));
        Ok(out)
    }

    /// Follows a watched job: every return, then [`JobEvent::Done`] once
    /// all expected minions returned, or none returned for `timeout_secs`
    /// and none reports the job as still running (never past the job
    /// timeout), or `cancel` fires. The events stop when the receiver is
    /// dropped.
    pub fn follow(
        &self,
        published: Published,
        timeout_secs: u64,
        cancel: CancellationToken,
    ) -> mpsc::Receiver<JobEvent> {
        self.spawn_follow(
            published.jid,
            published.expected,
            published.returns,
            Vec::new(),
            timeout_secs,
            cancel,
        )
    }

    /// Follows a job published earlier: its stored returns first, then
    /// those still arriving, as [`JobsService::follow`] does.
    pub fn subscribe(
        &self,
        jid: &str,
        timeout_secs: u64,
        cancel: CancellationToken,
    ) -> Result<mpsc::Receiver<JobEvent>, ServiceError> {
        let jid = Jid::parse(jid).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        let job = self
            .store
            .job(&jid)?
            .ok_or_else(|| ServiceError::NotFound(format!("no job {jid}")))?;
        // Watch first, then read what is stored: a return stored in between
        // comes both ways and is passed on once.
        let live = self.tracker.watch(&jid);
        // Another peer published it: every peer sends its returns on with
        // their JSON from now on (until then its publisher sent them
        // without, and they are read back from the store: see
        // `cluster::Refetch`).
        if let Some(peers) = &self.peers
            && live.is_some()
            && self.tracker.relayed(&jid)
        {
            let watch = crate::cluster::Message::Watch { jid: jid.clone() };
            if peers.outbox.try_send(watch).is_err() {
                warn!(jid = %jid, "cluster outbox full; the other peers were not asked for this job's returns");
            }
        }
        let stored = self.store.returns(&jid)?;
        let expected: BTreeSet<String> = job.expected.into_iter().collect();
        Ok(self.spawn_follow(jid, expected, live, stored, timeout_secs, cancel))
    }

    fn spawn_follow(
        &self,
        jid: Jid,
        expected: BTreeSet<String>,
        returns: Option<mpsc::Receiver<ReturnJson>>,
        stored: Vec<JobReturn>,
        timeout_secs: u64,
        cancel: CancellationToken,
    ) -> mpsc::Receiver<JobEvent> {
        let (tx, rx) = mpsc::channel(1024);
        let tracker = self.tracker.clone();
        let timing = self.timing;
        tokio::spawn(async move {
            let mut missing = expected;
            for ret in stored {
                if missing.remove(ret.minion.as_str())
                    && tx
                        .send(JobEvent::Return(ReturnJson::of(&ret)))
                        .await
                        .is_err()
                {
                    return;
                }
            }
            if let Some(mut returns) = returns {
                let wait_for = Duration::from_secs(timeout_secs.max(1));
                let hard_stop =
                    Instant::now() + Duration::from_secs(timing.job_timeout.max(timeout_secs));
                let fresh = Duration::from_secs(timing.presence_secs);
                let mut deadline = Instant::now() + wait_for;
                while !missing.is_empty() {
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tx.closed() => return,
                        r = returns.recv() => {
                            let Some(ret) = r else { break };
                            if missing.remove(ret.minion.as_str())
                                && tx.send(JobEvent::Return(ret)).await.is_err()
                            {
                                return;
                            }
                        }
                        _ = tokio::time::sleep_until(deadline) => {
                            let still_running = missing
                                .iter()
                                .any(|m| tracker.is_running(m, &jid, fresh));
                            // A batch still starting minions is waited for
                            // past the hard stop: each of them has its own.
                            if tracker.batch_open(&jid) {
                                deadline = Instant::now() + wait_for;
                                continue;
                            }
                            if !still_running || Instant::now() >= hard_stop {
                                break;
                            }
                            deadline = Instant::now() + wait_for;
                        }
                    }
                }
            }
            let _ = tx
                .send(JobEvent::Done {
                    missing: missing.into_iter().collect(),
                })
                .await;
        });
        rx
    }

    /// A page of the job cache, newest first, older than the job `cursor`
    /// names.
    pub fn list(
        &self,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page<JobSummary>, ServiceError> {
        let before = match cursor {
            Some(c) => Some(Jid::parse(c).map_err(|_| {
                ServiceError::Invalid(format!("cursor {c:?} is not one this API gave"))
            })?),
            None => None,
        };
        let mut jobs = self.store.jobs_before(before.as_ref(), limit + 1)?;
        let next = if jobs.len() > limit {
            jobs.truncate(limit);
            jobs.last().map(|j| j.jid.to_string())
        } else {
            None
        };
        Ok(Page { items: jobs, next })
    }

    /// One job and its stored returns.
    pub fn show(&self, jid: &str) -> Result<JobView, ServiceError> {
        let jid = Jid::parse(jid).map_err(|e| ServiceError::Invalid(e.to_string()))?;
        let job = self
            .store
            .job(&jid)?
            .ok_or_else(|| ServiceError::NotFound(format!("no job {jid}")))?;
        let returns = self.store.returns(&jid)?;
        Ok(JobView { job, returns })
    }
}

/// Starts a batch's minions as places free up: a place frees when its
/// minion returns (after the batch's wait), or when it did not return in
/// time and does not report the job as running.
struct BatchDriver {
    /// The other peers of a master cluster, told of every wave.
    peers: Option<mpsc::Sender<crate::cluster::Message>>,
    publisher: Arc<Publisher>,
    tracker: Arc<JobTracker>,
    returns: Option<mpsc::Receiver<ReturnJson>>,
    job: Job,
    spec: BatchSpec,
    fresh: Duration,
    job_timeout: Duration,
    stop: CancellationToken,
}

/// A batch minion being waited for: when to look again, and when to give
/// up even if it reports the job as running.
struct InFlight {
    deadline: Instant,
    hard_stop: Instant,
}

impl BatchDriver {
    async fn run(mut self, first: Vec<String>, mut queue: VecDeque<String>) {
        let jid = self.job.jid.clone();
        let Some(mut returns) = self.returns.take() else {
            self.tracker.close_batch(&jid);
            return;
        };
        let mut in_flight: HashMap<String, InFlight> = HashMap::new();
        self.track(&mut in_flight, first);
        let mut freeing: Vec<Instant> = Vec::new();
        while !queue.is_empty() {
            let now = Instant::now();
            let free = freeing.iter().filter(|t| **t <= now).count();
            freeing.retain(|t| *t > now);
            if free > 0 {
                let wave: Vec<String> = queue.drain(..free.min(queue.len())).collect();
                if !self.send_wave(&wave).await {
                    break;
                }
                self.track(&mut in_flight, wave);
                continue;
            }
            let wake = in_flight
                .values()
                .map(|f| f.deadline)
                .chain(freeing.iter().copied())
                .min()
                .unwrap_or(now + self.spec.timeout);
            tokio::select! {
                _ = self.stop.cancelled() => break,
                r = returns.recv() => match r {
                    Some(ret) => {
                        if in_flight.remove(ret.minion.as_str()).is_some() {
                            freeing.push(Instant::now() + self.spec.wait);
                        }
                    }
                    None => break,
                },
                _ = tokio::time::sleep_until(wake) => {
                    let now = Instant::now();
                    let expired: Vec<String> = in_flight
                        .iter()
                        .filter(|(_, f)| f.deadline <= now)
                        .map(|(m, _)| m.clone())
                        .collect();
                    for m in expired {
                        let running = self.tracker.is_running(&m, &jid, self.fresh);
                        match in_flight.get_mut(&m) {
                            Some(f) if running && now < f.hard_stop => {
                                f.deadline = now + self.spec.timeout;
                            }
                            _ => {
                                in_flight.remove(&m);
                                freeing.push(now);
                            }
                        }
                    }
                }
            }
        }
        self.tracker.close_batch(&jid);
        info!(jid = %jid, unstarted = queue.len(), "batch has started its minions");
    }

    fn track(&self, in_flight: &mut HashMap<String, InFlight>, wave: Vec<String>) {
        let now = Instant::now();
        for m in wave {
            in_flight.insert(
                m,
                InFlight {
                    deadline: now + self.spec.timeout,
                    hard_stop: now + self.job_timeout.max(self.spec.timeout),
                },
            );
        }
    }

    /// Signs the job anew for `wave` and publishes it; false when it
    /// cannot be signed.
    async fn send_wave(&mut self, wave: &[String]) -> bool {
        if self.stop.is_cancelled() {
            return false;
        }
        let mut names = wave.to_vec();
        names.sort();
        self.job.expected = Some(names);
        self.job.issued_at_ms = now_ms();
        let envelope = match self.publisher.sign(&self.job) {
            Ok(e) => e,
            Err(e) => {
                warn!(jid = %self.job.jid, error = %e, "cannot sign a batch wave; the batch stops");
                return false;
            }
        };
        self.tracker.dispatch(&self.job.jid, wave, &envelope);
        self.publisher.send(&self.job.jid, &envelope).await;
        if let Some(peers) = &self.peers {
            let m = crate::cluster::Message::Wave {
                jid: self.job.jid.clone(),
                envelope: envelope.to_vec(),
                minions: wave.to_vec(),
            };
            if peers.send(m).await.is_err() {
                warn!(jid = %self.job.jid, "the other peers could not be told of a batch wave");
            }
        }
        info!(jid = %self.job.jid, minions = wave.len(), "batch started minions");
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_sizes_are_counts_or_shares() {
        assert_eq!(BatchSize::parse("2").expect("n").of(10), 2);
        assert_eq!(BatchSize::parse("25%").expect("p").of(10), 2);
        assert_eq!(BatchSize::parse("10%").expect("p").of(4), 1);
        assert_eq!(BatchSize::parse(" 100% ").expect("p").of(7), 7);
        for bad in ["0", "-1", "x", "0%", "101%", "%", ""] {
            let e = BatchSize::parse(bad).expect_err(bad);
            assert!(
                e.to_string().contains("is not a number of minions"),
                "{bad}: {e}"
            );
        }
    }
}
