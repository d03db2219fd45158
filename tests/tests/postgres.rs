//! A master whose store is PostgreSQL (a real server of the test's own on
//! 127.0.0.1): jobs, returns and assets land there and are there after a
//! restart; a master whose database cannot be reached says so and stops.

use serde_json::json;
use store::postgres::server::LocalServer;
use tests::{Cluster, ClusterOpts, Proc, json_out};

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
