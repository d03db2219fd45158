//! Operator requests on the inventory, answered over the control socket:
//! listing, showing (at any version), history, diffs, manual fields, status,
//! CSV import, duplicate serials and fleet-wide changes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::MasterError;
use crate::inventory::document::diff;
use crate::inventory::{self, AssetId, AssetRecord, ChangeRecord, FieldChange, Source, Status};
use crate::server::{Shared, now_ms};

/// An inventory request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "asset_op", rename_all = "snake_case")]
pub enum AssetRequest {
    /// Every asset, optionally only those whose facts match a grain expression.
    List {
        /// `key:value` grain expression.
        grain: Option<String>,
    },
    /// One asset, at its latest or an earlier version.
    Show {
        /// Asset id or minion id.
        key: String,
        /// Version to rebuild.
        version: Option<u64>,
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
    /// Set manual fields.
    Set {
        /// Asset id or minion id.
        key: String,
        /// Field values; an empty value removes the field.
        fields: BTreeMap<String, String>,
        /// Who.
        user: String,
    },
    /// Change the operator status.
    Status {
        /// Asset id or minion id.
        key: String,
        /// New status.
        status: String,
        /// Who.
        user: String,
    },
    /// Import a CSV purchase list.
    Import {
        /// The file's text.
        csv: String,
        /// Who.
        user: String,
    },
    /// Assets sharing a system serial number.
    Dups,
    /// Every change since a time.
    Changes {
        /// Unix milliseconds.
        since_ms: i64,
    },
}

fn resolve(shared: &Shared, key: &str) -> Result<AssetRecord, MasterError> {
    let found = match AssetId::parse(key) {
        Some(id) => shared.store.asset(&id)?,
        None => shared.store.asset_of_minion(key)?,
    };
    found.ok_or_else(|| {
        MasterError::Refused(format!(
            "no asset {key:?} (neither an asset id nor a minion with an asset)"
        ))
    })
}

fn history_view(h: &ChangeRecord) -> Value {
    json!({
        "version": h.version,
        "at_ms": h.at_ms,
        "source": h.source,
        "jid": h.jid,
        "user": h.user,
        "changes": h.changes.iter().map(change_view).collect::<Vec<_>>(),
    })
}

fn change_view(c: &FieldChange) -> Value {
    json!({"path": c.path_text(), "old": c.old, "new": c.new})
}

fn record_view(rec: &AssetRecord, document: &Value, version: u64) -> Value {
    let mut facts = document["facts"].clone();
    if version == rec.version
        && let (Value::Object(f), Value::Object(o)) = (&mut facts, rec.full_facts())
    {
        *f = o;
    }
    json!({
        "asset_id": rec.id,
        "minion": rec.minion,
        "version": version,
        "latest_version": rec.version,
        "status": document["status"],
        "presence": document["presence"],
        "serial": rec.serial(),
        "created_ms": rec.created_ms,
        "last_collect_ms": rec.last_collect_ms,
        "manual": document["manual"],
        "facts": facts,
    })
}

fn rebuild(shared: &Shared, rec: &AssetRecord, version: u64) -> Result<Value, MasterError> {
    let history = shared.store.history(&rec.id)?;
    inventory::rebuild(rec, &history, version).ok_or_else(|| {
        MasterError::Refused(format!(
            "asset {} has no version {version} (latest {}, or it was pruned)",
            rec.id, rec.version
        ))
    })
}

/// Answers an inventory request with a JSON value.
pub fn handle(shared: &Shared, req: AssetRequest) -> Result<Value, MasterError> {
    let cfg = &shared.cfg.inventory;
    match req {
        AssetRequest::List { grain } => {
            let matcher = match grain {
                Some(g) => Some(protocol::Target::Grain(g).matcher()?),
                None => None,
            };
            let mut out = Vec::new();
            for rec in shared.store.assets()? {
                if let Some(m) = &matcher
                    && !m.matches("", Some(&rec.full_facts()))
                {
                    continue;
                }
                out.push(record_view(&rec, &rec.document, rec.version));
            }
            Ok(Value::Array(out))
        }
        AssetRequest::Show { key, version } => {
            let rec = resolve(shared, &key)?;
            let v = version.unwrap_or(rec.version);
            let doc = if v == rec.version {
                rec.document.clone()
            } else {
                rebuild(shared, &rec, v)?
            };
            Ok(record_view(&rec, &doc, v))
        }
        AssetRequest::History { key } => {
            let rec = resolve(shared, &key)?;
            let h = shared.store.history(&rec.id)?;
            Ok(
                json!({"asset_id": rec.id, "minion": rec.minion, "history": h.iter().map(history_view).collect::<Vec<_>>()}),
            )
        }
        AssetRequest::Diff { key, from, to } => {
            let rec = resolve(shared, &key)?;
            let to = to.unwrap_or(rec.version);
            let from = from.unwrap_or(to.saturating_sub(1));
            let a = rebuild(shared, &rec, from)?;
            let b = rebuild(shared, &rec, to)?;
            let changes: Vec<Value> = diff(&a, &b).iter().map(change_view).collect();
            Ok(json!({"asset_id": rec.id, "from": from, "to": to, "changes": changes}))
        }
        AssetRequest::Set { key, fields, user } => {
            for k in fields.keys() {
                if !cfg.manual_fields.contains(k) {
                    return Err(MasterError::Refused(format!(
                        "{k:?} is not a manual field (allowed: {})",
                        cfg.manual_fields.join(", ")
                    )));
                }
            }
            let rec = resolve(shared, &key)?;
            let rec =
                shared
                    .store
                    .edit_asset(&rec.id, Source::Manual, Some(user), now_ms(), &|r| {
                        let mut doc = r.document.clone();
                        for (k, v) in &fields {
                            if v.is_empty() {
                                if let Some(m) = doc["manual"].as_object_mut() {
                                    m.remove(k);
                                }
                            } else {
                                doc["manual"][k] = json!(v);
                            }
                        }
                        Ok(doc)
                    })?;
            Ok(record_view(&rec, &rec.document, rec.version))
        }
        AssetRequest::Status { key, status, user } => {
            let to = Status::parse(&status).ok_or_else(|| {
                MasterError::Refused(format!(
                    "unknown status {status:?} (planned, active, maintenance, decommissioned)"
                ))
            })?;
            let rec = resolve(shared, &key)?;
            let rec =
                shared
                    .store
                    .edit_asset(&rec.id, Source::Status, Some(user), now_ms(), &|r| {
                        let from = r.status();
                        if from == to {
                            return Ok(r.document.clone());
                        }
                        if !cfg.allows(from.as_str(), to.as_str()) {
                            return Err(format!(
                                "status change {} -> {} is not allowed",
                                from.as_str(),
                                to.as_str()
                            ));
                        }
                        let mut doc = r.document.clone();
                        doc["status"] = json!(to.as_str());
                        Ok(doc)
                    })?;
            Ok(record_view(&rec, &rec.document, rec.version))
        }
        AssetRequest::Import { csv, user } => {
            let rows =
                inventory::import::parse(&csv, &cfg.manual_fields).map_err(MasterError::Refused)?;
            let (matched, created) = shared.store.import(&rows, &user, now_ms())?;
            Ok(json!({"rows": rows.len(), "matched": matched, "created": created}))
        }
        AssetRequest::Dups => {
            let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
            for rec in shared.store.assets()? {
                if let Some(serial) = rec.serial() {
                    groups.entry(serial).or_default().push(rec.summary());
                }
            }
            groups.retain(|_, v| v.len() > 1);
            Ok(json!(groups))
        }
        AssetRequest::Changes { since_ms } => {
            let mut out = Vec::new();
            for (rec, h) in shared.store.changes_since(since_ms)? {
                for c in &h.changes {
                    out.push(json!({
                        "at_ms": h.at_ms,
                        "asset_id": rec.id,
                        "minion": rec.minion,
                        "version": h.version,
                        "source": h.source,
                        "jid": h.jid,
                        "user": h.user,
                        "path": c.path_text(),
                        "old": c.old,
                        "new": c.new,
                    }));
                }
                if h.source == Source::Created || (h.changes.is_empty() && h.snapshot.is_some()) {
                    out.push(json!({
                        "at_ms": h.at_ms, "asset_id": rec.id, "minion": rec.minion,
                        "version": h.version, "source": h.source, "jid": h.jid, "user": h.user,
                        "path": "", "old": null, "new": "created",
                    }));
                }
            }
            Ok(Value::Array(out))
        }
    }
}
