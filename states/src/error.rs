//! The states crate's error type.

use thiserror::Error;

/// What can make a state run impossible before it starts.
#[derive(Debug, Error)]
pub enum StateError {
    /// A state file could not be read.
    #[error("{file}: {reason}")]
    Load {
        /// The state file (sls name).
        file: String,
        /// Why.
        reason: String,
    },
    /// A state file does not parse or is not shaped like one.
    #[error("{file}, line {line}: {reason}")]
    Syntax {
        /// The state file.
        file: String,
        /// 1-based line (0 when unknown).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A template could not be rendered (undefined variable, syntax,
    /// missing include), or its output still holds `{{`.
    #[error("{file}, line {line}: {reason}")]
    Render {
        /// The template's path relative to the file roots.
        file: String,
        /// 1-based line (0 when unknown).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A state declaration is wrong.
    #[error("{file}, line {line}, state {id:?}: {reason}")]
    Declaration {
        /// The state file.
        file: String,
        /// 1-based line of the state id.
        line: usize,
        /// The state id.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// A requisite names no state.
    #[error("{file}, line {line}, state {id:?}: requisite {requisite} {target} matches no state")]
    MissingRequisite {
        /// The state file.
        file: String,
        /// Line of the state.
        line: usize,
        /// The state id.
        id: String,
        /// The requisite kind.
        requisite: String,
        /// What it names.
        target: String,
    },
    /// The requisites form a cycle.
    #[error("requisites form a cycle: {0}")]
    Cycle(String),
}
