//! Agentless collection: hosts of the roster reached with the OpenSSH
//! client, one process per session, at most `ssh_max_sessions` at once.
//!
//! [`roster`] reads the roster, [`known_hosts`] keeps the pinned host keys
//! in `<state_dir>/ssh_known_hosts` (first use recorded, a changed key
//! refused), [`session`] runs one function on one host and turns whatever
//! happens into a per-host result. The jobs themselves are the
//! `service::ssh` service's.

pub mod known_hosts;
pub mod roster;
pub mod session;

use std::path::PathBuf;

use thiserror::Error;

/// Why a host gave no result. Each is that host's error alone.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SshError {
    /// The roster file could not be read or is not a YAML mapping.
    #[error("roster {path}: {reason}")]
    RosterFile {
        /// The roster file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The host's roster entry is refused.
    #[error("roster entry {id:?}: {reason}")]
    Roster {
        /// The id as written.
        id: String,
        /// What was wrong.
        reason: String,
    },
    /// The entry has a password and passwords are off.
    #[error("roster entry {id} logs in with a password, and [ssh] allow_passwords is off")]
    PasswordsOff {
        /// The id.
        id: String,
    },
    /// No connection could be made.
    #[error("cannot reach {host} port {port}: {detail}")]
    Unreachable {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// What ssh said.
        detail: String,
    },
    /// The host refused the login.
    #[error("{user}@{host} refused the login: {detail}")]
    AuthRefused {
        /// User.
        user: String,
        /// Host.
        host: String,
        /// What ssh said.
        detail: String,
    },
    /// The host offered another key than the one pinned.
    #[error(
        "host key of {host} changed: pinned {pinned}, offered {offered}; nothing was run. \
         If the change is expected, run `cmdb ssh --accept-new-hostkey {id}`"
    )]
    HostKeyChanged {
        /// The roster id.
        id: String,
        /// Host as named in known_hosts.
        host: String,
        /// Fingerprint of the pinned key.
        pinned: String,
        /// Fingerprint of the key offered.
        offered: String,
    },
    /// The session outlived its timeout and was killed.
    #[error(
        "no answer within {secs} s (connecting, logging in or running the command); the session was killed"
    )]
    TimedOut {
        /// The timeout.
        secs: u64,
    },
    /// sudo wanted a password or was refused.
    #[error("sudo refused: {detail}")]
    Sudo {
        /// What sudo said.
        detail: String,
    },
    /// ssh failed for another reason.
    #[error("ssh failed: {detail}")]
    Failed {
        /// What ssh said.
        detail: String,
    },
    /// The host's answer to collect could not be read.
    #[error("{0}")]
    BadAnswer(String),
}

impl SshError {
    /// The retcode a return carries for this error: 124 for a timeout (as
    /// `cmd.run`'s), 255 (ssh's own) for the others.
    pub fn retcode(&self) -> i32 {
        match self {
            SshError::TimedOut { .. } => 124,
            _ => 255,
        }
    }
}
