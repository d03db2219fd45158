//! Starting processes: the one place that spawns them. A process runs in
//! its own process group with its arguments as a vector (never pasted into
//! a shell string), optionally as another user, in another directory, with
//! input on stdin, under a timeout; the whole group is killed when it
//! overruns or when the caller stops waiting (the future is dropped).

use std::io::Read;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Why a process could not be run to its end.
#[derive(Debug, Error)]
pub enum ProcessError {
    /// No program was named.
    #[error("the command is empty")]
    Empty,
    /// The program could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for it or reading its output failed.
    #[error("{program}: {source}")]
    Io {
        /// The program.
        program: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// It outlived its timeout; its process group was killed.
    #[error("{program} timed out after {} s and was killed", .after.as_secs_f64())]
    TimedOut {
        /// The program.
        program: String,
        /// The timeout.
        after: Duration,
    },
}

/// Where a process's standard error goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Streams {
    /// Standard output and standard error apart.
    #[default]
    Split,
    /// Both into one pipe, in the order written (standard error is empty).
    Merged,
}

/// A process to start.
#[derive(Debug, Clone, Default)]
pub struct Command {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Working directory, if not the caller's.
    pub cwd: Option<PathBuf>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Run as this uid and gid (supplementary groups dropped).
    pub ids: Option<(u32, u32)>,
    /// Bytes written to its standard input (else it reads /dev/null).
    pub stdin: Option<Vec<u8>>,
    /// How output is captured.
    pub streams: Streams,
    /// Kill it after this long.
    pub timeout: Option<Duration>,
    /// Keep at most this many bytes of each stream (the rest is read and
    /// dropped, and [`Finished::truncated`] says so); `None` keeps all.
    pub max_output: Option<usize>,
}

impl Command {
    /// A command running `argv`.
    pub fn new<I, S>(argv: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Command {
            argv: argv.into_iter().map(Into::into).collect(),
            ..Command::default()
        }
    }

    /// Sets a timeout.
    pub fn timeout(mut self, timeout: Duration) -> Command {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the bytes fed to standard input.
    pub fn stdin(mut self, input: Vec<u8>) -> Command {
        self.stdin = Some(input);
        self
    }

    /// Caps how much of each stream is kept.
    pub fn max_output(mut self, bytes: usize) -> Command {
        self.max_output = Some(bytes);
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Command {
        self.env.push((key.into(), value.into()));
        self
    }

    fn program(&self) -> String {
        self.argv.first().cloned().unwrap_or_default()
    }
}

/// How a process ended and what it printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// Its process id.
    pub pid: u32,
    /// Exit code, 128 + signal number when a signal ended it.
    pub retcode: i32,
    /// Standard output (both streams with [`Streams::Merged`]).
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
    /// Whether output beyond [`Command::max_output`] was dropped.
    pub truncated: bool,
}

/// Kills a process group when dropped, unless disarmed.
struct GroupGuard(Option<i32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
}

/// The exit code of `status`: its code, or 128 + the signal that ended it.
pub fn retcode(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// Reads `stream` to its end, keeping at most `max` bytes.
async fn read_capped(
    mut stream: impl AsyncRead + Unpin,
    max: Option<usize>,
) -> std::io::Result<(Vec<u8>, bool)> {
    let mut kept = Vec::new();
    let mut truncated = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok((kept, truncated));
        }
        let room = max.map_or(n, |m| m.saturating_sub(kept.len()).min(n));
        kept.extend_from_slice(&buf[..room]);
        truncated |= room < n;
    }
}

/// Runs `cmd` to its end (or its timeout), killing its process group when
/// it overruns or when the returned future is dropped.
pub async fn run(cmd: Command) -> Result<Finished, ProcessError> {
    let program = cmd.program();
    let timeout = cmd.timeout;
    let work = run_untimed(cmd);
    match timeout {
        Some(after) => match tokio::time::timeout(after, work).await {
            Ok(r) => r,
            Err(_) => Err(ProcessError::TimedOut { program, after }),
        },
        None => work.await,
    }
}

async fn run_untimed(cmd: Command) -> Result<Finished, ProcessError> {
    let program = cmd.program();
    let (prog, args) = cmd.argv.split_first().ok_or(ProcessError::Empty)?;
    let io = |source| ProcessError::Io {
        program: program.clone(),
        source,
    };
    let mut c = tokio::process::Command::new(prog);
    c.args(args).process_group(0).kill_on_drop(true);
    c.stdin(if cmd.stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    if let Some(dir) = &cmd.cwd {
        c.current_dir(dir);
    }
    if let Some((uid, gid)) = cmd.ids {
        c.uid(uid).gid(gid);
    }
    c.envs(cmd.env.iter().map(|(k, v)| (k, v)));
    let merged = match cmd.streams {
        Streams::Merged => {
            let (reader, writer) = std::io::pipe().map_err(io)?;
            let writer2 = writer.try_clone().map_err(io)?;
            c.stdout(writer).stderr(writer2);
            Some(reader)
        }
        Streams::Split => {
            c.stdout(Stdio::piped()).stderr(Stdio::piped());
            None
        }
    };
    let mut child = c.spawn().map_err(|source| ProcessError::Spawn {
        program: program.clone(),
        source,
    })?;
    // The parent's copies of the merged pipe's write ends go with `c`.
    drop(c);
    let pid = child.id().unwrap_or(0);
    let mut guard = GroupGuard(Some(pid as i32));
    if let (Some(mut pipe), Some(input)) = (child.stdin.take(), cmd.stdin) {
        tokio::spawn(async move {
            // A command that does not read its input closes the pipe early.
            let _ = pipe.write_all(&input).await;
        });
    }
    let max = cmd.max_output;
    let finished = match merged {
        Some(mut reader) => {
            let read = tokio::task::spawn_blocking(move || {
                let mut buf = Vec::new();
                match max {
                    Some(m) => {
                        let mut kept = (&mut reader).take(m as u64).read_to_end(&mut buf);
                        let mut rest = Vec::new();
                        let more = reader.read_to_end(&mut rest);
                        kept = kept.and(more.map(|_| 0));
                        kept.map(|_| (buf, !rest.is_empty()))
                    }
                    None => reader.read_to_end(&mut buf).map(|_| (buf, false)),
                }
            });
            let status = child.wait().await.map_err(io)?;
            let (stdout, truncated) = read
                .await
                .map_err(|e| io(std::io::Error::other(e)))?
                .map_err(io)?;
            Finished {
                pid,
                retcode: retcode(status),
                stdout,
                stderr: Vec::new(),
                truncated,
            }
        }
        None => {
            let out = child.stdout.take();
            let err = child.stderr.take();
            let (o, e, status) = tokio::join!(
                async {
                    match out {
                        Some(s) => read_capped(s, max).await,
                        None => Ok((Vec::new(), false)),
                    }
                },
                async {
                    match err {
                        Some(s) => read_capped(s, max).await,
                        None => Ok((Vec::new(), false)),
                    }
                },
                child.wait()
            );
            let status = status.map_err(io)?;
            let (stdout, t1) = o.map_err(io)?;
            let (stderr, t2) = e.map_err(io)?;
            Finished {
                pid,
                retcode: retcode(status),
                stdout,
                stderr,
                truncated: t1 || t2,
            }
        }
    };
    guard.0 = None;
    Ok(finished)
}

/// Runs `cmd` from synchronous code (not from inside an async task): on a
/// runtime of its own, as [`run`] does.
pub fn run_blocking(cmd: Command) -> Result<Finished, ProcessError> {
    let program = cmd.program();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| ProcessError::Io { program, source })?;
    rt.block_on(run(cmd))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        Command::new(["/bin/sh", "-c", script])
    }

    #[tokio::test]
    async fn output_exit_codes_and_input() {
        let out = run(sh("echo out; echo err >&2; exit 3"))
            .await
            .expect("run");
        assert_eq!(out.retcode, 3);
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        let mut merged = sh("echo a; echo b >&2; echo c");
        merged.streams = Streams::Merged;
        let out = run(merged).await.expect("run");
        assert_eq!(out.stdout, b"a\nb\nc\n");
        let out = run(sh("cat").stdin(b"fed".to_vec())).await.expect("run");
        assert_eq!(out.stdout, b"fed");
        let out = run(sh("kill -9 $$")).await.expect("run");
        assert_eq!(out.retcode, 137);
    }

    #[tokio::test]
    async fn a_command_over_its_time_is_killed_with_its_children() {
        let dir = tempfile::tempdir().expect("tmp");
        let pidfile = dir.path().join("pid");
        let script = format!("echo $$ > {}; sleep 30 & sleep 30", pidfile.display());
        let start = std::time::Instant::now();
        let err = run(sh(&script).timeout(Duration::from_millis(300)))
            .await
            .expect_err("timeout");
        assert!(matches!(err, ProcessError::TimedOut { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(5));
        let pgid: i32 = std::fs::read_to_string(&pidfile)
            .expect("pid")
            .trim()
            .parse()
            .expect("number");
        // The background sleep is reparented and reaped by init once killed.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while killpg(Pid::from_raw(pgid), None).is_ok() {
            assert!(std::time::Instant::now() < deadline, "the group lived on");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn output_is_capped() {
        let out = run(sh("head -c 100000 /dev/zero").max_output(1000))
            .await
            .expect("run");
        assert_eq!(out.stdout.len(), 1000);
        assert!(out.truncated);
        let out = run(Command::new(["/no/such/program"])).await;
        assert!(matches!(out, Err(ProcessError::Spawn { .. })));
    }

    #[test]
    fn blocking_callers_get_the_same() {
        let out = run_blocking(sh("printf x")).expect("run");
        assert_eq!(out.stdout, b"x");
    }
}
