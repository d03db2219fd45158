//! The systemd/D-Bus machine id.

use std::path::Path;

use serde_json::{Map, Value};

use super::{CollectError, read};

/// Collects machine_id from `/etc/machine-id` (or D-Bus' copy).
pub fn collect(root: &Path) -> Result<Map<String, Value>, CollectError> {
    let id = read(root, "/etc/machine-id").or_else(|_| read(root, "/var/lib/dbus/machine-id"))?;
    let mut m = Map::new();
    m.insert("machine_id".into(), Value::String(id.trim().into()));
    Ok(m)
}
