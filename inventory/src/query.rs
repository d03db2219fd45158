//! The query language of `cmdb asset list --where`, `cmdb changes --where`
//! and the API's `q=`.
//!
//! ```text
//! facts.os = Debian and finance.warranty_end < 2027-01-01
//! status in (active, maintenance) and not (site = FRA1 or site = "AMS 2")
//! facts.mem_total_bytes >= 64G and name ~ 'web*'
//! ```
//!
//! A condition is `PATH OP VALUE` with `=`, `!=`, `<`, `<=`, `>`, `>=`,
//! `~` (a glob: `*`, `?`, `[…]`) or `!~`, or `PATH in (V, …)` /
//! `PATH not in (V, …)`. Conditions join with `and` (binding tighter),
//! `or`, `not` and parentheses; keywords are case-insensitive. A path is
//! keys joined by `.` or `:`; a path not found from the asset's top is
//! looked up under `facts`, then `manual`, then `finance`, so `os`,
//! `department` and `warranty_end` work bare. Values are bare words or
//! quoted (`"…"`, `'…'`, with `\` escaping the quote and itself).
//!
//! How values compare:
//! - A value that reads as a number (`64`, `1.5`, `-3`, or with a binary
//!   unit: `10K`, `512M`, `64G`, `2T`, `1P`, also written `64GiB` or
//!   `64GB`, all multiples of 1024) compares as a number with numbers and
//!   with text that reads as a number (amounts such as `"1234.50"`);
//!   whole numbers compare exactly.
//! - A value `YYYY-MM-DD` (or `YYYY-MM-DDTHH:MM[:SS][Z]`) compares in time
//!   with text that starts with a date.
//! - `true`/`false` match booleans.
//! - Otherwise as text: `=`, `!=` and `in` ignore case; `<`, `>` order
//!   naturally (`web2` before `web10`); `~` globs ignore case.
//! - A list matches when one of its items does.
//! - A missing field (or null) matches no positive condition; `!=`, `!~`
//!   and `not in` are the negations of `=`, `~` and `in`, so they match
//!   it.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::fmt;

use chrono::{NaiveDate, NaiveDateTime};
use regex::Regex;
use serde_json::Value;
use thiserror::Error;

/// The longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 4096;
/// The deepest nesting of parentheses and `not`.
pub const MAX_DEPTH: usize = 64;

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `~`
    Glob,
    /// `!~`
    NotGlob,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Glob => "~",
            Op::NotGlob => "!~",
        }
    }
}

/// A query.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Both hold.
    And(Box<Expr>, Box<Expr>),
    /// Either holds.
    Or(Box<Expr>, Box<Expr>),
    /// It does not hold.
    Not(Box<Expr>),
    /// `PATH OP VALUE`.
    Cmp {
        /// The path.
        path: String,
        /// The comparison.
        op: Op,
        /// The value as written (unquoted).
        value: String,
    },
    /// `PATH in (V, …)`, or `not in` when `negated`.
    In {
        /// The path.
        path: String,
        /// The values.
        values: Vec<String>,
        /// `not in`.
        negated: bool,
    },
}

/// Why a query could not be read: the column (1-based, in characters) and
/// what was expected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("column {column}: {message}")]
pub struct QueryError {
    /// Where, counting characters from 1.
    pub column: usize,
    /// What was wrong.
    pub message: String,
}

impl QueryError {
    /// The query with a caret under the column, for a terminal.
    pub fn caret(&self, query: &str) -> String {
        let pad = " ".repeat(self.column.saturating_sub(1));
        format!("  {query}\n  {pad}^")
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Quoted(String),
    LParen,
    RParen,
    Comma,
    Op(Op),
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("{w:?}"),
            Tok::Quoted(q) => format!("the quoted value {q:?}"),
            Tok::LParen => "\"(\"".into(),
            Tok::RParen => "\")\"".into(),
            Tok::Comma => "\",\"".into(),
            Tok::Op(o) => format!("{:?}", o.as_str()),
        }
    }

    fn keyword(&self, k: &str) -> bool {
        matches!(self, Tok::Word(w) if w.eq_ignore_ascii_case(k))
    }
}

fn lex(text: &str) -> Result<Vec<(usize, Tok)>, QueryError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i + 1;
        let err = |message: String| QueryError {
            column: col,
            message,
        };
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push((col, Tok::LParen));
                i += 1;
            }
            ')' => {
                out.push((col, Tok::RParen));
                i += 1;
            }
            ',' => {
                out.push((col, Tok::Comma));
                i += 1;
            }
            '"' | '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(err(format!("the quote {c} is never closed"))),
                        Some('\\') => {
                            match chars.get(i + 1) {
                                Some(n @ ('\\' | '"' | '\'')) => s.push(*n),
                                _ => {
                                    return Err(QueryError {
                                        column: i + 1,
                                        message: "a backslash escapes only \\, \" and '".into(),
                                    });
                                }
                            }
                            i += 2;
                        }
                        Some(q) if *q == c => {
                            i += 1;
                            break;
                        }
                        Some(other) => {
                            s.push(*other);
                            i += 1;
                        }
                    }
                }
                out.push((col, Tok::Quoted(s)));
            }
            '=' => {
                if chars.get(i + 1) == Some(&'=') {
                    return Err(QueryError {
                        column: col + 1,
                        message: "unexpected \"=\": equality is a single =".into(),
                    });
                }
                out.push((col, Tok::Op(Op::Eq)));
                i += 1;
            }
            '!' => match chars.get(i + 1) {
                Some('=') => {
                    out.push((col, Tok::Op(Op::Ne)));
                    i += 2;
                }
                Some('~') => {
                    out.push((col, Tok::Op(Op::NotGlob)));
                    i += 2;
                }
                _ => return Err(err("\"!\" must be followed by = or ~".into())),
            },
            '<' | '>' => {
                let eq = chars.get(i + 1) == Some(&'=');
                let op = match (c, eq) {
                    ('<', false) => Op::Lt,
                    ('<', true) => Op::Le,
                    ('>', false) => Op::Gt,
                    _ => Op::Ge,
                };
                out.push((col, Tok::Op(op)));
                i += if eq { 2 } else { 1 };
            }
            '~' => {
                out.push((col, Tok::Op(Op::Glob)));
                i += 1;
            }
            _ => {
                let start = i;
                while i < chars.len()
                    && !chars[i].is_whitespace()
                    && !matches!(
                        chars[i],
                        '(' | ')' | ',' | '=' | '!' | '<' | '>' | '~' | '"' | '\''
                    )
                {
                    i += 1;
                }
                // A glob's brackets and stars stay in the word.
                out.push((col, Tok::Word(chars[start..i].iter().collect())));
            }
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    pos: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(_, t)| t)
    }

    fn column(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |(c, _)| *c)
    }

    fn found(&self) -> String {
        match self.peek() {
            Some(t) => t.describe(),
            None => "the end of the query".into(),
        }
    }

    fn fail<T>(&self, expected: &str) -> Result<T, QueryError> {
        Err(QueryError {
            column: self.column(),
            message: format!("expected {expected}, found {}", self.found()),
        })
    }

    fn or(&mut self, depth: usize) -> Result<Expr, QueryError> {
        let mut left = self.and(depth)?;
        while self.peek().is_some_and(|t| t.keyword("or")) {
            self.pos += 1;
            let right = self.and(depth)?;
            left = Expr::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Expr, QueryError> {
        let mut left = self.unary(depth)?;
        while self.peek().is_some_and(|t| t.keyword("and")) {
            self.pos += 1;
            let right = self.unary(depth)?;
            left = Expr::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Expr, QueryError> {
        if depth >= MAX_DEPTH {
            return Err(QueryError {
                column: self.column(),
                message: format!("nested deeper than {MAX_DEPTH} levels"),
            });
        }
        match self.peek() {
            Some(t) if t.keyword("not") => {
                self.pos += 1;
                Ok(Expr::Not(Box::new(self.unary(depth + 1)?)))
            }
            Some(Tok::LParen) => {
                self.pos += 1;
                let e = self.or(depth + 1)?;
                match self.peek() {
                    Some(Tok::RParen) => {
                        self.pos += 1;
                        Ok(e)
                    }
                    _ => self.fail("\")\" or and/or"),
                }
            }
            _ => self.condition(),
        }
    }

    fn value(&mut self, after: &str) -> Result<String, QueryError> {
        match self.peek() {
            Some(Tok::Word(w)) if !is_keyword(w) => {
                let w = w.clone();
                self.pos += 1;
                Ok(w)
            }
            Some(Tok::Quoted(q)) => {
                let q = q.clone();
                self.pos += 1;
                Ok(q)
            }
            _ => self.fail(&format!("a value after {after}")),
        }
    }

    fn condition(&mut self) -> Result<Expr, QueryError> {
        let path = match self.peek() {
            Some(Tok::Word(w)) if !is_keyword(w) => w.clone(),
            _ => return self.fail("a field such as facts.os"),
        };
        if path.starts_with(['.', ':']) || path.ends_with(['.', ':']) {
            return Err(QueryError {
                column: self.column(),
                message: format!("{path:?} starts or ends with a separator"),
            });
        }
        self.pos += 1;
        let negated = self.peek().is_some_and(|t| t.keyword("not"));
        if negated {
            self.pos += 1;
            if !self.peek().is_some_and(|t| t.keyword("in")) {
                return self.fail("\"in\" after \"not\"");
            }
        }
        match self.peek() {
            Some(t) if t.keyword("in") => {
                self.pos += 1;
                if self.peek() != Some(&Tok::LParen) {
                    return self.fail("\"(\" after in");
                }
                self.pos += 1;
                let mut values = vec![self.value("\"(\"")?];
                loop {
                    match self.peek() {
                        Some(Tok::Comma) => {
                            self.pos += 1;
                            values.push(self.value("\",\"")?);
                        }
                        Some(Tok::RParen) => {
                            self.pos += 1;
                            break;
                        }
                        _ => return self.fail("\",\" or \")\""),
                    }
                }
                Ok(Expr::In {
                    path,
                    values,
                    negated,
                })
            }
            Some(Tok::Op(op)) => {
                let op = *op;
                self.pos += 1;
                let value = self.value(&format!("{:?}", op.as_str()))?;
                Ok(Expr::Cmp { path, op, value })
            }
            _ => self.fail(&format!(
                "a comparison (=, !=, <, <=, >, >=, ~, !~, in) after {path:?}"
            )),
        }
    }
}

fn is_keyword(w: &str) -> bool {
    ["and", "or", "not", "in"]
        .iter()
        .any(|k| w.eq_ignore_ascii_case(k))
}

/// Reads a query.
pub fn parse(text: &str) -> Result<Expr, QueryError> {
    if text.len() > MAX_QUERY_BYTES {
        return Err(QueryError {
            column: 1,
            message: format!(
                "the query is {} bytes, longer than {MAX_QUERY_BYTES}",
                text.len()
            ),
        });
    }
    let toks = lex(text)?;
    let mut p = Parser {
        toks,
        pos: 0,
        end: text.chars().count() + 1,
    };
    let e = p.or(0)?;
    if p.pos < p.toks.len() {
        return p.fail("and, or or the end of the query");
    }
    Ok(e)
}

fn needs_quotes(v: &str) -> bool {
    v.is_empty()
        || is_keyword(v)
        || v.chars().any(|c| {
            c.is_whitespace()
                || matches!(
                    c,
                    '(' | ')' | ',' | '=' | '!' | '<' | '>' | '~' | '"' | '\'' | '\\'
                )
        })
}

fn quoted(v: &str) -> String {
    if !needs_quotes(v) {
        return v.to_owned();
    }
    let mut s = String::from("\"");
    for c in v.chars() {
        if matches!(c, '"' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Children are parenthesised unless they bind at least as tightly.
        fn side(f: &mut fmt::Formatter<'_>, e: &Expr, bare: bool) -> fmt::Result {
            if bare {
                write!(f, "{e}")
            } else {
                write!(f, "({e})")
            }
        }
        match self {
            Expr::Or(a, b) => {
                side(f, a, true)?;
                f.write_str(" or ")?;
                side(f, b, !matches!(**b, Expr::Or(..)))
            }
            Expr::And(a, b) => {
                side(f, a, !matches!(**a, Expr::Or(..)))?;
                f.write_str(" and ")?;
                side(f, b, !matches!(**b, Expr::Or(..) | Expr::And(..)))
            }
            Expr::Not(e) => {
                f.write_str("not ")?;
                side(
                    f,
                    e,
                    matches!(**e, Expr::Cmp { .. } | Expr::In { .. } | Expr::Not(_)),
                )
            }
            Expr::Cmp { path, op, value } => {
                write!(f, "{path} {} {}", op.as_str(), quoted(value))
            }
            Expr::In {
                path,
                values,
                negated,
            } => {
                let vs: Vec<String> = values.iter().map(|v| quoted(v)).collect();
                let not = if *negated { "not " } else { "" };
                write!(f, "{path} {not}in ({})", vs.join(", "))
            }
        }
    }
}

/// A value of a query read every way it can be.
struct Literal<'a> {
    text: &'a str,
    number: Option<Num>,
    date: Option<NaiveDateTime>,
    boolean: Option<bool>,
}

/// A number: whole ones exact.
#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    fn cmp(self, other: Num) -> Option<Ordering> {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
            (Num::Int(a), Num::Float(b)) => (a as f64).partial_cmp(&b),
            (Num::Float(a), Num::Int(b)) => a.partial_cmp(&(b as f64)),
            (Num::Float(a), Num::Float(b)) => a.partial_cmp(&b),
        }
    }
}

/// A number as written in a query, with an optional binary unit.
fn literal_number(text: &str) -> Option<Num> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    let (digits, mult): (&str, i128) = {
        // Each unit as it may be written: KiB, KB, Ki, K (any case).
        let units: [([&str; 4], i128); 5] = [
            (["kib", "kb", "ki", "k"], 1 << 10),
            (["mib", "mb", "mi", "m"], 1 << 20),
            (["gib", "gb", "gi", "g"], 1 << 30),
            (["tib", "tb", "ti", "t"], 1 << 40),
            (["pib", "pb", "pi", "p"], 1 << 50),
        ];
        let mut found = (lower.as_str(), 1);
        for (suffixes, m) in units {
            for suffix in suffixes {
                if let Some(d) = lower.strip_suffix(suffix)
                    && !d.is_empty()
                {
                    found = (&t[..d.len()], m);
                    break;
                }
            }
            if found.1 != 1 {
                break;
            }
        }
        found
    };
    plain_number(digits).and_then(|n| match n {
        Num::Int(i) => i.checked_mul(mult).map(Num::Int),
        Num::Float(f) => Some(Num::Float(f * mult as f64)),
    })
}

/// A plain decimal number (`12`, `-3`, `1.5`), no exponent.
fn plain_number(t: &str) -> Option<Num> {
    let body = t.strip_prefix('-').unwrap_or(t);
    if body.is_empty()
        || !body.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        || body.bytes().filter(|b| *b == b'.').count() > 1
        || body.starts_with('.')
        || body.ends_with('.')
    {
        return None;
    }
    if body.contains('.') {
        t.parse().ok().map(Num::Float)
    } else {
        t.parse().ok().map(Num::Int)
    }
}

/// A date or date and time at the start of `text`.
fn date_of(text: &str) -> Option<NaiveDateTime> {
    let t = text.trim();
    let day = NaiveDate::parse_from_str(t.get(..10)?, "%Y-%m-%d").ok()?;
    let rest = &t[10..];
    if rest.is_empty() {
        return day.and_hms_opt(0, 0, 0);
    }
    let time = rest.strip_prefix(['T', ' '])?.trim_end_matches('Z');
    for f in ["%H:%M:%S%.f", "%H:%M:%S", "%H:%M"] {
        if let Ok(tm) = chrono::NaiveTime::parse_from_str(time, f) {
            return Some(day.and_time(tm));
        }
    }
    // Text with more after the date (an offset, a zone) compares by day.
    day.and_hms_opt(0, 0, 0)
}

impl<'a> Literal<'a> {
    fn new(text: &'a str) -> Literal<'a> {
        let date = (text.len() >= 10 && text.as_bytes().get(4) == Some(&b'-'))
            .then(|| date_of(text))
            .flatten();
        Literal {
            text,
            number: if date.is_some() {
                None
            } else {
                literal_number(text)
            },
            date,
            boolean: if text.eq_ignore_ascii_case("true") {
                Some(true)
            } else if text.eq_ignore_ascii_case("false") {
                Some(false)
            } else {
                None
            },
        }
    }

    /// How a stored scalar compares with this value, when they compare.
    fn compare(&self, v: &Value) -> Option<Ordering> {
        match v {
            Value::Number(n) => {
                let lit = self.number?;
                let stored = match (n.as_i64(), n.as_u64()) {
                    (Some(i), _) => Num::Int(i128::from(i)),
                    (None, Some(u)) => Num::Int(i128::from(u)),
                    _ => Num::Float(n.as_f64()?),
                };
                stored.cmp(lit)
            }
            Value::Bool(b) => self.boolean.map(|l| b.cmp(&l)),
            Value::String(s) => {
                if let Some(lit) = self.date {
                    return date_of(s).map(|d| d.cmp(&lit));
                }
                if let Some(lit) = self.number
                    && let Some(stored) = plain_number(s.trim())
                {
                    return stored.cmp(lit);
                }
                Some(crate::sort::natural(s, self.text))
            }
            _ => None,
        }
    }

    fn equals(&self, v: &Value) -> bool {
        match v {
            Value::String(s) if self.date.is_none() && self.number.is_none() => {
                s.eq_ignore_ascii_case(self.text)
            }
            Value::String(s) if plain_number(s.trim()).is_none() && date_of(s).is_none() => {
                s.eq_ignore_ascii_case(self.text)
            }
            other => self.compare(other) == Some(Ordering::Equal),
        }
    }
}

/// The scalars a value holds: itself, or the items of a list.
fn scalars(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(items) => items.iter().collect(),
        Value::Null | Value::Object(_) => Vec::new(),
        other => vec![other],
    }
}

/// The top-level keys of an asset's query view.
pub const TOP: &[&str] = &[
    "asset_id",
    "minion",
    "kind",
    "name",
    "status",
    "presence",
    "serial",
    "version",
    "created_ms",
    "last_collect_ms",
    "book_value",
    "facts",
    "manual",
    "finance",
    "relations",
];

/// The value `path` names in an asset's query view: from its top, else
/// under `facts`, `manual`, then `finance`.
pub fn resolve<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    resolve_in(root, path, false)
}

/// [`resolve`], passing over `facts` for a bare path when `skip_facts`
/// (the caller knows no asset has a fact that path could name).
fn resolve_in<'a>(root: &'a Value, path: &str, skip_facts: bool) -> Option<&'a Value> {
    let (first, _) = crate::sort::split_root(path);
    if TOP.contains(&first) {
        return crate::sort::lookup(root, path).filter(|v| !v.is_null());
    }
    let sections: &[&str] = if skip_facts {
        &["manual", "finance"]
    } else {
        &["facts", "manual", "finance"]
    };
    sections.iter().find_map(|section| {
        root.get(*section)
            .and_then(|s| crate::sort::lookup(s, path))
            .filter(|v| !v.is_null())
    })
}

/// The fact names a bare path (one naming no top-level field) could be
/// read from: the whole path, then each part before a `.` or `:` (a fact's
/// own name may hold separators). None for a path under a top-level
/// field.
pub fn fact_names(path: &str) -> Vec<&str> {
    let (first, _) = crate::sort::split_root(path);
    if TOP.contains(&first) {
        return Vec::new();
    }
    std::iter::once(path)
        .chain(
            path.char_indices()
                .filter(|(_, c)| matches!(c, '.' | ':'))
                .map(|(i, _)| &path[..i]),
        )
        .collect()
}

/// What evaluating a query needs besides the asset: its compiled globs,
/// and the bare paths known to name no fact of any asset.
struct Ctx<'q> {
    globs: &'q HashMap<String, Option<Regex>>,
    no_fact: Option<&'q HashSet<String>>,
}

impl Ctx<'_> {
    fn resolve<'a>(&self, root: &'a Value, path: &str) -> Option<&'a Value> {
        resolve_in(root, path, self.no_fact.is_some_and(|n| n.contains(path)))
    }
}

/// A query ready to be evaluated over many assets: its glob patterns
/// compiled once.
#[derive(Debug, Clone)]
pub struct Query {
    expr: Expr,
    globs: HashMap<String, Option<Regex>>,
}

impl Query {
    /// Compiles the patterns of `expr`.
    pub fn new(expr: Expr) -> Query {
        let mut globs = HashMap::new();
        expr.collect_globs(&mut globs);
        Query { expr, globs }
    }

    /// Whether an asset's query view matches.
    pub fn matches(&self, root: &Value) -> bool {
        let ctx = Ctx {
            globs: &self.globs,
            no_fact: None,
        };
        self.expr.eval(root, &ctx)
    }

    /// [`Query::matches`], with `no_fact` the bare paths (as the query
    /// writes them) that name no fact of this asset: those are read from
    /// `manual` and `finance` only, as [`resolve`] would find them anyway.
    /// Listings over many assets give the paths none of them has a fact
    /// for ([`fact_names`]), which saves a lookup among each asset's facts.
    pub fn matches_without_facts(&self, root: &Value, no_fact: &HashSet<String>) -> bool {
        let ctx = Ctx {
            globs: &self.globs,
            no_fact: Some(no_fact),
        };
        self.expr.eval(root, &ctx)
    }

    /// The query.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }
}

impl Expr {
    fn collect_globs(&self, out: &mut HashMap<String, Option<Regex>>) {
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.collect_globs(out);
                b.collect_globs(out);
            }
            Expr::Not(e) => e.collect_globs(out),
            Expr::Cmp {
                op: Op::Glob | Op::NotGlob,
                value,
                ..
            } => {
                out.entry(value.clone())
                    .or_insert_with(|| protocol::fnmatch::compile(value, true).ok());
            }
            _ => {}
        }
    }

    /// Whether an asset's query view matches (compiling its patterns on
    /// each call: over many assets, use [`Query`]).
    pub fn matches(&self, root: &Value) -> bool {
        let mut globs = HashMap::new();
        self.collect_globs(&mut globs);
        let ctx = Ctx {
            globs: &globs,
            no_fact: None,
        };
        self.eval(root, &ctx)
    }

    fn eval(&self, root: &Value, ctx: &Ctx) -> bool {
        match self {
            Expr::And(a, b) => a.eval(root, ctx) && b.eval(root, ctx),
            Expr::Or(a, b) => a.eval(root, ctx) || b.eval(root, ctx),
            Expr::Not(e) => !e.eval(root, ctx),
            Expr::In {
                path,
                values,
                negated,
            } => {
                let found = ctx.resolve(root, path).is_some_and(|v| {
                    let items = scalars(v);
                    values.iter().any(|lit| {
                        let lit = Literal::new(lit);
                        items.iter().any(|item| lit.equals(item))
                    })
                });
                found != *negated
            }
            Expr::Cmp { path, op, value } => {
                let lit = Literal::new(value);
                let items = ctx.resolve(root, path).map(scalars).unwrap_or_default();
                let any = |f: &dyn Fn(&Value) -> bool| items.iter().any(|v| f(v));
                match op {
                    Op::Eq => any(&|v| lit.equals(v)),
                    Op::Ne => !any(&|v| lit.equals(v)),
                    Op::Glob | Op::NotGlob => {
                        let hit = match ctx.globs.get(value) {
                            Some(Some(re)) => any(&|v| match v {
                                Value::String(s) => re.is_match(s),
                                Value::Number(n) => re.is_match(&n.to_string()),
                                Value::Bool(b) => re.is_match(&b.to_string()),
                                _ => false,
                            }),
                            _ => false,
                        };
                        hit == (*op == Op::Glob)
                    }
                    Op::Lt => any(&|v| lit.compare(v) == Some(Ordering::Less)),
                    Op::Le => {
                        any(&|v| matches!(lit.compare(v), Some(Ordering::Less | Ordering::Equal)))
                    }
                    Op::Gt => any(&|v| lit.compare(v) == Some(Ordering::Greater)),
                    Op::Ge => any(&|v| {
                        matches!(lit.compare(v), Some(Ordering::Greater | Ordering::Equal))
                    }),
                }
            }
        }
    }

    /// Every path the query names.
    pub fn paths(&self) -> Vec<&str> {
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => {
                let mut p = a.paths();
                p.extend(b.paths());
                p
            }
            Expr::Not(e) => e.paths(),
            Expr::Cmp { path, .. } | Expr::In { path, .. } => vec![path.as_str()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn paths_known_to_name_no_fact_are_read_from_manual_and_finance() {
        let q = Query::new(parse("department = finance and site ~ ams*").expect("parse"));
        let v = view();
        let none = HashSet::new();
        let no_fact: HashSet<String> = ["department".to_owned(), "site".to_owned()].into();
        assert!(q.matches(&v));
        assert!(q.matches_without_facts(&v, &none));
        assert!(q.matches_without_facts(&v, &no_fact));
        // A fact of that name wins over the manual field; told wrongly that
        // there is none, the query reads the manual field instead.
        let mut shadowed = v.clone();
        shadowed["facts"]["department"] = json!("ops");
        assert!(!q.matches(&shadowed));
        assert!(q.matches_without_facts(&shadowed, &no_fact));
        assert_eq!(fact_names("department"), ["department"]);
        assert_eq!(
            fact_names("gpus.0000:03"),
            ["gpus.0000:03", "gpus", "gpus.0000"]
        );
        assert!(fact_names("facts.os").is_empty());
        assert!(fact_names("manual.site").is_empty());
    }

    fn cmp(path: &str, op: Op, value: &str) -> Expr {
        Expr::Cmp {
            path: path.into(),
            op,
            value: value.into(),
        }
    }

    fn view() -> Value {
        json!({
            "asset_id": "00000000000000a1", "kind": "server", "name": "web10",
            "status": "active", "presence": "online",
            "facts": {"os": "Debian", "mem_total_bytes": 68_719_476_736u64,
                      "ipv4": ["10.0.0.5", "127.0.0.1"], "num_cpus": 8, "virtual": "physical",
                      "big": 18_446_744_073_709_551_615u64},
            "manual": {"site": "AMS 2", "department": "Finance", "business_line": "games", "rack_unit": 12},
            "finance": {"purchase_cost": "1234.50", "warranty_end": "2026-06-30", "purchase_date": "2024-03-15"},
            "relations": {}
        })
    }

    fn q(text: &str) -> bool {
        parse(text)
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .matches(&view())
    }

    #[test]
    fn the_examples_parse_to_their_trees() {
        assert_eq!(
            parse("facts.os = Debian").expect("q"),
            cmp("facts.os", Op::Eq, "Debian")
        );
        assert_eq!(
            parse("status IN (active, maintenance)").expect("q"),
            Expr::In {
                path: "status".into(),
                values: vec!["active".into(), "maintenance".into()],
                negated: false
            }
        );
        assert_eq!(
            parse("a = 1 or b = 2 and not c ~ 'x*'").expect("q"),
            Expr::Or(
                Box::new(cmp("a", Op::Eq, "1")),
                Box::new(Expr::And(
                    Box::new(cmp("b", Op::Eq, "2")),
                    Box::new(Expr::Not(Box::new(cmp("c", Op::Glob, "x*"))))
                ))
            )
        );
        assert_eq!(
            parse(r#"site = "AMS \"2\"""#).expect("q"),
            cmp("site", Op::Eq, "AMS \"2\"")
        );
        assert_eq!(
            parse("facts.gpus.0:vendor>=10").expect("q"),
            cmp("facts.gpus.0:vendor", Op::Ge, "10")
        );
    }

    #[test]
    fn conditions_compare_by_kind_of_value() {
        assert!(q("facts.os = debian"));
        assert!(q("os = DEBIAN and kind != vm"));
        assert!(q("finance.warranty_end < 2027-01-01"));
        assert!(!q("warranty_end < 2026-06-30"));
        assert!(q("warranty_end <= 2026-06-30"));
        assert!(q("purchase_date > 2024-03-14T23:00:00Z"));
        assert!(q("manual.business_line = games"));
        assert!(q("status in (active, maintenance)"));
        assert!(q("status not in (planned, decommissioned)"));
        assert!(q("facts.mem_total_bytes >= 64G"));
        assert!(q("facts.mem_total_bytes = 64GiB"));
        assert!(!q("facts.mem_total_bytes > 64G"));
        assert!(q("mem_total_bytes < 1T"));
        assert!(q("facts.big > 18446744073709551614"));
        assert!(q("purchase_cost > 1000 and purchase_cost < 1234.51"));
        assert!(q("purchase_cost = 1234.5"));
        assert!(!q("name ~ 'WEB*' and not (site = FRA1 or site = 'ams 2')"));
        assert!(q("name ~ 'WEB*' and not (site = FRA1 or site = \"AMS 3\")"));
        assert!(q("name > web9"), "natural order: web10 after web9");
        assert!(q("facts.ipv4 = 10.0.0.5"), "a list matches by any item");
        assert!(q("ipv4 ~ '10.*'"));
        assert!(q("department ~ fin*"));
        assert!(q("num_cpus in (4, 8)"));
        assert!(q("rack_unit >= 12"));
        // Missing fields.
        assert!(!q("owner = alice"));
        assert!(q("owner != alice"));
        assert!(q("owner !~ 'a*'"));
        assert!(q("owner not in (alice)"));
        assert!(!q("owner < zzz"));
        // Objects never match a scalar.
        assert!(!q("facts = x"));
    }

    #[test]
    fn malformed_queries_point_at_their_column() {
        for (text, column, words) in [
            ("os =", 5, "a value after \"=\", found the end"),
            ("(os = a", 8, "\")\""),
            ("os = a)", 7, "and, or or the end"),
            ("os in (a,", 10, "a value after \",\""),
            ("= a", 1, "a field"),
            ("os == a", 5, "single ="),
            ("os = 'abc", 6, "never closed"),
            ("os = a and", 11, "a field"),
            ("os a", 4, "a comparison"),
            ("os not = a", 8, "\"in\" after \"not\""),
            ("os ! a", 4, "\"!\" must be followed"),
            ("", 1, "a field"),
        ] {
            let e = parse(text).expect_err(text);
            assert_eq!(e.column, column, "{text}: {e}");
            assert!(e.message.contains(words), "{text}: {e}");
        }
        let e = parse("os =").expect_err("caret");
        assert_eq!(e.caret("os ="), "  os =\n      ^");
    }

    #[test]
    fn hostile_queries_hit_limits_not_the_stack() {
        let deep = format!("{}a = 1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(
            parse(&deep)
                .expect_err("long")
                .message
                .contains("longer than")
        );
        let deep = format!("{}a = 1{}", "(".repeat(100), ")".repeat(100));
        assert!(
            parse(&deep)
                .expect_err("deep")
                .message
                .contains("deeper than")
        );
        let nots = format!("{}a = 1", "not ".repeat(100));
        assert!(
            parse(&nots)
                .expect_err("nots")
                .message
                .contains("deeper than")
        );
        // A long chain of and is not nesting.
        let chain = vec!["a = 1"; 300].join(" and ");
        assert!(parse(&chain).is_ok());
    }

    fn arb_value() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9_.*:-]{1,8}",
            "[ -~]{0,8}",
            Just("and".to_owned()),
            Just("IN".to_owned()),
            Just("64G".to_owned()),
            Just("2026-01-01".to_owned()),
        ]
    }

    fn arb_path() -> impl Strategy<Value = String> {
        "[a-z_][a-z0-9_]{0,5}([.:][a-z0-9_]{1,5}){0,2}"
            .prop_filter("not a keyword", |p| !is_keyword(p))
    }

    fn arb_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            Just(Op::Eq),
            Just(Op::Ne),
            Just(Op::Lt),
            Just(Op::Le),
            Just(Op::Gt),
            Just(Op::Ge),
            Just(Op::Glob),
            Just(Op::NotGlob)
        ]
    }

    fn arb_expr() -> impl Strategy<Value = Expr> {
        let leaf = prop_oneof![
            (arb_path(), arb_op(), arb_value()).prop_map(|(path, op, value)| Expr::Cmp {
                path,
                op,
                value
            }),
            (
                arb_path(),
                prop::collection::vec(arb_value(), 1..4),
                any::<bool>()
            )
                .prop_map(|(path, values, negated)| Expr::In {
                    path,
                    values,
                    negated
                }),
        ];
        leaf.prop_recursive(5, 32, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Expr::And(Box::new(a), Box::new(b))),
                (inner.clone(), inner.clone())
                    .prop_map(|(a, b)| Expr::Or(Box::new(a), Box::new(b))),
                inner.prop_map(|e| Expr::Not(Box::new(e))),
            ]
        })
    }

    proptest! {
        #[test]
        fn printing_and_reparsing_gives_the_same_tree(e in arb_expr()) {
            let text = e.to_string();
            let back = parse(&text).map_err(|err| TestCaseError::fail(format!("{text}: {err}")))?;
            prop_assert_eq!(back, e, "{}", text);
        }
    }
}
