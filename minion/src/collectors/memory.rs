//! Memory and swap totals from `/proc/meminfo`, in bytes.

use std::path::Path;

use serde_json::{Map, Value};

use super::{CollectError, read};

fn kib(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse::<u64>().ok()
    })
}

/// Collects mem_total_bytes and swap_total_bytes.
pub fn collect(root: &Path) -> Result<Map<String, Value>, CollectError> {
    let text = read(root, "/proc/meminfo")?;
    let total = kib(&text, "MemTotal").ok_or_else(|| CollectError::Parse {
        path: root.join("proc/meminfo"),
        reason: "no MemTotal line".into(),
    })?;
    let mut m = Map::new();
    m.insert("mem_total_bytes".into(), Value::from(total * 1024));
    m.insert(
        "swap_total_bytes".into(),
        Value::from(kib(&text, "SwapTotal").unwrap_or(0) * 1024),
    );
    Ok(m)
}
