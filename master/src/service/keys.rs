//! The keys service: minion keys by state with their fingerprints, and
//! accepting, rejecting and deleting them with Salt's rules.

use keys::{Fingerprint, KeyState, KeyStore};
use protocol::MinionId;
use serde::{Deserialize, Serialize};

use super::ServiceError;

/// One key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeyView {
    /// The minion id.
    pub id: String,
    /// `accepted`, `pending`, `rejected` or `denied`.
    pub state: String,
    /// SHA-256 of the public key, colon-separated hex.
    pub fingerprint: Option<String>,
    /// The public key (base64, as `cmdb-key -p` prints it).
    pub public: Option<String>,
}

fn key_view(pki: &dyn KeyStore, id: &str, state: KeyState) -> KeyView {
    let key = MinionId::new(id)
        .ok()
        .and_then(|m| pki.get(state, &m).ok().flatten());
    KeyView {
        id: id.to_owned(),
        state: state_name(state),
        fingerprint: key.as_ref().map(|k| Fingerprint::of(k).to_string()),
        public: key
            .as_ref()
            .map(|k| keys::file::public_to_text(k).trim_end().to_owned()),
    }
}

/// Which other states an accept or reject may take a key from.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Widen {
    /// Accept a rejected key too.
    #[serde(default)]
    pub include_rejected: bool,
    /// Accept a denied key too (never over an accepted one).
    #[serde(default)]
    pub include_denied: bool,
    /// Reject an accepted key too.
    #[serde(default)]
    pub include_accepted: bool,
    /// With `include_denied`: replace the accepted key of the id with its
    /// denied one (without it, an accepted key is never replaced).
    #[serde(default)]
    pub force: bool,
}

fn state_name(s: KeyState) -> String {
    s.dir().trim_end_matches('/').to_owned()
}

fn parse_id(id: &str) -> Result<MinionId, ServiceError> {
    MinionId::new(id).map_err(|e| ServiceError::Invalid(format!("minion id: {e}")))
}

fn unavailable(e: keys::KeyError) -> ServiceError {
    ServiceError::Unavailable(format!("key store: {e}"))
}

/// Every key, by state then id.
pub fn list(pki: &dyn KeyStore) -> Result<Vec<KeyView>, ServiceError> {
    let listing = pki.list().map_err(unavailable)?;
    let mut out = Vec::new();
    for state in KeyState::ALL {
        for id in listing.ids(state) {
            out.push(key_view(pki, id, state));
        }
    }
    Ok(out)
}

fn view(pki: &dyn KeyStore, id: &MinionId, state: KeyState) -> KeyView {
    key_view(pki, id.as_str(), state)
}

/// Accepts the pending key of `id` (or its rejected or denied one, when
/// widened). An accepted key is replaced only by the denied key of the same
/// id, and only with `force`.
pub fn accept(pki: &dyn KeyStore, id: &str, widen: Widen) -> Result<KeyView, ServiceError> {
    let id = parse_id(id)?;
    let states = pki.states_of(&id).map_err(unavailable)?;
    if states.contains(&KeyState::Accepted) {
        let fingerprint = |s| view(pki, &id, s).fingerprint.unwrap_or_default();
        if !(widen.include_denied && states.contains(&KeyState::Denied)) {
            return Err(ServiceError::Conflict(format!(
                "{id} already has an accepted key; delete it first to accept another"
            )));
        }
        if !widen.force {
            return Err(ServiceError::Conflict(format!(
                "{id} already has an accepted key ({}); its denied key ({}) replaces it only with force",
                fingerprint(KeyState::Accepted),
                fingerprint(KeyState::Denied)
            )));
        }
        pki.delete(&id, KeyState::Accepted).map_err(unavailable)?;
        pki.move_key(&id, KeyState::Denied, KeyState::Accepted)
            .map_err(unavailable)?;
        return Ok(view(pki, &id, KeyState::Accepted));
    }
    let from = [
        (KeyState::Pending, true),
        (KeyState::Rejected, widen.include_rejected),
        (KeyState::Denied, widen.include_denied),
    ]
    .into_iter()
    .find(|(s, allowed)| *allowed && states.contains(s))
    .map(|(s, _)| s)
    .ok_or_else(|| ServiceError::NotFound(format!("no key of {id} to accept")))?;
    pki.move_key(&id, from, KeyState::Accepted)
        .map_err(unavailable)?;
    Ok(view(pki, &id, KeyState::Accepted))
}

/// Rejects the pending key of `id` (or its accepted one, when widened).
pub fn reject(pki: &dyn KeyStore, id: &str, widen: Widen) -> Result<KeyView, ServiceError> {
    let id = parse_id(id)?;
    let states = pki.states_of(&id).map_err(unavailable)?;
    let from = [
        (KeyState::Pending, true),
        (KeyState::Accepted, widen.include_accepted),
    ]
    .into_iter()
    .find(|(s, allowed)| *allowed && states.contains(s))
    .map(|(s, _)| s)
    .ok_or_else(|| ServiceError::NotFound(format!("no key of {id} to reject")))?;
    if states.contains(&KeyState::Rejected) {
        pki.delete(&id, KeyState::Rejected).map_err(unavailable)?;
    }
    pki.move_key(&id, from, KeyState::Rejected)
        .map_err(unavailable)?;
    Ok(view(pki, &id, KeyState::Rejected))
}

/// Deletes every key of `id`; returns what was deleted.
pub fn delete(pki: &dyn KeyStore, id: &str) -> Result<Vec<KeyView>, ServiceError> {
    let id = parse_id(id)?;
    let states = pki.states_of(&id).map_err(unavailable)?;
    if states.is_empty() {
        return Err(ServiceError::NotFound(format!("no key of {id}")));
    }
    let mut out = Vec::new();
    for s in states {
        out.push(view(pki, &id, s));
        pki.delete(&id, s).map_err(unavailable)?;
    }
    Ok(out)
}
