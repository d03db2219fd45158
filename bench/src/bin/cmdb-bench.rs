//! `cmdb-bench`: starts a master and a swarm for each size, measures what
//! the scale targets ask, and writes BENCHMARKS.md.
//!
//! Run with `bash bench/run.sh` (release build). Exit codes: 0 when the run
//! finished (targets met or not: the report says), 1 on an error.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bench::{dir_bytes, status_kib, timed};
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
    /// Sequential `GET /v1/assets?limit=100` per transport (unix socket,
    /// TLS with a bearer token), after a few untimed warm-up requests.
    #[arg(long, default_value_t = 300)]
    api_requests: usize,
    /// Seconds to sustain signed requests.
    #[arg(long, default_value_t = 10.0)]
    signed_secs: f64,
    /// Concurrent keep-alive TLS connections sending signed requests.
    #[arg(long, default_value_t = 16)]
    signed_conns: usize,
    /// Passes over the floor's returns; the fastest counts.
    #[arg(long, default_value_t = 3)]
    floor_reps: usize,
    /// Only measure the floor for each size, print it and exit (to put a
    /// figure from another build, measured the same day, against a floor).
    #[arg(long)]
    floor_only: bool,
    /// Where to write the report.
    #[arg(long, default_value = "BENCHMARKS.md")]
    out: PathBuf,
    /// Only measure agentless collection: this many roster entries, all
    /// pointing at one local sshd of the benchmark's own, collected with
    /// `cmdb ssh '*' collect`; the section replaces the one in `--out`.
    #[arg(long, value_name = "HOSTS")]
    ssh: Option<usize>,
    /// With `--ssh`: the master's `ssh_max_sessions`.
    #[arg(long, default_value_t = 50)]
    ssh_sessions: usize,
    /// With `--ssh`: timed collects of the whole roster (after one that
    /// pins the host key and creates the assets).
    #[arg(long, default_value_t = 2)]
    ssh_collects: usize,
    /// With `--ssh`: an ssh_config file for the master's ssh client
    /// (`[ssh] ssh_config`), e.g. one choosing other key exchanges.
    #[arg(long, value_name = "FILE")]
    ssh_config: Option<PathBuf>,
    /// Only measure a fleet collect across master kills: TRIES times a
    /// `collect` of the whole swarm, the master killed (SIGKILL) 0-400 ms
    /// after the publish and started again; the section replaces the one
    /// in `--out`.
    #[arg(long, value_name = "TRIES")]
    crash: Option<usize>,
    /// With `--crash`: the swarm's size.
    #[arg(long, default_value_t = 2000)]
    crash_minions: usize,
    /// Only measure a master cluster: two peers on one PostgreSQL and one
    /// NATS, a swarm of this many minions on each, `--pings` and
    /// `--collects` jobs of all of them; the section replaces the one in
    /// `--out`.
    #[arg(long, value_name = "MINIONS_PER_PEER")]
    cluster: Option<usize>,
}

/// The user the SSH run logs in as. Run as root, a system user
/// `cmdb-bench` with `/bin/sh` as its shell, made when missing: a login
/// shell's start-up files (root's may run version managers and the like)
/// would otherwise be timed with every host's command. Otherwise the
/// current user.
fn bench_login_user(dir: &std::path::Path) -> anyhow::Result<String> {
    if !nix::unistd::Uid::effective().is_root() {
        return std::env::var("USER").context("USER is not set");
    }
    let name = "cmdb-bench";
    let known = std::process::Command::new("getent")
        .args(["passwd", name])
        .output()
        .context("getent")?;
    if !known.status.success() {
        let made = std::process::Command::new("useradd")
            .args(["--system", "--no-create-home", "--home-dir", "/"])
            .args(["--shell", "/bin/sh", name])
            .status()
            .context("useradd")?;
        anyhow::ensure!(made.success(), "useradd {name} failed");
    }
    // No password, yet not locked: sshd refuses locked accounts.
    let unlocked = std::process::Command::new("usermod")
        .args(["-p", "*", name])
        .status()
        .context("usermod")?;
    anyhow::ensure!(unlocked.success(), "usermod {name} failed");
    // sshd reads authorized_keys as the user: the way there must be open.
    use std::os::unix::fs::PermissionsExt;
    for d in [dir, &dir.join("sshd")] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
    }
    std::fs::set_permissions(
        dir.join("sshd").join("authorized_keys"),
        std::fs::Permissions::from_mode(0o644),
    )?;
    Ok(name.to_owned())
}

/// CPU seconds (user + system) a process's waited-for children have used.
fn children_cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(13) + t(14)) / ticks_per_sec()
}

/// One timed collect over SSH.
struct SshRun {
    /// Seconds of `cmdb ssh '*' collect`.
    wall: f64,
    /// Hosts that returned facts.
    ok: usize,
    /// CPU seconds of the master itself.
    master_cpu: f64,
    /// CPU seconds of its ssh client processes.
    clients_cpu: f64,
    /// CPU seconds of sshd and its sessions.
    sshd_cpu: f64,
    /// Cores other processes kept busy meanwhile.
    other_cores: f64,
}

/// `--ssh HOSTS`: a roster of HOSTS entries on one local sshd, collected
/// with `ssh_max_sessions` sessions; answers the report section.
fn ssh_phase(cli: &Cli, hosts: usize) -> anyhow::Result<String> {
    let dir = tempfile::tempdir().context("temp dir")?;
    let sshd = tests::sshd::Sshd::start(&dir.path().join("sshd"));
    let login = sshd.login("bench", "");
    let user = bench_login_user(dir.path())?;
    let mut roster = String::new();
    for i in 0..hosts {
        writeln!(
            roster,
            "ssh-{i:04}:\n  host: 127.0.0.1\n  port: {}\n  user: {user}\n  priv: {}",
            sshd.port,
            login.key.display()
        )?;
    }
    let roster_path = dir.path().join("roster");
    std::fs::write(&roster_path, roster)?;
    let c = Cluster::start(ClusterOpts {
        master_extra: format!(
            "roster = \"{}\"\nssh_max_sessions = {}\n{}",
            roster_path.display(),
            cli.ssh_sessions,
            cli.ssh_config.as_ref().map_or(String::new(), |f| format!(
                "[ssh]\nssh_config = \"{}\"\n",
                f.display()
            ))
        ),
    });
    let master = c.master.as_ref().map(Proc::pid).context("master")?;
    cmdb_ok(&c, &["ssh", "ssh-0000", "test.ping"])?;
    let collect = |c: &Cluster| -> anyhow::Result<SshRun> {
        let pids = [master];
        let load = OtherLoad::start(&pids);
        let (m0, k0) = (cpu_secs(master), children_cpu_secs(master));
        let s0 = cpu_secs(sshd.pid()) + children_cpu_secs(sshd.pid());
        let start = Instant::now();
        let out = c.cmdb(&["ssh", "--out", "json", "*", "collect"]);
        let wall = start.elapsed().as_secs_f64();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .with_context(|| format!("cmdb ssh: {}", String::from_utf8_lossy(&out.stderr)))?;
        let ok = v
            .as_object()
            .map_or(0, |m| m.values().filter(|f| f["num_cpus"].is_u64()).count());
        let sshd_cpu = cpu_secs(sshd.pid()) + children_cpu_secs(sshd.pid()) - s0;
        let clients_cpu = children_cpu_secs(master) - k0;
        let other = load.cores(&pids);
        Ok(SshRun {
            wall,
            ok,
            master_cpu: cpu_secs(master) - m0,
            clients_cpu,
            sshd_cpu,
            // The ssh clients and sshd are the benchmark's too.
            other_cores: (other - (sshd_cpu + clients_cpu) / wall.max(1e-9)).max(0.0),
        })
    };
    eprintln!("== ssh: first collect of {hosts} hosts (creates the assets)");
    let first = collect(&c)?;
    let mut runs = Vec::new();
    for n in 0..cli.ssh_collects {
        eprintln!("== ssh: collect {} of {}", n + 1, cli.ssh_collects);
        runs.push(collect(&c)?);
    }
    let mut s = String::new();
    writeln!(s, "{SSH_HEADING}\n")?;
    writeln!(
        s,
        "`bash bench/run.sh --ssh {hosts} --ssh-sessions {}{}`: {hosts} roster entries all \
         pointing at one local sshd (key login as `{user}`, whose shell is /bin/sh; the \
         benchmark's own sshd), collected with `cmdb ssh '*' collect` through a master with \
         `ssh_max_sessions = {}`{}. Each host is one ssh client process and one sshd \
         session; the sshd, its sessions and the clients share the machine with the master. \
         Goal: the whole roster within 60 s. Measured on {}, {}.\n",
        cli.ssh_sessions,
        cli.ssh_config
            .as_ref()
            .map_or(String::new(), |f| format!(" --ssh-config {}", f.display())),
        cli.ssh_sessions,
        cli.ssh_config.as_ref().map_or(String::new(), |f| format!(
            " and this ssh_config: `{}`",
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .trim()
                .replace('\n', "; ")
        )),
        machine(),
        source()
    )?;
    writeln!(
        s,
        "| collect | hosts with facts | wall | hosts/s | master CPU | ssh clients CPU | sshd CPU | other load (cores) | goal ≤ 60 s |"
    )?;
    writeln!(s, "|---|---|---|---|---|---|---|---|---|")?;
    for (name, r) in std::iter::once(("first (new assets)".to_owned(), &first)).chain(
        runs.iter()
            .enumerate()
            .map(|(i, r)| (format!("again #{}", i + 1), r)),
    ) {
        writeln!(
            s,
            "| {name} | {}/{hosts} | {:.1} s | {:.1} | {:.1} s ({:.0}% of a core) | {:.1} s | {:.1} s | {:.2} | {} |",
            r.ok,
            r.wall,
            hosts as f64 / r.wall.max(1e-9),
            r.master_cpu,
            100.0 * r.master_cpu / r.wall.max(1e-9),
            r.clients_cpu,
            r.sshd_cpu,
            r.other_cores,
            met(r.wall <= 60.0 && r.ok == hosts)
        )?;
    }
    Ok(s)
}

/// The heading of the SSH run's section (`--ssh`).
const SSH_HEADING: &str = "## Agentless collection over SSH";

/// The heading of the crash run's section (`--crash`).
const CRASH_HEADING: &str = "## A fleet collect across master kills";

/// The heading of the cluster run's section (`--cluster`).
const CLUSTER_HEADING: &str = "## A master cluster: two peers on PostgreSQL and NATS";

/// The sections of an earlier report that a run does not write: those
/// whose heading says "(written by hand)" and the SSH and crash runs'
/// sections, each up to the next `## ` heading, in their order.
fn kept_sections(old: &str) -> String {
    let mut kept = String::new();
    let mut starts: Vec<usize> = old.match_indices("\n## ").map(|(i, _)| i + 1).collect();
    starts.push(old.len());
    for w in starts.windows(2) {
        let section = &old[w[0]..w[1]];
        let heading = section.lines().next().unwrap_or_default();
        if heading.contains("(written by hand)")
            || heading.starts_with(SSH_HEADING)
            || heading.starts_with(CRASH_HEADING)
            || heading.starts_with(CLUSTER_HEADING)
        {
            kept.push('\n');
            kept.push_str(section.trim_end_matches('\n'));
            kept.push('\n');
        }
    }
    kept
}

/// Replaces (or appends) the section starting `head` in the report at
/// `path`, keeping the rest of the report.
fn put_section(path: &std::path::Path, head: &str, section: &str) -> anyhow::Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let text = match old.find(head) {
        Some(at) => {
            let rest = &old[at + head.len()..];
            let end = rest
                .find("\n## ")
                .map_or(old.len(), |e| at + head.len() + e + 1);
            let next = &old[end..];
            if next.is_empty() {
                format!("{}{section}", &old[..at])
            } else {
                // A blank line before the next section's heading.
                format!("{}{}\n\n{next}", &old[..at], section.trim_end_matches('\n'))
            }
        }
        None if old.is_empty() => section.to_owned(),
        None => format!(
            "{}\n{section}",
            old.trim_end_matches('\n').to_owned() + "\n"
        ),
    };
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// One try of the crash run: a fleet collect, the master killed while it
/// runs and started again.
#[derive(Debug, Default)]
struct CrashTry {
    /// The collect's jid; empty when `cmdb run --async` failed.
    jid: String,
    /// Milliseconds from `cmdb run --async`'s answer to the SIGKILL.
    kill_ms: u64,
    /// Seconds from starting the new master to its ready line; `None`
    /// when it did not get ready (its store did not open, or it hung).
    ready_secs: Option<f64>,
    /// Seconds from the new master's ready line until the job's returns
    /// stream said `done`; `None` when the try did not get that far.
    complete_secs: Option<f64>,
    /// Minions whose return the stream delivered.
    returns: usize,
    /// `ret` events in the stream beyond the first for their minion.
    duplicates: usize,
    /// Minions the stream's `done` event names as missing.
    missing: usize,
    /// Results `cmdb jobs show` lists; `None` when it was not asked.
    results: Option<usize>,
    /// Of those, results without collected facts (no `num_cpus`).
    without_facts: usize,
    /// What stopped the try, if anything.
    error: Option<String>,
}

impl CrashTry {
    /// Whether every minion's return is there exactly once, in the stream
    /// and in the job cache.
    fn exactly_once(&self, n: usize) -> bool {
        self.returns == n
            && self.duplicates == 0
            && self.missing == 0
            && self.results == Some(n)
            && self.without_facts == 0
    }

    fn passed(&self, n: usize) -> bool {
        self.error.is_none() && self.exactly_once(n)
    }
}

/// The next number of a xorshift generator (`state` must not be 0).
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Starts the master again and waits up to two minutes for its ready line;
/// answers the seconds that took. Where `Cluster::start_master` panics
/// when the master does not get ready, this answers an error with the
/// master's last log lines (and leaves no master), so that a crash run
/// records the try and goes on.
fn restart_master(c: &mut Cluster) -> anyhow::Result<f64> {
    let limit = Duration::from_secs(120);
    let mut cmd = Command::new(bin_dir().join("cmdb-master"));
    cmd.arg("-c").arg(c.master_config());
    c.master = None;
    let started = Instant::now();
    let mut p = Proc::spawn("master", cmd);
    loop {
        if p.count("master ready") > 0 {
            let secs = started.elapsed().as_secs_f64();
            c.master = Some(p);
            return Ok(secs);
        }
        let exited = !p.is_running();
        if exited || started.elapsed() > limit {
            let logs = p.logs();
            let lines: Vec<&str> = logs.lines().collect();
            bail!(
                "the master {} its ready line; its last log lines: {}",
                if exited {
                    "exited without"
                } else {
                    "did not log within 120 s"
                },
                lines[lines.len().saturating_sub(10)..].join(" / ")
            );
        }
        // The log has no wait that gives up without a panic: poll it.
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What `GET /v1/jobs/{jid}/returns` streamed.
#[derive(Debug, Default, PartialEq)]
struct Followed {
    /// `ret` events per minion.
    rets: std::collections::BTreeMap<String, usize>,
    /// The minions the `done` event names as missing.
    missing: Vec<String>,
}

/// Reads a returns stream (server-sent events) up to its `done` event.
fn parse_returns_stream(text: &str) -> anyhow::Result<Followed> {
    let mut f = Followed::default();
    let mut event = "";
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("event:") {
            event = name.trim();
        } else if let Some(data) = line.strip_prefix("data:") {
            let v: serde_json::Value = serde_json::from_str(data.trim())
                .with_context(|| format!("a {event:?} event that is not JSON"))?;
            match event {
                "ret" => {
                    let minion = v["minion"]
                        .as_str()
                        .context("a ret event without a minion")?;
                    *f.rets.entry(minion.to_owned()).or_default() += 1;
                }
                "done" => {
                    f.missing = v["missing"]
                        .as_array()
                        .context("a done event without missing")?
                        .iter()
                        .filter_map(|m| m.as_str().map(str::to_owned))
                        .collect();
                    return Ok(f);
                }
                _ => {}
            }
        } else if line.is_empty() {
            event = "";
        }
    }
    bail!(
        "no done event in the returns stream: {}",
        &text[text.floor_char_boundary(text.len().saturating_sub(500))..]
    )
}

/// Follows the job's returns on the master's unix socket until the stream
/// says `done` (every expected minion returned, or none for `quiet_secs`
/// while none reports the job running), as the process test
/// `a_fleet_collect_completes_across_master_kills_at_random_moments` does.
fn follow_returns(c: &Cluster, jid: &str, quiet_secs: u64) -> anyhow::Result<Followed> {
    let out = Command::new("curl")
        .args(["-s", "-N", "--max-time", "1800", "--unix-socket"])
        .arg(c.master_state().join("api.sock"))
        .arg(format!(
            "http://cmdb/v1/jobs/{jid}/returns?timeout={quiet_secs}"
        ))
        .output()
        .context("running curl")?;
    parse_returns_stream(&String::from_utf8_lossy(&out.stdout))
        .with_context(|| format!("GET /v1/jobs/{jid}/returns (curl {})", out.status))
}

/// One try: a collect of the whole swarm, the master killed `t.kill_ms`
/// after the publish and started again, then the job followed to its end
/// and its cache entry checked. Fills `t` as far as it gets.
fn crash_steps(c: &mut Cluster, t: &mut CrashTry) -> anyhow::Result<()> {
    if !c.master.as_mut().is_some_and(|m| m.is_running()) {
        restart_master(c).context("starting the master an earlier try left down")?;
    }
    let out = c.cmdb(&["run", "*", "collect", "--async"]);
    if !out.status.success() {
        bail!(
            "cmdb run '*' collect --async: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    t.jid = tests::jid_of(&out);
    std::thread::sleep(Duration::from_millis(t.kill_ms));
    c.master.as_mut().context("no master")?.kill();
    t.ready_secs = Some(restart_master(c).context("restarting the master")?);
    let ready = Instant::now();
    let followed = follow_returns(c, &t.jid, 60)?;
    t.complete_secs = Some(ready.elapsed().as_secs_f64());
    t.returns = followed.rets.len();
    t.duplicates = followed.rets.values().map(|k| k - 1).sum();
    t.missing = followed.missing.len();
    let out = c.cmdb(&["jobs", "show", &t.jid, "--out", "json"]);
    if !out.status.success() {
        bail!(
            "cmdb jobs show {}: {}",
            t.jid,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let shown: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("cmdb jobs show: not JSON")?;
    let results = shown[&t.jid]["Result"]
        .as_object()
        .context("cmdb jobs show: no Result")?;
    t.results = Some(results.len());
    t.without_facts = results
        .values()
        .filter(|facts| !facts["num_cpus"].is_u64())
        .count();
    Ok(())
}

/// `--crash TRIES`: a master and a swarm of `--crash-minions`, then TRIES
/// times a fleet collect with the master killed at a random moment of it
/// (a failed try is recorded, not fatal); answers the report section.
fn crash_phase(cli: &Cli, tries: usize) -> anyhow::Result<String> {
    let n = cli.crash_minions;
    anyhow::ensure!(
        tries > 0 && n > 0,
        "--crash and --crash-minions must be at least 1"
    );
    eprintln!("== crash: {n} minions");
    let mut c = Cluster::start(ClusterOpts {
        master_extra: format!("{}autosign = [\"*\"]\n", bench::MASTER_EXTRA),
    });
    let s = bench::fleet(&c, n);
    s.wait_for_n_within("\"event\":\"all_online\"", 1, Duration::from_secs(600));
    // Minions heartbeat every few seconds for their first half minute; kill
    // in the steady state after that.
    std::thread::sleep(Duration::from_secs(35));
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let mut rng = u64::from_le_bytes(seed) | 1;
    let mut runs = Vec::with_capacity(tries);
    for i in 1..=tries {
        let mut t = CrashTry {
            kill_ms: xorshift(&mut rng) % 400,
            ..CrashTry::default()
        };
        if let Err(e) = crash_steps(&mut c, &mut t) {
            t.error = Some(format!("{e:#}"));
        }
        eprintln!(
            "crash {i}/{tries}: jid {} killed after {} ms, ready in {}, done {} later, {} returns ({} duplicate), {} missing, {} results{}",
            t.jid,
            t.kill_ms,
            t.ready_secs.map_or("-".into(), |s| format!("{s:.2} s")),
            t.complete_secs.map_or("-".into(), |s| format!("{s:.2} s")),
            t.returns,
            t.duplicates,
            t.missing,
            t.results.map_or("-".into(), |r| r.to_string()),
            t.error
                .as_deref()
                .map(|e| format!("; FAILED: {e}"))
                .unwrap_or_default()
        );
        runs.push(t);
    }
    let assets = asset_count(&mut c);
    if let Err(e) = &assets {
        eprintln!("crash: asset list: {e:#}");
    }
    drop(s);
    drop(c);
    Ok(crash_section(n, &runs, assets.ok()))
}

/// How many assets `cmdb asset list --out json` lists (starting the master
/// first if the last try left none).
fn asset_count(c: &mut Cluster) -> anyhow::Result<usize> {
    if !c.master.as_mut().is_some_and(|m| m.is_running()) {
        restart_master(c)?;
    }
    let out = c.cmdb(&["asset", "list", "--out", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "cmdb asset list: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })?;
    Ok(v.as_array().context("cmdb asset list: not a list")?.len())
}

/// `--cluster N`: the floor of 2N returns, then two peers with a swarm of
/// N minions each (`bench::cluster`).
fn cluster_phase(cli: &Cli, n: usize) -> anyhow::Result<String> {
    anyhow::ensure!(n > 0, "--cluster must be at least 1");
    eprintln!("== cluster: floors for {} returns", 2 * n);
    let (floor_ping, floor_collect) = floors(2 * n, cli.floor_reps)?;
    eprintln!("== cluster: two peers, {n} minions each");
    let run = bench::cluster::run(n, cli.pings, cli.collects)?;
    Ok(cluster_section(cli, n, &run, floor_ping, floor_collect))
}

/// The cluster run's report section.
fn cluster_section(
    cli: &Cli,
    n: usize,
    run: &bench::cluster::Run,
    floor_ping: f64,
    floor_collect: f64,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{CLUSTER_HEADING}\n");
    let _ = writeln!(
        s,
        "`bash bench/run.sh --cluster {n} --pings {} --collects {}`: one PostgreSQL server \
         (fsync on) and one NATS server started for the run, two masters (peers of one \
         cluster, autosign) on them, and one `cmdb-swarm` of {n} minions connected to each \
         peer, everything on 127.0.0.1 and this machine's cores. From 35 s after every minion \
         is online, each job is a whole `cmdb run '*' FUN --out json` on the first peer, \
         expecting all {} minions: half the returns reach it from the other peer over NATS. \
         CPU seconds are each process's over the job (PostgreSQL: all its processes). The \
         floor is one core verifying and decoding {} returns, measured just before. \
         Measured on {}, {}.\n",
        cli.pings,
        cli.collects,
        run.minions,
        run.minions,
        machine(),
        source()
    );
    let _ = writeln!(
        s,
        "| job | wall | returned/expected | wall / floor | master A CPU s | master B CPU s | swarm A CPU s | swarm B CPU s | PostgreSQL CPU s |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for j in &run.jobs {
        let floor = if j.fun == "collect" {
            floor_collect
        } else {
            floor_ping
        };
        let _ = writeln!(
            s,
            "| {} | {:.2} s | {}/{} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            j.fun,
            j.wall,
            j.returned,
            run.minions,
            j.wall / floor.max(1e-9),
            j.cpu[0],
            j.cpu[1],
            j.cpu[2],
            j.cpu[3],
            j.cpu[4]
        );
    }
    let median = |fun: &str, floor: f64| match run.median(fun) {
        Some(m) => format!(
            "{m:.2} s ({:.1} floors of {floor:.3} s)",
            m / floor.max(1e-9)
        ),
        None => "-".to_owned(),
    };
    let _ = writeln!(
        s,
        "\nPing median {} (goal ≤ 2 s), collect median {} (goal ≤ 10 s); peak RSS \
         {:.0} MiB (first peer) and {:.0} MiB (second).",
        median("test.ping", floor_ping),
        median("collect", floor_collect),
        run.peak_rss_mib[0],
        run.peak_rss_mib[1]
    );
    s
}

/// The crash run's report section.
fn crash_section(n: usize, runs: &[CrashTry], assets: Option<usize>) -> String {
    let tries = runs.len();
    let passed = runs.iter().filter(|t| t.passed(n)).count();
    let exactly_once = runs.iter().all(|t| t.exactly_once(n));
    let sorted = |f: fn(&CrashTry) -> Option<f64>| {
        let mut v: Vec<f64> = runs.iter().filter_map(f).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let ready = sorted(|t| t.ready_secs);
    let complete = sorted(|t| t.complete_secs);
    let secs = |v: &[f64], p: f64| {
        if v.is_empty() {
            "-".to_owned()
        } else {
            format!("{:.2} s", percentile(v, p))
        }
    };
    let assets_ok = assets == Some(n);
    let mut s = String::new();
    let _ = writeln!(s, "{CRASH_HEADING}\n");
    let _ = writeln!(
        s,
        "`bash bench/run.sh --crash {tries} --crash-minions {n}`: a master (autosign) and one \
         `cmdb-swarm` of {n} minions (heartbeats every 30 s) on 127.0.0.1; from 35 s after \
         every minion is online, {tries} times: `cmdb run '*' collect --async`, SIGKILL of the \
         master a random 0-400 ms after that answered, the master started again (\"restart to \
         ready\": from its start to its ready line, the store opened), the job's returns \
         followed on the unix socket (`GET /v1/jobs/{{jid}}/returns?timeout=60`) until it is \
         done (\"completion after restart\": from the ready line), then `cmdb jobs show JID` \
         must list one result with facts per minion; after the last try `cmdb asset list` \
         must list {n} assets. The same as the process test \
         `a_fleet_collect_completes_across_master_kills_at_random_moments`, at scale. \
         Measured on {}, {}.\n",
        machine(),
        source()
    );
    let _ = writeln!(
        s,
        "| minions | tries | passed | every return exactly once | restart to ready, median | max | completion after restart, median | p90 | max | assets after the last try |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
    let _ = writeln!(
        s,
        "| {n} | {tries} | {passed} | {} | {} | {} | {} | {} | {} | {} |",
        if exactly_once { "yes" } else { "no" },
        secs(&ready, 0.5),
        secs(&ready, 1.0),
        secs(&complete, 0.5),
        secs(&complete, 0.9),
        secs(&complete, 1.0),
        assets.map_or("-".to_owned(), |a| format!("{a}/{n}"))
    );
    let _ = writeln!(
        s,
        "\nGoal: every acknowledged return there exactly once and the job complete for every minion after each restart: {} ({passed} of {tries} tries passed; {} assets of {n}).\n",
        met(passed == tries && assets_ok),
        assets.map_or("no count of".to_owned(), |a| a.to_string())
    );
    // Failed tries first, then the slowest to complete.
    let mut order: Vec<(usize, &CrashTry)> = runs.iter().enumerate().collect();
    if tries > 10 {
        order.sort_by(|(_, a), (_, b)| {
            a.passed(n).cmp(&b.passed(n)).then_with(|| {
                let key = |t: &CrashTry| t.complete_secs.unwrap_or(f64::INFINITY);
                key(b).total_cmp(&key(a))
            })
        });
        order.truncate(3);
        let _ = writeln!(
            s,
            "The worst three tries (failed first, then the slowest):\n"
        );
    } else {
        let _ = writeln!(s, "Every try:\n");
    }
    let _ = writeln!(
        s,
        "| try | jid | kill after | store opened | restart to ready | completion after restart | returns streamed | duplicates | missing | results in `jobs show` | passed |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|");
    for (i, t) in &order {
        let _ = writeln!(
            s,
            "| {} | `{}` | {} ms | {} | {} | {} | {} | {} | {} | {} | {} |",
            i + 1,
            t.jid,
            t.kill_ms,
            if t.ready_secs.is_some() { "yes" } else { "no" },
            t.ready_secs.map_or("-".into(), |v| format!("{v:.2} s")),
            t.complete_secs.map_or("-".into(), |v| format!("{v:.2} s")),
            t.returns,
            t.duplicates,
            t.missing,
            t.results.map_or("-".into(), |r| {
                if t.without_facts > 0 {
                    format!("{r} ({} without facts)", t.without_facts)
                } else {
                    r.to_string()
                }
            }),
            if t.passed(n) { "yes" } else { "no" }
        );
    }
    let failed: Vec<String> = runs
        .iter()
        .enumerate()
        .filter(|(_, t)| !t.passed(n))
        .map(|(i, t)| {
            let why = t.error.clone().unwrap_or_else(|| {
                format!(
                    "{} returns streamed, {} duplicate, {} missing, {} results",
                    t.returns,
                    t.duplicates,
                    t.missing,
                    t.results.map_or("no".into(), |r| r.to_string())
                )
            });
            let why: String = why.chars().take(600).collect();
            format!(
                "- try {} (jid `{}`): {}",
                i + 1,
                t.jid,
                why.replace('\n', " / ")
            )
        })
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(s, "\nFailed tries:\n\n{}", failed.join("\n"));
    }
    s
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

/// CPU seconds the whole machine has been busy (`/proc/stat`).
fn machine_busy_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait.
    let busy: f64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| f.get(i)).sum();
    busy / ticks_per_sec()
}

/// CPU seconds this process and its waited-for children (the `cmdb` runs)
/// have used.
fn own_cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = after.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12) + t(13) + t(14)) / ticks_per_sec()
}

/// How busy the machine is with processes outside the benchmark: machine
/// CPU time minus the master's, the swarm's and this process's (with its
/// `cmdb` children).
struct OtherLoad {
    wall: Instant,
    busy: f64,
    ours: f64,
}

impl OtherLoad {
    fn start(pids: &[u32]) -> OtherLoad {
        OtherLoad {
            wall: Instant::now(),
            busy: machine_busy_secs(),
            ours: own_cpu_secs() + pids.iter().map(|&p| cpu_secs(p)).sum::<f64>(),
        }
    }

    /// Average cores used by other processes since `start`.
    fn cores(&self, pids: &[u32]) -> f64 {
        let ours = own_cpu_secs() + pids.iter().map(|&p| cpu_secs(p)).sum::<f64>() - self.ours;
        let other = machine_busy_secs() - self.busy - ours;
        (other / self.wall.elapsed().as_secs_f64().max(1e-9)).max(0.0)
    }
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

fn event_secs(p: &Proc, nth: usize) -> f64 {
    p.lines_with("\"event\":\"all_online\"")
        .get(nth)
        .and_then(|l| l.split("\"secs\":").nth(1))
        .and_then(|s| s.trim_end_matches('}').parse().ok())
        .unwrap_or(f64::NAN)
}

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
    floor_ping: f64,
    floor_collect: f64,
    api: ApiReport,
    model: ModelReport,
    ui: UiReport,
    other_cores: f64,
}

/// What the asset-model phase measured (seconds of whole `cmdb` runs).
#[derive(Default)]
struct ModelReport {
    /// Importing finance and organisation fields for every asset (CSV).
    import: f64,
    /// `asset list --where` with two conditions: each run, and the assets
    /// it selected.
    list: Vec<f64>,
    list_rows: usize,
    /// `report audit`: each run.
    audit: Vec<f64>,
    /// `asset export --format xlsx`: each run, and the file's size.
    export: Vec<f64>,
    export_bytes: u64,
}

/// What the web UI phase measured (milliseconds per page, client side,
/// one keep-alive TLS connection with a session cookie).
#[derive(Default)]
struct UiReport {
    /// The first page of the assets list: each request, and its size.
    assets_ms: Vec<f64>,
    assets_bytes: usize,
    /// Rows on it.
    rows: usize,
    /// The dashboard (counts over every asset): each request.
    dashboard_ms: Vec<f64>,
}

/// What the API phase measured.
#[derive(Default)]
struct ApiReport {
    /// Items on the first page (sanity: 100 once there are 100 assets).
    first_page: usize,
    /// Bytes of the first page's body.
    page_bytes: usize,
    /// Milliseconds per `GET /v1/assets?limit=100` on the unix socket.
    unix_ms: Vec<f64>,
    /// The same on TLS with a bearer token.
    bearer_ms: Vec<f64>,
    /// Listing every asset page by page on the unix socket: seconds, pages,
    /// assets.
    walk: (f64, usize, usize),
    /// Signed `GET /v1/jobs?limit=1` with the last collect as the newest job.
    signed: SignedReport,
    /// The same once the newest job is a one-minion ping.
    signed_small: SignedReport,
}

/// A sustained signed load on one route.
#[derive(Default)]
struct SignedReport {
    /// Requests answered 200.
    ok: u64,
    /// Requests that failed (status or transport).
    err: u64,
    /// Seconds the load ran.
    secs: f64,
    /// Milliseconds per request (every one), sorted.
    ms: Vec<f64>,
    /// Bytes of one answer's body.
    bytes: usize,
    /// The first failure, if any.
    first_error: Option<String>,
}

impl SignedReport {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.secs.max(1e-9)
    }
}

/// `conns` keep-alive TLS connections sending `GET uri`, each request
/// signed afresh, for `secs` seconds; every connection is open (and has
/// sent one request) before the clock starts.
async fn signed_load(
    connector: &tokio_rustls::TlsConnector,
    port: u16,
    auth: &bench::api::Auth,
    uri: &'static str,
    conns: usize,
    secs: f64,
) -> anyhow::Result<SignedReport> {
    let mut r = SignedReport::default();
    let mut open = Vec::new();
    for _ in 0..conns {
        let mut conn = bench::api::Conn::tls(connector, port, auth.clone()).await?;
        r.bytes = conn.get_ok(uri).await?.len();
        open.push(conn);
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for mut conn in open {
        tasks.spawn(async move {
            let (mut ok, mut err, mut ms, mut first) = (0u64, 0u64, Vec::new(), None);
            while Instant::now() < deadline {
                let t = Instant::now();
                match conn.get(uri).await {
                    Ok((status, _)) if status == hyper::StatusCode::OK => ok += 1,
                    Ok((status, body)) => {
                        err += 1;
                        first.get_or_insert_with(|| {
                            format!("{status}: {}", String::from_utf8_lossy(&body))
                        });
                    }
                    Err(e) => {
                        err += 1;
                        first.get_or_insert_with(|| e.to_string());
                        break;
                    }
                }
                ms.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            (ok, err, ms, first)
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (ok, err, ms, first) = done?;
        r.ok += ok;
        r.err += err;
        r.ms.extend(ms);
        if r.first_error.is_none() {
            r.first_error = first;
        }
    }
    r.secs = start.elapsed().as_secs_f64();
    r.ms.sort_by(|a, b| a.total_cmp(b));
    eprintln!(
        "api: {} signed GET {uri} in {:.1} s ({:.0}/s, {} bytes each), {} errors{}",
        r.ok,
        r.secs,
        r.rate(),
        r.bytes,
        r.err,
        r.first_error
            .as_deref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
    Ok(r)
}

fn floors(n: usize, reps: usize) -> anyhow::Result<(f64, f64)> {
    use bench::floor::{Kind, measure};
    let ping = measure(n, Kind::Ping, reps)?;
    let collect = measure(n, Kind::Collect, reps)?;
    eprintln!("floor {n}: ping {ping:.3} s, collect {collect:.3} s");
    Ok((ping, collect))
}

/// The TLS fingerprint the master logged last.
fn master_fingerprint(c: &Cluster) -> anyhow::Result<String> {
    let line = c
        .master()
        .lines_with("API listening with TLS")
        .pop()
        .context("the master did not log its TLS listener")?;
    let fp = line
        .split("fingerprint=")
        .nth(1)
        .and_then(|r| {
            r.split(|ch: char| !(ch.is_ascii_hexdigit() || ch == ':'))
                .next()
        })
        .context("no fingerprint in the TLS log line")?;
    Ok(fp.to_owned())
}

fn cmdb_ok(c: &Cluster, args: &[&str]) -> anyhow::Result<String> {
    let out = c.cmdb(args);
    if !out.status.success() {
        bail!(
            "cmdb {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn timed_gets(conn: &mut bench::api::Conn, uri: &str, n: usize) -> anyhow::Result<Vec<f64>> {
    for _ in 0..5 {
        conn.get_ok(uri).await?;
    }
    let mut ms = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        conn.get_ok(uri).await?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    Ok(ms)
}

fn api_phase(c: &Cluster, cli: &Cli) -> anyhow::Result<ApiReport> {
    use bench::api::{Auth, Conn, pinned_connector};
    let mut r = ApiReport::default();
    cmdb_ok(c, &["user", "add", "bench-reader", "--role", "reader"])?;
    let token = cmdb_ok(c, &["token", "create", "bench-reader"])?
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .context("no token printed")?
        .trim()
        .to_owned();
    let key = keys::generate()?;
    let key2 = key.clone();
    let line = keys::openssh::public_to_line(&key.verifying_key());
    cmdb_ok(
        c,
        &[
            "user",
            "add",
            "bench-signer",
            "--role",
            "reader",
            "--pubkey",
            &line,
        ],
    )?;
    let connector = pinned_connector(&master_fingerprint(c)?)?;
    let socket = c.master_state().join("api.sock");
    let port = c.api_port;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let uri = "/v1/assets?limit=100";
        let mut unix = Conn::unix(&socket).await?;
        let body = unix.get_ok(uri).await?;
        r.page_bytes = body.len();
        let first: serde_json::Value = serde_json::from_slice(&body)?;
        r.first_page = first["items"].as_array().map_or(0, Vec::len);
        r.unix_ms = timed_gets(&mut unix, uri, cli.api_requests).await?;
        let mut tls = Conn::tls(&connector, port, Auth::Bearer(token)).await?;
        r.bearer_ms = timed_gets(&mut tls, uri, cli.api_requests).await?;
        let t = Instant::now();
        let mut next: Option<String> = None;
        loop {
            let page_uri = match &next {
                Some(cur) => format!("{uri}&cursor={cur}"),
                None => uri.to_owned(),
            };
            let page: serde_json::Value = serde_json::from_slice(&unix.get_ok(&page_uri).await?)?;
            r.walk.1 += 1;
            r.walk.2 += page["items"].as_array().map_or(0, Vec::len);
            match page["next"].as_str() {
                Some(cur) => next = Some(cur.to_owned()),
                None => break,
            }
        }
        r.walk.0 = t.elapsed().as_secs_f64();
        eprintln!(
            "api: first page {} items {} bytes; unix p50 {:.2} ms p99 {:.2} ms; bearer p50 {:.2} ms p99 {:.2} ms; {} pages ({} assets) in {:.2} s",
            r.first_page,
            r.page_bytes,
            percentile(&r.unix_ms, 0.5),
            percentile(&r.unix_ms, 0.99),
            percentile(&r.bearer_ms, 0.5),
            percentile(&r.bearer_ms, 0.99),
            r.walk.1,
            r.walk.2,
            r.walk.0
        );

        let auth = Auth::Signed {
            user: "bench-signer".into(),
            key: std::sync::Arc::new(key),
        };
        let uri = "/v1/jobs?limit=1";
        r.signed = signed_load(&connector, port, &auth, uri, cli.signed_conns, cli.signed_secs)
            .await?;
        anyhow::Ok(())
    })?;
    // The same route with a one-minion job as the newest (the list reads
    // the newest job's record either way).
    cmdb_ok(
        c,
        &[
            "run",
            "swarm-00000",
            "test.ping",
            "-t",
            "30",
            "--out",
            "json",
        ],
    )?;
    rt.block_on(async {
        let auth = Auth::Signed {
            user: "bench-signer".into(),
            key: std::sync::Arc::new(key2),
        };
        let uri = "/v1/jobs?limit=1";
        r.signed_small = signed_load(
            &connector,
            port,
            &auth,
            uri,
            cli.signed_conns,
            cli.signed_secs,
        )
        .await?;
        anyhow::Ok(())
    })?;
    Ok(r)
}

/// `cmdb user add NAME --role reader --password` with the password on stdin.
fn add_ui_user(c: &Cluster, name: &str, password: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut child = Command::new(bin_dir().join("cmdb"))
        .arg("-c")
        .arg(c.master_config())
        .args(["user", "add", name, "--role", "reader", "--password"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(format!("{password}\n{password}\n").as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "cmdb user add {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Logs in to the web UI as a reader and times its first assets page and
/// its dashboard.
fn ui_phase(c: &Cluster) -> anyhow::Result<UiReport> {
    use bench::api::{Auth, Conn, pinned_connector};
    use hyper::{Method, StatusCode};
    let mut r = UiReport::default();
    let password = "bench-ui-password";
    add_ui_user(c, "bench-ui", password)?;
    let connector = pinned_connector(&master_fingerprint(c)?)?;
    let port = c.api_port;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut conn = Conn::tls(&connector, port, Auth::None).await?;
        let (_, headers, body) = conn.send(Method::GET, "/ui/login", None).await?;
        let cookie = |headers: &hyper::HeaderMap, name: &str| {
            headers
                .get_all(hyper::header::SET_COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .filter_map(|v| v.split(';').next())
                .find(|v| v.starts_with(name))
                .map(str::to_owned)
        };
        let login_cookie = cookie(&headers, "__Host-cmdb_login").context("no login cookie")?;
        let body = String::from_utf8_lossy(&body);
        let marker = "name=\"csrf\" value=\"";
        let start = body.find(marker).context("no csrf field")? + marker.len();
        let csrf = body[start..]
            .split('"')
            .next()
            .context("no csrf value")?
            .to_owned();
        conn.set_cookie(login_cookie);
        let (status, headers, _) = conn
            .send(
                Method::POST,
                "/ui/login",
                Some(&[
                    ("csrf", &csrf),
                    ("user", "bench-ui"),
                    ("password", password),
                ]),
            )
            .await?;
        if status != StatusCode::SEE_OTHER {
            bail!("UI login: {status}");
        }
        conn.set_cookie(cookie(&headers, "__Host-cmdb_session").context("no session cookie")?);
        let page = conn.get_ok("/ui/assets").await?;
        r.assets_bytes = page.len();
        r.rows = String::from_utf8_lossy(&page)
            .matches("<tr data-asset=")
            .count();
        r.assets_ms = timed_gets(&mut conn, "/ui/assets", 30).await?;
        r.dashboard_ms = timed_gets(&mut conn, "/ui", 5).await?;
        anyhow::Ok(())
    })?;
    eprintln!(
        "ui: assets page p50 {:.1} ms p99 {:.1} ms ({} rows, {} KiB); dashboard p50 {:.0} ms",
        percentile(&r.assets_ms, 0.5),
        percentile(&r.assets_ms, 0.99),
        r.rows,
        r.assets_bytes / 1024,
        percentile(&r.dashboard_ms, 0.5)
    );
    Ok(r)
}

/// Finance and organisation fields for every swarm asset (one import),
/// then queries, the audit and an XLSX export, each timed as a whole
/// `cmdb` run.
fn model_phase(c: &Cluster, n: usize) -> anyhow::Result<ModelReport> {
    let mut r = ModelReport::default();
    let csv = bench::finance_csv(n);
    let file = c.dir.path().join("finance.csv");
    std::fs::write(&file, csv)?;
    let file = file.to_str().context("path")?.to_owned();
    r.import = timed(c, &["asset", "import", &file])?.0;
    let year = chrono::Utc::now().format("%Y").to_string();
    for _ in 0..5 {
        let (secs, out) = timed(
            c,
            &[
                "asset",
                "list",
                "--where",
                "department = finance and facts.num_cpus >= 64",
            ],
        )?;
        r.list.push(secs);
        // The table: a header line, then one line per asset.
        r.list_rows = String::from_utf8_lossy(&out)
            .lines()
            .count()
            .saturating_sub(1);
    }
    for _ in 0..3 {
        r.audit
            .push(timed(c, &["report", "audit", "--year", &year, "--out", "json"])?.0);
    }
    let xlsx = c.dir.path().join("assets.xlsx");
    let xlsx_arg = xlsx.to_str().context("path")?.to_owned();
    for _ in 0..3 {
        r.export
            .push(timed(c, &["asset", "export", "--format", "xlsx", "-o", &xlsx_arg])?.0);
    }
    r.export_bytes = std::fs::metadata(&xlsx)?.len();
    for v in [&mut r.list, &mut r.audit, &mut r.export] {
        v.sort_by(f64::total_cmp);
    }
    eprintln!(
        "model: import {:.2} s; list --where median {:.3} s ({} assets); audit median {:.3} s; xlsx export median {:.2} s ({} KiB)",
        r.import,
        percentile(&r.list, 0.5),
        r.list_rows,
        percentile(&r.audit, 0.5),
        percentile(&r.export, 0.5),
        r.export_bytes / 1024
    );
    Ok(r)
}

fn measure(n: usize, cli: &Cli) -> anyhow::Result<SizeReport> {
    let mut r = SizeReport {
        n,
        ..SizeReport::default()
    };
    let long = Duration::from_secs(600);
    eprintln!("== {n} minions: floor");
    (r.floor_ping, r.floor_collect) = floors(n, cli.floor_reps)?;
    eprintln!("== {n} minions: autosign");
    let mut c = Cluster::start(ClusterOpts {
        master_extra: format!(
            "{}autosign = [\"*\"]\n[inventory]\noffline_after_secs = 3600\n",
            bench::MASTER_EXTRA
        ),
    });
    let s = bench::fleet(&c, n);
    s.wait_for_n_within("\"event\":\"all_online\"", 1, long);
    r.auth_autosign = event_secs(&s, 0);
    // Minions heartbeat every few seconds for their first half minute; measure
    // the steady state after that.
    std::thread::sleep(Duration::from_secs(35));
    let ours = [c.master().pid(), s.pid()];
    let other = OtherLoad::start(&ours);
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
    eprintln!("== {n} minions: API");
    r.api = api_phase(&c, cli)?;
    eprintln!("== {n} minions: asset model");
    r.model = model_phase(&c, n)?;
    eprintln!("== {n} minions: web UI");
    r.ui = ui_phase(&c)?;
    r.other_cores = other.cores(&ours);
    eprintln!(
        "other processes used {:.2} cores on average during pings, collects and API",
        r.other_cores
    );
    eprintln!("== {n} minions: reconnect storm");
    c.master.as_mut().context("master")?.terminate();
    let t0 = Instant::now();
    c.start_master();
    s.wait_for_n_within("\"event\":\"all_online\"", 2, long);
    // The swarm counts a minion online until it notices the restart; the
    // master's gauge tells when every one has a session with it again.
    bench::wait_for_sessions(&c, n, long)?;
    r.storm_secs = t0.elapsed().as_secs_f64();
    let (_, got, want) = run_cmdb(&c, &["run", "*", "test.ping", "-t", "30"])?;
    r.storm_ping = (got, want);
    drop(s);
    drop(c);

    eprintln!("== {n} minions: accept with cmdb-key -A -y");
    let c = Cluster::start(ClusterOpts {
        master_extra: bench::MASTER_EXTRA.into(),
    });
    let s = bench::fleet(&c, n);
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

/// The commit measured, and whether the work tree had changes.
fn source() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(head) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            format!(
                "commit `{head}`{}",
                if dirty {
                    " with uncommitted changes"
                } else {
                    ""
                }
            )
        }
        None => "not a git work tree".into(),
    }
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

fn ms(v: &[f64], p: f64) -> String {
    format!("{:.2} ms", percentile(v, p))
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

fn report(cli: &Cli, sizes: &[SizeReport], minion: (f64, f64)) -> String {
    let mut o = String::new();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let _ = writeln!(o, "# Benchmarks\n");
    let _ = writeln!(
        o,
        "Generated on {date} by (release build):\n\n```sh\nbash bench/run.sh {}\n```\n",
        args.join(" ")
    );
    let _ = writeln!(o, "Source: {}.\n", source());
    let _ = writeln!(
        o,
        "Machine: {}. Master, swarm, CLI and API client share it; all traffic is on 127.0.0.1.\n",
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
        "Machines vary 2-4x from day to day, so the job figures are also given as a ratio to a **floor** measured in the same run, just before each size's master starts: one core decoding, verifying (ed25519), opening (XChaCha20-Poly1305) and decoding (msgpack) the same number of return envelopes as the job brings in, built exactly as a swarm minion builds them (`bench/src/floor.rs`; fastest of {} passes). \"ping median / floor\" and \"collect median / floor\" say how many times that unavoidable work the whole job took; they are the figures to compare across machines.\n",
        cli.floor_reps
    );
    let _ = writeln!(
        o,
        "| minions | all authenticated (autosign) | all authenticated after `cmdb-key -A -y` | ping median | ping p99 | ping returned/expected (worst) | floor: ping returns | ping median / floor | first collect wall | collect median | floor: collect returns | collect median / floor | collect returns/s (median) | master CPU s per collect | master peak RSS | sled on disk after {} collects | change history after the first record | {} full snapshots | master idle CPU | reconnect storm: all back | ping after storm |",
        cli.collects, cli.collects
    );
    let _ = writeln!(
        o,
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
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
        let pmed = percentile(&p, 0.5);
        let cpu: f64 = r.collects.iter().map(|x| x.3).sum::<f64>() / r.collects.len().max(1) as f64;
        let _ = writeln!(
            o,
            "| {} | {:.1} s | {:.1} s | {:.3} s | {:.3} s | {}/{} | {:.3} s | {:.1} | {:.2} s | {:.2} s | {:.3} s | {:.1} | {:.0} | {:.2} | {:.0} MiB | {:.1} MiB | {:.2} MiB (1/{:.0}) | {:.1} MiB | {:.1} % | {:.1} s | {}/{} |",
            r.n,
            r.auth_autosign,
            r.auth_accept,
            pmed,
            percentile(&p, 0.99),
            worst.0,
            worst.1,
            r.floor_ping,
            pmed / r.floor_ping.max(1e-9),
            c0.0,
            cmed,
            r.floor_collect,
            cmed / r.floor_collect.max(1e-9),
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

    let _ = writeln!(
        o,
        "\nOther processes on the machine (outside master, swarm, this driver and its `cmdb` runs) used on average, from the first ping to the end of the API phase: {}. Anything well above 0 means the figures of that size were taken on a shared, busier machine.",
        sizes
            .iter()
            .map(|r| format!("{:.2} cores at {} minions", r.other_cores, r.n))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let _ = writeln!(o, "\n## The HTTP API\n");
    let _ = writeln!(
        o,
        "After the collects (every swarm minion has an asset) and the idle sample, with the swarm connected: {} sequential `GET /v1/assets?limit=100` on one keep-alive connection on the unix socket `api.sock`, then as many on one keep-alive TLS connection with a reader's bearer token (5 untimed warm-up requests each); then every asset page by page (`cursor`) on the unix socket. The client pins the master's self-signed certificate by the fingerprint it logs; latencies are whole requests (send to last body byte) as the client sees them.\n",
        cli.api_requests
    );
    let _ = writeln!(
        o,
        "| minions (assets) | first page: items, size | p50, unix | p99, unix | p50, TLS + bearer | p99, TLS + bearer | p99 (TLS) ÷ floor per return | every page, unix |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|");
    for r in sizes {
        let a = &r.api;
        let per_return_ms = r.floor_ping / r.n.max(1) as f64 * 1000.0;
        let _ = writeln!(
            o,
            "| {} | {}, {:.0} KiB | {} | {} | {} | {} | {:.0} | {:.2} s ({} pages, {} assets) |",
            r.n,
            a.first_page,
            a.page_bytes as f64 / 1024.0,
            ms(&a.unix_ms, 0.5),
            ms(&a.unix_ms, 0.99),
            ms(&a.bearer_ms, 0.5),
            ms(&a.bearer_ms, 0.99),
            percentile(&a.bearer_ms, 0.99) / per_return_ms.max(1e-12),
            a.walk.0,
            a.walk.1,
            a.walk.2,
        );
    }
    let _ = writeln!(
        o,
        "\nSigned requests: {} keep-alive TLS connections sending `GET /v1/jobs?limit=1` for {} s each time, every request signed afresh (RFC 9421: new nonce, `created` now, ed25519) by a reader; the client signs in the same process, on the same machine. First with the last `collect` (expected: every minion) as the newest job; then again after a `test.ping` of one minion. The job list gives each job's expected count, not the names, so both answers are about 200 bytes.\n",
        cli.signed_conns, cli.signed_secs
    );
    let _ = writeln!(
        o,
        "| minions | newest job | answer size | signed requests/s | errors | p50 | p99 | requests/s ÷ floor returns/s |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|");
    for r in sizes {
        for (label, sr) in [
            (format!("collect of {}", r.n), &r.api.signed),
            ("ping of 1".to_owned(), &r.api.signed_small),
        ] {
            let _ = writeln!(
                o,
                "| {} | {label} | {:.1} KiB | {:.0} | {} | {} | {} | {:.3} |",
                r.n,
                sr.bytes as f64 / 1024.0,
                sr.rate(),
                sr.err,
                ms(&sr.ms, 0.5),
                ms(&sr.ms, 0.99),
                sr.rate() * r.floor_ping / r.n.max(1) as f64,
            );
        }
    }
    for r in sizes {
        for sr in [&r.api.signed, &r.api.signed_small] {
            if let Some(e) = &sr.first_error {
                let _ = writeln!(o, "\nFirst signed-request error at {} minions: {e}", r.n);
            }
        }
    }
    let _ = writeln!(
        o,
        "\n\"floor per return\" is the ping floor divided by the minions: one core's cost to verify and decode one signed, sealed envelope, about one ed25519 verification; the latency ratio says how many of those one request took. \"requests/s ÷ floor returns/s\" is the signed request rate over the rate at which one core verifies return envelopes (minions / ping floor): the share of one core that rate would need if a request cost no more than one verified return.\n"
    );
    let _ = writeln!(o, "Goals, at the largest size of 9,000 or more:\n");
    match sizes.iter().filter(|r| r.n >= 9000).max_by_key(|r| r.n) {
        Some(r) => {
            let a = &r.api;
            let p99 = percentile(&a.unix_ms, 0.99).max(percentile(&a.bearer_ms, 0.99));
            let _ = writeln!(
                o,
                "- `GET /v1/assets?limit=100` p99 ≤ 20 ms at 9,000 assets: {} ({:.2} ms, the worse of unix and TLS at {} assets).",
                met(p99 <= 20.0),
                p99,
                r.n
            );
            let _ = writeln!(
                o,
                "- ≥ 2,000 signed requests/s sustained with no error: {} ({:.0}/s and {} errors with the {}-minion collect as the newest job; {:.0}/s and {} errors with a one-minion job).",
                met(a.signed.rate() >= 2000.0 && a.signed.err == 0),
                a.signed.rate(),
                a.signed.err,
                r.n,
                a.signed_small.rate(),
                a.signed_small.err
            );
        }
        None => {
            let _ = writeln!(o, "- no size of 9,000 or more in this run.");
        }
    }

    let _ = writeln!(o, "\n## The asset model\n");
    let _ = writeln!(
        o,
        "After the API phase, with the swarm connected: one CSV import giving every asset a department, business line, purchase cost and date, depreciation period and warranty end (matched by minion id); then `cmdb asset list --where 'department = finance and facts.num_cpus >= 64'` (its table) five times, `cmdb report audit --year <this year> --out json` three times and `cmdb asset export --format xlsx -o FILE` three times. Times are whole `cmdb` runs (process start to exit, the master's work included), medians.\n"
    );
    let _ = writeln!(
        o,
        "| assets | import (all fields) | list --where, 2 conditions | audit | XLSX export of all |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|");
    for r in sizes {
        let m = &r.model;
        let _ = writeln!(
            o,
            "| {} | {:.2} s | {:.0} ms ({} selected) | {:.0} ms | {:.2} s ({:.1} MiB) |",
            r.n,
            m.import,
            percentile(&m.list, 0.5) * 1000.0,
            m.list_rows,
            percentile(&m.audit, 0.5) * 1000.0,
            percentile(&m.export, 0.5),
            m.export_bytes as f64 / 1048576.0
        );
    }
    let _ = writeln!(o, "\nGoals, at the largest size of 9,000 or more:\n");
    match sizes.iter().filter(|r| r.n >= 9000).max_by_key(|r| r.n) {
        Some(r) => {
            let m = &r.model;
            let _ = writeln!(
                o,
                "- `asset list --where` with two conditions ≤ 150 ms: {} ({:.0} ms)\n- the audit ≤ 1 s: {} ({:.0} ms)\n- XLSX export of all ≤ 3 s: {} ({:.2} s)",
                met(percentile(&m.list, 0.5) <= 0.150),
                percentile(&m.list, 0.5) * 1000.0,
                met(percentile(&m.audit, 0.5) <= 1.0),
                percentile(&m.audit, 0.5) * 1000.0,
                met(percentile(&m.export, 0.5) <= 3.0),
                percentile(&m.export, 0.5)
            );
        }
        None => {
            let _ = writeln!(o, "- no size of 9,000 or more in this run.");
        }
    }

    let _ = writeln!(o, "\n## The web UI\n");
    let _ = writeln!(
        o,
        "After the asset model phase: a reader logs in through the login form on one keep-alive TLS connection, then `GET /ui/assets` (the first page of the assets list, 50 rows, rendered by the server) 30 times and `GET /ui` (the dashboard, counting every asset) 5 times, after 5 unmeasured requests each. Milliseconds per request as the client sees them.\n"
    );
    let _ = writeln!(
        o,
        "| assets | assets page p50 | p99 | size | dashboard p50 |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|");
    for r in sizes {
        let u = &r.ui;
        let _ = writeln!(
            o,
            "| {} | {:.1} ms | {:.1} ms | {:.0} KiB ({} rows) | {:.0} ms |",
            r.n,
            percentile(&u.assets_ms, 0.5),
            percentile(&u.assets_ms, 0.99),
            u.assets_bytes as f64 / 1024.0,
            u.rows,
            percentile(&u.dashboard_ms, 0.5)
        );
    }
    let _ = writeln!(o, "\nGoals, at the largest size of 9,000 or more:\n");
    match sizes.iter().filter(|r| r.n >= 9000).max_by_key(|r| r.n) {
        Some(r) => {
            let u = &r.ui;
            let _ = writeln!(
                o,
                "- the first page of the assets list in ≤ 200 ms: {} (p99 {:.0} ms)\n- and ≤ 300 KB: {} ({:.0} KB)",
                met(percentile(&u.assets_ms, 0.99) <= 200.0),
                percentile(&u.assets_ms, 0.99),
                met(u.assets_bytes <= 300_000),
                u.assets_bytes as f64 / 1000.0
            );
        }
        None => {
            let _ = writeln!(o, "- no size of 9,000 or more in this run.");
        }
    }

    let _ = writeln!(o, "\n## Per run\n\nCollect wall times per run (seconds):\n");
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
        "Ping and collect times are whole `cmdb run … --out json` invocations: CLI start, `POST /v1/jobs` on the unix socket, then the job's returns followed as server-sent events (`GET /v1/jobs/{{jid}}/returns`) until every minion returned, then the output. They are measured from 35 s after every minion is online (new sessions heartbeat every few seconds for their first 30 s). \"Reconnect storm: all back\" is the time from stopping the master (SIGTERM) and starting it again until every minion holds the new master's session key (`cmdb_session_key_holders` in `GET /metrics`), and the ping after it is a `cmdb run '*' test.ping -t 30` then. \"Sled\" is the master's database directory on disk (job cache, returns, assets and history); \"full snapshots\" is the JSON size of one payload times minions times collects.\n"
    );
    let _ = writeln!(
        o,
        "This machine allows 20,000 open files per process and the master holds two connections per minion, so about 9,900 minions is the ceiling for one master here; the shipped systemd unit raises `LimitNOFILE` for real hosts."
    );
    o
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(hosts) = cli.ssh {
        let section = ssh_phase(&cli, hosts)?;
        put_section(&cli.out, SSH_HEADING, &section)?;
        print!("{section}");
        return Ok(());
    }
    if let Some(tries) = cli.crash {
        let section = crash_phase(&cli, tries)?;
        put_section(&cli.out, CRASH_HEADING, &section)?;
        print!("{section}");
        return Ok(());
    }
    if let Some(n) = cli.cluster {
        let section = cluster_phase(&cli, n)?;
        put_section(&cli.out, CLUSTER_HEADING, &section)?;
        print!("{section}");
        return Ok(());
    }
    if cli.floor_only {
        println!("| minions | floor: ping returns | floor: collect returns |");
        println!("|---|---|---|");
        for &n in &cli.sizes {
            let (p, c) = floors(n, cli.floor_reps)?;
            println!("| {n} | {p:.3} s | {c:.3} s |");
        }
        return Ok(());
    }
    let mut sizes = Vec::new();
    for &n in &cli.sizes {
        sizes.push(measure(n, &cli)?);
    }
    eprintln!("== real minion idle");
    let minion = real_minion(cli.minion_idle)?;
    let old = std::fs::read_to_string(&cli.out).unwrap_or_default();
    let text = report(&cli, &sizes, minion) + &kept_sections(&old);
    std::fs::write(&cli.out, &text).with_context(|| format!("writing {}", cli.out.display()))?;
    print!("{text}");
    Ok(())
}

#[cfg(test)]
mod test {
    use super::{CRASH_HEADING, SSH_HEADING, kept_sections, parse_returns_stream, put_section};

    #[test]
    fn a_new_report_keeps_the_hand_written_and_ssh_sections_only() {
        let old = "# Benchmarks\n\n## Per run\nold figures\n\n## Why (written by hand)\nreasons\n# a code comment\n\n## Agentless collection over SSH\n| a |\n\n## The web UI\nold\n";
        assert_eq!(
            kept_sections(old),
            "\n## Why (written by hand)\nreasons\n# a code comment\n\n## Agentless collection over SSH\n| a |\n"
        );
        assert_eq!(kept_sections("# Benchmarks\nnothing\n"), "");
    }

    #[test]
    fn a_new_report_keeps_the_crash_section_beside_the_ssh_one() {
        let old = "# Benchmarks\n\n## Per run\nold\n\n## Agentless collection over SSH\n| ssh |\n\n## A fleet collect across master kills\n| crash |\n\n## A master cluster: two peers on PostgreSQL and NATS\n| cluster |\n\n## The web UI\nold\n";
        assert_eq!(
            kept_sections(old),
            "\n## Agentless collection over SSH\n| ssh |\n\n## A fleet collect across master kills\n| crash |\n\n## A master cluster: two peers on PostgreSQL and NATS\n| cluster |\n"
        );
    }

    #[test]
    fn the_ssh_and_crash_runs_replace_only_their_own_section() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("BENCHMARKS.md");
        std::fs::write(&path, "# Benchmarks\n\n## Per run\nfigures\n").expect("write");
        put_section(&path, CRASH_HEADING, &format!("{CRASH_HEADING}\n\nfirst\n")).expect("put");
        put_section(&path, SSH_HEADING, &format!("{SSH_HEADING}\n\nssh\n")).expect("put");
        put_section(
            &path,
            CRASH_HEADING,
            &format!("{CRASH_HEADING}\n\nsecond\n"),
        )
        .expect("put");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            format!(
                "# Benchmarks\n\n## Per run\nfigures\n\n{CRASH_HEADING}\n\nsecond\n\n{SSH_HEADING}\n\nssh\n"
            )
        );
    }

    #[test]
    fn a_returns_stream_counts_each_minions_rets_and_the_missing() {
        let text = "event: ret\ndata: {\"minion\":\"a\",\"data\":{}}\n\n:\n\nevent: ret\ndata: {\"minion\":\"b\"}\n\nevent: ret\ndata: {\"minion\":\"a\"}\n\nevent: done\ndata: {\"missing\":[\"c\"]}\n\n";
        let f = parse_returns_stream(text).expect("stream");
        assert_eq!(f.rets.get("a"), Some(&2));
        assert_eq!(f.rets.get("b"), Some(&1));
        assert_eq!(f.missing, vec!["c".to_owned()]);
        assert!(parse_returns_stream("event: ret\ndata: {\"minion\":\"a\"}\n\n").is_err());
    }
}
