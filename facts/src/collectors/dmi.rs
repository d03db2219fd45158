//! DMI/SMBIOS data from `/sys/class/dmi/id`: system, board and BIOS.
//! Serial numbers and the UUID are readable by root only; unreadable fields
//! are null.

use serde_json::{Map, Value, json};

use crate::{CollectError, HostSource, Probe};

/// What the collector reads.
pub const PROBES: &[Probe] = &[
    Probe::Dir("/sys/class/dmi/id"),
    Probe::Line(
        "/sys/class/dmi/id/sys_vendor /sys/class/dmi/id/product_name \
         /sys/class/dmi/id/product_version /sys/class/dmi/id/product_serial \
         /sys/class/dmi/id/product_uuid /sys/class/dmi/id/board_vendor \
         /sys/class/dmi/id/board_name /sys/class/dmi/id/board_serial \
         /sys/class/dmi/id/bios_vendor /sys/class/dmi/id/bios_version \
         /sys/class/dmi/id/bios_date",
    ),
];

/// Collects `dmi: {system: {manufacturer, product, version, serial, uuid},
/// board: {vendor, product, serial}, bios: {vendor, version, date}}` and the
/// flat `manufacturer`, `productname`, `serialnumber`, `uuid`.
pub fn collect(src: &dyn HostSource) -> Result<Map<String, Value>, CollectError> {
    if !src.is_dir("/sys/class/dmi/id") {
        return Err(CollectError::Parse {
            path: src.display_path("/sys/class/dmi/id"),
            reason: "no DMI table on this machine".into(),
        });
    }
    let get = |f: &str| -> Value {
        src.read_opt(&format!("/sys/class/dmi/id/{f}"))
            .map(|s| Value::String(s.trim().to_owned()))
            .unwrap_or(Value::Null)
    };
    let system = json!({
        "manufacturer": get("sys_vendor"),
        "product": get("product_name"),
        "version": get("product_version"),
        "serial": get("product_serial"),
        "uuid": get("product_uuid"),
    });
    let mut m = Map::new();
    m.insert("manufacturer".into(), system["manufacturer"].clone());
    m.insert("productname".into(), system["product"].clone());
    m.insert("serialnumber".into(), system["serial"].clone());
    m.insert("uuid".into(), system["uuid"].clone());
    m.insert(
        "dmi".into(),
        json!({
            "system": system,
            "board": {"vendor": get("board_vendor"), "product": get("board_name"), "serial": get("board_serial")},
            "bios": {"vendor": get("bios_vendor"), "version": get("bios_version"), "date": get("bios_date")},
        }),
    );
    Ok(m)
}
