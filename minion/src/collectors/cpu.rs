//! CPU model and count from `/proc/cpuinfo`.

use std::path::Path;

use serde_json::{Map, Value};

use super::{CollectError, read};

/// Collects cpu_model and num_cpus.
pub fn collect(root: &Path) -> Result<Map<String, Value>, CollectError> {
    let text = read(root, "/proc/cpuinfo")?;
    let mut count = 0u64;
    let mut model = String::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        match k.trim() {
            "processor" => count += 1,
            "model name" | "cpu model" | "Model" if model.is_empty() => model = v.trim().into(),
            _ => {}
        }
    }
    if count == 0 {
        return Err(CollectError::Parse {
            path: root.join("proc/cpuinfo"),
            reason: "no processor entries".into(),
        });
    }
    let mut m = Map::new();
    m.insert("cpu_model".into(), Value::String(model));
    m.insert("num_cpus".into(), Value::from(count));
    Ok(m)
}
