//! Jinja templating (minijinja) for state files and for `file.managed`
//! with `template: jinja`.
//!
//! Templates see `grains`, `pillar`, `opts`, `saltenv` and a `salt` map of
//! a few execution functions (`salt['pillar.get']('a:b', 'x')`,
//! `salt['grains.get']`). Undefined variables are errors naming the file and
//! line. `{% include %}`, `{% import %}` and `{% from … import %}` read other
//! templates through the same file source as `cmdb://` files, by a path
//! relative to the file roots (or to the including template with `./` and
//! `../`), checked by [`crate::roots::check_relative`].
//!
//! Besides minijinja's built-in filters and tests (`default`, `join`,
//! `lower`, `upper`, `replace`, `first`, `last`, `sort`, `unique`, `tojson`,
//! `in`, …) and Python's string and dict methods (`.get`, `.items`,
//! `.split`, `.startswith`, …), Salt's `yaml`, `json`, `yaml_encode`,
//! `json_encode`, `yaml_dquote`, `to_bool`, `regex_match`, `regex_search`,
//! `regex_replace`, `unique`, `union`, `intersect`, `difference`,
//! `basename`, `dirname`, `quote` and `sequence` are there.

use std::borrow::Cow;
use std::sync::Arc;

use minijinja::value::Value as JValue;
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior, Value as J};
use serde_json::{Map, Value};

use crate::error::StateError;

/// Reads a file from the file roots by relative path (`cmdb://path`
/// without the scheme), shareable with the template engine.
pub type FileFetch = Arc<dyn Fn(&str) -> Result<Vec<u8>, String> + Send + Sync>;

/// The variables every template sees.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Vars {
    /// The minion's facts.
    pub grains: Value,
    /// The minion's pillar.
    pub pillar: Value,
    /// The minion's settings (`id`, `test`, …).
    pub opts: Value,
    /// The state environment (`base`).
    pub saltenv: String,
}

/// Renders Jinja templates with the [`Vars`] of one state run.
pub struct Renderer {
    env: Environment<'static>,
    vars: Vars,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("vars", &self.vars)
            .finish_non_exhaustive()
    }
}

/// `key:sub:0` walked through maps and lists.
pub fn traverse<'a>(value: &'a Value, path: &str, delimiter: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(value);
    }
    path.split(delimiter)
        .try_fold(value, |cur, part| match cur {
            Value::Object(m) => m.get(part),
            Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        })
}

fn json_of(v: &J) -> Result<Value, Error> {
    serde_json::to_value(v).map_err(|e| Error::new(ErrorKind::BadSerialization, e.to_string()))
}

fn lookup_function(data: Value) -> J {
    J::from_function(
        move |key: &str, default: Option<J>, kwargs: minijinja::value::Kwargs| {
            let delimiter: Option<&str> = kwargs.get("delimiter")?;
            kwargs.assert_all_used()?;
            Ok::<J, Error>(match traverse(&data, key, delimiter.unwrap_or(":")) {
                Some(v) => J::from(minijinja::value::Serde(v)),
                None => default.unwrap_or_else(|| J::from("")),
            })
        },
    )
}

fn regex(pattern: &str) -> Result<regex::Regex, Error> {
    regex::Regex::new(pattern).map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))
}

fn truthy(v: &J) -> bool {
    match v.as_str() {
        Some(s) => matches!(
            s.trim().to_ascii_lowercase().as_str(),
            "true" | "yes" | "1" | "on" | "y"
        ),
        None => v.is_true(),
    }
}

fn seq(v: &J) -> Result<Vec<J>, Error> {
    Ok(v.try_iter()?.collect())
}

fn add_filters(env: &mut Environment<'static>) {
    let flow = |v: &J| -> Result<String, Error> {
        serde_json::to_string(&json_of(v)?)
            .map_err(|e| Error::new(ErrorKind::BadSerialization, e.to_string()))
    };
    env.add_filter("yaml", flow);
    env.add_filter("yaml_encode", flow);
    env.add_filter("json", flow);
    env.add_filter("json_encode", flow);
    env.add_filter("yaml_dquote", |v: &str| -> Result<String, Error> {
        serde_json::to_string(v).map_err(|e| Error::new(ErrorKind::BadSerialization, e.to_string()))
    });
    env.add_filter("to_bool", |v: J| truthy(&v));
    env.add_filter(
        "regex_match",
        |v: &str, pattern: &str| -> Result<J, Error> {
            let re = regex(&format!("^(?:{pattern})"))?;
            Ok(captures(&re, v))
        },
    );
    env.add_filter(
        "regex_search",
        |v: &str, pattern: &str| -> Result<J, Error> { Ok(captures(&regex(pattern)?, v)) },
    );
    env.add_filter(
        "regex_replace",
        |v: &str, pattern: &str, repl: &str| -> Result<String, Error> {
            Ok(regex(pattern)?.replace_all(v, repl).into_owned())
        },
    );
    env.add_filter("union", |a: J, b: J| -> Result<J, Error> {
        let mut out = seq(&a)?;
        for x in seq(&b)? {
            if !out.contains(&x) {
                out.push(x);
            }
        }
        let mut unique = Vec::new();
        for x in out {
            if !unique.contains(&x) {
                unique.push(x);
            }
        }
        Ok(J::from(unique))
    });
    env.add_filter("intersect", |a: J, b: J| -> Result<J, Error> {
        let other = seq(&b)?;
        let mut out: Vec<J> = Vec::new();
        for x in seq(&a)? {
            if other.contains(&x) && !out.contains(&x) {
                out.push(x);
            }
        }
        Ok(J::from(out))
    });
    env.add_filter("difference", |a: J, b: J| -> Result<J, Error> {
        let other = seq(&b)?;
        let mut out: Vec<J> = Vec::new();
        for x in seq(&a)? {
            if !other.contains(&x) && !out.contains(&x) {
                out.push(x);
            }
        }
        Ok(J::from(out))
    });
    env.add_filter("basename", |v: &str| {
        std::path::Path::new(v)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    env.add_filter("dirname", |v: &str| {
        std::path::Path::new(v)
            .parent()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    env.add_filter("quote", |v: &str| {
        format!("'{}'", v.replace('\'', "'\"'\"'"))
    });
    env.add_filter("sequence", |v: J| -> J {
        if v.as_str().is_some() || v.try_iter().is_err() {
            J::from(vec![v])
        } else {
            v
        }
    });
    env.add_test("match", |v: &str, pattern: &str| -> Result<bool, Error> {
        Ok(regex(&format!("^(?:{pattern})"))?.is_match(v))
    });
    env.add_test("search", |v: &str, pattern: &str| -> Result<bool, Error> {
        Ok(regex(pattern)?.is_match(v))
    });
}

fn captures(re: &regex::Regex, v: &str) -> J {
    match re.captures(v) {
        None => J::from(()),
        Some(c) => J::from(
            c.iter()
                .skip(1)
                .map(|m| m.map_or(J::from(()), |m| J::from(m.as_str())))
                .collect::<Vec<_>>(),
        ),
    }
}

/// Joins `./x` and `../x` to the directory of the including template;
/// other names are relative to the file roots.
fn join_path<'s>(name: &'s str, parent: &'s str) -> Cow<'s, str> {
    if !(name.starts_with("./") || name.starts_with("../")) {
        return Cow::Borrowed(name);
    }
    let mut parts: Vec<&str> = parent.split('/').collect();
    parts.pop();
    for part in name.split('/') {
        match part {
            "." | "" => {}
            // Climbing above the roots leaves a `..` that the path check refuses.
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    Cow::Owned(parts.join("/"))
}

impl Renderer {
    /// A renderer whose templates see `vars` and include files through
    /// `fetch` (none: includes fail).
    pub fn new(vars: Vars, fetch: Option<FileFetch>) -> Renderer {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
        {
            env.set_syntax(syntax);
        }
        env.set_path_join_callback(join_path);
        env.set_loader(move |name| {
            let clean = crate::roots::check_relative(name)
                .map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
            let Some(fetch) = &fetch else {
                return Ok(None);
            };
            match fetch(&clean.to_string_lossy()) {
                Ok(bytes) => String::from_utf8(bytes).map(Some).map_err(|_| {
                    Error::new(ErrorKind::InvalidOperation, format!("{name} is not UTF-8"))
                }),
                Err(e) => Err(Error::new(
                    ErrorKind::TemplateNotFound,
                    format!("template {name}: {e}"),
                )),
            }
        });
        add_filters(&mut env);
        let mut salt = std::collections::BTreeMap::new();
        salt.insert("pillar.get", lookup_function(vars.pillar.clone()));
        salt.insert("grains.get", lookup_function(vars.grains.clone()));
        let config = {
            let mut merged = vars.opts.as_object().cloned().unwrap_or_default();
            if let Some(p) = vars.pillar.as_object() {
                merged.extend(p.clone());
            }
            Value::Object(merged)
        };
        salt.insert("config.get", lookup_function(config));
        env.add_global("salt", JValue::from(salt));
        Renderer { env, vars }
    }

    /// The variables templates see.
    pub fn vars(&self) -> &Vars {
        &self.vars
    }

    /// Renders `source` (the file `name`, a path relative to the file roots)
    /// with the run's variables and `extra` ones on top. Text that still
    /// holds `{{` after rendering is refused.
    pub fn render(
        &self,
        name: &str,
        source: &str,
        extra: Option<&Map<String, Value>>,
    ) -> Result<String, StateError> {
        let mut ctx = Map::new();
        ctx.insert("grains".into(), self.vars.grains.clone());
        ctx.insert("pillar".into(), self.vars.pillar.clone());
        ctx.insert("opts".into(), self.vars.opts.clone());
        ctx.insert("saltenv".into(), Value::String(self.vars.saltenv.clone()));
        if let Some(extra) = extra {
            ctx.extend(extra.clone());
        }
        let out = self
            .env
            .render_named_str(name, source, J::from(minijinja::value::Serde(&ctx)))
            .map_err(|e| render_error(name, &e))?;
        if let Some(line) = out.lines().position(|l| l.contains("{{")) {
            return Err(StateError::Render {
                file: name.to_owned(),
                line: line + 1,
                reason: "the rendered text still holds \"{{\" (a template that was not rendered); \
                         it is not applied"
                    .into(),
            });
        }
        Ok(out)
    }
}

fn render_error(name: &str, e: &Error) -> StateError {
    let mut reason = match e.kind() {
        ErrorKind::UndefinedError => "undefined variable".to_owned(),
        _ => e.kind().to_string(),
    };
    if let Some(d) = e.detail() {
        reason.push_str(": ");
        reason.push_str(d);
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        reason.push_str(": ");
        reason.push_str(&s.to_string());
        source = s.source();
    }
    StateError::Render {
        file: e.name().unwrap_or(name).to_owned(),
        line: e.line().unwrap_or(0),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn renderer(files: &[(&str, &str)]) -> Renderer {
        let files: std::collections::HashMap<String, String> = files
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let fetch: FileFetch = Arc::new(move |p: &str| {
            files
                .get(p)
                .map(|t| t.clone().into_bytes())
                .ok_or_else(|| format!("no file {p:?} in the file roots"))
        });
        Renderer::new(
            Vars {
                grains: json!({"id": "web01", "os": "Debian", "ip4": ["10.0.0.1", "10.0.0.2"]}),
                pillar: json!({"site": {"port": 8080, "names": ["b", "a", "b"]}}),
                opts: json!({"id": "web01"}),
                saltenv: "base".into(),
            },
            Some(fetch),
        )
    }

    #[test]
    fn grains_pillar_and_salt_filters() {
        let r = renderer(&[]);
        let out = r
            .render(
                "t.sls",
                "{{ grains['id'] }} {{ grains.os | lower }} {{ pillar.site.port }} \
                 {{ pillar.site.names | unique | sort | join(',') }} \
                 {{ pillar.get('none', 'dflt') }} {{ salt['pillar.get']('site:port') }} \
                 {{ salt['pillar.get']('site:missing', 7) }} {{ grains.ip4 | first }} \
                 {{ grains.ip4 | last }} {{ 'a-b' | replace('-', '_') | upper }} \
                 {{ pillar.site | json }} {{ 'x' is in ['x'] }} {{ none_here | default('d') }} \
                 {{ saltenv }} {{ 'yes' | to_bool }} {{ 'v1.2' | regex_replace('[0-9]', 'N') }}\n",
                None,
            )
            .expect("render");
        assert_eq!(
            out,
            "web01 debian 8080 a,b dflt 8080 7 10.0.0.1 10.0.0.2 A_B \
             {\"names\":[\"b\",\"a\",\"b\"],\"port\":8080} True d base True vN.N\n"
        );
    }

    #[test]
    fn an_undefined_variable_names_the_file_and_line() {
        let r = renderer(&[]);
        let e = r
            .render("web/init.sls", "a: 1\nb: {{ nope }}\n", None)
            .expect_err("undefined");
        let text = e.to_string();
        assert!(text.starts_with("web/init.sls, line 2:"), "{text}");
        assert!(text.contains("undefined"), "{text}");
        let e = r
            .render("t.sls", "{{ pillar.site.nope }}", None)
            .expect_err("undefined attribute");
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    #[test]
    fn text_still_holding_braces_is_refused() {
        let r = renderer(&[]);
        let e = r
            .render("t.sls", "ok\n{% raw %}{{ x }}{% endraw %}\n", None)
            .expect_err("refused");
        assert_eq!(
            (e.to_string().split(':').next()),
            Some("t.sls, line 2"),
            "{e}"
        );
    }

    #[test]
    fn includes_and_imports_come_from_the_file_roots() {
        let r = renderer(&[
            (
                "lib/macros.jinja",
                "{% macro port() %}{{ pillar.site.port }}{% endmacro %}",
            ),
            ("web/part.jinja", "part of {{ grains.id }}"),
        ]);
        let out = r
            .render(
                "web/init.sls",
                "{% import 'lib/macros.jinja' as m %}{{ m.port() }} {% include './part.jinja' %}",
                None,
            )
            .expect("render");
        assert_eq!(out, "8080 part of web01");
        for bad in ["../etc/passwd", "/etc/passwd", "./../../x"] {
            let src = format!("{{% include '{bad}' %}}");
            assert!(r.render("web/init.sls", &src, None).is_err(), "{bad}");
        }
        assert!(
            r.render("t", "{% include 'missing.jinja' %}", None)
                .is_err()
        );
    }

    #[test]
    fn extra_context_overrides() {
        let r = renderer(&[]);
        let mut extra = Map::new();
        extra.insert("port".into(), json!(9000));
        assert_eq!(
            r.render("f", "{{ port }}", Some(&extra)).expect("render"),
            "9000"
        );
    }

    #[test]
    fn traverse_walks_maps_and_lists() {
        let v = json!({"a": {"b": [1, {"c": 2}]}});
        assert_eq!(traverse(&v, "a:b:1:c", ":"), Some(&json!(2)));
        assert_eq!(traverse(&v, "a.b.0", "."), Some(&json!(1)));
        assert_eq!(traverse(&v, "a:x", ":"), None);
    }
}
