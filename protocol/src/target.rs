//! Target expressions, with Salt's meaning.
//!
//! - glob: case-sensitive fnmatch on the minion id;
//! - list: exact ids separated by commas;
//! - regex: matched at the start of the id only (Python's `re.match`);
//! - grain: `key:sub:value`, walking nested keys and list elements, with a
//!   case-insensitive glob on the value;
//! - compound: words `G@ E@ L@ P@` and bare globs joined by `and`, `or`,
//!   `not` and parentheses (separate words); `and` binds tighter than `or`.

use std::collections::BTreeSet;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ProtocolError;
use crate::fnmatch;

/// A target expression as the operator wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// fnmatch glob on the id.
    Glob(String),
    /// Exact ids.
    List(Vec<String>),
    /// Regular expression anchored at the start of the id.
    Regex(String),
    /// Grain expression `key:sub:value`.
    Grain(String),
    /// Compound expression.
    Compound(String),
}

impl Target {
    /// A list target from the operator's comma-separated text.
    pub fn list_from(text: &str) -> Target {
        Target::List(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }

    /// Checks the expression and compiles it.
    pub fn matcher(&self) -> Result<Matcher, ProtocolError> {
        match self {
            Target::Glob(p) => Ok(Matcher::Glob(fnmatch::compile(p, false)?)),
            Target::List(ids) => Ok(Matcher::List(ids.iter().cloned().collect())),
            Target::Regex(p) => Ok(Matcher::Regex(compile_regex(p, false)?)),
            Target::Grain(e) => grain_matcher(e, false),
            Target::Compound(e) => compound(e),
        }
    }

    /// The expression text, for display.
    pub fn describe(&self) -> String {
        match self {
            Target::Glob(p) => p.clone(),
            Target::List(ids) => format!("L@{}", ids.join(",")),
            Target::Regex(p) => format!("E@{p}"),
            Target::Grain(e) => format!("G@{e}"),
            Target::Compound(e) => e.clone(),
        }
    }
}

fn compile_regex(p: &str, case_insensitive: bool) -> Result<Regex, ProtocolError> {
    RegexBuilder::new(&format!("^(?:{p})"))
        .case_insensitive(case_insensitive)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| ProtocolError::InvalidTarget {
            expr: p.to_owned(),
            reason: e.to_string(),
        })
}

/// A compiled target.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Glob on the id.
    Glob(Regex),
    /// Exact ids.
    List(BTreeSet<String>),
    /// Regex on the id.
    Regex(Regex),
    /// Grain path and value pattern (one alternative per way to split the
    /// expression into keys and value).
    Grain(Vec<(Vec<String>, Regex)>),
    /// All must match.
    And(Vec<Matcher>),
    /// One must match.
    Or(Vec<Matcher>),
    /// Must not match.
    Not(Box<Matcher>),
}

impl Matcher {
    /// Whether a minion with this id and these facts matches. Grain words
    /// never match when no facts are known.
    pub fn matches(&self, id: &str, grains: Option<&Value>) -> bool {
        match self {
            Matcher::Glob(re) | Matcher::Regex(re) => re.is_match(id),
            Matcher::List(ids) => ids.contains(id),
            Matcher::Grain(alts) => {
                grains.is_some_and(|g| alts.iter().any(|(path, value)| grain_walk(g, path, value)))
            }
            Matcher::And(ms) => ms.iter().all(|m| m.matches(id, grains)),
            Matcher::Or(ms) => ms.iter().any(|m| m.matches(id, grains)),
            Matcher::Not(m) => !m.matches(id, grains),
        }
    }

    /// Whether matching needs the minion's facts.
    pub fn uses_grains(&self) -> bool {
        match self {
            Matcher::Grain(_) => true,
            Matcher::And(ms) | Matcher::Or(ms) => ms.iter().any(Matcher::uses_grains),
            Matcher::Not(m) => m.uses_grains(),
            _ => false,
        }
    }
}

fn grain_walk(v: &Value, path: &[String], pat: &Regex) -> bool {
    match (path.split_first(), v) {
        (None, Value::Array(items)) => items.iter().any(|i| grain_walk(i, path, pat)),
        (None, Value::String(s)) => pat.is_match(s),
        (None, Value::Null | Value::Object(_)) => false,
        (None, other) => pat.is_match(&other.to_string()),
        (Some((k, rest)), Value::Object(map)) => map
            .get(k.as_str())
            .is_some_and(|c| grain_walk(c, rest, pat)),
        (Some(_), Value::Array(items)) => items.iter().any(|i| grain_walk(i, path, pat)),
        (Some(_), _) => false,
    }
}

fn grain_matcher(expr: &str, pcre: bool) -> Result<Matcher, ProtocolError> {
    let parts: Vec<&str> = expr.split(':').collect();
    if parts.len() < 2 || parts[0].is_empty() {
        return Err(ProtocolError::InvalidTarget {
            expr: expr.to_owned(),
            reason: "a grain target needs key:value".into(),
        });
    }
    let mut alts = Vec::new();
    for split in (1..parts.len()).rev() {
        let path = parts[..split].iter().map(|s| (*s).to_owned()).collect();
        let value = parts[split..].join(":");
        let re = if pcre {
            compile_regex(&value, true)?
        } else {
            fnmatch::compile(&value, true)?
        };
        alts.push((path, re));
    }
    Ok(Matcher::Grain(alts))
}

fn compound(expr: &str) -> Result<Matcher, ProtocolError> {
    let words: Vec<&str> = expr.split_whitespace().collect();
    let err = |reason: &str| ProtocolError::InvalidTarget {
        expr: expr.to_owned(),
        reason: reason.to_owned(),
    };
    if words.is_empty() {
        return Err(err("empty compound expression"));
    }
    let mut p = Parser {
        words: &words,
        pos: 0,
        expr,
    };
    let m = p.or()?;
    if p.pos != words.len() {
        return Err(err(&format!("unexpected word {:?}", words[p.pos])));
    }
    Ok(m)
}

struct Parser<'a> {
    words: &'a [&'a str],
    pos: usize,
    expr: &'a str,
}

impl<'a> Parser<'a> {
    fn err(&self, reason: String) -> ProtocolError {
        ProtocolError::InvalidTarget {
            expr: self.expr.to_owned(),
            reason,
        }
    }

    fn peek(&self) -> Option<&'a str> {
        self.words.get(self.pos).copied()
    }

    fn or(&mut self) -> Result<Matcher, ProtocolError> {
        let mut terms = vec![self.and()?];
        while self.peek() == Some("or") {
            self.pos += 1;
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Matcher::Or(terms)
        })
    }

    fn and(&mut self) -> Result<Matcher, ProtocolError> {
        let mut factors = vec![self.factor()?];
        while self.peek() == Some("and") {
            self.pos += 1;
            factors.push(self.factor()?);
        }
        Ok(if factors.len() == 1 {
            factors.remove(0)
        } else {
            Matcher::And(factors)
        })
    }

    fn factor(&mut self) -> Result<Matcher, ProtocolError> {
        let Some(word) = self.peek() else {
            return Err(self.err("expression ends where a term was expected".into()));
        };
        self.pos += 1;
        match word {
            "not" => Ok(Matcher::Not(Box::new(self.factor()?))),
            "(" => {
                let inner = self.or()?;
                if self.peek() != Some(")") {
                    return Err(self.err("unbalanced parenthesis".into()));
                }
                self.pos += 1;
                Ok(inner)
            }
            ")" | "and" | "or" => Err(self.err(format!("unexpected {word:?}"))),
            w => self.word(w),
        }
    }

    fn word(&self, w: &str) -> Result<Matcher, ProtocolError> {
        match w.split_once('@') {
            Some(("G", e)) => grain_matcher(e, false),
            Some(("P", e)) => grain_matcher(e, true),
            Some(("E", e)) => Ok(Matcher::Regex(compile_regex(e, false)?)),
            Some(("L", e)) => Target::list_from(e).matcher(),
            Some((prefix, _))
                if prefix.len() == 1 && prefix.chars().all(|c| c.is_ascii_uppercase()) =>
            {
                Err(self.err(format!("unsupported compound prefix {prefix}@")))
            }
            _ => Ok(Matcher::Glob(fnmatch::compile(w, false)?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(t: Target, id: &str) -> bool {
        t.matcher().expect("valid").matches(id, None)
    }

    #[test]
    fn glob_list_regex() {
        assert!(m(Target::Glob("web*".into()), "web1"));
        assert!(!m(Target::Glob("web*".into()), "db1"));
        assert!(m(Target::list_from("a,b"), "b"));
        assert!(!m(Target::list_from("a,b"), "ab"));
        assert!(
            m(Target::Regex("web[0-9]".into()), "web1x"),
            "anchored at start only"
        );
        assert!(!m(Target::Regex("eb".into()), "web1"));
    }

    #[test]
    fn compound_precedence_and_not() {
        let t = |e: &str| Target::Compound(e.into());
        assert!(m(t("web* and not web2"), "web1"));
        assert!(!m(t("web* and not web2"), "web2"));
        assert!(m(t("db1 or web* and E@.*2"), "db1"), "and binds tighter");
        assert!(!m(t("db1 or web* and E@.*2"), "web1"));
        assert!(m(t("( db1 or web1 ) and L@web1,web2"), "web1"));
        assert!(m(t("not db*"), "web1"));
    }

    #[test]
    fn invalid_expressions_are_errors() {
        for e in [
            "", "web* and", "( web*", "web* )", "X@foo", "E@(", "and web",
        ] {
            assert!(Target::Compound(e.into()).matcher().is_err(), "{e:?}");
        }
        assert!(Target::Regex("(".into()).matcher().is_err());
        assert!(Target::Grain("os".into()).matcher().is_err());
    }

    #[test]
    fn grains_walk_nested_keys_and_lists() {
        let g = json!({"os": "Debian", "ipv4": ["10.0.0.1", "127.0.0.1"],
                       "cpu": {"model": "Xeon Gold"}, "ipv6": ["fe80::1"]});
        let gm = |e: &str| Target::Grain(e.into()).matcher().expect("valid");
        assert!(gm("os:debian").matches("x", Some(&g)));
        assert!(gm("ipv4:10.*").matches("x", Some(&g)));
        assert!(gm("cpu:model:xeon*").matches("x", Some(&g)));
        assert!(gm("ipv6:fe80::1").matches("x", Some(&g)));
        assert!(!gm("os:Ubuntu").matches("x", Some(&g)));
        assert!(!gm("os:debian").matches("x", None));
        let c = Target::Compound("G@os:Debian and web*".into())
            .matcher()
            .expect("valid");
        assert!(c.matches("web1", Some(&g)));
        assert!(c.uses_grains());
    }
}
