//! Block devices from `/sys/block`: size, model, vendor, serial, kind.
//! Loop, ram, zram and device-mapper devices are left out.

use serde_json::{Map, Value, json};

use crate::{CollectError, HostSource, Probe};

fn is_virtual_device(name: &str) -> bool {
    ["loop", "ram", "zram", "dm-", "md", "sr", "fd", "nbd"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// A value from udev's database for a block device, if present.
fn udev_prop(src: &dyn HostSource, devnum: &str, key: &str) -> Option<String> {
    let text = src.read_opt(&format!("/run/udev/data/b{devnum}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("E:{key}=")))
        .map(str::to_owned)
}

/// What the collector reads.
pub const PROBES: &[Probe] = &[
    Probe::Dir("/sys/block"),
    Probe::Line("/sys/block/*/size"),
    Probe::Line("/sys/block/*/queue/rotational"),
    Probe::Line("/sys/block/*/dev"),
    Probe::Line("/sys/block/*/device/serial"),
    Probe::Line("/sys/block/*/device/model"),
    Probe::Line("/sys/block/*/device/vendor"),
    Probe::File("/run/udev/data/b*"),
];

/// Collects `disks: {name: {size_bytes, model, vendor, serial, rotational, kind}}`.
pub fn collect(src: &dyn HostSource) -> Result<Map<String, Value>, CollectError> {
    let mut disks = Map::new();
    for name in src.list_dir("/sys/block")? {
        if is_virtual_device(&name) {
            continue;
        }
        let base = format!("/sys/block/{name}");
        let sectors: u64 = src
            .read_opt(&format!("{base}/size"))
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let rotational = src
            .read_opt(&format!("{base}/queue/rotational"))
            .map(|s| s.trim() == "1");
        let devnum = src.read_opt(&format!("{base}/dev")).unwrap_or_default();
        let devnum = devnum.trim();
        let serial = src
            .read_opt(&format!("{base}/device/serial"))
            .map(|s| s.trim().to_owned())
            .or_else(|| udev_prop(src, devnum, "ID_SERIAL_SHORT"))
            .filter(|s| !s.is_empty());
        let model = src
            .read_opt(&format!("{base}/device/model"))
            .map(|s| s.trim().to_owned());
        let vendor = src
            .read_opt(&format!("{base}/device/vendor"))
            .map(|s| s.trim().to_owned());
        let kind = if name.starts_with("nvme") {
            "nvme"
        } else if name.starts_with("vd") || name.starts_with("xvd") {
            "virtio"
        } else {
            match rotational {
                Some(true) => "hdd",
                Some(false) => "ssd",
                None => "unknown",
            }
        };
        disks.insert(
            name.clone(),
            json!({
                "size_bytes": sectors * 512,
                "model": model,
                "vendor": vendor,
                "serial": serial,
                "rotational": rotational,
                "kind": kind,
            }),
        );
    }
    let mut m = Map::new();
    m.insert("disks".into(), Value::Object(disks));
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_fixture_disk() {
        let dir = tempfile::tempdir().expect("tmp");
        let base = dir.path().join("sys/block/sda");
        std::fs::create_dir_all(base.join("device")).expect("mkdir");
        std::fs::create_dir_all(base.join("queue")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("sys/block/loop0")).expect("mkdir");
        std::fs::write(base.join("size"), "2048\n").expect("w");
        std::fs::write(base.join("queue/rotational"), "0\n").expect("w");
        std::fs::write(base.join("device/model"), "Samsung SSD 870 \n").expect("w");
        std::fs::write(base.join("device/vendor"), "ATA\n").expect("w");
        std::fs::write(base.join("dev"), "8:0\n").expect("w");
        std::fs::create_dir_all(dir.path().join("run/udev/data")).expect("mkdir");
        std::fs::write(
            dir.path().join("run/udev/data/b8:0"),
            "E:ID_SERIAL_SHORT=S1234\n",
        )
        .expect("w");
        let m = collect(&crate::LocalHost::new(dir.path())).expect("collect");
        let d = &m["disks"]["sda"];
        assert_eq!(d["size_bytes"], 2048 * 512);
        assert_eq!(d["model"], "Samsung SSD 870");
        assert_eq!(d["serial"], "S1234");
        assert_eq!(d["kind"], "ssd");
        assert!(m["disks"].get("loop0").is_none());
    }
}
