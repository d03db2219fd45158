//! `file.managed`, `file.directory`, `file.absent`, `file.replace`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::{Map, Value, json};

use super::{arg_bool, arg_str, arg_text};
use crate::engine::{Context, StateResult};
use crate::sls::State;

/// Parses a mode written as `"0644"`, `"644"` or `644`.
pub fn parse_mode(s: &State) -> Result<Option<u32>, String> {
    let Some(text) = arg_text(s, "mode") else {
        return Ok(None);
    };
    let digits = text.trim().trim_start_matches("0o");
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .map(Some)
        .ok_or_else(|| format!("mode {text:?} is not an octal file mode (quote it: \"0644\")"))
}

pub(crate) fn mode_of(path: &Path) -> Option<u32> {
    fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o7777)
}

pub(crate) fn owner_changes(
    s: &State,
    path: &Path,
    changes: &mut Map<String, Value>,
) -> Result<(Option<nix::unistd::Uid>, Option<nix::unistd::Gid>), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path).ok();
    let mut uid = None;
    let mut gid = None;
    if let Some(user) = arg_str(s, "user") {
        let u = nix::unistd::User::from_name(user)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("User {user} is not available"))?;
        if meta.as_ref().is_none_or(|m| m.uid() != u.uid.as_raw()) {
            changes.insert("user".into(), json!(user));
            uid = Some(u.uid);
        }
    }
    if let Some(group) = arg_str(s, "group") {
        let g = nix::unistd::Group::from_name(group)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("Group {group} is not available"))?;
        if meta.as_ref().is_none_or(|m| m.gid() != g.gid.as_raw()) {
            changes.insert("group".into(), json!(group));
            gid = Some(g.gid);
        }
    }
    Ok((uid, gid))
}

pub(crate) fn unified_diff(path: &str, old: &[u8], new: &[u8]) -> String {
    match (std::str::from_utf8(old), std::str::from_utf8(new)) {
        (Ok(a), Ok(b)) => similar::TextDiff::from_lines(a, b)
            .unified_diff()
            .header(path, path)
            .to_string(),
        _ => "Replace binary file".into(),
    }
}

pub(crate) fn ensure_parent(path: &Path, makedirs: bool, ctx: &Context<'_>) -> Result<(), String> {
    let test = ctx.test;
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    if parent.as_os_str().is_empty() || ctx.is_dir(parent) {
        return Ok(());
    }
    if !makedirs {
        return Err(format!(
            "Parent directory not present: {}",
            parent.display()
        ));
    }
    if test {
        return Ok(());
    }
    fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))
}

pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.cmdb-tmp",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    fs::write(&tmp, data).map_err(|e| format!("{}: {e}", tmp.display()))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).map_err(|e| e.to_string())?;
    fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

fn backup(ctx: &Context<'_>, path: &Path) -> Result<String, String> {
    fs::create_dir_all(&ctx.backup_dir)
        .map_err(|e| format!("{}: {e}", ctx.backup_dir.display()))?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    let flat = path
        .to_string_lossy()
        .trim_start_matches('/')
        .replace('/', "_");
    let dest = ctx.backup_dir.join(format!("{flat}_{stamp}"));
    fs::copy(path, &dest).map_err(|e| format!("backup of {}: {e}", path.display()))?;
    Ok(dest.display().to_string())
}

fn fetch_source(s: &State, ctx: &Context<'_>) -> Result<Option<(String, Vec<u8>)>, String> {
    let sources: Vec<String> = match s.args.get("source") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(_)) => super::arg_list(s, "source").unwrap_or_default(),
        Some(other) => {
            return Err(format!(
                "source {other} must be a cmdb:// path or a list of them"
            ));
        }
    };
    let mut errors = Vec::new();
    for src in &sources {
        let Some(rel) = src.strip_prefix("cmdb://") else {
            return Err(format!("source {src:?} must be a cmdb:// path"));
        };
        match (ctx.fetch)(rel) {
            Ok(bytes) => return Ok(Some((rel.to_owned(), bytes))),
            Err(e) => errors.push(format!("cannot fetch {src}: {e}")),
        }
    }
    Err(errors.join("; "))
}

/// The template context of `file.managed`: `defaults` with `context` over it.
fn template_context(s: &State) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for key in ["defaults", "context"] {
        match s.args.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => out.extend(m.clone()),
            Some(other) => return Err(format!("{key} must be a mapping, not {other}")),
        }
    }
    Ok(out)
}

/// The bytes `file.managed` (and `file.append`) would write: the `source`
/// or `contents`, rendered when `template: jinja` is given.
pub(crate) fn content(s: &State, ctx: &Context<'_>) -> Result<Vec<u8>, String> {
    let (name, raw) = if let Some((rel, bytes)) = fetch_source(s, ctx)? {
        (rel, bytes)
    } else if let Some(text) = arg_text(s, "contents") {
        let mut t = text;
        if !t.ends_with('\n') {
            t.push('\n');
        }
        (format!("{} (contents)", s.id), t.into_bytes())
    } else {
        return Err(format!("{} needs source or contents", s.fun()));
    };
    match arg_str(s, "template") {
        None => Ok(raw),
        Some("jinja") => {
            let text = String::from_utf8(raw)
                .map_err(|_| format!("{name} is not UTF-8 and cannot be a template"))?;
            let extra = template_context(s)?;
            ctx.renderer
                .render(&name, &text, Some(&extra))
                .map(String::into_bytes)
                .map_err(|e| e.to_string())
        }
        Some(other) => Err(format!(
            "template {other:?} is not supported (use template: jinja)"
        )),
    }
}

/// `file.managed`: the file holds `contents` (or the `cmdb://` `source`),
/// with `mode`, `user`, `group`; `makedirs` creates parents; the replaced
/// file is backed up unless `backup: false`.
pub fn managed(s: &State, ctx: &Context<'_>) -> StateResult {
    match managed_inner(s, ctx) {
        Ok(r) => r,
        Err(e) => StateResult::fail(e),
    }
}

fn managed_inner(s: &State, ctx: &Context<'_>) -> Result<StateResult, String> {
    let path = Path::new(&s.name);
    if !path.is_absolute() {
        return Err(format!("{} is not an absolute path", s.name));
    }
    if path.is_dir() {
        return Err(format!("{} is a directory", s.name));
    }
    let new = content(s, ctx)?;
    let mode = parse_mode(s)?;
    ensure_parent(path, arg_bool(s, "makedirs").unwrap_or(false), ctx)?;
    let old = ctx.read(path);
    let mut changes = Map::new();
    match &old {
        None => {
            changes.insert("diff".into(), json!("New file"));
        }
        Some(o) if *o != new => {
            changes.insert("diff".into(), json!(unified_diff(&s.name, o, &new)));
        }
        Some(_) => {}
    }
    let want_mode = mode.unwrap_or_else(|| mode_of(path).unwrap_or(0o644));
    if old.is_some() && mode_of(path) != Some(want_mode) {
        changes.insert("mode".into(), json!(format!("{want_mode:04o}")));
    }
    let (uid, gid) = owner_changes(s, path, &mut changes)?;
    if changes.is_empty() {
        return Ok(StateResult::ok(format!(
            "File {} is in the correct state",
            s.name
        )));
    }
    if ctx.test {
        ctx.predict_file(path, new);
        let comment = if old.is_none() {
            format!("The file {} would be created", s.name)
        } else {
            format!("The file {} is set to be changed", s.name)
        };
        return Ok(StateResult::would(comment, Value::Object(changes)));
    }
    let mut comment = format!("File {} updated", s.name);
    if let Some(o) = &old
        && *o != new
        && arg_bool(s, "backup").unwrap_or(true)
    {
        let saved = backup(ctx, path)?;
        comment.push_str(&format!("; the previous version was saved as {saved}"));
    }
    if old.as_deref() != Some(new.as_slice()) {
        write_atomic(path, &new, want_mode)?;
    } else {
        fs::set_permissions(path, fs::Permissions::from_mode(want_mode))
            .map_err(|e| e.to_string())?;
    }
    if uid.is_some() || gid.is_some() {
        nix::unistd::chown(path, uid, gid).map_err(|e| format!("chown {}: {e}", s.name))?;
    }
    Ok(StateResult::changed(comment, Value::Object(changes)))
}

/// `file.directory`: the directory exists with `mode`, `user`, `group`.
pub fn directory(s: &State, ctx: &Context<'_>) -> StateResult {
    let path = Path::new(&s.name);
    let mode = match parse_mode(s) {
        Ok(m) => m,
        Err(e) => return StateResult::fail(e),
    };
    if ctx.exists(path) && !ctx.is_dir(path) {
        return StateResult::fail(format!("{} exists and is not a directory", s.name));
    }
    let mut changes = Map::new();
    if !ctx.exists(path) {
        if let Err(e) = ensure_parent(path, arg_bool(s, "makedirs").unwrap_or(false), ctx) {
            return StateResult::fail(e);
        }
        changes.insert(s.name.clone(), json!("New Dir"));
    } else if let Some(m) = mode
        && mode_of(path) != Some(m)
    {
        changes.insert("mode".into(), json!(format!("{m:04o}")));
    }
    let (uid, gid) = match owner_changes(s, path, &mut changes) {
        Ok(x) => x,
        Err(e) => return StateResult::fail(e),
    };
    if changes.is_empty() {
        return StateResult::ok(format!("Directory {} is in the correct state", s.name));
    }
    if ctx.test {
        let comment = if ctx.exists(path) {
            format!("Directory {} would be updated", s.name)
        } else {
            format!("Directory {} would be created", s.name)
        };
        ctx.predict_dir(path);
        return StateResult::would(comment, Value::Object(changes));
    }
    let done = fs::create_dir_all(path)
        .and_then(|_| match mode {
            Some(m) => fs::set_permissions(path, fs::Permissions::from_mode(m)),
            None => Ok(()),
        })
        .map_err(|e| e.to_string())
        .and_then(|_| {
            if uid.is_some() || gid.is_some() {
                nix::unistd::chown(path, uid, gid).map_err(|e| e.to_string())
            } else {
                Ok(())
            }
        });
    match done {
        Ok(()) => StateResult::changed(
            format!("Directory {} updated", s.name),
            Value::Object(changes),
        ),
        Err(e) => StateResult::fail(format!("{}: {e}", s.name)),
    }
}

/// `file.absent`: the file or directory does not exist.
pub fn absent(s: &State, ctx: &Context<'_>) -> StateResult {
    let path = Path::new(&s.name);
    if !path.is_absolute() || s.name == "/" {
        return StateResult::fail(format!("refusing to remove {:?}", s.name));
    }
    if fs::symlink_metadata(path).is_err() {
        return StateResult::ok(format!("File {} is not present", s.name));
    }
    let changes = json!({"removed": s.name});
    if ctx.test {
        return StateResult::would(format!("File {} is set for removal", s.name), changes);
    }
    let r = if path.is_dir() && !path.is_symlink() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match r {
        Ok(()) => StateResult::changed(format!("Removed {}", s.name), changes),
        Err(e) => StateResult::fail(format!("{}: {e}", s.name)),
    }
}

/// `file.replace`: every match of the regex `pattern` becomes `repl`
/// (`count` limits how many; 0 is all).
pub fn replace(s: &State, ctx: &Context<'_>) -> StateResult {
    let (Some(pattern), Some(repl)) = (arg_str(s, "pattern"), arg_text(s, "repl")) else {
        return StateResult::fail("file.replace needs pattern and repl");
    };
    let re = match regex::Regex::new(pattern) {
        Ok(r) => r,
        Err(e) => return StateResult::fail(format!("bad pattern: {e}")),
    };
    let count = arg_text(s, "count")
        .and_then(|c| c.parse::<usize>().ok())
        .unwrap_or(0);
    let old = match ctx.read(Path::new(&s.name)).map(String::from_utf8) {
        Some(Ok(t)) => t,
        Some(Err(_)) => return StateResult::fail(format!("{} is not UTF-8 text", s.name)),
        None => return StateResult::fail(format!("{}: no such file", s.name)),
    };
    let new = re.replacen(&old, count, repl.as_str()).into_owned();
    if new == old {
        return StateResult::ok(format!("No changes needed to be made to {}", s.name));
    }
    let changes = json!({"diff": unified_diff(&s.name, old.as_bytes(), new.as_bytes())});
    if ctx.test {
        ctx.predict_file(Path::new(&s.name), new.into_bytes());
        return StateResult::would(
            format!("Changes would have been made to {}", s.name),
            changes,
        );
    }
    let mode = mode_of(Path::new(&s.name)).unwrap_or(0o644);
    match write_atomic(Path::new(&s.name), new.as_bytes(), mode) {
        Ok(()) => StateResult::changed(format!("Changes were made to {}", s.name), changes),
        Err(e) => StateResult::fail(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::apply;
    use crate::order::plan;
    use crate::sls::compile;
    use crate::sls::tests::loader;

    fn run(sls: &str, test: bool, dir: &Path) -> Map<String, Value> {
        run_with(sls, test, dir, crate::template::Vars::default())
    }

    fn run_with(
        sls: &str,
        test: bool,
        dir: &Path,
        vars: crate::template::Vars,
    ) -> Map<String, Value> {
        let l = loader(&[("s", sls)]);
        let states = compile(&l, &["s".into()]).expect("compile");
        let p = plan(&states).expect("plan");
        let src = dir.join("src.txt");
        let fetch = move |path: &str| -> Result<Vec<u8>, String> {
            if path == "files/src.txt" {
                fs::read(&src).map_err(|e| e.to_string())
            } else if path == "files/app.conf.j2" {
                Ok(b"port={{ port }} host={{ grains.id }} mode={{ mode }}\n".to_vec())
            } else {
                Err(format!("no {path}"))
            }
        };
        let renderer = crate::template::Renderer::new(vars, None);
        let ctx = Context::new(test, &fetch, dir.join("backup"), &renderer);
        apply(&states, &p, &ctx).0
    }

    fn only(m: &Map<String, Value>) -> &Value {
        m.values().next().expect("one state")
    }

    #[test]
    fn managed_creates_changes_is_idempotent_and_backs_up() {
        let dir = tempfile::tempdir().expect("tmp");
        let target = dir.path().join("etc/app.conf");
        let sls = |contents: &str| {
            format!(
                "{}:\n  file.managed:\n    - contents: \"{contents}\"\n    - mode: \"0640\"\n    - makedirs: true\n",
                target.display()
            )
        };
        let r = run(&sls("a=1"), true, dir.path());
        assert_eq!(
            only(&r)["result"],
            Value::Null,
            "test mode says it would change"
        );
        assert!(!target.exists(), "test mode changes nothing");

        let r = run(&sls("a=1"), false, dir.path());
        assert_eq!(only(&r)["result"], true);
        assert_eq!(only(&r)["changes"]["diff"], "New file");
        assert_eq!(fs::read_to_string(&target).expect("read"), "a=1\n");
        assert_eq!(mode_of(&target), Some(0o640));

        let r = run(&sls("a=1"), false, dir.path());
        assert_eq!(
            only(&r)["changes"],
            json!({}),
            "a second run changes nothing"
        );

        let r = run(&sls("a=2"), false, dir.path());
        let diff = only(&r)["changes"]["diff"]
            .as_str()
            .expect("diff")
            .to_owned();
        assert!(diff.contains("-a=1") && diff.contains("+a=2"), "{diff}");
        assert_eq!(fs::read_to_string(&target).expect("read"), "a=2\n");
        let backups: Vec<_> = fs::read_dir(dir.path().join("backup"))
            .expect("backups")
            .collect();
        assert_eq!(backups.len(), 1);
    }

    #[test]
    fn source_directory_absent_and_replace() {
        let dir = tempfile::tempdir().expect("tmp");
        fs::write(dir.path().join("src.txt"), "from master\n").expect("w");
        let f = dir.path().join("copy.txt");
        let d = dir.path().join("d/e");
        let sls = format!(
            "{f}:\n  file.managed:\n    - source: cmdb://files/src.txt\n{d}:\n  file.directory:\n    - makedirs: true\n    - mode: 750\n",
            f = f.display(),
            d = d.display()
        );
        let r = run(&sls, false, dir.path());
        assert!(r.values().all(|v| v["result"] == true), "{r:?}");
        assert_eq!(fs::read_to_string(&f).expect("read"), "from master\n");
        assert_eq!(mode_of(&d), Some(0o750));
        let sls = format!(
            "{f}:\n  file.replace:\n    - pattern: \"master\"\n    - repl: \"cmdb\"\n",
            f = f.display()
        );
        run(&sls, false, dir.path());
        assert_eq!(fs::read_to_string(&f).expect("read"), "from cmdb\n");
        let sls = format!("{}:\n  file.absent: []\n", f.display());
        let r = run(&sls, false, dir.path());
        assert_eq!(only(&r)["result"], true);
        assert!(!f.exists());
        let r = run(
            "missing:\n  file.managed:\n    - name: /nonexistent-dir-x/y\n    - contents: a\n",
            false,
            dir.path(),
        );
        assert_eq!(only(&r)["result"], false);
        let r = run(
            &format!(
                "{}:\n  file.managed:\n    - source: cmdb://nope\n",
                f.display()
            ),
            false,
            dir.path(),
        );
        assert!(
            only(&r)["comment"]
                .as_str()
                .expect("c")
                .contains("cannot fetch")
        );
    }

    #[test]
    fn managed_renders_jinja_with_context_over_defaults() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("app.conf");
        let sls = format!(
            "{}:\n  file.managed:\n    - source: cmdb://files/app.conf.j2\n    - template: jinja\n    - defaults:\n        port: 80\n        mode: prod\n    - context:\n        port: 8080\n",
            f.display()
        );
        let vars = crate::template::Vars {
            grains: json!({"id": "web01"}),
            ..Default::default()
        };
        let r = run_with(&sls, false, dir.path(), vars.clone());
        assert_eq!(only(&r)["result"], true, "{r:?}");
        assert_eq!(
            fs::read_to_string(&f).expect("read"),
            "port=8080 host=web01 mode=prod\n"
        );
        let r = run_with(&sls.replace("jinja", "mako"), false, dir.path(), vars);
        assert_eq!(only(&r)["result"], false);
        let sls = format!(
            "{}:\n  file.managed:\n    - source: cmdb://files/app.conf.j2\n    - template: jinja\n",
            f.display()
        );
        let r = run(&sls, false, dir.path());
        let comment = only(&r)["comment"].as_str().expect("c").to_owned();
        assert!(
            comment.contains("files/app.conf.j2, line 1") && comment.contains("undefined"),
            "{comment}"
        );
        assert_eq!(
            fs::read_to_string(&f).expect("read"),
            "port=8080 host=web01 mode=prod\n",
            "a failed render changes nothing"
        );
    }

    #[test]
    fn a_dry_run_treats_what_earlier_states_create_as_present() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path().join("site/conf");
        let sls = format!(
            "{d}:\n  file.directory:\n    - makedirs: true\n{d}/a.conf:\n  file.managed:\n    - contents: listen 80\n{d}/a.conf-edit:\n  file.replace:\n    - name: {d}/a.conf\n    - pattern: \"80\"\n    - repl: \"8080\"\n{d}/sub:\n  file.directory: []\n",
            d = d.display()
        );
        let r = run(&sls, true, dir.path());
        for v in r.values() {
            assert_eq!(v["result"], Value::Null, "{v}");
        }
        let managed = r
            .values()
            .find(|v| v["__id__"] == format!("{}/a.conf", d.display()))
            .expect("managed");
        assert!(
            managed["comment"]
                .as_str()
                .expect("c")
                .contains("would be created"),
            "{managed}"
        );
        let edit = r
            .values()
            .find(|v| v["__id__"].as_str().is_some_and(|i| i.ends_with("-edit")))
            .expect("replace");
        assert!(
            edit["changes"]["diff"]
                .as_str()
                .expect("diff")
                .contains("+listen 8080"),
            "{edit}"
        );
        assert!(
            !dir.path().join("site").exists(),
            "a dry run creates nothing"
        );
        let r = run(&sls, false, dir.path());
        assert!(r.values().all(|v| v["result"] == true), "{r:?}");
        assert_eq!(
            fs::read_to_string(d.join("a.conf")).expect("read"),
            "listen 8080\n"
        );
    }
}
