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
    /// One line per minion: id and its return (objects as compact JSON).
    Table,
}

/// Renders `{minion: return}` in `format`.
pub fn render(results: &serde_json::Map<String, Value>, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => serde_json::to_string_pretty(results).unwrap_or_default() + "\n",
        OutputFormat::Yaml => serde_saphyr::to_string(results).unwrap_or_default(),
        OutputFormat::Table => {
            let width = results
                .keys()
                .map(|k| k.chars().count())
                .chain([6])
                .max()
                .unwrap_or(6);
            let mut out = format!("{:<width$}  RETURN\n", "MINION");
            for (minion, ret) in results {
                let text = match scalar(ret) {
                    Some(s) => s.replace('\n', "\\n"),
                    None => ret.to_string(),
                };
                let _ = writeln!(out, "{minion:<width$}  {text}");
            }
            out
        }
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

/// Salt's `highstate` outputter for one minion's state run.
pub fn highstate(minion: &str, data: &Value) -> String {
    let mut out = format!("{minion}:\n");
    let Value::Object(states) = data else {
        nested(&mut out, data, 4);
        return out;
    };
    let mut rows: Vec<(&String, &Value)> = states.iter().collect();
    rows.sort_by_key(|(_, v)| v["__run_num__"].as_u64().unwrap_or(u64::MAX));
    let (mut ok, mut failed, mut changed, mut total_ms) = (0, 0, 0, 0.0);
    for (key, v) in rows {
        let parts: Vec<&str> = key.split("_|-").collect();
        let fun = format!(
            "{}.{}",
            parts.first().unwrap_or(&""),
            parts.last().unwrap_or(&"")
        );
        let result = match &v["result"] {
            Value::Bool(true) => "True",
            Value::Bool(false) => "False",
            _ => "None",
        };
        match &v["result"] {
            Value::Bool(false) => failed += 1,
            _ => ok += 1,
        }
        let has_changes = v["changes"].as_object().is_some_and(|m| !m.is_empty());
        if has_changes {
            changed += 1;
        }
        let ms = v["duration"].as_f64().unwrap_or(0.0);
        total_ms += ms;
        let _ = writeln!(out, "----------");
        let _ = writeln!(
            out,
            "          ID: {}",
            v["__id__"].as_str().unwrap_or_default()
        );
        let _ = writeln!(out, "    Function: {fun}");
        if v["name"] != v["__id__"] {
            let _ = writeln!(
                out,
                "        Name: {}",
                v["name"].as_str().unwrap_or_default()
            );
        }
        let _ = writeln!(out, "      Result: {result}");
        let _ = writeln!(
            out,
            "     Comment: {}",
            v["comment"].as_str().unwrap_or_default()
        );
        let _ = writeln!(
            out,
            "     Started: {}",
            v["start_time"].as_str().unwrap_or_default()
        );
        let _ = writeln!(out, "    Duration: {ms:.3} ms");
        let _ = writeln!(out, "     Changes:");
        if has_changes {
            nested(&mut out, &v["changes"], 14);
        }
    }
    let total = ok + failed;
    let _ = writeln!(out, "\nSummary for {minion}\n------------");
    let _ = writeln!(out, "Succeeded: {ok} (changed={changed})");
    let _ = writeln!(out, "Failed:    {failed}");
    let _ = writeln!(out, "------------\nTotal states run:     {total}");
    let _ = writeln!(out, "Total run time: {total_ms:>8.3} ms");
    out
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
    fn highstate_prints_states_and_a_summary() {
        let data = json!({
            "file_|-motd_|-/etc/motd_|-managed": {"__id__": "motd", "__run_num__": 0, "name": "/etc/motd",
                "result": true, "comment": "File /etc/motd updated", "changes": {"diff": "New file"},
                "start_time": "10:00:00.000001", "duration": 1.5},
            "cmd_|-boom_|-false_|-run": {"__id__": "boom", "__run_num__": 1, "name": "false",
                "result": false, "comment": "Command \"false\" run", "changes": {},
                "start_time": "10:00:00.000002", "duration": 2.0}
        });
        let s = highstate("web01", &data);
        assert!(s.contains("          ID: motd\n    Function: file.managed\n        Name: /etc/motd\n      Result: True"), "{s}");
        assert!(s.contains("Succeeded: 1 (changed=1)\nFailed:    1"), "{s}");
        assert!(s.contains("Total states run:     2"), "{s}");
    }

    #[test]
    fn table_is_one_line_per_minion() {
        let mut m = serde_json::Map::new();
        m.insert("web01".into(), json!(true));
        m.insert("db".into(), json!({"a": 1}));
        m.insert("x".into(), json!("two\nlines"));
        assert_eq!(
            render(&m, OutputFormat::Table),
            "MINION  RETURN\ndb      {\"a\":1}\nweb01   True\nx       two\\nlines\n"
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
