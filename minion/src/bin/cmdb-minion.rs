//! `cmdb-minion`: the cmdb agent.
//!
//! `cmdb-minion -c FILE` runs the daemon; `cmdb-minion -c FILE collect
//! --stdout` prints this host's facts as JSON without a master.
//! Exit codes: 0 after a clean shutdown or a printed collect, 1 on an error.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use minion::MinionConfig;
use minion::config::{DEFAULT_CONFIG, LogFormat};

/// The cmdb minion agent.
#[derive(Parser)]
#[command(name = "cmdb-minion", version, about)]
struct Cli {
    /// Config file.
    #[arg(short, long, default_value = DEFAULT_CONFIG, global = true)]
    config: PathBuf,
    /// Log format (overrides the config file).
    #[arg(long, global = true)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Collect this host's asset facts once.
    Collect {
        /// Print them as JSON on stdout.
        #[arg(long)]
        stdout: bool,
    },
}

fn start(cli: Cli) -> anyhow::Result<()> {
    let cfg = MinionConfig::load(&cli.config)?;
    match cli.command {
        Some(Command::Collect { stdout }) => {
            if !stdout {
                anyhow::bail!("collect without a master needs --stdout");
            }
            let id = minion::identity::peek_id(&cfg);
            let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
            let facts = rt.block_on(minion::collectors::collect(&cfg.collect_settings(), &id));
            println!("{}", serde_json::to_string_pretty(&facts)?);
            Ok(())
        }
        None => {
            daemon::init_logs(cli.log_format.unwrap_or(cfg.log_format));
            let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
            rt.block_on(minion::run(cfg, daemon::shutdown_signal()))?;
            Ok(())
        }
    }
}

fn main() -> std::process::ExitCode {
    match start(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cmdb-minion: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
