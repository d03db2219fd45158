//! `sys.*`: what this minion offers.

use serde_json::{Map, Value};

use super::{Outcome, SIGNATURES};

/// `sys.list_functions`: every available function name.
pub fn list_functions() -> Outcome {
    Outcome::ok(Value::Array(
        SIGNATURES
            .iter()
            .map(|s| Value::String(s.name.into()))
            .collect(),
    ))
}

/// `sys.doc [FUN|MODULE…]`: `{function: "usage\n\ndoc"}` for the named
/// functions, every function of a named module, or every function.
pub fn doc(args: &[String]) -> Outcome {
    let wanted = |name: &str| {
        args.is_empty()
            || args.iter().any(|a| {
                a == name
                    || name
                        .split_once('.')
                        .is_some_and(|(module, _)| module == a.trim_end_matches('.'))
            })
    };
    let out: Map<String, Value> = SIGNATURES
        .iter()
        .filter(|s| wanted(s.name))
        .map(|s| {
            (
                s.name.to_owned(),
                Value::String(format!("{}\n\n{}", s.usage(), s.doc)),
            )
        })
        .collect();
    if out.is_empty() {
        return Outcome::fail(format!("no function matches {}", args.join(", ")), 1);
    }
    Outcome::ok(Value::Object(out))
}
