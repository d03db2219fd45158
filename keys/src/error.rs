//! The keys crate's error type.

use std::path::PathBuf;

use thiserror::Error;

/// What can go wrong with keys and key files.
#[derive(Debug, Error)]
pub enum KeyError {
    /// Reading or writing a key file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A key file does not hold a valid key.
    #[error("{path}: not a valid ed25519 key file ({reason})")]
    BadKeyFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: &'static str,
    },
    /// A private key file can be read by other users.
    #[error("{path}: private key is readable by other users (mode {mode:o}); run chmod 600")]
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
    /// The system's random source failed.
    #[error("no randomness available: {0}")]
    Random(String),
    /// A minion id breaks the id rules.
    #[error(transparent)]
    InvalidId(#[from] protocol::ProtocolError),
    /// The database holding the keys failed or is unreachable.
    #[error("key store {location}: {reason}")]
    Store {
        /// The database, as shown (without a password).
        location: String,
        /// What failed.
        reason: String,
    },
    /// No key for that id in that state.
    #[error("no {state} key for minion {id}")]
    NoSuchKey {
        /// The minion id.
        id: String,
        /// The state searched.
        state: &'static str,
    },
}

pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}
