//! `pkgrepo.managed` and `pkgrepo.absent`: package repositories as files,
//! `/etc/apt/sources.list.d/*.list` on the Debian family and
//! `/etc/yum.repos.d/*.repo` on the Red Hat family.

use serde_json::{Map, Value};

use super::pkg::{Provider, provider};
use super::{arg_bool, arg_str, arg_text};
use crate::engine::{Context, StateResult};
use crate::sls::State;
use crate::system;

fn slug(text: &str) -> String {
    let s: String = text
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    s.trim_matches('_').to_owned()
}

/// The repository file and its contents for this state.
pub fn repo_file(s: &State, p: Provider) -> Result<(String, String), String> {
    match p {
        Provider::Apt => {
            let file = arg_str(s, "file")
                .map(str::to_owned)
                .unwrap_or_else(|| format!("/etc/apt/sources.list.d/{}.list", slug(&s.name)));
            Ok((file, format!("{}\n", s.name)))
        }
        Provider::Dnf => {
            let file = arg_str(s, "file")
                .map(str::to_owned)
                .unwrap_or_else(|| format!("/etc/yum.repos.d/{}.repo", slug(&s.name)));
            let mut text = format!("[{}]\n", s.name);
            text.push_str(&format!(
                "name={}\n",
                arg_text(s, "humanname").unwrap_or_else(|| s.name.clone())
            ));
            if arg_text(s, "baseurl").is_none() && arg_text(s, "mirrorlist").is_none() {
                return Err("pkgrepo.managed needs baseurl or mirrorlist on this host".into());
            }
            for key in ["baseurl", "mirrorlist", "gpgkey"] {
                if let Some(v) = arg_text(s, key) {
                    text.push_str(&format!("{key}={v}\n"));
                }
            }
            for key in ["enabled", "gpgcheck"] {
                let on = arg_bool(s, key).unwrap_or(key == "enabled");
                text.push_str(&format!("{key}={}\n", u8::from(on)));
            }
            Ok((file, text))
        }
    }
}

fn as_file_state(s: &State, file: String, contents: Option<String>) -> State {
    let mut args = Map::new();
    if let Some(c) = contents {
        args.insert("contents".into(), Value::String(c.trim_end().to_owned()));
        args.insert("mode".into(), Value::String("0644".into()));
        args.insert("backup".into(), Value::Bool(false));
    }
    State {
        module: "file".into(),
        function: if args.is_empty() { "absent" } else { "managed" }.into(),
        name: file,
        args,
        ..s.clone()
    }
}

/// `pkgrepo.managed`: on apt hosts `name` is the source line (`deb
/// http://… stable main`) written to `file` (by default a `.list` named
/// after it); on dnf/yum hosts `name` is the repository id with
/// `humanname`, `baseurl` or `mirrorlist`, `gpgcheck`, `gpgkey`, `enabled`.
/// `refresh: true` runs `apt-get update` / `dnf makecache` when it changed.
pub fn managed(s: &State, ctx: &Context<'_>) -> StateResult {
    let Some(p) = provider() else {
        return StateResult::fail("no supported package manager on this host");
    };
    let (file, text) = match repo_file(s, p) {
        Ok(x) => x,
        Err(e) => return StateResult::fail(e),
    };
    let r = super::file::managed(&as_file_state(s, file, Some(text)), ctx);
    if r.result == Some(true)
        && !ctx.test
        && r.changes.as_object().is_some_and(|m| !m.is_empty())
        && arg_bool(s, "refresh").unwrap_or(false)
    {
        let argv: &[&str] = match p {
            Provider::Apt => &["apt-get", "update", "-q"],
            Provider::Dnf => &["dnf", "makecache", "-q"],
        };
        return match system::run(argv) {
            Ok(ran) if ran.ok() => r,
            Ok(ran) => StateResult::fail(format!("{} failed: {}", argv.join(" "), ran.stderr)),
            Err(e) => StateResult::fail(e),
        };
    }
    r
}

/// `pkgrepo.absent`: the repository file (`file`, or the default one for
/// `name`) is gone.
pub fn absent(s: &State, ctx: &Context<'_>) -> StateResult {
    let Some(p) = provider() else {
        return StateResult::fail("no supported package manager on this host");
    };
    let file = match p {
        Provider::Apt => format!("/etc/apt/sources.list.d/{}.list", slug(&s.name)),
        Provider::Dnf => format!("/etc/yum.repos.d/{}.repo", slug(&s.name)),
    };
    let file = arg_str(s, "file").map(str::to_owned).unwrap_or(file);
    super::file::absent(&as_file_state(s, file, None), ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sls::compile;
    use crate::sls::tests::loader;

    fn state(body: &str) -> State {
        let l = loader(&[("s", body)]);
        compile(&l, &["s".into()]).expect("compile").remove(0)
    }

    #[test]
    fn apt_and_dnf_repository_files() {
        let s = state("\"deb http://repo.example/debian stable main\":\n  pkgrepo.managed: []\n");
        assert_eq!(
            repo_file(&s, Provider::Apt).expect("apt"),
            (
                "/etc/apt/sources.list.d/deb_http___repo_example_debian_stable_main.list".into(),
                "deb http://repo.example/debian stable main\n".into()
            )
        );
        let s = state(
            "epel:\n  pkgrepo.managed:\n    - humanname: EPEL\n    - baseurl: https://m.example/epel/9\n    - gpgcheck: true\n",
        );
        assert_eq!(
            repo_file(&s, Provider::Dnf).expect("dnf").1,
            "[epel]\nname=EPEL\nbaseurl=https://m.example/epel/9\nenabled=1\ngpgcheck=1\n"
        );
        let s = state("x:\n  pkgrepo.managed: []\n");
        assert!(repo_file(&s, Provider::Dnf).is_err());
    }
}
