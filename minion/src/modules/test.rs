//! `test.*`: liveness.

use serde_json::Value;

use super::Outcome;

/// `test.ping`: always `true`.
pub fn ping() -> Outcome {
    Outcome::ok(Value::Bool(true))
}

/// `test.echo TEXT`: returns its argument.
pub fn echo(args: &[String]) -> Outcome {
    Outcome::ok(Value::String(args.join(" ")))
}
