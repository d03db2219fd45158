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
}
