//! Load generation for cmdb: [`swarm`] simulates many minions in one
//! process with the real protocol (keys, sealed channel, session key,
//! heartbeats, missed jobs, returns until acknowledged) and realistic
//! `collect` payloads; [`facts`] makes those payloads; [`floor`] measures
//! what one core needs to take in a job's returns; [`api`] is a small client
//! of the master's HTTP API.

pub mod api;
pub mod cluster;
pub mod facts;
pub mod floor;
pub mod swarm;

/// Bytes a directory takes on disk (allocated blocks, recursively; 0 when it
/// cannot be read).
pub fn dir_bytes(p: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// A CSV giving each of `n` swarm minions' assets organisation and finance
/// fields (department, business line, purchase cost and date, depreciation
/// period, warranty end): what the benchmarks import before their queries.
pub fn finance_csv(n: usize) -> String {
    use std::fmt::Write as _;
    let mut csv = String::from(
        "minion,department,business_line,purchase_cost,purchase_date,depreciation_years,warranty_end\n",
    );
    let depts = ["finance", "games", "network", "platform"];
    for i in 0..n {
        let months = i % 72;
        let _ = writeln!(
            csv,
            "swarm-{i:05},{},bl-{},{}.50,{}-{:02}-15,{},{}-06-30",
            depts[i % depts.len()],
            i % 7,
            1000 + (i % 50) * 100,
            2020 + months / 12,
            months % 12 + 1,
            3 + i % 4,
            2026 + i % 4,
        );
    }
    csv
}

/// A `/proc/<pid>/status` value in KiB (`VmRSS`, `VmHWM`; 0 when it
/// cannot be read).
pub fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Context switches (voluntary and not) of a process's live threads: a
/// thread's count is lost when it exits, so this is for processes whose
/// threads stay (the master's runtime, workers and store threads).
pub fn context_switches(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|task| {
            std::fs::read_to_string(task.path().join("status"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| {
                    let v = l
                        .strip_prefix("voluntary_ctxt_switches:")
                        .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))?;
                    v.trim().parse::<u64>().ok()
                })
                .sum::<u64>()
        })
        .sum()
}

/// One `cmdb` run against `c`'s master that must succeed: its wall time in
/// seconds and its output.
pub fn timed(c: &tests::Cluster, args: &[&str]) -> anyhow::Result<(f64, Vec<u8>)> {
    let t = std::time::Instant::now();
    let out = c.cmdb(args);
    let secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        anyhow::bail!(
            "cmdb {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((secs, out.stdout))
}

/// Master settings every benchmark runs with: four workers, a request
/// queue and pending limit that hold a whole fleet's burst, and an auth
/// rate that lets a fleet of thousands in within seconds.
pub const MASTER_EXTRA: &str =
    "workers = 4\nrequest_queue = 65536\nmax_pending = 20000\nauth_rate = 1000\n";

/// Waits until `n` minions hold the master's current session key (its
/// `cmdb_session_key_holders` gauge): every one has a session with this
/// master, which after a restart the swarm's own count cannot tell (a minion
/// counts itself online until it notices). The gauge is read every 100 ms,
/// up to `limit`; returns the last value read.
pub fn wait_for_sessions(
    c: &tests::Cluster,
    n: usize,
    limit: std::time::Duration,
) -> anyhow::Result<usize> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let socket = c.master_state().join("api.sock");
    rt.block_on(async {
        let mut conn = api::Conn::unix(&socket).await?;
        let started = std::time::Instant::now();
        loop {
            let text = conn.get_ok("/metrics").await?;
            let held = String::from_utf8_lossy(&text)
                .lines()
                .find_map(|l| l.strip_prefix("cmdb_session_key_holders "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0) as usize;
            if held >= n || started.elapsed() >= limit {
                return Ok(held);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    })
}

/// A `cmdb-swarm` of `n` minions against `c`'s master, as the benchmarks
/// run it: heartbeats every 30 s (a minion's default), 3,000 new
/// connections a second, reconnects spread over 10 s, 20 s per request.
/// Its ready line is `"event":"all_online"`.
pub fn fleet(c: &tests::Cluster, n: usize) -> tests::Proc {
    fleet_named(c, n, "swarm-")
}

/// As [`fleet`], with minion ids starting with `prefix` (fleets of
/// several masters of a cluster must not share ids). The process is named
/// after the prefix too (`swarm` for `swarm-`, `swarm-a` for `a-`), in
/// messages and in the logs `CMDB_TEST_TEE` keeps.
pub fn fleet_named(c: &tests::Cluster, n: usize, prefix: &str) -> tests::Proc {
    let name = match prefix.trim_end_matches('-') {
        "" | "swarm" => "swarm".to_owned(),
        p => format!("swarm-{p}"),
    };
    tests::Proc::spawn(&name, fleet_command(c, n, prefix))
}

/// The command [`fleet_named`] runs, for a caller to add options to.
pub fn fleet_command(c: &tests::Cluster, n: usize, prefix: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(tests::bin_dir().join("cmdb-swarm"));
    cmd.arg("-c").arg(c.master_config()).args([
        "--id-prefix",
        prefix,
        "--count",
        &n.to_string(),
        "--heartbeat",
        "30",
        "--connect-rate",
        "3000",
        "--reconnect-jitter",
        "10",
        "--request-timeout",
        "20",
    ]);
    cmd
}

/// CPU seconds (user and system) a process has used, from `/proc/PID/stat`.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Clock ticks are 100 per second on Linux.
    (t(11) + t(12)) / 100.0
}

/// CPU seconds of a process and its children (a PostgreSQL server and its
/// backends).
pub fn tree_cpu_secs(root: u32) -> f64 {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            *pid == root
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .ok()
                    .and_then(|s| {
                        let after = s.rsplit_once(')')?.1.to_owned();
                        after.split_whitespace().nth(1)?.parse::<u32>().ok()
                    })
                    == Some(root)
        })
        .map(cpu_secs)
        .sum()
}
