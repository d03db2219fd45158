//! The system time zone.

use serde_json::{Map, Value, json};

use crate::{CollectError, HostSource, Probe};

/// What the collector reads.
pub const PROBES: &[Probe] = &[Probe::Line("/etc/timezone"), Probe::Link("/etc/localtime")];

/// Collects `timezone` from `/etc/timezone`, else from where `/etc/localtime`
/// links into the zoneinfo tree.
pub fn collect(src: &dyn HostSource) -> Result<Map<String, Value>, CollectError> {
    let tz = src
        .read_opt("/etc/timezone")
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| {
            let t = src.read_link("/etc/localtime")?;
            t.split_once("zoneinfo/").map(|(_, z)| z.to_owned())
        })
        .ok_or_else(|| CollectError::Parse {
            path: src.display_path("/etc/localtime"),
            reason: "no /etc/timezone and /etc/localtime is not a zoneinfo link".into(),
        })?;
    let mut m = Map::new();
    m.insert("timezone".into(), json!(tz));
    Ok(m)
}
