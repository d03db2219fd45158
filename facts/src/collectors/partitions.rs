//! Partitions of each block device, from `/sys/block/<disk>/<part>`.

use serde_json::{Map, Value, json};

use crate::{CollectError, HostSource, Probe};

/// What the collector reads.
pub const PROBES: &[Probe] = &[
    Probe::Dir("/sys/block"),
    Probe::Dir("/sys/block/*"),
    Probe::Line("/sys/block/*/*/start"),
    Probe::Line("/sys/block/*/*/size"),
];

/// Collects `partitions: {name: {disk, size_bytes, start_sector}}`.
pub fn collect(src: &dyn HostSource) -> Result<Map<String, Value>, CollectError> {
    let mut parts = Map::new();
    for disk in src.list_dir("/sys/block")? {
        let base = format!("/sys/block/{disk}");
        let Ok(children) = src.list_dir(&base) else {
            continue;
        };
        for child in children {
            if !child.starts_with(disk.as_str()) {
                continue;
            }
            let Some(start) = src.read_opt(&format!("{base}/{child}/start")) else {
                continue;
            };
            let sectors: u64 = src
                .read_opt(&format!("{base}/{child}/size"))
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            parts.insert(
                child.clone(),
                json!({
                    "disk": disk,
                    "size_bytes": sectors * 512,
                    "start_sector": start.trim().parse::<u64>().unwrap_or(0),
                }),
            );
        }
    }
    let mut m = Map::new();
    m.insert("partitions".into(), Value::Object(parts));
    Ok(m)
}
