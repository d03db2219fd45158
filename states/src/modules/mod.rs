//! State modules: `file`, `cmd`, `pkg`, `pkgrepo`, `service`, `user`,
//! `group`, `cron`, `archive`, `git`.

pub mod archive;
pub mod cmd;
pub mod cron;
pub mod file;
pub mod file_text;
pub mod file_tree;
pub mod git;
pub mod pkg;
pub mod pkgrepo;
pub mod service;
pub mod user;

use serde_json::Value;

use crate::engine::{Context, StateResult};
use crate::sls::State;

/// Every supported `module.function`.
pub const FUNCTIONS: &[&str] = &[
    "archive.extracted",
    "cmd.run",
    "cmd.wait",
    "cron.absent",
    "cron.present",
    "file.absent",
    "file.append",
    "file.blockreplace",
    "file.directory",
    "file.line",
    "file.managed",
    "file.recurse",
    "file.replace",
    "file.symlink",
    "git.latest",
    "group.absent",
    "group.present",
    "pkg.installed",
    "pkg.removed",
    "pkgrepo.absent",
    "pkgrepo.managed",
    "service.dead",
    "service.enabled",
    "service.running",
    "user.absent",
    "user.present",
];

/// Runs a state's function.
pub fn call(s: &State, ctx: &Context<'_>) -> StateResult {
    match (s.module.as_str(), s.function.as_str()) {
        ("file", "managed") => file::managed(s, ctx),
        ("file", "directory") => file::directory(s, ctx),
        ("file", "absent") => file::absent(s, ctx),
        ("file", "replace") => file::replace(s, ctx),
        ("file", "append") => file_text::append(s, ctx),
        ("file", "blockreplace") => file_text::blockreplace(s, ctx),
        ("file", "line") => file_text::line(s, ctx),
        ("file", "symlink") => file_tree::symlink(s, ctx),
        ("file", "recurse") => file_tree::recurse(s, ctx),
        ("cmd", "run") => cmd::run(s, ctx),
        ("cmd", "wait") => cmd::wait(s, ctx),
        ("pkg", "installed") => pkg::installed(s, ctx),
        ("pkg", "removed") => pkg::removed(s, ctx),
        ("service", "running") => service::running(s, ctx),
        ("service", "dead") => service::dead(s, ctx),
        ("service", "enabled") => service::enabled(s, ctx),
        ("user", "present") => user::user_present(s, ctx),
        ("user", "absent") => user::user_absent(s, ctx),
        ("group", "absent") => user::group_absent(s, ctx),
        ("cron", "present") => cron::present(s, ctx),
        ("cron", "absent") => cron::absent(s, ctx),
        ("archive", "extracted") => archive::extracted(s, ctx),
        ("pkgrepo", "managed") => pkgrepo::managed(s, ctx),
        ("pkgrepo", "absent") => pkgrepo::absent(s, ctx),
        ("git", "latest") => git::latest(s, ctx),
        ("group", "present") => user::group_present(s, ctx),
        _ => StateResult::fail(format!(
            "State '{}' was not found (supported: {})",
            s.fun(),
            FUNCTIONS.join(", ")
        )),
    }
}

/// The module's reaction to a change in a watched state, if it has one
/// (`service.running` restarts).
pub fn watch(s: &State, ctx: &Context<'_>) -> Option<StateResult> {
    match (s.module.as_str(), s.function.as_str()) {
        ("service", "running") => Some(service::restart(s, ctx)),
        ("cmd", "wait") => Some(cmd::run(s, ctx)),
        _ => None,
    }
}

/// A string argument.
pub fn arg_str<'a>(s: &'a State, key: &str) -> Option<&'a str> {
    s.args.get(key).and_then(Value::as_str)
}

/// A string-ish argument (numbers become text).
pub fn arg_text(s: &State, key: &str) -> Option<String> {
    match s.args.get(key)? {
        Value::String(v) => Some(v.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A boolean argument (`true`, `"true"`, `"yes"`, 1).
pub fn arg_bool(s: &State, key: &str) -> Option<bool> {
    match s.args.get(key)? {
        Value::Bool(b) => Some(*b),
        Value::String(v) => Some(matches!(
            v.to_ascii_lowercase().as_str(),
            "true" | "yes" | "1" | "on"
        )),
        Value::Number(n) => Some(n.as_i64() != Some(0)),
        _ => None,
    }
}

/// A list-of-strings argument.
pub fn arg_list(s: &State, key: &str) -> Option<Vec<String>> {
    match s.args.get(key)? {
        Value::Array(items) => Some(
            items
                .iter()
                .map(|i| match i {
                    Value::String(v) => v.clone(),
                    Value::Object(m) => m.keys().next().cloned().unwrap_or_default(),
                    other => other.to_string(),
                })
                .collect(),
        ),
        Value::String(v) => Some(v.split(',').map(|x| x.trim().to_owned()).collect()),
        _ => None,
    }
}
