//! Asset fact collectors, one file each. Every collector reads below a
//! configurable system root (so a fixture tree can stand in for `/`), returns
//! its facts or an error, and a failing collector's error goes under
//! `_errors` while the others still report. Units are explicit in key names.

pub mod cpu;
pub mod disks;
pub mod dmi;
pub mod dns;
pub mod gateway;
pub mod gpus;
pub mod guests;
pub mod host;
pub mod kernel;
pub mod machine_id;
pub mod memory;
pub mod mounts;
pub mod network;
pub mod os;
pub mod packages;
pub mod partitions;
pub mod plugins;
pub mod timezone;
pub mod uptime;
pub mod virtualization;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};
use thiserror::Error;

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
}

/// A collector: a name and a function from the system root to facts.
pub type Collector = (
    &'static str,
    fn(&Path) -> Result<Map<String, Value>, CollectError>,
);

/// Every collector, in reporting order. Names are the keys of the
/// `[collectors]` table in `minion.toml`.
pub const COLLECTORS: &[Collector] = &[
    ("os", os::collect),
    ("kernel", kernel::collect),
    ("host", host::collect),
    ("machine_id", machine_id::collect),
    ("cpu", cpu::collect),
    ("memory", memory::collect),
    ("disks", disks::collect),
    ("partitions", partitions::collect),
    ("mounts", mounts::collect),
    ("network", network::collect),
    ("gateway", gateway::collect),
    ("dns", dns::collect),
    ("dmi", dmi::collect),
    ("virtualization", virtualization::collect),
    ("uptime", uptime::collect),
    ("timezone", timezone::collect),
    ("packages", packages::collect),
    ("gpus", gpus::collect),
    ("guests", guests::collect),
];

/// Whether `name` is a known collector.
pub fn is_collector(name: &str) -> bool {
    COLLECTORS.iter().any(|(n, _)| *n == name)
}

/// What a collect run reads and runs.
#[derive(Debug, Clone)]
pub struct CollectSettings {
    /// Root of the file system read.
    pub root: PathBuf,
    /// Collectors turned off.
    pub disabled: BTreeSet<String>,
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

/// Reads `rel` (an absolute path such as `/proc/meminfo`) below `root`.
pub fn read(root: &Path, rel: &str) -> Result<String, CollectError> {
    let path = root.join(rel.trim_start_matches('/'));
    std::fs::read_to_string(&path).map_err(|source| CollectError::Read { path, source })
}

/// Like [`read`], but a missing or unreadable file is `None`.
pub fn read_opt(root: &Path, rel: &str) -> Option<String> {
    read(root, rel).ok()
}

/// The sorted entry names of a directory below `root`.
pub fn list_dir(root: &Path, rel: &str) -> Result<Vec<String>, CollectError> {
    let path = root.join(rel.trim_start_matches('/'));
    let rd = std::fs::read_dir(&path).map_err(|source| CollectError::Read {
        path: path.clone(),
        source,
    })?;
    let mut names: Vec<String> = rd
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// Runs every enabled built-in collector and merges their facts; errors go
/// under `_errors` by collector name.
pub fn collect_builtin(settings: &CollectSettings, id: &str) -> Map<String, Value> {
    let mut facts = Map::new();
    facts.insert("id".into(), Value::String(id.to_owned()));
    let mut errors = Map::new();
    for (name, collect) in COLLECTORS {
        if settings.disabled.contains(*name) {
            continue;
        }
        match collect(&settings.root) {
            Ok(part) => facts.extend(part),
            Err(e) => {
                errors.insert((*name).into(), Value::String(e.to_string()));
            }
        }
    }
    if !errors.is_empty() {
        facts.insert("_errors".into(), Value::Object(errors));
    }
    facts
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
