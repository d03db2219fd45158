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
}
