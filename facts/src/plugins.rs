//! Fact plugins: executables in `plugins_dir` that print one JSON object.
//! Each runs with a timeout (killed when it overruns); a plugin that fails,
//! hangs or prints something else is reported under `_errors` as
//! `plugin:<name>` and never stops the collect. Plugin facts never replace a
//! built-in fact.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::process::{self, Command, ProcessError};

/// Longest plugin output read, in bytes.
const MAX_OUTPUT: usize = 1024 * 1024;

async fn run_one(path: &Path, timeout: Duration) -> Result<Map<String, Value>, String> {
    let cmd = Command::new([path.to_string_lossy().into_owned()])
        .timeout(timeout)
        .max_output(MAX_OUTPUT + 1);
    let out = match process::run(cmd).await {
        Ok(out) => out,
        Err(ProcessError::TimedOut { .. }) => {
            return Err(format!(
                "timed out after {} s and was killed",
                timeout.as_secs()
            ));
        }
        Err(ProcessError::Spawn { source, .. }) => return Err(format!("cannot start: {source}")),
        Err(e) => return Err(format!("failed: {e}")),
    };
    if out.retcode != 0 {
        let first = String::from_utf8_lossy(&out.stderr)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned();
        return Err(format!("exited with {}: {first}", exit_status(out.retcode)));
    }
    if out.stdout.len() > MAX_OUTPUT {
        return Err(format!("printed more than {MAX_OUTPUT} bytes"));
    }
    match serde_json::from_slice::<Value>(&out.stdout) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("printed JSON that is not an object".into()),
        Err(e) => Err(format!("did not print a JSON object: {e}")),
    }
}

/// How std's `ExitStatus` displays an exit code (or the signal, past 128).
fn exit_status(retcode: i32) -> String {
    if retcode > 128 {
        format!("signal: {}", retcode - 128)
    } else {
        format!("exit status: {retcode}")
    }
}

/// Runs every executable in `dir` (sorted by name, hidden files skipped) and
/// merges their facts into `facts`.
pub async fn merge(facts: &mut Map<String, Value>, dir: &Path, timeout: Duration) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<_> = rd
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter(|e| {
            e.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .map(|e| e.path())
        .collect();
    paths.sort();
    let mut errors = Map::new();
    for path in paths {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match run_one(&path, timeout).await {
            Ok(found) => {
                for (k, v) in found {
                    if facts.contains_key(&k) || k == "_errors" {
                        errors.insert(
                            format!("plugin:{name}"),
                            Value::String(format!("fact {k:?} is already set; ignored")),
                        );
                    } else {
                        facts.insert(k, v);
                    }
                }
            }
            Err(e) => {
                errors.insert(format!("plugin:{name}"), Value::String(e));
            }
        }
    }
    if errors.is_empty() {
        return;
    }
    let entry = facts
        .entry("_errors")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(existing) = entry {
        existing.extend(errors);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plugin(dir: &Path, name: &str, body: &str) {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    #[tokio::test]
    async fn good_bad_hanging_and_clashing_plugins() {
        let dir = tempfile::tempdir().expect("tmp");
        plugin(dir.path(), "a_good", r#"echo '{"rack_sensor": 21}'"#);
        plugin(dir.path(), "b_garbage", "echo not json");
        plugin(dir.path(), "c_crash", "echo boom >&2; exit 3");
        plugin(dir.path(), "d_hang", "sleep 30");
        plugin(dir.path(), "e_clash", r#"echo '{"id": "evil"}'"#);
        let mut facts = Map::new();
        facts.insert("id".into(), Value::String("m1".into()));
        merge(&mut facts, dir.path(), Duration::from_secs(1)).await;
        assert_eq!(facts["rack_sensor"], 21);
        assert_eq!(facts["id"], "m1");
        let errors = facts["_errors"].as_object().expect("errors");
        assert!(
            errors["plugin:b_garbage"]
                .as_str()
                .expect("s")
                .contains("JSON")
        );
        assert!(
            errors["plugin:c_crash"]
                .as_str()
                .expect("s")
                .contains("boom")
        );
        assert!(
            errors["plugin:d_hang"]
                .as_str()
                .expect("s")
                .contains("timed out")
        );
        assert!(
            errors["plugin:e_clash"]
                .as_str()
                .expect("s")
                .contains("already set")
        );
    }
}
