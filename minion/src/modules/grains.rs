//! `collect` / `grains.items` and `grains.item`.

use serde_json::{Map, Value};

use super::{CallContext, Outcome};

/// `collect`: every collector's facts.
pub async fn items(ctx: &CallContext) -> Outcome {
    Outcome::ok(Value::Object(facts::collect(&ctx.collect, &ctx.id).await))
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

/// `grains.get KEY [DEFAULT] [delimiter=:]`: the fact at a path of keys
/// (and list indexes), or DEFAULT (empty) when there is none. Facts are
/// the minion's cached ones (at most a minute old).
pub async fn get(
    args: &[String],
    kwargs: &std::collections::BTreeMap<String, String>,
    ctx: &CallContext,
) -> Outcome {
    let (key, default) = match args {
        [key] => (key, Value::String(String::new())),
        [key, default] => (key, Value::String(default.clone())),
        _ => return Outcome::fail("grains.get takes a key and an optional default", 1),
    };
    let delimiter = kwargs.get("delimiter").map_or(":", String::as_str);
    if delimiter.is_empty() {
        return Outcome::fail("grains.get: delimiter must not be empty", 1);
    }
    let facts = ctx.facts().await;
    Outcome::ok(lookup(&facts, key, delimiter).cloned().unwrap_or(default))
}

fn lookup<'a>(facts: &'a Value, key: &str, delimiter: &str) -> Option<&'a Value> {
    key.split(delimiter).try_fold(facts, |v, part| match v {
        Value::Object(map) => map.get(part),
        Value::Array(list) => part.parse::<usize>().ok().and_then(|i| list.get(i)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lookup_walks_keys_and_list_indexes() {
        let facts = json!({"os": "Debian", "ip": {"eth0": ["10.0.0.1", "fe80::1"]}});
        assert_eq!(lookup(&facts, "os", ":"), Some(&json!("Debian")));
        assert_eq!(lookup(&facts, "ip:eth0:1", ":"), Some(&json!("fe80::1")));
        assert_eq!(lookup(&facts, "ip/eth0/0", "/"), Some(&json!("10.0.0.1")));
        assert_eq!(lookup(&facts, "ip:eth1", ":"), None);
        assert_eq!(lookup(&facts, "os:x", ":"), None);
    }
}
