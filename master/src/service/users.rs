//! The users service: users with roles and ACLs, bearer tokens (shown
//! once, stored as hashes, with expiry, last use and revocation), and
//! authenticating a bearer token.

use std::sync::Arc;

use keys::VerifyingKey;
use serde::{Deserialize, Serialize};

use super::ServiceError;
use crate::server::now_ms;
use store::Store;
use store::access::{self, Role, Token, User};

/// A user to create.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct NewUser {
    /// The name.
    pub name: String,
    /// The role.
    pub role: Role,
    /// For operators: globs of minion ids they may target.
    #[serde(default)]
    pub targets: Vec<String>,
    /// For operators: globs of functions they may run.
    #[serde(default)]
    pub functions: Vec<String>,
    /// An OpenSSH `ssh-ed25519 AAAA…` line; the user signs requests with
    /// its private key.
    #[serde(default)]
    pub pubkey: Option<String>,
    /// A password for the web UI (at least 8 characters); stored only as
    /// an argon2id hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// A user as the API shows it: never its password hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserView {
    /// The name, recorded with every write.
    pub name: String,
    /// What the user may do.
    pub role: Role,
    /// For operators: globs of the minion ids they may target.
    pub targets: Vec<String>,
    /// For operators: globs of the functions they may run.
    pub functions: Vec<String>,
    /// The OpenSSH public key that signs the user's requests, if any.
    pub pubkey: Option<String>,
    /// Whether the user has a password for the web UI.
    pub password: bool,
    /// Created, unix milliseconds.
    pub created_ms: i64,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            name: u.name.clone(),
            role: u.role,
            targets: u.targets.clone(),
            functions: u.functions.clone(),
            pubkey: u.pubkey.clone(),
            password: u.password_hash.is_some(),
            created_ms: u.created_ms,
        }
    }
}

/// `PUT /v1/users/{name}/password`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct NewPassword {
    /// The new password (at least 8 characters).
    pub password: String,
}

/// Shortest password taken.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password taken (argon2 hashes any length; this bounds the work).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The argon2id hash of a password, as a PHC string.
pub fn hash_password(password: &str) -> Result<String, ServiceError> {
    use argon2::password_hash::PasswordHasher;
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ServiceError::Unprocessable(format!(
            "the password is too short: give at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ServiceError::Unprocessable(format!(
            "the password is too long: at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| ServiceError::Unavailable(format!("cannot hash the password: {e}")))
}

/// Whether `password` matches the PHC string `hash`.
fn password_matches(hash: &str, password: &str) -> bool {
    use argon2::password_hash::PasswordVerifier;
    use argon2::password_hash::phc::PasswordHash;
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A token to create.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct NewToken {
    /// The user it authenticates.
    pub user: String,
    /// Seconds until it expires (none: never).
    pub expires_secs: Option<u64>,
}

/// A token as listed: never its secret or hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenView {
    /// Its id (give it to `revoke`).
    pub id: String,
    /// The user it authenticates.
    pub user: String,
    /// Created, unix milliseconds.
    pub created_ms: i64,
    /// Expires, unix milliseconds.
    pub expires_ms: Option<i64>,
    /// Last used, unix milliseconds.
    pub last_used_ms: Option<i64>,
}

/// A token just created: the only time its text is shown.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedToken {
    /// How it is listed.
    #[serde(flatten)]
    pub view: TokenView,
    /// The token, for `Authorization: Bearer`.
    pub token: String,
}

fn view(t: &Token) -> TokenView {
    TokenView {
        id: t.id.clone(),
        user: t.user.clone(),
        created_ms: t.created_ms,
        expires_ms: t.expires_ms,
        last_used_ms: t.last_used_ms,
    }
}

fn random<const N: usize>() -> Result<[u8; N], ServiceError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b)
        .map_err(|e| ServiceError::Unavailable(format!("no randomness: {e}")))?;
    Ok(b)
}

/// Users and tokens.
pub struct UsersService {
    store: Arc<dyn Store>,
}

impl UsersService {
    /// The service over `store`.
    pub fn new(store: Arc<dyn Store>) -> UsersService {
        UsersService { store }
    }

    /// Creates a user; an existing name is a conflict.
    pub fn add(&self, new: NewUser) -> Result<User, ServiceError> {
        access::check_user_name(&new.name).map_err(ServiceError::Unprocessable)?;
        for g in new.targets.iter().chain(&new.functions) {
            protocol::fnmatch::compile(g, false)
                .map_err(|e| ServiceError::Unprocessable(format!("pattern {g:?}: {e}")))?;
        }
        let pubkey = match &new.pubkey {
            Some(line) => Some(keys::openssh::public_to_line(
                &keys::openssh::public_from_line(line)
                    .map_err(|e| ServiceError::Unprocessable(format!("pubkey: {e}")))?,
            )),
            None => None,
        };
        if self.store.user(&new.name)?.is_some() {
            return Err(ServiceError::Conflict(format!("user {} exists", new.name)));
        }
        let user = User {
            name: new.name,
            role: new.role,
            targets: new.targets,
            functions: new.functions,
            pubkey,
            created_ms: now_ms(),
            password_hash: new.password.as_deref().map(hash_password).transpose()?,
            views: Default::default(),
        };
        self.store.put_user(&user)?;
        Ok(user)
    }

    /// Every user.
    pub fn list(&self) -> Result<Vec<User>, ServiceError> {
        Ok(self.store.users()?)
    }

    /// A user by name.
    pub fn get(&self, name: &str) -> Result<User, ServiceError> {
        self.store
            .user(name)?
            .ok_or_else(|| ServiceError::NotFound(format!("no user {name}")))
    }

    /// Sets (or replaces) a user's web UI password.
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), ServiceError> {
        let mut user = self.get(name)?;
        user.password_hash = Some(hash_password(password)?);
        self.store.put_user(&user)?;
        Ok(())
    }

    /// The user a name and password log in, or `None` (an unknown user, no
    /// password set, or a wrong one: the caller cannot tell which). An
    /// unknown user costs one hash like a known one.
    pub fn login(&self, name: &str, password: &str) -> Result<Option<User>, ServiceError> {
        // The hash of a random password, checked when the user is unknown
        // or has no password, so that a login takes as long either way.
        static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let decoy = DECOY.get_or_init(|| {
            let pw: [u8; 16] = random().unwrap_or([7; 16]);
            hash_password(&format!("{pw:?}")).unwrap_or_default()
        });
        match self.store.user(name)? {
            Some(user) => {
                let hash = user.password_hash.as_deref().unwrap_or(decoy);
                let ok = password_matches(hash, password) && user.password_hash.is_some();
                Ok(ok.then_some(user))
            }
            None => {
                let _ = password_matches(decoy, password);
                Ok(None)
            }
        }
    }

    /// Saves (or replaces) one of a user's views of the asset list.
    pub fn save_view(&self, name: &str, view: &str, query: &str) -> Result<(), ServiceError> {
        let view = view.trim();
        if view.is_empty() || view.chars().count() > 64 || view.chars().any(char::is_control) {
            return Err(ServiceError::Unprocessable(
                "a view's name is 1 to 64 characters without control characters".into(),
            ));
        }
        if query.len() > 8192 {
            return Err(ServiceError::Unprocessable(
                "a view's query is at most 8192 bytes".into(),
            ));
        }
        let mut user = self.get(name)?;
        if user.views.len() >= 100 && !user.views.contains_key(view) {
            return Err(ServiceError::Conflict(
                "a user keeps at most 100 views; delete one first".into(),
            ));
        }
        user.views.insert(view.to_owned(), query.to_owned());
        self.store.put_user(&user)?;
        Ok(())
    }

    /// Deletes one of a user's saved views.
    pub fn delete_view(&self, name: &str, view: &str) -> Result<(), ServiceError> {
        let mut user = self.get(name)?;
        if user.views.remove(view).is_none() {
            return Err(ServiceError::NotFound(format!("no view {view:?}")));
        }
        self.store.put_user(&user)?;
        Ok(())
    }

    /// Removes a user and its tokens.
    pub fn remove(&self, name: &str) -> Result<(), ServiceError> {
        if !self.store.remove_user(name)? {
            return Err(ServiceError::NotFound(format!("no user {name}")));
        }
        Ok(())
    }

    /// Creates a token for an existing user.
    pub fn create_token(&self, new: NewToken) -> Result<CreatedToken, ServiceError> {
        if self.store.user(&new.user)?.is_none() {
            return Err(ServiceError::NotFound(format!("no user {}", new.user)));
        }
        let (text, id, secret) = access::token_text(&random()?, &random()?);
        let now = now_ms();
        let token = Token {
            id,
            user: new.user,
            hash: access::hash_secret(&secret),
            created_ms: now,
            expires_ms: new.expires_secs.map(|s| {
                now.saturating_add(i64::try_from(s).unwrap_or(i64::MAX).saturating_mul(1000))
            }),
            last_used_ms: None,
        };
        self.store.put_token(&token)?;
        Ok(CreatedToken {
            view: view(&token),
            token: text,
        })
    }

    /// Every token (without secrets).
    pub fn tokens(&self) -> Result<Vec<TokenView>, ServiceError> {
        Ok(self.store.tokens()?.iter().map(view).collect())
    }

    /// Revokes a token.
    pub fn revoke(&self, id: &str) -> Result<(), ServiceError> {
        if !self.store.remove_token(id)? {
            return Err(ServiceError::NotFound(format!("no token {id}")));
        }
        Ok(())
    }

    /// The user named by a signature's `keyid` and its public key, or why
    /// the signature cannot be checked.
    pub fn signing_key(&self, keyid: &str) -> Result<(User, VerifyingKey), ServiceError> {
        let user = self.store.user(keyid)?.ok_or_else(|| {
            ServiceError::Unauthenticated(format!("unknown keyid {keyid:?}: no such user"))
        })?;
        let line = user.pubkey.as_deref().ok_or_else(|| {
            ServiceError::Unauthenticated(format!(
                "user {keyid} has no public key (cmdb user add --pubkey)"
            ))
        })?;
        let key = keys::openssh::public_from_line(line)
            .map_err(|e| ServiceError::Unavailable(format!("stored key of {keyid}: {e}")))?;
        Ok((user, key))
    }

    /// The user a bearer token authenticates, or why not.
    pub fn authenticate(&self, bearer: &str) -> Result<User, ServiceError> {
        let unknown = || ServiceError::Unauthenticated("unknown or malformed token".into());
        let (id, secret) = access::parse_token(bearer).ok_or_else(unknown)?;
        let mut token = self.store.token(id)?.ok_or_else(unknown)?;
        if !access::same(&token.hash, &access::hash_secret(secret)) {
            return Err(unknown());
        }
        let now = now_ms();
        if token.expires_ms.is_some_and(|e| e <= now) {
            return Err(ServiceError::Unauthenticated(format!(
                "token {id} has expired"
            )));
        }
        let user = self.store.user(&token.user)?.ok_or_else(|| {
            ServiceError::Unauthenticated(format!("the user of token {id} is gone"))
        })?;
        // Last use is written at most once a minute per token.
        if token.last_used_ms.is_none_or(|t| now - t >= 60_000) {
            token.last_used_ms = Some(now);
            self.store.put_token(&token)?;
        }
        Ok(user)
    }
}
