//! Operating system: name, family, version, codename from `/etc/os-release`.

use serde_json::{Map, Value};

use crate::{CollectError, HostSource, Probe};

/// Parses os-release text into its keys (quotes removed).
pub fn parse_os_release(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                return None;
            }
            let (k, v) = l.split_once('=')?;
            let v = v.trim().trim_matches('"').trim_matches('\'');
            Some((k.trim().to_owned(), v.to_owned()))
        })
        .collect()
}

fn family(id: &str, id_like: &str) -> &'static str {
    let all = format!("{id} {id_like}");
    let has = |w: &str| all.split_whitespace().any(|x| x == w);
    if has("debian") || has("ubuntu") {
        "Debian"
    } else if has("rhel") || has("fedora") || has("centos") {
        "RedHat"
    } else if has("suse") || has("opensuse") {
        "Suse"
    } else if has("arch") {
        "Arch"
    } else if has("alpine") {
        "Alpine"
    } else {
        "Unknown"
    }
}

/// What the collector reads.
pub const PROBES: &[Probe] = &[
    Probe::File("/etc/os-release"),
    Probe::File("/usr/lib/os-release"),
];

/// Collects os, os_family, osrelease, oscodename, osfullname.
pub fn collect(src: &dyn HostSource) -> Result<Map<String, Value>, CollectError> {
    let text = src
        .read("/etc/os-release")
        .or_else(|_| src.read("/usr/lib/os-release"))?;
    let kv = parse_os_release(&text);
    let get = |k: &str| {
        kv.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let name = get("NAME");
    let short = name
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut m = Map::new();
    m.insert("os".into(), Value::String(short));
    m.insert("osfullname".into(), Value::String(name));
    m.insert(
        "os_family".into(),
        Value::String(family(&get("ID"), &get("ID_LIKE")).into()),
    );
    m.insert("osrelease".into(), Value::String(get("VERSION_ID")));
    m.insert("oscodename".into(), Value::String(get("VERSION_CODENAME")));
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_os_release() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(dir.path().join("etc")).expect("mkdir");
        std::fs::write(
            dir.path().join("etc/os-release"),
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n",
        )
        .expect("write");
        let m = collect(&crate::LocalHost::new(dir.path())).expect("collect");
        assert_eq!(m["os"], "Debian");
        assert_eq!(m["os_family"], "Debian");
        assert_eq!(m["osrelease"], "12");
        assert_eq!(m["oscodename"], "bookworm");
    }
}
