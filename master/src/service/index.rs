//! An in-memory index of every asset's current query view, so that a
//! listing, a query or the dashboard does not decode every record.
//!
//! Each entry holds the asset's top fields, manual, finance and relation
//! fields and its plain facts (a value, or a short list of values); the
//! rest (CPU and DMI details, mounts, disks, NICs, long lists) are left out
//! and named, and
//! a query, sort or field list that reaches into one of them reads that
//! asset from the store instead. [`IndexedStore`] wraps the engine and
//! marks every asset a write touches; [`AssetIndex::refresh`] reads those
//! again (and everything at first use, and again when the day changes,
//! since book values are as of today).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use inventory::{AssetId, AssetRecord, ChangeRecord, Source};
use protocol::{Jid, JobReturn};
use serde_json::Value;
use store::access::{Token, User};
use store::{AssetEdit, JobRecord, JobSummary, Store, StoreError, Stored};

/// A list fact with more items than this is left out of the index (and so
/// is every fact that is an object or a list of objects).
pub const SMALL_LIST: usize = 16;

/// One asset in the index.
#[derive(Debug)]
pub struct Entry {
    /// Its version.
    pub version: u64,
    /// Its query view (the shape queries and sorts read), large facts left
    /// out.
    pub root: Value,
    /// The facts left out, sorted.
    pub pruned: Vec<String>,
}

/// Whether a fact is kept in the index: a value, or a short list of
/// values.
fn plain(v: &Value) -> bool {
    match v {
        Value::Object(_) => false,
        Value::Array(a) => {
            a.len() <= SMALL_LIST && a.iter().all(|x| !x.is_object() && !x.is_array())
        }
        _ => true,
    }
}

impl Entry {
    /// The entry of `root` (a query view with every fact).
    pub fn of(version: u64, mut root: Value) -> Entry {
        let mut pruned = Vec::new();
        if let Some(Value::Object(facts)) = root.get_mut("facts") {
            facts.retain(|k, v| {
                let keep = plain(v);
                if !keep {
                    pruned.push(k.clone());
                }
                keep
            });
        }
        // The map's keys come sorted.
        debug_assert!(pruned.is_sorted());
        Entry {
            version,
            root,
            pruned,
        }
    }

    /// Whether `path` (as queries, sorts and field lists name them) reads
    /// only what the entry holds.
    pub fn covers(&self, path: &str) -> bool {
        fact_read_by(path).is_none_or(|key| {
            self.pruned
                .binary_search_by(|p| p.as_str().cmp(key))
                .is_err()
        })
    }

    /// Every fact name the asset has, kept or left out.
    fn fact_names(&self) -> impl Iterator<Item = &str> {
        let kept = self.root.get("facts").and_then(Value::as_object);
        kept.into_iter()
            .flat_map(|f| f.keys())
            .chain(&self.pruned)
            .map(String::as_str)
    }
}

/// The fact whose presence in an entry decides whether the entry holds
/// `path`: the first key under `facts`, or a bare name (looked up under
/// facts first); none for a path under another top-level field.
fn fact_read_by(path: &str) -> Option<&str> {
    let (first, rest) = inventory::sort::split_root(path);
    match first {
        "facts" => Some(inventory::sort::split_root(rest).0),
        _ if inventory::query::TOP.contains(&first) => None,
        bare => Some(bare),
    }
}

/// The entries by asset id, with how many of them have each fact name and
/// how many left each out.
#[derive(Default)]
struct Entries {
    by_id: BTreeMap<AssetId, Arc<Entry>>,
    fact_names: HashMap<String, usize>,
    pruned_names: HashMap<String, usize>,
}

fn tally<'a>(counts: &mut HashMap<String, usize>, names: impl Iterator<Item = &'a str>, add: bool) {
    for name in names {
        if add {
            *counts.entry(name.to_owned()).or_default() += 1;
        } else if let Some(n) = counts.get_mut(name) {
            *n -= 1;
            if *n == 0 {
                counts.remove(name);
            }
        }
    }
}

impl Entries {
    fn count(&mut self, e: &Entry, add: bool) {
        tally(&mut self.fact_names, e.fact_names(), add);
        tally(
            &mut self.pruned_names,
            e.pruned.iter().map(String::as_str),
            add,
        );
    }

    fn insert(&mut self, id: AssetId, e: Arc<Entry>) {
        self.count(&e, true);
        if let Some(old) = self.by_id.insert(id, e) {
            self.count(&old, false);
        }
    }

    fn remove(&mut self, id: &AssetId) {
        if let Some(old) = self.by_id.remove(id) {
            self.count(&old, false);
        }
    }
}

/// Entries taken from the index for one listing, with what holds for all
/// of them.
#[derive(Default)]
pub struct Snapshot {
    /// The entries, in id order.
    pub entries: Vec<(AssetId, Arc<Entry>)>,
    /// Paths (of those asked about) that name no fact of any entry.
    pub no_fact: HashSet<String>,
    /// Paths (of those asked about) that every entry holds.
    pub covered: HashSet<String>,
}

impl Snapshot {
    /// Whether `e` (one of the entries) holds `path`.
    pub fn covers(&self, e: &Entry, path: &str) -> bool {
        self.covered.contains(path) || e.covers(path)
    }
}

/// The index: entries by asset id and the ids written since they were
/// read.
#[derive(Default)]
pub struct AssetIndex {
    entries: Mutex<Entries>,
    dirty: Mutex<HashSet<AssetId>>,
    /// Writes marked so far: unlike the dirty set's size, which stops
    /// growing once a fleet collect has written every asset, it tells
    /// whether writes go on.
    marks: AtomicU64,
    loaded: AtomicBool,
    /// The day (days since the epoch, UTC) the entries were read.
    day: AtomicI64,
    /// One refresh at a time.
    refreshing: Mutex<()>,
    /// Whole assets' views as JSON, for listings of whole assets.
    encoded: Mutex<Encoded>,
}

/// Most bytes of encoded views kept (about 2,000 swarm assets).
const ENCODED_BUDGET: usize = 16 << 20;

/// Whole assets' views as JSON. An asset's is dropped when it is written
/// (`mark`); `generation` counts those writes so that a view read from the
/// store before a write is never kept after it. Emptied when full and when
/// the day changes (views hold today's book value).
#[derive(Default)]
struct Encoded {
    generation: u64,
    day: i64,
    bytes: usize,
    views: HashMap<AssetId, Arc<str>>,
}

impl Encoded {
    fn clear(&mut self) {
        self.views.clear();
        self.bytes = 0;
    }
}

fn today() -> i64 {
    crate::server::now_ms().div_euclid(86_400_000)
}

impl AssetIndex {
    /// Marks an asset as written: it is read again before the index is
    /// used next.
    pub fn mark(&self, id: &AssetId) {
        if let Ok(mut d) = self.dirty.lock() {
            d.insert(id.clone());
        }
        self.marks.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut e) = self.encoded.lock() {
            e.generation += 1;
            if let Some(json) = e.views.remove(id) {
                e.bytes -= json.len();
            }
        }
    }

    /// The asset's whole view as JSON when it is kept, else the write
    /// generation to give [`AssetIndex::keep_json`] with the view read now.
    pub fn cached_json(&self, id: &AssetId) -> Result<Arc<str>, u64> {
        let Ok(mut e) = self.encoded.lock() else {
            return Err(u64::MAX);
        };
        let day = today();
        if e.day != day {
            e.clear();
            e.day = day;
        }
        e.views.get(id).cloned().ok_or(e.generation)
    }

    /// Keeps an asset's whole view as JSON, read from the store when no
    /// asset had been written since `generation`.
    pub fn keep_json(&self, id: &AssetId, generation: u64, json: Arc<str>) {
        let Ok(mut e) = self.encoded.lock() else {
            return;
        };
        if e.generation != generation || e.day != today() || json.len() > ENCODED_BUDGET {
            return;
        }
        if e.bytes + json.len() > ENCODED_BUDGET {
            e.clear();
        }
        e.bytes += json.len();
        if let Some(old) = e.views.insert(id.clone(), json) {
            e.bytes -= old.len();
        }
    }

    /// Brings the index up to date with `store`, building each entry with
    /// `build` (the asset's query view).
    pub fn refresh(
        &self,
        store: &dyn Store,
        build: &dyn Fn(AssetRecord) -> Value,
    ) -> Result<(), StoreError> {
        let poisoned = || StoreError::Engine("the asset index's lock was poisoned".into());
        let _one = self.refreshing.lock().map_err(|_| poisoned())?;
        let day = today();
        if !self.loaded.load(Ordering::Acquire) || self.day.load(Ordering::Acquire) != day {
            // Anything written from here on is read again below or later.
            self.dirty.lock().map_err(|_| poisoned())?.clear();
            let mut all = Entries::default();
            store.scan_assets(None, &mut |rec| {
                let version = rec.version;
                all.insert(rec.id.clone(), Arc::new(Entry::of(version, build(rec))));
                true
            })?;
            *self.entries.lock().map_err(|_| poisoned())? = all;
            self.day.store(day, Ordering::Release);
            self.loaded.store(true, Ordering::Release);
        }
        let dirty: Vec<AssetId> = std::mem::take(&mut *self.dirty.lock().map_err(|_| poisoned())?)
            .into_iter()
            .collect();
        if dirty.is_empty() {
            return Ok(());
        }
        let mut fresh = Vec::with_capacity(dirty.len());
        for id in &dirty {
            match store.asset(id) {
                Ok(rec) => fresh.push((
                    id.clone(),
                    rec.map(|r| {
                        let version = r.version;
                        Arc::new(Entry::of(version, build(r)))
                    }),
                )),
                Err(e) => {
                    // Read them again next time.
                    self.dirty
                        .lock()
                        .map_err(|_| poisoned())?
                        .extend(dirty.iter().cloned());
                    return Err(e);
                }
            }
        }
        let mut entries = self.entries.lock().map_err(|_| poisoned())?;
        for (id, entry) in fresh {
            match entry {
                Some(e) => entries.insert(id, e),
                None => entries.remove(&id),
            }
        }
        Ok(())
    }

    /// The entries after `after` (all when none), in id order.
    pub fn after(&self, after: Option<&AssetId>) -> Vec<(AssetId, Arc<Entry>)> {
        self.after_for(after, &[]).entries
    }

    /// [`AssetIndex::after`] for a listing that reads `paths` (as queries,
    /// sorts and field lists name them): with which of them no entry left
    /// out, and which name no fact of any entry.
    pub fn after_for(&self, after: Option<&AssetId>, paths: &[&str]) -> Snapshot {
        use std::ops::Bound;
        let Ok(entries) = self.entries.lock() else {
            return Snapshot::default();
        };
        let start = match after {
            Some(id) => Bound::Excluded(id.clone()),
            None => Bound::Unbounded,
        };
        let mut snap = Snapshot::default();
        for p in paths {
            let names = inventory::query::fact_names(p);
            if !names.is_empty() && names.iter().all(|n| !entries.fact_names.contains_key(*n)) {
                snap.no_fact.insert((*p).to_owned());
            }
            if fact_read_by(p).is_none_or(|f| !entries.pruned_names.contains_key(f)) {
                snap.covered.insert((*p).to_owned());
            }
        }
        snap.entries = entries
            .by_id
            .range((start, Bound::Unbounded))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        snap
    }

    /// The entry of one asset.
    pub fn get(&self, id: &AssetId) -> Option<Arc<Entry>> {
        self.entries.lock().ok()?.by_id.get(id).cloned()
    }

    /// Whether every asset has been read (and on the current day).
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire) && self.day.load(Ordering::Acquire) == today()
    }

    /// How many ids wait to be read again.
    pub fn dirty_len(&self) -> usize {
        self.dirty.lock().map_or(0, |d| d.len())
    }

    /// How many writes were marked so far (see [`AssetIndex::mark`]).
    pub fn marks(&self) -> u64 {
        self.marks.load(Ordering::Relaxed)
    }
}

/// A store that tells the index which assets each write touched.
pub struct IndexedStore {
    inner: Arc<dyn Store>,
    index: Arc<AssetIndex>,
}

impl IndexedStore {
    /// Wraps `inner`, marking written assets in `index`.
    pub fn new(inner: Arc<dyn Store>, index: Arc<AssetIndex>) -> IndexedStore {
        IndexedStore { inner, index }
    }
}

impl Store for IndexedStore {
    fn put_job(&self, job: &JobRecord) -> Result<(), StoreError> {
        self.inner.put_job(job)
    }
    fn put_live_job(&self, job: &JobRecord, envelope: &[u8]) -> Result<(), StoreError> {
        self.inner.put_live_job(job, envelope)
    }
    fn drop_envelopes(&self, before_ms: i64) -> Result<usize, StoreError> {
        self.inner.drop_envelopes(before_ms)
    }
    fn drop_envelope(&self, jid: &Jid) -> Result<bool, StoreError> {
        self.inner.drop_envelope(jid)
    }
    fn live_jobs(&self, since_ms: i64) -> Result<Vec<(JobRecord, Vec<u8>)>, StoreError> {
        self.inner.live_jobs(since_ms)
    }
    fn job(&self, jid: &Jid) -> Result<Option<JobRecord>, StoreError> {
        self.inner.job(jid)
    }
    fn put_return_from(
        &self,
        ret: &JobReturn,
        source: Source,
        now_ms: i64,
    ) -> Result<Stored, StoreError> {
        let stored = self.inner.put_return_from(ret, source, now_ms)?;
        if let Stored::Asset { id, .. } = &stored {
            self.index.mark(id);
        }
        Ok(stored)
    }
    fn put_returns(&self, rets: &[&JobReturn], now_ms: i64) -> Vec<Result<Stored, StoreError>> {
        let stored = self.inner.put_returns(rets, now_ms);
        for s in &stored {
            if let Ok(Stored::Asset { id, .. }) = s {
                self.index.mark(id);
            }
        }
        stored
    }
    fn asset(&self, id: &AssetId) -> Result<Option<AssetRecord>, StoreError> {
        self.inner.asset(id)
    }
    fn asset_of_minion(&self, minion: &str) -> Result<Option<AssetRecord>, StoreError> {
        self.inner.asset_of_minion(minion)
    }
    fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.inner.size_on_disk()
    }
    fn assets(&self) -> Result<Vec<AssetRecord>, StoreError> {
        self.inner.assets()
    }
    fn scan_assets(
        &self,
        after: Option<&AssetId>,
        visit: &mut dyn FnMut(AssetRecord) -> bool,
    ) -> Result<(), StoreError> {
        self.inner.scan_assets(after, visit)
    }
    fn expire_jobs(&self, before_ms: i64) -> Result<usize, StoreError> {
        self.inner.expire_jobs(before_ms)
    }
    fn jobs_before(
        &self,
        before: Option<&Jid>,
        limit: usize,
    ) -> Result<Vec<JobSummary>, StoreError> {
        self.inner.jobs_before(before, limit)
    }
    fn history(&self, id: &AssetId) -> Result<Vec<ChangeRecord>, StoreError> {
        self.inner.history(id)
    }
    fn edit_asset(
        &self,
        id: &AssetId,
        source: Source,
        user: Option<String>,
        now_ms: i64,
        edit: &dyn Fn(&AssetRecord) -> Result<Value, StoreError>,
    ) -> Result<AssetRecord, StoreError> {
        let done = self.inner.edit_asset(id, source, user, now_ms, edit);
        // Marked even when refused: nothing is lost by reading it again.
        self.index.mark(id);
        done
    }
    fn apply_edits(
        &self,
        edits: &[AssetEdit],
        source: Source,
        user: Option<&str>,
        now_ms: i64,
    ) -> Result<Vec<AssetRecord>, StoreError> {
        let done = self.inner.apply_edits(edits, source, user, now_ms)?;
        for rec in &done {
            self.index.mark(&rec.id);
        }
        Ok(done)
    }
    fn changes_between(
        &self,
        since_ms: i64,
        until_ms: Option<i64>,
        from: Option<(i64, &AssetId, u64)>,
        max: usize,
    ) -> Result<Vec<(AssetRecord, ChangeRecord)>, StoreError> {
        self.inner.changes_between(since_ms, until_ms, from, max)
    }
    fn returns(&self, jid: &Jid) -> Result<Vec<JobReturn>, StoreError> {
        self.inner.returns(jid)
    }
    fn returned_minions(&self, jid: &Jid) -> Result<Vec<String>, StoreError> {
        self.inner.returned_minions(jid)
    }
    fn set_last_seen(&self, minion: &str, at_ms: i64) -> Result<(), StoreError> {
        self.inner.set_last_seen(minion, at_ms)
    }
    fn set_last_seen_all(&self, seen: &[(String, i64)]) -> Result<(), StoreError> {
        self.inner.set_last_seen_all(seen)
    }
    fn last_seen_all(&self, minions: &[String]) -> Result<Vec<(String, i64)>, StoreError> {
        self.inner.last_seen_all(minions)
    }
    fn last_seen(&self, minion: &str) -> Result<Option<i64>, StoreError> {
        self.inner.last_seen(minion)
    }
    fn flush(&self) -> Result<(), StoreError> {
        self.inner.flush()
    }
    fn put_user(&self, user: &User) -> Result<(), StoreError> {
        self.inner.put_user(user)
    }
    fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        self.inner.user(name)
    }
    fn users(&self) -> Result<Vec<User>, StoreError> {
        self.inner.users()
    }
    fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        self.inner.remove_user(name)
    }
    fn put_token(&self, token: &Token) -> Result<(), StoreError> {
        self.inner.put_token(token)
    }
    fn token(&self, id: &str) -> Result<Option<Token>, StoreError> {
        self.inner.token(id)
    }
    fn tokens(&self) -> Result<Vec<Token>, StoreError> {
        self.inner.tokens()
    }
    fn remove_token(&self, id: &str) -> Result<bool, StoreError> {
        self.inner.remove_token(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(n: u8) -> AssetId {
        AssetId::parse(&format!("{n:016x}")).expect("asset id")
    }

    fn entry(facts: Value) -> Arc<Entry> {
        Arc::new(Entry::of(
            1,
            json!({"facts": facts, "manual": {"department": "finance"}}),
        ))
    }

    #[test]
    fn writes_are_counted_after_every_asset_is_dirty() {
        let idx = AssetIndex::default();
        idx.mark(&id(1));
        idx.mark(&id(2));
        let (dirty, marks) = (idx.dirty_len(), idx.marks());
        // A second collect of the same fleet: the dirty set stays as it
        // is, the count of writes goes on.
        idx.mark(&id(1));
        idx.mark(&id(2));
        assert_eq!(idx.dirty_len(), dirty);
        assert_eq!(idx.marks(), marks + 2);
    }

    #[test]
    fn fact_names_are_counted_across_entries_kept_or_left_out() {
        let big: Vec<Value> = (0..40).map(|i| json!(i)).collect();
        let idx = AssetIndex::default();
        {
            let mut all = idx.entries.lock().expect("lock");
            all.insert(id(1), entry(json!({"os": "Debian", "dmi": {"x": 1}})));
            all.insert(
                id(2),
                entry(json!({"os": "Debian", "department": "ops", "long": big})),
            );
            assert_eq!(all.fact_names.get("department"), Some(&1));
            assert_eq!(all.fact_names.get("dmi"), Some(&1));
            assert_eq!(all.fact_names.get("long"), Some(&1));
            assert_eq!(all.fact_names.get("os"), Some(&2));
        }
        let paths = [
            "department",
            "department.x",
            "os",
            "dmi.x",
            "manual.owner",
            "owner",
            "facts.long",
            "long",
        ];
        let sorted = |set: &HashSet<String>| {
            let mut v: Vec<String> = set.iter().cloned().collect();
            v.sort_unstable();
            v
        };
        let snap = idx.after_for(None, &paths);
        assert_eq!(snap.entries.len(), 2);
        assert_eq!(sorted(&snap.no_fact), ["owner"]);
        assert_eq!(
            sorted(&snap.covered),
            ["department", "department.x", "manual.owner", "os", "owner"]
        );
        let (first, second) = (&snap.entries[0].1, &snap.entries[1].1);
        assert!(snap.covers(first, "facts.long") && !snap.covers(second, "facts.long"));
        assert!(!snap.covers(first, "dmi.x") && snap.covers(second, "dmi.x"));
        {
            let mut all = idx.entries.lock().expect("lock");
            // Written again without those facts, then one removed.
            all.insert(id(2), entry(json!({"os": "Debian"})));
            all.remove(&id(1));
            assert_eq!(all.fact_names.len(), 1, "{:?}", all.fact_names);
        }
        let snap = idx.after_for(None, &paths);
        assert_eq!(snap.entries.len(), 1);
        assert_eq!(
            sorted(&snap.no_fact),
            ["department", "department.x", "dmi.x", "long", "owner"]
        );
        assert_eq!(snap.covered.len(), paths.len());
        assert!(idx.after_for(Some(&id(2)), &paths).entries.is_empty());
    }

    #[test]
    fn large_facts_are_left_out_and_paths_into_them_are_not_covered() {
        let packages: Vec<Value> = (0..100).map(|i| json!({"name": format!("p{i}")})).collect();
        let e = Entry::of(
            3,
            json!({
                "asset_id": "a", "status": "active",
                "facts": {"os": "Debian", "num_cpus": 8, "ipv4": ["10.0.0.1"], "packages": packages, "dmi": {"serial": "X"}},
                "manual": {"department": "finance"},
            }),
        );
        assert_eq!(e.pruned, ["dmi", "packages"]);
        assert!(e.root["facts"].get("packages").is_none());
        for covered in [
            "facts.os",
            "os",
            "num_cpus",
            "department",
            "manual.owner",
            "status",
            "facts.nope",
        ] {
            assert!(e.covers(covered), "{covered}");
        }
        for not in [
            "facts.packages",
            "packages",
            "facts.packages.name",
            "dmi.serial",
        ] {
            assert!(!e.covers(not), "{not}");
        }
    }
}
