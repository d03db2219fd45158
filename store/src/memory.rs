//! [`Store`] in memory: the reference the engines are checked against, and
//! a store for unit tests. Nothing survives the process.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use inventory::{self, AssetId, AssetRecord, ChangeRecord, InventoryConfig, Source};
use protocol::{Jid, JobReturn};

use crate::access::{Token, User};
use crate::{AssetEdit, JobRecord, JobSummary, Store, StoreError, Stored, is_collect};

#[derive(Default)]
struct Data {
    jobs: BTreeMap<Jid, JobRecord>,
    envelopes: BTreeMap<Jid, Vec<u8>>,
    returns: BTreeMap<(Jid, String), JobReturn>,
    assets: BTreeMap<AssetId, AssetRecord>,
    asset_minion: HashMap<String, AssetId>,
    history: BTreeMap<(AssetId, u64), ChangeRecord>,
    planned_serial: HashMap<String, AssetId>,
    last_seen: HashMap<String, i64>,
    users: BTreeMap<String, User>,
    tokens: BTreeMap<String, Token>,
}

/// [`Store`] in memory.
pub struct MemoryStore {
    data: Mutex<Data>,
    inventory: InventoryConfig,
}

impl MemoryStore {
    /// An empty store.
    pub fn new(inventory: InventoryConfig) -> MemoryStore {
        MemoryStore {
            data: Mutex::default(),
            inventory,
        }
    }

    fn data(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Data {
    fn history_of(&self, id: &AssetId) -> Vec<ChangeRecord> {
        self.history
            .range((id.clone(), 0)..=(id.clone(), u64::MAX))
            .map(|(_, h)| h.clone())
            .collect()
    }

    /// Drops the oldest change records beyond `keep`, never the first or
    /// the latest ones.
    fn prune(&mut self, id: &AssetId, keep: usize) {
        if keep == 0 {
            return;
        }
        let versions: Vec<u64> = self
            .history
            .range((id.clone(), 0)..=(id.clone(), u64::MAX))
            .map(|((_, v), _)| *v)
            .collect();
        let changes = versions.len().saturating_sub(1);
        if changes <= keep {
            return;
        }
        for v in versions.iter().skip(1).take(changes - keep) {
            self.history.remove(&(id.clone(), *v));
        }
    }

    fn put_history(&mut self, id: &AssetId, h: ChangeRecord) {
        self.history.insert((id.clone(), h.version), h);
    }
}

impl Store for MemoryStore {
    fn put_job(&self, job: &JobRecord) -> Result<(), StoreError> {
        self.data().jobs.insert(job.jid.clone(), job.clone());
        Ok(())
    }

    fn put_live_job(&self, job: &JobRecord, envelope: &[u8]) -> Result<(), StoreError> {
        let mut d = self.data();
        d.jobs.insert(job.jid.clone(), job.clone());
        d.envelopes.insert(job.jid.clone(), envelope.to_vec());
        Ok(())
    }

    fn drop_envelopes(&self, before_ms: i64) -> Result<usize, StoreError> {
        let Some(cutoff) = Jid::from_micros(before_ms.saturating_mul(1000)) else {
            return Ok(0);
        };
        let mut d = self.data();
        let before = d.envelopes.len();
        d.envelopes.retain(|jid, _| *jid >= cutoff);
        Ok(before - d.envelopes.len())
    }

    fn drop_envelope(&self, jid: &Jid) -> Result<bool, StoreError> {
        Ok(self.data().envelopes.remove(jid).is_some())
    }

    fn live_jobs(&self, since_ms: i64) -> Result<Vec<(JobRecord, Vec<u8>)>, StoreError> {
        let d = self.data();
        Ok(d.jobs
            .values()
            .filter(|j| j.started_ms >= since_ms)
            .filter_map(|j| d.envelopes.get(&j.jid).map(|e| (j.clone(), e.clone())))
            .collect())
    }

    fn job(&self, jid: &Jid) -> Result<Option<JobRecord>, StoreError> {
        Ok(self.data().jobs.get(jid).cloned())
    }

    fn put_return_from(
        &self,
        ret: &JobReturn,
        source: Source,
        now_ms: i64,
    ) -> Result<Stored, StoreError> {
        let mut d = self.data();
        let key = (ret.jid.clone(), ret.minion.to_string());
        if d.returns.contains_key(&key) {
            return Ok(Stored::Duplicate);
        }
        if !is_collect(ret) {
            d.returns.insert(key, ret.clone());
            return Ok(Stored::Return);
        }
        let minion = ret.minion.as_str();
        let mut existing = d
            .asset_minion
            .get(minion)
            .and_then(|id| d.assets.get(id))
            .cloned();
        if existing.is_none()
            && let Some(serial) = ret.data["serialnumber"].as_str()
            && let Some(id) = d.planned_serial.remove(serial)
        {
            existing = d.assets.get(&id).cloned();
        }
        let (rec, entries) = inventory::apply_collect(
            existing,
            minion,
            &ret.data,
            &ret.jid,
            &self.inventory,
            now_ms,
            source,
        );
        d.returns
            .insert(key, crate::return_stub(ret, &rec.id, rec.version));
        d.asset_minion.insert(minion.to_owned(), rec.id.clone());
        let changed = !entries.is_empty();
        for e in entries {
            d.put_history(&rec.id, e);
        }
        let (id, version) = (rec.id.clone(), rec.version);
        d.assets.insert(id.clone(), rec);
        d.prune(&id, self.inventory.history_keep);
        Ok(Stored::Asset {
            id,
            version,
            changed,
        })
    }

    fn asset(&self, id: &AssetId) -> Result<Option<AssetRecord>, StoreError> {
        Ok(self.data().assets.get(id).cloned())
    }

    fn asset_of_minion(&self, minion: &str) -> Result<Option<AssetRecord>, StoreError> {
        let d = self.data();
        Ok(d.asset_minion
            .get(minion)
            .and_then(|id| d.assets.get(id))
            .cloned())
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    fn assets(&self) -> Result<Vec<AssetRecord>, StoreError> {
        Ok(self.data().assets.values().cloned().collect())
    }

    fn scan_assets(
        &self,
        after: Option<&AssetId>,
        visit: &mut dyn FnMut(AssetRecord) -> bool,
    ) -> Result<(), StoreError> {
        let list: Vec<AssetRecord> = self
            .data()
            .assets
            .values()
            .filter(|a| after.is_none_or(|x| a.id > *x))
            .cloned()
            .collect();
        for a in list {
            if !visit(a) {
                break;
            }
        }
        Ok(())
    }

    fn expire_jobs(&self, before_ms: i64) -> Result<usize, StoreError> {
        let mut d = self.data();
        if let Some(cutoff) = Jid::from_micros(before_ms.saturating_mul(1000)) {
            d.returns.retain(|(jid, _), _| *jid >= cutoff);
        }
        let old: Vec<Jid> = d
            .jobs
            .values()
            .take_while(|j| j.started_ms < before_ms)
            .map(|j| j.jid.clone())
            .collect();
        for jid in &old {
            d.jobs.remove(jid);
            d.envelopes.remove(jid);
            d.returns.retain(|(j, _), _| j != jid);
        }
        Ok(old.len())
    }

    fn jobs_before(
        &self,
        before: Option<&Jid>,
        limit: usize,
    ) -> Result<Vec<JobSummary>, StoreError> {
        Ok(self
            .data()
            .jobs
            .values()
            .rev()
            .filter(|j| before.is_none_or(|b| j.jid < *b))
            .take(limit)
            .map(JobSummary::from)
            .collect())
    }

    fn history(&self, id: &AssetId) -> Result<Vec<ChangeRecord>, StoreError> {
        Ok(self.data().history_of(id))
    }

    fn edit_asset(
        &self,
        id: &AssetId,
        source: Source,
        user: Option<String>,
        now_ms: i64,
        edit: &dyn Fn(&AssetRecord) -> Result<serde_json::Value, StoreError>,
    ) -> Result<AssetRecord, StoreError> {
        let mut d = self.data();
        let mut rec = d
            .assets
            .get(id)
            .cloned()
            .ok_or_else(|| StoreError::Refused(format!("no asset {id}")))?;
        let doc = edit(&rec)?;
        if let Some(entry) = rec.change_to(doc, source, None, user, now_ms) {
            d.put_history(id, entry);
            d.assets.insert(id.clone(), rec.clone());
        }
        d.prune(id, self.inventory.history_keep);
        Ok(rec)
    }

    fn apply_edits(
        &self,
        edits: &[AssetEdit],
        source: Source,
        user: Option<&str>,
        now_ms: i64,
    ) -> Result<Vec<AssetRecord>, StoreError> {
        let mut d = self.data();
        // Checked and computed whole before anything changes.
        let mut out = Vec::with_capacity(edits.len());
        let mut entries = Vec::new();
        let mut planned = Vec::new();
        let mut touched: HashMap<AssetId, AssetRecord> = HashMap::new();
        for edit in edits {
            match edit {
                AssetEdit::Update {
                    id,
                    document,
                    if_version,
                } => {
                    let mut rec = match touched.get(id) {
                        Some(r) => r.clone(),
                        None => d
                            .assets
                            .get(id)
                            .cloned()
                            .ok_or_else(|| StoreError::Refused(format!("no asset {id}")))?,
                    };
                    crate::check_version(&rec, *if_version)?;
                    if let Some(e) = rec.change_to(
                        document.clone(),
                        source,
                        None,
                        user.map(str::to_owned),
                        now_ms,
                    ) {
                        entries.push((rec.id.clone(), e));
                    }
                    touched.insert(id.clone(), rec.clone());
                    out.push(rec);
                }
                AssetEdit::Create {
                    document,
                    expected_serial,
                } => {
                    let (rec, first) =
                        crate::created(document, expected_serial, source, user, now_ms);
                    if let Some(s) = expected_serial {
                        planned.push((s.clone(), rec.id.clone()));
                    }
                    entries.push((rec.id.clone(), first));
                    touched.insert(rec.id.clone(), rec.clone());
                    out.push(rec);
                }
            }
        }
        for (id, e) in entries {
            d.put_history(&id, e);
        }
        for (serial, id) in planned {
            d.planned_serial.insert(serial, id);
        }
        for (id, rec) in touched {
            d.assets.insert(id.clone(), rec);
            d.prune(&id, self.inventory.history_keep);
        }
        Ok(out)
    }

    fn changes_between(
        &self,
        since_ms: i64,
        until_ms: Option<i64>,
        from: Option<(i64, &AssetId, u64)>,
        max: usize,
    ) -> Result<Vec<(AssetRecord, ChangeRecord)>, StoreError> {
        let d = self.data();
        let mut all: Vec<(i64, AssetId, u64)> = d
            .history
            .iter()
            .map(|((id, v), h)| (h.at_ms, id.clone(), *v))
            .filter(|(at, _, _)| *at >= since_ms && until_ms.is_none_or(|u| *at < u))
            .collect();
        all.sort();
        Ok(all
            .into_iter()
            .filter(|(at, id, v)| from.is_none_or(|(fa, fid, fv)| (*at, id, *v) >= (fa, fid, fv)))
            .filter_map(|(_, id, v)| {
                let rec = d.assets.get(&id)?.clone();
                let h = d.history.get(&(id, v))?.clone();
                Some((rec, h))
            })
            .take(max)
            .collect())
    }

    fn returns(&self, jid: &Jid) -> Result<Vec<JobReturn>, StoreError> {
        let d = self.data();
        let mut out = Vec::new();
        for ((j, _), ret) in d.returns.range((jid.clone(), String::new())..) {
            if j != jid {
                break;
            }
            let ret = crate::rebuilt_return(ret.clone(), |id| {
                Ok(d.assets.get(id).map(|rec| (rec.clone(), d.history_of(id))))
            })?;
            out.push(ret);
        }
        Ok(out)
    }

    fn returned_minions(&self, jid: &Jid) -> Result<Vec<String>, StoreError> {
        Ok(self
            .data()
            .returns
            .range((jid.clone(), String::new())..)
            .take_while(|((j, _), _)| j == jid)
            .map(|((_, m), _)| m.clone())
            .collect())
    }

    fn set_last_seen_all(&self, seen: &[(String, i64)]) -> Result<(), StoreError> {
        crate::set_each_last_seen(self, seen)
    }

    fn put_returns(&self, rets: &[&JobReturn], now_ms: i64) -> Vec<Result<Stored, StoreError>> {
        crate::put_each(self, rets, now_ms)
    }

    fn set_last_seen(&self, minion: &str, at_ms: i64) -> Result<(), StoreError> {
        self.data().last_seen.insert(minion.to_owned(), at_ms);
        Ok(())
    }

    fn last_seen_all(&self, minions: &[String]) -> Result<Vec<(String, i64)>, StoreError> {
        crate::each_last_seen(self, minions)
    }

    fn last_seen(&self, minion: &str) -> Result<Option<i64>, StoreError> {
        Ok(self.data().last_seen.get(minion).copied())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn put_user(&self, user: &User) -> Result<(), StoreError> {
        self.data().users.insert(user.name.clone(), user.clone());
        Ok(())
    }

    fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        Ok(self.data().users.get(name).cloned())
    }

    fn users(&self) -> Result<Vec<User>, StoreError> {
        Ok(self.data().users.values().cloned().collect())
    }

    fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        let mut d = self.data();
        let existed = d.users.remove(name).is_some();
        d.tokens.retain(|_, t| t.user != name);
        Ok(existed)
    }

    fn put_token(&self, token: &Token) -> Result<(), StoreError> {
        self.data().tokens.insert(token.id.clone(), token.clone());
        Ok(())
    }

    fn token(&self, id: &str) -> Result<Option<Token>, StoreError> {
        Ok(self.data().tokens.get(id).cloned())
    }

    fn tokens(&self) -> Result<Vec<Token>, StoreError> {
        Ok(self.data().tokens.values().cloned().collect())
    }

    fn remove_token(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.data().tokens.remove(id).is_some())
    }
}
