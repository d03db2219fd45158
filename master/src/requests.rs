//! Handling one frame from the request socket: check size, decode the
//! envelope, find the signer's key, verify, decode, act, and build the signed
//! reply. Nothing here panics on input; every refusal is logged with the
//! signer and a reason and answered with a typed error.

use std::collections::HashMap;
use std::sync::Mutex;

use keys::{AuthDecision, VerifyingKey};
use protocol::message::check_fresh;
use protocol::{
    AuthReply, AuthStatus, Envelope, ErrorKind, HeartbeatReply, JobReturn, MinionId, ProtocolError,
    Reply, ReplyBody, Request, RequestBody,
};
use tracing::{debug, info, warn};

use crate::jobs::{Finished, ReturnOutcome};
use crate::keyring::random;
use crate::server::Shared;
use protocol::seal::{SymmetricKey, seal_session_key};
use store::Stored;

/// Auth nonces seen recently, to refuse a replayed auth request.
#[derive(Default)]
pub struct NonceCache {
    seen: Mutex<HashMap<(String, Vec<u8>), i64>>,
}

impl NonceCache {
    /// Records a nonce; false when it was seen before within `window_ms`.
    fn insert(&self, id: &str, nonce: &[u8], now_ms: i64, window_ms: i64) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() > 100_000 {
            seen.retain(|_, at| now_ms - *at <= window_ms);
        }
        seen.insert((id.to_owned(), nonce.to_vec()), now_ms)
            .is_none()
    }
}

fn error_reply(kind: ErrorKind, message: impl Into<String>) -> ReplyBody {
    ReplyBody::Error {
        kind,
        message: message.into(),
    }
}

/// Auth attempts per connection, as token buckets.
#[derive(Default)]
pub struct AuthLimiter {
    buckets: Mutex<HashMap<Vec<u8>, (f64, i64)>>,
}

impl AuthLimiter {
    /// Takes a token for `peer`; false when it has none left.
    fn allow(&self, peer: &[u8], now_ms: i64, rate: f64) -> bool {
        let burst = rate * 2.0;
        let mut b = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if b.len() > 100_000 {
            b.retain(|_, (_, last)| now_ms - *last < 10_000);
        }
        let (tokens, last) = b.entry(peer.to_vec()).or_insert((burst, now_ms));
        *tokens = (*tokens + (now_ms - *last).max(0) as f64 / 1000.0 * rate).min(burst);
        *last = now_ms;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// An encoded reply, and whether it acknowledges something stored (then the
/// store must be flushed before it is sent).
pub struct Handled {
    /// The reply envelope.
    pub reply: Vec<u8>,
    /// Whether it acknowledges a stored return.
    pub durable: bool,
    /// What is kept of the job return it acknowledges and what storing it
    /// did, for watchers and events once it is on disk.
    pub stored: Option<(Finished, Stored)>,
    /// Whether the request proved its sender: it verified against an
    /// accepted key, or it was an auth request whose key is now accepted or
    /// pending. The connection it came on then counts as authenticated.
    pub trusted: bool,
}

/// The most requests whose signatures are checked together.
pub const BATCH: usize = 64;

/// Handles several requests, in order, checking their signatures together
/// first (batch verification; if the batch fails, each is checked alone,
/// so a bad signature is refused as it would be alone). Each reply is the
/// encoded reply envelope: sealed under the channel key once the sender is
/// known, in the clear for auth replies and refusals of unknown senders.
pub fn handle_batch(shared: &Shared, frames: &[(&[u8], &[u8])], now_ms: i64) -> Vec<Handled> {
    let envs: Vec<Result<Envelope, Refusal>> = frames
        .iter()
        .map(|(_, frame)| decode(shared, frame))
        .collect();
    // Requests from accepted minions (not auth requests, which carry a key).
    let keys: Vec<Option<VerifyingKey>> = envs
        .iter()
        .map(|env| match env {
            Ok(env) if env.key.is_none() => MinionId::new(env.signer.as_str())
                .ok()
                .and_then(|id| accepted_key(shared, &id)),
            _ => None,
        })
        .collect();
    let items: Vec<(&Envelope, &VerifyingKey)> = envs
        .iter()
        .zip(&keys)
        .filter_map(|(env, key)| Some((env.as_ref().ok()?, key.as_ref()?)))
        .collect();
    let verified = items.len() > 1 && protocol::envelope::verify_batch(&items);
    let steps: Vec<Result<Step, Refusal>> = frames
        .iter()
        .zip(envs)
        .zip(keys)
        .map(|((&(peer, _), env), key)| process(shared, peer, env, key, verified, now_ms))
        .collect();
    // The batch's returns are stored together, in order.
    let rets: Vec<&JobReturn> = steps
        .iter()
        .filter_map(|s| match s {
            Ok(Step::Store { ret, .. }) => Some(ret),
            _ => None,
        })
        .collect();
    let mut outcomes = if rets.is_empty() {
        Vec::new()
    } else {
        shared.store.put_returns(&rets, now_ms)
    }
    .into_iter();
    steps
        .into_iter()
        .map(|step| {
            let processed = match step {
                Ok(Step::Done(p)) => Ok(p),
                Ok(Step::Store {
                    re,
                    channel,
                    id,
                    ret,
                    push,
                }) => {
                    let outcome = outcomes.next().unwrap_or_else(|| {
                        Err(store::StoreError::Engine("a return was not stored".into()))
                    });
                    match after_store(shared, &id, &ret, outcome) {
                        Ok(outcome) => {
                            let body = ReplyBody::Ack {
                                jid: ret.jid.clone(),
                            };
                            Ok((re, body, channel, Some((ret, outcome, push))))
                        }
                        Err((kind, message)) => Err(Refusal {
                            re,
                            kind,
                            message,
                            channel,
                        }),
                    }
                }
                Err(r) => Err(r),
            };
            reply(shared, processed)
        })
        .collect()
}

fn reply(shared: &Shared, processed: Result<Processed, Refusal>) -> Handled {
    let (re, body, channel, stored, trusted) = match processed {
        Ok((re, body, channel, stored)) => {
            let trusted = match &body {
                ReplyBody::Auth(a) => {
                    matches!(a.status, AuthStatus::Accepted | AuthStatus::Pending)
                }
                _ => true,
            };
            (re, body, channel, stored, trusted)
        }
        Err(Refusal {
            re,
            kind,
            message,
            channel,
        }) => (re, error_reply(kind, message), channel, None, false),
    };
    // The decoded return is dropped here; what the flusher passes on
    // after the flush is far smaller.
    let stored = stored.map(|(ret, outcome, push)| {
        // The other peers of a cluster get a job's return as JSON when one
        // of them follows it (see `JobTracker::relay`); a collect a minion
        // pushed on its own belongs to no job, and they get only what it
        // was.
        let cluster = shared.peers.is_some() && !push;
        (
            Finished::for_watchers(&ret, shared.jobs.tracker(), cluster),
            outcome,
        )
    });
    let is_auth = matches!(body, ReplyBody::Auth(_));
    let durable = matches!(body, ReplyBody::Ack { .. });
    let reply = Reply { re, body };
    let env = match &channel {
        Some(ch) => Envelope::seal_private("master", &shared.master_key, ch, random(), &reply),
        None => Envelope::seal("master", &shared.master_key, &reply),
    };
    let reply = match env {
        // Auth replies carry the master key so a minion can pin it.
        Ok(env) if is_auth => env.with_key(&shared.master_key.verifying_key()).to_bytes(),
        Ok(env) => env.to_bytes(),
        Err(e) => {
            warn!(error = %e, "could not encode reply");
            Vec::new()
        }
    };
    Handled {
        reply,
        durable,
        stored,
        trusted,
    }
}

struct Refusal {
    re: u64,
    kind: ErrorKind,
    message: String,
    channel: Option<SymmetricKey>,
}

fn refuse(re: u64, kind: ErrorKind, message: impl Into<String>) -> Refusal {
    Refusal {
        re,
        kind,
        message: message.into(),
        channel: None,
    }
}

type Processed = (
    u64,
    ReplyBody,
    Option<SymmetricKey>,
    Option<(JobReturn, Stored, bool)>,
);

/// A request handled, or a return checked and waiting to be stored with
/// the rest of its batch.
enum Step {
    Done(Processed),
    Store {
        re: u64,
        channel: Option<SymmetricKey>,
        id: MinionId,
        ret: JobReturn,
        /// Facts the minion pushed on its own, not a job's return.
        push: bool,
    },
}

fn decode(shared: &Shared, frame: &[u8]) -> Result<Envelope, Refusal> {
    Envelope::from_bytes(frame, shared.cfg.max_frame_bytes).map_err(|e| {
        warn!(size = frame.len(), error = %e, "dropped undecodable request frame");
        refuse(0, ErrorKind::Malformed, e.to_string())
    })
}

/// Processes a decoded request. `key` is the signer's accepted key (looked
/// up by the caller for every request that is not an auth request);
/// `verified` says the signature was already checked with it.
fn process(
    shared: &Shared,
    peer: &[u8],
    env: Result<Envelope, Refusal>,
    key: Option<VerifyingKey>,
    verified: bool,
    now_ms: i64,
) -> Result<Step, Refusal> {
    let env = env?;
    if env.key.is_some() {
        if !shared
            .auth_limiter
            .allow(peer, now_ms, shared.cfg.auth_rate)
        {
            debug!("auth rate limit hit");
            return Err(refuse(
                0,
                ErrorKind::RateLimited,
                "too many auth requests; slow down",
            ));
        }
        let (re, body) = auth(shared, &env, now_ms)?;
        return Ok(Step::Done((re, body, None, None)));
    }
    let id = MinionId::new(env.signer.as_str()).map_err(|e| {
        warn!(error = %e, "refused request with invalid signer id");
        refuse(0, ErrorKind::Malformed, e.to_string())
    })?;
    let key = key.ok_or_else(|| {
        warn!(minion_id = %id, "refused request from a minion without an accepted key");
        refuse(
            0,
            ErrorKind::NotAccepted,
            format!("minion {id} is not accepted"),
        )
    })?;
    let channel = shared
        .keyring
        .channel(&shared.master_key, id.as_str(), &key);
    let with_channel = |re: u64, kind: ErrorKind, message: String| Refusal {
        re,
        kind,
        message,
        channel: channel.clone(),
    };
    let opened = if verified {
        env.open_verified(channel.as_ref(), true)
    } else {
        env.open_private(&key, channel.as_ref(), true)
    };
    let req: Request = opened.map_err(|e| {
        warn!(minion_id = %id, error = %e, "refused request");
        match e {
            ProtocolError::BadSignature { .. } => refuse(0, ErrorKind::BadSignature, e.to_string()),
            _ => with_channel(0, ErrorKind::Malformed, e.to_string()),
        }
    })?;
    let window = shared.cfg.clock_skew_secs as i64 * 1000;
    check_fresh(req.sent_at_ms, now_ms, window).map_err(|e| {
        warn!(minion_id = %id, error = %e, "refused stale request");
        with_channel(req.id, ErrorKind::Replay, e.to_string())
    })?;
    let to_store = |ret: JobReturn, push: bool| -> Result<Step, Refusal> {
        let checked = if push {
            check_push(&id, &ret)
        } else {
            check_return(shared, &id, &ret)
        };
        checked.map_err(|(k, m)| with_channel(req.id, k, m))?;
        Ok(Step::Store {
            re: req.id,
            channel: channel.clone(),
            id: id.clone(),
            ret,
            push,
        })
    };
    let body = match req.body {
        RequestBody::Return(ret) => return to_store(ret, false),
        RequestBody::Push(ret) => return to_store(ret, true),
        RequestBody::Heartbeat(hb) => {
            shared.jobs.tracker().set_running(id.as_str(), hb.running);
            shared.presence.seen(id.as_str(), now_ms);
            let pending = shared
                .jobs
                .tracker()
                .missed_by(id.as_str())
                .into_iter()
                .map(|(jid, _)| jid)
                .collect();
            ReplyBody::Heartbeat(HeartbeatReply {
                boot_id: shared.boot_id,
                pending,
                session_epoch: shared.keyring.session().0,
            })
        }
        RequestBody::ReturnChunk(chunk) => {
            let (jid, push) = (chunk.jid.clone(), chunk.push);
            let assembled = shared
                .chunks
                .add(id.as_str(), chunk, std::time::Instant::now())
                .map_err(|(k, m)| {
                    warn!(minion_id = %id, jid = %jid, reason = %m, "refused part of a large return");
                    with_channel(req.id, k, m)
                })?;
            match assembled {
                crate::chunks::Assembled::Partial(received) => ReplyBody::ChunkStored { received },
                crate::chunks::Assembled::Whole(bytes) => {
                    let size = bytes.len();
                    let ret: JobReturn = rmp_serde::from_slice(&bytes).map_err(|e| {
                        with_channel(
                            req.id,
                            ErrorKind::Malformed,
                            format!("the assembled return does not decode: {e}"),
                        )
                    })?;
                    if ret.jid != jid {
                        return Err(with_channel(
                            req.id,
                            ErrorKind::Malformed,
                            format!("parts of job {jid} hold a return of job {}", ret.jid),
                        ));
                    }
                    info!(minion_id = %id, jid = %jid, bytes = size, "assembled a large return");
                    return to_store(ret, push);
                }
            }
        }
        RequestBody::Leaving => {
            shared.jobs.tracker().set_running(id.as_str(), Vec::new());
            shared.presence.left(id.as_str(), now_ms);
            info!(minion_id = %id, "minion is stopping");
            crate::server::record_presence(shared);
            ReplyBody::Heartbeat(HeartbeatReply {
                boot_id: shared.boot_id,
                pending: Vec::new(),
                session_epoch: shared.keyring.session().0,
            })
        }
        RequestBody::MissedJobs(_) => {
            let jobs: Vec<_> = shared
                .jobs
                .tracker()
                .missed_by(id.as_str())
                .into_iter()
                .map(|(_, env)| serde_bytes::ByteBuf::from(env.to_vec()))
                .collect();
            debug!(minion_id = %id, count = jobs.len(), "sent missed jobs");
            ReplyBody::Jobs { jobs }
        }
        RequestBody::FileRead(r) => {
            let served = crate::fileserver::resolve(&shared.cfg.file_roots, &r.path)
                .and_then(|p| crate::fileserver::read_chunk(&p, r.offset, r.len));
            match served {
                Ok((data, size, sha256)) => ReplyBody::FileData {
                    data: serde_bytes::ByteBuf::from(data),
                    size,
                    sha256: sha256.map(serde_bytes::ByteBuf::from),
                },
                Err(e) => {
                    warn!(minion_id = %id, path = %r.path.escape_debug(), error = %e, "refused a file read");
                    return Err(with_channel(req.id, file_error_kind(&e), e.to_string()));
                }
            }
        }
        RequestBody::FilePush(p) => {
            let stored =
                crate::fileserver::push_target(&shared.cfg.push_dir(), id.as_str(), &p.path)
                    .and_then(|t| {
                        crate::fileserver::write_chunk(
                            &t,
                            p.offset,
                            &p.data,
                            p.sha256.as_deref(),
                            shared.cfg.max_push_bytes,
                        )
                    });
            match stored {
                Ok(size) => {
                    if p.last {
                        info!(minion_id = %id, path = %p.path.escape_debug(), size, "stored a pushed file");
                    }
                    ReplyBody::FileStored { size }
                }
                Err(e) => {
                    warn!(minion_id = %id, path = %p.path.escape_debug(), error = %e, "refused a file push");
                    return Err(with_channel(req.id, file_error_kind(&e), e.to_string()));
                }
            }
        }
        RequestBody::FileList(l) => match states::roots::list(&shared.cfg.file_roots, &l.path) {
            Ok(files) => ReplyBody::FileList {
                files: files
                    .into_iter()
                    .map(|f| protocol::ListedFile {
                        path: f.path,
                        size: f.size,
                        sha256: f.sha256,
                    })
                    .collect(),
            },
            Err(e) => {
                warn!(minion_id = %id, path = %l.path.escape_debug(), error = %e, "refused a file listing");
                return Err(with_channel(req.id, file_error_kind(&e), e.to_string()));
            }
        },
        RequestBody::Pillar => {
            let grains = shared
                .store
                .asset_of_minion(id.as_str())
                .ok()
                .flatten()
                .map(|a| a.full_facts())
                .unwrap_or_else(|| serde_json::json!({}));
            match crate::fileserver::pillar(&shared.cfg.pillar_roots, id.as_str(), &grains) {
                Ok(data) => {
                    debug!(minion_id = %id, "sent pillar");
                    ReplyBody::Pillar { data }
                }
                Err(e) => {
                    warn!(minion_id = %id, error = %e, "could not compile pillar");
                    return Err(with_channel(req.id, ErrorKind::Internal, e.to_string()));
                }
            }
        }
        RequestBody::Auth(_) => {
            return Err(with_channel(
                req.id,
                ErrorKind::Malformed,
                "auth request without a key".into(),
            ));
        }
    };
    Ok(Step::Done((req.id, body, channel, None)))
}

fn file_error_kind(e: &crate::fileserver::FileError) -> ErrorKind {
    match e {
        crate::fileserver::FileError::Refused(_) => ErrorKind::PathRefused,
        crate::fileserver::FileError::NotFound(_) => ErrorKind::NotFound,
        crate::fileserver::FileError::Io(_) => ErrorKind::Internal,
    }
}

fn accepted_key(shared: &Shared, id: &MinionId) -> Option<VerifyingKey> {
    match shared.keyring.accepted_key(shared.pki.as_ref(), id) {
        Ok(k) => k,
        Err(e) => {
            warn!(minion_id = %id, error = %e, "unreadable accepted key");
            None
        }
    }
}

/// Checks facts a minion pushed on its own (a collect) before they are stored.
fn check_push(id: &MinionId, ret: &JobReturn) -> Result<(), (ErrorKind, String)> {
    if ret.minion != *id {
        warn!(minion_id = %id, claimed = %ret.minion, "refused pushed facts claiming another minion's id");
        return Err((
            ErrorKind::IdentityMismatch,
            format!("facts signed by {id} claim to be from {}", ret.minion),
        ));
    }
    if ret.fun != "collect" {
        return Err((
            ErrorKind::Malformed,
            format!("cannot push {:?}; only collect", ret.fun),
        ));
    }
    Ok(())
}

/// What storing a return did, logged and noted; a store error becomes the
/// refusal the minion gets (it sends the return again).
fn after_store(
    shared: &Shared,
    id: &MinionId,
    ret: &JobReturn,
    stored: Result<Stored, store::StoreError>,
) -> Result<Stored, (ErrorKind, String)> {
    let outcome = stored.map_err(|e| {
        warn!(error = %e, "could not store return");
        (ErrorKind::Internal, "store unavailable".to_string())
    })?;
    if !outcome.is_new() {
        info!(minion_id = %id, jid = %ret.jid, "ignored duplicate return");
    }
    // A new asset may be a VM a host already lists, and a host's guests
    // may have changed: the next relating pass has work.
    let new_asset = matches!(outcome, Stored::Asset { version: 0, .. });
    let guests = ret.data["guests"].as_array().is_some_and(|g| !g.is_empty());
    if new_asset || (guests && outcome.is_new()) {
        shared
            .relate_pending
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(outcome)
}

/// Checks a job return before it is stored: from the minion that signed
/// it, for a job that expects that minion. Watchers (a waiting `cmdb run`)
/// hear of the return only after the store is flushed, with the
/// acknowledgement: see `notify_stored`.
fn check_return(
    shared: &Shared,
    id: &MinionId,
    ret: &JobReturn,
) -> Result<(), (ErrorKind, String)> {
    if ret.minion != *id {
        warn!(minion_id = %id, claimed = %ret.minion, "refused return claiming another minion's id");
        return Err((
            ErrorKind::IdentityMismatch,
            format!("return signed by {id} claims to be from {}", ret.minion),
        ));
    }
    let expected = match shared.jobs.tracker().expects(&ret.jid, id.as_str()) {
        Some(e) => e,
        None => match shared.store.job(&ret.jid) {
            Ok(Some(job)) => job.expected.iter().any(|m| m == id.as_str()),
            Ok(None) => false,
            Err(e) => {
                warn!(error = %e, "store read failed");
                return Err((ErrorKind::Internal, "store unavailable".to_string()));
            }
        },
    };
    if !expected {
        warn!(minion_id = %id, jid = %ret.jid, "refused return for a job that does not expect this minion");
        return Err((
            ErrorKind::UnexpectedReturn,
            format!("job {} does not expect a return from {id}", ret.jid),
        ));
    }
    Ok(())
}

/// Tells a live job's watchers and the event bus about a return that is
/// now on disk. The tracker is told even for a duplicate: after a master
/// restart a return may be known to the store and still new to a live
/// job's watchers.
pub fn notify_stored(shared: &Shared, ret: &Finished, outcome: &Stored) {
    notify_stored_from(shared, ret, outcome, "collect");
}

/// As [`notify_stored`], naming where a changed asset's facts came from
/// (`collect`, or `ssh` for a host collected over SSH).
pub fn notify_stored_from(shared: &Shared, ret: &Finished, outcome: &Stored, source: &str) {
    let live_new = shared.jobs.tracker().on_return(ret) == ReturnOutcome::New;
    if live_new {
        debug!(minion_id = %ret.minion, jid = %ret.jid, "return delivered to watchers");
    }
    if outcome.is_new() {
        shared.metrics.returns_stored.inc();
        if let Some(peers) = &shared.peers {
            crate::cluster::announce_return(peers, ret);
        }
    }
    if live_new || outcome.is_new() {
        let ev = crate::events::ReturnEvent {
            jid: ret.jid.as_str(),
            id: ret.minion.as_str(),
            fun: &ret.fun,
            success: ret.success,
            retcode: ret.retcode,
        };
        shared
            .events
            .emit(|| format!("cmdb/job/{}/ret/{}", ret.jid, ret.minion), &ev);
    }
    if let Stored::Asset {
        id,
        version,
        changed: true,
    } = outcome
    {
        let ev = crate::events::AssetEvent {
            asset_id: id.as_str(),
            version: *version,
            source,
            by: ret.jid.as_str(),
        };
        shared
            .events
            .emit(|| format!("cmdb/asset/{}/changed", id.as_str()), &ev);
    }
}

fn auth(shared: &Shared, env: &Envelope, now_ms: i64) -> Result<(u64, ReplyBody), Refusal> {
    let key = env
        .carried_key()
        .map_err(|e| refuse(0, ErrorKind::Malformed, e.to_string()))?;
    let req: Request = env.open(&key).map_err(|e| {
        warn!(signer = %env.signer.escape_debug(), error = %e, "refused auth request");
        let kind = match e {
            ProtocolError::BadSignature { .. } => ErrorKind::BadSignature,
            _ => ErrorKind::Malformed,
        };
        refuse(0, kind, e.to_string())
    })?;
    let RequestBody::Auth(auth) = req.body else {
        return Err(refuse(
            req.id,
            ErrorKind::Malformed,
            "a keyed envelope must hold an auth request",
        ));
    };
    if auth.minion.as_str() != env.signer {
        warn!(claimed = %auth.minion, "refused auth request whose id differs from its signer");
        return Err(refuse(
            req.id,
            ErrorKind::IdentityMismatch,
            "auth id differs from signer",
        ));
    }
    let id = auth.minion;
    let window = shared.cfg.clock_skew_secs as i64 * 1000;
    check_fresh(req.sent_at_ms, now_ms, window)
        .map_err(|e| refuse(req.id, ErrorKind::Replay, e.to_string()))?;
    if auth.nonce.len() < 16
        || !shared
            .nonces
            .insert(id.as_str(), &auth.nonce, now_ms, window)
    {
        warn!(minion_id = %id, "refused replayed auth request");
        return Err(refuse(req.id, ErrorKind::Replay, "auth nonce seen before"));
    }
    // An id whose only key was put aside (denied) gets a pending key as a
    // new one does.
    let known = shared
        .pki
        .states_of(&id)
        .map_err(|e| {
            warn!(minion_id = %id, error = %e, "key store failed during auth");
            refuse(req.id, ErrorKind::Internal, "key store unavailable")
        })?
        .iter()
        .any(|s| *s != keys::KeyState::Denied);
    let autosign = shared.cfg.autosigned(id.as_str());
    // A new id's key is checked against the pending queue's limit and
    // written under the count's lock, so requests handled at the same time
    // cannot all pass the check and overfill the queue.
    let mut pending = (!known).then(|| {
        shared
            .pending_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    });
    if let Some(count) = &pending {
        check_limits(shared, &id, autosign, count.keys)
            .map_err(|m| refuse(req.id, ErrorKind::LimitReached, m))?;
    }
    let decision = shared
        .pki
        .authorize(&id, &key, autosign, shared.cfg.autorejected(id.as_str()))
        .map_err(|e| {
            warn!(minion_id = %id, error = %e, "pki store failed during auth");
            refuse(req.id, ErrorKind::Internal, "pki store unavailable")
        })?;
    if let AuthDecision::Pending { new: true } = decision {
        pending
            .get_or_insert_with(|| {
                shared
                    .pending_keys
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
            })
            .add();
    }
    drop(pending);
    let status = match decision {
        AuthDecision::Accepted => AuthStatus::Accepted,
        AuthDecision::Pending { new } => {
            if new {
                info!(minion_id = %id, fingerprint = %keys::Fingerprint::of(&key), "new key pending acceptance");
            }
            AuthStatus::Pending
        }
        AuthDecision::Rejected => AuthStatus::Rejected,
        AuthDecision::Denied => {
            warn!(minion_id = %id, fingerprint = %keys::Fingerprint::of(&key), "key differs from the one on record; new key denied");
            AuthStatus::Denied
        }
    };
    let mut session = None;
    if status == AuthStatus::Accepted {
        let (epoch, skey) = shared.keyring.session();
        session = Some(
            seal_session_key(&key, id.as_str(), random(), random(), epoch, &skey)
                .map_err(|e| refuse(req.id, ErrorKind::Malformed, e.to_string()))?,
        );
        shared.keyring.record_holder(id.as_str());
        shared.presence.seen(id.as_str(), now_ms);
        info!(minion_id = %id, "minion authenticated");
    }
    let ev = crate::events::AuthEvent {
        id: id.as_str(),
        result: match status {
            AuthStatus::Accepted => "accepted",
            AuthStatus::Pending => "pending",
            AuthStatus::Rejected => "rejected",
            _ => "denied",
        },
        fingerprint: keys::Fingerprint::of(&key).to_string(),
    };
    shared.events.emit(|| "cmdb/auth".into(), &ev);
    Ok((
        req.id,
        ReplyBody::Auth(AuthReply {
            nonce: auth.nonce,
            status,
            master_key: shared.master_key.verifying_key().to_bytes().to_vec(),
            session,
        }),
    ))
}

/// Refuses a new id when the pending queue or the minion count is full.
fn check_limits(
    shared: &Shared,
    id: &MinionId,
    autosign: bool,
    pending: usize,
) -> Result<(), String> {
    let cfg = &shared.cfg;
    if autosign && cfg.max_minions > 0 && shared.keyring.accepted_count() >= cfg.max_minions {
        shared.limit_log.warn("max_minions", cfg.max_minions, id);
        return Err(format!(
            "the master serves at most {} minions",
            cfg.max_minions
        ));
    }
    if !autosign && pending >= cfg.max_pending {
        shared.limit_log.warn("max_pending", cfg.max_pending, id);
        return Err(format!(
            "too many keys are pending ({}); try later",
            cfg.max_pending
        ));
    }
    Ok(())
}

/// Logs a refusal at most once a second, with how many were not logged.
pub struct LimitLog(crate::throttle::LogThrottle);

impl Default for LimitLog {
    fn default() -> Self {
        LimitLog(crate::throttle::LogThrottle::new(
            std::time::Duration::from_secs(1),
            1,
        ))
    }
}

impl LimitLog {
    fn warn(&self, limit: &'static str, max: usize, id: &MinionId) {
        if let Some(suppressed) = self.0.allow(std::time::Instant::now()) {
            warn!(limit, max, minion_id = %id, suppressed, "refused a new minion: limit reached");
        }
    }
}
