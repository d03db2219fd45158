//! A master whose store is PostgreSQL (a real server of the test's own on
//! 127.0.0.1): jobs, returns and assets land there and are there after a
//! restart; a master whose database cannot be reached says so and stops.

use serde_json::json;
use store::postgres::server::LocalServer;
use tests::{Cluster, ClusterOpts, Peers, Proc, json_out};

fn two_peers() -> Peers {
    Peers::start("autosign = [\"*\"]\n", false)
}

/// Two peers, minion web01 connected to a and db01 to b, both ready.
fn web01_on_a_and_db01_on_b() -> Peers {
    let mut peers = two_peers();
    peers.a.start_minion("web01");
    peers.b.start_minion("db01");
    peers.a.minion("web01").wait_for("minion ready");
    peers.b.minion("db01").wait_for("minion ready");
    peers
}

fn postgres() -> (tempfile::TempDir, LocalServer) {
    let dir = tempfile::tempdir().expect("tmp");
    let server = LocalServer::start(dir.path(), false).expect("postgres");
    (dir, server)
}

#[test]
fn a_master_on_postgres_keeps_jobs_and_assets_across_a_restart() {
    let (_pg_dir, server) = postgres();
    let url = server.create_database("cmdb").expect("database");
    let mut c = Cluster::start(ClusterOpts {
        master_extra: format!("store = \"{url}\"\n"),
    });
    c.start_accepted(&["web01", "db01"]);
    let (v, stderr, code) = c.run_json(&["*", "collect"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(v["web01"]["id"], "web01");
    let listed = json_out(&c.cmdb(&["asset", "list", "--out", "json"]));
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    // Nothing went to an embedded database.
    assert!(!c.master_state().join("db").exists());

    c.master.as_mut().expect("master").kill();
    c.start_master();
    let listed = json_out(&c.cmdb(&["asset", "list", "--out", "json"]));
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    let shown = json_out(&c.cmdb(&["asset", "show", "web01", "--out", "json"]));
    assert_eq!(shown["facts"]["id"], "web01", "{shown}");
    let jobs = json_out(&c.cmdb(&["jobs", "list", "--out", "json"]));
    let jid = jobs
        .as_object()
        .and_then(|j| j.keys().next())
        .expect("the collect job")
        .clone();
    let shown = json_out(&c.cmdb(&["jobs", "show", &jid, "--out", "json"]));
    assert_eq!(shown[&jid]["Result"]["db01"]["id"], json!("db01"));
    for id in ["web01", "db01"] {
        c.minion(id).wait_for_n("minion ready", 2);
    }
    let (v, _, code) = c.run_json(&["*", "test.ping"]);
    assert_eq!((v, code), (json!({"db01": true, "web01": true}), 0));
}

#[test]
fn a_master_whose_database_is_unreachable_names_it_and_stops() {
    let port = tests::free_port();
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("master.toml");
    std::fs::write(
        &cfg,
        format!(
            "interface = \"127.0.0.1\"\npublish_port = {}\nret_port = {}\nstate_dir = \"{}\"\n\
             store = \"postgres://cmdb:secret@127.0.0.1:{port}/cmdb\"\n[api]\nlisten = \"127.0.0.1:{}\"\n",
            tests::free_port(),
            tests::free_port(),
            dir.path().join("state").display(),
            tests::free_port(),
        ),
    )
    .expect("config");
    let mut cmd = std::process::Command::new(tests::bin_dir().join("cmdb-master"));
    cmd.arg("-c").arg(&cfg);
    let mut master = Proc::spawn("master", cmd);
    let status = master.wait_exit();
    assert!(!status.success());
    let logs = master.logs();
    assert!(
        logs.contains(&format!("postgres://cmdb:***@127.0.0.1:{port}/cmdb")),
        "{logs}"
    );
    assert!(logs.contains("unreachable"), "{logs}");
    assert!(
        !logs.contains("secret"),
        "the password is not shown: {logs}"
    );
}

#[test]
fn keys_live_in_postgres_and_cmdb_key_works_on_them_while_the_master_is_stopped() {
    let (_pg_dir, server) = postgres();
    let url = server.create_database("cmdb").expect("database");
    let mut c = Cluster::start(ClusterOpts {
        master_extra: format!("store = \"{url}\"\n"),
    });
    c.start_minion("web01");
    c.minion("web01").wait_for("key pending acceptance");
    assert_eq!(c.keys_json()["minions_pre"], json!(["web01"]));
    // No key file: the key is in the database.
    assert!(!c.master_state().join("pki/pending/web01").exists());
    c.master.as_mut().expect("master").terminate();
    let out = c.key(&["-a", "web01", "-y"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(c.keys_json()["minions"], json!(["web01"]));
    c.start_master();
    c.minion("web01").wait_for("minion ready");
    let (v, _, code) = c.run_json(&["*", "test.ping"]);
    assert_eq!((v, code), (json!({"web01": true}), 0));
}

#[test]
fn a_key_accepted_on_one_peer_lets_the_minion_in_on_another() {
    let (_pg_dir, server) = postgres();
    let url = server.create_database("cmdb").expect("database");
    let extra = format!("store = \"{url}\"\n");
    let a = Cluster::start(ClusterOpts {
        master_extra: extra.clone(),
    });
    // The peers share the master keypair, provisioned into each pki dir.
    let mut b = Cluster::start_peer(
        &a,
        ClusterOpts {
            master_extra: extra,
        },
    );
    b.start_minion("web01");
    b.minion("web01").wait_for("key pending acceptance");
    assert_eq!(a.keys_json()["minions_pre"], json!(["web01"]), "seen on a");
    let out = a.key(&["-a", "web01", "-y"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    b.minion("web01").wait_for("minion ready");
    let (v, stderr, code) = b.run_json(&["*", "test.ping"]);
    assert_eq!((v, code), (json!({"web01": true}), 0), "{stderr}");
    assert_eq!(b.keys_json()["minions"], json!(["web01"]));
}

#[test]
fn while_postgres_is_away_jobs_are_refused_with_a_clear_error_and_work_again_after() {
    let (_pg_dir, mut server) = postgres();
    let url = server.create_database("cmdb").expect("database");
    let mut c = Cluster::start(ClusterOpts {
        master_extra: format!("store = \"{url}\"\n"),
    });
    c.start_accepted(&["web01"]);
    server.stop();
    let out = c.cmdb(&["run", "*", "test.ping", "--out", "json"]);
    assert!(!out.status.success(), "a job with no database to record it");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("PostgreSQL") && stderr.contains("unreachable"),
        "{stderr}"
    );
    server.resume().expect("resume");
    let (v, stderr, code) = c.run_json(&["*", "test.ping"]);
    assert_eq!((v, code), (json!({"web01": true}), 0), "{stderr}");
    let listed = json_out(&c.cmdb(&["jobs", "list", "--out", "json"]));
    assert_eq!(listed.as_object().map(|j| j.len()), Some(1), "{listed}");
}

/// Two peers of a master cluster on one database and one NATS server, each
/// with a minion of its own: a job published on either reaches both
/// minions, and each `cmdb run` sees both returns.
#[test]
fn a_job_from_one_peer_reaches_the_minions_of_the_other_and_its_returns_come_back() {
    let mut peers = web01_on_a_and_db01_on_b();
    let Peers { a, b, .. } = &mut peers;
    let both = json!({"db01": true, "web01": true});
    let (v, stderr, code) = b.run_json(&["*", "test.ping", "-t", "20"]);
    assert_eq!((v, code), (both.clone(), 0), "from b: {stderr}");
    let (v, stderr, code) = a.run_json(&["*", "test.ping", "-t", "20"]);
    assert_eq!((v, code), (both, 0), "from a: {stderr}");
    // The job cache is the shared database's: either peer shows the job.
    let jobs = json_out(&a.cmdb(&["jobs", "list", "--out", "json"]));
    assert_eq!(jobs.as_object().map(|j| j.len()), Some(2), "{jobs}");
    // Assets collected through one peer are listed by the other.
    let (v, stderr, code) = a.run_json(&["*", "collect", "-t", "20"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(v["db01"]["id"], "db01", "db01's facts came back through b");
    let listed = json_out(&b.cmdb(&["asset", "list", "--out", "json"]));
    let mut minions: Vec<String> = listed
        .as_array()
        .expect("assets")
        .iter()
        .filter_map(|a| a["minion"].as_str().map(str::to_owned))
        .collect();
    minions.sort();
    assert_eq!(minions, ["db01", "web01"], "{listed}");
}

/// A job followed on the peer that did not publish it: every return comes
/// with its data, those of the publisher's own minions too (the publisher
/// sends its returns on with their JSON only once a peer asks).
#[test]
fn a_job_followed_on_a_peer_that_did_not_publish_it_streams_every_return() {
    let mut peers = web01_on_a_and_db01_on_b();
    let Peers { a, b, .. } = &mut peers;
    // The minions take a while, so they return after b follows the job.
    let out = a.cmdb(&["run", "*", "test.sleep", "2", "--async"]);
    let jid = tests::jid_of(&out);
    let followed = std::process::Command::new("curl")
        .args(["-s", "-N", "-m", "60", "--unix-socket"])
        .arg(b.master_state().join("api.sock"))
        .arg(format!("http://cmdb/v1/jobs/{jid}/returns?timeout=20"))
        .output()
        .expect("curl");
    let text = tests::text(&followed.stdout);
    let mut returned: Vec<(String, serde_json::Value)> = text
        .split("event: ret\n")
        .skip(1)
        .filter_map(|e| e.lines().next()?.strip_prefix("data: "))
        .map(|d| {
            let v: serde_json::Value = serde_json::from_str(d).expect("return json");
            (
                v["minion"].as_str().unwrap_or("").to_owned(),
                v["data"].clone(),
            )
        })
        .collect();
    returned.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        returned,
        [
            ("db01".to_owned(), json!(true)),
            ("web01".to_owned(), json!(true))
        ],
        "{text}"
    );
    assert!(
        text.contains("event: done\ndata: {\"missing\":[]}"),
        "{text}"
    );
}

/// Minions reach the peers through HAProxy, which may send a minion's two
/// connections to different peers: the session key the peers share opens
/// the jobs of either, whichever peer the minion authenticated with.
#[test]
fn through_haproxy_a_minion_split_over_two_peers_takes_jobs_from_both() {
    let mut peers = two_peers();
    let Peers { a, b, .. } = &mut peers;
    // The first minion's PUB connection goes to a, its requests to b.
    let lb = tests::Haproxy::start(&[a.publish_port, b.publish_port], &[b.ret_port, a.ret_port]);
    a.start_minion_through("web01", &lb);
    a.minion("web01").wait_for("minion ready");
    let (v, stderr, code) = a.run_json(&["*", "test.ping", "-t", "20"]);
    assert_eq!((v, code), (json!({"web01": true}), 0), "from a: {stderr}");
    let (v, stderr, code) = b.run_json(&["*", "test.ping", "-t", "20"]);
    assert_eq!((v, code), (json!({"web01": true}), 0), "from b: {stderr}");
    // One session key on both peers.
    let epoch = |c: &Cluster| -> String {
        let out = std::process::Command::new("curl")
            .args(["-s", "-m", "20", "--unix-socket"])
            .arg(c.master_state().join("api.sock"))
            .arg("http://cmdb/metrics")
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|l| l.starts_with("cmdb_session_key_epoch "))
            .unwrap_or_default()
            .to_owned()
    };
    let shown = epoch(a);
    assert!(!shown.is_empty(), "no epoch in GET /metrics");
    assert_eq!(shown, epoch(b));
    // A key deleted on one peer rotates the session key of both, to one
    // new key.
    let out = a.key(&["-d", "web01", "-y"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tests::wait_until("both peers on one new session key", || {
        let (x, y) = (epoch(a), epoch(b));
        x == y && x != shown
    });
}

/// While NATS is away a peer refuses new jobs, saying why, and takes them
/// again once it is back.
#[test]
fn while_nats_is_away_a_peer_refuses_jobs_and_takes_them_again_after() {
    let (_pg_dir, server) = postgres();
    let url = server.create_database("cmdb").expect("database");
    let mut nats = tests::Nats::start();
    let mut a = Cluster::start(ClusterOpts {
        master_extra: format!(
            "store = \"{url}\"\ncluster_id = \"dc1\"\nnats_url = \"{}\"\nautosign = [\"*\"]\n",
            nats.url()
        ),
    });
    a.start_minion("web01");
    a.minion("web01").wait_for("minion ready");
    nats.stop();
    tests::wait_until("a job is refused for want of NATS", || {
        let out = a.cmdb(&["run", "*", "test.ping", "--out", "json"]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        !out.status.success() && stderr.contains("NATS") && stderr.contains("unreachable")
    });
    nats.resume();
    tests::wait_until("jobs are taken again", || {
        let (v, _, code) = a.run_json(&["*", "test.ping", "-t", "10"]);
        code == 0 && v == json!({"web01": true})
    });
}

/// A peer killed while its minion runs a job published on another peer:
/// the minion reconnects through HAProxy to the other peer, returns there,
/// and the job completes for the `cmdb run` waiting on that peer.
#[test]
fn a_peer_killed_mid_job_and_the_job_completes_through_the_other() {
    let mut peers = two_peers();
    let Peers { a, b, .. } = &mut peers;
    // Both connections of the first minion go to a.
    let lb = tests::Haproxy::start(&[a.publish_port, b.publish_port], &[a.ret_port, b.ret_port]);
    a.start_minion_through("web01", &lb);
    a.minion("web01").wait_for("minion ready");
    std::thread::scope(|s| {
        let run = s.spawn(|| b.run_json(&["web01", "cmd.run", "sleep 2; echo done", "-t", "60"]));
        a.minion("web01").wait_for("running job");
        a.master.as_mut().expect("master a").kill();
        let (v, stderr, code) = run.join().expect("cmdb run");
        assert_eq!((v, code), (json!({"web01": "done"}), 0), "{stderr}");
    });
    // Stored once, in the shared job cache.
    let jobs = json_out(&b.cmdb(&["jobs", "list", "--out", "json"]));
    let jid = jobs
        .as_object()
        .and_then(|j| j.keys().next())
        .expect("the job")
        .clone();
    let shown = json_out(&b.cmdb(&["jobs", "show", &jid, "--out", "json"]));
    assert_eq!(shown[&jid]["Result"], json!({"web01": "done"}));
}

/// `master = [...]` in a minion's config: the peers listed in order.
fn listing(peers: &[&Cluster]) -> String {
    let tables: Vec<String> = peers
        .iter()
        .map(|p| {
            format!(
                "{{ host = \"127.0.0.1\", publish_port = {}, ret_port = {} }}",
                p.publish_port, p.ret_port
            )
        })
        .collect();
    format!("master = [{}]", tables.join(", "))
}

/// The master a minion last authenticated with, from its log.
fn authenticated_with(minion: &tests::Proc) -> String {
    minion
        .lines_with("authenticated with the master")
        .last()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_minion_listing_the_peers_fails_over_to_the_next_when_its_peer_dies() {
    let mut peers = two_peers();
    let Peers { a, b, .. } = &mut peers;
    let listed = listing(&[&*a, &*b]);
    let (a_port, b_port) = (format!(":{}", a.ret_port), format!(":{}", b.ret_port));
    a.start_minion_with("web01", "web01", &listed);
    a.minion("web01").wait_for("minion ready");
    let line = authenticated_with(a.minion("web01"));
    assert!(line.contains(&a_port), "the first listed peer: {line}");
    let (v, stderr, code) = b.run_json(&["web01", "test.ping"]);
    assert_eq!((v, code), (json!({"web01": true}), 0), "{stderr}");

    a.master_mut().kill();
    a.minion("web01").wait_for("trying the next master");
    a.minion("web01").wait_for_n("minion ready", 2);
    let line = authenticated_with(a.minion("web01"));
    assert!(
        line.contains(&b_port),
        "moved on to the second peer: {line}"
    );
    let (v, stderr, code) = b.run_json(&["web01", "test.ping"]);
    assert_eq!((v, code), (json!({"web01": true}), 0), "{stderr}");

    // A minion whose first listed peer is down starts on the next one.
    a.start_minion_with("db01", "db01", &listed);
    a.minion("db01").wait_for("minion ready");
    let line = authenticated_with(a.minion("db01"));
    assert!(line.contains(&b_port), "{line}");
    let (v, stderr, code) = b.run_json(&["*", "test.ping"]);
    assert_eq!(
        (v, code),
        (json!({"db01": true, "web01": true}), 0),
        "{stderr}"
    );
}

#[test]
fn a_job_killed_on_one_peer_is_not_handed_by_another_to_a_minion_that_missed_it() {
    let mut peers = two_peers();
    let Peers { a, b, .. } = &mut peers;
    b.start_minion("web01");
    b.minion("web01").wait_for("minion ready");
    b.minions.get_mut("web01").expect("web01").terminate();
    // Published on a while web01 is away, then killed there.
    let out = a.cmdb(&["run", "--async", "web01", "cmd.run", "echo ran"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let jid = tests::jid_of(&out);
    let kill = a.cmdb(&["jobs", "kill", &jid, "--out", "json"]);
    let said = String::from_utf8_lossy(&kill.stderr);
    assert!(said.contains("did not answer the kill"), "{said}");
    b.master().wait_for("job killed on another peer");
    // Back on b, web01 gets the kill as a missed job, not the killed job.
    b.start_minion("web01");
    b.minion("web01").wait_for("return acknowledged");
    let ran: Vec<String> = b
        .minion("web01")
        .lines_with("running job")
        .into_iter()
        .filter(|l| l.contains(&jid))
        .collect();
    assert!(ran.is_empty(), "the killed job ran: {ran:?}");
    let shown = json_out(&a.cmdb(&["jobs", "show", &jid, "--out", "json"]));
    assert_eq!(shown[&jid]["Result"], json!({}), "{shown}");
}

/// A batch job started on one peer reaches, wave by wave, the minions of
/// every peer.
#[test]
fn a_batch_started_on_one_peer_starts_the_minions_of_the_other() {
    let mut peers = two_peers();
    let Peers { a, b, .. } = &mut peers;
    a.start_minion("m1");
    b.start_minion("m2");
    b.start_minion("m3");
    for (peer, m) in [(&a, "m1"), (&b, "m2"), (&b, "m3")] {
        peer.minion(m).wait_for("minion ready");
    }
    let (v, stderr, code) = a.run_json(&["-b", "1", "m*", "test.ping", "-t", "30"]);
    assert_eq!(
        (v, code),
        (json!({"m1": true, "m2": true, "m3": true}), 0),
        "{stderr}"
    );
}
