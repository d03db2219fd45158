//! `cmdb asset …` and `cmdb changes`.
//!
//! Exit codes: 0 on success, 1 when the master refuses (no such asset, a
//! status change not allowed, a bad import row) or cannot be reached.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::client::{Client, Endpoint};
use crate::output::{OutputFormat, Table, render};
use master::service::inventory::AssetRequest;

/// How listings print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    /// Aligned columns.
    Table,
    /// A JSON array.
    Json,
    /// CSV with a header row.
    Csv,
}

/// What `cmdb asset export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// CSV with a header row: the listing's columns and more facts, manual fields.
    Csv,
    /// A JSON array of whole assets.
    Json,
}

/// Sends an inventory request and returns the master's answer.
pub fn ask(socket: &Endpoint, req: AssetRequest) -> anyhow::Result<Value> {
    let answer = Client::new(socket)
        .and_then(|c| c.asset(req))
        .with_context(|| crate::run::unreachable(socket))?;
    answer.map_err(|message| anyhow::anyhow!("{message}"))
}

/// The columns of `cmdb asset list`, as the master names them for `--sort`:
/// (HEADER, JSON pointer).
fn list_columns() -> Vec<(String, String)> {
    master::service::inventory::LIST_COLUMNS
        .iter()
        .map(|(name, path)| {
            (
                name.to_ascii_uppercase(),
                format!("/{}", path.replace('.', "/")),
            )
        })
        .collect()
}

const EXPORT_COLUMNS: &[(&str, &str)] = &[
    ("asset_id", "/asset_id"),
    ("minion", "/minion"),
    ("status", "/status"),
    ("presence", "/presence"),
    ("serial", "/serial"),
    ("host", "/facts/host"),
    ("fqdn", "/facts/fqdn"),
    ("os", "/facts/os"),
    ("osrelease", "/facts/osrelease"),
    ("kernelrelease", "/facts/kernelrelease"),
    ("manufacturer", "/facts/manufacturer"),
    ("productname", "/facts/productname"),
    ("uuid", "/facts/uuid"),
    ("machine_id", "/facts/machine_id"),
    ("virtual", "/facts/virtual"),
    ("cpu_model", "/facts/cpu_model"),
    ("num_cpus", "/facts/num_cpus"),
    ("mem_total_bytes", "/facts/mem_total_bytes"),
    ("ipv4", "/facts/ipv4"),
    ("site", "/manual/site"),
    ("rack", "/manual/rack"),
    ("rack_unit", "/manual/rack_unit"),
    ("owner", "/manual/owner"),
    ("business_line", "/manual/business_line"),
    ("asset_tag", "/manual/asset_tag"),
    ("notes", "/manual/notes"),
];

fn cell(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .map(crate::output::cell)
        .unwrap_or_default()
}

fn csv_text<S: AsRef<str>>(rows: &[Value], columns: &[(S, S)]) -> anyhow::Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(columns.iter().map(|(h, _)| h.as_ref().to_ascii_lowercase()))?;
    for r in rows {
        w.write_record(columns.iter().map(|(_, p)| cell(r, p.as_ref())))?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

fn table_text<S: AsRef<str>>(rows: &[Value], columns: &[(S, S)]) -> String {
    let header: Vec<&str> = columns.iter().map(|(h, _)| h.as_ref()).collect();
    let mut table = Table::new(&header);
    for r in rows {
        table.push(columns.iter().map(|(_, p)| cell(r, p.as_ref())).collect());
    }
    table.render()
}

/// `cmdb asset list`: every asset (or those whose facts match `grain`), in
/// the order `sort` names (the master sorts; see `GET /v1/assets?sort=`).
pub fn list(
    socket: &Endpoint,
    grain: Option<String>,
    sort: Option<String>,
    out: ListFormat,
) -> anyhow::Result<u8> {
    let v = ask(
        socket,
        AssetRequest::List {
            grain,
            sort,
            cursor: None,
            limit: master::service::MAX_PAGE,
        },
    )?;
    let rows = v.as_array().cloned().unwrap_or_default();
    let columns = list_columns();
    match out {
        ListFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        ListFormat::Csv => print!("{}", csv_text(&rows, &columns)?),
        ListFormat::Table => print!("{}", table_text(&rows, &columns)),
    }
    Ok(0)
}

/// `cmdb asset export --format csv|json`.
pub fn export(socket: &Endpoint, format: ExportFormat) -> anyhow::Result<u8> {
    let v = ask(
        socket,
        AssetRequest::List {
            grain: None,
            sort: None,
            cursor: None,
            limit: master::service::MAX_PAGE,
        },
    )?;
    let rows = v.as_array().cloned().unwrap_or_default();
    match format {
        ExportFormat::Csv => print!("{}", csv_text(&rows, EXPORT_COLUMNS)?),
        ExportFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
    }
    Ok(0)
}

/// The top fields of an asset in the order `asset show --out table` lists
/// them; `manual` and `facts` follow, one row per value.
const SHOW_FIELDS: &[&str] = &[
    "asset_id",
    "kind",
    "name",
    "minion",
    "status",
    "presence",
    "serial",
    "version",
    "latest_version",
    "created_ms",
    "last_collect_ms",
    "manual",
    "finance",
    "relations",
    "links",
    "facts",
];

/// One row per value under `path`: objects and lists holding objects or
/// lists open into `path.key` / `path.index` (the paths `--sort` takes).
fn flatten(table: &mut Table, path: &str, v: &Value) {
    let child = |k: &str| {
        if path.is_empty() {
            k.to_owned()
        } else {
            format!("{path}.{k}")
        }
    };
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                flatten(table, &child(k), c);
            }
        }
        Value::Array(items) if items.iter().any(|i| i.is_object() || i.is_array()) => {
            for (i, c) in items.iter().enumerate() {
                flatten(table, &child(&i.to_string()), c);
            }
        }
        other => table.push(vec![path.to_owned(), crate::output::cell(other)]),
    }
}

/// `cmdb asset show --out table`: FIELD and VALUE, one row per value.
fn show_table(v: &Value) -> String {
    let mut table = Table::new(&["FIELD", "VALUE"]);
    let Value::Object(m) = v else {
        flatten(&mut table, "result", v);
        return table.render();
    };
    for key in SHOW_FIELDS {
        if let Some(child) = m.get(*key) {
            flatten(&mut table, key, child);
        }
    }
    for (key, child) in m.iter().filter(|(k, _)| !SHOW_FIELDS.contains(&k.as_str())) {
        flatten(&mut table, key, child);
    }
    table.render()
}

/// `cmdb asset show ID`.
pub fn show(
    socket: &Endpoint,
    key: String,
    version: Option<u64>,
    at: Option<String>,
    out: OutputFormat,
) -> anyhow::Result<u8> {
    let v = ask(socket, AssetRequest::Show { key, version, at })?;
    match out {
        OutputFormat::Table => print!("{}", show_table(&v)),
        other => show_value(&v, other),
    }
    Ok(0)
}

/// `cmdb asset dups`.
pub fn dups(socket: &Endpoint, out: OutputFormat) -> anyhow::Result<u8> {
    let v = ask(socket, AssetRequest::Dups)?;
    if out != OutputFormat::Table {
        show_value(&v, out);
        return Ok(0);
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    for (serial, assets) in v.as_object().into_iter().flatten() {
        for a in assets.as_array().into_iter().flatten() {
            rows.push(vec![
                serial.clone(),
                cell(a, "/asset_id"),
                cell(a, "/minion"),
                cell(a, "/host"),
                cell(a, "/status"),
                cell(a, "/presence"),
            ]);
        }
    }
    // By serial, then by minion (assets without one after).
    rows.sort_by(|a, b| {
        let minion = |r: &[String]| (r[2].is_empty(), r[2].clone(), r[1].clone());
        a[0].cmp(&b[0]).then_with(|| minion(a).cmp(&minion(b)))
    });
    let mut table = Table::new(&["SERIAL", "ASSET_ID", "MINION", "HOST", "STATUS", "PRESENCE"]);
    for r in rows {
        table.push(r);
    }
    print!("{}", table.render());
    Ok(0)
}

/// Prints any answer in an outputter format.
pub fn show_value(v: &Value, out: OutputFormat) {
    match v {
        Value::Object(m) => print!("{}", render(m, out)),
        other => {
            let mut m = serde_json::Map::new();
            m.insert("result".into(), other.clone());
            print!("{}", render(&m, out));
        }
    }
}

/// `cmdb asset history ID`.
pub fn history(socket: &Endpoint, key: String, out: OutputFormat) -> anyhow::Result<u8> {
    let v = ask(socket, AssetRequest::History { key })?;
    if out == OutputFormat::Table {
        print!("{}", history_table(&v));
        return Ok(0);
    }
    if out != OutputFormat::Nested {
        show_value(&v, out);
        return Ok(0);
    }
    println!(
        "asset {} (minion {})",
        cell(&v, "/asset_id"),
        cell(&v, "/minion")
    );
    for h in v["history"].as_array().into_iter().flatten() {
        println!(
            "version {}  {}  {}{}{}",
            h["version"],
            format_ms(h["at_ms"].as_i64().unwrap_or(0)),
            cell(h, "/source"),
            h["jid"]
                .as_str()
                .map(|j| format!("  jid {j}"))
                .unwrap_or_default(),
            h["user"]
                .as_str()
                .map(|u| format!("  by {u}"))
                .unwrap_or_default(),
        );
        print_changes(
            h["changes"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default(),
        );
    }
    Ok(0)
}

/// `asset history --out table`: one row per field change (a change record
/// without field changes, such as the creation, has one row of its own).
fn history_table(v: &Value) -> String {
    let mut table = Table::new(&[
        "VERSION", "AT", "SOURCE", "JID", "USER", "PATH", "OLD", "NEW",
    ]);
    for h in v["history"].as_array().into_iter().flatten() {
        let head = vec![
            h["version"].to_string(),
            format_ms(h["at_ms"].as_i64().unwrap_or(0)),
            cell(h, "/source"),
            cell(h, "/jid"),
            cell(h, "/user"),
        ];
        let changes = h["changes"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if changes.is_empty() {
            table.push(head.clone());
        }
        for c in changes {
            let mut row = head.clone();
            row.extend([cell(c, "/path"), cell(c, "/old"), cell(c, "/new")]);
            table.push(row);
        }
    }
    table.render()
}

/// The PATH, OLD and NEW rows of field changes.
fn changes_table(changes: &[Value]) -> String {
    let mut table = Table::new(&["PATH", "OLD", "NEW"]);
    for c in changes {
        table.push(vec![cell(c, "/path"), cell(c, "/old"), cell(c, "/new")]);
    }
    table.render()
}

fn print_changes(changes: &[Value]) {
    for c in changes {
        println!(
            "    {}: {} -> {}",
            cell(c, "/path"),
            short(&c["old"]),
            short(&c["new"])
        );
    }
}

fn short(v: &Value) -> String {
    let s = match v {
        Value::Null => "(none)".to_string(),
        other => other.to_string(),
    };
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(120).collect::<String>())
    } else {
        s
    }
}

/// `cmdb asset diff ID`.
pub fn diff(
    socket: &Endpoint,
    key: String,
    from: Option<u64>,
    to: Option<u64>,
    out: OutputFormat,
) -> anyhow::Result<u8> {
    let v = ask(socket, AssetRequest::Diff { key, from, to })?;
    if out == OutputFormat::Table {
        let changes = v["changes"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        print!("{}", changes_table(changes));
        return Ok(0);
    }
    if out != OutputFormat::Nested {
        show_value(&v, out);
        return Ok(0);
    }
    println!(
        "asset {}: version {} -> {}",
        cell(&v, "/asset_id"),
        v["from"],
        v["to"]
    );
    print_changes(
        v["changes"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default(),
    );
    Ok(0)
}

/// `cmdb changes --since WINDOW`.
pub fn changes(
    socket: &Endpoint,
    since: &str,
    until: Option<&str>,
    out: ListFormat,
) -> anyhow::Result<u8> {
    let secs = parse_window(since)?;
    let until_secs = until.map(parse_window).transpose()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let v = ask(
        socket,
        AssetRequest::Changes {
            since_ms: now - secs * 1000,
            until_ms: until_secs.map(|u| now - u * 1000),
            cursor: None,
            limit: master::service::MAX_PAGE,
        },
    )?;
    let mut rows = v.as_array().cloned().unwrap_or_default();
    for row in &mut rows {
        if let Some(ms) = row["at_ms"].as_i64() {
            row["at"] = Value::String(format_ms(ms));
        }
    }
    const COLS: &[(&str, &str)] = &[
        ("AT", "/at"),
        ("ASSET_ID", "/asset_id"),
        ("MINION", "/minion"),
        ("SOURCE", "/source"),
        ("PATH", "/path"),
        ("OLD", "/old"),
        ("NEW", "/new"),
    ];
    match out {
        ListFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        ListFormat::Csv => print!("{}", csv_text(&rows, COLS)?),
        ListFormat::Table => print!("{}", table_text(&rows, COLS)),
    }
    Ok(0)
}

/// Parses a window such as `24h`, `30m`, `7d`, `90s` or `3600` into seconds.
pub fn parse_window(s: &str) -> anyhow::Result<i64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .with_context(|| format!("bad window {s:?}: use e.g. 90s, 30m, 24h, 7d"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        other => bail!("bad window unit {other:?}: use s, m, h, d or w"),
    };
    Ok(n * mult)
}

/// Splits `key=value` words.
pub fn parse_fields(words: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    words
        .iter()
        .map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("{w:?} is not key=value"))
        })
        .collect()
}

/// Formats unix milliseconds as ISO 8601 in UTC, `YYYY-MM-DDTHH:MM:SSZ`.
pub fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_times() {
        assert_eq!(parse_window("24h").expect("w"), 86_400);
        assert_eq!(parse_window("90").expect("w"), 90);
        assert!(parse_window("3x").is_err());
        assert_eq!(format_ms(1_700_000_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn table_and_csv() {
        let rows = vec![serde_json::json!({"asset_id": "a1", "facts": {"host": "web,1"}})];
        let cols = &[("ASSET_ID", "/asset_id"), ("HOST", "/facts/host")];
        assert_eq!(table_text(&rows, cols), "ASSET_ID  HOST\na1        web,1\n");
        assert_eq!(
            csv_text(&rows, cols).expect("csv"),
            "asset_id,host\na1,\"web,1\"\n"
        );
    }

    #[test]
    fn list_columns_are_the_masters_sort_columns() {
        let headers: Vec<String> = list_columns().into_iter().map(|(h, _)| h).collect();
        assert_eq!(
            headers,
            [
                "ASSET_ID", "MINION", "HOST", "OS", "RELEASE", "SERIAL", "STATUS", "PRESENCE",
                "SITE", "RACK"
            ]
        );
        assert!(list_columns().contains(&("RELEASE".into(), "/facts/osrelease".into())));
    }

    #[test]
    fn asset_show_table_has_one_row_per_value_under_its_path() {
        let v = serde_json::json!({
            "facts": {"os": "Debian", "ipv4": ["10.0.0.5", "10.0.0.6"],
                      "disks": [{"name": "sda"}], "empty": {}},
            "manual": {"site": "FRA1"},
            "minion": "web01",
            "asset_id": "a1",
            "zzz": 1
        });
        assert_eq!(
            show_table(&v),
            "FIELD               VALUE\n\
             asset_id            a1\n\
             minion              web01\n\
             manual.site         FRA1\n\
             facts.disks.0.name  sda\n\
             facts.empty         {}\n\
             facts.ipv4          10.0.0.5 10.0.0.6\n\
             facts.os            Debian\n\
             zzz                 1\n"
        );
    }

    #[test]
    fn history_table_has_one_row_per_change() {
        let v = serde_json::json!({"asset_id": "a1", "history": [
            {"version": 0, "at_ms": 1_700_000_000_000i64, "source": "created", "changes": []},
            {"version": 1, "at_ms": 1_700_000_000_000i64, "source": "status", "user": "ops",
             "changes": [{"path": "status", "old": "active", "new": "maintenance"}]}
        ]});
        let text = history_table(&v);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(
            lines,
            [
                "VERSION  AT                    SOURCE   JID  USER  PATH    OLD     NEW",
                "0        2023-11-14T22:13:20Z  created",
                "1        2023-11-14T22:13:20Z  status        ops   status  active  maintenance",
            ]
        );
    }
}
