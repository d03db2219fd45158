//! `cmdb`: the operator CLI; a client of the running master's HTTP API on
//! its unix socket, or with `--url`/`--token` over HTTPS.
//!
//! Exit codes: 0 when every expected minion returned success; 1 when one
//! failed or did not return, nothing matched, or on an error; 2 when the
//! command line is wrong (an unknown flag, or a value such as `--out xml`
//! that the flag does not take: the message names it and the allowed ones).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use cli::asset::{self, ExportFormat, ListFormat};
use cli::client::{Credentials, Endpoint, known_masters_file};
use cli::output::OutputFormat;
use cli::run::{RunArgs, TargetKind, jobs_list, jobs_show, run};
use cli::user;
use master::MasterConfig;
use master::access::Role;
use master::config::DEFAULT_CONFIG;
use master::service::inventory::AssetRequest;

/// Operate a cmdb master: run jobs, read the inventory and the job cache,
/// follow events, manage API users and tokens.
#[derive(Parser)]
#[command(name = "cmdb", version, about)]
struct Cli {
    /// Master config file (for the API socket's path).
    #[arg(short, long, default_value = DEFAULT_CONFIG, global = true)]
    config: PathBuf,
    /// A remote master's API, https://host[:port] (default port 4507); its
    /// certificate is pinned on first use.
    #[arg(long, env = "CMDB_URL", global = true)]
    url: Option<String>,
    /// Bearer token for --url.
    #[arg(
        long,
        env = "CMDB_TOKEN",
        global = true,
        hide_env_values = true,
        conflicts_with = "key"
    )]
    token: Option<String>,
    /// OpenSSH ed25519 private key that signs every request to --url.
    #[arg(long, env = "CMDB_KEY", global = true)]
    key: Option<PathBuf>,
    /// The user whose key --key is (default: the login name).
    #[arg(long, env = "CMDB_USER", global = true)]
    user: Option<String>,
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
        /// Run on N minions at a time (N% of them with a percent sign); the
        /// next starts when one returns.
        #[arg(short = 'b', long = "batch", value_name = "N|N%")]
        batch: Option<String>,
        /// With --batch: seconds to wait after a return before the next
        /// minion starts.
        #[arg(long = "batch-wait", value_name = "SECS", requires = "batch")]
        batch_wait: Option<f64>,
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
    /// Users of the API (admins only).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Bearer tokens of the API (admins only).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The asset inventory.
    Asset {
        #[command(subcommand)]
        command: AssetCommand,
    },
    /// Print shell completions to standard output
    /// (`cmdb completions bash > /etc/bash_completion.d/cmdb`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
        /// The program to complete.
        #[arg(long, value_enum, default_value = "cmdb")]
        program: Program,
    },
    /// Write the man pages of cmdb, each of its commands and cmdb-key into
    /// DIR (cmdb.1, cmdb-run.1, …, cmdb-key.1).
    Manpages {
        /// The directory (made if missing).
        dir: PathBuf,
    },
    /// Follow the master's events (jobs, returns, auth, keys, presence,
    /// asset changes) until it stops; Ctrl-C to end.
    Events {
        /// Only tags matching this glob, e.g. 'cmdb/job/*' or 'cmdb/presence/*'.
        #[arg(long)]
        tag: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "text")]
        out: cli::events::EventFormat,
    },
    /// Every field that changed across the fleet in a time window.
    Changes {
        /// How far back: 90s, 30m, 24h, 7d.
        #[arg(long, default_value = "24h")]
        since: String,
        /// Only changes older than this (same units); default: up to now.
        #[arg(long)]
        until: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        out: ListFormat,
    },
}

#[derive(Subcommand)]
enum AssetCommand {
    /// Every asset, one line each (by asset id, or as --sort asks).
    List {
        /// Only assets whose facts match this grain expression (key:value).
        #[arg(short = 'G', long = "grain")]
        grain: Option<String>,
        /// Order by a column or a dotted path into the asset; a leading -
        /// sorts descending.
        ///
        /// Columns: asset_id (or id), minion, host, os, release, serial,
        /// status, presence, site, rack (any case). Paths: facts.KEY…,
        /// manual.KEY, version, created_ms, last_collect_ms, e.g.
        /// facts.mem_total_bytes or manual.owner. Descending: --sort=-os or
        /// --sort -facts.num_cpus. Numbers sort by value, text naturally
        /// (web2 before web10), assets without the value come last either
        /// way, ties by asset id.
        #[arg(long, value_name = "FIELD", allow_hyphen_values = true)]
        sort: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        out: ListFormat,
    },
    /// One asset, at its latest or an earlier version or time.
    Show {
        /// Asset id, minion id, serial, asset tag, name, IP or MAC address.
        id: String,
        /// Rebuild this version.
        #[arg(long, conflicts_with = "at")]
        version: Option<u64>,
        /// Rebuild it as it was at this time: 2026-01-31 (as that day
        /// closed, UTC), 2026-01-31T14:00:00Z, or unix milliseconds.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "nested")]
        out: OutputFormat,
    },
    /// An asset's change history.
    History {
        /// Asset id, minion id, serial, asset tag, name, IP or MAC address.
        id: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "nested")]
        out: OutputFormat,
    },
    /// Field differences between two versions (default: the last change).
    Diff {
        /// Asset id, minion id, serial, asset tag, name, IP or MAC address.
        id: String,
        /// From this version.
        #[arg(long)]
        from: Option<u64>,
        /// To this version.
        #[arg(long)]
        to: Option<u64>,
        /// Output format.
        #[arg(long, value_enum, default_value = "nested")]
        out: OutputFormat,
    },
    /// Set manual fields: site, rack, rack_unit, owner, business_line, notes, asset_tag.
    Set {
        /// Asset id, minion id, serial, asset tag, name, IP or MAC address.
        id: String,
        /// key=value pairs; an empty value removes the field.
        #[arg(required = true)]
        fields: Vec<String>,
    },
    /// Change the operator status (planned, active, maintenance, decommissioned).
    Status {
        /// Asset id, minion id, serial, asset tag, name, IP or MAC address.
        id: String,
        /// New status.
        status: String,
    },
    /// Import a CSV purchase list (header with a serial column); all or nothing.
    Import {
        /// The CSV file.
        file: PathBuf,
    },
    /// Print every asset.
    Export {
        /// The file format.
        #[arg(long, value_enum, default_value = "json")]
        format: ExportFormat,
    },
    /// Assets that share a system serial number.
    Dups {
        /// Output format.
        #[arg(long, value_enum, default_value = "nested")]
        out: OutputFormat,
    },
}

/// A program of this package.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Program {
    /// The operator CLI.
    Cmdb,
    /// The key tool.
    CmdbKey,
}

fn completions(shell: clap_complete::Shell, program: Program) -> anyhow::Result<u8> {
    use clap::CommandFactory;
    use std::io::Write;
    let (mut cmd, name) = match program {
        Program::Cmdb => (Cli::command(), "cmdb"),
        Program::CmdbKey => (cli::key::KeyCli::command(), "cmdb-key"),
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    match std::io::stdout().write_all(&script) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(0),
    }
}

fn manpages(dir: &std::path::Path) -> anyhow::Result<u8> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for cmd in [Cli::command(), cli::key::KeyCli::command()] {
        clap_mangen::generate_to(cmd, dir)
            .with_context(|| format!("writing man pages into {}", dir.display()))?;
    }
    let mut written: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".1"))
        .collect();
    written.sort();
    println!(
        "wrote {} man pages into {}: {}",
        written.len(),
        dir.display(),
        written.join(" ")
    );
    Ok(0)
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user.
    Add {
        /// The name.
        name: String,
        /// What the user may do.
        #[arg(long, value_enum)]
        role: Role,
        /// Operators: globs of minion ids they may target, comma-separated.
        #[arg(long, value_delimiter = ',')]
        targets: Vec<String>,
        /// Operators: globs of functions they may run, comma-separated.
        #[arg(long, value_delimiter = ',')]
        functions: Vec<String>,
        /// The user's OpenSSH ed25519 public key, to sign requests with
        /// (`cmdb --key`): a file, or the `ssh-ed25519 AAAA…` line itself.
        #[arg(long)]
        pubkey: Option<String>,
    },
    /// Every user.
    List {
        /// Output format.
        #[arg(long, value_enum, default_value = "nested")]
        out: OutputFormat,
    },
    /// Remove a user and its tokens.
    Remove {
        /// The name.
        name: String,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a bearer token for a user; printed once, alone on the last line.
    Create {
        /// The user.
        user: String,
        /// Lifetime: 90d, 12h, 30m, 45s (default: never expires).
        #[arg(long, value_parser = cli::user::parse_duration)]
        expires: Option<u64>,
    },
    /// Every token (never the secrets).
    List {
        /// Output format.
        #[arg(long, value_enum, default_value = "nested")]
        out: OutputFormat,
    },
    /// Revoke a token by id.
    Revoke {
        /// The token's id.
        id: String,
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
    /// Jobs still running on a minion, just published, or with batch
    /// minions still to start.
    Active {
        /// Output format.
        #[arg(long, value_enum, default_value = "nested")]
        out: OutputFormat,
    },
    /// Kill a running job on every minion still running it (each kills the
    /// job's process group; the job returns that it was killed).
    Kill {
        /// The job id.
        jid: String,
        /// Output format.
        #[arg(long, value_enum, default_value = "nested")]
        out: OutputFormat,
    },
}

fn start(cli: Cli) -> anyhow::Result<u8> {
    let socket = match &cli.url {
        Some(url) => {
            let auth = match (&cli.token, &cli.key) {
                (Some(t), _) => Credentials::Bearer(t.clone()),
                (None, Some(path)) => Credentials::Signed {
                    user: cli.user.clone().unwrap_or_else(cli::current_user),
                    key: Box::new(keys::openssh::read_private(path)?),
                },
                (None, None) => Credentials::None,
            };
            Endpoint::https(url, auth, known_masters_file()).map_err(anyhow::Error::msg)?
        }
        // Completions and man pages need no master.
        None if matches!(
            cli.command,
            Command::Completions { .. } | Command::Manpages { .. }
        ) =>
        {
            Endpoint::Unix(PathBuf::new())
        }
        None => Endpoint::Unix(MasterConfig::load(&cli.config)?.api_socket()),
    };
    match cli.command {
        Command::Run {
            regex,
            list,
            grain,
            compound,
            timeout,
            asynchronous,
            batch,
            batch_wait,
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
                    batch,
                    batch_wait,
                    out,
                },
            )
        }
        Command::Completions { shell, program } => completions(shell, program),
        Command::Manpages { dir } => manpages(&dir),
        Command::Events { tag, out } => cli::events::follow(&socket, tag.as_deref(), out),
        Command::Changes { since, until, out } => {
            asset::changes(&socket, &since, until.as_deref(), out)
        }
        Command::Asset { command } => run_asset(&socket, command),
        Command::User { command } => match command {
            UserCommand::Add {
                name,
                role,
                targets,
                functions,
                pubkey,
            } => user::add(&socket, name, role, targets, functions, pubkey),
            UserCommand::List { out } => user::list(&socket, out),
            UserCommand::Remove { name } => user::remove(&socket, &name),
        },
        Command::Token { command } => match command {
            TokenCommand::Create {
                user: name,
                expires,
            } => user::create(&socket, name, expires),
            TokenCommand::List { out } => user::tokens(&socket, out),
            TokenCommand::Revoke { id } => user::revoke(&socket, &id),
        },
        Command::Jobs { command } => match command {
            JobsCommand::List { limit, out } => jobs_list(&socket, limit, out),
            JobsCommand::Show { jid, out } => jobs_show(&socket, &jid, out),
            JobsCommand::Active { out } => cli::run::jobs_active(&socket, out),
            JobsCommand::Kill { jid, out } => cli::run::jobs_kill(&socket, &jid, out),
        },
    }
}

fn run_asset(socket: &cli::client::Endpoint, command: AssetCommand) -> anyhow::Result<u8> {
    let user = cli::current_user();
    match command {
        AssetCommand::List { grain, sort, out } => asset::list(socket, grain, sort, out),
        AssetCommand::Show {
            id,
            version,
            at,
            out,
        } => asset::show(socket, id, version, at, out),
        AssetCommand::History { id, out } => asset::history(socket, id, out),
        AssetCommand::Diff { id, from, to, out } => asset::diff(socket, id, from, to, out),
        AssetCommand::Set { id, fields } => {
            let fields = asset::parse_fields(&fields)?;
            let v = asset::ask(
                socket,
                AssetRequest::Patch {
                    key: id,
                    manual: fields,
                    status: None,
                    if_match: None,
                    user,
                },
            )?;
            asset::show_value(
                &serde_json::json!({"manual": v["manual"]}),
                OutputFormat::Nested,
            );
            Ok(0)
        }
        AssetCommand::Status { id, status } => {
            let v = asset::ask(
                socket,
                AssetRequest::Patch {
                    key: id,
                    manual: Default::default(),
                    status: Some(status),
                    if_match: None,
                    user,
                },
            )?;
            println!(
                "{}: {}",
                v["asset_id"].as_str().unwrap_or_default(),
                v["status"].as_str().unwrap_or_default()
            );
            Ok(0)
        }
        AssetCommand::Import { file } => {
            let csv = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let v = asset::ask(socket, AssetRequest::Import { csv, user })?;
            println!(
                "imported {} rows: {} matched existing assets, {} new planned assets",
                v["rows"], v["matched"], v["created"]
            );
            Ok(0)
        }
        AssetCommand::Export { format } => asset::export(socket, format),
        AssetCommand::Dups { out } => asset::dups(socket, out),
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
