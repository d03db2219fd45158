//! Fields operators set on assets (by hand, through the API or an import):
//! each checked by its type before anything is written, with an error
//! naming the field.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::ServiceError;
use crate::server::Shared;
use inventory::AssetId;
use inventory::fields::{Kinds, Schema, Section};
use inventory::relations::{RELATIONS, relation};

/// The field schema of this master: the built-in fields and the
/// configured extra manual fields.
pub fn schema(shared: &Shared) -> Result<Schema, ServiceError> {
    Schema::new(&shared.cfg.inventory.extra_manual_fields())
        .map_err(|e| ServiceError::Unprocessable(e.to_string()))
}

/// The asset kinds of this master: the built-in ones and the configured
/// extra kinds.
pub fn kinds(shared: &Shared) -> Result<Kinds, ServiceError> {
    Kinds::new(&shared.cfg.inventory.kinds).map_err(|e| ServiceError::Unprocessable(e.to_string()))
}

/// The text of a field value as given (a string, a number, a bool; null
/// is empty).
fn text_of(name: &str, v: &Value) -> Result<String, ServiceError> {
    match v {
        Value::Null => Ok(String::new()),
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(ServiceError::Unprocessable(format!(
            "{name}: give a text, a number or null, not {v}"
        ))),
    }
}

/// Sets `fields` (name → value; null or an empty text removes the field)
/// in `doc`: manual and finance fields by type, `serial`, `kind`, and the
/// relations (`runs_on`, `located_in`, `connected_to`: asset references,
/// several separated by commas). `own` is the asset being changed (none
/// for a new one), which may not relate to itself.
pub fn apply(
    shared: &Shared,
    schema: &Schema,
    doc: &mut Value,
    fields: &BTreeMap<String, Value>,
    own: Option<&AssetId>,
) -> Result<(), ServiceError> {
    for section in ["manual", "finance", "relations"] {
        if !doc[section].is_object() {
            doc[section] = Value::Object(Map::new());
        }
    }
    for (name, value) in fields {
        let bare = name
            .strip_prefix("relations.")
            .or_else(|| name.strip_prefix("relations:"))
            .unwrap_or(name);
        if let Some(rel) = relation(bare) {
            let text = match value {
                Value::Array(items) => items
                    .iter()
                    .map(|i| text_of(name, i))
                    .collect::<Result<Vec<String>, _>>()?
                    .join(","),
                other => text_of(name, other)?,
            };
            let refs: Vec<&str> = text
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .collect();
            if refs.len() > 1 && !rel.many {
                return Err(ServiceError::Unprocessable(format!(
                    "{bare}: {} holds one asset ({}), not {}",
                    rel.name,
                    rel.meaning,
                    refs.len()
                )));
            }
            let mut ids = Vec::with_capacity(refs.len());
            for r in refs {
                let target = super::inventory::resolve(shared, r).map_err(|e| match e {
                    ServiceError::NotFound(m) | ServiceError::Conflict(m) => {
                        ServiceError::Unprocessable(format!("{bare}: {m}"))
                    }
                    other => other,
                })?;
                if own == Some(&target.id) {
                    return Err(ServiceError::Unprocessable(format!(
                        "{bare}: an asset cannot relate to itself"
                    )));
                }
                ids.push(target.id);
            }
            inventory::relations::set(doc, rel, &ids);
            continue;
        }
        match name.as_str() {
            "serial" | "manual.serial" => {
                let text = text_of(name, value)?;
                let text = text.trim();
                match doc["manual"].as_object_mut() {
                    Some(m) if text.is_empty() => {
                        m.remove("serial");
                    }
                    Some(m) => {
                        if !inventory::is_real_serial(text) {
                            return Err(ServiceError::Unprocessable(format!(
                                "serial: {text:?} is a vendor placeholder, not a serial"
                            )));
                        }
                        m.insert("serial".into(), json!(text));
                    }
                    None => {}
                }
            }
            "kind" => {
                let text = text_of(name, value)?;
                let kind = kinds(shared)?
                    .parse(text.trim())
                    .map_err(|e| ServiceError::Unprocessable(e.to_string()))?;
                doc["kind"] = json!(kind);
            }
            _ => {
                let parsed = schema.parse_json(name, value).map_err(|e| match e {
                    inventory::fields::FieldError::Unknown { .. } => {
                        let relations: Vec<&str> = RELATIONS.iter().map(|r| r.name).collect();
                        ServiceError::Unprocessable(format!(
                            "{e}; also: serial, kind, {}",
                            relations.join(", ")
                        ))
                    }
                    other => ServiceError::Unprocessable(other.to_string()),
                })?;
                let section = match parsed.section {
                    Section::Manual => "manual",
                    Section::Finance => "finance",
                };
                if let Some(m) = doc[section].as_object_mut() {
                    match parsed.value {
                        Some(v) => {
                            m.insert(parsed.name.to_string(), v);
                        }
                        None => {
                            m.remove(parsed.name.as_str());
                        }
                    }
                }
            }
        }
    }
    Ok(())
}
