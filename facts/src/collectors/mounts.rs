//! Mounted file systems from `/proc/mounts`, with size and use in bytes.
//! Pseudo file systems (proc, sysfs, cgroup, …) are left out.

use serde_json::{Map, Value, json};

use crate::{CollectError, HostSource, Probe};

/// File-system types left out.
pub const PSEUDO: &[&str] = &[
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "cgroup",
    "cgroup2",
    "securityfs",
    "pstore",
    "bpf",
    "tracefs",
    "debugfs",
    "mqueue",
    "hugetlbfs",
    "configfs",
    "fusectl",
    "autofs",
    "binfmt_misc",
    "rpc_pipefs",
    "nsfs",
    "efivarfs",
    "ramfs",
    "selinuxfs",
];

/// Undoes the octal escapes `/proc/mounts` uses for spaces and the like.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What the collector reads.
pub const PROBES: &[Probe] = &[Probe::File("/proc/mounts"), Probe::MountUsage];

/// Collects `mounts: {mountpoint: {device, fs_type, size_bytes, used_bytes, available_bytes}}`.
pub fn collect(src: &dyn HostSource) -> Result<Map<String, Value>, CollectError> {
    let text = src.read("/proc/mounts")?;
    let mut mounts = Map::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [device, mountpoint, fs_type, ..] = fields.as_slice() else {
            continue;
        };
        if PSEUDO.contains(fs_type) {
            continue;
        }
        let mountpoint = unescape(mountpoint);
        let mut entry = json!({"device": unescape(device), "fs_type": fs_type});
        if let Some(u) = src.fs_usage(&mountpoint) {
            entry["size_bytes"] = json!(u.size);
            entry["used_bytes"] = json!(u.size.saturating_sub(u.free));
            entry["available_bytes"] = json!(u.available);
        }
        mounts.insert(mountpoint, entry);
    }
    let mut m = Map::new();
    m.insert("mounts".into(), Value::Object(mounts));
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_spaces() {
        assert_eq!(unescape("/mnt/my\\040disk"), "/mnt/my disk");
        assert_eq!(unescape("/plain"), "/plain");
    }
}
