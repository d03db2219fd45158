//! The systemd/D-Bus machine id.

use serde_json::{Map, Value};

use crate::{CollectError, HostSource, Probe};

/// What the collector reads.
pub const PROBES: &[Probe] = &[
    Probe::Line("/etc/machine-id"),
    Probe::Line("/var/lib/dbus/machine-id"),
];

/// Collects machine_id from `/etc/machine-id` (or D-Bus' copy).
pub fn collect(src: &dyn HostSource) -> Result<Map<String, Value>, CollectError> {
    let id = src
        .read("/etc/machine-id")
        .or_else(|_| src.read("/var/lib/dbus/machine-id"))?;
    let mut m = Map::new();
    m.insert("machine_id".into(), Value::String(id.trim().into()));
    Ok(m)
}
