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
    /// CSV with a header row: identity, manual, finance and relation
    /// columns, then chosen facts.
    Csv,
    /// An Excel workbook with the same columns (typed cells).
    Xlsx,
    /// A JSON array of whole assets.
    Json,
}

impl ExportFormat {
    fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Xlsx => "xlsx",
            ExportFormat::Json => "json",
        }
    }
}

/// How `cmdb report audit` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Aligned columns, one row per group and currency.
    Table,
    /// The whole report as JSON.
    Json,
    /// CSV, one row per group and currency.
    Csv,
    /// An Excel workbook (give -o FILE).
    Xlsx,
}

/// Sends an inventory request and returns the master's answer.
pub fn ask(socket: &Endpoint, req: AssetRequest) -> anyhow::Result<Value> {
    let answer = Client::new(socket)
        .and_then(|c| c.asset(req))
        .with_context(|| crate::run::unreachable(socket))?;
    answer.map_err(|message| anyhow::anyhow!("{message}"))
}

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

/// The options of `cmdb asset list`.
#[derive(Debug, Default)]
pub struct ListArgs {
    /// A grain expression.
    pub grain: Option<String>,
    /// A sort field.
    pub sort: Option<String>,
    /// A query (`--where`).
    pub filter: Option<String>,
    /// The columns, comma-separated paths.
    pub fields: Option<String>,
    /// At most this many.
    pub limit: Option<usize>,
    /// As of this time.
    pub at: Option<String>,
}

/// `cmdb asset list`: the assets a query selects, in the order `sort` names
/// (the master filters and sorts; see `GET /v1/assets`), with the listing's
/// columns or the fields asked for.
pub fn list(socket: &Endpoint, args: ListArgs, out: ListFormat) -> anyhow::Result<u8> {
    if args.limit == Some(0) {
        bail!("--limit must be at least 1");
    }
    let page = args.limit.map_or(master::service::MAX_PAGE, |l| {
        l.min(master::service::MAX_PAGE)
    });
    let columns: Vec<(String, String)> = match &args.fields {
        Some(f) => {
            let mut cols = vec![("ASSET_ID".to_owned(), "asset_id".to_owned())];
            for path in f.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                cols.push((path.to_ascii_uppercase(), path.to_owned()));
            }
            cols
        }
        None => master::service::inventory::LIST_COLUMNS
            .iter()
            .map(|(name, path)| (name.to_ascii_uppercase(), (*path).to_owned()))
            .collect(),
    };
    // A table or CSV needs only its columns: the master sends only those
    // parts of each asset (JSON gets whole assets unless --fields says).
    let fields = match (&args.fields, out) {
        (Some(f), _) => Some(f.clone()),
        (None, ListFormat::Json) => None,
        (None, _) => Some(
            columns
                .iter()
                .map(|(_, path)| path.as_str())
                .filter(|p| p.contains('.'))
                .collect::<Vec<_>>()
                .join(","),
        ),
    };
    let v = Client::new(socket)
        .and_then(|c| {
            c.asset_list(
                AssetRequest::List {
                    grain: args.grain,
                    q: args.filter,
                    fields,
                    at: args.at,
                    sort: args.sort,
                    cursor: None,
                    limit: page,
                },
                args.limit,
            )
        })
        .with_context(|| crate::run::unreachable(socket))?
        .map_err(|message| anyhow::anyhow!("{message}"))?;
    let rows = v.as_array().cloned().unwrap_or_default();
    match out {
        ListFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        ListFormat::Csv | ListFormat::Table => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    columns
                        .iter()
                        .map(|(_, path)| {
                            inventory::query::resolve(r, path)
                                .map(crate::output::cell)
                                .unwrap_or_default()
                        })
                        .collect()
                })
                .collect();
            if out == ListFormat::Csv {
                let mut w = csv::Writer::from_writer(Vec::new());
                w.write_record(columns.iter().map(|(h, _)| h.to_ascii_lowercase()))?;
                for r in &cells {
                    w.write_record(r)?;
                }
                print!("{}", String::from_utf8(w.into_inner()?)?);
            } else {
                let header: Vec<&str> = columns.iter().map(|(h, _)| h.as_str()).collect();
                let mut table = Table::new(&header);
                for r in cells {
                    table.push(r);
                }
                print!("{}", table.render());
            }
        }
    }
    Ok(0)
}

/// Writes `bytes` to `output`, or to standard output.
fn write_out(bytes: &[u8], output: Option<&std::path::Path>) -> anyhow::Result<()> {
    use std::io::Write;
    match output {
        Some(path) => {
            std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?
        }
        None => {
            let mut out = std::io::stdout().lock();
            match out.write_all(bytes).and_then(|()| out.flush()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
                _ => {}
            }
        }
    }
    Ok(())
}

/// `cmdb asset export`: the master's `GET /v1/assets/export`.
pub fn export(
    socket: &Endpoint,
    format: ExportFormat,
    filter: Option<String>,
    facts: Option<String>,
    at: Option<String>,
    output: Option<&std::path::Path>,
) -> anyhow::Result<u8> {
    if format == ExportFormat::Xlsx && output.is_none() {
        bail!("an XLSX export is a binary file: give -o FILE.xlsx");
    }
    let pairs: Vec<(&str, String)> = [
        ("format", Some(format.as_str().to_owned())),
        ("q", filter),
        ("facts", facts),
        ("at", at),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    let uri = format!("/v1/assets/export?{}", serde_urlencoded::to_string(&pairs)?);
    let bytes = Client::new(socket)
        .and_then(|c| c.call_bytes(hyper::Method::GET, &uri, None))
        .with_context(|| crate::run::unreachable(socket))?
        .map_err(|message| anyhow::anyhow!("{message}"))?;
    write_out(&bytes, output)?;
    Ok(0)
}

/// `cmdb asset import FILE [--dry-run]`.
pub fn import(
    socket: &Endpoint,
    file: &std::path::Path,
    dry_run: bool,
    out: ListFormat,
) -> anyhow::Result<u8> {
    use base64::Engine;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let xlsx = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("xlsx"));
    let body = if xlsx {
        serde_json::json!({
            "xlsx": base64::engine::general_purpose::STANDARD.encode(&bytes),
            "dry_run": dry_run,
        })
    } else {
        let text = String::from_utf8(bytes).map_err(|e| {
            anyhow::anyhow!(
                "{}: not UTF-8 text ({e}); an Excel file must be named .xlsx",
                file.display()
            )
        })?;
        serde_json::json!({ "csv": text, "dry_run": dry_run })
    };
    let v: Value = Client::new(socket)
        .and_then(|c| c.call(hyper::Method::POST, "/v1/assets/import", Some(&body)))
        .with_context(|| crate::run::unreachable(socket))?
        .map_err(|message| anyhow::anyhow!("{}: {message}", file.display()))?;
    if out == ListFormat::Json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    let changes = v["changes"].as_array().cloned().unwrap_or_default();
    const COLS: &[(&str, &str)] = &[
        ("ROW", "/row"),
        ("ASSET_ID", "/asset_id"),
        ("PATH", "/path"),
        ("OLD", "/old"),
        ("NEW", "/new"),
    ];
    if out == ListFormat::Csv {
        print!("{}", csv_text(&changes, COLS)?);
        return Ok(0);
    }
    if !changes.is_empty() {
        print!("{}", table_text(&changes, COLS));
    }
    println!(
        "{} {} rows: {} matched existing assets ({} unchanged), {} new assets{}",
        if dry_run { "would import" } else { "imported" },
        v["rows"],
        v["matched"],
        v["unchanged"],
        v["created"],
        match v["ignored_columns"].as_array() {
            Some(cols) if !cols.is_empty() => format!(
                "; read and ignored: {}",
                cols.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            _ => String::new(),
        }
    );
    Ok(0)
}

/// `cmdb report audit`.
pub fn audit(
    socket: &Endpoint,
    year: i32,
    group_by: &str,
    out: ReportFormat,
    output: Option<&std::path::Path>,
) -> anyhow::Result<u8> {
    let format = match out {
        ReportFormat::Csv => "csv",
        ReportFormat::Xlsx => "xlsx",
        ReportFormat::Json | ReportFormat::Table => "json",
    };
    if out == ReportFormat::Xlsx && output.is_none() {
        bail!("an XLSX report is a binary file: give -o FILE.xlsx");
    }
    let uri = format!(
        "/v1/reports/audit?{}",
        serde_urlencoded::to_string([
            ("year", year.to_string()),
            ("group_by", group_by.to_owned()),
            ("format", format.to_owned()),
        ])?
    );
    let bytes = Client::new(socket)
        .and_then(|c| c.call_bytes(hyper::Method::GET, &uri, None))
        .with_context(|| crate::run::unreachable(socket))?
        .map_err(|message| anyhow::anyhow!("{message}"))?;
    if out != ReportFormat::Table {
        write_out(&bytes, output)?;
        return Ok(0);
    }
    let report: inventory::audit::AuditReport = serde_json::from_slice(&bytes)
        .map_err(|e| anyhow::anyhow!("bad answer from the master: {e}"))?;
    let (headers, rows) = report.table();
    let header: Vec<String> = headers.iter().map(|h| h.to_ascii_uppercase()).collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut table = Table::new(&header);
    for r in &rows {
        table.push(r.iter().map(crate::output::cell).collect());
    }
    let mut text = table.render();
    if output.is_none() {
        print!("{text}");
    } else {
        text.push('\n');
        write_out(text.as_bytes(), output)?;
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
    "book_value",
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
    filter: Option<String>,
    out: ListFormat,
) -> anyhow::Result<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let v = ask(
        socket,
        AssetRequest::Changes {
            since_ms: moment(since, now)?,
            until_ms: until.map(|u| moment(u, now)).transpose()?,
            q: filter,
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

/// Unix milliseconds of a window back from `now` (`24h`) or a time
/// (`2026-01-01` from the start of that day UTC, `2026-01-01T08:00:00Z`,
/// unix milliseconds).
fn moment(text: &str, now: i64) -> anyhow::Result<i64> {
    if let Ok(secs) = parse_window(text) {
        return Ok(now - secs * 1000);
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
        return Ok(day
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
            .timestamp_millis());
    }
    inventory::lookup::parse_time(text)
        .map_err(|e| anyhow::anyhow!("{e}, or a window back such as 90s, 30m, 24h, 7d"))
}

/// Splits `key=value` words.
pub fn parse_fields(words: &[String]) -> anyhow::Result<BTreeMap<String, Value>> {
    words
        .iter()
        .map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
                .with_context(|| format!("{w:?} is not name=value"))
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
