//! Execution modules: the functions a job can call.

pub mod cmd;
pub mod cp;
pub mod grains;
pub mod state;
pub mod sys;
pub mod test;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

/// What a function call needs besides its arguments.
#[derive(Clone)]
pub struct CallContext {
    /// The minion id.
    pub id: String,
    /// What a collect reads and runs.
    pub collect: crate::collectors::CollectSettings,
    /// The running minion, for functions that talk to the master.
    pub minion: Option<std::sync::Arc<crate::session::Minion>>,
    /// How long the call may take.
    pub timeout: Duration,
}

/// The outcome of a function call.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// What the function returned.
    pub data: Value,
    /// Whether it succeeded.
    pub success: bool,
    /// Process-style return code.
    pub retcode: i32,
}

impl Outcome {
    /// A successful result.
    pub fn ok(data: Value) -> Outcome {
        Outcome {
            data,
            success: true,
            retcode: 0,
        }
    }

    /// A failure with a message.
    pub fn fail(message: impl Into<String>, retcode: i32) -> Outcome {
        Outcome {
            data: Value::String(message.into()),
            success: false,
            retcode,
        }
    }
}

/// Every function this minion offers, sorted.
pub const FUNCTIONS: &[&str] = &[
    "cmd.run",
    "cmd.run_all",
    "collect",
    "cp.get_file",
    "cp.push",
    "grains.item",
    "grains.items",
    "state.apply",
    "state.highstate",
    "state.show_sls",
    "sys.list_functions",
    "test.echo",
    "test.ping",
];

/// Calls `fun` with its arguments.
pub async fn call(
    fun: &str,
    args: &[String],
    kwargs: &BTreeMap<String, String>,
    ctx: &CallContext,
) -> Outcome {
    match fun {
        "test.ping" => test::ping(),
        "test.echo" => test::echo(args),
        "cmd.run" => cmd::run(args, kwargs, ctx).await,
        "cmd.run_all" => cmd::run_all(args, kwargs, ctx).await,
        "sys.list_functions" => sys::list_functions(),
        "collect" | "grains.items" => grains::items(ctx).await,
        "grains.item" => grains::item(args, ctx).await,
        "cp.get_file" => cp::get_file(args, kwargs, ctx).await,
        "cp.push" => cp::push(args, kwargs, ctx).await,
        "state.apply" | "state.sls" => state::apply(args, kwargs, ctx).await,
        "state.highstate" => state::highstate(kwargs, ctx).await,
        "state.show_sls" => state::show_sls(args, ctx).await,
        other => Outcome::fail(format!("'{other}' is not available."), 254),
    }
}
