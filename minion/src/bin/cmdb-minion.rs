//! `cmdb-minion`: the cmdb agent.
//!
//! `cmdb-minion -c FILE` runs the daemon; `cmdb-minion -c FILE collect
//! --stdout` prints this host's facts as JSON without a master;
//! `cmdb-minion call FUN [ARGS…] [--local]` runs one function here, as
//! `salt-call` does.
//! Exit codes: 0 after a clean shutdown, a printed collect or a call that
//! succeeded; 1 on an error or a failed call.

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
    /// Run one function on this host and print its return, as salt-call.
    Call {
        /// Read cmdb:// files and state files from the config's file_roots
        /// instead of the master's (no master is needed).
        #[arg(long)]
        local: bool,
        /// Seconds the function may run.
        #[arg(short = 't', long = "timeout", default_value_t = 600)]
        timeout: u64,
        /// Output format.
        #[arg(long, value_enum, default_value = "nested")]
        out: render::OutputFormat,
        /// Function, e.g. state.apply.
        fun: String,
        /// Arguments; NAME=VALUE is a keyword argument.
        #[arg(allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// `cmdb-minion call`: prints the return as `cmdb run` prints one minion's,
/// under the key `local`; true when the function succeeded.
fn call(
    cfg: MinionConfig,
    fun: &str,
    raw: &[String],
    local: bool,
    timeout: u64,
    out: render::OutputFormat,
) -> anyhow::Result<bool> {
    let (args, kwargs) = protocol::text::split_args(raw);
    let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
    let outcome = rt.block_on(minion::call(
        cfg,
        fun,
        &args,
        &kwargs,
        local,
        std::time::Duration::from_secs(timeout.max(1)),
    ))?;
    let mut text = if out == render::OutputFormat::Nested
        && fun.starts_with("state.")
        && fun != "state.show_sls"
    {
        render::highstate("local", &outcome.data)
    } else {
        let mut one = serde_json::Map::new();
        one.insert("local".into(), outcome.data);
        render::render(&one, out)
    };
    if outcome.retcode != 0 && out == render::OutputFormat::Nested {
        text.push_str(&format!("    retcode: {}\n", outcome.retcode));
    }
    print!("{text}");
    if outcome.retcode != 0 {
        eprintln!(
            "ERROR: the function returned a non-zero exit code: {}",
            outcome.retcode
        );
    }
    Ok(outcome.success)
}

fn start(cli: Cli) -> anyhow::Result<bool> {
    let cfg = MinionConfig::load(&cli.config)?;
    match cli.command {
        Some(Command::Call {
            local,
            timeout,
            out,
            fun,
            args,
        }) => call(cfg, &fun, &args, local, timeout, out),
        Some(Command::Collect { stdout }) => {
            if !stdout {
                anyhow::bail!("collect without a master needs --stdout");
            }
            let id = minion::identity::peek_id(&cfg);
            let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
            let facts = rt.block_on(facts::collect(&cfg.collect_settings(), &id));
            println!("{}", serde_json::to_string_pretty(&facts)?);
            Ok(true)
        }
        None => {
            daemon::init_logs(cli.log_format.unwrap_or(cfg.log_format));
            let rt = tokio::runtime::Runtime::new().context("starting the runtime")?;
            rt.block_on(minion::run(cfg, daemon::shutdown_signal()))?;
            Ok(true)
        }
    }
}

fn main() -> std::process::ExitCode {
    match start(Cli::parse()) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("cmdb-minion: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
