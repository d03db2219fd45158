//! The system time zone.

use std::path::Path;

use serde_json::{Map, Value, json};

use super::{CollectError, read_opt};

/// Collects `timezone` from `/etc/timezone`, else from where `/etc/localtime`
/// links into the zoneinfo tree.
pub fn collect(root: &Path) -> Result<Map<String, Value>, CollectError> {
    let tz = read_opt(root, "/etc/timezone")
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| {
            let target = std::fs::read_link(root.join("etc/localtime")).ok()?;
            let t = target.to_string_lossy().into_owned();
            t.split_once("zoneinfo/").map(|(_, z)| z.to_owned())
        })
        .ok_or_else(|| super::CollectError::Parse {
            path: root.join("etc/localtime"),
            reason: "no /etc/timezone and /etc/localtime is not a zoneinfo link".into(),
        })?;
    let mut m = Map::new();
    m.insert("timezone".into(), json!(tz));
    Ok(m)
}
