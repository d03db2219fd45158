//! The SSH service: jobs over SSH on the hosts of the roster. A job is
//! recorded in the job cache like a published one (transport `ssh`); each
//! host's result is stored as its return, a collect updating the host's
//! asset as a minion's collect would (same facts, history and identity:
//! the roster id is the asset's minion id), recorded with source `ssh`.
//! At most `ssh_max_sessions` sessions run at once over every job; each
//! has its own deadline, so a slow or dead host holds one place only.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use protocol::{Jid, JobReturn, MinionId, Target};
use serde::{Deserialize, Serialize};
use store::access::User;
use store::{JobRecord, Transport};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use super::ServiceError;
use crate::config::MasterConfig;
use crate::server::{Shared, now_ms};
use crate::ssh::roster::{Host, Roster};
use crate::ssh::session::{self, Call, Outcome, Settings};
use crate::ssh::{SshError, known_hosts};

/// A job to run over SSH.
#[derive(Debug, Clone)]
pub struct NewSshJob {
    /// Target over roster ids (glob, list or regex).
    pub target: Target,
    /// Function.
    pub fun: String,
    /// Positional arguments.
    pub args: Vec<String>,
    /// Keyword arguments (none are taken).
    pub kwargs: BTreeMap<String, String>,
    /// Who asks.
    pub user: String,
    /// Seconds each host's session may take, over the roster's.
    pub timeout: Option<u64>,
}

/// A job started over SSH.
#[derive(Debug)]
pub struct SshStarted {
    /// Its id.
    pub jid: Jid,
    /// Roster ids it runs on (each will return).
    pub expected: BTreeSet<String>,
    /// Roster entries matched that it cannot run on, with why.
    pub refused: BTreeMap<String, String>,
    /// The task running it; ends when every host has returned.
    pub done: JoinHandle<()>,
}

/// The answer to re-pinning a host's key.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HostKeyPinned {
    /// The roster id.
    pub id: String,
    /// The host as known_hosts names it.
    pub host: String,
    /// Fingerprints of the keys forgotten.
    pub previous: Vec<String>,
    /// Fingerprint of the key pinned now.
    pub fingerprint: String,
}

/// Jobs over SSH.
pub struct SshService {
    /// How sessions are opened.
    settings: Arc<Settings>,
    /// The roster file, read by every job.
    roster: PathBuf,
    /// The places of the session pool (`ssh_max_sessions`).
    sessions: Arc<Semaphore>,
    /// One re-pinning at a time.
    repin: tokio::sync::Mutex<()>,
}

impl SshService {
    /// A service under `cfg`.
    pub fn new(cfg: &MasterConfig) -> SshService {
        SshService {
            settings: Arc::new(Settings {
                program: cfg.ssh.ssh_program.clone(),
                config_file: cfg.ssh.ssh_config.clone(),
                known_hosts: cfg.ssh_known_hosts(),
                default_key: cfg.ssh.private_key.clone(),
                default_timeout: cfg.ssh.timeout,
                allow_passwords: cfg.ssh.allow_passwords,
                askpass: std::env::current_exe().ok(),
            }),
            roster: cfg.roster.clone(),
            sessions: Arc::new(Semaphore::new(cfg.ssh_max_sessions)),
            repin: tokio::sync::Mutex::new(()),
        }
    }

    fn roster(&self) -> Result<Roster, ServiceError> {
        Roster::load(&self.roster).map_err(|e| ServiceError::Conflict(e.to_string()))
    }

    /// Starts `new` on the roster entries its target selects. With `acl`,
    /// a job whose function or any selected id the user may not use is
    /// refused whole, before any session opens.
    pub fn start(
        &self,
        shared: &Arc<Shared>,
        new: NewSshJob,
        acl: Option<&User>,
        cancel: &CancellationToken,
    ) -> Result<SshStarted, ServiceError> {
        let call =
            Call::parse(&new.fun, &new.args, &new.kwargs).map_err(ServiceError::Unprocessable)?;
        if !matches!(
            new.target,
            Target::Glob(_) | Target::List(_) | Target::Regex(_)
        ) {
            return Err(ServiceError::Unprocessable(
                "targets over SSH are globs, lists (-L) or regular expressions (-E) of roster ids"
                    .into(),
            ));
        }
        let matcher = new
            .target
            .matcher()
            .map_err(|e| ServiceError::Invalid(format!("target: {e}")))?;
        let roster = self.roster()?;
        let matched: Vec<(String, Result<Host, SshError>)> = roster
            .entries
            .into_iter()
            .filter(|(id, _)| matcher.matches(id, None))
            .collect();
        if let Some(user) = acl {
            if !user.may_run(&new.fun) {
                return Err(ServiceError::Forbidden(format!(
                    "user {} may not run {}",
                    user.name, new.fun
                )));
            }
            let outside: Vec<&str> = matched
                .iter()
                .map(|(id, _)| id.as_str())
                .filter(|id| !user.may_target(id))
                .take(10)
                .collect();
            if !outside.is_empty() {
                return Err(ServiceError::Forbidden(format!(
                    "user {} may not target {}; nothing was run",
                    user.name,
                    outside.join(", ")
                )));
            }
        }
        let mut refused = BTreeMap::new();
        let mut hosts = Vec::new();
        for (id, host) in matched {
            match MinionId::new(id.as_str()) {
                Ok(mid) => hosts.push((mid, host)),
                Err(_) => {
                    let why = host.err().map(|e| e.to_string()).unwrap_or_default();
                    refused.insert(id, why);
                }
            }
        }
        let expected: BTreeSet<String> = hosts.iter().map(|(m, _)| m.to_string()).collect();
        let jid = shared.jobs.next_jid();
        let record = JobRecord {
            jid: jid.clone(),
            target: new.target,
            fun: new.fun.clone(),
            args: new.args,
            kwargs: new.kwargs,
            expected: expected.iter().cloned().collect(),
            user: new.user,
            started_ms: now_ms(),
            transport: Transport::Ssh,
            refused: refused.clone(),
        };
        shared.store.put_job(&record)?;
        let cfg = &shared.cfg;
        let tracker = shared.jobs.tracker();
        tracker.register(
            jid.clone(),
            Bytes::new(),
            expected.clone(),
            Duration::from_secs(cfg.job_live_secs.max(cfg.job_timeout)),
            false,
        );
        // Open until every host returned: followers wait for it, and
        // `jobs kill` stops it. Nothing is ever sent to a minion.
        let stop = cancel.child_token();
        tracker.start_batch(&jid, stop.clone());
        shared
            .events
            .emit(|| format!("cmdb/job/{jid}/new"), &record);
        info!(jid = %jid, fun = %new.fun, hosts = expected.len(), refused = refused.len(), "started a job over SSH");
        let span = info_span!("ssh_job", jid = %jid, fun = %new.fun);
        let done = tokio::spawn(
            drive(
                shared.clone(),
                self.settings.clone(),
                self.sessions.clone(),
                jid.clone(),
                new.fun,
                call,
                hosts,
                new.timeout,
                stop,
            )
            .instrument(span),
        );
        Ok(SshStarted {
            jid,
            expected,
            refused,
            done,
        })
    }

    /// Forgets the key pinned for roster entry `id` and pins the one it
    /// offers now (the next connection records it).
    pub async fn accept_new_hostkey(
        &self,
        id: &str,
        acl: Option<&User>,
    ) -> Result<HostKeyPinned, ServiceError> {
        let roster = self.roster()?;
        let host = match roster.entries.get(id) {
            Some(Ok(h)) => h.clone(),
            Some(Err(e)) => return Err(ServiceError::Conflict(e.to_string())),
            None => return Err(ServiceError::NotFound(format!("no roster entry {id}"))),
        };
        if let Some(user) = acl
            && !user.may_target(id)
        {
            return Err(ServiceError::Forbidden(format!(
                "user {} may not target {id}",
                user.name
            )));
        }
        let _one = self.repin.lock().await;
        let name = host.known_hosts_name();
        let path = self.settings.known_hosts.clone();
        let forget_path = path.clone();
        let forget_name = name.clone();
        let previous =
            tokio::task::spawn_blocking(move || known_hosts::forget(&forget_path, &forget_name))
                .await
                .map_err(|e| ServiceError::Internal(e.to_string()))?
                .map_err(|e| ServiceError::Internal(format!("{}: {e}", path.display())))?;
        let _permit = self
            .sessions
            .acquire()
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let out = session::run(&self.settings, &host, &Call::Ping, None).await;
        let Some(fingerprint) = known_hosts::pinned(&path, &name, None) else {
            let why = out.data.as_str().unwrap_or("no key was offered").to_owned();
            return Err(ServiceError::Unavailable(format!(
                "{id}: {why}; no key is pinned for {name} now"
            )));
        };
        info!(id, host = %name, fingerprint = %fingerprint, previous = ?previous, "pinned a new SSH host key");
        Ok(HostKeyPinned {
            id: id.to_owned(),
            host: name,
            previous,
            fingerprint,
        })
    }
}

/// Runs the job on every host, a place of the session pool each, and
/// stores each result as it comes.
#[allow(clippy::too_many_arguments)]
async fn drive(
    shared: Arc<Shared>,
    settings: Arc<Settings>,
    sessions: Arc<Semaphore>,
    jid: Jid,
    fun: String,
    call: Call,
    hosts: Vec<(MinionId, Result<Host, SshError>)>,
    timeout: Option<u64>,
    stop: CancellationToken,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for (id, host) in hosts {
        let (shared, settings, sessions, stop) = (
            shared.clone(),
            settings.clone(),
            sessions.clone(),
            stop.clone(),
        );
        let (jid, fun, call) = (jid.clone(), fun.clone(), call.clone());
        let span = info_span!("ssh_host", minion_id = %id);
        tasks.spawn(
            async move {
                let started_ms = now_ms();
                let outcome = match host {
                    Err(e) => Outcome::from(e),
                    Ok(host) => {
                        let run = async {
                            let _permit = sessions.acquire_owned().await.ok()?;
                            Some(session::run(&settings, &host, &call, timeout).await)
                        };
                        tokio::select! {
                            o = run => o.unwrap_or_else(|| Outcome::from(SshError::Failed {
                                detail: "the session pool is closed".into(),
                            })),
                            _ = stop.cancelled() => Outcome::from(SshError::Failed {
                                detail: "the job was killed".into(),
                            }),
                        }
                    }
                };
                if !outcome.success {
                    warn!(error = %outcome.data, "host over SSH failed");
                }
                let ret = JobReturn {
                    jid,
                    minion: id,
                    fun,
                    success: outcome.success,
                    retcode: outcome.retcode,
                    data: outcome.data,
                    started_ms,
                    ended_ms: now_ms(),
                };
                store_return(&shared, ret).await;
            }
            .instrument(span),
        );
    }
    while tasks.join_next().await.is_some() {}
    shared.jobs.tracker().close_batch(&jid);
    info!("job over SSH has every host's result");
}

/// Stores a host's result (a collect updates its asset, with source
/// `ssh`), flushes, and tells watchers and the event stream.
async fn store_return(shared: &Arc<Shared>, ret: JobReturn) {
    let store = shared.store.clone();
    let owned = ret.clone();
    let stored = tokio::task::spawn_blocking(move || {
        let outcome = store.put_return_from(&owned, inventory::Source::Ssh, now_ms())?;
        store.flush()?;
        Ok::<_, store::StoreError>(outcome)
    })
    .await;
    match stored {
        Ok(Ok(outcome)) => {
            if matches!(outcome, store::Stored::Asset { version: 0, .. }) {
                shared
                    .relate_pending
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
            let watched = shared.jobs.tracker().watched(&ret.jid);
            let finished = crate::jobs::Finished::of(&ret, watched);
            crate::requests::notify_stored_from(shared, &finished, &outcome, "ssh");
        }
        Ok(Err(e)) => {
            warn!(jid = %ret.jid, minion_id = %ret.minion, error = %e, "could not store a result over SSH")
        }
        Err(e) => warn!(jid = %ret.jid, error = %e, "storing a result over SSH failed"),
    }
}

/// Collects the whole roster every `[ssh] collect_interval` seconds (the
/// first at once), one collect at a time, until `cancel`.
pub async fn schedule(shared: Arc<Shared>, cancel: CancellationToken) {
    let every = Duration::from_secs(shared.cfg.ssh.collect_interval.max(1));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let job = NewSshJob {
            target: Target::Glob("*".into()),
            fun: "collect".into(),
            args: Vec::new(),
            kwargs: BTreeMap::new(),
            user: "cmdb-master".into(),
            timeout: None,
        };
        match shared.ssh.start(&shared, job, None, &cancel) {
            Ok(started) => {
                info!(jid = %started.jid, hosts = started.expected.len(), "scheduled collect over SSH");
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = started.done => {}
                }
            }
            Err(e) => warn!(error = %e, "scheduled collect over SSH did not start"),
        }
    }
}
