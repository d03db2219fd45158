//! Host names: hostname, fqdn, domain.

use serde_json::{Map, Value};

use crate::{CollectError, HostSource, Probe};

/// The fully qualified name: the hostname with the kernel's domain name, or
/// the first dotted alias of the hostname in `/etc/hosts`.
fn fqdn(src: &dyn HostSource, host: &str) -> String {
    if host.contains('.') {
        return host.to_owned();
    }
    let domain = src.read("/proc/sys/kernel/domainname").unwrap_or_default();
    let domain = domain.trim();
    if !domain.is_empty() && domain != "(none)" {
        return format!("{host}.{domain}");
    }
    let hosts = src.read("/etc/hosts").unwrap_or_default();
    for line in hosts.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let names: Vec<&str> = line.split_whitespace().skip(1).collect();
        if let Some(full) = names
            .iter()
            .find(|n| n.split('.').next() == Some(host) && n.contains('.'))
        {
            return (*full).to_owned();
        }
    }
    host.to_owned()
}

/// What the collector reads.
pub const PROBES: &[Probe] = &[
    Probe::Line("/proc/sys/kernel/hostname"),
    Probe::Line("/etc/hostname"),
    Probe::Line("/proc/sys/kernel/domainname"),
    Probe::File("/etc/hosts"),
];

/// Collects host, fqdn, domain.
pub fn collect(src: &dyn HostSource) -> Result<Map<String, Value>, CollectError> {
    let host = src
        .read("/proc/sys/kernel/hostname")
        .or_else(|_| src.read("/etc/hostname"))?
        .trim()
        .to_owned();
    let fqdn = fqdn(src, &host);
    let domain = fqdn
        .split_once('.')
        .map(|(_, d)| d.to_owned())
        .unwrap_or_default();
    let mut m = Map::new();
    m.insert("host".into(), Value::String(host));
    m.insert("fqdn".into(), Value::String(fqdn));
    m.insert("domain".into(), Value::String(domain));
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fqdn_from_hosts_file() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(dir.path().join("etc")).expect("mkdir");
        std::fs::write(
            dir.path().join("etc/hosts"),
            "127.0.0.1 localhost\n10.0.0.5 web01.dc1.example.com web01\n",
        )
        .expect("write");
        assert_eq!(
            fqdn(&crate::LocalHost::new(dir.path()), "web01"),
            "web01.dc1.example.com"
        );
        assert_eq!(fqdn(&crate::LocalHost::new(dir.path()), "db01"), "db01");
    }
}
