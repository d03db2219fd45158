//! An OpenSSH server of the test's own (`/usr/sbin/sshd -D -e -f CONFIG`)
//! on a free 127.0.0.1 port, with its own host key, key-only login and its
//! own authorized_keys, in a directory of the test's temp dir; it is ready
//! when it logs that it listens, and killed when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Proc, free_port};

/// The sshd program.
pub const SSHD: &str = "/usr/sbin/sshd";

/// A client key and the `authorized_keys` options it logs in with.
#[derive(Debug, Clone)]
pub struct Login {
    /// Private key file.
    pub key: PathBuf,
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "cmdb-test", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen");
    assert!(
        out.status.success(),
        "ssh-keygen: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The SHA-256 fingerprint of a public key file, as `ssh-keygen -l` says.
pub fn fingerprint(public: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(public)
        .output()
        .expect("ssh-keygen -l");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no fingerprint in {text:?}"))
        .to_owned()
}

/// A running sshd.
pub struct Sshd {
    /// Its port.
    pub port: u16,
    /// Its directory (config, keys, authorized_keys).
    pub dir: PathBuf,
    proc: Option<Proc>,
}

impl Sshd {
    /// Starts an sshd in `dir` (made) on a free port with a new host key.
    pub fn start(dir: &Path) -> Sshd {
        std::fs::create_dir_all(dir).expect("sshd dir");
        // sshd wants its privilege separation directory.
        std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        let mut s = Sshd {
            port: free_port(),
            dir: dir.to_owned(),
            proc: None,
        };
        std::fs::write(s.dir.join("authorized_keys"), "").expect("authorized_keys");
        s.new_host_key();
        s.spawn();
        s
    }

    /// Makes a client key that logs in with `options` (authorized_keys
    /// options such as `command="sleep 600"`, or empty).
    pub fn login(&self, name: &str, options: &str) -> Login {
        let key = self.dir.join(format!("client_{name}"));
        keygen(&key);
        let public = std::fs::read_to_string(key.with_extension("pub")).expect("pub");
        let line = if options.is_empty() {
            public
        } else {
            format!("{options} {public}")
        };
        let ak = self.dir.join("authorized_keys");
        let mut all = std::fs::read_to_string(&ak).expect("read authorized_keys");
        all.push_str(&line);
        std::fs::write(&ak, all).expect("write authorized_keys");
        Login { key }
    }

    /// Makes a client key this server does not authorize.
    pub fn stranger(&self, name: &str) -> Login {
        let key = self.dir.join(format!("stranger_{name}"));
        keygen(&key);
        Login { key }
    }

    /// The host key's public file.
    pub fn host_public(&self) -> PathBuf {
        self.dir.join("host_key.pub")
    }

    /// The host key's fingerprint.
    pub fn host_fingerprint(&self) -> String {
        fingerprint(&self.host_public())
    }

    /// Replaces the host key (takes effect at the next start).
    pub fn new_host_key(&mut self) {
        let key = self.dir.join("host_key");
        let _ = std::fs::remove_file(&key);
        let _ = std::fs::remove_file(key.with_extension("pub"));
        keygen(&key);
    }

    fn spawn(&mut self) {
        let d = self.dir.display();
        let cfg = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile none\nUsePAM no\n\
             StrictModes no\nAuthorizedKeysFile {d}/authorized_keys\nPubkeyAuthentication yes\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n\
             MaxStartups 1000:30:1000\nMaxSessions 100\nLoginGraceTime 30\nLogLevel INFO\n",
            port = self.port
        );
        let path = self.dir.join("sshd_config");
        std::fs::write(&path, cfg).expect("sshd_config");
        let mut cmd = Command::new(SSHD);
        cmd.arg("-D").arg("-e").arg("-f").arg(&path);
        let p = Proc::spawn("sshd", cmd);
        p.wait_for("Server listening on 127.0.0.1");
        self.proc = Some(p);
    }

    /// Stops the server and starts it again on the same port.
    pub fn restart(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
        self.spawn();
    }

    /// The listening server's process id.
    pub fn pid(&self) -> u32 {
        self.proc.as_ref().map_or(0, Proc::pid)
    }

    /// The server's log so far.
    pub fn logs(&self) -> String {
        self.proc.as_ref().map(Proc::logs).unwrap_or_default()
    }
}
