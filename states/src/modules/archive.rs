//! `archive.extracted`: a tar (plain, gzip, bzip2, xz) or zip archive from
//! `cmdb://` unpacked into a directory with the system's `tar`/`unzip`.

use std::path::Path;

use serde_json::json;

use super::{arg_bool, arg_str};
use crate::engine::{Context, StateResult};
use crate::sls::State;
use crate::system;

fn is_zip(source: &str, format: Option<&str>) -> bool {
    format == Some("zip") || format.is_none() && source.to_ascii_lowercase().ends_with(".zip")
}

/// The paths an archive holds, relative to where it unpacks.
fn members(archive: &Path, zip: bool) -> Result<Vec<String>, String> {
    let a = archive.to_string_lossy();
    let r = if zip {
        system::run(&["unzip", "-Z1", &a])?
    } else {
        system::run(&["tar", "-tf", &a])?
    };
    if !r.ok() {
        return Err(format!("cannot read the archive: {}", r.stderr));
    }
    Ok(r.stdout
        .lines()
        .map(|l| l.trim_end_matches('/').to_owned())
        .filter(|l| !l.is_empty())
        .collect())
}

/// `archive.extracted`: `name` (a directory) holds what the archive
/// `source` (`cmdb://…`, tar or zip, by its name or `archive_format`)
/// holds. It is not unpacked again when `if_missing` exists, or when every
/// path of the archive is already there (`overwrite: true` always
/// unpacks). Member paths that are absolute or hold `..` are refused.
pub fn extracted(s: &State, ctx: &Context<'_>) -> StateResult {
    match inner(s, ctx) {
        Ok(r) => r,
        Err(e) => StateResult::fail(e),
    }
}

fn inner(s: &State, ctx: &Context<'_>) -> Result<StateResult, String> {
    let dest = Path::new(&s.name);
    if !dest.is_absolute() {
        return Err(format!("{} is not an absolute path", s.name));
    }
    if let Some(m) = arg_str(s, "if_missing")
        && Path::new(m).exists()
    {
        return Ok(StateResult::ok(format!("{m} exists; not extracted")));
    }
    let source = arg_str(s, "source").ok_or("archive.extracted needs source")?;
    let rel = source
        .strip_prefix("cmdb://")
        .ok_or_else(|| format!("source {source:?} must be a cmdb:// path"))?;
    let zip = is_zip(source, arg_str(s, "archive_format"));
    let bytes = (ctx.fetch)(rel).map_err(|e| format!("cannot fetch {source}: {e}"))?;
    let tmp_dir = ctx.backup_dir.join("archive_tmp");
    std::fs::create_dir_all(&tmp_dir).map_err(|e| format!("{}: {e}", tmp_dir.display()))?;
    let tmp = tmp_dir.join(format!(
        "{}.{}",
        std::process::id(),
        if zip { "zip" } else { "tar" }
    ));
    std::fs::write(&tmp, &bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let result = (|| {
        let names = members(&tmp, zip)?;
        if let Some(bad) = names
            .iter()
            .find(|n| n.starts_with('/') || n.split('/').any(|p| p == ".."))
        {
            return Err(format!(
                "the archive holds a path outside its directory: {bad}"
            ));
        }
        let overwrite = arg_bool(s, "overwrite").unwrap_or(false);
        if !overwrite && dest.is_dir() && names.iter().all(|n| dest.join(n).exists()) {
            return Ok(StateResult::ok(format!(
                "{source} is already extracted in {}",
                s.name
            )));
        }
        let changes = json!({ "extracted_files": names });
        if ctx.test {
            ctx.predict_dir(dest);
            return Ok(StateResult::would(
                format!("{source} would be extracted to {}", s.name),
                changes,
            ));
        }
        std::fs::create_dir_all(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
        let (a, d) = (tmp.to_string_lossy(), dest.to_string_lossy());
        let r = if zip {
            system::run(&["unzip", "-o", "-q", &a, "-d", &d])?
        } else {
            system::run(&["tar", "-xf", &a, "-C", &d, "--no-same-owner"])?
        };
        if !r.ok() {
            return Err(format!("extracting {source} failed: {}", r.stderr));
        }
        Ok(StateResult::changed(
            format!("{source} extracted to {}", s.name),
            changes,
        ))
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::apply;
    use crate::order::plan;
    use crate::sls::compile;
    use crate::sls::tests::loader;

    #[test]
    fn a_tarball_is_extracted_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("app-1.0/bin")).expect("mkdir");
        std::fs::write(src.join("app-1.0/bin/run"), "#!/bin/sh\n").expect("w");
        let tgz = dir.path().join("app.tar.gz");
        let r = system::run(&[
            "tar",
            "-czf",
            &tgz.to_string_lossy(),
            "-C",
            &src.to_string_lossy(),
            "app-1.0",
        ])
        .expect("tar");
        assert!(r.ok(), "{}", r.stderr);
        let dest = dir.path().join("opt");
        let sls = format!(
            "{}:\n  archive.extracted:\n    - source: cmdb://app.tar.gz\n",
            dest.display()
        );
        let l = loader(&[("s", &sls)]);
        let states = compile(&l, &["s".into()]).expect("compile");
        let p = plan(&states).expect("plan");
        let fetch = |path: &str| -> Result<Vec<u8>, String> {
            assert_eq!(path, "app.tar.gz");
            std::fs::read(&tgz).map_err(|e| e.to_string())
        };
        let renderer = crate::template::Renderer::new(Default::default(), None);
        let run = |test: bool| {
            let ctx = Context::new(test, &fetch, dir.path().join("backup"), &renderer);
            apply(&states, &p, &ctx)
                .0
                .into_iter()
                .next()
                .expect("one")
                .1
        };
        assert_eq!(run(true)["result"], serde_json::Value::Null);
        assert!(!dest.exists());
        let r = run(false);
        assert_eq!(r["result"], true, "{r}");
        assert!(dest.join("app-1.0/bin/run").is_file());
        assert_eq!(run(false)["changes"], json!({}));
    }
}
