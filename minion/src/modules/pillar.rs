//! `pillar.items`, `pillar.item`, `pillar.get`, `pillar.refresh`: this
//! minion's pillar, compiled by the master for the verified identity of the
//! requester and sealed to it. Nothing is cached: each call and each state
//! run asks the master, so the data is never stale.

use std::collections::BTreeMap;

use protocol::{ReplyBody, RequestBody};
use serde_json::{Map, Value};

use super::{CallContext, Outcome};

/// This minion's pillar from the master; empty without one
/// (`cmdb-minion call --local`).
pub async fn fetch(ctx: &CallContext) -> Result<Value, String> {
    let Some(m) = &ctx.minion else {
        return Ok(Value::Object(Map::new()));
    };
    let link = m.link().ok_or("not connected to the master")?;
    let reply = link
        .request(RequestBody::Pillar, false)
        .await
        .map_err(|e| format!("pillar: {e}"))?;
    match reply.body {
        ReplyBody::Pillar { data } => Ok(data),
        _ => Err("unexpected answer to a pillar request".into()),
    }
}

/// Parses a `pillar='{"x": 1}'` argument (JSON, or YAML flow) into a mapping.
pub fn parse_override(text: &str) -> Result<Value, String> {
    let v: Value = serde_json::from_str(text)
        .or_else(|_| serde_saphyr::from_str(text))
        .map_err(|e| format!("pillar={text:?} is not a JSON or YAML mapping: {e}"))?;
    if v.is_object() {
        Ok(v)
    } else {
        Err(format!("pillar={text:?} must be a mapping"))
    }
}

/// `pillar.items`: the whole pillar.
pub async fn items(ctx: &CallContext) -> Outcome {
    match fetch(ctx).await {
        Ok(p) => Outcome::ok(p),
        Err(e) => Outcome::fail(e, 1),
    }
}

/// `pillar.item KEY…`: the named top-level keys.
pub async fn item(args: &[String], ctx: &CallContext) -> Outcome {
    match fetch(ctx).await {
        Ok(p) => Outcome::ok(Value::Object(
            args.iter()
                .filter_map(|k| p.get(k).map(|v| (k.clone(), v.clone())))
                .collect(),
        )),
        Err(e) => Outcome::fail(e, 1),
    }
}

/// `pillar.get KEY [DEFAULT] [delimiter=:]`: one value by its path
/// (`site:port`), or the default (empty by default).
pub async fn get(args: &[String], kwargs: &BTreeMap<String, String>, ctx: &CallContext) -> Outcome {
    let (key, default) = match args {
        [key] => (key, Value::String(String::new())),
        [key, default] => (key, Value::String(default.clone())),
        _ => return Outcome::fail("pillar.get takes a key and an optional default", 1),
    };
    let delimiter = kwargs.get("delimiter").map_or(":", String::as_str);
    if delimiter.is_empty() {
        return Outcome::fail("pillar.get: delimiter must not be empty", 1);
    }
    match fetch(ctx).await {
        Ok(p) => Outcome::ok(
            states::template::traverse(&p, key, delimiter)
                .cloned()
                .unwrap_or(default),
        ),
        Err(e) => Outcome::fail(e, 1),
    }
}

/// `pillar.refresh`: compiles the pillar anew on the master; true when it
/// compiles.
pub async fn refresh(ctx: &CallContext) -> Outcome {
    match fetch(ctx).await {
        Ok(_) => Outcome::ok(Value::Bool(true)),
        Err(e) => Outcome::fail(e, 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn overrides_are_json_or_yaml_mappings() {
        assert_eq!(parse_override(r#"{"x": 1}"#), Ok(json!({"x": 1})));
        assert_eq!(
            parse_override("{site: {port: 81}}"),
            Ok(json!({"site": {"port": 81}}))
        );
        assert!(parse_override("[1]").is_err());
        assert!(parse_override("{").is_err());
    }
}
