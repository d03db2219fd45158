//! Fleet collects through a real master and a swarm, timed one by one with
//! the CPU seconds the master and the swarm spent on each: the collect
//! phase of `cmdb-bench` alone, quick to repeat while changing the master.
//!
//! ```sh
//! cargo build --release --workspace --bins --examples
//! target/release/examples/collect_speed 9000 3
//! ```
//! Arguments: minions (9000), collects (3), idle seconds (0: after the
//! collects, the CPU the master and the swarm spend over that long with
//! every minion connected and nothing asked of them), settle seconds (0:
//! how long to wait after every minion is online before the first collect;
//! `bench/run.sh` waits 35, past the quick heartbeats of new sessions). With `COLLECT_SPEED_PERF=FILE`
//! the master is recorded with `perf record` (DWARF call graphs) into FILE during the
//! collects; with `COLLECT_SPEED_PERF_SWARM=FILE`, the swarm. With
//! `COLLECT_SPEED_STORE=postgres` the master stores into a PostgreSQL server
//! started for the run (fsync on; its CPU is shown too) instead of sled.
//! `CMDB_SWARM_CHURN=0` makes a fleet whose collects change nothing but
//! volatile facts (the benchmark's changes one churning field per host per
//! collect). `COLLECT_SPEED_FUN=test.ping` times pings instead of collects.

use std::process::Command;
use std::time::Instant;

use bench::{context_switches, cpu_secs, status_kib, timed};
use tests::{Cluster, ClusterOpts, Proc};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (n, collects, idle, settle) = (arg(0, 9000), arg(1, 3), arg(2, 0), arg(3, 0));
    let pg_dir = tempfile::tempdir()?;
    let pg = match std::env::var("COLLECT_SPEED_STORE").as_deref() {
        Ok("postgres") => Some(store::postgres::server::LocalServer::start(
            pg_dir.path(),
            true,
        )?),
        Ok("sled") | Err(_) => None,
        Ok(other) => anyhow::bail!("COLLECT_SPEED_STORE={other}: sled or postgres"),
    };
    let store_line = match &pg {
        Some(server) => format!("store = \"{}\"\n", server.create_database("cmdb")?),
        None => String::new(),
    };
    let c = Cluster::start(ClusterOpts {
        master_extra: format!(
            "{}{store_line}autosign = [\"*\"]\n[inventory]\noffline_after_secs = 3600\n",
            bench::MASTER_EXTRA
        ),
    });
    let mut fleet = bench::fleet_command(&c, n, "swarm-");
    if let Ok(churn) = std::env::var("CMDB_SWARM_CHURN") {
        fleet.args(["--churn", &churn]);
    }
    let swarm = Proc::spawn("swarm", fleet);
    swarm.wait_for_n_within(
        "\"event\":\"all_online\"",
        1,
        std::time::Duration::from_secs(600),
    );
    let (master, swarm_pid) = (c.master().pid(), swarm.pid());
    if settle > 0 {
        println!("every minion online; settling for {settle} s");
        std::thread::sleep(std::time::Duration::from_secs(settle as u64));
    }
    println!(
        "every minion online: master RSS {:.0} MiB",
        status_kib(master, "VmRSS") as f64 / 1024.0
    );
    let record = |var: &str, pid: u32| {
        std::env::var_os(var).map(|file| {
            let mut p = Command::new("perf");
            p.args(["record", "--call-graph", "dwarf,16384", "-F", "200", "-o"])
                .arg(file)
                .args(["-p", &pid.to_string()]);
            Proc::spawn("perf", p)
        })
    };
    let mut perf = [
        record("COLLECT_SPEED_PERF", master),
        record("COLLECT_SPEED_PERF_SWARM", swarm_pid),
    ];
    // PostgreSQL's CPU: every process of its server (backends included).
    let pg_cpu = || -> f64 { pg.as_ref().map_or(0.0, |s| bench::tree_cpu_secs(s.pid())) };
    let fun = std::env::var("COLLECT_SPEED_FUN").unwrap_or_else(|_| "collect".into());
    println!(
        "{fun:>7}  wall s  master CPU s  swarm CPU s  client CPU s  master RSS MiB  PostgreSQL CPU s  master switches"
    );
    for i in 0..collects {
        let (m0, s0, p0, c0, x0) = (
            cpu_secs(master),
            cpu_secs(swarm_pid),
            pg_cpu(),
            children_cpu_secs(),
            context_switches(master),
        );
        let t = Instant::now();
        timed(&c, &["run", "*", &fun, "-t", "120", "--out", "json"])?;
        println!(
            "{:7}  {:6.2}  {:12.2}  {:11.2}  {:12.2}  {:14.0}  {:16.2}  {:15}",
            i + 1,
            t.elapsed().as_secs_f64(),
            cpu_secs(master) - m0,
            cpu_secs(swarm_pid) - s0,
            children_cpu_secs() - c0,
            status_kib(master, "VmRSS") as f64 / 1024.0,
            pg_cpu() - p0,
            context_switches(master).saturating_sub(x0)
        );
    }
    for p in perf.iter_mut().flatten() {
        p.signal(nix::sys::signal::Signal::SIGINT);
        p.wait_exit();
    }
    if idle > 0 {
        println!("idle: master pid {master}, swarm pid {swarm_pid}, {idle} s");
        let (m0, s0) = (cpu_secs(master), cpu_secs(swarm_pid));
        std::thread::sleep(std::time::Duration::from_secs(idle as u64));
        println!(
            "idle CPU: master {:.1} %, swarm {:.1} %",
            (cpu_secs(master) - m0) * 100.0 / idle as f64,
            (cpu_secs(swarm_pid) - s0) * 100.0 / idle as f64
        );
    }
    println!(
        "master peak RSS {:.0} MiB",
        status_kib(master, "VmHWM") as f64 / 1024.0
    );
    if let Some(server) = &pg {
        let out = Command::new("du")
            .arg("-sk")
            .arg(server.data_dir())
            .output()?;
        println!(
            "PostgreSQL data dir: {} KiB",
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .next()
                .unwrap_or("?")
        );
    }
    Ok(())
}

/// CPU seconds of this process's children that have ended: the `cmdb` runs
/// (the master and the swarm are counted only once they are waited for).
fn children_cpu_secs() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_CHILDREN).map_or(0.0, |u| {
        let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        secs(u.user_time()) + secs(u.system_time())
    })
}
