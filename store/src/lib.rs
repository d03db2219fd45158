//! The master's storage: jobs, returns, presence, the asset inventory,
//! users and tokens. It only persists records: the asset model is the
//! `inventory` crate's.
//!
//! [`Store`] is the interface the master uses; [`SledStore`] keeps it in a
//! sled database. Records are msgpack with named fields. Nothing above this
//! crate names an engine.

pub mod access;
mod layout;
pub mod memory;
mod msgpack;
pub mod postgres;
pub mod sled;

/// Key of the asset id in a collect return kept in the job cache (the
/// facts are the asset's at that version, not a second copy).
pub(crate) const ASSET_REF: &str = "__cmdb_asset__";
/// Key of the asset version in a collect return kept in the job cache.
pub(crate) const VERSION_REF: &str = "__cmdb_version__";

/// A collect return as the job cache keeps it: a reference to the asset
/// version `rec` is at, not a second copy of the facts ([`rebuilt_return`]
/// reads them back).
pub(crate) fn return_stub(
    ret: &protocol::JobReturn,
    id: &inventory::AssetId,
    version: u64,
) -> protocol::JobReturn {
    protocol::JobReturn {
        jid: ret.jid.clone(),
        minion: ret.minion.clone(),
        fun: ret.fun.clone(),
        success: ret.success,
        retcode: ret.retcode,
        data: serde_json::json!({ASSET_REF: id, VERSION_REF: version}),
        started_ms: ret.started_ms,
        ended_ms: ret.ended_ms,
    }
}

/// A collect return's stub as stored: a msgpack array of success, retcode,
/// function, asset id, asset version, start and end. The jid and minion
/// are the record's key; a return that is not a collect is stored whole,
/// as a msgpack map ([`encode`]), and older stubs were such maps too.
type StubFields<S> = (bool, i32, S, S, u64, i64, i64);

/// The stored bytes of [`return_stub`]`(ret, id, version)`: about 60
/// bytes where the named record took about 200.
pub(crate) fn encode_stub(
    ret: &protocol::JobReturn,
    id: &inventory::AssetId,
    version: u64,
) -> Result<Vec<u8>, StoreError> {
    let fields: StubFields<&str> = (
        ret.success,
        ret.retcode,
        &ret.fun,
        id.as_str(),
        version,
        ret.started_ms,
        ret.ended_ms,
    );
    rmp_serde::to_vec(&fields).map_err(|e| StoreError::Engine(e.to_string()))
}

/// A stored return of job `jid` from `minion` read back: the stub of a
/// collect ([`encode_stub`], facts not yet rebuilt) or a whole return.
pub(crate) fn decode_return(
    jid: &Jid,
    minion: &str,
    bytes: &[u8],
) -> Result<protocol::JobReturn, StoreError> {
    // msgpack arrays start with 0x90-0x9f, 0xdc or 0xdd; records are maps.
    if !matches!(bytes.first(), Some(0x90..=0x9f | 0xdc | 0xdd)) {
        return decode(bytes);
    }
    let (success, retcode, fun, id, version, started_ms, ended_ms): StubFields<String> =
        decode(bytes)?;
    Ok(protocol::JobReturn {
        jid: jid.clone(),
        minion: protocol::MinionId::new(minion.to_owned()).map_err(|e| {
            StoreError::Engine(format!("return of job {jid} under the key {minion:?}: {e}"))
        })?,
        fun,
        success,
        retcode,
        data: serde_json::json!({ASSET_REF: id, VERSION_REF: version}),
        started_ms,
        ended_ms,
    })
}

/// A collect return as kept in the job cache (a reference to the asset
/// version) with its facts rebuilt from the asset's history.
pub(crate) fn rebuilt_return(
    mut ret: protocol::JobReturn,
    asset: impl FnOnce(
        &inventory::AssetId,
    ) -> Result<
        Option<(inventory::AssetRecord, Vec<inventory::ChangeRecord>)>,
        StoreError,
    >,
) -> Result<protocol::JobReturn, StoreError> {
    if let (Some(id), Some(version)) = (
        ret.data[ASSET_REF]
            .as_str()
            .and_then(inventory::AssetId::parse),
        ret.data[VERSION_REF].as_u64(),
    ) && let Some((rec, history)) = asset(&id)?
    {
        ret.data = match inventory::rebuild(&rec, &history, version) {
            Some(doc) => doc["facts"].clone(),
            None => serde_json::json!(format!(
                "facts of asset {id} version {version} (pruned from the history)"
            )),
        };
    }
    Ok(ret)
}

/// A new asset no minion reports (yet), as an edit batch creates it: its
/// record and its first change record, by `source` and `user`.
pub(crate) fn created(
    document: &serde_json::Value,
    expected_serial: &Option<String>,
    source: inventory::Source,
    user: Option<&str>,
    now_ms: i64,
) -> (AssetRecord, inventory::ChangeRecord) {
    let (mut rec, mut first) =
        AssetRecord::create(None, document.clone(), serde_json::json!({}), now_ms);
    rec.expected_serial = expected_serial.clone();
    first.source = source;
    first.user = user.map(str::to_owned);
    (rec, first)
}

/// Refuses an edit made from a version that is no longer the asset's.
/// [`Store::put_returns`] for an engine that stores returns one by one.
pub(crate) fn put_each(
    s: &dyn Store,
    rets: &[&JobReturn],
    now_ms: i64,
) -> Vec<Result<Stored, StoreError>> {
    rets.iter().map(|r| s.put_return(r, now_ms)).collect()
}

/// [`Store::set_last_seen_all`] for an engine that writes them one by one.
pub(crate) fn set_each_last_seen(s: &dyn Store, seen: &[(String, i64)]) -> Result<(), StoreError> {
    for (m, at) in seen {
        if s.last_seen(m)?.is_none_or(|stored| stored < *at) {
            s.set_last_seen(m, *at)?;
        }
    }
    Ok(())
}

/// [`Store::last_seen_all`] for an engine that reads them one by one.
pub(crate) fn each_last_seen(
    s: &dyn Store,
    minions: &[String],
) -> Result<Vec<(String, i64)>, StoreError> {
    let mut out = Vec::new();
    for m in minions {
        if let Some(at) = s.last_seen(m)? {
            out.push((m.clone(), at));
        }
    }
    Ok(out)
}

pub(crate) fn check_version(rec: &AssetRecord, if_version: Option<u64>) -> Result<(), StoreError> {
    match if_version {
        Some(v) if v != rec.version => Err(StoreError::Precondition(format!(
            "asset {} is at version {}, not {v}: it changed since it was read; \
             read it again and reapply the change",
            rec.id, rec.version
        ))),
        _ => Ok(()),
    }
}

/// A record as stored: msgpack with named fields (every engine keeps the
/// same bytes).
pub(crate) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    rmp_serde::to_vec_named(v).map_err(|e| StoreError::Engine(e.to_string()))
}

/// A change record as sled stores it: msgpack with its fields in order,
/// unnamed. Records are most of what a store keeps, and their field names
/// were a third of each; [`decode`] reads both forms (a struct reads from
/// a msgpack array as from a map).
pub(crate) fn encode_change(rec: &inventory::ChangeRecord) -> Result<Vec<u8>, StoreError> {
    rmp_serde::to_vec(rec).map_err(|e| StoreError::Engine(e.to_string()))
}

/// A stored record read back.
pub(crate) fn decode<T: for<'de> Deserialize<'de>>(b: &[u8]) -> Result<T, StoreError> {
    rmp_serde::from_slice(b).map_err(|e| StoreError::Engine(e.to_string()))
}

/// Whether a return carries facts for the inventory.
pub(crate) fn is_collect(ret: &protocol::JobReturn) -> bool {
    ret.success && matches!(ret.fun.as_str(), "collect" | "grains.items") && ret.data.is_object()
}

use thiserror::Error;

/// Why a store operation failed.
#[derive(Debug, Clone, Error)]
pub enum StoreError {
    /// The database could not be opened.
    #[error("{path}: {reason}")]
    Open {
        /// The database's path.
        path: String,
        /// What the engine said.
        reason: String,
    },
    /// The engine failed (I/O, a transaction, a corrupt record).
    #[error("store: {0}")]
    Engine(String),
    /// An edit refused the change (a transition not allowed, no such asset).
    #[error("{0}")]
    Refused(String),
    /// An edit named a version that is no longer current.
    #[error("{0}")]
    Precondition(String),
}

pub use self::postgres::PgStore;
pub use self::sled::SledStore;

use std::collections::BTreeMap;

use crate::access::{Token, User};

use protocol::{Jid, JobReturn, Target};
use serde::{Deserialize, Serialize};

use inventory::{AssetId, AssetRecord, ChangeRecord, Source};

/// A job as the master recorded it when publishing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobRecord {
    /// The job id.
    pub jid: Jid,
    /// The target as given.
    pub target: Target,
    /// The function.
    pub fun: String,
    /// Positional arguments.
    pub args: Vec<String>,
    /// Keyword arguments.
    pub kwargs: BTreeMap<String, String>,
    /// Minions expected to return, sorted.
    pub expected: Vec<String>,
    /// Who asked.
    pub user: String,
    /// When it was published, unix milliseconds.
    pub started_ms: i64,
    /// How it reached its targets.
    #[serde(default)]
    pub transport: Transport,
    /// Roster entries a job over SSH matched and could not run on (an id
    /// that is not a valid minion id), by id as written, with why.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub refused: BTreeMap<String, String>,
}

/// How a job reaches its targets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// Published to minions on the bus.
    #[default]
    Minion,
    /// Run by the master over SSH on hosts of the roster.
    Ssh,
}

/// A job as the job list shows it: the record without the names of the
/// minions expected (a fleet-wide job expects thousands), only how many.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobSummary {
    /// The job id.
    pub jid: Jid,
    /// The target as given.
    pub target: Target,
    /// The function.
    pub fun: String,
    /// Positional arguments.
    pub args: Vec<String>,
    /// Keyword arguments.
    pub kwargs: BTreeMap<String, String>,
    /// How many minions are expected to return.
    #[serde(alias = "expected", deserialize_with = "count_items")]
    pub expected_count: usize,
    /// Who asked.
    pub user: String,
    /// When it was published, unix milliseconds.
    pub started_ms: i64,
}

impl From<&JobRecord> for JobSummary {
    fn from(j: &JobRecord) -> JobSummary {
        JobSummary {
            jid: j.jid.clone(),
            target: j.target.clone(),
            fun: j.fun.clone(),
            args: j.args.clone(),
            kwargs: j.kwargs.clone(),
            expected_count: j.expected.len(),
            user: j.user.clone(),
            started_ms: j.started_ms,
        }
    }
}

/// Reads a stored list of names as its length, without keeping them.
fn count_items<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    struct Count;
    impl<'de> serde::de::Visitor<'de> for Count {
        type Value = usize;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
            let mut n = 0;
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                n += 1;
            }
            Ok(n)
        }
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<usize, E> {
            usize::try_from(n).map_err(E::custom)
        }
    }
    d.deserialize_any(Count)
}

/// One edit of a batch [`Store::apply_edits`] applies.
#[derive(Debug, Clone, PartialEq)]
pub enum AssetEdit {
    /// Replace an asset's document.
    Update {
        /// The asset.
        id: AssetId,
        /// Its new document.
        document: serde_json::Value,
        /// The version the edit was made from; another refuses the batch.
        if_version: Option<u64>,
    },
    /// A new asset no minion reports (yet).
    Create {
        /// Its first document.
        document: serde_json::Value,
        /// A serial a minion's first collect may claim it by.
        expected_serial: Option<String>,
    },
}

/// What storing a return did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// That minion's return for that job was already stored.
    Duplicate,
    /// Stored (not a collect).
    Return,
    /// A collect, stored with the minion's asset, now at `version`.
    Asset {
        /// The asset.
        id: AssetId,
        /// Its version after the collect.
        version: u64,
        /// Whether the collect changed its document.
        changed: bool,
    },
}

impl Stored {
    /// Whether the return was new.
    pub fn is_new(&self) -> bool {
        !matches!(self, Stored::Duplicate)
    }
}

/// Storage used by the master.
pub trait Store: Send + Sync {
    /// Records a new job (on disk when this returns).
    fn put_job(&self, job: &JobRecord) -> Result<(), StoreError>;
    /// Records a new job with its signed envelope, both on disk when this
    /// returns, so a restarted master can hand the job to minions that
    /// missed it. An engine shared by several masters refuses a job id
    /// already recorded ([`StoreError::Precondition`]).
    fn put_live_job(&self, job: &JobRecord, envelope: &[u8]) -> Result<(), StoreError>;
    /// Forgets the envelopes of jobs whose jid is older than `before_ms`
    /// (past their live time; the job records stay until they expire).
    fn drop_envelopes(&self, before_ms: i64) -> Result<usize, StoreError>;
    /// Forgets the envelope of job `jid` (it was killed), so a restarted
    /// master no longer hands it to minions; says whether it had one.
    fn drop_envelope(&self, jid: &Jid) -> Result<bool, StoreError>;
    /// Jobs started at or after `since_ms` with their signed envelopes,
    /// oldest first.
    fn live_jobs(&self, since_ms: i64) -> Result<Vec<(JobRecord, Vec<u8>)>, StoreError>;
    /// A job by id.
    fn job(&self, jid: &Jid) -> Result<Option<JobRecord>, StoreError>;
    /// Stores a return unless one from that minion for that job is already
    /// stored; says what it did. A successful collect also updates
    /// the minion's asset (snapshot and change history) in the same
    /// transaction. The return is on disk after the next [`Store::flush`];
    /// the master flushes before it acknowledges, batching many returns
    /// into one flush.
    fn put_return(&self, ret: &JobReturn, now_ms: i64) -> Result<Stored, StoreError> {
        self.put_return_from(ret, Source::Collect, now_ms)
    }
    /// Stores several returns, as [`Store::put_return`] each, in order;
    /// says what it did for each. An engine may store them together (one
    /// transaction for the returns that change no asset).
    fn put_returns(&self, rets: &[&JobReturn], now_ms: i64) -> Vec<Result<Stored, StoreError>>;
    /// As [`Store::put_return`], recording a collect's asset change with
    /// `source` ([`Source::Ssh`] for a host collected over SSH).
    fn put_return_from(
        &self,
        ret: &JobReturn,
        source: Source,
        now_ms: i64,
    ) -> Result<Stored, StoreError>;
    /// An asset by id.
    fn asset(&self, id: &AssetId) -> Result<Option<AssetRecord>, StoreError>;
    /// The asset a minion reports.
    fn asset_of_minion(&self, minion: &str) -> Result<Option<AssetRecord>, StoreError>;
    /// Bytes the store takes on disk.
    fn size_on_disk(&self) -> Result<u64, StoreError>;
    /// Every asset.
    fn assets(&self) -> Result<Vec<AssetRecord>, StoreError>;
    /// Assets in id order after `after` (from the first when none), each
    /// handed to `visit` until it answers false.
    fn scan_assets(
        &self,
        after: Option<&AssetId>,
        visit: &mut dyn FnMut(AssetRecord) -> bool,
    ) -> Result<(), StoreError>;
    /// Removes jobs started before `before_ms` and their returns; says how
    /// many jobs went.
    fn expire_jobs(&self, before_ms: i64) -> Result<usize, StoreError>;
    /// Jobs newest first, older than `before` (from the newest when none),
    /// at most `limit`.
    fn jobs_before(
        &self,
        before: Option<&Jid>,
        limit: usize,
    ) -> Result<Vec<JobSummary>, StoreError>;
    /// An asset's history, oldest first.
    fn history(&self, id: &AssetId) -> Result<Vec<ChangeRecord>, StoreError>;
    /// Changes an asset's document with `edit` (which may refuse), recording
    /// the change with its source and user; returns the updated record.
    fn edit_asset(
        &self,
        id: &AssetId,
        source: Source,
        user: Option<String>,
        now_ms: i64,
        edit: &dyn Fn(&AssetRecord) -> Result<serde_json::Value, StoreError>,
    ) -> Result<AssetRecord, StoreError>;
    /// Marks a minion's asset online or offline (a versioned change); says
    /// whether it changed.
    fn set_presence(&self, minion: &str, online: bool, now_ms: i64) -> Result<bool, StoreError> {
        let Some(rec) = self.asset_of_minion(minion)? else {
            return Ok(false);
        };
        let want = if online { "online" } else { "offline" };
        let edited = self.edit_asset(&rec.id, Source::Presence, None, now_ms, &|r| {
            let mut doc = r.document.clone();
            doc["presence"] = serde_json::json!(want);
            Ok(doc)
        })?;
        Ok(edited.version != rec.version)
    }
    /// Applies a batch of edits in one transaction, all or nothing: an
    /// update whose asset is gone or whose version is not the one named
    /// refuses the whole batch. Records each change with `source` and
    /// `user`; returns the records after the batch, in the edits' order.
    fn apply_edits(
        &self,
        edits: &[AssetEdit],
        source: Source,
        user: Option<&str>,
        now_ms: i64,
    ) -> Result<Vec<AssetRecord>, StoreError>;
    /// Change records at or after `since_ms` and before `until_ms` (none:
    /// up to now), oldest first (by time, asset id, version), starting at
    /// the record `from` names (time, asset, version; included) when given,
    /// at most `max`; reads only that window.
    fn changes_between(
        &self,
        since_ms: i64,
        until_ms: Option<i64>,
        from: Option<(i64, &AssetId, u64)>,
        max: usize,
    ) -> Result<Vec<(AssetRecord, ChangeRecord)>, StoreError>;
    /// Every stored return of a job.
    fn returns(&self, jid: &Jid) -> Result<Vec<JobReturn>, StoreError>;
    /// The minions whose return for `jid` is stored (read from the keys
    /// alone).
    fn returned_minions(&self, jid: &Jid) -> Result<Vec<String>, StoreError>;
    /// Records when a minion was last heard from (unix milliseconds).
    fn set_last_seen(&self, minion: &str, at_ms: i64) -> Result<(), StoreError>;
    /// Records when each of several minions was last heard from, together;
    /// a time older than the one stored (another master heard from the
    /// minion later) leaves it.
    fn set_last_seen_all(&self, seen: &[(String, i64)]) -> Result<(), StoreError>;
    /// When a minion was last heard from.
    fn last_seen(&self, minion: &str) -> Result<Option<i64>, StoreError>;
    /// When each of `minions` was last heard from, for those ever heard from.
    fn last_seen_all(&self, minions: &[String]) -> Result<Vec<(String, i64)>, StoreError>;
    /// Writes everything to disk.
    fn flush(&self) -> Result<(), StoreError>;
    /// Creates or replaces a user (on disk when this returns).
    fn put_user(&self, user: &User) -> Result<(), StoreError>;
    /// A user by name.
    fn user(&self, name: &str) -> Result<Option<User>, StoreError>;
    /// Every user, by name.
    fn users(&self) -> Result<Vec<User>, StoreError>;
    /// Removes a user and its tokens; says whether it existed.
    fn remove_user(&self, name: &str) -> Result<bool, StoreError>;
    /// Creates or replaces a token (on disk when this returns).
    fn put_token(&self, token: &Token) -> Result<(), StoreError>;
    /// A token by id.
    fn token(&self, id: &str) -> Result<Option<Token>, StoreError>;
    /// Every token.
    fn tokens(&self) -> Result<Vec<Token>, StoreError>;
    /// Removes a token; says whether it existed.
    fn remove_token(&self, id: &str) -> Result<bool, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use inventory::InventoryConfig;
    use protocol::MinionId;

    fn ret(jid: &Jid, m: &str) -> JobReturn {
        JobReturn {
            jid: jid.clone(),
            minion: MinionId::new(m).expect("id"),
            fun: "test.ping".into(),
            success: true,
            retcode: 0,
            data: serde_json::json!(true),
            started_ms: 1,
            ended_ms: 2,
        }
    }

    /// What an engine under test needs kept until it is done: its
    /// directory and, for PostgreSQL, the server.
    struct Held {
        _dir: tempfile::TempDir,
        _server: Option<postgres::server::LocalServer>,
    }

    /// Every engine, fresh: sled in a temp dir, PostgreSQL on a server of
    /// its own, and the in-memory reference.
    fn engines(inv: InventoryConfig) -> Vec<(Held, Box<dyn Store>)> {
        let dir = tempfile::tempdir().expect("tmp");
        let sled = SledStore::open(&dir.path().join("db"), inv.clone()).expect("open");
        let pg_dir = tempfile::tempdir().expect("tmp");
        let server = postgres::server::LocalServer::start(pg_dir.path(), false).expect("postgres");
        let pg = PgStore::connect(&server.url("postgres"), inv.clone()).expect("connect");
        vec![
            (
                Held {
                    _dir: dir,
                    _server: None,
                },
                Box::new(sled) as Box<dyn Store>,
            ),
            (
                Held {
                    _dir: pg_dir,
                    _server: Some(server),
                },
                Box::new(pg),
            ),
            (
                Held {
                    _dir: tempfile::tempdir().expect("tmp"),
                    _server: None,
                },
                Box::new(memory::MemoryStore::new(inv)),
            ),
        ]
    }

    #[test]
    fn a_collect_stub_is_read_back_as_it_was_and_so_is_one_stored_as_a_record() {
        let jid = Jid::from_micros(1_700_000_000_000_000).expect("jid");
        let mut r = ret(&jid, "web01.example.com");
        r.fun = "collect".into();
        r.retcode = -3;
        r.started_ms = -5;
        r.ended_ms = i64::MAX;
        let id = AssetId::parse("00000000000000a1").expect("id");
        let stub = return_stub(&r, &id, u64::MAX);
        let bytes = encode_stub(&r, &id, u64::MAX).expect("encode");
        assert!(bytes.len() < 80, "{} bytes", bytes.len());
        assert_eq!(
            decode_return(&jid, "web01.example.com", &bytes).expect("decode"),
            stub
        );
        // Stubs written before the compact form, and whole returns.
        let named = encode(&stub).expect("encode");
        assert_eq!(
            decode_return(&jid, "web01.example.com", &named).expect("decode"),
            stub
        );
        assert!(decode_return(&jid, "../x", &bytes).is_err());
        assert!(decode_return(&jid, "web01", &bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn change_records_read_back_from_both_encodings() {
        let doc = serde_json::json!({"facts": {"host": "a", "n": null}});
        let records = [
            inventory::ChangeRecord {
                version: 0,
                at_ms: 5,
                source: Source::Created,
                jid: Some(Jid::from_micros(1_700_000_000_000_000).expect("jid")),
                user: None,
                changes: Vec::new(),
                snapshot: Some(doc),
            },
            inventory::ChangeRecord {
                version: 7,
                at_ms: -1,
                source: Source::Manual,
                jid: None,
                user: Some("ops".into()),
                changes: vec![
                    inventory::document::FieldChange {
                        path: vec!["manual".into(), "rack".into()],
                        old: None,
                        new: Some(serde_json::json!("R1")),
                    },
                    inventory::document::FieldChange {
                        path: vec!["facts".into(), "disks".into()],
                        old: Some(serde_json::json!([1, {"a": 2.5}])),
                        new: None,
                    },
                ],
                snapshot: None,
            },
        ];
        for rec in &records {
            let compact = encode_change(rec).expect("compact");
            let named = encode(rec).expect("named");
            assert!(compact.len() < named.len());
            for bytes in [compact, named] {
                let back: inventory::ChangeRecord = decode(&bytes).expect("decode");
                assert_eq!(&back, rec);
            }
        }
    }

    #[test]
    fn returns_are_deduplicated_by_jid_and_minion() {
        for (_dir, s) in engines(InventoryConfig::default()) {
            dedup(s.as_ref());
        }
    }

    fn dedup(s: &dyn Store) {
        let jid = Jid::from_micros(1_700_000_000_000_000).expect("jid");
        assert!(s.put_return(&ret(&jid, "a"), 0).expect("put").is_new());
        assert!(!s.put_return(&ret(&jid, "a"), 0).expect("put").is_new());
        assert!(s.put_return(&ret(&jid, "b"), 0).expect("put").is_new());
        assert_eq!(s.returns(&jid).expect("list").len(), 2);
    }

    #[test]
    fn returns_stored_together_say_for_each_what_was_done_in_order() {
        for (_dir, s) in engines(InventoryConfig::default()) {
            let jid = Jid::from_micros(1_700_000_000_000_000).expect("jid");
            let collect_jid = Jid::from_micros(1_700_000_000_000_001).expect("jid");
            assert!(s.put_return(&ret(&jid, "a"), 0).expect("put").is_new());
            let mut collect = ret(&collect_jid, "c");
            collect.fun = "collect".into();
            collect.data = serde_json::json!({"host": "c"});
            let (a, b, b_again) = (ret(&jid, "a"), ret(&jid, "b"), ret(&jid, "b"));
            let batch = [&a, &b, &collect, &b_again, &collect];
            let stored: Vec<String> = s
                .put_returns(&batch, 5)
                .into_iter()
                .map(|r| match r.expect("stored") {
                    Stored::Duplicate => "duplicate".to_owned(),
                    Stored::Return => "return".to_owned(),
                    Stored::Asset { version, .. } => format!("asset v{version}"),
                })
                .collect();
            assert_eq!(
                stored,
                ["duplicate", "return", "asset v0", "duplicate", "duplicate"]
            );
            let mut minions = s.returned_minions(&jid).expect("list");
            minions.sort();
            assert_eq!(minions, ["a", "b"]);
            assert!(s.asset_of_minion("c").expect("read").is_some());
            assert!(s.put_returns(&[], 5).is_empty());

            // Collects of minions with assets and without, one minion
            // twice, and one already stored.
            let collect_of = |n: i64, m: &str, host: &str| {
                let mut r = ret(
                    &Jid::from_micros(1_700_000_000_000_100 + n).expect("jid"),
                    m,
                );
                r.fun = "collect".into();
                r.data = serde_json::json!({"host": host});
                r
            };
            let e0 = collect_of(0, "e", "e0");
            s.put_return(&e0, 6).expect("e");
            let (c1, d1, e1, c2) = (
                collect_of(1, "c", "c1"),
                collect_of(1, "d", "d1"),
                collect_of(1, "e", "e0"),
                collect_of(2, "c", "c2"),
            );
            let batch = [&c1, &d1, &e1, &c2, &e0];
            let stored: Vec<String> = s
                .put_returns(&batch, 7)
                .into_iter()
                .map(|r| match r.expect("stored") {
                    Stored::Duplicate => "duplicate".to_owned(),
                    Stored::Return => "return".to_owned(),
                    Stored::Asset {
                        version, changed, ..
                    } => format!("asset v{version} {changed}"),
                })
                .collect();
            assert_eq!(
                stored,
                [
                    "asset v1 true",
                    "asset v0 true",
                    "asset v0 false",
                    "asset v2 true",
                    "duplicate"
                ]
            );
            let c = s.asset_of_minion("c").expect("read").expect("c");
            assert_eq!(c.version, 2);
            assert_eq!(c.full_facts()["host"], "c2");
            assert_eq!(s.history(&c.id).expect("history").len(), 3);
            let jid2 = Jid::from_micros(1_700_000_000_000_102).expect("jid");
            assert_eq!(s.returned_minions(&jid2).expect("list"), ["c"]);
        }
    }

    #[test]
    fn collects_that_change_only_volatile_facts_keep_the_version_and_the_latest_values() {
        for (_dir, s) in engines(InventoryConfig::default()) {
            let collect = |n: i64, host: &str, uptime: u64| {
                let mut r = ret(
                    &Jid::from_micros(1_700_000_000_000_000 + n).expect("jid"),
                    "web1",
                );
                r.fun = "collect".into();
                r.data = serde_json::json!({"host": host, "uptime_seconds": uptime,
                    "mounts": {"/": {"size_bytes": 10, "used_bytes": uptime}}});
                r
            };
            let outcome = |r: &JobReturn, at: i64| match s.put_return(r, at).expect("stored") {
                Stored::Asset {
                    version, changed, ..
                } => (version, changed),
                other => panic!("not an asset: {other:?}"),
            };
            assert_eq!(outcome(&collect(0, "a", 1), 10), (0, true));
            for n in 1..4 {
                assert_eq!(outcome(&collect(n, "a", n as u64 + 1), 10 + n), (0, false));
            }
            let rec = s.asset_of_minion("web1").expect("read").expect("asset");
            assert_eq!(rec.version, 0);
            assert_eq!(rec.last_collect_ms, Some(13));
            assert_eq!(rec.full_facts()["uptime_seconds"], 4);
            assert_eq!(rec.full_facts()["mounts"]["/"]["used_bytes"], 4);
            assert_eq!(rec.full_facts()["mounts"]["/"]["size_bytes"], 10);

            // An edit in between: the next collect with the same facts
            // undoes what it changed.
            assert!(s.set_presence("web1", false, 20).expect("offline"));
            assert_eq!(outcome(&collect(4, "a", 5), 21), (2, true));
            assert_eq!(outcome(&collect(5, "a", 6), 22), (2, false));
            s.edit_asset(&rec.id, Source::Manual, Some("ops".into()), 23, &|r| {
                let mut doc = r.document.clone();
                doc["facts"]["host"] = serde_json::json!("typed by hand");
                doc["kind"] = serde_json::Value::Null;
                Ok(doc)
            })
            .expect("edit");
            assert_eq!(outcome(&collect(6, "a", 7), 24), (4, true));
            let rec = s.asset_of_minion("web1").expect("read").expect("asset");
            assert_eq!(rec.document["facts"]["host"], "a");
            assert_eq!(rec.document["kind"], "server");
            assert_eq!(rec.document["presence"], "online");
            assert_eq!(outcome(&collect(7, "b", 8), 25), (5, true));
            assert_eq!(outcome(&collect(8, "b", 9), 26), (5, false));

            // Each return refers to the version it left.
            for (n, host) in [(3, "a"), (5, "a"), (8, "b")] {
                let jid = Jid::from_micros(1_700_000_000_000_000 + n).expect("jid");
                let rets = s.returns(&jid).expect("returns");
                assert_eq!(rets.len(), 1);
                assert_eq!(rets[0].data["host"], host, "return {n}");
            }
            let history = s.history(&rec.id).expect("history");
            assert_eq!(history.len(), 6);
        }
    }

    #[test]
    fn last_seen_times_are_kept_one_by_one_and_together() {
        for (_dir, s) in engines(InventoryConfig::default()) {
            assert_eq!(s.last_seen("a").expect("read"), None);
            s.set_last_seen("a", 5).expect("one");
            s.set_last_seen_all(&[("a".into(), 7), ("b".into(), 9)])
                .expect("together");
            s.set_last_seen_all(&[]).expect("none");
            s.set_last_seen_all(&[("a".into(), 6)]).expect("older");
            assert_eq!(
                s.last_seen("a").expect("read"),
                Some(7),
                "the later time kept"
            );
            assert_eq!(s.last_seen("b").expect("read"), Some(9));
            let mut all = s
                .last_seen_all(&["b".into(), "never".into(), "a".into()])
                .expect("read together");
            all.sort();
            assert_eq!(all, [("a".to_owned(), 7), ("b".to_owned(), 9)]);
            assert!(s.last_seen_all(&[]).expect("none").is_empty());
        }
    }

    #[test]
    fn a_collect_over_ssh_is_recorded_with_its_source_on_the_same_asset() {
        for (_dir, s) in engines(InventoryConfig::default()) {
            let collect = |n: i64, host: &str| {
                let mut r = ret(
                    &Jid::from_micros(1_700_000_000_000_000 + n).expect("jid"),
                    "web1",
                );
                r.fun = "collect".into();
                r.data = serde_json::json!({"host": host});
                r
            };
            s.put_return_from(&collect(0, "a"), Source::Ssh, 0)
                .expect("ssh");
            s.put_return_from(&collect(1, "b"), Source::Ssh, 1)
                .expect("ssh");
            let first = s.asset_of_minion("web1").expect("read").expect("asset");
            s.put_return(&collect(2, "c"), 2).expect("minion");
            let rec = s.asset_of_minion("web1").expect("read").expect("asset");
            assert_eq!(
                rec.id, first.id,
                "the minion's collect lands on the same asset"
            );
            let sources: Vec<Source> = s
                .history(&rec.id)
                .expect("history")
                .iter()
                .map(|h| h.source)
                .collect();
            assert_eq!(sources, [Source::Created, Source::Ssh, Source::Collect]);
        }
    }

    #[test]
    fn retention_keeps_the_first_record_and_the_latest_changes() {
        let inv = InventoryConfig {
            history_keep: 2,
            ..InventoryConfig::default()
        };
        for (_held, s) in engines(inv) {
            retention(s.as_ref());
        }
    }

    fn retention(s: &dyn Store) {
        for n in 0..6 {
            let mut r = ret(
                &Jid::from_micros(1_700_000_000_000_000 + n).expect("jid"),
                "a",
            );
            r.fun = "collect".into();
            r.data = serde_json::json!({"host": format!("h{n}")});
            assert!(s.put_return(&r, n).expect("put").is_new());
        }
        let rec = s.asset_of_minion("a").expect("read").expect("asset");
        assert_eq!(rec.version, 5);
        let versions: Vec<u64> = s
            .history(&rec.id)
            .expect("history")
            .iter()
            .map(|h| h.version)
            .collect();
        assert_eq!(versions, vec![0, 4, 5]);
        let history = s.history(&rec.id).expect("history");
        assert_eq!(
            inventory::rebuild(&rec, &history, 3).expect("v3")["facts"]["host"],
            "h3"
        );
        assert_eq!(
            inventory::rebuild(&rec, &history, 0).expect("v0")["facts"]["host"],
            "h0"
        );
        assert!(inventory::rebuild(&rec, &history, 2).is_none(), "pruned");
    }

    #[test]
    fn documents_rebuilt_from_checkpoints_and_changes_match_every_collect() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("db");
        checkpoints(&|| {
            Box::new(SledStore::open(&path, InventoryConfig::default()).expect("open"))
        });
        let pg_dir = tempfile::tempdir().expect("tmp");
        let server = postgres::server::LocalServer::start(pg_dir.path(), false).expect("postgres");
        let url = server.url("postgres");
        checkpoints(&|| {
            Box::new(PgStore::connect(&url, InventoryConfig::default()).expect("connect"))
        });
    }

    /// Collects across two checkpoints with an edit between, reading the
    /// asset after each; then the same after opening the store again.
    fn checkpoints(open: &dyn Fn() -> Box<dyn Store>) {
        let collects = 2 * sled::CHECKPOINT_EVERY + 3;
        let facts =
            |n: u64| serde_json::json!({"host": "h", "n": n, "ram": n / 3, "serialnumber": "S1"});
        {
            let s = open();
            for n in 0..collects {
                let mut r = ret(
                    &Jid::from_micros(1_700_000_000_000_000 + n as i64).expect("jid"),
                    "a",
                );
                r.fun = "collect".into();
                r.data = facts(n);
                s.put_return(&r, n as i64).expect("put");
                if n == 20 {
                    let rec = s.asset_of_minion("a").expect("read").expect("asset");
                    s.edit_asset(&rec.id, Source::Manual, Some("ops".into()), 5, &|r| {
                        let mut d = r.document.clone();
                        d["manual"]["rack"] = serde_json::json!("R1");
                        Ok(d)
                    })
                    .expect("edit");
                }
                let rec = s.asset_of_minion("a").expect("read").expect("asset");
                assert_eq!(rec.facts()["n"], n, "after collect {n}");
            }
            s.flush().expect("flush");
        }
        let s = open();
        let rec = s.asset_of_minion("a").expect("read").expect("asset");
        assert_eq!(rec.facts()["n"], collects - 1);
        assert_eq!(rec.document["manual"]["rack"], "R1");
        assert_eq!(s.assets().expect("all"), vec![rec.clone()]);
        let history = s.history(&rec.id).expect("history");
        for v in 0..=rec.version {
            assert!(inventory::rebuild(&rec, &history, v).is_some(), "v{v}");
        }
    }

    #[test]
    fn expired_jobs_go_with_their_returns_and_newer_ones_stay() {
        for (_dir, s) in engines(InventoryConfig::default()) {
            expiry(s.as_ref());
        }
    }

    fn expiry(s: &dyn Store) {
        let jids: Vec<Jid> = (1..=3)
            .map(|n| Jid::from_micros(1_700_000_000_000_000 + n).expect("jid"))
            .collect();
        for (n, jid) in jids.iter().enumerate() {
            s.put_job(&JobRecord {
                jid: jid.clone(),
                target: Target::Glob("*".into()),
                fun: "test.ping".into(),
                args: Vec::new(),
                kwargs: BTreeMap::new(),
                expected: vec!["a".into(), "b".into()],
                user: "root".into(),
                started_ms: n as i64 * 1000,
                transport: Default::default(),
                refused: Default::default(),
            })
            .expect("job");
            s.put_return(&ret(jid, "a"), 0).expect("ret a");
            s.put_return(&ret(jid, "b"), 0).expect("ret b");
        }
        assert_eq!(s.expire_jobs(2000).expect("expire"), 2);
        assert!(s.job(&jids[0]).expect("read").is_none());
        assert!(s.returns(&jids[1]).expect("read").is_empty());
        assert_eq!(s.returns(&jids[2]).expect("read").len(), 2);
        let listed = s.jobs_before(None, 10).expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(
            listed[0].expected_count, 2,
            "the list counts the expected minions"
        );
        assert_eq!(s.expire_jobs(2000).expect("again"), 0);
        assert_eq!(s.drop_envelopes(i64::MAX / 1000).expect("envelopes"), 0);
    }

    #[test]
    fn changes_are_read_by_time_window_and_old_databases_get_indexed() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("db");
        let window = |s: &SledStore| -> Vec<i64> {
            s.changes_between(15, Some(35), None, usize::MAX)
                .expect("changes")
                .iter()
                .map(|(_, h)| h.at_ms)
                .collect()
        };
        {
            let s = SledStore::open(&path, InventoryConfig::default()).expect("open");
            for (n, at) in [10i64, 20, 30, 40].into_iter().enumerate() {
                for minion in ["a", "b"] {
                    let mut r = ret(
                        &Jid::from_micros(1_700_000_000_000_000 + n as i64).expect("jid"),
                        minion,
                    );
                    r.fun = "collect".into();
                    r.data = serde_json::json!({"n": n});
                    s.put_return(&r, at).expect("put");
                }
            }
            s.flush().expect("flush");
            assert_eq!(window(&s), vec![20, 20, 30, 30]);
            assert_eq!(
                s.changes_between(0, None, None, usize::MAX)
                    .expect("all")
                    .len(),
                8
            );
        }
        {
            // A database from before the index: drop the index entries.
            // (Opened as the store opens it: the store just dropped may
            // hold its file lock a moment longer.)
            let db = crate::sled::open_db(&path, true).expect("raw");
            let h = db.open_tree("history").expect("tree");
            let keys: Vec<_> = h
                .scan_prefix(b"~t")
                .keys()
                .map(|k| k.expect("key"))
                .collect();
            assert_eq!(keys.len(), 8);
            for k in keys {
                h.remove(k).expect("rm");
            }
            db.flush().expect("flush");
        }
        let s = SledStore::open(&path, InventoryConfig::default()).expect("reopen");
        assert_eq!(window(&s), vec![20, 20, 30, 30]);
    }

    #[test]
    fn batches_of_collects_are_indexed_by_time_in_order_after_a_crash_and_when_pruned() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("db");
        let collect = |n: i64, m: &str, v: i64| {
            let mut r = ret(
                &Jid::from_micros(1_700_000_000_000_000 + n).expect("jid"),
                m,
            );
            r.fun = "collect".into();
            r.data = serde_json::json!({"host": m, "v": v});
            r
        };
        let feed = |s: &SledStore, from: Option<(i64, &AssetId, u64)>, max: usize| {
            s.changes_between(0, None, from, max)
                .expect("changes")
                .into_iter()
                .map(|(a, h)| (h.at_ms, a.id, h.version))
                .collect::<Vec<_>>()
        };
        {
            let s = SledStore::open(&path, InventoryConfig::default()).expect("open");
            // Two batches and a single record in the same millisecond.
            let (c, a, b, d) = (
                collect(1, "c", 0),
                collect(1, "a", 0),
                collect(1, "b", 0),
                collect(1, "d", 0),
            );
            s.put_returns(&[&c, &a], 10);
            s.put_returns(&[&b, &d], 10);
            s.put_return(&collect(2, "e", 0), 10).expect("e");
            let (a2, b2) = (collect(3, "a", 1), collect(3, "b", 1));
            s.put_returns(&[&a2, &b2], 20);
            let all = feed(&s, None, usize::MAX);
            assert_eq!(all.len(), 7);
            assert!(all.is_sorted(), "{all:?}");
            // Paged as the API pages: each page starts at the last one's
            // last record.
            for size in 2..=4 {
                let mut paged = feed(&s, None, size);
                while let Some(last) = paged.last().cloned() {
                    let page = feed(&s, Some((last.0, &last.1, last.2)), size);
                    if page.len() < 2 {
                        break;
                    }
                    paged.extend(page.into_iter().skip(1));
                }
                assert_eq!(paged, all, "pages of {size}");
            }
            // A cursor at or past the window's end: nothing.
            let (at, id, v) = all.last().cloned().expect("last");
            assert!(
                s.changes_between(0, Some(at), Some((at, &id, v)), usize::MAX)
                    .expect("past the end")
                    .is_empty()
            );
            // A batch the master died in: its changes are written, its
            // time index entry is not.
            let (a3, c3) = (collect(4, "a", 2), collect(4, "c", 2));
            s.begin_batch(30, &["a", "c"]).expect("begin");
            let mut index = sled::BatchIndex::new();
            for r in [&a3, &c3] {
                s.put_return_in(r, Source::Collect, 30, Some(&mut index))
                    .expect("put");
            }
            assert_eq!(index.len(), 2);
            assert_eq!(feed(&s, None, usize::MAX).len(), 7);
            s.flush().expect("flush");
        }
        {
            let s = SledStore::open(&path, InventoryConfig::default()).expect("reopen");
            let all = feed(&s, None, usize::MAX);
            assert_eq!(all.len(), 9, "{all:?}");
            assert!(all.is_sorted());
            assert_eq!(all.iter().filter(|(at, _, _)| *at == 30).count(), 2);
            s.flush().expect("flush");
        }
        // Pruned records leave the batches' entries too.
        let inv = InventoryConfig {
            history_keep: 1,
            ..InventoryConfig::default()
        };
        let s = SledStore::open(&path, inv).expect("reopen pruning");
        // A minion twice in a batch: the batch prunes its own first record.
        let (a5, b5, a6) = (collect(5, "a", 3), collect(5, "b", 3), collect(6, "a", 4));
        s.put_returns(&[&a5, &b5, &a6], 40);
        let all = feed(&s, None, usize::MAX);
        let mut kept = 0;
        for a in s.assets().expect("assets") {
            kept += s.history(&a.id).expect("history").len();
        }
        assert_eq!(all.len(), kept, "{all:?}");
        let mut indexed = 0;
        for item in s.history.scan_prefix(b"~t") {
            let (k, v) = item.expect("entry");
            indexed += sled::index_entries(&k, &v).expect("entries").len();
        }
        assert_eq!(indexed, kept, "no entry is left for a pruned record");
        assert_eq!(s.history.scan_prefix(b"~p").count(), 0);
    }

    #[test]
    fn a_first_batch_cut_short_is_indexed_once() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("db");
        let collect = |m: &str| {
            let mut r = ret(&Jid::from_micros(1_700_000_000_000_000).expect("jid"), m);
            r.fun = "collect".into();
            r.data = serde_json::json!({"host": m});
            r
        };
        {
            let s = SledStore::open(&path, InventoryConfig::default()).expect("open");
            s.begin_batch(10, &["a", "b"]).expect("begin");
            let mut index = sled::BatchIndex::new();
            for m in ["a", "b"] {
                s.put_return_in(&collect(m), Source::Collect, 10, Some(&mut index))
                    .expect("put");
            }
            s.flush().expect("flush");
        }
        let s = SledStore::open(&path, InventoryConfig::default()).expect("reopen");
        let all = s
            .changes_between(0, None, None, usize::MAX)
            .expect("changes");
        assert_eq!(all.len(), 2, "{all:?}");
    }

    #[test]
    fn lowering_history_keep_never_prunes_records_the_asset_still_needs() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("db");
        {
            let s = SledStore::open(&path, InventoryConfig::default()).expect("open");
            for n in 0..(sled::CHECKPOINT_EVERY + 10) {
                let mut r = ret(
                    &Jid::from_micros(1_700_000_000_000_000 + n as i64).expect("jid"),
                    "a",
                );
                r.fun = "collect".into();
                r.data = serde_json::json!({"n": n});
                s.put_return(&r, n as i64).expect("put");
            }
            s.flush().expect("flush");
        }
        let inv = InventoryConfig {
            history_keep: 3,
            ..InventoryConfig::default()
        };
        let s = SledStore::open(&path, inv).expect("reopen");
        let rec = s.asset_of_minion("a").expect("read").expect("asset");
        // A no-op edit prunes; the asset must still read.
        s.edit_asset(&rec.id, Source::Manual, None, 99, &|r| {
            Ok(r.document.clone())
        })
        .expect("edit");
        let again = s
            .asset_of_minion("a")
            .expect("read after prune")
            .expect("asset");
        assert_eq!(again.facts()["n"], sled::CHECKPOINT_EVERY + 9);
    }

    #[test]
    fn pushed_returns_expire_by_their_time() {
        for (_dir, s) in engines(InventoryConfig::default()) {
            push_expiry(s.as_ref());
        }
    }

    fn push_expiry(s: &dyn Store) {
        let old = Jid::from_micros(1_000_000_000_000).expect("jid");
        let new = Jid::from_micros(1_700_000_000_000_000).expect("jid");
        s.put_return(&ret(&old, "a"), 0).expect("old");
        s.put_return(&ret(&new, "a"), 0).expect("new");
        s.expire_jobs(1_600_000_000_000).expect("expire");
        assert!(s.returned_minions(&old).expect("old").is_empty());
        assert_eq!(s.returned_minions(&new).expect("new"), vec!["a".to_owned()]);
    }

    #[test]
    fn a_database_that_cannot_be_opened_is_an_error_naming_its_path() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("db");
        {
            let s = SledStore::open(&path, InventoryConfig::default()).expect("open");
            s.flush().expect("flush");
        }
        // A damaged config file: sled must not start a new database over it.
        std::fs::write(path.join("conf"), b"segment_size: banana\n").expect("damage");
        let err = SledStore::open(&path, InventoryConfig::default())
            .err()
            .expect("refused");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        // A file where the directory should be.
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, b"x").expect("file");
        let err = SledStore::open(&file, InventoryConfig::default())
            .err()
            .expect("refused");
        assert!(err.to_string().contains("not-a-dir"), "{err}");
    }

    #[test]
    fn a_database_made_without_compression_still_opens() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("db");
        {
            let db = ::sled::Config::new()
                .path(&path)
                .use_compression(false)
                .open()
                .expect("plain db");
            db.open_tree("jobs").expect("tree");
            db.flush().expect("flush");
        }
        SledStore::open(&path, InventoryConfig::default()).expect("reopen plain");
    }

    #[test]
    fn jobs_survive_reopen_newest_first() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("db");
        {
            let s = SledStore::open(&path, InventoryConfig::default()).expect("open");
            for us in [1, 2, 3] {
                let jid = Jid::from_micros(1_700_000_000_000_000 + us).expect("jid");
                s.put_job(&JobRecord {
                    jid,
                    target: Target::Glob("*".into()),
                    fun: "test.ping".into(),
                    args: vec![],
                    kwargs: BTreeMap::new(),
                    expected: vec!["a".into()],
                    user: "root".into(),
                    started_ms: 0,
                    transport: Default::default(),
                    refused: Default::default(),
                })
                .expect("put");
            }
            s.flush().expect("flush");
        }
        let s = SledStore::open(&path, InventoryConfig::default()).expect("reopen");
        let jobs = s.jobs_before(None, 2).expect("recent");
        assert_eq!(jobs.len(), 2);
        assert!(jobs[0].jid > jobs[1].jid);
        let older = s.jobs_before(Some(&jobs[1].jid), 10).expect("older");
        assert!(!older.is_empty() && older.iter().all(|j| j.jid < jobs[1].jid));
    }
}
