//! The master's file server: `cmdb://path` reads from `file_roots`, and
//! `cp.push` writes into the pushing minion's own directory. Paths that are
//! absolute, contain `..`, NUL or a backslash, or that reach outside their
//! root through a symlink are refused.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Largest chunk served or accepted, bytes.
pub const CHUNK: u32 = 1024 * 1024;

pub use states::roots::{FileError, check_relative, resolve};

/// The pillar of minion `id` compiled from `pillar_roots` with its facts
/// `grains`; files are read as `cmdb://` files are, within their roots.
pub fn pillar(
    pillar_roots: &[PathBuf],
    id: &str,
    grains: &serde_json::Value,
) -> Result<serde_json::Value, states::StateError> {
    let read = |rel: &str| -> Result<Option<String>, String> {
        match resolve(pillar_roots, rel) {
            Ok(p) => fs::read_to_string(&p)
                .map(Some)
                .map_err(|e| format!("{}: {e}", p.display())),
            Err(FileError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    };
    states::pillar::compile(&read, id, grains)
}

/// SHA-256 of everything `r` yields.
pub fn hash_reader(r: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().to_vec())
}

/// A chunk read: the bytes, the file's size, and (at offset 0) its SHA-256.
pub type Chunk = (Vec<u8>, u64, Option<Vec<u8>>);

/// Reads up to `len` bytes at `offset`; with offset 0 also the SHA-256 of
/// the whole file.
pub fn read_chunk(path: &Path, offset: u64, len: u32) -> Result<Chunk, FileError> {
    let io = |e: std::io::Error| FileError::Io(format!("{}: {e}", path.display()));
    let mut f = fs::File::open(path).map_err(io)?;
    let size = f.metadata().map_err(io)?.len();
    let hash = if offset == 0 {
        Some(hash_reader(&mut f).map_err(io)?)
    } else {
        None
    };
    f.seek(SeekFrom::Start(offset)).map_err(io)?;
    let mut data = Vec::new();
    f.take(u64::from(len.min(CHUNK)))
        .read_to_end(&mut data)
        .map_err(io)?;
    Ok((data, size, hash))
}

/// Where a minion's pushed file lives: `<base>/<minion>/<rel>`, with no
/// symlink on the way.
pub fn push_target(base: &Path, minion: &str, rel: &str) -> Result<PathBuf, FileError> {
    let clean = check_relative(rel)?;
    let dir = base.join(minion);
    let target = dir.join(&clean);
    let mut cur = base.to_path_buf();
    for part in std::iter::once(Path::new(minion)).chain(clean.iter().map(Path::new)) {
        cur.push(part);
        if fs::symlink_metadata(&cur).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(FileError::Refused(format!(
                "path {rel:?} refused: it crosses a symlink"
            )));
        }
    }
    Ok(target)
}

/// Writes a pushed chunk; offset 0 starts the file anew. Returns the size so
/// far. With the last chunk, checks the SHA-256 (and removes the file when
/// it does not match).
pub fn write_chunk(
    target: &Path,
    offset: u64,
    data: &[u8],
    sha256: Option<&[u8]>,
    max: u64,
) -> Result<u64, FileError> {
    let io = |e: std::io::Error| FileError::Io(format!("{}: {e}", target.display()));
    if offset.saturating_add(data.len() as u64) > max {
        return Err(FileError::Refused(format!(
            "pushed files are limited to {max} bytes"
        )));
    }
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(io)?;
    }
    let mut f = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(offset == 0)
        .open(target)
        .map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    if len != offset {
        return Err(FileError::Refused(format!(
            "chunk at offset {offset} but {len} bytes stored"
        )));
    }
    f.seek(SeekFrom::Start(offset)).map_err(io)?;
    f.write_all(data).map_err(io)?;
    let size = offset + data.len() as u64;
    if let Some(want) = sha256 {
        f.sync_all().map_err(io)?;
        let sum = hash_reader(&mut fs::File::open(target).map_err(io)?).map_err(io)?;
        if sum != want {
            let _ = fs::remove_file(target);
            return Err(FileError::Refused(
                "pushed file does not match its SHA-256".into(),
            ));
        }
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_stay_in_the_minion_directory_and_are_checked() {
        let dir = tempfile::tempdir().expect("tmp");
        let base = dir.path().join("pushed");
        let t = push_target(&base, "web01", "var/log/app.log").expect("target");
        assert!(t.starts_with(base.join("web01")));
        assert!(push_target(&base, "web01", "../web02/x").is_err());
        assert!(push_target(&base, "web01", "/etc/x").is_err());
        fs::create_dir_all(base.join("web01")).expect("mkdir");
        std::os::unix::fs::symlink(dir.path(), base.join("web01/out")).expect("ln");
        assert!(push_target(&base, "web01", "out/x").is_err());
        let sum = Sha256::digest(b"hello world").to_vec();
        assert_eq!(write_chunk(&t, 0, b"hello ", None, 100).expect("w"), 6);
        assert_eq!(
            write_chunk(&t, 6, b"world", Some(&sum), 100).expect("w"),
            11
        );
        assert_eq!(fs::read(&t).expect("r"), b"hello world");
        assert!(write_chunk(&t, 0, b"x", Some(&[0; 32]), 100).is_err());
        assert!(!t.exists(), "a bad file is removed");
        assert!(write_chunk(&t, 0, &[0; 200], None, 100).is_err());
    }
}
