//! `cmdb asset …` and `cmdb changes`.
//!
//! Exit codes: 0 on success, 1 when the master refuses (no such asset, a
//! status change not allowed, a bad import row) or cannot be reached.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use serde_json::Value;

use crate::client::{Client, Endpoint};
use crate::output::{OutputFormat, render};
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

/// Sends an inventory request and returns the master's answer.
pub fn ask(socket: &Endpoint, req: AssetRequest) -> anyhow::Result<Value> {
    let answer = Client::new(socket)
        .and_then(|c| c.asset(req))
        .with_context(|| crate::run::unreachable(socket))?;
    answer.map_err(|message| anyhow::anyhow!("{message}"))
}

const LIST_COLUMNS: &[(&str, &str)] = &[
    ("ASSET_ID", "/asset_id"),
    ("MINION", "/minion"),
    ("HOST", "/facts/host"),
    ("OS", "/facts/os"),
    ("RELEASE", "/facts/osrelease"),
    ("SERIAL", "/serial"),
    ("STATUS", "/status"),
    ("PRESENCE", "/presence"),
    ("SITE", "/manual/site"),
    ("RACK", "/manual/rack"),
];

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
    match v.pointer(pointer) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| i.to_string())
            })
            .collect::<Vec<_>>()
            .join(" "),
        Some(other) => other.to_string(),
    }
}

fn csv_text(rows: &[Value], columns: &[(&str, &str)]) -> anyhow::Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(columns.iter().map(|(h, _)| h.to_ascii_lowercase()))?;
    for r in rows {
        w.write_record(columns.iter().map(|(_, p)| cell(r, p)))?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

fn table_text(rows: &[Value], columns: &[(&str, &str)]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|(_, p)| cell(r, p)).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, (h, _))| {
            cells
                .iter()
                .map(|c| c[i].chars().count())
                .chain([h.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |vals: Vec<String>| -> String {
        let mut s: String = vals
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}  "))
            .collect();
        s.truncate(s.trim_end().len());
        s + "\n"
    };
    let mut out = line(columns.iter().map(|(h, _)| h.to_string()).collect());
    for c in cells {
        out.push_str(&line(c));
    }
    out
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
    match out {
        ListFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        ListFormat::Csv => print!("{}", csv_text(&rows, LIST_COLUMNS)?),
        ListFormat::Table => print!("{}", table_text(&rows, LIST_COLUMNS)),
    }
    Ok(0)
}

/// `cmdb asset export --format csv|json`.
pub fn export(socket: &Endpoint, format: ListFormat) -> anyhow::Result<u8> {
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
        ListFormat::Csv => print!("{}", csv_text(&rows, EXPORT_COLUMNS)?),
        _ => println!("{}", serde_json::to_string_pretty(&rows)?),
    }
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
}
