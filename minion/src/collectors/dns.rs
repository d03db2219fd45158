//! Resolver settings from `/etc/resolv.conf`.

use std::path::Path;

use serde_json::{Map, Value, json};

use super::{CollectError, read};

/// Collects `dns: {nameservers, search}`.
pub fn collect(root: &Path) -> Result<Map<String, Value>, CollectError> {
    let text = read(root, "/etc/resolv.conf")?;
    let mut servers = Vec::new();
    let mut search = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => servers.extend(words.next().map(str::to_owned)),
            Some("search") | Some("domain") => search.extend(words.map(str::to_owned)),
            _ => {}
        }
    }
    let mut m = Map::new();
    m.insert(
        "dns".into(),
        json!({"nameservers": servers, "search": search}),
    );
    Ok(m)
}
