//! Whether this is a physical machine, a virtual machine (and which
//! hypervisor) or a container (and which kind).

use serde_json::{Map, Value, json};

use crate::{CollectError, HostSource, Probe};

fn hypervisor_from_dmi(text: &str) -> Option<&'static str> {
    let t = text.to_ascii_lowercase();
    [
        ("kvm", "kvm"),
        ("qemu", "kvm"),
        ("vmware", "vmware"),
        ("virtualbox", "virtualbox"),
        ("xen", "xen"),
        ("microsoft corporation virtual", "hyper-v"),
        ("hyper-v", "hyper-v"),
        ("amazon ec2", "kvm"),
        ("google compute engine", "kvm"),
        ("openstack", "kvm"),
        ("bochs", "bochs"),
        ("parallels", "parallels"),
    ]
    .iter()
    .find(|(needle, _)| t.contains(needle))
    .map(|(_, v)| *v)
}

fn container(src: &dyn HostSource) -> Option<String> {
    if src.exists("/.dockerenv") {
        return Some("docker".into());
    }
    if src.exists("/run/.containerenv") {
        return Some("podman".into());
    }
    if let Some(env) = src.read_opt("/proc/1/environ") {
        for var in env.split('\0') {
            if let Some(kind) = var.strip_prefix("container=") {
                return Some(kind.to_owned());
            }
        }
    }
    let cgroup = src.read_opt("/proc/1/cgroup").unwrap_or_default();
    ["docker", "lxc", "kubepods", "containerd"]
        .iter()
        .find(|k| cgroup.contains(*k))
        .map(|k| (*k).to_owned())
}

/// What the collector reads.
pub const PROBES: &[Probe] = &[
    Probe::Exists("/.dockerenv"),
    Probe::Exists("/run/.containerenv"),
    Probe::File("/proc/1/environ"),
    Probe::File("/proc/1/cgroup"),
    Probe::Line(
        "/sys/class/dmi/id/sys_vendor /sys/class/dmi/id/product_name /sys/class/dmi/id/bios_vendor /sys/class/dmi/id/board_vendor",
    ),
    Probe::Line("/sys/hypervisor/type"),
    Probe::File("/proc/cpuinfo"),
];

/// Collects `virtual` (`physical`, a hypervisor name, `virtual` when the
/// CPU reports a hypervisor that cannot be named, or `container`) and
/// `virtual_subtype` (container kind or null).
pub fn collect(src: &dyn HostSource) -> Result<Map<String, Value>, CollectError> {
    let mut m = Map::new();
    if let Some(kind) = container(src) {
        m.insert("virtual".into(), json!("container"));
        m.insert("virtual_subtype".into(), json!(kind));
        return Ok(m);
    }
    let dmi = ["sys_vendor", "product_name", "bios_vendor", "board_vendor"]
        .iter()
        .filter_map(|f| src.read_opt(&format!("/sys/class/dmi/id/{f}")))
        .collect::<Vec<_>>()
        .join(" ");
    let xen = src
        .read_opt("/sys/hypervisor/type")
        .map(|s| s.trim().to_owned());
    let cpu_says_vm = src.read_opt("/proc/cpuinfo").is_some_and(|c| {
        c.lines()
            .any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "hypervisor"))
    });
    let kind = hypervisor_from_dmi(&dmi)
        .map(str::to_owned)
        .or(xen.filter(|x| !x.is_empty()))
        .unwrap_or_else(|| if cpu_says_vm { "virtual" } else { "physical" }.into());
    m.insert("virtual".into(), json!(kind));
    m.insert("virtual_subtype".into(), Value::Null);
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tmp");
        for (path, text) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
        dir
    }

    #[test]
    fn kinds() {
        let d = fixture(&[("sys/class/dmi/id/sys_vendor", "VMware, Inc.\n")]);
        assert_eq!(
            collect(&crate::LocalHost::new(d.path())).expect("c")["virtual"],
            "vmware"
        );
        let d = fixture(&[
            ("sys/class/dmi/id/sys_vendor", "Dell Inc.\n"),
            ("proc/cpuinfo", "flags : fpu\n"),
        ]);
        assert_eq!(
            collect(&crate::LocalHost::new(d.path())).expect("c")["virtual"],
            "physical"
        );
        let d = fixture(&[("proc/cpuinfo", "flags : fpu hypervisor\n")]);
        assert_eq!(
            collect(&crate::LocalHost::new(d.path())).expect("c")["virtual"],
            "virtual"
        );
        let d = fixture(&[(".dockerenv", "")]);
        assert_eq!(
            collect(&crate::LocalHost::new(d.path())).expect("c")["virtual_subtype"],
            "docker"
        );
        let d = fixture(&[
            ("sys/class/dmi/id/product_name", "Virtual Machine\n"),
            (
                "sys/class/dmi/id/sys_vendor",
                "Microsoft Corporation Virtual\n",
            ),
        ]);
        assert_eq!(
            collect(&crate::LocalHost::new(d.path())).expect("c")["virtual"],
            "hyper-v"
        );
    }
}
