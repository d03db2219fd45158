//! Collect returns stored from several threads at once (the master's
//! workers do), each return also sent twice, interleaved with operator
//! edits: every return is stored exactly once, every minion has one asset
//! with its last facts, and the edits are all kept.

use std::sync::Arc;

use inventory::{InventoryConfig, Source};
use protocol::{Jid, JobReturn, MinionId};
use store::postgres::server::LocalServer;
use store::{PgStore, SledStore, Store, Stored};

const MINIONS: usize = 40;
const ROUNDS: usize = 6;
const THREADS: usize = 4;

fn collect(jid: &Jid, m: usize, round: usize) -> JobReturn {
    JobReturn {
        jid: jid.clone(),
        minion: MinionId::new(format!("m{m:02}")).expect("id"),
        fun: "collect".into(),
        success: true,
        retcode: 0,
        data: serde_json::json!({
            "os": "Debian",
            "num_cpus": 4 + (m + round) % 3,
            "serialnumber": format!("SN{m:03}"),
        }),
        started_ms: 1_800_000_000_000,
        ended_ms: 1_800_000_000_000,
    }
}

#[test]
fn concurrent_collects_and_edits_are_each_stored_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(
        SledStore::open(&dir.path().join("db"), InventoryConfig::default()).expect("open"),
    );
    each_stored_once(store);
}

#[test]
fn concurrent_collects_and_edits_are_each_stored_once_on_postgres() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = LocalServer::start(dir.path(), false).expect("postgres");
    let store = Arc::new(
        PgStore::connect(&server.url("postgres"), InventoryConfig::default()).expect("connect"),
    );
    each_stored_once(store);
}

fn each_stored_once<S: Store + 'static>(store: Arc<S>) {
    for round in 0..ROUNDS {
        let jid =
            Jid::from_micros((1_800_000_000_000 + round as i64 * 60_000) * 1000).expect("jid");
        let stored = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (store, jid) = (store.clone(), jid.clone());
                    s.spawn(move || {
                        let mut outcomes = Vec::new();
                        // Every thread sends every return: each is offered
                        // THREADS times at about the same moment.
                        for k in 0..MINIONS {
                            let m = (k + t * 7) % MINIONS;
                            let ret = collect(&jid, m, round);
                            outcomes.push(
                                store
                                    .put_return_from(&ret, Source::Collect, 1_800_000_000_000)
                                    .expect("store"),
                            );
                            if round > 0 && k % 10 == t {
                                let asset = store
                                    .asset_of_minion(&format!("m{m:02}"))
                                    .expect("read")
                                    .expect("asset");
                                store
                                    .edit_asset(
                                        &asset.id,
                                        Source::Manual,
                                        Some("ops".into()),
                                        1_800_000_000_000,
                                        &|rec| {
                                            let mut doc = rec.document.clone();
                                            doc["manual"]["rack"] =
                                                serde_json::json!(format!("r{round}-{t}"));
                                            Ok(doc)
                                        },
                                    )
                                    .expect("edit");
                            }
                        }
                        outcomes
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("thread"))
                .collect::<Vec<_>>()
        });
        let firsts = stored
            .iter()
            .filter(|o| matches!(o, Stored::Asset { .. }))
            .count();
        let dups = stored
            .iter()
            .filter(|o| matches!(o, Stored::Duplicate))
            .count();
        assert_eq!(firsts, MINIONS, "round {round}: each return stored once");
        assert_eq!(dups, MINIONS * (THREADS - 1), "round {round}");
        assert_eq!(
            store.returned_minions(&jid).expect("returned").len(),
            MINIONS
        );
    }
    store.flush().expect("flush");
    let assets = store.assets().expect("assets");
    assert_eq!(assets.len(), MINIONS, "one asset per minion");
    for a in &assets {
        let m: usize = a.minion.as_deref().expect("minion")[1..]
            .parse()
            .expect("n");
        assert_eq!(
            a.document["facts"]["num_cpus"],
            serde_json::json!(4 + (m + ROUNDS - 1) % 3),
            "{}: the last collect's facts",
            a.id
        );
        // The history replays to the same document.
        let history = store.history(&a.id).expect("history");
        let rebuilt = inventory::rebuild(a, &history, a.version).expect("rebuild");
        assert_eq!(rebuilt, a.document, "{}", a.id);
    }
    // Every edit landed: the racks written are in the history.
    let edits: usize = assets
        .iter()
        .map(|a| {
            store
                .history(&a.id)
                .expect("history")
                .iter()
                .filter(|c| c.source == Source::Manual)
                .count()
        })
        .sum();
    assert!(edits > 0, "no edit was recorded");
}
