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

/// As [`replace_field`] with the stable part of `facts` (what
/// [`split_volatile`] leaves of them under `patterns`), without copying
/// them whole: the field is edited in place, and only values that changed
/// are copied. A collect changes a few facts of thousands.
pub fn replace_stable_field(
    doc: &mut Value,
    key: &str,
    facts: &Value,
    patterns: &[String],
    out: &mut Vec<FieldChange>,
) {
    if !doc.is_object() {
        *doc = Value::Object(Map::new());
    }
    let Value::Object(map) = doc else {
        return;
    };
    let parts = pattern_parts(patterns);
    let active: Vec<&[&str]> = parts.iter().map(Vec::as_slice).collect();
    let mut path = vec![key.to_owned()];
    match map.get_mut(key) {
        Some(old) => update_stable(&mut path, old, facts, &active, out),
        None => {
            let new = stable_copy(facts, &active);
            out.push(FieldChange {
                path,
                old: None,
                new: Some(new.clone()),
            });
            map.insert(key.to_owned(), new);
        }
    }
}

/// Each volatile pattern split at its `:` into the keys of its path.
fn pattern_parts(patterns: &[String]) -> Vec<Vec<&str>> {
    patterns.iter().map(|p| p.split(':').collect()).collect()
}

/// The patterns of `active` below the key `k` of an object, and whether
/// one of them names `k` itself (its value is volatile).
fn below_key<'p>(active: &[&'p [&'p str]], k: &str, below: &mut Vec<&'p [&'p str]>) -> bool {
    below.clear();
    let named = |p: &&[&str]| p.first().is_some_and(|f| *f == "*" || *f == k);
    if active.iter().any(|p| p.len() == 1 && named(p)) {
        return true;
    }
    below.extend(
        active
            .iter()
            .filter(|p| p.len() > 1 && named(p))
            .map(|p| &p[1..]),
    );
    false
}

/// `v` without the values `active` names (see [`split_volatile`]).
fn stable_copy(v: &Value, active: &[&[&str]]) -> Value {
    match v {
        Value::Object(map) if !active.is_empty() => {
            let mut below = Vec::new();
            let mut out = Map::new();
            for (k, child) in map {
                if !below_key(active, k, &mut below) {
                    out.insert(k.clone(), stable_copy(child, &below));
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// Makes `old` the stable part of `new` under `active`, appending the
/// differences in the order [`walk`] lists them.
fn update_stable(
    path: &mut Vec<String>,
    old: &mut Value,
    new: &Value,
    active: &[&[&str]],
    out: &mut Vec<FieldChange>,
) {
    if active.is_empty() && *old == *new {
        return;
    }
    let (Value::Object(a), Value::Object(b)) = (&mut *old, new) else {
        let new = stable_copy(new, active);
        if *old != new {
            let before = std::mem::replace(old, new.clone());
            out.push(FieldChange {
                path: path.clone(),
                old: Some(before),
                new: Some(new),
            });
        }
        return;
    };
    // Keys of both in order: what each becomes, then done in that order.
    enum Step<'n> {
        Removed(String),
        Added(&'n str, &'n Value),
        Both(&'n str, &'n Value),
    }
    let mut steps = Vec::new();
    let mut below = Vec::new();
    let mut ia = a.keys().peekable();
    let mut ib = b
        .iter()
        .filter(|(k, _)| !below_key(active, k, &mut below))
        .peekable();
    loop {
        let order = match (ia.peek(), ib.peek()) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(ka), Some((kb, _))) => ka.as_str().cmp(kb.as_str()),
        };
        match order {
            Ordering::Less => {
                if let Some(k) = ia.next() {
                    steps.push(Step::Removed(k.clone()));
                }
            }
            Ordering::Greater => {
                if let Some((k, v)) = ib.next() {
                    steps.push(Step::Added(k, v));
                }
            }
            Ordering::Equal => {
                ia.next();
                if let Some((k, v)) = ib.next() {
                    steps.push(Step::Both(k, v));
                }
            }
        }
    }
    drop(ia);
    for step in steps {
        match step {
            Step::Removed(k) => {
                let before = a.remove(&k);
                path.push(k);
                out.push(FieldChange {
                    path: path.clone(),
                    old: before,
                    new: None,
                });
                path.pop();
            }
            Step::Added(k, v) => {
                below_key(active, k, &mut below);
                let v = stable_copy(v, &below);
                path.push(k.to_owned());
                out.push(FieldChange {
                    path: path.clone(),
                    old: None,
                    new: Some(v.clone()),
                });
                path.pop();
                a.insert(k.to_owned(), v);
            }
            Step::Both(k, v) => {
                below_key(active, k, &mut below);
                path.push(k.to_owned());
                if let Some(slot) = a.get_mut(k) {
                    update_stable(path, slot, v, &below, out);
                }
                path.pop();
            }
        }
    }
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
                put_merged(out, path, taken);
                path.pop();
            }
        } else if let Some(child) = map.get_mut(&k) {
            path.push(k);
            take_matching(child, rest, path, out);
            path.pop();
        }
    }
}

/// Writes the stable part of `facts` (what [`split_volatile`] keeps) to
/// `out` as bytes, without copying the facts: two stable parts give the
/// same bytes only when they are equal (every value is tagged, every
/// string and key carries its length), so a digest of the bytes stands
/// for the stable facts.
pub fn feed_stable(facts: &Value, patterns: &[String], out: &mut Vec<u8>) {
    feed_stable_entries(facts, patterns, out);
}

/// As [`feed_stable`], also giving each stable top-level fact: its key
/// and the bytes its key and value took in `out`. The bytes of one entry
/// stand for that fact as the whole bytes stand for the stable facts.
/// Facts that are not an object give no entries.
pub fn feed_stable_entries<'f>(
    facts: &'f Value,
    patterns: &[String],
    out: &mut Vec<u8>,
) -> Vec<(&'f str, std::ops::Range<usize>)> {
    let parts = pattern_parts(patterns);
    let active: Vec<&[&str]> = parts.iter().map(Vec::as_slice).collect();
    let Value::Object(map) = facts else {
        feed(facts, &active, out);
        return Vec::new();
    };
    feed_entries(map, &active, out)
}

/// As [`feed_stable_entries`] for `value`, the fact `key` (an object),
/// with the patterns that apply below that key: the entries are its
/// stable children. `None` when `value` is not an object or a pattern
/// names `key` itself (the whole fact is volatile).
pub fn feed_stable_children<'f>(
    value: &'f Value,
    key: &str,
    patterns: &[String],
    out: &mut Vec<u8>,
) -> Option<Vec<(&'f str, std::ops::Range<usize>)>> {
    let Value::Object(map) = value else {
        return None;
    };
    let parts = pattern_parts(patterns);
    let active: Vec<&[&str]> = parts.iter().map(Vec::as_slice).collect();
    let mut below = Vec::new();
    if below_key(&active, key, &mut below) {
        return None;
    }
    Some(feed_entries(map, &below, out))
}

/// Feeds the object `map` under `active` (as [`feed`] does), giving each
/// stable entry's key and the bytes its key and value took.
fn feed_entries<'f>(
    map: &'f Map<String, Value>,
    active: &[&[&str]],
    out: &mut Vec<u8>,
) -> Vec<(&'f str, std::ops::Range<usize>)> {
    let mut entries = Vec::with_capacity(map.len());
    let mut below: Vec<&[&str]> = Vec::new();
    out.push(b'{');
    for (k, child) in map {
        if below_key(active, k, &mut below) {
            continue;
        }
        let start = out.len();
        feed_str(b'k', k, out);
        feed(child, &below, out);
        entries.push((k.as_str(), start..out.len()));
    }
    out.push(b'}');
    entries
}

fn feed(v: &Value, active: &[&[&str]], out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(b'n'),
        Value::Bool(b) => out.push(if *b { b't' } else { b'f' }),
        Value::Number(n) => {
            // The number's own kind is part of it: 1 and 1.0 differ, as
            // they do to the diff.
            let (tag, bits) = match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => (b'u', u),
                (None, Some(i), _) => (b'i', i as u64),
                (None, None, f) => (b'd', f.unwrap_or(f64::NAN).to_bits()),
            };
            out.push(tag);
            out.extend_from_slice(&bits.to_le_bytes());
        }
        Value::String(s) => feed_str(b's', s, out),
        Value::Array(items) => {
            out.push(b'[');
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                feed(item, &[], out);
            }
        }
        Value::Object(map) => {
            out.push(b'{');
            let mut below: Vec<&[&str]> = Vec::new();
            for (k, child) in map {
                if below_key(active, k, &mut below) {
                    continue;
                }
                feed_str(b'k', k, out);
                feed(child, &below, out);
            }
            out.push(b'}');
        }
    }
}

fn feed_str(tag: u8, s: &str, out: &mut Vec<u8>) {
    out.push(tag);
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// The volatile part of `facts` (what [`split_volatile`] takes out), copied.
pub fn volatile_of(facts: &Value, patterns: &[String]) -> Value {
    let mut volatile = Value::Object(Map::new());
    let mut path = Vec::new();
    for p in patterns {
        let parts: Vec<&str> = p.split(':').collect();
        copy_matching(facts, &parts, &mut path, &mut volatile);
    }
    volatile
}

/// Puts `v` at `path` in `out`, merged key by key into an object already
/// there (patterns that overlap, such as `mounts:*:used_bytes` before
/// `mounts`, then keep every value they name).
fn put_merged(out: &mut Value, path: &[String], v: Value) {
    let mut cur = out;
    for key in path {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(map) = cur else { return };
        cur = map.entry(key.clone()).or_insert(Value::Null);
    }
    merge_into(cur, v);
}

/// Merges `from` into `into` key by key; anything but two objects is
/// replaced.
pub(crate) fn merge_into(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge_into(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Copies the values under `v` whose path matches `parts` into `out`.
fn copy_matching(v: &Value, parts: &[&str], path: &mut Vec<String>, out: &mut Value) {
    let (Some((first, rest)), Value::Object(map)) = (parts.split_first(), v) else {
        return;
    };
    for (k, child) in map {
        if *first != "*" && first != k {
            continue;
        }
        path.push(k.clone());
        if rest.is_empty() {
            put_merged(out, path, child.clone());
        } else {
            copy_matching(child, rest, path, out);
        }
        path.pop();
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
    fn fed(v: &Value, pats: &[String]) -> Vec<u8> {
        let mut out = Vec::new();
        feed_stable(v, pats, &mut out);
        out
    }

    #[test]
    fn overlapping_patterns_keep_every_volatile_value() {
        let f = json!({"mounts": {"/": {"size_bytes": 10, "used_bytes": 3}}, "os": "Debian"});
        let pats = vec!["mounts:*:used_bytes".to_string(), "mounts".to_string()];
        let (stable, vol) = split_volatile(f.clone(), &pats);
        assert_eq!(stable, json!({"os": "Debian"}));
        assert_eq!(
            vol,
            json!({"mounts": {"/": {"size_bytes": 10, "used_bytes": 3}}})
        );
        assert_eq!(volatile_of(&f, &pats), vol);
        assert_eq!(fed(&f, &pats), fed(&stable, &[]));
    }

    #[test]
    fn each_stable_fact_feeds_the_bytes_it_feeds_alone() {
        let f = json!({"uptime_seconds": 5, "os": "Debian",
            "mounts": {"/": {"size_bytes": 10, "used_bytes": 3}}});
        let pats = vec![
            "uptime_seconds".to_string(),
            "mounts:*:used_bytes".to_string(),
        ];
        let mut out = Vec::new();
        let entries = feed_stable_entries(&f, &pats, &mut out);
        assert_eq!(out, fed(&f, &pats));
        let keys: Vec<&str> = entries.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["mounts", "os"]);
        for (k, range) in entries {
            let alone = fed(&json!({k: f[k]}), &pats);
            assert_eq!(out[range], alone[1..alone.len() - 1], "{k}");
        }
        let mut scalar = Vec::new();
        assert!(feed_stable_entries(&json!(7), &pats, &mut scalar).is_empty());
        assert_eq!(scalar, fed(&json!(7), &pats));
    }

    #[test]
    fn each_stable_child_of_a_fact_feeds_what_it_feeds_in_the_facts() {
        let f = json!({"uptime_seconds": 5, "mounts": {"/": {"size_bytes": 10, "used_bytes": 3},
            "/srv": {"size_bytes": 20, "used_bytes": 4}, "tmp": 1}});
        let pats = vec![
            "uptime_seconds".to_string(),
            "mounts:*:used_bytes".to_string(),
            "mounts:tmp".to_string(),
        ];
        let mut out = Vec::new();
        let entries =
            feed_stable_children(&f["mounts"], "mounts", &pats, &mut out).expect("object");
        let keys: Vec<&str> = entries.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, ["/", "/srv"]);
        let whole = fed(&json!({"mounts": f["mounts"]}), &pats);
        // The facts' bytes: in braces, the fact's key, then its value.
        let value = |fed: &[u8]| fed[1 + 9 + "mounts".len()..fed.len() - 1].to_vec();
        assert_eq!(out, value(&whole));
        for (k, range) in entries {
            let alone = fed(&json!({"mounts": {k: f["mounts"][k]}}), &pats);
            let alone = value(&alone);
            assert_eq!(out[range], alone[1..alone.len() - 1], "{k}");
        }
        let mut none = Vec::new();
        assert!(
            feed_stable_children(&f["uptime_seconds"], "uptime_seconds", &pats, &mut none)
                .is_none()
        );
        assert!(
            feed_stable_children(&json!({"a": 1}), "uptime_seconds", &pats, &mut none).is_none()
        );
        assert!(none.is_empty());
    }

    #[test]
    fn unequal_stable_facts_feed_unequal_bytes() {
        let pairs = [
            (json!({"a": 1}), json!({"a": 1.0})),
            (json!({"ab": "c"}), json!({"a": "bc"})),
            (json!({"a": ["b", "c"]}), json!({"a": ["bc"]})),
            (json!({"a": [["b"], []]}), json!({"a": [[], ["b"]]})),
            (json!({"a": {}}), json!({"a": null})),
            (json!({"a": -1}), json!({"a": u64::MAX})),
            (json!({"a": {"b": {}}}), json!({"a": {}, "b": {}})),
        ];
        for (x, y) in pairs {
            assert_ne!(fed(&x, &[]), fed(&y, &[]), "{x} and {y}");
        }
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            (-1e6f64..1e6).prop_map(|n| json!(n)),
            "[a-c]{0,3}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-c/]{1,2}", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// Editing the facts in place gives the document and the changes
        /// replacing them with their stable part gives.
        #[test]
        fn replacing_in_place_agrees_with_replacing_the_split(
            before in json_value(),
            facts in json_value(),
            pats in proptest::collection::vec("[a-c/*]{1,2}(:[a-c/*]{1,2}){0,2}", 0..4),
            from_stable in proptest::bool::ANY,
        ) {
            let before = if from_stable {
                split_volatile(before, &pats).0
            } else {
                before
            };
            // The facts as they came (volatile values and all) among them.
            let docs = [
                json!({"facts": before.clone(), "x": 1}),
                json!({"facts": facts.clone()}),
                json!({"x": 1}),
                json!(null),
            ];
            for doc in docs {
                let (mut want, mut got) = (doc.clone(), doc);
                let (mut want_changes, mut got_changes) = (Vec::new(), Vec::new());
                let stable = split_volatile(facts.clone(), &pats).0;
                replace_field(&mut want, "facts", stable, &mut want_changes);
                replace_stable_field(&mut got, "facts", &facts, &pats, &mut got_changes);
                proptest::prop_assert_eq!(&got, &want);
                proptest::prop_assert_eq!(&got_changes, &want_changes);
            }
        }

        /// The bytes fed and the volatile copy agree with the split, for
        /// any facts and patterns (overlapping ones and `*` included).
        #[test]
        fn feeding_and_copying_agree_with_the_split(
            facts in json_value(),
            pats in proptest::collection::vec("[a-c/*]{1,2}(:[a-c/*]{1,2}){0,2}", 0..4),
            other in json_value(),
        ) {
            let (stable, vol) = split_volatile(facts.clone(), &pats);
            proptest::prop_assert_eq!(volatile_of(&facts, &pats), vol);
            proptest::prop_assert_eq!(fed(&facts, &pats), fed(&stable, &[]));
            let (other_stable, _) = split_volatile(other.clone(), &pats);
            proptest::prop_assert_eq!(
                fed(&facts, &pats) == fed(&other, &pats),
                stable == other_stable
            );
        }
    }
}
