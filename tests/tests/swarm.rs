//! A small swarm (200 simulated minions in one process) against a real
//! master: correctness at more than a handful of minions, not speed.

use std::process::Command;

use tests::{Cluster, ClusterOpts, Proc, bin_dir};

#[test]
fn two_hundred_simulated_minions_ping_collect_and_survive_a_master_restart() {
    let mut c = Cluster::start(ClusterOpts {
        master_extra: "autosign = [\"*\"]".into(),
    });
    let mut cmd = Command::new(bin_dir().join("cmdb-swarm"));
    cmd.arg("-c").arg(c.master_config()).args([
        "--count",
        "200",
        "--heartbeat",
        "1",
        "--reconnect-jitter",
        "1",
        "--request-timeout",
        "5",
    ]);
    let swarm = Proc::spawn("swarm", cmd);
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
