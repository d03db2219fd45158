//! The pinned host keys of SSH hosts, in OpenSSH's known_hosts format
//! (unhashed), at `<state_dir>/ssh_known_hosts`. The ssh client records a
//! host's key on first use (`StrictHostKeyChecking=accept-new`) and refuses
//! a changed one; this module names the fingerprints for the error and
//! forgets a host's key when an operator re-pins it.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine;
use sha2::{Digest, Sha256};

/// OpenSSH's SHA-256 fingerprint of a base64 key blob (`SHA256:…`).
pub fn fingerprint(blob_b64: &str) -> Option<String> {
    let blob = base64::engine::general_purpose::STANDARD
        .decode(blob_b64)
        .ok()?;
    let digest = Sha256::digest(&blob);
    Some(format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
    ))
}

/// Whether a known_hosts line's host field names `host`.
fn names(field: &str, host: &str) -> bool {
    field.split(',').any(|p| p == host)
}

/// The key types (as known_hosts writes them) ssh's word for a key type
/// (`ED25519`, `ECDSA`, `RSA`) stands for.
fn type_matches(known: &str, word: &str) -> bool {
    match word {
        "ED25519" => known == "ssh-ed25519",
        "ECDSA" => known.starts_with("ecdsa-"),
        "RSA" => known == "ssh-rsa",
        _ => true,
    }
}

/// The fingerprint pinned for `host` (as known_hosts names it), of a key
/// of the type ssh named (`ED25519`) when there is one.
pub fn pinned(path: &Path, host: &str, key_word: Option<&str>) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let keys: Vec<(&str, &str)> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (field, kind, blob) = (w.next()?, w.next()?, w.next()?);
            names(field, host).then_some((kind, blob))
        })
        .collect();
    let of_type = keys
        .iter()
        .find(|(k, _)| key_word.is_none_or(|w| type_matches(k, w)));
    of_type
        .or(keys.first())
        .and_then(|(_, blob)| fingerprint(blob))
}

/// What ssh said about the key a host offered: its type word and
/// fingerprint, from the "REMOTE HOST IDENTIFICATION HAS CHANGED" warning.
pub fn offered(stderr: &str) -> Option<(Option<String>, String)> {
    let at = stderr.find("SHA256:")?;
    let fp: String = stderr[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "+/=:".contains(*c))
        .collect();
    let word = stderr
        .split("The fingerprint for the ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned);
    Some((word, fp))
}

/// Forgets every key pinned for `host`; answers the fingerprints removed.
pub fn forget(path: &Path, host: &str) -> std::io::Result<Vec<String>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut kept = String::new();
    let mut removed = Vec::new();
    for line in text.lines() {
        let mut w = line.split_whitespace();
        match (w.next(), w.next(), w.next()) {
            (Some(field), Some(_), Some(blob)) if !line.starts_with('#') && names(field, host) => {
                removed.extend(fingerprint(blob));
            }
            _ => {
                kept.push_str(line);
                kept.push('\n');
            }
        }
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(kept.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    // ssh-keygen -lf of this key prints this fingerprint.
    const BLOB: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

    #[test]
    fn fingerprints_lookups_and_forgetting() {
        let fp = fingerprint(BLOB).expect("fp");
        assert!(fp.starts_with("SHA256:") && fp.len() == 50, "{fp}");
        let dir = tempfile::tempdir().expect("tmp");
        let kh = dir.path().join("kh");
        std::fs::write(
            &kh,
            format!("[127.0.0.1]:2222 ssh-ed25519 {BLOB}\nother,10.0.0.9 ssh-rsa {BLOB}\n# c\n"),
        )
        .expect("write");
        assert_eq!(
            pinned(&kh, "[127.0.0.1]:2222", Some("ED25519")),
            Some(fp.clone())
        );
        assert_eq!(pinned(&kh, "10.0.0.9", None), Some(fp.clone()));
        assert_eq!(pinned(&kh, "127.0.0.1", None), None);
        assert_eq!(forget(&kh, "[127.0.0.1]:2222").expect("forget"), vec![fp]);
        let left = std::fs::read_to_string(&kh).expect("read");
        assert!(
            !left.contains("2222") && left.contains("other,10.0.0.9"),
            "{left}"
        );
    }

    #[test]
    fn the_offered_key_is_read_from_the_warning() {
        let stderr = "@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n\
            IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\n\
            The fingerprint for the ED25519 key sent by the remote host is\n\
            SHA256:abcDEF+/0123.\nPlease contact your system administrator.\n";
        assert_eq!(
            offered(stderr),
            Some((Some("ED25519".into()), "SHA256:abcDEF+/0123".into()))
        );
    }
}
