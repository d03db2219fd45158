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
use cli::run::{RunArgs, TargetKind, Via, jobs_list, jobs_show, run};
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
    /// Run a function over SSH on hosts of the master's roster (hosts
    /// without a minion): test.ping, collect, cmd.run, cmd.run_all. Output
    /// and exit codes are those of `cmdb run`.
    Ssh {
        /// Target is a regular expression matched at the start of the id.
        #[arg(short = 'E', long = "pcre", group = "kind")]
        regex: bool,
        /// Target is a comma-separated list of roster ids.
        #[arg(short = 'L', long = "list", group = "kind")]
        list: bool,
        /// Seconds each host's session may take, login included (default:
        /// the roster entry's timeout, else the master's `[ssh] timeout`).
        #[arg(short = 't', long = "timeout")]
        timeout: Option<u64>,
        /// Print the job id and exit without waiting.
        #[arg(long = "async")]
        asynchronous: bool,
        /// Output format.
        #[arg(long, value_enum, default_value = "nested")]
        out: OutputFormat,
        /// Forget the host key pinned for roster entry ID and pin the one
        /// it offers now (after a host was reinstalled).
        #[arg(long = "accept-new-hostkey", value_name = "ID", conflicts_with_all = ["target", "fun", "args"])]
        accept_new_hostkey: Option<String>,
        /// Target expression over roster ids.
        #[arg(required_unless_present = "accept_new_hostkey")]
        target: Option<String>,
        /// Function: test.ping, collect, cmd.run or cmd.run_all.
        #[arg(required_unless_present = "accept_new_hostkey")]
        fun: Option<String>,
        /// Arguments (the command of cmd.run, quoted as one word).
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
        /// From when: how far back (90s, 30m, 24h, 7d) or a time
        /// (2026-01-01 from the start of that day UTC, 2026-01-01T08:00:00Z).
        #[arg(long, default_value = "24h")]
        since: String,
        /// Only changes before this (a window back or a time); default: up to now.
        #[arg(long)]
        until: Option<String>,
        /// Only changes of the assets this query selects (as they are now),
        /// e.g. 'department = finance and kind = server'.
        #[arg(long = "where", value_name = "EXPR")]
        filter: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        out: ListFormat,
    },
    /// Reports over the inventory.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
}

#[derive(Subcommand)]
enum ReportCommand {
    /// The year-end audit: per department, business line or site, assets by
    /// kind and status, purchase cost, book value at year end (straight-line,
    /// monthly), depreciation in the year, assets bought and retired in the
    /// year, warranties ending the next year.
    Audit {
        /// The year.
        #[arg(long)]
        year: i32,
        /// Group by department, business_line or site.
        #[arg(long, default_value = "department")]
        group_by: String,
        /// Output format: table, json, csv or xlsx (xlsx needs -o).
        #[arg(long, value_enum, default_value = "table")]
        out: asset::ReportFormat,
        /// Write to this file instead of standard output.
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
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
        /// Only assets this query selects: comparisons on any path
        /// (facts.os = Debian, finance.warranty_end < 2027-01-01,
        /// facts.mem_total_bytes >= 64G, status in (active, maintenance),
        /// name ~ 'web*'), and/or/not, parentheses. A bare name is looked
        /// up under facts, then manual, then finance.
        #[arg(long = "where", value_name = "EXPR")]
        filter: Option<String>,
        /// The columns: paths as in --where (os,department,finance.purchase_cost);
        /// default: the listing's columns.
        #[arg(long, value_name = "F,…")]
        fields: Option<String>,
        /// At most this many assets.
        #[arg(long)]
        limit: Option<usize>,
        /// Every asset as it was at this time (2026-01-31 as that day
        /// closed UTC, 2026-01-31T14:00:00Z, unix milliseconds).
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
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
    /// Set fields, relations or the kind of an asset, in one versioned change.
    ///
    /// Manual fields: name, site, rack, rack_unit, owner, department,
    /// business_line, asset_tag, notes, serial and configured extras.
    /// Finance fields: vendor, purchase_date and warranty_end (YYYY-MM-DD),
    /// purchase_cost (e.g. 1234.50), currency (EUR), depreciation_years.
    /// Relations: runs_on=HOST, located_in=RACK, connected_to=SW1,SW2 (any
    /// reference to an asset). kind=KIND.
    Set {
        /// Asset id, minion id, serial, asset tag, name, IP or MAC address.
        id: String,
        /// name=value pairs; an empty value removes the field.
        #[arg(required = true)]
        fields: Vec<String>,
    },
    /// Enter an asset no minion reports: a switch, a PDU, a rack, a planned server.
    ///
    /// Kinds: server, vm, container_host, switch, router, firewall,
    /// load_balancer, storage, pdu, rack, site, patch_panel, other, and
    /// configured ones. Fields as for `asset set`, e.g.
    /// `cmdb asset add switch name=sw-core-1 serial=FOC1234 site=FRA1
    /// located_in=rack-12 purchase_cost=4200 purchase_date=2025-03-01`.
    Add {
        /// Its kind.
        kind: String,
        /// name=value pairs.
        fields: Vec<String>,
        /// Its status (default active; planned for one not delivered yet).
        #[arg(long)]
        status: Option<String>,
        /// Output format (nested: one line with its asset id).
        #[arg(long, value_enum, default_value = "nested")]
        out: OutputFormat,
    },
    /// Change the operator status (planned, active, maintenance, decommissioned).
    Status {
        /// Asset id, minion id, serial, asset tag, name, IP or MAC address.
        id: String,
        /// New status.
        status: String,
    },
    /// Import a spreadsheet (CSV, or XLSX by its .xlsx name), all or nothing.
    ///
    /// Each row is matched to an asset by its asset_id column, else serial,
    /// else minion; rows matching none become new assets (kind from a kind
    /// column, default server; status planned unless a status column says
    /// otherwise), claimed by the first minion that reports their serial.
    /// Columns: manual and finance fields, kind, status, relations; facts.*,
    /// presence, version and book_value (as exported) are read and ignored.
    /// An empty cell removes the field. Errors name the sheet, row and column.
    Import {
        /// The file.
        file: PathBuf,
        /// Only print what would change.
        #[arg(long)]
        dry_run: bool,
        /// Output format of the summary.
        #[arg(long, value_enum, default_value = "table")]
        out: ListFormat,
    },
    /// Write the assets as a spreadsheet: every manual, finance and relation
    /// column and chosen facts (it imports back).
    Export {
        /// The file format.
        #[arg(long, value_enum, default_value = "json")]
        format: ExportFormat,
        /// Only assets this query selects (as for asset list --where).
        #[arg(long = "where", value_name = "EXPR")]
        filter: Option<String>,
        /// Fact columns, comma-separated keys (default: host, fqdn, os, osrelease,
        /// manufacturer, productname, uuid, virtual, cpu_model, num_cpus,
        /// mem_total_bytes, ipv4).
        #[arg(long, value_name = "K,…")]
        facts: Option<String>,
        /// The assets as they were at this time.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Write to this file (needed for xlsx) instead of standard output.
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
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
        /// Give the user a password for the web UI: read from the terminal
        /// (asked twice), or when standard input is not a terminal, its
        /// first two lines (the password and the same again).
        #[arg(long)]
        password: bool,
    },
    /// Set a user's web UI password (admins: anyone's; others: their own),
    /// read as for `user add --password`.
    Passwd {
        /// The name.
        name: String,
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
                    via: Via::Minions,
                },
            )
        }
        Command::Ssh {
            regex,
            list,
            timeout,
            asynchronous,
            out,
            accept_new_hostkey,
            target,
            fun,
            args,
        } => match (accept_new_hostkey, target, fun) {
            (Some(id), ..) => cli::run::accept_new_hostkey(&socket, &id, out),
            (None, Some(target), Some(fun)) => run(
                &socket,
                RunArgs {
                    kind: match (regex, list) {
                        (true, _) => TargetKind::Regex,
                        (_, true) => TargetKind::List,
                        _ => TargetKind::Glob,
                    },
                    target,
                    fun,
                    args,
                    timeout: 5,
                    asynchronous,
                    batch: None,
                    batch_wait: None,
                    out,
                    via: Via::Ssh(timeout),
                },
            ),
            _ => Err(anyhow::anyhow!("cmdb ssh needs a target and a function")),
        },
        Command::Completions { shell, program } => completions(shell, program),
        Command::Manpages { dir } => manpages(&dir),
        Command::Events { tag, out } => cli::events::follow(&socket, tag.as_deref(), out),
        Command::Report {
            command:
                ReportCommand::Audit {
                    year,
                    group_by,
                    out,
                    output,
                },
        } => asset::audit(&socket, year, &group_by, out, output.as_deref()),
        Command::Changes {
            since,
            until,
            filter,
            out,
        } => asset::changes(&socket, &since, until.as_deref(), filter, out),
        Command::Asset { command } => run_asset(&socket, command),
        Command::User { command } => match command {
            UserCommand::Add {
                name,
                role,
                targets,
                functions,
                pubkey,
                password,
            } => user::add(&socket, name, role, targets, functions, pubkey, password),
            UserCommand::Passwd { name } => user::passwd(&socket, &name),
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
        AssetCommand::List {
            grain,
            sort,
            filter,
            fields,
            limit,
            at,
            out,
        } => asset::list(
            socket,
            asset::ListArgs {
                grain,
                sort,
                filter,
                fields,
                limit,
                at,
            },
            out,
        ),
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
                    fields,
                    status: None,
                    if_match: None,
                    user,
                },
            )?;
            asset::show_value(
                &serde_json::json!({
                    "asset_id": v["asset_id"],
                    "version": v["version"],
                    "manual": v["manual"],
                    "finance": v["finance"],
                    "relations": v["relations"],
                }),
                OutputFormat::Nested,
            );
            Ok(0)
        }
        AssetCommand::Add {
            kind,
            fields,
            status,
            out,
        } => {
            let fields = asset::parse_fields(&fields)?;
            let v = asset::ask(
                socket,
                AssetRequest::Add {
                    kind,
                    fields,
                    status,
                    user,
                },
            )?;
            match out {
                OutputFormat::Nested => println!(
                    "{} {}: {}",
                    v["kind"].as_str().unwrap_or_default(),
                    v["name"].as_str().unwrap_or("(unnamed)"),
                    v["asset_id"].as_str().unwrap_or_default()
                ),
                other => asset::show_value(&v, other),
            }
            Ok(0)
        }
        AssetCommand::Status { id, status } => {
            let v = asset::ask(
                socket,
                AssetRequest::Patch {
                    key: id,
                    fields: Default::default(),
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
        AssetCommand::Import { file, dry_run, out } => asset::import(socket, &file, dry_run, out),
        AssetCommand::Export {
            format,
            filter,
            facts,
            at,
            output,
        } => asset::export(socket, format, filter, facts, at, output.as_deref()),
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
