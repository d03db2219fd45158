//! Ordering assets by one field, as `cmdb asset list --sort FIELD` and
//! `GET /v1/assets?sort=FIELD` do: numbers numerically, strings naturally
//! (`web2` before `web10`, case folded), and assets without the value last
//! whichever the direction.

use std::cmp::Ordering;

use serde_json::Value;

/// The longest sort field accepted, in bytes.
pub const MAX_FIELD_BYTES: usize = 512;

/// A parsed sort field: a path and a direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortField {
    /// The path as given, without the leading `-`.
    pub path: String,
    /// Largest first (the field was given with a leading `-`).
    pub descending: bool,
}

impl SortField {
    /// Parses `FIELD` or `-FIELD`; the path itself is checked by whoever
    /// knows the record's shape.
    pub fn parse(text: &str) -> Result<SortField, String> {
        let (descending, path) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if path.is_empty() {
            return Err(format!(
                "sort field {text:?} is empty: give a column or a path such as facts.os \
                 (a leading - sorts descending)"
            ));
        }
        if path.len() > MAX_FIELD_BYTES {
            return Err(format!(
                "sort field of {} bytes is longer than {MAX_FIELD_BYTES}",
                path.len()
            ));
        }
        if path.starts_with(['.', ':']) || path.ends_with(['.', ':']) {
            return Err(format!(
                "sort field {text:?} starts or ends with a separator"
            ));
        }
        Ok(SortField {
            path: path.to_owned(),
            descending,
        })
    }

    /// Orders two values of this field (`None` or `null`: missing, always
    /// last).
    pub fn compare(&self, a: Option<&Value>, b: Option<&Value>) -> Ordering {
        compare_present(a, b, self.descending)
    }
}

/// The first segment of a path (up to the first `.` or `:`) and the rest
/// (empty when there is none).
pub fn split_root(path: &str) -> (&str, &str) {
    match path.find(['.', ':']) {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (path, ""),
    }
}

/// The value at `path` under `v`: keys joined by `.` or `:`, list indexes
/// as numbers. A key may itself hold separators (`facts.gpus.0000:03:00.0`):
/// at each level the longest key that leads to a value wins.
pub fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(v);
    }
    // Where a key may end: the whole path, then each separator from the
    // last (longest key first).
    let mut ends = std::iter::once(path.len()).chain(
        path.char_indices()
            .rev()
            .filter(|(_, c)| matches!(c, '.' | ':'))
            .map(|(i, _)| i),
    );
    match v {
        Value::Object(map) => ends.find_map(|end| {
            let child = map.get(&path[..end])?;
            lookup(child, path.get(end + 1..).unwrap_or_default())
        }),
        Value::Array(items) => {
            let end = path.find(['.', ':']).unwrap_or(path.len());
            let index: usize = path[..end].parse().ok()?;
            lookup(items.get(index)?, path.get(end + 1..).unwrap_or_default())
        }
        _ => None,
    }
}

/// Orders two optional values: missing ones (`None` or `null`) after every
/// present one in both directions; present ones by [`compare`], reversed
/// when `descending`.
pub fn compare_present(a: Option<&Value>, b: Option<&Value>, descending: bool) -> Ordering {
    match (a.filter(|v| !v.is_null()), b.filter(|v| !v.is_null())) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(a), Some(b)) if descending => compare(b, a),
        (Some(a), Some(b)) => compare(a, b),
    }
}

fn rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// A total order on JSON values: by kind (null, booleans, numbers, strings,
/// lists, objects), then numbers by value, strings naturally, lists item by
/// item, objects by their JSON text.
pub fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x.cmp(&y),
                _ => {
                    let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
                    x.total_cmp(&y)
                }
            },
        },
        (Value::String(x), Value::String(y)) => natural(x, y),
        (Value::Array(x), Value::Array(y)) => x
            .iter()
            .zip(y)
            .map(|(x, y)| compare(x, y))
            .find(|o| o.is_ne())
            .unwrap_or_else(|| x.len().cmp(&y.len())),
        (Value::Object(_), Value::Object(_)) => a.to_string().cmp(&b.to_string()),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// One run of a string: digits or not.
fn runs(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = s;
    std::iter::from_fn(move || {
        let first = rest.chars().next()?;
        let digits = first.is_ascii_digit();
        let end = rest
            .find(|c: char| c.is_ascii_digit() != digits)
            .unwrap_or(rest.len());
        let (run, tail) = rest.split_at(end);
        rest = tail;
        Some(run)
    })
}

/// Natural order: runs of digits compare as numbers (`web2` < `web10`),
/// other runs case-insensitively, digits before other text; strings equal
/// under that compare byte by byte, so the order is total.
pub fn natural(a: &str, b: &str) -> Ordering {
    let mut x = runs(a);
    let mut y = runs(b);
    loop {
        let (rx, ry) = match (x.next(), y.next()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(rx), Some(ry)) => (rx, ry),
        };
        let dx = rx.starts_with(|c: char| c.is_ascii_digit());
        let dy = ry.starts_with(|c: char| c.is_ascii_digit());
        let o = match (dx, dy) {
            (true, true) => {
                let (nx, ny) = (rx.trim_start_matches('0'), ry.trim_start_matches('0'));
                nx.len().cmp(&ny.len()).then_with(|| nx.cmp(ny))
            }
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            (false, false) => rx
                .chars()
                .flat_map(char::to_lowercase)
                .cmp(ry.chars().flat_map(char::to_lowercase)),
        };
        if o.is_ne() {
            return o;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sorted(mut items: Vec<Value>, field: &SortField) -> Vec<Value> {
        items.sort_by(|a, b| field.compare(Some(a), Some(b)));
        items
    }

    #[test]
    fn numbers_sort_by_value_not_by_text() {
        let asc = SortField::parse("n").expect("field");
        assert_eq!(
            sorted(vec![json!(100), json!(9), json!(-3), json!(2.5)], &asc),
            vec![json!(-3), json!(2.5), json!(9), json!(100)]
        );
        assert_eq!(
            compare(&json!(u64::MAX), &json!(i64::MAX)),
            Ordering::Greater
        );
        assert_eq!(compare(&json!(-1), &json!(u64::MAX)), Ordering::Less);
    }

    #[test]
    fn strings_sort_naturally_and_case_folded() {
        let words = ["web10", "Web2", "db1", "web2", "web02", "db", "web"];
        let mut v: Vec<&str> = words.to_vec();
        v.sort_by(|a, b| natural(a, b));
        assert_eq!(v, ["db", "db1", "web", "Web2", "web02", "web2", "web10"]);
        assert_eq!(natural("9.3", "12"), Ordering::Less);
        assert_eq!(natural("a1b", "a1b"), Ordering::Equal);
        assert_eq!(natural("1x", "x"), Ordering::Less, "digits before text");
        assert_eq!(natural("", "a"), Ordering::Less);
    }

    #[test]
    fn missing_values_come_last_in_both_directions() {
        for text in ["f", "-f"] {
            let field = SortField::parse(text).expect("field");
            let mut items = vec![None, Some(json!(1)), Some(Value::Null), Some(json!(5))];
            items.sort_by(|a, b| field.compare(a.as_ref(), b.as_ref()));
            let present: Vec<Option<Value>> = items.iter().take(2).cloned().collect();
            let want = if field.descending {
                vec![Some(json!(5)), Some(json!(1))]
            } else {
                vec![Some(json!(1)), Some(json!(5))]
            };
            assert_eq!(present, want, "{text}");
            assert!(
                items[2..]
                    .iter()
                    .all(|v| v.as_ref().is_none_or(Value::is_null)),
                "{text}: {items:?}"
            );
        }
    }

    #[test]
    fn kinds_have_a_fixed_order() {
        let asc = SortField::parse("k").expect("field");
        assert_eq!(
            sorted(
                vec![
                    json!({"a": 1}),
                    json!(["x"]),
                    json!("s"),
                    json!(3),
                    json!(true)
                ],
                &asc
            ),
            vec![
                json!(true),
                json!(3),
                json!("s"),
                json!(["x"]),
                json!({"a": 1})
            ]
        );
        assert_eq!(compare(&json!(["a", 2]), &json!(["a", 10])), Ordering::Less);
        assert_eq!(compare(&json!(["a"]), &json!(["a", 1])), Ordering::Less);
    }

    #[test]
    fn fields_parse_with_a_direction() {
        assert_eq!(
            SortField::parse("-facts.mem_total_bytes"),
            Ok(SortField {
                path: "facts.mem_total_bytes".into(),
                descending: true
            })
        );
        assert!(!SortField::parse("os").expect("field").descending);
        let long = "x".repeat(600);
        for bad in ["", "-", "facts.", ".os", long.as_str()] {
            assert!(SortField::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn paths_walk_objects_lists_and_keys_with_separators() {
        let v = json!({
            "facts": {
                "os": "Debian",
                "ipv4": ["10.0.0.5", "10.0.0.6"],
                "gpus": {"0000:03:00.0": {"vendor_id": "102b"}},
                "disks": {"sda": {"size_bytes": 480}}
            }
        });
        assert_eq!(lookup(&v, "facts.os"), Some(&json!("Debian")));
        assert_eq!(lookup(&v, "facts:os"), Some(&json!("Debian")));
        assert_eq!(lookup(&v, "facts.ipv4.1"), Some(&json!("10.0.0.6")));
        assert_eq!(
            lookup(&v, "facts.gpus.0000:03:00.0.vendor_id"),
            Some(&json!("102b"))
        );
        assert_eq!(lookup(&v, "facts.disks.sda.size_bytes"), Some(&json!(480)));
        assert_eq!(lookup(&v, "facts.nope"), None);
        assert_eq!(lookup(&v, "facts.os.x"), None);
        assert_eq!(lookup(&v, "facts.ipv4.9"), None);
        assert_eq!(split_root("facts.os"), ("facts", "os"));
        assert_eq!(split_root("status"), ("status", ""));
    }
}
