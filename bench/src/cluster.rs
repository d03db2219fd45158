//! Fleet pings and collects through a master cluster of two peers on this
//! machine: one PostgreSQL server and one NATS server started for the run
//! (127.0.0.1, fsync on), two masters sharing them, and one `cmdb-swarm` of
//! N minions connected to each peer. Every job is published on the first
//! peer and expects all 2N minions, so half the returns reach it through
//! the other peer. Jobs start 35 s after every minion is online, as in
//! `bench/run.sh`, once new sessions have settled (they heartbeat every few
//! seconds for their first 30 s).

use std::time::{Duration, Instant};

use crate::{cpu_secs, status_kib, timed};
use tests::Proc;

/// One job's figures.
#[derive(Debug, Clone)]
pub struct Job {
    /// `test.ping` or `collect`.
    pub fun: String,
    /// Whole `cmdb run` invocation, seconds.
    pub wall: f64,
    /// Minions that returned.
    pub returned: usize,
    /// CPU seconds over the job: master A, master B, swarm A, swarm B,
    /// PostgreSQL (all its processes).
    pub cpu: [f64; 5],
}

/// A run's figures.
#[derive(Debug, Clone)]
pub struct Run {
    /// Minions in all (both swarms).
    pub minions: usize,
    /// Every job, in order.
    pub jobs: Vec<Job>,
    /// Peak RSS of the two masters, MiB.
    pub peak_rss_mib: [f64; 2],
}

impl Run {
    /// The median wall time of the jobs running `fun`.
    pub fn median(&self, fun: &str) -> Option<f64> {
        let mut v: Vec<f64> = self
            .jobs
            .iter()
            .filter(|j| j.fun == fun)
            .map(|j| j.wall)
            .collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    }
}

/// The header of the lines [`run`] prints.
pub const HEADER: &str = "job       wall s  returned/expected  master A CPU s  master B CPU s  swarm A CPU s  swarm B CPU s  PostgreSQL CPU s";

/// `n` minions on each of two peers; `pings` fleet pings, then `collects`
/// fleet collects, each job's line printed as it ends.
pub fn run(n: usize, pings: usize, collects: usize) -> anyhow::Result<Run> {
    let tests::Peers {
        a,
        b,
        nats: _nats,
        server: pg,
        pg_dir: _pg_dir,
    } = tests::Peers::start(
        &format!(
            "{}autosign = [\"*\"]\n[inventory]\noffline_after_secs = 3600\n",
            crate::MASTER_EXTRA
        ),
        true,
    );
    let swarms: Vec<Proc> = vec![
        crate::fleet_named(&a, n, "a-"),
        crate::fleet_named(&b, n, "b-"),
    ];
    for s in &swarms {
        s.wait_for_n_within("\"event\":\"all_online\"", 1, Duration::from_secs(900));
    }
    std::thread::sleep(Duration::from_secs(35));
    let total = 2 * n;
    let pids = [
        a.master().pid(),
        b.master().pid(),
        swarms[0].pid(),
        swarms[1].pid(),
    ];
    let cpu = || -> [f64; 5] {
        let mut v = [0.0; 5];
        for (slot, pid) in v.iter_mut().zip(pids) {
            *slot = cpu_secs(pid);
        }
        v[4] = crate::tree_cpu_secs(pg.pid());
        v
    };
    println!("{HEADER}");
    let mut jobs = Vec::new();
    for (fun, times, timeout) in [("test.ping", pings, "60"), ("collect", collects, "300")] {
        for _ in 0..times {
            let before = cpu();
            let t = Instant::now();
            let (_, out) = timed(&a, &["run", "*", fun, "-t", timeout, "--out", "json"])?;
            let wall = t.elapsed().as_secs_f64();
            let v: serde_json::Value = serde_json::from_slice(&out)?;
            let returned = v.as_object().map_or(0, |o| o.len());
            let after = cpu();
            let mut d = [0.0; 5];
            for (i, slot) in d.iter_mut().enumerate() {
                *slot = after[i] - before[i];
            }
            println!(
                "{fun:9} {wall:6.2}  {returned:>8}/{total:<8}  {:14.2}  {:14.2}  {:13.2}  {:13.2}  {:16.2}",
                d[0], d[1], d[2], d[3], d[4]
            );
            jobs.push(Job {
                fun: fun.to_owned(),
                wall,
                returned,
                cpu: d,
            });
        }
    }
    let peak = |pid: u32| status_kib(pid, "VmHWM") as f64 / 1024.0;
    Ok(Run {
        minions: total,
        jobs,
        peak_rss_mib: [peak(pids[0]), peak(pids[1])],
    })
}
