//! Observed presence: when each minion was last heard from, and whether its
//! asset counts as online (heard from within `offline_after_secs`).

use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
struct State {
    last: HashMap<String, i64>,
    dirty: HashMap<String, i64>,
    online: HashMap<String, bool>,
    left: std::collections::HashSet<String>,
    started_ms: i64,
}

/// Presence of every minion, in memory; the store gets the changes.
#[derive(Default)]
pub struct Presence {
    state: Mutex<State>,
}

impl Presence {
    /// A tracker that starts at `started_ms` knowing the stored online
    /// states. A minion counted online but not heard from since the start
    /// gets the full `offline_after` from the start before it is offline.
    pub fn new(started_ms: i64, known: impl IntoIterator<Item = (String, bool)>) -> Presence {
        Presence {
            state: Mutex::new(State {
                online: known.into_iter().collect(),
                started_ms,
                ..State::default()
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes that `minion` was heard from at `at_ms`.
    pub fn seen(&self, minion: &str, at_ms: i64) {
        let mut st = self.lock();
        st.last.insert(minion.to_owned(), at_ms);
        st.dirty.insert(minion.to_owned(), at_ms);
        st.left.remove(minion);
    }

    /// Notes that `minion` said it is stopping at `at_ms`: it counts as
    /// offline from the next [`Presence::flips`] until it is heard from again.
    pub fn left(&self, minion: &str, at_ms: i64) {
        let mut st = self.lock();
        st.last.insert(minion.to_owned(), at_ms);
        st.dirty.insert(minion.to_owned(), at_ms);
        st.left.insert(minion.to_owned());
    }

    /// How many minions are online and offline, as of the last
    /// [`Presence::flips`]; one heard from since counts as online.
    pub fn counts(&self) -> (usize, usize) {
        let st = self.lock();
        let heard = st
            .last
            .keys()
            .filter(|m| !st.online.contains_key(*m))
            .count();
        let online = st.online.values().filter(|o| **o).count() + heard;
        (online, st.online.len() + heard - online)
    }

    /// Last-seen times not yet written to the store.
    pub fn take_dirty(&self) -> HashMap<String, i64> {
        std::mem::take(&mut self.lock().dirty)
    }

    /// Puts back last-seen times taken but not written (the store failed),
    /// unless a later time came meanwhile.
    pub fn restore_dirty(&self, seen: Vec<(String, i64)>) {
        let mut st = self.lock();
        for (m, at) in seen {
            let e = st.dirty.entry(m).or_insert(at);
            *e = (*e).max(at);
        }
    }

    /// Online minions not heard from here within `offline_after_ms` (and
    /// not stopped): on a peer of a master cluster, those to ask the shared
    /// store about before [`Presence::flips`] counts them offline, since a
    /// minion connected to another peer is heard from there.
    pub fn stale_online(&self, now_ms: i64, offline_after_ms: i64) -> Vec<String> {
        let st = self.lock();
        st.online
            .iter()
            .filter(|(m, online)| {
                **online
                    && !st.left.contains(*m)
                    && now_ms - st.last.get(*m).copied().unwrap_or(st.started_ms) > offline_after_ms
            })
            .map(|(m, _)| m.clone())
            .collect()
    }

    /// Notes that another peer heard from `minion` at `at_ms` (nothing to
    /// write: that peer wrote it).
    pub fn heard_elsewhere(&self, minion: &str, at_ms: i64) {
        let mut st = self.lock();
        let last = st.last.entry(minion.to_owned()).or_insert(at_ms);
        *last = (*last).max(at_ms);
    }

    /// Minions whose online state flipped as of `now_ms`.
    pub fn flips(&self, now_ms: i64, offline_after_ms: i64) -> Vec<(String, bool)> {
        let mut st = self.lock();
        let State {
            last,
            online,
            left,
            started_ms,
            ..
        } = &mut *st;
        for m in last.keys() {
            online.entry(m.clone()).or_insert(true);
        }
        let mut out = Vec::new();
        for (m, is_online) in online.iter_mut() {
            let seen = last.get(m).copied().unwrap_or(*started_ms);
            let now_online = !left.contains(m) && now_ms - seen <= offline_after_ms;
            if now_online != *is_online {
                *is_online = now_online;
                out.push((m.clone(), now_online));
            }
        }
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minion_heard_from_on_another_peer_stays_online() {
        let p = Presence::new(0, [("a".to_string(), true), ("b".to_string(), true)]);
        let mut stale = p.stale_online(6_000, 5_000);
        stale.sort();
        assert_eq!(stale, ["a", "b"]);
        // "a" reports to another peer (heard there at 5,500), "b" nowhere.
        p.heard_elsewhere("a", 5_500);
        assert_eq!(p.stale_online(6_000, 5_000), vec!["b".to_string()]);
        assert_eq!(p.flips(6_000, 5_000), vec![("b".to_string(), false)]);
        // Offline minions are not asked about; "a" is, once that time is old.
        assert_eq!(p.stale_online(10_000, 5_000), Vec::<String>::new());
        assert_eq!(p.stale_online(11_000, 5_000), vec!["a".to_string()]);
        assert_eq!(p.flips(11_000, 5_000), vec![("a".to_string(), false)]);
        // Heard from here later than elsewhere: the later time counts.
        p.seen("a", 12_000);
        p.heard_elsewhere("a", 11_500);
        assert_eq!(p.flips(16_500, 5_000), vec![("a".to_string(), true)]);
        assert!(
            p.take_dirty()
                .iter()
                .all(|(m, at)| m == "a" && *at == 12_000)
        );
    }

    #[test]
    fn goes_offline_after_the_threshold_and_back() {
        let p = Presence::new(0, [("a".to_string(), true)]);
        assert!(p.flips(1_000, 5_000).is_empty(), "grace from start");
        assert_eq!(p.flips(6_000, 5_000), vec![("a".to_string(), false)]);
        p.seen("a", 7_000);
        p.seen("b", 7_000);
        assert_eq!(p.flips(7_500, 5_000), vec![("a".to_string(), true)]);
        let taken = p.take_dirty();
        assert_eq!(taken.len(), 2);
        assert!(p.take_dirty().is_empty());
        p.restore_dirty(taken.into_iter().collect());
        assert_eq!(p.take_dirty().len(), 2, "put back after a failed write");
    }

    #[test]
    fn a_minion_that_leaves_is_offline_at_once_until_heard_again() {
        let p = Presence::new(0, [("a".to_string(), true)]);
        p.seen("a", 1_000);
        assert!(p.flips(1_000, 60_000).is_empty());
        p.left("a", 2_000);
        assert_eq!(p.flips(2_000, 60_000), vec![("a".to_string(), false)]);
        assert!(p.flips(3_000, 60_000).is_empty());
        p.seen("a", 4_000);
        assert_eq!(p.flips(4_000, 60_000), vec![("a".to_string(), true)]);
    }
}
