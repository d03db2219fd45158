//! Fleet pings and collects through a master cluster of two peers on this
//! machine: one PostgreSQL server and one NATS server started for the run
//! (127.0.0.1, fsync on), two masters sharing them, and one `cmdb-swarm` of
//! N minions connected to each peer. Every job is published on the first
//! peer and expects all 2N minions, so half the returns reach it through
//! the other peer.
//!
//! ```sh
//! cargo build --release --workspace --bins --examples
//! target/release/examples/cluster_speed 9000 5 3
//! ```
//! Arguments: minions per peer (9000), pings (5), collects (3). Jobs start
//! 35 s after every minion is online, as in `bench/run.sh`. Prints each
//! job's wall time, the returns it got, and the CPU seconds of each master,
//! each swarm and PostgreSQL over it.

use std::time::Instant;

use bench::{cpu_secs, status_kib, timed};
use tests::Proc;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (n, pings, collects) = (arg(0, 9000), arg(1, 5), arg(2, 3));
    let tests::Peers {
        a,
        b,
        nats: _nats,
        server: pg,
        pg_dir: _pg_dir,
    } = tests::Peers::start(
        &format!(
            "{}autosign = [\"*\"]\n[inventory]\noffline_after_secs = 3600\n",
            bench::MASTER_EXTRA
        ),
        true,
    );
    let swarms: Vec<Proc> = vec![
        bench::fleet_named(&a, n, "a-"),
        bench::fleet_named(&b, n, "b-"),
    ];
    for s in &swarms {
        s.wait_for_n_within(
            "\"event\":\"all_online\"",
            1,
            std::time::Duration::from_secs(900),
        );
    }
    // As in bench/run.sh: measured once new sessions have settled (they
    // heartbeat every few seconds for their first 30 s).
    std::thread::sleep(std::time::Duration::from_secs(35));
    let total = 2 * n;
    let pids = [
        a.master().pid(),
        b.master().pid(),
        swarms[0].pid(),
        swarms[1].pid(),
    ];
    let cpu = || -> Vec<f64> {
        let mut v: Vec<f64> = pids.iter().map(|p| cpu_secs(*p)).collect();
        v.push(bench::tree_cpu_secs(pg.pid()));
        v
    };
    println!(
        "job       wall s  returned/expected  master A CPU s  master B CPU s  swarm A CPU s  swarm B CPU s  PostgreSQL CPU s"
    );
    let run = |fun: &str, times: usize, timeout: &str| -> anyhow::Result<Vec<f64>> {
        let mut walls = Vec::new();
        for _ in 0..times {
            let before = cpu();
            let t = Instant::now();
            let (_, out) = timed(&a, &["run", "*", fun, "-t", timeout, "--out", "json"])?;
            let wall = t.elapsed().as_secs_f64();
            let v: serde_json::Value = serde_json::from_slice(&out)?;
            let got = v.as_object().map_or(0, |o| o.len());
            let after = cpu();
            let d: Vec<f64> = after.iter().zip(&before).map(|(x, y)| x - y).collect();
            println!(
                "{fun:9} {wall:6.2}  {got:>8}/{total:<8}  {:14.2}  {:14.2}  {:13.2}  {:13.2}  {:16.2}",
                d[0], d[1], d[2], d[3], d[4]
            );
            walls.push(wall);
        }
        Ok(walls)
    };
    let median = |mut v: Vec<f64>| -> f64 {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let ping = median(run("test.ping", pings, "60")?);
    let collect = median(run("collect", collects, "300")?);
    println!(
        "ping median {ping:.2} s, collect median {collect:.2} s ({total} minions over two peers)"
    );
    println!(
        "peak RSS: master A {:.0} MiB, master B {:.0} MiB",
        status_kib(pids[0], "VmHWM") as f64 / 1024.0,
        status_kib(pids[1], "VmHWM") as f64 / 1024.0
    );
    Ok(())
}
