//! The asset document and its field-level diffs.
//!
//! An asset's state is one JSON document
//! `{"facts": {...}, "manual": {...}, "status": "...", "presence": "..."}`.
//! A diff walks objects key by key; arrays and scalars are compared whole.
//! A path is the list of keys from the root (shown joined with `:`, as grain
//! targets are written). Diffs can be applied backwards, so any earlier
//! version is rebuilt from the current document and the diffs after it.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

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

/// Sets the top-level field `key` of `doc` (made an object if it is not)
/// to `value` and appends the differences, as `diff` would list them.
pub fn replace_field(doc: &mut Value, key: &str, value: Value, out: &mut Vec<FieldChange>) {
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    let Value::Object(map) = doc else {
        return;
    };
    let old = map.insert(key.to_owned(), value);
    walk(&mut vec![key], old.as_ref(), map.get(key), out);
}

fn walk<'a>(
    path: &mut Vec<&'a str>,
    old: Option<&'a Value>,
    new: Option<&'a Value>,
    out: &mut Vec<FieldChange>,
) {
    match (old, new) {
        // Most of a document is unchanged between collects: comparing first
        // is cheaper than walking keys.
        (a, b) if a == b => {}
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            // Both maps iterate in key order: merge them.
            let (mut ia, mut ib) = (a.iter().peekable(), b.iter().peekable());
            loop {
                let order = match (ia.peek(), ib.peek()) {
                    (None, None) => break,
                    (Some(_), None) => Ordering::Less,
                    (None, Some(_)) => Ordering::Greater,
                    (Some((ka, _)), Some((kb, _))) => ka.cmp(kb),
                };
                let (k, va, vb) = match order {
                    Ordering::Less => match ia.next() {
                        Some((k, va)) => (k, Some(va), None),
                        None => break,
                    },
                    Ordering::Greater => match ib.next() {
                        Some((k, vb)) => (k, None, Some(vb)),
                        None => break,
                    },
                    Ordering::Equal => match (ia.next(), ib.next()) {
                        (Some((k, va)), Some((_, vb))) => (k, Some(va), Some(vb)),
                        _ => break,
                    },
                };
                path.push(k);
                walk(path, va, vb, out);
                path.pop();
            }
        }
        (a, b) => out.push(FieldChange {
            path: path.iter().map(|k| (*k).to_owned()).collect(),
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

/// Splits facts into the versioned part and the volatile part (values that
/// change on every collect, such as uptime or disk use), by path patterns
/// relative to the facts (`:` between keys, `*` for any key).
pub fn split_volatile(facts: Value, patterns: &[String]) -> (Value, Value) {
    let mut stable = facts;
    let mut volatile = Value::Object(Map::new());
    let mut path = Vec::new();
    for p in patterns {
        let parts: Vec<&str> = p.split(':').collect();
        take_matching(&mut stable, &parts, &mut path, &mut volatile);
    }
    (stable, volatile)
}

/// Moves the values under `v` whose path matches `parts` into `out` (at
/// the same path), following only the keys the pattern names.
fn take_matching(v: &mut Value, parts: &[&str], path: &mut Vec<String>, out: &mut Value) {
    let (Some((first, rest)), Value::Object(map)) = (parts.split_first(), v) else {
        return;
    };
    let keys: Vec<String> = if *first == "*" {
        map.keys().cloned().collect()
    } else if map.contains_key(*first) {
        vec![(*first).to_owned()]
    } else {
        Vec::new()
    };
    for k in keys {
        if rest.is_empty() {
            if let Some(taken) = map.remove(&k) {
                path.push(k);
                set_path(out, path, Some(taken));
                path.pop();
            }
        } else if let Some(child) = map.get_mut(&k) {
            path.push(k);
            take_matching(child, rest, path, out);
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
        let (stable, vol) = split_volatile(f.clone(), &pats);
        assert_eq!(stable, json!({"mounts": {"/": {"size_bytes": 10}}}));
        assert_eq!(
            vol,
            json!({"uptime_seconds": 5, "mounts": {"/": {"used_bytes": 3}}})
        );
    }
}
