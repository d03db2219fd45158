//! CPU model, sockets, cores, threads and flags from `/proc/cpuinfo`.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::{CollectError, HostSource, Probe};

/// What the collector reads.
pub const PROBES: &[Probe] = &[Probe::File("/proc/cpuinfo")];

/// Collects cpu_model, num_cpus (threads), cpu_flags and
/// `cpu: {model, sockets, cores, threads}`.
pub fn collect(src: &dyn HostSource) -> Result<Map<String, Value>, CollectError> {
    let text = src.read("/proc/cpuinfo")?;
    parse(&text).ok_or_else(|| CollectError::Parse {
        path: src.display_path("/proc/cpuinfo"),
        reason: "no processor entries".into(),
    })
}

/// Parses `/proc/cpuinfo`; `None` when it lists no processor.
pub fn parse(text: &str) -> Option<Map<String, Value>> {
    let mut threads = 0u64;
    let mut model = String::new();
    let mut flags: Vec<String> = Vec::new();
    let mut sockets = BTreeSet::new();
    let mut cores = BTreeSet::new();
    let mut physical = String::from("0");
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim() {
            "processor" => threads += 1,
            "model name" | "cpu model" | "Model" if model.is_empty() => model = v.into(),
            "flags" | "Features" if flags.is_empty() => {
                flags = v.split_whitespace().map(str::to_owned).collect();
            }
            "physical id" => {
                physical = v.into();
                sockets.insert(v.to_owned());
            }
            "core id" => {
                cores.insert(format!("{physical}/{v}"));
            }
            _ => {}
        }
    }
    if threads == 0 {
        return None;
    }
    let sockets = sockets.len().max(1) as u64;
    let cores = if cores.is_empty() {
        threads
    } else {
        cores.len() as u64
    };
    let mut m = Map::new();
    m.insert("cpu_model".into(), Value::String(model.clone()));
    m.insert("num_cpus".into(), Value::from(threads));
    m.insert("cpu_flags".into(), json!(flags));
    m.insert(
        "cpu".into(),
        json!({"model": model, "sockets": sockets, "cores": cores, "threads": threads}),
    );
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_sockets_cores_threads() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(dir.path().join("proc")).expect("mkdir");
        let mut text = String::new();
        for (p, phys, core) in [
            (0, 0, 0),
            (1, 0, 0),
            (2, 0, 1),
            (3, 0, 1),
            (4, 1, 0),
            (5, 1, 0),
            (6, 1, 1),
            (7, 1, 1),
        ] {
            text.push_str(&format!(
                "processor\t: {p}\nmodel name\t: Xeon\nflags\t\t: fpu sse2\nphysical id\t: {phys}\ncore id\t\t: {core}\n\n"
            ));
        }
        std::fs::write(dir.path().join("proc/cpuinfo"), text).expect("write");
        let m = collect(&crate::LocalHost::new(dir.path())).expect("collect");
        assert_eq!(m["cpu"]["sockets"], 2);
        assert_eq!(m["cpu"]["cores"], 4);
        assert_eq!(m["cpu"]["threads"], 8);
        assert_eq!(m["cpu_flags"], json!(["fpu", "sse2"]));
    }
}
