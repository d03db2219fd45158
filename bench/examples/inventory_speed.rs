//! The inventory's reads at scale without a swarm: a master whose store
//! holds N swarm-like assets (stored directly, `collects` rounds of the
//! swarm's ~8 KB facts), then the asset-model phase of `cmdb-bench` (a
//! CSV import of finance fields, `asset list --where` with two
//! conditions, the audit) and `GET /v1/assets?limit=100` on the unix
//! socket, with the master's RSS before and after.
//!
//! ```sh
//! cargo build --release --workspace --bins --examples
//! target/release/examples/inventory_speed 9000 3
//! ```
//! Arguments: assets (9000), collects (3), API requests (300). With
//! `INVENTORY_SPEED_DB=DIR` the filled store is copied to DIR, or copied
//! from it when it exists (to skip filling it again); with
//! `INVENTORY_SPEED_KEEP=1` the master is left running until stdin closes
//! (to profile it by hand).

use std::time::Instant;

use anyhow::Context;
use bench::facts;
use bench::{status_kib, timed};
use inventory::InventoryConfig;
use protocol::{JidGenerator, JobReturn, MinionId};
use store::{SledStore, Store};
use tests::{Cluster, ClusterOpts};

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()))?;
        } else {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (n, collects, requests) = (arg(0, 9000), arg(1, 3), arg(2, 300));
    let mut c = Cluster::start(ClusterOpts {
        master_extra: "[inventory]\noffline_after_secs = 3600\n".into(),
    });
    c.master_mut().terminate();
    let t = Instant::now();
    let db = c.master_state().join("db");
    let saved = std::env::var_os("INVENTORY_SPEED_DB").map(std::path::PathBuf::from);
    if let Some(from) = saved.as_ref().filter(|d| d.exists()) {
        copy_dir(from, &db)?;
    } else {
        let store = SledStore::open(&c.master_state().join("db"), InventoryConfig::default())?;
        let mut jids = JidGenerator::new();
        let now0 = chrono::Utc::now().timestamp_millis() - 3_600_000;
        for round in 0..collects {
            let now = now0 + round as i64 * 60_000;
            let jid = jids.next(now * 1000);
            for i in 0..n {
                let id = format!("swarm-{i:05}");
                let ret = JobReturn {
                    jid: jid.clone(),
                    minion: MinionId::new(id.clone())?,
                    fun: "collect".into(),
                    success: true,
                    retcode: 0,
                    data: facts::host_facts(&id, i, round as u64, 0.01),
                    started_ms: now,
                    ended_ms: now,
                };
                store.put_return(&ret, now)?;
            }
            store.flush()?;
        }
        drop(store);
        if let Some(to) = &saved {
            copy_dir(&db, to)?;
        }
    }
    eprintln!(
        "stored {n} assets x {collects} collects in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let t = Instant::now();
    c.start_master();
    let start_secs = t.elapsed().as_secs_f64();
    let pid = c.master().pid();
    let rss0 = status_kib(pid, "VmRSS");

    let csv = bench::finance_csv(n);
    let file = c.dir.path().join("finance.csv");
    std::fs::write(&file, csv)?;
    let file = file.to_str().context("path")?.to_owned();
    let import = timed(&c, &["asset", "import", &file])?.0;
    let mut list = Vec::new();
    let mut rows = 0;
    for _ in 0..5 {
        let (secs, out) = timed(
            &c,
            &[
                "asset",
                "list",
                "--where",
                "department = finance and facts.num_cpus >= 64",
            ],
        )?;
        list.push(secs);
        rows = String::from_utf8_lossy(&out)
            .lines()
            .count()
            .saturating_sub(1);
    }
    let year = chrono::Utc::now().format("%Y").to_string();
    let mut audit = Vec::new();
    for _ in 0..3 {
        audit.push(timed(&c, &["report", "audit", "--year", &year, "--out", "json"])?.0);
    }

    let socket = c.master_state().join("api.sock");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let (bytes, ms) = rt.block_on(async {
        let mut unix = bench::api::Conn::unix(&socket).await?;
        let uri = "/v1/assets?limit=100";
        let body = unix.get_ok(uri).await?;
        for _ in 0..5 {
            unix.get_ok(uri).await?;
        }
        let mut ms = Vec::new();
        for _ in 0..requests {
            let t = Instant::now();
            unix.get_ok(uri).await?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        ms.sort_by(f64::total_cmp);
        anyhow::Ok((body.len(), ms))
    })?;
    println!(
        "{n} assets: master start {start_secs:.2} s; import {import:.2} s; \
         list --where median {:.0} ms ({rows} rows); audit median {:.0} ms; \
         GET /v1/assets?limit=100 {} KiB p50 {:.2} ms p99 {:.2} ms; \
         master RSS after start {} MiB, now {} MiB, peak {} MiB",
        median(list) * 1000.0,
        median(audit) * 1000.0,
        bytes / 1024,
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        rss0 / 1024,
        status_kib(pid, "VmRSS") / 1024,
        status_kib(pid, "VmHWM") / 1024,
    );
    if std::env::var_os("INVENTORY_SPEED_KEEP").is_some() {
        println!(
            "master pid {pid}, config {}; close stdin to stop it",
            c.master_config().display()
        );
        std::io::copy(&mut std::io::stdin(), &mut std::io::sink())?;
    }
    Ok(())
}
