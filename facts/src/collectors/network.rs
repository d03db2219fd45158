//! Network interfaces: MAC, MTU, link speed, state, IPv4 and IPv6 with
//! prefix. Link data comes from `/sys/class/net`, IPv6 from
//! `/proc/net/if_inet6`; IPv4 addresses are asked of the host source
//! (the kernel's getifaddrs on the live system, `ip` on a remote host).

use std::collections::BTreeMap;
use std::net::Ipv6Addr;

use serde_json::{Map, Value, json};

use crate::{CollectError, HostSource, Probe};

fn ipv6_from_hex(hex: &str) -> Option<Ipv6Addr> {
    let v = u128::from_str_radix(hex, 16).ok()?;
    Some(Ipv6Addr::from(v))
}

/// What the collector reads.
pub const PROBES: &[Probe] = &[
    Probe::File("/proc/net/if_inet6"),
    Probe::Ipv4,
    Probe::Dir("/sys/class/net"),
    Probe::Line("/sys/class/net/*/address"),
    Probe::Line("/sys/class/net/*/speed"),
    Probe::Line("/sys/class/net/*/mtu"),
    Probe::Line("/sys/class/net/*/operstate"),
];

/// Collects `nics: {name: {mac, mtu, speed_mbps, state, ipv4, ipv6}}` and the
/// flat lists `ipv4`, `ipv6` and `hwaddr_interfaces` (Salt's grain names).
pub fn collect(src: &dyn HostSource) -> Result<Map<String, Value>, CollectError> {
    let mut v6: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(text) = src.read_opt("/proc/net/if_inet6") {
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let [hex, _, plen, _, _, name] = f.as_slice()
                && let (Some(ip), Ok(plen)) = (ipv6_from_hex(hex), u8::from_str_radix(plen, 16))
            {
                v6.entry((*name).to_owned())
                    .or_default()
                    .push(format!("{ip}/{plen}"));
            }
        }
    }
    let v4: BTreeMap<String, Vec<String>> = src.ipv4_addrs().unwrap_or_default();
    let mut nics = Map::new();
    let mut hw = Map::new();
    for name in src.list_dir("/sys/class/net")? {
        let base = format!("/sys/class/net/{name}");
        let get = |f: &str| {
            src.read_opt(&format!("{base}/{f}"))
                .map(|s| s.trim().to_owned())
        };
        let mac = get("address").unwrap_or_default();
        let speed = get("speed")
            .and_then(|s| s.parse::<i64>().ok())
            .filter(|s| *s > 0);
        if !mac.is_empty() {
            hw.insert(name.clone(), Value::String(mac.clone()));
        }
        nics.insert(
            name.clone(),
            json!({
                "mac": mac,
                "mtu": get("mtu").and_then(|s| s.parse::<u64>().ok()),
                "speed_mbps": speed,
                "state": get("operstate").unwrap_or_else(|| "unknown".into()),
                "ipv4": v4.get(&name).cloned().unwrap_or_default(),
                "ipv6": v6.get(&name).cloned().unwrap_or_default(),
            }),
        );
    }
    let strip = |l: &BTreeMap<String, Vec<String>>| -> Vec<String> {
        let mut all: Vec<String> = l
            .values()
            .flatten()
            .map(|a| a.split('/').next().unwrap_or_default().to_owned())
            .collect();
        all.sort();
        all.dedup();
        all
    };
    let mut m = Map::new();
    m.insert("ipv4".into(), json!(strip(&v4)));
    m.insert("ipv6".into(), json!(strip(&v6)));
    m.insert("hwaddr_interfaces".into(), Value::Object(hw));
    m.insert("nics".into(), Value::Object(nics));
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fixture_interfaces() {
        let dir = tempfile::tempdir().expect("tmp");
        let base = dir.path().join("sys/class/net/eth0");
        std::fs::create_dir_all(&base).expect("mkdir");
        std::fs::write(base.join("address"), "52:54:00:12:34:56\n").expect("w");
        std::fs::write(base.join("mtu"), "1500\n").expect("w");
        std::fs::write(base.join("speed"), "10000\n").expect("w");
        std::fs::write(base.join("operstate"), "up\n").expect("w");
        std::fs::create_dir_all(dir.path().join("proc/net")).expect("mkdir");
        std::fs::write(
            dir.path().join("proc/net/if_inet6"),
            "fe8000000000000000fc00fffe000001 04 40 20 80     eth0\n",
        )
        .expect("w");
        let m = collect(&crate::LocalHost::new(dir.path())).expect("collect");
        let eth0 = &m["nics"]["eth0"];
        assert_eq!(eth0["mac"], "52:54:00:12:34:56");
        assert_eq!(eth0["speed_mbps"], 10000);
        assert_eq!(eth0["ipv6"], json!(["fe80::fc:ff:fe00:1/64"]));
        assert_eq!(m["ipv6"], json!(["fe80::fc:ff:fe00:1"]));
    }
}
