//! `cp.get_file` and `cp.push`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

use super::{CallContext, Outcome};
use crate::files;

/// `cp.get_file cmdb://path DEST [makedirs=true]`: copies a file from the
/// master's file roots.
pub async fn get_file(
    args: &[String],
    kwargs: &BTreeMap<String, String>,
    ctx: &CallContext,
) -> Outcome {
    let [src, dest] = args else {
        return Outcome::fail("cp.get_file takes cmdb://path and a destination", 1);
    };
    let data = match ctx.fetch_cmdb(src).await {
        Ok(d) => d,
        Err(e) => return Outcome::fail(e, 1),
    };
    let dest = Path::new(dest);
    if kwargs
        .get("makedirs")
        .is_some_and(|v| v == "true" || v == "True")
        && let Some(parent) = dest.parent()
        && let Err(e) = std::fs::create_dir_all(parent)
    {
        return Outcome::fail(format!("{}: {e}", parent.display()), 1);
    }
    match std::fs::write(dest, &data) {
        Ok(()) => Outcome::ok(Value::String(dest.display().to_string())),
        Err(e) => Outcome::fail(format!("{}: {e}", dest.display()), 1),
    }
}

/// `cp.push FILE [upload_path=REL]`: sends a local file to the master, into
/// this minion's own directory there.
pub async fn push(
    args: &[String],
    kwargs: &BTreeMap<String, String>,
    ctx: &CallContext,
) -> Outcome {
    let [local] = args else {
        return Outcome::fail("cp.push takes one file path", 1);
    };
    let Some(m) = &ctx.minion else {
        return Outcome::fail("cp.push needs the master (it cannot run with --local)", 1);
    };
    let remote = kwargs
        .get("upload_path")
        .cloned()
        .unwrap_or_else(|| local.trim_start_matches('/').to_owned());
    match files::push(m, Path::new(local), &remote).await {
        Ok(size) => Outcome::ok(json!({"path": remote, "size": size})),
        Err(e) => Outcome::fail(e, 1),
    }
}
