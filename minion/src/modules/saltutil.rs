//! `saltutil.*`: the jobs running on this minion, and killing one.

use protocol::Jid;
use serde_json::{Value, json};

use super::{CallContext, Outcome};

/// `saltutil.running`: `[{jid, fun, started_ms}]` of the jobs running now.
pub fn running(ctx: &CallContext) -> Outcome {
    let Some(m) = &ctx.minion else {
        return Outcome::ok(Value::Array(Vec::new()));
    };
    Outcome::ok(Value::Array(
        m.running
            .list()
            .into_iter()
            .map(|(jid, fun, started_ms)| {
                json!({"jid": jid.to_string(), "fun": fun, "started_ms": started_ms})
            })
            .collect(),
    ))
}

/// `saltutil.kill_job JID`: kills the job's process group; the job returns
/// that it was killed.
pub fn kill_job(args: &[String], ctx: &CallContext) -> Outcome {
    let [jid] = args else {
        return Outcome::fail("saltutil.kill_job takes one job id", 1);
    };
    let jid = match Jid::parse(jid) {
        Ok(j) => j,
        Err(e) => return Outcome::fail(e.to_string(), 1),
    };
    let killed = ctx.minion.as_ref().is_some_and(|m| m.running.kill(&jid));
    if killed {
        Outcome::ok(json!({"jid": jid.to_string(), "killed": true}))
    } else {
        Outcome {
            data: json!({"jid": jid.to_string(), "killed": false, "comment": "not running here"}),
            success: true,
            retcode: 0,
        }
    }
}
