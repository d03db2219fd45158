//! The master library's error type.

use std::path::PathBuf;

use thiserror::Error;

/// What can stop the master or one of its operations.
#[derive(Debug, Error)]
pub enum MasterError {
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
    /// A socket could not be bound.
    #[error("cannot bind {addr}: {reason}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// A key operation failed.
    #[error(transparent)]
    Key(#[from] keys::KeyError),
    /// The store failed or refused an edit.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// A protocol rule was broken.
    #[error(transparent)]
    Protocol(#[from] protocol::ProtocolError),
    /// A web UI template compiled into the binary does not parse.
    #[error("web UI template {name}: {reason}")]
    Template {
        /// The template.
        name: String,
        /// What is wrong.
        reason: String,
    },
}
