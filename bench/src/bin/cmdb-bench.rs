//! `cmdb-bench`: starts a master and a swarm for each size, measures what
//! the scale targets ask, and writes BENCHMARKS.md.
//!
//! Run with `bash bench/run.sh` (release build). Exit codes: 0 when the run
//! finished (targets met or not: the report says), 1 on an error.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use tests::{Cluster, ClusterOpts, Proc, bin_dir};

/// Benchmark cmdb with a swarm of simulated minions.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Swarm sizes.
    #[arg(long, value_delimiter = ',', default_value = "1000,5000,9000")]
    sizes: Vec<usize>,
    /// Pings per size.
    #[arg(long, default_value_t = 10)]
    pings: usize,
    /// Collects per size.
    #[arg(long, default_value_t = 10)]
    collects: usize,
    /// Seconds to sample a real minion's idle use.
    #[arg(long, default_value_t = 60)]
    minion_idle: u64,
    /// Seconds to sample the master's idle use.
    #[arg(long, default_value_t = 30)]
    master_idle: u64,
    /// Where to write the report.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
}

fn ticks_per_sec() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100.0, |t| t as f64)
}

/// CPU seconds (user + system) a process has used.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / ticks_per_sec()
}

/// A `/proc/<pid>/status` value in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn dir_bytes(p: &Path) -> u64 {
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

fn run_cmdb(c: &Cluster, args: &[&str]) -> anyhow::Result<(f64, usize, usize)> {
    let started = Instant::now();
    let out = Command::new(bin_dir().join("cmdb"))
        .arg("-c")
        .arg(c.master_config())
        .args(args)
        .args(["--out", "json"])
        .output()
        .context("running cmdb")?;
    let secs = started.elapsed().as_secs_f64();
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    let returned = v.as_object().map_or(0, |m| m.len());
    let missing = String::from_utf8_lossy(&out.stderr)
        .matches("did not return")
        .count();
    Ok((secs, returned, returned + missing))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn swarm(c: &Cluster, n: usize) -> Proc {
    let mut cmd = Command::new(bin_dir().join("cmdb-swarm"));
    cmd.arg("-c")
        .arg(c.master_config())
        .args([
            "--count",
            &n.to_string(),
            "--heartbeat",
            "30",
            "--connect-rate",
            "3000",
        ])
        .args(["--reconnect-jitter", "10", "--request-timeout", "20"]);
    Proc::spawn("swarm", cmd)
}

fn event_secs(p: &Proc, nth: usize) -> f64 {
    p.lines_with("\"event\":\"all_online\"")
        .get(nth)
        .and_then(|l| l.split("\"secs\":").nth(1))
        .and_then(|s| s.trim_end_matches('}').parse().ok())
        .unwrap_or(f64::NAN)
}

const MASTER_EXTRA: &str =
    "workers = 4\nrequest_queue = 65536\nmax_pending = 20000\nauth_rate = 1000\n";

#[derive(Default)]
struct SizeReport {
    n: usize,
    auth_autosign: f64,
    auth_accept: f64,
    pings: Vec<(f64, usize, usize)>,
    collects: Vec<(f64, usize, usize, f64)>,
    peak_rss_mib: f64,
    sled_mib: f64,
    history_mib: f64,
    full_mib: f64,
    idle_cpu_pct: f64,
    storm_secs: f64,
    storm_ping: (usize, usize),
}

fn measure(n: usize, cli: &Cli) -> anyhow::Result<SizeReport> {
    let mut r = SizeReport {
        n,
        ..SizeReport::default()
    };
    let long = Duration::from_secs(600);
    eprintln!("== {n} minions: autosign");
    let mut c = Cluster::start(ClusterOpts {
        master_extra: format!(
            "{MASTER_EXTRA}autosign = [\"*\"]\n[inventory]\noffline_after_secs = 3600\n"
        ),
    });
    let s = swarm(&c, n);
    s.wait_for_n_within("\"event\":\"all_online\"", 1, long);
    r.auth_autosign = event_secs(&s, 0);
    // Minions heartbeat every few seconds for their first half minute; measure
    // the steady state after that.
    std::thread::sleep(Duration::from_secs(35));
    for i in 0..cli.pings {
        let p = run_cmdb(&c, &["run", "*", "test.ping", "-t", "30"])?;
        eprintln!("ping {i}: {:.3} s {}/{}", p.0, p.1, p.2);
        r.pings.push(p);
    }
    let pid = c.master().pid();
    for i in 0..cli.collects {
        let cpu0 = cpu_secs(pid);
        let (secs, got, want) = run_cmdb(&c, &["run", "*", "collect", "-t", "120"])?;
        let cpu = cpu_secs(pid) - cpu0;
        eprintln!("collect {i}: {secs:.3} s {got}/{want} master cpu {cpu:.2} s");
        r.collects.push((secs, got, want, cpu));
    }
    r.peak_rss_mib = status_kib(pid, "VmHWM") as f64 / 1024.0;
    r.sled_mib = dir_bytes(&c.master_state().join("db")) as f64 / 1048576.0;
    let sample = [
        "swarm-00000".to_string(),
        format!("swarm-{:05}", n / 2),
        format!("swarm-{:05}", n - 1),
    ];
    let mut hist_bytes = 0usize;
    for m in &sample {
        let out = c.cmdb(&["asset", "history", m, "--out", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        for h in v["history"].as_array().into_iter().flatten() {
            if h["version"].as_u64().unwrap_or(0) > 0 {
                hist_bytes += serde_json::to_vec(h).map_or(0, |b| b.len());
            }
        }
    }
    r.history_mib = hist_bytes as f64 / sample.len() as f64 * n as f64 / 1048576.0;
    let one = bench::facts::host_facts("swarm-00000", 0, 1, 0.01);
    let one = serde_json::to_vec(&one)?.len() as f64;
    r.full_mib = one * n as f64 * cli.collects as f64 / 1048576.0;
    let cpu0 = cpu_secs(pid);
    std::thread::sleep(Duration::from_secs(cli.master_idle));
    r.idle_cpu_pct = (cpu_secs(pid) - cpu0) / cli.master_idle as f64 * 100.0;
    eprintln!("== {n} minions: reconnect storm");
    c.master.as_mut().context("master")?.terminate();
    let t0 = Instant::now();
    c.start_master();
    s.wait_for_n_within("\"event\":\"all_online\"", 2, long);
    r.storm_secs = t0.elapsed().as_secs_f64();
    let (_, got, want) = run_cmdb(&c, &["run", "*", "test.ping", "-t", "30"])?;
    r.storm_ping = (got, want);
    drop(s);
    drop(c);

    eprintln!("== {n} minions: accept with cmdb-key -A -y");
    let c = Cluster::start(ClusterOpts {
        master_extra: MASTER_EXTRA.into(),
    });
    let s = swarm(&c, n);
    let deadline = Instant::now() + long;
    loop {
        let pending = c.keys_json()["minions_pre"].as_array().map_or(0, Vec::len);
        if pending >= n {
            break;
        }
        if Instant::now() > deadline {
            bail!("only {pending} of {n} keys became pending");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let t0 = Instant::now();
    let out = c.key(&["-A", "-y"]);
    if !out.status.success() {
        bail!("cmdb-key -A failed");
    }
    s.wait_for_n_within("\"event\":\"all_online\"", 1, long);
    r.auth_accept = t0.elapsed().as_secs_f64();
    Ok(r)
}

fn real_minion(secs: u64) -> anyhow::Result<(f64, f64)> {
    let mut c = Cluster::start(ClusterOpts::default());
    c.start_minion_with(
        "real",
        "real-minion",
        "heartbeat_interval = 30\ncollect_interval = 0",
    );
    c.minion("real").wait_for("key pending acceptance");
    c.key(&["-A", "-y"]);
    c.minion("real").wait_for("minion ready");
    let pid = c.minion("real").pid();
    let cpu0 = cpu_secs(pid);
    std::thread::sleep(Duration::from_secs(secs));
    let cpu = cpu_secs(pid) - cpu0;
    Ok((status_kib(pid, "VmRSS") as f64 / 1024.0, cpu))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_owned()))
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores ({cpu}), {mem} memory")
}

fn report(cli: &Cli, sizes: &[SizeReport], minion: (f64, f64)) -> String {
    let mut o = String::new();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let _ = writeln!(o, "# Benchmarks\n");
    let _ = writeln!(
        o,
        "Generated by `bash bench/run.sh` (release build) on {date}.\n"
    );
    let _ = writeln!(
        o,
        "Machine: {}. Master, swarm and CLI share it; all traffic is on 127.0.0.1.\n",
        machine()
    );
    let _ = writeln!(
        o,
        "Each size runs a fresh master and one `cmdb-swarm` process (one key, one SUB and one DEALER connection per simulated minion, ~{:.1} KB collect payloads with 1 % of the churning fields changing per collect, heartbeats every 30 s).\n",
        serde_json::to_vec(&bench::facts::host_facts("swarm-00000", 0, 1, 0.01))
            .map_or(0, |v| v.len()) as f64
            / 1000.0
    );
    let _ = writeln!(
        o,
        "| minions | all authenticated (autosign) | all authenticated after `cmdb-key -A -y` | ping median | ping p99 | ping returned/expected (worst) | first collect wall | collect median | collect returns/s (median) | master CPU s per collect | master peak RSS | sled on disk after {} collects | change history after the first record | {} full snapshots | master idle CPU | reconnect storm: all back | ping after storm |",
        cli.collects, cli.collects
    );
    let _ = writeln!(
        o,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for r in sizes {
        let mut p: Vec<f64> = r.pings.iter().map(|x| x.0).collect();
        p.sort_by(|a, b| a.total_cmp(b));
        let worst = r
            .pings
            .iter()
            .map(|x| (x.1, x.2))
            .min_by_key(|(g, _)| *g)
            .unwrap_or((0, 0));
        let c0 = r.collects.first().copied().unwrap_or((0.0, 0, 0, 0.0));
        let mut cw: Vec<f64> = r.collects.iter().map(|x| x.0).collect();
        cw.sort_by(|a, b| a.total_cmp(b));
        let cmed = percentile(&cw, 0.5);
        let cpu: f64 = r.collects.iter().map(|x| x.3).sum::<f64>() / r.collects.len().max(1) as f64;
        let _ = writeln!(
            o,
            "| {} | {:.1} s | {:.1} s | {:.3} s | {:.3} s | {}/{} | {:.2} s | {:.2} s | {:.0} | {:.2} | {:.0} MiB | {:.1} MiB | {:.2} MiB (1/{:.0}) | {:.1} MiB | {:.1} % | {:.1} s | {}/{} |",
            r.n,
            r.auth_autosign,
            r.auth_accept,
            percentile(&p, 0.5),
            percentile(&p, 0.99),
            worst.0,
            worst.1,
            c0.0,
            cmed,
            r.n as f64 / cmed.max(1e-9),
            cpu,
            r.peak_rss_mib,
            r.sled_mib,
            r.history_mib,
            r.full_mib / r.history_mib.max(1e-9),
            r.full_mib,
            r.idle_cpu_pct,
            r.storm_secs,
            r.storm_ping.0,
            r.storm_ping.1
        );
    }
    let _ = writeln!(o, "\nCollect wall times per run (seconds):\n");
    for r in sizes {
        let w: Vec<String> = r
            .collects
            .iter()
            .map(|x| format!("{:.2} ({}/{})", x.0, x.1, x.2))
            .collect();
        let _ = writeln!(o, "- {} minions: {}", r.n, w.join(", "));
    }
    let _ = writeln!(o, "\nPing wall times per run (seconds):\n");
    for r in sizes {
        let w: Vec<String> = r
            .pings
            .iter()
            .map(|x| format!("{:.3} ({}/{})", x.0, x.1, x.2))
            .collect();
        let _ = writeln!(o, "- {} minions: {}", r.n, w.join(", "));
    }
    let _ = writeln!(
        o,
        "\nA real `cmdb-minion` (release) connected and idle for {} s: RSS {:.1} MiB, CPU {:.2} s.\n",
        cli.minion_idle, minion.0, minion.1
    );
    let _ = writeln!(
        o,
        "Ping and collect times are whole `cmdb run … --out json` invocations (CLI start, publish, every return, output), measured from 35 s after every minion is online (new sessions heartbeat every few seconds for their first 30 s). \"Sled\" is the master's database directory on disk (job cache, returns, assets and history); \"full snapshots\" is the JSON size of one payload times minions times collects.\n"
    );
    let _ = writeln!(
        o,
        "This machine allows 20,000 open files per process and the master holds two connections per minion, so about 9,900 minions is the ceiling for one master here; the shipped systemd unit raises `LimitNOFILE` for real hosts."
    );
    o
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut sizes = Vec::new();
    for &n in &cli.sizes {
        sizes.push(measure(n, &cli)?);
    }
    eprintln!("== real minion idle");
    let minion = real_minion(cli.minion_idle)?;
    let text = report(&cli, &sizes, minion);
    std::fs::write(&cli.out, &text).with_context(|| format!("writing {}", cli.out.display()))?;
    print!("{text}");
    Ok(())
}
