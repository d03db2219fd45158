//! `cmd.run` and `cmd.run_all`: a command string run through `/bin/sh -c`,
//! never pasted into another string. The command runs in its own process
//! group, killed as a whole when it outlives the job's timeout.

use std::collections::BTreeMap;
use std::io::Read;
use std::process::Stdio;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use protocol::text::backslash_escape;
use serde_json::json;
use tokio::process::Command;

use super::{CallContext, Outcome};

/// Kills a process group when dropped, unless disarmed.
struct GroupGuard(Option<i32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.0 {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }
}

struct ShellOutput {
    pid: u32,
    retcode: i32,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

fn command(cmd: &str, kwargs: &BTreeMap<String, String>) -> Command {
    let mut c = Command::new("/bin/sh");
    c.arg("-c").arg(cmd).stdin(Stdio::null()).process_group(0);
    if let Some(cwd) = kwargs.get("cwd") {
        c.current_dir(cwd);
    }
    c
}

fn retcode(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// Runs with stdout and stderr into one pipe, in the order written.
async fn run_merged(cmd: &str, kwargs: &BTreeMap<String, String>) -> std::io::Result<ShellOutput> {
    let (mut reader, writer) = std::io::pipe()?;
    let writer2 = writer.try_clone()?;
    let mut c = command(cmd, kwargs);
    c.stdout(writer).stderr(writer2);
    let mut child = c.spawn()?;
    drop(c);
    let pid = child.id().unwrap_or(0);
    let mut guard = GroupGuard(Some(pid as i32));
    let read = tokio::task::spawn_blocking(move || {
        let mut buf = Vec::new();
        reader.read_to_end(&mut buf).map(|_| buf)
    });
    let status = child.wait().await?;
    guard.0 = None;
    let stdout = read.await.map_err(std::io::Error::other)??;
    Ok(ShellOutput {
        pid,
        retcode: retcode(status),
        stdout,
        stderr: Vec::new(),
    })
}

async fn run_split(cmd: &str, kwargs: &BTreeMap<String, String>) -> std::io::Result<ShellOutput> {
    let mut c = command(cmd, kwargs);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = c.spawn()?;
    let pid = child.id().unwrap_or(0);
    let mut guard = GroupGuard(Some(pid as i32));
    let out = child.wait_with_output().await?;
    guard.0 = None;
    Ok(ShellOutput {
        pid,
        retcode: retcode(out.status),
        stdout: out.stdout,
        stderr: out.stderr,
    })
}

fn text(bytes: &[u8]) -> String {
    backslash_escape(bytes).trim_end().to_owned()
}

/// Runs the single command string in `args` with `exec` under the call's
/// timeout and shapes the result with `shape`.
async fn run_with<F, Fut>(
    args: &[String],
    kwargs: &BTreeMap<String, String>,
    ctx: &CallContext,
    exec: F,
    shape: fn(&ShellOutput) -> serde_json::Value,
) -> Outcome
where
    F: FnOnce(String, BTreeMap<String, String>) -> Fut,
    Fut: std::future::Future<Output = std::io::Result<ShellOutput>>,
{
    let cmd = match args {
        [cmd] => cmd.clone(),
        [] => return Outcome::fail("cmd.run needs a command string", 1),
        _ => {
            return Outcome::fail(
                "cmd.run takes one command string; quote the whole command",
                1,
            );
        }
    };
    match tokio::time::timeout(ctx.timeout, exec(cmd, kwargs.clone())).await {
        Ok(Ok(out)) => Outcome {
            data: shape(&out),
            success: out.retcode == 0,
            retcode: out.retcode,
        },
        Ok(Err(e)) => Outcome::fail(format!("cannot run command: {e}"), 1),
        Err(_) => Outcome::fail(
            format!(
                "command timed out after {} s and was killed",
                ctx.timeout.as_secs()
            ),
            124,
        ),
    }
}

/// `cmd.run CMD`: stdout and stderr merged, as text.
pub async fn run(args: &[String], kwargs: &BTreeMap<String, String>, ctx: &CallContext) -> Outcome {
    run_with(
        args,
        kwargs,
        ctx,
        |c, k| async move { run_merged(&c, &k).await },
        |out| json!(text(&out.stdout)),
    )
    .await
}

/// `cmd.run_all CMD`: `{retcode, stdout, stderr, pid}`.
pub async fn run_all(
    args: &[String],
    kwargs: &BTreeMap<String, String>,
    ctx: &CallContext,
) -> Outcome {
    run_with(
        args,
        kwargs,
        ctx,
        |c, k| async move { run_split(&c, &k).await },
        |out| {
            json!({
                "pid": out.pid,
                "retcode": out.retcode,
                "stdout": text(&out.stdout),
                "stderr": text(&out.stderr),
            })
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ctx(secs: u64) -> CallContext {
        CallContext {
            id: "t".into(),
            collect: crate::collectors::CollectSettings::all(std::path::Path::new("/")),
            minion: None,
            timeout: Duration::from_secs(secs),
        }
    }

    #[tokio::test]
    async fn run_merges_stdout_and_stderr_in_order() {
        let args = vec!["echo out; echo err >&2; echo \"q'uote\"".to_string()];
        let o = run(&args, &BTreeMap::new(), &ctx(10)).await;
        assert_eq!(o.data, json!("out\nerr\nq'uote"));
        assert!(o.success);
    }

    #[tokio::test]
    async fn run_all_separates_streams_and_reports_retcode() {
        let args = vec!["echo out; echo err >&2; exit 3".to_string()];
        let o = run_all(&args, &BTreeMap::new(), &ctx(10)).await;
        assert_eq!(o.data["stdout"], json!("out"));
        assert_eq!(o.data["stderr"], json!("err"));
        assert_eq!(o.data["retcode"], json!(3));
        assert_eq!(o.retcode, 3);
        assert!(!o.success);
    }

    #[tokio::test]
    async fn non_utf8_bytes_are_escaped_not_lost() {
        let args = vec!["printf 'a\\377b'".to_string()];
        let o = run(&args, &BTreeMap::new(), &ctx(10)).await;
        assert_eq!(o.data, json!("a\\xffb"));
    }

    #[tokio::test]
    async fn timeout_kills_the_process_group() {
        let args = vec!["sleep 30 & sleep 30".to_string()];
        let started = std::time::Instant::now();
        let o = run(&args, &BTreeMap::new(), &ctx(1)).await;
        assert_eq!(o.retcode, 124);
        assert!(started.elapsed() < Duration::from_secs(20));
    }
}
