//! Agentless collection over SSH through real processes: an sshd of the
//! test's own on a free port, a master whose roster points at it, and
//! `cmdb ssh`. Facts collected over SSH equal a local minion's for the
//! stable families and are stored as the host's asset (source `ssh`), which
//! keeps its asset id when a minion of the same id turns up; a changed host
//! key is refused naming both fingerprints until re-pinned; dead, hanging
//! and garbage-printing hosts and bad roster entries each fail alone, in
//! time, without delaying the others.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use tests::sshd::{Login, Sshd};
use tests::{Cluster, ClusterOpts, json_out, text, wait_until};

fn entry(id: &str, sshd: &Sshd, login: &Login, extra: &str) -> String {
    format!(
        "{id}:\n  host: 127.0.0.1\n  port: {}\n  user: root\n  priv: {}\n{extra}",
        sshd.port,
        login.key.display()
    )
}

fn cluster(roster: &Path, roster_text: &str, extra: &str) -> Cluster {
    std::fs::write(roster, roster_text).expect("roster");
    Cluster::start(ClusterOpts {
        master_extra: format!("roster = \"{}\"\n{extra}", roster.display()),
    })
}

/// `cmdb ssh ARGS --out json`: (results, stderr, exit code).
fn ssh_json(c: &Cluster, args: &[&str]) -> (Value, String, i32) {
    let mut all = vec!["ssh", "--out", "json"];
    all.extend_from_slice(args);
    let out = c.cmdb(&all);
    let stderr = text(&out.stderr);
    let v = if out.stdout.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("bad json ({e}): {}\n{stderr}", text(&out.stdout)))
    };
    (v, stderr, out.status.code().unwrap_or(-1))
}

/// A GET over the API's unix socket; the answer must be 200 and JSON.
fn api_get(c: &Cluster, path: &str) -> Value {
    let out = std::process::Command::new("curl")
        .args(["-s", "-f", "-m", "20", "--unix-socket"])
        .arg(c.master_state().join("api.sock"))
        .arg(format!("http://cmdb{path}"))
        .output()
        .expect("curl");
    json_out(&out)
}

/// The newest job in the job cache (`jobs list` is keyed by jid).
fn latest_jid(c: &Cluster) -> String {
    let jobs = json_out(&c.cmdb(&["jobs", "list", "--out", "json"]));
    jobs.as_object()
        .and_then(|j| j.keys().max().cloned())
        .unwrap_or_else(|| panic!("no jobs: {jobs}"))
}

#[test]
fn facts_over_ssh_equal_a_local_minions_and_are_stored_as_its_asset() {
    let dir = tempfile::tempdir().expect("tmp");
    let sshd = Sshd::start(&dir.path().join("sshd"));
    let login = sshd.login("root", "");
    let mut c = cluster(
        &dir.path().join("roster"),
        &entry("local", &sshd, &login, ""),
        // Uptime is versioned here, so every collect is a change.
        "[inventory]\nvolatile = []\n",
    );
    let (ping, stderr, code) = ssh_json(&c, &["local", "test.ping"]);
    assert_eq!(code, 0, "{stderr}\n{}", sshd.logs());
    assert_eq!(ping["local"], Value::Bool(true));

    let (over_ssh, stderr, code) = ssh_json(&c, &["local", "collect"]);
    assert_eq!(code, 0, "{stderr}");
    let facts = &over_ssh["local"];
    let cfg = c.minion_config("local", "local", "");
    let out = std::process::Command::new(tests::bin_dir().join("cmdb-minion"))
        .arg("-c")
        .arg(&cfg)
        .args(["collect", "--stdout"])
        .output()
        .expect("cmdb-minion collect");
    let local = json_out(&out);
    for key in [
        "id",
        "kernel",
        "kernelrelease",
        "kernelversion",
        "osarch",
        "os",
        "os_family",
        "osrelease",
        "osfullname",
        "cpu",
        "cpu_model",
        "num_cpus",
        "mem_total_bytes",
        "swap_total_bytes",
        "machine_id",
        "virtual",
        "virtual_subtype",
        "timezone",
    ] {
        assert!(local.get(key).is_some(), "the minion reports {key}");
        assert_eq!(facts.get(key), local.get(key), "{key}");
    }

    // Stored as the asset of roster id `local`, history included; later
    // collects over SSH are recorded with source `ssh`.
    let asset = json_out(&c.cmdb(&["asset", "show", "local", "--out", "json"]));
    assert_eq!(asset["facts"]["machine_id"], local["machine_id"], "{asset}");
    let asset_id = asset["asset_id"].as_str().expect("asset id").to_owned();
    wait_until(
        "a collect over SSH recorded as a change with source ssh",
        || {
            let (_, stderr, code) = ssh_json(&c, &["local", "collect"]);
            assert_eq!(code, 0, "{stderr}");
            let h = json_out(&c.cmdb(&["asset", "history", "local", "--out", "json"]));
            h["history"]
                .as_array()
                .is_some_and(|all| all.iter().any(|e| e["source"] == "ssh"))
        },
    );

    // A minion of the same id turns up: the same asset, now collected by it.
    c.start_accepted(&["local"]);
    let (_, stderr, code) = c.run_json(&["local", "collect"]);
    assert_eq!(code, 0, "{stderr}");
    let asset = json_out(&c.cmdb(&["asset", "show", "local", "--out", "json"]));
    assert_eq!(
        asset["asset_id"],
        asset_id.as_str(),
        "the asset keeps its id"
    );
    let h = json_out(&c.cmdb(&["asset", "history", "local", "--out", "json"]));
    let created = h["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter(|e| e["version"] == 0)
        .count();
    assert_eq!(created, 1, "one asset, created once: {h}");
}

#[test]
fn a_changed_host_key_is_refused_naming_both_fingerprints_until_re_pinned() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut sshd = Sshd::start(&dir.path().join("sshd"));
    let login = sshd.login("root", "");
    let c = cluster(
        &dir.path().join("roster"),
        &entry("web1", &sshd, &login, ""),
        "",
    );
    let (v, stderr, code) = ssh_json(&c, &["web1", "cmd.run", "echo hi"]);
    assert_eq!((code, &v["web1"]), (0, &Value::from("hi")), "{stderr}");
    let first = sshd.host_fingerprint();
    let known = std::fs::read_to_string(c.master_state().join("ssh_known_hosts")).expect("pinned");
    assert!(
        known.contains(&format!("[127.0.0.1]:{}", sshd.port)),
        "{known}"
    );

    sshd.new_host_key();
    sshd.restart();
    let second = sshd.host_fingerprint();
    assert_ne!(first, second);
    let out = c.cmdb(&["ssh", "web1", "cmd.run", "touch /tmp/cmdb-must-not-run"]);
    assert_eq!(out.status.code(), Some(1));
    let shown = text(&out.stdout);
    assert!(
        shown.contains(&first) && shown.contains(&second) && shown.contains("changed"),
        "{shown}"
    );
    assert!(shown.contains("--accept-new-hostkey web1"), "{shown}");
    // The error is in the job cache too.
    let jid = latest_jid(&c);
    let job = text(&c.cmdb(&["jobs", "show", &jid, "--out", "json"]).stdout);
    assert!(job.contains(&second), "{job}");

    let out = c.cmdb(&["ssh", "--accept-new-hostkey", "web1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&second), "{}", text(&out.stdout));
    let (v, stderr, code) = ssh_json(&c, &["web1", "test.ping"]);
    assert_eq!((code, &v["web1"]), (0, &Value::Bool(true)), "{stderr}");
}

#[test]
fn dead_hanging_and_garbage_hosts_fail_alone_in_time() {
    let dir = tempfile::tempdir().expect("tmp");
    let sshd = Sshd::start(&dir.path().join("sshd"));
    let good = sshd.login("good", "");
    let hang = sshd.login("hang", "command=\"sleep 600\"");
    let garbage = sshd.login(
        "garbage",
        "command=\"echo Welcome; head -c 2000 /dev/urandom\"",
    );
    let stranger = sshd.stranger("noauth");
    // A port that accepts connections and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    let dead_port = tests::free_port();
    let roster = format!(
        "{}{}{}{}dead:\n  host: 127.0.0.1\n  port: {dead_port}\n\
         silent:\n  host: 127.0.0.1\n  port: {silent_port}\n  timeout: 8\n\
         typo:\n  host: 127.0.0.1\n  prot: 22\n\
         \"../../etc/passwd\":\n  host: 127.0.0.1\n",
        entry("good", &sshd, &good, ""),
        entry("hang", &sshd, &hang, "  timeout: 8\n"),
        entry("garbage", &sshd, &garbage, ""),
        entry("noauth", &sshd, &stranger, ""),
    );
    let c = cluster(&dir.path().join("roster"), &roster, "");
    let start = Instant::now();
    let (v, stderr, code) = ssh_json(&c, &["*", "collect"]);
    let took = start.elapsed();
    assert_eq!(code, 1, "{stderr}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert_eq!(v["good"]["id"], "good", "{v}");
    assert!(v["good"]["num_cpus"].as_u64().is_some(), "{v}");
    let err = |id: &str| v[id].as_str().unwrap_or_default().to_owned();
    assert!(err("dead").contains("cannot reach 127.0.0.1"), "{v}");
    assert!(err("hang").contains("no answer within 8 s"), "{v}");
    assert!(
        err("silent").contains("no answer within 8 s") || err("silent").contains("cannot reach"),
        "{v}"
    );
    assert!(
        err("garbage").contains("holds no facts") && err("garbage").contains("Welcome"),
        "{v}"
    );
    assert!(err("typo").contains("prot"), "{v}");
    assert!(
        err("noauth").contains("root@127.0.0.1 refused the login"),
        "{v}"
    );
    assert!(err("../../etc/passwd").contains("not usable"), "{v}");
    assert!(stderr.contains("ERROR"), "{stderr}");

    let jid = latest_jid(&c);
    let job = json_out(&c.cmdb(&["jobs", "show", &jid, "--out", "json"]));
    let text_job = job.to_string();
    assert!(text_job.contains("no answer within 8 s"), "{job}");
    assert!(text_job.contains("not usable"), "{job}");
    assert!(text_job.contains("\"Transport\":\"ssh\""), "{job}");
    // The good host was not held up by the slow ones: its return ended
    // well before their 8 s timeout.
    let shown = api_get(&c, &format!("/v1/jobs/{jid}"));
    let started = shown["job"]["started_ms"].as_i64().expect("started");
    let ended = |id: &str| -> i64 {
        shown["returns"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["minion"] == id))
            .and_then(|r| r["ended_ms"].as_i64())
            .unwrap_or_else(|| panic!("no return of {id}: {shown}"))
            - started
    };
    assert!(ended("good") < 6000, "good took {} ms", ended("good"));
    assert!(
        ended("hang") >= 8000,
        "hang ended after {} ms",
        ended("hang")
    );
    drop(silent);
}

#[test]
fn the_roster_is_collected_on_a_schedule() {
    let dir = tempfile::tempdir().expect("tmp");
    let sshd = Sshd::start(&dir.path().join("sshd"));
    let login = sshd.login("root", "");
    let c = cluster(
        &dir.path().join("roster"),
        &entry("sched", &sshd, &login, ""),
        "[ssh]\ncollect_interval = 3600\n",
    );
    c.master().wait_for("scheduled collect over SSH");
    c.master().wait_for("job over SSH has every host's result");
    let asset = json_out(&c.cmdb(&["asset", "show", "sched", "--out", "json"]));
    assert_eq!(asset["facts"]["id"], "sched", "{asset}");
}

/// `cmdb` against the master's TLS listener with `token`, with its own
/// config dir for pinned certificates.
fn remote(c: &Cluster, token: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(tests::bin_dir().join("cmdb"))
        .args(["--url", &format!("https://127.0.0.1:{}", c.api_port)])
        .args(args)
        .env("XDG_CONFIG_HOME", c.dir.path().join("client-config"))
        .env("CMDB_TOKEN", token)
        .env_remove("CMDB_URL")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run cmdb")
}

#[test]
fn operators_run_over_ssh_only_what_their_acl_allows() {
    let dir = tempfile::tempdir().expect("tmp");
    let sshd = Sshd::start(&dir.path().join("sshd"));
    let login = sshd.login("root", "");
    let roster = format!(
        "{}{}",
        entry("web1", &sshd, &login, ""),
        entry("db1", &sshd, &login, "")
    );
    let c = cluster(&dir.path().join("roster"), &roster, "");
    let ok = |out: &std::process::Output| {
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    ok(&c.cmdb(&[
        "user",
        "add",
        "ops",
        "--role",
        "operator",
        "--targets",
        "web*",
        "--functions",
        "test.*",
    ]));
    ok(&c.cmdb(&["user", "add", "ann", "--role", "reader"]));
    let token = |user: &str| {
        ok(&c.cmdb(&["token", "create", user]))
            .lines()
            .last()
            .expect("token")
            .trim()
            .to_owned()
    };
    let (ops, ann) = (token("ops"), token("ann"));
    let out = remote(&c, &ops, &["ssh", "--out", "json", "web1", "test.ping"]);
    let v: Value = serde_json::from_str(&ok(&out)).expect("json");
    assert_eq!(v, serde_json::json!({"web1": true}));
    for (args, words) in [
        (&["ssh", "*", "test.ping"][..], "may not target db1"),
        (&["ssh", "web1", "cmd.run", "id"][..], "may not run cmd.run"),
    ] {
        let out = remote(&c, &ops, args);
        assert!(!out.status.success(), "{}", text(&out.stdout));
        assert!(text(&out.stderr).contains(words), "{}", text(&out.stderr));
    }
    let out = remote(&c, &ann, &["ssh", "web1", "test.ping"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("operator"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn killing_a_job_over_ssh_ends_its_open_sessions() {
    let dir = tempfile::tempdir().expect("tmp");
    let sshd = Sshd::start(&dir.path().join("sshd"));
    let good = sshd.login("good", "");
    let hang = sshd.login("hang", "command=\"sleep 600\"");
    let roster = format!(
        "{}{}",
        entry("good", &sshd, &good, ""),
        entry("hang", &sshd, &hang, "  timeout: 600\n")
    );
    let c = cluster(&dir.path().join("roster"), &roster, "");
    let out = c.cmdb(&["ssh", "--async", "*", "test.ping"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let jid = tests::jid_of(&out);
    wait_until("the good host returned", || {
        api_get(&c, &format!("/v1/jobs/{jid}"))["returns"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["minion"] == "good"))
    });
    let start = Instant::now();
    let out = c.cmdb(&["jobs", "kill", &jid, "--out", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["hang"], "killed", "{report}");
    assert_eq!(report["good"], "had already finished", "{report}");
    wait_until("the killed host returned", || {
        api_get(&c, &format!("/v1/jobs/{jid}"))["returns"]
            .as_array()
            .is_some_and(|r| {
                r.iter()
                    .any(|r| r["minion"] == "hang" && r["data"] == "ssh failed: the job was killed")
            })
    });
    assert!(start.elapsed() < Duration::from_secs(20));
}
