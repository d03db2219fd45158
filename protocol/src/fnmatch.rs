//! Shell-style wildcards with Python's `fnmatch` semantics, as Salt uses them.
//!
//! `*` matches any run of characters (including none), `?` one character,
//! `[seq]` one character in seq, `[!seq]` one character not in seq. There is
//! no brace expansion and `/` is not special.

use regex::{Regex, RegexBuilder};

use crate::error::ProtocolError;

/// Translates a wildcard pattern into an anchored regular expression source.
pub fn translate(pat: &str) -> String {
    let chars: Vec<char> = pat.chars().collect();
    let n = chars.len();
    let mut out = String::from("^(?s:");
    let mut i = 0;
    while i < n {
        let c = chars[i];
        i += 1;
        match c {
            '*' => {
                if !out.ends_with(".*") {
                    out.push_str(".*");
                }
            }
            '?' => out.push('.'),
            '[' => {
                let mut j = i;
                if j < n && chars[j] == '!' {
                    j += 1;
                }
                if j < n && chars[j] == ']' {
                    j += 1;
                }
                while j < n && chars[j] != ']' {
                    j += 1;
                }
                if j >= n {
                    out.push_str("\\[");
                } else {
                    let stuff = &chars[i..j];
                    i = j + 1;
                    out.push('[');
                    let mut body = stuff;
                    if body.first() == Some(&'!') {
                        out.push('^');
                        body = &body[1..];
                    }
                    push_class_body(&mut out, body);
                    out.push(']');
                }
            }
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out.push_str(")$");
    out
}

fn push_class_body(out: &mut String, body: &[char]) {
    for (k, &c) in body.iter().enumerate() {
        let is_range = c == '-' && k > 0 && k + 1 < body.len() && body[k - 1] != '-';
        if is_range {
            out.push('-');
        } else if c.is_alphanumeric() {
            out.push(c);
        } else {
            out.push('\\');
            out.push(c);
        }
    }
}

/// Compiles a wildcard pattern.
pub fn compile(pat: &str, case_insensitive: bool) -> Result<Regex, ProtocolError> {
    RegexBuilder::new(&translate(pat))
        .case_insensitive(case_insensitive)
        .build()
        .map_err(|e| ProtocolError::InvalidTarget {
            expr: pat.to_owned(),
            reason: e.to_string(),
        })
}

/// Whether `name` matches the wildcard `pat` (case-sensitive). An invalid
/// pattern matches nothing.
pub fn fnmatch(name: &str, pat: &str) -> bool {
    compile(pat, false).is_ok_and(|re| re.is_match(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_semantics() {
        assert!(fnmatch("web01", "web*"));
        assert!(fnmatch("web01", "*"));
        assert!(!fnmatch("Web01", "web*"));
        assert!(fnmatch("web1", "web?"));
        assert!(!fnmatch("web10", "web?"));
        assert!(fnmatch("web1", "web[0-9]"));
        assert!(fnmatch("webx", "web[!0-9]"));
        assert!(!fnmatch("web1", "web[!0-9]"));
        assert!(fnmatch("a]", "a[]]"));
        assert!(fnmatch("a[", "a["));
        assert!(fnmatch("a.b", "a.b"));
        assert!(!fnmatch("axb", "a.b"));
        assert!(fnmatch("a-", "a[-x]"));
        assert!(!fnmatch("web1", "{web1,web2}"));
        assert!(fnmatch("{web1,web2}", "{web1,web2}"));
        assert!(fnmatch("a\\b", "a\\b"));
        assert!(fnmatch("x^", "x[^]"));
    }
}
