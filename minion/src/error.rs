//! The minion library's error type.

use std::path::PathBuf;

use thiserror::Error;

/// What can stop the minion or one of its operations.
#[derive(Debug, Error)]
pub enum MinionError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The config file is missing or wrong.
    #[error(transparent)]
    Config(#[from] daemon::ConfigError),
    /// A key problem.
    #[error(transparent)]
    Key(#[from] keys::KeyError),
    /// A protocol rule was broken.
    #[error(transparent)]
    Protocol(#[from] protocol::ProtocolError),
    /// The master's key differs from the pinned or configured one.
    #[error("master key fingerprint {got} does not match {expected}")]
    MasterKeyMismatch {
        /// Fingerprint presented.
        got: String,
        /// Fingerprint expected.
        expected: String,
    },
    /// The master could not be reached or did not answer.
    #[error("master unreachable: {0}")]
    Unreachable(String),
    /// The master refused a request.
    #[error("master refused the request ({kind:?}): {message}")]
    Refused {
        /// The kind of refusal.
        kind: protocol::ErrorKind,
        /// The master's words.
        message: String,
    },
}
