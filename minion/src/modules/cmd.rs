//! `cmd.run`, `cmd.run_all` and `cmd.script`. A command string runs
//! through an explicit shell (`sh -c CMD`) or, with `python_shell=false`,
//! split into words and run without one; it is never pasted into another
//! string. The process runs in its own process group, killed as a whole
//! when it outlives its timeout or the job is killed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use facts::process::{self, Command, Finished, ProcessError, Streams};
use nix::unistd::User;
use protocol::text::backslash_escape;
use serde_json::{Value, json};

use super::{CallContext, Outcome};

/// Who a command runs as.
#[derive(Debug)]
struct RunAs {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

/// A process to start, from a call's arguments.
#[derive(Debug)]
struct Spec {
    argv: Vec<String>,
    cwd: Option<PathBuf>,
    env: Vec<(String, String)>,
    runas: Option<RunAs>,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
}

fn flag(kwargs: &BTreeMap<String, String>, name: &str, default: bool) -> Result<bool, String> {
    match kwargs.get(name).map(|v| v.to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if matches!(v.as_str(), "true" | "yes" | "1") => Ok(true),
        Some(v) if matches!(v.as_str(), "false" | "no" | "0") => Ok(false),
        Some(v) => Err(format!("{name} must be true or false, got {v:?}")),
    }
}

fn parse_env(text: &str) -> Result<Vec<(String, String)>, String> {
    let bad = || format!("env must be a mapping such as '{{LANG: C, DEBUG: 1}}', got {text:?}");
    let map: BTreeMap<String, Value> = serde_saphyr::from_str(text).map_err(|_| bad())?;
    map.into_iter()
        .map(|(k, v)| {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                return Err(format!("env: {k:?} is not a variable name"));
            }
            let v = match v {
                Value::String(s) => s,
                Value::Null => String::new(),
                Value::Bool(_) | Value::Number(_) => v.to_string(),
                Value::Array(_) | Value::Object(_) => {
                    return Err(format!("env: the value of {k} must be a string"));
                }
            };
            Ok((k, v))
        })
        .collect()
}

fn parse_timeout(text: &str, job: Duration) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 => Ok(Duration::from_secs_f64(s).min(job)),
        _ => Err(format!(
            "timeout must be a number of seconds above 0, got {text:?}"
        )),
    }
}

fn lookup_user(name: &str) -> Result<RunAs, String> {
    let user = User::from_name(name)
        .map_err(|e| format!("runas: cannot look up user {name:?}: {e}"))?
        .ok_or_else(|| format!("runas: no user {name:?} on this host"))?;
    let me = nix::unistd::geteuid();
    if !me.is_root() && me != user.uid {
        return Err(format!(
            "runas={name} needs the minion to run as root (it runs as uid {me})"
        ));
    }
    Ok(RunAs {
        name: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
        home: user.dir,
    })
}

impl Spec {
    /// The settings every command function shares: cwd, env, runas,
    /// stdin and timeout (capped by the job's own).
    fn new(
        argv: Vec<String>,
        kwargs: &BTreeMap<String, String>,
        ctx: &CallContext,
    ) -> Result<Spec, String> {
        let cwd = kwargs.get("cwd").map(PathBuf::from);
        if let Some(dir) = &cwd
            && !dir.is_dir()
        {
            return Err(format!("cwd: {} is not a directory", dir.display()));
        }
        Ok(Spec {
            argv,
            cwd,
            env: kwargs
                .get("env")
                .map(|e| parse_env(e))
                .transpose()?
                .unwrap_or_default(),
            runas: kwargs.get("runas").map(|u| lookup_user(u)).transpose()?,
            stdin: kwargs.get("stdin").map(|s| s.clone().into_bytes()),
            timeout: kwargs
                .get("timeout")
                .map(|t| parse_timeout(t, ctx.timeout))
                .transpose()?
                .unwrap_or(ctx.timeout),
        })
    }

    /// A command string for `cmd.run`/`cmd.run_all`: through `shell` (by
    /// default /bin/sh), or split into words with `python_shell=false`.
    fn shell(
        cmd: &str,
        kwargs: &BTreeMap<String, String>,
        ctx: &CallContext,
    ) -> Result<Spec, String> {
        let argv = if flag(kwargs, "python_shell", true)? {
            let shell = kwargs.get("shell").map_or("/bin/sh", String::as_str);
            if !Path::new(shell).is_absolute() || !Path::new(shell).is_file() {
                return Err(format!(
                    "shell: {shell:?} is not an absolute path to a program"
                ));
            }
            vec![shell.to_owned(), "-c".to_owned(), cmd.to_owned()]
        } else {
            let words = shlex::split(cmd)
                .ok_or_else(|| format!("cannot split {cmd:?} into words (unclosed quote?)"))?;
            if words.is_empty() {
                return Err("the command is empty".into());
            }
            words
        };
        Spec::new(argv, kwargs, ctx)
    }

    fn command(self, streams: Streams) -> Command {
        let mut c = Command::new(self.argv);
        c.cwd = self.cwd;
        c.stdin = self.stdin;
        c.streams = streams;
        if let Some(user) = &self.runas {
            // The user's uid and primary group (supplementary groups are
            // dropped), with its HOME, USER and LOGNAME.
            c.ids = Some((user.uid, user.gid));
            c.env.push(("HOME".into(), user.home.display().to_string()));
            c.env.push(("USER".into(), user.name.clone()));
            c.env.push(("LOGNAME".into(), user.name.clone()));
        }
        c.env.extend(self.env);
        c.timeout = Some(self.timeout);
        c
    }
}

fn text(bytes: &[u8]) -> String {
    backslash_escape(bytes).trim_end().to_owned()
}

fn all_of(out: &Finished) -> Value {
    json!({
        "pid": out.pid,
        "retcode": out.retcode,
        "stdout": text(&out.stdout),
        "stderr": text(&out.stderr),
    })
}

/// Runs `spec` with its output captured as `streams` (and killed at its
/// timeout) and shapes the result with `shape`.
async fn run_spec(spec: Spec, streams: Streams, shape: fn(&Finished) -> Value) -> Outcome {
    let program = spec.argv[0].clone();
    match process::run(spec.command(streams)).await {
        Ok(out) => Outcome {
            data: shape(&out),
            success: out.retcode == 0,
            retcode: out.retcode,
        },
        Err(ProcessError::TimedOut { after, .. }) => Outcome::fail(
            format!(
                "command timed out after {} s and was killed",
                after.as_secs_f64()
            ),
            124,
        ),
        Err(ProcessError::Spawn { source, .. } | ProcessError::Io { source, .. }) => {
            Outcome::fail(format!("cannot run {program}: {source}"), 1)
        }
        Err(e) => Outcome::fail(format!("cannot run {program}: {e}"), 1),
    }
}

async fn shell_call(
    args: &[String],
    kwargs: &BTreeMap<String, String>,
    ctx: &CallContext,
    streams: Streams,
    shape: fn(&Finished) -> Value,
) -> Outcome {
    let [cmd] = args else {
        return Outcome::fail(
            "cmd.run takes one command string; quote the whole command",
            1,
        );
    };
    match Spec::shell(cmd, kwargs, ctx) {
        Ok(spec) => run_spec(spec, streams, shape).await,
        Err(e) => Outcome::fail(e, 1),
    }
}

/// `cmd.run CMD`: stdout and stderr merged, as text.
pub async fn run(args: &[String], kwargs: &BTreeMap<String, String>, ctx: &CallContext) -> Outcome {
    shell_call(args, kwargs, ctx, Streams::Merged, |out| {
        json!(text(&out.stdout))
    })
    .await
}

/// `cmd.run_all CMD`: `{retcode, stdout, stderr, pid}`.
pub async fn run_all(
    args: &[String],
    kwargs: &BTreeMap<String, String>,
    ctx: &CallContext,
) -> Outcome {
    shell_call(args, kwargs, ctx, Streams::Split, all_of).await
}

/// The program that runs a script: its `#!` line's interpreter (and its
/// one optional argument), or /bin/sh without one. The script is passed
/// as a file argument, so it needs no execute bit and may sit on a
/// noexec mount.
fn interpreter(script: &[u8]) -> Vec<String> {
    let first = script.split(|b| *b == b'\n').next().unwrap_or_default();
    match first.strip_prefix(b"#!") {
        Some(line) => {
            let line = String::from_utf8_lossy(line);
            let line = line.trim();
            match line.split_once([' ', '\t']) {
                Some((prog, arg)) if !arg.trim().is_empty() => {
                    vec![prog.to_owned(), arg.trim().to_owned()]
                }
                _ if !line.is_empty() => vec![line.to_owned()],
                _ => vec!["/bin/sh".to_owned()],
            }
        }
        None => vec!["/bin/sh".to_owned()],
    }
}

/// A script written for one run, removed when dropped.
struct ScriptFile(PathBuf);

impl Drop for ScriptFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn write_script(data: &[u8], runas: Option<&RunAs>) -> Result<ScriptFile, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).map_err(|e| e.to_string())?;
    let path = std::env::temp_dir().join(format!("cmdb-script-{:016x}", u64::from_le_bytes(b)));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o700)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let file = ScriptFile(path);
    f.write_all(data)
        .map_err(|e| format!("{}: {e}", file.0.display()))?;
    if let Some(user) = runas {
        nix::unistd::chown(
            &file.0,
            Some(nix::unistd::Uid::from_raw(user.uid)),
            Some(nix::unistd::Gid::from_raw(user.gid)),
        )
        .map_err(|e| format!("{}: {e}", file.0.display()))?;
    }
    Ok(file)
}

/// `cmd.script cmdb://path [ARGS]`: fetches the script from the master and
/// runs it with ARGS split into words; `{pid, retcode, stdout, stderr}`.
pub async fn script(
    args: &[String],
    kwargs: &BTreeMap<String, String>,
    ctx: &CallContext,
) -> Outcome {
    let (source, extra) = match args {
        [source] => (source, ""),
        [source, extra] => (source, extra.as_str()),
        _ => return Outcome::fail("cmd.script takes cmdb://path and optional args", 1),
    };
    let Some(extra) = shlex::split(extra) else {
        return Outcome::fail(format!("cannot split args {extra:?} into words"), 1);
    };
    let data = match ctx.fetch_cmdb(source).await {
        Ok(d) => d,
        Err(e) => return Outcome::fail(e, 1),
    };
    let mut spec = match Spec::new(interpreter(&data), kwargs, ctx) {
        Ok(s) => s,
        Err(e) => return Outcome::fail(e, 1),
    };
    let file = match write_script(&data, spec.runas.as_ref()) {
        Ok(f) => f,
        Err(e) => return Outcome::fail(format!("cannot write the script: {e}"), 1),
    };
    spec.argv.push(file.0.display().to_string());
    spec.argv.extend(extra);
    let out = run_spec(spec, Streams::Split, all_of).await;
    drop(file);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ctx(secs: u64) -> CallContext {
        CallContext {
            id: "t".into(),
            collect: facts::CollectSettings::all(std::path::Path::new("/")),
            minion: None,
            timeout: Duration::from_secs(secs),
            state_dir: std::env::temp_dir(),
            file_roots: Vec::new(),
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

    fn kw(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[tokio::test]
    async fn cwd_env_stdin_and_shell_are_honoured() {
        let dir = tempfile::tempdir().expect("dir");
        let kwargs = kw(&[
            ("cwd", dir.path().to_str().expect("utf-8")),
            ("env", "{GREETING: 'hello there', N: 3}"),
            ("stdin", "from stdin"),
            ("shell", "/bin/bash"),
        ]);
        let args =
            vec!["pwd; echo \"$GREETING $N\"; cat; echo; echo ${BASH_VERSION:+bash}".to_string()];
        let o = run(&args, &kwargs, &ctx(10)).await;
        let want = format!("{}\nhello there 3\nfrom stdin\nbash", dir.path().display());
        assert_eq!(o.data, json!(want));
    }

    #[tokio::test]
    async fn without_a_shell_the_words_are_arguments() {
        let args = vec!["printf '%s|' 'a b' '$HOME' ;".to_string()];
        let o = run(&args, &kw(&[("python_shell", "false")]), &ctx(10)).await;
        assert_eq!(o.data, json!("a b|$HOME|;|"));
    }

    #[tokio::test]
    async fn the_timeout_argument_kills_sooner_than_the_job() {
        let args = vec!["sleep 30".to_string()];
        let started = std::time::Instant::now();
        let o = run(&args, &kw(&[("timeout", "1")]), &ctx(60)).await;
        assert_eq!(o.retcode, 124);
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    #[tokio::test]
    async fn bad_argument_values_are_named() {
        for (k, v, want) in [
            ("timeout", "soon", "timeout must be"),
            ("env", "[1, 2]", "env must be a mapping"),
            (
                "runas",
                "no-such-user-here",
                "no user \"no-such-user-here\"",
            ),
            (
                "cwd",
                "/no/such/dir",
                "cwd: /no/such/dir is not a directory",
            ),
            ("shell", "bash", "shell: \"bash\" is not an absolute path"),
            (
                "python_shell",
                "maybe",
                "python_shell must be true or false",
            ),
        ] {
            let o = run(&["true".to_string()], &kw(&[(k, v)]), &ctx(10)).await;
            assert!(!o.success, "{k}={v}");
            let msg = o.data.as_str().unwrap_or_default().to_owned();
            assert!(msg.contains(want), "{k}={v}: {msg}");
        }
    }

    #[tokio::test]
    async fn runas_runs_as_that_user_when_root() {
        let o = run(
            &["id -un".to_string()],
            &kw(&[("runas", "nobody")]),
            &ctx(10),
        )
        .await;
        if nix::unistd::geteuid().is_root() {
            assert_eq!(o.data, json!("nobody"));
        } else {
            assert!(
                o.data
                    .as_str()
                    .unwrap_or_default()
                    .contains("needs the minion to run as root")
            );
        }
    }

    #[test]
    fn scripts_run_by_their_interpreter_line() {
        assert_eq!(interpreter(b"#!/bin/bash\necho"), vec!["/bin/bash"]);
        assert_eq!(
            interpreter(b"#! /usr/bin/env python3 \nprint(1)"),
            vec!["/usr/bin/env", "python3"]
        );
        assert_eq!(interpreter(b"echo hi"), vec!["/bin/sh"]);
        assert_eq!(interpreter(b""), vec!["/bin/sh"]);
    }
}
