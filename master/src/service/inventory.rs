//! The inventory service: listing, showing (at any version), history,
//! diffs, manual fields, status, CSV import, duplicate serials and
//! fleet-wide changes, with typed answers and [`ServiceError`]s.

use std::collections::BTreeMap;
use std::sync::Arc;

use protocol::Jid;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Page, ServiceError};
use crate::server::{Shared, now_ms};
use inventory::document::diff;
use inventory::sort::SortField;
use inventory::{self, AssetId, AssetRecord, ChangeRecord, FieldChange, Source, Status};
use store::AssetEdit;

/// An inventory request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "asset_op", rename_all = "snake_case")]
pub enum AssetRequest {
    /// Every asset, optionally only those whose facts match a grain expression.
    List {
        /// `key:value` grain expression.
        grain: Option<String>,
        /// A query (`facts.os = Debian and department = games`).
        #[serde(default)]
        q: Option<String>,
        /// Only these paths of facts, manual, finance and relations
        /// (comma-separated, as in queries); none: all.
        #[serde(default)]
        fields: Option<String>,
        /// Every asset as it was at this time.
        #[serde(default)]
        at: Option<String>,
        /// Order by this column or path (`-` first: descending); none: by
        /// asset id.
        #[serde(default)]
        sort: Option<String>,
        /// After this cursor (a page's `next`).
        cursor: Option<String>,
        /// At most this many.
        limit: usize,
    },
    /// One asset, at its latest or an earlier version.
    Show {
        /// Asset id, minion id, serial, asset tag, name, IP or MAC.
        key: String,
        /// Version to rebuild.
        version: Option<u64>,
        /// Rebuild the version it had at this time (a date, a date and
        /// time, or unix milliseconds).
        #[serde(default)]
        at: Option<String>,
    },
    /// One asset's change history.
    History {
        /// Asset id or minion id.
        key: String,
    },
    /// Field differences between two versions (default: the last change).
    Diff {
        /// Asset id or minion id.
        key: String,
        /// From this version.
        from: Option<u64>,
        /// To this version.
        to: Option<u64>,
    },
    /// Set manual fields and/or change the operator status, in one
    /// versioned change.
    Patch {
        /// Asset id, minion id, serial, asset tag, name, IP or MAC.
        key: String,
        /// Field values by name (manual and finance fields, `serial`,
        /// `kind`, relations); null or an empty text removes the field.
        fields: BTreeMap<String, Value>,
        /// New status.
        status: Option<String>,
        /// The version the caller read (`If-Match`); a newer one refuses
        /// the change (412).
        if_match: Option<u64>,
        /// Who.
        user: String,
    },
    /// Enter an asset no minion reports (a switch, a PDU, a rack, a
    /// planned server).
    Add {
        /// Its kind.
        kind: String,
        /// Field values by name, as for a patch.
        fields: BTreeMap<String, Value>,
        /// Its status (default active).
        status: Option<String>,
        /// Who.
        user: String,
    },
    /// Assets sharing a system serial number.
    Dups,
    /// The year-end audit: per group, assets by kind and status, cost,
    /// book value and depreciation.
    Audit {
        /// The year.
        year: i32,
        /// `department`, `business_line` or `site`.
        group_by: String,
    },
    /// Every change since a time.
    Changes {
        /// From this time, unix milliseconds.
        since_ms: i64,
        /// Before this time (none: up to now).
        until_ms: Option<i64>,
        /// Only changes of the assets this query selects (as they are now).
        #[serde(default)]
        q: Option<String>,
        /// After this cursor (a page's `next`).
        cursor: Option<String>,
        /// At most this many.
        limit: usize,
    },
}

/// The asset `key` names: its asset id, its minion id, else its serial,
/// asset tag, name, IP or MAC address. A reference several assets answer
/// to is refused with the list of them.
pub fn resolve(shared: &Shared, key: &str) -> Result<AssetRecord, ServiceError> {
    if let Some(id) = AssetId::parse(key)
        && let Some(rec) = shared.store.asset(&id)?
    {
        return Ok(rec);
    }
    if let Some(rec) = shared.store.asset_of_minion(key)? {
        return Ok(rec);
    }
    const SHOWN: usize = 10;
    let mut found: Vec<(AssetRecord, inventory::lookup::Matched)> = Vec::new();
    shared.store.scan_assets(None, &mut |rec| {
        if let Some(m) = inventory::lookup::answers_to(&rec, key) {
            found.push((rec, m));
        }
        found.len() <= SHOWN
    })?;
    match found.len() {
        0 => Err(ServiceError::NotFound(format!(
            "no asset {key:?}: it is no asset id, minion id, serial, asset tag, name, \
             IP or MAC address of an asset"
        ))),
        1 => Ok(found.remove(0).0),
        n => {
            let list: Vec<String> = found
                .iter()
                .take(SHOWN)
                .map(|(r, m)| {
                    format!(
                        "{} ({} {}, by {})",
                        r.id,
                        r.kind(),
                        r.name().unwrap_or_else(|| "unnamed".into()),
                        m.as_str()
                    )
                })
                .collect();
            Err(ServiceError::Conflict(format!(
                "{key:?} is ambiguous: {}{} assets answer to it: {}; name one by its asset id",
                if n > SHOWN { "more than " } else { "" },
                n.min(SHOWN),
                list.join(", ")
            )))
        }
    }
}

/// One field change: its path (keys joined by `:`), old and new values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChangeView {
    /// The field's path.
    pub path: String,
    /// The value before (null when added).
    pub old: Option<Value>,
    /// The value after (null when removed).
    pub new: Option<Value>,
}

/// One entry of an asset's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    /// The version it produced.
    pub version: u64,
    /// When, unix milliseconds.
    pub at_ms: i64,
    /// What caused it.
    pub source: Source,
    /// The job whose return caused it.
    pub jid: Option<Jid>,
    /// The operator who made it.
    pub user: Option<String>,
    /// The field changes.
    pub changes: Vec<ChangeView>,
}

/// An asset's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HistoryView {
    /// The asset.
    pub asset_id: AssetId,
    /// Its minion, if any.
    pub minion: Option<String>,
    /// Oldest first.
    pub history: Vec<HistoryEntry>,
}

/// The field differences between two versions of an asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DiffView {
    /// The asset.
    pub asset_id: AssetId,
    /// From this version.
    pub from: u64,
    /// To this version.
    pub to: u64,
    /// What differs.
    pub changes: Vec<ChangeView>,
}

/// An asset as shown to operators, at one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AssetView {
    /// Its id.
    pub asset_id: AssetId,
    /// Its minion, if any.
    pub minion: Option<String>,
    /// The version shown.
    pub version: u64,
    /// The latest version.
    pub latest_version: u64,
    /// Operator status.
    pub status: Value,
    /// `online` or `offline`.
    pub presence: Value,
    /// System serial number.
    pub serial: Option<String>,
    /// Created, unix milliseconds.
    pub created_ms: i64,
    /// Last collect, unix milliseconds.
    pub last_collect_ms: Option<i64>,
    /// What it is: `server`, `vm`, `switch`, `pdu`, `rack`, …
    pub kind: String,
    /// The name operators know it by: the manual name, else the host name
    /// it reports, else its minion id.
    pub name: Option<String>,
    /// Manual (organisation) fields.
    pub manual: Value,
    /// Finance fields.
    pub finance: Value,
    /// Its book value today (straight-line, monthly; computed from the
    /// finance fields, never stored), when it has a cost, a purchase date
    /// and a depreciation period.
    pub book_value: Option<String>,
    /// Relations it holds: `runs_on`, `located_in` (an asset id each),
    /// `connected_to` (a list of asset ids).
    pub relations: Value,
    /// Its relations on both ends, with the other asset's kind and name
    /// (shown for one asset, not in listings).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    /// Collected facts (volatile ones current at the latest version).
    pub facts: Value,
}

/// One end of a relation, seen from the asset shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Link {
    /// The relation as seen from the asset shown: `runs_on`, `located_in`,
    /// `connected_to`, or from the other end `hosts`, `contains`.
    pub relation: String,
    /// The other asset.
    pub asset_id: AssetId,
    /// Its kind.
    pub kind: String,
    /// Its name.
    pub name: Option<String>,
}

/// One line of the fleet-wide change feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChangeFeedEntry {
    /// When, unix milliseconds.
    pub at_ms: i64,
    /// The asset.
    pub asset_id: AssetId,
    /// Its minion, if any.
    pub minion: Option<String>,
    /// The version the change produced.
    pub version: u64,
    /// What caused it.
    pub source: Source,
    /// The job, if any.
    pub jid: Option<Jid>,
    /// The operator, if any.
    pub user: Option<String>,
    /// The field's path (empty for a creation).
    pub path: String,
    /// Before.
    pub old: Option<Value>,
    /// After (`"created"` for a creation).
    pub new: Option<Value>,
}

/// An answer of the inventory service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AssetAnswer {
    /// One asset.
    Asset(Box<AssetView>),
    /// Several assets.
    Assets(Page<AssetView>),
    /// A history.
    History(HistoryView),
    /// A diff.
    Diff(DiffView),
    /// Assets sharing a serial, by serial.
    Dups(BTreeMap<String, Vec<Value>>),
    /// The change feed.
    Changes(Page<ChangeFeedEntry>),
    /// The year-end audit.
    Audit(Box<inventory::audit::AuditReport>),
}

fn history_view(h: &ChangeRecord) -> HistoryEntry {
    HistoryEntry {
        version: h.version,
        at_ms: h.at_ms,
        source: h.source,
        jid: h.jid.clone(),
        user: h.user.clone(),
        changes: h.changes.iter().map(change_view).collect(),
    }
}

fn change_view(c: &FieldChange) -> ChangeView {
    ChangeView {
        path: c.path_text(),
        old: c.old.clone(),
        new: c.new.clone(),
    }
}

/// The view of an asset at its latest version, moving its parts instead of
/// copying them (listings show many).
fn latest_view(mut rec: AssetRecord) -> AssetView {
    let serial = rec.serial();
    let (kind, name) = (rec.kind(), rec.name());
    let facts = rec.take_full_facts();
    let mut take = |key: &str| {
        rec.document
            .get_mut(key)
            .map(Value::take)
            .unwrap_or(Value::Null)
    };
    let (status, presence, manual) = (take("status"), take("presence"), take("manual"));
    let (finance, relations) = (take("finance"), take("relations"));
    AssetView {
        asset_id: rec.id,
        minion: rec.minion,
        version: rec.version,
        latest_version: rec.version,
        status,
        presence,
        serial,
        created_ms: rec.created_ms,
        last_collect_ms: rec.last_collect_ms,
        kind,
        name,
        manual: or_empty(manual),
        book_value: book_value(&finance),
        finance: or_empty(finance),
        relations: or_empty(relations),
        links: Vec::new(),
        facts,
    }
}

fn record_view(rec: &AssetRecord, document: &Value, version: u64) -> AssetView {
    let facts = match (version == rec.version, rec.full_facts()) {
        (true, full @ Value::Object(_)) if document["facts"].is_object() => full,
        _ => document["facts"].clone(),
    };
    // Kind, name and serial as they were at that version.
    let then = AssetRecord {
        document: document.clone(),
        ..rec.clone()
    };
    AssetView {
        asset_id: rec.id.clone(),
        minion: rec.minion.clone(),
        version,
        latest_version: rec.version,
        status: document["status"].clone(),
        presence: document["presence"].clone(),
        serial: then.serial(),
        created_ms: rec.created_ms,
        last_collect_ms: rec.last_collect_ms,
        kind: then.kind(),
        name: then.name(),
        manual: or_empty(document["manual"].clone()),
        book_value: book_value(&document["finance"]),
        finance: or_empty(document["finance"].clone()),
        relations: or_empty(document["relations"].clone()),
        links: Vec::new(),
        facts,
    }
}

/// The book value today of an asset with these finance fields.
fn book_value(finance: &Value) -> Option<String> {
    inventory::finance::Finance::from_document(finance)
        .book_value_on(chrono::Utc::now().date_naive())
        .map(|m| m.to_string())
}

/// An absent section shown as an empty object.
fn or_empty(v: Value) -> Value {
    if v.is_null() { json!({}) } else { v }
}

/// The relations of the asset `view` shows, on both ends: those it holds
/// and those other assets hold to it (one scan of the inventory).
fn links(shared: &Shared, view: &AssetView) -> Result<Vec<Link>, ServiceError> {
    use inventory::relations::{RELATIONS, reverse_links, targets};
    let doc = json!({"relations": view.relations});
    let mut own: Vec<(&'static str, AssetId)> = Vec::new();
    for r in RELATIONS {
        for id in targets(&doc, r) {
            own.push((r.name, id));
        }
    }
    let mut out = Vec::new();
    shared.store.scan_assets(None, &mut |other| {
        let link = |relation: &str| Link {
            relation: relation.to_owned(),
            asset_id: other.id.clone(),
            kind: other.kind(),
            name: other.name(),
        };
        for (relation, id) in &own {
            if *id == other.id {
                out.push(link(relation));
            }
        }
        if other.id != view.asset_id {
            for relation in reverse_links(&other, &view.asset_id) {
                // connected_to is symmetric: shown once.
                if !(relation == "connected_to" && own.iter().any(|(_, id)| *id == other.id)) {
                    out.push(link(relation));
                }
            }
        }
        true
    })?;
    out.sort_by(|a, b| (&a.relation, &a.name).cmp(&(&b.relation, &b.name)));
    Ok(out)
}

/// The version `rec` had at the time `at` names.
fn version_at(shared: &Shared, rec: &AssetRecord, at: &str) -> Result<u64, ServiceError> {
    use inventory::lookup::At;
    let at_ms =
        inventory::lookup::parse_time(at).map_err(|e| ServiceError::Invalid(e.to_string()))?;
    let history = shared.store.history(&rec.id)?;
    match inventory::lookup::version_at(rec, &history, at_ms) {
        At::Version(v) => Ok(v),
        At::NotYet => Err(ServiceError::NotFound(format!(
            "asset {} did not exist at {at} (it was created at {} ms)",
            rec.id, rec.created_ms
        ))),
        At::Pruned => Err(ServiceError::NotFound(format!(
            "the history of asset {} at {at} was pruned (history_keep)",
            rec.id
        ))),
    }
}

fn rebuild(shared: &Shared, rec: &AssetRecord, version: u64) -> Result<Value, ServiceError> {
    let history = shared.store.history(&rec.id)?;
    inventory::rebuild(rec, &history, version).ok_or_else(|| {
        ServiceError::NotFound(format!(
            "asset {} has no version {version} (latest {}, or it was pruned)",
            rec.id, rec.version
        ))
    })
}

/// The columns of an asset listing (`cmdb asset list`): each name and the
/// path of its value in an [`AssetView`]. `--sort` and `?sort=` take these
/// names as well as paths.
pub const LIST_COLUMNS: &[(&str, &str)] = &[
    ("asset_id", "asset_id"),
    ("kind", "kind"),
    ("minion", "minion"),
    ("host", "facts.host"),
    ("os", "facts.os"),
    ("release", "facts.osrelease"),
    ("serial", "serial"),
    ("status", "status"),
    ("presence", "presence"),
    ("site", "manual.site"),
    ("rack", "manual.rack"),
];

/// The fields of an [`AssetView`] a sort path may start with.
const VIEW_FIELDS: &[&str] = &[
    "asset_id",
    "minion",
    "version",
    "latest_version",
    "status",
    "presence",
    "serial",
    "created_ms",
    "last_collect_ms",
    "kind",
    "name",
    "manual",
    "finance",
    "relations",
    "facts",
];

/// How a listing is ordered: the field as the caller gave it, and the path
/// into an [`AssetView`] it names.
#[derive(Debug, Clone)]
struct AssetSort {
    /// The text of `sort`, which a cursor must repeat.
    given: String,
    /// The resolved path (a column name replaced by its path).
    field: SortField,
}

impl AssetSort {
    /// Resolves a column name (`os`, `id` for `asset_id`; any case) or a
    /// path whose first segment is a field of [`AssetView`].
    fn parse(text: &str) -> Result<AssetSort, ServiceError> {
        let mut field = SortField::parse(text).map_err(ServiceError::Invalid)?;
        let (root, rest) = inventory::sort::split_root(&field.path);
        let root = root.to_ascii_lowercase();
        let column = LIST_COLUMNS
            .iter()
            .find(|(name, _)| *name == root || (root == "id" && *name == "asset_id"));
        match column {
            Some((_, path)) if rest.is_empty() => field.path = (*path).to_owned(),
            _ if VIEW_FIELDS.contains(&root.as_str()) => {
                if matches!(root.as_str(), "facts" | "manual" | "finance" | "relations")
                    && rest.is_empty()
                {
                    return Err(ServiceError::Invalid(format!(
                        "sort field {text:?} names all of {root}: give a key under it, \
                         such as {root}.{}",
                        if root == "facts" { "os" } else { "site" }
                    )));
                }
                field.path = if rest.is_empty() {
                    root
                } else {
                    format!("{root}.{rest}")
                };
            }
            _ => {
                let columns: Vec<&str> = LIST_COLUMNS.iter().map(|(n, _)| *n).collect();
                return Err(ServiceError::Invalid(format!(
                    "unknown sort field {text:?}: give a column ({}) or a path into the asset \
                     (facts.KEY, manual.KEY, version, created_ms, last_collect_ms); \
                     a leading - sorts descending",
                    columns.join(", ")
                )));
            }
        }
        Ok(AssetSort {
            given: text.to_owned(),
            field,
        })
    }

    /// The value this sort orders `view` by.
    fn value_of(&self, view: &AssetView) -> Option<Value> {
        let (root, rest) = inventory::sort::split_root(&self.field.path);
        let whole = match root {
            "asset_id" => return Some(json!(view.asset_id)),
            "minion" => return view.minion.as_ref().map(|m| json!(m)),
            "version" => return Some(json!(view.version)),
            "latest_version" => return Some(json!(view.latest_version)),
            "serial" => return view.serial.as_ref().map(|s| json!(s)),
            "created_ms" => return Some(json!(view.created_ms)),
            "last_collect_ms" => return view.last_collect_ms.map(|t| json!(t)),
            "kind" => return Some(json!(view.kind)),
            "name" => return view.name.as_ref().map(|n| json!(n)),
            "finance" => &view.finance,
            "relations" => &view.relations,
            "status" => &view.status,
            "presence" => &view.presence,
            "manual" => &view.manual,
            "facts" => &view.facts,
            _ => return None,
        };
        inventory::sort::lookup(whole, rest).cloned()
    }
}

/// Where a sorted page ends: the sort it was given for, the last asset's
/// value and its id. Sent as the hex of its JSON, so it is opaque and safe
/// in a query string.
#[derive(Debug, Serialize, Deserialize)]
struct SortCursor {
    sort: String,
    value: Option<Value>,
    id: AssetId,
}

impl SortCursor {
    fn encode(&self) -> String {
        serde_json::to_vec(self)
            .unwrap_or_default()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn decode(text: &str, sort: &AssetSort) -> Result<SortCursor, ServiceError> {
        let bad = || ServiceError::Invalid(format!("cursor {text:?} is not one this API gave"));
        if !text.len().is_multiple_of(2) || !text.is_ascii() {
            return Err(bad());
        }
        let bytes = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| bad())?;
        let cursor: SortCursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if cursor.sort != sort.given {
            return Err(ServiceError::Invalid(format!(
                "cursor was given for sort={:?}, not sort={:?}; keep the sort while following next",
                cursor.sort, sort.given
            )));
        }
        Ok(cursor)
    }
}

/// One page of assets in `sort`'s order (ties by asset id), after `cursor`.
/// Only each asset's sort value is kept while scanning; the page's assets
/// are read again by id.
fn sorted_page(
    shared: &Shared,
    filter: &Filter,
    sort: &AssetSort,
    cursor: Option<&str>,
    limit: usize,
) -> Result<AssetAnswer, ServiceError> {
    let after = cursor
        .map(|c| SortCursor::decode(c, sort))
        .transpose()?
        .map(|c| (c.value, c.id));
    let order = |a: &(Option<Value>, AssetId), b: &(Option<Value>, AssetId)| {
        sort.field
            .compare(a.0.as_ref(), b.0.as_ref())
            .then_with(|| a.1.cmp(&b.1))
    };
    let mut keyed: Vec<(Option<Value>, AssetId)> = Vec::new();
    filter.scan_keys(shared, sort, &mut |key| {
        if after.as_ref().is_none_or(|a| order(&key, a).is_gt()) {
            keyed.push(key);
        }
    })?;
    // Only the page is sorted: the rest is split off around its end.
    let more = keyed.len() > limit;
    if more {
        keyed.select_nth_unstable_by(limit, order);
        keyed.truncate(limit);
    }
    keyed.sort_by(order);
    let next = match keyed.last() {
        Some((value, id)) if more => Some(
            SortCursor {
                sort: sort.given.clone(),
                value: value.clone(),
                id: id.clone(),
            }
            .encode(),
        ),
        _ => None,
    };
    let mut items = Vec::with_capacity(keyed.len());
    for (_, id) in &keyed {
        // An asset removed since the scan is left out.
        if let Some(view) = filter.view_by_id(shared, id)? {
            items.push(filter.trim(view));
        }
    }
    Ok(AssetAnswer::Assets(Page { items, next }))
}

/// Which assets a listing or an export holds, at which time, with which
/// parts.
pub struct Filter {
    grain: Option<protocol::Matcher>,
    query: Option<inventory::query::Query>,
    fields: Option<Vec<String>>,
    at_ms: Option<i64>,
    /// Paths the caller reads from each view besides `fields` (a sort).
    needs: Vec<String>,
}

/// An asset's query view with every fact: what the index keeps (large
/// facts left out) and queries read.
pub fn query_root(rec: AssetRecord) -> Value {
    let mut view = latest_view(rec);
    into_root(&mut view)
}

/// A view from a query root (the index's entry): the latest version, no
/// links.
fn view_from_root(
    id: &AssetId,
    root: &Value,
    version: u64,
    fields: Option<&[String]>,
) -> AssetView {
    let text = |k: &str| root.get(k).and_then(Value::as_str).map(str::to_owned);
    // Only the parts asked for are copied.
    let kept = fields.map(|f| kept_parts(f, root));
    let part = |k: &str| {
        kept.as_ref()
            .unwrap_or(root)
            .get(k)
            .cloned()
            .unwrap_or_else(|| json!({}))
    };
    AssetView {
        asset_id: id.clone(),
        minion: text("minion"),
        version,
        latest_version: version,
        status: root.get("status").cloned().unwrap_or(Value::Null),
        presence: root.get("presence").cloned().unwrap_or(Value::Null),
        serial: text("serial"),
        created_ms: root.get("created_ms").and_then(Value::as_i64).unwrap_or(0),
        last_collect_ms: root.get("last_collect_ms").and_then(Value::as_i64),
        kind: text("kind").unwrap_or_default(),
        name: text("name"),
        manual: part("manual"),
        book_value: text("book_value"),
        finance: part("finance"),
        relations: part("relations"),
        links: Vec::new(),
        facts: part("facts"),
    }
}

impl Filter {
    /// Checks the parameters of a listing: a grain expression, a query,
    /// fields (comma-separated paths) and a time.
    pub fn new(
        grain: Option<&str>,
        q: Option<&str>,
        fields: Option<&str>,
        at: Option<&str>,
    ) -> Result<Filter, ServiceError> {
        let grain = match grain {
            Some(g) => Some(
                protocol::Target::Grain(g.to_owned())
                    .matcher()
                    .map_err(|e| ServiceError::Invalid(e.to_string()))?,
            ),
            None => None,
        };
        let query = match q.map(str::trim).filter(|q| !q.is_empty()) {
            Some(text) => Some(inventory::query::Query::new(
                inventory::query::parse(text)
                    .map_err(|e| ServiceError::Invalid(format!("q: {e}\n{}", e.caret(text))))?,
            )),
            None => None,
        };
        let fields = fields.map(|f| {
            f.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect::<Vec<String>>()
        });
        if let Some(f) = &fields
            && let Some(bad) = f
                .iter()
                .find(|p| p.len() > inventory::sort::MAX_FIELD_BYTES)
        {
            return Err(ServiceError::Invalid(format!(
                "fields: a path of {} bytes is longer than {}",
                bad.len(),
                inventory::sort::MAX_FIELD_BYTES
            )));
        }
        let at_ms = at
            .map(inventory::lookup::parse_time)
            .transpose()
            .map_err(|e| ServiceError::Invalid(format!("at: {e}")))?;
        Ok(Filter {
            grain,
            query,
            fields,
            at_ms,
            needs: Vec::new(),
        })
    }

    /// The paths a view from the index must hold: the fields asked for
    /// and what the caller reads besides (none: every part).
    fn wanted(&self) -> Option<Vec<String>> {
        self.fields
            .as_ref()
            .map(|f| f.iter().chain(&self.needs).cloned().collect())
    }

    /// Says that the caller reads `path` from each view too (a sort).
    pub fn need(&mut self, path: &str) {
        self.needs.push(path.to_owned());
    }

    /// The paths this listing reads from a view: its fields and what its
    /// sort needs (none when it asks for no fields: it shows whole assets).
    fn viewed(&self) -> Vec<&str> {
        match &self.fields {
            Some(f) => f.iter().chain(&self.needs).map(String::as_str).collect(),
            None => Vec::new(),
        }
    }

    /// Whether the index's entry holds every path this listing reads from
    /// a view (only when it asks for some fields).
    fn entry_serves_views(&self, e: &super::index::Entry) -> bool {
        self.fields.is_some() && self.viewed().iter().all(|p| e.covers(p))
    }

    /// The view of the asset `id` now (from the index when it holds what
    /// the listing reads), if it passes.
    pub fn view_by_id(
        &self,
        shared: &Shared,
        id: &AssetId,
    ) -> Result<Option<AssetView>, ServiceError> {
        if self.at_ms.is_none()
            && self.grain.is_none()
            && let Some(e) = shared.index.get(id)
            && self.entry_serves_views(&e)
            && self.query_paths().iter().all(|p| e.covers(p))
        {
            if self.query.as_ref().is_some_and(|q| !q.matches(&e.root)) {
                return Ok(None);
            }
            return Ok(Some(view_from_root(
                id,
                &e.root,
                e.version,
                self.wanted().as_deref(),
            )));
        }
        match shared.store.asset(id)? {
            Some(rec) => self.view(shared, rec),
            None => Ok(None),
        }
    }

    fn query_paths(&self) -> Vec<&str> {
        self.query
            .as_ref()
            .map(|q| q.expr().paths())
            .unwrap_or_default()
    }

    /// The sort key and id of each asset that passes: from the index
    /// when its entry holds the query's paths and the sort's, else from
    /// the asset's view.
    fn scan_keys(
        &self,
        shared: &Shared,
        sort: &AssetSort,
        visit: &mut dyn FnMut((Option<Value>, AssetId)),
    ) -> Result<(), ServiceError> {
        if self.at_ms.is_some() || self.grain.is_some() {
            return self.scan(shared, None, &mut |view| {
                visit((sort.value_of(&view), view.asset_id));
                true
            });
        }
        Filter::refresh_index(shared)?;
        let paths = self.query_paths();
        let path = match sort.field.path.as_str() {
            "latest_version" => "version",
            p => p,
        };
        let mut reads = paths.clone();
        reads.push(path);
        let snap = shared.index.after_for(None, &reads);
        for (id, e) in &snap.entries {
            if reads.iter().all(|p| snap.covers(e, p)) {
                if self
                    .query
                    .as_ref()
                    .is_some_and(|q| !q.matches_without_facts(&e.root, &snap.no_fact))
                {
                    continue;
                }
                let key = inventory::sort::lookup(&e.root, path)
                    .filter(|v| !v.is_null())
                    .cloned();
                visit((key, id.clone()));
                continue;
            }
            let Some(rec) = shared.store.asset(id)? else {
                continue;
            };
            if let Some(view) = self.view(shared, rec)? {
                visit((sort.value_of(&view), view.asset_id));
            }
        }
        Ok(())
    }

    /// Brings the index up to date.
    pub fn refresh_index(shared: &Shared) -> Result<(), ServiceError> {
        shared.index.refresh(&*shared.store, &query_root)?;
        Ok(())
    }

    /// `scan` over the index: a query the entries cover is answered from
    /// them, and so are views when the listing asks only for fields they
    /// hold; anything else reads that asset from the store.
    fn scan_indexed(
        &self,
        shared: &Shared,
        after: Option<&AssetId>,
        visit: &mut dyn FnMut(AssetView) -> bool,
    ) -> Result<(), ServiceError> {
        Filter::refresh_index(shared)?;
        let paths = self.query_paths();
        let wanted = self.wanted();
        let viewed = self.viewed();
        let mut reads = paths.clone();
        reads.extend(&viewed);
        let snap = shared.index.after_for(after, &reads);
        let passes = |e: &super::index::Entry| {
            self.query
                .as_ref()
                .is_none_or(|q| q.matches_without_facts(&e.root, &snap.no_fact))
        };
        for (id, e) in &snap.entries {
            let from_entry = paths.iter().all(|p| snap.covers(e, p));
            let serves_views = self.fields.is_some() && viewed.iter().all(|p| snap.covers(e, p));
            if from_entry && serves_views {
                if !passes(e) {
                    continue;
                }
                if !visit(view_from_root(id, &e.root, e.version, wanted.as_deref())) {
                    break;
                }
                continue;
            }
            if from_entry && !passes(e) {
                continue;
            }
            // An asset removed since the index was read is left out.
            let Some(rec) = shared.store.asset(id)? else {
                continue;
            };
            if let Some(view) = self.view(shared, rec)?
                && !visit(view)
            {
                break;
            }
        }
        Ok(())
    }

    /// The view of `rec` (as it was at the filter's time) when it passes,
    /// else `None`.
    pub fn view(
        &self,
        shared: &Shared,
        rec: AssetRecord,
    ) -> Result<Option<AssetView>, ServiceError> {
        let mut view = match self.at_ms {
            None => {
                if let Some(m) = &self.grain
                    && !m.matches("", Some(&rec.full_facts()))
                {
                    return Ok(None);
                }
                latest_view(rec)
            }
            Some(at_ms) => {
                let history = shared.store.history(&rec.id)?;
                let v = match inventory::lookup::version_at(&rec, &history, at_ms) {
                    inventory::lookup::At::Version(v) => v,
                    // Not there yet, or that time was pruned: left out.
                    _ => return Ok(None),
                };
                let Some(doc) = inventory::rebuild(&rec, &history, v) else {
                    return Ok(None);
                };
                if let Some(m) = &self.grain
                    && !m.matches("", Some(&doc["facts"]))
                {
                    return Ok(None);
                }
                record_view(&rec, &doc, v)
            }
        };
        if let Some(q) = &self.query {
            let root = into_root(&mut view);
            let keep = q.matches(&root);
            out_of_root(&mut view, root);
            if !keep {
                return Ok(None);
            }
        }
        Ok(Some(view))
    }

    /// Each asset after `after` (in id order) that passes, as its view,
    /// handed to `visit` until it answers false.
    pub fn scan(
        &self,
        shared: &Shared,
        after: Option<&AssetId>,
        visit: &mut dyn FnMut(AssetView) -> bool,
    ) -> Result<(), ServiceError> {
        if self.at_ms.is_none() && self.grain.is_none() {
            return self.scan_indexed(shared, after, visit);
        }
        let mut failed = None;
        shared
            .store
            .scan_assets(after, &mut |rec| match self.view(shared, rec) {
                Ok(Some(view)) => visit(view),
                Ok(None) => true,
                Err(e) => {
                    failed = Some(e);
                    false
                }
            })?;
        failed.map_or(Ok(()), Err)
    }

    /// `view` with only the asked fields of its facts, manual, finance and
    /// relations (all when none were asked).
    pub fn trim(&self, mut view: AssetView) -> AssetView {
        let Some(fields) = &self.fields else {
            return view;
        };
        let root = into_root(&mut view);
        let kept = kept_parts(fields, &root);
        out_of_root(&mut view, kept);
        view
    }
}

/// The facts, manual, finance and relation parts of `root` that `fields`
/// name (each path as given, else under facts, manual, then finance).
fn kept_parts(fields: &[String], root: &Value) -> Value {
    let mut kept = json!({"facts": {}, "manual": {}, "finance": {}, "relations": {}});
    for path in fields {
        let (first, after) = inventory::sort::split_root(path);
        let as_given =
            matches!(first, "facts" | "manual" | "finance" | "relations").then_some((first, after));
        let bare = ["facts", "manual", "finance"].map(|section| (section, path.as_str()));
        for (section, rest) in as_given.into_iter().chain(bare) {
            if rest.is_empty() {
                continue;
            }
            if let Some(v) = root
                .get(section)
                .and_then(|part| inventory::sort::lookup(part, rest))
            {
                let keys: Vec<String> = rest.split(['.', ':']).map(str::to_owned).collect();
                let mut at = &mut kept[section];
                for k in &keys {
                    at = &mut at[k.as_str()];
                }
                *at = v.clone();
                break;
            }
        }
    }
    kept
}

/// An asset view as the JSON object queries are evaluated on; the big
/// parts are moved, not copied ([`out_of_root`] moves them back).
fn into_root(view: &mut AssetView) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("asset_id".into(), json!(view.asset_id));
    m.insert("kind".into(), json!(view.kind));
    m.insert("name".into(), json!(view.name));
    m.insert("minion".into(), json!(view.minion));
    m.insert("status".into(), view.status.clone());
    m.insert("presence".into(), view.presence.clone());
    m.insert("serial".into(), json!(view.serial));
    m.insert("version".into(), json!(view.version));
    m.insert("created_ms".into(), json!(view.created_ms));
    m.insert("last_collect_ms".into(), json!(view.last_collect_ms));
    m.insert("book_value".into(), json!(view.book_value));
    m.insert("facts".into(), view.facts.take());
    m.insert("manual".into(), view.manual.take());
    m.insert("finance".into(), view.finance.take());
    m.insert("relations".into(), view.relations.take());
    Value::Object(m)
}

fn out_of_root(view: &mut AssetView, mut root: Value) {
    let mut take = |k: &str| root.get_mut(k).map(Value::take).unwrap_or(json!({}));
    view.facts = take("facts");
    view.manual = take("manual");
    view.finance = take("finance");
    view.relations = take("relations");
}

/// Sets `runs_on` of every VM whose system UUID a host reports among its
/// running guests (`facts.guests`), when it differs: the facts are newer
/// than a hand-set value. Each change is versioned with source `collect`.
/// Returns how many VMs changed.
pub fn relate_guests(shared: &Shared) -> Result<usize, ServiceError> {
    use inventory::relations::{guest_uuids, relation, set, targets, vm_uuid};
    let Some(runs_on) = relation("runs_on") else {
        return Ok(0);
    };
    // One pass over the assets: the hosts of the guests they report, and
    // each asset with a system UUID and the hosts it runs on now. A VM is
    // told from its host once every asset is read.
    let mut host_of: std::collections::HashMap<String, AssetId> = std::collections::HashMap::new();
    let mut vms: Vec<(String, AssetId, Vec<AssetId>)> = Vec::new();
    shared.store.scan_assets(None, &mut |rec| {
        for uuid in guest_uuids(&rec) {
            host_of.insert(uuid, rec.id.clone());
        }
        if let Some(uuid) = vm_uuid(&rec) {
            vms.push((uuid, rec.id.clone(), targets(&rec.document, runs_on)));
        }
        true
    })?;
    let mut edits = Vec::new();
    for (uuid, id, hosts) in vms {
        let Some(host) = host_of.get(&uuid).filter(|h| **h != id) else {
            continue;
        };
        if hosts == std::slice::from_ref(host) {
            continue;
        }
        // Read again for its document, and to leave it be if it was set
        // since the pass read it.
        let Some(rec) = shared.store.asset(&id)? else {
            continue;
        };
        if targets(&rec.document, runs_on) == std::slice::from_ref(host) {
            continue;
        }
        let mut doc = rec.document;
        set(&mut doc, runs_on, std::slice::from_ref(host));
        edits.push(AssetEdit::Update {
            id,
            document: doc,
            if_version: Some(rec.version),
        });
    }
    if !edits.is_empty() {
        shared
            .store
            .apply_edits(&edits, Source::Collect, None, now_ms())?;
    }
    Ok(edits.len())
}

/// The year-end audit of `year`, grouped by a manual field.
pub fn audit(
    shared: &Shared,
    year: i32,
    group_by: &str,
) -> Result<inventory::audit::AuditReport, ServiceError> {
    use inventory::audit::{AuditAsset, GroupBy};
    if !(1970..=9999).contains(&year) {
        return Err(ServiceError::Invalid(format!(
            "year {year} is out of range (1970 to 9999)"
        )));
    }
    let group = GroupBy::parse(group_by).map_err(|e| ServiceError::Invalid(e.to_string()))?;
    let day = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).map(|t| t.date_naive());
    let mut assets = Vec::new();
    let mut retired: Vec<(usize, AssetId)> = Vec::new();
    shared.store.scan_assets(None, &mut |rec| {
        if rec.status() == Status::Decommissioned {
            retired.push((assets.len(), rec.id.clone()));
        }
        assets.push(AuditAsset {
            kind: rec.kind(),
            status: rec.status().as_str().to_owned(),
            group: rec.document["manual"][group.field()]
                .as_str()
                .map(str::to_owned),
            finance: inventory::finance::Finance::from_document(&rec.document["finance"]),
            added_on: day(rec.created_ms),
            retired_on: None,
        });
        true
    })?;
    // When each retired asset became decommissioned: its last status change.
    for (i, id) in retired {
        let when = shared
            .store
            .history(&id)?
            .iter()
            .rev()
            .find(|h| {
                h.changes.iter().any(|c| {
                    c.path == ["status"]
                        && c.new.as_ref().and_then(Value::as_str) == Some("decommissioned")
                }) || h
                    .snapshot
                    .as_ref()
                    .is_some_and(|s| s["status"] == "decommissioned")
            })
            .map(|h| h.at_ms);
        if let Some(a) = assets.get_mut(i) {
            a.retired_on = when.and_then(day);
        }
    }
    Ok(inventory::audit::audit(
        year,
        group,
        &shared.cfg.inventory.currency,
        assets,
    ))
}

fn parse_status(s: &str) -> Result<Status, ServiceError> {
    Status::parse(s).ok_or_else(|| {
        ServiceError::Unprocessable(format!(
            "unknown status {s:?} (planned, active, maintenance, decommissioned)"
        ))
    })
}

/// Answers an inventory request.
pub fn handle(shared: &Shared, req: AssetRequest) -> Result<AssetAnswer, ServiceError> {
    let cfg = &shared.cfg.inventory;
    match req {
        AssetRequest::List {
            grain,
            q,
            fields,
            at,
            sort,
            cursor,
            limit,
        } => {
            let mut filter = Filter::new(
                grain.as_deref(),
                q.as_deref(),
                fields.as_deref(),
                at.as_deref(),
            )?;
            if let Some(sort) = sort {
                let sort = AssetSort::parse(&sort)?;
                filter.need(&sort.field.path);
                return sorted_page(shared, &filter, &sort, cursor.as_deref(), limit);
            }
            let after = cursor_id(cursor.as_deref())?;
            let mut items = Vec::new();
            let mut more = false;
            filter.scan(shared, after.as_ref(), &mut |view| {
                if items.len() == limit {
                    more = true;
                    return false;
                }
                items.push(view);
                true
            })?;
            let next = if more {
                items.last().map(|a: &AssetView| a.asset_id.to_string())
            } else {
                None
            };
            let items = items.into_iter().map(|v| filter.trim(v)).collect();
            Ok(AssetAnswer::Assets(Page { items, next }))
        }
        AssetRequest::Show { key, version, at } => {
            let rec = resolve(shared, &key)?;
            let v = match (version, at) {
                (Some(_), Some(_)) => {
                    return Err(ServiceError::Invalid(
                        "give a version or a time (at), not both".into(),
                    ));
                }
                (Some(v), None) => v,
                (None, Some(at)) => version_at(shared, &rec, &at)?,
                (None, None) => rec.version,
            };
            let doc = if v == rec.version {
                rec.document.clone()
            } else {
                rebuild(shared, &rec, v)?
            };
            let mut view = record_view(&rec, &doc, v);
            view.links = links(shared, &view)?;
            Ok(AssetAnswer::Asset(Box::new(view)))
        }
        AssetRequest::History { key } => {
            let rec = resolve(shared, &key)?;
            let h = shared.store.history(&rec.id)?;
            Ok(AssetAnswer::History(HistoryView {
                asset_id: rec.id.clone(),
                minion: rec.minion.clone(),
                history: h.iter().map(history_view).collect(),
            }))
        }
        AssetRequest::Diff { key, from, to } => {
            let rec = resolve(shared, &key)?;
            let to = to.unwrap_or(rec.version);
            let from = from.unwrap_or(to.saturating_sub(1));
            let a = rebuild(shared, &rec, from)?;
            let b = rebuild(shared, &rec, to)?;
            Ok(AssetAnswer::Diff(DiffView {
                asset_id: rec.id,
                from,
                to,
                changes: diff(&a, &b).iter().map(change_view).collect(),
            }))
        }
        AssetRequest::Patch {
            key,
            fields,
            status,
            if_match,
            user,
        } => {
            if fields.is_empty() && status.is_none() {
                return Err(ServiceError::Unprocessable(
                    "nothing to change: give fields or a status".into(),
                ));
            }
            let to = status.as_deref().map(parse_status).transpose()?;
            let rec = resolve(shared, &key)?;
            // The field changes are worked out (references resolved, types
            // checked) before the write, which applies them to the document
            // as it is then.
            let schema = super::entry::schema(shared)?;
            let mut wanted = rec.document.clone();
            super::entry::apply(shared, &schema, &mut wanted, &fields, Some(&rec.id))?;
            let changes = diff(&rec.document, &wanted);
            let source = if fields.is_empty() {
                Source::Status
            } else {
                Source::Manual
            };
            let rec = shared
                .store
                .edit_asset(&rec.id, source, Some(user), now_ms(), &|r| {
                    if let Some(v) = if_match
                        && v != r.version
                    {
                        return Err(store::StoreError::Precondition(format!(
                            "asset {} is at version {}, not {v}: it changed since it was read; \
                             read it again and reapply the change",
                            r.id, r.version
                        )));
                    }
                    let mut doc = r.document.clone();
                    inventory::document::apply(&mut doc, &changes);
                    if let Some(to) = to {
                        let from = r.status();
                        if from != to && !cfg.allows(from.as_str(), to.as_str()) {
                            return Err(store::StoreError::Refused(format!(
                                "status change {} -> {} is not allowed",
                                from.as_str(),
                                to.as_str()
                            )));
                        }
                        doc["status"] = json!(to.as_str());
                    }
                    Ok(doc)
                })
                .map_err(|e| match e {
                    store::StoreError::Refused(m) => ServiceError::Conflict(m),
                    other => other.into(),
                })?;
            Ok(AssetAnswer::Asset(Box::new(record_view(
                &rec,
                &rec.document,
                rec.version,
            ))))
        }
        AssetRequest::Add {
            kind,
            fields,
            status,
            user,
        } => {
            let kind = super::entry::kinds(shared)?
                .parse(kind.trim())
                .map_err(|e| ServiceError::Unprocessable(e.to_string()))?;
            let status = match status.as_deref() {
                Some(s) => parse_status(s)?,
                None => Status::Active,
            };
            let schema = super::entry::schema(shared)?;
            let mut doc = inventory::new_document(
                kind.as_str(),
                json!({}),
                status,
                serde_json::Map::new(),
                serde_json::Map::new(),
            );
            doc["presence"] = json!("unknown");
            super::entry::apply(shared, &schema, &mut doc, &fields, None)?;
            let serial = doc["manual"]["serial"].as_str().map(str::to_owned);
            if let Some(serial) = &serial {
                let mut taken = None;
                shared.store.scan_assets(None, &mut |rec| {
                    if rec.serial().is_some_and(|s| s.eq_ignore_ascii_case(serial)) {
                        taken = Some(rec.id);
                        return false;
                    }
                    true
                })?;
                if let Some(id) = taken {
                    return Err(ServiceError::Conflict(format!(
                        "serial {serial:?} is already asset {id}'s: change that one \
                         (cmdb asset set {id} …) instead of entering it again"
                    )));
                }
            }
            let created = shared.store.apply_edits(
                &[AssetEdit::Create {
                    document: doc,
                    expected_serial: serial,
                }],
                Source::Manual,
                Some(&user),
                now_ms(),
            )?;
            let rec = created
                .into_iter()
                .next()
                .ok_or_else(|| ServiceError::Unavailable("the store created no asset".into()))?;
            Ok(AssetAnswer::Asset(Box::new(record_view(
                &rec,
                &rec.document,
                rec.version,
            ))))
        }
        AssetRequest::Audit { year, group_by } => Ok(AssetAnswer::Audit(Box::new(audit(
            shared, year, &group_by,
        )?))),
        AssetRequest::Dups => {
            let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
            shared.store.scan_assets(None, &mut |rec| {
                if let Some(serial) = rec.serial() {
                    groups.entry(serial).or_default().push(rec.summary());
                }
                true
            })?;
            groups.retain(|_, v| v.len() > 1);
            Ok(AssetAnswer::Dups(groups))
        }
        AssetRequest::Changes {
            since_ms,
            until_ms,
            q,
            cursor,
            limit,
        } => {
            // Cursor: the last entry given, as time/asset/version/index.
            let bad = || ServiceError::Invalid("cursor is not one this API gave".into());
            let from = match &cursor {
                Some(c) => {
                    let parts: Vec<&str> = c.split('/').collect();
                    let hex = |p: &str, n: usize| -> Result<u64, ServiceError> {
                        if p.len() != n {
                            return Err(bad());
                        }
                        u64::from_str_radix(p, 16).map_err(|_| bad())
                    };
                    let [at, asset, version, index] = parts.as_slice() else {
                        return Err(bad());
                    };
                    Some((
                        i64::try_from(hex(at, 16)?).map_err(|_| bad())?,
                        AssetId::parse(asset).ok_or_else(bad)?,
                        hex(version, 16)?,
                        hex(index, 8)?,
                    ))
                }
                None => None,
            };
            let filter = Filter::new(None, q.as_deref(), None, None)?;
            let wanted = limit + 2;
            let mut records = Vec::new();
            let mut chunk_from = from.as_ref().map(|(at, id, v, _)| (*at, id.clone(), *v));
            let mut selected: std::collections::HashMap<AssetId, bool> =
                std::collections::HashMap::new();
            let mut later = false;
            loop {
                let chunk = shared.store.changes_between(
                    since_ms,
                    until_ms,
                    chunk_from.as_ref().map(|(at, id, v)| (*at, id, *v)),
                    wanted,
                )?;
                let full = chunk.len() == wanted;
                let mut last = None;
                for (rec, h) in chunk {
                    let key = (h.at_ms, rec.id.clone(), h.version);
                    // A later chunk starts with the record the last one ended on.
                    if later && chunk_from.as_ref() == Some(&key) {
                        continue;
                    }
                    last = Some(key);
                    let keep = match selected.get(&rec.id) {
                        Some(k) => *k,
                        None => {
                            let k = filter.view(shared, rec.clone())?.is_some();
                            selected.insert(rec.id.clone(), k);
                            k
                        }
                    };
                    if keep {
                        records.push((rec, h));
                    }
                }
                if q.is_none() || !full || records.len() >= wanted || last.is_none() {
                    break;
                }
                chunk_from = last;
                later = true;
            }
            let mut items: Vec<(u64, ChangeFeedEntry)> = Vec::new();
            for (rec, h) in records {
                let entry =
                    |path: String, old: Option<Value>, new: Option<Value>| ChangeFeedEntry {
                        at_ms: h.at_ms,
                        asset_id: rec.id.clone(),
                        minion: rec.minion.clone(),
                        version: h.version,
                        source: h.source,
                        jid: h.jid.clone(),
                        user: h.user.clone(),
                        path,
                        old,
                        new,
                    };
                let mut entries: Vec<ChangeFeedEntry> = h
                    .changes
                    .iter()
                    .map(|c| entry(c.path_text(), c.old.clone(), c.new.clone()))
                    .collect();
                if h.source == Source::Created || (h.changes.is_empty() && h.snapshot.is_some()) {
                    entries.push(entry(String::new(), None, Some(json!("created"))));
                }
                let skip = match &from {
                    Some((at, id, v, i)) if *at == h.at_ms && *id == rec.id && *v == h.version => {
                        i + 1
                    }
                    _ => 0,
                };
                items.extend(
                    entries
                        .into_iter()
                        .enumerate()
                        .skip(usize::try_from(skip).unwrap_or(usize::MAX))
                        .map(|(i, e)| (i as u64, e)),
                );
            }
            let next = if items.len() > limit {
                items.truncate(limit);
                items.last().map(|(i, e)| {
                    format!("{:016x}/{}/{:016x}/{i:08x}", e.at_ms, e.asset_id, e.version)
                })
            } else {
                None
            };
            Ok(AssetAnswer::Changes(Page {
                items: items.into_iter().map(|(_, e)| e).collect(),
                next,
            }))
        }
    }
}

/// The asset id a listing's cursor names.
fn cursor_id(cursor: Option<&str>) -> Result<Option<AssetId>, ServiceError> {
    cursor
        .map(|c| {
            AssetId::parse(c).ok_or_else(|| {
                ServiceError::Invalid(format!("cursor {c:?} is not one this API gave"))
            })
        })
        .transpose()
}

/// A page of whole assets (`GET /v1/assets` without fields, sort, time or
/// grain) as the JSON of a [`Page`] of [`AssetView`]s: each asset's view
/// is encoded once and kept by the index until the asset is written, so
/// reading the same pages again neither decodes nor encodes them.
pub fn whole_assets_json(
    shared: &Shared,
    q: Option<&str>,
    cursor: Option<&str>,
    limit: usize,
) -> Result<String, ServiceError> {
    let filter = Filter::new(None, q, None, None)?;
    let after = cursor_id(cursor)?;
    Filter::refresh_index(shared)?;
    let paths = filter.query_paths();
    let mut items: Vec<Arc<str>> = Vec::new();
    let mut last = None;
    let mut more = false;
    let snap = shared.index.after_for(after.as_ref(), &paths);
    for (id, e) in &snap.entries {
        let id = id.clone();
        let covered = paths.iter().all(|p| snap.covers(e, p));
        if covered
            && filter
                .query
                .as_ref()
                .is_some_and(|q| !q.matches_without_facts(&e.root, &snap.no_fact))
        {
            continue;
        }
        if covered && items.len() == limit {
            more = true;
            break;
        }
        let cached = if covered {
            shared.index.cached_json(&id)
        } else {
            Err(u64::MAX)
        };
        let json = match cached {
            Ok(json) => json,
            Err(generation) => {
                // An asset removed since the index was read is left out.
                let Some(rec) = shared.store.asset(&id)? else {
                    continue;
                };
                let Some(view) = filter.view(shared, rec)? else {
                    continue;
                };
                let json: Arc<str> = serde_json::to_string(&view)
                    .map_err(|e| ServiceError::Internal(format!("encoding asset {id}: {e}")))?
                    .into();
                if covered {
                    shared.index.keep_json(&id, generation, json.clone());
                }
                json
            }
        };
        if items.len() == limit {
            more = true;
            break;
        }
        items.push(json);
        last = Some(id);
    }
    let next = if more {
        last.map(|id| id.to_string())
    } else {
        None
    };
    let mut out = String::with_capacity(items.iter().map(|j| j.len() + 1).sum::<usize>() + 64);
    out.push_str("{\"items\":[");
    for (i, json) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(json);
    }
    out.push_str("],\"next\":");
    out.push_str(&serde_json::to_string(&next).unwrap_or_else(|_| "null".into()));
    out.push('}');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: &str, facts: Value) -> AssetView {
        AssetView {
            asset_id: AssetId::parse(id).expect("asset id"),
            minion: Some("web2".into()),
            version: 3,
            latest_version: 3,
            status: json!("active"),
            presence: json!("online"),
            serial: None,
            created_ms: 1_700_000_000_000,
            last_collect_ms: None,
            kind: "server".into(),
            name: Some("web2".into()),
            manual: json!({"site": "FRA1"}),
            finance: json!({}),
            book_value: None,
            relations: json!({}),
            links: Vec::new(),
            facts,
        }
    }

    #[test]
    fn sort_fields_resolve_columns_and_paths() {
        let v = view(
            "00000000000000a1",
            json!({"os": "Debian", "osrelease": "12", "mem_total_bytes": 17_179_869_184u64}),
        );
        for (given, want) in [
            ("os", Some(json!("Debian"))),
            ("OS", Some(json!("Debian"))),
            ("-release", Some(json!("12"))),
            ("id", Some(json!("00000000000000a1"))),
            ("asset_id", Some(json!("00000000000000a1"))),
            ("minion", Some(json!("web2"))),
            ("site", Some(json!("FRA1"))),
            ("rack", None),
            ("serial", None),
            ("version", Some(json!(3))),
            ("last_collect_ms", None),
            ("facts.mem_total_bytes", Some(json!(17_179_869_184u64))),
            ("facts:os", Some(json!("Debian"))),
            ("manual.site", Some(json!("FRA1"))),
            ("facts.nope", None),
        ] {
            let sort = AssetSort::parse(given).unwrap_or_else(|e| panic!("{given}: {e}"));
            assert_eq!(sort.value_of(&v), want, "{given}");
            assert_eq!(sort.field.descending, given.starts_with('-'), "{given}");
        }
    }

    #[test]
    fn unknown_sort_fields_are_refused_by_name() {
        for (given, words) in [
            ("colour", "unknown sort field \"colour\""),
            ("-bogus.x", "unknown sort field \"-bogus.x\""),
            ("facts", "give a key under it"),
            ("", "empty"),
            ("-", "empty"),
        ] {
            let err = AssetSort::parse(given).expect_err(given);
            assert_eq!(err.status(), 400, "{given}");
            assert!(err.to_string().contains(words), "{given}: {err}");
        }
        let err = AssetSort::parse("colour").expect_err("colour").to_string();
        assert!(
            err.contains("host, os, release") && err.contains("facts.KEY"),
            "{err}"
        );
    }

    #[test]
    fn sort_cursors_round_trip_and_keep_their_sort() {
        let sort = AssetSort::parse("-facts.mem_total_bytes").expect("sort");
        let cursor = SortCursor {
            sort: sort.given.clone(),
            value: Some(json!(64)),
            id: AssetId::parse("00000000000000a1").expect("id"),
        }
        .encode();
        assert!(cursor.bytes().all(|b| b.is_ascii_hexdigit()), "{cursor}");
        let back = SortCursor::decode(&cursor, &sort).expect("decode");
        assert_eq!(
            (back.value, back.id.as_str()),
            (Some(json!(64)), "00000000000000a1")
        );
        let other = AssetSort::parse("facts.mem_total_bytes").expect("sort");
        let err = SortCursor::decode(&cursor, &other).expect_err("another sort");
        assert!(err.to_string().contains("keep the sort"), "{err}");
        for bad in ["zz", "abc", "00000000000000a1", "é"] {
            let err = SortCursor::decode(bad, &sort).expect_err(bad);
            assert!(
                err.to_string().contains("not one this API gave"),
                "{bad}: {err}"
            );
        }
    }
}
