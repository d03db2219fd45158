//! Default gateways from the kernel's routing tables.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value, json};

use crate::{CollectError, HostSource, Probe};

/// What the collector reads.
pub const PROBES: &[Probe] = &[
    Probe::File("/proc/net/route"),
    Probe::File("/proc/net/ipv6_route"),
];

/// Collects `default_gateway: {ipv4, ipv4_interface, ipv6, ipv6_interface}`
/// (null where there is none).
pub fn collect(src: &dyn HostSource) -> Result<Map<String, Value>, CollectError> {
    let mut gw =
        json!({"ipv4": null, "ipv4_interface": null, "ipv6": null, "ipv6_interface": null});
    let route = src.read("/proc/net/route")?;
    for line in route.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [iface, dest, gateway, ..] = f.as_slice()
            && *dest == "00000000"
            && let Ok(g) = u32::from_str_radix(gateway, 16)
        {
            gw["ipv4"] = json!(Ipv4Addr::from(g.swap_bytes()).to_string());
            gw["ipv4_interface"] = json!(iface);
            break;
        }
    }
    if let Some(v6) = src.read_opt("/proc/net/ipv6_route") {
        for line in v6.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() >= 10
                && f[0] == "00000000000000000000000000000000"
                && f[1] == "00"
                && f[4] != "00000000000000000000000000000000"
                && let Ok(g) = u128::from_str_radix(f[4], 16)
            {
                gw["ipv6"] = json!(Ipv6Addr::from(g).to_string());
                gw["ipv6_interface"] = json!(f[9]);
                break;
            }
        }
    }
    let mut m = Map::new();
    m.insert("default_gateway".into(), gw);
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_default_route() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(dir.path().join("proc/net")).expect("mkdir");
        std::fs::write(
            dir.path().join("proc/net/route"),
            "Iface\tDestination\tGateway \tFlags\nenp1\t00000000\t010200C0\t0003\n",
        )
        .expect("w");
        let m = collect(&crate::LocalHost::new(dir.path())).expect("collect");
        assert_eq!(m["default_gateway"]["ipv4"], "192.0.2.1");
        assert_eq!(m["default_gateway"]["ipv4_interface"], "enp1");
    }
}
