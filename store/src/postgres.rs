//! [`Store`] on PostgreSQL: the engine several masters (a cluster's peers)
//! share, selected with `store = "postgres://…"`.
//!
//! Records are the same msgpack values the embedded engine keeps, in
//! `bytea` columns beside the keys that queries need. [`PgStore::connect`]
//! creates the schema or migrates it (table `cmdb_schema` holds its
//! version; peers starting together take turns). Every call blocks the
//! calling thread until PostgreSQL answered; the connections are driven by
//! a small runtime the store owns, so a call may come from any thread, a
//! tokio worker's included. A write is durable when its call returns,
//! except a return's, which is durable after the next [`Store::flush`].

mod keys_store;
pub mod server;

pub use keys_store::PgKeys;

use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime as PoolRuntime};
use futures_util::FutureExt;
use inventory::{AssetId, AssetRecord, ChangeRecord, InventoryConfig, Source};
use protocol::{Jid, JobReturn};
use tokio_postgres::{NoTls, Row, Statement};

use crate::access::{Token, User};
use crate::layout::{Head, Loaded, assemble, checkpoint_every, facts_digest, head_only};
use crate::{
    AssetEdit, JobRecord, JobSummary, Store, StoreError, Stored, decode, encode, is_collect,
};

/// The schema, one migration per entry; entry `n` takes the schema from
/// version `n` to `n + 1`. Text keys sort bytewise (`COLLATE "C"`), as the
/// embedded engine's keys do.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE jobs (
    jid text COLLATE "C" PRIMARY KEY,
    started_ms bigint NOT NULL,
    record bytea NOT NULL,
    envelope bytea
);
CREATE INDEX jobs_started_ms ON jobs (started_ms);
CREATE TABLE returns (
    jid text COLLATE "C" NOT NULL,
    minion text COLLATE "C" NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (jid, minion)
);
CREATE TABLE last_seen (
    minion text COLLATE "C" PRIMARY KEY,
    at_ms bigint NOT NULL
);
CREATE TABLE assets (
    id text COLLATE "C" PRIMARY KEY,
    record bytea NOT NULL,
    base bigint NOT NULL,
    version bigint NOT NULL,
    head bytea
) WITH (fillfactor = 50, toast_tuple_target = 128);
CREATE TABLE asset_minion (
    minion text COLLATE "C" PRIMARY KEY,
    id text COLLATE "C" NOT NULL
);
CREATE TABLE history (
    id text COLLATE "C" NOT NULL,
    version bigint NOT NULL,
    at_ms bigint NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (id, version)
);
CREATE INDEX history_at ON history (at_ms, id, version);
CREATE TABLE planned_serial (
    serial text COLLATE "C" PRIMARY KEY,
    id text COLLATE "C" NOT NULL
);
CREATE TABLE users (
    name text COLLATE "C" PRIMARY KEY,
    record bytea NOT NULL
);
CREATE TABLE tokens (
    id text COLLATE "C" PRIMARY KEY,
    username text COLLATE "C" NOT NULL,
    record bytea NOT NULL
);
CREATE INDEX tokens_username ON tokens (username);
"#,
    r#"
CREATE TABLE minion_keys (
    id text COLLATE "C" NOT NULL,
    state text NOT NULL CHECK (state IN ('accepted', 'pending', 'rejected', 'denied')),
    key bytea NOT NULL CHECK (length(key) = 32),
    changed bigint NOT NULL,
    PRIMARY KEY (id, state)
);
CREATE TABLE keys_version (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    version bigint NOT NULL
);
INSERT INTO keys_version (version) VALUES (0);
CREATE TABLE session_key (
    one boolean PRIMARY KEY DEFAULT true CHECK (one),
    epoch bigint NOT NULL,
    sealed bytea NOT NULL
);
"#,
    // 3: a counter of every key change, so peers list keys only when it moved.
    "ALTER TABLE keys_version ADD COLUMN changes bigint NOT NULL DEFAULT 0;",
];

/// An asset as a query reads it (table alias `a`): the checkpoint, the
/// head, and the change records after the checkpoint. `record` is kept out
/// of line (`toast_tuple_target`), so a collect that rewrites the head
/// alone writes a small row and leaves the document where it is.
const ASSET_COLUMNS: &str = "a.record, a.head, ARRAY(SELECT c.record FROM history c \
     WHERE c.id = a.id AND c.version > a.base AND c.version <= a.version ORDER BY c.version)";

/// Writes a change record ($1 id, $2 version, $3 time, $4 record).
const PUT_HISTORY: &str = "INSERT INTO history (id, version, at_ms, record) \
     VALUES ($1, $2, $3, $4) ON CONFLICT (id, version) DO UPDATE \
     SET at_ms = EXCLUDED.at_ms, record = EXCLUDED.record";

/// Parameters of one statement.
type Params<'p> = Vec<&'p (dyn tokio_postgres::types::ToSql + Sync)>;

/// Lets a transaction commit without waiting for its WAL to reach the
/// disk: what it wrote is durable at the next [`Store::flush`], which the
/// master calls once per batch of returns before it acknowledges them.
const ASYNC_COMMIT: &str = "SELECT set_config('synchronous_commit', 'off', true)";

/// An asset's write: a statement taking ($1 id, $2 version, $3 bytes).
struct AssetWrite {
    sql: &'static str,
    id: String,
    version: i64,
    bytes: Vec<u8>,
}

impl AssetWrite {
    fn params(&self) -> [&(dyn tokio_postgres::types::ToSql + Sync); 3] {
        [&self.id, &self.version, &self.bytes]
    }
}

/// Tables whose size [`Store::size_on_disk`] adds up.
const TABLES: &[&str] = &[
    "minion_keys",
    "session_key",
    "jobs",
    "returns",
    "last_seen",
    "assets",
    "asset_minion",
    "history",
    "planned_serial",
    "users",
    "tokens",
];

/// Advisory lock classes (the first key of `pg_advisory_xact_lock(int,
/// int)`): the schema's migration, and one minion's returns.
const SCHEMA_LOCK: i32 = 0x636d_6462;
const MINION_LOCK: i32 = 0x636d_6401;

/// Connections a store keeps at most.
const POOL_SIZE: usize = 16;
/// How long a call waits for a connection (a free one, or a new one made).
const CONNECT_WAIT: Duration = Duration::from_secs(10);
/// Assets read per query while scanning.
const SCAN_PAGE: i64 = 500;

/// Connections to a PostgreSQL database, shared by the store and the key
/// store made from it.
pub(crate) struct Conn {
    /// The runtime that drives the connections; shut down on drop.
    runtime: Option<tokio::runtime::Runtime>,
    /// Its handle, entered by every call.
    handle: tokio::runtime::Handle,
    /// The connections.
    pool: Pool,
    /// The database as errors name it (the URL without its password).
    shown: String,
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// [`Store`] on a PostgreSQL database.
pub struct PgStore {
    /// The connections.
    conn: std::sync::Arc<Conn>,
    /// History retention and the inventory's rules.
    inventory: InventoryConfig,
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    let url = mask_query_password(url);
    let url = url.as_str();
    if let Some((scheme, rest)) = url.split_once("://") {
        let (auth, host) = match rest.rsplit_once('@') {
            Some((a, h)) => (Some(a), h),
            None => (None, rest),
        };
        return match auth.and_then(|a| a.split_once(':')) {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        };
    }
    url.split_whitespace()
        .map(|kv| {
            if kv.starts_with("password=") {
                "password=***"
            } else {
                kv
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `password=…` in a URL's query masked.
fn mask_query_password(url: &str) -> String {
    let Some((head, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|kv| {
            if kv.starts_with("password=") {
                "password=***".to_owned()
            } else {
                kv.to_owned()
            }
        })
        .collect();
    format!("{head}?{}", query.join("&"))
}

fn int(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Engine(format!("{v} does not fit a bigint")))
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Column `i` of a row as bytes.
fn bytes(row: &Row, i: usize) -> Result<&[u8], StoreError> {
    row.try_get::<_, &[u8]>(i)
        .map_err(|e| StoreError::Engine(format!("reading column {i}: {e}")))
}

/// Column `i` of a row decoded as a record.
fn record<T: for<'de> serde::Deserialize<'de>>(row: &Row, i: usize) -> Result<T, StoreError> {
    decode(bytes(row, i)?)
}

/// The asset in columns `i`, `i + 1` and `i + 2` (see [`ASSET_COLUMNS`]),
/// with the version its checkpoint is at.
fn loaded(row: &Row, i: usize) -> Result<Loaded, StoreError> {
    let base: AssetRecord = record(row, i)?;
    let head: Option<Head> = match row
        .try_get::<_, Option<&[u8]>>(i + 1)
        .map_err(|e| StoreError::Engine(format!("reading column {}: {e}", i + 1)))?
    {
        Some(b) => Some(decode(b)?),
        None => None,
    };
    let changes: Vec<&[u8]> = row
        .try_get(i + 2)
        .map_err(|e| StoreError::Engine(format!("reading column {}: {e}", i + 2)))?;
    let mut by_version = std::collections::HashMap::new();
    for c in changes {
        let c: ChangeRecord = decode(c)?;
        by_version.insert(c.version, c);
    }
    assemble(
        base,
        head,
        |_, v| Ok(by_version.remove(&v)),
        StoreError::Engine,
    )
}

/// The asset id stored as `minion`'s mapping, checked.
fn stored_id(id: &str, minion: &str) -> Result<AssetId, StoreError> {
    AssetId::parse(id)
        .ok_or_else(|| StoreError::Engine(format!("asset of {minion}: bad id {id:?}")))
}

/// The lock key of a minion's returns (FNV-1a of its id).
fn minion_key(minion: &str) -> i32 {
    let h = minion.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    i32::from_ne_bytes(h.to_ne_bytes())
}

/// The jid of a time in milliseconds, for comparisons with stored jids.
fn jid_at(ms: i64) -> Option<Jid> {
    Jid::from_micros(ms.saturating_mul(1000))
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:pass@host/db`),
    /// creating or migrating its schema.
    pub fn connect(url: &str, inventory: InventoryConfig) -> Result<PgStore, StoreError> {
        let shown = redact(url);
        let open_err = |reason: String| StoreError::Open {
            path: shown.clone(),
            reason,
        };
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| open_err(format!("not a PostgreSQL connection string: {e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cmdb-postgres")
            .enable_all()
            .build()
            .map_err(|e| open_err(format!("starting the connection runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let pool = {
            let _in = handle.enter();
            let manager = Manager::from_config(
                config,
                NoTls,
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            );
            Pool::builder(manager)
                .max_size(POOL_SIZE)
                .runtime(PoolRuntime::Tokio1)
                .wait_timeout(Some(CONNECT_WAIT))
                .create_timeout(Some(CONNECT_WAIT))
                .recycle_timeout(Some(CONNECT_WAIT))
                .build()
                .map_err(|e| open_err(e.to_string()))?
        };
        let store = PgStore {
            conn: std::sync::Arc::new(Conn {
                runtime: Some(runtime),
                handle,
                pool,
                shown: shown.clone(),
            }),
            inventory,
        };
        store
            .conn
            .run(store.conn.migrate())
            .map_err(|e| open_err(e.to_string()))?;
        Ok(store)
    }

    /// Reclaims the room of rows rewritten or deleted since the last time
    /// (`VACUUM` of cmdb's tables): what autovacuum does on its own within
    /// a minute or so of enough changes; for measuring disk use.
    pub fn vacuum(&self) -> Result<(), StoreError> {
        self.conn.run(async {
            let c = self.conn.client().await?;
            c.batch_execute(&format!("VACUUM {}", TABLES.join(", ")))
                .await
                .map_err(|e| self.conn.err(e))
        })
    }

    /// The session key the peers of a master cluster share: its epoch and
    /// its bytes as the master sealed them, if one was offered yet.
    pub fn session_key(&self) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        self.conn.run(async {
            let rows = self
                .conn
                .rows("SELECT epoch, sealed FROM session_key", &[])
                .await?;
            let Some(r) = rows.first() else {
                return Ok(None);
            };
            let epoch: i64 = r.try_get(0).map_err(|e| self.conn.err(e))?;
            Ok(Some((
                u64::try_from(epoch).unwrap_or(0),
                bytes(r, 1)?.to_vec(),
            )))
        })
    }

    /// Makes `sealed` of `epoch` the shared session key if the current one
    /// is still of epoch `seen` (none: there is none yet); says whether it
    /// did (another peer may have rotated first).
    pub fn offer_session_key(
        &self,
        seen: Option<u64>,
        epoch: u64,
        sealed: &[u8],
    ) -> Result<bool, StoreError> {
        let epoch = int(epoch)?;
        let n = match seen {
            None => self.conn.run(self.conn.exec(
                "INSERT INTO session_key (epoch, sealed) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&epoch, &sealed],
            ))?,
            Some(seen) => {
                let seen = int(seen)?;
                self.conn.run(self.conn.exec(
                    "UPDATE session_key SET epoch = $2, sealed = $3 WHERE epoch = $1",
                    &[&seen, &epoch, &sealed],
                ))?
            }
        };
        Ok(n == 1)
    }

    /// The minion keys kept in the same database.
    pub fn keys(&self) -> keys_store::PgKeys {
        keys_store::PgKeys::new(self.conn.clone())
    }
}

impl Conn {
    /// A transaction on `c`.
    pub(crate) async fn begin<'a>(
        &'a self,
        c: &'a mut deadpool_postgres::Object,
    ) -> Result<Tx<'a>, StoreError> {
        let tx = c.transaction().await.map_err(|e| self.err(e))?;
        Ok(Tx { store: self, tx })
    }

    /// Runs `f` to its end on the calling thread, its I/O driven by the
    /// store's runtime.
    pub(crate) fn run<T>(
        &self,
        f: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let _in = self.handle.enter();
        // Unconstrained: called from a task of another runtime, whose
        // cooperative budget, once spent, would defer our wakeups until
        // that task yields, which it cannot while it waits here.
        futures_executor::block_on(tokio::task::coop::unconstrained(f))
    }

    pub(crate) fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Engine(format!("PostgreSQL {}: {e}", self.shown))
    }

    /// A connection from the pool.
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(|e| {
            StoreError::Engine(format!("PostgreSQL {} is unreachable: {e}", self.shown))
        })
    }

    /// Creates the schema, or brings it to this version.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(|e| self.err(e))?;
        tx.execute("SELECT pg_advisory_xact_lock($1, 0)", &[&SCHEMA_LOCK])
            .await
            .map_err(|e| self.err(e))?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS cmdb_schema (version integer NOT NULL)")
            .await
            .map_err(|e| self.err(e))?;
        let row = tx
            .query_one("SELECT COALESCE(max(version), 0) FROM cmdb_schema", &[])
            .await
            .map_err(|e| self.err(e))?;
        let at: i32 = row.try_get(0).map_err(|e| self.err(e))?;
        let known = MIGRATIONS.len();
        let at = usize::try_from(at).unwrap_or(0);
        if at > known {
            return Err(StoreError::Engine(format!(
                "the database's schema is at version {at}, newer than this cmdb knows ({known}): \
                 upgrade cmdb on this master"
            )));
        }
        for (n, sql) in MIGRATIONS.iter().enumerate().skip(at) {
            tx.batch_execute(sql)
                .await
                .map_err(|e| self.err(format!("schema migration {}: {e}", n + 1)))?;
            let version = i32::try_from(n + 1).unwrap_or(i32::MAX);
            tx.execute("INSERT INTO cmdb_schema (version) VALUES ($1)", &[&version])
                .await
                .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Rows of a query on a pooled connection.
    pub(crate) async fn rows(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let c = self.client().await?;
        let st = c.prepare_cached(sql).await.map_err(|e| self.err(e))?;
        c.query(&st, params).await.map_err(|e| self.err(e))
    }

    /// Rows a statement changed, on a pooled connection.
    pub(crate) async fn exec(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let c = self.client().await?;
        let st = c.prepare_cached(sql).await.map_err(|e| self.err(e))?;
        c.execute(&st, params).await.map_err(|e| self.err(e))
    }

    /// The records in column 0 of a query's rows.
    pub(crate) fn records<T: for<'de> serde::Deserialize<'de>>(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<T>, StoreError> {
        self.run(async {
            self.rows(sql, params)
                .await?
                .iter()
                .map(|r| record(r, 0))
                .collect()
        })
    }

    /// The record in column 0 of a query's row, if any.
    pub(crate) fn one<T: for<'de> serde::Deserialize<'de>>(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<T>, StoreError> {
        Ok(self.records(sql, params)?.into_iter().next())
    }
}

/// What a transaction works with: the store's error naming, on one
/// connection's transaction.
pub(crate) struct Tx<'a> {
    store: &'a Conn,
    tx: deadpool_postgres::Transaction<'a>,
}

impl<'a> Tx<'a> {
    pub(crate) async fn rows(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let st = self.prepared(sql).await?;
        self.run_query(&st, params).await
    }

    pub(crate) async fn exec(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let st = self.prepared(sql).await?;
        self.run_exec(&st, params).await
    }

    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await.map_err(|e| self.store.err(e))
    }

    /// An asset, locked until the transaction ends. Locked first, then
    /// read by a statement of its own: one that waited for the lock reads
    /// the change records the writer before it added.
    async fn asset_for_update(&self, id: &str) -> Result<Option<Loaded>, StoreError> {
        if self.lock_asset(id).await?.is_none() {
            return Ok(None);
        }
        self.read_asset(id).await
    }

    /// Locks an asset until the transaction ends; its head, if it has one
    /// (none: the asset does not exist).
    async fn lock_asset(&self, id: &str) -> Result<Option<Option<Head>>, StoreError> {
        match self
            .rows("SELECT head FROM assets WHERE id = $1 FOR UPDATE", &[&id])
            .await?
            .first()
        {
            Some(r) => {
                let head: Option<&[u8]> = r.try_get(0).map_err(|e| self.store.err(e))?;
                Ok(Some(head.map(decode::<Head>).transpose()?))
            }
            None => Ok(None),
        }
    }

    /// An asset read whole (see [`Tx::asset_for_update`]).
    async fn read_asset(&self, id: &str) -> Result<Option<Loaded>, StoreError> {
        match self
            .rows(
                &format!("SELECT {ASSET_COLUMNS} FROM assets a WHERE a.id = $1"),
                &[&id],
            )
            .await?
            .first()
        {
            Some(r) => loaded(r, 0).map(Some),
            None => Ok(None),
        }
    }

    /// A prepared statement (prepared once per connection, then cached).
    pub(crate) async fn prepared(&self, sql: &str) -> Result<Statement, StoreError> {
        self.tx
            .prepare_cached(sql)
            .await
            .map_err(|e| self.store.err(e))
    }

    /// Runs a prepared statement; returns the rows it changed.
    pub(crate) async fn run_exec(
        &self,
        st: &Statement,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        self.tx
            .execute(st, params)
            .await
            .map_err(|e| self.store.err(e))
    }

    /// Runs a prepared query.
    pub(crate) async fn run_query(
        &self,
        st: &Statement,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        self.tx
            .query(st, params)
            .await
            .map_err(|e| self.store.err(e))
    }

    /// How an asset read at checkpoint `base` (none: a new one) is written:
    /// its head alone while it is close to the checkpoint, else the whole
    /// record as the new checkpoint. A collect gives the digest of the
    /// stable facts it left (see [`Head`]).
    fn asset_write(
        &self,
        rec: &AssetRecord,
        base: Option<u64>,
        every: u64,
        facts_digest: Option<u64>,
    ) -> Result<AssetWrite, StoreError> {
        let (id, version) = (rec.id.as_str().to_owned(), int(rec.version)?);
        Ok(match base {
            Some(b) if head_only(rec, b, every) => AssetWrite {
                sql: "UPDATE assets SET version = $2, head = $3 WHERE id = $1",
                id,
                version,
                bytes: encode(&Head {
                    facts_digest,
                    ..Head::of(rec)
                })?,
            },
            _ => AssetWrite {
                sql: "INSERT INTO assets (id, record, base, version, head) \
                      VALUES ($1, $3, $2, $2, NULL) ON CONFLICT (id) DO UPDATE \
                      SET record = EXCLUDED.record, base = EXCLUDED.base, \
                      version = EXCLUDED.version, head = NULL",
                id,
                version,
                bytes: encode(rec)?,
            },
        })
    }

    /// Writes an asset (see [`Tx::asset_write`]).
    async fn put_asset(
        &self,
        rec: &AssetRecord,
        base: Option<u64>,
        every: u64,
    ) -> Result<(), StoreError> {
        let w = self.asset_write(rec, base, every, None)?;
        self.exec(w.sql, &w.params()).await.map(drop)
    }

    async fn put_history(&self, id: &AssetId, h: &ChangeRecord) -> Result<(), StoreError> {
        self.exec(
            PUT_HISTORY,
            &[&id.as_str(), &int(h.version)?, &h.at_ms, &encode(h)?],
        )
        .await
        .map(drop)
    }

    /// Drops an asset's oldest change records beyond `keep` (0: none),
    /// never the first record, the latest `keep`, or one after the asset's
    /// checkpoint (reading the asset replays those).
    async fn prune(&self, id: &AssetId, keep: usize) -> Result<(), StoreError> {
        if keep == 0 {
            return Ok(());
        }
        self.exec(
            "DELETE FROM history h USING ( \
                 SELECT version, row_number() OVER (ORDER BY version) AS n, \
                        count(*) OVER () AS total \
                 FROM history WHERE id = $1) v \
             WHERE h.id = $1 AND h.version = v.version AND v.n > 1 AND v.n <= v.total - $2 \
             AND h.version <= (SELECT base FROM assets WHERE id = $1)",
            &[&id.as_str(), &limit(keep)],
        )
        .await
        .map(drop)
    }
}

impl PgStore {
    fn every(&self) -> u64 {
        checkpoint_every(self.inventory.history_keep)
    }

    /// Assets by a query selecting [`ASSET_COLUMNS`] first.
    fn assets_where(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<AssetRecord>, StoreError> {
        self.conn.run(async {
            self.conn
                .rows(sql, params)
                .await?
                .iter()
                .map(|r| loaded(r, 0).map(|l| l.rec))
                .collect()
        })
    }

    /// Returns that change no asset (not collects), stored in one
    /// transaction by one statement; a return already stored, or twice in
    /// `rets`, is a duplicate.
    async fn put_plain_returns_async(
        &self,
        rets: &[&JobReturn],
    ) -> Result<Vec<Stored>, StoreError> {
        let mut jids = Vec::with_capacity(rets.len());
        let mut minions = Vec::with_capacity(rets.len());
        let mut records = Vec::with_capacity(rets.len());
        for r in rets {
            jids.push(r.jid.as_str());
            minions.push(r.minion.as_str());
            records.push(encode(*r)?);
        }
        let mut c = self.conn.client().await?;
        let tx = self.conn.begin(&mut c).await?;
        let set = tx.prepared(ASYNC_COMMIT).await?;
        let insert = tx
            .prepared(
                "INSERT INTO returns (jid, minion, record) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[]) \
                 ON CONFLICT DO NOTHING RETURNING jid, minion",
            )
            .await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&jids, &minions, &records];
        let (_, rows) =
            futures_util::try_join!(tx.run_query(&set, &[]), tx.run_query(&insert, &params))?;
        tx.commit().await?;
        let mut inserted = std::collections::HashSet::with_capacity(rows.len());
        for r in &rows {
            let jid: String = r.try_get(0).map_err(|e| self.conn.err(e))?;
            let minion: String = r.try_get(1).map_err(|e| self.conn.err(e))?;
            inserted.insert((jid, minion));
        }
        Ok(rets
            .iter()
            .map(|r| {
                // The first of two alike is the one stored.
                if inserted.remove(&(r.jid.as_str().to_owned(), r.minion.as_str().to_owned())) {
                    Stored::Return
                } else {
                    Stored::Duplicate
                }
            })
            .collect())
    }

    /// Collects of different minions in one transaction: locked, read and
    /// written by a few statements for all of them. Says what was stored
    /// for each, or `None` for a collect left to be stored on its own (its
    /// minion has no asset yet, or shares it with another in `rets`).
    async fn put_collects_async(
        &self,
        rets: &[&JobReturn],
        now_ms: i64,
    ) -> Result<Vec<Option<Stored>>, StoreError> {
        let jids: Vec<&str> = rets.iter().map(|r| r.jid.as_str()).collect();
        let minions: Vec<&str> = rets.iter().map(|r| r.minion.as_str()).collect();
        // Locks in one order, so that two batches cannot wait on each other.
        let mut locks: Vec<i32> = minions.iter().map(|m| minion_key(m)).collect();
        locks.sort_unstable();
        locks.dedup();
        let mut c = self.conn.client().await?;
        let tx = self.conn.begin(&mut c).await?;
        let set = tx.prepared(ASYNC_COMMIT).await?;
        let lock = tx
            .prepared("SELECT pg_advisory_xact_lock($1, k) FROM unnest($2::int[]) AS k")
            .await?;
        let dup = tx
            .prepared(
                "SELECT r.minion FROM returns r \
                 JOIN unnest($1::text[], $2::text[]) AS q(jid, minion) \
                 ON r.jid = q.jid AND r.minion = q.minion",
            )
            .await?;
        let map = tx
            .prepared("SELECT minion, id FROM asset_minion WHERE minion = ANY($1)")
            .await?;
        let lock_params: Params = vec![&MINION_LOCK, &locks];
        let pair_params: Params = vec![&jids, &minions];
        let map_params: Params = vec![&minions];
        let (_, _, dup_rows, map_rows) = futures_util::try_join!(
            tx.run_query(&set, &[]),
            tx.run_query(&lock, &lock_params),
            tx.run_query(&dup, &pair_params),
            tx.run_query(&map, &map_params),
        )?;
        let column = |r: &Row, i: usize| -> Result<String, StoreError> {
            r.try_get(i).map_err(|e| self.conn.err(e))
        };
        let mut dups = std::collections::HashSet::new();
        for r in &dup_rows {
            dups.insert(column(r, 0)?);
        }
        let mut mapped = std::collections::HashMap::new();
        for r in &map_rows {
            mapped.insert(column(r, 0)?, column(r, 1)?);
        }
        // The assets to update here: mapped, and each by one minion only.
        let mut ids: Vec<&str> = rets
            .iter()
            .filter(|r| !dups.contains(r.minion.as_str()))
            .filter_map(|r| mapped.get(r.minion.as_str()).map(String::as_str))
            .collect();
        ids.sort_unstable();
        let shared: std::collections::HashSet<&str> = ids
            .windows(2)
            .filter(|w| w[0] == w[1])
            .map(|w| w[0])
            .collect();
        ids.dedup();
        ids.retain(|id| !shared.contains(id));
        // Assets another transaction holds (an import, say) are left to
        // the one-by-one path, so the batch never waits on them.
        let lock_assets = tx
            .prepared(
                "SELECT id, head FROM assets WHERE id = ANY($1) \
                 ORDER BY id FOR UPDATE SKIP LOCKED",
            )
            .await?;
        // Read by a statement of its own, after the locks: see
        // `Tx::asset_for_update`.
        let read = tx
            .prepared(&format!(
                "SELECT {ASSET_COLUMNS} FROM assets a WHERE a.id = ANY($1)"
            ))
            .await?;
        let id_params: Params = vec![&ids];
        let mut heads = std::collections::HashMap::new();
        for r in tx.run_query(&lock_assets, &id_params).await? {
            let head: Option<&[u8]> = r.try_get(1).map_err(|e| self.conn.err(e))?;
            heads.insert(column(&r, 0)?, head.map(decode::<Head>).transpose()?);
        }
        // A collect whose stable facts are those a collect by the same
        // minion left (the head's digest) rewrites the head alone, without
        // the document being read; the others read their asset whole.
        let volatile = &self.inventory.volatile;
        let mut digests = std::collections::HashMap::new();
        let mut unchanged = std::collections::HashMap::new();
        let mut locked: Vec<&str> = Vec::new();
        for r in rets {
            let minion = r.minion.as_str();
            let Some((id, head)) = mapped
                .get(minion)
                .filter(|_| !dups.contains(minion))
                .and_then(|id| Some((id, heads.remove(id)?)))
            else {
                continue;
            };
            let digest = facts_digest(&r.data, volatile);
            match head {
                Some(h) if h.unchanged_by(minion, digest) => {
                    unchanged.insert(id.as_str(), h.collected(&r.data, volatile, now_ms));
                }
                _ => {
                    digests.insert(minion, digest);
                    locked.push(id);
                }
            }
        }
        let locked_params: Params = vec![&locked];
        let rows = if locked.is_empty() {
            Vec::new()
        } else {
            tx.run_query(&read, &locked_params).await?
        };
        let mut existing = std::collections::HashMap::new();
        for r in &rows {
            let l = loaded(r, 0)?;
            existing.insert(l.rec.id.as_str().to_owned(), l);
        }
        let every = self.every();
        let mut out = Vec::with_capacity(rets.len());
        let (mut stubs, mut history, mut writes, mut changed) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut head_ids, mut head_records) = (Vec::new(), Vec::new());
        for r in rets {
            let minion = r.minion.as_str();
            if dups.contains(minion) {
                out.push(Some(Stored::Duplicate));
                continue;
            }
            if let Some((id, h)) = mapped
                .get(minion)
                .and_then(|id| unchanged.remove_entry(id.as_str()))
            {
                let id = stored_id(id, minion)?;
                stubs.push((
                    r.jid.as_str(),
                    minion,
                    crate::encode_stub(r, &id, h.version)?,
                ));
                head_ids.push(id.as_str().to_owned());
                head_records.push(encode(&h)?);
                out.push(Some(Stored::Asset {
                    id,
                    version: h.version,
                    changed: false,
                }));
                continue;
            }
            let Some(l) = mapped.get(minion).and_then(|id| existing.remove(id)) else {
                out.push(None);
                continue;
            };
            let digest = digests.get(minion).copied().unwrap_or_default();
            let (base, id) = (l.base, l.rec.id.clone());
            let (rec, entries) = inventory::apply_collect(
                Some(l.rec),
                minion,
                &r.data,
                &r.jid,
                &self.inventory,
                now_ms,
                Source::Collect,
            );
            if rec.id != id {
                return Err(StoreError::Engine(format!(
                    "a collect of {minion} moved asset {id} to {}",
                    rec.id
                )));
            }
            stubs.push((
                r.jid.as_str(),
                minion,
                crate::encode_stub(r, &rec.id, rec.version)?,
            ));
            for e in &entries {
                history.push((
                    rec.id.as_str().to_owned(),
                    int(e.version)?,
                    e.at_ms,
                    encode(e)?,
                ));
            }
            writes.push(tx.asset_write(&rec, Some(base), every, Some(digest))?);
            if !entries.is_empty() {
                changed.push(rec.id.clone());
            }
            out.push(Some(Stored::Asset {
                id: rec.id,
                version: rec.version,
                changed: !entries.is_empty(),
            }));
        }
        if !stubs.is_empty() {
            let insert = tx
                .prepared(
                    "INSERT INTO returns (jid, minion, record) \
                     SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[])",
                )
                .await?;
            let put_history = tx
                .prepared(
                    "INSERT INTO history (id, version, at_ms, record) \
                     SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bytea[]) \
                     ON CONFLICT (id, version) DO UPDATE \
                     SET at_ms = EXCLUDED.at_ms, record = EXCLUDED.record",
                )
                .await?;
            let mut statements = Vec::with_capacity(writes.len());
            for w in &writes {
                statements.push(tx.prepared(w.sql).await?);
            }
            let s_jids: Vec<&str> = stubs.iter().map(|s| s.0).collect();
            let s_minions: Vec<&str> = stubs.iter().map(|s| s.1).collect();
            let s_records: Vec<&[u8]> = stubs.iter().map(|s| s.2.as_slice()).collect();
            let h_ids: Vec<&str> = history.iter().map(|h| h.0.as_str()).collect();
            let h_versions: Vec<i64> = history.iter().map(|h| h.1).collect();
            let h_at: Vec<i64> = history.iter().map(|h| h.2).collect();
            let h_records: Vec<&[u8]> = history.iter().map(|h| h.3.as_slice()).collect();
            let insert_params: Params = vec![&s_jids, &s_minions, &s_records];
            let history_params: Params = vec![&h_ids, &h_versions, &h_at, &h_records];
            let write_params: Vec<_> = writes.iter().map(AssetWrite::params).collect();
            let put_heads = tx
                .prepared(
                    "UPDATE assets SET head = q.head \
                     FROM unnest($1::text[], $2::bytea[]) AS q(id, head) WHERE assets.id = q.id",
                )
                .await?;
            let head_bytes: Vec<&[u8]> = head_records.iter().map(Vec::as_slice).collect();
            let heads_params: Params = vec![&head_ids, &head_bytes];
            let mut all = vec![tx.run_exec(&insert, &insert_params).boxed()];
            if !history.is_empty() {
                all.push(tx.run_exec(&put_history, &history_params).boxed());
            }
            if !head_ids.is_empty() {
                all.push(tx.run_exec(&put_heads, &heads_params).boxed());
            }
            for (st, p) in statements.iter().zip(&write_params) {
                all.push(tx.run_exec(st, p).boxed());
            }
            futures_util::future::try_join_all(all).await?;
            let keep = self.inventory.history_keep;
            futures_util::future::try_join_all(changed.iter().map(|id| tx.prune(id, keep))).await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    async fn put_return_async(
        &self,
        ret: &JobReturn,
        source: Source,
        now_ms: i64,
    ) -> Result<Stored, StoreError> {
        if !is_collect(ret) {
            let stored = self.put_plain_returns_async(&[ret]).await?;
            return Ok(stored.into_iter().next().unwrap_or(Stored::Duplicate));
        }
        let (jid, minion) = (ret.jid.as_str(), ret.minion.as_str());
        let mut c = self.conn.client().await?;
        let tx = self.conn.begin(&mut c).await?;
        // Statements go out together (pipelined, in this order) once each
        // is prepared on the connection: one round trip instead of several.
        let set = tx.prepared(ASYNC_COMMIT).await?;
        // One minion's collects are stored one at a time, by every peer:
        // the lock is taken before the duplicate check reads.
        let lock = tx.prepared("SELECT pg_advisory_xact_lock($1, $2)").await?;
        let dup = tx
            .prepared("SELECT 1 FROM returns WHERE jid = $1 AND minion = $2")
            .await?;
        let map = tx
            .prepared("SELECT id FROM asset_minion WHERE minion = $1")
            .await?;
        let key = minion_key(minion);
        let lock_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&MINION_LOCK, &key];
        let dup_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&jid, &minion];
        let map_params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&minion];
        let (_, _, dup, map) = futures_util::try_join!(
            tx.run_query(&set, &[]),
            tx.run_query(&lock, &lock_params),
            tx.run_query(&dup, &dup_params),
            tx.run_query(&map, &map_params),
        )?;
        if !dup.is_empty() {
            return Ok(Stored::Duplicate);
        }
        let mapped: Option<String> = match map.first() {
            Some(r) => Some(r.try_get(0).map_err(|e| self.conn.err(e))?),
            None => None,
        };
        let digest = facts_digest(&ret.data, &self.inventory.volatile);
        let mut existing = None;
        if let Some(id) = &mapped
            && let Some(head) = tx.lock_asset(id).await?
        {
            if let Some(h) = head.filter(|h| h.unchanged_by(minion, digest)) {
                // The stable facts a collect by this minion left: the head
                // alone is rewritten.
                let asset = stored_id(id, minion)?;
                let h = h.collected(&ret.data, &self.inventory.volatile, now_ms);
                let stub = crate::encode_stub(ret, &asset, h.version)?;
                let head = encode(&h)?;
                let insert = tx
                    .prepared("INSERT INTO returns (jid, minion, record) VALUES ($1, $2, $3)")
                    .await?;
                let put_head = tx
                    .prepared("UPDATE assets SET head = $2 WHERE id = $1")
                    .await?;
                let insert_params: Params = vec![&jid, &minion, &stub];
                let head_params: Params = vec![id, &head];
                futures_util::try_join!(
                    tx.run_exec(&insert, &insert_params),
                    tx.run_exec(&put_head, &head_params),
                )?;
                tx.commit().await?;
                return Ok(Stored::Asset {
                    id: asset,
                    version: h.version,
                    changed: false,
                });
            }
            existing = tx.read_asset(id).await?;
        }
        if existing.is_none()
            && let Some(serial) = ret.data["serialnumber"].as_str()
            && let Some(r) = tx
                .rows(
                    "DELETE FROM planned_serial WHERE serial = $1 RETURNING id",
                    &[&serial],
                )
                .await?
                .first()
        {
            let id: String = r.try_get(0).map_err(|e| self.conn.err(e))?;
            existing = tx.asset_for_update(&id).await?;
        }
        let base = existing.as_ref().map(|l| l.base);
        let (rec, entries) = inventory::apply_collect(
            existing.map(|l| l.rec),
            minion,
            &ret.data,
            &ret.jid,
            &self.inventory,
            now_ms,
            source,
        );
        let stub = crate::encode_stub(ret, &rec.id, rec.version)?;
        let insert = tx
            .prepared("INSERT INTO returns (jid, minion, record) VALUES ($1, $2, $3)")
            .await?;
        let remap = tx
            .prepared(
                "INSERT INTO asset_minion (minion, id) VALUES ($1, $2) \
                 ON CONFLICT (minion) DO UPDATE SET id = EXCLUDED.id",
            )
            .await?;
        let history: Vec<(i64, Vec<u8>, i64)> = entries
            .iter()
            .map(|e| Ok((int(e.version)?, encode(e)?, e.at_ms)))
            .collect::<Result<_, StoreError>>()?;
        let put_history = tx.prepared(PUT_HISTORY).await?;
        let asset = tx.asset_write(&rec, base, self.every(), Some(digest))?;
        let put_asset = tx.prepared(asset.sql).await?;
        let rec_id = rec.id.as_str();
        let insert_params: Params = vec![&jid, &minion, &stub];
        let remap_params: Params = vec![&minion, &rec_id];
        let history_params: Vec<Params> = history
            .iter()
            .map(|(version, record, at_ms)| -> Params { vec![&rec_id, version, at_ms, record] })
            .collect();
        let asset_params = asset.params();
        let mut writes = vec![tx.run_exec(&insert, &insert_params).boxed()];
        if mapped.as_deref() != Some(rec_id) {
            writes.push(tx.run_exec(&remap, &remap_params).boxed());
        }
        for p in &history_params {
            writes.push(tx.run_exec(&put_history, p).boxed());
        }
        writes.push(tx.run_exec(&put_asset, &asset_params).boxed());
        futures_util::future::try_join_all(writes).await?;
        let changed = !entries.is_empty();
        if changed {
            tx.prune(&rec.id, self.inventory.history_keep).await?;
        }
        tx.commit().await?;
        Ok(Stored::Asset {
            id: rec.id,
            version: rec.version,
            changed,
        })
    }

    async fn edit_async(
        &self,
        id: &AssetId,
        source: Source,
        user: Option<String>,
        now_ms: i64,
        edit: &dyn Fn(&AssetRecord) -> Result<serde_json::Value, StoreError>,
    ) -> Result<AssetRecord, StoreError> {
        let mut c = self.conn.client().await?;
        let tx = self.conn.begin(&mut c).await?;
        let Loaded { mut rec, base } = tx
            .asset_for_update(id.as_str())
            .await?
            .ok_or_else(|| StoreError::Refused(format!("no asset {id}")))?;
        let doc = edit(&rec)?;
        if let Some(entry) = rec.change_to(doc, source, None, user, now_ms) {
            tx.put_history(id, &entry).await?;
            tx.put_asset(&rec, Some(base), self.every()).await?;
        }
        tx.prune(id, self.inventory.history_keep).await?;
        tx.commit().await?;
        Ok(rec)
    }

    async fn apply_edits_async(
        &self,
        edits: &[AssetEdit],
        source: Source,
        user: Option<&str>,
        now_ms: i64,
    ) -> Result<Vec<AssetRecord>, StoreError> {
        let mut c = self.conn.client().await?;
        let tx = self.conn.begin(&mut c).await?;
        // Every asset the batch updates is locked first, in one order, so
        // that two batches touching the same assets (imports on two peers)
        // wait for each other instead of meeting in a deadlock.
        let mut ids: Vec<&str> = edits
            .iter()
            .filter_map(|e| match e {
                AssetEdit::Update { id, .. } => Some(id.as_str()),
                AssetEdit::Create { .. } => None,
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        if !ids.is_empty() {
            tx.rows(
                "SELECT id FROM assets WHERE id = ANY($1) ORDER BY id FOR UPDATE",
                &[&ids],
            )
            .await?;
        }
        let mut out = Vec::with_capacity(edits.len());
        for edit in edits {
            match edit {
                AssetEdit::Update {
                    id,
                    document,
                    if_version,
                } => {
                    let Loaded { mut rec, base } = tx
                        .asset_for_update(id.as_str())
                        .await?
                        .ok_or_else(|| StoreError::Refused(format!("no asset {id}")))?;
                    crate::check_version(&rec, *if_version)?;
                    if let Some(e) = rec.change_to(
                        document.clone(),
                        source,
                        None,
                        user.map(str::to_owned),
                        now_ms,
                    ) {
                        tx.put_history(&rec.id, &e).await?;
                        tx.put_asset(&rec, Some(base), self.every()).await?;
                    }
                    out.push(rec);
                }
                AssetEdit::Create {
                    document,
                    expected_serial,
                } => {
                    let (rec, first) =
                        crate::created(document, expected_serial, source, user, now_ms);
                    tx.put_asset(&rec, None, self.every()).await?;
                    tx.put_history(&rec.id, &first).await?;
                    if let Some(s) = expected_serial {
                        tx.exec(
                            "INSERT INTO planned_serial (serial, id) VALUES ($1, $2) \
                             ON CONFLICT (serial) DO UPDATE SET id = EXCLUDED.id",
                            &[&s.as_str(), &rec.id.as_str()],
                        )
                        .await?;
                    }
                    out.push(rec);
                }
            }
        }
        for rec in &out {
            tx.prune(&rec.id, self.inventory.history_keep).await?;
        }
        tx.commit().await?;
        Ok(out)
    }
}

impl Store for PgStore {
    fn put_job(&self, job: &JobRecord) -> Result<(), StoreError> {
        let record = encode(job)?;
        self.conn
            .run(self.conn.exec(
                "INSERT INTO jobs (jid, started_ms, record) VALUES ($1, $2, $3) \
             ON CONFLICT (jid) DO UPDATE SET started_ms = EXCLUDED.started_ms, \
             record = EXCLUDED.record",
                &[&job.jid.as_str(), &job.started_ms, &record],
            ))
            .map(drop)
    }

    fn put_live_job(&self, job: &JobRecord, envelope: &[u8]) -> Result<(), StoreError> {
        let record = encode(job)?;
        // Several masters make job ids: one already taken is refused, and
        // the master publishing tries the next.
        let n = self.conn.run(self.conn.exec(
            "INSERT INTO jobs (jid, started_ms, record, envelope) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (jid) DO NOTHING",
            &[&job.jid.as_str(), &job.started_ms, &record, &envelope],
        ))?;
        if n == 0 {
            return Err(StoreError::Precondition(format!(
                "job id {} is taken",
                job.jid
            )));
        }
        Ok(())
    }

    fn drop_envelopes(&self, before_ms: i64) -> Result<usize, StoreError> {
        let Some(cutoff) = jid_at(before_ms) else {
            return Ok(0);
        };
        let n = self.conn.run(self.conn.exec(
            "UPDATE jobs SET envelope = NULL WHERE jid < $1 AND envelope IS NOT NULL",
            &[&cutoff.as_str()],
        ))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn drop_envelope(&self, jid: &Jid) -> Result<bool, StoreError> {
        let n = self.conn.run(self.conn.exec(
            "UPDATE jobs SET envelope = NULL WHERE jid = $1 AND envelope IS NOT NULL",
            &[&jid.as_str()],
        ))?;
        Ok(n > 0)
    }

    fn live_jobs(&self, since_ms: i64) -> Result<Vec<(JobRecord, Vec<u8>)>, StoreError> {
        self.conn.run(async {
            self.conn
                .rows(
                    "SELECT record, envelope FROM jobs \
                 WHERE started_ms >= $1 AND envelope IS NOT NULL ORDER BY jid",
                    &[&since_ms],
                )
                .await?
                .iter()
                .map(|r| Ok((record(r, 0)?, bytes(r, 1)?.to_vec())))
                .collect()
        })
    }

    fn job(&self, jid: &Jid) -> Result<Option<JobRecord>, StoreError> {
        self.conn
            .one("SELECT record FROM jobs WHERE jid = $1", &[&jid.as_str()])
    }

    fn put_return_from(
        &self,
        ret: &JobReturn,
        source: Source,
        now_ms: i64,
    ) -> Result<Stored, StoreError> {
        self.conn.run(self.put_return_async(ret, source, now_ms))
    }

    /// Returns that change no asset go in one transaction and one
    /// statement; collects as [`PgStore::put_collects_async`] says, and
    /// those it leaves each in its own transaction, different minions' at
    /// once on connections of the pool.
    fn put_returns(&self, rets: &[&JobReturn], now_ms: i64) -> Vec<Result<Stored, StoreError>> {
        let (plain, collects): (Vec<usize>, Vec<usize>) =
            (0..rets.len()).partition(|&i| !is_collect(rets[i]));
        let mut out: Vec<Option<Result<Stored, StoreError>>> =
            (0..rets.len()).map(|_| None).collect();
        if !plain.is_empty() {
            let these: Vec<&JobReturn> = plain.iter().map(|&i| rets[i]).collect();
            match self.conn.run(self.put_plain_returns_async(&these)) {
                Ok(stored) => {
                    for (i, s) in plain.iter().zip(stored) {
                        out[*i] = Some(Ok(s));
                    }
                }
                Err(e) => {
                    for i in &plain {
                        out[*i] = Some(Err(e.clone()));
                    }
                }
            }
        }
        // The first collect of each minion goes into one transaction with
        // the others, when it updates an asset of its own; the rest are
        // stored one by one, after it.
        let mut firsts: Vec<usize> = Vec::new();
        for &i in &collects {
            if !firsts.iter().any(|&f| rets[f].minion == rets[i].minion) {
                firsts.push(i);
            }
        }
        if firsts.len() > 1 {
            let these: Vec<&JobReturn> = firsts.iter().map(|&i| rets[i]).collect();
            // On an error the batch is stored one by one below, so that
            // one bad collect does not refuse the others.
            if let Ok(stored) = self.conn.run(self.put_collects_async(&these, now_ms)) {
                for (i, s) in firsts.iter().zip(stored) {
                    out[*i] = s.map(Ok);
                }
            }
        }
        let singles: Vec<usize> = collects.into_iter().filter(|&i| out[i].is_none()).collect();
        // One minion's returns in order; different minions' at once.
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for &i in &singles {
            match groups
                .iter_mut()
                .find(|g| rets[g[0]].minion == rets[i].minion)
            {
                Some(g) => g.push(i),
                None => groups.push(vec![i]),
            }
        }
        let stored = self.conn.run(async {
            Ok(
                futures_util::future::join_all(groups.iter().map(|group| async move {
                    let mut done = Vec::with_capacity(group.len());
                    for &i in group {
                        let r = self
                            .put_return_async(rets[i], Source::Collect, now_ms)
                            .await;
                        done.push((i, r));
                    }
                    done
                }))
                .await,
            )
        });
        match stored {
            Ok(groups) => {
                for (i, r) in groups.into_iter().flatten() {
                    out[i] = Some(r);
                }
            }
            Err(e) => {
                for &i in &singles {
                    out[i] = Some(Err(e.clone()));
                }
            }
        }
        out.into_iter()
            .map(|s| s.unwrap_or_else(|| Err(StoreError::Engine("a return was not stored".into()))))
            .collect()
    }

    fn asset(&self, id: &AssetId) -> Result<Option<AssetRecord>, StoreError> {
        Ok(self
            .assets_where(
                &format!("SELECT {ASSET_COLUMNS} FROM assets a WHERE a.id = $1"),
                &[&id.as_str()],
            )?
            .into_iter()
            .next())
    }

    fn asset_of_minion(&self, minion: &str) -> Result<Option<AssetRecord>, StoreError> {
        Ok(self
            .assets_where(
                &format!(
                    "SELECT {ASSET_COLUMNS} FROM asset_minion m JOIN assets a ON a.id = m.id \
                     WHERE m.minion = $1"
                ),
                &[&minion],
            )?
            .into_iter()
            .next())
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        let tables: Vec<String> = TABLES.iter().map(|t| (*t).to_owned()).collect();
        self.conn.run(async {
            let rows = self
                .conn
                .rows(
                    "SELECT COALESCE(sum(pg_total_relation_size(to_regclass(t))), 0)::bigint \
                     FROM unnest($1::text[]) AS t",
                    &[&tables],
                )
                .await?;
            let n: i64 = match rows.first() {
                Some(r) => r.try_get(0).map_err(|e| self.conn.err(e))?,
                None => 0,
            };
            Ok(u64::try_from(n).unwrap_or(0))
        })
    }

    fn assets(&self) -> Result<Vec<AssetRecord>, StoreError> {
        self.assets_where(
            &format!("SELECT {ASSET_COLUMNS} FROM assets a ORDER BY a.id"),
            &[],
        )
    }

    fn scan_assets(
        &self,
        after: Option<&AssetId>,
        visit: &mut dyn FnMut(AssetRecord) -> bool,
    ) -> Result<(), StoreError> {
        let mut after = after.map(|a| a.as_str().to_owned());
        loop {
            let page = self.assets_where(
                &format!(
                    "SELECT {ASSET_COLUMNS} FROM assets a WHERE $1::text IS NULL OR a.id > $1 \
                     ORDER BY a.id LIMIT $2"
                ),
                &[&after, &SCAN_PAGE],
            )?;
            let full = page.len() == usize::try_from(SCAN_PAGE).unwrap_or(0);
            for rec in page {
                after = Some(rec.id.as_str().to_owned());
                if !visit(rec) {
                    return Ok(());
                }
            }
            if !full {
                return Ok(());
            }
        }
    }

    fn expire_jobs(&self, before_ms: i64) -> Result<usize, StoreError> {
        self.conn.run(async {
            let mut c = self.conn.client().await?;
            let tx = self.conn.begin(&mut c).await?;
            // Returns without a job record (agent pushes) go by their jid's
            // time.
            if let Some(cutoff) = jid_at(before_ms) {
                tx.exec("DELETE FROM returns WHERE jid < $1", &[&cutoff.as_str()])
                    .await?;
            }
            let rows = tx
                .rows(
                    "WITH gone AS (DELETE FROM jobs WHERE started_ms < $1 RETURNING jid), \
                     r AS (DELETE FROM returns WHERE jid IN (SELECT jid FROM gone)) \
                     SELECT count(*) FROM gone",
                    &[&before_ms],
                )
                .await?;
            let n: i64 = match rows.first() {
                Some(r) => r.try_get(0).map_err(|e| self.conn.err(e))?,
                None => 0,
            };
            tx.commit().await?;
            Ok(usize::try_from(n).unwrap_or(0))
        })
    }

    fn jobs_before(
        &self,
        before: Option<&Jid>,
        limit_to: usize,
    ) -> Result<Vec<JobSummary>, StoreError> {
        let before = before.map(Jid::as_str);
        self.conn.records(
            "SELECT record FROM jobs WHERE $1::text IS NULL OR jid < $1 \
             ORDER BY jid DESC LIMIT $2",
            &[&before, &limit(limit_to)],
        )
    }

    fn history(&self, id: &AssetId) -> Result<Vec<ChangeRecord>, StoreError> {
        self.conn.records(
            "SELECT record FROM history WHERE id = $1 ORDER BY version",
            &[&id.as_str()],
        )
    }

    fn edit_asset(
        &self,
        id: &AssetId,
        source: Source,
        user: Option<String>,
        now_ms: i64,
        edit: &dyn Fn(&AssetRecord) -> Result<serde_json::Value, StoreError>,
    ) -> Result<AssetRecord, StoreError> {
        self.conn
            .run(self.edit_async(id, source, user, now_ms, edit))
    }

    fn apply_edits(
        &self,
        edits: &[AssetEdit],
        source: Source,
        user: Option<&str>,
        now_ms: i64,
    ) -> Result<Vec<AssetRecord>, StoreError> {
        self.conn
            .run(self.apply_edits_async(edits, source, user, now_ms))
    }

    fn changes_between(
        &self,
        since_ms: i64,
        until_ms: Option<i64>,
        from: Option<(i64, &AssetId, u64)>,
        max: usize,
    ) -> Result<Vec<(AssetRecord, ChangeRecord)>, StoreError> {
        let (from_at, from_id, from_version) = match from {
            Some((at, id, v)) => (at, id.as_str(), int(v)?),
            None => (i64::MIN, "", 0),
        };
        self.conn.run(async {
            self.conn
                .rows(
                    &format!(
                        "SELECT {ASSET_COLUMNS}, h.record FROM history h \
                         JOIN assets a ON a.id = h.id \
                         WHERE h.at_ms >= $1 AND ($2::bigint IS NULL OR h.at_ms < $2) \
                         AND (h.at_ms, h.id, h.version) >= ($3, $4, $5) \
                         ORDER BY h.at_ms, h.id, h.version LIMIT $6"
                    ),
                    &[
                        &since_ms,
                        &until_ms,
                        &from_at,
                        &from_id,
                        &from_version,
                        &limit(max),
                    ],
                )
                .await?
                .iter()
                .map(|r| Ok((loaded(r, 0)?.rec, record(r, 3)?)))
                .collect()
        })
    }

    fn returns(&self, jid: &Jid) -> Result<Vec<JobReturn>, StoreError> {
        let stubs: Vec<JobReturn> = self.conn.run(async {
            self.conn
                .rows(
                    "SELECT minion, record FROM returns WHERE jid = $1 ORDER BY minion",
                    &[&jid.as_str()],
                )
                .await?
                .iter()
                .map(|r| {
                    let minion: &str = r.try_get(0).map_err(|e| self.conn.err(e))?;
                    let bytes: &[u8] = r.try_get(1).map_err(|e| self.conn.err(e))?;
                    crate::decode_return(jid, minion, bytes)
                })
                .collect::<Result<_, StoreError>>()
        })?;
        stubs
            .into_iter()
            .map(|stub| {
                crate::rebuilt_return(stub, |id| {
                    Ok(match self.asset(id)? {
                        Some(rec) => Some((rec, self.history(id)?)),
                        None => None,
                    })
                })
            })
            .collect()
    }

    fn returned_minions(&self, jid: &Jid) -> Result<Vec<String>, StoreError> {
        self.conn.run(async {
            self.conn
                .rows(
                    "SELECT minion FROM returns WHERE jid = $1 ORDER BY minion",
                    &[&jid.as_str()],
                )
                .await?
                .iter()
                .map(|r| r.try_get(0).map_err(|e| self.conn.err(e)))
                .collect()
        })
    }

    fn set_last_seen(&self, minion: &str, at_ms: i64) -> Result<(), StoreError> {
        self.conn
            .run(self.conn.exec(
                "INSERT INTO last_seen (minion, at_ms) VALUES ($1, $2) \
             ON CONFLICT (minion) DO UPDATE SET at_ms = EXCLUDED.at_ms",
                &[&minion, &at_ms],
            ))
            .map(drop)
    }

    fn set_last_seen_all(&self, seen: &[(String, i64)]) -> Result<(), StoreError> {
        // Rows locked in one order, so that two peers writing the same
        // minions wait for each other instead of meeting in a deadlock.
        let mut seen = seen.to_vec();
        seen.sort_unstable();
        for part in seen.chunks(10_000) {
            let minions: Vec<&str> = part.iter().map(|(m, _)| m.as_str()).collect();
            let at: Vec<i64> = part.iter().map(|(_, a)| *a).collect();
            self.conn.run(self.conn.exec(
                "INSERT INTO last_seen (minion, at_ms) \
                 SELECT * FROM unnest($1::text[], $2::bigint[]) \
                 ON CONFLICT (minion) DO UPDATE \
                 SET at_ms = GREATEST(last_seen.at_ms, EXCLUDED.at_ms)",
                &[&minions, &at],
            ))?;
        }
        Ok(())
    }

    fn last_seen_all(&self, minions: &[String]) -> Result<Vec<(String, i64)>, StoreError> {
        let mut out = Vec::new();
        for part in minions.chunks(10_000) {
            let rows = self.conn.run(self.conn.rows(
                "SELECT minion, at_ms FROM last_seen WHERE minion = ANY($1)",
                &[&part],
            ))?;
            for r in rows {
                out.push((
                    r.try_get(0).map_err(|e| self.conn.err(e))?,
                    r.try_get(1).map_err(|e| self.conn.err(e))?,
                ));
            }
        }
        Ok(out)
    }

    fn last_seen(&self, minion: &str) -> Result<Option<i64>, StoreError> {
        self.conn.run(async {
            match self
                .conn
                .rows("SELECT at_ms FROM last_seen WHERE minion = $1", &[&minion])
                .await?
                .first()
            {
                Some(r) => r.try_get(0).map(Some).map_err(|e| self.conn.err(e)),
                None => Ok(None),
            }
        })
    }

    fn flush(&self) -> Result<(), StoreError> {
        // Returns commit without waiting for their WAL to reach the disk. A
        // transaction that takes a transaction id commits with a WAL record
        // and waits for the WAL up to it, theirs included.
        self.conn.run(async {
            let mut c = self.conn.client().await?;
            let tx = self.conn.begin(&mut c).await?;
            tx.rows("SELECT pg_current_xact_id()::text", &[]).await?;
            tx.commit().await
        })
    }

    fn put_user(&self, user: &User) -> Result<(), StoreError> {
        let record = encode(user)?;
        self.conn
            .run(self.conn.exec(
                "INSERT INTO users (name, record) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET record = EXCLUDED.record",
                &[&user.name, &record],
            ))
            .map(drop)
    }

    fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        self.conn
            .one("SELECT record FROM users WHERE name = $1", &[&name])
    }

    fn users(&self) -> Result<Vec<User>, StoreError> {
        self.conn
            .records("SELECT record FROM users ORDER BY name", &[])
    }

    fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        self.conn.run(async {
            let mut c = self.conn.client().await?;
            let tx = self.conn.begin(&mut c).await?;
            let n = tx
                .exec("DELETE FROM users WHERE name = $1", &[&name])
                .await?;
            tx.exec("DELETE FROM tokens WHERE username = $1", &[&name])
                .await?;
            tx.commit().await?;
            Ok(n > 0)
        })
    }

    fn put_token(&self, token: &Token) -> Result<(), StoreError> {
        let record = encode(token)?;
        self.conn
            .run(self.conn.exec(
                "INSERT INTO tokens (id, username, record) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET username = EXCLUDED.username, \
             record = EXCLUDED.record",
                &[&token.id, &token.user, &record],
            ))
            .map(drop)
    }

    fn token(&self, id: &str) -> Result<Option<Token>, StoreError> {
        self.conn
            .one("SELECT record FROM tokens WHERE id = $1", &[&id])
    }

    fn tokens(&self) -> Result<Vec<Token>, StoreError> {
        self.conn
            .records("SELECT record FROM tokens ORDER BY id", &[])
    }

    fn remove_token(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .run(self.conn.exec("DELETE FROM tokens WHERE id = $1", &[&id]))?
            > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_left_out_of_what_errors_show() {
        assert_eq!(
            redact("postgres://cmdb:s3cret@db.example:5432/cmdb"),
            "postgres://cmdb:***@db.example:5432/cmdb"
        );
        assert_eq!(
            redact("postgres://cmdb@127.0.0.1/cmdb"),
            "postgres://cmdb@127.0.0.1/cmdb"
        );
        assert_eq!(
            redact("host=db user=cmdb password=s3cret dbname=cmdb"),
            "host=db user=cmdb password=*** dbname=cmdb"
        );
        assert_eq!(
            redact("postgres://db/cmdb?sslmode=disable&password=s3cret"),
            "postgres://db/cmdb?sslmode=disable&password=***"
        );
    }

    fn server() -> (tempfile::TempDir, server::LocalServer) {
        let dir = tempfile::tempdir().expect("tmp");
        let s = server::LocalServer::start(dir.path(), false).expect("postgres");
        (dir, s)
    }

    fn job(n: i64) -> JobRecord {
        JobRecord {
            jid: Jid::from_micros(1_800_000_000_000_000 + n).expect("jid"),
            target: protocol::Target::Glob("*".into()),
            fun: "test.ping".into(),
            args: Vec::new(),
            kwargs: Default::default(),
            expected: vec!["a".into()],
            user: "root".into(),
            started_ms: 1_800_000_000_000,
            transport: Default::default(),
            refused: Default::default(),
        }
    }

    #[test]
    fn a_database_that_went_away_is_a_clear_error_and_calls_work_again_when_it_returns() {
        let (_dir, mut server) = server();
        let store =
            PgStore::connect(&server.url("postgres"), InventoryConfig::default()).expect("connect");
        store.put_job(&job(1)).expect("put");
        server.stop();
        let err = store.job(&job(1).jid).expect_err("no database");
        let text = err.to_string();
        assert!(
            text.contains("PostgreSQL postgres://postgres@127.0.0.1"),
            "{text}"
        );
        assert!(store.put_job(&job(2)).is_err(), "a write while it is away");
        server.resume().expect("resume");
        assert_eq!(store.job(&job(1).jid).expect("read again"), Some(job(1)));
        store.put_job(&job(2)).expect("write again");
        assert_eq!(store.jobs_before(None, 10).expect("jobs").len(), 2);
    }

    #[test]
    fn minion_keys_in_postgres_pass_the_key_store_checks() {
        let (_dir, server) = server();
        let n = std::cell::Cell::new(0);
        keys::pki::conformance::check(&mut || {
            n.set(n.get() + 1);
            let url = server
                .create_database(&format!("keys{}", n.get()))
                .expect("database");
            Box::new(
                PgStore::connect(&url, InventoryConfig::default())
                    .expect("connect")
                    .keys(),
            )
        });
    }

    #[test]
    fn a_key_accepted_through_one_peer_is_accepted_by_another_and_a_deleted_one_stops() {
        use keys::{KeyState, KeyStore};
        let (_dir, server) = server();
        let url = server.url("postgres");
        let a = PgStore::connect(&url, InventoryConfig::default())
            .expect("peer a")
            .keys();
        let b = PgStore::connect(&url, InventoryConfig::default())
            .expect("peer b")
            .keys();
        let id = protocol::MinionId::new("web01").expect("id");
        let key = keys::generate().expect("key").verifying_key();
        assert_eq!(b.accepted_stamp(&id).expect("stamp"), None);
        a.authorize(&id, &key, false, false).expect("pending on a");
        assert_eq!(b.list().expect("list").pending, vec!["web01"]);
        b.move_key(&id, KeyState::Pending, KeyState::Accepted)
            .expect("accepted on b");
        assert_eq!(
            a.authorize(&id, &key, false, false).expect("auth on a"),
            keys::AuthDecision::Accepted
        );
        let until = std::time::Instant::now() + keys_store::SNAPSHOT_TTL * 10;
        while a.accepted_stamp(&id).expect("stamp").is_none() {
            assert!(std::time::Instant::now() < until, "a never saw the key");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        b.delete(&id, KeyState::Accepted).expect("deleted on b");
        while a.accepted_stamp(&id).expect("stamp").is_some() {
            assert!(
                std::time::Instant::now() < until,
                "a kept a key deleted on b"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// The master's workers call the store from tokio tasks that do not
    /// yield between returns of a batch: calls must complete after the
    /// task's cooperative budget is spent.
    #[test]
    fn many_calls_from_one_task_of_another_runtime_all_complete() {
        let (_dir, server) = server();
        let store = std::sync::Arc::new(
            PgStore::connect(&server.url("postgres"), InventoryConfig::default()).expect("connect"),
        );
        store.put_job(&job(1)).expect("put");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .expect("runtime");
        let (tx, rx) = std::sync::mpsc::channel();
        let s = store.clone();
        rt.spawn(async move {
            for _ in 0..500 {
                s.job(&job(1).jid).expect("read");
            }
            let _ = tx.send(());
        });
        rx.recv_timeout(Duration::from_secs(60))
            .expect("500 calls from one task completed");
        rt.shutdown_background();
    }

    #[test]
    fn a_job_id_taken_by_another_master_is_refused() {
        let (_dir, server) = server();
        let url = server.url("postgres");
        let a = PgStore::connect(&url, InventoryConfig::default()).expect("a");
        let b = PgStore::connect(&url, InventoryConfig::default()).expect("b");
        a.put_live_job(&job(1), b"from a").expect("first");
        let mut other = job(1);
        other.user = "someone else".into();
        assert!(matches!(
            b.put_live_job(&other, b"from b"),
            Err(StoreError::Precondition(_))
        ));
        assert_eq!(a.job(&job(1).jid).expect("read"), Some(job(1)), "kept");
        assert_eq!(
            b.live_jobs(0).expect("live"),
            vec![(job(1), b"from a".to_vec())]
        );
    }

    /// Two peers importing the same assets in opposite orders: each batch
    /// waits for the other, and neither fails.
    #[test]
    fn edit_batches_over_the_same_assets_in_opposite_orders_all_succeed() {
        let (_dir, server) = server();
        let url = server.url("postgres");
        let a = PgStore::connect(&url, InventoryConfig::default()).expect("a");
        let b = PgStore::connect(&url, InventoryConfig::default()).expect("b");
        let created = a
            .apply_edits(
                &(0..12)
                    .map(|n| AssetEdit::Create {
                        document: serde_json::json!({"manual": {"name": format!("a{n}")}}),
                        expected_serial: None,
                    })
                    .collect::<Vec<_>>(),
                Source::Import,
                Some("ops"),
                1,
            )
            .expect("create");
        let ids: Vec<AssetId> = created.iter().map(|r| r.id.clone()).collect();
        let edits = |order: &mut dyn Iterator<Item = &AssetId>, rack: &str| -> Vec<AssetEdit> {
            order
                .map(|id| AssetEdit::Update {
                    id: id.clone(),
                    document: serde_json::json!({"manual": {"rack": rack}}),
                    if_version: None,
                })
                .collect()
        };
        std::thread::scope(|s| {
            let up = s.spawn(|| {
                for n in 0..15 {
                    a.apply_edits(
                        &edits(&mut ids.iter(), &format!("A{n}")),
                        Source::Import,
                        Some("a"),
                        2,
                    )
                    .expect("a's batch");
                }
            });
            for n in 0..15 {
                b.apply_edits(
                    &edits(&mut ids.iter().rev(), &format!("B{n}")),
                    Source::Import,
                    Some("b"),
                    2,
                )
                .expect("b's batch");
            }
            up.join().expect("a's thread");
        });
    }

    #[test]
    fn a_schema_newer_than_this_cmdb_is_refused() {
        let (_dir, server) = server();
        let url = server.url("postgres");
        let store = PgStore::connect(&url, InventoryConfig::default()).expect("connect");
        store
            .conn
            .run(
                store
                    .conn
                    .exec("INSERT INTO cmdb_schema (version) VALUES (999)", &[]),
            )
            .expect("bump");
        drop(store);
        let text = PgStore::connect(&url, InventoryConfig::default())
            .err()
            .expect("refused")
            .to_string();
        assert!(text.contains("schema is at version 999"), "{text}");
    }

    #[test]
    fn connecting_again_keeps_everything_and_migrates_nothing_twice() {
        let (_dir, server) = server();
        let url = server.url("postgres");
        PgStore::connect(&url, InventoryConfig::default())
            .expect("connect")
            .put_job(&job(1))
            .expect("put");
        let store = PgStore::connect(&url, InventoryConfig::default()).expect("again");
        assert_eq!(store.job(&job(1).jid).expect("read"), Some(job(1)));
        let versions: Vec<i32> = store
            .conn
            .run(async {
                store
                    .conn
                    .rows("SELECT version FROM cmdb_schema ORDER BY version", &[])
                    .await?
                    .iter()
                    .map(|r| r.try_get(0).map_err(|e| store.conn.err(e)))
                    .collect()
            })
            .expect("versions");
        assert_eq!(versions, (1..=MIGRATIONS.len() as i32).collect::<Vec<_>>());
    }

    #[test]
    fn a_database_nobody_listens_for_is_an_open_error_naming_it() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let url = format!("postgres://cmdb:pw@127.0.0.1:{port}/cmdb");
        match PgStore::connect(&url, InventoryConfig::default()) {
            Err(StoreError::Open { path, reason }) => {
                assert_eq!(path, format!("postgres://cmdb:***@127.0.0.1:{port}/cmdb"));
                assert!(reason.contains("unreachable"), "{reason}");
            }
            Err(e) => panic!("not an open error: {e}"),
            Ok(_) => panic!("connected to nothing"),
        }
    }

    #[test]
    fn an_unparsable_url_is_an_open_error_naming_it() {
        let err = PgStore::connect(
            "postgres://a:b@host:notaport/db",
            InventoryConfig::default(),
        )
        .err()
        .expect("refused");
        let text = err.to_string();
        assert!(text.contains("a:***@host:notaport"), "{text}");
        assert!(!text.contains(":b@"), "{text}");
    }
}
