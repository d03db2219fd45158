//! Installed package count, from dpkg's status file or the rpm database.

use std::path::Path;

use serde_json::{Map, Value, json};

use super::{CollectError, read_opt};

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

/// Collects `packages: {manager, count}`.
pub fn collect(root: &Path) -> Result<Map<String, Value>, CollectError> {
    let mut m = Map::new();
    if let Some(status) = read_opt(root, "/var/lib/dpkg/status") {
        m.insert(
            "packages".into(),
            json!({"manager": "dpkg", "count": dpkg_installed(&status)}),
        );
        return Ok(m);
    }
    let rpmdb = [
        "var/lib/rpm/rpmdb.sqlite",
        "var/lib/rpm/Packages",
        "usr/lib/sysimage/rpm/rpmdb.sqlite",
    ];
    if root == Path::new("/") && rpmdb.iter().any(|p| root.join(p).exists()) {
        let out = std::process::Command::new("rpm")
            .args(["-qa", "--qf", "x\\n"])
            .output()
            .map_err(|source| CollectError::Read {
                path: "rpm".into(),
                source,
            })?;
        let count = out.stdout.iter().filter(|b| **b == b'\n').count() as u64;
        m.insert("packages".into(), json!({"manager": "rpm", "count": count}));
        return Ok(m);
    }
    Err(CollectError::Parse {
        path: root.join("var/lib"),
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
