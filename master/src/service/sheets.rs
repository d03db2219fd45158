//! Spreadsheets both ways: the export of the inventory as a table (every
//! manual, finance and relation column, and chosen facts) and the import of
//! such a table, matched row by row to assets by asset id, then serial,
//! then minion id, checked whole before anything is written.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::ServiceError;
use super::inventory::{AssetView, ChangeView};
use crate::server::{Shared, now_ms};
use inventory::fields::Schema;
use inventory::relations::RELATIONS;
use inventory::sheet::{Cell, Table};
use inventory::{AssetId, AssetRecord, Source, Status};
use store::AssetEdit;

/// Facts exported when the caller names none.
pub const DEFAULT_FACTS: &[&str] = &[
    "host",
    "fqdn",
    "os",
    "osrelease",
    "manufacturer",
    "productname",
    "uuid",
    "virtual",
    "cpu_model",
    "num_cpus",
    "mem_total_bytes",
    "ipv4",
];

/// Columns an export writes that an import reads but never writes (they
/// are collected or computed); `facts.*` columns are too.
const READ_ONLY: &[&str] = &[
    "presence",
    "version",
    "book_value",
    "created",
    "last_collect",
];

/// Columns naming which asset a row is.
const IDENTITY: &[&str] = &["asset_id", "serial", "minion"];

/// The header of an export: identity, kind and status, manual, finance,
/// relations, then `facts.KEY` for each chosen fact.
pub fn export_columns(schema: &Schema, facts: &[String]) -> Vec<String> {
    let mut cols: Vec<String> = [
        "asset_id", "kind", "name", "minion", "status", "presence", "serial",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for f in schema.manual_names() {
        if !cols.iter().any(|c| c == f) {
            cols.push(f.to_owned());
        }
    }
    for f in schema.finance_names() {
        cols.push(f.to_owned());
    }
    cols.push("book_value".into());
    cols.extend(RELATIONS.iter().map(|r| r.name.to_owned()));
    cols.extend(facts.iter().map(|f| format!("facts.{f}")));
    cols
}

/// One asset as a row of `columns`.
pub fn export_row(view: &AssetView, columns: &[String]) -> Vec<Cell> {
    columns
        .iter()
        .map(|c| {
            let v: Value = match c.as_str() {
                "asset_id" => json!(view.asset_id),
                "kind" => json!(view.kind),
                // The manual name: a collected asset's host name is a fact.
                "name" => view.manual["name"].clone(),
                "minion" => json!(view.minion),
                "status" => view.status.clone(),
                "presence" => view.presence.clone(),
                "serial" => json!(view.serial),
                "book_value" => {
                    return view.book_value.clone().map_or(Cell::Empty, Cell::Decimal);
                }
                other => {
                    if let Some(fact) = other.strip_prefix("facts.") {
                        inventory::sort::lookup(&view.facts, fact)
                            .cloned()
                            .unwrap_or(Value::Null)
                    } else if inventory::relations::relation(other).is_some() {
                        view.relations[other].clone()
                    } else if view.finance.get(other).is_some() {
                        view.finance[other].clone()
                    } else {
                        view.manual[other].clone()
                    }
                }
            };
            match v {
                Value::Array(items) if items.iter().all(Value::is_string) => Cell::Text(
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                Value::String(s) if c == "purchase_cost" => Cell::Decimal(s),
                other => inventory::sheet::to_cell(&other),
            }
        })
        .collect()
}

/// An export: the header and one row per asset, or the assets themselves
/// (for JSON).
pub struct Export {
    /// The column names.
    pub columns: Vec<String>,
    /// One row per asset.
    pub rows: Vec<Vec<Cell>>,
    /// The assets (a JSON export), instead of rows.
    pub assets: Vec<AssetView>,
}

/// The export of the assets `q` selects (as they were `at` a time): the
/// header, one row per asset, or (`with_views`) the assets themselves for
/// a JSON export instead of the rows.
pub fn export(
    shared: &Shared,
    q: Option<&str>,
    at: Option<&str>,
    facts: &[String],
    with_views: bool,
) -> Result<Export, ServiceError> {
    let filter = super::inventory::Filter::new(None, q, None, at)?;
    let schema = super::entry::schema(shared)?;
    let columns = export_columns(&schema, facts);
    let (mut rows, mut views) = (Vec::new(), Vec::new());
    filter.scan(shared, None, &mut |view| {
        if with_views {
            views.push(view);
        } else {
            rows.push(export_row(&view, &columns));
        }
        true
    })?;
    Ok(Export {
        columns,
        rows,
        assets: views,
    })
}

/// One field an import changes (or, in a dry run, would change).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportChange {
    /// The row (as the spreadsheet numbers it; the header is 1).
    pub row: usize,
    /// The asset (none: a new one).
    pub asset_id: Option<AssetId>,
    /// The field (`manual:site`, `finance:purchase_cost`, `status`…; empty
    /// with `new: "created"` for a new asset), before and after.
    #[serde(flatten)]
    pub change: ChangeView,
}

/// What an import did, or would do in a dry run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ImportSummary {
    /// Rows read.
    pub rows: usize,
    /// Rows matched to existing assets.
    pub matched: usize,
    /// Assets created (planned, waiting for a minion with their serial,
    /// unless the row gives another status).
    pub created: usize,
    /// Matched rows that change nothing.
    pub unchanged: usize,
    /// Every field changed, row by row.
    pub changes: Vec<ImportChange>,
    /// Columns read but never written (collected or computed).
    pub ignored_columns: Vec<String>,
    /// Nothing was written (dry run).
    pub dry_run: bool,
}

/// How one row names its asset.
enum Match {
    Existing(AssetRecord),
    New,
}

/// Imports `table`: every row checked and every change worked out first,
/// then written in one transaction (or only reported, `dry_run`).
pub fn import(
    shared: &Shared,
    table: &Table,
    user: &str,
    dry_run: bool,
) -> Result<ImportSummary, ServiceError> {
    let cfg = &shared.cfg.inventory;
    let schema = super::entry::schema(shared)?;
    let bad = |row: &inventory::sheet::Row, col: usize, why: String| {
        ServiceError::Unprocessable(format!("{}: {why}", table.place(row, col)))
    };
    // Columns: identity, editable fields, read-only ones; anything else
    // is refused before any row is read.
    let mut ignored = Vec::new();
    let mut editable: Vec<(usize, String)> = Vec::new();
    for (i, h) in table.headers.iter().enumerate() {
        let h = h.trim().to_ascii_lowercase();
        if IDENTITY.contains(&h.as_str()) && h != "serial" {
            continue;
        }
        if READ_ONLY.contains(&h.as_str()) || h.starts_with("facts.") || h.starts_with("facts:") {
            ignored.push(h);
            continue;
        }
        let known = h == "serial"
            || h == "kind"
            || h == "status"
            || inventory::relations::relation(&h).is_some()
            || schema.field(&h).is_some();
        if !known {
            let mut names: Vec<String> = IDENTITY.iter().map(|s| (*s).to_owned()).collect();
            names.extend(["kind".into(), "status".into()]);
            names.extend(schema.manual_names().map(str::to_owned));
            names.extend(schema.finance_names().map(str::to_owned));
            names.extend(RELATIONS.iter().map(|r| r.name.to_owned()));
            return Err(ServiceError::Unprocessable(format!(
                "{}: unknown column {h:?} (columns: {}; facts.* and {} are read and ignored)",
                header_place(table, i),
                names.join(", "),
                READ_ONLY.join(", ")
            )));
        }
        editable.push((i, h));
    }
    let col = |name: &str| {
        table
            .headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let (id_col, serial_col, minion_col) = (col("asset_id"), col("serial"), col("minion"));
    let (status_col, kind_col) = (col("status"), col("kind"));

    // Serials of every asset, for matching.
    let mut by_serial: HashMap<String, AssetId> = HashMap::new();
    shared.store.scan_assets(None, &mut |rec| {
        if let Some(s) = rec.serial() {
            by_serial
                .entry(s.to_ascii_lowercase())
                .or_insert(rec.id.clone());
        }
        true
    })?;

    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut edits = Vec::new();
    let mut summary = ImportSummary {
        rows: table.rows.len(),
        matched: 0,
        created: 0,
        unchanged: 0,
        changes: Vec::new(),
        ignored_columns: ignored,
        dry_run,
    };
    let cell = |row: &inventory::sheet::Row, c: Option<usize>| -> Option<String> {
        c.and_then(|c| row.cells.get(c))
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    for row in &table.rows {
        // Which asset: asset id, then serial, then minion id.
        let (found, key) = if let Some(id) = cell(row, id_col) {
            let col = id_col.unwrap_or(0);
            let parsed = AssetId::parse(&id)
                .ok_or_else(|| bad(row, col, format!("{id:?} is not an asset id")))?;
            let rec = shared
                .store
                .asset(&parsed)?
                .ok_or_else(|| bad(row, col, format!("no asset {id}")))?;
            (Match::Existing(rec), format!("asset {id}"))
        } else if let Some(serial) = cell(row, serial_col) {
            let col = serial_col.unwrap_or(0);
            if !inventory::is_real_serial(&serial) {
                return Err(bad(
                    row,
                    col,
                    format!("{serial:?} is a vendor placeholder, not a serial"),
                ));
            }
            match by_serial.get(&serial.to_ascii_lowercase()) {
                Some(id) => match shared.store.asset(id)? {
                    Some(rec) => (Match::Existing(rec), format!("serial {serial}")),
                    None => (Match::New, format!("serial {serial}")),
                },
                None => (Match::New, format!("serial {serial}")),
            }
        } else if let Some(minion) = cell(row, minion_col) {
            let col = minion_col.unwrap_or(0);
            let rec = shared
                .store
                .asset_of_minion(&minion)?
                .ok_or_else(|| bad(row, col, format!("no asset of minion {minion:?}")))?;
            (Match::Existing(rec), format!("minion {minion}"))
        } else {
            (Match::New, format!("row {}", row.number))
        };
        let identity = match &found {
            Match::Existing(rec) => rec.id.to_string(),
            Match::New => key.clone(),
        };
        if let Some(first) = seen.insert(identity.to_ascii_lowercase(), row.number) {
            return Err(ServiceError::Unprocessable(format!(
                "{}: {key} is also on row {first}: one row per asset",
                table.place(row, 0)
            )));
        }

        // The fields this row sets.
        let mut fields: BTreeMap<String, Value> = BTreeMap::new();
        for (i, name) in &editable {
            if *name == "status" || *name == "kind" {
                continue;
            }
            let raw = row.cells.get(*i).map(|s| s.trim()).unwrap_or_default();
            if *name == "serial" && raw.is_empty() {
                continue;
            }
            // Each value checked on its own so the error names its cell.
            if inventory::relations::relation(name).is_none() && *name != "serial" {
                schema
                    .parse(name, raw)
                    .map_err(|e| bad(row, *i, e.to_string()))?;
            }
            fields.insert(name.clone(), Value::String(raw.to_owned()));
        }
        let status = match cell(row, status_col) {
            Some(s) => Some(Status::parse(&s.to_ascii_lowercase()).ok_or_else(|| {
                bad(
                    row,
                    status_col.unwrap_or(0),
                    format!("unknown status {s:?} (planned, active, maintenance, decommissioned)"),
                )
            })?),
            None => None,
        };
        match found {
            Match::Existing(rec) => {
                summary.matched += 1;
                let mut doc = rec.document.clone();
                if let Some(k) = cell(row, kind_col)
                    && k != rec.kind()
                {
                    let kind = super::entry::kinds(shared)?
                        .parse(&k)
                        .map_err(|e| bad(row, kind_col.unwrap_or(0), e.to_string()))?;
                    doc["kind"] = json!(kind);
                }
                // A serial reported by the host is not overwritten.
                if rec.facts()["serialnumber"]
                    .as_str()
                    .is_some_and(inventory::is_real_serial)
                {
                    fields.remove("serial");
                }
                super::entry::apply(shared, &schema, &mut doc, &fields, Some(&rec.id))
                    .map_err(|e| in_row(table, row, e))?;
                if let Some(to) = status {
                    let from = rec.status();
                    if from != to && !cfg.allows(from.as_str(), to.as_str()) {
                        return Err(bad(
                            row,
                            status_col.unwrap_or(0),
                            format!(
                                "status change {} -> {} is not allowed",
                                from.as_str(),
                                to.as_str()
                            ),
                        ));
                    }
                    doc["status"] = json!(to.as_str());
                }
                let changes = inventory::document::diff(&rec.document, &doc);
                // Empty sections made for the comparison are no change.
                let changes: Vec<_> = changes
                    .into_iter()
                    .filter(|c| !(c.old.is_none() && c.new == Some(Value::Object(Map::new()))))
                    .collect();
                if changes.is_empty() {
                    summary.unchanged += 1;
                    continue;
                }
                summary.changes.extend(changes.iter().map(|c| ImportChange {
                    row: row.number,
                    asset_id: Some(rec.id.clone()),
                    change: ChangeView {
                        path: c.path_text(),
                        old: c.old.clone(),
                        new: c.new.clone(),
                    },
                }));
                edits.push(AssetEdit::Update {
                    id: rec.id.clone(),
                    document: doc,
                    if_version: Some(rec.version),
                });
            }
            Match::New => {
                summary.created += 1;
                let kind = match cell(row, kind_col) {
                    Some(k) => super::entry::kinds(shared)?
                        .parse(&k)
                        .map_err(|e| bad(row, kind_col.unwrap_or(0), e.to_string()))?
                        .to_string(),
                    None => "server".into(),
                };
                let mut doc = inventory::new_document(
                    &kind,
                    json!({}),
                    status.unwrap_or(Status::Planned),
                    Map::new(),
                    Map::new(),
                );
                doc["presence"] = json!("unknown");
                super::entry::apply(shared, &schema, &mut doc, &fields, None)
                    .map_err(|e| in_row(table, row, e))?;
                summary.changes.push(ImportChange {
                    row: row.number,
                    asset_id: None,
                    change: ChangeView {
                        path: String::new(),
                        old: None,
                        new: Some(json!("created")),
                    },
                });
                let serial = doc["manual"]["serial"].as_str().map(str::to_owned);
                edits.push(AssetEdit::Create {
                    document: doc,
                    expected_serial: serial,
                });
            }
        }
    }
    if !dry_run && !edits.is_empty() {
        shared
            .store
            .apply_edits(&edits, Source::Import, Some(user), now_ms())?;
    }
    Ok(summary)
}

/// An error about a row, with the row's place in front.
fn in_row(table: &Table, row: &inventory::sheet::Row, e: ServiceError) -> ServiceError {
    let place = match &table.sheet {
        Some(sheet) => format!("sheet {sheet:?}, row {}", row.number),
        None => format!("line {}", row.number),
    };
    match e {
        ServiceError::Unprocessable(m) | ServiceError::NotFound(m) | ServiceError::Conflict(m) => {
            ServiceError::Unprocessable(format!("{place}: {m}"))
        }
        other => other,
    }
}

/// Where a header cell is, for messages.
fn header_place(table: &Table, col: usize) -> String {
    match &table.sheet {
        Some(sheet) => format!(
            "sheet {sheet:?}, row 1, column {}",
            inventory::sheet::column_letters(col)
        ),
        None => format!("line 1, column {}", col + 1),
    }
}
