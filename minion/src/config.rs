//! `minion.toml`: the minion's settings, with documented defaults. Unknown
//! keys are an error that names the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::error::MinionError;

/// Default location of the minion's config file.
pub const DEFAULT_CONFIG: &str = "/etc/cmdb/minion.toml";

/// The minion's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MinionConfig {
    /// The master's address (default `127.0.0.1`), or a list of masters
    /// (peers of one cluster) tried in order, each a host name or a table
    /// `{ host, publish_port, ret_port }`.
    #[serde(deserialize_with = "masters")]
    pub master: Vec<MasterAddr>,
    /// Starts with a random master of the list instead of the first, so
    /// that a fleet spreads over the peers (default false).
    pub random_master: bool,
    /// The master's PUB port (default 4505).
    pub publish_port: u16,
    /// The master's request port (default 4506).
    pub ret_port: u16,
    /// Keys, the pinned master key and the persisted id live here.
    pub state_dir: PathBuf,
    /// Minion id; default: the hostname at first start, then persisted.
    pub id: Option<String>,
    /// Expected fingerprint of the master key; when unset the key is pinned
    /// on first acceptance.
    pub master_finger: Option<String>,
    /// Seconds between auth attempts while the key is pending (doubles up to
    /// `acceptance_wait_time_max`).
    pub acceptance_wait_time: f64,
    /// Longest wait between auth attempts, seconds.
    pub acceptance_wait_time_max: f64,
    /// Longest random delay before reconnecting after the master went away,
    /// seconds (spreads a reconnect storm).
    pub random_reauth_delay: f64,
    /// Longest random delay before fetching a rotated session key, seconds.
    pub rotation_spread: f64,
    /// Seconds between heartbeats.
    pub heartbeat_interval: f64,
    /// Seconds to wait for the master's answer to one request.
    pub request_timeout: f64,
    /// Jobs issued longer ago than this many seconds (or as far in the
    /// future) are dropped as stale.
    pub job_max_age: u64,
    /// Jobs run at once; more wait.
    pub max_concurrent_jobs: usize,
    /// Largest frame accepted, bytes.
    pub max_frame_bytes: usize,
    /// File roots read by `cmdb-minion call --local` for `cmdb://` paths
    /// and state files (default `/srv/cmdb`); the daemon reads the master's.
    pub file_roots: Vec<PathBuf>,
    /// Largest return sent, bytes (default 64 MiB, as the master's
    /// default). A larger one is replaced by an error return naming its size.
    pub max_return_bytes: u64,
    /// Seconds a return is retried while the master does not take it
    /// (default 3600); then it is dropped with an error in the log.
    pub return_retry_secs: u64,
    /// Root of the file system the collectors read (default `/`).
    pub root: PathBuf,
    /// Directory of executables that print a JSON object of extra facts.
    pub plugins_dir: PathBuf,
    /// Seconds one fact plugin may run before it is killed.
    pub plugin_timeout: f64,
    /// Seconds between collects the minion sends on its own (0: never).
    /// Each interval is jittered by ±10 %.
    pub collect_interval: u64,
    /// Collectors switched on (`true`) or off (`false`) by name; all are on
    /// by default.
    pub collectors: BTreeMap<String, bool>,
    /// Log format: `text` or `json`.
    pub log_format: LogFormat,
}

pub use daemon::LogFormat;

impl Default for MinionConfig {
    fn default() -> Self {
        MinionConfig {
            master: vec![MasterAddr::host("127.0.0.1")],
            random_master: false,
            publish_port: 4505,
            ret_port: 4506,
            state_dir: "/var/lib/cmdb/minion".into(),
            id: None,
            master_finger: None,
            acceptance_wait_time: 10.0,
            acceptance_wait_time_max: 60.0,
            random_reauth_delay: 10.0,
            rotation_spread: 30.0,
            heartbeat_interval: 30.0,
            request_timeout: 10.0,
            job_max_age: 300,
            max_concurrent_jobs: 32,
            max_frame_bytes: protocol::MAX_FRAME_DEFAULT,
            file_roots: vec!["/srv/cmdb".into()],
            max_return_bytes: 64 * 1024 * 1024,
            return_retry_secs: 3600,
            root: "/".into(),
            plugins_dir: "/etc/cmdb/plugins".into(),
            plugin_timeout: 10.0,
            collect_interval: 3600,
            collectors: BTreeMap::new(),
            log_format: LogFormat::Text,
        }
    }
}

/// One master a minion may connect to: its host and, when they differ from
/// the minion's `publish_port` and `ret_port`, its own ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterAddr {
    /// Host name or IP address.
    pub host: String,
    /// Its PUB port, when not the minion's `publish_port`.
    pub publish_port: Option<u16>,
    /// Its request port, when not the minion's `ret_port`.
    pub ret_port: Option<u16>,
}

impl MasterAddr {
    /// A master on the default ports.
    pub fn host(host: &str) -> MasterAddr {
        MasterAddr {
            host: host.to_owned(),
            publish_port: None,
            ret_port: None,
        }
    }
}

/// A master's two endpoints, resolved against the minion's default ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterEndpoints {
    /// `host:ret_port`, for logs.
    pub name: String,
    /// `tcp://host:publish_port`.
    pub publish: String,
    /// `tcp://host:ret_port`.
    pub request: String,
}

impl std::fmt::Display for MasterEndpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// Reads `master`: a host, or a non-empty list of hosts and
/// `{ host, publish_port, ret_port }` tables.
fn masters<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<MasterAddr>, D::Error> {
    use serde::de::Error;
    let value = toml::Value::deserialize(d)?;
    let entries = match value {
        toml::Value::Array(list) if list.is_empty() => {
            return Err(D::Error::custom(
                "master: the list is empty; name at least one master",
            ));
        }
        toml::Value::Array(list) => list,
        one => vec![one],
    };
    entries
        .into_iter()
        .map(|entry| master_entry(entry).map_err(D::Error::custom))
        .collect()
}

fn master_entry(entry: toml::Value) -> Result<MasterAddr, String> {
    let addr = match entry {
        toml::Value::String(host) => MasterAddr::host(&host),
        toml::Value::Table(mut t) => {
            let host = match t.remove("host") {
                Some(toml::Value::String(h)) => h,
                Some(other) => return Err(format!("master: host must be a string, not {other}")),
                None => return Err("master: a table in the list needs a host".into()),
            };
            let mut port = |name: &str| -> Result<Option<u16>, String> {
                match t.remove(name) {
                    None => Ok(None),
                    Some(toml::Value::Integer(p)) => u16::try_from(p)
                        .ok()
                        .filter(|p| *p > 0)
                        .map(Some)
                        .ok_or_else(|| format!("master {host}: {name} {p} is not a port")),
                    Some(other) => Err(format!(
                        "master {host}: {name} must be a port number, not {other}"
                    )),
                }
            };
            let publish_port = port("publish_port")?;
            let ret_port = port("ret_port")?;
            if let Some(unknown) = t.keys().next() {
                return Err(format!(
                    "master {host}: unknown key `{unknown}`, expected host, publish_port or ret_port"
                ));
            }
            MasterAddr {
                host,
                publish_port,
                ret_port,
            }
        }
        other => {
            return Err(format!(
                "master: expected a host name or a table {{ host, publish_port, ret_port }}, not {other}"
            ));
        }
    };
    let host = addr.host.as_str();
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(format!("master: \"{host}\" is not a host name or address"));
    }
    if host.contains(':') && host.parse::<std::net::Ipv6Addr>().is_err() {
        return Err(format!(
            "master: \"{host}\" is not a host name or address; give ports as \
             {{ host = \"…\", publish_port = …, ret_port = … }}"
        ));
    }
    Ok(addr)
}

impl MinionConfig {
    /// The masters to try, in the order listed, with their endpoints.
    pub fn masters(&self) -> Vec<MasterEndpoints> {
        self.master
            .iter()
            .map(|m| {
                let host = if m.host.contains(':') {
                    format!("[{}]", m.host)
                } else {
                    m.host.clone()
                };
                let publish = m.publish_port.unwrap_or(self.publish_port);
                let ret = m.ret_port.unwrap_or(self.ret_port);
                MasterEndpoints {
                    name: format!("{host}:{ret}"),
                    publish: format!("tcp://{host}:{publish}"),
                    request: format!("tcp://{host}:{ret}"),
                }
            })
            .collect()
    }

    /// The timings its session and return delivery follow.
    pub fn timing(&self) -> crate::machine::Timing {
        crate::machine::Timing {
            heartbeat: self.heartbeat_interval,
            early_heartbeat: 5.0,
            early_for: 30.0,
            acceptance_wait: self.acceptance_wait_time,
            acceptance_wait_max: self.acceptance_wait_time_max,
            reauth_delay: self.random_reauth_delay,
            rotation_spread: self.rotation_spread,
            misses_allowed: 2,
            retry_first: 0.5,
            retry_max: 30.0,
            give_up_after: Some(self.return_retry_secs as f64),
        }
    }

    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<MinionConfig, MinionError> {
        Ok(daemon::load_config(path, Self::parse)?)
    }

    /// Parses and checks config text.
    pub fn parse(text: &str) -> Result<MinionConfig, String> {
        let cfg: MinionConfig = daemon::parse_toml(text)?;
        if let Some(id) = &cfg.id {
            protocol::MinionId::new(id.as_str()).map_err(|e| format!("id: {e}"))?;
        }
        let positive = [
            ("acceptance_wait_time", cfg.acceptance_wait_time),
            ("acceptance_wait_time_max", cfg.acceptance_wait_time_max),
            ("heartbeat_interval", cfg.heartbeat_interval),
            ("request_timeout", cfg.request_timeout),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("{name} must be a positive number of seconds"));
            }
        }
        for (name, v) in [
            ("random_reauth_delay", cfg.random_reauth_delay),
            ("rotation_spread", cfg.rotation_spread),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{name} must be zero or more seconds"));
            }
        }
        for name in cfg.collectors.keys() {
            name.parse::<facts::Collector>()
                .map_err(|e| format!("collectors.{name}: {e}"))?;
        }
        if !(cfg.plugin_timeout.is_finite() && cfg.plugin_timeout > 0.0) {
            return Err("plugin_timeout must be a positive number of seconds".into());
        }
        if cfg.max_concurrent_jobs == 0 {
            return Err("max_concurrent_jobs must be at least 1".into());
        }
        Ok(cfg)
    }
}

impl MinionConfig {
    /// What a collect reads and runs under these settings.
    pub fn collect_settings(&self) -> facts::CollectSettings {
        facts::CollectSettings {
            root: self.root.clone(),
            disabled: self
                .collectors
                .iter()
                .filter(|(_, on)| !**on)
                .filter_map(|(n, _)| n.parse().ok())
                .collect(),
            plugins_dir: Some(self.plugins_dir.clone()),
            plugin_timeout: Duration::from_secs_f64(self.plugin_timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_named() {
        let err = MinionConfig::parse("mastr = 'x'").expect_err("unknown");
        assert!(err.contains("mastr"), "{err}");
    }

    #[test]
    fn unknown_collector_is_named() {
        let err = MinionConfig::parse("[collectors]\ngpu = false").expect_err("unknown");
        assert!(err.contains("collectors.gpu"), "{err}");
        let cfg = MinionConfig::parse("[collectors]\ngpus = false").expect("known");
        assert!(
            cfg.collect_settings()
                .disabled
                .contains(&facts::Collector::Gpus)
        );
    }

    #[test]
    fn master_is_one_host_or_a_list_of_peers() {
        let one = MinionConfig::parse("master = 'cmdb.example'").expect("one");
        assert_eq!(
            one.masters(),
            vec![MasterEndpoints {
                name: "cmdb.example:4506".into(),
                publish: "tcp://cmdb.example:4505".into(),
                request: "tcp://cmdb.example:4506".into(),
            }]
        );
        let list = MinionConfig::parse(
            "ret_port = 5506\nmaster = ['peer1', { host = '::1', publish_port = 7000, ret_port = 7001 }, { host = 'peer3', ret_port = 9 }]",
        )
        .expect("list");
        let names: Vec<(String, String)> = list
            .masters()
            .into_iter()
            .map(|m| (m.publish, m.request))
            .collect();
        assert_eq!(
            names,
            [
                ("tcp://peer1:4505", "tcp://peer1:5506"),
                ("tcp://[::1]:7000", "tcp://[::1]:7001"),
                ("tcp://peer3:4505", "tcp://peer3:9"),
            ]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
        );
    }

    #[test]
    fn a_wrong_master_entry_is_named() {
        for (text, says) in [
            ("master = []", "empty"),
            ("master = ''", "not a host"),
            ("master = '10.0.0.1:4506'", "give ports as"),
            ("master = [{ hots = 'a' }]", "needs a host"),
            ("master = [{ host = 'a', port = 1 }]", "unknown key `port`"),
            (
                "master = [{ host = 'a', ret_port = 70000 }]",
                "70000 is not a port",
            ),
            (
                "master = [{ host = 'a', ret_port = 'x' }]",
                "must be a port number",
            ),
            ("master = [1]", "expected a host name"),
        ] {
            let err = MinionConfig::parse(text).expect_err(text);
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn id_with_path_tricks_is_refused() {
        let err = MinionConfig::parse("id = '../etc'").expect_err("bad id");
        assert!(err.contains("id"), "{err}");
    }

    #[test]
    fn packaged_config_holds_the_defaults() {
        // /etc/cmdb/minion.toml of the Debian package.
        let shipped = include_str!("../../dist/debian/minion/minion.toml");
        daemon::packaged_config_holds_defaults(shipped, MinionConfig::parse)
            .unwrap_or_else(|e| panic!("minion.toml: {e}"));
    }
}
