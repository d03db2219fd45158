//! Execution modules: the functions a job can call.

pub mod cmd;
pub mod cp;
pub mod grains;
pub mod pillar;
pub mod saltutil;
pub mod state;
pub mod sys;
pub mod test;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

/// What a function call needs besides its arguments.
#[derive(Clone)]
pub struct CallContext {
    /// The minion id.
    pub id: String,
    /// What a collect reads and runs.
    pub collect: facts::CollectSettings,
    /// The running minion, for functions that talk to the master.
    pub minion: Option<std::sync::Arc<crate::session::Minion>>,
    /// How long the call may take.
    pub timeout: Duration,
    /// Where state backups and other local state go.
    pub state_dir: std::path::PathBuf,
    /// Local file roots, read instead of the master's when there is no
    /// master (`cmdb-minion call --local`).
    pub file_roots: Vec<std::path::PathBuf>,
}

/// Where `cmdb://` files come from.
#[derive(Clone)]
pub enum FileSource {
    /// The master's file server.
    Master(std::sync::Arc<crate::session::Minion>),
    /// Local file roots.
    Local(Vec<std::path::PathBuf>),
}

impl FileSource {
    /// The file at `rel` (a `cmdb://` path without the scheme).
    pub async fn fetch(&self, rel: &str) -> Result<Vec<u8>, String> {
        match self {
            FileSource::Master(m) => crate::files::fetch(m, rel).await,
            FileSource::Local(roots) => read_local(roots, rel),
        }
    }

    /// As [`FileSource::fetch`], from a blocking thread of the runtime `rt`.
    pub fn fetch_blocking(
        &self,
        rel: &str,
        rt: &tokio::runtime::Handle,
    ) -> Result<Vec<u8>, String> {
        match self {
            FileSource::Master(m) => rt.block_on(crate::files::fetch(m, rel)),
            FileSource::Local(roots) => read_local(roots, rel),
        }
    }
}

impl FileSource {
    /// The files below the directory `rel`, from a blocking thread of the
    /// runtime `rt`.
    pub fn list_blocking(
        &self,
        rel: &str,
        rt: &tokio::runtime::Handle,
    ) -> Result<Vec<states::roots::Listed>, String> {
        match self {
            FileSource::Master(m) => rt.block_on(crate::files::list(m, rel)),
            FileSource::Local(roots) => states::roots::list(roots, rel).map_err(|e| e.to_string()),
        }
    }
}

fn read_local(roots: &[std::path::PathBuf], rel: &str) -> Result<Vec<u8>, String> {
    let path = states::roots::resolve(roots, rel).map_err(|e| e.to_string())?;
    std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
}

impl CallContext {
    /// Where this call reads `cmdb://` files: the master, or the local file
    /// roots without one.
    pub fn files(&self) -> Result<FileSource, String> {
        match &self.minion {
            Some(m) => Ok(FileSource::Master(m.clone())),
            None if !self.file_roots.is_empty() => Ok(FileSource::Local(self.file_roots.clone())),
            None => Err("no master and no local file_roots to read cmdb:// files from".into()),
        }
    }

    /// The file a `cmdb://path` names, from [`CallContext::files`].
    pub async fn fetch_cmdb(&self, url: &str) -> Result<Vec<u8>, String> {
        let rel = url
            .strip_prefix("cmdb://")
            .ok_or_else(|| format!("{url:?} is not a cmdb:// path"))?;
        self.files()?.fetch(rel).await
    }

    /// This host's facts: the running minion's cached ones, or collected now.
    pub async fn facts(&self) -> Value {
        match &self.minion {
            Some(m) => m.facts().await,
            None => Value::Object(facts::collect(&self.collect, &self.id).await),
        }
    }
}

/// The outcome of a function call.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// What the function returned.
    pub data: Value,
    /// Whether it succeeded.
    pub success: bool,
    /// Process-style return code.
    pub retcode: i32,
}

impl Outcome {
    /// A successful result.
    pub fn ok(data: Value) -> Outcome {
        Outcome {
            data,
            success: true,
            retcode: 0,
        }
    }

    /// A failure with a message.
    pub fn fail(message: impl Into<String>, retcode: i32) -> Outcome {
        Outcome {
            data: Value::String(message.into()),
            success: false,
            retcode,
        }
    }
}

/// What a function takes: positional arguments (each may also be given by
/// name), how many of them are required, and keyword-only arguments.
#[derive(Debug)]
pub struct Signature {
    /// The function's name.
    pub name: &'static str,
    /// Positional arguments in order. A last name ending in `*` takes any
    /// number of values and cannot be given by name.
    pub args: &'static [&'static str],
    /// How many of `args` must be given.
    pub required: usize,
    /// Arguments taken only as `name=value`.
    pub kwargs: &'static [&'static str],
    /// What it does, for `sys.doc`.
    pub doc: &'static str,
}

const SHELL_KWARGS: &[&str] = &[
    "cwd",
    "env",
    "python_shell",
    "runas",
    "shell",
    "stdin",
    "timeout",
];

/// Every function this minion offers, sorted by name.
pub const SIGNATURES: &[Signature] = &[
    Signature {
        name: "cmd.run",
        args: &["cmd"],
        required: 1,
        kwargs: SHELL_KWARGS,
        doc: "Runs a command through a shell (`shell`, default /bin/sh; with python_shell=false \
              it is split into words and run without one) and returns its output, stdout and \
              stderr merged. runas=USER, cwd=DIR, env='{NAME: value}', stdin=TEXT, \
              timeout=SECS (the process group is killed past it).",
    },
    Signature {
        name: "cmd.run_all",
        args: &["cmd"],
        required: 1,
        kwargs: SHELL_KWARGS,
        doc: "As cmd.run, and returns {pid, retcode, stdout, stderr}.",
    },
    Signature {
        name: "cmd.script",
        args: &["source", "args"],
        required: 1,
        kwargs: &["cwd", "env", "runas", "stdin", "timeout"],
        doc: "Fetches a script from the master (cmdb://path), runs it with `args` (split as a \
              shell would) and returns {pid, retcode, stdout, stderr}. runas, cwd, env, stdin \
              and timeout as in cmd.run.",
    },
    Signature {
        name: "collect",
        args: &[],
        required: 0,
        kwargs: &[],
        doc: "Collects this host's asset facts (every enabled collector and fact plugin).",
    },
    Signature {
        name: "cp.get_file",
        args: &["path", "dest"],
        required: 2,
        kwargs: &["makedirs"],
        doc: "Copies cmdb://path from the master's file roots to dest; makedirs=true creates \
              the parent directories.",
    },
    Signature {
        name: "cp.push",
        args: &["path"],
        required: 1,
        kwargs: &["upload_path"],
        doc: "Sends a local file to the master, into this minion's own directory there \
              (upload_path=REL names it).",
    },
    Signature {
        name: "grains.get",
        args: &["key", "default"],
        required: 1,
        kwargs: &["delimiter"],
        doc: "One fact by its path (`os`, `ip_interfaces:eth0:0`; delimiter=':' by default), \
              or `default` (empty by default) when there is none.",
    },
    Signature {
        name: "grains.item",
        args: &["keys*"],
        required: 0,
        kwargs: &[],
        doc: "The named top-level facts.",
    },
    Signature {
        name: "grains.items",
        args: &[],
        required: 0,
        kwargs: &[],
        doc: "Every fact, as collect.",
    },
    Signature {
        name: "pillar.get",
        args: &["key", "default"],
        required: 1,
        kwargs: &["delimiter"],
        doc: "One value of this minion's pillar by its path (`site:port`; delimiter=':' by \
              default), or `default` (empty by default) when there is none.",
    },
    Signature {
        name: "pillar.item",
        args: &["keys*"],
        required: 0,
        kwargs: &[],
        doc: "The named top-level keys of this minion's pillar.",
    },
    Signature {
        name: "pillar.items",
        args: &[],
        required: 0,
        kwargs: &[],
        doc: "This minion's whole pillar, compiled by the master from pillar_roots for this \
              minion only.",
    },
    Signature {
        name: "pillar.refresh",
        args: &[],
        required: 0,
        kwargs: &[],
        doc: "Compiles this minion's pillar anew on the master; true when it compiles.",
    },
    Signature {
        name: "saltutil.kill_job",
        args: &["jid"],
        required: 1,
        kwargs: &[],
        doc: "Kills a running job (its whole process group); the job returns that it was killed.",
    },
    Signature {
        name: "saltutil.running",
        args: &[],
        required: 0,
        kwargs: &[],
        doc: "The jobs running on this minion now.",
    },
    Signature {
        name: "state.apply",
        args: &["mods*"],
        required: 0,
        kwargs: &["pillar", "test"],
        doc: "Applies the named state files (comma-separated or separate), or the highstate \
              without names; test=true only reports what would change; pillar='{\"x\": 1}' \
              is merged over this minion's pillar for this run.",
    },
    Signature {
        name: "state.highstate",
        args: &[],
        required: 0,
        kwargs: &["pillar", "test"],
        doc: "Applies every state file top.sls gives this minion; test=true only reports; \
              pillar='{...}' is merged over the pillar.",
    },
    Signature {
        name: "state.show_sls",
        args: &["mods*"],
        required: 1,
        kwargs: &[],
        doc: "The compiled states of the named state files, without running them.",
    },
    Signature {
        name: "state.sls",
        args: &["mods*"],
        required: 0,
        kwargs: &["pillar", "test"],
        doc: "As state.apply.",
    },
    Signature {
        name: "sys.doc",
        args: &["funs*"],
        required: 0,
        kwargs: &[],
        doc: "What each named function (or every function, or those of a module such as \
              `cmd`) takes and does.",
    },
    Signature {
        name: "sys.list_functions",
        args: &[],
        required: 0,
        kwargs: &[],
        doc: "Every function this minion offers.",
    },
    Signature {
        name: "test.echo",
        args: &["text*"],
        required: 0,
        kwargs: &[],
        doc: "Returns its arguments, joined by spaces.",
    },
    Signature {
        name: "test.ping",
        args: &[],
        required: 0,
        kwargs: &[],
        doc: "Returns true.",
    },
    Signature {
        name: "test.sleep",
        args: &["length"],
        required: 1,
        kwargs: &[],
        doc: "Waits `length` seconds, then returns true.",
    },
    Signature {
        name: "test.version",
        args: &[],
        required: 0,
        kwargs: &[],
        doc: "This minion's version.",
    },
];

/// The signature of `fun`.
pub fn signature(fun: &str) -> Option<&'static Signature> {
    SIGNATURES.iter().find(|s| s.name == fun)
}

impl Signature {
    /// The usage line: `cmd.run CMD [cwd=…] …`.
    pub fn usage(&self) -> String {
        let mut out = self.name.to_owned();
        for (i, a) in self.args.iter().enumerate() {
            let shown = match a.strip_suffix('*') {
                Some(many) => format!("[{}…]", many.to_uppercase()),
                None if i < self.required => a.to_uppercase(),
                None => format!("[{}]", a.to_uppercase()),
            };
            out.push(' ');
            out.push_str(&shown);
        }
        for k in self.kwargs {
            out.push_str(&format!(" [{k}=…]"));
        }
        out
    }

    fn named(&self) -> impl Iterator<Item = &'static str> {
        self.args
            .iter()
            .copied()
            .filter(|a| !a.ends_with('*'))
            .chain(self.kwargs.iter().copied())
    }

    /// Checks a call against the signature: positional arguments given by
    /// name move into their place; an unknown keyword argument, a missing
    /// or extra positional one, or one given twice is an error naming it.
    pub fn bind(
        &self,
        args: &[String],
        kwargs: &BTreeMap<String, String>,
    ) -> Result<(Vec<String>, BTreeMap<String, String>), String> {
        let unknown: Vec<&str> = kwargs
            .keys()
            .map(String::as_str)
            .filter(|k| !self.named().any(|n| n == *k))
            .collect();
        if !unknown.is_empty() {
            let takes: Vec<&str> = self.named().collect();
            let takes = if takes.is_empty() {
                "it takes no keyword arguments".to_owned()
            } else {
                format!("it takes {}", takes.join(", "))
            };
            return Err(format!(
                "{} got unknown keyword argument{} {}; {takes}",
                self.name,
                if unknown.len() > 1 { "s" } else { "" },
                unknown
                    .iter()
                    .map(|k| format!("'{k}'"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ));
        }
        let varargs = self.args.last().is_some_and(|a| a.ends_with('*'));
        let fixed = self.args.len() - usize::from(varargs);
        if !varargs && args.len() > fixed {
            return Err(format!(
                "{} takes at most {fixed} positional argument{} ({} given){}",
                self.name,
                if fixed == 1 { "" } else { "s" },
                args.len(),
                if self.name.starts_with("cmd.") {
                    "; quote the whole command as one argument"
                } else {
                    ""
                },
            ));
        }
        let mut bound: Vec<String> = args.to_vec();
        let mut rest = kwargs.clone();
        for (i, name) in self.args[..fixed].iter().enumerate() {
            if let Some(v) = rest.remove(*name) {
                if i < bound.len() {
                    return Err(format!("{} got '{name}' twice", self.name));
                }
                if i > bound.len() {
                    return Err(format!(
                        "{} got '{name}' but not '{}' before it",
                        self.name,
                        self.args[bound.len()]
                    ));
                }
                bound.push(v);
            }
        }
        let given = if varargs {
            bound.len()
        } else {
            bound.len().min(fixed)
        };
        if given < self.required {
            let missing = self.args[given.min(self.args.len() - 1)].trim_end_matches('*');
            return Err(format!(
                "{} needs argument '{missing}' (usage: {})",
                self.name,
                self.usage()
            ));
        }
        Ok((bound, rest))
    }
}

/// Calls `fun` with its arguments, checked against its signature first.
pub async fn call(
    fun: &str,
    args: &[String],
    kwargs: &BTreeMap<String, String>,
    ctx: &CallContext,
) -> Outcome {
    let Some(sig) = signature(fun) else {
        return Outcome::fail(format!("'{fun}' is not available."), 254);
    };
    let (args, kwargs) = match sig.bind(args, kwargs) {
        Ok(bound) => bound,
        Err(e) => return Outcome::fail(e, 1),
    };
    let (args, kwargs) = (args.as_slice(), &kwargs);
    match fun {
        "test.ping" => test::ping(),
        "test.echo" => test::echo(args),
        "test.sleep" => test::sleep(args).await,
        "test.version" => test::version(),
        "cmd.run" => cmd::run(args, kwargs, ctx).await,
        "cmd.run_all" => cmd::run_all(args, kwargs, ctx).await,
        "cmd.script" => cmd::script(args, kwargs, ctx).await,
        "sys.list_functions" => sys::list_functions(),
        "sys.doc" => sys::doc(args),
        "collect" | "grains.items" => grains::items(ctx).await,
        "grains.item" => grains::item(args, ctx).await,
        "grains.get" => grains::get(args, kwargs, ctx).await,
        "cp.get_file" => cp::get_file(args, kwargs, ctx).await,
        "cp.push" => cp::push(args, kwargs, ctx).await,
        "pillar.items" => pillar::items(ctx).await,
        "pillar.item" => pillar::item(args, ctx).await,
        "pillar.get" => pillar::get(args, kwargs, ctx).await,
        "pillar.refresh" => pillar::refresh(ctx).await,
        "saltutil.running" => saltutil::running(ctx),
        "saltutil.kill_job" => saltutil::kill_job(args, ctx),
        "state.apply" | "state.sls" => state::apply(args, kwargs, ctx).await,
        "state.highstate" => state::highstate(kwargs, ctx).await,
        "state.show_sls" => state::show_sls(args, ctx).await,
        other => Outcome::fail(format!("'{other}' is not available."), 254),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kw(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn bind(fun: &str, args: &[&str], kwargs: &[(&str, &str)]) -> Result<Vec<String>, String> {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        signature(fun)
            .expect("known")
            .bind(&args, &kw(kwargs))
            .map(|(a, _)| a)
    }

    #[test]
    fn signatures_are_sorted_and_unique() {
        let names: Vec<&str> = SIGNATURES.iter().map(|s| s.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
    }

    #[test]
    fn an_unknown_keyword_argument_is_named() {
        let e = bind("cmd.run", &["id"], &[("bogus_kw", "1")]).expect_err("refused");
        assert!(e.contains("'bogus_kw'"), "{e}");
        assert!(e.contains("runas"), "{e}");
        let e = bind("test.ping", &[], &[("x", "1"), ("y", "2")]).expect_err("refused");
        assert!(
            e.contains("arguments 'x', 'y'; it takes no keyword arguments"),
            "{e}"
        );
    }

    #[test]
    fn positional_arguments_may_come_by_name() {
        assert_eq!(
            bind("cmd.run", &[], &[("cmd", "ls")]),
            Ok(vec!["ls".into()])
        );
        assert_eq!(
            bind("grains.get", &["os"], &[("default", "x")]),
            Ok(vec!["os".into(), "x".into()])
        );
        assert!(bind("cmd.run", &["ls"], &[("cmd", "ls")]).is_err());
        assert!(bind("grains.get", &[], &[("default", "x")]).is_err());
    }

    #[test]
    fn missing_and_extra_positional_arguments_are_refused() {
        let e = bind("cmd.run", &[], &[]).expect_err("missing");
        assert!(e.contains("needs argument 'cmd'"), "{e}");
        let e = bind("cmd.run", &["ls", "-l"], &[]).expect_err("extra");
        assert!(e.contains("at most 1 positional argument (2 given)"), "{e}");
        assert!(bind("state.show_sls", &[], &[]).is_err());
        assert_eq!(
            bind("test.echo", &["a", "b", "c"], &[]).map(|a| a.len()),
            Ok(3)
        );
        assert_eq!(bind("grains.get", &["os"], &[]), Ok(vec!["os".into()]));
    }
}
