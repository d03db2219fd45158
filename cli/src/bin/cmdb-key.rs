//! `cmdb-key`: manage minion keys on the master (flags as `salt-key`):
//! through the master's API while it runs, on the pki directory while it
//! is stopped.
//!
//! Exit codes: 0 on success, 1 on an error.

use anyhow::Context;
use clap::Parser;
use cli::client::Endpoint;
use cli::key::{KeyAction, KeyBackend, KeyCli, KeyOptions, list_states, run};
use keys::PkiStore;
use master::MasterConfig;

fn action(cli: &KeyCli) -> anyhow::Result<KeyAction> {
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

fn start(cli: KeyCli) -> anyhow::Result<()> {
    let cfg = MasterConfig::load(&cli.config)?;
    let opts = KeyOptions {
        yes: cli.yes,
        include_rejected: cli.include_rejected,
        include_denied: cli.include_denied,
        include_accepted: cli.include_accepted,
        force: cli.force,
        out: cli.out,
    };
    let action = action(&cli)?;
    // Through the running master's API; on the files while it is stopped.
    let socket = cfg.api_socket();
    match std::os::unix::net::UnixStream::connect(&socket) {
        Ok(_) => {
            let api = Endpoint::Unix(socket);
            return run(&KeyBackend::Api(&api), &cfg.pki_dir(), action, opts);
        }
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) => {}
        Err(e) => anyhow::bail!(
            "{}: {e}; the master seems to run but its API cannot be reached, \
             so the keys are left alone",
            socket.display()
        ),
    }
    // A wrong state_dir must not become a new, empty key store.
    if !cfg.pki_dir().join("master.pub").is_file() {
        anyhow::bail!(
            "{}: no master key store here (state_dir {} in {}); is this the master's config?",
            cfg.pki_dir().display(),
            cfg.state_dir.display(),
            cli.config.display()
        );
    }
    let pki = PkiStore::open(cfg.pki_dir())
        .with_context(|| format!("opening {}", cfg.pki_dir().display()))?;
    // The keys themselves are where the master keeps them: the pki
    // directory, or the cluster's database.
    let keys = master::server::open_key_store(&cfg, pki)
        .with_context(|| format!("opening the key store of {}", cli.config.display()))?;
    run(
        &KeyBackend::Direct(keys.as_ref()),
        &cfg.pki_dir(),
        action,
        opts,
    )
}

fn main() -> std::process::ExitCode {
    match start(KeyCli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cmdb-key: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
