//! `cmd.run` with `cwd` (`unless`, `onlyif` and `creates` are checked by
//! the engine, for every state).

use serde_json::json;

use super::arg_str;
use crate::engine::{Context, StateResult};
use crate::sls::State;
use crate::system;

/// `cmd.run`: runs `name` through `/bin/sh -c`.
pub fn run(s: &State, ctx: &Context<'_>) -> StateResult {
    let cwd = arg_str(s, "cwd");
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

/// `cmd.wait`: does nothing by itself; runs `name` when a state it watches
/// (or listens to) changed something.
pub fn wait(s: &State, _ctx: &Context<'_>) -> StateResult {
    StateResult::ok(format!("Command \"{}\" waits for a watched change", s.name))
}
