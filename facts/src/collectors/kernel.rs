//! Kernel name, release and machine architecture.

use serde_json::{Map, Value};

use crate::{CollectError, HostSource, Probe};

/// What the collector reads.
pub const PROBES: &[Probe] = &[
    Probe::Line("/proc/sys/kernel/ostype"),
    Probe::Line("/proc/sys/kernel/osrelease"),
    Probe::Line("/proc/sys/kernel/version"),
    Probe::Arch,
];

/// Collects kernel, kernelrelease, kernelversion, osarch.
pub fn collect(src: &dyn HostSource) -> Result<Map<String, Value>, CollectError> {
    let ostype = src.read("/proc/sys/kernel/ostype")?;
    let release = src.read("/proc/sys/kernel/osrelease")?;
    let version = src.read("/proc/sys/kernel/version").unwrap_or_default();
    let mut m = Map::new();
    m.insert("kernel".into(), Value::String(ostype.trim().into()));
    m.insert("kernelrelease".into(), Value::String(release.trim().into()));
    m.insert("kernelversion".into(), Value::String(version.trim().into()));
    m.insert("osarch".into(), Value::from(src.arch()));
    Ok(m)
}
