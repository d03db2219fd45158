//! Resolver settings from `/etc/resolv.conf`.

use serde_json::{Map, Value, json};

use crate::{CollectError, HostSource, Probe};

/// What the collector reads.
pub const PROBES: &[Probe] = &[Probe::File("/etc/resolv.conf")];

/// Collects `dns: {nameservers, search}`.
pub fn collect(src: &dyn HostSource) -> Result<Map<String, Value>, CollectError> {
    let text = src.read("/etc/resolv.conf")?;
    let mut m = Map::new();
    m.insert("dns".into(), parse(&text));
    Ok(m)
}

/// Parses resolv.conf into `{nameservers, search}`.
pub fn parse(text: &str) -> Value {
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
    json!({"nameservers": servers, "search": search})
}
