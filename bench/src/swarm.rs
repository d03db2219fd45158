//! Many simulated minions in one process, each with its own key and its own
//! SUB and DEALER connection, speaking the real protocol.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use keys::VerifyingKey;
use minion::machine::{
    self, AuthAnswer, AuthWait, Beat, Delivery, Next, Reconnect, Sent, Session, Step, Timing,
};
use minion::session::clock;
use minion::transport::{self, BatchVerifier, ChannelSlot, Link, ReplyKeys};
use protocol::seal::{Sealed, SymmetricKey, channel_key, open_session_key};
use protocol::{
    AuthRequest, AuthStatus, Envelope, ErrorKind, Heartbeat, Jid, JobReturn, MinionId, MissedJobs,
    Publish, ReplyBody, RequestBody,
};
use tokio_util::sync::CancellationToken;

use crate::facts::{advance, host_facts};

/// Settings of a swarm.
#[derive(Debug, Clone)]
pub struct SwarmConfig {
    /// Master address.
    pub master: String,
    /// PUB port.
    pub publish_port: u16,
    /// Request port.
    pub ret_port: u16,
    /// Minions to simulate.
    pub count: usize,
    /// Id prefix; ids are `<prefix><n>` with five digits.
    pub prefix: String,
    /// Fraction of churning fields that change between collects.
    pub churn: f64,
    /// Seconds between heartbeats.
    pub heartbeat_secs: f64,
    /// New connections per second while starting.
    pub connect_per_sec: f64,
    /// Seconds to wait for one reply.
    pub request_timeout: f64,
    /// Longest random delay before reconnecting, seconds.
    pub reconnect_jitter: f64,
    /// Longest random delay before asking for a rotated session key,
    /// seconds (a minion's `rotation_spread`).
    pub rotation_spread: f64,
}

impl SwarmConfig {
    /// The session and delivery timings every simulated minion follows: a
    /// minion's defaults, with this swarm's heartbeat, reconnect delay and
    /// rotation spread, and a short wait while pending (1-2 s) so that a
    /// fleet accepted by an operator comes online quickly.
    pub fn timing(&self) -> Timing {
        Timing {
            heartbeat: self.heartbeat_secs,
            reauth_delay: self.reconnect_jitter,
            rotation_spread: self.rotation_spread,
            acceptance_wait: 1.0,
            acceptance_wait_max: 2.0,
            ..Timing::default()
        }
    }
}

/// Counters the swarm keeps.
#[derive(Debug, Default)]
pub struct Stats {
    /// Minions authenticated right now.
    pub online: AtomicUsize,
    /// Minions that were ever authenticated.
    pub ever: AtomicUsize,
    /// Minions waiting as pending.
    pub pending: AtomicUsize,
    /// Returns acknowledged.
    pub returns: AtomicU64,
    /// Sessions started again after a disconnect.
    pub reconnects: AtomicU64,
    /// Session keys taken from a hand-over on the publish channel.
    pub handovers: AtomicU64,
    /// Publishes under a session key not held, which made the minion ask
    /// for the key before it could read them (a real minion drops such a
    /// publish and fetches it later, after `rotation_spread`).
    pub late_keys: AtomicU64,
}

fn jitter() -> f64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

fn now_ms() -> i64 {
    transport::now_ms()
}

/// Jobs already verified in this process, by signature: every simulated
/// minion receives the same bytes, so the signature check and the target
/// compilation are done once per process instead of once per minion.
type JobCache = Arc<
    std::sync::Mutex<std::collections::HashMap<Vec<u8>, Arc<(protocol::Job, protocol::Matcher)>>>,
>;

struct Sim {
    jobs: JobCache,
    n: usize,
    id: MinionId,
    key: keys::SigningKey,
    master_key: Arc<RwLock<Option<VerifyingKey>>>,
    /// The process's reply checker: the signatures of replies that arrive
    /// together on different simulated minions' links are checked in one
    /// batch (each reply is still checked, and a bad one still fails).
    replies: BatchVerifier,
    channel: ChannelSlot,
    cfg: Arc<SwarmConfig>,
    timing: Arc<Timing>,
    stats: Arc<Stats>,
    round: u64,
    seen: VecDeque<Jid>,
    ever_online: bool,
    /// Returns the master has not acknowledged; sent again in the next
    /// session, as a real minion's outbox does.
    undelivered: Vec<JobReturn>,
    /// This host's facts as last collected, advanced for the next collect.
    facts: Option<serde_json::Value>,
}

enum Authed {
    Yes(u64, SymmetricKey),
    Retry,
}

impl Sim {
    async fn authenticate(&mut self, link: &Link) -> Authed {
        let mut was_pending = false;
        let mut wait = AuthWait::new(&self.timing);
        loop {
            let mut nonce = vec![0u8; 16];
            let _ = getrandom::fill(&mut nonce);
            let req = RequestBody::Auth(AuthRequest {
                minion: self.id.clone(),
                nonce: nonce.clone(),
            });
            let Ok(reply) = link.request(req, true).await else {
                if was_pending {
                    self.stats.pending.fetch_sub(1, Ordering::Relaxed);
                }
                return Authed::Retry;
            };
            let ReplyBody::Auth(ans) = reply.body else {
                return Authed::Retry;
            };
            if ans.status == AuthStatus::Accepted {
                if was_pending {
                    self.stats.pending.fetch_sub(1, Ordering::Relaxed);
                }
                *self.master_key.write().unwrap_or_else(|p| p.into_inner()) =
                    Some(reply.master_key);
                let Ok(ch) = channel_key(&self.key, &reply.master_key, self.id.as_str()) else {
                    return Authed::Retry;
                };
                *self.channel.write().unwrap_or_else(|p| p.into_inner()) = Some(ch);
                let Some(sealed) = ans.session else {
                    return Authed::Retry;
                };
                return match open_session_key(&self.key, self.id.as_str(), &sealed) {
                    Ok(k) => Authed::Yes(sealed.epoch, k),
                    Err(_) => Authed::Retry,
                };
            }
            let answer = if ans.status == AuthStatus::Pending {
                AuthAnswer::Pending
            } else {
                AuthAnswer::Refused
            };
            if !was_pending {
                self.stats.pending.fetch_add(1, Ordering::Relaxed);
                was_pending = true;
            }
            let delay = wait.after(answer, &self.timing, jitter()).unwrap_or(0.0);
            tokio::time::sleep(Duration::from_secs_f64(delay)).await;
        }
    }

    fn job_of(&mut self, inner: &[u8]) -> Option<protocol::Job> {
        let env = Envelope::from_bytes(inner, protocol::MAX_FRAME_DEFAULT).ok()?;
        let cached = self
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&env.signature)
            .cloned();
        let entry = match cached {
            Some(e) => e,
            None => {
                let mk = (*self.master_key.read().unwrap_or_else(|p| p.into_inner()))?;
                let Publish::Job(job) = env.open::<Publish>(&mk).ok()?;
                let m = job.target.matcher().ok()?;
                let e = Arc::new((job, m));
                let mut cache = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
                if cache.len() > 1024 {
                    cache.clear();
                }
                cache.insert(env.signature.clone(), e.clone());
                e
            }
        };
        let (job, m) = (&entry.0, &entry.1);
        if !job.is_for(m, self.id.as_str(), None) || self.seen.contains(&job.jid) {
            return None;
        }
        let job = job.clone();
        if self.seen.len() >= 256 {
            self.seen.pop_front();
        }
        self.seen.push_back(job.jid.clone());
        Some(job)
    }

    async fn run_job(&mut self, link: &Link, job: protocol::Job) {
        let started = now_ms();
        let (success, data) = match job.fun.as_str() {
            "test.ping" => (true, serde_json::Value::Bool(true)),
            "collect" | "grains.items" => {
                self.round += 1;
                let facts = match self.facts.take() {
                    Some(mut facts) => {
                        advance(&mut facts, self.round, self.cfg.churn);
                        facts
                    }
                    None => host_facts(self.id.as_str(), self.n, self.round, self.cfg.churn),
                };
                (true, facts)
            }
            other => (
                false,
                serde_json::Value::String(format!("'{other}' is not simulated")),
            ),
        };
        let ret = JobReturn {
            jid: job.jid,
            minion: self.id.clone(),
            fun: job.fun,
            success,
            retcode: if success { 0 } else { 1 },
            data,
            started_ms: started,
            ended_ms: now_ms(),
        };
        if let Some(sent) = self.deliver(link, ret).await
            && sent.data.is_object()
        {
            self.facts = Some(sent.data);
        }
    }

    /// Sends a return until the master acknowledges it or refuses it for
    /// good, as the real minion does (the same [`Delivery`]); when the
    /// session ends first, it is kept for the next one. The return comes
    /// back once acknowledged.
    async fn deliver(&mut self, link: &Link, ret: JobReturn) -> Option<JobReturn> {
        let mut delivery = Delivery::new(clock(), &self.timing);
        let body = RequestBody::Return(ret);
        let keep = |undelivered: &mut Vec<JobReturn>, body: RequestBody| {
            if let RequestBody::Return(ret) = body {
                undelivered.push(ret);
            }
        };
        loop {
            let sent = match link.request_ref(&body, false).await {
                Ok(r) if matches!(r.body, ReplyBody::Ack { .. }) => Sent::Acked,
                Ok(_) => Sent::Failed,
                Err(minion::error::MinionError::Refused { kind, .. }) => Sent::Refused(kind),
                Err(_) if link.broken.is_cancelled() => Sent::LinkGone,
                Err(_) => Sent::Failed,
            };
            let wait = match delivery.after(sent, clock(), &self.timing, jitter()) {
                Next::Done => {
                    self.stats.returns.fetch_add(1, Ordering::Relaxed);
                    return match body {
                        RequestBody::Return(ret) => Some(ret),
                        _ => None,
                    };
                }
                Next::Drop | Next::GiveUp | Next::ReplaceWithError => return None,
                Next::Keep => {
                    keep(&mut self.undelivered, body);
                    return None;
                }
                Next::RetryAfter(wait) => wait,
            };
            tokio::select! {
                _ = link.broken.cancelled() => {
                    keep(&mut self.undelivered, body);
                    return None;
                }
                _ = tokio::time::sleep(Duration::from_secs_f64(wait)) => {}
            }
        }
    }

    /// Asks for the jobs the master published while they were missed, and
    /// runs those for this minion.
    async fn fetch_missed(&mut self, link: &Link) {
        if let Ok(r) = link
            .request(RequestBody::MissedJobs(MissedJobs {}), false)
            .await
            && let ReplyBody::Jobs { jobs } = r.body
        {
            for env in jobs {
                if let Some(job) = self.job_of(&env) {
                    self.run_job(link, job).await;
                }
            }
        }
    }

    /// Asks for the session key after `delay` (taking it when newer than
    /// `epoch`), then fetches the jobs missed meanwhile; false when the
    /// session must end.
    async fn rekey(
        &mut self,
        link: &Link,
        delay: f64,
        epoch: &mut u64,
        key: &mut SymmetricKey,
    ) -> bool {
        tokio::time::sleep(Duration::from_secs_f64(delay)).await;
        match self.authenticate(link).await {
            Authed::Yes(e, k) if e > *epoch => {
                *epoch = e;
                *key = k;
            }
            Authed::Yes(..) => {}
            Authed::Retry => return false,
        }
        self.fetch_missed(link).await;
        true
    }

    /// One session, until it ends; true when it got as far as accepted.
    async fn session(&mut self, cancel: &CancellationToken) -> bool {
        let timeout = Duration::from_secs_f64(self.cfg.request_timeout);
        let req_ep = format!("tcp://{}:{}", self.cfg.master, self.cfg.ret_port);
        let pub_ep = format!("tcp://{}:{}", self.cfg.master, self.cfg.publish_port);
        let Ok(link) = Link::connect(
            &req_ep,
            self.id.as_str(),
            self.key.clone(),
            ReplyKeys::batched(self.master_key.clone(), self.replies.clone()),
            self.channel.clone(),
            timeout,
            protocol::MAX_FRAME_DEFAULT,
        )
        .await
        else {
            return false;
        };
        let Ok(mut sub) = transport::subscribe(
            &pub_ep,
            self.id.as_str(),
            timeout,
            protocol::MAX_FRAME_DEFAULT,
        )
        .await
        else {
            return false;
        };
        let Authed::Yes(mut epoch, mut key) = self.authenticate(&link).await else {
            return false;
        };
        self.stats.online.fetch_add(1, Ordering::Relaxed);
        let _online = OnlineGuard(self.stats.clone());
        if !self.ever_online {
            self.ever_online = true;
            self.stats.ever.fetch_add(1, Ordering::Relaxed);
        }
        for ret in std::mem::take(&mut self.undelivered) {
            self.deliver(&link, ret).await;
        }
        self.fetch_missed(&link).await;
        let timing = self.timing.clone();
        let mut session = Session::new(clock());
        let mut next_beat = tokio::time::Instant::now()
            + Duration::from_secs_f64(session.first_heartbeat(&timing, jitter()));
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return true,
                _ = link.broken.cancelled() => return true,
                r = transport::next_publish(&mut sub) => {
                    let frame = match r {
                        Ok(transport::Published::Job(frame)) => frame,
                        Ok(transport::Published::Key(frame)) => {
                            let mk = *self.master_key.read().unwrap_or_else(|p| p.into_inner());
                            if let Some(mk) = mk
                                && let Ok((e, k)) = transport::open_handover(
                                    &frame,
                                    &mk,
                                    &self.key,
                                    self.id.as_str(),
                                    protocol::MAX_FRAME_DEFAULT,
                                )
                                && e > epoch
                            {
                                epoch = e;
                                key = k;
                                self.stats.handovers.fetch_add(1, Ordering::Relaxed);
                            }
                            continue;
                        }
                        Err(_) => return true,
                    };
                    let Ok(sealed) = Sealed::from_bytes(&frame, protocol::MAX_FRAME_DEFAULT) else { continue };
                    match machine::publish(sealed.key_id, epoch, &timing, jitter()) {
                        machine::Publish::Open => {}
                        machine::Publish::Drop => continue,
                        machine::Publish::Rekey(delay) => {
                            // As a real minion: the publish is dropped, the
                            // key asked for after a while, and the job
                            // fetched as missed.
                            self.stats.late_keys.fetch_add(1, Ordering::Relaxed);
                            if !self.rekey(&link, delay, &mut epoch, &mut key).await {
                                return true;
                            }
                            continue;
                        }
                    }
                    let Ok(inner) = sealed.open(&key, minion::session::PUBLISH_AAD) else { continue };
                    if let Some(job) = self.job_of(&inner) {
                        self.run_job(&link, job).await;
                    }
                }
                _ = tokio::time::sleep_until(next_beat) => {
                    let beat = match link.request(RequestBody::Heartbeat(Heartbeat { running: vec![] }), false).await {
                        Ok(r) => match r.body {
                            ReplyBody::Heartbeat(h) => Beat::Answer {
                                boot_id: h.boot_id,
                                session_epoch: h.session_epoch,
                                unseen_jobs: h.pending.iter().any(|j| !self.seen.contains(j)),
                            },
                            _ => Beat::Failed,
                        },
                        Err(minion::error::MinionError::Refused { kind: ErrorKind::NotAccepted, .. }) => Beat::NotAccepted,
                        Err(_) => Beat::Failed,
                    };
                    let steps = session.heartbeat(beat, epoch, &timing, jitter());
                    next_beat = tokio::time::Instant::now()
                        + Duration::from_secs_f64(session.next_heartbeat(clock(), &timing));
                    for step in steps {
                        match step {
                            Step::Continue => {}
                            Step::FetchMissed => self.fetch_missed(&link).await,
                            Step::Rekey(delay) => {
                                if !self.rekey(&link, delay, &mut epoch, &mut key).await {
                                    return true;
                                }
                            }
                            Step::Reconnect(_) => return true,
                        }
                    }
                }
            }
        }
    }
}

struct OnlineGuard(Arc<Stats>);

impl Drop for OnlineGuard {
    fn drop(&mut self) {
        self.0.online.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs the swarm until `cancel` is set.
pub async fn run(cfg: SwarmConfig, stats: Arc<Stats>, cancel: CancellationToken) {
    let timing = Arc::new(cfg.timing());
    let cfg = Arc::new(cfg);
    let jobs: JobCache = Arc::default();
    let replies = BatchVerifier::start();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..cfg.count {
        let at = started + Duration::from_secs_f64(n as f64 / cfg.connect_per_sec);
        let (cfg, stats, cancel, jobs) = (cfg.clone(), stats.clone(), cancel.clone(), jobs.clone());
        let (timing, replies) = (timing.clone(), replies.clone());
        tasks.spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            let Ok(id) = MinionId::new(format!("{}{n:05}", cfg.prefix)) else {
                return;
            };
            let Ok(key) = keys::generate() else { return };
            let mut sim = Sim {
                jobs,
                n,
                id,
                key,
                master_key: Arc::new(RwLock::new(None)),
                replies,
                channel: Arc::new(RwLock::new(None)),
                cfg: cfg.clone(),
                timing: timing.clone(),
                stats: stats.clone(),
                round: 0,
                seen: VecDeque::new(),
                ever_online: false,
                undelivered: Vec::new(),
                facts: None,
            };
            let mut reconnect = Reconnect::default();
            while !cancel.is_cancelled() {
                let established = sim.session(&cancel).await;
                reconnect.ended(established);
                if cancel.is_cancelled() {
                    break;
                }
                stats.reconnects.fetch_add(1, Ordering::Relaxed);
                let pause = reconnect.delay(&timing, jitter());
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs_f64(pause)) => {}
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}
