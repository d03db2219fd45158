//! Who this minion is: its id (fixed at first start and persisted), its
//! keypair, and the master key it pinned.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use keys::{Fingerprint, SigningKey, VerifyingKey};
use protocol::MinionId;

use crate::config::MinionConfig;
use crate::error::MinionError;

/// The minion's identity and key material.
pub struct Identity {
    /// The minion id.
    pub id: MinionId,
    /// The minion's signing key.
    pub key: SigningKey,
    state_dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> MinionError + '_ {
    move |source| MinionError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The id to use: the configured one, else the one persisted at first start,
/// else the hostname now (then persisted).
pub fn resolve_id(cfg: &MinionConfig) -> Result<MinionId, MinionError> {
    let file = cfg.state_dir.join("minion_id");
    if let Some(id) = &cfg.id {
        let id = MinionId::new(id.as_str())?;
        persist_id(&file, &id)?;
        return Ok(id);
    }
    match fs::read_to_string(&file) {
        Ok(text) => return Ok(MinionId::new(text.trim())?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(&file)(e)),
    }
    let host = hostname::get().map_err(io(Path::new("hostname")))?;
    let id = MinionId::new(host.to_string_lossy().trim())?;
    persist_id(&file, &id)?;
    Ok(id)
}

/// The id `resolve_id` would use, without writing anything.
pub fn peek_id(cfg: &MinionConfig) -> String {
    cfg.id
        .clone()
        .or_else(|| {
            fs::read_to_string(cfg.state_dir.join("minion_id"))
                .ok()
                .map(|t| t.trim().to_owned())
        })
        .or_else(|| {
            hostname::get()
                .ok()
                .map(|h| h.to_string_lossy().trim().to_owned())
        })
        .unwrap_or_else(|| "localhost".into())
}

fn persist_id(file: &Path, id: &MinionId) -> Result<(), MinionError> {
    if fs::read_to_string(file).is_ok_and(|t| t.trim() == id.as_str()) {
        return Ok(());
    }
    fs::write(file, format!("{id}\n")).map_err(io(file))
}

impl Identity {
    /// Loads (or creates on first start) the state directory, id and keys.
    pub fn load(cfg: &MinionConfig) -> Result<Identity, MinionError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&cfg.state_dir)
            .map_err(io(&cfg.state_dir))?;
        let id = resolve_id(cfg)?;
        let key = keys::load_or_create_keypair(
            &cfg.state_dir.join("minion.pem"),
            &cfg.state_dir.join("minion.pub"),
        )?;
        Ok(Identity {
            id,
            key,
            state_dir: cfg.state_dir.clone(),
        })
    }

    fn pinned_path(&self) -> PathBuf {
        self.state_dir.join("minion_master.pub")
    }

    /// The pinned master key, if any.
    pub fn pinned_master(&self) -> Result<Option<VerifyingKey>, MinionError> {
        let path = self.pinned_path();
        if !path.exists() {
            return Ok(None);
        }
        Ok(Some(keys::read_public(&path)?))
    }

    /// Checks a master key against the pinned one or the configured
    /// fingerprint, and pins it when nothing is pinned yet.
    pub fn check_master(
        &self,
        key: &VerifyingKey,
        master_finger: Option<&str>,
    ) -> Result<(), MinionError> {
        let fp = Fingerprint::of(key);
        if let Some(pinned) = self.pinned_master()? {
            if pinned != *key {
                return Err(MinionError::MasterKeyMismatch {
                    got: fp.to_string(),
                    expected: Fingerprint::of(&pinned).to_string(),
                });
            }
            return Ok(());
        }
        if let Some(expected) = master_finger
            && !fp.matches(expected)
        {
            return Err(MinionError::MasterKeyMismatch {
                got: fp.to_string(),
                expected: expected.to_owned(),
            });
        }
        keys::write_public(&self.pinned_path(), key)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path, id: Option<&str>) -> MinionConfig {
        MinionConfig {
            state_dir: dir.to_owned(),
            id: id.map(str::to_owned),
            ..MinionConfig::default()
        }
    }

    #[test]
    fn id_is_persisted_and_reused() {
        let dir = tempfile::tempdir().expect("tmp");
        let first = Identity::load(&cfg(dir.path(), None)).expect("load");
        let again = Identity::load(&cfg(dir.path(), None)).expect("load");
        assert_eq!(first.id, again.id);
        assert_eq!(first.key.to_bytes(), again.key.to_bytes());
        fs::write(dir.path().join("minion_id"), "renamed-host\n").expect("write");
        let later = Identity::load(&cfg(dir.path(), None)).expect("load");
        assert_eq!(later.id.as_str(), "renamed-host");
    }

    #[test]
    fn master_key_is_pinned_then_enforced() {
        let dir = tempfile::tempdir().expect("tmp");
        let ident = Identity::load(&cfg(dir.path(), Some("m1"))).expect("load");
        let a = keys::generate().expect("gen").verifying_key();
        let b = keys::generate().expect("gen").verifying_key();
        ident.check_master(&a, None).expect("pin");
        ident.check_master(&a, None).expect("same");
        assert!(ident.check_master(&b, None).is_err());
    }

    #[test]
    fn configured_fingerprint_is_checked() {
        let dir = tempfile::tempdir().expect("tmp");
        let ident = Identity::load(&cfg(dir.path(), Some("m1"))).expect("load");
        let a = keys::generate().expect("gen").verifying_key();
        assert!(ident.check_master(&a, Some("00:11")).is_err());
        let fp = Fingerprint::of(&a).to_string();
        ident.check_master(&a, Some(&fp)).expect("match");
    }
}
