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

/// What [`decide`] asks the key store to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyWrite {
    /// Nothing.
    None,
    /// The presented key goes into this state.
    Put(KeyState),
    /// The key moves from one state to another.
    Move(KeyState, KeyState),
}

/// Salt's rules for a minion presenting `key`, given what the store holds
/// for its id: rejected stays rejected; an accepted id with the same key is
/// accepted and with another key the new key goes to `denied/`; a pending
/// id with the same key stays pending (or is auto-signed), with another key
/// the new key goes to `denied/`; a new id is auto-rejected, auto-signed or
/// made pending.
pub fn decide(
    rejected: bool,
    accepted: Option<&VerifyingKey>,
    pending: Option<&VerifyingKey>,
    key: &VerifyingKey,
    autosign: bool,
    autoreject: bool,
) -> (AuthDecision, KeyWrite) {
    if rejected {
        return (AuthDecision::Rejected, KeyWrite::None);
    }
    if let Some(accepted) = accepted {
        if accepted == key {
            return (AuthDecision::Accepted, KeyWrite::None);
        }
        return (AuthDecision::Denied, KeyWrite::Put(KeyState::Denied));
    }
    if let Some(pending) = pending {
        if pending != key {
            return (AuthDecision::Denied, KeyWrite::Put(KeyState::Denied));
        }
        if autosign {
            return (
                AuthDecision::Accepted,
                KeyWrite::Move(KeyState::Pending, KeyState::Accepted),
            );
        }
        return (AuthDecision::Pending { new: false }, KeyWrite::None);
    }
    if autoreject {
        return (AuthDecision::Rejected, KeyWrite::Put(KeyState::Rejected));
    }
    if autosign {
        return (AuthDecision::Accepted, KeyWrite::Put(KeyState::Accepted));
    }
    (
        AuthDecision::Pending { new: true },
        KeyWrite::Put(KeyState::Pending),
    )
}

/// A value that changes whenever a minion's accepted key may have changed,
/// read without reading the key: what a cache of accepted keys checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyStamp(pub u64, pub u64, pub i128);

/// Where the master keeps minion keys: the pki directory ([`PkiStore`]),
/// or a database the peers of a master cluster share.
pub trait KeyStore: Send + Sync {
    /// The key of `id` in `state`, if there is one.
    fn get(&self, state: KeyState, id: &MinionId) -> Result<Option<VerifyingKey>, KeyError>;
    /// The states in which `id` has a key.
    fn states_of(&self, id: &MinionId) -> Result<Vec<KeyState>, KeyError>;
    /// Applies Salt's rules ([`decide`]) to a minion presenting `key`.
    fn authorize(
        &self,
        id: &MinionId,
        key: &VerifyingKey,
        autosign: bool,
        autoreject: bool,
    ) -> Result<AuthDecision, KeyError>;
    /// Every id by state, each list sorted.
    fn list(&self) -> Result<KeyListing, KeyError>;
    /// Moves the key of `id` from one state to another.
    fn move_key(&self, id: &MinionId, from: KeyState, to: KeyState) -> Result<(), KeyError>;
    /// Deletes the key of `id` in `state`.
    fn delete(&self, id: &MinionId, state: KeyState) -> Result<(), KeyError>;
    /// A stamp of the accepted key of `id` (`None`: none is accepted) that
    /// changes when the key may have changed.
    fn accepted_stamp(&self, id: &MinionId) -> Result<Option<KeyStamp>, KeyError>;
    /// Where the keys are, for messages.
    fn location(&self) -> String;
    /// A number that changes whenever the set of keys in any state may
    /// have changed, read cheaply: [`KeyStore::list`] need not be read
    /// again while it stays the same.
    fn generation(&self) -> Result<u64, KeyError>;
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
}

impl KeyStore for PkiStore {
    /// The key of `id` in `state`, if there is one.
    fn get(&self, state: KeyState, id: &MinionId) -> Result<Option<VerifyingKey>, KeyError> {
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
    fn states_of(&self, id: &MinionId) -> Result<Vec<KeyState>, KeyError> {
        Ok(KeyState::ALL
            .into_iter()
            .filter(|s| self.path(*s, id).exists())
            .collect())
    }

    fn authorize(
        &self,
        id: &MinionId,
        key: &VerifyingKey,
        autosign: bool,
        autoreject: bool,
    ) -> Result<AuthDecision, KeyError> {
        let rejected = self.path(KeyState::Rejected, id).exists();
        let (accepted, pending) = if rejected {
            (None, None)
        } else {
            (
                self.get(KeyState::Accepted, id)?,
                self.get(KeyState::Pending, id)?,
            )
        };
        let (decision, write) = decide(
            rejected,
            accepted.as_ref(),
            pending.as_ref(),
            key,
            autosign,
            autoreject,
        );
        match write {
            KeyWrite::None => {}
            KeyWrite::Put(state) => write_public(&self.path(state, id), key)?,
            KeyWrite::Move(from, to) => self.move_key(id, from, to)?,
        }
        Ok(decision)
    }

    /// Files whose names are not valid ids are skipped.
    fn list(&self) -> Result<KeyListing, KeyError> {
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
    fn move_key(&self, id: &MinionId, from: KeyState, to: KeyState) -> Result<(), KeyError> {
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
    fn delete(&self, id: &MinionId, state: KeyState) -> Result<(), KeyError> {
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

    fn accepted_stamp(&self, id: &MinionId) -> Result<Option<KeyStamp>, KeyError> {
        use std::os::unix::fs::MetadataExt;
        let path = self.path(KeyState::Accepted, id);
        match fs::metadata(&path) {
            Ok(meta) => Ok(Some(KeyStamp(
                meta.ino(),
                meta.len(),
                i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(KeyError::Io { path, source }),
        }
    }

    /// The state directories' modification times: adding, removing or
    /// renaming a key file changes its directory's. File systems stamp
    /// them with a coarse clock, so a change in the same tick as an earlier
    /// read may leave the time as it was: while a directory changed within
    /// the last two seconds, every read gives a new number.
    fn generation(&self) -> Result<u64, KeyError> {
        use std::hash::{Hash, Hasher};
        let now = std::time::SystemTime::now();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for state in KeyState::ALL {
            let dir = self.root.join(state.dir());
            let modified = fs::metadata(&dir)
                .and_then(|m| m.modified())
                .map_err(io(&dir))?;
            if now
                .duration_since(modified)
                .map_or(true, |age| age < std::time::Duration::from_secs(2))
            {
                now.hash(&mut h);
            }
            modified.hash(&mut h);
        }
        Ok(h.finish())
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }
}

/// What every [`KeyStore`] must do, as checks that panic on a failure:
/// the pki directory's tests and the database engines' tests run them, each
/// scenario on a fresh, empty store from `fresh`.
pub mod conformance {
    use super::*;

    fn id(s: &str) -> MinionId {
        MinionId::new(s).expect("id")
    }

    fn key() -> VerifyingKey {
        crate::file::generate().expect("gen").verifying_key()
    }

    /// Runs every scenario.
    pub fn check(fresh: &mut dyn FnMut() -> Box<dyn KeyStore>) {
        new_key_is_pending_then_accepted(fresh().as_ref());
        accepted_id_with_new_key_is_denied_and_keeps_old_key(fresh().as_ref());
        rejected_stays_rejected_and_autoreject_works(fresh().as_ref());
        delete_and_missing_key_errors(fresh().as_ref());
        the_accepted_stamp_follows_the_accepted_key(fresh().as_ref());
        the_generation_moves_with_every_change(fresh().as_ref());
    }

    fn the_generation_moves_with_every_change(pki: &dyn KeyStore) {
        let m = id("web01");
        let mut seen = vec![pki.generation().expect("generation")];
        let mut changed = |what: &str| {
            let g = pki.generation().expect("generation");
            assert!(!seen.contains(&g), "{what}: generation {g} seen before");
            seen.push(g);
        };
        pki.authorize(&m, &key(), false, false).expect("auth");
        changed("a new pending key");
        pki.move_key(&m, KeyState::Pending, KeyState::Accepted)
            .expect("accept");
        changed("accepted");
        pki.delete(&m, KeyState::Accepted).expect("delete");
        changed("deleted");
    }

    fn new_key_is_pending_then_accepted(pki: &dyn KeyStore) {
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
        assert_eq!(pki.states_of(&m).expect("states"), vec![KeyState::Pending]);
        pki.move_key(&m, KeyState::Pending, KeyState::Accepted)
            .expect("accept");
        assert_eq!(
            pki.authorize(&m, &k, false, false).expect("auth"),
            AuthDecision::Accepted
        );
        assert_eq!(pki.list().expect("list").accepted, vec!["web01"]);
        assert!(pki.list().expect("list").pending.is_empty());
        // A pending key with autosign on is accepted.
        let m2 = id("web02");
        let k2 = key();
        pki.authorize(&m2, &k2, false, false).expect("pending");
        assert_eq!(
            pki.authorize(&m2, &k2, true, false).expect("auth"),
            AuthDecision::Accepted
        );
        assert_eq!(pki.get(KeyState::Accepted, &m2).expect("get"), Some(k2));
    }

    fn accepted_id_with_new_key_is_denied_and_keeps_old_key(pki: &dyn KeyStore) {
        let (old, new) = (key(), key());
        let m = id("web01");
        pki.authorize(&m, &old, true, false).expect("autosign");
        assert_eq!(
            pki.authorize(&m, &new, true, false).expect("auth"),
            AuthDecision::Denied
        );
        assert_eq!(pki.get(KeyState::Accepted, &m).expect("get"), Some(old));
        assert_eq!(pki.get(KeyState::Denied, &m).expect("get"), Some(new));
        assert_eq!(pki.list().expect("list").denied, vec!["web01"]);
        // A denied key moved over the accepted one replaces it.
        pki.delete(&m, KeyState::Accepted).expect("delete");
        pki.move_key(&m, KeyState::Denied, KeyState::Accepted)
            .expect("move");
        assert_eq!(pki.get(KeyState::Accepted, &m).expect("get"), Some(new));
        assert_eq!(pki.states_of(&m).expect("states"), vec![KeyState::Accepted]);
    }

    fn rejected_stays_rejected_and_autoreject_works(pki: &dyn KeyStore) {
        let m = id("bad");
        assert_eq!(
            pki.authorize(&m, &key(), false, true).expect("auth"),
            AuthDecision::Rejected
        );
        assert_eq!(
            pki.authorize(&m, &key(), true, false).expect("auth"),
            AuthDecision::Rejected
        );
        assert_eq!(pki.list().expect("list").rejected, vec!["bad"]);
    }

    fn delete_and_missing_key_errors(pki: &dyn KeyStore) {
        let m = id("x");
        assert!(matches!(
            pki.delete(&m, KeyState::Accepted),
            Err(KeyError::NoSuchKey { .. })
        ));
        assert!(matches!(
            pki.move_key(&m, KeyState::Pending, KeyState::Accepted),
            Err(KeyError::NoSuchKey { .. })
        ));
        pki.authorize(&m, &key(), false, false).expect("auth");
        pki.delete(&m, KeyState::Pending).expect("delete");
        assert!(pki.states_of(&m).expect("states").is_empty());
        assert_eq!(pki.list().expect("list"), KeyListing::default());
    }

    fn the_accepted_stamp_follows_the_accepted_key(pki: &dyn KeyStore) {
        let m = id("web01");
        assert_eq!(pki.accepted_stamp(&m).expect("stamp"), None);
        pki.authorize(&m, &key(), true, false).expect("autosign");
        let first = pki.accepted_stamp(&m).expect("stamp");
        assert!(first.is_some(), "an accepted key has a stamp");
        assert_eq!(pki.accepted_stamp(&m).expect("stamp"), first, "unchanged");
        pki.delete(&m, KeyState::Accepted).expect("delete");
        assert_eq!(pki.accepted_stamp(&m).expect("stamp"), None);
        pki.authorize(&m, &key(), true, false)
            .expect("autosign again");
        let second = pki.accepted_stamp(&m).expect("stamp");
        assert!(second.is_some());
        assert_ne!(second, first, "a new accepted key has a new stamp");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pki_directory_passes_the_key_store_checks() {
        let dirs: std::cell::RefCell<Vec<tempfile::TempDir>> = Default::default();
        conformance::check(&mut || {
            let dir = tempfile::tempdir().expect("tmp");
            let pki = PkiStore::open(dir.path()).expect("open");
            dirs.borrow_mut().push(dir);
            Box::new(pki)
        });
    }
}
