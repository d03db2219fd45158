//! Forged, replayed, impersonating and malformed input against real
//! processes: each must be refused and leave the master serving.

use std::time::{Duration, Instant};

use protocol::{
    AuthRequest, Envelope, ErrorKind, Heartbeat, Jid, MinionId, MissedJobs, ReplyBody, Request,
    RequestBody,
};
use serde_json::json;
use tests::raw::{
    RawDealer, RawPublisher, cmd_job, job_return, now_ms, refused_kind, signed_request, tcp_garbage,
};
use tests::{Cluster, ClusterOpts, WAIT, free_port, read_key, text};

fn return_body(jid: &Jid, minion: &str, data: serde_json::Value) -> RequestBody {
    RequestBody::Return(job_return(jid, minion, data, "test.ping"))
}

fn async_jid(c: &Cluster, args: &[&str]) -> Jid {
    let mut all = vec!["run", "--async"];
    all.extend_from_slice(args);
    let out = c.cmdb(&all);
    let stdout = text(&out.stdout);
    let jid = stdout.trim().rsplit(' ').next().expect("job id printed");
    Jid::parse(jid).expect("jid")
}

#[test]
fn job_signed_by_another_key_or_stale_or_seen_is_not_executed() {
    let mut c = Cluster::start(ClusterOpts::default());
    let fake_pub = free_port();
    let mut publisher = RawPublisher::bind(fake_pub);
    c.start_minion_with("web01", "web01", &format!("publish_port = {fake_pub}"))
        .wait_for("key pending acceptance");
    c.key(&["-A", "-y"]);
    c.minion("web01").wait_for("minion ready");

    let dir = c.dir.path().to_owned();
    let master = read_key(&c.master_state().join("pki/master.pem"));
    let attacker = keys::generate().expect("key");
    let forged = Envelope::seal(
        "master",
        &attacker,
        &cmd_job(&format!("touch {}/forged", dir.display()), now_ms()),
    )
    .expect("seal")
    .to_bytes();
    let stale = Envelope::seal(
        "master",
        &master,
        &cmd_job(
            &format!("touch {}/stale", dir.display()),
            now_ms() - 3_600_000,
        ),
    )
    .expect("seal")
    .to_bytes();
    let legit = Envelope::seal(
        "master",
        &master,
        &cmd_job(&format!("echo ran >> {}/legit", dir.display()), now_ms()),
    )
    .expect("seal")
    .to_bytes();

    let web01 = read_key(&c.minion_state("web01").join("minion.pem"));
    let (epoch, session) =
        tests::raw::session_key(&c.ret_endpoint(), "web01", &web01, &master.verifying_key());
    let wrong = protocol::seal::SymmetricKey([7; 32]);
    let deadline = Instant::now() + WAIT;
    while c.minion("web01").count("dropped a job already seen") == 0 {
        assert!(Instant::now() < deadline, "the legit job never ran");
        publisher.publish_raw(b"not a sealed publish");
        publisher.publish_sealed(epoch, &wrong, &legit);
        publisher.publish_sealed(epoch, &session, &forged);
        publisher.publish_sealed(epoch, &session, &stale);
        publisher.publish_sealed(epoch, &session, &legit);
        // The SUB joins asynchronously and PUB drops before that; resend.
        std::thread::sleep(Duration::from_millis(100));
    }
    c.minion("web01").wait_for("return");
    assert_eq!(
        std::fs::read_to_string(dir.join("legit")).expect("legit ran"),
        "ran\n",
        "a job seen twice runs once"
    );
    assert!(
        !dir.join("forged").exists(),
        "a job with a forged signature ran"
    );
    assert!(!dir.join("stale").exists(), "a stale job ran");
    let log = c.minion("web01").logs();
    assert!(log.contains("bad signature"), "{log}");
    assert!(log.contains("outside the accepted window"), "{log}");
    assert!(log.contains("does not open"), "{log}");
    assert!(log.contains("undecodable publish"), "{log}");
}

#[test]
fn cve_2013_4439_2025_62349_a_minion_key_cannot_return_for_another_minion() {
    let mut c = Cluster::start(ClusterOpts::default());
    c.start_accepted(&["web01", "web02"]);
    c.minions.get_mut("web02").expect("web02").kill();
    let jid = async_jid(&c, &["-L", "web01,web02", "test.ping"]);
    c.minion("web01").wait_for("return acknowledged");

    let web01 = read_key(&c.minion_state("web01").join("minion.pem"));
    let mk = c.master_key();
    let forged_ret = |data: &str| return_body(&jid, "web02", json!(data));
    let mut d = RawDealer::connect(&c.ret_endpoint());
    let r = d.request("web01", &web01, forged_ret("claims web02"), &mk);
    assert_eq!(refused_kind(&r.body), Some(ErrorKind::IdentityMismatch));
    let r = d.request("web02", &web01, forged_ret("signed by web01"), &mk);
    assert_eq!(refused_kind(&r.body), Some(ErrorKind::BadSignature));

    let out = c.cmdb(&["jobs", "show", jid.as_str(), "--out", "json"]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(shown[jid.as_str()]["Result"], json!({"web01": true}));
    assert_eq!(shown[jid.as_str()]["Missing"], json!(["web02"]));
}

#[test]
fn a_forged_request_among_many_sent_at_once_is_refused_and_the_rest_answered() {
    // The master checks the signatures of queued requests together; a bad
    // one in the batch must still be found and refused alone.
    let mut c = Cluster::start(ClusterOpts::default());
    c.start_accepted(&["web01"]);
    let web01 = read_key(&c.minion_state("web01").join("minion.pem"));
    let mk = c.master_key();
    let ch = tests::raw::channel(&web01, &mk, "web01");
    let heartbeat = || {
        RequestBody::Heartbeat(Heartbeat {
            running: Vec::new(),
        })
    };
    let mut d = RawDealer::connect(&c.ret_endpoint());
    let (sent, forged_at) = (40, 17);
    for i in 0..sent {
        let mut frame = signed_request("web01", &web01, heartbeat(), &mk);
        if i == forged_at {
            let mut env = Envelope::from_bytes(&frame, usize::MAX).expect("envelope");
            env.signature[40] ^= 0x01;
            frame = env.to_bytes();
        }
        d.send_frames(vec![frame]);
    }
    let (mut answered, mut refused) = (0, 0);
    for _ in 0..sent {
        let r = d
            .recv_sealed_reply(&mk, ch.as_ref())
            .expect("a reply for every request");
        match r.body {
            ReplyBody::Heartbeat(_) => answered += 1,
            other => {
                assert_eq!(refused_kind(&other), Some(ErrorKind::BadSignature));
                refused += 1;
            }
        }
    }
    assert_eq!((answered, refused), (sent - 1, 1));
    c.master().wait_for("bad signature");
}

#[test]
fn cve_2024_38823_a_replayed_return_is_acknowledged_and_ignored() {
    let mut c = Cluster::start(ClusterOpts::default());
    c.start_accepted(&["web01", "web02"]);
    c.minions.get_mut("web02").expect("web02").kill();
    let jid = async_jid(&c, &["-L", "web01,web02", "test.ping"]);
    let web02 = read_key(&c.minion_state("web02").join("minion.pem"));
    let mk = c.master_key();
    let ret = |data: &str| return_body(&jid, "web02", json!(data));
    let first = signed_request("web02", &web02, ret("first"), &mk);
    let ch = tests::raw::channel(&web02, &mk, "web02");
    let mut d = RawDealer::connect(&c.ret_endpoint());
    for _ in 0..2 {
        d.send_frames(vec![first.clone()]);
        let r = d.recv_sealed_reply(&mk, ch.as_ref()).expect("reply");
        assert_eq!(r.body, ReplyBody::Ack { jid: jid.clone() });
    }
    let r = d.request("web02", &web02, ret("second"), &mk);
    assert_eq!(r.body, ReplyBody::Ack { jid: jid.clone() });
    c.master().wait_for_n("ignored duplicate return", 2);

    let out = c.cmdb(&["jobs", "show", jid.as_str(), "--out", "json"]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(shown[jid.as_str()]["Result"]["web02"], json!("first"));

    // A return for a job that never expected this minion is refused.
    let other = async_jid(&c, &["web01", "test.ping"]);
    let stray = return_body(&other, "web02", json!(true));
    let r = d.request("web02", &web02, stray, &mk);
    assert_eq!(refused_kind(&r.body), Some(ErrorKind::UnexpectedReturn));
}

#[test]
fn cve_2020_11651_unknown_keys_get_nothing_dispatched_and_cve_2024_38823_auth_replays_are_refused()
{
    let mut c = Cluster::start(ClusterOpts::default());
    c.start_accepted(&["web01"]);
    let mk = c.master_key();
    let ghost = keys::generate().expect("key");
    let mut d = RawDealer::connect(&c.ret_endpoint());
    for body in [
        RequestBody::Heartbeat(Heartbeat { running: vec![] }),
        RequestBody::MissedJobs(MissedJobs {}),
    ] {
        let r = d.request("ghost", &ghost, body, &mk);
        assert_eq!(refused_kind(&r.body), Some(ErrorKind::NotAccepted));
    }
    // A pending minion cannot fetch jobs either.
    let auth = |nonce: Vec<u8>, sent_at_ms: i64| {
        let req = Request {
            id: 9,
            sent_at_ms,
            body: RequestBody::Auth(AuthRequest {
                minion: MinionId::new("ghost").expect("id"),
                nonce,
            }),
        };
        Envelope::seal("ghost", &ghost, &req)
            .expect("seal")
            .with_key(&ghost.verifying_key())
            .to_bytes()
    };
    let frame = auth(vec![7; 16], now_ms());
    d.send_frames(vec![frame.clone()]);
    let r = d.recv_reply(&mk).expect("reply");
    assert!(matches!(r.body, ReplyBody::Auth(ref a) if a.status == protocol::AuthStatus::Pending));
    d.send_frames(vec![frame]);
    let r = d.recv_reply(&mk).expect("reply");
    assert_eq!(refused_kind(&r.body), Some(ErrorKind::Replay));
    d.send_frames(vec![auth(vec![8; 16], now_ms() - 3_600_000)]);
    let r = d.recv_reply(&mk).expect("reply");
    assert_eq!(refused_kind(&r.body), Some(ErrorKind::Replay));
    let r = d.request("ghost", &ghost, RequestBody::MissedJobs(MissedJobs {}), &mk);
    assert_eq!(refused_kind(&r.body), Some(ErrorKind::NotAccepted));

    let (v, _, code) = c.run_json(&["*", "test.ping"]);
    assert_eq!((v, code), (json!({"web01": true}), 0));
}

#[test]
fn garbage_truncated_and_oversized_frames_leave_the_master_serving() {
    let mut c = Cluster::start(ClusterOpts::default());
    c.start_accepted(&["web01"]);
    let mk = c.master_key();
    for port in [c.ret_port, c.publish_port] {
        tcp_garbage(port, b"GET / HTTP/1.1\r\n\r\n");
        tcp_garbage(port, &[0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f]);
        tcp_garbage(port, &[0xab; 70_000]);
    }
    let web01 = read_key(&c.minion_state("web01").join("minion.pem"));
    let good = signed_request("web01", &web01, RequestBody::MissedJobs(MissedJobs {}), &mk);
    let ch = tests::raw::channel(&web01, &mk, "web01");
    let mut d = RawDealer::connect(&c.ret_endpoint());
    let mut future_version = Envelope::from_bytes(&good, usize::MAX).expect("decode");
    future_version.version = 99;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"garbage".to_vec(), "malformed"),
        (good[..good.len() / 2].to_vec(), "malformed"),
        (future_version.to_bytes(), "not supported"),
    ];
    for (frame, words) in cases {
        d.send_frames(vec![frame]);
        let r = d.recv_reply(&mk).expect("a refusal");
        match r.body {
            ReplyBody::Error { kind, message } => {
                assert_eq!(kind, ErrorKind::Malformed);
                assert!(message.contains(words), "{message}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    // A frame over max_frame_bytes is refused on its header: the connection
    // is dropped and logged, with no reply.
    let mut big = RawDealer::connect(&c.ret_endpoint());
    big.send_frames(vec![vec![0x91; 5 * 1024 * 1024]]);
    c.master()
        .wait_for("frame of 5242880 bytes exceeds the limit of 4194304 bytes");
    d.send_frames(vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    // A request in the clear from an accepted minion is refused.
    d.send_frames(vec![tests::raw::plain_request(
        "web01",
        &web01,
        RequestBody::MissedJobs(MissedJobs {}),
    )]);
    let r = d.recv_sealed_reply(&mk, ch.as_ref()).expect("a refusal");
    assert!(
        matches!(r.body, ReplyBody::Error { kind: ErrorKind::Malformed, ref message } if message.contains("sealed")),
        "{:?}",
        r.body
    );
    d.send_frames(vec![good]);
    let r = d
        .recv_sealed_reply(&mk, ch.as_ref())
        .expect("the master still answers");
    assert!(matches!(r.body, ReplyBody::Jobs { .. }), "{:?}", r.body);

    let (v, stderr, code) = c.run_json(&["*", "test.ping"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(v, json!({"web01": true}));
}
