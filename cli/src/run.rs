//! `cmdb run`, `cmdb ssh` and `cmdb jobs`.
//!
//! Exit codes: 0 when every expected minion (or roster host) returned
//! success; 1 when one failed or did not return, a roster entry was
//! refused, nothing matched, or the master could not be reached. Minions that returned a non-zero retcode are listed on
//! stderr after `ERROR: Minions returned with non-zero exit code`.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use protocol::Target;
use serde_json::{Map, Value};

use crate::client::{Answer, Client, Endpoint};
use crate::output::{OutputFormat, Table, render, return_text};
use master::api::jobs::{JobRequest, TargetType};
use master::api::ssh::{SshJobRequest, SshTargetType};
use master::service::jobs::JobView;
use master::store::{JobRecord, JobSummary};

/// How the target expression is to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// fnmatch glob (default).
    Glob,
    /// `-E` regex.
    Regex,
    /// `-L` list.
    List,
    /// `-G` grain.
    Grain,
    /// `-C` compound.
    Compound,
}

/// A parsed `cmdb run` invocation.
#[derive(Debug, Clone)]
pub struct RunArgs {
    /// How to read `target`.
    pub kind: TargetKind,
    /// Target expression.
    pub target: String,
    /// Function.
    pub fun: String,
    /// Positional and `key=value` arguments, as typed.
    pub args: Vec<String>,
    /// Seconds to wait for returns.
    pub timeout: u64,
    /// Print the jid and exit.
    pub asynchronous: bool,
    /// Run on this many (or share of) minions at a time.
    pub batch: Option<String>,
    /// Seconds between a return and the next batch minion.
    pub batch_wait: Option<f64>,
    /// Output format.
    pub out: OutputFormat,
    /// How the job reaches its targets.
    pub via: Via,
}

/// How a job reaches its targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Published to the minions (`cmdb run`).
    Minions,
    /// Run by the master over SSH on roster hosts (`cmdb ssh`); the
    /// number is each session's timeout in seconds, if given.
    Ssh(Option<u64>),
}

pub use protocol::text::split_args;

impl TargetKind {
    /// The API's name for this kind.
    pub fn target_type(self) -> TargetType {
        match self {
            TargetKind::Glob => TargetType::Glob,
            TargetKind::Regex => TargetType::Pcre,
            TargetKind::List => TargetType::List,
            TargetKind::Grain => TargetType::Grain,
            TargetKind::Compound => TargetType::Compound,
        }
    }
}

/// Builds the target, checking it before anything is published.
pub fn target(kind: TargetKind, expr: &str) -> anyhow::Result<Target> {
    let t = kind.target_type().target(expr);
    t.matcher()?;
    Ok(t)
}

/// The context of an error reaching the master.
pub fn unreachable(socket: &Endpoint) -> String {
    format!("cannot talk to the master at {socket}")
}

/// Runs a job through the master at `socket`; returns the exit code.
pub fn run(socket: &Endpoint, a: RunArgs) -> anyhow::Result<u8> {
    target(a.kind, &a.target)?;
    let (args, kwargs) = split_args(&a.args);
    let req = JobRequest {
        target: a.target.clone(),
        target_type: a.kind.target_type(),
        fun: a.fun.clone(),
        args,
        kwargs,
        batch: a.batch.clone(),
        batch_wait: a.batch_wait,
        timeout: a.batch.is_some().then_some(a.timeout),
    };
    let interrupted = interrupt_prints_the_jid()?;
    let mut results = Map::new();
    // `--out json` lays each return out as it comes (see JsonObject).
    let mut json = render::JsonObject::default();
    let mut expected = 0usize;
    let mut failed = false;
    let mut missing = Vec::new();
    let mut retcodes: BTreeMap<String, i32> = BTreeMap::new();
    let mut error = None;
    let mut refused: Vec<String> = Vec::new();
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    let show_progress = std::io::stderr().is_terminal();
    let client = Client::new(socket).with_context(|| unreachable(socket))?;
    let (path, body) = match a.via {
        Via::Minions => ("/v1/jobs", serde_json::to_value(&req)?),
        Via::Ssh(session_timeout) => {
            let target_type = match a.kind {
                TargetKind::Glob => SshTargetType::Glob,
                TargetKind::Regex => SshTargetType::Pcre,
                TargetKind::List => SshTargetType::List,
                TargetKind::Grain | TargetKind::Compound => {
                    bail!("targets over SSH are globs, lists (-L) or regular expressions (-E)")
                }
            };
            let ssh = SshJobRequest {
                target: req.target,
                target_type,
                fun: req.fun,
                args: req.args,
                kwargs: req.kwargs,
                timeout: session_timeout,
            };
            ("/v1/ssh/jobs", serde_json::to_value(&ssh)?)
        }
    };
    client
        .run_at(path, &body, a.timeout, !a.asynchronous, |ev| {
            match ev {
                Answer::Started { jid, expected: e } => {
                    let (jid_slot, answered) = &*interrupted;
                    *jid_slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(jid.to_string());
                    answered.notify_all();
                    if a.asynchronous {
                        match a.out {
                            OutputFormat::Json => {
                                println!("{}", serde_json::json!({ "jid": jid }));
                            }
                            _ => println!("Executed command with job ID: {jid}"),
                        }
                    }
                    expected = e.len();
                    if show_progress && !a.asynchronous {
                        bar.set_length(expected as u64);
                        bar.set_style(
                            ProgressStyle::with_template("{pos}/{len} returned {elapsed}")
                                .unwrap_or_else(|_| ProgressStyle::default_bar()),
                        );
                        bar.enable_steady_tick(std::time::Duration::from_millis(200));
                    }
                }
                Answer::Refused { id, reason } => {
                    failed = true;
                    if a.out == OutputFormat::Nested {
                        let mut one = Map::new();
                        one.insert(id.clone(), Value::String(reason.clone()));
                        let text = render(&one, OutputFormat::Nested);
                        bar.suspend(|| print!("{text}"));
                    }
                    refused.push(id.clone());
                    match a.out {
                        OutputFormat::Json => json.insert(id, &Value::String(reason)),
                        _ => {
                            results.insert(id, Value::String(reason));
                        }
                    }
                }
                Answer::Return { ret } => {
                    bar.inc(1);
                    failed |= !ret.success;
                    if ret.retcode != 0 {
                        retcodes.insert(ret.minion.to_string(), ret.retcode);
                    }
                    if a.out == OutputFormat::Json {
                        json.insert_json(ret.minion.to_string(), &ret.data);
                        return Ok(());
                    }
                    let data = ret.value().map_err(std::io::Error::other)?;
                    if a.out != OutputFormat::Nested {
                        results.insert(ret.minion.to_string(), data);
                        return Ok(());
                    }
                    let mut text = if a.fun.starts_with("state.") && a.fun != "state.show_sls" {
                        crate::output::highstate(ret.minion.as_str(), &data)
                    } else {
                        let mut one = Map::new();
                        one.insert(ret.minion.to_string(), data);
                        render(&one, OutputFormat::Nested)
                    };
                    if ret.retcode != 0 {
                        text.push_str(&format!("    retcode: {}\n", ret.retcode));
                    }
                    bar.suspend(|| print!("{text}"));
                }
                Answer::Done { missing: m } => missing = m,
                Answer::Error { message } => error = Some(message),
                Answer::Value(_) => {}
            }
            Ok(())
        })
        .with_context(|| unreachable(socket))?;
    bar.finish_and_clear();
    if let Some(e) = error {
        bail!("{e}");
    }
    if a.asynchronous {
        return Ok(0);
    }
    if expected == 0 && refused.is_empty() {
        match a.via {
            Via::Minions => eprintln!(
                "No minions matched the target. No command was sent, no jid was assigned."
            ),
            Via::Ssh(_) => eprintln!("No roster entry matched the target. Nothing was run."),
        }
        return Ok(1);
    }
    match a.out {
        OutputFormat::Nested => {}
        OutputFormat::Json => print!("{}", json.render()),
        _ => print!("{}", render(&results, a.out)),
    }
    for m in &missing {
        eprintln!("{m}: minion did not return. [No response]");
    }
    for id in &refused {
        eprintln!("{id}: refused roster entry");
    }
    if !retcodes.is_empty() {
        eprintln!("ERROR: Minions returned with non-zero exit code");
        for (m, code) in &retcodes {
            eprintln!("{m}: {code}");
        }
    }
    Ok(if failed || !missing.is_empty() { 1 } else { 0 })
}

/// The jid once the master answered, and its arrival.
type JidSlot = std::sync::Arc<(std::sync::Mutex<Option<String>>, std::sync::Condvar)>;

/// On Ctrl-C while waiting for returns: the job goes on running; print its
/// jid and how to read its returns later, and exit 130. The jid goes into
/// the answered slot once the master has published the job; a Ctrl-C
/// while that answer is on its way waits for it a few seconds.
fn interrupt_prints_the_jid() -> anyhow::Result<JidSlot> {
    let slot: JidSlot = Default::default();
    let seen = slot.clone();
    // Registering here, before the job is published, replaces the default
    // action of SIGINT (ending the process without a word).
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT])
        .context("listening for Ctrl-C")?;
    std::thread::spawn(move || {
        if signals.forever().next().is_none() {
            return;
        }
        let (jid_slot, answered) = &*seen;
        let guard = jid_slot.lock().unwrap_or_else(|p| p.into_inner());
        let jid = answered
            .wait_timeout_while(guard, std::time::Duration::from_secs(5), |j| j.is_none())
            .map(|(g, _)| g.clone())
            .unwrap_or_else(|p| p.into_inner().0.clone());
        eprintln!("\nExiting gracefully on Ctrl-c");
        match jid {
            Some(jid) => {
                eprintln!("This job's jid is: {jid}");
                eprintln!(
                    "The minions may not have all finished running and any remaining minions \
                     will return upon completion. To look up the return data for this job \
                     later, run:\n\ncmdb jobs show {jid}"
                );
            }
            None => eprintln!(
                "The master had not answered yet; the job may have been published (see cmdb jobs list)."
            ),
        }
        std::process::exit(130);
    });
    Ok(slot)
}

/// `cmdb ssh --accept-new-hostkey ID`: forgets the host key pinned for a
/// roster entry and pins the one it offers now.
pub fn accept_new_hostkey(socket: &Endpoint, id: &str, out: OutputFormat) -> anyhow::Result<u8> {
    let pinned: master::service::ssh::HostKeyPinned = crate::call(
        socket,
        hyper::Method::POST,
        &format!("/v1/ssh/hostkeys/{}/accept", crate::client::segment(id)),
        None::<&()>,
    )?;
    match out {
        OutputFormat::Nested | OutputFormat::Table => {
            for old in &pinned.previous {
                println!("{}: forgot {} ({old})", pinned.id, pinned.host);
            }
            println!(
                "{}: pinned {} ({})",
                pinned.id, pinned.host, pinned.fingerprint
            );
        }
        _ => {
            let mut one = Map::new();
            one.insert(pinned.id.clone(), serde_json::to_value(&pinned)?);
            print!("{}", render(&one, out));
        }
    }
    Ok(0)
}

/// `cmdb jobs active`.
pub fn jobs_active(socket: &Endpoint, out: OutputFormat) -> anyhow::Result<u8> {
    let jobs: Vec<master::service::jobs::ActiveJob> = ask(socket, "/v1/jobs/active")?;
    if out == OutputFormat::Table {
        let mut table = Table::new(&[
            "JID",
            "FUNCTION",
            "TARGET",
            "USER",
            "START_TIME",
            "EXPECTED",
            "RETURNED",
            "PENDING",
            "RUNNING_ON",
        ]);
        for j in &jobs {
            table.push(vec![
                j.jid.to_string(),
                j.fun.clone(),
                j.target.clone(),
                j.user.clone(),
                crate::asset::format_ms(j.started_ms),
                j.expected_count.to_string(),
                j.returned_count.to_string(),
                if j.batch_open {
                    format!("{} (batch starting more)", j.pending_count)
                } else {
                    j.pending_count.to_string()
                },
                j.running.join(","),
            ]);
        }
        print!("{}", table.render());
        return Ok(0);
    }
    let rows: Map<String, Value> = jobs
        .iter()
        .map(|j| {
            (
                j.jid.to_string(),
                serde_json::json!({
                    "Function": j.fun,
                    "Target": j.target,
                    "User": j.user,
                    "StartTime": crate::asset::format_ms(j.started_ms),
                    "Expected": j.expected_count,
                    "Returned": j.returned_count,
                    "Running": j.running,
                    "Pending": j.pending_count,
                    "BatchOpen": j.batch_open,
                }),
            )
        })
        .collect();
    print!("{}", render(&rows, out));
    Ok(0)
}

/// `cmdb jobs kill JID`: exit 0 when every minion still running it killed
/// it or had already finished, 1 when one did not answer.
pub fn jobs_kill(socket: &Endpoint, jid: &str, out: OutputFormat) -> anyhow::Result<u8> {
    let report: master::service::jobs::KillReport = crate::call(
        socket,
        hyper::Method::DELETE,
        &format!("/v1/jobs/{}", crate::client::segment(jid)),
        None::<&()>,
    )?;
    let mut minions = Map::new();
    for (list, what) in [
        (&report.killed, "killed"),
        (&report.not_running, "had already finished"),
        (&report.no_answer, "did not answer"),
    ] {
        for m in list {
            minions.insert(m.clone(), Value::String(what.into()));
        }
    }
    if out == OutputFormat::Table {
        let mut table = Table::new(&["MINION", "KILL"]);
        for (m, what) in &minions {
            table.push(vec![
                m.clone(),
                what.as_str().unwrap_or_default().to_owned(),
            ]);
        }
        print!("{}", table.render());
    } else {
        print!("{}", render(&minions, out));
    }
    for m in &report.no_answer {
        eprintln!("{m}: did not answer the kill (job {})", report.kill_jid);
    }
    Ok(u8::from(!report.no_answer.is_empty()))
}

/// One API call with one JSON answer; a refusal becomes an error.
fn ask<T: serde::de::DeserializeOwned>(socket: &Endpoint, uri: &str) -> anyhow::Result<T> {
    crate::call(socket, hyper::Method::GET, uri, None::<&()>)
}

/// The fields `jobs list` and `jobs show` print for a job.
fn job_view(job: &JobRecord) -> Map<String, Value> {
    let v = serde_json::json!({
        "Function": job.fun,
        "Arguments": job.args,
        "Target": job.target.describe(),
        "User": job.user,
        "StartTime": crate::asset::format_ms(job.started_ms),
        "Minions": job.expected,
    });
    let mut m = v.as_object().cloned().unwrap_or_default();
    if job.transport == master::store::Transport::Ssh {
        m.insert("Transport".into(), Value::String("ssh".into()));
    }
    if !job.refused.is_empty() {
        m.insert("Refused".into(), serde_json::json!(job.refused));
    }
    m
}

/// The fields `jobs list` prints for a job: those of `jobs show` with how
/// many minions were expected instead of their names.
fn summary_view(job: &JobSummary) -> Value {
    serde_json::json!({
        "Function": job.fun,
        "Arguments": job.args,
        "Target": job.target.describe(),
        "User": job.user,
        "StartTime": crate::asset::format_ms(job.started_ms),
        "Expected": job.expected_count,
    })
}

/// `cmdb jobs list`.
pub fn jobs_list(socket: &Endpoint, limit: usize, out: OutputFormat) -> anyhow::Result<u8> {
    let mut jobs: Vec<JobSummary> = Vec::new();
    let mut cursor: Option<String> = None;
    while jobs.len() < limit {
        let want = (limit - jobs.len()).min(master::service::MAX_PAGE);
        let uri = match &cursor {
            Some(c) => format!("/v1/jobs?limit={want}&cursor={}", crate::client::segment(c)),
            None => format!("/v1/jobs?limit={want}"),
        };
        let page: master::service::Page<JobSummary> = ask(socket, &uri)?;
        jobs.extend(page.items);
        match page.next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    if out == OutputFormat::Table {
        print!("{}", jobs_table(&mut jobs));
        return Ok(0);
    }
    let rows: Map<String, Value> = jobs
        .iter()
        .map(|j| (j.jid.to_string(), summary_view(j)))
        .collect();
    print!("{}", render(&rows, out));
    Ok(0)
}

/// Positional arguments, then keyword ones as `name=value`.
fn arguments(args: &[String], kwargs: &BTreeMap<String, String>) -> String {
    args.iter()
        .cloned()
        .chain(kwargs.iter().map(|(k, v)| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `jobs list --out table`: one row per job, oldest first (as the other
/// outputters order them).
fn jobs_table(jobs: &mut [JobSummary]) -> String {
    jobs.sort_by(|a, b| a.jid.as_str().cmp(b.jid.as_str()));
    let mut table = Table::new(&[
        "JID",
        "FUNCTION",
        "ARGUMENTS",
        "TARGET",
        "USER",
        "START_TIME",
        "EXPECTED",
    ]);
    for j in jobs.iter() {
        table.push(vec![
            j.jid.to_string(),
            j.fun.clone(),
            arguments(&j.args, &j.kwargs),
            j.target.describe(),
            j.user.clone(),
            crate::asset::format_ms(j.started_ms),
            j.expected_count.to_string(),
        ]);
    }
    table.render()
}

/// `jobs show --out table`: one row per minion expected or returned, with
/// its STATUS (`ok`, `failed`, or `missing` when it did not return).
fn job_returns_table(job: &JobRecord, returns: &[protocol::JobReturn]) -> String {
    let mut table = Table::new(&["MINION", "STATUS", "RETCODE", "RETURN"]);
    let mut minions: Vec<&str> = job
        .expected
        .iter()
        .map(String::as_str)
        .chain(returns.iter().map(|r| r.minion.as_str()))
        .collect();
    minions.sort_unstable();
    minions.dedup();
    for m in minions {
        match returns.iter().find(|r| r.minion.as_str() == m) {
            Some(r) => table.push(vec![
                m.to_owned(),
                if r.success { "ok" } else { "failed" }.to_owned(),
                r.retcode.to_string(),
                return_text(&r.data),
            ]),
            None => table.push(vec![m.to_owned(), "missing".to_owned()]),
        }
    }
    table.render()
}

/// `cmdb jobs show JID`.
pub fn jobs_show(socket: &Endpoint, jid: &str, out: OutputFormat) -> anyhow::Result<u8> {
    let JobView { job, returns } =
        ask(socket, &format!("/v1/jobs/{}", crate::client::segment(jid)))?;
    if out == OutputFormat::Table {
        print!("{}", job_returns_table(&job, &returns));
        return Ok(0);
    }
    let rets: Map<String, Value> = returns
        .iter()
        .map(|r| (r.minion.to_string(), r.data.clone()))
        .collect();
    let missing: Vec<Value> = job
        .expected
        .iter()
        .filter(|e| !rets.contains_key(*e))
        .map(|e| Value::String(e.clone()))
        .collect();
    let codes: Map<String, Value> = returns
        .iter()
        .map(|r| (r.minion.to_string(), Value::from(r.retcode)))
        .collect();
    let mut view = job_view(&job);
    view.insert("Missing".into(), Value::Array(missing));
    view.insert("Result".into(), Value::Object(rets));
    view.insert("Retcodes".into(), Value::Object(codes));
    let mut m = Map::new();
    m.insert(job.jid.to_string(), Value::Object(view));
    print!("{}", render(&m, out));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_tables_name_their_columns() {
        let jid = protocol::Jid::parse("20261122153000123456").expect("jid");
        let job = JobRecord {
            jid: jid.clone(),
            target: Target::Glob("*".into()),
            fun: "cmd.run".into(),
            args: vec!["exit 3".into()],
            kwargs: [("cwd".to_owned(), "/tmp".to_owned())].into(),
            expected: vec!["db01".into(), "web01".into(), "web02".into()],
            user: "root".into(),
            started_ms: 1_700_000_000_000,
            transport: Default::default(),
            refused: Default::default(),
        };
        let ret = |minion: &str, success: bool, retcode: i32, data: Value| protocol::JobReturn {
            jid: jid.clone(),
            minion: protocol::MinionId::new(minion).expect("id"),
            fun: "cmd.run".into(),
            success,
            retcode,
            data,
            started_ms: 0,
            ended_ms: 0,
        };
        let returns = [
            ret("web01", true, 0, Value::String(String::new())),
            ret("db01", false, 3, Value::String("boom".into())),
        ];
        assert_eq!(
            job_returns_table(&job, &returns),
            "MINION  STATUS   RETCODE  RETURN\n\
             db01    failed   3        boom\n\
             web01   ok       0\n\
             web02   missing\n"
        );
        let listed = jobs_table(&mut [JobSummary::from(&job)]);
        assert_eq!(
            listed.lines().collect::<Vec<_>>(),
            [
                "JID                   FUNCTION  ARGUMENTS        TARGET  USER  START_TIME            EXPECTED",
                "20261122153000123456  cmd.run   exit 3 cwd=/tmp  *       root  2023-11-14T22:13:20Z  3",
            ]
        );
    }

    #[test]
    fn invalid_target_fails_before_publishing() {
        assert!(target(TargetKind::Regex, "(").is_err());
        assert!(target(TargetKind::Compound, "a and").is_err());
        assert!(target(TargetKind::Glob, "web*").is_ok());
    }
}
