//! The messages carried inside envelopes.
//!
//! Three channels, three enums: a minion sends [`Request`]s on the request
//! socket, the master answers each with a [`Reply`], and the master sends
//! [`Publish`]es on the publish socket. Fields added in later protocol
//! versions carry `#[serde(default)]`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::id::MinionId;
use crate::jid::Jid;
use crate::target::Target;

/// A minion's message on the request socket. A sender may hold the body
/// by reference (`Request<&RequestBody>`): it encodes the same.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request<B = RequestBody> {
    /// Correlation id, echoed in the reply; unique per minion process.
    pub id: u64,
    /// When the minion sent it, unix milliseconds.
    pub sent_at_ms: i64,
    /// What the minion asks.
    pub body: B,
}

/// The kinds of request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestBody {
    /// Present a key and ask to be accepted.
    Auth(AuthRequest),
    /// The result of a job.
    Return(JobReturn),
    /// I am alive; these jobs are still running.
    Heartbeat(Heartbeat),
    /// Send me the signed jobs that expect my return and that I may have missed.
    MissedJobs(MissedJobs),
    /// Facts the minion collected on its own (agent mode); `fun` is
    /// `collect` and `jid` is one the minion made.
    Push(JobReturn),
    /// Read part of a file from the master's file roots (`cmdb://path`).
    FileRead(FileRead),
    /// Store part of a file in this minion's own directory on the master.
    FilePush(FilePush),
    /// I am stopping cleanly: count me offline now, not after
    /// `offline_after_secs` of silence. Answered like a heartbeat.
    Leaving,
    /// Part of a return too large for one frame, sent in order; the last
    /// part is answered as the whole return would be.
    ReturnChunk(ReturnChunk),
    /// Send me my pillar, compiled for my verified identity.
    Pillar,
    /// List the files below a directory of the master's file roots.
    FileList(FileList),
}

/// A directory of the master's file roots to list (`file.recurse`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileList {
    /// Path relative to the file roots, as in `cmdb://path`.
    pub path: String,
}

/// A file in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedFile {
    /// Path relative to the listed directory, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of its bytes.
    #[serde(with = "serde_bytes")]
    pub sha256: Vec<u8>,
}

/// Bytes of a return a chunk carries at most.
pub const RETURN_CHUNK_BYTES: usize = 1024 * 1024;

/// Part of a return (or pushed facts) too large for one frame: a slice of
/// the encoded [`JobReturn`], whose parts are sent in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnChunk {
    /// The job returned.
    pub jid: Jid,
    /// Where this part starts in the encoded return.
    pub offset: u64,
    /// The encoded return's whole size.
    pub total: u64,
    /// The bytes.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// Whether it is pushed facts (agent mode) rather than a job's return.
    pub push: bool,
}

/// A chunk of a file served from the master's file roots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRead {
    /// Path relative to the file roots, as in `cmdb://path`.
    pub path: String,
    /// Byte offset.
    pub offset: u64,
    /// Bytes wanted (the master may send fewer).
    pub len: u32,
}

/// A chunk of a file a minion sends to the master (`cp.push`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePush {
    /// Path relative to the minion's own directory on the master.
    pub path: String,
    /// Byte offset of this chunk (0 starts the file anew).
    pub offset: u64,
    /// The bytes.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// Whether this is the last chunk.
    pub last: bool,
    /// SHA-256 of the whole file, with the last chunk.
    #[serde(default, with = "serde_bytes")]
    pub sha256: Option<Vec<u8>>,
}

/// An auth request. The envelope carries the public key and is signed by it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthRequest {
    /// The id the minion claims; must equal the envelope signer.
    pub minion: MinionId,
    /// Random bytes, echoed in the reply so an old reply cannot be replayed.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
}

/// A job result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobReturn {
    /// The job.
    pub jid: Jid,
    /// The minion that ran it; must equal the envelope signer.
    pub minion: MinionId,
    /// The function that ran.
    pub fun: String,
    /// Whether the function succeeded.
    pub success: bool,
    /// Process-style return code (0 on success).
    pub retcode: i32,
    /// What the function returned.
    pub data: Value,
    /// Start time, unix milliseconds.
    pub started_ms: i64,
    /// End time, unix milliseconds.
    pub ended_ms: i64,
}

/// A liveness report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Jobs the minion is still running.
    #[serde(default)]
    pub running: Vec<Jid>,
}

/// Ask for missed jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissedJobs {}

/// The master's answer to one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The request id this answers.
    pub re: u64,
    /// The answer.
    pub body: ReplyBody,
}

/// The kinds of reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyBody {
    /// Answer to an auth request.
    Auth(AuthReply),
    /// A return was received (or had been received before).
    Ack {
        /// The job whose return is acknowledged.
        jid: Jid,
    },
    /// Answer to a heartbeat.
    Heartbeat(HeartbeatReply),
    /// Signed job envelopes (as encoded bytes) the minion should run.
    Jobs {
        /// Each element is an encoded [`crate::Envelope`] holding a [`Publish`].
        jobs: Vec<serde_bytes::ByteBuf>,
    },
    /// A file chunk.
    FileData {
        /// The bytes.
        data: serde_bytes::ByteBuf,
        /// The whole file's size.
        size: u64,
        /// SHA-256 of the whole file (with the chunk at offset 0).
        #[serde(default)]
        sha256: Option<serde_bytes::ByteBuf>,
    },
    /// A pushed file chunk was stored.
    FileStored {
        /// Bytes stored so far.
        size: u64,
    },
    /// The requesting minion's pillar (sealed to it like every reply to
    /// an accepted minion).
    Pillar {
        /// The compiled pillar, a mapping.
        data: Value,
    },
    /// The files below a listed directory, sorted by path.
    FileList {
        /// The files.
        files: Vec<ListedFile>,
    },
    /// A part of a large return was received.
    ChunkStored {
        /// Bytes of the return received so far.
        received: u64,
    },
    /// The request was refused.
    Error {
        /// Why, as a kind.
        kind: ErrorKind,
        /// Why, in words.
        message: String,
    },
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The frame or its payload could not be decoded.
    Malformed,
    /// The signature did not verify.
    BadSignature,
    /// The signer has no accepted key.
    NotAccepted,
    /// A payload field contradicts the verified signer.
    IdentityMismatch,
    /// The message is too old, from the future, or seen before.
    Replay,
    /// A return for a job that does not expect this minion.
    UnexpectedReturn,
    /// The master could not handle it now.
    Internal,
    /// Too many requests from this peer; try later.
    RateLimited,
    /// A configured limit (pending keys, minions) is reached.
    LimitReached,
    /// A file path escapes its root or is not allowed.
    PathRefused,
    /// No such file.
    NotFound,
    /// A return is larger than the master accepts (`max_return_bytes`).
    TooLarge,
}

/// Answer to an auth request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthReply {
    /// The nonce of the request answered.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// The decision.
    pub status: AuthStatus,
    /// The master's public key (32 bytes), always sent; the minion pins it.
    #[serde(with = "serde_bytes")]
    pub master_key: Vec<u8>,
    /// The publish session key, sealed to this minion (accepted only).
    #[serde(default)]
    pub session: Option<crate::seal::SealedSessionKey>,
}

/// The master's decision on a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthStatus {
    /// The key is accepted: the minion may take jobs.
    Accepted,
    /// The key waits for an operator.
    Pending,
    /// The key was rejected by an operator.
    Rejected,
    /// The id is accepted with another key; this one was put aside.
    Denied,
}

/// Answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// Changes whenever the master restarts; a minion that sees it change
    /// re-authenticates and resubscribes.
    pub boot_id: u64,
    /// Live jobs that expect this minion's return and have not got it.
    #[serde(default)]
    pub pending: Vec<Jid>,
    /// Epoch of the current publish session key; a minion holding an older
    /// one authenticates again to get it.
    #[serde(default)]
    pub session_epoch: u64,
}

/// A message on the publish socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Publish {
    /// A job to run.
    Job(Job),
}

/// A new publish session key handed to a group of minions on the publish
/// channel, under the group's topic ([`key_topic`]), before any job is
/// published under it: minions that keep their key then never miss a
/// publish after a rotation. Each key is sealed to its minion; the
/// envelope is signed by the master and not sealed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyHandOver {
    /// When the master made it, unix milliseconds.
    pub issued_at_ms: i64,
    /// The session key and its epoch, sealed to each minion of the group.
    pub keys: Vec<HandedKey>,
}

/// The session key sealed to one minion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandedKey {
    /// Whom it is for.
    pub minion: MinionId,
    /// The session key and its epoch, sealed to `minion`.
    pub key: crate::seal::SealedSessionKey,
}

/// How many groups minions fall into for key hand-overs: one message per
/// group reaches every member, so a rotation costs one message per group
/// rather than one per minion (with a publisher that checks every
/// subscriber for every message).
pub const KEY_GROUPS: usize = 256;

/// The publish topic on which `minion` gets [`KeyHandOver`]s: its group,
/// the first byte of the SHA-256 of its id. It does not start with the job
/// topic.
pub fn key_topic(minion: &str) -> String {
    use sha2::Digest;
    let group = sha2::Sha256::digest(minion.as_bytes())[0];
    format!("key/{group:02x}/")
}

/// A job as published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// The job id.
    pub jid: Jid,
    /// Who should run it.
    pub target: Target,
    /// The function to run, e.g. `test.ping`.
    pub fun: String,
    /// Positional arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Keyword arguments.
    #[serde(default)]
    pub kwargs: BTreeMap<String, String>,
    /// Seconds the minion lets the function run.
    pub timeout_secs: u64,
    /// When the master issued it, unix milliseconds.
    pub issued_at_ms: i64,
    /// Who asked for it.
    #[serde(default)]
    pub user: String,
    /// The minions the master expects to run it, sorted, when the target
    /// depends on facts (grain and compound targets): a minion then runs
    /// the job only if it is named here, so what runs is what the master
    /// shows, whatever the minion's live facts say. `None` for targets on
    /// ids alone, which every minion matches as the master does (and then
    /// not on the wire: such a job encodes as it always did).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<Vec<String>>,
}

impl Job {
    /// Whether minion `id` should run this job; `grains` are its facts,
    /// needed only when the target uses them and no expected list came.
    pub fn is_for(
        &self,
        matcher: &crate::target::Matcher,
        id: &str,
        grains: Option<&Value>,
    ) -> bool {
        match &self.expected {
            Some(list) => list.binary_search_by(|e| e.as_str().cmp(id)).is_ok(),
            None => matcher.matches(id, grains),
        }
    }
}

/// Whether `at_ms` lies within `window_ms` of `now_ms` (both directions).
pub fn check_fresh(at_ms: i64, now_ms: i64, window_ms: i64) -> Result<(), crate::ProtocolError> {
    if (now_ms - at_ms).abs() > window_ms {
        return Err(crate::ProtocolError::Stale {
            at_ms,
            now_ms,
            window_ms,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::encode_message;

    fn job(target: Target, expected: Option<Vec<String>>) -> Job {
        Job {
            jid: Jid::from_micros(1_700_000_000_000_000).expect("jid"),
            target,
            fun: "test.ping".into(),
            args: Vec::new(),
            kwargs: BTreeMap::new(),
            timeout_secs: 10,
            issued_at_ms: 0,
            user: "root".into(),
            expected,
        }
    }

    #[test]
    fn an_expected_list_decides_over_live_facts() {
        let grain = Target::Grain("os:Debian".into());
        let m = grain.matcher().expect("matcher");
        let facts = serde_json::json!({"os": "Debian"});
        let listed = job(grain.clone(), Some(vec!["a".into(), "c".into()]));
        assert!(listed.is_for(&m, "a", None));
        assert!(listed.is_for(&m, "c", Some(&facts)));
        assert!(
            !listed.is_for(&m, "b", Some(&facts)),
            "facts match, not listed"
        );
        let open = job(grain, None);
        assert!(open.is_for(&m, "b", Some(&facts)));
        assert!(!open.is_for(&m, "b", Some(&serde_json::json!({"os": "Rocky"}))));
    }

    #[test]
    fn a_job_without_a_list_encodes_without_the_field() {
        let plain = encode_message(&job(Target::Glob("*".into()), None)).expect("encode");
        let listed =
            encode_message(&job(Target::Glob("*".into()), Some(vec!["a".into()]))).expect("encode");
        let has = |b: &[u8]| b.windows(8).any(|w| w == b"expected");
        assert!(!has(&plain) && has(&listed));
        let back: Job = rmp_serde::from_slice(&plain).expect("decode");
        assert_eq!(back.expected, None);
    }
}
