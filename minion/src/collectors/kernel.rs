//! Kernel name, release and machine architecture.

use std::path::Path;

use serde_json::{Map, Value};

use super::{CollectError, read};

/// Collects kernel, kernelrelease, kernelversion, osarch.
pub fn collect(root: &Path) -> Result<Map<String, Value>, CollectError> {
    let ostype = read(root, "/proc/sys/kernel/ostype")?;
    let release = read(root, "/proc/sys/kernel/osrelease")?;
    let version = read(root, "/proc/sys/kernel/version").unwrap_or_default();
    let mut m = Map::new();
    m.insert("kernel".into(), Value::String(ostype.trim().into()));
    m.insert("kernelrelease".into(), Value::String(release.trim().into()));
    m.insert("kernelversion".into(), Value::String(version.trim().into()));
    m.insert(
        "osarch".into(),
        Value::String(std::env::consts::ARCH.into()),
    );
    Ok(m)
}
