//! [`Store`] on sled: one tree per record kind.
//!
//! - `jobs`: jid → [`JobRecord`]
//! - `returns`: `jid/minion` → return
//! - `envelopes`: jid → the job's signed envelope (for minions that missed
//!   it, also after a restart)
//! - `presence`: minion → last seen (unix ms, big-endian)
//! - `assets`: asset id → [`AssetRecord`] as of a checkpoint version
//! - `asset_heads`: asset id → what changed since the checkpoint apart from
//!   the document (version, volatile facts, last collect); the document
//!   at the head's version is the checkpoint's with the change records
//!   after it applied. A collect writes the head and its change record, not
//!   the whole document; every [`CHECKPOINT_EVERY`] versions the document
//!   is written whole again.
//! - `asset_minion`: minion → asset id
//! - `history`: asset id ‖ version (big-endian u64) → [`ChangeRecord`], and
//!   the time index (`~` sorts after every asset id): `~t` ‖ time
//!   (big-endian u64 ms) ‖ asset id ‖ version → () for a record written
//!   alone (an edit, an import), and `~t` ‖ time ‖ 0 ‖ sequence → the
//!   (asset id, version) of every record a batch of collects wrote at that
//!   time, in one entry. Before such a batch, `~p` ‖ time ‖ 0 ‖ sequence →
//!   its minions is written, and it goes once the batch's entry is: one a
//!   crash left behind is indexed when the store opens next.
//! - `planned_serial`: serial → asset id of an imported asset no minion has claimed

use crate::access::{Token, User};
use std::path::Path;

use protocol::{Jid, JobReturn};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use super::{AssetEdit, JobRecord, JobSummary, Store, Stored};
use crate::StoreError;
use inventory::InventoryConfig;
use inventory::{self, AssetId, AssetRecord, ChangeRecord, Source};

fn store_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::Engine(e.to_string())
}

use crate::{decode, encode};

/// Writes one record under `key` and flushes its tree (users and tokens:
/// rare writes that must survive a crash at once).
fn put_flushed<T: Serialize>(tree: &sled::Tree, key: &str, v: &T) -> Result<(), StoreError> {
    tree.insert(key.as_bytes(), encode(v)?).map_err(store_err)?;
    tree.flush().map_err(store_err)?;
    Ok(())
}

/// The record under `key`, if any.
fn get_record<T: for<'de> Deserialize<'de>>(
    tree: &sled::Tree,
    key: &str,
) -> Result<Option<T>, StoreError> {
    match tree.get(key.as_bytes()).map_err(store_err)? {
        Some(v) => Ok(Some(decode(&v)?)),
        None => Ok(None),
    }
}

/// Every record of a tree, in key order.
fn all_records<T: for<'de> Deserialize<'de>>(tree: &sled::Tree) -> Result<Vec<T>, StoreError> {
    tree.iter()
        .values()
        .map(|v| decode(&v.map_err(store_err)?))
        .collect()
}

type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

fn abort(e: StoreError) -> ConflictableTransactionError<StoreError> {
    ConflictableTransactionError::Abort(e)
}

fn tx_err(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => store_err(e),
    }
}

fn return_key(jid: &Jid, minion: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(21 + minion.len());
    k.extend_from_slice(jid.as_str().as_bytes());
    k.push(b'/');
    k.extend_from_slice(minion.as_bytes());
    k
}

/// Prefix of the time index in the `history` tree.
const TIME_INDEX: &[u8] = b"~t";

fn time_prefix(at_ms: i64) -> Vec<u8> {
    let mut k = TIME_INDEX.to_vec();
    k.extend_from_slice(&u64::try_from(at_ms).unwrap_or(0).to_be_bytes());
    k
}

fn time_key(at_ms: i64, id: &AssetId, version: u64) -> Vec<u8> {
    let mut k = time_prefix(at_ms);
    k.extend_from_slice(id.as_str().as_bytes());
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// An asset id as the store's keys and values hold it.
fn asset_id(bytes: &[u8]) -> Option<AssetId> {
    AssetId::parse(std::str::from_utf8(bytes).ok()?)
}

/// The asset id and version a time index key points at.
fn from_time_key(k: &[u8]) -> Option<(AssetId, u64)> {
    let rest = k.get(TIME_INDEX.len() + 8..)?;
    let (id, version) = rest.split_at_checked(rest.len().checked_sub(8)?)?;
    let id = asset_id(id)?;
    Some((id, u64::from_be_bytes(version.try_into().ok()?)))
}

/// Prefix of the time index entries of batches not yet written whole.
const PENDING_INDEX: &[u8] = b"~p";

/// The key of the time index entry of a batch of collects stored at
/// `at_ms`; `seq` tells batches of the same millisecond apart. The 0 after
/// the time sorts it before the entries of single records of that time,
/// and keeps it from reading as one (an asset id is hex).
fn batch_key(at_ms: i64, seq: u64) -> Vec<u8> {
    let mut k = time_prefix(at_ms);
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// A time as time index keys hold it (unix ms; times before 1970 as 0).
fn key_time(at_ms: i64) -> u64 {
    u64::try_from(at_ms).unwrap_or(0)
}

/// The time of a time index key, batch or single (see [`key_time`]).
fn time_of_key(k: &[u8]) -> Option<u64> {
    let t = k.get(TIME_INDEX.len()..TIME_INDEX.len() + 8)?;
    Some(u64::from_be_bytes(t.try_into().ok()?))
}

/// Whether a time index key is a batch's (see [`batch_key`]).
fn is_batch_key(k: &[u8]) -> bool {
    k.len() == TIME_INDEX.len() + 17 && k[TIME_INDEX.len() + 8] == 0
}

/// The records a batch of collects wrote, as its time index entry holds
/// them: (asset id, version).
pub(crate) type BatchIndex = Vec<(AssetId, u64)>;

/// The time index entries at `key` (one of the time index's): the record
/// the key names, or those of the batch its value lists.
pub(crate) fn index_entries(key: &[u8], value: &[u8]) -> Result<Vec<(AssetId, u64)>, StoreError> {
    if value.is_empty() {
        return Ok(from_time_key(key).into_iter().collect());
    }
    decode(value)
}

/// Top-level facts by name.
type Facts = serde_json::Map<String, serde_json::Value>;

/// A document holding only `facts`, for change records to be applied to
/// or compared with.
fn facts_document(facts: Facts) -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::from_iter([(
        "facts".to_owned(),
        serde_json::Value::Object(facts),
    )]))
}

/// The top-level facts a change record changed inside (not the facts
/// replaced whole).
fn facts_changed_in(record: &ChangeRecord) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for ch in &record.changes {
        if let [f, k, ..] = ch.path.as_slice()
            && f == "facts"
            && !out.contains(&k.as_str())
        {
            out.push(k);
        }
    }
    out
}

/// One write of a collect's asset: its head or its whole record (a new
/// checkpoint), encoded.
#[derive(Debug)]
enum AssetWrite {
    Head(Vec<u8>),
    Checkpoint(Vec<u8>),
}

/// The writes a collect that left `rec` makes of its asset, read with the
/// checkpoint at `base` (`None`: a new asset), in the order they must be
/// made, and the version of the checkpoint the new head is read with. The
/// head carries the collect's `facts_digest`, so the next collect can be
/// stored from its changed facts alone (or as unchanged).
///
/// A head alone while the asset is close to its checkpoint; otherwise a
/// new checkpoint at `rec`'s version and a head at that version. A crash
/// can cut the two apart, so their order keeps a head with a digest from
/// ever standing for facts the asset does not read as:
/// - a new asset's checkpoint goes first: cut after it, the asset has no
///   head, and the next collect reads its document;
/// - an existing asset's head goes first: cut after it, the head is read
///   with the old checkpoint and the change records after it (the new
///   one's included, written before), which leave the same facts. The
///   other order would leave the old head, behind the new checkpoint and
///   so not read, with the digest of the facts before: a collect that
///   went back to them would be taken as changing nothing.
fn collected_writes(
    rec: &AssetRecord,
    base: Option<u64>,
    every: u64,
    facts_digest: u64,
) -> Result<(Vec<AssetWrite>, u64), StoreError> {
    let head = AssetWrite::Head(encode(&Head {
        facts_digest: Some(facts_digest),
        ..Head::of(rec)
    })?);
    Ok(match base {
        Some(b) if head_only(rec, b, every) => (vec![head], b),
        Some(_) => (
            vec![head, AssetWrite::Checkpoint(encode(rec)?)],
            rec.version,
        ),
        None => (
            vec![AssetWrite::Checkpoint(encode(rec)?), head],
            rec.version,
        ),
    })
}

fn history_key(id: &AssetId, version: u64) -> Vec<u8> {
    let mut k = id.as_str().as_bytes().to_vec();
    k.extend_from_slice(&version.to_be_bytes());
    k
}

/// The records [`Store::changes_between`] gives, in the time index's
/// order, from a cursor on.
struct Feed<'a> {
    store: &'a SledStore,
    /// (key time, asset, version) of the first record given.
    cursor: Option<(u64, AssetId, u64)>,
    /// The last record given: one a batch and a single entry both name
    /// (indexed again after a crash) is given once.
    last: Option<(u64, AssetId, u64)>,
    assets: std::collections::HashMap<AssetId, AssetRecord>,
    out: Vec<(AssetRecord, ChangeRecord)>,
    max: usize,
}

impl Feed<'_> {
    /// Gives the record `version` of `id` indexed at `at`, unless it is
    /// before the cursor, given already, gone or since rewritten (a
    /// collect cut short by a crash whose version a later change took).
    /// Says whether the feed is full.
    fn push(&mut self, at: u64, id: AssetId, version: u64) -> Result<bool, StoreError> {
        if self.out.len() >= self.max {
            return Ok(true);
        }
        let here = (at, id, version);
        if self.cursor.as_ref().is_some_and(|c| here < *c) || self.last.as_ref() == Some(&here) {
            return Ok(false);
        }
        let (at, id, version) = here;
        let Some(v) = self
            .store
            .history
            .get(history_key(&id, version))
            .map_err(store_err)?
        else {
            return Ok(false);
        };
        let change: ChangeRecord = decode(&v)?;
        if key_time(change.at_ms) != at {
            return Ok(false);
        }
        let rec = match self.assets.get(&id) {
            Some(r) => r.clone(),
            None => match self.store.asset(&id)? {
                Some(r) => {
                    self.assets.insert(id.clone(), r.clone());
                    r
                }
                None => return Ok(false),
            },
        };
        self.out.push((rec, change));
        self.last = Some((at, id, version));
        Ok(self.out.len() >= self.max)
    }
}

use crate::is_collect;

pub use crate::layout::CHECKPOINT_EVERY;
use crate::layout::{FactsDigests, Head, Loaded, assemble, head_only};

/// [`Store`] on a sled database.
pub struct SledStore {
    db: sled::Db,
    jobs: sled::Tree,
    returns: sled::Tree,
    envelopes: sled::Tree,
    presence: sled::Tree,
    assets: sled::Tree,
    heads: sled::Tree,
    asset_minion: sled::Tree,
    pub(crate) history: sled::Tree,
    planned_serial: sled::Tree,
    users: sled::Tree,
    tokens: sled::Tree,
    inventory: InventoryConfig,
    /// Collect returns are stored without a sled transaction (whose
    /// commit takes a lock over the whole database): each holds this
    /// shared and its minion's stripe; every other asset write holds it
    /// exclusively around its transaction.
    writers: std::sync::RwLock<()>,
    /// One lock per group of minions: a minion's returns are stored one
    /// at a time.
    stripes: Box<[std::sync::Mutex<()>]>,
    /// Held while a minion claims a planned asset by its serial.
    claims: std::sync::Mutex<()>,
    /// What each asset's last collect left (see
    /// [`SledStore::put_changed`]), while that collect's head stands.
    memo: std::sync::Mutex<Memos>,
}

/// Assets [`SledStore::memo`] keeps, at most: the digests of about 50
/// top-level facts take some 800 bytes, so this is at most ~80 MB, and
/// [`MEMO_VALUE_BYTES`] of values.
const MEMO_MAX: usize = 100_000;

/// The bytes of fact values [`SledStore::memo`] keeps, at most (see
/// [`Memo::values`]); past it, no more are kept until it starts over.
const MEMO_VALUE_BYTES: usize = 64 << 20;

/// A fact value longer than this (msgpack) is not kept in
/// [`SledStore::memo`]: reading it from the checkpoint costs little more
/// than the decoding it would save.
const MEMO_VALUE_MAX: usize = 16 << 10;

/// What the last collect of an asset left, as [`SledStore::put_changed`]
/// reads it: kept while the asset's head is the one that collect wrote
/// (same version, same digest of all the facts).
#[derive(Debug)]
struct Memo {
    /// The digests of its stable facts.
    digests: FactsDigests,
    /// The head's version.
    version: u64,
    /// The version of the checkpoint the head is read with.
    base: u64,
    /// The stable value, as the document holds it, of top-level facts
    /// that collect changed: a fact that changed tends to change again,
    /// and then its old value is read from here instead of from the
    /// checkpoint and the change records after it.
    values: Vec<(String, Kept)>,
}

impl Memo {
    /// Whether the collect this memo is of left `head`.
    fn left(&self, head: &Head) -> bool {
        head.facts_digest == Some(self.digests.whole) && head.version == self.version
    }

    fn value_bytes(&self) -> usize {
        self.values.iter().map(|(k, v)| k.len() + v.bytes()).sum()
    }
}

/// What [`Memo`] keeps of a top-level fact a collect changed.
#[derive(Debug)]
enum Kept {
    /// Its stable value (msgpack).
    Whole(Vec<u8>),
    /// An object's stable children, so that a collect changing a few of
    /// them again decodes and compares those alone.
    Children(Children),
}

/// An object fact's stable children as [`Memo`] keeps them: told by their
/// digests (as [`FactsDigests::children`] gives them), their values in one
/// buffer.
#[derive(Debug)]
struct Children {
    /// The digest of their keys, in order ([`Children::keys_of`]).
    keys: u64,
    /// Each one's digest, of its key and stable value.
    digests: Vec<u64>,
    /// Their stable values (msgpack), one after another.
    bytes: Vec<u8>,
    /// Where each value ends in `bytes`.
    ends: Vec<u32>,
}

impl Children {
    /// The digest of the children's keys that `digests` are of.
    fn keys_of(digests: &FactsDigests) -> u64 {
        let keys: Vec<u8> = digests
            .entries
            .iter()
            .flat_map(|(k, _)| k.to_le_bytes())
            .collect();
        xxhash_rust::xxh3::xxh3_64(&keys)
    }

    /// Child `i`'s value.
    fn value(&self, i: usize) -> Option<&[u8]> {
        let start = match i {
            0 => 0,
            _ => *self.ends.get(i - 1)? as usize,
        };
        self.bytes.get(start..*self.ends.get(i)? as usize)
    }

    /// The positions of the children `later` (the digests of the same
    /// fact's children) changed; `None` when children were added or
    /// removed.
    fn changed(keys: u64, before: &[u64], later: &FactsDigests) -> Option<Vec<usize>> {
        if before.len() != later.entries.len() || Children::keys_of(later) != keys {
            return None;
        }
        let at = before.iter().zip(&later.entries).enumerate();
        Some(
            at.filter(|(_, (b, l))| **b != l.1)
                .map(|(i, _)| i)
                .collect(),
        )
    }

    /// Children with `digests`, whose values are `value(i)` for each.
    fn build<'v>(
        digests: &FactsDigests,
        value: impl Fn(usize) -> Option<std::borrow::Cow<'v, [u8]>>,
    ) -> Option<Children> {
        let n = digests.entries.len();
        let (mut bytes, mut ends) = (Vec::new(), Vec::with_capacity(n));
        for i in 0..n {
            bytes.extend_from_slice(&value(i)?);
            if bytes.len() > MEMO_VALUE_MAX {
                return None;
            }
            ends.push(u32::try_from(bytes.len()).ok()?);
        }
        Some(Children {
            keys: Children::keys_of(digests),
            digests: digests.entries.iter().map(|(_, d)| *d).collect(),
            bytes,
            ends,
        })
    }
}

impl Kept {
    /// What is kept of `value`, the stable value of the fact `key`; `None`
    /// past [`MEMO_VALUE_MAX`].
    fn of(key: &str, value: &serde_json::Value, volatile: &[String]) -> Option<Kept> {
        let Some((digests, keys)) = FactsDigests::children(value, key, volatile) else {
            let bytes = rmp_serde::to_vec(value).ok()?;
            return (bytes.len() <= MEMO_VALUE_MAX).then_some(Kept::Whole(bytes));
        };
        let value = |i: usize| Some(rmp_serde::to_vec(&value[keys[i]]).ok()?.into());
        Some(Kept::Children(Children::build(&digests, value)?))
    }

    /// The bytes it takes: its values, and 12 for each child's digest and end.
    fn bytes(&self) -> usize {
        match self {
            Kept::Whole(bytes) => bytes.len(),
            Kept::Children(c) => c.bytes.len() + c.digests.len() * 12,
        }
    }
}

/// What [`SledStore::put_changed`] takes of a fact from the memo: its
/// old value, or its children's digests to tell those that changed.
enum Old {
    Value(Vec<u8>),
    /// [`Children::keys`] and [`Children::digests`].
    Children(u64, Vec<u64>),
}

/// What [`SledStore::remember`] keeps of a fact a collect changed.
enum Keep {
    /// This, made from the whole value.
    Kept(Kept),
    /// The children the memo keeps of it, with these digests, and these
    /// of them (by position) changed to these values.
    Patched(FactsDigests, Vec<(usize, Vec<u8>)>),
}

/// An object fact whose children a collect compared with the memo's: the
/// positions of those that changed, the new digests and each child's key.
struct ChildrenChanged<'d> {
    key: &'d str,
    at: Vec<usize>,
    digests: FactsDigests,
    keys: Vec<&'d str>,
}

/// [`SledStore::memo`]: one [`Memo`] per asset, and the bytes their
/// values take.
#[derive(Debug, Default)]
struct Memos {
    by_asset: std::collections::HashMap<AssetId, Memo>,
    value_bytes: usize,
}

/// A collect that changed an asset's stable facts, as
/// [`SledStore::put_changed`] takes it.
struct Changed<'a> {
    asset: AssetId,
    head: &'a Head,
    digests: &'a FactsDigests,
    /// The key of each of `digests`' entries.
    keys: &'a [&'a str],
}

/// Locks of [`SledStore::stripes`].
const STRIPES: usize = 256;

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How long `open` waits for a database whose previous holder is still
/// shutting down: sled releases its file lock from background threads a
/// moment after the last handle is dropped.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The zstd level sled compresses what it writes at (its default is 5).
/// Level 1 took about 7 % less of the master's CPU in a fleet collect of
/// 9,000 than level 3 (`collect_speed 9000 5 0 35`, interleaved: master
/// CPU over the swarm's 1.95 against 2.10) for a store as large
/// (`store_growth 1000 30 0.01`, 8 runs each: 20.0-24.5 MiB after 30
/// collects against 21.0-24.4). Level 1 had left larger stores with the
/// layouts before (BENCHMARKS.md); with this one the two levels leave
/// stores of the same size. sled's log records
/// of a few hundred bytes are compressed at level -1 whatever this says
/// (see vendor/zstd). sled reads a store written at any level.
const COMPRESSION_LEVEL: i32 = 1;

pub(crate) fn open_db(path: &Path, compressed: bool) -> Result<sled::Db, StoreError> {
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(5);
    loop {
        match sled::Config::new()
            .path(path)
            .use_compression(compressed)
            .compression_factor(COMPRESSION_LEVEL)
            .open()
        {
            Ok(db) => return Ok(db),
            Err(e) => {
                let locked = matches!(&e, sled::Error::Io(io)
                    if io.to_string().starts_with("could not acquire lock"));
                if locked && started.elapsed() < LOCK_WAIT {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_millis(200));
                    continue;
                }
                let reason = if locked {
                    format!("the database is in use by another process ({e})")
                } else {
                    e.to_string()
                };
                return Err(StoreError::Open {
                    path: path.display().to_string(),
                    reason,
                });
            }
        }
    }
}

impl SledStore {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path, inventory: InventoryConfig) -> Result<SledStore, StoreError> {
        // New databases compress their pages (zstd); one made without keeps
        // its setting, which sled fixes at creation.
        let compressed = match std::fs::read(path.join("conf")) {
            Ok(conf) => String::from_utf8_lossy(&conf)
                .lines()
                .any(|l| l.trim() == "use_compression: true"),
            Err(_) => true,
        };
        let db = open_db(path, compressed)?;
        let tree = |name: &str| db.open_tree(name).map_err(store_err);
        let store = SledStore {
            jobs: tree("jobs")?,
            returns: tree("returns")?,
            envelopes: tree("envelopes")?,
            presence: tree("presence")?,
            assets: tree("assets")?,
            heads: tree("asset_heads")?,
            asset_minion: tree("asset_minion")?,
            history: tree("history")?,
            planned_serial: tree("planned_serial")?,
            users: tree("users")?,
            tokens: tree("tokens")?,
            inventory,
            db,
            writers: std::sync::RwLock::new(()),
            stripes: (0..STRIPES).map(|_| std::sync::Mutex::new(())).collect(),
            claims: std::sync::Mutex::new(()),
            memo: std::sync::Mutex::default(),
        };
        // Batches cut short first: a store whose first batch was cut short
        // has no time index yet, and would be indexed whole otherwise.
        store.index_pending()?;
        store.index_history()?;
        Ok(store)
    }

    fn put_history(h: &TransactionalTree, id: &AssetId, rec: &ChangeRecord) -> TxResult<()> {
        h.insert(
            history_key(id, rec.version),
            crate::encode_change(rec).map_err(abort)?,
        )?;
        h.insert(time_key(rec.at_ms, id, rec.version), &[][..])?;
        Ok(())
    }

    /// Writes a change record outside a transaction, and its time index
    /// entry, or, for a batch of collects (`batch`), notes it there for
    /// the batch's one entry.
    fn put_history_now(
        &self,
        id: &AssetId,
        rec: &ChangeRecord,
        batch: Option<&mut BatchIndex>,
    ) -> Result<(), StoreError> {
        self.history
            .insert(history_key(id, rec.version), crate::encode_change(rec)?)
            .map_err(store_err)?;
        match batch {
            Some(b) => b.push((id.clone(), rec.version)),
            None => {
                self.history
                    .insert(time_key(rec.at_ms, id, rec.version), &[][..])
                    .map_err(store_err)?;
            }
        }
        Ok(())
    }

    /// Reads an asset and its checkpoint version, outside a transaction;
    /// the caller holds the locks that keep writers of it away.
    fn get_loaded(&self, id: &[u8]) -> Result<Option<Loaded>, StoreError> {
        match self.assets.get(id).map_err(store_err)? {
            Some(v) => self.assemble_from(decode(&v)?).map(Some),
            None => Ok(None),
        }
    }

    /// The latest record from the checkpoint `base`: its head and the
    /// change records after it, read outside a transaction.
    fn assemble_from(&self, base: AssetRecord) -> Result<Loaded, StoreError> {
        let head = self.head(base.id.as_str().as_bytes())?;
        self.assemble_with(base, head)
    }

    /// The head of the asset `id`, if it has one.
    fn head(&self, id: &[u8]) -> Result<Option<Head>, StoreError> {
        match self.heads.get(id).map_err(store_err)? {
            Some(v) => Ok(Some(decode(&v)?)),
            None => Ok(None),
        }
    }

    /// As [`Self::assemble_from`], with the head already read.
    fn assemble_with(&self, base: AssetRecord, head: Option<Head>) -> Result<Loaded, StoreError> {
        let change = |id: &AssetId, v: u64| -> Result<Option<ChangeRecord>, StoreError> {
            match self.history.get(history_key(id, v)).map_err(store_err)? {
                Some(b) => Ok(Some(decode(&b)?)),
                None => Ok(None),
            }
        };
        assemble(base, head, change, StoreError::Engine)
    }

    /// Writes a collect's asset outside a transaction, in the order of
    /// [`collected_writes`]. Gives the version of the checkpoint the head
    /// is read with.
    fn put_collected(
        &self,
        rec: &AssetRecord,
        base: Option<u64>,
        every: u64,
        facts_digest: u64,
    ) -> Result<u64, StoreError> {
        let (writes, base) = collected_writes(rec, base, every, facts_digest)?;
        for w in writes {
            self.put_asset_write(&rec.id, w)?;
        }
        Ok(base)
    }

    /// Makes one of the writes of [`collected_writes`] for the asset `id`.
    fn put_asset_write(&self, id: &AssetId, w: AssetWrite) -> Result<(), StoreError> {
        let (tree, bytes) = match w {
            AssetWrite::Checkpoint(b) => (&self.assets, b),
            AssetWrite::Head(b) => (&self.heads, b),
        };
        tree.insert(id.as_str().as_bytes(), bytes)
            .map_err(store_err)?;
        Ok(())
    }

    fn stripe(&self, minion: &str) -> &std::sync::Mutex<()> {
        // FNV-1a over the id.
        let h = minion.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        &self.stripes[(h % STRIPES as u64) as usize]
    }

    /// Stores a collect return. Without a transaction, the writes go in an
    /// order that a crash can cut anywhere (sled recovers a prefix of its
    /// log): the change records, then the asset (the head, or the whole
    /// record), the minion's mapping, the planned serial's claim, and last
    /// the job cache's entry, which is what makes the return count as
    /// stored. A return cut short is not acknowledged; when the minion
    /// sends it again it changes nothing more than it did. A new asset's
    /// mapping is written first, so that a return sent again after a
    /// crash makes the same asset, not a second one.
    fn put_collect(
        &self,
        ret: &JobReturn,
        key: &[u8],
        source: Source,
        now_ms: i64,
        mut batch: Option<&mut BatchIndex>,
    ) -> Result<Stored, StoreError> {
        let minion = ret.minion.as_str();
        let _writers = self.writers.read().unwrap_or_else(|p| p.into_inner());
        let _stripe = lock(self.stripe(minion));
        if self.returns.get(key).map_err(store_err)?.is_some() {
            return Ok(Stored::Duplicate);
        }
        let mapped = self
            .asset_minion
            .get(minion.as_bytes())
            .map_err(store_err)?;
        let (digests, keys) = FactsDigests::of(&ret.data, &self.inventory.volatile);
        let digest = digests.whole;
        let mut existing = match &mapped {
            Some(id) => match (self.head(id)?, asset_id(id)) {
                (Some(h), Some(asset)) if h.minion.as_deref() == Some(minion) => {
                    if h.unchanged_by(minion, digest) {
                        return self.put_unchanged(ret, key, asset, h, now_ms);
                    }
                    let changed = Changed {
                        asset,
                        head: &h,
                        digests: &digests,
                        keys: &keys,
                    };
                    let batch = batch.as_deref_mut();
                    if let Some(stored) =
                        self.put_changed(ret, key, changed, source, now_ms, batch)?
                    {
                        return Ok(stored);
                    }
                    self.load_with(id, Some(h))?
                }
                (head, _) => self.load_with(id, head)?,
            },
            None => None,
        };
        let mut _claiming = None;
        let mut claimed = None;
        if existing.is_none()
            && let Some(serial) = ret.data["serialnumber"].as_str()
            && self
                .planned_serial
                .get(serial.as_bytes())
                .map_err(store_err)?
                .is_some()
        {
            _claiming = Some(lock(&self.claims));
            if let Some(id) = self
                .planned_serial
                .get(serial.as_bytes())
                .map_err(store_err)?
            {
                existing = self.get_loaded(&id)?;
                claimed = Some(serial);
            }
        }
        let base = existing.as_ref().map(|l| l.base);
        let (mut rec, entries) = inventory::apply_collect(
            existing.map(|l| l.rec),
            minion,
            &ret.data,
            &ret.jid,
            &self.inventory,
            now_ms,
            source,
        );
        if base.is_none() {
            // A new asset: keep the id a crash may have mapped already.
            if let Some(id) = mapped.as_deref().and_then(asset_id) {
                rec.id = id;
            }
        }
        let id = rec.id.as_str().as_bytes();
        let remap = mapped.as_deref() != Some(id);
        if remap && base.is_none() {
            self.asset_minion
                .insert(minion.as_bytes(), id)
                .map_err(store_err)?;
        }
        for e in &entries {
            self.put_history_now(&rec.id, e, batch.as_deref_mut())?;
        }
        let read_at = self.put_collected(&rec, base, self.checkpoint_every(), digest)?;
        if remap && base.is_some() {
            self.asset_minion
                .insert(minion.as_bytes(), id)
                .map_err(store_err)?;
        }
        if let Some(serial) = claimed {
            self.planned_serial
                .remove(serial.as_bytes())
                .map_err(store_err)?;
        }
        self.returns
            .insert(key, crate::encode_stub(ret, &rec.id, rec.version)?)
            .map_err(store_err)?;
        let changed = !entries.is_empty();
        if changed {
            self.prune(&rec.id)?;
        }
        let mut facts: Vec<&str> = entries.iter().flat_map(facts_changed_in).collect();
        facts.sort_unstable();
        facts.dedup();
        self.remember(
            &rec.id,
            (rec.version, read_at),
            digests,
            &facts,
            &rec.document["facts"],
        );
        Ok(Stored::Asset {
            id: rec.id,
            version: rec.version,
            changed,
        })
    }

    /// An asset's latest record from its checkpoint and `head`, if it has
    /// a checkpoint.
    fn load_with(&self, id: &[u8], head: Option<Head>) -> Result<Option<Loaded>, StoreError> {
        match self.assets.get(id).map_err(store_err)? {
            Some(v) => self.assemble_with(decode(&v)?, head).map(Some),
            None => Ok(None),
        }
    }

    /// Notes what a collect left in `asset`: its head at `version`, read
    /// with the checkpoint at `base`, the digests of its stable facts, and
    /// the stable values of `changed`, those of its top-level facts it
    /// changed, taken from `facts` (the document's).
    fn remember(
        &self,
        asset: &AssetId,
        (version, base): (u64, u64),
        digests: FactsDigests,
        changed: &[&str],
        facts: &serde_json::Value,
    ) {
        let volatile = &self.inventory.volatile;
        let kept = changed
            .iter()
            .filter_map(|k| {
                Some((
                    (*k).to_owned(),
                    Keep::Kept(Kept::of(k, facts.get(*k)?, volatile)?),
                ))
            })
            .collect();
        self.remember_kept(asset, (version, base), digests, kept);
    }

    /// As [`SledStore::remember`], with what to keep of each changed fact
    /// made: patched children are taken from the memo's last entry.
    fn remember_kept(
        &self,
        asset: &AssetId,
        (version, base): (u64, u64),
        digests: FactsDigests,
        kept: Vec<(String, Keep)>,
    ) {
        let mut memo = lock(&self.memo);
        let last = memo.by_asset.remove(asset);
        memo.value_bytes -= last.as_ref().map_or(0, Memo::value_bytes);
        let mut values = Vec::with_capacity(kept.len());
        for (k, keep) in kept {
            let kept = match keep {
                Keep::Kept(kept) => kept,
                Keep::Patched(digests, patches) => {
                    let Some(Kept::Children(before)) = last
                        .as_ref()
                        .and_then(|m| Some(&m.values.iter().find(|(n, _)| *n == k)?.1))
                    else {
                        continue;
                    };
                    if before.digests.len() != digests.entries.len() {
                        continue;
                    }
                    let value = |i: usize| match patches.iter().find(|(at, _)| *at == i) {
                        Some((_, bytes)) => Some(bytes.as_slice().into()),
                        None => before.value(i).map(Into::into),
                    };
                    match Children::build(&digests, value) {
                        Some(children) => Kept::Children(children),
                        None => continue,
                    }
                }
            };
            values.push((k, kept));
        }
        if memo.by_asset.len() >= MEMO_MAX {
            *memo = Memos::default();
        }
        let mut m = Memo {
            digests,
            version,
            base,
            values,
        };
        if memo.value_bytes + m.value_bytes() > MEMO_VALUE_BYTES {
            m.values.clear();
        }
        memo.value_bytes += m.value_bytes();
        memo.by_asset.insert(asset.clone(), m);
    }

    /// Stores a collect return that changed some of the stable facts of an
    /// asset its minion's last collect left as it was (its head is that
    /// collect's, and [`SledStore::memo`] has the digests of the facts it
    /// left), reading only the changed facts: their old values from the
    /// memo when the last collect changed them too (of an object, the
    /// values of the children that changed alone, told by their digests),
    /// else from the checkpoint and the change records after it. The
    /// document is not decoded whole, the rest of the facts not compared. `None`, having
    /// written nothing, when that does not hold or a new checkpoint is due:
    /// the caller then stores the return by reading the whole document.
    fn put_changed(
        &self,
        ret: &JobReturn,
        key: &[u8],
        c: Changed<'_>,
        source: Source,
        now_ms: i64,
        batch: Option<&mut BatchIndex>,
    ) -> Result<Option<Stored>, StoreError> {
        let (asset, head) = (c.asset, c.head);
        let volatile = &self.inventory.volatile;
        // The facts that changed, and what the memo keeps of each if it
        // keeps them all, with the checkpoint's version.
        let (changed, kept) = {
            let memo = lock(&self.memo);
            match memo.by_asset.get(&asset) {
                Some(m) if m.left(head) => {
                    let changed = m.digests.changed(c.digests, c.keys);
                    let kept = changed.as_ref().and_then(|changed| {
                        changed
                            .iter()
                            .map(|k| match &m.values.iter().find(|(n, _)| n == k)?.1 {
                                Kept::Whole(bytes) => Some(Old::Value(bytes.clone())),
                                Kept::Children(c) => Some(Old::Children(c.keys, c.digests.clone())),
                            })
                            .collect::<Option<Vec<Old>>>()
                    });
                    (changed, kept.map(|kept| (m.base, kept)))
                }
                _ => (None, None),
            }
        };
        let Some(changed) = changed.filter(|k| !k.is_empty()) else {
            return Ok(None);
        };
        let id = asset.as_str().as_bytes();
        let version = head.version + 1;
        // A new checkpoint is due: the caller writes it, from the whole
        // document. Told before the old values are decoded.
        let due = |base: u64| head.version < base || version - base >= self.checkpoint_every();
        let from_memo = match kept {
            Some((base, _)) if due(base) => return Ok(None),
            Some((base, kept)) => self
                .memo_facts(&asset, head, &changed, kept, &ret.data)
                .map(|(old, new, children)| (base, old, new, children)),
            None => None,
        };
        let (base, old, new, children) = match from_memo {
            Some(read) => read,
            None => match self.changed_facts(&asset, head.version, &changed)? {
                Some((base, _)) if due(base) => return Ok(None),
                Some((base, old)) => {
                    let new = changed
                        .iter()
                        .map(|k| ((*k).to_owned(), ret.data[*k].clone()))
                        .collect();
                    (base, old, new, Vec::new())
                }
                None => return Ok(None),
            },
        };
        let mut doc = facts_document(old);
        let mut changes = Vec::new();
        inventory::document::replace_stable_field(
            &mut doc,
            "facts",
            &serde_json::Value::Object(new),
            volatile,
            &mut changes,
        );
        if changes.is_empty() {
            return Ok(None);
        }
        let entry = ChangeRecord::collected(version, now_ms, source, &ret.jid, changes);
        self.put_history_now(&asset, &entry, batch)?;
        let head = Head {
            version,
            facts_digest: Some(c.digests.whole),
            ..head.collected(&ret.data, volatile, now_ms)
        };
        self.heads.insert(id, encode(&head)?).map_err(store_err)?;
        self.returns
            .insert(key, crate::encode_stub(ret, &asset, version)?)
            .map_err(store_err)?;
        self.prune(&asset)?;
        // What to keep of each fact changed: the changed children of one
        // compared child by child, the whole value of the others.
        let kept = facts_changed_in(&entry)
            .into_iter()
            .filter_map(|k| {
                let value = doc["facts"].get(k)?;
                let keep = match children.iter().find(|ch| ch.key == k) {
                    Some(ch) => Keep::Patched(
                        ch.digests.clone(),
                        ch.at
                            .iter()
                            .map(|i| Some((*i, rmp_serde::to_vec(value.get(ch.keys[*i])?).ok()?)))
                            .collect::<Option<_>>()?,
                    ),
                    None => Keep::Kept(Kept::of(k, value, volatile)?),
                };
                Some((k.to_owned(), keep))
            })
            .collect();
        self.remember_kept(&asset, (version, base), c.digests.clone(), kept);
        Ok(Some(Stored::Asset {
            id: asset,
            version,
            changed: true,
        }))
    }

    /// From what the memo keeps of the facts `changed` (`kept`, in their
    /// order) by the collect that left `head`: their old values and their
    /// new ones in `data`, and the object facts compared child by child.
    /// Of those, the old and new values hold the changed children alone.
    /// `None` when a value does not decode, an object's children were
    /// added or removed, or the memo no longer holds that collect's.
    fn memo_facts<'d>(
        &self,
        asset: &AssetId,
        head: &Head,
        changed: &[&'d str],
        kept: Vec<Old>,
        data: &'d serde_json::Value,
    ) -> Option<(Facts, Facts, Vec<ChildrenChanged<'d>>)> {
        let (mut old, mut new) = (Facts::new(), Facts::new());
        let mut children = Vec::new();
        for (k, kept) in changed.iter().zip(kept) {
            match kept {
                Old::Value(bytes) => {
                    old.insert((*k).to_owned(), rmp_serde::from_slice(&bytes).ok()?);
                    new.insert((*k).to_owned(), data[*k].clone());
                }
                Old::Children(keys_before, before) => {
                    let (digests, keys) =
                        FactsDigests::children(&data[*k], k, &self.inventory.volatile)?;
                    let at = Children::changed(keys_before, &before, &digests)
                        .filter(|at| !at.is_empty())?;
                    children.push(ChildrenChanged {
                        key: k,
                        at,
                        digests,
                        keys,
                    });
                }
            }
        }
        if children.is_empty() {
            return Some((old, new, children));
        }
        // The kept values of the children that changed, cloned under the
        // lock and decoded after it.
        let values: Vec<Vec<Vec<u8>>> = {
            let memo = lock(&self.memo);
            let m = memo.by_asset.get(asset).filter(|m| m.left(head))?;
            children
                .iter()
                .map(|ch| match &m.values.iter().find(|(n, _)| n == ch.key)?.1 {
                    Kept::Children(c) if c.digests.len() == ch.keys.len() => {
                        ch.at.iter().map(|i| Some(c.value(*i)?.to_vec())).collect()
                    }
                    _ => None,
                })
                .collect::<Option<_>>()?
        };
        for (ch, values) in children.iter().zip(values) {
            let (mut o, mut n) = (Facts::new(), Facts::new());
            for (i, bytes) in ch.at.iter().zip(values) {
                let key = ch.keys[*i];
                o.insert(key.to_owned(), rmp_serde::from_slice(&bytes).ok()?);
                n.insert(key.to_owned(), data[ch.key][key].clone());
            }
            old.insert(ch.key.to_owned(), serde_json::Value::Object(o));
            new.insert(ch.key.to_owned(), serde_json::Value::Object(n));
        }
        Some((old, new, children))
    }

    /// The facts `changed` of an asset whose head is at `version`, as the
    /// checkpoint and the change records after it leave them, with the
    /// checkpoint's version. `None` when a change record replaced the
    /// facts whole (or the document), one is missing, or one of the facts
    /// is not there: the caller then reads the whole document.
    fn changed_facts(
        &self,
        asset: &AssetId,
        version: u64,
        changed: &[&str],
    ) -> Result<Option<(u64, Facts)>, StoreError> {
        let Some(checkpoint) = self.assets.get(asset.as_str()).map_err(store_err)? else {
            return Ok(None);
        };
        let Some((base, old)) = crate::msgpack::checkpoint_facts(&checkpoint, changed) else {
            return Ok(None);
        };
        if version < base {
            return Ok(None);
        }
        let mut doc = facts_document(old);
        // One pass over the records after the checkpoint, in order; a gap
        // (a record missing) is left to the caller.
        let after = self
            .history
            .range(history_key(asset, base + 1)..=history_key(asset, version));
        let mut expect = base + 1;
        for item in after {
            let (at, bytes) = item.map_err(store_err)?;
            if at.as_ref() != history_key(asset, expect).as_slice() {
                return Ok(None);
            }
            expect += 1;
            let record: ChangeRecord = decode(&bytes)?;
            for ch in &record.changes {
                match ch.path.as_slice() {
                    [f, k, ..] if f == "facts" && changed.contains(&k.as_str()) => {
                        inventory::document::apply(&mut doc, std::slice::from_ref(ch));
                    }
                    [] => return Ok(None),
                    [f] if f == "facts" => return Ok(None),
                    _ => {}
                }
            }
        }
        if expect != version + 1 {
            return Ok(None);
        }
        let serde_json::Value::Object(mut doc) = doc else {
            return Ok(None);
        };
        match doc.remove("facts") {
            Some(serde_json::Value::Object(facts))
                if changed.iter().all(|k| facts.contains_key(*k)) =>
            {
                Ok(Some((base, facts)))
            }
            _ => Ok(None),
        }
    }

    /// Stores a collect return that leaves the asset as it is (its head
    /// says a collect left it with the same stable facts, and nothing
    /// changed it since): the head alone, with the new volatile facts, and
    /// the job cache's entry.
    fn put_unchanged(
        &self,
        ret: &JobReturn,
        key: &[u8],
        asset: AssetId,
        head: Head,
        now_ms: i64,
    ) -> Result<Stored, StoreError> {
        let head = head.collected(&ret.data, &self.inventory.volatile, now_ms);
        self.heads
            .insert(asset.as_str().as_bytes(), encode(&head)?)
            .map_err(store_err)?;
        self.returns
            .insert(key, crate::encode_stub(ret, &asset, head.version)?)
            .map_err(store_err)?;
        Ok(Stored::Asset {
            id: asset,
            version: head.version,
            changed: false,
        })
    }

    /// Stores a return; a collect's change records go in `batch` (see
    /// [`SledStore::put_history_now`]).
    pub(crate) fn put_return_in(
        &self,
        ret: &JobReturn,
        source: Source,
        now_ms: i64,
        batch: Option<&mut BatchIndex>,
    ) -> Result<Stored, StoreError> {
        let key = return_key(&ret.jid, ret.minion.as_str());
        if !is_collect(ret) {
            let swapped = self
                .returns
                .compare_and_swap(key, None as Option<&[u8]>, Some(encode(ret)?))
                .map_err(store_err)?;
            return Ok(if swapped.is_ok() {
                Stored::Return
            } else {
                Stored::Duplicate
            });
        }
        self.put_collect(ret, &key, source, now_ms, batch)
    }

    /// Notes a batch of collects by `minions` about to be stored at
    /// `at_ms`; returns the key suffix its time index entry will take.
    pub(crate) fn begin_batch(&self, at_ms: i64, minions: &[&str]) -> Result<Vec<u8>, StoreError> {
        let seq = self.db.generate_id().map_err(store_err)?;
        let suffix = batch_key(at_ms, seq).split_off(TIME_INDEX.len());
        self.history
            .insert([PENDING_INDEX, &suffix].concat(), encode(&minions)?)
            .map_err(store_err)?;
        Ok(suffix)
    }

    /// Writes a batch's time index entry, then drops its note. With
    /// `history_keep`, records the batch pruned itself (a minion's second
    /// collect in it) are left out.
    fn end_batch(&self, suffix: &[u8], mut index: BatchIndex) -> Result<(), StoreError> {
        if self.inventory.history_keep > 0 {
            let mut kept = BatchIndex::with_capacity(index.len());
            for (id, v) in index {
                if self
                    .history
                    .contains_key(history_key(&id, v))
                    .map_err(store_err)?
                {
                    kept.push((id, v));
                }
            }
            index = kept;
        }
        if !index.is_empty() {
            self.history
                .insert([TIME_INDEX, suffix].concat(), encode(&index)?)
                .map_err(store_err)?;
        }
        self.history
            .remove([PENDING_INDEX, suffix].concat())
            .map_err(store_err)?;
        Ok(())
    }

    /// Writes the time index entries of batches a crash cut short, from
    /// the change records their minions' assets got at the batch's time.
    fn index_pending(&self) -> Result<(), StoreError> {
        let mut indexed = 0usize;
        for item in self.history.scan_prefix(PENDING_INDEX) {
            let (k, v) = item.map_err(store_err)?;
            let suffix = &k[PENDING_INDEX.len()..];
            let key = [TIME_INDEX, suffix].concat();
            let (Some(at), Ok(minions)) = (
                time_of_key(&key).filter(|_| is_batch_key(&key)),
                decode::<Vec<String>>(&v),
            ) else {
                tracing::warn!("dropped a malformed note of a batch of collects to index");
                self.history.remove(&k).map_err(store_err)?;
                continue;
            };
            let mut index = BatchIndex::new();
            for m in &minions {
                let Some(mapped) = self.asset_minion.get(m.as_bytes()).map_err(store_err)? else {
                    continue;
                };
                let Some(id) = asset_id(&mapped) else {
                    continue;
                };
                // Newest first, back to a minute before the batch's time
                // (two batches may store one asset's collects out of time
                // order).
                for item in self.history.scan_prefix(id.as_str()).rev() {
                    let (_, v) = item.map_err(store_err)?;
                    let Ok(rec) = decode::<ChangeRecord>(&v) else {
                        continue;
                    };
                    let t = key_time(rec.at_ms);
                    if t.saturating_add(60_000) < at {
                        break;
                    }
                    if t == at {
                        index.push((id.clone(), rec.version));
                    }
                }
            }
            index.sort();
            index.dedup();
            indexed += index.len();
            self.end_batch(suffix, index)?;
        }
        if indexed > 0 {
            self.db.flush().map_err(store_err)?;
            tracing::info!(
                records = indexed,
                "indexed by time the changes of collects stored before a crash"
            );
        }
        Ok(())
    }

    /// Takes the record `version` of `id` out of the time index entries of
    /// batches at `at_ms`.
    fn unindex_batched(&self, at_ms: i64, id: &AssetId, version: u64) -> Result<(), StoreError> {
        let keys: Vec<sled::IVec> = self
            .history
            .scan_prefix(time_prefix(at_ms))
            .filter_map(|item| match item {
                Ok((k, v)) if !v.is_empty() => Some(Ok(k)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<_, _>>()
            .map_err(store_err)?;
        for k in keys {
            self.history
                .update_and_fetch(&k, |old| {
                    let old = old?;
                    let Ok(mut batch) = decode::<BatchIndex>(old) else {
                        return Some(old.to_vec());
                    };
                    batch.retain(|(i, v)| !(i == id && *v == version));
                    if batch.is_empty() {
                        None
                    } else {
                        encode(&batch).ok().or_else(|| Some(old.to_vec()))
                    }
                })
                .map_err(store_err)?;
        }
        Ok(())
    }

    /// Builds the time index of a database written before it existed.
    fn index_history(&self) -> Result<(), StoreError> {
        if self.history.scan_prefix(TIME_INDEX).next().is_some() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        let mut n = 0usize;
        for item in self.history.iter() {
            let (k, v) = item.map_err(store_err)?;
            if k.first() == Some(&b'~') || k.len() < 8 {
                continue;
            }
            let rec: ChangeRecord = decode(&v)?;
            let Some(id) = asset_id(&k[..k.len() - 8]) else {
                continue;
            };
            batch.insert(time_key(rec.at_ms, &id, rec.version), &[][..]);
            n += 1;
        }
        if n > 0 {
            self.history.apply_batch(batch).map_err(store_err)?;
            self.db.flush().map_err(store_err)?;
            tracing::info!(records = n, "indexed asset history by time");
        }
        Ok(())
    }

    /// Versions an asset may go past its checkpoint: fewer than the
    /// change records retention keeps, so replaying never needs a pruned
    /// one.
    fn checkpoint_every(&self) -> u64 {
        crate::layout::checkpoint_every(self.inventory.history_keep)
    }

    fn get_asset_tx(
        a: &TransactionalTree,
        hd: &TransactionalTree,
        h: &TransactionalTree,
        id: &[u8],
    ) -> TxResult<Option<Loaded>> {
        let Some(v) = a.get(id)? else {
            return Ok(None);
        };
        let base: AssetRecord = decode(&v).map_err(abort)?;
        let head: Option<Head> = match hd.get(id)? {
            Some(v) => Some(decode(&v).map_err(abort)?),
            None => None,
        };
        let change = |id: &AssetId, v: u64| -> TxResult<Option<ChangeRecord>> {
            match h.get(history_key(id, v))? {
                Some(b) => Ok(Some(decode(&b).map_err(abort)?)),
                None => Ok(None),
            }
        };
        assemble(base, head, change, |m| abort(StoreError::Engine(m))).map(Some)
    }

    /// Writes an asset read at checkpoint `base` (none for a new one): its
    /// head alone while it is close to the checkpoint, else the whole
    /// record as the new checkpoint.
    fn put_asset_tx(
        a: &TransactionalTree,
        hd: &TransactionalTree,
        rec: &AssetRecord,
        base: Option<u64>,
        every: u64,
    ) -> TxResult<()> {
        let id = rec.id.as_str().as_bytes();
        match base {
            Some(b) if head_only(rec, b, every) => {
                hd.insert(id, encode(&Head::of(rec)).map_err(abort)?)?;
            }
            _ => {
                a.insert(id, encode(rec).map_err(abort)?)?;
                hd.remove(id)?;
            }
        }
        Ok(())
    }

    /// The latest record of the asset whose checkpoint is `base`.
    /// The latest record of the asset whose checkpoint is `base`. The
    /// checkpoint, head and change records are read apart; a collect that
    /// moves the checkpoint in between is met by reading again.
    fn load(&self, base: &[u8]) -> Result<AssetRecord, StoreError> {
        // Most loads succeed at once: decode from the stored bytes without
        // copying them.
        let first = self.load_once(base);
        if first.is_ok() {
            return first;
        }
        let mut base = base.to_vec();
        let mut tries = 0;
        loop {
            match self.load_once(&base) {
                Ok(rec) => return Ok(rec),
                Err(e) if tries < 3 => {
                    tries += 1;
                    let id: AssetRecord = decode(&base)?;
                    match self
                        .assets
                        .get(id.id.as_str().as_bytes())
                        .map_err(store_err)?
                    {
                        Some(v) => base = v.to_vec(),
                        None => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn load_once(&self, base: &[u8]) -> Result<AssetRecord, StoreError> {
        Ok(self.assemble_from(decode(base)?)?.rec)
    }

    /// Drops the oldest change records of an asset beyond `history_keep`,
    /// never the first record, the latest change, or one after the asset's
    /// checkpoint (reading the asset replays those).
    fn prune(&self, id: &AssetId) -> Result<(), StoreError> {
        let keep = self.inventory.history_keep;
        if keep == 0 {
            return Ok(());
        }
        let keys: Vec<sled::IVec> = self
            .history
            .scan_prefix(id.as_str().as_bytes())
            .keys()
            .collect::<Result<_, _>>()
            .map_err(store_err)?;
        let changes = keys.len().saturating_sub(1);
        if changes <= keep {
            return Ok(());
        }
        let Some(base) = self.assets.get(id.as_str().as_bytes()).map_err(store_err)? else {
            return Ok(());
        };
        /// The checkpoint's version, read without decoding its document.
        #[derive(Deserialize)]
        struct Checkpoint {
            version: u64,
        }
        let checkpoint = decode::<Checkpoint>(&base)?.version;
        let after_checkpoint = |k: &sled::IVec| {
            k.len() >= 8
                && k[k.len() - 8..]
                    .try_into()
                    .map(u64::from_be_bytes)
                    .is_ok_and(|v| v > checkpoint)
        };
        for k in keys
            .iter()
            .skip(1)
            .take(changes - keep)
            .filter(|k| !after_checkpoint(k))
        {
            if let Some(v) = self.history.remove(k).map_err(store_err)? {
                let rec: ChangeRecord = decode(&v)?;
                self.history
                    .remove(time_key(rec.at_ms, id, rec.version))
                    .map_err(store_err)?;
                self.unindex_batched(rec.at_ms, id, rec.version)?;
            }
        }
        Ok(())
    }

    fn all_assets(&self) -> Result<Vec<AssetRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.assets.iter() {
            let (_, v) = item.map_err(store_err)?;
            out.push(self.load(&v)?);
        }
        Ok(out)
    }
}

impl Store for SledStore {
    fn put_job(&self, job: &JobRecord) -> Result<(), StoreError> {
        self.jobs
            .insert(job.jid.as_str().as_bytes(), encode(job)?)
            .map_err(store_err)?;
        self.jobs.flush().map_err(store_err)?;
        Ok(())
    }

    fn put_live_job(&self, job: &JobRecord, envelope: &[u8]) -> Result<(), StoreError> {
        let key = job.jid.as_str().as_bytes();
        let record = encode(job)?;
        (&self.jobs, &self.envelopes)
            .transaction(|(j, e)| {
                j.insert(key, record.as_slice())?;
                e.insert(key, envelope)?;
                Ok(())
            })
            .map_err(|e: TransactionError<StoreError>| tx_err(e))?;
        self.db.flush().map_err(store_err)?;
        Ok(())
    }

    fn drop_envelopes(&self, before_ms: i64) -> Result<usize, StoreError> {
        let Some(cutoff) = Jid::from_micros(before_ms.saturating_mul(1000)) else {
            return Ok(0);
        };
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for key in self.envelopes.range(..cutoff.as_str().as_bytes()).keys() {
            batch.remove(key.map_err(store_err)?);
            n += 1;
        }
        self.envelopes.apply_batch(batch).map_err(store_err)?;
        Ok(n)
    }

    fn drop_envelope(&self, jid: &Jid) -> Result<bool, StoreError> {
        let gone = self
            .envelopes
            .remove(jid.as_str().as_bytes())
            .map_err(store_err)?
            .is_some();
        self.db.flush().map_err(store_err)?;
        Ok(gone)
    }

    fn live_jobs(&self, since_ms: i64) -> Result<Vec<(JobRecord, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        for item in self.jobs.iter().rev() {
            let (k, v) = item.map_err(store_err)?;
            let job: JobRecord = decode(&v)?;
            if job.started_ms < since_ms {
                break;
            }
            if let Some(env) = self.envelopes.get(&k).map_err(store_err)? {
                out.push((job, env.to_vec()));
            }
        }
        out.reverse();
        Ok(out)
    }

    fn job(&self, jid: &Jid) -> Result<Option<JobRecord>, StoreError> {
        get_record(&self.jobs, jid.as_str())
    }

    fn put_return_from(
        &self,
        ret: &JobReturn,
        source: Source,
        now_ms: i64,
    ) -> Result<Stored, StoreError> {
        self.put_return_in(ret, source, now_ms, None)
    }

    fn returned_minions(&self, jid: &Jid) -> Result<Vec<String>, StoreError> {
        let mut prefix = jid.as_str().as_bytes().to_vec();
        prefix.push(b'/');
        let mut out = Vec::new();
        for key in self.returns.scan_prefix(&prefix).keys() {
            let key = key.map_err(store_err)?;
            out.push(String::from_utf8_lossy(&key[prefix.len()..]).into_owned());
        }
        Ok(out)
    }

    fn returns(&self, jid: &Jid) -> Result<Vec<JobReturn>, StoreError> {
        let mut prefix = jid.as_str().as_bytes().to_vec();
        prefix.push(b'/');
        let mut out = Vec::new();
        for item in self.returns.scan_prefix(&prefix) {
            let (k, v) = item.map_err(store_err)?;
            let minion = String::from_utf8_lossy(&k[prefix.len()..]);
            let ret = crate::rebuilt_return(crate::decode_return(jid, &minion, &v)?, |id| {
                Ok(match self.asset(id)? {
                    Some(rec) => Some((rec, self.history(id)?)),
                    None => None,
                })
            })?;
            out.push(ret);
        }
        Ok(out)
    }

    fn set_last_seen_all(&self, seen: &[(String, i64)]) -> Result<(), StoreError> {
        crate::set_each_last_seen(self, seen)
    }

    /// Stores the returns one by one, the time index of their change
    /// records in one entry for the batch (see the module's doc).
    fn put_returns(&self, rets: &[&JobReturn], now_ms: i64) -> Vec<Result<Stored, StoreError>> {
        let minions: Vec<&str> = rets
            .iter()
            .filter(|r| is_collect(r))
            .map(|r| r.minion.as_str())
            .collect();
        if minions.len() < 2 {
            return crate::put_each(self, rets, now_ms);
        }
        let Ok(suffix) = self.begin_batch(now_ms, &minions) else {
            return crate::put_each(self, rets, now_ms);
        };
        let mut index = BatchIndex::new();
        let out = rets
            .iter()
            .map(|r| self.put_return_in(r, Source::Collect, now_ms, Some(&mut index)))
            .collect();
        if let Err(e) = self.end_batch(&suffix, index) {
            // Its minions stay noted: the store indexes them when it opens.
            tracing::warn!(error = %e, "could not write the time index of a batch of collects");
        }
        out
    }

    fn set_last_seen(&self, minion: &str, at_ms: i64) -> Result<(), StoreError> {
        self.presence
            .insert(minion.as_bytes(), &at_ms.to_be_bytes())
            .map_err(store_err)?;
        Ok(())
    }

    fn last_seen_all(&self, minions: &[String]) -> Result<Vec<(String, i64)>, StoreError> {
        crate::each_last_seen(self, minions)
    }

    fn last_seen(&self, minion: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .presence
            .get(minion.as_bytes())
            .map_err(store_err)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(i64::from_be_bytes))
    }

    fn asset(&self, id: &AssetId) -> Result<Option<AssetRecord>, StoreError> {
        match self.assets.get(id.as_str().as_bytes()).map_err(store_err)? {
            Some(v) => Ok(Some(self.load(&v)?)),
            None => Ok(None),
        }
    }

    fn asset_of_minion(&self, minion: &str) -> Result<Option<AssetRecord>, StoreError> {
        match self
            .asset_minion
            .get(minion.as_bytes())
            .map_err(store_err)?
        {
            Some(id) => match self.assets.get(&id).map_err(store_err)? {
                Some(v) => Ok(Some(self.load(&v)?)),
                None => Ok(None),
            },
            None => Ok(None),
        }
    }

    fn assets(&self) -> Result<Vec<AssetRecord>, StoreError> {
        self.all_assets()
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db.size_on_disk().map_err(store_err)
    }

    fn scan_assets(
        &self,
        after: Option<&AssetId>,
        visit: &mut dyn FnMut(AssetRecord) -> bool,
    ) -> Result<(), StoreError> {
        use std::ops::Bound;
        let start = match after {
            Some(id) => Bound::Excluded(id.as_str().as_bytes().to_vec()),
            None => Bound::Unbounded,
        };
        for item in self.assets.range::<Vec<u8>, _>((start, Bound::Unbounded)) {
            let (_, v) = item.map_err(store_err)?;
            if !visit(self.load(&v)?) {
                break;
            }
        }
        Ok(())
    }

    fn expire_jobs(&self, before_ms: i64) -> Result<usize, StoreError> {
        // Returns without a job record (agent pushes) go by their jid's time.
        if let Some(cutoff) = Jid::from_micros(before_ms.saturating_mul(1000)) {
            let mut batch = sled::Batch::default();
            let mut n = 0usize;
            for key in self.returns.range(..cutoff.as_str().as_bytes()).keys() {
                batch.remove(key.map_err(store_err)?);
                n += 1;
                if n.is_multiple_of(10_000) {
                    self.returns
                        .apply_batch(std::mem::take(&mut batch))
                        .map_err(store_err)?;
                }
            }
            self.returns.apply_batch(batch).map_err(store_err)?;
        }
        let mut gone = 0;
        for item in self.jobs.iter() {
            let (k, v) = item.map_err(store_err)?;
            let job: JobRecord = decode(&v)?;
            if job.started_ms >= before_ms {
                break;
            }
            let mut prefix = k.to_vec();
            prefix.push(b'/');
            let mut batch = sled::Batch::default();
            for key in self.returns.scan_prefix(&prefix).keys() {
                batch.remove(key.map_err(store_err)?);
            }
            self.returns.apply_batch(batch).map_err(store_err)?;
            self.envelopes.remove(&k).map_err(store_err)?;
            self.jobs.remove(&k).map_err(store_err)?;
            gone += 1;
        }
        Ok(gone)
    }

    fn jobs_before(
        &self,
        before: Option<&Jid>,
        limit: usize,
    ) -> Result<Vec<JobSummary>, StoreError> {
        let end = match before {
            Some(jid) => jid.as_str().as_bytes().to_vec(),
            None => vec![0xff],
        };
        let mut out = Vec::new();
        for item in self.jobs.range(..end).rev().take(limit) {
            let (_, v) = item.map_err(store_err)?;
            out.push(decode(&v)?);
        }
        Ok(out)
    }

    fn history(&self, id: &AssetId) -> Result<Vec<ChangeRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.history.scan_prefix(id.as_str().as_bytes()) {
            let (_, v) = item.map_err(store_err)?;
            out.push(decode(&v)?);
        }
        Ok(out)
    }

    fn edit_asset(
        &self,
        id: &AssetId,
        source: Source,
        user: Option<String>,
        now_ms: i64,
        edit: &dyn Fn(&AssetRecord) -> Result<serde_json::Value, StoreError>,
    ) -> Result<AssetRecord, StoreError> {
        let every = self.checkpoint_every();
        let _writers = self.writers.write().unwrap_or_else(|p| p.into_inner());
        let rec = (&self.assets, &self.heads, &self.history)
            .transaction(|(a, hd, h)| {
                let Loaded { mut rec, base } =
                    Self::get_asset_tx(a, hd, h, id.as_str().as_bytes())?
                        .ok_or_else(|| abort(StoreError::Refused(format!("no asset {id}"))))?;
                let doc = edit(&rec).map_err(abort)?;
                if let Some(entry) = rec.change_to(doc, source, None, user.clone(), now_ms) {
                    Self::put_asset_tx(a, hd, &rec, Some(base), every)?;
                    Self::put_history(h, id, &entry)?;
                }
                Ok(rec)
            })
            .map_err(tx_err)?;
        self.prune(id)?;
        self.db.flush().map_err(store_err)?;
        Ok(rec)
    }

    fn apply_edits(
        &self,
        edits: &[AssetEdit],
        source: Source,
        user: Option<&str>,
        now_ms: i64,
    ) -> Result<Vec<AssetRecord>, StoreError> {
        let every = self.checkpoint_every();
        let _writers = self.writers.write().unwrap_or_else(|p| p.into_inner());
        let out = (
            &self.assets,
            &self.heads,
            &self.history,
            &self.planned_serial,
        )
            .transaction(|(a, hd, h, p)| {
                let mut out = Vec::with_capacity(edits.len());
                for edit in edits {
                    match edit {
                        AssetEdit::Update {
                            id,
                            document,
                            if_version,
                        } => {
                            let Loaded { mut rec, base } =
                                Self::get_asset_tx(a, hd, h, id.as_str().as_bytes())?.ok_or_else(
                                    || abort(StoreError::Refused(format!("no asset {id}"))),
                                )?;
                            crate::check_version(&rec, *if_version).map_err(abort)?;
                            if let Some(e) = rec.change_to(
                                document.clone(),
                                source,
                                None,
                                user.map(str::to_owned),
                                now_ms,
                            ) {
                                Self::put_asset_tx(a, hd, &rec, Some(base), every)?;
                                Self::put_history(h, &rec.id, &e)?;
                            }
                            out.push(rec);
                        }
                        AssetEdit::Create {
                            document,
                            expected_serial,
                        } => {
                            let (rec, first) =
                                crate::created(document, expected_serial, source, user, now_ms);
                            a.insert(rec.id.as_str().as_bytes(), encode(&rec).map_err(abort)?)?;
                            Self::put_history(h, &rec.id, &first)?;
                            if let Some(s) = expected_serial {
                                p.insert(s.as_bytes(), rec.id.as_str().as_bytes())?;
                            }
                            out.push(rec);
                        }
                    }
                }
                Ok(out)
            })
            .map_err(tx_err)?;
        for rec in &out {
            self.prune(&rec.id)?;
        }
        self.db.flush().map_err(store_err)?;
        Ok(out)
    }

    fn changes_between(
        &self,
        since_ms: i64,
        until_ms: Option<i64>,
        from: Option<(i64, &AssetId, u64)>,
        max: usize,
    ) -> Result<Vec<(AssetRecord, ChangeRecord)>, StoreError> {
        let from = from.filter(|(at, _, _)| *at >= since_ms);
        if let (Some((at, _, _)), Some(u)) = (from, until_ms)
            && at >= u
        {
            return Ok(Vec::new());
        }
        let end = match until_ms {
            Some(u) => time_prefix(u),
            None => {
                let mut e = TIME_INDEX.to_vec();
                e.push(0xff);
                e
            }
        };
        // A batch's entry sorts before the single records of its
        // millisecond, which sort by asset id and version. From a record
        // on: that millisecond's batches, then its single records from the
        // record's key.
        let entries: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> = match from {
            Some((at, id, version)) => {
                let batches = time_prefix(at);
                let mut batches_end = batches.clone();
                batches_end.push(1);
                let start = time_key(at, id, version).max(batches_end.clone());
                Box::new(
                    self.history
                        .range(batches..batches_end)
                        .chain(self.history.range(start..end)),
                )
            }
            None => Box::new(self.history.range(time_prefix(since_ms)..end)),
        };
        let cursor = from.map(|(at, id, v)| (key_time(at), id.clone(), v));
        let mut feed = Feed {
            store: self,
            cursor,
            last: None,
            assets: std::collections::HashMap::new(),
            out: Vec::new(),
            max,
        };
        // The batches' entries of the millisecond being read, sorted.
        let mut batched: std::collections::VecDeque<(AssetId, u64)> = Default::default();
        let mut moment = None;
        for item in entries {
            let (k, v) = item.map_err(store_err)?;
            let Some(at) = time_of_key(&k) else {
                continue;
            };
            if moment != Some(at) {
                if let Some(t) = moment {
                    for (id, version) in std::mem::take(&mut batched) {
                        if feed.push(t, id, version)? {
                            return Ok(feed.out);
                        }
                    }
                }
                moment = Some(at);
            }
            if !v.is_empty() {
                match index_entries(&k, &v) {
                    Ok(more) => {
                        let mut all: Vec<_> = batched.into_iter().chain(more).collect();
                        all.sort_unstable();
                        batched = all.into();
                    }
                    Err(e) => tracing::warn!(error = %e, "skipped a malformed time index entry"),
                }
                continue;
            }
            let Some((id, version)) = from_time_key(&k) else {
                continue;
            };
            while batched
                .front()
                .is_some_and(|(b, bv)| (b, *bv) < (&id, version))
            {
                if let Some((bid, bv)) = batched.pop_front()
                    && feed.push(at, bid, bv)?
                {
                    return Ok(feed.out);
                }
            }
            if feed.push(at, id, version)? {
                return Ok(feed.out);
            }
        }
        if let Some(t) = moment {
            for (id, version) in batched {
                if feed.push(t, id, version)? {
                    break;
                }
            }
        }
        Ok(feed.out)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(store_err)?;
        Ok(())
    }

    fn put_user(&self, user: &User) -> Result<(), StoreError> {
        put_flushed(&self.users, &user.name, user)
    }

    fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        get_record(&self.users, name)
    }

    fn users(&self) -> Result<Vec<User>, StoreError> {
        all_records(&self.users)
    }

    fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        let existed = self
            .users
            .remove(name.as_bytes())
            .map_err(store_err)?
            .is_some();
        for t in self.tokens()? {
            if t.user == name {
                self.tokens.remove(t.id.as_bytes()).map_err(store_err)?;
            }
        }
        self.users.flush().map_err(store_err)?;
        self.tokens.flush().map_err(store_err)?;
        Ok(existed)
    }

    fn put_token(&self, token: &Token) -> Result<(), StoreError> {
        put_flushed(&self.tokens, &token.id, token)
    }

    fn token(&self, id: &str) -> Result<Option<Token>, StoreError> {
        get_record(&self.tokens, id)
    }

    fn tokens(&self) -> Result<Vec<Token>, StoreError> {
        all_records(&self.tokens)
    }

    fn remove_token(&self, id: &str) -> Result<bool, StoreError> {
        let existed = self
            .tokens
            .remove(id.as_bytes())
            .map_err(store_err)?
            .is_some();
        self.tokens.flush().map_err(store_err)?;
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use serde_json::{Value, json};

    fn collect(step: i64, facts: Value) -> JobReturn {
        JobReturn {
            jid: Jid::from_micros(1_800_000_000_000_000 + step * 1_000_000).expect("jid"),
            minion: protocol::MinionId::new("web1").expect("id"),
            fun: "collect".into(),
            success: true,
            retcode: 0,
            data: facts,
            started_ms: 0,
            ended_ms: 0,
        }
    }

    /// The asset of the minion `web1`.
    fn web1(s: &dyn Store) -> AssetRecord {
        s.asset_of_minion("web1").expect("read").expect("asset")
    }

    /// Stores `ret` from its changed facts alone, if that applies.
    fn put_changed(s: &SledStore, ret: &JobReturn, now_ms: i64) -> Option<Stored> {
        let id = s.asset_minion.get(b"web1").expect("read")?;
        let head = s.head(&id).expect("head")?;
        let (digests, keys) = FactsDigests::of(&ret.data, &s.inventory.volatile);
        let changed = Changed {
            asset: asset_id(&id)?,
            head: &head,
            digests: &digests,
            keys: &keys,
        };
        let key = return_key(&ret.jid, "web1");
        s.put_changed(ret, &key, changed, Source::Collect, now_ms, None)
            .expect("store")
    }

    #[test]
    fn collects_stored_from_their_changed_facts_leave_what_whole_documents_leave() {
        let dir = tempfile::tempdir().expect("tmp");
        let inv = InventoryConfig::default();
        let s = SledStore::open(&dir.path().join("db"), inv.clone()).expect("open");
        let reference = MemoryStore::new(inv);
        let mut facts = json!({"host": "web1", "uptime_seconds": 1,
            "mounts": {"/": {"size_bytes": 10, "used_bytes": 1}},
            "custom": {"f0": "a", "f1": "a", "f2": "a"}});
        let (mut partial, mut whole, mut kept) = (Vec::new(), Vec::new(), Vec::new());
        for step in 1..=40i64 {
            facts["uptime_seconds"] = json!(step);
            facts["mounts"]["/"]["used_bytes"] = json!(step * 7);
            facts["custom"][format!("f{}", step % 3)] = json!(format!("v{step}"));
            match step {
                7 => facts["gpu"] = json!({"model": "A100"}),
                8 => {
                    facts.as_object_mut().expect("object").remove("gpu");
                }
                12 | 20 | 21 => facts["mounts"]["/"]["size_bytes"] = json!(step),
                // A child of `custom` added, then changed, grown, turned
                // into another kind of value, and removed.
                25 => facts["custom"]["f5"] = json!({"a": 1}),
                26 | 27 => facts["custom"]["f5"]["a"] = json!(step),
                28 => facts["custom"]["f5"]["b"] = json!([step]),
                29 => facts["custom"]["f5"] = json!("flat"),
                30 => {
                    facts["custom"]
                        .as_object_mut()
                        .expect("custom")
                        .remove("f5");
                }
                _ => {}
            }
            let ret = collect(step, facts.clone());
            let now = step * 1000;
            reference.put_return(&ret, now).expect("reference");
            // Whether the memo has the old value of `custom`, which every
            // collect changes (and of `mounts`, which some do).
            let memo_has = |fact: &str| {
                lock(&s.memo)
                    .by_asset
                    .values()
                    .any(|m| m.values.iter().any(|(k, _)| k == fact))
            };
            let from_memo =
                memo_has("custom") && (![12, 20, 21].contains(&step) || memo_has("mounts"));
            // `custom` is kept child by child once a collect changed it.
            if step > 1 {
                let memo = lock(&s.memo);
                let kept = memo.by_asset.values().flat_map(|m| &m.values);
                let custom = kept.filter(|(k, _)| k == "custom").collect::<Vec<_>>();
                assert!(
                    custom.iter().all(|(_, v)| matches!(v, Kept::Children(..))),
                    "{step}: {custom:?}"
                );
            }
            match put_changed(&s, &ret, now) {
                Some(stored) => {
                    partial.push(step);
                    if from_memo {
                        kept.push(step);
                    }
                    assert!(
                        matches!(stored, Stored::Asset { changed: true, .. }),
                        "{stored:?}"
                    );
                }
                None => {
                    whole.push(step);
                    s.put_return(&ret, now).expect("store");
                }
            }
        }
        // The first collect, a fact added or removed, and a collect due to
        // write a new checkpoint read the document; the collect after any
        // of them (a new asset's second, the first after a checkpoint)
        // reads its changed facts alone.
        assert!(whole.contains(&1) && whole.contains(&7) && whole.contains(&8));
        for w in whole.iter().filter(|w| ![6, 7, 40].contains(*w)) {
            assert!(partial.contains(&(w + 1)), "{partial:?} {whole:?}");
        }
        assert!(partial.len() >= 33, "{partial:?} {whole:?}");
        // Most took the old values from the memo, the collect after one
        // that changed `mounts` too.
        assert!(
            kept.len() >= 25 && kept.contains(&21) && kept.contains(&27) && kept.contains(&29),
            "{kept:?} {partial:?}"
        );
        assert!(!kept.contains(&12) && !kept.contains(&20), "{kept:?}");
        let (a, b) = (web1(&s), web1(&reference));
        assert_eq!(
            (&a.document, &a.observed, a.version, a.last_collect_ms),
            (&b.document, &b.observed, b.version, b.last_collect_ms)
        );
        let history = |s: &dyn Store, id: &AssetId| -> Vec<Value> {
            s.history(id)
                .expect("history")
                .iter()
                .map(|h| json!([h.version, h.at_ms, h.jid, h.changes]))
                .collect()
        };
        assert_eq!(history(&s, &a.id), history(&reference, &b.id));
        assert_eq!(a.document["facts"], {
            let mut stable = facts.clone();
            stable
                .as_object_mut()
                .expect("object")
                .remove("uptime_seconds");
            stable["mounts"]["/"]
                .as_object_mut()
                .expect("mount")
                .remove("used_bytes");
            stable
        });
    }

    /// The state a crash leaves when it cuts a collect that writes a new
    /// checkpoint after the first of its asset's writes: the change record
    /// and that write, not the second or the job cache's entry.
    fn cut_after_first_asset_write(s: &SledStore, ret: &JobReturn, now_ms: i64) {
        let id = s.asset_minion.get(b"web1").expect("read").expect("mapped");
        let loaded = s.get_loaded(&id).expect("load").expect("asset");
        let (rec, entries) = inventory::apply_collect(
            Some(loaded.rec),
            "web1",
            &ret.data,
            &ret.jid,
            &s.inventory,
            now_ms,
            Source::Collect,
        );
        for e in &entries {
            s.put_history_now(&rec.id, e, None).expect("history");
        }
        let digest = FactsDigests::of(&ret.data, &s.inventory.volatile).0.whole;
        let (writes, _) = collected_writes(&rec, Some(loaded.base), s.checkpoint_every(), digest)
            .expect("writes");
        assert_eq!(writes.len(), 2, "a new checkpoint is due: {writes:?}");
        let first = writes.into_iter().next().expect("a write");
        s.put_asset_write(&rec.id, first).expect("write");
    }

    #[test]
    fn a_crash_between_a_new_checkpoint_and_its_head_keeps_a_collect_that_goes_back() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("db");
        let inv = InventoryConfig::default();
        let reference = MemoryStore::new(inv.clone());
        let facts_at = |step: i64| {
            json!({"host": "web1", "uptime_seconds": step,
                "custom": {"f0": format!("v{step}"), "f1": "a"}})
        };
        let s = SledStore::open(&path, inv.clone()).expect("open");
        // Every collect changes a fact, so collect n leaves version n - 1,
        // and collect 17 is due to write the checkpoint after the first's.
        for step in 1..=16 {
            let ret = collect(step, facts_at(step));
            s.put_return(&ret, step * 1000).expect("store");
            reference.put_return(&ret, step * 1000).expect("reference");
        }
        let ret = collect(17, facts_at(17));
        cut_after_first_asset_write(&s, &ret, 17_000);
        reference.put_return(&ret, 17_000).expect("reference");
        drop(s);
        // After the restart, the minion's next collect has the facts of
        // collect 16 again: a change, not a collect that changed nothing.
        let s = SledStore::open(&path, inv).expect("reopen");
        let back = collect(18, facts_at(16));
        let stored = s.put_return(&back, 18_000).expect("store");
        reference.put_return(&back, 18_000).expect("reference");
        assert!(
            matches!(
                stored,
                Stored::Asset {
                    changed: true,
                    version: 17,
                    ..
                }
            ),
            "{stored:?}"
        );
        let (a, b) = (web1(&s), web1(&reference));
        assert_eq!((&a.document, a.version), (&b.document, b.version));
        assert_eq!(a.document["facts"]["custom"]["f0"], json!("v16"));
        assert_eq!(
            s.history(&a.id).expect("history").len(),
            reference.history(&b.id).expect("history").len()
        );
    }
}
