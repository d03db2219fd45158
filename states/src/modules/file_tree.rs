//! `file.symlink` and `file.recurse`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::file::{ensure_parent, mode_of, write_atomic};
use super::{arg_bool, arg_str, arg_text};
use crate::engine::{Context, StateResult};
use crate::sls::State;

/// `file.symlink`: `name` is a symlink to `target`. A link elsewhere is
/// replaced; a file or directory in the way fails the state unless
/// `force: true`; `makedirs` creates the parents.
pub fn symlink(s: &State, ctx: &Context<'_>) -> StateResult {
    let path = Path::new(&s.name);
    let Some(target) = arg_text(s, "target") else {
        return StateResult::fail("file.symlink needs target");
    };
    if !path.is_absolute() {
        return StateResult::fail(format!("{} is not an absolute path", s.name));
    }
    let current = fs::symlink_metadata(path).ok();
    let is_link = current.as_ref().is_some_and(|m| m.file_type().is_symlink());
    if is_link && fs::read_link(path).is_ok_and(|t| t == Path::new(&target)) {
        return StateResult::ok(format!("Symlink {} is present and owned correctly", s.name));
    }
    let force = arg_bool(s, "force").unwrap_or(false);
    if current.is_some() && !is_link && !force {
        return StateResult::fail(format!(
            "File exists where the symlink {} should be (force: true replaces it)",
            s.name
        ));
    }
    if let Err(e) = ensure_parent(path, arg_bool(s, "makedirs").unwrap_or(false), ctx) {
        return StateResult::fail(e);
    }
    let changes = json!({ "new": s.name, "target": target });
    if ctx.test {
        return StateResult::would(
            format!("Symlink {} to {target} is set for creation", s.name),
            changes,
        );
    }
    let cleared = match &current {
        Some(m) if m.is_dir() => fs::remove_dir_all(path),
        Some(_) => fs::remove_file(path),
        None => Ok(()),
    };
    match cleared.and_then(|()| std::os::unix::fs::symlink(&target, path)) {
        Ok(()) => StateResult::changed(
            format!("Created new symlink {} -> {target}", s.name),
            changes,
        ),
        Err(e) => StateResult::fail(format!("{}: {e}", s.name)),
    }
}

fn pattern(s: &State, key: &str) -> Result<Option<regex::Regex>, String> {
    let Some(p) = arg_str(s, key) else {
        return Ok(None);
    };
    let re = match p.strip_prefix("E@") {
        Some(r) => regex::Regex::new(r).map_err(|e| format!("{key}: {e}"))?,
        None => protocol::fnmatch::compile(p, false).map_err(|e| format!("{key}: {e}"))?,
    };
    Ok(Some(re))
}

fn mode_arg(s: &State, key: &str) -> Result<Option<u32>, String> {
    let Some(text) = arg_text(s, key) else {
        return Ok(None);
    };
    u32::from_str_radix(text.trim().trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .map(Some)
        .ok_or_else(|| format!("{key} {text:?} is not an octal file mode"))
}

fn local_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(_) => out.push(p),
                Err(_) => {}
            }
        }
    }
    out
}

/// `file.recurse`: the directory `name` holds every file below the
/// `cmdb://` directory `source` (files are compared by SHA-256, so an
/// unchanged tree is not fetched again). `include_pat`/`exclude_pat` (glob,
/// or regex after `E@`) select files by relative path; `clean: true`
/// removes local files the source does not have; `file_mode`, `dir_mode`;
/// `template: jinja` renders each file; `makedirs` creates the parents of
/// `name`.
pub fn recurse(s: &State, ctx: &Context<'_>) -> StateResult {
    match recurse_inner(s, ctx) {
        Ok(r) => r,
        Err(e) => StateResult::fail(e),
    }
}

fn recurse_inner(s: &State, ctx: &Context<'_>) -> Result<StateResult, String> {
    let dest = Path::new(&s.name);
    if !dest.is_absolute() {
        return Err(format!("{} is not an absolute path", s.name));
    }
    let src = arg_str(s, "source").ok_or("file.recurse needs source")?;
    let rel = src
        .strip_prefix("cmdb://")
        .ok_or_else(|| format!("source {src:?} must be a cmdb:// directory"))?
        .trim_end_matches('/');
    let (include, exclude) = (pattern(s, "include_pat")?, pattern(s, "exclude_pat")?);
    let (file_mode, dir_mode) = (mode_arg(s, "file_mode")?, mode_arg(s, "dir_mode")?);
    let template = match arg_str(s, "template") {
        None => false,
        Some("jinja") => true,
        Some(other) => {
            return Err(format!(
                "template {other:?} is not supported (use template: jinja)"
            ));
        }
    };
    if !ctx.is_dir(dest) {
        ensure_parent(dest, arg_bool(s, "makedirs").unwrap_or(false), ctx)?;
    }
    let listing = (ctx.list)(rel).map_err(|e| format!("cannot list {src}: {e}"))?;
    let mut changes = Map::new();
    let mut wanted = std::collections::BTreeSet::new();
    for f in listing {
        if include.as_ref().is_some_and(|re| !re.is_match(&f.path))
            || exclude.as_ref().is_some_and(|re| re.is_match(&f.path))
        {
            continue;
        }
        let target = dest.join(&f.path);
        wanted.insert(target.clone());
        let have = ctx.read(&target);
        let data = if template {
            let raw = (ctx.fetch)(&format!("{rel}/{}", f.path))
                .map_err(|e| format!("cannot fetch {src}/{}: {e}", f.path))?;
            let text = String::from_utf8(raw).map_err(|_| format!("{}: not UTF-8", f.path))?;
            let out = ctx
                .renderer
                .render(&format!("{rel}/{}", f.path), &text, None)
                .map_err(|e| e.to_string())?;
            if have.as_deref() == Some(out.as_bytes()) {
                None
            } else {
                Some(out.into_bytes())
            }
        } else if have
            .as_ref()
            .is_some_and(|h| Sha256::digest(h).as_slice() == f.sha256.as_slice())
        {
            None
        } else {
            Some(
                (ctx.fetch)(&format!("{rel}/{}", f.path))
                    .map_err(|e| format!("cannot fetch {src}/{}: {e}", f.path))?,
            )
        };
        let key = target.display().to_string();
        let mode_wrong = file_mode.is_some_and(|m| have.is_some() && mode_of(&target) != Some(m));
        if data.is_none() && !mode_wrong {
            continue;
        }
        changes.insert(
            key,
            json!(match (&have, &data) {
                (None, _) => "New file",
                (Some(_), Some(_)) => "updated",
                (Some(_), None) => "mode",
            }),
        );
        if ctx.test {
            ctx.predict_file(&target, data.unwrap_or_default());
            continue;
        }
        if let Some(parent) = target.parent()
            && !parent.is_dir()
        {
            fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
            if let Some(m) = dir_mode {
                let mut p = parent;
                while p.starts_with(dest) {
                    fs::set_permissions(p, fs::Permissions::from_mode(m))
                        .map_err(|e| format!("{}: {e}", p.display()))?;
                    match p.parent() {
                        Some(up) => p = up,
                        None => break,
                    }
                }
            }
        }
        let mode = file_mode.unwrap_or_else(|| mode_of(&target).unwrap_or(0o644));
        match data {
            Some(d) => write_atomic(&target, &d, mode)?,
            None => fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                .map_err(|e| format!("{}: {e}", target.display()))?,
        }
    }
    if arg_bool(s, "clean").unwrap_or(false) && dest.is_dir() {
        for local in local_files(dest) {
            if wanted.contains(&local) {
                continue;
            }
            changes.insert(local.display().to_string(), json!("removed"));
            if !ctx.test {
                fs::remove_file(&local).map_err(|e| format!("{}: {e}", local.display()))?;
            }
        }
    }
    if changes.is_empty() {
        return Ok(StateResult::ok(format!(
            "The directory {} is in the correct state",
            s.name
        )));
    }
    if ctx.test {
        return Ok(StateResult::would(
            format!("{} files below {} would be changed", changes.len(), s.name),
            Value::Object(changes),
        ));
    }
    Ok(StateResult::changed(
        format!("Recursively updated {}", s.name),
        Value::Object(changes),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::apply;
    use crate::order::plan;
    use crate::sls::compile;
    use crate::sls::tests::loader;

    fn run(sls: &str, test: bool, dir: &Path) -> Map<String, Value> {
        let l = loader(&[("s", sls)]);
        let states = compile(&l, &["s".into()]).expect("compile");
        let p = plan(&states).expect("plan");
        let roots = vec![dir.join("srv")];
        let fetch = |p: &str| -> Result<Vec<u8>, String> {
            let path = crate::roots::resolve(&roots, p).map_err(|e| e.to_string())?;
            fs::read(path).map_err(|e| e.to_string())
        };
        let list = |p: &str| crate::roots::list(&roots, p).map_err(|e| e.to_string());
        let renderer = crate::template::Renderer::new(
            crate::template::Vars {
                grains: json!({"id": "m1"}),
                ..Default::default()
            },
            None,
        );
        let mut ctx = Context::new(test, &fetch, dir.join("backup"), &renderer);
        ctx.list = &list;
        apply(&states, &p, &ctx).0
    }

    fn only(m: &Map<String, Value>) -> &Value {
        m.values().next().expect("one")
    }

    #[test]
    fn recurse_copies_cleans_and_is_idempotent() {
        let dir = tempfile::tempdir().expect("tmp");
        let src = dir.path().join("srv/site");
        fs::create_dir_all(src.join("css")).expect("mkdir");
        fs::write(src.join("index.html"), "hi").expect("w");
        fs::write(src.join("css/a.css"), "a{}").expect("w");
        fs::write(src.join("skip.tmp"), "x").expect("w");
        let dest = dir.path().join("www");
        fs::create_dir_all(&dest).expect("mkdir");
        fs::write(dest.join("stale"), "old").expect("w");
        let sls = format!(
            "{}:\n  file.recurse:\n    - source: cmdb://site\n    - clean: true\n    - exclude_pat: \"*.tmp\"\n    - file_mode: \"0640\"\n",
            dest.display()
        );
        let r = run(&sls, true, dir.path());
        assert_eq!(only(&r)["result"], Value::Null);
        assert!(!dest.join("index.html").exists());
        let r = run(&sls, false, dir.path());
        assert_eq!(only(&r)["result"], true, "{r:?}");
        assert_eq!(
            fs::read_to_string(dest.join("css/a.css")).expect("r"),
            "a{}"
        );
        assert_eq!(mode_of(&dest.join("index.html")), Some(0o640));
        assert!(!dest.join("stale").exists() && !dest.join("skip.tmp").exists());
        let r = run(&sls, false, dir.path());
        assert_eq!(only(&r)["changes"], json!({}), "second run: {r:?}");
        fs::write(src.join("index.html"), "changed").expect("w");
        let r = run(&sls, false, dir.path());
        let key = dest.join("index.html").display().to_string();
        assert_eq!(only(&r)["changes"], json!({ key: "updated" }));
    }

    #[test]
    fn symlink_created_replaced_and_forced() {
        let dir = tempfile::tempdir().expect("tmp");
        let link = dir.path().join("current");
        let sls = |t: &str, force: bool| {
            format!(
                "{}:\n  file.symlink:\n    - target: {t}\n    - force: {force}\n",
                link.display()
            )
        };
        assert_eq!(
            only(&run(&sls("/opt/v1", false), false, dir.path()))["result"],
            true
        );
        assert_eq!(fs::read_link(&link).expect("link"), Path::new("/opt/v1"));
        let r = run(&sls("/opt/v1", false), false, dir.path());
        assert_eq!(only(&r)["changes"], json!({}));
        run(&sls("/opt/v2", false), false, dir.path());
        assert_eq!(fs::read_link(&link).expect("link"), Path::new("/opt/v2"));
        fs::remove_file(&link).expect("rm");
        fs::write(&link, "file").expect("w");
        assert_eq!(
            only(&run(&sls("/opt/v3", false), false, dir.path()))["result"],
            false
        );
        assert_eq!(
            only(&run(&sls("/opt/v3", true), false, dir.path()))["result"],
            true
        );
        assert_eq!(fs::read_link(&link).expect("link"), Path::new("/opt/v3"));
    }
}
