//! A small swarm (200 simulated minions in one process) against a real
//! master: correctness at more than a handful of minions, not speed.

use std::process::Command;

use tests::{Cluster, ClusterOpts};

#[test]
fn two_hundred_simulated_minions_ping_collect_and_survive_a_master_restart() {
    let mut c = Cluster::start(ClusterOpts {
        master_extra: "autosign = [\"*\"]".into(),
    });
    let swarm = tests::swarm(&c, 200);
    swarm.wait_for("\"event\":\"all_online\"");
    let (v, stderr, code) = c.run_json(&["*", "test.ping", "-t", "20"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(v.as_object().expect("returns").len(), 200);
    let (v, stderr, code) = c.run_json(&["*", "collect", "-t", "30"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(v.as_object().expect("returns").len(), 200);
    let assets = c.cmdb(&["asset", "list", "--out", "json"]);
    let assets: serde_json::Value = serde_json::from_slice(&assets.stdout).expect("json");
    assert_eq!(assets.as_array().expect("assets").len(), 200);

    c.master.as_mut().expect("master").terminate();
    c.start_master();
    swarm.wait_for_n("\"event\":\"all_online\"", 2);
    let (v, stderr, code) = c.run_json(&["*", "test.ping", "-t", "20"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(v.as_object().expect("returns").len(), 200);
}

/// Follows a job's returns over the API until it is done; the minions that
/// never returned.
fn missing_after(c: &Cluster, jid: &str, quiet_secs: u64) -> Vec<String> {
    let out = Command::new("curl")
        .args(["-s", "-N", "--unix-socket"])
        .arg(c.master_state().join("api.sock"))
        .arg(format!(
            "http://cmdb/v1/jobs/{jid}/returns?timeout={quiet_secs}"
        ))
        .output()
        .expect("curl");
    let text = tests::text(&out.stdout);
    let done = text
        .split("event: done\n")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .and_then(|l| l.strip_prefix("data: "))
        .unwrap_or_else(|| panic!("no done event: {}", &text[text.len().saturating_sub(500)..]));
    let v: serde_json::Value = serde_json::from_str(done).expect("done json");
    v["missing"]
        .as_array()
        .expect("missing")
        .iter()
        .filter_map(|m| m.as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_fleet_collect_completes_across_master_kills_at_random_moments() {
    let mut c = Cluster::start(ClusterOpts {
        master_extra: "autosign = [\"*\"]".into(),
    });
    let swarm = tests::swarm(&c, 500);
    swarm.wait_for("\"event\":\"all_online\"");
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed).expect("random");
    let mut rng = u64::from_le_bytes(seed) | 1;
    for round in 1..=5 {
        let out = c.cmdb(&["run", "*", "collect", "--async"]);
        assert!(out.status.success(), "{}", tests::text(&out.stderr));
        let jid = tests::jid_of(&out);
        // The fault: SIGKILL at a random moment of the collect (0-400 ms
        // after the publish).
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(std::time::Duration::from_millis(rng % 400));
        c.master.as_mut().expect("master").kill();
        c.start_master();
        // Every minion's return arrives exactly once.
        let missing = missing_after(&c, &jid, 30);
        assert!(
            missing.is_empty(),
            "round {round}: {} missing: {missing:?}",
            missing.len()
        );
        let out = c.cmdb(&["jobs", "show", &jid, "--out", "json"]);
        let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(
            shown[&jid]["Result"].as_object().map(|r| r.len()),
            Some(500),
            "round {round}"
        );
    }
    let assets = c.cmdb(&["asset", "list", "--out", "json"]);
    let assets: serde_json::Value = serde_json::from_slice(&assets.stdout).expect("json");
    assert_eq!(assets.as_array().expect("assets").len(), 500);
}
