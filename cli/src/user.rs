//! `cmdb user …` and `cmdb token …`: who may use the API.
//!
//! Exit codes: 0 on success, 1 when the master refuses (an existing user,
//! no such user or token, not an admin) or cannot be reached.

use anyhow::Context;
use hyper::Method;
use serde::Serialize;

use crate::asset::format_ms;
use crate::client::{Endpoint, segment};
use crate::output::{OutputFormat, Table, render};
use crate::{all, call, call_empty};
use master::access::Role;
use master::service::users::{
    CreatedToken, MIN_PASSWORD_CHARS, NewPassword, NewToken, NewUser, TokenView, UserView,
};

fn print_json(v: &impl Serialize, out: OutputFormat) -> anyhow::Result<()> {
    let value = serde_json::to_value(v)?;
    let map = match value {
        serde_json::Value::Object(m) => m,
        other => {
            let mut m = serde_json::Map::new();
            m.insert("result".into(), other);
            m
        }
    };
    print!("{}", render(&map, out));
    Ok(())
}

/// `cmdb user add`.
pub fn add(
    socket: &Endpoint,
    name: String,
    role: Role,
    targets: Vec<String>,
    functions: Vec<String>,
    pubkey: Option<String>,
    password: bool,
) -> anyhow::Result<u8> {
    let password = if password {
        Some(read_password()?)
    } else {
        None
    };
    let pubkey = match pubkey {
        Some(p) if p.trim_start().starts_with("ssh-") => Some(p),
        Some(path) => Some(
            std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("--pubkey {path}: {e}"))?
                .trim()
                .to_owned(),
        ),
        None => None,
    };
    let new = NewUser {
        name,
        role,
        targets,
        functions,
        pubkey,
        password,
    };
    let user: UserView = call(socket, Method::POST, "/v1/users", Some(&new))?;
    println!("added user {} ({})", user.name, user.role.as_str());
    Ok(0)
}

/// `cmdb user list`.
pub fn list(socket: &Endpoint, out: OutputFormat) -> anyhow::Result<u8> {
    let users: Vec<UserView> = all(socket, "/v1/users", &[("limit", Some("1000".into()))])?;
    if out == OutputFormat::Table {
        let mut table = Table::new(&[
            "NAME",
            "ROLE",
            "TARGETS",
            "FUNCTIONS",
            "PUBKEY",
            "PASSWORD",
            "CREATED",
        ]);
        for u in &users {
            table.push(vec![
                u.name.clone(),
                u.role.as_str().to_owned(),
                u.targets.join(","),
                u.functions.join(","),
                if u.pubkey.is_some() { "yes" } else { "no" }.to_owned(),
                if u.password { "yes" } else { "no" }.to_owned(),
                format_ms(u.created_ms),
            ]);
        }
        print!("{}", table.render());
        return Ok(0);
    }
    let map: serde_json::Map<String, serde_json::Value> = users
        .into_iter()
        .map(|u| {
            let name = u.name.clone();
            (name, serde_json::to_value(u).unwrap_or_default())
        })
        .collect();
    print_json(&map, out)?;
    Ok(0)
}

/// A new password: asked twice on the terminal, or the first two lines of
/// standard input when it is not a terminal.
fn read_password() -> anyhow::Result<String> {
    use std::io::IsTerminal;
    let (first, second) = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("password: ")?;
        let second = rpassword::prompt_password("the same again: ")?;
        (first, second)
    } else {
        let mut lines = std::io::stdin().lines();
        let mut next = |what: &str| -> anyhow::Result<String> {
            lines
                .next()
                .transpose()?
                .ok_or_else(|| anyhow::anyhow!("standard input ended before the {what}"))
        };
        let first = next("password")?;
        let second = next("password's second line (the same again)")?;
        (first, second)
    };
    if first != second {
        anyhow::bail!("the two passwords differ; nothing was changed");
    }
    if first.chars().count() < MIN_PASSWORD_CHARS {
        anyhow::bail!("the password is too short: give at least {MIN_PASSWORD_CHARS} characters");
    }
    Ok(first)
}

/// `cmdb user passwd`.
pub fn passwd(socket: &Endpoint, name: &str) -> anyhow::Result<u8> {
    let body = NewPassword {
        password: read_password()?,
    };
    let client =
        crate::client::Client::new(socket).with_context(|| crate::run::unreachable(socket))?;
    client
        .call_no_content(
            Method::PUT,
            &format!("/v1/users/{}/password", segment(name)),
            Some(&body),
        )
        .with_context(|| crate::run::unreachable(socket))?
        .map_err(|m| anyhow::anyhow!("{m}"))?;
    println!("set the password of {name}");
    Ok(0)
}

/// `cmdb user remove`.
pub fn remove(socket: &Endpoint, name: &str) -> anyhow::Result<u8> {
    call_empty(
        socket,
        Method::DELETE,
        &format!("/v1/users/{}", segment(name)),
    )?;
    println!("removed user {name} and its tokens");
    Ok(0)
}

/// `cmdb token create`: the token alone on the last line.
pub fn create(socket: &Endpoint, user: String, expires_secs: Option<u64>) -> anyhow::Result<u8> {
    let new = NewToken { user, expires_secs };
    let created: CreatedToken = call(socket, Method::POST, "/v1/tokens", Some(&new))?;
    let expires = match created.view.expires_ms {
        Some(ms) => format!("expires {}", format_ms(ms)),
        None => "never expires".to_owned(),
    };
    eprintln!(
        "token {} for {} ({expires}); it is shown only now:",
        created.view.id, created.view.user
    );
    println!("{}", created.token);
    Ok(0)
}

/// `cmdb token list`.
pub fn tokens(socket: &Endpoint, out: OutputFormat) -> anyhow::Result<u8> {
    let tokens: Vec<TokenView> = all(socket, "/v1/tokens", &[("limit", Some("1000".into()))])?;
    if out == OutputFormat::Table {
        let when = |ms: Option<i64>| ms.map(format_ms).unwrap_or_else(|| "never".to_owned());
        let mut table = Table::new(&["ID", "USER", "CREATED", "EXPIRES", "LAST_USED"]);
        for t in &tokens {
            table.push(vec![
                t.id.clone(),
                t.user.clone(),
                format_ms(t.created_ms),
                when(t.expires_ms),
                when(t.last_used_ms),
            ]);
        }
        print!("{}", table.render());
        return Ok(0);
    }
    let map: serde_json::Map<String, serde_json::Value> = tokens
        .into_iter()
        .map(|t| {
            let id = t.id.clone();
            (id, serde_json::to_value(t).unwrap_or_default())
        })
        .collect();
    print_json(&map, out)?;
    Ok(0)
}

/// `cmdb token revoke`.
pub fn revoke(socket: &Endpoint, id: &str) -> anyhow::Result<u8> {
    call_empty(
        socket,
        Method::DELETE,
        &format!("/v1/tokens/{}", segment(id)),
    )?;
    println!("revoked token {id}");
    Ok(0)
}

/// Parses `90d`, `12h`, `30m`, `45s` or plain seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let (num, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?}: expected a number with d, h, m or s"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: unknown unit {unit:?} (d, h, m or s)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{text:?}: too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90d"), Ok(90 * 86_400));
        assert_eq!(parse_duration("2h"), Ok(7200));
        assert_eq!(parse_duration("15"), Ok(15));
        assert!(parse_duration("3w").is_err() && parse_duration("d").is_err());
    }
}
