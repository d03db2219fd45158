//! Who may use the API: users with a role and, for operators, the minions
//! and functions they may run jobs on; bearer tokens stored only as hashes.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a user may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum Role {
    /// Read the inventory, changes, reports and jobs.
    Reader,
    /// Also run jobs (within its targets and functions) and edit assets.
    Operator,
    /// Everything, keys and users included.
    Admin,
}

impl Role {
    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// A user of the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The name, recorded with every write.
    pub name: String,
    /// What the user may do.
    pub role: Role,
    /// For operators: globs of the minion ids they may target (none: no
    /// minion). A job whose expected minions include one outside them is
    /// refused whole.
    #[serde(default)]
    pub targets: Vec<String>,
    /// For operators: globs of the functions they may run (none: no
    /// function).
    #[serde(default)]
    pub functions: Vec<String>,
    /// The OpenSSH ed25519 public key (`ssh-ed25519 AAAA…`) that signs the
    /// user's requests, if any.
    #[serde(default)]
    pub pubkey: Option<String>,
    /// Created, unix milliseconds.
    pub created_ms: i64,
    /// The argon2id hash (PHC string) of the password the user logs in to
    /// the web UI with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// The user's saved views of the asset list: name -> query string.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub views: std::collections::BTreeMap<String, String>,
}

impl User {
    /// Whether the user may run `fun`.
    pub fn may_run(&self, fun: &str) -> bool {
        self.role == Role::Admin
            || (self.role == Role::Operator
                && self
                    .functions
                    .iter()
                    .any(|p| protocol::fnmatch::fnmatch(fun, p)))
    }

    /// Whether the user may target `minion`.
    pub fn may_target(&self, minion: &str) -> bool {
        self.role == Role::Admin
            || (self.role == Role::Operator
                && self
                    .targets
                    .iter()
                    .any(|p| protocol::fnmatch::fnmatch(minion, p)))
    }
}

/// A bearer token: shown once, kept as the SHA-256 of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// Public id (also part of the token text).
    pub id: String,
    /// The user it authenticates.
    pub user: String,
    /// SHA-256 of the secret, hex.
    pub hash: String,
    /// Created, unix milliseconds.
    pub created_ms: i64,
    /// Expires, unix milliseconds (none: never).
    pub expires_ms: Option<i64>,
    /// Last used, unix milliseconds.
    pub last_used_ms: Option<i64>,
}

/// Prefix of every token's text.
pub const TOKEN_PREFIX: &str = "cmdb_";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a token secret, hex.
pub fn hash_secret(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// A new token's text `cmdb_<id>_<secret>` from random bytes, and its id
/// and secret.
pub fn token_text(id_bytes: &[u8; 8], secret_bytes: &[u8; 32]) -> (String, String, String) {
    let id = hex(id_bytes);
    let secret = hex(secret_bytes);
    (format!("{TOKEN_PREFIX}{id}_{secret}"), id, secret)
}

/// Splits a token's text into id and secret.
pub fn parse_token(text: &str) -> Option<(&str, &str)> {
    let rest = text.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 16 && secret.len() == 64).then_some((id, secret))
}

/// Compares two strings in time independent of where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Checks a user name: 1-64 characters of letters, digits, `.`, `_`, `-`.
pub fn check_user_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "user name {name:?}: use 1-64 letters, digits, '.', '_' or '-'"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_compare_by_hash() {
        let (text, id, secret) = token_text(&[1; 8], &[2; 32]);
        assert_eq!(parse_token(&text), Some((id.as_str(), secret.as_str())));
        assert!(same(&hash_secret(&secret), &hash_secret(&secret)));
        assert!(!same(&hash_secret(&secret), &hash_secret("other")));
        assert_eq!(parse_token("cmdb_short_x"), None);
        assert_eq!(parse_token("Bearer x"), None);
    }

    #[test]
    fn operators_are_limited_by_their_globs() {
        let op = User {
            name: "ops".into(),
            role: Role::Operator,
            targets: vec!["web*".into()],
            functions: vec!["test.*".into(), "cmd.run".into()],
            pubkey: None,
            created_ms: 0,
            password_hash: None,
            views: Default::default(),
        };
        assert!(op.may_run("test.ping") && op.may_run("cmd.run") && !op.may_run("state.apply"));
        assert!(op.may_target("web01") && !op.may_target("db01"));
        let reader = User {
            role: Role::Reader,
            ..op.clone()
        };
        assert!(!reader.may_run("test.ping") && !reader.may_target("web01"));
        assert!(check_user_name("alice.b-1").is_ok());
        assert!(check_user_name("../x").is_err() && check_user_name("").is_err());
    }
}
