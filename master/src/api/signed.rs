//! Signed requests on the TLS listener (RFC 9421 with ed25519, see
//! [`keys::httpsig`]): the body's digest, the signature by the key of the
//! user named in `keyid`, `created` within `clock_skew_secs`, and a nonce
//! not seen in that window.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, header};
use keys::httpsig;
use sha2::{Digest, Sha256};

use super::{Caller, MAX_BODY_BYTES};
use crate::server::Shared;
use crate::service::ServiceError;

/// Nonces seen recently, per user, each kept until the signature that
/// carried it could no longer be accepted. Nonces are kept in memory, so
/// signatures made before the master started are refused.
pub struct NonceCache {
    inner: Mutex<Nonces>,
    started_s: i64,
}

impl Default for NonceCache {
    fn default() -> Self {
        NonceCache {
            inner: Mutex::default(),
            started_s: crate::server::now_ms() / 1000,
        }
    }
}

#[derive(Default)]
struct Nonces {
    /// SHA-256 (first 16 bytes) of `keyid NUL nonce` -> unix seconds it may be forgotten.
    seen: HashMap<[u8; 16], i64>,
    /// Size at which expired entries are next swept out.
    sweep_at: usize,
}

impl NonceCache {
    /// Records a nonce; false when it was already seen and is still
    /// remembered (a replay).
    pub fn first_use(&self, keyid: &str, nonce: &str, forget_at: i64, now: i64) -> bool {
        let mut h = Sha256::new();
        h.update(keyid.as_bytes());
        h.update([0]);
        h.update(nonce.as_bytes());
        let digest = h.finalize();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        let mut n = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if n.seen.len() >= n.sweep_at {
            n.seen.retain(|_, until| *until >= now);
            n.sweep_at = (n.seen.len() * 2).max(4096);
        }
        match n.seen.get(&key) {
            Some(until) if *until >= now => false,
            _ => {
                n.seen.insert(key, forget_at);
                true
            }
        }
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, ServiceError> {
    let mut values = headers.get_all(name).iter();
    let first = values.next().ok_or_else(|| {
        ServiceError::Unauthenticated(format!("a signed request needs the {name} header"))
    })?;
    if values.next().is_some() {
        return Err(ServiceError::Unauthenticated(format!(
            "{name} is given more than once"
        )));
    }
    first
        .to_str()
        .map_err(|_| ServiceError::Unauthenticated(format!("{name} is not ASCII")))
}

fn unauth(e: httpsig::SigError) -> ServiceError {
    ServiceError::Unauthenticated(e.to_string())
}

/// Whether `host` (a `Host` header) names this master: one of `[api]
/// hostnames` (any port), or, on the listen port, the listen address, this
/// host's name, or a loopback name when the peer itself is on loopback. A
/// request signed for another master (another port on this host, or
/// `localhost` seen from elsewhere) is not taken.
fn is_this_master(shared: &Shared, host: &str, peer: Option<SocketAddr>) -> bool {
    static HOSTNAME: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let (name, port) = match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => (h, Some(p)),
        _ => (host, None),
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    if shared
        .cfg
        .api
        .hostnames
        .iter()
        .any(|n| n.eq_ignore_ascii_case(name))
    {
        return true;
    }
    let (listen_host, listen_port) = match shared.cfg.api.listen.rsplit_once(':') {
        Some((h, p)) => (h.trim_start_matches('[').trim_end_matches(']'), Some(p)),
        None => (shared.cfg.api.listen.as_str(), None),
    };
    if port.unwrap_or("443") != listen_port.unwrap_or("4507") {
        return false;
    }
    let own = HOSTNAME.get_or_init(|| hostname::get().ok().and_then(|h| h.into_string().ok()));
    let loopback_peer = peer.is_some_and(|p| p.ip().is_loopback());
    let loopback = ["localhost", "127.0.0.1", "::1"]
        .into_iter()
        .any(|n| n.eq_ignore_ascii_case(name));
    if loopback {
        return loopback_peer;
    }
    std::iter::once(listen_host)
        .chain(own.as_deref())
        .any(|n| n.eq_ignore_ascii_case(name))
}

/// Authenticates a request carrying `Signature-Input`: checks the
/// signature by the key of the user named in `keyid` over the method, the
/// URI (which must name this master) and the digest; then the time window,
/// the body against the digest (read within the body limit) and the nonce.
/// Gives back the caller and the request with its body restored. An
/// unknown user, a user without a key and a wrong key get the same answer
/// (the log says which).
pub async fn authenticate(
    shared: &Shared,
    nonces: &NonceCache,
    peer: Option<SocketAddr>,
    req: Request,
) -> Result<(Caller, Request), ServiceError> {
    let (parts, body) = req.into_parts();
    let input = header_text(&parts.headers, "signature-input")?;
    let signature = header_text(&parts.headers, "signature")?;
    let claim = httpsig::parse(input, signature).map_err(unauth)?;
    let keyid = claim.params.keyid.clone();
    let digest = header_text(&parts.headers, "content-digest")?;
    let host = header_text(&parts.headers, header::HOST.as_str())?;
    if !is_this_master(shared, host, peer) {
        return Err(ServiceError::Unauthenticated(format!(
            "the request was signed for {host:?}, which is not this master \
             (its names: [api] hostnames)"
        )));
    }
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let target_uri = format!("https://{host}{path}");
    // A precondition changes what a write does: it must be signed too.
    let if_match = match parts.headers.get(header::IF_MATCH) {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ServiceError::Unauthenticated("If-Match is not ASCII".into()))?,
        ),
        None => None,
    };
    if if_match.is_some() && !claim.covers_if_match() {
        return Err(ServiceError::Unauthenticated(
            "the request has an If-Match header its signature does not cover: \
             sign \"if-match\" too"
                .into(),
        ));
    }
    let verified = shared.users.signing_key(&keyid).and_then(|(user, key)| {
        claim
            .verify(&key, parts.method.as_str(), &target_uri, digest, if_match)
            .map(|()| user)
            .map_err(unauth)
    });
    let user = match verified {
        Ok(user) => user,
        Err(ServiceError::Unauthenticated(why)) => {
            tracing::warn!(keyid = %keyid, reason = %why, "refused a signed request");
            return Err(ServiceError::Unauthenticated(format!(
                "the signature does not verify for keyid {keyid:?} \
                 (an unknown user, a user without a key, or another key)"
            )));
        }
        Err(other) => return Err(other),
    };

    let skew = i64::try_from(shared.cfg.clock_skew_secs).unwrap_or(i64::MAX);
    let now = crate::server::now_ms() / 1000;
    let created = claim.params.created;
    if created < now.saturating_sub(skew) || created > now.saturating_add(skew) {
        return Err(ServiceError::Unauthenticated(format!(
            "the signature was created {}s away from the master's clock; \
             clock_skew_secs allows {skew}s",
            (now - created).abs()
        )));
    }
    if created < nonces.started_s {
        return Err(ServiceError::Unauthenticated(
            "the signature was made before this master started; sign the request again".into(),
        ));
    }
    if claim.params.expires.is_some_and(|e| e < now) {
        return Err(ServiceError::Unauthenticated(
            "the signature has expired".into(),
        ));
    }

    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|e| ServiceError::TooLarge(format!("body: {e}")))?;
    httpsig::check_digest(digest, &bytes).map_err(unauth)?;

    if !nonces.first_use(
        &user.name,
        &claim.params.nonce,
        created.saturating_add(skew),
        now,
    ) {
        return Err(ServiceError::Unauthenticated(format!(
            "nonce {:?} was already used by {} (a replayed request)",
            claim.params.nonce, user.name
        )));
    }
    let caller = Caller {
        user,
        token_id: None,
    };
    Ok((caller, Request::from_parts(parts, Body::from(bytes))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_refused_while_remembered_and_forgotten_after() {
        let c = NonceCache::default();
        assert!(c.first_use("alice", "n1", 100, 10));
        assert!(!c.first_use("alice", "n1", 100, 50));
        assert!(c.first_use("bob", "n1", 100, 50), "nonces are per user");
        assert!(
            c.first_use("alice", "n1", 300, 101),
            "forgotten after its window"
        );
    }

    #[test]
    fn expired_nonces_are_swept_as_the_cache_grows() {
        let c = NonceCache::default();
        for i in 0..10_000 {
            assert!(c.first_use("alice", &i.to_string(), i, i));
        }
        let len = c.inner.lock().map(|n| n.seen.len()).unwrap_or(0);
        assert!(len < 10_000, "{len}");
    }
}
