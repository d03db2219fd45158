//! `master.toml`: the master's settings, with documented defaults. Unknown
//! keys are an error that names the key.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::MasterError;

/// Default location of the master's config file.
pub const DEFAULT_CONFIG: &str = "/etc/cmdb/master.toml";

/// The master's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MasterConfig {
    /// Address both sockets bind (default `0.0.0.0`).
    pub interface: String,
    /// PUB port for jobs (default 4505).
    pub publish_port: u16,
    /// Request (ROUTER) port for auth, returns and heartbeats (default 4506).
    pub ret_port: u16,
    /// State directory: `pki/`, `db/` and `api.sock` live here by default.
    pub state_dir: PathBuf,
    /// Key directory (default `<state_dir>/pki`).
    pub pki_dir: Option<PathBuf>,
    /// Where the records live: `sled` (the embedded database in
    /// `db_path`, default) or a PostgreSQL URL (`postgres://user:pass@host/db`),
    /// which several masters of a cluster share.
    pub store: String,
    /// sled database directory (default `<state_dir>/db`).
    pub db_path: Option<PathBuf>,
    /// The master cluster this master is a peer of (none: a master alone).
    /// Peers share `store` (PostgreSQL) and the master keypair.
    pub cluster_id: Option<String>,
    /// The NATS server the peers of `cluster_id` talk through
    /// (`nats://host:4222`).
    pub nats_url: Option<String>,
    /// Unix socket of the HTTP API (mode 0600; whoever can open it is the
    /// local administrator), used by `cmdb` (default `<state_dir>/api.sock`).
    pub api_socket: Option<PathBuf>,
    /// Minion id globs accepted without an operator.
    pub autosign: Vec<String>,
    /// Minion id globs rejected without an operator.
    pub autoreject: Vec<String>,
    /// Directories of state files and files served as `cmdb://path`.
    pub file_roots: Vec<PathBuf>,
    /// Directories of pillar files, with their own `top.sls` (default
    /// `/srv/cmdb/pillar`); each minion gets only the pillar compiled for it.
    pub pillar_roots: Vec<PathBuf>,
    /// Request workers that verify, decode, store and reply (default 4).
    pub workers: usize,
    /// Capacity of the queue between the request socket and the workers.
    pub request_queue: usize,
    /// Most bytes of requests waiting in that queue (default 32 MiB); at
    /// the bound the request socket reads no more until workers catch up,
    /// and what minions send waits in their connections.
    pub request_queue_bytes: usize,
    /// Largest frame accepted, in bytes (default 4 MiB).
    pub max_frame_bytes: usize,
    /// Largest job return accepted, in bytes (default 64 MiB); larger ones
    /// come in parts of 1 MiB, and one over this is refused (the minion
    /// then returns an error naming its size).
    pub max_return_bytes: u64,
    /// Seconds a minion may run a job before it is stopped (default 600).
    pub job_timeout: u64,
    /// Seconds a job stays live for minions that missed it (default 600).
    pub job_live_secs: u64,
    /// Hours the job cache keeps a job and its returns, as Salt's
    /// `keep_jobs` (default 24; 0 keeps them forever). Asset history is
    /// kept apart and is not affected.
    pub keep_jobs: u64,
    /// Seconds of clock difference tolerated on signed requests (default 300).
    pub clock_skew_secs: u64,
    /// Seconds a minion's heartbeat counts as fresh when a gather wait
    /// decides whether a job still runs (default 30).
    pub presence_secs: u64,
    /// Log format: `text` or `json`.
    pub log_format: LogFormat,
    /// Most keys waiting in `pending/`; auth requests from new ids beyond it
    /// are refused and logged (default 1000).
    pub max_pending: usize,
    /// Most accepted minions; 0 for no limit (default 0).
    pub max_minions: usize,
    /// Auth requests one connection may make per second (burst of twice
    /// that); more are refused (default 5).
    pub auth_rate: f64,
    /// Seconds between periodic session key rotations (default 86400); the
    /// key also rotates whenever a key leaves `accepted/`.
    pub session_rotate_secs: u64,
    /// Largest file a minion may push with `cp.push`, bytes (default 1 GiB).
    pub max_push_bytes: u64,
    /// Most connections each ZeroMQ socket holds at once, handshakes
    /// included; 0 derives it from the open-file limit (default 0).
    pub max_connections: usize,
    /// Most connections per socket that have not authenticated yet; newer
    /// ones beyond it are closed at once (default 4096).
    pub max_unauthenticated: usize,
    /// Seconds a connection may stay without authenticating before it is
    /// closed; the ZMTP handshake itself must finish within this too
    /// (default 10).
    pub auth_grace_secs: u64,
    /// Asset inventory settings (`[inventory]`).
    pub inventory: InventoryConfig,
    /// The API's TCP listener (`[api]`).
    pub api: ApiConfig,
    /// The roster of hosts reached over SSH, in Salt's format (default
    /// `/etc/cmdb/roster`); read anew by every `cmdb ssh` job.
    pub roster: PathBuf,
    /// Most SSH sessions open at once, over every job (default 50).
    pub ssh_max_sessions: usize,
    /// Agentless collection over SSH (`[ssh]`).
    pub ssh: SshConfig,
}

/// The storage engine a master uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreEngine {
    /// sled in this directory.
    Sled(PathBuf),
    /// PostgreSQL at this URL.
    Postgres(String),
}

/// `[ssh]`: agentless collection over SSH.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SshConfig {
    /// Seconds between collects of the whole roster; 0 turns them off
    /// (default 0).
    pub collect_interval: u64,
    /// Seconds one host's session may take, login included, unless its
    /// roster entry says otherwise (default 30).
    pub timeout: u64,
    /// Whether roster entries may log in with `passwd` (default false:
    /// such entries are refused).
    pub allow_passwords: bool,
    /// Private key used for entries without `priv` (default: the ssh
    /// client's own identities).
    #[serde(rename = "priv")]
    pub private_key: Option<PathBuf>,
    /// The OpenSSH client program (default `ssh`).
    pub ssh_program: PathBuf,
    /// An ssh_config file for the client (default: the client's usual
    /// ones).
    pub ssh_config: Option<PathBuf>,
}

impl Default for SshConfig {
    fn default() -> Self {
        SshConfig {
            collect_interval: 0,
            timeout: 30,
            allow_passwords: false,
            private_key: None,
            ssh_program: "ssh".into(),
            ssh_config: None,
        }
    }
}

/// `[api]`: the API's TCP listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address and port of the TLS listener (default `127.0.0.1:4507`);
    /// an empty string turns it off.
    pub listen: String,
    /// PEM certificate chain; unset: a self-signed one is made under
    /// `pki/` at first start.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Host names signed requests may name in `@target-uri` besides the
    /// listen address, `localhost`, `127.0.0.1`, `::1` and this host's name
    /// (a signature made for another master is refused).
    pub hostnames: Vec<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: "127.0.0.1:4507".into(),
            tls_cert: None,
            tls_key: None,
            hostnames: Vec::new(),
        }
    }
}

pub use inventory::InventoryConfig;

pub use daemon::LogFormat;

impl Default for MasterConfig {
    fn default() -> Self {
        MasterConfig {
            interface: "0.0.0.0".into(),
            publish_port: 4505,
            ret_port: 4506,
            state_dir: "/var/lib/cmdb/master".into(),
            pki_dir: None,
            store: "sled".into(),
            db_path: None,
            cluster_id: None,
            nats_url: None,
            api_socket: None,
            autosign: Vec::new(),
            autoreject: Vec::new(),
            file_roots: vec!["/srv/cmdb".into()],
            pillar_roots: vec!["/srv/cmdb/pillar".into()],
            workers: 4,
            request_queue: 16_384,
            request_queue_bytes: 32 * 1024 * 1024,
            max_frame_bytes: protocol::MAX_FRAME_DEFAULT,
            max_return_bytes: 64 * 1024 * 1024,
            job_timeout: 600,
            job_live_secs: 600,
            keep_jobs: 24,
            clock_skew_secs: 300,
            presence_secs: 30,
            log_format: LogFormat::Text,
            max_pending: 1000,
            max_minions: 0,
            auth_rate: 5.0,
            session_rotate_secs: 86_400,
            max_push_bytes: 1 << 30,
            max_connections: 0,
            max_unauthenticated: 4096,
            auth_grace_secs: 10,
            inventory: InventoryConfig::default(),
            api: ApiConfig::default(),
            roster: "/etc/cmdb/roster".into(),
            ssh_max_sessions: 50,
            ssh: SshConfig::default(),
        }
    }
}

impl MasterConfig {
    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<MasterConfig, MasterError> {
        Ok(daemon::load_config(path, Self::parse)?)
    }

    /// Parses and checks config text.
    pub fn parse(text: &str) -> Result<MasterConfig, String> {
        let cfg: MasterConfig = daemon::parse_toml(text)?;
        if cfg.workers == 0 {
            return Err("workers must be at least 1".into());
        }
        if !(cfg.auth_rate.is_finite() && cfg.auth_rate > 0.0) {
            return Err("auth_rate must be a positive number".into());
        }
        if cfg.session_rotate_secs == 0 {
            return Err("session_rotate_secs must be at least 1".into());
        }
        if cfg.auth_grace_secs == 0 {
            return Err("auth_grace_secs must be at least 1".into());
        }
        if cfg.max_unauthenticated == 0 {
            return Err("max_unauthenticated must be at least 1".into());
        }
        if cfg.ssh_max_sessions == 0 {
            return Err("ssh_max_sessions must be at least 1".into());
        }
        if cfg.ssh.timeout == 0 {
            return Err("ssh.timeout must be at least 1 second".into());
        }
        if cfg.request_queue == 0 {
            return Err("request_queue must be at least 1".into());
        }
        if cfg.request_queue_bytes < 1024 * 1024 {
            return Err("request_queue_bytes must be at least 1048576 (1 MiB)".into());
        }
        let engine = cfg.store_engine()?;
        match (&cfg.cluster_id, &cfg.nats_url) {
            (None, None) => {}
            (Some(id), Some(url)) => {
                if id.is_empty()
                    || !id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    return Err(format!(
                        "cluster_id = {id:?}: letters, digits, - and _ only"
                    ));
                }
                if !url.starts_with("nats://") {
                    return Err(format!("nats_url = {url:?}: expected nats://host:port"));
                }
                if !matches!(engine, StoreEngine::Postgres(_)) {
                    return Err(
                        "cluster_id needs store = \"postgres://…\": the peers of a cluster share one database"
                            .into(),
                    );
                }
            }
            (Some(_), None) => return Err("cluster_id needs nats_url".into()),
            (None, Some(_)) => return Err("nats_url needs cluster_id".into()),
        }
        cfg.inventory.check()?;
        for glob in cfg.autosign.iter().chain(&cfg.autoreject) {
            protocol::fnmatch::compile(glob, false).map_err(|e| e.to_string())?;
        }
        Ok(cfg)
    }

    /// The pki directory.
    pub fn pki_dir(&self) -> PathBuf {
        self.pki_dir
            .clone()
            .unwrap_or_else(|| self.state_dir.join("pki"))
    }

    /// The storage engine `store` names.
    pub fn store_engine(&self) -> Result<StoreEngine, String> {
        let s = self.store.trim();
        if s == "sled" {
            Ok(StoreEngine::Sled(self.db_path()))
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(StoreEngine::Postgres(s.to_owned()))
        } else {
            Err(format!(
                "store = {:?}: expected \"sled\" or a PostgreSQL URL (postgres://user:password@host/database)",
                store::postgres::redact(&self.store)
            ))
        }
    }

    /// The database directory.
    pub fn db_path(&self) -> PathBuf {
        self.db_path
            .clone()
            .unwrap_or_else(|| self.state_dir.join("db"))
    }

    /// The pinned host keys of SSH hosts (`<state_dir>/ssh_known_hosts`).
    pub fn ssh_known_hosts(&self) -> PathBuf {
        self.state_dir.join("ssh_known_hosts")
    }

    /// Where files pushed by minions are kept (`<state_dir>/minion_files`).
    pub fn push_dir(&self) -> PathBuf {
        self.state_dir.join("minion_files")
    }

    /// The API's unix socket path.
    pub fn api_socket(&self) -> PathBuf {
        self.api_socket
            .clone()
            .unwrap_or_else(|| self.state_dir.join("api.sock"))
    }

    /// Whether `id` is on the autosign list.
    pub fn autosigned(&self, id: &str) -> bool {
        self.autosign
            .iter()
            .any(|g| protocol::fnmatch::fnmatch(id, g))
    }

    /// Whether `id` is on the autoreject list.
    pub fn autorejected(&self, id: &str) -> bool {
        self.autoreject
            .iter()
            .any(|g| protocol::fnmatch::fnmatch(id, g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let cfg = MasterConfig::parse("ret_port = 5000\nautosign = ['web*']").expect("parse");
        assert_eq!(cfg.ret_port, 5000);
        assert_eq!(cfg.publish_port, 4505);
        assert!(cfg.autosigned("web1"));
        assert!(!cfg.autosigned("db1"));
        assert_eq!(cfg.pki_dir(), PathBuf::from("/var/lib/cmdb/master/pki"));
    }

    #[test]
    fn inventory_table_is_checked() {
        let cfg = MasterConfig::parse("[inventory]\noffline_after_secs = 5").expect("parse");
        assert_eq!(cfg.inventory.offline_after_secs, 5);
        assert!(cfg.inventory.allows("active", "maintenance"));
        assert!(!cfg.inventory.allows("decommissioned", "active"));
        let err = MasterConfig::parse("[inventory]\ntransitions = { active = [\"broken\"] }")
            .expect_err("bad status");
        assert!(err.contains("broken"), "{err}");
        let err = MasterConfig::parse("[inventory]\nofline = 1").expect_err("unknown");
        assert!(err.contains("ofline"), "{err}");
    }

    #[test]
    fn the_store_is_sled_or_a_postgres_url() {
        let cfg = MasterConfig::parse("state_dir = \"/s\"").expect("parse");
        assert_eq!(
            cfg.store_engine(),
            Ok(StoreEngine::Sled(PathBuf::from("/s/db")))
        );
        let cfg = MasterConfig::parse("store = \"postgres://cmdb:pw@db1/cmdb\"").expect("parse");
        assert_eq!(
            cfg.store_engine(),
            Ok(StoreEngine::Postgres("postgres://cmdb:pw@db1/cmdb".into()))
        );
        let err = MasterConfig::parse("store = \"mysql://db1\"").expect_err("unknown engine");
        assert!(err.contains("mysql://db1") && err.contains("sled"), "{err}");
    }

    #[test]
    fn a_cluster_needs_nats_and_postgres() {
        let pg = "store = \"postgres://db1/cmdb\"\n";
        let cfg = MasterConfig::parse(&format!(
            "{pg}cluster_id = \"dc1\"\nnats_url = \"nats://127.0.0.1:4222\""
        ))
        .expect("a peer");
        assert_eq!(cfg.cluster_id.as_deref(), Some("dc1"));
        for (text, says) in [
            (
                "cluster_id = \"dc1\"\nnats_url = \"nats://n1:4222\"",
                "postgres",
            ),
            ("cluster_id = \"dc1\"", "nats_url"),
            ("nats_url = \"nats://n1:4222\"", "cluster_id"),
        ] {
            let err = MasterConfig::parse(text).expect_err(text);
            assert!(err.contains(says), "{text}: {err}");
        }
        let err = MasterConfig::parse(&format!(
            "{pg}cluster_id = \"dc 1\"\nnats_url = \"nats://n1:4222\""
        ))
        .expect_err("bad id");
        assert!(err.contains("dc 1"), "{err}");
    }

    #[test]
    fn unknown_key_is_named() {
        let err = MasterConfig::parse("ret_prot = 1").expect_err("unknown key");
        assert!(err.contains("ret_prot"), "{err}");
    }

    #[test]
    fn packaged_config_holds_the_defaults() {
        // /etc/cmdb/master.toml of the Debian package.
        let shipped = include_str!("../../dist/debian/master/master.toml");
        daemon::packaged_config_holds_defaults(shipped, MasterConfig::parse)
            .unwrap_or_else(|e| panic!("master.toml: {e}"));
    }
}
