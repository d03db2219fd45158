//! Wire-format tests: round trips of every message, golden bytes that lock
//! the format, and arbitrary input that must never panic a decoder.
//!
//! To regenerate the golden files after a deliberate format change, run with
//! `CMDB_BLESS=1` and review the diff.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use protocol::{
    AuthReply, AuthRequest, AuthStatus, Envelope, ErrorKind, Heartbeat, HeartbeatReply, Jid, Job,
    JobReturn, MAX_FRAME_DEFAULT, MinionId, MissedJobs, Publish, Reply, ReplyBody, Request,
    RequestBody, Target,
};
use serde_json::{Value, json};

fn jid() -> impl Strategy<Value = Jid> {
    (0i64..4_000_000_000_000_000).prop_map(|us| Jid::from_micros(us).expect("jid"))
}

fn minion() -> impl Strategy<Value = MinionId> {
    "[a-z][a-z0-9.-]{0,30}".prop_filter_map("valid id", |s| MinionId::new(s).ok())
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        ".{0,10}".prop_map(Target::Glob),
        prop::collection::vec("[a-z]{1,5}", 0..3).prop_map(Target::List),
        ".{0,10}".prop_map(Target::Regex),
        ".{0,10}".prop_map(Target::Grain),
        ".{0,10}".prop_map(Target::Compound),
    ]
}

fn job_return() -> impl Strategy<Value = JobReturn> {
    (
        jid(),
        minion(),
        "[a-z.]{1,12}",
        any::<bool>(),
        any::<i32>(),
        value(),
        any::<i64>(),
        any::<i64>(),
    )
        .prop_map(
            |(jid, minion, fun, success, retcode, data, started_ms, ended_ms)| JobReturn {
                jid,
                minion,
                fun,
                success,
                retcode,
                data,
                started_ms,
                ended_ms,
            },
        )
}

fn request() -> impl Strategy<Value = Request> {
    let body = prop_oneof![
        (minion(), prop::collection::vec(any::<u8>(), 0..32))
            .prop_map(|(minion, nonce)| RequestBody::Auth(AuthRequest { minion, nonce })),
        job_return().prop_map(RequestBody::Return),
        prop::collection::vec(jid(), 0..3)
            .prop_map(|running| RequestBody::Heartbeat(Heartbeat { running })),
        Just(RequestBody::MissedJobs(MissedJobs {})),
        Just(RequestBody::Leaving),
        Just(RequestBody::Pillar),
        ".{0,20}".prop_map(|path| RequestBody::FileList(protocol::FileList { path })),
        (
            jid(),
            any::<u64>(),
            any::<u64>(),
            prop::collection::vec(any::<u8>(), 0..64),
            any::<bool>()
        )
            .prop_map(|(jid, offset, total, data, push)| RequestBody::ReturnChunk(
                protocol::ReturnChunk {
                    jid,
                    offset,
                    total,
                    data,
                    push
                }
            )),
        job_return().prop_map(RequestBody::Push),
        (".{0,20}", any::<u64>(), any::<u32>()).prop_map(|(path, offset, len)| {
            RequestBody::FileRead(protocol::FileRead { path, offset, len })
        }),
        (
            ".{0,20}",
            any::<u64>(),
            prop::collection::vec(any::<u8>(), 0..64),
            any::<bool>()
        )
            .prop_map(|(path, offset, data, last)| RequestBody::FilePush(
                protocol::FilePush {
                    path,
                    offset,
                    data,
                    last,
                    sha256: None
                }
            )),
    ];
    (any::<u64>(), any::<i64>(), body).prop_map(|(id, sent_at_ms, body)| Request {
        id,
        sent_at_ms,
        body,
    })
}

fn reply() -> impl Strategy<Value = Reply> {
    let status = prop_oneof![
        Just(AuthStatus::Accepted),
        Just(AuthStatus::Pending),
        Just(AuthStatus::Rejected),
        Just(AuthStatus::Denied),
    ];
    let kind = prop_oneof![
        Just(ErrorKind::Malformed),
        Just(ErrorKind::BadSignature),
        Just(ErrorKind::NotAccepted),
        Just(ErrorKind::IdentityMismatch),
        Just(ErrorKind::Replay),
        Just(ErrorKind::UnexpectedReturn),
        Just(ErrorKind::Internal),
        Just(ErrorKind::RateLimited),
        Just(ErrorKind::LimitReached),
        Just(ErrorKind::PathRefused),
        Just(ErrorKind::TooLarge),
        Just(ErrorKind::NotFound),
    ];
    let body = prop_oneof![
        (
            prop::collection::vec(any::<u8>(), 0..32),
            status,
            prop::collection::vec(any::<u8>(), 32)
        )
            .prop_map(|(nonce, status, master_key)| ReplyBody::Auth(AuthReply {
                nonce,
                status,
                master_key,
                session: None,
            })),
        jid().prop_map(|jid| ReplyBody::Ack { jid }),
        (
            any::<u64>(),
            prop::collection::vec(jid(), 0..3),
            any::<u64>()
        )
            .prop_map(|(boot_id, pending, session_epoch)| {
                ReplyBody::Heartbeat(HeartbeatReply {
                    boot_id,
                    pending,
                    session_epoch,
                })
            }),
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..3).prop_map(|jobs| {
            ReplyBody::Jobs {
                jobs: jobs.into_iter().map(serde_bytes::ByteBuf::from).collect(),
            }
        }),
        (kind, ".{0,30}").prop_map(|(kind, message)| ReplyBody::Error { kind, message }),
        (prop::collection::vec(any::<u8>(), 0..64), any::<u64>()).prop_map(|(data, size)| {
            ReplyBody::FileData {
                data: serde_bytes::ByteBuf::from(data),
                size,
                sha256: None,
            }
        }),
        any::<u64>().prop_map(|size| ReplyBody::FileStored { size }),
        any::<u64>().prop_map(|received| ReplyBody::ChunkStored { received }),
        prop::collection::vec((".{0,10}", any::<u64>()), 0..3).prop_map(|fs| {
            ReplyBody::FileList {
                files: fs
                    .into_iter()
                    .map(|(path, size)| protocol::ListedFile {
                        path,
                        size,
                        sha256: vec![7; 32],
                    })
                    .collect(),
            }
        }),
        (".{0,10}", any::<i64>()).prop_map(|(k, v)| ReplyBody::Pillar {
            data: serde_json::json!({ k: v }),
        }),
    ];
    (any::<u64>(), body).prop_map(|(re, body)| Reply { re, body })
}

fn publish() -> impl Strategy<Value = Publish> {
    (
        jid(),
        target(),
        "[a-z.]{1,12}",
        prop::collection::vec(".{0,10}", 0..3),
        prop::collection::btree_map("[a-z]{1,6}", ".{0,6}", 0..3),
        any::<u64>(),
        any::<i64>(),
        ".{0,8}",
        prop::option::of(prop::collection::btree_set("[a-z0-9.]{1,8}", 0..4)),
    )
        .prop_map(
            |(jid, target, fun, args, kwargs, timeout_secs, issued_at_ms, user, expected)| {
                Publish::Job(Job {
                    jid,
                    target,
                    fun,
                    args,
                    kwargs,
                    timeout_secs,
                    issued_at_ms,
                    user,
                    expected: expected.map(|e| e.into_iter().collect()),
                })
            },
        )
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

fn round_trip<M>(msg: &M) -> M
where
    M: serde::Serialize + serde::de::DeserializeOwned,
{
    let k = key();
    let ch = protocol::seal::SymmetricKey([3; 32]);
    let wire = Envelope::seal_private("web01", &k, &ch, [1; 24], msg)
        .expect("seal")
        .to_bytes();
    let env = Envelope::from_bytes(&wire, MAX_FRAME_DEFAULT).expect("envelope");
    env.open_private(&k.verifying_key(), Some(&ch), true)
        .expect("open")
}

proptest! {
    #[test]
    fn every_request_round_trips(req in request()) {
        prop_assert_eq!(round_trip(&req), req);
    }

    #[test]
    fn a_request_holding_its_body_by_reference_encodes_the_same(req in request()) {
        let by_ref = Request { id: req.id, sent_at_ms: req.sent_at_ms, body: &req.body };
        prop_assert_eq!(
            protocol::envelope::encode_message(&by_ref).expect("encode"),
            protocol::envelope::encode_message(&req).expect("encode")
        );
    }

    #[test]
    fn every_reply_round_trips(rep in reply()) {
        prop_assert_eq!(round_trip(&rep), rep);
    }

    #[test]
    fn every_publish_round_trips(p in publish()) {
        prop_assert_eq!(round_trip(&p), p);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = Envelope::from_bytes(&bytes, MAX_FRAME_DEFAULT);
        let _ = rmp_serde::from_slice::<Request>(&bytes);
        let _ = rmp_serde::from_slice::<Reply>(&bytes);
        let _ = rmp_serde::from_slice::<Publish>(&bytes);
        let _ = protocol::seal::Sealed::from_bytes(&bytes, MAX_FRAME_DEFAULT);
        let env = Envelope {
            version: 2,
            signer: "x".into(),
            key: None,
            sealed: false,
            payload: bytes.clone(),
            signature: vec![0; 64],
        };
        let _ = env.open::<Request>(&key().verifying_key());
    }

    #[test]
    fn arbitrary_target_expressions_never_panic(expr in ".{0,40}") {
        for t in [
            Target::Glob(expr.clone()),
            Target::Regex(expr.clone()),
            Target::Grain(expr.clone()),
            Target::Compound(expr.clone()),
            Target::list_from(&expr),
        ] {
            if let Ok(m) = t.matcher() {
                let _ = m.matches("web01", Some(&json!({"os": "Debian"})));
            }
        }
    }
}

fn golden(name: &str, bytes: &[u8]) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.hex"));
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if std::env::var_os("CMDB_BLESS").is_some() {
        std::fs::write(&path, format!("{hex}\n")).expect("write golden");
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with CMDB_BLESS=1 to create)", path.display()));
    assert_eq!(want.trim(), hex, "wire format of {name} changed");
}

fn fixed_jid() -> Jid {
    Jid::parse("20261121120000123456").expect("jid")
}

#[test]
fn golden_wire_format() {
    let k = key();
    let id = MinionId::new("web01").expect("id");
    let auth = Request {
        id: 1,
        sent_at_ms: 1_795_000_000_000,
        body: RequestBody::Auth(AuthRequest {
            minion: id.clone(),
            nonce: vec![7; 16],
        }),
    };
    let env = Envelope::seal("web01", &k, &auth)
        .expect("seal")
        .with_key(&k.verifying_key());
    golden("auth_request", &env.to_bytes());

    let ret = Request {
        id: 2,
        sent_at_ms: 1_795_000_000_000,
        body: RequestBody::Return(JobReturn {
            jid: fixed_jid(),
            minion: id,
            fun: "test.ping".into(),
            success: true,
            retcode: 0,
            data: json!(true),
            started_ms: 1_795_000_000_000,
            ended_ms: 1_795_000_000_001,
        }),
    };
    golden(
        "return",
        &Envelope::seal("web01", &k, &ret).expect("seal").to_bytes(),
    );

    let reply = Reply {
        re: 2,
        body: ReplyBody::Ack { jid: fixed_jid() },
    };
    golden(
        "ack",
        &Envelope::seal("master", &k, &reply)
            .expect("seal")
            .to_bytes(),
    );

    let job = Publish::Job(Job {
        jid: fixed_jid(),
        target: Target::Compound("web* and not web02".into()),
        fun: "cmd.run".into(),
        args: vec!["uptime".into()],
        kwargs: BTreeMap::from([("cwd".to_string(), "/tmp".to_string())]),
        timeout_secs: 600,
        issued_at_ms: 1_795_000_000_000,
        user: "root".into(),
        expected: None,
    });
    golden(
        "job",
        &Envelope::seal("master", &k, &job).expect("seal").to_bytes(),
    );
}

#[test]
fn golden_files_decode_to_the_messages() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/job.hex");
    let hex = std::fs::read_to_string(path).expect("golden job");
    let bytes: Vec<u8> = (0..hex.trim().len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    let env = Envelope::from_bytes(&bytes, MAX_FRAME_DEFAULT).expect("envelope");
    let Publish::Job(job) = env.open::<Publish>(&key().verifying_key()).expect("open");
    assert_eq!(job.fun, "cmd.run");
    assert_eq!(job.jid, fixed_jid());
}
