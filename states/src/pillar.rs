//! Pillar: per-minion data compiled from `pillar_roots`.
//!
//! The pillar `top.sls` maps targets to pillar files with the same
//! matchers as the states top (`glob`, `list`, `pcre`, `grain`,
//! `compound`). Each file is a Jinja template (seeing the minion's
//! `grains`, `opts` and the pillar compiled so far) that renders to a YAML
//! mapping; `include:` pulls in other pillar files first. The mappings are
//! merged in order, nested mappings key by key, later values winning.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::error::StateError;
use crate::template::{Renderer, Vars};

/// Reads a pillar file by path relative to the pillar roots: `Ok(None)`
/// when no root has it.
pub type Read<'a> = &'a dyn Fn(&str) -> Result<Option<String>, String>;

/// Merges `over` into `base`: mappings key by key, anything else replaced.
pub fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

struct Compiler<'a> {
    read: Read<'a>,
    id: &'a str,
    grains: &'a Value,
    seen: BTreeSet<String>,
    pillar: Value,
}

impl Compiler<'_> {
    fn renderer(&self) -> Renderer {
        Renderer::new(
            Vars {
                grains: self.grains.clone(),
                pillar: self.pillar.clone(),
                opts: json!({"id": self.id}),
                saltenv: "base".into(),
            },
            None,
        )
    }

    fn file(&mut self, name: &str) -> Result<(), StateError> {
        if !self.seen.insert(name.to_owned()) {
            return Ok(());
        }
        let load = |reason: String| StateError::Load {
            file: format!("pillar {name}"),
            reason,
        };
        if name.is_empty() || name.contains('/') || name.split('.').any(str::is_empty) {
            return Err(load("not a pillar file name".into()));
        }
        let base = name.replace('.', "/");
        let mut found = None;
        for path in [format!("{base}.sls"), format!("{base}/init.sls")] {
            if let Some(text) = (self.read)(&path).map_err(load)? {
                found = Some((path, text));
                break;
            }
        }
        let (path, text) = found.ok_or_else(|| {
            load(format!(
                "no pillar file {base}.sls or {base}/init.sls in the pillar roots"
            ))
        })?;
        let rendered = self.renderer().render(&path, &text, None)?;
        let doc: Value = if rendered.trim().is_empty() {
            Value::Object(Map::new())
        } else {
            serde_saphyr::from_str(&rendered).map_err(|e| StateError::Syntax {
                file: path.clone(),
                line: 0,
                reason: e.to_string(),
            })?
        };
        let mut doc = match doc {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            other => {
                return Err(StateError::Syntax {
                    file: path,
                    line: 0,
                    reason: format!("a pillar file must be a mapping, not {other}"),
                });
            }
        };
        if let Some(includes) = doc.remove("include") {
            let Value::Array(items) = includes else {
                return Err(StateError::Syntax {
                    file: path,
                    line: 0,
                    reason: "include must be a list of pillar files".into(),
                });
            };
            for item in items {
                let Some(n) = item.as_str() else {
                    return Err(StateError::Syntax {
                        file: path,
                        line: 0,
                        reason: format!("include entry {item} is not a name"),
                    });
                };
                self.file(n)?;
            }
        }
        merge(&mut self.pillar, Value::Object(doc));
        Ok(())
    }
}

/// The pillar of minion `id` with facts `grains` (given an `id` grain when
/// they have none): every file the pillar `top.sls` gives it, merged. No
/// `top.sls` is an empty pillar.
pub fn compile(read: Read<'_>, id: &str, grains: &Value) -> Result<Value, StateError> {
    let mut grains = match grains {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    grains
        .entry("id")
        .or_insert_with(|| Value::String(id.to_owned()));
    let grains = &Value::Object(grains);
    let Some(top) = read("top.sls").map_err(|reason| StateError::Load {
        file: "pillar top.sls".into(),
        reason,
    })?
    else {
        return Ok(Value::Object(Map::new()));
    };
    let mut c = Compiler {
        read,
        id,
        grains,
        seen: BTreeSet::new(),
        pillar: Value::Object(Map::new()),
    };
    let top = c.renderer().render("top.sls", &top, None)?;
    for name in crate::top::states_for(&top, id, Some(grains))? {
        c.file(&name)?;
    }
    Ok(c.pillar)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn reader(files: &[(&str, &str)]) -> impl Fn(&str) -> Result<Option<String>, String> {
        let files: HashMap<String, String> = files
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |p: &str| Ok(files.get(p).cloned())
    }

    #[test]
    fn each_minion_gets_only_what_its_top_gives() {
        let read = reader(&[
            (
                "top.sls",
                "base:\n  '*':\n    - common\n  'web01':\n    - web01\n  'os:Debian':\n    - match: grain\n    - debian\n",
            ),
            (
                "common.sls",
                "ntp: pool.ntp.org\nsite:\n  port: 80\n  name: x\n",
            ),
            (
                "web01/init.sls",
                "include:\n  - shared\nsite:\n  port: 8080\nsecret: {{ grains.id }}-only\n",
            ),
            ("shared.sls", "shared: true\nsite:\n  name: shared\n"),
            ("debian.sls", "pkg_tool: apt\n"),
        ]);
        let g = json!({"os": "Debian"});
        let p = compile(&read, "web01", &g).expect("pillar");
        assert_eq!(
            p,
            json!({"ntp": "pool.ntp.org", "site": {"port": 8080, "name": "shared"},
                   "shared": true, "secret": "web01-only", "pkg_tool": "apt"})
        );
        let p = compile(&read, "web02", &json!({"os": "RedHat"})).expect("pillar");
        assert_eq!(
            p,
            json!({"ntp": "pool.ntp.org", "site": {"port": 80, "name": "x"}})
        );
    }

    #[test]
    fn no_top_is_empty_and_errors_name_the_file() {
        let read = reader(&[]);
        assert_eq!(compile(&read, "a", &json!({})).expect("empty"), json!({}));
        let read = reader(&[
            ("top.sls", "base:\n  '*':\n    - bad\n    - gone\n"),
            ("bad.sls", "x: 1\ny: {{ nope }}\n"),
        ]);
        let e = compile(&read, "a", &json!({})).expect_err("undefined");
        assert!(e.to_string().starts_with("bad.sls, line 2"), "{e}");
        let read = reader(&[("top.sls", "base:\n  '*':\n    - gone\n")]);
        let e = compile(&read, "a", &json!({})).expect_err("missing");
        assert!(e.to_string().contains("gone"), "{e}");
    }

    #[test]
    fn merge_is_deep_and_later_wins() {
        let mut a = json!({"a": {"b": 1, "c": [1]}, "d": 1});
        merge(&mut a, json!({"a": {"c": [2], "e": 3}, "d": {"x": 1}}));
        assert_eq!(a, json!({"a": {"b": 1, "c": [2], "e": 3}, "d": {"x": 1}}));
    }
}
