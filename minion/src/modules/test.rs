//! `test.*`: liveness.

use std::time::Duration;

use serde_json::Value;

use super::Outcome;

/// `test.ping`: always `true`.
pub fn ping() -> Outcome {
    Outcome::ok(Value::Bool(true))
}

/// `test.echo TEXT…`: returns its arguments.
pub fn echo(args: &[String]) -> Outcome {
    Outcome::ok(Value::String(args.join(" ")))
}

/// `test.sleep LENGTH`: waits LENGTH seconds, then returns `true`.
pub async fn sleep(args: &[String]) -> Outcome {
    let [length] = args else {
        return Outcome::fail("test.sleep takes one length in seconds", 1);
    };
    match length.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => {
            tokio::time::sleep(Duration::from_secs_f64(s)).await;
            Outcome::ok(Value::Bool(true))
        }
        _ => Outcome::fail(
            format!("test.sleep: length must be a number of seconds, got {length:?}"),
            1,
        ),
    }
}

/// `test.version`: this minion's version.
pub fn version() -> Outcome {
    Outcome::ok(Value::String(env!("CARGO_PKG_VERSION").into()))
}
