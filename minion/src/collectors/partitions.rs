//! Partitions of each block device, from `/sys/block/<disk>/<part>`.

use std::path::Path;

use serde_json::{Map, Value, json};

use super::{CollectError, list_dir, read_opt};

/// Collects `partitions: {name: {disk, size_bytes, start_sector}}`.
pub fn collect(root: &Path) -> Result<Map<String, Value>, CollectError> {
    let mut parts = Map::new();
    for disk in list_dir(root, "/sys/block")? {
        let base = format!("/sys/block/{disk}");
        let Ok(children) = list_dir(root, &base) else {
            continue;
        };
        for child in children {
            if !child.starts_with(disk.as_str()) {
                continue;
            }
            let Some(start) = read_opt(root, &format!("{base}/{child}/start")) else {
                continue;
            };
            let sectors: u64 = read_opt(root, &format!("{base}/{child}/size"))
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
