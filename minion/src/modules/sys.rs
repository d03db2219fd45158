//! `sys.*`: what this minion offers.

use serde_json::Value;

use super::{FUNCTIONS, Outcome};

/// `sys.list_functions`: every available function name.
pub fn list_functions() -> Outcome {
    Outcome::ok(Value::Array(
        FUNCTIONS
            .iter()
            .map(|f| Value::String((*f).into()))
            .collect(),
    ))
}
