//! Memory and swap totals from `/proc/meminfo`, in bytes.

use serde_json::{Map, Value};

use crate::{CollectError, HostSource, Probe};

/// What the collector reads.
pub const PROBES: &[Probe] = &[Probe::File("/proc/meminfo")];

fn kib(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse::<u64>().ok()
    })
}

/// Collects mem_total_bytes and swap_total_bytes.
pub fn collect(src: &dyn HostSource) -> Result<Map<String, Value>, CollectError> {
    let text = src.read("/proc/meminfo")?;
    let total = kib(&text, "MemTotal").ok_or_else(|| CollectError::Parse {
        path: src.display_path("/proc/meminfo"),
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
