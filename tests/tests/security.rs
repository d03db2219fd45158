//! Attacks that hit Salt masters, each replayed against cmdb through real
//! processes. Every one must fail and leave the master serving.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use protocol::seal::Sealed;
use protocol::{Envelope, ErrorKind, MinionId, ReplyBody, RequestBody};
use serde_json::json;
use tests::fixture::HostRoot;
use tests::raw::{
    RawDealer, RawPublisher, Sniffer, cmd_job, job_return, now_jid, now_ms, refused_kind,
    session_key,
};
use tests::{Cluster, ClusterOpts, WAIT, free_port, read_key, text};

#[test]
fn cve_2020_11651_unauthenticated_requests_of_every_kind_dispatch_nothing() {
    let mut c = Cluster::start(ClusterOpts::default());
    c.start_accepted(&["web01"]);
    let mk = c.master_key();
    let ghost = keys::generate().expect("key");
    let mut d = RawDealer::connect(&c.ret_endpoint());
    let jid = now_jid();
    let bodies = [
        RequestBody::Heartbeat(protocol::Heartbeat { running: vec![] }),
        RequestBody::MissedJobs(protocol::MissedJobs {}),
        RequestBody::Return(job_return(&jid, "ghost", json!("x"), "test.ping")),
        RequestBody::Push(job_return(
            &jid,
            "ghost",
            json!({"host": "ghost"}),
            "collect",
        )),
    ];
    for body in bodies.clone() {
        let r = d.request("ghost", &ghost, body, &mk);
        assert_eq!(refused_kind(&r.body), Some(ErrorKind::NotAccepted));
    }
    // Claiming an accepted id without its key fails the signature check.
    for body in bodies {
        let body = match body {
            RequestBody::Return(mut r) | RequestBody::Push(mut r) => {
                r.minion = MinionId::new("web01").expect("id");
                RequestBody::Push(r)
            }
            other => other,
        };
        let frame = tests::raw::plain_request("web01", &ghost, body);
        d.send_frames(vec![frame]);
        let r = d.recv_reply(&mk).expect("reply");
        assert_eq!(refused_kind(&r.body), Some(ErrorKind::BadSignature));
    }
    let jobs = c.cmdb(&["jobs", "list", "--out", "json"]);
    assert_eq!(text(&jobs.stdout).trim(), "{}");
    let assets = c.cmdb(&["asset", "list", "--out", "json"]);
    assert_eq!(text(&assets.stdout).trim(), "[]");
    let (v, _, code) = c.run_json(&["*", "test.ping"]);
    assert_eq!((v, code), (json!({"web01": true}), 0));
}

fn raw_auth_with_id(id: &str, key: &keys::SigningKey) -> Vec<u8> {
    // Built by hand: the protocol types refuse such ids before they can be sent.
    let req = json!({
        "id": 5,
        "sent_at_ms": now_ms(),
        "body": {"auth": {"minion": id, "nonce": vec![9u8; 16]}},
    });
    let payload = rmp_serde::to_vec_named(&req).expect("encode");
    Envelope::seal_bytes(id, key, payload)
        .with_key(&key.verifying_key())
        .to_bytes()
}

#[test]
fn cve_2020_11652_2017_14695_2024_38824_path_tricks_in_ids_are_refused() {
    let mut c = Cluster::start(ClusterOpts {
        master_extra: "autosign = [\"*\"]".into(),
    });
    c.start_accepted(&[]);
    let mk = c.master_key();
    let key = keys::generate().expect("key");
    let mut d = RawDealer::connect(&c.ret_endpoint());
    let long = "a".repeat(300);
    for id in [
        "../../../../tmp/evil",
        "/etc/evil",
        "a\0b",
        "..",
        "evil\\..\\x",
        long.as_str(),
        "x/../../y",
    ] {
        d.send_frames(vec![raw_auth_with_id(id, &key)]);
        let r = d.recv_reply(&mk).expect("reply");
        assert!(
            matches!(refused_kind(&r.body), Some(ErrorKind::Malformed)),
            "{id:?}: {:?}",
            r.body
        );
    }
    let r = d.request(
        "../x",
        &key,
        RequestBody::MissedJobs(protocol::MissedJobs {}),
        &mk,
    );
    assert_eq!(refused_kind(&r.body), Some(ErrorKind::Malformed));
    let keys = c.keys_json();
    for state in [
        "minions",
        "minions_pre",
        "minions_rejected",
        "minions_denied",
    ] {
        assert_eq!(keys[state], json!([]), "{state}");
    }
    for dir in ["accepted", "pending", "rejected", "denied"] {
        let n = std::fs::read_dir(c.master_state().join("pki").join(dir))
            .expect("dir")
            .count();
        assert_eq!(n, 0, "{dir} holds files");
    }
    assert!(!std::path::Path::new("/tmp/evil").exists());
    assert!(!std::path::Path::new("/etc/evil").exists());
    let out = c.cmdb(&["asset", "show", "../../etc/passwd"]);
    assert!(
        text(&out.stderr).contains("no asset"),
        "{}",
        text(&out.stderr)
    );
    let out = c.key(&["-d", "../*", "-y"]);
    assert!(text(&out.stdout).contains("does not match any keys"));
}

#[test]
fn cve_2013_4439_2025_62349_a_minion_cannot_push_facts_as_another() {
    let mut c = Cluster::start(ClusterOpts::default());
    c.start_accepted(&["web01", "web02"]);
    let mk = c.master_key();
    let web01 = read_key(&c.minion_state("web01").join("minion.pem"));
    let mut d = RawDealer::connect(&c.ret_endpoint());
    let push = RequestBody::Push(job_return(
        &now_jid(),
        "web02",
        json!({"host": "forged"}),
        "collect",
    ));
    let r = d.request("web01", &web01, push, &mk);
    assert_eq!(refused_kind(&r.body), Some(ErrorKind::IdentityMismatch));
    let out = c.cmdb(&["asset", "show", "web02"]);
    assert!(!out.status.success(), "no asset was made for web02");
}

#[test]
fn cve_2024_38823_a_job_replayed_after_a_minion_restart_does_not_run_again() {
    let mut c = Cluster::start(ClusterOpts::default());
    let fake_pub = free_port();
    let mut publisher = RawPublisher::bind(fake_pub);
    let extra = format!("publish_port = {fake_pub}");
    c.start_minion_with("web01", "web01", &extra)
        .wait_for("key pending acceptance");
    c.key(&["-A", "-y"]);
    c.minion("web01").wait_for("minion ready");
    let master = read_key(&c.master_state().join("pki/master.pem"));
    let web01 = read_key(&c.minion_state("web01").join("minion.pem"));
    let out = c.dir.path().join("ran");
    let legit = Envelope::seal(
        "master",
        &master,
        &cmd_job(&format!("echo x >> {}", out.display()), now_ms()),
    )
    .expect("seal")
    .to_bytes();
    let (epoch, session) = session_key(&c.ret_endpoint(), "web01", &web01, &master.verifying_key());
    let deadline = Instant::now() + WAIT;
    while c.minion("web01").count("return") == 0 {
        assert!(Instant::now() < deadline, "the job never ran");
        publisher.publish_sealed(epoch, &session, &legit);
        std::thread::sleep(Duration::from_millis(100));
    }
    c.minions.get_mut("web01").expect("web01").terminate();
    c.start_minion_with("web01", "web01", &extra)
        .wait_for("minion ready");
    let (epoch, session) = session_key(&c.ret_endpoint(), "web01", &web01, &master.verifying_key());
    let deadline = Instant::now() + WAIT;
    while c.minion("web01").count("dropped a job already seen") == 0 {
        assert!(Instant::now() < deadline, "the replay was never seen");
        publisher.publish_sealed(epoch, &session, &legit);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(std::fs::read_to_string(&out).expect("ran"), "x\n");
}

#[test]
fn cve_2021_25283_2020_28243_collected_values_are_stored_and_shown_literally() {
    let mut c = Cluster::start(ClusterOpts::default());
    let root = HostRoot::new(c.dir.path().join("root"), "web01", "S1");
    root.set_hostname("{{7*7}}$(id)");
    let plugins = c.dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).expect("mkdir");
    let pwned = c.dir.path().join("pwned");
    let p = plugins.join("evil");
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\nprintf '%s' '{{\"tpl\": \"{{{{7*7}}}}\", \"sub\": \"$(touch {})\", \"jinja\": \"{{% raw %}}\"}}'\n",
            pwned.display()
        ),
    )
    .expect("write");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let extra = format!(
        "root = \"{}\"\nplugins_dir = \"{}\"",
        root.path.display(),
        plugins.display()
    );
    c.start_minion_with("evil-$(id)", "evil-$(id)", &extra)
        .wait_for("key pending acceptance");
    c.key(&["-A", "-y"]);
    c.minion("evil-$(id)").wait_for("minion ready");
    let (v, stderr, code) = c.run_json(&["*", "collect"]);
    assert_eq!(code, 0, "{stderr}");
    let f = &v["evil-$(id)"];
    assert_eq!(f["host"], "{{7*7}}$(id)");
    assert_eq!(f["tpl"], "{{7*7}}");
    assert_eq!(f["sub"], format!("$(touch {})", pwned.display()));
    let shown = c.cmdb(&["asset", "show", "evil-$(id)", "--out", "json"]);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("json");
    assert_eq!(shown["facts"]["host"], "{{7*7}}$(id)");
    assert_eq!(shown["facts"]["jinja"], "{% raw %}");
    let table = text(&c.cmdb(&["asset", "list"]).stdout);
    assert!(table.contains("{{7*7}}$(id)"), "{table}");
    let (v, _, _) = c.run_json(&["*", "cmd.run", "printf '%s' '{{7*7}}'"]);
    assert_eq!(v["evil-$(id)"], "{{7*7}}");
    assert!(!pwned.exists(), "a collected value was evaluated");
    assert!(text(&c.key(&["-L"]).stdout).contains("evil-$(id)"));
}

#[test]
fn a_sniffer_on_the_pub_port_sees_no_command_text() {
    let mut c = Cluster::start(ClusterOpts::default());
    c.start_accepted(&["web01"]);
    let sniffer = Sniffer::start(c.publish_port);
    let deadline = Instant::now() + WAIT;
    while sniffer.frames().is_empty() {
        assert!(Instant::now() < deadline, "the sniffer never saw a publish");
        let (v, _, _) = c.run_json(&["*", "cmd.run", "echo TOPSECRET-4711"]);
        assert_eq!(v["web01"], "TOPSECRET-4711");
    }
    let frames = sniffer.frames();
    let all: Vec<u8> = frames.concat();
    for needle in [&b"TOPSECRET"[..], b"cmd.run", b"echo", b"web01"] {
        assert!(
            !all.windows(needle.len()).any(|w| w == needle),
            "the sniffer read {:?}",
            String::from_utf8_lossy(needle)
        );
    }
}

#[test]
fn a_deleted_minion_reads_nothing_published_after_rotation() {
    let mut c = Cluster::start(ClusterOpts::default());
    c.start_accepted(&["web01", "web02"]);
    let mk = c.master_key();
    let web02 = read_key(&c.minion_state("web02").join("minion.pem"));
    let (old_epoch, old_key) = session_key(&c.ret_endpoint(), "web02", &web02, &mk);
    let sniffer = Sniffer::start(c.publish_port);
    let deadline = Instant::now() + WAIT;
    while sniffer.frames().len() < 2 {
        assert!(Instant::now() < deadline, "the sniffer never saw a publish");
        c.run_json(&["*", "test.ping"]);
    }
    let before = Sealed::from_bytes(&sniffer.frames()[1], usize::MAX).expect("sealed");
    assert!(
        before.open(&old_key, b"cmdb-publish").is_ok(),
        "the key opened publishes before"
    );

    c.minions.get_mut("web02").expect("web02").kill();
    let out = c.key(&["-d", "web02", "-y"]);
    assert!(out.status.success());
    c.master().wait_for("session key rotated");
    let seen = sniffer.frames().len();
    let (v, stderr, code) = c.run_json(&["*", "cmd.run", "echo after-rotation", "-t", "10"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        v,
        json!({"web01": "after-rotation"}),
        "the remaining minion picked up the new key"
    );
    let deadline = Instant::now() + WAIT;
    while sniffer.frames().len() <= seen {
        assert!(Instant::now() < deadline, "no publish after rotation");
        c.run_json(&["*", "test.ping"]);
    }
    for frame in &sniffer.frames()[seen..] {
        if let Ok(s) = Sealed::from_bytes(frame, usize::MAX) {
            assert!(s.key_id > old_epoch, "published under a new epoch");
            assert!(
                s.open(&old_key, b"cmdb-publish").is_err(),
                "the deleted minion read a publish"
            );
        }
    }
    let mut d = RawDealer::connect(&c.ret_endpoint());
    let a = d.auth("web02", &web02, &mk);
    assert!(a.session.is_none(), "a deleted minion gets no session key");
}

#[test]
fn deleting_one_key_while_pings_run_leaves_every_other_minion_answering() {
    let mut c = Cluster::start(ClusterOpts::default());
    let ids = ["web01", "web02", "web03", "web04"];
    // A long rotation_spread: a minion that had to fetch the new key on its
    // own would miss the pings below.
    for id in ids {
        c.start_minion_with(id, id, "rotation_spread = 60\n")
            .wait_for("key pending acceptance");
    }
    assert!(c.key(&["-A", "-y"]).status.success());
    for id in ids {
        c.minion(id).wait_for("minion ready");
    }
    let (v, stderr, code) = c.run_json(&["*", "test.ping"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(v.as_object().map(|o| o.len()), Some(4));

    let rotations = c.master().count("session key rotated");
    assert!(c.key(&["-d", "web04", "-y"]).status.success());
    c.master().wait_for_n("session key rotated", rotations + 1);
    let expected = json!({"web01": true, "web02": true, "web03": true});
    for round in 0..5 {
        let (v, stderr, code) = c.run_json(&["*", "test.ping"]);
        assert_eq!((code, &v), (0, &expected), "ping {round}: {stderr}");
    }
    for id in ["web01", "web02", "web03"] {
        assert_eq!(
            c.minion(id)
                .count("took the new session key handed over by the master"),
            1,
            "{id}"
        );
        assert_eq!(
            c.minion(id).count("picked up the new session key"),
            0,
            "{id}"
        );
    }
    assert_eq!(
        c.minion("web04")
            .count("took the new session key handed over by the master"),
        0,
        "the deleted minion was handed nothing"
    );
}

#[test]
fn a_flood_of_ten_thousand_fake_auth_requests_leaves_accepted_minions_served() {
    let mut c = Cluster::start(ClusterOpts {
        master_extra: "max_pending = 100".into(),
    });
    c.start_accepted(&["web01"]);
    let mk = c.master_key();
    let endpoint = c.ret_endpoint();
    let flood = std::thread::spawn(move || {
        let started = Instant::now();
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        let fakes: Vec<keys::SigningKey> = (1..=200u8)
            .map(|b| keys::SigningKey::from_bytes(&[b; 32]))
            .collect();
        for conn in 0..50 {
            let mut d = RawDealer::connect(&endpoint);
            let mut frames = Vec::new();
            for (i, key) in fakes.iter().enumerate() {
                frames.push(raw_auth_with_id(&format!("fake-{conn}-{i}"), key));
            }
            for f in frames {
                d.send_frames(vec![f]);
            }
            for _ in 0..200 {
                let Some(r) = d.recv_reply(&mk) else { break };
                let k = match r.body {
                    ReplyBody::Auth(a) => format!("{:?}", a.status),
                    ReplyBody::Error { kind, .. } => format!("{kind:?}"),
                    other => format!("{other:?}"),
                };
                *counts.entry(k).or_default() += 1;
            }
        }
        eprintln!("flood of 10,000 auth requests took {:?}", started.elapsed());
        counts
    });
    let mut pings = 0;
    while !flood.is_finished() || pings < 3 {
        let (v, stderr, code) = c.run_json(&["web01", "test.ping", "-t", "10"]);
        assert_eq!((v, code), (json!({"web01": true}), 0), "{stderr}");
        pings += 1;
    }
    let counts = flood.join().expect("flood");
    assert!(
        counts.get("RateLimited").is_some_and(|n| *n > 0),
        "{counts:?}"
    );
    let keys = c.keys_json();
    assert!(
        keys["minions_pre"].as_array().expect("pending").len() <= 100,
        "{counts:?}"
    );
    assert!(
        c.master().count("limit reached") > 0 || counts.contains_key("LimitReached"),
        "{counts:?}"
    );
}

#[test]
fn the_minion_refuses_a_private_key_others_can_read() {
    let mut c = Cluster::start(ClusterOpts::default());
    c.start_minion("web01").wait_for("key pending acceptance");
    c.minions.get_mut("web01").expect("web01").terminate();
    let pem = c.minion_state("web01").join("minion.pem");
    std::fs::set_permissions(&pem, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    c.start_minion("web01").wait_for("readable by other users");
}

#[test]
fn cmdb_refuses_an_api_socket_owned_by_another_user() {
    let c = Cluster::start(ClusterOpts::default());
    let sock = c.master_state().join("api.sock");
    let mode = std::fs::metadata(&sock)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    nix::unistd::chown(&sock, Some(nix::unistd::Uid::from_raw(65534)), None).expect("chown");
    let out = c.cmdb(&["jobs", "list"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("refusing API socket"),
        "{}",
        text(&out.stderr)
    );
    nix::unistd::chown(&sock, Some(nix::unistd::Uid::from_raw(0)), None).expect("chown back");
    assert!(c.cmdb(&["jobs", "list"]).status.success());
}
