//! Relations between assets, kept in the document of the asset they start
//! from (`"relations": {"runs_on": ID, "located_in": ID, "connected_to":
//! [ID, …]}`), so they are versioned like any field. Each is shown on both
//! ends: a VM `runs_on` its host and the host `hosts` the VM.

use serde_json::{Map, Value};

use crate::{AssetId, AssetRecord};

/// A relation an asset can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relation {
    /// Its name in the document and on the command line.
    pub name: &'static str,
    /// Its name seen from the other end.
    pub reverse: &'static str,
    /// Whether it holds several assets.
    pub many: bool,
    /// What it means, for messages.
    pub meaning: &'static str,
}

/// Every relation.
pub const RELATIONS: &[Relation] = &[
    Relation {
        name: "runs_on",
        reverse: "hosts",
        many: false,
        meaning: "the host a VM runs on",
    },
    Relation {
        name: "located_in",
        reverse: "contains",
        many: false,
        meaning: "the rack or site an asset is in",
    },
    Relation {
        name: "connected_to",
        reverse: "connected_to",
        many: true,
        meaning: "the switches and devices its ports are cabled to",
    },
];

/// The relation named `name`.
pub fn relation(name: &str) -> Option<&'static Relation> {
    RELATIONS.iter().find(|r| r.name == name)
}

/// The asset ids `rec` holds under `relation`.
pub fn targets(doc: &Value, relation: &Relation) -> Vec<AssetId> {
    let v = &doc["relations"][relation.name];
    let ids: Vec<&str> = match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    ids.into_iter().filter_map(AssetId::parse).collect()
}

/// Sets `relation` in `doc` to `ids` (none: removes it).
pub fn set(doc: &mut Value, relation: &Relation, ids: &[AssetId]) {
    if !doc["relations"].is_object() {
        doc["relations"] = Value::Object(Map::new());
    }
    let Some(map) = doc["relations"].as_object_mut() else {
        return;
    };
    let mut ids: Vec<&AssetId> = ids.iter().collect();
    ids.sort();
    ids.dedup();
    match (ids.as_slice(), relation.many) {
        ([], _) => {
            map.remove(relation.name);
        }
        ([one], false) => {
            map.insert(relation.name.into(), Value::String(one.to_string()));
        }
        (many, _) => {
            map.insert(
                relation.name.into(),
                Value::Array(many.iter().map(|i| Value::String(i.to_string())).collect()),
            );
        }
    }
}

/// The relations `other` holds to `id`, named as seen from `id`
/// (`hosts`, `contains`, `connected_to`).
pub fn reverse_links(other: &AssetRecord, id: &AssetId) -> Vec<&'static str> {
    RELATIONS
        .iter()
        .filter(|r| targets(&other.document, r).contains(id))
        .map(|r| r.reverse)
        .collect()
}

/// A VM's system UUID (`facts.uuid`), lower-cased: a host that lists it
/// among its guests is the host the VM runs on.
pub fn vm_uuid(vm: &AssetRecord) -> Option<String> {
    vm.facts()["uuid"]
        .as_str()
        .filter(|u| !u.trim().is_empty())
        .map(|u| u.to_ascii_lowercase())
}

/// The guest UUIDs a host reports (`facts.guests`: a list of objects with
/// `uuid`, or of UUID strings), lower-cased.
pub fn guest_uuids(host: &AssetRecord) -> Vec<String> {
    match &host.facts()["guests"] {
        Value::Array(items) => items
            .iter()
            .filter_map(|g| g["uuid"].as_str().or_else(|| g.as_str()))
            .map(|u| u.to_ascii_lowercase())
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(n: u8) -> AssetId {
        AssetId::parse(&format!("{n:016x}")).expect("id")
    }

    #[test]
    fn relations_are_set_sorted_and_removed() {
        let mut doc = json!({"facts": {}});
        let runs_on = relation("runs_on").expect("runs_on");
        let cabled = relation("connected_to").expect("connected_to");
        set(&mut doc, runs_on, &[id(2)]);
        set(&mut doc, cabled, &[id(9), id(3), id(9)]);
        assert_eq!(
            doc["relations"],
            json!({"runs_on": "0000000000000002",
                   "connected_to": ["0000000000000003", "0000000000000009"]})
        );
        assert_eq!(targets(&doc, cabled), vec![id(3), id(9)]);
        let other = AssetRecord::create(None, doc.clone(), json!({}), 1).0;
        assert_eq!(reverse_links(&other, &id(2)), vec!["hosts"]);
        assert_eq!(reverse_links(&other, &id(9)), vec!["connected_to"]);
        assert!(reverse_links(&other, &id(4)).is_empty());
        set(&mut doc, runs_on, &[]);
        assert_eq!(doc["relations"].get("runs_on"), None);
        assert!(relation("parent_of").is_none());
    }

    #[test]
    fn guests_are_read_as_objects_or_strings() {
        let host = AssetRecord::create(
            None,
            json!({"facts": {"guests": [{"uuid": "AB-1", "name": "vm1"}, "cd-2", 7]}}),
            json!({}),
            1,
        )
        .0;
        assert_eq!(guest_uuids(&host), vec!["ab-1", "cd-2"]);
        let vm = AssetRecord::create(None, json!({"facts": {"uuid": "AB-1"}}), json!({}), 1).0;
        assert_eq!(vm_uuid(&vm).as_deref(), Some("ab-1"));
    }
}
