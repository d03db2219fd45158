//! Running a job and delivering its return until the master acknowledges it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::{ErrorKind, Jid, Job, JobReturn, ReplyBody, RequestBody};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

use crate::error::MinionError;
use crate::machine::{Delivery, Next, Sent};
use crate::modules::{self, CallContext, Outcome};
use crate::session::{Minion, clock, jitter};
use crate::transport::now_ms;

/// After this long a running job is reported in a heartbeat, so that the
/// master's gather wait knows it is still running.
const REPORT_RUNNING_AFTER: Duration = Duration::from_secs(2);

/// Exit code of a job killed on request (128 + SIGKILL), as a shell shows it.
pub const KILLED: i32 = 137;

struct RunningJob {
    jid: Jid,
    fun: String,
    started_ms: i64,
    kill: CancellationToken,
}

/// The jobs running on this minion, each with a handle that kills it.
#[derive(Default)]
pub struct RunningJobs(Mutex<Vec<RunningJob>>);

impl RunningJobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RunningJob>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a started job; the token fires when it is to be killed.
    pub fn start(&self, jid: Jid, fun: &str, started_ms: i64) -> CancellationToken {
        let kill = CancellationToken::new();
        self.lock().push(RunningJob {
            jid,
            fun: fun.to_owned(),
            started_ms,
            kill: kill.clone(),
        });
        kill
    }

    /// Forgets a finished job.
    pub fn finish(&self, jid: &Jid) {
        self.lock().retain(|j| j.jid != *jid);
    }

    /// The running jobs' ids.
    pub fn jids(&self) -> Vec<Jid> {
        self.lock().iter().map(|j| j.jid.clone()).collect()
    }

    /// `(jid, function, started_ms)` of each running job.
    pub fn list(&self) -> Vec<(Jid, String, i64)> {
        self.lock()
            .iter()
            .map(|j| (j.jid.clone(), j.fun.clone(), j.started_ms))
            .collect()
    }

    /// Kills the job `jid`; false when it is not running here.
    pub fn kill(&self, jid: &Jid) -> bool {
        let jobs = self.lock();
        let Some(job) = jobs.iter().find(|j| j.jid == *jid) else {
            return false;
        };
        job.kill.cancel();
        true
    }
}

/// Collects facts every `collect_interval` seconds (±10 %) and pushes them
/// to the master, until shutdown. The first push comes after a random part
/// of the interval (at most five minutes) so that a fleet starting together
/// does not push together.
pub async fn agent_push(m: Arc<Minion>) {
    let interval = m.cfg.collect_interval as f64;
    if interval <= 0.0 {
        return;
    }
    let mut jids = protocol::JidGenerator::new();
    let mut wait = interval.min(300.0) * jitter();
    loop {
        tokio::select! {
            _ = m.cancel.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs_f64(wait)) => {}
        }
        wait = interval * (0.9 + 0.2 * jitter());
        if m.link().is_none() {
            continue;
        }
        let started = now_ms();
        let facts = m.collect_now().await;
        let ret = JobReturn {
            jid: jids.next(started * 1000),
            minion: m.ident.id.clone(),
            fun: "collect".into(),
            success: true,
            retcode: 0,
            data: facts,
            started_ms: started,
            ended_ms: now_ms(),
        };
        deliver(&m, ret, true).await;
    }
}

/// Starts `job` on the minion's task tracker.
pub fn spawn(m: Arc<Minion>, job: Job) {
    let span = info_span!("job", jid = %job.jid, fun = %job.fun);
    let tracker = m.tasks.clone();
    tracker.spawn(run(m, job).instrument(span));
}

async fn run(m: Arc<Minion>, job: Job) {
    let Ok(_permit) = m.slots.clone().acquire_owned().await else {
        return;
    };
    let started = now_ms();
    let kill = m.running.start(job.jid.clone(), &job.fun, started);
    let timeout = Duration::from_secs(job.timeout_secs.max(1));
    let ctx = CallContext {
        id: m.ident.id.to_string(),
        collect: m.cfg.collect_settings(),
        minion: Some(m.clone()),
        timeout,
        state_dir: m.cfg.state_dir.clone(),
        file_roots: Vec::new(),
    };
    info!("running job");
    let mut call = Box::pin(tokio::time::timeout(
        timeout,
        modules::call(&job.fun, &job.args, &job.kwargs, &ctx),
    ));
    // Dropping the call on a kill drops its child processes' guards,
    // which kill their process groups.
    let killed = || Outcome::fail("the job was killed", KILLED);
    let outcome = tokio::select! {
        r = &mut call => r,
        _ = kill.cancelled() => Ok(killed()),
        _ = tokio::time::sleep(REPORT_RUNNING_AFTER) => {
            let _ = m.heartbeat().await;
            tokio::select! {
                r = &mut call => r,
                _ = kill.cancelled() => Ok(killed()),
            }
        }
    };
    drop(call);
    let outcome = outcome.unwrap_or_else(|_| {
        Outcome::fail(format!("job timed out after {} s", timeout.as_secs()), 124)
    });
    if outcome.retcode == KILLED && kill.is_cancelled() {
        info!("job killed on request");
    }
    m.running.finish(&job.jid);
    let ret = JobReturn {
        jid: job.jid.clone(),
        minion: m.ident.id.clone(),
        fun: job.fun.clone(),
        success: outcome.success,
        retcode: outcome.retcode,
        data: outcome.data,
        started_ms: started,
        ended_ms: now_ms(),
    };
    deliver(&m, ret, false).await;
}

/// The error return sent in place of `ret`, which is too large: `why`
/// names its size and the limit.
fn too_large(ret: &JobReturn, why: String) -> JobReturn {
    JobReturn {
        data: serde_json::Value::String(why),
        success: false,
        retcode: if ret.retcode == 0 { 1 } else { ret.retcode },
        ..ret.clone()
    }
}

/// Sends a return once: in one request, or in parts of
/// [`protocol::RETURN_CHUNK_BYTES`] when it is larger (the last part is
/// answered as the whole return). Any failure starts it over next time.
async fn send_once(
    m: &Minion,
    ret: &JobReturn,
    encoded: &[u8],
    push: bool,
) -> Result<ReplyBody, MinionError> {
    let link = m
        .link()
        .ok_or_else(|| MinionError::Unreachable("not connected".into()))?;
    if encoded.len() <= protocol::RETURN_CHUNK_BYTES {
        let body = if push {
            RequestBody::Push(ret.clone())
        } else {
            RequestBody::Return(ret.clone())
        };
        return link.request(body, false).await.map(|r| r.body);
    }
    let total = encoded.len() as u64;
    let mut offset = 0usize;
    loop {
        let end = (offset + protocol::RETURN_CHUNK_BYTES).min(encoded.len());
        let body = RequestBody::ReturnChunk(protocol::ReturnChunk {
            jid: ret.jid.clone(),
            offset: offset as u64,
            total,
            data: encoded[offset..end].to_vec(),
            push,
        });
        let reply = link.request(body, false).await?.body;
        match reply {
            ReplyBody::ChunkStored { received } if end < encoded.len() => {
                if received != end as u64 {
                    return Err(MinionError::Unreachable(format!(
                        "the master holds {received} bytes of the return, {end} were sent"
                    )));
                }
                offset = end;
            }
            other => return Ok(other),
        }
    }
}

/// Sends a return (or, with `push`, self-collected facts) until the master
/// acknowledges it, with capped backoff. Until then it is kept in the
/// outbox, so a minion stopped before the acknowledgement delivers it when
/// it starts again. A return over `max_return_bytes` (the minion's, or the
/// master's when it refuses one) is replaced by an error naming its size.
/// The first failed try is a warning; after `return_retry_secs` the return
/// is dropped with an error.
pub async fn deliver(m: &Minion, ret: JobReturn, push: bool) {
    let mut ret = ret;
    let mut encoded = protocol::envelope::encode_message(&ret).unwrap_or_default();
    if encoded.len() as u64 > m.cfg.max_return_bytes {
        warn!(jid = %ret.jid, bytes = encoded.len(), "return over max_return_bytes; sending an error in its place");
        let why = format!(
            "the return of {} bytes is over max_return_bytes ({} bytes) and was not sent",
            encoded.len(),
            m.cfg.max_return_bytes
        );
        ret = too_large(&ret, why);
        encoded = protocol::envelope::encode_message(&ret).unwrap_or_default();
    }
    let mut entry = crate::outbox::Entry {
        ret: ret.clone(),
        push,
    };
    if !m.outbox.keep(&entry) {
        return;
    }
    let timing = m.cfg.timing();
    let mut delivery = Delivery::new(clock(), &timing);
    loop {
        let sent = match send_once(m, &ret, &encoded, push).await {
            Ok(ReplyBody::Ack { jid }) if jid == ret.jid => Sent::Acked,
            Ok(other) => {
                warn!(reply = ?other, "unexpected answer to a return");
                Sent::Failed
            }
            Err(MinionError::Refused {
                kind: ErrorKind::TooLarge,
                message,
            }) => {
                warn!(jid = %ret.jid, reason = %message, "the master refused a return as too large; sending an error in its place");
                let why = format!(
                    "the return of {} bytes was not sent: the master refused it ({message})",
                    encoded.len()
                );
                ret = too_large(&ret, why);
                Sent::TooLarge
            }
            Err(MinionError::Refused { kind, message }) => {
                if delivery.failures() == 0 {
                    warn!(?kind, message = %message, "the master refused the return");
                } else {
                    debug!(?kind, message = %message, "the master refused the return again");
                }
                Sent::Refused(kind)
            }
            Err(e) if delivery.failures() == 0 => {
                warn!(jid = %ret.jid, error = %e, "return not delivered; retrying");
                Sent::Failed
            }
            Err(e) => {
                debug!(error = %e, "return not delivered yet");
                Sent::Failed
            }
        };
        let wait = match delivery.after(sent, clock(), &timing, jitter()) {
            Next::Done => {
                info!(success = ret.success, "return acknowledged");
                m.outbox.done(&ret.jid);
                return;
            }
            Next::ReplaceWithError => {
                encoded = protocol::envelope::encode_message(&ret).unwrap_or_default();
                entry.ret = ret.clone();
                m.outbox.write(&entry);
                continue;
            }
            Next::Drop => {
                warn!(jid = %ret.jid, "dropping a return the master refused");
                m.outbox.done(&ret.jid);
                return;
            }
            Next::GiveUp => {
                error!(
                    jid = %ret.jid,
                    tries = delivery.failures(),
                    secs = m.cfg.return_retry_secs,
                    "giving up on a return the master did not take (return_retry_secs)"
                );
                m.outbox.done(&ret.jid);
                return;
            }
            Next::RetryAfter(wait) => wait,
            // Not asked for here: a minion's tries go on across sessions
            // (its link comes back on its own).
            Next::Keep => timing.retry_first,
        };
        tokio::select! {
            _ = m.cancel.cancelled() => {
                warn!(jid = %ret.jid, "shutting down with an undelivered return; it stays in the outbox");
                m.outbox.release(&ret.jid);
                return;
            }
            _ = tokio::time::sleep(Duration::from_secs_f64(wait)) => {}
        }
    }
}
