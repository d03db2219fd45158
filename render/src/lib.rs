//! Outputters for job results: Salt's `nested`, `json`, `yaml`, and the
//! aligned [`Table`] every command's `--out table` prints.

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
    /// Aligned columns under a header naming them: `cmdb run` prints
    /// MINION and RETURN (objects as compact JSON); other commands print
    /// their own columns.
    Table,
}

/// Rows under a header line; each column is as wide as its widest cell,
/// columns are two spaces apart, and newlines and tabs in cells show as
/// `\n` and `\t` so a row stays on one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The column names.
    header: Vec<String>,
    /// The rows, each as many cells as the header has names.
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names and no rows.
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are empty, extra ones dropped).
    pub fn push(&mut self, mut row: Vec<String>) {
        row.resize(self.header.len(), String::new());
        self.rows.push(row);
    }

    /// The table as text, one line per row after the header.
    pub fn render(&self) -> String {
        let escape = |s: &str| {
            s.replace('\n', "\\n")
                .replace('\r', "\\r")
                .replace('\t', "\\t")
        };
        let lines: Vec<Vec<String>> = std::iter::once(&self.header)
            .chain(&self.rows)
            .map(|r| r.iter().map(|c| escape(c)).collect())
            .collect();
        let widths: Vec<usize> = (0..self.header.len())
            .map(|i| {
                lines
                    .iter()
                    .map(|l| l[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for line in lines {
            let mut text = String::new();
            for (c, w) in line.iter().zip(&widths) {
                let _ = write!(text, "{c:<w$}  ");
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A value as one table or CSV cell: text as it is, null empty, a list of
/// scalars joined by spaces, anything else as compact JSON.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.iter().all(|i| !i.is_array() && !i.is_object()) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| i.to_string())
            })
            .collect::<Vec<_>>()
            .join(" "),
        other => other.to_string(),
    }
}

/// A minion's return as the RETURN column shows it: scalars as Salt prints
/// them (`True`, `None`), anything else as compact JSON.
pub fn return_text(v: &Value) -> String {
    scalar(v).unwrap_or_else(|| v.to_string())
}

/// `{minion: return}` as `--out json` prints it, built a return at a time
/// from the JSON text each came in: each value is laid out when it is
/// inserted, straight from its text (no tree of values is built), so
/// printing a fleet's returns at the end is joining them. The result is
/// what [`render`] prints for the same map.
#[derive(Debug, Default)]
pub struct JsonObject {
    /// Each key's value laid out at the object's nesting level.
    parts: std::collections::BTreeMap<String, String>,
}

impl JsonObject {
    /// Adds `key` with the value in the JSON text `raw` (a later insert of
    /// the same key replaces it).
    pub fn insert_raw(&mut self, key: String, raw: &str) -> serde_json::Result<()> {
        let mut de = serde_json::Deserializer::from_str(raw);
        let mut out = Vec::with_capacity(raw.len() * 3 / 2);
        let mut ser = serde_json::Serializer::with_formatter(
            &mut out,
            serde_json::ser::PrettyFormatter::with_indent(b"  "),
        );
        serde_transcode::transcode(&mut de, &mut ser)?;
        de.end()?;
        self.insert_laid_out(key, &out);
        Ok(())
    }

    /// As [`JsonObject::insert_raw`], for text known to be one JSON value
    /// (a return as the master sends it): laid out in one pass over the
    /// text, copying strings and numbers as they are. Text with an escape
    /// the pretty printer would write otherwise (see [`has_foreign_escape`])
    /// is laid out by decoding it instead.
    pub fn insert_json(&mut self, key: String, raw: &serde_json::value::RawValue) {
        let text = raw.get();
        if has_foreign_escape(text.as_bytes()) && self.insert_raw(key.clone(), text).is_ok() {
            return;
        }
        self.parts.insert(key, lay_out_moved(text));
    }

    /// Adds `key` with `value`.
    pub fn insert(&mut self, key: String, value: &Value) {
        let text = serde_json::to_vec_pretty(value).unwrap_or_default();
        self.insert_laid_out(key, &text);
    }

    /// Pretty JSON of a value at the top level, moved in one level: JSON
    /// text has no raw newline inside a string, so every newline starts a
    /// line of the value's layout.
    fn insert_laid_out(&mut self, key: String, text: &[u8]) {
        // On bytes: a fleet's returns are tens of megabytes.
        let lines = text.iter().filter(|&&b| b == b'\n').count();
        let mut moved = Vec::with_capacity(text.len() + 2 * lines);
        for (i, line) in text.split(|&b| b == b'\n').enumerate() {
            if i > 0 {
                moved.extend_from_slice(b"\n  ");
            }
            moved.extend_from_slice(line);
        }
        let moved = String::from_utf8(moved)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        self.parts.insert(key, moved);
    }

    /// How many keys it has.
    pub fn len(&self) -> usize {
        self.parts.len()
    }

    /// Whether it has no key.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The object as `serde_json::to_string_pretty` lays it out, and a
    /// newline.
    pub fn render(&self) -> String {
        if self.parts.is_empty() {
            return "{}\n".to_owned();
        }
        let size: usize = self.parts.iter().map(|(k, v)| k.len() + v.len() + 8).sum();
        let mut out = String::with_capacity(size + 4);
        out.push('{');
        for (i, (key, value)) in self.parts.iter().enumerate() {
            out.push_str(if i == 0 { "\n  " } else { ",\n  " });
            out.push_str(&Value::String(key.clone()).to_string());
            out.push_str(": ");
            out.push_str(value);
        }
        out.push_str("\n}\n");
        out
    }
}

/// Whether JSON text has an escape `serde_json` does not print: `\/`, or
/// a `\u` other than the lowercase `\u00xx` it prints for a control
/// character without a short escape.
fn has_foreign_escape(b: &[u8]) -> bool {
    let hex = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut i = 0;
    while let Some(at) = b.get(i..).and_then(|rest| memchr::memchr(b'\\', rest)) {
        i += at + 1;
        match b.get(i) {
            Some(b'/') => return true,
            Some(b'u') => {
                let code = match b.get(i + 1..i + 5) {
                    Some([b'0', b'0', hi @ (b'0' | b'1'), lo]) => {
                        hex(*lo).map(|lo| ((hi - b'0') << 4) | lo)
                    }
                    _ => None,
                };
                if !code.is_some_and(|c| !matches!(c, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d)) {
                    return true;
                }
            }
            _ => {}
        }
        i += 1;
    }
    false
}

/// One JSON value's text laid out as `serde_json`'s pretty printer lays
/// out what it was printed from (two spaces a level, `": "` after keys,
/// empty objects and arrays as `{}` and `[]`), moved in one level (see
/// [`JsonObject`]). Whitespace between tokens is dropped; strings and
/// numbers are copied as they are.
fn lay_out_moved(text: &str) -> String {
    fn newline(out: &mut Vec<u8>, depth: usize) {
        out.push(b'\n');
        out.resize(out.len() + 2 * depth, b' ');
    }
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len() * 3 / 2);
    let mut depth = 1usize;
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'"' => {
                // To the closing quote, stepping over escapes.
                let start = i;
                i += 1;
                while let Some(at) = b
                    .get(i..)
                    .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
                {
                    i += at;
                    if b[i] == b'"' {
                        break;
                    }
                    i += 2;
                }
                i = (i + 1).min(b.len());
                out.extend_from_slice(&b[start..i]);
                continue;
            }
            b'{' | b'[' => {
                let close = if c == b'{' { b'}' } else { b']' };
                let next = b[i + 1..].iter().position(|x| !x.is_ascii_whitespace());
                if let Some(n) = next
                    && b[i + 1 + n] == close
                {
                    out.extend_from_slice(&[c, close]);
                    i += n + 2;
                    continue;
                }
                out.push(c);
                depth += 1;
                newline(&mut out, depth);
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            b',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            b':' => out.extend_from_slice(b": "),
            c if c.is_ascii_whitespace() => {}
            c => out.push(c),
        }
        i += 1;
    }
    // Whole characters of valid text were copied; never lossy in practice.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Renders `{minion: return}` in `format`.
pub fn render(results: &serde_json::Map<String, Value>, format: OutputFormat) -> String {
    match format {
        OutputFormat::Json => serde_json::to_string_pretty(results).unwrap_or_default() + "\n",
        OutputFormat::Yaml => serde_saphyr::to_string(results).unwrap_or_default(),
        OutputFormat::Table => {
            let mut table = Table::new(&["MINION", "RETURN"]);
            for (minion, ret) in results {
                table.push(vec![minion.clone(), return_text(ret)]);
            }
            table.render()
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
    fn a_json_object_built_from_text_prints_as_the_whole_map_does() {
        let values = [
            json!(true),
            json!(null),
            json!("line\nbreak \"quoted\" \u{e9}\u{1f600}"),
            json!({}),
            json!([]),
            json!([1, -2, 3.5, 1e300, u64::MAX, i64::MIN, {"a": [], "b": {}}]),
            json!({"z": {"y": [{"x": "deep"}], "w": 0.1}, "a": "first", "mounts": {"/": {"used": 1}}}),
        ];
        let mut map = serde_json::Map::new();
        let mut built = JsonObject::default();
        let mut laid = JsonObject::default();
        for (i, v) in values.iter().enumerate() {
            let key = format!("minion-\"{}\"", 9 - i);
            map.insert(key.clone(), v.clone());
            if i % 2 == 0 {
                built
                    .insert_raw(key.clone(), &v.to_string())
                    .expect("valid JSON");
            } else {
                built.insert(key.clone(), v);
            }
            let raw = serde_json::value::RawValue::from_string(v.to_string()).expect("raw");
            laid.insert_json(key, &raw);
        }
        assert_eq!(laid.render(), render(&map, OutputFormat::Json));
        assert_eq!(built.len(), values.len());
        assert_eq!(built.render(), render(&map, OutputFormat::Json));
        assert_eq!(
            JsonObject::default().render(),
            render(&serde_json::Map::new(), OutputFormat::Json)
        );
        assert!(
            JsonObject::default()
                .insert_raw("x".into(), "{\"a\": 1} trailing")
                .is_err()
        );
    }

    #[test]
    fn floats_decoded_on_the_way_keep_every_digit() {
        // Shortest text of a double that a fast, inexact parse rounds up.
        let text = r#"["\u0041",-9.952125584543655e-238]"#;
        let mut o = JsonObject::default();
        o.insert_raw("k".into(), text).expect("valid JSON");
        assert!(
            o.render().contains("-9.952125584543655e-238"),
            "{}",
            o.render()
        );
    }

    #[test]
    fn json_laid_out_from_its_text_keeps_escapes_and_drops_whitespace() {
        let cases = [
            (
                r#"{"a" : [ ] , "b":{ },"c":"x\"y\\","d":"\u00e9\/"}"#,
                "{\n  \"a\": [],\n  \"b\": {},\n  \"c\": \"x\\\"y\\\\\",\n  \"d\": \"\u{e9}/\"\n}",
            ),
            ("[1, 2.5e3, -0]", "[\n  1,\n  2.5e3,\n  -0\n]"),
            (
                r#"["\u0001\u001f","\u000a"]"#,
                "[\n  \"\\u0001\\u001f\",\n  \"\\n\"\n]",
            ),
            (r#""\\""#, r#""\\""#),
        ];
        for (text, want) in cases {
            let raw = serde_json::value::RawValue::from_string(text.to_owned()).expect("raw");
            let mut o = JsonObject::default();
            o.insert_json("k".into(), &raw);
            let out = o.render();
            let body = out
                .strip_prefix("{\n  \"k\": ")
                .and_then(|b| b.strip_suffix("\n}\n"))
                .expect("one key")
                .replace("\n  ", "\n");
            assert_eq!(body, want, "{text}");
        }
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|n| json!(n)),
            any::<String>().prop_map(Value::String),
            "[\"\\\\/\n\t\u{1}\u{7f}\u{e9} a]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                proptest::collection::btree_map(any::<String>(), inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// A value's compact text, laid out in one pass, prints as the
        /// value does.
        #[test]
        fn laying_out_compact_text_agrees_with_printing_the_value(v in json_value()) {
            let raw = serde_json::value::RawValue::from_string(v.to_string()).expect("raw");
            let (mut laid, mut printed) = (JsonObject::default(), JsonObject::default());
            laid.insert_json("k".into(), &raw);
            printed.insert("k".into(), &v);
            proptest::prop_assert_eq!(laid.render(), printed.render());
        }
    }

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
    fn tables_align_columns_under_their_header() {
        let mut t = Table::new(&["JID", "FUNCTION", "TARGET"]);
        t.push(vec!["1".into(), "test.ping".into(), "web*".into()]);
        t.push(vec!["20".into(), "cmd.run".into()]);
        t.push(vec!["3".into(), "a\tb\nc".into(), "x".into()]);
        assert_eq!(
            t.render(),
            "JID  FUNCTION   TARGET\n\
             1    test.ping  web*\n\
             20   cmd.run\n\
             3    a\\tb\\nc    x\n"
        );
        assert_eq!(Table::new(&["STATE", "MINION"]).render(), "STATE  MINION\n");
        assert_eq!(cell(&json!(["10.0.0.5", 3])), "10.0.0.5 3");
        assert_eq!(cell(&json!([{"a": 1}])), "[{\"a\":1}]");
        assert_eq!(cell(&Value::Null), "");
        assert_eq!(return_text(&Value::Null), "None");
    }

    #[test]
    fn json_is_one_object() {
        let mut m = serde_json::Map::new();
        m.insert("a".into(), json!("x\"y"));
        let v: Value = serde_json::from_str(&render(&m, OutputFormat::Json)).expect("json");
        assert_eq!(v, json!({"a": "x\"y"}));
    }
}
