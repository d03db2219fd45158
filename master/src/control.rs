//! The local control socket through which `cmdb` talks to the running
//! master: a unix socket (mode 0600, in the state directory) carrying one
//! JSON request line per connection and answered by JSON event lines.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use protocol::{Jid, JobReturn, Target};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as TokioBufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::error::MasterError;
use crate::server::Shared;
use crate::service::ServiceError;
use crate::service::jobs::{JobEvent, NewJob};
use crate::store::JobRecord;

/// Longest request line accepted on the control socket.
const MAX_REQUEST_LINE: usize = 1024 * 1024;

/// What `cmdb` asks the master.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ControlRequest {
    /// Publish a job and (unless `wait` is false) stream its returns.
    Run {
        /// Who should run it.
        target: Target,
        /// Function name.
        fun: String,
        /// Positional arguments.
        args: Vec<String>,
        /// Keyword arguments.
        kwargs: BTreeMap<String, String>,
        /// Seconds to wait for returns before asking who still runs it.
        timeout_secs: u64,
        /// Whether to wait for returns.
        wait: bool,
        /// Who asks.
        user: String,
    },
    /// The newest jobs.
    JobsList {
        /// At most this many.
        limit: usize,
    },
    /// One job and its returns.
    JobsShow {
        /// The job id.
        jid: String,
    },
    /// An inventory request.
    Asset(crate::service::inventory::AssetRequest),
}

/// What the master answers, one per line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ControlEvent {
    /// A job was published.
    Started {
        /// Its id.
        jid: Jid,
        /// The minions expected to return.
        expected: Vec<String>,
    },
    /// A minion returned.
    Return {
        /// The return.
        ret: JobReturn,
    },
    /// The wait is over.
    Done {
        /// Expected minions that did not return.
        missing: Vec<String>,
    },
    /// Answer to `jobs_list`.
    Jobs {
        /// Newest first.
        jobs: Vec<JobRecord>,
    },
    /// Answer to `jobs_show`.
    Job {
        /// The job.
        job: JobRecord,
        /// Its stored returns.
        returns: Vec<JobReturn>,
    },
    /// Answer to an inventory request.
    Value {
        /// The answer.
        value: serde_json::Value,
    },
    /// The request failed.
    Error {
        /// Why.
        message: String,
    },
}

/// Binds the control socket with mode 0600, replacing a stale socket file
/// but refusing to start when another master answers on it.
pub fn bind(path: &Path) -> Result<UnixListener, MasterError> {
    let io = |source| MasterError::Io {
        path: path.to_owned(),
        source,
    };
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(MasterError::Bind {
                addr: path.display().to_string(),
                reason: "another master is running on this control socket".into(),
            });
        }
        std::fs::remove_file(path).map_err(io)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(listener)
}

/// Serves control connections until cancelled.
pub async fn serve(listener: UnixListener, shared: Arc<Shared>, cancel: CancellationToken) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            _ = cancel.cancelled() => break,
            s = listener.accept() => match s {
                Ok((s, _)) => s,
                Err(e) => {
                    warn!(error = %e, "control socket accept failed");
                    continue;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let shared = shared.clone();
        let cancel = cancel.clone();
        conns.spawn(async move {
            if let Err(e) = connection(stream, shared, cancel).await {
                debug!(error = %e, "control connection ended");
            }
        });
    }
    conns.shutdown().await;
}

async fn send(w: &mut tokio::net::unix::OwnedWriteHalf, ev: &ControlEvent) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(ev).map_err(std::io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line).await
}

async fn connection(
    stream: UnixStream,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut reader = TokioBufReader::new(r.take(MAX_REQUEST_LINE as u64));
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let req: ControlRequest = match serde_json::from_str(&line) {
        Ok(r) => r,
        Err(e) => {
            let message = format!("bad control request: {e}");
            return send(&mut w, &ControlEvent::Error { message }).await;
        }
    };
    match req {
        ControlRequest::Run {
            target,
            fun,
            args,
            kwargs,
            timeout_secs,
            wait,
            user,
        } => {
            let new = NewJob {
                target,
                fun,
                args,
                kwargs,
                user,
            };
            run_job(&mut w, &shared, new, timeout_secs, wait, cancel).await
        }
        ControlRequest::JobsList { limit } => {
            let ev = match shared.jobs.list(limit) {
                Ok(jobs) => ControlEvent::Jobs { jobs },
                Err(e) => error_event(e),
            };
            send(&mut w, &ev).await
        }
        ControlRequest::Asset(req) => {
            let ev = match crate::service::inventory::handle(&shared, req).and_then(|answer| {
                serde_json::to_value(answer).map_err(|e| ServiceError::Internal(e.to_string()))
            }) {
                Ok(value) => ControlEvent::Value { value },
                Err(e) => error_event(e),
            };
            send(&mut w, &ev).await
        }
        ControlRequest::JobsShow { jid } => {
            let ev = match shared.jobs.show(&jid) {
                Ok(view) => ControlEvent::Job {
                    job: view.job,
                    returns: view.returns,
                },
                Err(e) => error_event(e),
            };
            send(&mut w, &ev).await
        }
    }
}

fn error_event(e: ServiceError) -> ControlEvent {
    ControlEvent::Error {
        message: e.to_string(),
    }
}

async fn run_job(
    w: &mut tokio::net::unix::OwnedWriteHalf,
    shared: &Shared,
    new: NewJob,
    timeout_secs: u64,
    wait: bool,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let published = match shared.jobs.publish(new, wait).await {
        Ok(p) => p,
        Err(e) => return send(w, &error_event(e)).await,
    };
    send(
        w,
        &ControlEvent::Started {
            jid: published.jid.clone(),
            expected: published.expected.iter().cloned().collect(),
        },
    )
    .await?;
    if !wait {
        return Ok(());
    }
    let mut events = shared.jobs.follow(published, timeout_secs, cancel);
    while let Some(ev) = events.recv().await {
        let ev = match ev {
            JobEvent::Return(ret) => ControlEvent::Return { ret },
            JobEvent::Done { missing } => ControlEvent::Done { missing },
        };
        send(w, &ev).await?;
    }
    Ok(())
}

/// Refuses a control socket owned by anyone but root or the caller: a
/// socket planted by another user could collect every command.
pub fn check_owner(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(path)?.uid();
    let me = nix::unistd::getuid().as_raw();
    if owner != 0 && owner != me {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "refusing control socket {} owned by uid {owner} (neither root nor uid {me})",
                path.display()
            ),
        ));
    }
    Ok(())
}

/// Sends one request to the master's control socket and calls `on_event`
/// for each event line until the master closes the connection.
pub fn request(
    path: &Path,
    req: &ControlRequest,
    mut on_event: impl FnMut(ControlEvent) -> std::io::Result<()>,
) -> std::io::Result<()> {
    check_owner(path)?;
    let mut stream = std::os::unix::net::UnixStream::connect(path)?;
    let mut line = serde_json::to_vec(req).map_err(std::io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    for line in BufReader::new(stream).lines() {
        let line = line?;
        let ev: ControlEvent = serde_json::from_str(&line).map_err(std::io::Error::other)?;
        on_event(ev)?;
    }
    Ok(())
}
