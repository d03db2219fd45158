//! The virtual machines a libvirt host runs, so the master can tell which
//! host each VM asset runs on (by the VM's system UUID).

use serde_json::{Map, Value, json};

use crate::{CollectError, HostSource, Probe};

/// Where libvirt keeps the state of running QEMU/KVM domains.
const RUNNING: &str = "/run/libvirt/qemu";

/// The text of the first `<tag>…</tag>` after `from` in `xml`.
fn element<'a>(xml: &'a str, from: usize, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.get(from..)?.find(&open)? + from + open.len();
    let end = xml.get(start..)?.find(&format!("</{tag}>"))? + start;
    xml.get(start..end).map(str::trim)
}

/// What the collector reads.
pub const PROBES: &[Probe] = &[
    Probe::Dir("/run/libvirt/qemu"),
    Probe::File("/run/libvirt/qemu/*.xml"),
];

/// Collects `guests` (name and UUID of each running domain) on a host
/// whose libvirt keeps its state under `/run/libvirt/qemu`; a host without
/// it reports nothing.
pub fn collect(src: &dyn HostSource) -> Result<Map<String, Value>, CollectError> {
    let mut m = Map::new();
    let Ok(names) = src.list_dir(RUNNING) else {
        return Ok(m);
    };
    let mut guests = Vec::new();
    for file in names.iter().filter(|n| n.ends_with(".xml")) {
        let Some(xml) = src.read_opt(&format!("{RUNNING}/{file}")) else {
            continue;
        };
        let Some(domain) = xml.find("<domain") else {
            continue;
        };
        if let Some(uuid) = element(&xml, domain, "uuid") {
            guests.push(json!({
                "name": element(&xml, domain, "name"),
                "uuid": uuid.to_ascii_lowercase(),
            }));
        }
    }
    m.insert("guests".into(), Value::Array(guests));
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_domains_are_listed_with_their_uuids() {
        let d = tempfile::tempdir().expect("tmp");
        assert!(
            collect(&crate::LocalHost::new(d.path()))
                .expect("no libvirt")
                .is_empty()
        );
        let dir = d.path().join("run/libvirt/qemu");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(
            dir.join("web1.xml"),
            "<domstatus state='running'>\n  <monitor path='/x'/>\n  <domain type='kvm' id='3'>\n    \
             <name>web1</name>\n    <uuid>4C4C4544-0042-3510-8057-B4C04F4E3332</uuid>\n  </domain>\n</domstatus>\n",
        )
        .expect("write");
        std::fs::write(dir.join("web1.pid"), "123").expect("write");
        std::fs::write(dir.join("broken.xml"), "<domain><name>x</name>").expect("write");
        let facts = collect(&crate::LocalHost::new(d.path())).expect("collect");
        assert_eq!(
            facts["guests"],
            json!([{"name": "web1", "uuid": "4c4c4544-0042-3510-8057-b4c04f4e3332"}])
        );
    }
}
