//! Turning command output bytes into text without losing any of them.

/// Decodes `bytes` as UTF-8; each byte that is not valid UTF-8 becomes the
/// four characters `\xNN` (Python's `backslashreplace`), so non-UTF-8 output
/// stays visible and distinguishable instead of being dropped or replaced.
pub fn backslash_escape(bytes: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(bytes) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(bytes.len() + 16);
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// Splits typed arguments into positional and keyword ones, as Salt does:
/// `name=value` where name is an identifier is a keyword argument.
pub fn split_args(raw: &[String]) -> (Vec<String>, std::collections::BTreeMap<String, String>) {
    let mut args = Vec::new();
    let mut kwargs = std::collections::BTreeMap::new();
    for a in raw {
        match a.split_once('=') {
            Some((k, v))
                if !k.is_empty()
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !k.starts_with(|c: char| c.is_ascii_digit()) =>
            {
                kwargs.insert(k.to_owned(), v.to_owned());
            }
            _ => args.push(a.clone()),
        }
    }
    (args, kwargs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_text_is_unchanged() {
        assert_eq!(backslash_escape("a\"b'é".as_bytes()), "a\"b'é");
    }

    #[test]
    fn invalid_bytes_are_escaped() {
        assert_eq!(backslash_escape(b"a\xffb\xc3"), "a\\xffb\\xc3");
    }

    #[test]
    fn keyword_arguments_are_identifiers_before_equals() {
        let raw: Vec<String> = ["test=true", "echo a=b", "x", "1a=2", "=v"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (args, kwargs) = split_args(&raw);
        assert_eq!(args, vec!["echo a=b", "x", "1a=2", "=v"]);
        assert_eq!(kwargs.get("test").map(String::as_str), Some("true"));
    }
}
