//! A PostgreSQL server of its own in a directory, on a free 127.0.0.1
//! port: what the tests and the benchmark run the PostgreSQL engine
//! against. It uses the server programs of the installed PostgreSQL
//! (Debian's `postgresql` package; `CMDB_PG_BINDIR` names another
//! directory) and runs them as the `postgres` user when started by root,
//! since PostgreSQL refuses to run as root.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::StoreError;

/// How long the server may take to start.
const READY_WAIT: Duration = Duration::from_secs(60);

/// A running server; stopped (fast shutdown) when dropped.
pub struct LocalServer {
    /// The `postgres` process.
    child: Child,
    /// Its port on 127.0.0.1.
    port: u16,
    /// Its data directory.
    data: PathBuf,
    /// The directory holding it (and its socket).
    dir: PathBuf,
    /// Whether fsync is on.
    durable: bool,
}

fn fail(what: impl std::fmt::Display) -> StoreError {
    StoreError::Engine(format!("local PostgreSQL server: {what}"))
}

/// The directory of the server programs: `CMDB_PG_BINDIR`, else the newest
/// `/usr/lib/postgresql/<version>/bin`.
pub fn bin_dir() -> Result<PathBuf, StoreError> {
    if let Some(dir) = std::env::var_os("CMDB_PG_BINDIR") {
        return Ok(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| {
            fail(format!(
                "no PostgreSQL server installed (/usr/lib/postgresql: {e}); \
                 install Debian's postgresql package or set CMDB_PG_BINDIR"
            ))
        })?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        fail("no /usr/lib/postgresql/<version>/bin/postgres; install Debian's postgresql package")
    })
}

/// A free port on 127.0.0.1.
fn free_port() -> Result<u16, StoreError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(fail)?;
    Ok(l.local_addr().map_err(fail)?.port())
}

/// Makes `cmd` run as the `postgres` user when this process is root.
fn as_server_user(cmd: &mut Command, dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::process::CommandExt;
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let user = nix::unistd::User::from_name("postgres")
        .map_err(fail)?
        .ok_or_else(|| fail("running as root and there is no postgres user to run the server"))?;
    nix::unistd::chown(dir, Some(user.uid), Some(user.gid)).map_err(fail)?;
    cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    Ok(())
}

impl LocalServer {
    /// Creates a database cluster in `dir` (which must be empty or absent)
    /// and starts its server, returning when it accepts connections.
    /// `durable: false` turns fsync off (tests); the benchmark keeps it on.
    pub fn start(dir: &Path, durable: bool) -> Result<LocalServer, StoreError> {
        let bin = bin_dir()?;
        std::fs::create_dir_all(dir).map_err(fail)?;
        let data = dir.join("data");
        let mut init = Command::new(bin.join("initdb"));
        init.arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"])
            .arg("-N")
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        as_server_user(&mut init, dir)?;
        let out = init
            .output()
            .map_err(|e| fail(format!("{}: {e}", bin.join("initdb").display())))?;
        if !out.status.success() {
            return Err(fail(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let port = free_port()?;
        let child = launch(&bin, dir, &data, port, durable)?;
        Ok(LocalServer {
            child,
            port,
            data,
            dir: dir.to_owned(),
            durable,
        })
    }

    /// Stops the server (fast shutdown: clients are disconnected) and
    /// waits for it to exit.
    pub fn stop(&mut self) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pid = Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(0));
        let _ = kill(pid, Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the stopped server again, on the same port and data.
    pub fn resume(&mut self) -> Result<(), StoreError> {
        self.stop();
        self.child = launch(&bin_dir()?, &self.dir, &self.data, self.port, self.durable)?;
        Ok(())
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The URL of a database on it.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a database and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String, StoreError> {
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(fail(format!(
                "database name {name:?}: letters, digits and _ only"
            )));
        }
        let url = self.url("postgres");
        // On a thread of its own: the caller may be inside a runtime.
        std::thread::scope(|s| s.spawn(|| create(&url, name)).join())
            .map_err(|_| fail("creating the database panicked"))??;
        Ok(self.url(name))
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Starts `postgres` on an initialised data directory; returns when it
/// accepts connections.
fn launch(
    bin: &Path,
    dir: &Path,
    data: &Path,
    port: u16,
    durable: bool,
) -> Result<Child, StoreError> {
    let mut cmd = Command::new(bin.join("postgres"));
    cmd.arg("-D")
        .arg(data)
        .arg("-k")
        .arg(dir)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-c", "max_connections=200", "-c", "shared_buffers=128MB"])
        .args([
            "-c",
            &format!("fsync={}", if durable { "on" } else { "off" }),
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    as_server_user(&mut cmd, dir)?;
    let mut child = cmd
        .spawn()
        .map_err(|e| fail(format!("{}: {e}", bin.join("postgres").display())))?;
    let Some(stderr) = child.stderr.take() else {
        let _ = child.kill();
        return Err(fail("no stderr"));
    };
    // Its log goes to stderr: ready when it says so.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut ready = Some(tx);
        let mut log = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(tx) = &ready {
                log.push(line.clone());
                if line.contains("database system is ready to accept connections") {
                    let _ = tx.send(Ok(()));
                    ready = None;
                }
            }
        }
        if let Some(tx) = ready {
            let _ = tx.send(Err(log.join("\n")));
        }
    });
    let failed = match rx.recv_timeout(READY_WAIT) {
        Ok(Ok(())) => return Ok(child),
        Ok(Err(log)) => fail(format!("the server stopped while starting:\n{log}")),
        Err(_) => fail(format!("not ready after {READY_WAIT:?}")),
    };
    let _ = child.kill();
    let _ = child.wait();
    Err(failed)
}

/// `CREATE DATABASE name` on the server at `url`.
fn create(url: &str, name: &str) -> Result<(), StoreError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(fail)?;
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .map_err(fail)?;
        let driver = tokio::spawn(conn);
        let made = client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(fail);
        drop(client);
        let _ = driver.await;
        made
    })
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.stop();
    }
}
