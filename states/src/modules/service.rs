//! `service.running`, `service.dead`, `service.enabled` through systemd;
//! a watched change restarts a running service (or reloads it with
//! `reload: true`).

use serde_json::{Map, Value, json};

use super::arg_bool;
use crate::engine::{Context, StateResult};
use crate::sls::State;
use crate::system;

fn systemctl(args: &[&str]) -> Result<system::Ran, String> {
    if !system::have("systemctl") {
        return Err("systemd is not available on this host".into());
    }
    let mut argv = vec!["systemctl"];
    argv.extend_from_slice(args);
    system::run(&argv)
}

fn active(name: &str) -> Result<bool, String> {
    Ok(systemctl(&["is-active", "--quiet", name])?.ok())
}

fn is_enabled(name: &str) -> Result<bool, String> {
    Ok(systemctl(&["is-enabled", "--quiet", name])?.ok())
}

fn converge(
    s: &State,
    ctx: &Context<'_>,
    want_active: Option<bool>,
    want_enabled: Option<bool>,
) -> StateResult {
    let name = s.name.as_str();
    let mut changes = Map::new();
    let mut steps: Vec<[&str; 2]> = Vec::new();
    match (want_active, active(name)) {
        (_, Err(e)) => return StateResult::fail(e),
        (Some(w), Ok(a)) if w != a => {
            changes.insert(name.to_owned(), json!(w));
            steps.push([if w { "start" } else { "stop" }, name]);
        }
        _ => {}
    }
    if let Some(w) = want_enabled {
        match is_enabled(name) {
            Ok(e) if e != w => {
                changes.insert("enabled".into(), json!(w));
                steps.push([if w { "enable" } else { "disable" }, name]);
            }
            Ok(_) => {}
            Err(e) => return StateResult::fail(e),
        }
    }
    if steps.is_empty() {
        return StateResult::ok(format!(
            "The service {name} is already in the desired state"
        ));
    }
    if ctx.test {
        return StateResult::would(
            format!("Service {name} is set to change"),
            Value::Object(changes),
        );
    }
    for step in steps {
        match systemctl(&step) {
            Ok(r) if r.ok() => {}
            Ok(r) => {
                return StateResult::fail(format!(
                    "systemctl {} {name} failed: {}",
                    step[0], r.stderr
                ));
            }
            Err(e) => return StateResult::fail(e),
        }
    }
    StateResult::changed(format!("Service {name} updated"), Value::Object(changes))
}

/// `service.running`: active (and enabled or disabled when `enable` is given).
pub fn running(s: &State, ctx: &Context<'_>) -> StateResult {
    converge(s, ctx, Some(true), arg_bool(s, "enable"))
}

/// `service.dead`: stopped (and enabled or disabled when `enable` is given).
pub fn dead(s: &State, ctx: &Context<'_>) -> StateResult {
    converge(s, ctx, Some(false), arg_bool(s, "enable"))
}

/// `service.enabled`: starts at boot.
pub fn enabled(s: &State, ctx: &Context<'_>) -> StateResult {
    converge(s, ctx, None, Some(true))
}

/// After a watched state changed: restart, or `systemctl reload` with
/// `reload: true`.
pub fn restart(s: &State, ctx: &Context<'_>) -> StateResult {
    let (verb, done) = if arg_bool(s, "reload").unwrap_or(false) {
        ("reload", "reloaded")
    } else {
        ("restart", "restarted")
    };
    if ctx.test {
        return StateResult::would(
            format!("Service {} would be {done}", s.name),
            json!({ done: s.name }),
        );
    }
    match systemctl(&[verb, &s.name]) {
        Ok(r) if r.ok() => StateResult::changed(
            format!("Service {} {done}", s.name),
            json!({ done: s.name }),
        ),
        Ok(r) => StateResult::fail(format!("{verb} of {} failed: {}", s.name, r.stderr)),
        Err(e) => StateResult::fail(e),
    }
}
