//! The asset inventory: one record per asset with its current document
//! (kind, facts, manual and finance fields, relations, operator status,
//! observed presence) and a history of field-level changes from which any
//! earlier version is rebuilt; the query language, spreadsheets in and
//! out, depreciation and the year-end audit.
//!
//! The functions here are pure: they take records and the time and return
//! new records; the store writes them in one transaction.

pub mod audit;
pub mod config;
pub mod document;
pub mod fields;
pub mod finance;
pub mod lookup;
pub mod query;
pub mod relations;
pub mod sheet;
pub mod sort;

use std::fmt;

use protocol::Jid;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

pub use document::FieldChange;

pub use config::InventoryConfig;

/// An asset id: 16 lowercase hex digits, fixed at the asset's creation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[derive(utoipa::ToSchema)]
pub struct AssetId(String);

impl AssetId {
    /// A new random id.
    pub fn generate() -> AssetId {
        let mut b = [0u8; 8];
        let _ = getrandom::fill(&mut b);
        AssetId(b.iter().map(|x| format!("{x:02x}")).collect())
    }

    /// Parses an id.
    pub fn parse(s: &str) -> Option<AssetId> {
        (s.len() == 16
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| AssetId(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AssetId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        AssetId::parse(&s).ok_or_else(|| format!("invalid asset id {s:?}"))
    }
}

impl From<AssetId> for String {
    fn from(a: AssetId) -> String {
        a.0
    }
}

impl fmt::Display for AssetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Operator status of an asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Bought or expected, not yet seen.
    Planned,
    /// In service.
    Active,
    /// Out of service for work.
    Maintenance,
    /// Retired.
    Decommissioned,
}

impl Status {
    /// The status as text.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Planned => "planned",
            Status::Active => "active",
            Status::Maintenance => "maintenance",
            Status::Decommissioned => "decommissioned",
        }
    }

    /// Parses a status name.
    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "planned" => Some(Status::Planned),
            "active" => Some(Status::Active),
            "maintenance" => Some(Status::Maintenance),
            "decommissioned" => Some(Status::Decommissioned),
            _ => None,
        }
    }
}

/// What caused a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum Source {
    /// The asset was created (the record holds the full first document).
    Created,
    /// A collect (job return or agent push).
    Collect,
    /// A collect over SSH, of a host without a minion.
    Ssh,
    /// An operator set manual fields.
    Manual,
    /// An operator changed the status.
    Status,
    /// Presence changed (heartbeats came or stopped).
    Presence,
    /// A spreadsheet import (CSV or XLSX).
    Import,
}

/// One entry of an asset's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeRecord {
    /// Version this change produced (0 for creation).
    pub version: u64,
    /// When, unix milliseconds.
    pub at_ms: i64,
    /// What caused it.
    pub source: Source,
    /// The job whose return caused it, if any.
    pub jid: Option<Jid>,
    /// The operator who made it, if any.
    pub user: Option<String>,
    /// The field changes.
    pub changes: Vec<FieldChange>,
    /// The whole first document (creation record only).
    pub snapshot: Option<Value>,
}

impl ChangeRecord {
    /// The record of `changes` a collect (job `jid`) made at `at_ms`,
    /// giving version `version`.
    pub fn collected(
        version: u64,
        at_ms: i64,
        source: Source,
        jid: &Jid,
        changes: Vec<FieldChange>,
    ) -> ChangeRecord {
        ChangeRecord {
            version,
            at_ms,
            source,
            jid: Some(jid.clone()),
            user: None,
            changes,
            snapshot: None,
        }
    }
}

/// An asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssetRecord {
    /// Its id.
    pub id: AssetId,
    /// The minion reporting it, once one has.
    pub minion: Option<String>,
    /// `{"facts", "manual", "status", "presence"}` at the latest version.
    pub document: Value,
    /// Facts that change on every collect, kept out of the history.
    pub observed: Value,
    /// Serial an imported (planned) asset waits for.
    pub expected_serial: Option<String>,
    /// Latest version number.
    pub version: u64,
    /// Created, unix milliseconds.
    pub created_ms: i64,
    /// Last collect stored, unix milliseconds.
    pub last_collect_ms: Option<i64>,
}

/// Placeholder strings vendors leave in serial number fields.
const SERIAL_PLACEHOLDERS: &[&str] = &[
    "",
    "none",
    "not specified",
    "not applicable",
    "to be filled by o.e.m.",
    "default string",
    "system serial number",
    "0",
    "0123456789",
    "unknown",
];

/// Whether a serial is a real one rather than a vendor placeholder.
pub fn is_real_serial(s: &str) -> bool {
    !SERIAL_PLACEHOLDERS.contains(&s.trim().to_ascii_lowercase().as_str())
}

impl AssetRecord {
    /// The facts at the latest version (without volatile values).
    pub fn facts(&self) -> &Value {
        &self.document["facts"]
    }

    /// The operator status.
    pub fn status(&self) -> Status {
        self.document["status"]
            .as_str()
            .and_then(Status::parse)
            .unwrap_or(Status::Active)
    }

    /// The system serial number: reported by DMI, else the one an operator
    /// entered or imported.
    pub fn serial(&self) -> Option<String> {
        self.facts()["serialnumber"]
            .as_str()
            .filter(|s| is_real_serial(s))
            .or_else(|| {
                self.document["manual"]["serial"]
                    .as_str()
                    .filter(|s| is_real_serial(s))
            })
            .map(str::to_owned)
            .or_else(|| self.expected_serial.clone())
    }

    /// The asset's kind: as entered, else from its facts (`server` for a
    /// physical machine, `vm` for a virtual one).
    pub fn kind(&self) -> String {
        match self.document["kind"].as_str() {
            Some(k) => k.to_owned(),
            None => kind_of_facts(self.facts()).to_owned(),
        }
    }

    /// The name operators know it by: the manual `name`, else the host
    /// name it reports, else its minion id.
    pub fn name(&self) -> Option<String> {
        self.document["manual"]["name"]
            .as_str()
            .or_else(|| self.facts()["host"].as_str())
            .map(str::to_owned)
            .or_else(|| self.minion.clone())
    }

    /// Facts with the volatile values merged back in.
    pub fn full_facts(&self) -> Value {
        let mut facts = self.facts().clone();
        merge(&mut facts, &self.observed);
        facts
    }

    /// [`AssetRecord::full_facts`] without copying: the facts are moved out
    /// of the document (which keeps `null` in their place) and the volatile
    /// values moved into them.
    pub fn take_full_facts(&mut self) -> Value {
        let mut facts = self
            .document
            .get_mut("facts")
            .map(Value::take)
            .unwrap_or(Value::Null);
        document::merge_into(&mut facts, std::mem::take(&mut self.observed));
        facts
    }

    /// A one-line view for listings.
    pub fn summary(&self) -> Value {
        let f = self.facts();
        let d = &self.document;
        json!({
            "asset_id": self.id,
            "minion": self.minion,
            "host": f["host"],
            "os": f["os"],
            "osrelease": f["osrelease"],
            "serial": self.serial(),
            "status": d["status"],
            "presence": d["presence"],
            "site": d["manual"]["site"],
            "rack": d["manual"]["rack"],
            "owner": d["manual"]["owner"],
        })
    }

    /// A new record and its creation history entry.
    pub fn create(
        minion: Option<String>,
        document: Value,
        observed: Value,
        now_ms: i64,
    ) -> (AssetRecord, ChangeRecord) {
        let rec = AssetRecord {
            id: AssetId::generate(),
            minion,
            document: document.clone(),
            observed,
            expected_serial: None,
            version: 0,
            created_ms: now_ms,
            last_collect_ms: None,
        };
        let created = ChangeRecord {
            version: 0,
            at_ms: now_ms,
            source: Source::Created,
            jid: None,
            user: None,
            changes: Vec::new(),
            snapshot: Some(document),
        };
        (rec, created)
    }

    /// Replaces the document with `new`; returns the history entry when
    /// anything changed.
    pub fn change_to(
        &mut self,
        new: Value,
        source: Source,
        jid: Option<Jid>,
        user: Option<String>,
        now_ms: i64,
    ) -> Option<ChangeRecord> {
        let changes = document::diff(&self.document, &new);
        if changes.is_empty() {
            return None;
        }
        self.document = new;
        self.version += 1;
        Some(ChangeRecord {
            version: self.version,
            at_ms: now_ms,
            source,
            jid,
            user,
            changes,
            snapshot: None,
        })
    }
}

fn merge(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

/// The kind of a collected asset from its facts: `server` for a physical
/// machine (or one that does not say), `vm` for any virtual one.
pub fn kind_of_facts(facts: &Value) -> &'static str {
    match facts["virtual"].as_str() {
        None | Some("physical") => "server",
        Some(_) => "vm",
    }
}

/// The document for a new asset: its kind, facts, manual (organisation)
/// and finance fields, status, presence and relations.
pub fn new_document(
    kind: &str,
    facts: Value,
    status: Status,
    manual: Map<String, Value>,
    finance: Map<String, Value>,
) -> Value {
    json!({
        "kind": kind,
        "facts": facts,
        "manual": manual,
        "finance": finance,
        "relations": {},
        "status": status.as_str(),
        "presence": "online",
    })
}

/// Applies a collect to an asset (new when `existing` is none). Returns the
/// updated record and the history entries to append, a change recorded
/// with `source` ([`Source::Collect`] or [`Source::Ssh`]).
pub fn apply_collect(
    existing: Option<AssetRecord>,
    minion: &str,
    facts: &Value,
    jid: &Jid,
    cfg: &InventoryConfig,
    now_ms: i64,
    source: Source,
) -> (AssetRecord, Vec<ChangeRecord>) {
    match existing {
        None => {
            let (stable, volatile) = document::split_volatile(facts.clone(), &cfg.volatile);
            let kind = kind_of_facts(&stable);
            let doc = new_document(kind, stable, Status::Active, Map::new(), Map::new());
            let (mut rec, created) =
                AssetRecord::create(Some(minion.to_owned()), doc, volatile, now_ms);
            rec.last_collect_ms = Some(now_ms);
            (rec, vec![created])
        }
        Some(mut rec) => {
            // Only the facts, the presence and (on a claim) the status
            // change: edit the document in place and diff those fields.
            let mut changes = Vec::new();
            let doc = &mut rec.document;
            document::replace_stable_field(doc, "facts", facts, &cfg.volatile, &mut changes);
            document::replace_field(doc, "presence", json!("online"), &mut changes);
            if doc.get("kind").is_none_or(Value::is_null) {
                let kind = json!(kind_of_facts(&doc["facts"]));
                document::replace_field(doc, "kind", kind, &mut changes);
            }
            if rec.minion.is_none() {
                rec.minion = Some(minion.to_owned());
                if rec.status() == Status::Planned {
                    let active = json!(Status::Active.as_str());
                    document::replace_field(&mut rec.document, "status", active, &mut changes);
                }
            }
            rec.observed = document::volatile_of(facts, &cfg.volatile);
            rec.last_collect_ms = Some(now_ms);
            if changes.is_empty() {
                return (rec, Vec::new());
            }
            rec.version += 1;
            let entry = ChangeRecord::collected(rec.version, now_ms, source, jid, changes);
            (rec, vec![entry])
        }
    }
}

/// Rebuilds the document at `version` from the current record and the
/// history entries after it (newest last). `None` when an entry needed was
/// pruned.
pub fn rebuild(rec: &AssetRecord, history: &[ChangeRecord], version: u64) -> Option<Value> {
    if version > rec.version {
        return None;
    }
    if version == 0
        && let Some(first) = history.iter().find(|h| h.version == 0)
    {
        return first.snapshot.clone();
    }
    let mut doc = rec.document.clone();
    let mut expect = rec.version;
    for h in history.iter().rev() {
        if h.version <= version {
            break;
        }
        if h.version != expect {
            return None;
        }
        document::revert(&mut doc, &h.changes);
        expect -= 1;
    }
    (expect == version).then_some(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(n: i64) -> Jid {
        Jid::from_micros(1_700_000_000_000_000 + n).expect("jid")
    }

    #[test]
    fn collects_create_then_diff_and_rebuild() {
        let cfg = InventoryConfig::default();
        let f1 = json!({"host": "a", "os": "Debian", "uptime_seconds": 1});
        let f2 = json!({"host": "b", "os": "Debian", "uptime_seconds": 2});
        let (r0, h0) = apply_collect(None, "m", &f1, &jid(1), &cfg, 1, Source::Collect);
        assert_eq!(h0.len(), 1);
        assert_eq!(r0.facts(), &json!({"host": "a", "os": "Debian"}));
        let (r1, h1) = apply_collect(
            Some(r0.clone()),
            "m",
            &f2,
            &jid(2),
            &cfg,
            2,
            Source::Collect,
        );
        assert_eq!(h1.len(), 1);
        assert_eq!(h1[0].changes.len(), 1);
        assert_eq!(h1[0].changes[0].path_text(), "facts:host");
        let (r2, h2) = apply_collect(
            Some(r1.clone()),
            "m",
            &f2,
            &jid(3),
            &cfg,
            3,
            Source::Collect,
        );
        assert!(h2.is_empty(), "an unchanged collect stores no diff");
        assert_eq!(r2.version, 1);
        let history: Vec<ChangeRecord> = h0.into_iter().chain(h1).collect();
        assert_eq!(rebuild(&r2, &history, 0), Some(r0.document.clone()));
        assert_eq!(rebuild(&r2, &history, 1), Some(r1.document.clone()));
        assert_eq!(rebuild(&r2, &history, 2), None);
    }

    #[test]
    fn taking_the_full_facts_gives_what_copying_gives() {
        let cfg = InventoryConfig::default();
        let f = json!({"host": "a", "uptime_seconds": 7, "mounts": {"/": {"size_bytes": 9, "used_bytes": 3}}});
        let (rec, _) = apply_collect(None, "m", &f, &jid(1), &cfg, 1, Source::Collect);
        let copied = rec.full_facts();
        let mut owned = rec.clone();
        assert_eq!(owned.take_full_facts(), copied);
        assert_eq!(copied["uptime_seconds"], json!(7));
        assert_eq!(copied["mounts"]["/"]["used_bytes"], json!(3));
    }

    #[test]
    fn placeholder_serials_are_not_real() {
        assert!(!is_real_serial("To Be Filled By O.E.M."));
        assert!(!is_real_serial(" "));
        assert!(is_real_serial("CZ1234ABC"));
    }
}
