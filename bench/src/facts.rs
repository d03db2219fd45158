//! Realistic `collect` payloads (~8 KB of JSON, shaped like a real host's
//! facts) with a configurable fraction of fields changing between collects.

use serde_json::{Map, Value, json};

/// Fields in the `custom` block that churn picks from.
pub const CHURN_FIELDS: usize = 100;

/// The facts of simulated host `n` at collect number `round`: a fraction
/// `churn` of the `custom` fields changes from one round to the next.
pub fn host_facts(id: &str, n: usize, round: u64, churn: f64) -> Value {
    let flags: Vec<String> = (0..120).map(|i| format!("flag{i:03}")).collect();
    let mut disks = Map::new();
    for d in 0..4 {
        disks.insert(
            format!("sd{}", (b'a' + d as u8) as char),
            json!({"size_bytes": 960_197_124_096u64, "model": "MZ7L3960HCJR-00A07", "vendor": "ATA",
                   "serial": format!("S6KN{n:06}{d}"), "rotational": false, "kind": "ssd"}),
        );
    }
    let mut nics = Map::new();
    for i in 0..4 {
        nics.insert(
            format!("eno{i}"),
            json!({"mac": format!("b4:96:91:{:02x}:{:02x}:{i:02x}", n / 256 % 256, n % 256), "mtu": 9000,
                   "speed_mbps": 25000, "state": "up",
                   "ipv4": [format!("10.{}.{}.{}/24", i, n / 256 % 256, n % 256)],
                   "ipv6": [format!("fe80::b696:91ff:fe{:02x}:{:02x}{i:02x}/64", n / 256 % 256, n % 256)]}),
        );
    }
    let mut mounts = Map::new();
    for m in MOUNTS {
        mounts.insert(
            m.into(),
            json!({"device": "/dev/mapper/vg0-root", "fs_type": "xfs", "size_bytes": 107_374_182_400u64,
                   "used_bytes": 0, "available_bytes": 85_899_345_920u64}),
        );
    }
    let mut services = Map::new();
    for (i, svc) in [
        "sshd",
        "chronyd",
        "rsyslog",
        "cron",
        "nginx",
        "node_exporter",
        "filebeat",
        "containerd",
        "kubelet",
        "auditd",
        "systemd-journald",
        "systemd-logind",
        "systemd-networkd",
        "systemd-resolved",
        "dbus",
        "polkit",
        "lldpd",
        "snmpd",
        "ipmievd",
        "smartd",
    ]
    .iter()
    .enumerate()
    {
        services.insert((*svc).into(), json!({"state": "running", "enabled": true, "unit": format!("{svc}.service"), "pid": 1000 + i}));
    }
    let mut custom = Map::new();
    for f in 0..CHURN_FIELDS {
        custom.insert(format!("f{f:02}"), json!(format!("value-{f}-0")));
    }
    let mut facts = json!({
        "id": id, "host": id, "fqdn": format!("{id}.dc1.example.com"), "domain": "dc1.example.com",
        "os": "Debian", "osfullname": "Debian GNU/Linux", "os_family": "Debian", "osrelease": "12", "oscodename": "bookworm",
        "kernel": "Linux", "kernelrelease": "6.1.0-18-amd64", "kernelversion": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1", "osarch": "x86_64",
        "machine_id": format!("{n:032x}"), "cpu_model": "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", "num_cpus": 128,
        "cpu": {"model": "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", "sockets": 2, "cores": 64, "threads": 128},
        "cpu_flags": flags, "mem_total_bytes": 540_000_000_000u64, "swap_total_bytes": 8_589_930_496u64,
        "disks": disks, "partitions": {"sda1": {"disk": "sda", "size_bytes": 536_870_912, "start_sector": 2048}},
        "mounts": mounts, "nics": nics, "ipv4": [format!("10.0.{}.{}", n / 256 % 256, n % 256)],
        "default_gateway": {"ipv4": "10.0.0.1", "ipv4_interface": "eno0", "ipv6": null, "ipv6_interface": null},
        "dns": {"nameservers": ["10.0.0.2", "10.0.0.3"], "search": ["dc1.example.com"]},
        "manufacturer": "Dell Inc.", "productname": "PowerEdge R650", "serialnumber": format!("CZ{n:08}"),
        "uuid": format!("4c4c4544-{n:04x}-3510-8052-b4c04f4e4d32"),
        "dmi": {"system": {"manufacturer": "Dell Inc.", "product": "PowerEdge R650", "version": "", "serial": format!("CZ{n:08}"), "uuid": format!("4c4c4544-{n:04x}")},
                "board": {"vendor": "Dell Inc.", "product": "0PYXKY", "serial": format!(".B{n:06}.")},
                "bios": {"vendor": "Dell Inc.", "version": "1.10.2", "date": "07/20/2023"}},
        "virtual": "physical", "virtual_subtype": null, "uptime_seconds": 0, "boot_time": 1_700_000_000,
        "timezone": "Europe/Berlin", "packages": {"manager": "dpkg", "count": 812}, "gpus": {}, "num_gpus": 0
    });
    facts["services"] = Value::Object(services);
    facts["custom"] = Value::Object(custom);
    advance(&mut facts, round, churn);
    facts
}

/// The mount points every simulated host has.
const MOUNTS: [&str; 6] = ["/", "/boot", "/var", "/var/log", "/home", "/srv"];

/// Turns a host's facts (from [`host_facts`], at any round) into those of
/// collect number `round`, changing in place only what moves between
/// collects: used space, uptime and the churning `custom` fields. A swarm
/// keeps each host's facts and advances them, instead of building ~8 KB of
/// JSON afresh for every collect on the machine it shares with the master.
pub fn advance(facts: &mut Value, round: u64, churn: f64) {
    if let Some(mounts) = facts["mounts"].as_object_mut() {
        for m in mounts.values_mut() {
            m["used_bytes"] = json!(21_474_836_480u64 + round * 4096);
        }
    }
    facts["uptime_seconds"] = json!(86_400 + round * 3600);
    let changed = ((CHURN_FIELDS as f64) * churn).round() as usize;
    if let Some(custom) = facts["custom"].as_object_mut() {
        for f in 0..changed.min(CHURN_FIELDS) {
            if let Some(v) = custom.get_mut(&format!("f{f:02}")) {
                *v = json!(format!("value-{f}-{round}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_eight_kilobytes_and_churn_changes_the_fraction_asked() {
        let a = host_facts("m1", 1, 1, 0.01);
        let len = serde_json::to_vec(&a).expect("json").len();
        assert!((6_000..12_000).contains(&len), "{len}");
        let b = host_facts("m1", 1, 2, 0.01);
        let diff = a["custom"]
            .as_object()
            .expect("custom")
            .iter()
            .filter(|(k, v)| b["custom"][k.as_str()] != **v)
            .count();
        assert_eq!(diff, 1);
    }

    #[test]
    fn advancing_a_host_gives_the_facts_of_the_later_round() {
        for churn in [0.0, 0.01, 0.5] {
            let mut facts = host_facts("m7", 7, 1, churn);
            advance(&mut facts, 5, churn);
            assert_eq!(facts, host_facts("m7", 7, 5, churn), "churn {churn}");
            assert_ne!(facts, host_facts("m7", 7, 4, churn), "churn {churn}");
        }
    }
}
