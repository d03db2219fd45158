//! `cmdb` and `cmdb-key`: clients of the master's HTTP API (the unix
//! socket by default, HTTPS with a pinned certificate and a token or a
//! signing key for a remote master). `cmdb-key` also works on the pki
//! directory itself while the master is stopped.

pub mod asset;
pub mod client;
pub mod events;
pub mod key;
pub mod output;
pub mod pinning;
pub mod run;
pub mod user;

use anyhow::Context;
use hyper::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::client::{Client, Endpoint};

/// One API call with a JSON answer; the problem's detail as the error.
pub fn call<T: DeserializeOwned>(
    socket: &Endpoint,
    method: Method,
    uri: &str,
    body: Option<&impl Serialize>,
) -> anyhow::Result<T> {
    let client = Client::new(socket).with_context(|| run::unreachable(socket))?;
    client
        .call(method, uri, body)
        .with_context(|| run::unreachable(socket))?
        .map_err(|m| anyhow::anyhow!("{m}"))
}

/// One API call answered with no content.
pub fn call_empty(socket: &Endpoint, method: Method, uri: &str) -> anyhow::Result<()> {
    let client = Client::new(socket).with_context(|| run::unreachable(socket))?;
    let none: Option<&()> = None;
    client
        .call_no_content(method, uri, none)
        .with_context(|| run::unreachable(socket))?
        .map_err(|m| anyhow::anyhow!("{m}"))
}

/// Every item of a paged list (following `next`).
pub fn all<T: DeserializeOwned>(
    socket: &Endpoint,
    path: &str,
    params: &[(&str, Option<String>)],
) -> anyhow::Result<Vec<T>> {
    let client = Client::new(socket).with_context(|| run::unreachable(socket))?;
    let items = client
        .all_pages(path, params, None, None)
        .with_context(|| run::unreachable(socket))?
        .map_err(|m| anyhow::anyhow!("{m}"))?;
    Ok(serde_json::from_value(items)?)
}

/// The name of the user running the command, for job records.
pub fn current_user() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown".into())
}
