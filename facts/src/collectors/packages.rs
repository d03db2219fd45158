//! Installed package count, from dpkg's status file or the rpm database.

use serde_json::{Map, Value, json};

use crate::{CollectError, HostSource, Probe};

/// Counts the packages dpkg's status file lists as installed.
pub fn dpkg_installed(status: &str) -> u64 {
    status
        .split("\n\n")
        .filter(|stanza| {
            stanza
                .lines()
                .any(|l| l.starts_with("Status:") && l.ends_with(" installed"))
        })
        .count() as u64
}

/// What the collector reads.
pub const PROBES: &[Probe] = &[
    Probe::File("/var/lib/dpkg/status"),
    Probe::Exists("/var/lib/rpm/rpmdb.sqlite"),
    Probe::Exists("/var/lib/rpm/Packages"),
    Probe::Exists("/usr/lib/sysimage/rpm/rpmdb.sqlite"),
    Probe::Command(RPM_COUNT),
];

/// Prints one line per installed rpm package.
const RPM_COUNT: &[&str] = &["rpm", "-qa", "--qf", "x\\n"];

/// Collects `packages: {manager, count}`.
pub fn collect(src: &dyn HostSource) -> Result<Map<String, Value>, CollectError> {
    let mut m = Map::new();
    if let Some(status) = src.read_opt("/var/lib/dpkg/status") {
        m.insert(
            "packages".into(),
            json!({"manager": "dpkg", "count": dpkg_installed(&status)}),
        );
        return Ok(m);
    }
    let rpmdb = [
        "/var/lib/rpm/rpmdb.sqlite",
        "/var/lib/rpm/Packages",
        "/usr/lib/sysimage/rpm/rpmdb.sqlite",
    ];
    if src.runs_commands() && rpmdb.iter().any(|p| src.exists(p)) {
        let out = src.run(RPM_COUNT)?;
        let count = out.iter().filter(|b| **b == b'\n').count() as u64;
        m.insert("packages".into(), json!({"manager": "rpm", "count": count}));
        return Ok(m);
    }
    Err(CollectError::Parse {
        path: src.display_path("/var/lib"),
        reason: "neither a dpkg status file nor an rpm database was found".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_installed_stanzas_only() {
        let s = "Package: a\nStatus: install ok installed\n\nPackage: b\nStatus: deinstall ok config-files\n\nPackage: c\nStatus: install ok installed\n";
        assert_eq!(dpkg_installed(s), 2);
    }
}
