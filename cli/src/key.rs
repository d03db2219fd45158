//! `cmdb-key`: key management with `salt-key`'s flags. While the master
//! runs it goes through the master's API (so each change is logged, shows
//! on the event bus and is recorded with its user); while the master is
//! stopped it works on the pki directory itself.
//!
//! Exit codes: 0 on success (including "no keys matched"), 1 on an error.

use std::io::{BufRead, Write};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::Context;
use hyper::Method;
use keys::{KeyListing, KeyState, KeyStore};
use master::config::DEFAULT_CONFIG;
use master::service::keys::{self as key_service, KeyView};
use protocol::MinionId;
use protocol::fnmatch::fnmatch;

use crate::client::{Endpoint, segment};
use crate::output::Table;

/// Where `cmdb-key` works.
pub enum KeyBackend<'a> {
    /// The running master's API.
    Api(&'a Endpoint),
    /// The key store itself (the master is stopped): the pki directory,
    /// or the database of a master cluster.
    Direct(&'a dyn KeyStore),
}

fn state_of(name: &str) -> Option<KeyState> {
    KeyState::ALL
        .into_iter()
        .find(|s| s.dir().trim_end_matches('/') == name)
}

impl KeyBackend<'_> {
    fn records(&self) -> anyhow::Result<Vec<KeyView>> {
        match self {
            KeyBackend::Api(api) => crate::all(api, "/v1/keys", &[("limit", Some("1000".into()))]),
            KeyBackend::Direct(pki) => Ok(key_service::list(*pki)?),
        }
    }

    fn listing(records: &[KeyView]) -> KeyListing {
        let mut listing = KeyListing::default();
        for r in records {
            let list = match state_of(&r.state) {
                Some(KeyState::Accepted) => &mut listing.accepted,
                Some(KeyState::Pending) => &mut listing.pending,
                Some(KeyState::Rejected) => &mut listing.rejected,
                Some(KeyState::Denied) => &mut listing.denied,
                None => continue,
            };
            list.push(r.id.clone());
        }
        listing
    }

    /// Accepts the key of `id` in `from`; with `force`, a denied key
    /// replaces the accepted one.
    fn accept(&self, id: &MinionId, from: KeyState, force: bool) -> anyhow::Result<()> {
        let widen = key_service::Widen {
            include_rejected: from == KeyState::Rejected,
            include_denied: from == KeyState::Denied,
            include_accepted: false,
            force,
        };
        match self {
            KeyBackend::Api(api) => {
                let uri = format!(
                    "/v1/keys/{}/accept?include_rejected={}&include_denied={}&force={}",
                    segment(id.as_str()),
                    widen.include_rejected,
                    widen.include_denied,
                    widen.force
                );
                let _: KeyView = crate::call(api, Method::POST, &uri, None::<&()>)?;
            }
            KeyBackend::Direct(pki) => {
                key_service::accept(*pki, id.as_str(), widen)?;
            }
        }
        Ok(())
    }

    fn reject(&self, id: &MinionId, from: KeyState) -> anyhow::Result<()> {
        match self {
            KeyBackend::Api(api) => {
                let uri = format!(
                    "/v1/keys/{}/reject?include_accepted={}",
                    segment(id.as_str()),
                    from == KeyState::Accepted
                );
                let _: KeyView = crate::call(api, Method::POST, &uri, None::<&()>)?;
            }
            KeyBackend::Direct(pki) => pki.move_key(id, from, KeyState::Rejected)?,
        }
        Ok(())
    }

    /// Deletes the key of `id` in `state`; through the API every key of
    /// `id` goes at once, so later states of a deleted id are skipped.
    fn delete(
        &self,
        id: &MinionId,
        state: KeyState,
        done: &mut BTreeSet<String>,
    ) -> anyhow::Result<()> {
        match self {
            KeyBackend::Api(api) => {
                if done.insert(id.to_string()) {
                    let uri = format!("/v1/keys/{}", segment(id.as_str()));
                    let _: Vec<KeyView> = crate::call(api, Method::DELETE, &uri, None::<&()>)?;
                }
            }
            KeyBackend::Direct(pki) => pki.delete(id, state)?,
        }
        Ok(())
    }
}

/// Manage minion keys on the master.
#[derive(clap::Parser)]
#[command(name = "cmdb-key", version, about, group(clap::ArgGroup::new("action").args([
    "list_all", "list", "accept", "accept_all", "reject", "reject_all",
    "delete", "delete_all", "print", "print_all", "finger", "finger_all",
])))]
pub struct KeyCli {
    /// Master config file.
    #[arg(short, long, default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// List every key by state.
    #[arg(short = 'L', long = "list-all")]
    pub list_all: bool,
    /// List keys in one state: pre, acc, rej, den or all.
    #[arg(short = 'l', long = "list", value_name = "STATE")]
    pub list: Option<String>,
    /// Accept pending keys matching GLOB.
    #[arg(short = 'a', long = "accept", value_name = "GLOB")]
    pub accept: Option<String>,
    /// Accept every pending key.
    #[arg(short = 'A', long = "accept-all")]
    pub accept_all: bool,
    /// Reject pending keys matching GLOB.
    #[arg(short = 'r', long = "reject", value_name = "GLOB")]
    pub reject: Option<String>,
    /// Reject every pending key.
    #[arg(short = 'R', long = "reject-all")]
    pub reject_all: bool,
    /// Delete keys matching GLOB, in any state.
    #[arg(short = 'd', long = "delete", value_name = "GLOB")]
    pub delete: Option<String>,
    /// Delete every key.
    #[arg(short = 'D', long = "delete-all")]
    pub delete_all: bool,
    /// Print keys matching GLOB.
    #[arg(short = 'p', long = "print", value_name = "GLOB")]
    pub print: Option<String>,
    /// Print every key.
    #[arg(short = 'P', long = "print-all")]
    pub print_all: bool,
    /// Print fingerprints of keys matching GLOB.
    #[arg(short = 'f', long = "finger", value_name = "GLOB")]
    pub finger: Option<String>,
    /// Print every fingerprint, the master's included.
    #[arg(short = 'F', long = "finger-all")]
    pub finger_all: bool,
    /// Answer yes to every prompt.
    #[arg(short = 'y', long = "yes")]
    pub yes: bool,
    /// With accept: accept rejected keys too.
    #[arg(long)]
    pub include_rejected: bool,
    /// With accept: accept denied keys too.
    #[arg(long)]
    pub include_denied: bool,
    /// With reject: reject accepted keys too.
    #[arg(long)]
    pub include_accepted: bool,
    /// With accept and --include-denied: replace an accepted key with the
    /// denied key of the same id (both fingerprints are printed).
    #[arg(long)]
    pub force: bool,
    /// Output format.
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "text")]
    pub out: KeyFormat,
}

/// How `cmdb-key` prints.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyFormat {
    /// As salt-key: a heading per state, then its ids.
    #[default]
    Text,
    /// JSON, as salt-key's `--out json`.
    Json,
    /// Aligned columns: STATE and MINION (and FINGERPRINT or PUBLIC_KEY
    /// with -f/-p; after an accept, reject or delete, each key's new state).
    Table,
}

/// What `cmdb-key` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyAction {
    /// List keys in some states.
    List(Vec<KeyState>),
    /// Accept keys matching a glob.
    Accept(String),
    /// Reject keys matching a glob.
    Reject(String),
    /// Delete keys matching a glob.
    Delete(String),
    /// Print keys matching a glob.
    Print(String),
    /// Print fingerprints of keys matching a glob (and the master's own).
    Finger(String),
}

/// Options that widen or confirm an action.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyOptions {
    /// Answer yes to the prompt.
    pub yes: bool,
    /// Accept also rejected keys.
    pub include_rejected: bool,
    /// Accept also denied keys.
    pub include_denied: bool,
    /// Reject also accepted keys.
    pub include_accepted: bool,
    /// Let a denied key replace an accepted one.
    pub force: bool,
    /// How to print.
    pub out: KeyFormat,
}

fn heading(state: KeyState) -> &'static str {
    match state {
        KeyState::Accepted => "Accepted Keys:",
        KeyState::Denied => "Denied Keys:",
        KeyState::Pending => "Unaccepted Keys:",
        KeyState::Rejected => "Rejected Keys:",
    }
}

/// A state as the STATE column and the API name it.
fn state_name(state: KeyState) -> &'static str {
    state.dir().trim_end_matches('/')
}

fn json_name(state: KeyState) -> &'static str {
    match state {
        KeyState::Accepted => "minions",
        KeyState::Denied => "minions_denied",
        KeyState::Pending => "minions_pre",
        KeyState::Rejected => "minions_rejected",
    }
}

/// Parses `-l`'s argument.
pub fn list_states(arg: &str) -> anyhow::Result<Vec<KeyState>> {
    Ok(match arg {
        "pre" | "un" | "unaccepted" | "pending" => vec![KeyState::Pending],
        "acc" | "accepted" => vec![KeyState::Accepted],
        "rej" | "rejected" => vec![KeyState::Rejected],
        "den" | "denied" => vec![KeyState::Denied],
        "all" => KeyState::ALL.to_vec(),
        other => anyhow::bail!("unknown key state {other:?}: use pre, acc, rej, den or all"),
    })
}

fn matching(listing: &KeyListing, states: &[KeyState], glob: &str) -> Vec<(KeyState, String)> {
    let mut out = Vec::new();
    for &s in states {
        for id in listing.ids(s) {
            if fnmatch(id, glob) {
                out.push((s, id.clone()));
            }
        }
    }
    out
}

fn confirm(what: &str, keys: &[(KeyState, String)], default_yes: bool, opts: KeyOptions) -> bool {
    if opts.yes {
        return true;
    }
    println!("The following keys are going to be {what}:");
    let mut shown = None;
    for (s, id) in keys {
        if shown != Some(*s) {
            println!("{}", heading(*s));
            shown = Some(*s);
        }
        println!("{id}");
    }
    print!("Proceed? {} ", if default_yes { "[n/Y]" } else { "[N/y]" });
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    match answer.trim().to_ascii_lowercase().as_str() {
        "" => default_yes,
        a => a.starts_with('y'),
    }
}

/// Runs one `cmdb-key` action; `pki_dir` holds the master's own key.
pub fn run(
    backend: &KeyBackend,
    pki_dir: &Path,
    action: KeyAction,
    opts: KeyOptions,
) -> anyhow::Result<()> {
    let records = backend.records().context("listing keys")?;
    let listing = KeyBackend::listing(&records);
    match action {
        KeyAction::List(states) => print_listing(&listing, &states, opts.out),
        KeyAction::Accept(glob) => {
            let mut from = vec![KeyState::Pending];
            if opts.include_rejected {
                from.push(KeyState::Rejected);
            }
            if opts.include_denied {
                from.push(KeyState::Denied);
            }
            let keys = matching(&listing, &from, &glob);
            if keys.is_empty() {
                return done(opts, "accepted", &[], || {
                    println!("The key glob '{glob}' does not match any unaccepted keys.");
                });
            }
            // A denied key of an id that has an accepted key is an impostor
            // until the operator says otherwise.
            let fingerprint = |id: &str, state: KeyState| {
                let name = state.dir().trim_end_matches('/');
                records
                    .iter()
                    .find(|r| r.id == id && r.state == name)
                    .and_then(|r| r.fingerprint.clone())
                    .unwrap_or_default()
            };
            let replaces = |s: KeyState, id: &str| {
                s == KeyState::Denied && listing.ids(KeyState::Accepted).iter().any(|a| a == id)
            };
            let mut refused = Vec::new();
            for (s, id) in &keys {
                if replaces(*s, id) {
                    let (old, new) = (
                        fingerprint(id, KeyState::Accepted),
                        fingerprint(id, KeyState::Denied),
                    );
                    if opts.force {
                        eprintln!(
                            "Replacing the accepted key of {id} ({old}) with its denied key ({new})."
                        );
                    } else {
                        refused.push(format!(
                            "{id} already has an accepted key ({old}); its denied key is {new}; \
                             add --force to replace the accepted key"
                        ));
                    }
                }
            }
            if !refused.is_empty() {
                anyhow::bail!("{}", refused.join("\n"));
            }
            let mut accepted = Vec::new();
            if confirm("accepted", &keys, true, opts) {
                for (s, id) in keys {
                    backend.accept(&MinionId::new(id.as_str())?, s, opts.force)?;
                    if opts.out == KeyFormat::Text {
                        println!("Key for minion {id} accepted.");
                    }
                    accepted.push(id);
                }
            }
            done(opts, "accepted", &accepted, || {})
        }
        KeyAction::Reject(glob) => {
            let mut from = vec![KeyState::Pending];
            if opts.include_accepted {
                from.push(KeyState::Accepted);
            }
            let keys = matching(&listing, &from, &glob);
            if keys.is_empty() {
                return done(opts, "rejected", &[], || {
                    println!("The key glob '{glob}' does not match any unaccepted keys.");
                });
            }
            let mut rejected = Vec::new();
            if confirm("rejected", &keys, false, opts) {
                for (s, id) in keys {
                    backend.reject(&MinionId::new(id.as_str())?, s)?;
                    if opts.out == KeyFormat::Text {
                        println!("Key for minion {id} rejected.");
                    }
                    rejected.push(id);
                }
            }
            done(opts, "rejected", &rejected, || {})
        }
        KeyAction::Delete(glob) => {
            let keys = matching(&listing, &KeyState::ALL, &glob);
            if keys.is_empty() {
                return done(opts, "deleted", &[], || {
                    println!("The key glob '{glob}' does not match any keys.");
                });
            }
            let mut deleted = Vec::new();
            if confirm("deleted", &keys, false, opts) {
                let mut gone = BTreeSet::new();
                for (s, id) in keys {
                    backend.delete(&MinionId::new(id.as_str())?, s, &mut gone)?;
                    if opts.out == KeyFormat::Text {
                        println!("Key for minion {id} deleted.");
                    }
                    deleted.push(id);
                }
            }
            done(opts, "deleted", &deleted, || {})
        }
        KeyAction::Print(glob) => print_keys(&records, pki_dir, &glob, false, opts.out),
        KeyAction::Finger(glob) => print_keys(&records, pki_dir, &glob, true, opts.out),
    }
}

/// Ends an accept, reject or delete: with `--out json`, `{what: [ids]}`;
/// with `--out table`, STATE (`what`) and MINION rows (ids listed once);
/// else `text` prints whatever is left to say.
fn done(opts: KeyOptions, what: &str, ids: &[String], text: impl FnOnce()) -> anyhow::Result<()> {
    let ids: BTreeSet<&String> = ids.iter().collect();
    match opts.out {
        KeyFormat::Json => println!("{}", serde_json::json!({ what: ids })),
        KeyFormat::Table => {
            let mut table = Table::new(&["STATE", "MINION"]);
            for id in ids {
                table.push(vec![what.to_owned(), id.clone()]);
            }
            print!("{}", table.render());
        }
        KeyFormat::Text => text(),
    }
    Ok(())
}

fn print_listing(listing: &KeyListing, states: &[KeyState], out: KeyFormat) -> anyhow::Result<()> {
    match out {
        KeyFormat::Json => {
            let mut obj = serde_json::Map::new();
            for &s in states {
                obj.insert(json_name(s).into(), serde_json::json!(listing.ids(s)));
            }
            println!("{}", serde_json::to_string_pretty(&obj)?);
        }
        KeyFormat::Table => {
            let mut table = Table::new(&["STATE", "MINION"]);
            for &s in states {
                for id in listing.ids(s) {
                    table.push(vec![state_name(s).to_owned(), id.clone()]);
                }
            }
            print!("{}", table.render());
        }
        KeyFormat::Text => {
            for &s in states {
                println!("{}", heading(s));
                for id in listing.ids(s) {
                    println!("{id}");
                }
            }
        }
    }
    Ok(())
}

fn print_keys(
    records: &[KeyView],
    pki_dir: &Path,
    glob: &str,
    finger: bool,
    out: KeyFormat,
) -> anyhow::Result<()> {
    let mut obj = serde_json::Map::new();
    let mut table = Table::new(&[
        "STATE",
        "MINION",
        if finger { "FINGERPRINT" } else { "PUBLIC_KEY" },
    ]);
    let master = keys::read_public(&pki_dir.join("master.pub"));
    if let (true, Ok(master)) = (finger, master) {
        let fp = keys::Fingerprint::of(&master).to_string();
        match out {
            KeyFormat::Json => {
                obj.insert("local".into(), serde_json::json!({"master.pub": fp}));
            }
            KeyFormat::Table => table.push(vec!["local".into(), "master.pub".into(), fp]),
            KeyFormat::Text => println!("Local Keys:\nmaster.pub:  {fp}"),
        }
    }
    for s in KeyState::ALL {
        let mut rows = serde_json::Map::new();
        let name = state_name(s);
        for r in records
            .iter()
            .filter(|r| r.state == name && fnmatch(&r.id, glob))
        {
            let shown = if finger { &r.fingerprint } else { &r.public };
            if let Some(v) = shown {
                rows.insert(r.id.clone(), serde_json::Value::String(v.clone()));
            }
        }
        if rows.is_empty() {
            continue;
        }
        match out {
            KeyFormat::Json => {
                obj.insert(json_name(s).into(), serde_json::Value::Object(rows));
            }
            KeyFormat::Table => {
                for (id, v) in rows {
                    table.push(vec![name.to_owned(), id, crate::output::cell(&v)]);
                }
            }
            KeyFormat::Text => {
                println!("{}", heading(s));
                for (id, v) in rows {
                    println!("{id}:  {}", v.as_str().unwrap_or_default());
                }
            }
        }
    }
    match out {
        KeyFormat::Json => println!("{}", serde_json::to_string_pretty(&obj)?),
        KeyFormat::Table => print!("{}", table.render()),
        KeyFormat::Text => {}
    }
    Ok(())
}
