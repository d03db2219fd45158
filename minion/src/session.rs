//! The minion's life with its master: connect, authenticate (with capped
//! backoff plus jitter while pending), fetch missed jobs, take published
//! jobs, heartbeat, and start over on its own when the master restarts or
//! stops answering.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use keys::VerifyingKey;
use protocol::message::check_fresh;
use protocol::{
    AuthRequest, AuthStatus, Envelope, ErrorKind, Heartbeat, Jid, Job, MissedJobs, Publish,
    ReplyBody, RequestBody,
};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use crate::config::{MasterEndpoints, MinionConfig};
use crate::error::MinionError;
use crate::executor;
use crate::identity::Identity;
use crate::machine;
use crate::transport::{self, ChannelSlot, Link, now_ms};
use protocol::seal::{Sealed, SymmetricKey, channel_key, open_session_key};

/// Associated data bound into every sealed publish.
pub const PUBLISH_AAD: &[u8] = b"cmdb-publish";

/// Job ids already taken, bounded, and kept in a file so that a job
/// replayed after a restart (within `job_max_age`) is still refused.
pub struct SeenJids {
    set: HashSet<Jid>,
    order: VecDeque<Jid>,
    cap: usize,
    file: Option<std::path::PathBuf>,
}

impl SeenJids {
    /// An empty set remembering at most `cap` jids, in memory only.
    pub fn new(cap: usize) -> Self {
        SeenJids {
            set: HashSet::new(),
            order: VecDeque::new(),
            cap,
            file: None,
        }
    }

    /// Loads the jids in `file` younger than `max_age_ms`, rewrites the file
    /// with just those, and appends new jids to it from then on.
    pub fn load(file: std::path::PathBuf, cap: usize, now_ms: i64, max_age_ms: i64) -> Self {
        let mut seen = SeenJids::new(cap);
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for line in text.lines() {
            if let Ok(jid) = Jid::parse(line.trim())
                && jid.micros() / 1000 >= now_ms - max_age_ms
            {
                seen.insert(&jid);
            }
        }
        let kept: String = seen.order.iter().map(|j| format!("{j}\n")).collect();
        if let Err(e) = std::fs::write(&file, kept) {
            warn!(error = %e, path = %file.display(), "cannot write the seen-jobs file");
        }
        seen.file = Some(file);
        seen
    }

    /// Records `jid`; false when it was already there.
    pub fn insert(&mut self, jid: &Jid) -> bool {
        if self.set.contains(jid) {
            return false;
        }
        if self.order.len() >= self.cap
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        self.set.insert(jid.clone());
        self.order.push_back(jid.clone());
        if let Some(file) = &self.file {
            use std::io::Write;
            let appended = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(file)
                .and_then(|mut f| writeln!(f, "{jid}"));
            if let Err(e) = appended {
                warn!(error = %e, "cannot record a seen job");
            }
        }
        true
    }

    /// Whether `jid` was seen.
    pub fn contains(&self, jid: &Jid) -> bool {
        self.set.contains(jid)
    }
}

/// Everything a running minion shares between its session and its jobs.
pub struct Minion {
    /// Settings.
    pub cfg: MinionConfig,
    /// Id and keys.
    pub ident: Identity,
    /// The pinned master key.
    pub master_key: Arc<RwLock<Option<VerifyingKey>>>,
    link: RwLock<Option<Arc<Link>>>,
    seen: Mutex<SeenJids>,
    /// Jobs running now.
    pub running: crate::executor::RunningJobs,
    /// Limits concurrent jobs.
    pub slots: Arc<Semaphore>,
    /// Job tasks, waited for on shutdown.
    pub tasks: TaskTracker,
    /// Cancelled on shutdown.
    pub cancel: CancellationToken,
    /// The channel key shared with the master.
    pub channel: ChannelSlot,
    /// The publish session key and its epoch.
    pub session: RwLock<Option<(u64, SymmetricKey)>>,
    /// Asks the session to fetch a new session key.
    pub rekey: tokio::sync::Notify,
    facts: tokio::sync::Mutex<Option<(tokio::time::Instant, serde_json::Value)>>,
    /// Returns not yet acknowledged, kept on disk.
    pub outbox: crate::outbox::Outbox,
}

/// How long collected facts serve grain matching before they are collected anew.
const FACTS_TTL: Duration = Duration::from_secs(60);

/// A random fraction in [0, 1).
pub fn jitter() -> f64 {
    // Spreads retries only: without random bytes they are not spread,
    // which harms nothing, so this one need not stop the process.
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

impl Minion {
    /// A minion ready to start.
    pub fn new(cfg: MinionConfig, ident: Identity) -> Result<Minion, MinionError> {
        let seen = SeenJids::load(
            cfg.state_dir.join("seen_jobs"),
            100_000,
            now_ms(),
            (cfg.job_max_age as i64 + 60) * 1000,
        );
        Self::with_seen(cfg, ident, seen)
    }

    /// A minion for one call beside the running daemon: it takes no jobs,
    /// so it leaves the daemon's record of seen jobs alone.
    pub fn for_call(cfg: MinionConfig, ident: Identity) -> Result<Minion, MinionError> {
        Self::with_seen(cfg, ident, SeenJids::new(16))
    }

    fn with_seen(
        cfg: MinionConfig,
        ident: Identity,
        seen: SeenJids,
    ) -> Result<Minion, MinionError> {
        let pinned = ident.pinned_master()?;
        let outbox = crate::outbox::Outbox::new(&cfg.state_dir);
        Ok(Minion {
            slots: Arc::new(Semaphore::new(cfg.max_concurrent_jobs)),
            cfg,
            ident,
            master_key: Arc::new(RwLock::new(pinned)),
            link: RwLock::new(None),
            seen: Mutex::new(seen),
            running: crate::executor::RunningJobs::default(),
            tasks: TaskTracker::new(),
            cancel: CancellationToken::new(),
            facts: tokio::sync::Mutex::new(None),
            outbox,
            channel: Arc::new(RwLock::new(None)),
            session: RwLock::new(None),
            rekey: tokio::sync::Notify::new(),
        })
    }

    /// The current connection to the master, if any.
    pub fn link(&self) -> Option<Arc<Link>> {
        self.link.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_link(&self, link: Option<Arc<Link>>) {
        *self.link.write().unwrap_or_else(|p| p.into_inner()) = link;
    }

    /// This host's facts, collected at most [`FACTS_TTL`] ago.
    pub async fn facts(&self) -> serde_json::Value {
        let mut cache = self.facts.lock().await;
        if let Some((at, facts)) = cache.as_ref()
            && at.elapsed() < FACTS_TTL
        {
            return facts.clone();
        }
        let facts = self.collect_now().await;
        *cache = Some((tokio::time::Instant::now(), facts.clone()));
        facts
    }

    /// Collects this host's facts now.
    pub async fn collect_now(&self) -> serde_json::Value {
        let settings = self.cfg.collect_settings();
        serde_json::Value::Object(facts::collect(&settings, self.ident.id.as_str()).await)
    }

    /// Sends a heartbeat with the running jobs.
    pub async fn heartbeat(&self) -> Result<protocol::HeartbeatReply, MinionError> {
        let link = self
            .link()
            .ok_or_else(|| MinionError::Unreachable("not connected".into()))?;
        let running = self.running.jids();
        match link
            .request(RequestBody::Heartbeat(Heartbeat { running }), false)
            .await?
            .body
        {
            ReplyBody::Heartbeat(r) => Ok(r),
            _ => Err(MinionError::Unreachable(
                "unexpected answer to heartbeat".into(),
            )),
        }
    }
}

async fn sleep_or_cancel(m: &Minion, d: Duration) -> bool {
    tokio::select! {
        _ = m.cancel.cancelled() => false,
        _ = tokio::time::sleep(d) => true,
    }
}

/// Seconds on the session clock (monotonic, from the first call).
pub fn clock() -> f64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_secs_f64()
}

/// Runs sessions until cancelled, reconnecting with jitter, and moving on
/// to the next listed master when one cannot be reached.
pub async fn run_sessions(m: Arc<Minion>) {
    let timing = m.cfg.timing();
    let masters = m.cfg.masters();
    let start = if m.cfg.random_master {
        (jitter() * masters.len() as f64) as usize
    } else {
        0
    };
    let mut failover = machine::Failover::new(masters.len(), start);
    let mut reconnect = machine::Reconnect::default();
    loop {
        if m.cancel.is_cancelled() {
            break;
        }
        let master = &masters[failover.current()];
        match connect_and_auth(&m, master).await {
            Ok(sub) => {
                reconnect.ended(true);
                failover.ended(true);
                serve(&m, sub).await;
            }
            Err(e) => {
                warn!(error = %e, %master, "could not connect to the master");
                if failover.ended(false) {
                    info!(master = %masters[failover.current()], "trying the next master");
                    m.set_link(None);
                    continue;
                }
                reconnect.ended(false);
            }
        }
        m.set_link(None);
        if m.cancel.is_cancelled() {
            break;
        }
        if !sleep_or_cancel(&m, secs(reconnect.delay(&timing, jitter()))).await {
            break;
        }
    }
}

/// Connects the request socket to `master`.
async fn open_link(m: &Minion, master: &MasterEndpoints) -> Result<Arc<Link>, MinionError> {
    Ok(Arc::new(
        Link::connect(
            &master.request,
            m.ident.id.as_str(),
            m.ident.key.clone(),
            m.master_key.clone(),
            m.channel.clone(),
            secs(m.cfg.request_timeout),
            m.cfg.max_frame_bytes,
        )
        .await?,
    ))
}

/// For a one-off call (`cmdb-minion call`): connects the request socket
/// only (no jobs are taken) and authenticates once, with the first listed
/// master that answers; the master's file server is then reachable through
/// [`Minion::link`].
pub async fn connect_for_call(m: &Minion) -> Result<(), MinionError> {
    let mut last = None;
    for master in m.cfg.masters() {
        let status = match open_link(m, &master).await {
            Ok(link) => authenticate(m, &link).await.map(|s| (s, link)),
            Err(e) => Err(e),
        };
        match status {
            Ok((AuthStatus::Accepted, link)) => {
                m.set_link(Some(link));
                return Ok(());
            }
            Ok((other, _)) => {
                return Err(MinionError::Refused {
                    kind: ErrorKind::NotAccepted,
                    message: format!(
                        "the master {master} has not accepted this minion's key ({other:?})"
                    ),
                });
            }
            Err(e) => {
                warn!(error = %e, %master, "could not reach the master");
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| MinionError::Unreachable("no master is configured".into())))
}

async fn connect_and_auth(
    m: &Minion,
    master: &MasterEndpoints,
) -> Result<transport::Subscription, MinionError> {
    let timeout = secs(m.cfg.request_timeout);
    let link = open_link(m, master).await?;
    let sub = transport::subscribe(
        &master.publish,
        m.ident.id.as_str(),
        timeout,
        m.cfg.max_frame_bytes,
    )
    .await?;
    let timing = m.cfg.timing();
    let mut wait = machine::AuthWait::new(&timing);
    let mut said_pending = false;
    loop {
        let answer = match authenticate(m, &link).await? {
            AuthStatus::Accepted => machine::AuthAnswer::Accepted,
            AuthStatus::Pending => {
                if !said_pending {
                    info!(minion_id = %m.ident.id, fingerprint = %keys::Fingerprint::of(&m.ident.key.verifying_key()), "key pending acceptance on the master");
                    said_pending = true;
                }
                machine::AuthAnswer::Pending
            }
            AuthStatus::Rejected => {
                warn!(minion_id = %m.ident.id, "the master rejected this minion's key");
                machine::AuthAnswer::Refused
            }
            AuthStatus::Denied => {
                warn!(minion_id = %m.ident.id, "the master holds another key for this id; this key was denied");
                machine::AuthAnswer::Refused
            }
        };
        let Some(delay) = wait.after(answer, &timing, jitter()) else {
            m.set_link(Some(link));
            info!(minion_id = %m.ident.id, %master, "authenticated with the master");
            return Ok(sub);
        };
        if !sleep_or_cancel(m, secs(delay)).await {
            return Err(MinionError::Unreachable("shutting down".into()));
        }
    }
}

/// One auth exchange on `link`. When accepted, pins (or checks) the master
/// key, derives the channel key and opens the session key.
async fn authenticate(m: &Minion, link: &Link) -> Result<AuthStatus, MinionError> {
    let nonce = keys::random::<16>().to_vec();
    let auth = AuthRequest {
        minion: m.ident.id.clone(),
        nonce: nonce.clone(),
    };
    let reply = link.request(RequestBody::Auth(auth), true).await?;
    let ReplyBody::Auth(ans) = reply.body else {
        return Err(MinionError::Unreachable("unexpected answer to auth".into()));
    };
    if ans.nonce != nonce || ans.master_key != reply.master_key.to_bytes() {
        return Err(MinionError::Refused {
            kind: ErrorKind::Replay,
            message: "auth reply does not match the request".into(),
        });
    }
    if ans.status != AuthStatus::Accepted {
        return Ok(ans.status);
    }
    if let Err(e) = m
        .ident
        .check_master(&reply.master_key, m.cfg.master_finger.as_deref())
    {
        error!(error = %e, "refusing a master whose key is not the expected one");
        return Err(e);
    }
    *m.master_key.write().unwrap_or_else(|p| p.into_inner()) = Some(reply.master_key);
    let channel = channel_key(&m.ident.key, &reply.master_key, m.ident.id.as_str())?;
    *m.channel.write().unwrap_or_else(|p| p.into_inner()) = Some(channel);
    let sealed = ans.session.ok_or_else(|| MinionError::Refused {
        kind: ErrorKind::Malformed,
        message: "accepted without a session key".into(),
    })?;
    let key = open_session_key(&m.ident.key, m.ident.id.as_str(), &sealed)?;
    *m.session.write().unwrap_or_else(|p| p.into_inner()) = Some((sealed.epoch, key));
    debug!(epoch = sealed.epoch, "holding the publish session key");
    Ok(AuthStatus::Accepted)
}

/// The epoch of the session key held, 0 when none.
fn epoch(m: &Minion) -> u64 {
    m.session
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map_or(0, |(e, _)| *e)
}

/// Gets the new session key after a rotation, after `delay` (a random
/// part of `rotation_spread`, so that the fleet does not ask at once).
async fn rekey(m: &Arc<Minion>, link: &Link, delay: f64) -> bool {
    let before = epoch(m);
    if !sleep_or_cancel(m, secs(delay)).await {
        return false;
    }
    if epoch(m) > before {
        // The master's hand-over came in the meantime.
        return true;
    }
    match authenticate(m, link).await {
        Ok(AuthStatus::Accepted) => {
            info!(epoch = epoch(m), "picked up the new session key");
            fetch_missed(m).await;
            true
        }
        Ok(status) => {
            warn!(?status, "no longer accepted by the master");
            false
        }
        Err(e) => {
            warn!(error = %e, "could not get the new session key");
            false
        }
    }
}

async fn fetch_missed(m: &Arc<Minion>) {
    let Some(link) = m.link() else { return };
    match link
        .request(RequestBody::MissedJobs(MissedJobs {}), false)
        .await
    {
        Ok(reply) => {
            if let ReplyBody::Jobs { jobs } = reply.body {
                for env in jobs {
                    handle_publish(m, &env).await;
                }
            }
        }
        Err(e) => warn!(error = %e, "could not fetch missed jobs"),
    }
}

async fn serve(m: &Arc<Minion>, mut sub: transport::Subscription) {
    let Some(link) = m.link() else { return };
    fetch_missed(m).await;
    info!(minion_id = %m.ident.id, "minion ready");
    for entry in m.outbox.pending() {
        info!(jid = %entry.ret.jid, "delivering a return kept in the outbox");
        let mm = m.clone();
        m.tasks
            .spawn(async move { crate::executor::deliver(&mm, entry.ret, entry.push).await });
    }
    let timing = m.cfg.timing();
    let mut session = machine::Session::new(clock());
    // The first heartbeat comes soon (see `machine::Session`); early in a
    // session they come at most `early_heartbeat` apart.
    let mut next_beat =
        tokio::time::Instant::now() + secs(session.first_heartbeat(&timing, jitter()));
    loop {
        tokio::select! {
            _ = m.cancel.cancelled() => return,
            _ = link.broken.cancelled() => {
                warn!("lost the connection to the master; reconnecting");
                return;
            }
            _ = m.rekey.notified() => {
                if !rekey(m, &link, timing.rotation_spread * jitter()).await {
                    return;
                }
            }
            r = transport::next_publish(&mut sub) => match r {
                Ok(transport::Published::Job(frame)) => handle_sealed_publish(m, &frame).await,
                Ok(transport::Published::Key(frame)) => take_handed_key(m, &frame),
                Err(e) => {
                    warn!(error = %e, "publish socket failed; reconnecting");
                    return;
                }
            },
            _ = tokio::time::sleep_until(next_beat) => {
                let beat = match m.heartbeat().await {
                    Ok(reply) => {
                        let unseen_jobs = {
                            let seen = m.seen.lock().unwrap_or_else(|p| p.into_inner());
                            reply.pending.iter().any(|j| !seen.contains(j))
                        };
                        machine::Beat::Answer {
                            boot_id: reply.boot_id,
                            session_epoch: reply.session_epoch,
                            unseen_jobs,
                        }
                    }
                    Err(MinionError::Refused { kind: ErrorKind::NotAccepted, .. }) => machine::Beat::NotAccepted,
                    Err(e) => {
                        debug!(error = %e, "heartbeat failed");
                        machine::Beat::Failed
                    }
                };
                let steps = session.heartbeat(beat, epoch(m), &timing, jitter());
                next_beat = tokio::time::Instant::now() + secs(session.next_heartbeat(clock(), &timing));
                for step in steps {
                    match step {
                        machine::Step::Continue => {}
                        machine::Step::FetchMissed => fetch_missed(m).await,
                        machine::Step::Rekey(delay) => {
                            debug!("the session key rotated");
                            if !rekey(m, &link, delay).await {
                                return;
                            }
                        }
                        machine::Step::Reconnect(why) => {
                            match why {
                                machine::Why::MasterRestarted => info!("the master restarted; reconnecting"),
                                machine::Why::MasterSilent => warn!("the master is not answering; reconnecting"),
                                machine::Why::NotAccepted => warn!("the master no longer accepts this minion's key"),
                            }
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// Installs a session key the master handed over on the publish channel,
/// when it is newer than the one held.
fn take_handed_key(m: &Minion, frame: &[u8]) {
    let Some(master) = *m.master_key.read().unwrap_or_else(|p| p.into_inner()) else {
        return;
    };
    match transport::open_handover(
        frame,
        &master,
        &m.ident.key,
        m.ident.id.as_str(),
        m.cfg.max_frame_bytes,
    ) {
        Ok((new, key)) => {
            let mut session = m.session.write().unwrap_or_else(|p| p.into_inner());
            if session.as_ref().is_none_or(|(held, _)| new > *held) {
                *session = Some((new, key));
                info!(
                    epoch = new,
                    "took the new session key handed over by the master"
                );
            }
        }
        Err(e) => warn!(error = %e, "dropped a session key hand-over"),
    }
}

/// Opens a publish sealed with the session key and handles the job in it.
/// A publish under a newer epoch means the key rotated: get the new one.
pub async fn handle_sealed_publish(m: &Arc<Minion>, frame: &[u8]) {
    let sealed = match Sealed::from_bytes(frame, m.cfg.max_frame_bytes) {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "dropped an undecodable publish");
            return;
        }
    };
    let session = m.session.read().unwrap_or_else(|p| p.into_inner()).clone();
    let Some((held, key)) = session else {
        return;
    };
    // The delay before asking is taken when the rekey runs.
    match machine::publish(sealed.key_id, held, &m.cfg.timing(), 0.0) {
        machine::Publish::Open => {}
        machine::Publish::Rekey(_) => {
            debug!(epoch = sealed.key_id, "publish under a newer session key");
            m.rekey.notify_one();
            return;
        }
        machine::Publish::Drop => return,
    }
    match sealed.open(&key, PUBLISH_AAD) {
        Ok(inner) => handle_publish(m, &inner).await,
        Err(e) => warn!(error = %e, "dropped a publish that does not open"),
    }
}

/// Checks a signed job (opened from a publish, or fetched as missed) and
/// starts it when it is for us.
pub async fn handle_publish(m: &Arc<Minion>, frame: &[u8]) {
    match check_job(m, frame).await {
        Ok(Some(job)) => executor::spawn(m.clone(), job),
        Ok(None) => {}
        Err(e) => warn!(error = %e, "dropped a published message"),
    }
}

async fn check_job(m: &Minion, frame: &[u8]) -> Result<Option<Job>, MinionError> {
    let env = Envelope::from_bytes(frame, m.cfg.max_frame_bytes)?;
    let key = m
        .master_key
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .ok_or_else(|| MinionError::Unreachable("no pinned master key".into()))?;
    let Publish::Job(job) = env.open::<Publish>(&key)?;
    check_fresh(job.issued_at_ms, now_ms(), m.cfg.job_max_age as i64 * 1000)?;
    let matcher = job.target.matcher()?;
    let grains = if matcher.uses_grains() && job.expected.is_none() {
        Some(m.facts().await)
    } else {
        None
    };
    if !job.is_for(&matcher, m.ident.id.as_str(), grains.as_ref()) {
        return Ok(None);
    }
    if !m
        .seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(&job.jid)
    {
        info!(jid = %job.jid, "dropped a job already seen");
        return Ok(None);
    }
    Ok(Some(job))
}
