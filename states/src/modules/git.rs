//! `git.latest`: a working copy of a repository at the newest commit of a
//! branch (or a tag or commit), with the system's `git`.

use std::path::Path;

use serde_json::json;

use super::{arg_bool, arg_str};
use crate::engine::{Context, StateResult};
use crate::sls::State;
use crate::system;

fn git(dir: Option<&str>, args: &[&str]) -> Result<String, String> {
    let mut argv = vec!["git"];
    if let Some(d) = dir {
        argv.extend(["-C", d]);
    }
    argv.extend_from_slice(args);
    let r = system::run_env(&argv, &[("GIT_TERMINAL_PROMPT", "0")], None)?;
    if r.ok() {
        Ok(r.stdout.trim().to_owned())
    } else {
        Err(format!("git {}: {}", args.join(" "), r.stderr))
    }
}

/// `git.latest`: `target` is a clone of `name` (the repository URL) at the
/// newest commit of `rev` (the remote's default branch when not given; a
/// tag or commit id also works). A working copy that has moved away is
/// fast-forwarded; one with local changes or diverged commits fails
/// unless `force_reset: true`, which resets it hard.
pub fn latest(s: &State, ctx: &Context<'_>) -> StateResult {
    match inner(s, ctx) {
        Ok(r) => r,
        Err(e) => StateResult::fail(e),
    }
}

fn inner(s: &State, ctx: &Context<'_>) -> Result<StateResult, String> {
    if !system::have("git") {
        return Err("git is not available on this host".into());
    }
    let target = arg_str(s, "target").ok_or("git.latest needs target")?;
    let rev = arg_str(s, "rev").filter(|r| *r != "HEAD");
    let url = s.name.as_str();
    if !Path::new(target).join(".git").exists() {
        let changes = json!({ "new": format!("{url} => {target}") });
        if ctx.test {
            ctx.predict_dir(Path::new(target));
            return Ok(StateResult::would(
                format!("{url} would be cloned to {target}"),
                changes,
            ));
        }
        git(None, &["clone", "--quiet", url, target])?;
        if let Some(r) = rev {
            git(Some(target), &["checkout", "--quiet", r])?;
        }
        let head = git(Some(target), &["rev-parse", "HEAD"])?;
        return Ok(StateResult::changed(
            format!("{url} cloned to {target}"),
            json!({ "new": format!("{url} => {target}"), "revision": {"new": head} }),
        ));
    }
    let before = git(Some(target), &["rev-parse", "HEAD"])?;
    git(Some(target), &["fetch", "--quiet", "--tags", "origin"])?;
    let wanted_ref = match rev {
        Some(r) => {
            let remote = format!("origin/{r}");
            if git(Some(target), &["rev-parse", "--verify", "--quiet", &remote]).is_ok() {
                remote
            } else {
                r.to_owned()
            }
        }
        None => "origin/HEAD".to_owned(),
    };
    let wanted = git(
        Some(target),
        &["rev-parse", &format!("{wanted_ref}^{{commit}}")],
    )?;
    let dirty = !git(
        Some(target),
        &["status", "--porcelain", "--untracked-files=no"],
    )?
    .is_empty();
    if wanted == before && !dirty {
        return Ok(StateResult::ok(format!(
            "Repository {target} is up to date at {wanted}"
        )));
    }
    let changes = json!({ "revision": { "old": before, "new": wanted } });
    if ctx.test {
        return Ok(StateResult::would(
            format!("Repository {target} would be updated to {wanted}"),
            changes,
        ));
    }
    let force = arg_bool(s, "force_reset").unwrap_or(false);
    let fast_forward = git(
        Some(target),
        &["merge-base", "--is-ancestor", &before, &wanted],
    )
    .is_ok();
    if force {
        git(Some(target), &["reset", "--hard", "--quiet", &wanted])?;
    } else if dirty {
        return Err(format!(
            "{target} has local changes; force_reset: true discards them"
        ));
    } else if !fast_forward {
        return Err(format!(
            "{target} has commits that {wanted_ref} does not; force_reset: true resets it"
        ));
    } else {
        git(Some(target), &["merge", "--ff-only", "--quiet", &wanted])?;
    }
    Ok(StateResult::changed(
        format!("Repository {target} updated to {wanted}"),
        changes,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::apply;
    use crate::order::plan;
    use crate::sls::compile;
    use crate::sls::tests::loader;

    #[test]
    fn clone_then_fast_forward_then_nothing() {
        if !system::have("git") {
            return;
        }
        let dir = tempfile::tempdir().expect("tmp");
        let origin = dir.path().join("origin");
        let o = origin.to_string_lossy().to_string();
        let commit = |msg: &str| {
            std::fs::write(origin.join("f"), msg).expect("w");
            git(Some(&o), &["add", "f"]).expect("add");
            git(
                Some(&o),
                &[
                    "-c",
                    "user.name=t",
                    "-c",
                    "user.email=t@t",
                    "commit",
                    "-qm",
                    msg,
                ],
            )
            .expect("commit")
        };
        git(None, &["init", "-q", "-b", "main", &o]).expect("init");
        commit("one");
        let target = dir.path().join("wc");
        let sls = format!(
            "{o}:\n  git.latest:\n    - target: {}\n    - rev: main\n",
            target.display()
        );
        let l = loader(&[("s", &sls)]);
        let states = compile(&l, &["s".into()]).expect("compile");
        let p = plan(&states).expect("plan");
        let fetch = |_: &str| -> Result<Vec<u8>, String> { Err("none".into()) };
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
        assert_eq!(run(false)["result"], true);
        assert_eq!(std::fs::read_to_string(target.join("f")).expect("r"), "one");
        assert_eq!(run(false)["changes"], json!({}));
        commit("two");
        assert_eq!(run(true)["result"], serde_json::Value::Null);
        let r = run(false);
        assert_eq!(r["result"], true, "{r}");
        assert_eq!(std::fs::read_to_string(target.join("f")).expect("r"), "two");
        assert_eq!(run(false)["changes"], json!({}));
    }
}
