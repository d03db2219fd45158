//! Master restarts with a swarm connected, as the benchmark's reconnect
//! storm: the master is stopped (SIGTERM) and started again, the swarm's
//! `all_online` awaited and then every minion holding the new master's
//! session key, then `cmdb run '*' test.ping -t 30`; repeated.
//!
//! ```sh
//! cargo build --release --workspace --bins --examples
//! target/release/examples/storm 9000 3
//! ```
//! Arguments: minions (9000), restarts (3). Prints, per restart, the
//! seconds until the swarm counted every minion online again, until the
//! master had given every one its session key, and how many answered the
//! ping.

use std::time::{Duration, Instant};

use tests::{Cluster, ClusterOpts};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (n, restarts) = (arg(0, 9000), arg(1, 3));
    let mut c = Cluster::start(ClusterOpts {
        master_extra: format!(
            "{}autosign = [\"*\"]\n[inventory]\noffline_after_secs = 3600\n",
            bench::MASTER_EXTRA
        ),
    });
    let swarm = bench::fleet(&c, n);
    let long = Duration::from_secs(600);
    swarm.wait_for_n_within("\"event\":\"all_online\"", 1, long);
    println!("restart  swarm online s  sessions s  ping returned  ping s");
    for i in 0..restarts {
        c.master_mut().terminate();
        let t0 = Instant::now();
        c.start_master();
        swarm.wait_for_n_within("\"event\":\"all_online\"", i + 2, long);
        let online = t0.elapsed().as_secs_f64();
        let held = bench::wait_for_sessions(&c, n, long)?;
        let back = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let out = c.cmdb(&["run", "*", "test.ping", "-t", "30", "--out", "json"]);
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        let got = v.as_object().map_or(0, |m| m.len());
        println!(
            "{:7}  {:14.1}  {:7.1} ({held})  {:>8}/{n}  {:6.1}",
            i + 1,
            online,
            back,
            got,
            t1.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
