//! Web UI sessions: random ids in an HttpOnly, Secure, SameSite=Strict
//! cookie, each with its own CSRF token and an expiry; and a limit on
//! failed logins per user name and per address.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::http::HeaderMap;
use base64::Engine;

use crate::server::now_ms;

/// The session cookie (`__Host-`: Secure, path `/`, no domain).
pub const SESSION_COOKIE: &str = "__Host-cmdb_session";
/// The login form's own CSRF cookie (double submit: the form carries the
/// same value).
pub const LOGIN_COOKIE: &str = "__Host-cmdb_login";
/// How long a session lasts after login.
pub const SESSION_SECS: i64 = 8 * 3600;
/// Failed logins allowed per user name in [`FAILURE_WINDOW_SECS`]; more
/// are refused until the window passes.
pub const MAX_FAILURES: usize = 5;
/// Failed logins allowed per address (several people may share one, behind
/// a proxy or NAT).
pub const MAX_ADDRESS_FAILURES: usize = 20;
/// The window failed logins are counted in.
pub const FAILURE_WINDOW_SECS: i64 = 15 * 60;
/// Sessions kept at most (the oldest go first).
const MAX_SESSIONS: usize = 10_000;

/// One logged-in session.
#[derive(Debug, Clone)]
pub struct Session {
    /// The user's name (the user is read again on every request, so a
    /// removed user or a changed role counts at once).
    pub user: String,
    /// The token every form of this session carries.
    pub csrf: String,
    /// When it ends, unix milliseconds.
    pub expires_ms: i64,
}

/// Sessions and failed logins.
#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<String, Vec<i64>>>,
}

/// 32 random bytes, URL-safe base64.
pub fn random_token() -> Option<String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).ok()?;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b))
}

/// Compares two secrets in time independent of where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The value of cookie `name` in the request's headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// A field of a URL-encoded form body.
pub fn form_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value: HttpOnly, Secure, SameSite=Strict, path `/`.
pub fn set_cookie(name: &str, value: &str, max_age_secs: i64) -> String {
    format!("{name}={value}; Path=/; Max-Age={max_age_secs}; HttpOnly; Secure; SameSite=Strict")
}

impl Sessions {
    /// Starts a session for `user`: a new id and CSRF token (an id the
    /// browser had before is never reused).
    pub fn start(&self, user: &str) -> Option<(String, Session)> {
        let id = random_token()?;
        let session = Session {
            user: user.to_owned(),
            csrf: random_token()?,
            expires_ms: now_ms() + SESSION_SECS * 1000,
        };
        let mut live = self.live.lock().ok()?;
        let now = now_ms();
        live.retain(|_, s| s.expires_ms > now);
        if live.len() >= MAX_SESSIONS
            && let Some(oldest) = live
                .iter()
                .min_by_key(|(_, s)| s.expires_ms)
                .map(|(k, _)| k.clone())
        {
            live.remove(&oldest);
        }
        live.insert(id.clone(), session.clone());
        Some((id, session))
    }

    /// The live session `id`, if it has not expired.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut live = self.live.lock().ok()?;
        match live.get(id) {
            Some(s) if s.expires_ms > now_ms() => Some(s.clone()),
            Some(_) => {
                live.remove(id);
                None
            }
            None => None,
        }
    }

    /// Ends session `id`.
    pub fn end(&self, id: &str) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(id);
        }
    }

    /// Seconds until a login for `user` from `addr` may be tried again, if
    /// either has failed too often lately.
    pub fn locked_for(&self, user: &str, addr: &str) -> Option<i64> {
        let now = now_ms();
        let failures = self.failures.lock().ok()?;
        [
            (format!("user:{user}"), MAX_FAILURES),
            (format!("addr:{addr}"), MAX_ADDRESS_FAILURES),
        ]
        .iter()
        .filter_map(|(k, max)| failures.get(k).map(|t| (t, *max)))
        .filter_map(|(times, max)| {
            let recent: Vec<i64> = times
                .iter()
                .copied()
                .filter(|t| now - t < FAILURE_WINDOW_SECS * 1000)
                .collect();
            (recent.len() >= max).then(|| {
                let oldest = recent.iter().min().copied().unwrap_or(now);
                ((oldest + FAILURE_WINDOW_SECS * 1000 - now + 999) / 1000).max(1)
            })
        })
        .max()
    }

    /// Counts a failed login for `user` from `addr`.
    pub fn failed(&self, user: &str, addr: &str) {
        let now = now_ms();
        if let Ok(mut failures) = self.failures.lock() {
            failures.retain(|_, times| {
                times.retain(|t| now - t < FAILURE_WINDOW_SECS * 1000);
                !times.is_empty()
            });
            if failures.len() >= MAX_SESSIONS {
                return;
            }
            for k in [format!("user:{user}"), format!("addr:{addr}")] {
                failures.entry(k).or_default().push(now);
            }
        }
    }

    /// Forgets the failures of `user` after a good login.
    pub fn succeeded(&self, user: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(&format!("user:{user}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_has_its_own_id_and_token_and_ends() {
        let s = Sessions::default();
        let (a, sa) = s.start("ann").expect("session");
        let (b, sb) = s.start("ann").expect("session");
        assert_ne!(a, b);
        assert_ne!(sa.csrf, sb.csrf);
        assert_eq!(s.get(&a).map(|x| x.user), Some("ann".into()));
        s.end(&a);
        assert!(s.get(&a).is_none());
        assert!(s.get(&b).is_some());
        assert!(s.get("made-up").is_none());
    }

    #[test]
    fn failures_lock_the_user_and_then_the_address_but_not_others() {
        let s = Sessions::default();
        for _ in 0..MAX_FAILURES - 1 {
            s.failed("ann", "10.0.0.1");
        }
        assert_eq!(s.locked_for("ann", "10.0.0.1"), None);
        s.failed("ann", "10.0.0.1");
        let secs = s.locked_for("ann", "10.0.0.9").expect("user locked");
        assert!(secs > 0 && secs <= FAILURE_WINDOW_SECS);
        assert_eq!(
            s.locked_for("bob", "10.0.0.1"),
            None,
            "others at the address"
        );
        for i in MAX_FAILURES..MAX_ADDRESS_FAILURES {
            s.failed(&format!("guess{i}"), "10.0.0.1");
        }
        assert!(s.locked_for("bob", "10.0.0.1").is_some(), "address locked");
        assert_eq!(s.locked_for("bob", "10.0.0.2"), None);
        s.succeeded("ann");
        assert_eq!(s.locked_for("ann", "10.0.0.9"), None);
    }

    #[test]
    fn cookies_and_form_fields_are_found_by_name() {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            "a=1; __Host-cmdb_session=xyz; b=2".parse().expect("header"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
        assert_eq!(
            form_field(b"x=1&csrf=ab%2Bc&y=", "csrf").as_deref(),
            Some("ab+c")
        );
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }
}
