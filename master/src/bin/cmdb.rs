//! `cmdb`: the operator CLI; talks to the running master over its control
//! socket.
//!
//! Exit codes: 0 when every expected minion returned success; 1 when one
//! failed or did not return, nothing matched, or on an error.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use master::MasterConfig;
use master::cli::run::{RunArgs, TargetKind, jobs_list, jobs_show, run};
use master::config::DEFAULT_CONFIG;
use master::output::OutputFormat;

/// Operate a cmdb master: run jobs, read the job cache.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Master config file (for the control socket's path).
    #[arg(short, long, default_value = DEFAULT_CONFIG, global = true)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Publish a job to the minions a target selects and print their returns.
    Run {
        /// Target is a regular expression matched at the start of the id.
        #[arg(short = 'E', long = "pcre", group = "kind")]
        regex: bool,
        /// Target is a comma-separated list of ids.
        #[arg(short = 'L', long = "list", group = "kind")]
        list: bool,
        /// Target is a grain expression key:value.
        #[arg(short = 'G', long = "grain", group = "kind")]
        grain: bool,
        /// Target is a compound expression.
        #[arg(short = 'C', long = "compound", group = "kind")]
        compound: bool,
        /// Seconds to wait for returns (longer while minions report the job running).
        #[arg(short = 't', long = "timeout", default_value_t = 5)]
        timeout: u64,
        /// Print the job id and exit without waiting.
        #[arg(long = "async")]
        asynchronous: bool,
        /// Output format.
        #[arg(long, value_enum, default_value = "nested")]
        out: OutputFormat,
        /// Target expression.
        target: String,
        /// Function, e.g. test.ping.
        fun: String,
        /// Arguments; NAME=VALUE is a keyword argument.
        args: Vec<String>,
    },
    /// The job cache.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
}

#[derive(Subcommand)]
enum JobsCommand {
    /// The newest jobs.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Output format.
        #[arg(long, value_enum, default_value = "nested")]
        out: OutputFormat,
    },
    /// One job with its returns.
    Show {
        /// The job id.
        jid: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "nested")]
        out: OutputFormat,
    },
}

fn start(cli: Cli) -> anyhow::Result<u8> {
    let cfg = MasterConfig::load(&cli.config)?;
    let socket = cfg.control_socket();
    match cli.command {
        Command::Run {
            regex,
            list,
            grain,
            compound,
            timeout,
            asynchronous,
            out,
            target,
            fun,
            args,
        } => {
            let kind = match (regex, list, grain, compound) {
                (true, ..) => TargetKind::Regex,
                (_, true, ..) => TargetKind::List,
                (_, _, true, _) => TargetKind::Grain,
                (.., true) => TargetKind::Compound,
                _ => TargetKind::Glob,
            };
            run(
                &socket,
                RunArgs {
                    kind,
                    target,
                    fun,
                    args,
                    timeout,
                    asynchronous,
                    out,
                },
            )
        }
        Command::Jobs { command } => match command {
            JobsCommand::List { limit, out } => jobs_list(&socket, limit, out),
            JobsCommand::Show { jid, out } => jobs_show(&socket, &jid, out),
        },
    }
}

fn main() -> std::process::ExitCode {
    match start(Cli::parse()) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("cmdb: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
