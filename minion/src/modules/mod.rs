//! Execution modules: the functions a job can call.

pub mod cmd;
pub mod grains;
pub mod sys;
pub mod test;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

/// What a function call needs besides its arguments.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The minion id.
    pub id: String,
    /// What a collect reads and runs.
    pub collect: crate::collectors::CollectSettings,
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
    "grains.item",
    "grains.items",
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
        other => Outcome::fail(format!("'{other}' is not available."), 254),
    }
}
