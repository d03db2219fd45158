//! `cmdb-key`: key management on the master's pki directory, with
//! `salt-key`'s flags. It works on the files directly, so it works whether or
//! not the master runs; the master reads the files on every request.
//!
//! Exit codes: 0 on success (including "no keys matched"), 1 on an error.

use std::io::{BufRead, Write};

use anyhow::Context;
use keys::{Fingerprint, KeyListing, KeyState, PkiStore};
use protocol::MinionId;
use protocol::fnmatch::fnmatch;

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
    /// Print JSON.
    pub json: bool,
}

fn heading(state: KeyState) -> &'static str {
    match state {
        KeyState::Accepted => "Accepted Keys:",
        KeyState::Denied => "Denied Keys:",
        KeyState::Pending => "Unaccepted Keys:",
        KeyState::Rejected => "Rejected Keys:",
    }
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
    for (s, id) in keys {
        println!("{}\n{id}", heading(*s));
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

/// Runs one `cmdb-key` action on the pki directory.
pub fn run(pki: &PkiStore, action: KeyAction, opts: KeyOptions) -> anyhow::Result<()> {
    let listing = pki.list().context("listing keys")?;
    match action {
        KeyAction::List(states) => print_listing(&listing, &states, opts.json),
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
                println!("The key glob '{glob}' does not match any unaccepted keys.");
                return Ok(());
            }
            if confirm("accepted", &keys, true, opts) {
                for (s, id) in keys {
                    let mid = MinionId::new(id.as_str())?;
                    pki.move_key(&mid, s, KeyState::Accepted)?;
                    println!("Key for minion {id} accepted.");
                }
            }
            Ok(())
        }
        KeyAction::Reject(glob) => {
            let mut from = vec![KeyState::Pending];
            if opts.include_accepted {
                from.push(KeyState::Accepted);
            }
            let keys = matching(&listing, &from, &glob);
            if keys.is_empty() {
                println!("The key glob '{glob}' does not match any unaccepted keys.");
                return Ok(());
            }
            if confirm("rejected", &keys, false, opts) {
                for (s, id) in keys {
                    let mid = MinionId::new(id.as_str())?;
                    pki.move_key(&mid, s, KeyState::Rejected)?;
                    println!("Key for minion {id} rejected.");
                }
            }
            Ok(())
        }
        KeyAction::Delete(glob) => {
            let keys = matching(&listing, &KeyState::ALL, &glob);
            if keys.is_empty() {
                println!("The key glob '{glob}' does not match any keys.");
                return Ok(());
            }
            if confirm("deleted", &keys, false, opts) {
                for (s, id) in keys {
                    let mid = MinionId::new(id.as_str())?;
                    pki.delete(&mid, s)?;
                    println!("Key for minion {id} deleted.");
                }
            }
            Ok(())
        }
        KeyAction::Print(glob) => print_keys(pki, &listing, &glob, false, opts.json),
        KeyAction::Finger(glob) => print_keys(pki, &listing, &glob, true, opts.json),
    }
}

fn print_listing(listing: &KeyListing, states: &[KeyState], json: bool) -> anyhow::Result<()> {
    if json {
        let mut obj = serde_json::Map::new();
        for &s in states {
            obj.insert(json_name(s).into(), serde_json::json!(listing.ids(s)));
        }
        println!("{}", serde_json::to_string_pretty(&obj)?);
    } else {
        for &s in states {
            println!("{}", heading(s));
            for id in listing.ids(s) {
                println!("{id}");
            }
        }
    }
    Ok(())
}

fn print_keys(
    pki: &PkiStore,
    listing: &KeyListing,
    glob: &str,
    finger: bool,
    json: bool,
) -> anyhow::Result<()> {
    let show = |key: &keys::VerifyingKey| {
        if finger {
            Fingerprint::of(key).to_string()
        } else {
            keys::file::public_to_text(key).trim_end().to_owned()
        }
    };
    let mut obj = serde_json::Map::new();
    let master = keys::read_public(&pki.root().join("master.pub"));
    if let (true, Ok(master)) = (finger, master) {
        if json {
            obj.insert(
                "local".into(),
                serde_json::json!({"master.pub": show(&master)}),
            );
        } else {
            println!("Local Keys:\nmaster.pub:  {}", show(&master));
        }
    }
    for s in KeyState::ALL {
        let mut rows = serde_json::Map::new();
        for id in listing.ids(s).iter().filter(|id| fnmatch(id, glob)) {
            let mid = MinionId::new(id.as_str())?;
            if let Some(key) = pki.get(s, &mid)? {
                rows.insert(id.clone(), serde_json::Value::String(show(&key)));
            }
        }
        if rows.is_empty() {
            continue;
        }
        if json {
            obj.insert(json_name(s).into(), serde_json::Value::Object(rows));
        } else {
            println!("{}", heading(s));
            for (id, v) in rows {
                println!("{id}:  {}", v.as_str().unwrap_or_default());
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&obj)?);
    }
    Ok(())
}
