//! `user.present` and `group.present` through the shadow tools.

use serde_json::{Map, Value, json};

use super::{arg_list, arg_str, arg_text};
use crate::engine::{Context, StateResult};
use crate::sls::State;
use crate::system;

fn getent(db: &str, name: &str) -> Result<Option<Vec<String>>, String> {
    let r = system::run(&["getent", db, name])?;
    Ok(r.ok()
        .then(|| r.stdout.split(':').map(str::to_owned).collect()))
}

fn exec(argv: &[&str]) -> Result<(), String> {
    let r = system::run(argv)?;
    if r.ok() {
        Ok(())
    } else {
        Err(format!("{} failed: {}", argv[0], r.stderr))
    }
}

/// `user.present`: the account exists with `uid`, `gid`, `home`, `shell` and
/// exactly the supplementary `groups` when given.
pub fn user_present(s: &State, ctx: &Context<'_>) -> StateResult {
    let name = s.name.as_str();
    let uid = arg_text(s, "uid");
    let gid = arg_text(s, "gid");
    let home = arg_str(s, "home");
    let shell = arg_str(s, "shell");
    let groups = arg_list(s, "groups");
    let current = match getent("passwd", name) {
        Ok(c) => c,
        Err(e) => return StateResult::fail(e),
    };
    let Some(cur) = current else {
        let changes = json!({name: "new user"});
        if ctx.test {
            return StateResult::would(format!("User {name} set to be added"), changes);
        }
        let mut argv: Vec<String> = vec!["useradd".into(), "-m".into()];
        for (flag, v) in [("-u", &uid), ("-g", &gid)] {
            if let Some(v) = v {
                argv.extend([flag.to_string(), v.clone()]);
            }
        }
        for (flag, v) in [("-d", home), ("-s", shell)] {
            if let Some(v) = v {
                argv.extend([flag.to_string(), v.to_owned()]);
            }
        }
        if let Some(g) = &groups {
            argv.extend(["-G".to_string(), g.join(",")]);
        }
        argv.push(name.to_owned());
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        return match exec(&refs) {
            Ok(()) => StateResult::changed(format!("New user {name} created"), changes),
            Err(e) => StateResult::fail(e),
        };
    };
    let mut changes = Map::new();
    let mut argv: Vec<String> = vec!["usermod".into()];
    let fields = [
        ("uid", 2, "-u", uid.clone()),
        ("gid", 3, "-g", gid.clone()),
        ("home", 5, "-d", home.map(str::to_owned)),
        ("shell", 6, "-s", shell.map(str::to_owned)),
    ];
    for (key, idx, flag, want) in fields {
        if let Some(w) = want
            && cur.get(idx).map(String::as_str) != Some(w.as_str())
        {
            changes.insert(key.into(), json!(w));
            argv.extend([flag.to_string(), w]);
        }
    }
    if let Some(want) = &groups {
        let have = system::run(&["id", "-nG", name])
            .map(|r| r.stdout)
            .unwrap_or_default();
        let primary = system::run(&["id", "-gn", name])
            .map(|r| r.stdout)
            .unwrap_or_default();
        let mut have: Vec<&str> = have.split_whitespace().filter(|g| *g != primary).collect();
        let mut w: Vec<&str> = want.iter().map(String::as_str).collect();
        have.sort_unstable();
        w.sort_unstable();
        if have != w {
            changes.insert("groups".into(), json!(want));
            argv.extend(["-G".to_string(), want.join(",")]);
        }
    }
    if changes.is_empty() {
        return StateResult::ok(format!("User {name} is present and up to date"));
    }
    if ctx.test {
        return StateResult::would(
            format!("User {name} set to be changed"),
            Value::Object(changes),
        );
    }
    argv.push(name.to_owned());
    let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
    match exec(&refs) {
        Ok(()) => StateResult::changed(format!("Updated user {name}"), Value::Object(changes)),
        Err(e) => StateResult::fail(e),
    }
}

/// The member list a group should have: exactly `members` when given,
/// else the current ones with `add` added and `del` taken away; sorted.
pub fn wanted_members(
    current: &[String],
    members: Option<&[String]>,
    add: &[String],
    del: &[String],
) -> Vec<String> {
    let mut out: Vec<String> = match members {
        Some(m) => m.to_vec(),
        None => current.iter().chain(add).cloned().collect(),
    };
    out.retain(|m| !m.is_empty() && !del.contains(m));
    out.sort();
    out.dedup();
    out
}

/// `group.present`: the group exists (with `gid` when given), with exactly
/// the users `members`, or with `addusers` and without `delusers`.
pub fn group_present(s: &State, ctx: &Context<'_>) -> StateResult {
    let name = s.name.as_str();
    let gid = arg_text(s, "gid");
    let members = arg_list(s, "members");
    let add = arg_list(s, "addusers").unwrap_or_default();
    let del = arg_list(s, "delusers").unwrap_or_default();
    let current = match getent("group", name) {
        Ok(c) => c,
        Err(e) => return StateResult::fail(e),
    };
    let have: Vec<String> = current
        .as_ref()
        .and_then(|c| c.get(3))
        .map(|m| m.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    let have_sorted = wanted_members(&have, None, &[], &[]);
    let want = wanted_members(&have, members.as_deref(), &add, &del);
    let mut changes = serde_json::Map::new();
    let mut steps: Vec<Vec<String>> = Vec::new();
    match &current {
        None => {
            changes.insert("name".into(), json!(name));
            let mut argv = vec!["groupadd".to_owned()];
            if let Some(g) = &gid {
                changes.insert("gid".into(), json!(g));
                argv.extend(["-g".to_owned(), g.clone()]);
            }
            argv.push(name.to_owned());
            steps.push(argv);
        }
        Some(cur) => {
            if let Some(g) = &gid
                && cur.get(2) != Some(g)
            {
                changes.insert("gid".into(), json!(g));
                steps.push(vec!["groupmod".into(), "-g".into(), g.clone(), name.into()]);
            }
        }
    }
    if want != have_sorted {
        changes.insert("members".into(), json!(want));
        steps.push(vec![
            "gpasswd".into(),
            "-M".into(),
            want.join(","),
            name.into(),
        ]);
    }
    if steps.is_empty() {
        return StateResult::ok(format!("Group {name} is present and up to date"));
    }
    if ctx.test {
        return StateResult::would(
            format!("Group {name} set to be changed"),
            Value::Object(changes),
        );
    }
    for argv in steps {
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        if let Err(e) = exec(&refs) {
            return StateResult::fail(e);
        }
    }
    let comment = if current.is_none() {
        format!("New group {name} created")
    } else {
        format!("Updated group {name}")
    };
    StateResult::changed(comment, Value::Object(changes))
}

fn absent(kind: &str, tool: &str, s: &State, ctx: &Context<'_>) -> StateResult {
    let name = s.name.as_str();
    let db = if kind == "User" { "passwd" } else { "group" };
    match getent(db, name) {
        Err(e) => StateResult::fail(e),
        Ok(None) => StateResult::ok(format!("{kind} {name} is not present")),
        Ok(Some(_)) => {
            let changes = json!({ name: "removed" });
            if ctx.test {
                return StateResult::would(format!("{kind} {name} set for removal"), changes);
            }
            let mut argv = vec![tool];
            if kind == "User" && super::arg_bool(s, "purge").unwrap_or(false) {
                argv.push("-r");
            }
            argv.push(name);
            match exec(&argv) {
                Ok(()) => StateResult::changed(format!("Removed {kind} {name}"), changes),
                Err(e) => StateResult::fail(e),
            }
        }
    }
}

/// `user.absent`: the account does not exist (`purge: true` removes its
/// home too).
pub fn user_absent(s: &State, ctx: &Context<'_>) -> StateResult {
    absent("User", "userdel", s, ctx)
}

/// `group.absent`: the group does not exist.
pub fn group_absent(s: &State, ctx: &Context<'_>) -> StateResult {
    absent("Group", "groupdel", s, ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn group_members_exact_or_added_and_removed() {
        let cur = v(&["carol", "alice"]);
        assert_eq!(
            wanted_members(&cur, Some(&v(&["bob", "alice"])), &[], &[]),
            v(&["alice", "bob"])
        );
        assert_eq!(
            wanted_members(&cur, None, &v(&["dave", "alice"]), &v(&["carol"])),
            v(&["alice", "dave"])
        );
        assert_eq!(
            wanted_members(&v(&[""]), None, &[], &[]),
            Vec::<String>::new()
        );
    }
}
