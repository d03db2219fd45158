//! One function on one host: the ssh client is started with the master's
//! options (pinned host keys, no prompts, a deadline for the whole session)
//! and what it answers, or how it failed, becomes that host's result.
//!
//! `collect` sends one POSIX shell script on the session's standard input
//! (`sh -s`) that prints everything the collectors read, framed by a
//! random boundary; the `facts` collectors then read that snapshot here.
//! `cmd.run` and `cmd.run_all` hand the command to `sh -c` on the host as
//! one quoted word; `test.ping` runs `true`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use facts::process::{self, Command, ProcessError};
use facts::snapshot::{Snapshot, probes_of, script};
use facts::{Collector, collect_from};
use protocol::text::backslash_escape;
use serde_json::{Value, json};

use super::SshError;
use super::known_hosts;
use super::roster::Host;

/// Largest answer kept from one host, bytes.
pub const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// A function the SSH transport runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `test.ping`: log in and run `true`.
    Ping,
    /// `collect` (or `grains.items`): the host's asset facts.
    Collect,
    /// `cmd.run CMD` (stdout and stderr merged) or `cmd.run_all CMD`.
    Run {
        /// The command, run by `sh -c` on the host.
        cmd: String,
        /// Whether streams are kept apart with the retcode (`cmd.run_all`).
        all: bool,
    },
}

/// The functions `cmdb ssh` runs.
pub const FUNCTIONS: &[&str] = &[
    "test.ping",
    "collect",
    "grains.items",
    "cmd.run",
    "cmd.run_all",
];

impl Call {
    /// The call `fun` with `args` and `kwargs` names, or why it is refused.
    pub fn parse(
        fun: &str,
        args: &[String],
        kwargs: &BTreeMap<String, String>,
    ) -> Result<Call, String> {
        if let Some(k) = kwargs.keys().next() {
            return Err(format!(
                "{fun} over SSH takes no keyword arguments; {k:?} is not one it takes"
            ));
        }
        let none = |call: Call| {
            if args.is_empty() {
                Ok(call)
            } else {
                Err(format!("{fun} takes no arguments"))
            }
        };
        match fun {
            "test.ping" => none(Call::Ping),
            "collect" | "grains.items" => none(Call::Collect),
            "cmd.run" | "cmd.run_all" => match args {
                [cmd] if !cmd.trim().is_empty() => Ok(Call::Run {
                    cmd: cmd.clone(),
                    all: fun == "cmd.run_all",
                }),
                _ => Err(format!(
                    "{fun} takes one command string; quote the whole command"
                )),
            },
            _ => Err(format!(
                "{fun} does not run over SSH (these do: {})",
                FUNCTIONS.join(", ")
            )),
        }
    }
}

/// How sessions are opened.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The ssh client.
    pub program: PathBuf,
    /// An ssh_config file, if not the client's usual ones.
    pub config_file: Option<PathBuf>,
    /// The pinned host keys.
    pub known_hosts: PathBuf,
    /// Key for entries without `priv`.
    pub default_key: Option<PathBuf>,
    /// Seconds a session may take unless its entry says otherwise.
    pub default_timeout: u64,
    /// Whether `passwd` entries may log in.
    pub allow_passwords: bool,
    /// The program that answers ssh's password prompt (this binary).
    pub askpass: Option<PathBuf>,
}

/// The environment variable holding the password for the askpass program.
pub const ASKPASS_ENV: &str = "CMDB_SSH_ASKPASS_PASSWORD";

/// A host's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Whether it succeeded.
    pub success: bool,
    /// Process-style code.
    pub retcode: i32,
    /// What it returned, or the error text.
    pub data: Value,
}

impl From<SshError> for Outcome {
    fn from(e: SshError) -> Outcome {
        Outcome {
            success: false,
            retcode: e.retcode(),
            data: Value::String(e.to_string()),
        }
    }
}

fn boundary() -> String {
    let b: [u8; 16] = keys::random();
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("cmdb{hex}")
}

fn quote(word: &str) -> String {
    shlex::try_quote(word)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| "''".into())
}

/// The ssh command line for `host` running `remote` under `timeout`.
pub fn command_line(s: &Settings, host: &Host, remote: &str, timeout: u64) -> Vec<String> {
    let mut argv: Vec<String> = vec![s.program.display().to_string(), "-T".into()];
    let mut opt = |o: String| {
        argv.push("-o".into());
        argv.push(o);
    };
    opt("StrictHostKeyChecking=accept-new".into());
    opt(format!("UserKnownHostsFile={}", s.known_hosts.display()));
    opt("GlobalKnownHostsFile=/dev/null".into());
    opt("HashKnownHosts=no".into());
    opt("UpdateHostKeys=no".into());
    opt(format!("ConnectTimeout={}", timeout.clamp(1, 30)));
    opt("ServerAliveInterval=10".into());
    opt("ServerAliveCountMax=3".into());
    opt("ControlMaster=no".into());
    opt("ControlPath=none".into());
    opt("LogLevel=ERROR".into());
    if host.entry.passwd.is_some() {
        opt("BatchMode=no".into());
        opt("NumberOfPasswordPrompts=1".into());
    } else {
        opt("BatchMode=yes".into());
        opt("PasswordAuthentication=no".into());
        opt("KbdInteractiveAuthentication=no".into());
    }
    if let Some(key) = host.entry.private_key.as_ref().or(s.default_key.as_ref()) {
        opt("IdentitiesOnly=yes".into());
        argv.push("-i".into());
        argv.push(key.display().to_string());
    }
    if let Some(cfg) = &s.config_file {
        argv.push("-F".into());
        argv.push(cfg.display().to_string());
    }
    argv.extend([
        "-p".into(),
        host.port().to_string(),
        "-l".into(),
        host.user().to_owned(),
        "--".into(),
        host.entry.host.clone(),
        remote.to_owned(),
    ]);
    argv
}

/// What ssh's own complaints on stderr mean, if they are ssh's.
fn classify(s: &Settings, host: &Host, stderr: &str) -> Option<SshError> {
    let detail = || {
        stderr
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty() && !l.starts_with('@'))
            .unwrap_or("no detail")
            .to_owned()
    };
    if stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        let name = host.known_hosts_name();
        let (word, offered) = known_hosts::offered(stderr).unwrap_or((None, "unknown".into()));
        let pinned = known_hosts::pinned(&s.known_hosts, &name, word.as_deref())
            .unwrap_or_else(|| "unknown".into());
        return Some(SshError::HostKeyChanged {
            id: host.id.clone(),
            host: name,
            pinned,
            offered,
        });
    }
    if stderr.contains("Permission denied") || stderr.contains("Too many authentication failures") {
        return Some(SshError::AuthRefused {
            user: host.user().to_owned(),
            host: host.entry.host.clone(),
            detail: detail(),
        });
    }
    let unreachable = [
        "Connection refused",
        "Connection timed out",
        "No route to host",
        "Could not resolve hostname",
        "Network is unreachable",
        "Connection closed by",
        "Connection reset by",
        "kex_exchange_identification",
        "banner exchange",
    ];
    if unreachable.iter().any(|p| stderr.contains(p)) {
        return Some(SshError::Unreachable {
            host: host.entry.host.clone(),
            port: host.port(),
            detail: detail(),
        });
    }
    if stderr.contains("Host key verification failed") {
        return Some(SshError::Failed { detail: detail() });
    }
    None
}

fn text(bytes: &[u8]) -> String {
    backslash_escape(bytes).trim_end().to_owned()
}

/// Runs `call` on `host`; `timeout` (seconds) overrides the entry's and the
/// default deadline. Never fails: every error is the host's outcome.
pub async fn run(s: &Settings, host: &Host, call: &Call, timeout: Option<u64>) -> Outcome {
    if host.entry.passwd.is_some() && !s.allow_passwords {
        return SshError::PasswordsOff {
            id: host.id.clone(),
        }
        .into();
    }
    let secs = timeout
        .or(host.entry.timeout)
        .unwrap_or(s.default_timeout)
        .max(1);
    let sudo = if host.entry.sudo { "sudo -n " } else { "" };
    let mark = boundary();
    let (remote, stdin) = match call {
        Call::Ping => ("true".to_owned(), None),
        Call::Collect => (
            format!("{sudo}sh -s"),
            Some(script(&mark, &probes_of(Collector::ALL)).into_bytes()),
        ),
        Call::Run { cmd, all: false } => (format!("{sudo}sh -c {} 2>&1", quote(cmd)), None),
        Call::Run { cmd, all: true } => (format!("{sudo}sh -c {}", quote(cmd)), None),
    };
    let mut cmd = Command::new(command_line(s, host, &remote, secs))
        .timeout(Duration::from_secs(secs))
        .max_output(MAX_ANSWER)
        .stdin(stdin.unwrap_or_default());
    if let (Some(pw), Some(askpass)) = (&host.entry.passwd, &s.askpass) {
        cmd = cmd
            .env("SSH_ASKPASS", askpass.display().to_string())
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env(ASKPASS_ENV, pw.clone());
    }
    let out = match process::run(cmd).await {
        Ok(out) => out,
        Err(ProcessError::TimedOut { .. }) => return SshError::TimedOut { secs }.into(),
        Err(e) => {
            return SshError::Failed {
                detail: e.to_string(),
            }
            .into();
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.retcode == 255
        && let Some(e) = classify(s, host, &stderr)
    {
        return e.into();
    }
    if out.truncated {
        return SshError::BadAnswer(format!(
            "the host's answer is larger than {MAX_ANSWER} bytes"
        ))
        .into();
    }
    match call {
        Call::Ping if out.retcode == 0 => Outcome {
            success: true,
            retcode: 0,
            data: Value::Bool(true),
        },
        Call::Ping => SshError::Failed {
            detail: format!("exit code {}: {}", out.retcode, text(&out.stderr)),
        }
        .into(),
        Call::Collect => match Snapshot::parse(&mark, &out.stdout) {
            Ok(snap) => Outcome {
                success: true,
                retcode: 0,
                data: Value::Object(collect_from(&snap, &BTreeSet::new(), &host.id)),
            },
            Err(_) if sudo_refused(&stderr) => SshError::Sudo {
                detail: text(&out.stderr),
            }
            .into(),
            Err(e) => {
                let detail = if out.retcode == 0 {
                    e.to_string()
                } else {
                    format!("{e}; exit code {}: {}", out.retcode, text(&out.stderr))
                };
                SshError::BadAnswer(detail).into()
            }
        },
        Call::Run { all: false, .. } => Outcome {
            success: out.retcode == 0,
            retcode: out.retcode,
            data: json!(text(&out.stdout)),
        },
        Call::Run { all: true, .. } => Outcome {
            success: out.retcode == 0,
            retcode: out.retcode,
            data: json!({
                "retcode": out.retcode,
                "stdout": text(&out.stdout),
                "stderr": text(&out.stderr),
            }),
        },
    }
}

fn sudo_refused(stderr: &str) -> bool {
    stderr.contains("sudo:")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssh::roster::Roster;

    fn settings() -> Settings {
        Settings {
            program: "ssh".into(),
            config_file: None,
            known_hosts: "/state/ssh_known_hosts".into(),
            default_key: None,
            default_timeout: 30,
            allow_passwords: false,
            askpass: None,
        }
    }

    fn host(yaml: &str) -> Host {
        let r = Roster::parse(yaml).expect("roster");
        r.entries.into_values().next().expect("one").expect("ok")
    }

    #[test]
    fn calls_are_checked_before_anything_runs() {
        let none = BTreeMap::new();
        assert_eq!(Call::parse("test.ping", &[], &none), Ok(Call::Ping));
        assert_eq!(Call::parse("grains.items", &[], &none), Ok(Call::Collect));
        assert!(Call::parse("state.apply", &[], &none).is_err());
        assert!(Call::parse("cmd.run", &[], &none).is_err());
        assert!(Call::parse("test.ping", &["x".into()], &none).is_err());
        let kw = BTreeMap::from([("runas".to_owned(), "x".to_owned())]);
        let e = Call::parse("cmd.run", &["id".into()], &kw).expect_err("kwarg");
        assert!(e.contains("runas"), "{e}");
    }

    #[test]
    fn the_command_line_pins_keys_and_ends_options_before_the_host() {
        let h = host("web1:\n  host: 10.0.0.1\n  port: 2222\n  user: ops\n  priv: /k\n");
        let argv = command_line(&settings(), &h, "true", 9);
        let line = argv.join(" ");
        assert!(line.contains("StrictHostKeyChecking=accept-new"));
        assert!(line.contains("UserKnownHostsFile=/state/ssh_known_hosts"));
        assert!(line.contains("BatchMode=yes"));
        assert!(line.contains("-i /k"));
        assert!(line.ends_with("-p 2222 -l ops -- 10.0.0.1 true"), "{line}");
    }

    #[tokio::test]
    async fn a_password_entry_is_refused_unless_passwords_are_on() {
        let h = host("p1:\n  host: 10.0.0.1\n  passwd: secret\n");
        let out = run(&settings(), &h, &Call::Ping, None).await;
        assert!(!out.success);
        assert!(out.data.as_str().expect("text").contains("allow_passwords"));
    }

    #[tokio::test]
    async fn a_dead_port_is_unreachable() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let dir = tempfile::tempdir().expect("tmp");
        let mut s = settings();
        s.known_hosts = dir.path().join("kh");
        let h = host(&format!("dead:\n  host: 127.0.0.1\n  port: {port}\n"));
        let out = run(&s, &h, &Call::Ping, None).await;
        assert_eq!(out.retcode, 255);
        let text = out.data.as_str().expect("text");
        assert!(text.contains("cannot reach 127.0.0.1"), "{text}");
    }
}
