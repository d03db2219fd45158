//! Uptime and boot time, in seconds.

use serde_json::{Map, Value};

use crate::{CollectError, HostSource, Probe};

/// What the collector reads.
pub const PROBES: &[Probe] = &[Probe::File("/proc/uptime"), Probe::File("/proc/stat")];

/// Collects uptime_seconds (from `/proc/uptime`) and boot_time (unix
/// seconds, from `/proc/stat`).
pub fn collect(src: &dyn HostSource) -> Result<Map<String, Value>, CollectError> {
    let mut m = Map::new();
    let uptime = src.read("/proc/uptime")?;
    let secs = uptime
        .split_whitespace()
        .next()
        .and_then(|s| s.parse::<f64>().ok())
        .ok_or_else(|| CollectError::Parse {
            path: src.display_path("/proc/uptime"),
            reason: "no uptime value".into(),
        })?;
    m.insert("uptime_seconds".into(), Value::from(secs as u64));
    let stat = src.read("/proc/stat")?;
    if let Some(bt) = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        m.insert("boot_time".into(), Value::from(bt));
    }
    Ok(m)
}
