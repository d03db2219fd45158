//! Asset fact collectors, one file each. Every collector reads below a
//! configurable system root (so a fixture tree can stand in for `/`), returns
//! its facts or an error, and a failing collector's error goes under
//! `_errors` while the others still report. Units are explicit in key names.

pub mod cpu;
pub mod host;
pub mod kernel;
pub mod memory;
pub mod os;

use std::path::{Path, PathBuf};

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

/// Every collector, in reporting order.
pub const COLLECTORS: &[Collector] = &[
    ("os", os::collect),
    ("kernel", kernel::collect),
    ("host", host::collect),
    ("cpu", cpu::collect),
    ("memory", memory::collect),
];

/// Reads `rel` (an absolute path such as `/proc/meminfo`) below `root`.
pub fn read(root: &Path, rel: &str) -> Result<String, CollectError> {
    let path = root.join(rel.trim_start_matches('/'));
    std::fs::read_to_string(&path).map_err(|source| CollectError::Read { path, source })
}

/// Runs every collector and merges their facts; errors go under `_errors`.
pub fn collect_all(root: &Path, id: &str) -> Map<String, Value> {
    let mut facts = Map::new();
    facts.insert("id".into(), Value::String(id.to_owned()));
    let mut errors = Map::new();
    for (name, collect) in COLLECTORS {
        match collect(root) {
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
        let facts = collect_all(dir.path(), "m1");
        assert_eq!(facts["id"], "m1");
        assert_eq!(facts["mem_total_bytes"], 2048 * 1024);
        let errors = facts["_errors"].as_object().expect("errors");
        assert!(errors.contains_key("os"));
        assert!(!errors.contains_key("memory"));
    }

    #[test]
    fn this_host_reports_every_first_fact() {
        let facts = collect_all(Path::new("/"), "me");
        for key in [
            "kernel",
            "kernelrelease",
            "osarch",
            "num_cpus",
            "mem_total_bytes",
            "boot_time",
        ] {
            assert!(facts.contains_key(key), "missing {key}: {facts:?}");
        }
    }
}
