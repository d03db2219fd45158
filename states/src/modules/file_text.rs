//! Edits inside a text file: `file.append`, `file.blockreplace`,
//! `file.line`.

use std::path::Path;

use serde_json::{Value, json};

use super::file::{ensure_parent, mode_of, unified_diff, write_atomic};
use super::{arg_bool, arg_list, arg_str, arg_text};
use crate::engine::{Context, StateResult};
use crate::sls::State;

/// Applies `edit` to the file's text (`None` when it does not exist):
/// reports the diff, writes atomically keeping the mode, predicts in test
/// mode.
fn edit(
    s: &State,
    ctx: &Context<'_>,
    create: bool,
    edit: impl FnOnce(Option<&str>) -> Result<String, String>,
) -> StateResult {
    let path = Path::new(&s.name);
    if !path.is_absolute() {
        return StateResult::fail(format!("{} is not an absolute path", s.name));
    }
    let old = match ctx.read(path).map(String::from_utf8) {
        Some(Ok(t)) => Some(t),
        Some(Err(_)) => return StateResult::fail(format!("{} is not UTF-8 text", s.name)),
        None if create => None,
        None => return StateResult::fail(format!("{}: no such file", s.name)),
    };
    if old.is_none()
        && let Err(e) = ensure_parent(path, arg_bool(s, "makedirs").unwrap_or(false), ctx)
    {
        return StateResult::fail(e);
    }
    let new = match edit(old.as_deref()) {
        Ok(n) => n,
        Err(e) => return StateResult::fail(e),
    };
    if old.as_deref() == Some(new.as_str()) {
        return StateResult::ok(format!("File {} is in the correct state", s.name));
    }
    let diff = match &old {
        Some(o) => unified_diff(&s.name, o.as_bytes(), new.as_bytes()),
        None => "New file".into(),
    };
    let changes = json!({ "diff": diff });
    if ctx.test {
        ctx.predict_file(path, new.into_bytes());
        return StateResult::would(format!("File {} is set to be changed", s.name), changes);
    }
    let mode = mode_of(path).unwrap_or(0o644);
    match write_atomic(path, new.as_bytes(), mode) {
        Ok(()) => StateResult::changed(format!("File {} updated", s.name), changes),
        Err(e) => StateResult::fail(e),
    }
}

fn lines_of(s: &State, key: &str) -> Vec<String> {
    match s.args.get(key) {
        Some(Value::Array(_)) => arg_list(s, key).unwrap_or_default(),
        Some(_) => arg_text(s, key)
            .map(|t| t.lines().map(str::to_owned).collect())
            .unwrap_or_default(),
        None => Vec::new(),
    }
}

fn with_newline(mut t: String) -> String {
    if !t.is_empty() && !t.ends_with('\n') {
        t.push('\n');
    }
    t
}

/// `file.append`: each line of `text` (a string or a list) that the file
/// does not hold yet is appended; the file is created when missing
/// (`makedirs` creates its parents).
pub fn append(s: &State, ctx: &Context<'_>) -> StateResult {
    let wanted = lines_of(s, "text");
    if wanted.is_empty() {
        return StateResult::fail("file.append needs text");
    }
    edit(s, ctx, true, |old| {
        let mut out = with_newline(old.unwrap_or_default().to_owned());
        for line in wanted {
            if !out.lines().any(|l| l == line) {
                out.push_str(&line);
                out.push('\n');
            }
        }
        Ok(out)
    })
}

/// `file.blockreplace`: the text between the lines holding `marker_start`
/// and `marker_end` becomes `content`; without the markers the block is
/// added at the end (`append_if_not_found`) or the start
/// (`prepend_if_not_found`), or the state fails.
pub fn blockreplace(s: &State, ctx: &Context<'_>) -> StateResult {
    let start = arg_text(s, "marker_start").unwrap_or_else(|| "#-- start managed zone --".into());
    let end = arg_text(s, "marker_end").unwrap_or_else(|| "#-- end managed zone --".into());
    let content = with_newline(arg_text(s, "content").unwrap_or_default());
    let append = arg_bool(s, "append_if_not_found").unwrap_or(false);
    let prepend = arg_bool(s, "prepend_if_not_found").unwrap_or(false);
    edit(s, ctx, append || prepend, |old| {
        let old = old.unwrap_or_default();
        let lines: Vec<&str> = old.split_inclusive('\n').collect();
        let a = lines.iter().position(|l| l.contains(start.as_str()));
        let b = a.and_then(|a| {
            lines[a + 1..]
                .iter()
                .position(|l| l.contains(end.as_str()))
                .map(|p| a + 1 + p)
        });
        match (a, b) {
            (Some(a), Some(b)) => {
                let mut out: String = lines[..=a].concat();
                out = with_newline(out);
                out.push_str(&content);
                out.push_str(&lines[b..].concat());
                Ok(out)
            }
            (Some(_), None) => Err(format!("marker_end {end:?} not found after marker_start")),
            _ => {
                let block = format!("{start}\n{content}{end}\n");
                if append {
                    Ok(with_newline(old.to_owned()) + &block)
                } else if prepend {
                    Ok(block + old)
                } else {
                    Err(format!(
                        "marker_start {start:?} not found in {} (append_if_not_found or \
                         prepend_if_not_found adds the block)",
                        s.name
                    ))
                }
            }
        }
    })
}

/// `file.line`: `mode` is `ensure` (the default: the line matching `match`
/// becomes `content`, else `content` is inserted), `replace` (lines
/// matching `match` become `content`), `insert` (`content` added once:
/// `after` or `before` a line matching a regex, or at `location`
/// `start`/`end`), or `delete` (lines matching `match`, or equal to
/// `content`, removed). `create: true` makes a missing file.
pub fn line(s: &State, ctx: &Context<'_>) -> StateResult {
    let content = arg_text(s, "content");
    let mode = arg_str(s, "mode").unwrap_or("ensure").to_owned();
    let re = |key: &str| -> Result<Option<regex::Regex>, String> {
        arg_str(s, key)
            .map(|p| regex::Regex::new(p).map_err(|e| format!("{key}: {e}")))
            .transpose()
    };
    let (matcher, after, before) = match (re("match"), re("after"), re("before")) {
        (Ok(m), Ok(a), Ok(b)) => (m, a, b),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return StateResult::fail(e),
    };
    let location = arg_str(s, "location").unwrap_or("end").to_owned();
    let create = arg_bool(s, "create").unwrap_or(false);
    edit(s, ctx, create, move |old| {
        let old = old.unwrap_or_default();
        let mut lines: Vec<String> = old.lines().map(str::to_owned).collect();
        let need = |c: &Option<String>| {
            c.clone()
                .ok_or(format!("file.line mode {mode} needs content"))
        };
        let insert = |lines: &mut Vec<String>, c: String| {
            if lines.contains(&c) {
                return;
            }
            let at = if let Some(a) = &after {
                lines.iter().position(|l| a.is_match(l)).map(|p| p + 1)
            } else if let Some(b) = &before {
                lines.iter().position(|l| b.is_match(l))
            } else if location == "start" {
                Some(0)
            } else {
                None
            };
            match at {
                Some(p) => lines.insert(p, c),
                None => lines.push(c),
            }
        };
        match mode.as_str() {
            "replace" | "ensure" => {
                let c = need(&content)?;
                let hit = matcher.as_ref().map(|m| {
                    lines.iter_mut().fold(false, |hit, l| {
                        if m.is_match(l) {
                            *l = c.clone();
                            true
                        } else {
                            hit
                        }
                    })
                });
                if mode == "ensure" && hit != Some(true) {
                    insert(&mut lines, c);
                }
            }
            "insert" => insert(&mut lines, need(&content)?),
            "delete" => match (&matcher, &content) {
                (Some(m), _) => lines.retain(|l| !m.is_match(l)),
                (None, Some(c)) => lines.retain(|l| l != c),
                (None, None) => return Err("file.line mode delete needs match or content".into()),
            },
            other => {
                return Err(format!(
                    "mode {other:?} is not one of ensure, replace, insert, delete"
                ));
            }
        }
        let mut out = lines.join("\n");
        if !lines.is_empty() {
            out.push('\n');
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::apply;
    use crate::order::plan;
    use crate::sls::compile;
    use crate::sls::tests::loader;
    use std::fs;

    fn run(sls: &str, test: bool, dir: &Path) -> serde_json::Map<String, Value> {
        let l = loader(&[("s", sls)]);
        let states = compile(&l, &["s".into()]).expect("compile");
        let p = plan(&states).expect("plan");
        let fetch = |_: &str| -> Result<Vec<u8>, String> { Err("none".into()) };
        let renderer = crate::template::Renderer::new(Default::default(), None);
        let ctx = Context::new(test, &fetch, dir.join("backup"), &renderer);
        apply(&states, &p, &ctx).0
    }

    fn all_true(r: &serde_json::Map<String, Value>) -> bool {
        r.values().all(|v| v["result"] == true)
    }

    #[test]
    fn append_adds_missing_lines_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("hosts");
        fs::write(&f, "127.0.0.1 localhost").expect("w");
        let sls = format!(
            "{}:\n  file.append:\n    - text:\n      - 10.0.0.1 db\n      - 127.0.0.1 localhost\n",
            f.display()
        );
        let r = run(&sls, true, dir.path());
        assert!(r.values().all(|v| v["result"] == Value::Null));
        assert_eq!(fs::read_to_string(&f).expect("r"), "127.0.0.1 localhost");
        assert!(all_true(&run(&sls, false, dir.path())));
        assert_eq!(
            fs::read_to_string(&f).expect("r"),
            "127.0.0.1 localhost\n10.0.0.1 db\n"
        );
        let r = run(&sls, false, dir.path());
        assert!(r.values().all(|v| v["changes"] == json!({})), "{r:?}");
    }

    #[test]
    fn blockreplace_replaces_between_markers_or_appends() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("conf");
        fs::write(&f, "a\n# BEGIN\nold\n# END\nz\n").expect("w");
        let sls = format!(
            "{}:\n  file.blockreplace:\n    - marker_start: \"# BEGIN\"\n    - marker_end: \"# END\"\n    - content: \"new1\\nnew2\"\n",
            f.display()
        );
        assert!(all_true(&run(&sls, false, dir.path())));
        assert_eq!(
            fs::read_to_string(&f).expect("r"),
            "a\n# BEGIN\nnew1\nnew2\n# END\nz\n"
        );
        let r = run(&sls, false, dir.path());
        assert!(r.values().all(|v| v["changes"] == json!({})));
        fs::write(&f, "a\n").expect("w");
        assert!(!all_true(&run(&sls, false, dir.path())), "no markers");
        let sls = sls.replace(
            "    - content",
            "    - append_if_not_found: true\n    - content",
        );
        assert!(all_true(&run(&sls, false, dir.path())));
        assert_eq!(
            fs::read_to_string(&f).expect("r"),
            "a\n# BEGIN\nnew1\nnew2\n# END\n"
        );
    }

    #[test]
    fn line_modes() {
        let dir = tempfile::tempdir().expect("tmp");
        let f = dir.path().join("sshd");
        fs::write(&f, "Port 22\nPermitRootLogin yes\nUsePAM yes\n").expect("w");
        let state = |args: &str| format!("{}:\n  file.line:\n{args}", f.display());
        let r = run(
            &state("    - match: ^PermitRootLogin\n    - content: PermitRootLogin no\n"),
            false,
            dir.path(),
        );
        assert!(all_true(&r), "{r:?}");
        run(
            &state(
                "    - mode: insert\n    - after: ^Port\n    - content: ListenAddress 0.0.0.0\n",
            ),
            false,
            dir.path(),
        );
        run(
            &state("    - mode: delete\n    - match: ^UsePAM\n"),
            false,
            dir.path(),
        );
        run(
            &state("    - mode: insert\n    - location: start\n    - content: \"# managed\"\n"),
            false,
            dir.path(),
        );
        assert_eq!(
            fs::read_to_string(&f).expect("r"),
            "# managed\nPort 22\nListenAddress 0.0.0.0\nPermitRootLogin no\n"
        );
        let r = run(
            &state(
                "    - mode: insert\n    - after: ^Port\n    - content: ListenAddress 0.0.0.0\n",
            ),
            false,
            dir.path(),
        );
        assert!(r.values().all(|v| v["changes"] == json!({})), "idempotent");
        let r = run(
            &state("    - mode: bogus\n    - content: x\n"),
            false,
            dir.path(),
        );
        assert!(!all_true(&r));
    }
}
