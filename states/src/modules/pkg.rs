//! `pkg.installed` and `pkg.removed`, with the apt/dpkg provider on the
//! Debian family and dnf/rpm on the Red Hat family.

use serde_json::{Map, Value, json};

use super::arg_list;
use crate::engine::{Context, StateResult};
use crate::sls::State;
use crate::system;

/// A package manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// dpkg to query, apt-get to change.
    Apt,
    /// rpm to query, dnf (or yum) to change.
    Dnf,
}

/// The provider for this host's os family (from `/etc/os-release`).
pub fn provider() -> Option<Provider> {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let ids: String = text
        .lines()
        .filter(|l| l.starts_with("ID=") || l.starts_with("ID_LIKE="))
        .map(|l| {
            l.split_once('=')
                .map(|(_, v)| v.trim_matches('"'))
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ");
    let has = |w: &str| ids.split_whitespace().any(|x| x == w);
    if has("debian") || has("ubuntu") {
        Some(Provider::Apt)
    } else if has("rhel") || has("fedora") || has("centos") {
        Some(Provider::Dnf)
    } else if system::have("dpkg-query") {
        Some(Provider::Apt)
    } else if system::have("rpm") {
        Some(Provider::Dnf)
    } else {
        None
    }
}

/// The installed version of `name`, if it is installed.
pub fn installed_version(p: Provider, name: &str) -> Result<Option<String>, String> {
    match p {
        Provider::Apt => {
            let r = system::run(&["dpkg-query", "-W", "-f=${Status}\t${Version}", name])?;
            if !r.ok() {
                return Ok(None);
            }
            Ok(r.stdout
                .split_once('\t')
                .filter(|(status, _)| status.ends_with(" installed"))
                .map(|(_, v)| v.to_owned()))
        }
        Provider::Dnf => {
            let r = system::run(&["rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}", name])?;
            Ok(r.ok().then_some(r.stdout))
        }
    }
}

fn names(s: &State) -> Vec<String> {
    arg_list(s, "pkgs").unwrap_or_else(|| vec![s.name.clone()])
}

fn change(p: Provider, install: bool, pkgs: &[String]) -> Result<(), String> {
    let mut argv: Vec<&str> = match (p, install) {
        (Provider::Apt, true) => vec!["apt-get", "install", "-y", "--no-install-recommends"],
        (Provider::Apt, false) => vec!["apt-get", "remove", "-y"],
        (Provider::Dnf, true) => vec![
            if system::have("dnf") { "dnf" } else { "yum" },
            "install",
            "-y",
        ],
        (Provider::Dnf, false) => vec![
            if system::have("dnf") { "dnf" } else { "yum" },
            "remove",
            "-y",
        ],
    };
    argv.extend(pkgs.iter().map(String::as_str));
    let r = system::run_env(&argv, &[("DEBIAN_FRONTEND", "noninteractive")], None)?;
    if r.ok() {
        Ok(())
    } else {
        Err(format!(
            "{} failed: {}",
            argv[0],
            r.stderr.lines().last().unwrap_or_default()
        ))
    }
}

fn apply(s: &State, ctx: &Context<'_>, install: bool) -> StateResult {
    let Some(p) = provider() else {
        return StateResult::fail("no supported package manager (dpkg or rpm) on this host");
    };
    let mut todo = Vec::new();
    for n in names(s) {
        match installed_version(p, &n) {
            Ok(v) if v.is_some() != install => todo.push((n, v)),
            Ok(_) => {}
            Err(e) => return StateResult::fail(e),
        }
    }
    let verb = if install { "installed" } else { "removed" };
    if todo.is_empty() {
        return StateResult::ok(format!("All specified packages are already {verb}"));
    }
    let pkgs: Vec<String> = todo.iter().map(|(n, _)| n.clone()).collect();
    if ctx.test {
        let changes: Map<String, Value> = pkgs
            .iter()
            .map(|n| (n.clone(), json!({"old": "", "new": verb})))
            .collect();
        return StateResult::would(
            format!(
                "The following packages would be {verb}: {}",
                pkgs.join(", ")
            ),
            Value::Object(changes),
        );
    }
    if let Err(e) = change(p, install, &pkgs) {
        return StateResult::fail(e);
    }
    let mut changes = Map::new();
    for (n, old) in todo {
        let new = installed_version(p, &n).ok().flatten();
        changes.insert(
            n,
            json!({"old": old.unwrap_or_default(), "new": new.unwrap_or_default()}),
        );
    }
    StateResult::changed(
        format!("The following packages were {verb}: {}", pkgs.join(", ")),
        Value::Object(changes),
    )
}

/// `pkg.installed`: `name` (or every package in `pkgs`) is installed.
pub fn installed(s: &State, ctx: &Context<'_>) -> StateResult {
    apply(s, ctx, true)
}

/// `pkg.removed`: `name` (or every package in `pkgs`) is not installed.
pub fn removed(s: &State, ctx: &Context<'_>) -> StateResult {
    apply(s, ctx, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_reports_an_installed_package() {
        if provider() != Some(Provider::Apt) {
            return;
        }
        let v = installed_version(Provider::Apt, "dpkg").expect("query");
        assert!(v.is_some_and(|v| !v.is_empty()));
        assert_eq!(
            installed_version(Provider::Apt, "no-such-package-cmdb").expect("query"),
            None
        );
    }
}
