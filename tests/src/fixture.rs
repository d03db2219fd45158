//! A fake host's file system for the minion's collectors (`root = …`), so
//! process-level tests control every fact through the real code path.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::Cluster;

/// A fixture root directory.
pub struct HostRoot {
    /// The root.
    pub path: PathBuf,
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write fixture file");
}

impl HostRoot {
    /// A Debian-like host named `hostname` with system serial `serial`.
    pub fn new(path: PathBuf, hostname: &str, serial: &str) -> HostRoot {
        let r = &path;
        write(
            r,
            "etc/os-release",
            "NAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n",
        );
        write(r, "proc/sys/kernel/ostype", "Linux\n");
        write(r, "proc/sys/kernel/osrelease", "6.1.0-18-amd64\n");
        write(r, "proc/sys/kernel/version", "#1 SMP Debian\n");
        write(r, "proc/sys/kernel/hostname", &format!("{hostname}\n"));
        write(r, "proc/sys/kernel/domainname", "(none)\n");
        write(
            r,
            "etc/hosts",
            &format!("127.0.0.1 localhost\n10.0.0.5 {hostname}.dc1.example.com {hostname}\n"),
        );
        write(
            r,
            "proc/cpuinfo",
            "processor\t: 0\nmodel name\t: Xeon Gold 6338\nflags\t\t: fpu sse2\nphysical id\t: 0\ncore id\t\t: 0\n\nprocessor\t: 1\nmodel name\t: Xeon Gold 6338\nflags\t\t: fpu sse2\nphysical id\t: 0\ncore id\t\t: 1\n",
        );
        write(
            r,
            "proc/meminfo",
            "MemTotal:       16384000 kB\nSwapTotal:       2097148 kB\n",
        );
        write(r, "proc/uptime", "12345.67 23456.78\n");
        write(r, "proc/stat", "cpu 1 2 3\nbtime 1700000000\n");
        write(r, "etc/machine-id", "0123456789abcdef0123456789abcdef\n");
        for (f, v) in [
            ("sys_vendor", "Dell Inc."),
            ("product_name", "PowerEdge R650"),
            ("product_version", ""),
            ("product_serial", serial),
            ("product_uuid", "4c4c4544-0042-3510-8052-b4c04f4e4d32"),
            ("board_vendor", "Dell Inc."),
            ("board_name", "0PYXKY"),
            ("board_serial", ".B5RNMN2.CNFCP0017A00B4."),
            ("bios_vendor", "Dell Inc."),
            ("bios_version", "1.10.2"),
            ("bios_date", "07/20/2023"),
        ] {
            write(r, &format!("sys/class/dmi/id/{f}"), &format!("{v}\n"));
        }
        write(r, "sys/block/sda/size", "937703088\n");
        write(r, "sys/block/sda/queue/rotational", "0\n");
        write(r, "sys/block/sda/device/model", "MZ7L3480HCHQ\n");
        write(r, "sys/block/sda/device/vendor", "ATA\n");
        write(r, "sys/block/sda/device/serial", "S6KLNA0W123456\n");
        write(r, "sys/block/sda/sda1/size", "1048576\n");
        write(r, "sys/block/sda/sda1/start", "2048\n");
        write(r, "proc/mounts", "");
        write(r, "sys/class/net/eno1/address", "b4:96:91:aa:bb:cc\n");
        write(r, "sys/class/net/eno1/mtu", "9000\n");
        write(r, "sys/class/net/eno1/speed", "25000\n");
        write(r, "sys/class/net/eno1/operstate", "up\n");
        write(
            r,
            "proc/net/route",
            "Iface\tDestination\tGateway\tFlags\neno1\t00000000\t0100000A\t0003\n",
        );
        write(
            r,
            "proc/net/if_inet6",
            "fe80000000000000b69691fffeaabbcc 02 40 20 80     eno1\n",
        );
        write(
            r,
            "etc/resolv.conf",
            "search dc1.example.com\nnameserver 10.0.0.2\n",
        );
        write(r, "etc/timezone", "Europe/Berlin\n");
        write(
            r,
            "var/lib/dpkg/status",
            "Package: a\nStatus: install ok installed\n\nPackage: b\nStatus: install ok installed\n",
        );
        write(r, "sys/bus/pci/devices/0000:03:00.0/class", "0x030000\n");
        write(r, "sys/bus/pci/devices/0000:03:00.0/vendor", "0x102b\n");
        write(r, "sys/bus/pci/devices/0000:03:00.0/device", "0x0536\n");
        HostRoot { path }
    }

    /// Renames the host.
    pub fn set_hostname(&self, name: &str) {
        write(&self.path, "proc/sys/kernel/hostname", &format!("{name}\n"));
        write(
            &self.path,
            "etc/hosts",
            &format!("127.0.0.1 localhost\n10.0.0.5 {name}.dc1.example.com {name}\n"),
        );
    }

    /// Replaces the OS release file.
    pub fn set_os_release(&self, text: &str) {
        write(&self.path, "etc/os-release", text);
    }

    /// Sets the kernel's uptime (a volatile fact).
    pub fn set_uptime(&self, secs: u64) {
        write(&self.path, "proc/uptime", &format!("{secs}.00 1.00\n"));
    }
}

/// Writes an executable plugin `name` into `dir` that runs `body` in sh.
pub fn plugin(dir: &Path, name: &str, body: &str) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Starts an accepted minion `id` whose collectors read a fixture root
/// (host `hostname`, system serial `serial`) and whose plugins directory
/// is returned with the root; `extra` lines go into its config.
pub fn fixture_minion(
    c: &mut Cluster,
    id: &str,
    hostname: &str,
    serial: &str,
    extra: &str,
) -> (HostRoot, PathBuf) {
    let root = HostRoot::new(c.dir.path().join(format!("{id}-root")), hostname, serial);
    let plugins = c.dir.path().join(format!("{id}-plugins"));
    std::fs::create_dir_all(&plugins).expect("mkdir");
    let cfg = format!(
        "root = \"{}\"\nplugins_dir = \"{}\"\nplugin_timeout = 1\n{extra}",
        root.path.display(),
        plugins.display()
    );
    c.start_minion_with(id, id, &cfg)
        .wait_for("key pending acceptance");
    let out = c.key(&["-a", id, "-y"]);
    assert!(out.status.success());
    c.minion(id).wait_for("minion ready");
    (root, plugins)
}
