//! The jobs service: computes who a target expects, signs, seals, records
//! and publishes jobs, keeps the live job table, and follows a job's returns
//! until every expected minion answered or the wait is over.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use keys::{PkiStore, SigningKey};
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
use crate::jobs::JobTracker;
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
}

/// A job that was published.
pub struct Published {
    /// Its id.
    pub jid: Jid,
    /// Minions expected to return.
    pub expected: BTreeSet<String>,
    /// Returns as they arrive, when watched.
    pub returns: Option<mpsc::Receiver<JobReturn>>,
}

/// What following a job yields.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum JobEvent {
    /// A minion returned (stored on disk before this is sent).
    Return(JobReturn),
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
    pki: PkiStore,
    master_key: SigningKey,
    keyring: Arc<Keyring>,
    tracker: Arc<JobTracker>,
    jids: Mutex<JidGenerator>,
    publish: mpsc::Sender<Vec<Bytes>>,
    events: Arc<EventBus>,
}

impl JobsService {
    /// A service publishing on `publish` (frames for the PUB socket).
    pub fn new(
        cfg: &MasterConfig,
        store: Arc<dyn Store>,
        pki: PkiStore,
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
            master_key,
            keyring,
            tracker: Arc::new(JobTracker::new()),
            jids: Mutex::new(JidGenerator::new()),
            publish,
            events,
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
                job.jid,
                Bytes::from(envelope),
                expected,
                returned,
                Duration::from_millis(left),
            );
            restored += 1;
        }
        Ok(restored)
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
            // name who runs it.
            expected: new
                .target
                .matcher()
                .is_ok_and(|m| m.uses_grains())
                .then(|| expected.iter().cloned().collect()),
        };
        let env = Envelope::seal("master", &self.master_key, &Publish::Job(job))
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let bytes = Bytes::from(env.to_bytes());
        let (epoch, session) = self.keyring.session();
        let sealed = Sealed::seal(&session, epoch, random(), PUBLISH_AAD, &bytes);
        let record = JobRecord {
            jid: jid.clone(),
            target: new.target,
            fun: new.fun.clone(),
            args: new.args,
            kwargs: new.kwargs,
            expected: expected.iter().cloned().collect(),
            user: new.user,
            started_ms: issued,
        };
        self.store.put_live_job(&record, &bytes)?;
        let returns = self.tracker.register(
            jid.clone(),
            bytes,
            expected.clone(),
            Duration::from_secs(self.timing.job_live_secs.max(self.timing.job_timeout)),
            watch,
        );
        if !expected.is_empty() {
            let frames = vec![
                Bytes::from_static(BROADCAST_TOPIC),
                Bytes::from(sealed.to_bytes()),
            ];
            if self.publish.send(frames).await.is_err() {
                warn!(jid = %jid, "publisher is gone; minions will fetch the job as missed");
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
        let stored = self.store.returns(&jid)?;
        let expected: BTreeSet<String> = job.expected.into_iter().collect();
        Ok(self.spawn_follow(jid, expected, live, stored, timeout_secs, cancel))
    }

    fn spawn_follow(
        &self,
        jid: Jid,
        expected: BTreeSet<String>,
        returns: Option<mpsc::Receiver<JobReturn>>,
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
                    && tx.send(JobEvent::Return(ret)).await.is_err()
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
