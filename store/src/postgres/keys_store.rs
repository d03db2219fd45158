//! Minion keys in PostgreSQL ([`keys::KeyStore`]): what the peers of a
//! master cluster share, so a key accepted on one peer is accepted on all.
//!
//! Table `minion_keys` holds one row per id and state; every change bumps
//! the one-row counter `keys_version` in the same transaction and stamps
//! the rows it writes with it. A peer checks accepted keys against a
//! snapshot of the accepted rows, read again when the counter moved and
//! at most once per [`SNAPSHOT_TTL`]: a key deleted or replaced on one peer
//! stops working on the others within that time. A peer's own changes go
//! into its snapshot as it makes them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keys::{AuthDecision, KeyError, KeyListing, KeyStamp, KeyState, KeyStore, KeyWrite};
use protocol::MinionId;

use super::Conn;
use crate::StoreError;

/// How long a snapshot of the accepted keys serves before the counter is
/// read again.
pub const SNAPSHOT_TTL: Duration = Duration::from_secs(1);

/// Advisory lock class of one id's keys.
const KEY_LOCK: i32 = 0x636d_6402;

/// The accepted keys as last read.
#[derive(Default)]
struct Snapshot {
    /// When it was read (none: never).
    read_at: Option<Instant>,
    /// The counter it was read at.
    version: i64,
    /// Accepted id -> the counter of its row's last change.
    accepted: HashMap<String, i64>,
}

/// [`KeyStore`] on a PostgreSQL database (see the module).
pub struct PgKeys {
    /// The connections, shared with the store.
    conn: Arc<Conn>,
    /// The accepted keys' stamps.
    snapshot: Mutex<Snapshot>,
}

fn state_name(s: KeyState) -> &'static str {
    s.dir()
}

fn state_of(name: &str) -> Option<KeyState> {
    KeyState::ALL.into_iter().find(|s| s.dir() == name)
}

impl PgKeys {
    pub(crate) fn new(conn: Arc<Conn>) -> PgKeys {
        PgKeys {
            conn,
            snapshot: Mutex::new(Snapshot::default()),
        }
    }

    fn key_err(&self, e: StoreError) -> KeyError {
        KeyError::Store {
            location: self.conn.shown.clone(),
            reason: match e {
                StoreError::Engine(m) | StoreError::Refused(m) | StoreError::Precondition(m) => m,
                StoreError::Open { reason, .. } => reason,
            },
        }
    }

    fn run<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, KeyError> {
        self.conn.run(f).map_err(|e| self.key_err(e))
    }

    /// Records this peer's own change of `id`'s accepted key in the
    /// snapshot (`Some(stamp)`: accepted now, `None`: not accepted), so it
    /// counts at once; the others' changes come with the next read.
    /// Reading every accepted key again after each local change instead
    /// would, while a fleet is being accepted, read them all once per
    /// minion, each read holding up every request that checks a key.
    fn note_accepted(&self, id: &MinionId, stamp: Option<i64>) {
        let mut snap = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        match stamp {
            Some(v) => snap.accepted.insert(id.as_str().to_owned(), v),
            None => snap.accepted.remove(id.as_str()),
        };
    }

    /// One change of `id`'s keys in a transaction holding its lock: `f`
    /// gets the rows (state, key) and returns what it decided and the
    /// changes to make. Only a change touching an accepted key moves the
    /// counter (new pending or denied keys, which anyone can cause, do not
    /// make every peer read the accepted keys again).
    fn change<T>(
        &self,
        id: &MinionId,
        f: impl FnOnce(&[(KeyState, keys::VerifyingKey)]) -> Result<(T, Vec<Change>), KeyError>,
    ) -> Result<T, KeyError> {
        let c = &self.conn;
        let outcome = self.conn.run(async {
            let mut client = c.client().await?;
            let tx = c.begin(&mut client).await?;
            tx.exec(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                &[&KEY_LOCK, &id.as_str()],
            )
            .await?;
            let present = key_rows(c, tx.rows(KEYS_OF, &[&id.as_str()]).await?)?;
            let (out, changes) = match f(&present) {
                Ok(v) => v,
                Err(e) => return Ok(Err(e)),
            };
            // Whether the changes leave the id with an accepted key, when
            // they touch one at all (none: the snapshot stays as it is).
            let accepted_after = changes.iter().fold(None, |after, ch| match ch {
                Change::Put(KeyState::Accepted, _) | Change::Move(_, KeyState::Accepted) => {
                    Some(true)
                }
                Change::Delete(KeyState::Accepted) | Change::Move(KeyState::Accepted, _) => {
                    Some(false)
                }
                _ => after,
            });
            let accepted = accepted_after.is_some();
            let mut noted: Option<Option<i64>> = None;
            if !changes.is_empty() {
                // `changes` moves with every change, `version` with those
                // of accepted keys.
                let step: i64 = accepted.into();
                let counted: i64 = tx
                    .rows(
                        "UPDATE keys_version SET version = version + $1, changes = changes + 1 \
                         RETURNING version",
                        &[&step],
                    )
                    .await?
                    .first()
                    .map(|r| r.try_get(0))
                    .transpose()
                    .map_err(|e| c.err(e))?
                    .unwrap_or(0);
                let v: i64 = if accepted { counted } else { 0 };
                noted = accepted_after.map(|after| after.then_some(v));
                for ch in changes {
                    match ch {
                        Change::Put(state, key) => {
                            tx.exec(
                                "INSERT INTO minion_keys (id, state, key, changed) \
                                 VALUES ($1, $2, $3, $4) ON CONFLICT (id, state) \
                                 DO UPDATE SET key = EXCLUDED.key, changed = EXCLUDED.changed",
                                &[&id.as_str(), &state_name(state), &key.as_slice(), &v],
                            )
                            .await?;
                        }
                        Change::Move(from, to) => {
                            tx.exec(
                                "DELETE FROM minion_keys WHERE id = $1 AND state = $2",
                                &[&id.as_str(), &state_name(to)],
                            )
                            .await?;
                            tx.exec(
                                "UPDATE minion_keys SET state = $3, changed = $4 \
                                 WHERE id = $1 AND state = $2",
                                &[&id.as_str(), &state_name(from), &state_name(to), &v],
                            )
                            .await?;
                        }
                        Change::Delete(state) => {
                            tx.exec(
                                "DELETE FROM minion_keys WHERE id = $1 AND state = $2",
                                &[&id.as_str(), &state_name(state)],
                            )
                            .await?;
                        }
                    }
                }
            }
            tx.commit().await?;
            Ok(Ok((out, noted)))
        });
        // Only an accepted key's change touches the snapshot: a minion
        // presenting its accepted key again changes nothing.
        let (out, noted) = outcome.map_err(|e| self.key_err(e))??;
        if let Some(stamp) = noted {
            self.note_accepted(id, stamp);
        }
        Ok(out)
    }

    /// The keys `id` has, by state, read in one statement.
    fn rows_of(&self, id: &MinionId) -> Result<Vec<(KeyState, keys::VerifyingKey)>, KeyError> {
        let c = &self.conn;
        self.run(async { key_rows(c, c.rows(KEYS_OF, &[&id.as_str()]).await?) })
    }

    /// The stamp of `id`'s accepted key from the snapshot, read again when
    /// it is older than [`SNAPSHOT_TTL`] and the counter moved.
    fn stamp(&self, id: &MinionId) -> Result<Option<i64>, KeyError> {
        let mut snap = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        if snap.read_at.is_none_or(|t| t.elapsed() >= SNAPSHOT_TTL) {
            let c = &self.conn;
            let version = snap.version;
            let fresh = self.run(async {
                let now: i64 = c
                    .rows("SELECT version FROM keys_version", &[])
                    .await?
                    .first()
                    .map(|r| r.try_get(0))
                    .transpose()
                    .map_err(|e| c.err(e))?
                    .unwrap_or(0);
                if now == version {
                    return Ok((now, None));
                }
                let mut accepted = HashMap::new();
                for r in c
                    .rows(
                        "SELECT id, changed FROM minion_keys WHERE state = 'accepted'",
                        &[],
                    )
                    .await?
                {
                    let id: String = r.try_get(0).map_err(|e| c.err(e))?;
                    let changed: i64 = r.try_get(1).map_err(|e| c.err(e))?;
                    accepted.insert(id, changed);
                }
                Ok((now, Some(accepted)))
            })?;
            let (now, accepted) = fresh;
            snap.version = now;
            if let Some(a) = accepted {
                snap.accepted = a;
            }
            snap.read_at = Some(Instant::now());
        }
        Ok(snap.accepted.get(id.as_str()).copied())
    }
}

/// A statement of a key change.
enum Change {
    /// The key goes into this state (replacing one there).
    Put(KeyState, [u8; 32]),
    /// The key moves (replacing one in the target state).
    Move(KeyState, KeyState),
    /// The key in this state goes.
    Delete(KeyState),
}

/// The keys one id has: rows of (state, key), read by [`key_rows`].
const KEYS_OF: &str = "SELECT state, key FROM minion_keys WHERE id = $1";

/// The (state, key) rows of [`KEYS_OF`], skipping any not understood.
fn key_rows(
    c: &Conn,
    rows: Vec<tokio_postgres::Row>,
) -> Result<Vec<(KeyState, keys::VerifyingKey)>, StoreError> {
    let mut present = Vec::new();
    for r in rows {
        let state: String = r.try_get(0).map_err(|e| c.err(e))?;
        let key: &[u8] = r.try_get(1).map_err(|e| c.err(e))?;
        if let (Some(s), Some(k)) = (state_of(&state), verifying(key)) {
            present.push((s, k));
        }
    }
    Ok(present)
}

fn verifying(b: &[u8]) -> Option<keys::VerifyingKey> {
    let bytes: [u8; 32] = b.try_into().ok()?;
    keys::VerifyingKey::from_bytes(&bytes).ok()
}

fn no_such(id: &MinionId, state: KeyState) -> KeyError {
    KeyError::NoSuchKey {
        id: id.to_string(),
        state: state.dir(),
    }
}

impl KeyStore for PgKeys {
    fn get(&self, state: KeyState, id: &MinionId) -> Result<Option<keys::VerifyingKey>, KeyError> {
        let c = &self.conn;
        let raw: Option<Vec<u8>> = self.run(async {
            c.rows(
                "SELECT key FROM minion_keys WHERE id = $1 AND state = $2",
                &[&id.as_str(), &state_name(state)],
            )
            .await?
            .first()
            .map(|r| r.try_get::<_, Vec<u8>>(0))
            .transpose()
            .map_err(|e| c.err(e))
        })?;
        match raw {
            None => Ok(None),
            Some(b) => verifying(&b).map(Some).ok_or_else(|| KeyError::Store {
                location: c.shown.clone(),
                reason: format!("the {state} key of {id} is not a valid ed25519 key"),
            }),
        }
    }

    fn states_of(&self, id: &MinionId) -> Result<Vec<KeyState>, KeyError> {
        let c = &self.conn;
        let names: Vec<String> = self.run(async {
            c.rows(
                "SELECT state FROM minion_keys WHERE id = $1",
                &[&id.as_str()],
            )
            .await?
            .iter()
            .map(|r| r.try_get(0).map_err(|e| c.err(e)))
            .collect()
        })?;
        let mut states: Vec<KeyState> = names.iter().filter_map(|n| state_of(n)).collect();
        states.sort_by_key(|s| KeyState::ALL.iter().position(|a| a == s));
        Ok(states)
    }

    fn authorize(
        &self,
        id: &MinionId,
        key: &keys::VerifyingKey,
        autosign: bool,
        autoreject: bool,
    ) -> Result<AuthDecision, KeyError> {
        // Most minions presenting a key present their accepted one again
        // (every reconnect, every peer after a restart): one read decides
        // that, without the transaction and lock a change takes.
        let decide = |present: &[(KeyState, keys::VerifyingKey)]| {
            let find = |s: KeyState| present.iter().find(|(st, _)| *st == s).map(|(_, k)| k);
            keys::decide(
                find(KeyState::Rejected).is_some(),
                find(KeyState::Accepted),
                find(KeyState::Pending),
                key,
                autosign,
                autoreject,
            )
        };
        let (decision, write) = decide(&self.rows_of(id)?);
        if write == KeyWrite::None {
            return Ok(decision);
        }
        self.change(id, |present| {
            let (decision, write) = decide(present);
            let changes = match write {
                KeyWrite::None => Vec::new(),
                KeyWrite::Put(state) => vec![Change::Put(state, key.to_bytes())],
                KeyWrite::Move(from, to) => vec![Change::Move(from, to)],
            };
            Ok((decision, changes))
        })
    }

    fn list(&self) -> Result<KeyListing, KeyError> {
        let c = &self.conn;
        let rows: Vec<(String, String)> = self.run(async {
            c.rows("SELECT id, state FROM minion_keys ORDER BY id", &[])
                .await?
                .iter()
                .map(|r| {
                    Ok((
                        r.try_get(0).map_err(|e| c.err(e))?,
                        r.try_get(1).map_err(|e| c.err(e))?,
                    ))
                })
                .collect()
        })?;
        let mut out = KeyListing::default();
        for (id, state) in rows {
            if MinionId::new(id.as_str()).is_err() {
                continue;
            }
            match state_of(&state) {
                Some(KeyState::Accepted) => out.accepted.push(id),
                Some(KeyState::Pending) => out.pending.push(id),
                Some(KeyState::Rejected) => out.rejected.push(id),
                Some(KeyState::Denied) => out.denied.push(id),
                None => {}
            }
        }
        Ok(out)
    }

    fn move_key(&self, id: &MinionId, from: KeyState, to: KeyState) -> Result<(), KeyError> {
        self.change(id, |present| {
            if !present.iter().any(|(s, _)| *s == from) {
                return Err(no_such(id, from));
            }
            Ok(((), vec![Change::Move(from, to)]))
        })
    }

    fn delete(&self, id: &MinionId, state: KeyState) -> Result<(), KeyError> {
        self.change(id, |present| {
            if !present.iter().any(|(s, _)| *s == state) {
                return Err(no_such(id, state));
            }
            Ok(((), vec![Change::Delete(state)]))
        })
    }

    fn accepted_stamp(&self, id: &MinionId) -> Result<Option<KeyStamp>, KeyError> {
        Ok(self
            .stamp(id)?
            .map(|changed| KeyStamp(u64::from_ne_bytes(changed.to_ne_bytes()), 0, 0)))
    }

    /// A counter every key change moves, in the same transaction.
    fn generation(&self) -> Result<u64, KeyError> {
        let c = &self.conn;
        let n: i64 = self
            .run(async {
                c.rows("SELECT changes FROM keys_version", &[])
                    .await?
                    .first()
                    .map(|r| r.try_get(0))
                    .transpose()
                    .map_err(|e| c.err(e))
            })?
            .unwrap_or(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn location(&self) -> String {
        self.conn.shown.clone()
    }
}
