//! `collect` / `grains.items` and `grains.item`.

use serde_json::{Map, Value};

use super::{CallContext, Outcome};
use crate::collectors;

/// `collect`: every collector's facts.
pub async fn items(ctx: &CallContext) -> Outcome {
    Outcome::ok(Value::Object(
        collectors::collect(&ctx.collect, &ctx.id).await,
    ))
}

/// `grains.item KEY…`: the named top-level facts.
pub async fn item(args: &[String], ctx: &CallContext) -> Outcome {
    let all = items(ctx).await;
    let Value::Object(facts) = all.data else {
        return all;
    };
    let picked: Map<String, Value> = args
        .iter()
        .map(|k| {
            (
                k.clone(),
                facts
                    .get(k)
                    .cloned()
                    .unwrap_or(Value::String(String::new())),
            )
        })
        .collect();
    Outcome::ok(Value::Object(picked))
}
