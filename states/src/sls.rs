//! Parsing state files into a flat, ordered list of [`State`]s.
//!
//! Accepted shapes, as in Salt:
//!
//! ```yaml
//! include:
//!   - common
//! nginx:                       # state id; `name` defaults to it
//!   pkg.installed: []          # module.function: [args]
//!   service.running:
//!     - enable: true
//!     - watch:
//!       - file: /etc/nginx/nginx.conf
//! /etc/motd:
//!   file:                      # module: [function, args…]
//!     - managed
//!     - contents: hello
//! ```

use std::collections::BTreeSet;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::error::StateError;
use crate::template::{Renderer, Vars};

/// A state file as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlsFile {
    /// Its path relative to the file roots (`web/nginx/init.sls`).
    pub path: String,
    /// Its text, before rendering.
    pub text: String,
}

/// Reads state files by sls name (`web.nginx` is `web/nginx.sls` or
/// `web/nginx/init.sls`).
pub trait Loader {
    /// The state file `sls`.
    fn load(&self, sls: &str) -> Result<SlsFile, String>;
}

/// The kinds of requisite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ReqKind {
    /// Run after; fail when the target failed.
    Require,
    /// Like require; a change in the target triggers the module's watch action.
    Watch,
    /// Run only when the target changed something.
    Onchanges,
    /// Run only when the target failed.
    Onfail,
    /// Run after; fail only when every target failed.
    RequireAny,
    /// Run only when any target changed (as `onchanges`).
    OnchangesAny,
    /// No ordering; when the target changed, the module's watch action
    /// runs once at the end of the run.
    Listen,
    /// Run before the target, and only when the target (tried in test
    /// mode) would change.
    Prereq,
}

impl ReqKind {
    fn parse(word: &str) -> Option<(ReqKind, bool)> {
        let (base, reverse) = match word.strip_suffix("_in") {
            Some(b) => (b, true),
            None => (word, false),
        };
        let kind = match base {
            "require" => ReqKind::Require,
            "watch" => ReqKind::Watch,
            "onchanges" => ReqKind::Onchanges,
            "onfail" => ReqKind::Onfail,
            "require_any" => ReqKind::RequireAny,
            "onchanges_any" => ReqKind::OnchangesAny,
            "listen" => ReqKind::Listen,
            "prereq" => ReqKind::Prereq,
            _ => return None,
        };
        Some((kind, reverse))
    }

    /// The requisite's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReqKind::Require => "require",
            ReqKind::Watch => "watch",
            ReqKind::Onchanges => "onchanges",
            ReqKind::Onfail => "onfail",
            ReqKind::RequireAny => "require_any",
            ReqKind::OnchangesAny => "onchanges_any",
            ReqKind::Listen => "listen",
            ReqKind::Prereq => "prereq",
        }
    }
}

/// A requisite as written: `- pkg: nginx` (module and id or name), or a
/// bare `- nginx` (any module).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requisite {
    /// The kind.
    pub kind: ReqKind,
    /// The module named, or `None` for any.
    pub module: Option<String>,
    /// The state id or name named.
    pub target: String,
    /// Written as `*_in` on the other state.
    pub reverse: bool,
}

/// One state to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// The state id.
    pub id: String,
    /// The state file it came from.
    pub sls: String,
    /// Line of the id in that file.
    pub line: usize,
    /// Module, e.g. `file`.
    pub module: String,
    /// Function, e.g. `managed`.
    pub function: String,
    /// The `name` argument (the id unless given).
    pub name: String,
    /// The other arguments.
    pub args: Map<String, Value>,
    /// Its requisites (including reversed `_in` ones pointing at it).
    pub requisites: Vec<Requisite>,
    /// Position in declaration order.
    pub index: usize,
}

impl State {
    /// `module.function`.
    pub fn fun(&self) -> String {
        format!("{}.{}", self.module, self.function)
    }

    /// Salt's result key: `module_|-id_|-name_|-function`.
    pub fn key(&self) -> String {
        format!(
            "{}_|-{}_|-{}_|-{}",
            self.module, self.id, self.name, self.function
        )
    }
}

fn top_level_lines(text: &str) -> Vec<(String, usize)> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with([' ', '\t', '#', '-']) && !l.trim().is_empty())
        .map(|(i, l)| {
            let key = l.rsplit_once(':').map(|(k, _)| k).unwrap_or(l);
            let key = key.trim().trim_matches('"').trim_matches('\'');
            (key.to_owned(), i + 1)
        })
        .collect()
}

struct Parser<'a> {
    loader: &'a dyn Loader,
    renderer: &'a Renderer,
    seen: BTreeSet<String>,
    states: Vec<State>,
}

impl Parser<'_> {
    fn file(&mut self, sls: &str) -> Result<(), StateError> {
        if !self.seen.insert(sls.to_owned()) {
            return Ok(());
        }
        let file = self.loader.load(sls).map_err(|reason| StateError::Load {
            file: sls.to_owned(),
            reason,
        })?;
        let text = self.renderer.render(&file.path, &file.text, None)?;
        let lines = top_level_lines(&text);
        let line_of = |id: &str| lines.iter().find(|(k, _)| k == id).map_or(0, |(_, l)| *l);
        let doc: IndexMap<String, Value> = if text.trim().is_empty() {
            IndexMap::new()
        } else {
            serde_saphyr::from_str(&text).map_err(|e| StateError::Syntax {
                file: sls.to_owned(),
                line: 0,
                reason: e.to_string(),
            })?
        };
        for (id, body) in doc {
            let line = line_of(&id);
            if id == "include" {
                let Value::Array(items) = body else {
                    return Err(StateError::Syntax {
                        file: sls.to_owned(),
                        line,
                        reason: "include must be a list of state files".into(),
                    });
                };
                for item in items {
                    let Some(name) = item.as_str() else {
                        return Err(StateError::Syntax {
                            file: sls.to_owned(),
                            line,
                            reason: format!("include entry {item} is not a name"),
                        });
                    };
                    self.file(name)?;
                }
                continue;
            }
            self.declaration(sls, line, &id, body)?;
        }
        Ok(())
    }

    fn declaration(
        &mut self,
        sls: &str,
        line: usize,
        id: &str,
        body: Value,
    ) -> Result<(), StateError> {
        let bad = |reason: String| StateError::Declaration {
            file: sls.to_owned(),
            line,
            id: id.to_owned(),
            reason,
        };
        let Value::Object(body) = body else {
            return Err(bad(
                "a state must be a mapping of module.function to arguments".into(),
            ));
        };
        for (key, args) in body {
            let items = match args {
                Value::Array(items) => items,
                Value::Null => Vec::new(),
                other => {
                    return Err(bad(format!(
                        "arguments of {key} must be a list, not {other}"
                    )));
                }
            };
            let (module, mut function) = match key.split_once('.') {
                Some((m, f)) => (m.to_owned(), Some(f.to_owned())),
                None => (key.clone(), None),
            };
            let mut args = Map::new();
            let mut requisites = Vec::new();
            for item in items {
                match item {
                    Value::String(f) if function.is_none() => function = Some(f),
                    Value::Object(m) if m.len() == 1 => {
                        let Some((k, v)) = m.into_iter().next() else {
                            continue;
                        };
                        if let Some((kind, reverse)) = ReqKind::parse(&k) {
                            requisites.extend(parse_requisites(kind, reverse, v).map_err(&bad)?);
                        } else {
                            args.insert(k, v);
                        }
                    }
                    other => {
                        return Err(bad(format!("argument {other} is not a single key: value")));
                    }
                }
            }
            let function = function.ok_or_else(|| bad(format!("{key} names no function")))?;
            if module.is_empty() || function.is_empty() {
                return Err(bad(format!("{key:?} is not module.function")));
            }
            let names: Vec<String> = match args.remove("names") {
                Some(Value::Array(ns)) => ns
                    .into_iter()
                    .map(|n| {
                        n.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| bad("names must be strings".into()))
                    })
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err(bad("names must be a list".into())),
                None => vec![match args.remove("name") {
                    Some(Value::String(n)) => n,
                    Some(other) => other.to_string(),
                    None => id.to_owned(),
                }],
            };
            for name in names {
                let index = self.states.len();
                self.states.push(State {
                    id: id.to_owned(),
                    sls: sls.to_owned(),
                    line,
                    module: module.clone(),
                    function: function.clone(),
                    name,
                    args: args.clone(),
                    requisites: requisites.clone(),
                    index,
                });
            }
        }
        Ok(())
    }
}

fn parse_requisites(kind: ReqKind, reverse: bool, v: Value) -> Result<Vec<Requisite>, String> {
    let items = match v {
        Value::Array(items) => items,
        other => vec![other],
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::String(target) => Ok(Requisite {
                kind,
                module: None,
                target,
                reverse,
            }),
            Value::Object(m) if m.len() == 1 => {
                let (module, target) = m.into_iter().next().ok_or("empty requisite")?;
                let target = match target {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                Ok(Requisite {
                    kind,
                    module: Some(module),
                    target,
                    reverse,
                })
            }
            other => Err(format!(
                "{} entry {other} must be module: name",
                kind.as_str()
            )),
        })
        .collect()
}

/// Loads `sls_names` (and what they include) into states in declaration
/// order, rendered as templates with no grains, pillar or includes.
pub fn compile(loader: &dyn Loader, sls_names: &[String]) -> Result<Vec<State>, StateError> {
    compile_with(loader, sls_names, &Renderer::new(Vars::default(), None))
}

/// Loads `sls_names` (and what they include) into states in declaration
/// order; each file is rendered by `renderer` before it is parsed.
pub fn compile_with(
    loader: &dyn Loader,
    sls_names: &[String],
    renderer: &Renderer,
) -> Result<Vec<State>, StateError> {
    let mut p = Parser {
        loader,
        renderer,
        seen: BTreeSet::new(),
        states: Vec::new(),
    };
    for name in sls_names {
        p.file(name)?;
    }
    Ok(p.states)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A loader over an in-memory map, for unit tests.
    pub struct MapLoader(pub HashMap<String, String>);

    impl Loader for MapLoader {
        fn load(&self, sls: &str) -> Result<SlsFile, String> {
            self.0
                .get(sls)
                .map(|text| SlsFile {
                    path: format!("{}.sls", sls.replace('.', "/")),
                    text: text.clone(),
                })
                .ok_or_else(|| format!("no state file {sls}"))
        }
    }

    pub fn loader(files: &[(&str, &str)]) -> MapLoader {
        MapLoader(
            files
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn both_shapes_includes_and_requisites() {
        let l = loader(&[
            (
                "common",
                "motd:\n  file.managed:\n    - name: /etc/motd\n    - contents: hi\n",
            ),
            (
                "web",
                "include:\n  - common\nnginx:\n  pkg:\n    - installed\n  service.running:\n    - enable: true\n    - watch:\n      - file: motd\n",
            ),
        ]);
        let states = compile(&l, &["web".into()]).expect("compile");
        let funs: Vec<String> = states.iter().map(State::fun).collect();
        assert_eq!(funs, ["file.managed", "pkg.installed", "service.running"]);
        assert_eq!(states[0].name, "/etc/motd");
        assert_eq!(states[1].name, "nginx");
        assert_eq!(states[2].args["enable"], Value::Bool(true));
        assert_eq!(states[2].requisites[0].kind, ReqKind::Watch);
        assert_eq!(states[2].requisites[0].module.as_deref(), Some("file"));
        assert_eq!(states[1].line, 3);
    }

    #[test]
    fn errors_name_file_line_and_id() {
        let l = loader(&[(
            "bad",
            "ok:\n  cmd.run: []\nbroken:\n  just_a_module:\n    - 3\n",
        )]);
        let err = compile(&l, &["bad".into()]).expect_err("bad").to_string();
        assert!(err.contains("bad, line 3, state \"broken\""), "{err}");
        let l = loader(&[("yaml", "a: [\n")]);
        assert!(
            compile(&l, &["yaml".into()])
                .expect_err("syntax")
                .to_string()
                .starts_with("yaml")
        );
        let l = loader(&[]);
        assert!(compile(&l, &["missing".into()]).is_err());
    }

    #[test]
    fn state_files_are_rendered_before_parsing() {
        let l = loader(&[(
            "web",
            "{% for site in pillar.sites %}\n/srv/{{ site }}:\n  file.directory: []\n{% endfor %}\n{{ grains['id'] }}-motd:\n  file.managed:\n    - name: /etc/motd\n    - contents: {{ grains.id | yaml }}\n",
        )]);
        let vars = Vars {
            grains: serde_json::json!({"id": "web01"}),
            pillar: serde_json::json!({"sites": ["a", "b"]}),
            ..Default::default()
        };
        let states =
            compile_with(&l, &["web".into()], &Renderer::new(vars, None)).expect("compile");
        let ids: Vec<&str> = states.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["/srv/a", "/srv/b", "web01-motd"]);
        assert_eq!(states[2].args["contents"], "web01");

        let err = compile(&l, &["web".into()])
            .expect_err("no pillar")
            .to_string();
        assert!(err.starts_with("web.sls, line 1:"), "{err}");
        assert!(err.contains("undefined"), "{err}");
    }
}
