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

    /// Minions whose online state flipped as of `now_ms`.
    pub fn flips(&self, now_ms: i64, offline_after_ms: i64) -> Vec<(String, bool)> {
        self.flips_with(now_ms, offline_after_ms, |_| None)
    }

    /// As [`Presence::flips`], asking `elsewhere` when an online minion not
    /// heard from here would go offline: on a peer of a master cluster, a minion
    /// connected to another peer is heard from there (the time it gives
    /// counts as heard from here, so it is asked again only after another
    /// `offline_after`).
    pub fn flips_with(
        &self,
        now_ms: i64,
        offline_after_ms: i64,
        elsewhere: impl Fn(&str) -> Option<i64>,
    ) -> Vec<(String, bool)> {
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
            let mut seen = last.get(m).copied().unwrap_or(*started_ms);
            if *is_online
                && now_ms - seen > offline_after_ms
                && !left.contains(m)
                && let Some(t) = elsewhere(m)
                && t > seen
            {
                seen = t;
                last.insert(m.clone(), t);
            }
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
        // "a" reports to another peer (heard there at 5,500), "b" nowhere.
        let elsewhere = |m: &str| (m == "a").then_some(5_500);
        assert_eq!(
            p.flips_with(6_000, 5_000, elsewhere),
            vec![("b".to_string(), false)]
        );
        // Asked again only once that time is old too.
        let asked = std::cell::Cell::new(0);
        let counting = |_: &str| {
            asked.set(asked.get() + 1);
            None
        };
        assert!(p.flips_with(10_000, 5_000, counting).is_empty());
        assert_eq!(asked.get(), 0, "b is offline already, a was heard at 5,500");
        assert_eq!(
            p.flips_with(11_000, 5_000, counting),
            vec![("a".to_string(), false)]
        );
        assert_eq!(asked.get(), 1);
    }

    #[test]
    fn goes_offline_after_the_threshold_and_back() {
        let p = Presence::new(0, [("a".to_string(), true)]);
        assert!(p.flips(1_000, 5_000).is_empty(), "grace from start");
        assert_eq!(p.flips(6_000, 5_000), vec![("a".to_string(), false)]);
        p.seen("a", 7_000);
        p.seen("b", 7_000);
        assert_eq!(p.flips(7_500, 5_000), vec![("a".to_string(), true)]);
        assert_eq!(p.take_dirty().len(), 2);
        assert!(p.take_dirty().is_empty());
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
