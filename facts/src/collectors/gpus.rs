//! Display controllers on the PCI bus (class 0x03), named from `pci.ids`
//! when it is installed.

use serde_json::{Map, Value, json};

use crate::{CollectError, HostSource, Probe};

fn pci_name(ids: &str, vendor: &str, device: &str) -> (Option<String>, Option<String>) {
    let mut vendor_name = None;
    let mut in_vendor = false;
    for line in ids.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if !line.starts_with('\t') {
            if in_vendor {
                break;
            }
            if let Some(rest) = line.strip_prefix(vendor) {
                vendor_name = Some(rest.trim().to_owned());
                in_vendor = true;
            }
        } else if in_vendor
            && !line.starts_with("\t\t")
            && let Some(rest) = line.trim_start_matches('\t').strip_prefix(device)
        {
            return (vendor_name, Some(rest.trim().to_owned()));
        }
    }
    (vendor_name, None)
}

/// What the collector reads.
pub const PROBES: &[Probe] = &[
    Probe::File("/usr/share/misc/pci.ids"),
    Probe::File("/usr/share/hwdata/pci.ids"),
    Probe::Dir("/sys/bus/pci/devices"),
    Probe::Line("/sys/bus/pci/devices/*/class"),
    Probe::Line("/sys/bus/pci/devices/*/vendor"),
    Probe::Line("/sys/bus/pci/devices/*/device"),
];

/// Collects `gpus: {pci_slot: {vendor_id, device_id, vendor, model}}` and `num_gpus`.
pub fn collect(src: &dyn HostSource) -> Result<Map<String, Value>, CollectError> {
    let ids = ["/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids"]
        .iter()
        .find_map(|p| src.read_opt(p))
        .unwrap_or_default();
    let mut gpus = Map::new();
    for slot in src.list_dir("/sys/bus/pci/devices")? {
        let base = format!("/sys/bus/pci/devices/{slot}");
        let class = src.read_opt(&format!("{base}/class")).unwrap_or_default();
        if !class.trim().starts_with("0x03") {
            continue;
        }
        let id = |f: &str| {
            src.read_opt(&format!("{base}/{f}"))
                .map(|s| s.trim().trim_start_matches("0x").to_owned())
                .unwrap_or_default()
        };
        let (vendor_id, device_id) = (id("vendor"), id("device"));
        let (vendor, model) = pci_name(&ids, &vendor_id, &device_id);
        gpus.insert(
            slot,
            json!({"vendor_id": vendor_id, "device_id": device_id, "vendor": vendor, "model": model}),
        );
    }
    let mut m = Map::new();
    m.insert("num_gpus".into(), json!(gpus.len()));
    m.insert("gpus".into(), Value::Object(gpus));
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_pci_ids() {
        let ids = "# c\n10de  NVIDIA Corporation\n\t1eb8  TU104GL [Tesla T4]\n\t\t10de 12a2  sub\n1af4  Red Hat\n";
        assert_eq!(
            pci_name(ids, "10de", "1eb8"),
            (
                Some("NVIDIA Corporation".into()),
                Some("TU104GL [Tesla T4]".into())
            )
        );
    }
}
