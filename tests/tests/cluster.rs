//! End-to-end scenarios through real processes on 127.0.0.1.

use std::time::Instant;

use serde_json::json;
use tests::{Cluster, ClusterOpts, text};

fn cluster() -> Cluster {
    Cluster::start(ClusterOpts::default())
}

#[test]
fn pending_keys_accepted_with_accept_all_then_three_minions_answer_ping() {
    let mut c = cluster();
    for id in ["web01", "web02", "db01"] {
        c.start_minion(id);
    }
    for id in ["web01", "web02", "db01"] {
        c.minion(id).wait_for("key pending acceptance");
    }
    let keys = c.keys_json();
    assert_eq!(keys["minions_pre"], json!(["db01", "web01", "web02"]));
    assert_eq!(keys["minions"], json!([]));
    let listing = text(&c.key(&["-L"]).stdout);
    assert!(
        listing.contains("Unaccepted Keys:\ndb01\nweb01\nweb02"),
        "{listing}"
    );

    let out = c.key(&["-A", "-y"]);
    assert!(out.status.success());
    for id in ["web01", "web02", "db01"] {
        c.minion(id).wait_for("minion ready");
    }
    assert_eq!(c.keys_json()["minions"], json!(["db01", "web01", "web02"]));

    let started = Instant::now();
    let (v, stderr, code) = c.run_json(&["*", "test.ping"]);
    eprintln!(
        "cmdb run '*' test.ping against 3 minions: {:?}",
        started.elapsed()
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(v, json!({"db01": true, "web01": true, "web02": true}));

    let (v, _, code) = c.run_json(&["web*", "test.ping"]);
    assert_eq!(code, 0);
    assert_eq!(v, json!({"web01": true, "web02": true}));
    let (v, _, _) = c.run_json(&["-L", "db01,web02", "test.ping"]);
    assert_eq!(v, json!({"db01": true, "web02": true}));
    let (v, _, _) = c.run_json(&["-E", "web0[2-9]", "test.ping"]);
    assert_eq!(v, json!({"web02": true}));
    let (v, _, _) = c.run_json(&["-C", "web* and not web01", "test.ping"]);
    assert_eq!(v, json!({"web02": true}));
}

#[test]
fn nested_output_and_job_cache() {
    let mut c = cluster();
    c.start_accepted(&["web01"]);
    let out = c.cmdb(&["run", "*", "test.ping"]);
    assert_eq!(text(&out.stdout), "web01:\n    True\n");
    let out = c.cmdb(&["run", "*", "sys.list_functions", "--out", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        v["web01"]
            .as_array()
            .expect("list")
            .contains(&json!("cmd.run_all"))
    );

    let out = c.cmdb(&["jobs", "list", "--out", "json"]);
    let jobs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let jobs = jobs.as_object().expect("object");
    assert_eq!(jobs.len(), 2);
    let (jid, job) = jobs
        .iter()
        .find(|(_, j)| j["Function"] == "test.ping")
        .expect("ping job");
    assert_eq!(job["Expected"], json!(1));
    let out = c.cmdb(&["jobs", "show", jid, "--out", "json"]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(shown[jid]["Result"], json!({"web01": true}));

    let out = c.cmdb(&["jobs", "show", "../../etc/passwd"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("invalid job id"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn invalid_target_is_an_error_before_publishing() {
    let mut c = cluster();
    c.start_accepted(&["web01"]);
    let out = c.cmdb(&["run", "-E", "(", "test.ping"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("invalid target"),
        "{}",
        text(&out.stderr)
    );
    let out = c.cmdb(&["jobs", "list", "--out", "json"]);
    assert_eq!(text(&out.stdout).trim(), "{}");
}

#[test]
fn reject_then_delete_lets_the_minion_register_again() {
    let mut c = cluster();
    c.start_minion("web01");
    c.minion("web01").wait_for("key pending acceptance");
    let out = c.key(&["-r", "web01", "-y"]);
    assert!(text(&out.stdout).contains("Key for minion web01 rejected."));
    assert_eq!(c.keys_json()["minions_rejected"], json!(["web01"]));
    c.minion("web01").wait_for("rejected this minion's key");
    let (_, stderr, code) = c.run_json(&["*", "test.ping"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("No minions matched"), "{stderr}");

    let out = c.key(&["-d", "web01", "-y"]);
    assert!(text(&out.stdout).contains("Key for minion web01 deleted."));
    c.master().wait_for_n("new key pending acceptance", 2);
    assert_eq!(c.keys_json()["minions_pre"], json!(["web01"]));
    c.key(&["-a", "web01", "-y"]);
    c.minion("web01").wait_for("minion ready");
    let (v, _, code) = c.run_json(&["*", "test.ping"]);
    assert_eq!((v, code), (json!({"web01": true}), 0));
}

#[test]
fn key_conflict_denies_the_new_key_and_the_original_still_answers() {
    let mut c = cluster();
    c.start_accepted(&["web01"]);
    c.start_minion_with("impostor", "web01", "");
    c.master().wait_for("new key denied");
    c.minion("impostor").wait_for("this key was denied");
    let keys = c.keys_json();
    assert_eq!(keys["minions"], json!(["web01"]));
    assert_eq!(keys["minions_denied"], json!(["web01"]));
    let original =
        std::fs::read_to_string(c.master_state().join("pki/accepted/web01")).expect("key");
    let theirs = std::fs::read_to_string(c.minion_state("web01").join("minion.pub")).expect("key");
    assert_eq!(original, theirs, "the accepted key is still the original");
    let (v, _, code) = c.run_json(&["web01", "test.ping"]);
    assert_eq!((v, code), (json!({"web01": true}), 0));
    assert_eq!(c.minion("impostor").count("running job"), 0);

    // Accepting the denied key over the accepted one needs --force, and
    // both fingerprints are shown either way.
    let fp = |state: &str| {
        let out = c.key(&["-f", "web01", "--out", "json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        v[state]["web01"].as_str().expect("fingerprint").to_owned()
    };
    let (accepted_fp, denied_fp) = (fp("minions"), fp("minions_denied"));
    assert_ne!(accepted_fp, denied_fp);
    let out = c.key(&["-a", "web01", "--include-denied", "-y"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&accepted_fp) && err.contains(&denied_fp) && err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(c.master_state().join("pki/accepted/web01")).expect("key"),
        original
    );
    let out = c.key(&[
        "-a",
        "web01",
        "--include-denied",
        "--force",
        "-y",
        "--out",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v, json!({"accepted": ["web01"]}));
    let err = text(&out.stderr);
    assert!(
        err.contains(&accepted_fp) && err.contains(&denied_fp),
        "{err}"
    );
    assert_eq!(fp("minions"), denied_fp);
}

#[test]
fn cmdb_key_answers_json_lists_headers_once_and_refuses_a_wrong_state_dir() {
    let mut c = cluster();
    c.start_accepted(&["web01", "web02"]);
    // Without -y (and no terminal) nothing is deleted; each header once.
    let out = c.key(&["-D"]);
    let listed = text(&out.stdout);
    assert_eq!(listed.matches("Accepted Keys:").count(), 1, "{listed}");
    assert!(listed.contains("web01\nweb02"), "{listed}");
    let out = c.key(&["-r", "nomatch*", "--out", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v, json!({"rejected": []}));
    let out = c.key(&["-d", "web02", "-y", "--out", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v, json!({"deleted": ["web02"]}));

    // A config whose state_dir holds no key store: an error, nothing made.
    let empty = c.dir.path().join("elsewhere");
    let cfg = c.dir.path().join("wrong.toml");
    std::fs::write(&cfg, format!("state_dir = \"{}\"\n", empty.display())).expect("write");
    let out = std::process::Command::new(tests::bin_dir().join("cmdb-key"))
        .arg("-c")
        .arg(&cfg)
        .arg("-L")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("cmdb-key");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no master key store"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !empty.exists(),
        "a wrong state_dir must not become a key store"
    );
}

#[test]
fn autosign_accepts_matching_ids_only() {
    let mut c = Cluster::start(ClusterOpts {
        master_extra: "autosign = [\"auto*\"]".into(),
    });
    c.start_minion("auto01");
    c.start_minion("manual01");
    c.minion("auto01").wait_for("minion ready");
    c.minion("manual01").wait_for("key pending acceptance");
    let keys = c.keys_json();
    assert_eq!(keys["minions"], json!(["auto01"]));
    assert_eq!(keys["minions_pre"], json!(["manual01"]));
    let (v, _, code) = c.run_json(&["*", "test.ping"]);
    assert_eq!((v, code), (json!({"auto01": true}), 0));
}

#[test]
fn a_non_zero_retcode_is_shown_listed_and_kept_in_the_job_cache() {
    let mut c = cluster();
    c.start_accepted(&["web01", "web02"]);
    let out = c.cmdb(&["run", "*", "cmd.run", "echo out; exit 3"]);
    assert_eq!(out.status.code(), Some(1));
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(stdout.contains("retcode: 3"), "{stdout}");
    assert!(
        stderr.contains("ERROR: Minions returned with non-zero exit code\nweb01: 3\nweb02: 3"),
        "{stderr}"
    );
    let (v, stderr, code) = c.run_json(&["web01", "cmd.run", "true"]);
    assert_eq!((v, code), (json!({"web01": ""}), 0), "{stderr}");
    assert!(!stderr.contains("non-zero"), "{stderr}");

    let jobs = c.cmdb(&["jobs", "list", "--out", "json"]);
    let jobs: serde_json::Value = serde_json::from_slice(&jobs.stdout).expect("json");
    let (jid, _) = jobs
        .as_object()
        .expect("jobs")
        .iter()
        .find(|(_, j)| j["Arguments"] == json!(["echo out; exit 3"]))
        .expect("the failing job");
    let shown = c.cmdb(&["jobs", "show", jid, "--out", "json"]);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).expect("json");
    assert_eq!(shown[jid]["Retcodes"], json!({"web01": 3, "web02": 3}));
    assert_eq!(
        shown[jid]["Result"],
        json!({"web01": "out", "web02": "out"})
    );
    // Times in ISO 8601, UTC.
    let start = shown[jid]["StartTime"].as_str().expect("a time");
    assert!(
        start.len() == 20 && start.ends_with('Z') && start.as_bytes()[10] == b'T',
        "{start}"
    );
    // --async --out json prints the job id as JSON.
    let out = c.cmdb(&["run", "--async", "--out", "json", "web01", "test.ping"]);
    let started: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let async_jid = started["jid"].as_str().expect("jid");
    assert_eq!(async_jid.len(), 20, "{started}");
}

#[test]
fn stopped_minion_is_reported_as_not_returned() {
    let mut c = cluster();
    c.start_accepted(&["web01", "web02"]);
    c.minions.get_mut("web02").expect("web02").kill();
    let started = Instant::now();
    let (v, stderr, code) = c.run_json(&["*", "test.ping", "-t", "2"]);
    assert_eq!(code, 1);
    assert_eq!(v, json!({"web01": true}));
    assert!(stderr.contains("web02: minion did not return"), "{stderr}");
    assert!(started.elapsed().as_secs() < 20);
}

#[test]
fn master_restart_minions_answer_again_without_an_operator() {
    let mut c = cluster();
    c.start_accepted(&["web01", "web02", "web03"]);
    let status = c.master.as_mut().expect("master").terminate();
    assert!(
        status.success(),
        "master exits cleanly on SIGTERM: {status:?}"
    );
    assert!(c.master().logs().contains("master stopped"));
    c.start_master();
    for id in ["web01", "web02", "web03"] {
        c.minion(id).wait_for_n("minion ready", 2);
    }
    let (v, stderr, code) = c.run_json(&["*", "test.ping", "-t", "10"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(v, json!({"web01": true, "web02": true, "web03": true}));
    let out = c.cmdb(&["jobs", "list", "--out", "json"]);
    assert!(out.status.success());
}

#[test]
fn unaccepted_minion_gets_no_jobs() {
    let mut c = cluster();
    c.start_accepted(&["web01"]);
    c.start_minion("web02");
    c.minion("web02").wait_for("key pending acceptance");
    let (v, _, code) = c.run_json(&["*", "cmd.run", "echo ran"]);
    assert_eq!(code, 0);
    assert_eq!(v, json!({"web01": "ran"}));
    assert_eq!(c.minion("web02").count("running job"), 0);
    assert_eq!(c.minion("web02").count("return acknowledged"), 0);
}

#[test]
fn cmd_run_output_with_quotes_and_non_utf8_bytes_survives() {
    let mut c = cluster();
    c.start_accepted(&["web01"]);
    let (v, _, code) = c.run_json(&[
        "web01",
        "cmd.run",
        r#"printf '%s\n' "a\"b'c \$HOME"; printf 'x\377y\n' >&2"#,
    ]);
    assert_eq!(code, 0);
    assert_eq!(v, json!({"web01": "a\"b'c $HOME\nx\\xffy"}));
    let (v, _, code) = c.run_json(&["web01", "cmd.run_all", "echo out; echo err >&2; exit 3"]);
    assert_eq!(code, 1, "a failing command makes the run fail");
    assert_eq!(v["web01"]["retcode"], 3);
    assert_eq!(v["web01"]["stdout"], "out");
    assert_eq!(v["web01"]["stderr"], "err");
    assert!(v["web01"]["pid"].as_u64().is_some());
}

#[test]
fn collect_returns_the_first_facts() {
    let mut c = cluster();
    c.start_accepted(&["web01"]);
    let (v, stderr, code) = c.run_json(&["web01", "collect"]);
    assert_eq!(code, 0, "{stderr}");
    let facts = &v["web01"];
    for key in [
        "id",
        "host",
        "fqdn",
        "kernel",
        "kernelrelease",
        "osarch",
        "num_cpus",
        "cpu_model",
        "mem_total_bytes",
        "boot_time",
    ] {
        assert!(facts.get(key).is_some(), "missing {key} in {facts}");
    }
    assert_eq!(facts["id"], "web01");
}

#[test]
fn acknowledged_returns_survive_a_master_killed_with_sigkill() {
    let mut c = cluster();
    c.start_accepted(&["web01"]);
    let out = c.cmdb(&["run", "*", "test.echo", "kept", "--out", "json"]);
    assert!(out.status.success());
    let out = c.cmdb(&["jobs", "list", "--out", "json"]);
    let jobs: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let jid = jobs
        .as_object()
        .expect("jobs")
        .keys()
        .next()
        .expect("one job")
        .clone();
    c.master.as_mut().expect("master").kill();
    c.start_master();
    let out = c.cmdb(&["jobs", "show", &jid, "--out", "json"]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(shown[&jid]["Result"], json!({"web01": "kept"}));
}

#[test]
fn cmdb_key_works_while_the_master_is_stopped() {
    let mut c = cluster();
    c.start_minion("web01");
    c.minion("web01").wait_for("key pending acceptance");
    c.master.as_mut().expect("master").terminate();
    let out = c.key(&["-a", "web01", "-y"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(c.keys_json()["minions"], json!(["web01"]));
    let out = c.key(&["-f", "web01"]);
    assert!(
        text(&out.stdout).contains("web01:  "),
        "{}",
        text(&out.stdout)
    );
    let out = c.key(&["-F", "--out", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        v["local"]["master.pub"]
            .as_str()
            .is_some_and(|f| f.len() == 95)
    );
    c.start_master();
    c.minion("web01").wait_for("minion ready");
    let (v, _, code) = c.run_json(&["*", "test.ping"]);
    assert_eq!((v, code), (json!({"web01": true}), 0));
}

#[test]
fn config_errors_name_the_key() {
    let c = cluster();
    let bad = c.dir.path().join("bad.toml");
    std::fs::write(&bad, "interface = \"127.0.0.1\"\nretport = 1\n").expect("write");
    let out = std::process::Command::new(tests::bin_dir().join("cmdb-master"))
        .arg("-c")
        .arg(&bad)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("retport"),
        "{}",
        text(&out.stderr)
    );
    let cfg = c.minion_config("m", "../etc", "");
    let out = std::process::Command::new(tests::bin_dir().join("cmdb-minion"))
        .arg("-c")
        .arg(&cfg)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("invalid minion id"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_job_still_running_at_the_timeout_is_waited_for() {
    let mut c = cluster();
    c.start_accepted(&["web01"]);
    let (v, stderr, code) = c.run_json(&["*", "cmd.run", "sleep 4; echo done", "-t", "1"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(v, json!({"web01": "done"}));
}

/// web01 and web02 accepted, then a `test.echo late` published while
/// web02 is away and returned by web01; its jid.
fn published_while_web02_is_away() -> (Cluster, String) {
    let mut c = cluster();
    c.start_accepted(&["web01", "web02"]);
    c.minions.get_mut("web02").expect("web02").terminate();
    let out = c.cmdb(&["run", "*", "test.echo", "late", "--async"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let jid = tests::jid_of(&out);
    c.minion("web01").wait_for("return acknowledged");
    (c, jid)
}

#[test]
fn a_job_published_before_a_master_crash_reaches_a_minion_that_missed_it() {
    // web02 is away when the job is published; the master then dies.
    let (mut c, jid) = published_while_web02_is_away();
    c.master.as_mut().expect("master").kill();
    c.start_master();
    c.master().wait_for("restored live jobs");
    // web02 comes back and is handed the job it missed.
    c.start_minion("web02");
    c.minion("web02").wait_for(&format!(
        "job{{jid={jid} fun=test.echo}}: return acknowledged"
    ));
    let out = c.cmdb(&["jobs", "show", &jid, "--out", "json"]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        shown[&jid]["Result"],
        json!({"web01": "late", "web02": "late"})
    );
}

#[test]
fn a_job_killed_before_a_master_crash_is_not_handed_out_after_it() {
    // web02 is away when the job is published; it is killed; the master
    // then dies.
    let (mut c, jid) = published_while_web02_is_away();
    let kill = c.cmdb(&["jobs", "kill", &jid]);
    let said = text(&kill.stderr);
    let kill_jid = said
        .split("(job ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no kill job named: {said}"))
        .to_owned();
    c.master.as_mut().expect("master").kill();
    c.start_master();
    c.master().wait_for("restored live jobs");
    // web02 comes back: it is handed the kill it missed, not the job.
    c.start_minion("web02");
    c.minion("web02").wait_for(&format!(
        "job{{jid={kill_jid} fun=saltutil.kill_job}}: return acknowledged"
    ));
    let logs = c.minion("web02").logs();
    assert!(
        !logs.contains(&format!("jid={jid}")),
        "the killed job reached web02:\n{logs}"
    );
    let out = c.cmdb(&["jobs", "show", &jid, "--out", "json"]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(shown[&jid]["Result"], json!({"web01": "late"}));
}

#[test]
fn a_return_not_acknowledged_before_the_minion_stops_is_delivered_after_it_starts() {
    let mut c = cluster();
    c.start_accepted(&["web01"]);
    let started = c.dir.path().join("job-started");
    let cmd = format!("touch '{}'; sleep 1; echo done", started.display());
    let out = c.cmdb(&["run", "web01", "cmd.run", &cmd, "--async"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let jid = tests::jid_of(&out);
    // The job runs; the master goes away before it ends, then the minion
    // stops with the return unacknowledged.
    let deadline = std::time::Instant::now() + tests::WAIT;
    while !started.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the job never started"
        );
        // The job's first act is the file; a file's appearance has no event
        // to wait on in std, so it is polled.
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    c.master.as_mut().expect("master").kill();
    let minion = c.minions.get_mut("web01").expect("web01");
    minion.terminate();
    assert!(
        minion.count("it stays in the outbox") == 1,
        "{}",
        minion.logs()
    );
    // Both come back; the minion delivers the kept return.
    c.start_master();
    c.start_minion("web01");
    c.minion("web01")
        .wait_for("delivering a return kept in the outbox");
    c.minion("web01").wait_for("return acknowledged");
    let out = c.cmdb(&["jobs", "show", &jid, "--out", "json"]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(shown[&jid]["Result"], json!({"web01": "done"}));
}
