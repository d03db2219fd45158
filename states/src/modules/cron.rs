//! `cron.present` and `cron.absent`: lines of a user's crontab, read and
//! written with `crontab -l -u USER` and `crontab -u USER -`.
//!
//! An entry is found by its identifier comment (`# SALT_CRON_IDENTIFIER:ID`,
//! as Salt writes it, so crontabs Salt managed keep working), or without
//! one by its command.

use serde_json::json;

use super::{arg_str, arg_text};
use crate::engine::{Context, StateResult};
use crate::sls::State;
use crate::system;

const MARK: &str = "# SALT_CRON_IDENTIFIER:";

/// A crontab entry as a state describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The command.
    pub cmd: String,
    /// `minute hour daymonth month dayweek`, or a `@special`.
    pub when: String,
    /// The identifier, when given.
    pub identifier: Option<String>,
    /// A comment line written above the entry.
    pub comment: Option<String>,
}

impl Entry {
    fn from_state(s: &State) -> Entry {
        let field = |k: &str| arg_text(s, k).unwrap_or_else(|| "*".into());
        let when = match arg_text(s, "special") {
            Some(sp) => sp,
            None => format!(
                "{} {} {} {} {}",
                field("minute"),
                field("hour"),
                field("daymonth"),
                field("month"),
                field("dayweek")
            ),
        };
        Entry {
            cmd: s.name.clone(),
            when,
            identifier: arg_text(s, "identifier"),
            comment: arg_text(s, "comment"),
        }
    }

    fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(c) = &self.comment {
            out.push(format!("# {c}"));
        }
        if let Some(id) = &self.identifier {
            out.push(format!("{MARK}{id}"));
        }
        out.push(format!("{} {}", self.when, self.cmd));
        out
    }

    /// Whether the crontab line (with the line above it) is this entry.
    fn is(&self, above: Option<&str>, line: &str) -> bool {
        match &self.identifier {
            Some(id) => above.is_some_and(|a| a.trim() == format!("{MARK}{id}")),
            None => {
                !line.trim_start().starts_with('#')
                    && line.trim_end().ends_with(self.cmd.as_str())
                    && line
                        .trim_end()
                        .strip_suffix(self.cmd.as_str())
                        .is_some_and(|w| w.ends_with(' '))
            }
        }
    }
}

/// The crontab text with `entry` present (or absent), and whether it
/// changed.
pub fn edit(table: &str, entry: &Entry, present: bool) -> (String, bool) {
    let lines: Vec<&str> = table.lines().collect();
    let mut out: Vec<String> = Vec::new();
    let mut found = false;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let above = i.checked_sub(1).map(|j| lines[j]);
        let marker_here = entry
            .identifier
            .as_ref()
            .is_some_and(|id| line.trim() == format!("{MARK}{id}"));
        if marker_here {
            i += 1;
            continue;
        }
        if entry.is(above, line) {
            // A comment line written for this entry goes with it.
            if entry
                .comment
                .as_ref()
                .is_some_and(|c| out.last().is_some_and(|l| *l == format!("# {c}")))
            {
                out.pop();
            }
            if present && !found {
                out.extend(entry.lines());
            }
            found = true;
            i += 1;
            continue;
        }
        out.push(line.to_owned());
        i += 1;
    }
    if present && !found {
        out.extend(entry.lines());
    }
    let mut text = out.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    let changed = text.trim_end() != table.trim_end();
    (text, changed)
}

fn read(user: &str) -> Result<String, String> {
    let r = system::run(&["crontab", "-l", "-u", user])?;
    if r.ok() {
        Ok(r.stdout + "\n")
    } else if r.stderr.contains("no crontab") {
        Ok(String::new())
    } else {
        Err(format!("crontab -l -u {user}: {}", r.stderr))
    }
}

fn converge(s: &State, ctx: &Context<'_>, present: bool) -> StateResult {
    if !system::have("crontab") {
        return StateResult::fail("crontab is not available on this host");
    }
    let user = arg_str(s, "user").unwrap_or("root");
    let entry = Entry::from_state(s);
    let table = match read(user) {
        Ok(t) => t,
        Err(e) => return StateResult::fail(e),
    };
    let (new, changed) = edit(&table, &entry, present);
    if !changed {
        return StateResult::ok(format!(
            "Cron {} is already {} in {user}'s crontab",
            s.name,
            if present { "present" } else { "absent" }
        ));
    }
    let changes = if present {
        json!({ user: format!("{} {}", entry.when, entry.cmd) })
    } else {
        json!({ user: { "removed": s.name } })
    };
    if ctx.test {
        return StateResult::would(format!("Cron {} is set to be changed", s.name), changes);
    }
    match system::run_input(&["crontab", "-u", user, "-"], &new) {
        Ok(r) if r.ok() => StateResult::changed(format!("Cron {} updated", s.name), changes),
        Ok(r) => StateResult::fail(format!("crontab -u {user}: {}", r.stderr)),
        Err(e) => StateResult::fail(e),
    }
}

/// `cron.present`: `name` (the command) runs at `minute`, `hour`,
/// `daymonth`, `month`, `dayweek` (each `*` by default) or at `special`
/// (`@reboot`, `@daily`, …) in `user`'s crontab (root by default), with
/// `identifier` and `comment`.
pub fn present(s: &State, ctx: &Context<'_>) -> StateResult {
    converge(s, ctx, true)
}

/// `cron.absent`: the entry (by `identifier`, else by command) is gone.
pub fn absent(s: &State, ctx: &Context<'_>) -> StateResult {
    converge(s, ctx, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(cmd: &str, when: &str, id: Option<&str>) -> Entry {
        Entry {
            cmd: cmd.into(),
            when: when.into(),
            identifier: id.map(str::to_owned),
            comment: None,
        }
    }

    #[test]
    fn present_adds_updates_in_place_and_is_idempotent() {
        let table = "MAILTO=root\n0 * * * * /usr/bin/other\n";
        let e = entry("/usr/bin/backup", "30 2 * * *", None);
        let (t, changed) = edit(table, &e, true);
        assert!(changed);
        assert_eq!(
            t,
            "MAILTO=root\n0 * * * * /usr/bin/other\n30 2 * * * /usr/bin/backup\n"
        );
        assert_eq!(edit(&t, &e, true), (t.clone(), false));
        let later = entry("/usr/bin/backup", "45 3 * * *", None);
        let (t2, changed) = edit(&t, &later, true);
        assert!(changed);
        assert_eq!(
            t2,
            "MAILTO=root\n0 * * * * /usr/bin/other\n45 3 * * * /usr/bin/backup\n"
        );
        let (t3, changed) = edit(&t2, &later, false);
        assert!(changed);
        assert_eq!(t3, table);
        assert!(!edit(&t3, &later, false).1);
    }

    #[test]
    fn identifiers_find_entries_whose_command_changed() {
        let e = entry("/opt/a --v1", "@daily", Some("job-a"));
        let (t, _) = edit("", &e, true);
        assert_eq!(t, "# SALT_CRON_IDENTIFIER:job-a\n@daily /opt/a --v1\n");
        let e2 = entry("/opt/a --v2", "@daily", Some("job-a"));
        let (t2, changed) = edit(&t, &e2, true);
        assert!(changed);
        assert_eq!(t2, "# SALT_CRON_IDENTIFIER:job-a\n@daily /opt/a --v2\n");
        assert_eq!(edit(&t2, &e2, false), (String::new(), true));
    }
}
