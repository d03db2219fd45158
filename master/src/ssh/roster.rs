//! The roster: hosts reached over SSH, in Salt's format. A YAML mapping of
//! id to `{host, port, user, priv, passwd, sudo, timeout}`. Each entry is
//! checked on its own: one with an unknown key, a bad value or an id that
//! is not a valid minion id is an error for that id alone, and the others
//! still run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::SshError;

/// One host of the roster, as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RosterEntry {
    /// Address or DNS name.
    pub host: String,
    /// SSH port (default 22).
    #[serde(default)]
    pub port: Option<u16>,
    /// Login user (default `root`).
    #[serde(default)]
    pub user: Option<String>,
    /// Private key file.
    #[serde(default, rename = "priv")]
    pub private_key: Option<PathBuf>,
    /// Password; refused unless `[ssh] allow_passwords` is on.
    #[serde(default)]
    pub passwd: Option<String>,
    /// Run the commands through `sudo -n`.
    #[serde(default)]
    pub sudo: bool,
    /// Seconds the whole session may take.
    #[serde(default)]
    pub timeout: Option<u64>,
}

/// A checked roster entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The roster id (a valid minion id).
    pub id: String,
    /// The entry.
    pub entry: RosterEntry,
}

impl Host {
    /// The port.
    pub fn port(&self) -> u16 {
        self.entry.port.unwrap_or(22)
    }

    /// The login user.
    pub fn user(&self) -> &str {
        self.entry.user.as_deref().unwrap_or("root")
    }

    /// How the host is named in known_hosts: `host`, or `[host]:port` off
    /// port 22.
    pub fn known_hosts_name(&self) -> String {
        match self.port() {
            22 => self.entry.host.clone(),
            p => format!("[{}]:{p}", self.entry.host),
        }
    }
}

/// The roster: every id with its host or why its entry is refused.
#[derive(Debug, Clone, Default)]
pub struct Roster {
    /// Entries by id, in id order.
    pub entries: BTreeMap<String, Result<Host, SshError>>,
}

/// Whether `word` may be handed to ssh as a host or user name: not empty,
/// not an option (leading `-`), no spaces, `@` or control characters.
fn plain_word(word: &str, extra: &str) -> bool {
    !word.is_empty()
        && !word.starts_with('-')
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c) || extra.contains(c))
}

fn check(id: &str, value: serde_json::Value) -> Result<Host, SshError> {
    let bad = |reason: String| SshError::Roster {
        id: id.to_owned(),
        reason,
    };
    protocol::MinionId::new(id).map_err(|e| bad(format!("the id is not usable: {e}")))?;
    let entry: RosterEntry = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
    if !plain_word(&entry.host, ":[]%") {
        return Err(bad(format!(
            "host {:?} is not a host name or address",
            entry.host
        )));
    }
    if let Some(user) = &entry.user
        && !plain_word(user, "")
    {
        return Err(bad(format!("user {user:?} is not a user name")));
    }
    if entry.timeout == Some(0) {
        return Err(bad("timeout must be at least 1 second".into()));
    }
    Ok(Host {
        id: id.to_owned(),
        entry,
    })
}

impl Roster {
    /// Parses roster text. Only text that is not a YAML mapping at all is
    /// an error; a bad entry is an error for its id.
    pub fn parse(text: &str) -> Result<Roster, String> {
        if text.trim().is_empty() {
            return Ok(Roster::default());
        }
        let raw: BTreeMap<String, serde_json::Value> =
            serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        Ok(Roster {
            entries: raw
                .into_iter()
                .map(|(id, value)| {
                    let host = check(&id, value);
                    (id, host)
                })
                .collect(),
        })
    }

    /// Reads and parses the roster file.
    pub fn load(path: &Path) -> Result<Roster, SshError> {
        let text = std::fs::read_to_string(path).map_err(|e| SshError::RosterFile {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Roster::parse(&text).map_err(|reason| SshError::RosterFile {
            path: path.to_owned(),
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salt_style_entries_and_defaults() {
        let r = Roster::parse(
            "web1:\n  host: 10.0.0.1\n  user: deploy\n  priv: /etc/cmdb/key\n  sudo: True\n  timeout: 9\n\
             db1:\n  host: db1.example.com\n  port: 2222\n",
        )
        .expect("parse");
        let web = r.entries["web1"].as_ref().expect("web1");
        assert_eq!(web.user(), "deploy");
        assert!(web.entry.sudo);
        assert_eq!(web.entry.timeout, Some(9));
        assert_eq!(web.known_hosts_name(), "10.0.0.1");
        let db = r.entries["db1"].as_ref().expect("db1");
        assert_eq!(db.user(), "root");
        assert_eq!(db.known_hosts_name(), "[db1.example.com]:2222");
    }

    proptest::proptest! {
        #[test]
        fn any_roster_text_parses_or_is_refused_without_a_panic(text in "[ -~\n\t]{0,200}") {
            let _ = Roster::parse(&text);
        }

        #[test]
        fn any_entry_value_is_checked_without_a_panic(
            id in "[ -~]{0,20}",
            host in "[ -~]{0,20}",
            port in proptest::num::i64::ANY,
            user in "[ -~]{0,12}",
        ) {
            let yaml = format!("{id:?}:\n  host: {host:?}\n  port: {port}\n  user: {user:?}\n");
            let _ = Roster::parse(&yaml);
        }
    }

    #[test]
    fn a_bad_entry_is_an_error_for_its_id_alone() {
        let r = Roster::parse(
            "good:\n  host: 10.0.0.1\n\
             typo:\n  host: 10.0.0.2\n  prot: 22\n\
             \"../../etc\":\n  host: 10.0.0.3\n\
             inject:\n  host: -oProxyCommand=touch /tmp/x\n\
             baduser:\n  host: h\n  user: \"a b\"\n\
             nohost:\n  port: 22\n",
        )
        .expect("parse");
        assert!(r.entries["good"].is_ok());
        let err = |id: &str| r.entries[id].as_ref().expect_err(id).to_string();
        assert!(err("typo").contains("prot"), "{}", err("typo"));
        assert!(
            err("../../etc").contains("not usable"),
            "{}",
            err("../../etc")
        );
        assert!(
            err("inject").contains("not a host name"),
            "{}",
            err("inject")
        );
        assert!(err("baduser").contains("not a user name"));
        assert!(err("nohost").contains("host"));
        assert!(Roster::parse("- a\n- b\n").is_err());
        assert!(Roster::parse("").expect("empty").entries.is_empty());
    }
}
