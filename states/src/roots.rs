//! File roots: a relative path (as in `cmdb://path`) is looked up in the
//! first root that has it. Paths that are absolute, contain `..`, NUL or a
//! backslash, or that reach outside their root through a symlink are
//! refused. The master's file server and a minion's local calls
//! (`cmdb-minion call --local`) both read through here.

use std::fs;
use std::path::{Component, Path, PathBuf};

/// Why a file request was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum FileError {
    /// The path is not allowed.
    Refused(String),
    /// No such file in any root.
    NotFound(String),
    /// Reading or writing failed.
    Io(String),
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileError::Refused(m) | FileError::NotFound(m) | FileError::Io(m) => f.write_str(m),
        }
    }
}

/// Checks a relative path: no root, no `..`, no NUL or backslash, not empty.
pub fn check_relative(rel: &str) -> Result<PathBuf, FileError> {
    let refuse = |why: &str| FileError::Refused(format!("path {rel:?} refused: {why}"));
    if rel.is_empty() || rel.len() > 4096 {
        return Err(refuse("empty or too long"));
    }
    if rel.contains('\0') || rel.contains('\\') {
        return Err(refuse("contains NUL or a backslash"));
    }
    let p = Path::new(rel);
    let mut clean = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(refuse("contains ..")),
            Component::RootDir | Component::Prefix(_) => return Err(refuse("is absolute")),
        }
    }
    if clean.as_os_str().is_empty() {
        return Err(refuse("names no file"));
    }
    Ok(clean)
}

/// Finds `rel` in the first root that has it, refusing anything that
/// resolves (through symlinks) outside that root.
pub fn resolve(roots: &[PathBuf], rel: &str) -> Result<PathBuf, FileError> {
    let clean = check_relative(rel)?;
    for root in roots {
        let candidate = root.join(&clean);
        if fs::symlink_metadata(&candidate).is_err() {
            continue;
        }
        let (Ok(real_root), Ok(real)) = (root.canonicalize(), candidate.canonicalize()) else {
            continue;
        };
        if !real.starts_with(&real_root) {
            return Err(FileError::Refused(format!(
                "path {rel:?} refused: it leads outside the file roots"
            )));
        }
        if real.is_file() {
            return Ok(real);
        }
    }
    Err(FileError::NotFound(format!(
        "no file {rel:?} in the file roots"
    )))
}

/// Most files one listing returns.
pub const MAX_LISTED: usize = 20_000;

/// A file under a listed directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Path relative to the listed directory, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of its bytes.
    pub sha256: Vec<u8>,
}

/// Every regular file below the directory `rel` of the roots (the first
/// root that has a file wins), sorted by path. Symlinks that lead outside
/// their root are refused; a directory no root has is `NotFound`.
pub fn list(roots: &[PathBuf], rel: &str) -> Result<Vec<Listed>, FileError> {
    use sha2::{Digest, Sha256};
    let clean = check_relative(rel.trim_end_matches('/'))?;
    let io = |p: &Path, e: std::io::Error| FileError::Io(format!("{}: {e}", p.display()));
    let mut out: std::collections::BTreeMap<String, Listed> = std::collections::BTreeMap::new();
    let mut found = false;
    for root in roots {
        let Ok(real_root) = root.canonicalize() else {
            continue;
        };
        let dir = root.join(&clean);
        let Ok(real_dir) = dir.canonicalize() else {
            continue;
        };
        if !real_dir.starts_with(&real_root) {
            return Err(FileError::Refused(format!(
                "path {rel:?} refused: it leads outside the file roots"
            )));
        }
        if !real_dir.is_dir() {
            continue;
        }
        found = true;
        let mut stack = vec![real_dir.clone()];
        while let Some(d) = stack.pop() {
            for entry in fs::read_dir(&d).map_err(|e| io(&d, e))? {
                let entry = entry.map_err(|e| io(&d, e))?;
                let Ok(real) = entry.path().canonicalize() else {
                    continue;
                };
                if !real.starts_with(&real_root) {
                    return Err(FileError::Refused(format!(
                        "{} refused: it leads outside the file roots",
                        entry.path().display()
                    )));
                }
                if real.is_dir() {
                    stack.push(entry.path());
                    continue;
                }
                let Ok(inner) = entry.path().strip_prefix(&real_dir).map(Path::to_path_buf) else {
                    continue;
                };
                let key = inner.to_string_lossy().into_owned();
                if out.contains_key(&key) {
                    continue;
                }
                if out.len() >= MAX_LISTED {
                    return Err(FileError::Refused(format!(
                        "{rel:?} holds more than {MAX_LISTED} files"
                    )));
                }
                let data = fs::read(&real).map_err(|e| io(&real, e))?;
                out.insert(
                    key.clone(),
                    Listed {
                        path: key,
                        size: data.len() as u64,
                        sha256: Sha256::digest(&data).to_vec(),
                    },
                );
            }
        }
    }
    if !found {
        return Err(FileError::NotFound(format!(
            "no directory {rel:?} in the file roots"
        )));
    }
    Ok(out.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_absolute_and_symlinks_out_are_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path().join("srv");
        fs::create_dir_all(root.join("files")).expect("mkdir");
        fs::write(root.join("files/a.txt"), "a").expect("w");
        fs::write(dir.path().join("secret"), "s").expect("w");
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("files/link")).expect("ln");
        std::os::unix::fs::symlink(root.join("files/a.txt"), root.join("files/inside"))
            .expect("ln");
        let roots = vec![root.clone()];
        assert!(resolve(&roots, "files/a.txt").is_ok());
        assert!(
            resolve(&roots, "./files/inside").is_ok(),
            "a link inside the root is fine"
        );
        for bad in [
            "../secret",
            "files/../../secret",
            "/etc/passwd",
            "files/link",
            "a\0b",
            "..\\secret",
            "",
        ] {
            assert!(
                matches!(resolve(&roots, bad), Err(FileError::Refused(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            resolve(&roots, "files/none"),
            Err(FileError::NotFound(_))
        ));
    }

    #[test]
    fn listing_walks_the_roots_and_refuses_links_out() {
        let dir = tempfile::tempdir().expect("tmp");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::create_dir_all(a.join("site/sub")).expect("mkdir");
        fs::create_dir_all(b.join("site")).expect("mkdir");
        fs::write(a.join("site/one"), "1").expect("w");
        fs::write(a.join("site/sub/two"), "22").expect("w");
        fs::write(b.join("site/one"), "other").expect("w");
        fs::write(b.join("site/three"), "333").expect("w");
        let roots = vec![a.clone(), b];
        let got = list(&roots, "site/").expect("list");
        let paths: Vec<(&str, u64)> = got.iter().map(|l| (l.path.as_str(), l.size)).collect();
        assert_eq!(paths, [("one", 1), ("sub/two", 2), ("three", 3)]);
        assert!(matches!(list(&roots, "nope"), Err(FileError::NotFound(_))));
        assert!(matches!(list(&roots, "../a"), Err(FileError::Refused(_))));
        std::os::unix::fs::symlink(dir.path(), a.join("site/out")).expect("ln");
        assert!(matches!(list(&roots, "site"), Err(FileError::Refused(_))));
    }
}
