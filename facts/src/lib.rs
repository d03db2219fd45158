//! Asset fact collectors, one file each, reading a host through a
//! [`HostSource`]: the local system (or a fixture tree below another root)
//! or a remote host over SSH (a [`Snapshot`] of what the collectors read,
//! fetched in one round trip). Parsing is kept apart from the reads. A
//! failing collector's error goes under `_errors` while the others still
//! report. Units are explicit in key names.
//!
//! [`process`] is where processes are started (plugins, commands, SSH).

#![deny(missing_docs)]

pub mod collectors;
pub mod plugins;
pub mod process;
pub mod snapshot;
pub mod source;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use thiserror::Error;

use collectors::*;
pub use snapshot::{Probe, Snapshot};
pub use source::{FsUsage, HostSource, LocalHost};

/// Why a collector could not report.
#[derive(Debug, Error)]
pub enum CollectError {
    /// A source file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A source file did not hold what was expected.
    #[error("{path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A command could not be run.
    #[error("{program}: {source}")]
    Command {
        /// The program.
        program: String,
        /// The cause.
        #[source]
        source: process::ProcessError,
    },
}

/// A built-in collector. Names are the keys of the `[collectors]` table in
/// `minion.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Collector {
    /// Operating system name, family, release.
    Os,
    /// Kernel name, release, version, architecture.
    Kernel,
    /// Host name, FQDN, domain.
    Host,
    /// The machine id.
    MachineId,
    /// CPU model, sockets, cores, threads, flags.
    Cpu,
    /// Memory and swap totals.
    Memory,
    /// Block devices.
    Disks,
    /// Partitions.
    Partitions,
    /// Mounted file systems with their use.
    Mounts,
    /// Network interfaces and addresses.
    Network,
    /// Default gateways.
    Gateway,
    /// Resolver settings.
    Dns,
    /// DMI system, board and BIOS.
    Dmi,
    /// Physical, virtual machine or container.
    Virtualization,
    /// Uptime and boot time.
    Uptime,
    /// Time zone.
    Timezone,
    /// Installed package count.
    Packages,
    /// Display controllers.
    Gpus,
    /// Virtual machines this host runs.
    Guests,
}

impl Collector {
    /// Every collector, in reporting order.
    pub const ALL: [Collector; 19] = [
        Collector::Os,
        Collector::Kernel,
        Collector::Host,
        Collector::MachineId,
        Collector::Cpu,
        Collector::Memory,
        Collector::Disks,
        Collector::Partitions,
        Collector::Mounts,
        Collector::Network,
        Collector::Gateway,
        Collector::Dns,
        Collector::Dmi,
        Collector::Virtualization,
        Collector::Uptime,
        Collector::Timezone,
        Collector::Packages,
        Collector::Gpus,
        Collector::Guests,
    ];

    /// Its name in config and in `_errors`.
    pub fn name(self) -> &'static str {
        match self {
            Collector::Os => "os",
            Collector::Kernel => "kernel",
            Collector::Host => "host",
            Collector::MachineId => "machine_id",
            Collector::Cpu => "cpu",
            Collector::Memory => "memory",
            Collector::Disks => "disks",
            Collector::Partitions => "partitions",
            Collector::Mounts => "mounts",
            Collector::Network => "network",
            Collector::Gateway => "gateway",
            Collector::Dns => "dns",
            Collector::Dmi => "dmi",
            Collector::Virtualization => "virtualization",
            Collector::Uptime => "uptime",
            Collector::Timezone => "timezone",
            Collector::Packages => "packages",
            Collector::Gpus => "gpus",
            Collector::Guests => "guests",
        }
    }

    /// Collects this collector's facts from `src`.
    pub fn collect(self, src: &dyn HostSource) -> Result<Map<String, Value>, CollectError> {
        match self {
            Collector::Os => os::collect(src),
            Collector::Kernel => kernel::collect(src),
            Collector::Host => host::collect(src),
            Collector::MachineId => machine_id::collect(src),
            Collector::Cpu => cpu::collect(src),
            Collector::Memory => memory::collect(src),
            Collector::Disks => disks::collect(src),
            Collector::Partitions => partitions::collect(src),
            Collector::Mounts => mounts::collect(src),
            Collector::Network => network::collect(src),
            Collector::Gateway => gateway::collect(src),
            Collector::Dns => dns::collect(src),
            Collector::Dmi => dmi::collect(src),
            Collector::Virtualization => virtualization::collect(src),
            Collector::Uptime => uptime::collect(src),
            Collector::Timezone => timezone::collect(src),
            Collector::Packages => packages::collect(src),
            Collector::Gpus => gpus::collect(src),
            Collector::Guests => guests::collect(src),
        }
    }

    /// What this collector reads, for a source that fetches ahead
    /// ([`Snapshot`]).
    pub fn probes(self) -> &'static [Probe] {
        match self {
            Collector::Os => os::PROBES,
            Collector::Kernel => kernel::PROBES,
            Collector::Host => host::PROBES,
            Collector::MachineId => machine_id::PROBES,
            Collector::Cpu => cpu::PROBES,
            Collector::Memory => memory::PROBES,
            Collector::Disks => disks::PROBES,
            Collector::Partitions => partitions::PROBES,
            Collector::Mounts => mounts::PROBES,
            Collector::Network => network::PROBES,
            Collector::Gateway => gateway::PROBES,
            Collector::Dns => dns::PROBES,
            Collector::Dmi => dmi::PROBES,
            Collector::Virtualization => virtualization::PROBES,
            Collector::Uptime => uptime::PROBES,
            Collector::Timezone => timezone::PROBES,
            Collector::Packages => packages::PROBES,
            Collector::Gpus => gpus::PROBES,
            Collector::Guests => guests::PROBES,
        }
    }
}

impl std::fmt::Display for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a collector's.
#[derive(Debug, Error)]
#[error("unknown collector (known: {})", Collector::ALL.map(Collector::name).join(", "))]
pub struct UnknownCollector {
    /// The name given.
    pub name: String,
}

impl FromStr for Collector {
    type Err = UnknownCollector;

    fn from_str(s: &str) -> Result<Collector, UnknownCollector> {
        Collector::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| UnknownCollector { name: s.to_owned() })
    }
}

/// What a collect run reads and runs.
#[derive(Debug, Clone)]
pub struct CollectSettings {
    /// Root of the file system read.
    pub root: PathBuf,
    /// Collectors turned off.
    pub disabled: BTreeSet<Collector>,
    /// Directory of fact plugins, if any.
    pub plugins_dir: Option<PathBuf>,
    /// How long one plugin may run.
    pub plugin_timeout: Duration,
}

impl CollectSettings {
    /// Every collector on, no plugins, reading `root`.
    pub fn all(root: &Path) -> CollectSettings {
        CollectSettings {
            root: root.to_owned(),
            disabled: BTreeSet::new(),
            plugins_dir: None,
            plugin_timeout: Duration::from_secs(10),
        }
    }
}

/// Runs every built-in collector not in `disabled` over `src` and merges
/// their facts; errors go under `_errors` by collector name.
pub fn collect_from(
    src: &dyn HostSource,
    disabled: &BTreeSet<Collector>,
    id: &str,
) -> Map<String, Value> {
    let mut facts = Map::new();
    facts.insert("id".into(), Value::String(id.to_owned()));
    let mut errors = Map::new();
    for c in Collector::ALL {
        if disabled.contains(&c) {
            continue;
        }
        match c.collect(src) {
            Ok(part) => facts.extend(part),
            Err(e) => {
                errors.insert(c.name().into(), Value::String(e.to_string()));
            }
        }
    }
    if !errors.is_empty() {
        facts.insert("_errors".into(), Value::Object(errors));
    }
    facts
}

/// Runs every enabled built-in collector on the local system below the
/// settings' root.
pub fn collect_builtin(settings: &CollectSettings, id: &str) -> Map<String, Value> {
    collect_from(&LocalHost::new(&settings.root), &settings.disabled, id)
}

/// Runs the built-in collectors (on a blocking thread) and the plugins.
pub async fn collect(settings: &CollectSettings, id: &str) -> Map<String, Value> {
    let s = settings.clone();
    let owned_id = id.to_owned();
    let mut facts = tokio::task::spawn_blocking(move || collect_builtin(&s, &owned_id))
        .await
        .unwrap_or_else(|e| {
            let mut m = Map::new();
            m.insert("id".into(), Value::String(id.to_owned()));
            m.insert(
                "_errors".into(),
                serde_json::json!({"collectors": format!("collector thread failed: {e}")}),
            );
            m
        });
    if let Some(dir) = &settings.plugins_dir {
        plugins::merge(&mut facts, dir, settings.plugin_timeout).await;
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_collectors_report_errors_and_the_rest_still_return() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(dir.path().join("proc")).expect("mkdir");
        std::fs::write(
            dir.path().join("proc/meminfo"),
            "MemTotal:        2048 kB\nSwapTotal:       1024 kB\n",
        )
        .expect("write");
        let facts = collect_builtin(&CollectSettings::all(dir.path()), "m1");
        assert_eq!(facts["id"], "m1");
        assert_eq!(facts["mem_total_bytes"], 2048 * 1024);
        let errors = facts["_errors"].as_object().expect("errors");
        assert!(errors.contains_key("os"));
        assert!(!errors.contains_key("memory"));
    }

    #[test]
    fn this_host_reports_every_first_fact() {
        let facts = collect_builtin(&CollectSettings::all(Path::new("/")), "me");
        for key in [
            "kernel",
            "kernelrelease",
            "osarch",
            "num_cpus",
            "mem_total_bytes",
            "boot_time",
            "uptime_seconds",
            "disks",
            "mounts",
            "nics",
            "default_gateway",
            "dns",
            "virtual",
            "timezone",
            "packages",
            "gpus",
            "cpu",
        ] {
            assert!(facts.contains_key(key), "missing {key}: {facts:?}");
        }
    }
}
