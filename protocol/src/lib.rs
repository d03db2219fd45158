//! The cmdb wire protocol.
//!
//! Everything a master and a minion say to each other: the signed [`Envelope`],
//! the messages inside it ([`Request`], [`Reply`], [`Publish`]), job ids
//! ([`Jid`]), minion ids ([`MinionId`]) and target expressions ([`Target`]).
//! This crate performs no I/O and never reads the clock: callers pass the time.

pub mod envelope;
pub mod error;
pub mod fnmatch;
pub mod id;
pub mod jid;
pub mod message;
pub mod seal;
pub mod target;
pub mod text;

pub use envelope::{Envelope, MAX_FRAME_DEFAULT, PROTOCOL_VERSION};
pub use error::ProtocolError;
pub use id::MinionId;
pub use jid::{Jid, JidGenerator};
pub use message::{
    AuthReply, AuthRequest, AuthStatus, ErrorKind, FileList, FilePush, FileRead, HandedKey,
    Heartbeat, HeartbeatReply, Job, JobReturn, KEY_GROUPS, KeyHandOver, ListedFile, MissedJobs,
    Publish, RETURN_CHUNK_BYTES, Reply, ReplyBody, Request, RequestBody, ReturnChunk, key_topic,
};
pub use target::{Matcher, Target};
