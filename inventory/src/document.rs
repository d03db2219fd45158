//! The asset document and its field-level diffs.
//!
//! An asset's state is one JSON document
//! `{"facts": {...}, "manual": {...}, "status": "...", "presence": "..."}`.
//! A diff walks objects key by key; arrays and scalars are compared whole.
//! A path is the list of keys from the root (shown joined with `:`, as grain
//! targets are written). Diffs can be applied backwards, so any earlier
//! version is rebuilt from the current document and the diffs after it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One changed field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    /// Keys from the document root.
    pub path: Vec<String>,
    /// The value before (absent: the field was added).
    pub old: Option<Value>,
    /// The value after (absent: the field was removed).
    pub new: Option<Value>,
}

impl FieldChange {
    /// The path as operators write it: keys joined with `:`.
    pub fn path_text(&self) -> String {
        self.path.join(":")
    }
}

/// The field-level differences from `old` to `new`.
pub fn diff(old: &Value, new: &Value) -> Vec<FieldChange> {
    let mut out = Vec::new();
    walk(&mut Vec::new(), Some(old), Some(new), &mut out);
    out
}

fn walk(
    path: &mut Vec<String>,
    old: Option<&Value>,
    new: Option<&Value>,
    out: &mut Vec<FieldChange>,
) {
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                path.push(k.clone());
                walk(path, a.get(k), b.get(k), out);
                path.pop();
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(FieldChange {
            path: path.clone(),
            old: a.cloned(),
            new: b.cloned(),
        }),
    }
}

fn set_path(doc: &mut Value, path: &[String], value: Option<Value>) {
    let Some((last, parents)) = path.split_last() else {
        if let Some(v) = value {
            *doc = v;
        }
        return;
    };
    let mut cur = doc;
    for key in parents {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(map) = cur else { return };
        cur = map
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if !cur.is_object() {
        *cur = Value::Object(Map::new());
    }
    if let Value::Object(map) = cur {
        match value {
            Some(v) => {
                map.insert(last.clone(), v);
            }
            None => {
                map.remove(last);
            }
        }
    }
}

/// Applies changes forwards (old → new).
pub fn apply(doc: &mut Value, changes: &[FieldChange]) {
    for c in changes {
        set_path(doc, &c.path, c.new.clone());
    }
}

/// Applies changes backwards (new → old).
pub fn revert(doc: &mut Value, changes: &[FieldChange]) {
    for c in changes.iter().rev() {
        set_path(doc, &c.path, c.old.clone());
    }
}

/// Whether `path` matches a pattern of keys joined by `:`, where a `*` key
/// matches any one key.
pub fn path_matches(path: &[String], pattern: &str) -> bool {
    let parts: Vec<&str> = pattern.split(':').collect();
    parts.len() == path.len() && parts.iter().zip(path).all(|(p, k)| *p == "*" || p == k)
}

/// Splits facts into the versioned part and the volatile part (values that
/// change on every collect, such as uptime or disk use), by path patterns
/// relative to the facts.
pub fn split_volatile(facts: &Value, patterns: &[String]) -> (Value, Value) {
    let mut stable = facts.clone();
    let mut volatile = Value::Object(Map::new());
    let mut found = Vec::new();
    collect_paths(&mut Vec::new(), facts, &mut |path, v| {
        if patterns.iter().any(|p| path_matches(path, p)) {
            found.push((path.to_vec(), v.clone()));
        }
    });
    for (path, v) in found {
        set_path(&mut stable, &path, None);
        set_path(&mut volatile, &path, Some(v));
    }
    (stable, volatile)
}

fn collect_paths(path: &mut Vec<String>, v: &Value, f: &mut dyn FnMut(&[String], &Value)) {
    f(path, v);
    if let Value::Object(map) = v {
        for (k, child) in map {
            path.push(k.clone());
            collect_paths(path, child, f);
            path.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_then_revert_and_apply_round_trip() {
        let a = json!({"facts": {"os": "Debian", "disks": {"sda": {"size": 1}}, "ips": [1, 2]}, "status": "active"});
        let b = json!({"facts": {"os": "Debian", "disks": {"sdb": {"size": 2}}, "ips": [2, 1], "new": true}, "status": "maintenance"});
        let d = diff(&a, &b);
        let paths: Vec<String> = d.iter().map(FieldChange::path_text).collect();
        assert_eq!(
            paths,
            [
                "facts:disks:sda",
                "facts:disks:sdb",
                "facts:ips",
                "facts:new",
                "status"
            ]
        );
        let mut back = b.clone();
        revert(&mut back, &d);
        assert_eq!(back, a);
        let mut fwd = a.clone();
        apply(&mut fwd, &d);
        assert_eq!(fwd, b);
        assert!(diff(&a, &a).is_empty());
    }

    #[test]
    fn volatile_fields_are_split_off() {
        let f = json!({"uptime_seconds": 5, "mounts": {"/": {"size_bytes": 10, "used_bytes": 3}}});
        let pats = vec![
            "uptime_seconds".to_string(),
            "mounts:*:used_bytes".to_string(),
        ];
        let (stable, vol) = split_volatile(&f, &pats);
        assert_eq!(stable, json!({"mounts": {"/": {"size_bytes": 10}}}));
        assert_eq!(
            vol,
            json!({"uptime_seconds": 5, "mounts": {"/": {"used_bytes": 3}}})
        );
    }
}
