//! Disk use of the store over repeated collects, without a network: N
//! simulated hosts (the swarm's ~8 KB facts, `--churn` of their churning
//! fields changing per collect) stored as collect returns, in batches of
//! 64 and flushed after each collect like the master does.
//!
//! ```sh
//! cargo run --release -p bench --example store_growth -- 1000 30 0.01
//! ```
//! Arguments: assets (1000), collects (30), churn (0.01), and the hours
//! jobs are kept (24, the master's `keep_jobs` default; 0: forever):
//! collects are an hour apart and, as the master's janitor does, jobs older
//! than that are expired after each one. Prints the
//! store's size after each collect and its growth against one fleet
//! snapshot (the JSON of every host's facts once), the seconds spent
//! storing each collect (one thread), and this process's RSS after it (the
//! store's memory, with the facts of one host at a time).
//!
//! With `STORE_GROWTH_STORE=postgres` the store is PostgreSQL on a server
//! started for the run (fsync on, autovacuum as shipped), and the size is
//! its tables' (indexes and TOAST included, the write-ahead log not). As
//! collects are an hour apart, autovacuum would have run between two: the
//! run vacuums cmdb's tables after each collect in its stead.

use bench::{dir_bytes, facts};
use inventory::InventoryConfig;
use protocol::{JidGenerator, JobReturn, MinionId};
use store::SledStore;
use store::Store;

/// Returns per batch: the most the master's request workers take at once
/// (`master::requests::BATCH`), as a fleet collect fills them.
const BATCH: usize = 64;

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: f64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (assets, collects, churn) = (arg(0, 1000.0) as usize, arg(1, 30.0) as u64, arg(2, 0.01));
    let keep_hours = arg(3, 24.0) as i64;
    let dir = tempfile::tempdir()?;
    let pg_dir = tempfile::tempdir()?;
    let server = match std::env::var("STORE_GROWTH_STORE").as_deref() {
        Ok("postgres") => Some(store::postgres::server::LocalServer::start(
            pg_dir.path(),
            true,
        )?),
        Ok("sled") | Err(_) => None,
        Ok(other) => anyhow::bail!("STORE_GROWTH_STORE={other}: sled or postgres"),
    };
    let pg = match &server {
        Some(s) => Some(store::PgStore::connect(
            &s.create_database("cmdb")?,
            InventoryConfig::default(),
        )?),
        None => None,
    };
    let sled = match &pg {
        Some(_) => None,
        None => Some(SledStore::open(
            &dir.path().join("db"),
            InventoryConfig::default(),
        )?),
    };
    let store: &dyn Store = match (&pg, &sled) {
        (Some(p), _) => p,
        (None, Some(s)) => s,
        (None, None) => anyhow::bail!("no store"),
    };
    let size_now = || -> anyhow::Result<u64> {
        Ok(match &server {
            Some(_) => store.size_on_disk()?,
            None => dir_bytes(dir.path()),
        })
    };
    let mut jids = JidGenerator::new();
    let ids: Vec<MinionId> = (0..assets)
        .map(|n| MinionId::new(format!("host{n:05}")))
        .collect::<Result<_, _>>()?;
    let mut snapshot = 0u64;
    let mut first = 0u64;
    println!("collect  store MiB  growth MiB  growth/snapshot  store s  RSS MiB");
    for round in 0..collects {
        let now = 1_800_000_000_000 + round as i64 * 3_600_000;
        let jid = jids.next(now * 1000);
        let mut bytes = 0u64;
        let mut secs = 0.0;
        // In batches, as the master's request workers store them.
        let mut batch = Vec::with_capacity(BATCH);
        for (n, id) in ids.iter().enumerate() {
            let data = facts::host_facts(id.as_str(), n, round, churn);
            bytes += serde_json::to_vec(&data)?.len() as u64;
            batch.push(JobReturn {
                jid: jid.clone(),
                minion: id.clone(),
                fun: "collect".into(),
                success: true,
                retcode: 0,
                data,
                started_ms: now,
                ended_ms: now,
            });
            if batch.len() == BATCH || n + 1 == ids.len() {
                let rets: Vec<&JobReturn> = batch.iter().collect();
                let t = std::time::Instant::now();
                for stored in store.put_returns(&rets, now) {
                    stored?;
                }
                secs += t.elapsed().as_secs_f64();
                batch.clear();
            }
        }
        let t = std::time::Instant::now();
        if keep_hours > 0 {
            store.expire_jobs(now - keep_hours * 3_600_000)?;
        }
        store.flush()?;
        secs += t.elapsed().as_secs_f64();
        if let Some(p) = &pg {
            p.vacuum()?;
        }
        snapshot = bytes;
        let size = size_now()?;
        let growth = size.saturating_sub(first);
        if round == 0 {
            first = size;
        }
        println!(
            "{:>7}  {:>9.1}  {:>10.2}  {:>15.2}  {:>7.3}  {:>7.0}",
            round + 1,
            mib(size),
            if round == 0 {
                0.0
            } else {
                mib(growth) / round as f64
            },
            if round == 0 {
                0.0
            } else {
                growth as f64 / round as f64 / snapshot as f64
            },
            secs,
            bench::status_kib(std::process::id(), "VmRSS") as f64 / 1024.0,
        );
    }
    let size = size_now()?;
    println!(
        "one fleet snapshot: {:.1} MiB; store: {:.1} MiB = {:.2} snapshots",
        mib(snapshot),
        mib(size),
        size as f64 / snapshot as f64
    );
    Ok(())
}
