//! `cmd.run` with `unless`, `onlyif`, `creates` and `cwd`.

use serde_json::json;

use super::{arg_list, arg_str};
use crate::engine::{Context, StateResult};
use crate::sls::State;
use crate::system;

fn conditions(s: &State, key: &str) -> Vec<String> {
    arg_list(s, key).unwrap_or_default()
}

/// `cmd.run`: runs `name` through `/bin/sh -c` unless a condition says not to.
pub fn run(s: &State, ctx: &Context<'_>) -> StateResult {
    let cwd = arg_str(s, "cwd");
    for path in conditions(s, "creates") {
        if std::path::Path::new(&path).exists() {
            return StateResult::ok(format!("{path} exists"));
        }
    }
    for cond in conditions(s, "onlyif") {
        match system::shell(&cond, cwd) {
            Ok(r) if r.ok() => {}
            Ok(_) => return StateResult::ok("onlyif condition is false"),
            Err(e) => return StateResult::fail(e),
        }
    }
    for cond in conditions(s, "unless") {
        match system::shell(&cond, cwd) {
            Ok(r) if r.ok() => return StateResult::ok("unless condition is true"),
            Ok(_) => {}
            Err(e) => return StateResult::fail(e),
        }
    }
    if ctx.test {
        return StateResult::would(
            format!("Command \"{}\" would have been executed", s.name),
            json!({}),
        );
    }
    match system::shell(&s.name, cwd) {
        Ok(r) => {
            let changes =
                json!({"pid": r.pid, "retcode": r.code, "stdout": r.stdout, "stderr": r.stderr});
            StateResult {
                result: Some(r.ok()),
                comment: format!("Command \"{}\" run", s.name),
                changes,
            }
        }
        Err(e) => StateResult::fail(e),
    }
}
