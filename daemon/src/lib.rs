//! What `cmdb-master` and `cmdb-minion` share as daemons: the log format and
//! subscriber, the shutdown signal, the open-file limit, and loading a TOML
//! config file with errors that name the file and the key.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use thiserror::Error;
use tracing_subscriber::EnvFilter;

/// How a daemon prints its logs (`log_format`, `--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A config file that could not be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file's content is wrong.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key (and the line, for syntax errors).
        reason: String,
    },
}

/// Parses TOML text into `T` (whose struct denies unknown fields, so an
/// unknown key is an error naming it); the error names the key and line.
pub fn parse_toml<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

/// Reads `path` and parses it with `parse` (which checks what TOML alone
/// cannot); either failure names the file.
pub fn load_config<T>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|reason| ConfigError::Invalid {
        path: path.to_owned(),
        reason,
    })
}

/// Checks a packaged config file (`dist/debian/*/…toml`): as shipped, and
/// with every commented-out setting (`#key = value`, `#[table]`) switched
/// on, it must parse to the defaults.
pub fn packaged_config_holds_defaults<T: Default + std::fmt::Debug>(
    shipped: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<(), String> {
    let uncommented = shipped
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_lowercase() || c == '[') => rest,
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    if shipped.trim_end() == uncommented {
        return Err("no commented-out defaults left".into());
    }
    let defaults = format!("{:#?}", T::default());
    for text in [shipped, uncommented.as_str()] {
        let cfg = format!("{:#?}", parse(text)?);
        if cfg != defaults {
            return Err(format!("parses to\n{cfg}\nnot to the defaults\n{defaults}"));
        }
    }
    Ok(())
}

/// Installs the tracing subscriber: `RUST_LOG` filters (default `info`),
/// lines go to stderr as text or JSON.
pub fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

/// Turns transparent huge pages off for this process (and what it starts).
/// mimalloc asks the kernel for huge pages on its arenas; a 2 MiB page is
/// then zeroed whole when first touched and counted whole in the resident
/// set, however little of it is in use, and freeing part of it splits it
/// again. For a daemon whose memory is many small, short-lived values this
/// cost a fleet collect more CPU in page zeroing than it saved in TLB misses
/// and raised its resident set (docs/scale.md). Call it first in `main`;
/// pages already faulted in stay as they are. Returns whether it took.
pub fn no_transparent_huge_pages() -> bool {
    nix::sys::prctl::set_thp_disable(true).is_ok()
}

/// Raises the soft open-file limit to the hard limit (a master holds two
/// connections per minion). Returns the limit now in force (0 if unknown).
pub fn raise_nofile_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            }
        }
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[allow(dead_code)]
        port: u16,
    }

    #[test]
    fn errors_name_the_file_and_the_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.toml");
        std::fs::write(&path, "prot = 1\n").expect("write");
        let err = load_config(&path, parse_toml::<Sample>).expect_err("unknown key");
        let text = err.to_string();
        assert!(text.contains("x.toml") && text.contains("prot"), "{text}");
        let err = load_config(&dir.path().join("missing.toml"), parse_toml::<Sample>)
            .expect_err("missing file");
        assert!(matches!(err, ConfigError::Io { .. }));
        assert_eq!(
            parse_toml::<LogFormatHolder>("f = \"json\"").map(|h| h.f),
            Ok(LogFormat::Json)
        );
    }

    #[test]
    fn an_unknown_log_format_is_an_error_naming_it_and_the_known_ones() {
        let err = parse_toml::<LogFormatHolder>("f = \"xml\"").expect_err("xml");
        assert!(
            err.contains("xml") && err.contains("text") && err.contains("json"),
            "{err}"
        );
    }

    #[derive(Debug, Deserialize)]
    struct LogFormatHolder {
        f: LogFormat,
    }
}
