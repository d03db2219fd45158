//! `cmdb-key`: manage minion keys on the master (flags as `salt-key`):
//! through the master's API while it runs, on the pki directory while it
//! is stopped.
//!
//! Exit codes: 0 on success, 1 on an error.

use std::path::PathBuf;

use anyhow::Context;
use clap::{ArgGroup, Parser};
use cli::client::Endpoint;
use cli::key::{KeyAction, KeyBackend, KeyOptions, list_states, run};
use keys::PkiStore;
use master::MasterConfig;
use master::config::DEFAULT_CONFIG;

/// Manage minion keys on the master.
#[derive(Parser)]
#[command(version, about, group(ArgGroup::new("action").args([
    "list_all", "list", "accept", "accept_all", "reject", "reject_all",
    "delete", "delete_all", "print", "print_all", "finger", "finger_all",
])))]
struct Cli {
    /// Master config file.
    #[arg(short, long, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// List every key by state.
    #[arg(short = 'L', long = "list-all")]
    list_all: bool,
    /// List keys in one state: pre, acc, rej, den or all.
    #[arg(short = 'l', long = "list", value_name = "STATE")]
    list: Option<String>,
    /// Accept pending keys matching GLOB.
    #[arg(short = 'a', long = "accept", value_name = "GLOB")]
    accept: Option<String>,
    /// Accept every pending key.
    #[arg(short = 'A', long = "accept-all")]
    accept_all: bool,
    /// Reject pending keys matching GLOB.
    #[arg(short = 'r', long = "reject", value_name = "GLOB")]
    reject: Option<String>,
    /// Reject every pending key.
    #[arg(short = 'R', long = "reject-all")]
    reject_all: bool,
    /// Delete keys matching GLOB, in any state.
    #[arg(short = 'd', long = "delete", value_name = "GLOB")]
    delete: Option<String>,
    /// Delete every key.
    #[arg(short = 'D', long = "delete-all")]
    delete_all: bool,
    /// Print keys matching GLOB.
    #[arg(short = 'p', long = "print", value_name = "GLOB")]
    print: Option<String>,
    /// Print every key.
    #[arg(short = 'P', long = "print-all")]
    print_all: bool,
    /// Print fingerprints of keys matching GLOB.
    #[arg(short = 'f', long = "finger", value_name = "GLOB")]
    finger: Option<String>,
    /// Print every fingerprint, the master's included.
    #[arg(short = 'F', long = "finger-all")]
    finger_all: bool,
    /// Answer yes to every prompt.
    #[arg(short = 'y', long = "yes")]
    yes: bool,
    /// With accept: accept rejected keys too.
    #[arg(long)]
    include_rejected: bool,
    /// With accept: accept denied keys too.
    #[arg(long)]
    include_denied: bool,
    /// With reject: reject accepted keys too.
    #[arg(long)]
    include_accepted: bool,
    /// Output format: text (default) or json.
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    out: String,
}

fn action(cli: &Cli) -> anyhow::Result<KeyAction> {
    let all = || "*".to_string();
    Ok(if let Some(s) = &cli.list {
        KeyAction::List(list_states(s)?)
    } else if let Some(g) = &cli.accept {
        KeyAction::Accept(g.clone())
    } else if cli.accept_all {
        KeyAction::Accept(all())
    } else if let Some(g) = &cli.reject {
        KeyAction::Reject(g.clone())
    } else if cli.reject_all {
        KeyAction::Reject(all())
    } else if let Some(g) = &cli.delete {
        KeyAction::Delete(g.clone())
    } else if cli.delete_all {
        KeyAction::Delete(all())
    } else if let Some(g) = &cli.print {
        KeyAction::Print(g.clone())
    } else if cli.print_all {
        KeyAction::Print(all())
    } else if let Some(g) = &cli.finger {
        KeyAction::Finger(g.clone())
    } else if cli.finger_all {
        KeyAction::Finger(all())
    } else {
        KeyAction::List(list_states("all")?)
    })
}

fn start(cli: Cli) -> anyhow::Result<()> {
    let cfg = MasterConfig::load(&cli.config)?;
    let opts = KeyOptions {
        yes: cli.yes,
        include_rejected: cli.include_rejected,
        include_denied: cli.include_denied,
        include_accepted: cli.include_accepted,
        json: cli.out == "json",
    };
    let action = action(&cli)?;
    // Through the running master's API; on the files while it is stopped.
    let socket = cfg.api_socket();
    if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
        let api = Endpoint::Unix(socket);
        return run(&KeyBackend::Api(&api), &cfg.pki_dir(), action, opts);
    }
    let pki = PkiStore::open(cfg.pki_dir())
        .with_context(|| format!("opening {}", cfg.pki_dir().display()))?;
    run(&KeyBackend::Files(&pki), &cfg.pki_dir(), action, opts)
}

fn main() -> std::process::ExitCode {
    match start(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cmdb-key: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
