//! What the templates show: filters for times and values, the facts as a
//! tree, and bar charts as plain numbers for server-rendered SVG.

use serde::Serialize;
use serde_json::Value;

/// Registers the UI's filters.
pub fn register(env: &mut minijinja::Environment<'static>) {
    env.add_filter("ms", |ms: Option<i64>| {
        ms.map(format_ms).unwrap_or_default()
    });
    env.add_filter("text", |v: minijinja::Value| -> String {
        match serde_json::to_value(&v) {
            Ok(v) => text(&v),
            Err(_) => v.to_string(),
        }
    });
    env.add_filter("bytes", |n: Option<f64>| n.map(bytes).unwrap_or_default());
}

/// Unix milliseconds as `2026-11-23 06:40:12` (UTC).
pub fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// A byte count as `64.0 GiB`.
pub fn bytes(n: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A JSON value as one line of text: strings as they are, the rest as
/// compact JSON, nothing for null.
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One node of the facts tree.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Node {
    /// The key (or `[i]` for a list item).
    pub key: String,
    /// A leaf's value as text.
    pub value: Option<String>,
    /// A branch's children.
    pub children: Vec<Node>,
    /// How many leaves are below.
    pub size: usize,
}

/// The facts as a tree of nodes, keys in order.
pub fn tree(v: &Value) -> Vec<Node> {
    fn node(key: String, v: &Value) -> Node {
        let children: Vec<Node> = match v {
            Value::Object(m) => m.iter().map(|(k, v)| node(k.clone(), v)).collect(),
            Value::Array(a) if a.iter().any(|x| x.is_object() || x.is_array()) => a
                .iter()
                .enumerate()
                .map(|(i, v)| node(format!("[{i}]"), v))
                .collect(),
            _ => Vec::new(),
        };
        if children.is_empty() && (v.is_object() || v.is_array()) && !is_scalar_list(v) {
            return Node {
                key,
                value: Some(String::new()),
                children,
                size: 1,
            };
        }
        if children.is_empty() {
            let value = match v {
                Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(", "),
                other => text(other),
            };
            return Node {
                key,
                value: Some(value),
                children,
                size: 1,
            };
        }
        let size = children.iter().map(|c| c.size).sum();
        Node {
            key,
            value: None,
            children,
            size,
        }
    }
    fn is_scalar_list(v: &Value) -> bool {
        matches!(v, Value::Array(a) if !a.is_empty())
    }
    match v {
        Value::Object(m) => m.iter().map(|(k, v)| node(k.clone(), v)).collect(),
        _ => Vec::new(),
    }
}

/// One bar of a chart.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bar {
    /// What is counted.
    pub label: String,
    /// The label cut to fit the chart.
    pub short: String,
    /// How many.
    pub count: usize,
    /// The bar's length, 0 to 200 (the chart's width for the largest).
    pub width: u32,
    /// The bar's top in the chart.
    pub y: u32,
}

/// The largest groups of `counts` (the rest summed as `other`), as bars
/// with lengths and places in a chart 20 units a row.
pub fn bars(counts: &std::collections::BTreeMap<String, usize>, rows: usize) -> Vec<Bar> {
    let mut v: Vec<(String, usize)> = counts.iter().map(|(k, n)| (k.clone(), *n)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    if v.len() > rows {
        let rest: usize = v[rows - 1..].iter().map(|(_, n)| n).sum();
        v.truncate(rows - 1);
        v.push(("other".into(), rest));
    }
    let max = v.iter().map(|(_, n)| *n).max().unwrap_or(1).max(1);
    v.into_iter()
        .enumerate()
        .map(|(i, (label, count))| Bar {
            short: if label.chars().count() > 22 {
                label.chars().take(21).chain(['…']).collect()
            } else {
                label.clone()
            },
            label,
            count,
            width: u32::try_from(count * 200 / max).unwrap_or(200).max(1),
            y: u32::try_from(i * 20).unwrap_or(0),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn facts_become_a_tree_with_leaves_as_text() {
        let t = tree(&json!({
            "os": "Debian",
            "num_cpus": 8,
            "ipv4": ["10.0.0.1", "10.0.0.2"],
            "disks": [{"name": "sda", "size": 1}],
            "empty": {},
        }));
        let os = t.iter().find(|n| n.key == "os").expect("os");
        assert_eq!(os.value.as_deref(), Some("Debian"));
        let ips = t.iter().find(|n| n.key == "ipv4").expect("ipv4");
        assert_eq!(ips.value.as_deref(), Some("10.0.0.1, 10.0.0.2"));
        let disks = t.iter().find(|n| n.key == "disks").expect("disks");
        assert_eq!(disks.children[0].key, "[0]");
        assert_eq!(disks.children[0].children[0].key, "name");
        assert_eq!(disks.size, 2);
        let empty = t.iter().find(|n| n.key == "empty").expect("empty");
        assert_eq!(empty.value.as_deref(), Some(""));
    }

    #[test]
    fn bars_keep_the_largest_groups_and_sum_the_rest() {
        let counts = [("a", 10), ("b", 5), ("c", 1), ("d", 1)]
            .iter()
            .map(|(k, n)| ((*k).to_owned(), *n))
            .collect();
        let b = bars(&counts, 3);
        assert_eq!(
            b.iter()
                .map(|b| (b.label.as_str(), b.count))
                .collect::<Vec<_>>(),
            [("a", 10), ("b", 5), ("other", 2)]
        );
        assert_eq!(b[0].width, 200);
        assert_eq!(b[1].width, 100);
        assert_eq!(b[2].y, 40);
    }

    #[test]
    fn sizes_and_times_read_well() {
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(64.0 * 1024.0 * 1024.0 * 1024.0), "64.0 GiB");
        assert_eq!(format_ms(0), "1970-01-01 00:00:00");
    }
}
