//! Model-based check of the engines: random sequences of collects, other
//! returns, edits, presence changes and job expiry are applied to an engine
//! (sled; PostgreSQL on a server of the test's own) and to the in-memory
//! reference; after reopening the database, both must show the same assets,
//! history, jobs, returns and change feed.

use std::collections::BTreeMap;

use inventory::{InventoryConfig, Source};
use proptest::prelude::*;
use protocol::{Jid, JobReturn, MinionId, Target};
use store::memory::MemoryStore;
use store::postgres::server::LocalServer;
use store::{JobRecord, PgStore, SledStore, Store};

#[derive(Debug, Clone)]
enum Op {
    /// A collect from minion `m` with facts variant `v`.
    Collect { m: usize, v: u8 },
    /// One job's collects from every minion, with facts variant `v`, and
    /// the first again, stored together.
    Together { v: u8 },
    /// A test.ping return from minion `m`.
    Ping { m: usize },
    /// The last return sent again.
    Replay,
    /// An operator sets a manual field.
    Edit { m: usize, rack: u8 },
    /// Presence flips.
    Presence { m: usize, online: bool },
    /// Jobs older than `back` steps expire.
    Expire { back: u8 },
    /// The job of `back` steps ago is killed (its envelope forgotten).
    Kill { back: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, 0..4u8).prop_map(|(m, v)| Op::Collect { m, v }),
        2 => (0..3usize).prop_map(|m| Op::Ping { m }),
        2 => (0..4u8).prop_map(|v| Op::Together { v }),
        1 => Just(Op::Replay),
        2 => (0..3usize, 0..3u8).prop_map(|(m, rack)| Op::Edit { m, rack }),
        1 => (0..3usize, any::<bool>()).prop_map(|(m, online)| Op::Presence { m, online }),
        1 => (0..10u8).prop_map(|back| Op::Expire { back }),
        1 => (0..4u8).prop_map(|back| Op::Kill { back }),
    ]
}

fn minion(m: usize) -> MinionId {
    MinionId::new(format!("m{m}")).expect("id")
}

/// The facts minion `m` reports in variant `v` at step `n`: variants
/// differ in a top-level fact, in one nested deep in another (beside
/// volatile values) and in having one fact at all.
fn facts(m: usize, v: u8, n: usize) -> serde_json::Value {
    let mut f = serde_json::json!({
        "host": format!("m{m}"), "kernel": format!("6.{v}"),
        "uptime_seconds": n, "serialnumber": format!("SN{m}"),
        "mounts": {"/": {"size_bytes": 10 + u64::from(v % 2), "used_bytes": n}},
    });
    if v == 3 {
        f["gpu"] = serde_json::json!({"model": "A100"});
    }
    f
}

/// Applies `ops` to a store; step `n` happens at time `n` seconds.
fn apply(s: &dyn Store, ops: &[Op]) {
    let at = |n: usize| 1_800_000_000_000 + n as i64 * 1000;
    let mut last: Option<JobReturn> = None;
    for (n, op) in ops.iter().enumerate() {
        let jid = Jid::from_micros(at(n) * 1000).expect("jid");
        let ret = |m: usize, fun: &str, data: serde_json::Value| JobReturn {
            jid: jid.clone(),
            minion: minion(m),
            fun: fun.into(),
            success: true,
            retcode: 0,
            data,
            started_ms: at(n),
            ended_ms: at(n),
        };
        let job = |m: usize, fun: &str| JobRecord {
            jid: jid.clone(),
            target: Target::Glob(format!("m{m}")),
            fun: fun.into(),
            args: Vec::new(),
            kwargs: BTreeMap::new(),
            expected: vec![format!("m{m}")],
            user: "root".into(),
            started_ms: at(n),
            transport: Default::default(),
            refused: Default::default(),
        };
        match op {
            Op::Collect { m, v } => {
                s.put_live_job(&job(*m, "collect"), b"envelope")
                    .expect("job");
                let r = ret(*m, "collect", facts(*m, *v, n));
                s.put_return(&r, at(n)).expect("collect");
                last = Some(r);
            }
            Op::Together { v } => {
                let mut j = job(0, "collect");
                j.target = Target::Glob("*".into());
                j.expected = (0..3).map(|m| format!("m{m}")).collect();
                s.put_live_job(&j, b"envelope").expect("job");
                let rets: Vec<JobReturn> =
                    (0..3).map(|m| ret(m, "collect", facts(m, *v, n))).collect();
                let together: Vec<&JobReturn> = rets.iter().chain(rets.first()).collect();
                for stored in s.put_returns(&together, at(n)) {
                    stored.expect("collect");
                }
                last = rets.into_iter().next();
            }
            Op::Ping { m } => {
                s.put_job(&job(*m, "test.ping")).expect("job");
                let r = ret(*m, "test.ping", serde_json::json!(true));
                s.put_return(&r, at(n)).expect("ping");
                last = Some(r);
            }
            Op::Replay => {
                // A duplicate unless the job has expired since.
                if let Some(r) = &last {
                    s.put_return(r, at(n)).expect("replay");
                }
            }
            Op::Edit { m, rack } => {
                if let Some(a) = s.asset_of_minion(minion(*m).as_str()).expect("read") {
                    s.edit_asset(&a.id, Source::Manual, Some("ops".into()), at(n), &|r| {
                        let mut d = r.document.clone();
                        d["manual"]["rack"] = serde_json::json!(format!("R{rack}"));
                        Ok(d)
                    })
                    .expect("edit");
                }
            }
            Op::Presence { m, online } => {
                s.set_presence(minion(*m).as_str(), *online, at(n))
                    .expect("presence");
            }
            Op::Expire { back } => {
                let before = at(n.saturating_sub(*back as usize));
                s.drop_envelopes(at(n.saturating_sub(*back as usize / 2)))
                    .expect("envelopes");
                s.expire_jobs(before).expect("expire");
            }
            Op::Kill { back } => {
                let killed =
                    Jid::from_micros(at(n.saturating_sub(*back as usize)) * 1000).expect("jid");
                s.drop_envelope(&killed).expect("kill");
            }
        }
    }
    s.flush().expect("flush");
}

/// What a store shows, independent of its random asset ids.
fn view(s: &dyn Store) -> serde_json::Value {
    let mut assets = BTreeMap::new();
    for a in s.assets().expect("assets") {
        let key = a.minion.clone().unwrap_or_else(|| a.id.to_string());
        let history: Vec<serde_json::Value> = s
            .history(&a.id)
            .expect("history")
            .iter()
            .map(|h| serde_json::json!([h.version, h.at_ms, h.source, h.changes]))
            .collect();
        assets.insert(
            key,
            serde_json::json!({
                "version": a.version, "document": a.document, "observed": a.observed,
                "last_collect_ms": a.last_collect_ms, "history": history,
            }),
        );
    }
    let jobs = s.jobs_before(None, 1000).expect("jobs");
    let returns: BTreeMap<String, Vec<String>> = jobs
        .iter()
        .map(|j| {
            (
                j.jid.to_string(),
                s.returned_minions(&j.jid).expect("returned"),
            )
        })
        .collect();
    let mut feed: Vec<(i64, String, u64)> = s
        .changes_between(0, None, None, usize::MAX)
        .expect("feed")
        .iter()
        .map(|(a, h)| (h.at_ms, a.minion.clone().unwrap_or_default(), h.version))
        .collect();
    feed.sort();
    let live: Vec<String> = s
        .live_jobs(0)
        .expect("live")
        .iter()
        .map(|(j, _)| j.jid.to_string())
        .collect();
    serde_json::json!({
        "assets": assets,
        "jobs": jobs.iter().map(|j| j.jid.to_string()).collect::<Vec<_>>(),
        "returns": returns, "feed": feed, "live": live,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn sled_matches_the_reference_after_reopening(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("db");
        let reference = MemoryStore::new(InventoryConfig::default());
        apply(&reference, &ops);
        {
            let sled = SledStore::open(&path, InventoryConfig::default()).expect("open");
            apply(&sled, &ops);
        }
        let sled = SledStore::open(&path, InventoryConfig::default()).expect("reopen");
        prop_assert_eq!(view(&sled), view(&reference));
    }
}

/// The same check on PostgreSQL: one server for every case, each case on
/// a database of its own, reconnecting instead of reopening.
#[test]
fn postgres_matches_the_reference_after_reconnecting() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = LocalServer::start(dir.path(), false).expect("postgres");
    let case = std::cell::Cell::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(16));
    runner
        .run(&prop::collection::vec(op(), 1..40), |ops| {
            case.set(case.get() + 1);
            let url = server
                .create_database(&format!("case{}", case.get()))
                .expect("database");
            let reference = MemoryStore::new(InventoryConfig::default());
            apply(&reference, &ops);
            {
                let pg = PgStore::connect(&url, InventoryConfig::default()).expect("connect");
                apply(&pg, &ops);
            }
            let pg = PgStore::connect(&url, InventoryConfig::default()).expect("reconnect");
            prop_assert_eq!(view(&pg), view(&reference));
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}
