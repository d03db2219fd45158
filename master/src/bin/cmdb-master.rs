//! `cmdb-master`: the cmdb master daemon.
//!
//! Exit codes: 0 after a clean shutdown, 1 on a config or start-up error.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use master::MasterConfig;
use master::config::{DEFAULT_CONFIG, LogFormat};

// glibc's allocator spends much of a busy master's time in malloc/free
// under contention between workers; mimalloc does not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The cmdb master daemon.
#[derive(Parser)]
#[command(name = "cmdb-master", version, about)]
struct Cli {
    /// Config file.
    #[arg(short, long, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Log format (overrides the config file).
    #[arg(long)]
    log_format: Option<LogFormat>,
}

fn main() -> std::process::ExitCode {
    daemon::no_transparent_huge_pages();
    // Started by ssh as SSH_ASKPASS for a roster entry with `passwd`:
    // answer the prompt with the password the master handed over.
    if let Ok(password) = std::env::var(master::ssh::session::ASKPASS_ENV) {
        println!("{password}");
        return std::process::ExitCode::SUCCESS;
    }
    let cli = Cli::parse();
    match start(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cmdb-master: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn start(cli: Cli) -> anyhow::Result<()> {
    let cfg = MasterConfig::load(&cli.config)?;
    daemon::init_logs(cli.log_format.unwrap_or(cfg.log_format));
    let nofile = daemon::raise_nofile_limit();
    tracing::info!(nofile, "open file limit");
    let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
    rt.block_on(master::run(cfg, daemon::shutdown_signal()))?;
    Ok(())
}
