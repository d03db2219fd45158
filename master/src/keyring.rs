//! The master's symmetric keys: the publish session key (with its epoch,
//! rotated when a minion key leaves `accepted/` and on a period) and a cache
//! of per-minion channel keys for the request socket.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, RwLock};

use keys::{SigningKey, VerifyingKey};
use protocol::seal::{SymmetricKey, channel_key};

/// Random bytes from the system (see [`keys::random`]).
pub use keys::random;

/// Keys shared by the workers.
pub struct Keyring {
    session: RwLock<(u64, SymmetricKey)>,
    accepted_keys: Mutex<HashMap<String, (keys::KeyStamp, VerifyingKey)>>,
    channels: Mutex<HashMap<String, (VerifyingKey, SymmetricKey)>>,
    accepted: Mutex<BTreeSet<String>>,
    holders: Mutex<BTreeSet<String>>,
    rotation_wanted: std::sync::atomic::AtomicBool,
    wake: tokio::sync::Notify,
    settled: tokio::sync::Notify,
}

impl Keyring {
    /// A keyring with a fresh session key of epoch `epoch` (unix micros, so
    /// epochs never repeat across restarts).
    pub fn new(epoch: u64, accepted: BTreeSet<String>) -> Keyring {
        Keyring {
            session: RwLock::new((epoch, SymmetricKey(random()))),
            accepted_keys: Mutex::new(HashMap::new()),
            channels: Mutex::new(HashMap::new()),
            accepted: Mutex::new(accepted),
            holders: Mutex::new(BTreeSet::new()),
            rotation_wanted: std::sync::atomic::AtomicBool::new(false),
            wake: tokio::sync::Notify::new(),
            settled: tokio::sync::Notify::new(),
        }
    }

    /// Asks for the accepted keys to be checked now (a key was deleted or
    /// rejected through the API): jobs published until that is done wait,
    /// so that none goes out under a key a removed minion holds.
    pub fn want_rotation(&self) {
        self.rotation_wanted
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Resolves when [`Keyring::want_rotation`] was called.
    pub async fn rotation_asked(&self) {
        self.wake.notified().await;
    }

    /// The check asked for is done (with or without a rotation).
    pub fn rotation_settled(&self) {
        self.rotation_wanted
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.settled.notify_waiters();
    }

    /// Waits (at most `limit`) while a check of the accepted keys is due.
    pub async fn wait_settled(&self, limit: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if !self
                .rotation_wanted
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                return;
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                return;
            }
        }
    }

    /// The current session key and its epoch.
    pub fn session(&self) -> (u64, SymmetricKey) {
        self.session
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the session key; the new epoch is at least `now_epoch` and
    /// always above the old one.
    pub fn rotate(&self, now_epoch: u64) -> u64 {
        let epoch = self.next_epoch(now_epoch);
        self.install(epoch, SymmetricKey(random()), Vec::new());
        epoch
    }

    /// The epoch a key made now would have: at least `now_epoch`, and
    /// above the current one.
    pub fn next_epoch(&self, now_epoch: u64) -> u64 {
        now_epoch.max(self.session().0 + 1)
    }

    /// Makes `key` of `epoch` the session key (unless a newer one is in
    /// place), held by `holders` (those it was handed to).
    pub fn install(&self, epoch: u64, key: SymmetricKey, holders: Vec<String>) {
        let mut s = self.session.write().unwrap_or_else(|p| p.into_inner());
        if epoch <= s.0 {
            return;
        }
        *s = (epoch, key);
        *self.holders.lock().unwrap_or_else(|p| p.into_inner()) = holders.into_iter().collect();
    }

    /// Makes `key` of `epoch` the session key whatever the current one is
    /// (at start, a cluster's shared key replaces the one made here).
    pub fn replace(&self, epoch: u64, key: SymmetricKey) {
        *self.session.write().unwrap_or_else(|p| p.into_inner()) = (epoch, key);
    }

    /// The accepted minions that hold the current session key.
    pub fn accepted_holders(&self) -> Vec<String> {
        let acc = self.accepted.lock().unwrap_or_else(|p| p.into_inner());
        self.holders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|h| acc.contains(*h))
            .cloned()
            .collect()
    }

    /// The accepted key of `minion`, read once and again only when its
    /// stamp in the key store changes. `None` when there is no accepted key.
    pub fn accepted_key(
        &self,
        pki: &dyn keys::KeyStore,
        minion: &protocol::MinionId,
    ) -> Result<Option<VerifyingKey>, keys::KeyError> {
        let Some(stamp) = pki.accepted_stamp(minion)? else {
            self.accepted_keys
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(minion.as_str());
            return Ok(None);
        };
        if let Some((s, k)) = self
            .accepted_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(minion.as_str())
            && *s == stamp
        {
            return Ok(Some(*k));
        }
        let Some(key) = pki.get(keys::KeyState::Accepted, minion)? else {
            return Ok(None);
        };
        self.accepted_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(minion.to_string(), (stamp, key));
        Ok(Some(key))
    }

    /// The channel key for `minion` holding `key`.
    pub fn channel(
        &self,
        master: &SigningKey,
        minion: &str,
        key: &VerifyingKey,
    ) -> Option<SymmetricKey> {
        let mut cache = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((k, ch)) = cache.get(minion)
            && k == key
        {
            return Some(ch.clone());
        }
        let ch = channel_key(master, key, minion).ok()?;
        if cache.len() > 200_000 {
            cache.clear();
        }
        cache.insert(minion.to_owned(), (*key, ch.clone()));
        Some(ch)
    }

    /// How many minions are accepted (as of the last update).
    pub fn accepted_count(&self) -> usize {
        self.accepted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// How many minions were handed the current session key.
    pub fn holder_count(&self) -> usize {
        self.holders.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Notes that `minion` was handed the current session key.
    pub fn record_holder(&self, minion: &str) {
        self.holders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(minion.to_owned());
    }

    /// Of the minions accepted as of the last update and those holding
    /// the session key (some accepted since), those not in `now`.
    pub fn missing_from(&self, now: &BTreeSet<String>) -> BTreeSet<String> {
        let mut missing: BTreeSet<String> = self
            .accepted
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .difference(now)
            .cloned()
            .collect();
        missing.extend(
            self.holders
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .filter(|h| !now.contains(*h))
                .cloned(),
        );
        missing
    }

    /// Records the accepted set. Returns the minions of `judged` (those
    /// [`Self::missing_from`] gave, not found accepted since) that hold the
    /// current session key: when there are any, the session key must
    /// rotate. A minion that took the key after `judged` was read was
    /// accepted after the listing, and is judged by the next one.
    pub fn update_accepted(&self, now: BTreeSet<String>, judged: &BTreeSet<String>) -> Vec<String> {
        let mut acc = self.accepted.lock().unwrap_or_else(|p| p.into_inner());
        let left: Vec<String> = acc.difference(&now).cloned().collect();
        if !left.is_empty() {
            let mut cache = self.channels.lock().unwrap_or_else(|p| p.into_inner());
            for g in &left {
                cache.remove(g);
            }
        }
        *acc = now;
        let holders = self.holders.lock().unwrap_or_else(|p| p.into_inner());
        holders
            .iter()
            .filter(|h| judged.contains(*h) && !acc.contains(*h))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_accepted_after_a_listing_is_not_gone() {
        let k = Keyring::new(100, BTreeSet::from(["web01".to_owned()]));
        k.record_holder("web01");
        // web02 was accepted and handed the key after the listing was read.
        k.record_holder("web02");
        let listed = BTreeSet::from(["web01".to_owned()]);
        let missing = k.missing_from(&listed);
        assert_eq!(missing, BTreeSet::from(["web02".to_owned()]));
        // A second listing finds web02 accepted; web03 takes the key
        // meanwhile, after both listings.
        k.record_holder("web03");
        let again: BTreeSet<String> = ["web01", "web02"].map(String::from).into();
        let found: BTreeSet<String> = missing.intersection(&again).cloned().collect();
        let mut now = listed;
        now.extend(found.iter().cloned());
        let judged: BTreeSet<String> = missing.difference(&found).cloned().collect();
        assert!(k.update_accepted(now, &judged).is_empty(), "no one left");
        // web01 removed for real: gone.
        let now: BTreeSet<String> = ["web02", "web03"].map(String::from).into();
        let missing = k.missing_from(&now);
        assert_eq!(missing, BTreeSet::from(["web01".to_owned()]));
        assert_eq!(k.update_accepted(now, &missing), vec!["web01".to_owned()]);
    }

    #[test]
    fn rotation_moves_the_epoch_forward_and_changes_the_key() {
        let k = Keyring::new(100, BTreeSet::new());
        let (e1, k1) = k.session();
        let e2 = k.rotate(50);
        let (_, k2) = k.session();
        assert!(e2 > e1);
        assert_ne!(k1, k2);
    }

    #[test]
    fn a_holder_leaving_accepted_is_reported_until_rotation() {
        let k = Keyring::new(1, BTreeSet::new());
        k.record_holder("a");
        k.record_holder("b");
        let both: BTreeSet<String> = ["a".to_string(), "b".to_string()].into();
        assert!(k.missing_from(&both).is_empty());
        assert!(k.update_accepted(both.clone(), &BTreeSet::new()).is_empty());
        let a: BTreeSet<String> = ["a".to_string()].into();
        let missing = k.missing_from(&a);
        assert_eq!(k.update_accepted(a.clone(), &missing), vec!["b"]);
        k.rotate(2);
        assert!(k.update_accepted(a.clone(), &k.missing_from(&a)).is_empty());
    }
}
