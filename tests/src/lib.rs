//! The process-level test harness: a [`Cluster`] makes a temp dir, picks free
//! ports on 127.0.0.1, writes configs, spawns real `cmdb-master` and
//! `cmdb-minion` processes, waits on their log lines (never on fixed
//! sleeps), kills them on drop and prints their logs when a test fails.
//!
//! The binaries are taken from the cargo target directory this test binary
//! lives in: build them first with `cargo build --workspace --all-targets`.

pub mod fixture;
pub mod raw;
pub mod sshd;
pub mod zmtp;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long any wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(30);

/// The directory holding the workspace's binaries.
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|d| {
            if d.ends_with("deps") || d.ends_with("examples") {
                d.parent()
            } else {
                Some(d)
            }
        })
        .expect("target dir")
        .to_owned();
    assert!(
        dir.join("cmdb-master").exists(),
        "{} has no cmdb-master: run `cargo build --workspace --all-targets` first",
        dir.display()
    );
    dir
}

/// Ports handed to tests come from below the kernel's ephemeral range
/// (32768-60999 on Linux), so no outgoing connection of another test can
/// take one between the pick and a (re)start that binds it.
const TEST_PORTS: std::ops::Range<u16> = 16_000..32_000;

/// Lock files of the ports this test process holds; dropped when it exits.
static HELD_PORTS: Mutex<Vec<std::fs::File>> = Mutex::new(Vec::new());

/// A free TCP port on 127.0.0.1, reserved for this test process: a lock file
/// under the temp dir keeps concurrent tests (nextest runs each in its own
/// process) from picking the same one, and the port stays below the
/// ephemeral range so a restarted daemon can bind it again.
pub fn free_port() -> u16 {
    let dir = std::env::temp_dir().join("cmdb-test-ports");
    std::fs::create_dir_all(&dir).expect("port lock dir");
    let mut seed = [0u8; 2];
    getrandom::fill(&mut seed).expect("random");
    let span = TEST_PORTS.end - TEST_PORTS.start;
    let first = u16::from_le_bytes(seed) % span;
    for i in 0..span {
        let port = TEST_PORTS.start + (first + i) % span;
        let Ok(file) = std::fs::File::create(dir.join(port.to_string())) else {
            continue;
        };
        if file.try_lock().is_err() {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        HELD_PORTS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(file);
        return port;
    }
    panic!("no free test port in {TEST_PORTS:?}");
}

#[derive(Default)]
struct LogState {
    lines: Vec<String>,
    closed: bool,
}

/// A spawned daemon whose stderr is captured line by line.
pub struct Proc {
    /// A name for messages.
    pub name: String,
    child: Child,
    log: Arc<(Mutex<LogState>, Condvar)>,
}

impl Proc {
    /// Spawns `cmd`, capturing stderr.
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env(
                "RUST_LOG",
                std::env::var("CMDB_TEST_LOG").unwrap_or_else(|_| "info".into()),
            );
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let stderr = child.stderr.take().expect("stderr");
        let log: Arc<(Mutex<LogState>, Condvar)> = Arc::default();
        let l = log.clone();
        // CMDB_TEST_TEE=DIR also appends each line to DIR/<name>.log, to
        // watch a long run (a benchmark) while it goes.
        let mut tee = std::env::var_os("CMDB_TEST_TEE").and_then(|dir| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(std::path::Path::new(&dir).join(format!("{name}.log")))
                .ok()
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(f) = tee.as_mut() {
                    use std::io::Write;
                    let _ = writeln!(f, "{line}");
                }
                let (m, c) = &*l;
                m.lock().expect("log").lines.push(line);
                c.notify_all();
            }
            let (m, c) = &*l;
            m.lock().expect("log").closed = true;
            c.notify_all();
        });
        Proc {
            name: name.to_owned(),
            child,
            log,
        }
    }

    /// How many log lines contain `pat`.
    pub fn count(&self, pat: &str) -> usize {
        let (m, _) = &*self.log;
        m.lock()
            .expect("log")
            .lines
            .iter()
            .filter(|l| l.contains(pat))
            .count()
    }

    /// Waits until at least `n` log lines contain `pat`.
    pub fn wait_for_n(&self, pat: &str, n: usize) {
        self.wait_for_n_within(pat, n, WAIT);
    }

    /// Waits up to `limit` until at least `n` log lines contain `pat`.
    pub fn wait_for_n_within(&self, pat: &str, n: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        let (m, c) = &*self.log;
        let mut st = m.lock().expect("log");
        loop {
            if st.lines.iter().filter(|l| l.contains(pat)).count() >= n {
                return;
            }
            let now = Instant::now();
            if now >= deadline || st.closed {
                let logs = st.lines.join("\n");
                drop(st);
                panic!(
                    "{}: {} waiting for {n} x {pat:?}\n--- log ---\n{logs}",
                    self.name,
                    if now >= deadline {
                        "timed out"
                    } else {
                        "exited"
                    }
                );
            }
            st = c.wait_timeout(st, deadline - now).expect("log").0;
        }
    }

    /// Waits until a log line contains `pat`.
    pub fn wait_for(&self, pat: &str) {
        self.wait_for_n(pat, 1);
    }

    /// The captured lines that contain `pat`.
    pub fn lines_with(&self, pat: &str) -> Vec<String> {
        let (m, _) = &*self.log;
        m.lock()
            .expect("log")
            .lines
            .iter()
            .filter(|l| l.contains(pat))
            .cloned()
            .collect()
    }

    /// The captured log.
    pub fn logs(&self) -> String {
        self.log.0.lock().expect("log").lines.join("\n")
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return self.child.wait().expect("wait");
            }
            // Polling a child's exit status has no event to wait on in std.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the process at once.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `sig` to the process.
    pub fn signal(&self, sig: Signal) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), sig);
    }

    /// Waits (up to [`WAIT`]) until the process closes its stderr, then for
    /// its exit status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + WAIT;
        {
            let (m, c) = &*self.log;
            let mut st = m.lock().expect("log");
            while !st.closed {
                let now = Instant::now();
                if now >= deadline {
                    panic!("{}: did not exit\n{}", self.name, st.lines.join("\n"));
                }
                st = c.wait_timeout(st, deadline - now).expect("log").0;
            }
        }
        self.child.wait().expect("wait")
    }

    /// Whether the process is still running (it has not exited).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Settings for a test cluster.
#[derive(Debug, Clone, Default)]
pub struct ClusterOpts {
    /// Extra lines for master.toml.
    pub master_extra: String,
}

/// A master and its minions, each a real process, in one temp dir.
pub struct Cluster {
    /// The temp dir holding every config and state dir.
    pub dir: tempfile::TempDir,
    /// The master process.
    pub master: Option<Proc>,
    /// Minion processes by name.
    pub minions: BTreeMap<String, Proc>,
    /// The PUB port.
    pub publish_port: u16,
    /// The request port.
    pub ret_port: u16,
    /// The API's TLS port.
    pub api_port: u16,
    bins: PathBuf,
    /// The master process's name in failures and `CMDB_TEST_TEE` logs:
    /// "master", or for another peer of a cluster "peer-" and its request
    /// port.
    master_name: String,
}

impl Cluster {
    /// Starts a master and waits until it is ready.
    pub fn start(opts: ClusterOpts) -> Cluster {
        let mut c = Cluster::configured(opts);
        c.start_master();
        c
    }

    /// Starts another peer of `of`'s master cluster: its own ports and
    /// state, `of`'s master keypair (provisioned into its pki dir first, as
    /// an operator does).
    pub fn start_peer(of: &Cluster, opts: ClusterOpts) -> Cluster {
        let mut c = Cluster::configured(opts);
        c.master_name = format!("peer-{}", c.ret_port);
        let pki = c.master_state().join("pki");
        std::fs::create_dir_all(&pki).expect("pki dir");
        for f in ["master.pem", "master.pub"] {
            std::fs::copy(of.master_state().join("pki").join(f), pki.join(f))
                .expect("copy the master keypair");
        }
        c.start_master();
        c
    }

    /// A master's config and dirs, not started.
    fn configured(opts: ClusterOpts) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let (publish_port, ret_port, api_port) = (free_port(), free_port(), free_port());
        let state = dir.path().join("master");
        let api = if opts.master_extra.contains("[api]") {
            String::new()
        } else {
            format!("[api]\nlisten = \"127.0.0.1:{api_port}\"\n")
        };
        let cfg = format!(
            "interface = \"127.0.0.1\"\npublish_port = {publish_port}\nret_port = {ret_port}\n\
             state_dir = \"{}\"\nfile_roots = [\"{}\"]\npillar_roots = [\"{}\"]\n\
             presence_secs = 5\n{}\n{api}",
            state.display(),
            dir.path().join("srv").display(),
            dir.path().join("pillar").display(),
            opts.master_extra
        );
        std::fs::write(dir.path().join("master.toml"), cfg).expect("write master.toml");
        Cluster {
            dir,
            master: None,
            minions: BTreeMap::new(),
            publish_port,
            ret_port,
            api_port,
            bins: bin_dir(),
            master_name: "master".into(),
        }
    }

    /// The master config path.
    pub fn master_config(&self) -> PathBuf {
        self.dir.path().join("master.toml")
    }

    /// The master state dir.
    pub fn master_state(&self) -> PathBuf {
        self.dir.path().join("master")
    }

    /// (Re)starts the master process and waits until it is ready.
    pub fn start_master(&mut self) {
        let mut cmd = Command::new(self.bins.join("cmdb-master"));
        cmd.arg("-c").arg(self.master_config());
        let p = Proc::spawn(&self.master_name, cmd);
        p.wait_for("master ready");
        self.master = Some(p);
    }

    /// The master process, mutably.
    pub fn master_mut(&mut self) -> &mut Proc {
        self.master.as_mut().expect("master running")
    }

    /// The master process.
    pub fn master(&self) -> &Proc {
        self.master.as_ref().expect("master running")
    }

    /// Writes a minion config named `name` with id `id`; lines in `extra`
    /// replace the defaults of the same key.
    pub fn minion_config(&self, name: &str, id: &str, extra: &str) -> PathBuf {
        let path = self.dir.path().join(format!("{name}.toml"));
        let defaults = format!(
            "master = \"127.0.0.1\"\npublish_port = {}\nret_port = {}\nstate_dir = \"{}\"\n\
             id = \"{id}\"\nacceptance_wait_time = 0.2\nacceptance_wait_time_max = 0.5\n\
             random_reauth_delay = 0.2\nheartbeat_interval = 0.5\nrequest_timeout = 2\ncollect_interval = 0\n\
             rotation_spread = 0.2\n",
            self.publish_port,
            self.ret_port,
            self.dir.path().join(name).display(),
        );
        let key = |l: &str| l.split('=').next().unwrap_or_default().trim().to_owned();
        let overridden: Vec<String> = extra.lines().map(key).collect();
        let mut cfg: String = defaults
            .lines()
            .filter(|l| !overridden.contains(&key(l)))
            .map(|l| format!("{l}\n"))
            .collect();
        cfg.push_str(extra);
        cfg.push('\n');
        std::fs::write(&path, cfg).expect("write minion.toml");
        path
    }

    /// Starts a minion process named `name` with id `id`.
    pub fn start_minion_with(&mut self, name: &str, id: &str, extra: &str) -> &Proc {
        let cfg = self.minion_config(name, id, extra);
        let mut cmd = Command::new(self.bins.join("cmdb-minion"));
        cmd.arg("-c").arg(cfg);
        self.minions.insert(name.to_owned(), Proc::spawn(name, cmd));
        &self.minions[name]
    }

    /// Starts a minion whose name is its id.
    pub fn start_minion(&mut self, id: &str) -> &Proc {
        self.start_minion_with(id, id, "")
    }

    /// A minion process.
    pub fn minion(&self, name: &str) -> &Proc {
        &self.minions[name]
    }

    /// The state dir of a minion.
    pub fn minion_state(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn tool(&self, bin: &str, args: &[&str]) -> Output {
        Command::new(self.bins.join(bin))
            .arg("-c")
            .arg(self.master_config())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{bin}: {e}"))
    }

    /// Runs `cmdb-key -c master.toml ARGS`.
    pub fn key(&self, args: &[&str]) -> Output {
        self.tool("cmdb-key", args)
    }

    /// The key listing as JSON.
    pub fn keys_json(&self) -> serde_json::Value {
        let out = self.key(&["-L", "--out", "json"]);
        assert!(
            out.status.success(),
            "cmdb-key -L failed: {}",
            text(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("cmdb-key json")
    }

    /// Starts `cmdb -c master.toml ARGS` without waiting for it; its
    /// stderr is captured as a daemon's log.
    pub fn spawn_cmdb(&self, args: &[&str]) -> Proc {
        let mut cmd = Command::new(self.bins.join("cmdb"));
        cmd.arg("-c").arg(self.master_config()).args(args);
        Proc::spawn("cmdb", cmd)
    }

    /// Runs `cmdb -c master.toml ARGS`.
    pub fn cmdb(&self, args: &[&str]) -> Output {
        self.tool("cmdb", args)
    }

    /// Runs `cmdb run ARGS --out json` and returns (results, stderr, exit code).
    pub fn run_json(&self, args: &[&str]) -> (serde_json::Value, String, i32) {
        let mut all = vec!["run", "--out", "json"];
        all.extend_from_slice(args);
        let out = self.cmdb(&all);
        let code = out.status.code().unwrap_or(-1);
        let stderr = text(&out.stderr);
        let v = if out.stdout.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("bad json ({e}): {}\n{stderr}", text(&out.stdout)))
        };
        (v, stderr, code)
    }

    /// Starts minions, accepts their keys and waits until each is ready.
    pub fn start_accepted(&mut self, ids: &[&str]) {
        for id in ids {
            self.start_minion(id);
        }
        for id in ids {
            self.minion(id).wait_for("key pending acceptance");
        }
        let out = self.key(&["-A", "-y"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        for id in ids {
            self.minion(id).wait_for("minion ready");
        }
    }

    /// The master's public key.
    pub fn master_key(&self) -> keys::VerifyingKey {
        keys::read_public(&self.master_pub()).expect("master key")
    }

    /// Path to the master's public key.
    pub fn master_pub(&self) -> PathBuf {
        self.master_state().join("pki/master.pub")
    }

    /// The request endpoint.
    pub fn ret_endpoint(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.ret_port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(m) = &self.master {
                eprintln!("--- master log ---\n{}", m.logs());
            }
            for (name, p) in &self.minions {
                eprintln!("--- {name} log ---\n{}", p.logs());
            }
        }
        for p in self.minions.values_mut() {
            p.kill();
        }
        if let Some(m) = &mut self.master {
            m.kill();
        }
    }
}

/// Checks `cond` every 50 ms until it holds, failing after [`WAIT`]: for
/// states that announce themselves nowhere, such as a file appearing or a
/// process going away.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The jid that `cmdb run … --async` printed.
pub fn jid_of(out: &Output) -> String {
    text(&out.stdout)
        .split_whitespace()
        .find(|w| w.len() == 20 && w.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no jid in: {}", text(&out.stdout)))
        .to_owned()
}

/// A swarm of `count` simulated minions against the cluster's master, with
/// quick heartbeats and reconnects; its ready line is
/// `"event":"all_online"`.
pub fn swarm(c: &Cluster, count: usize) -> Proc {
    let mut cmd = Command::new(bin_dir().join("cmdb-swarm"));
    cmd.arg("-c").arg(c.master_config()).args([
        "--count",
        &count.to_string(),
        "--heartbeat",
        "1",
        "--reconnect-jitter",
        "1",
        "--request-timeout",
        "5",
    ]);
    Proc::spawn("swarm", cmd)
}

/// The stdout of a command that must have succeeded; otherwise the test
/// fails showing its exit code, stdout and stderr.
pub fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Bytes as text, lossily.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The JSON a successful command printed; panics with its output
/// otherwise.
pub fn json_out(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "command failed: {}\n{}",
        text(&out.stderr),
        text(&out.stdout)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bad json ({e}): {}", text(&out.stdout)))
}

/// Reads a private key file.
pub fn read_key(path: &Path) -> keys::SigningKey {
    keys::read_private(path).expect("private key")
}

/// A daemon Debian installs in /usr/sbin (not on every user's PATH), else
/// the one on PATH.
fn system_program(name: &str) -> PathBuf {
    let sbin = Path::new("/usr/sbin").join(name);
    if sbin.exists() {
        sbin
    } else {
        PathBuf::from(name)
    }
}

/// A NATS server of a test's own on 127.0.0.1 (Debian's `nats-server`),
/// stopped when dropped.
pub struct Nats {
    /// The server process.
    pub proc: Proc,
    /// Its client port.
    pub port: u16,
}

impl Nats {
    /// Starts one and waits until it is ready.
    pub fn start() -> Nats {
        let port = free_port();
        Nats {
            proc: Nats::spawn(port),
            port,
        }
    }

    fn spawn(port: u16) -> Proc {
        let mut cmd = Command::new(system_program("nats-server"));
        cmd.args(["-a", "127.0.0.1", "-p", &port.to_string()]);
        let proc = Proc::spawn("nats-server", cmd);
        proc.wait_for("Server is ready");
        proc
    }

    /// Stops it (its clients see it go).
    pub fn stop(&mut self) {
        self.proc.terminate();
    }

    /// Starts it again on the same port.
    pub fn resume(&mut self) {
        self.proc = Nats::spawn(self.port);
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

/// HAProxy of a test's own (Debian's `haproxy`) in TCP mode, in front of
/// the masters of a cluster: one frontend for the PUB port and one for the
/// request port, each balancing over the peers' ports round-robin in the
/// order given. Stopped when dropped.
pub struct Haproxy {
    /// The haproxy process.
    pub proc: Proc,
    /// The frontend for the PUB ports.
    pub publish_port: u16,
    /// The frontend for the request ports.
    pub ret_port: u16,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    /// Starts one before `publish` and `ret` backends (127.0.0.1 ports) and
    /// waits until both frontends accept connections.
    pub fn start(publish: &[u16], ret: &[u16]) -> Haproxy {
        let dir = tempfile::tempdir().expect("tmp");
        let (publish_port, ret_port) = (free_port(), free_port());
        let servers = |name: &str, ports: &[u16]| -> String {
            ports
                .iter()
                .enumerate()
                .map(|(i, p)| format!("  server {name}{i} 127.0.0.1:{p}\n"))
                .collect()
        };
        let cfg = format!(
            "defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 1h\n  timeout server 1h\n\
             retries 3\n  option redispatch\n\
             frontend pub\n  bind 127.0.0.1:{publish_port}\n  default_backend pubs\n\
             backend pubs\n  balance roundrobin\n{}\
             frontend ret\n  bind 127.0.0.1:{ret_port}\n  default_backend rets\n\
             backend rets\n  balance roundrobin\n{}",
            servers("pub", publish),
            servers("ret", ret),
        );
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, cfg).expect("haproxy.cfg");
        let mut cmd = Command::new(system_program("haproxy"));
        cmd.arg("-db").arg("-f").arg(&path);
        let proc = Proc::spawn("haproxy", cmd);
        for port in [publish_port, ret_port] {
            wait_until(&format!("haproxy listening on {port}"), || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
        }
        Haproxy {
            proc,
            publish_port,
            ret_port,
            _dir: dir,
        }
    }
}

/// Two peers of a master cluster (`cluster_id = "dc1"`) on a PostgreSQL
/// server and a NATS server of their own, the second peer holding the
/// first's master keypair; the servers stop after the masters when dropped.
pub struct Peers {
    /// The first peer.
    pub a: Cluster,
    /// The second peer.
    pub b: Cluster,
    /// Their NATS server.
    pub nats: Nats,
    /// Their PostgreSQL server.
    pub server: store::postgres::server::LocalServer,
    /// The PostgreSQL server's directory.
    pub pg_dir: tempfile::TempDir,
}

impl Peers {
    /// Starts both peers with `extra` lines in their master.toml (after
    /// the cluster's own), PostgreSQL with fsync on when `durable`.
    pub fn start(extra: &str, durable: bool) -> Peers {
        let pg_dir = tempfile::tempdir().expect("tmp");
        let server =
            store::postgres::server::LocalServer::start(pg_dir.path(), durable).expect("postgres");
        let url = server.create_database("cmdb").expect("database");
        let nats = Nats::start();
        let master_extra = format!(
            "store = \"{url}\"\ncluster_id = \"dc1\"\nnats_url = \"{}\"\n{extra}",
            nats.url()
        );
        let a = Cluster::start(ClusterOpts {
            master_extra: master_extra.clone(),
        });
        let b = Cluster::start_peer(&a, ClusterOpts { master_extra });
        Peers {
            a,
            b,
            nats,
            server,
            pg_dir,
        }
    }
}

impl Cluster {
    /// Starts a minion whose id is `id` that reaches its master through
    /// `lb` instead of directly.
    pub fn start_minion_through(&mut self, id: &str, lb: &Haproxy) -> &Proc {
        self.start_minion_with(
            id,
            id,
            &format!(
                "publish_port = {}\nret_port = {}",
                lb.publish_port, lb.ret_port
            ),
        )
    }
}
