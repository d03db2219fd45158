//! Outputters for job results: Salt's `nested`, `json`, `yaml`.

use std::fmt::Write;

use serde_json::Value;

/// How `cmdb` prints results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Indented, as Salt's default outputter.
    Nested,
    /// One JSON object.
    Json,
    /// YAML.
    Yaml,
}

/// Renders `{minion: return}` in `format`.
pub fn render(results: &serde_json::Map<String, Value>, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => serde_json::to_string_pretty(results).unwrap_or_default() + "\n",
        OutputFormat::Yaml => serde_saphyr::to_string(results).unwrap_or_default(),
        OutputFormat::Nested => {
            let mut out = String::new();
            for (minion, ret) in results {
                let _ = writeln!(out, "{minion}:");
                nested(&mut out, ret, 4);
            }
            out
        }
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some("None".into()),
        Value::Bool(true) => Some("True".into()),
        Value::Bool(false) => Some("False".into()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// Writes `v` in Salt's nested layout at `indent` spaces.
pub fn nested(out: &mut String, v: &Value, indent: usize) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(map) => {
            let _ = writeln!(out, "{pad}----------");
            for (k, child) in map {
                match scalar(child) {
                    Some(s) if !s.contains('\n') => {
                        let _ = writeln!(out, "{pad}{k}:\n{pad}    {s}");
                    }
                    _ => {
                        let _ = writeln!(out, "{pad}{k}:");
                        nested(out, child, indent + 4);
                    }
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                match scalar(item) {
                    Some(s) => {
                        let _ = writeln!(out, "{pad}- {s}");
                    }
                    None => {
                        let _ = writeln!(out, "{pad}-");
                        nested(out, item, indent + 4);
                    }
                }
            }
        }
        other => {
            let s = scalar(other).unwrap_or_default();
            for line in s.split('\n') {
                let _ = writeln!(out, "{pad}{line}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_looks_like_salt() {
        let mut m = serde_json::Map::new();
        m.insert("web1".into(), json!(true));
        m.insert("web2".into(), json!({"os": "Debian", "ips": ["10.0.0.1"]}));
        let s = render(&m, OutputFormat::Nested);
        assert_eq!(
            s,
            "web1:\n    True\nweb2:\n    ----------\n    ips:\n        - 10.0.0.1\n    os:\n        Debian\n"
        );
    }

    #[test]
    fn json_is_one_object() {
        let mut m = serde_json::Map::new();
        m.insert("a".into(), json!("x\"y"));
        let v: Value = serde_json::from_str(&render(&m, OutputFormat::Json)).expect("json");
        assert_eq!(v, json!({"a": "x\"y"}));
    }
}
