//! The master's pki store: one public key file per minion id in
//! `accepted/`, `pending/`, `rejected/` or `denied/`, moved between them by
//! atomic renames, with Salt's rules for new and changed keys.

use std::fmt;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;
use protocol::MinionId;

use crate::error::{KeyError, io};
use crate::file::{read_public, write_public};

/// Where a minion key sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyState {
    /// Accepted: the minion may take jobs.
    Accepted,
    /// Waiting for an operator.
    Pending,
    /// Rejected by an operator (or the auto-reject list).
    Rejected,
    /// Put aside because the id is accepted (or pending) with another key.
    Denied,
}

impl KeyState {
    /// Every state, in listing order.
    pub const ALL: [KeyState; 4] = [
        KeyState::Accepted,
        KeyState::Denied,
        KeyState::Pending,
        KeyState::Rejected,
    ];

    /// The directory name of the state.
    pub fn dir(self) -> &'static str {
        match self {
            KeyState::Accepted => "accepted",
            KeyState::Pending => "pending",
            KeyState::Rejected => "rejected",
            KeyState::Denied => "denied",
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.dir())
    }
}

/// The master's answer to a minion presenting a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthDecision {
    /// The key is accepted (now or before).
    Accepted,
    /// The key waits for an operator (newly or still).
    Pending {
        /// Whether this request created the pending entry.
        new: bool,
    },
    /// The id is rejected.
    Rejected,
    /// The id is known with another key; this key was written to `denied/`.
    Denied,
}

/// Minion ids by key state, each sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyListing {
    /// Accepted ids.
    pub accepted: Vec<String>,
    /// Pending ids.
    pub pending: Vec<String>,
    /// Rejected ids.
    pub rejected: Vec<String>,
    /// Denied ids.
    pub denied: Vec<String>,
}

impl KeyListing {
    /// The ids in one state.
    pub fn ids(&self, state: KeyState) -> &[String] {
        match state {
            KeyState::Accepted => &self.accepted,
            KeyState::Pending => &self.pending,
            KeyState::Rejected => &self.rejected,
            KeyState::Denied => &self.denied,
        }
    }
}

/// A pki directory.
#[derive(Debug, Clone)]
pub struct PkiStore {
    root: PathBuf,
}

impl PkiStore {
    /// Opens (and creates, mode 0700) the pki directory and its state folders.
    pub fn open(root: impl Into<PathBuf>) -> Result<PkiStore, KeyError> {
        let root = root.into();
        for state in KeyState::ALL {
            let dir = root.join(state.dir());
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(io(&dir))?;
        }
        Ok(PkiStore { root })
    }

    /// The pki directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The key file of `id` in `state`.
    pub fn path(&self, state: KeyState, id: &MinionId) -> PathBuf {
        self.root.join(state.dir()).join(id.as_str())
    }

    /// The key of `id` in `state`, if there is one.
    pub fn get(&self, state: KeyState, id: &MinionId) -> Result<Option<VerifyingKey>, KeyError> {
        let path = self.path(state, id);
        match read_public(&path) {
            Ok(k) => Ok(Some(k)),
            Err(KeyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The states in which `id` has a key.
    pub fn states_of(&self, id: &MinionId) -> Vec<KeyState> {
        KeyState::ALL
            .into_iter()
            .filter(|s| self.path(*s, id).exists())
            .collect()
    }

    /// Applies Salt's rules to a minion presenting `key`:
    /// rejected stays rejected; an accepted id with the same key is accepted
    /// and with another key the new key goes to `denied/`; a pending id with
    /// the same key stays pending (or is auto-signed), with another key the
    /// new key goes to `denied/`; a new id is auto-rejected, auto-signed or
    /// made pending.
    pub fn authorize(
        &self,
        id: &MinionId,
        key: &VerifyingKey,
        autosign: bool,
        autoreject: bool,
    ) -> Result<AuthDecision, KeyError> {
        if self.path(KeyState::Rejected, id).exists() {
            return Ok(AuthDecision::Rejected);
        }
        if let Some(accepted) = self.get(KeyState::Accepted, id)? {
            if accepted == *key {
                return Ok(AuthDecision::Accepted);
            }
            write_public(&self.path(KeyState::Denied, id), key)?;
            return Ok(AuthDecision::Denied);
        }
        if let Some(pending) = self.get(KeyState::Pending, id)? {
            if pending != *key {
                write_public(&self.path(KeyState::Denied, id), key)?;
                return Ok(AuthDecision::Denied);
            }
            if autosign {
                self.move_key(id, KeyState::Pending, KeyState::Accepted)?;
                return Ok(AuthDecision::Accepted);
            }
            return Ok(AuthDecision::Pending { new: false });
        }
        if autoreject {
            write_public(&self.path(KeyState::Rejected, id), key)?;
            return Ok(AuthDecision::Rejected);
        }
        if autosign {
            write_public(&self.path(KeyState::Accepted, id), key)?;
            return Ok(AuthDecision::Accepted);
        }
        write_public(&self.path(KeyState::Pending, id), key)?;
        Ok(AuthDecision::Pending { new: true })
    }

    /// Lists every id by state. Files whose names are not valid ids are skipped.
    pub fn list(&self) -> Result<KeyListing, KeyError> {
        let mut out = KeyListing::default();
        for state in KeyState::ALL {
            let dir = self.root.join(state.dir());
            let mut ids = Vec::new();
            for entry in fs::read_dir(&dir).map_err(io(&dir))? {
                let entry = entry.map_err(io(&dir))?;
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                if name.starts_with('.') || MinionId::new(name.as_str()).is_err() {
                    continue;
                }
                ids.push(name);
            }
            ids.sort();
            match state {
                KeyState::Accepted => out.accepted = ids,
                KeyState::Pending => out.pending = ids,
                KeyState::Rejected => out.rejected = ids,
                KeyState::Denied => out.denied = ids,
            }
        }
        Ok(out)
    }

    /// Moves the key of `id` from one state to another by rename.
    pub fn move_key(&self, id: &MinionId, from: KeyState, to: KeyState) -> Result<(), KeyError> {
        let src = self.path(from, id);
        if !src.exists() {
            return Err(KeyError::NoSuchKey {
                id: id.to_string(),
                state: from.dir(),
            });
        }
        let dst = self.path(to, id);
        fs::rename(&src, &dst).map_err(io(&dst))
    }

    /// Deletes the key of `id` in `state`.
    pub fn delete(&self, id: &MinionId, state: KeyState) -> Result<(), KeyError> {
        let path = self.path(state, id);
        fs::remove_file(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                KeyError::NoSuchKey {
                    id: id.to_string(),
                    state: state.dir(),
                }
            } else {
                KeyError::Io { path, source: e }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::generate;

    fn id(s: &str) -> MinionId {
        MinionId::new(s).expect("id")
    }

    fn key() -> VerifyingKey {
        generate().expect("gen").verifying_key()
    }

    #[test]
    fn new_key_is_pending_then_accepted() {
        let dir = tempfile::tempdir().expect("tmp");
        let pki = PkiStore::open(dir.path()).expect("open");
        let k = key();
        let m = id("web01");
        assert_eq!(
            pki.authorize(&m, &k, false, false).expect("auth"),
            AuthDecision::Pending { new: true }
        );
        assert_eq!(
            pki.authorize(&m, &k, false, false).expect("auth"),
            AuthDecision::Pending { new: false }
        );
        pki.move_key(&m, KeyState::Pending, KeyState::Accepted)
            .expect("accept");
        assert_eq!(
            pki.authorize(&m, &k, false, false).expect("auth"),
            AuthDecision::Accepted
        );
        assert_eq!(pki.list().expect("list").accepted, vec!["web01"]);
    }

    #[test]
    fn accepted_id_with_new_key_is_denied_and_keeps_old_key() {
        let dir = tempfile::tempdir().expect("tmp");
        let pki = PkiStore::open(dir.path()).expect("open");
        let (old, new) = (key(), key());
        let m = id("web01");
        pki.authorize(&m, &old, true, false).expect("autosign");
        assert_eq!(
            pki.authorize(&m, &new, true, false).expect("auth"),
            AuthDecision::Denied
        );
        assert_eq!(pki.get(KeyState::Accepted, &m).expect("get"), Some(old));
        assert_eq!(pki.get(KeyState::Denied, &m).expect("get"), Some(new));
    }

    #[test]
    fn rejected_stays_rejected_and_autoreject_works() {
        let dir = tempfile::tempdir().expect("tmp");
        let pki = PkiStore::open(dir.path()).expect("open");
        let m = id("bad");
        assert_eq!(
            pki.authorize(&m, &key(), false, true).expect("auth"),
            AuthDecision::Rejected
        );
        assert_eq!(
            pki.authorize(&m, &key(), true, false).expect("auth"),
            AuthDecision::Rejected
        );
    }

    #[test]
    fn delete_and_missing_key_errors() {
        let dir = tempfile::tempdir().expect("tmp");
        let pki = PkiStore::open(dir.path()).expect("open");
        let m = id("x");
        assert!(matches!(
            pki.delete(&m, KeyState::Accepted),
            Err(KeyError::NoSuchKey { .. })
        ));
        pki.authorize(&m, &key(), false, false).expect("auth");
        pki.delete(&m, KeyState::Pending).expect("delete");
        assert!(pki.states_of(&m).is_empty());
    }
}
