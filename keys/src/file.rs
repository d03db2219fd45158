//! Key files.
//!
//! A public key file holds `ed25519:` and the base64 of the 32 key bytes on
//! one line; a private key file holds `ed25519-private:` and the base64 of the
//! 32-byte seed, with mode 0600. Files are written to a temporary name in the
//! same directory and renamed into place.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::error::{KeyError, io};

const PUBLIC_TAG: &str = "ed25519:";
const PRIVATE_TAG: &str = "ed25519-private:";

/// Makes a new random keypair.
pub fn generate() -> Result<SigningKey, KeyError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Encodes a public key as the text stored in key files.
pub fn public_to_text(key: &VerifyingKey) -> String {
    format!("{PUBLIC_TAG}{}\n", STANDARD.encode(key.as_bytes()))
}

/// Parses the text of a public key file.
pub fn public_from_text(text: &str, path: &Path) -> Result<VerifyingKey, KeyError> {
    let bad = |reason| KeyError::BadKeyFile {
        path: path.to_owned(),
        reason,
    };
    let b64 = text
        .trim()
        .strip_prefix(PUBLIC_TAG)
        .ok_or_else(|| bad("missing ed25519: tag"))?;
    let bytes = STANDARD.decode(b64).map_err(|_| bad("bad base64"))?;
    let arr: [u8; 32] = bytes.try_into().map_err(|_| bad("wrong length"))?;
    VerifyingKey::from_bytes(&arr).map_err(|_| bad("not a curve point"))
}

fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), KeyError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("key")
    ));
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(contents).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

/// Writes a public key file (mode 0644).
pub fn write_public(path: &Path, key: &VerifyingKey) -> Result<(), KeyError> {
    write_atomic(path, public_to_text(key).as_bytes(), 0o644)
}

/// Reads a public key file.
pub fn read_public(path: &Path) -> Result<VerifyingKey, KeyError> {
    let text = fs::read_to_string(path).map_err(io(path))?;
    public_from_text(&text, path)
}

/// Writes a private key file (mode 0600).
pub fn write_private(path: &Path, key: &SigningKey) -> Result<(), KeyError> {
    let text = format!("{PRIVATE_TAG}{}\n", STANDARD.encode(key.to_bytes()));
    write_atomic(path, text.as_bytes(), 0o600)
}

/// Reads a private key file, refusing one that others can read.
pub fn read_private(path: &Path) -> Result<SigningKey, KeyError> {
    let meta = fs::metadata(path).map_err(io(path))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::InsecurePermissions {
            path: path.to_owned(),
            mode,
        });
    }
    let text = fs::read_to_string(path).map_err(io(path))?;
    let bad = |reason| KeyError::BadKeyFile {
        path: path.to_owned(),
        reason,
    };
    let b64 = text
        .trim()
        .strip_prefix(PRIVATE_TAG)
        .ok_or_else(|| bad("missing ed25519-private: tag"))?;
    let bytes = STANDARD.decode(b64).map_err(|_| bad("bad base64"))?;
    let seed: [u8; 32] = bytes.try_into().map_err(|_| bad("wrong length"))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Loads the keypair at `private`/`public`, or makes and saves a new one when
/// neither file exists.
pub fn load_or_create_keypair(private: &Path, public: &Path) -> Result<SigningKey, KeyError> {
    if private.exists() {
        let key = read_private(private)?;
        if !public.exists() {
            write_public(public, &key.verifying_key())?;
        }
        return Ok(key);
    }
    let key = generate()?;
    write_private(private, &key)?;
    write_public(public, &key.verifying_key())?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_private_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (pv, pb) = (dir.path().join("k.pem"), dir.path().join("k.pub"));
        let k = load_or_create_keypair(&pv, &pb).expect("create");
        let mode = fs::metadata(&pv).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_public(&pb).expect("pub"), k.verifying_key());
        let again = load_or_create_keypair(&pv, &pb).expect("load");
        assert_eq!(again.to_bytes(), k.to_bytes());
    }

    #[test]
    fn readable_private_key_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pv = dir.path().join("k.pem");
        write_private(&pv, &generate().expect("gen")).expect("write");
        fs::set_permissions(&pv, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            read_private(&pv),
            Err(KeyError::InsecurePermissions { .. })
        ));
    }

    #[test]
    fn garbage_public_key_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x");
        fs::write(&p, "hello").expect("write");
        assert!(matches!(read_public(&p), Err(KeyError::BadKeyFile { .. })));
    }
}
