//! The asset inventory through real processes: collectors over fixture
//! roots, history and rebuilds, identity, duplicates, import, lifecycle,
//! grain targeting, plugins, agent push and presence.

use serde_json::{Value, json};
use tests::fixture::{HostRoot, fixture_minion, plugin};
use tests::{Cluster, ClusterOpts, json_out, stdout_ok, text};

fn collect(c: &Cluster, target: &str) -> Value {
    let (v, stderr, code) = c.run_json(&[target, "collect"]);
    assert_eq!(code, 0, "{stderr}");
    v
}

fn last_jid(c: &Cluster) -> String {
    let jobs = json_out(&c.cmdb(&["jobs", "list", "--limit", "1", "--out", "json"]));
    jobs.as_object()
        .expect("jobs")
        .keys()
        .next()
        .expect("a job")
        .clone()
}

#[test]
fn collect_history_diff_rebuild_and_rename_keep_one_asset() {
    let mut c = Cluster::start(ClusterOpts::default());
    let (root, plugins) = fixture_minion(&mut c, "web01", "web01", "CZ2901ABCD", "");
    let temp = c.dir.path().join("temp");
    std::fs::write(&temp, "21").expect("write");
    plugin(
        &plugins,
        "rack_sensor",
        &format!(
            "echo \"{{\\\"inlet_temp_c\\\": $(cat {})}}\"",
            temp.display()
        ),
    );

    let first = collect(&c, "web01");
    let jid1 = last_jid(&c);
    let facts = &first["web01"];
    for key in [
        "os",
        "os_family",
        "osrelease",
        "oscodename",
        "kernelrelease",
        "osarch",
        "host",
        "fqdn",
        "domain",
        "cpu",
        "cpu_flags",
        "mem_total_bytes",
        "swap_total_bytes",
        "disks",
        "partitions",
        "mounts",
        "nics",
        "default_gateway",
        "dns",
        "dmi",
        "machine_id",
        "virtual",
        "uptime_seconds",
        "boot_time",
        "timezone",
        "packages",
        "gpus",
    ] {
        assert!(facts.get(key).is_some(), "missing {key}: {facts}");
    }
    assert_eq!(facts["dmi"]["system"]["serial"], "CZ2901ABCD");
    assert_eq!(facts["disks"]["sda"]["serial"], "S6KLNA0W123456");
    assert_eq!(facts["nics"]["eno1"]["speed_mbps"], 25000);
    assert_eq!(facts["default_gateway"]["ipv4"], "10.0.0.1");
    assert_eq!(facts["fqdn"], "web01.dc1.example.com");
    assert_eq!(facts["inlet_temp_c"], 21);
    assert_eq!(facts["gpus"]["0000:03:00.0"]["vendor_id"], "102b");
    assert!(facts.get("_errors").is_none(), "{}", facts["_errors"]);

    let shown = json_out(&c.cmdb(&["asset", "show", "web01", "--out", "json"]));
    let asset_id = shown["asset_id"].as_str().expect("asset id").to_owned();
    assert_eq!(shown["version"], 0);

    // An unchanged collect (only a volatile value moves) stores no diff.
    root.set_uptime(99_999);
    collect(&c, "web01");
    let hist = json_out(&c.cmdb(&["asset", "history", "web01", "--out", "json"]));
    assert_eq!(hist["history"].as_array().expect("history").len(), 1);
    let shown = json_out(&c.cmdb(&["asset", "show", &asset_id, "--out", "json"]));
    assert_eq!(
        shown["facts"]["uptime_seconds"], 99_999,
        "volatile facts stay current"
    );

    // Rename the host and change a plugin fact: one diff with those paths.
    root.set_hostname("web01-renamed");
    std::fs::write(&temp, "27").expect("write");
    collect(&c, "web01");
    let hist = json_out(&c.cmdb(&["asset", "history", &asset_id, "--out", "json"]));
    let entries = hist["history"].as_array().expect("history");
    assert_eq!(entries.len(), 2);
    let paths: Vec<&str> = entries[1]["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| c["path"].as_str().expect("path"))
        .collect();
    assert_eq!(paths, ["facts:fqdn", "facts:host", "facts:inlet_temp_c"]);
    assert_eq!(entries[1]["changes"][1]["old"], "web01");
    assert_eq!(entries[1]["changes"][1]["new"], "web01-renamed");
    assert_eq!(
        hist["asset_id"],
        asset_id.as_str(),
        "a rename is the same asset"
    );
    assert_eq!(
        json_out(&c.cmdb(&["asset", "list", "--out", "json"]))
            .as_array()
            .expect("list")
            .len(),
        1
    );

    let diff = json_out(&c.cmdb(&["asset", "diff", &asset_id, "--out", "json"]));
    assert_eq!(diff["from"], 0);
    assert_eq!(diff["to"], 1);
    assert_eq!(diff["changes"].as_array().expect("changes").len(), 3);

    // Version 0 rebuilt equals what the first collect returned (less volatile values).
    let v0 = json_out(&c.cmdb(&[
        "asset",
        "show",
        &asset_id,
        "--version",
        "0",
        "--out",
        "json",
    ]));
    let job1 = json_out(&c.cmdb(&["jobs", "show", &jid1, "--out", "json"]));
    let mut returned = job1[&jid1]["Result"]["web01"].clone();
    returned
        .as_object_mut()
        .expect("facts")
        .remove("uptime_seconds");
    assert_eq!(v0["facts"], returned);

    let changes = json_out(&c.cmdb(&["changes", "--since", "1h", "--out", "json"]));
    assert!(
        changes
            .as_array()
            .expect("changes")
            .iter()
            .any(|c| c["path"] == "facts:host")
    );
    let table = text(&c.cmdb(&["asset", "list"]).stdout);
    assert!(table.starts_with("ASSET_ID"), "{table}");
    assert!(
        table.contains("web01-renamed") && table.contains("CZ2901ABCD"),
        "{table}"
    );
}

#[test]
fn duplicate_serials_are_kept_and_shown() {
    let mut c = Cluster::start(ClusterOpts::default());
    fixture_minion(&mut c, "vm01", "vm01", "VMware-42 1a 2b", "");
    fixture_minion(&mut c, "vm02", "vm02", "VMware-42 1a 2b", "");
    fixture_minion(&mut c, "db01", "db01", "CZ0000UNIQ", "");
    collect(&c, "*");
    assert_eq!(
        json_out(&c.cmdb(&["asset", "list", "--out", "json"]))
            .as_array()
            .expect("list")
            .len(),
        3
    );
    let dups = json_out(&c.cmdb(&["asset", "dups", "--out", "json"]));
    let group = dups["VMware-42 1a 2b"].as_array().expect("dup group");
    let mut minions: Vec<&str> = group
        .iter()
        .map(|a| a["minion"].as_str().expect("minion"))
        .collect();
    minions.sort();
    assert_eq!(minions, ["vm01", "vm02"]);
    assert!(dups.get("CZ0000UNIQ").is_none());
}

#[test]
fn csv_import_is_all_or_nothing_and_planned_assets_are_claimed() {
    let mut c = Cluster::start(ClusterOpts::default());
    fixture_minion(&mut c, "web01", "web01", "SER-001", "");
    collect(&c, "web01");
    let bad = c.dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "serial,site,rack\nSER-009,FRA1,R9\nSER-009,FRA1,R10\n",
    )
    .expect("write");
    let out = c.cmdb(&["asset", "import", bad.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("line 3"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        json_out(&c.cmdb(&["asset", "list", "--out", "json"]))
            .as_array()
            .expect("list")
            .len(),
        1
    );

    let good = c.dir.path().join("good.csv");
    std::fs::write(&good, "serial,site,rack,rack_unit,owner\nSER-001,FRA1,R12,U20,team-web\nSER-002,FRA1,R12,U22,team-db\n").expect("write");
    let out = c.cmdb(&["asset", "import", good.to_str().expect("path")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("1 matched existing assets (0 unchanged), 1 new assets"),
        "{}",
        text(&out.stdout)
    );
    let web01 = json_out(&c.cmdb(&["asset", "show", "web01", "--out", "json"]));
    assert_eq!(web01["manual"]["rack"], "R12");
    let list = json_out(&c.cmdb(&["asset", "list", "--out", "json"]));
    let planned = list
        .as_array()
        .expect("list")
        .iter()
        .find(|a| a["serial"] == "SER-002")
        .expect("planned asset")
        .clone();
    assert_eq!(planned["status"], "planned");
    assert_eq!(planned["minion"], Value::Null);

    fixture_minion(&mut c, "db01", "db01", "SER-002", "");
    collect(&c, "db01");
    let db01 = json_out(&c.cmdb(&["asset", "show", "db01", "--out", "json"]));
    assert_eq!(
        db01["asset_id"], planned["asset_id"],
        "the collect claimed the planned asset"
    );
    assert_eq!(db01["status"], "active");
    assert_eq!(db01["manual"]["owner"], "team-db");
    assert_eq!(
        json_out(&c.cmdb(&["asset", "list", "--out", "json"]))
            .as_array()
            .expect("list")
            .len(),
        2
    );
    let csv = text(&c.cmdb(&["asset", "export", "--format", "csv"]).stdout);
    assert!(csv.starts_with("asset_id,kind,name,minion,status"), "{csv}");
    assert_eq!(csv.lines().count(), 3);
}

#[test]
fn status_transitions_are_checked_and_recorded_with_the_user() {
    let mut c = Cluster::start(ClusterOpts::default());
    fixture_minion(&mut c, "web01", "web01", "SER-001", "");
    collect(&c, "web01");
    let out = c.cmdb(&["asset", "status", "web01", "maintenance"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = c.cmdb(&["asset", "status", "web01", "planned"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("maintenance -> planned is not allowed"),
        "{}",
        text(&out.stderr)
    );
    let out = c.cmdb(&["asset", "status", "web01", "scrapped"]);
    assert!(text(&out.stderr).contains("unknown status"));
    let out = c.cmdb(&["asset", "set", "web01", "rack=R7", "owner=ops"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = c.cmdb(&["asset", "set", "web01", "colour=red"]);
    assert!(text(&out.stderr).contains("unknown field \"colour\""));
    let hist = json_out(&c.cmdb(&["asset", "history", "web01", "--out", "json"]));
    let h = hist["history"].as_array().expect("history");
    assert_eq!(h.len(), 3);
    assert_eq!(h[1]["source"], "status");
    assert_eq!(h[1]["changes"][0]["path"], "status");
    assert_eq!(h[1]["changes"][0]["old"], "active");
    assert_eq!(h[1]["changes"][0]["new"], "maintenance");
    assert!(h[1]["user"].as_str().is_some_and(|u| !u.is_empty()));
    assert_eq!(h[2]["source"], "manual");
    let shown = json_out(&c.cmdb(&["asset", "show", "web01", "--out", "json"]));
    assert_eq!(shown["status"], "maintenance");
    assert_eq!(shown["manual"], json!({"rack": "R7", "owner": "ops"}));
}

#[test]
fn grain_targets_use_stored_facts() {
    let mut c = Cluster::start(ClusterOpts::default());
    fixture_minion(&mut c, "deb01", "deb01", "S1", "");
    let (rocky, _) = fixture_minion(&mut c, "rhel01", "rhel01", "S2", "");
    rocky.set_os_release(
        "NAME=\"Rocky Linux\"\nVERSION_ID=\"9.3\"\nID=rocky\nID_LIKE=\"rhel centos fedora\"\n",
    );
    collect(&c, "*");
    let (v, _, code) = c.run_json(&["-G", "os:debian", "test.ping"]);
    assert_eq!((v, code), (json!({"deb01": true}), 0));
    let (v, _, _) = c.run_json(&["-G", "os_family:RedHat", "test.ping"]);
    assert_eq!(v, json!({"rhel01": true}));
    let (v, _, _) = c.run_json(&["-G", "disks:sda:kind:ssd", "test.ping"]);
    assert_eq!(v, json!({"deb01": true, "rhel01": true}));
    let (v, _, _) = c.run_json(&["-C", "G@os:Rocky or deb*", "test.ping"]);
    assert_eq!(v, json!({"deb01": true, "rhel01": true}));
    let (v, _, _) = c.run_json(&["-C", "G@os:Rocky and not rhel*", "test.ping"]);
    assert_eq!(v, Value::Null);
    let listed = json_out(&c.cmdb(&["asset", "list", "-G", "osrelease:9*", "--out", "json"]));
    assert_eq!(listed.as_array().expect("list").len(), 1);
}

#[test]
fn a_grain_target_runs_only_on_the_minions_the_master_expects() {
    // deb02's live facts match, but the master knows no facts for it: the
    // job names who runs it, so deb02 must not run what nobody sees.
    let mut c = Cluster::start(ClusterOpts::default());
    fixture_minion(&mut c, "deb01", "deb01", "S1", "");
    fixture_minion(&mut c, "deb02", "deb02", "S2", "");
    collect(&c, "deb01");
    let (v, stderr, code) = c.run_json(&["-G", "os:debian", "cmd.run", "echo ran"]);
    assert_eq!((v, code), (json!({"deb01": "ran"}), 0), "{stderr}");
    // deb02 handles publishes in order: once it has answered a job for it
    // alone, it has seen (and skipped) the grain job.
    let (v, _, _) = c.run_json(&["deb02", "test.ping"]);
    assert_eq!(v, json!({"deb02": true}));
    c.minion("deb02").wait_for_n("return acknowledged", 1);
    c.minion("deb01").wait_for_n("return acknowledged", 2);
    assert_eq!(c.minion("deb02").count("return acknowledged"), 1);
    let log = c.master().logs();
    assert!(!log.contains("does not expect this minion"), "{log}");
}

#[test]
fn plugins_that_hang_crash_or_print_garbage_are_reported_not_fatal() {
    let mut c = Cluster::start(ClusterOpts::default());
    let (_, plugins) = fixture_minion(&mut c, "web01", "web01", "S1", "");
    plugin(&plugins, "good", "echo '{\"team\": \"web\"}'");
    plugin(&plugins, "hang", "sleep 60");
    plugin(&plugins, "crash", "echo oops >&2; exit 2");
    plugin(&plugins, "garbage", "echo '<html>'");
    let v = collect(&c, "web01");
    let f = &v["web01"];
    assert_eq!(f["team"], "web");
    assert_eq!(f["os"], "Debian");
    let errors = f["_errors"].as_object().expect("errors");
    assert!(
        errors["plugin:hang"]
            .as_str()
            .expect("e")
            .contains("timed out")
    );
    assert!(errors["plugin:crash"].as_str().expect("e").contains("oops"));
    assert!(
        errors["plugin:garbage"]
            .as_str()
            .expect("e")
            .contains("JSON")
    );
}

#[test]
fn agent_push_and_presence_are_stored_without_a_job() {
    let mut c = Cluster::start(ClusterOpts {
        master_extra: "[inventory]\noffline_after_secs = 2".into(),
    });
    fixture_minion(&mut c, "web01", "web01", "S1", "collect_interval = 1");
    c.minion("web01").wait_for("return acknowledged");
    let shown = json_out(&c.cmdb(&["asset", "show", "web01", "--out", "json"]));
    assert_eq!(shown["facts"]["host"], "web01");
    assert_eq!(shown["presence"], "online");
    let jobs = json_out(&c.cmdb(&["jobs", "list", "--out", "json"]));
    assert_eq!(jobs, json!({}), "pushes are not jobs");

    c.minions.get_mut("web01").expect("web01").kill();
    c.master().wait_for("presence changed");
    let shown = json_out(&c.cmdb(&["asset", "show", "web01", "--out", "json"]));
    assert_eq!(shown["presence"], "offline");
    let hist = json_out(&c.cmdb(&["asset", "history", "web01", "--out", "json"]));
    let last = hist["history"]
        .as_array()
        .expect("history")
        .last()
        .expect("entry")
        .clone();
    assert_eq!(last["source"], "presence");
}

#[test]
fn a_minion_that_stops_cleanly_goes_offline_at_once_and_online_when_back() {
    let mut c = Cluster::start(ClusterOpts {
        master_extra: "[inventory]\noffline_after_secs = 3600".into(),
    });
    fixture_minion(&mut c, "web01", "web01", "S1", "");
    collect(&c, "web01");
    let shown = json_out(&c.cmdb(&["asset", "show", "web01", "--out", "json"]));
    assert_eq!(shown["presence"], "online");

    let status = c.minions.get_mut("web01").expect("web01").terminate();
    assert!(status.success(), "{status:?}");
    assert_eq!(
        c.minion("web01")
            .count("told the master this minion is stopping"),
        1,
        "{}",
        c.minion("web01").logs()
    );
    // An hour of silence would be needed otherwise.
    c.master().wait_for("presence changed");
    let shown = json_out(&c.cmdb(&["asset", "show", "web01", "--out", "json"]));
    assert_eq!(shown["presence"], "offline");

    c.start_minion_with("web01", "web01", "")
        .wait_for("minion ready");
    c.master().wait_for_n("presence changed", 2);
    let shown = json_out(&c.cmdb(&["asset", "show", "web01", "--out", "json"]));
    assert_eq!(shown["presence"], "online");
}

#[test]
fn collect_stdout_prints_facts_without_a_master() {
    let c = Cluster::start(ClusterOpts::default());
    let root = HostRoot::new(c.dir.path().join("root"), "lonely", "S9");
    let cfg = c.minion_config(
        "solo",
        "solo",
        &format!(
            "root = \"{}\"\n[collectors]\ngpus = false",
            root.path.display()
        ),
    );
    let out = std::process::Command::new(tests::bin_dir().join("cmdb-minion"))
        .arg("-c")
        .arg(&cfg)
        .args(["collect", "--stdout"])
        .output()
        .expect("run");
    let facts = json_out(&out);
    assert_eq!(facts["host"], "lonely");
    assert_eq!(facts["id"], "solo");
    assert!(
        facts.get("gpus").is_none(),
        "a disabled collector does not run"
    );
}

/// The minion ids of `cmdb asset list --sort FIELD --out json`, in order.
fn sorted_minions(c: &Cluster, sort: &[&str]) -> Vec<String> {
    let mut args = vec!["asset", "list", "--out", "json"];
    args.extend_from_slice(sort);
    json_out(&c.cmdb(&args))
        .as_array()
        .expect("list")
        .iter()
        .map(|a| a["minion"].as_str().expect("minion").to_owned())
        .collect()
}

#[test]
fn asset_list_sorts_by_a_fact_or_a_column_with_missing_values_last() {
    let mut c = Cluster::start(ClusterOpts::default());
    for (id, rank) in [("web2", Some(100)), ("web10", Some(9)), ("db1", None)] {
        let (_, plugins) = fixture_minion(&mut c, id, id, &format!("SER-{id}"), "");
        if let Some(rank) = rank {
            plugin(&plugins, "rank", &format!("echo '{{\"rank\": {rank}}}'"));
        }
    }
    collect(&c, "*");
    for (id, site) in [("web2", "FRA1"), ("db1", "AMS2")] {
        let out = c.cmdb(&["asset", "set", id, &format!("site={site}")]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }

    // A fact: numbers by value (9 before 100), the asset without it last
    // in both directions.
    assert_eq!(
        sorted_minions(&c, &["--sort", "facts.rank"]),
        ["web10", "web2", "db1"]
    );
    assert_eq!(
        sorted_minions(&c, &["--sort=-facts.rank"]),
        ["web2", "web10", "db1"]
    );
    assert_eq!(
        sorted_minions(&c, &["--sort", "-facts.rank"]),
        ["web2", "web10", "db1"]
    );
    // Columns: text naturally (web2 before web10), missing values last.
    assert_eq!(
        sorted_minions(&c, &["--sort", "minion"]),
        ["db1", "web2", "web10"]
    );
    assert_eq!(
        sorted_minions(&c, &["--sort", "-minion"]),
        ["web10", "web2", "db1"]
    );
    assert_eq!(
        sorted_minions(&c, &["--sort", "site"]),
        ["db1", "web2", "web10"]
    );
    assert_eq!(
        sorted_minions(&c, &["--sort", "-site"]),
        ["web2", "db1", "web10"]
    );
    assert_eq!(
        sorted_minions(&c, &["--sort", "manual.site", "-G", "os:Debian"]),
        ["db1", "web2", "web10"]
    );
    // The table keeps its columns and prints the rows in that order.
    let out = c.cmdb(&["asset", "list", "--sort", "-host"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let minions: Vec<&str> = table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    assert_eq!(minions, ["web10", "web2", "db1"], "{table}");
    assert!(table.starts_with("ASSET_ID"), "{table}");

    // An unknown field is refused by name, with the columns to choose from.
    let out = c.cmdb(&["asset", "list", "--sort", "colour"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("unknown sort field \"colour\"") && stderr.contains("presence, site, rack"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
}

/// The minion ids `cmdb asset list --where QUERY --sort SORT` prints, in order.
fn listed(c: &Cluster, query: &str, sort: &str) -> Vec<String> {
    let out = stdout_ok(&c.cmdb(&[
        "asset",
        "list",
        "--where",
        query,
        "--sort",
        sort,
        "--fields",
        "minion,inlet_temp_c",
        "--out",
        "csv",
    ]));
    out.lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(1).map(str::to_owned))
        .collect()
}

#[test]
fn listings_follow_every_write_at_once_and_after_a_restart() {
    let mut c = Cluster::start(ClusterOpts::default());
    let mut temps = Vec::new();
    for (id, serial, t) in [("web01", "CZ1", "21"), ("web02", "CZ2", "30")] {
        let (_root, plugins) = fixture_minion(&mut c, id, id, serial, "");
        let temp = c.dir.path().join(format!("{id}-temp"));
        std::fs::write(&temp, t).expect("write");
        plugin(
            &plugins,
            "rack_sensor",
            &format!(
                "echo \"{{\\\"inlet_temp_c\\\": $(cat {}), \\\"slots\\\": [{}]}}\"",
                temp.display(),
                (1..=50)
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        );
        temps.push(temp);
    }
    collect(&c, "web*");
    assert_eq!(listed(&c, "inlet_temp_c >= 25", "minion"), ["web02"]);
    assert_eq!(
        listed(&c, "inlet_temp_c > 0", "-facts.inlet_temp_c"),
        ["web02", "web01"]
    );

    // Whole assets (JSON without --fields) are encoded once and kept until
    // the asset is written: read them twice, then change one.
    let whole = |c: &Cluster, path: &str| -> Vec<String> {
        let out = c.cmdb(&["asset", "list", "--out", "json", "--where", "minion ~ web*"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        // By minion (the listing is in asset id order).
        let mut by_minion: Vec<(String, String)> = rows
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| {
                let v = path.split('.').fold(r, |v, k| &v[k]);
                let v = if v.is_null() {
                    "-".into()
                } else {
                    v.to_string()
                };
                (r["minion"].to_string(), v)
            })
            .collect();
        by_minion.sort();
        by_minion.into_iter().map(|(_, v)| v).collect()
    };
    assert_eq!(whole(&c, "facts.inlet_temp_c"), ["21", "30"]);
    assert_eq!(whole(&c, "facts.inlet_temp_c"), ["21", "30"]);

    // A collect that changes a fact is seen by the very next listing.
    std::fs::write(&temps[0], "40").expect("write");
    collect(&c, "web01");
    assert_eq!(whole(&c, "facts.inlet_temp_c"), ["40", "30"]);
    assert_eq!(
        listed(&c, "inlet_temp_c >= 25", "minion"),
        ["web01", "web02"]
    );
    assert_eq!(
        listed(&c, "inlet_temp_c > 0", "-facts.inlet_temp_c"),
        ["web01", "web02"]
    );

    // So are a manual field, a status change and an import.
    let ok = |args: &[&str]| {
        let out = c.cmdb(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    };
    assert_eq!(whole(&c, "manual.department"), ["-", "-"]);
    ok(&["asset", "set", "web02", "department=finance"]);
    assert_eq!(listed(&c, "department = finance", "minion"), ["web02"]);
    assert_eq!(whole(&c, "manual.department"), ["-", "\"finance\""]);
    ok(&["asset", "status", "web02", "maintenance"]);
    assert_eq!(listed(&c, "status = maintenance", "minion"), ["web02"]);
    let csv = c.dir.path().join("owners.csv");
    std::fs::write(&csv, "minion,owner\nweb01,bob\n").expect("write");
    ok(&["asset", "import", csv.to_str().expect("path")]);
    assert_eq!(listed(&c, "owner = bob", "minion"), ["web01"]);
    // A query into a large fact (left out of the index) reads the store.
    assert_eq!(
        listed(&c, "facts.slots = 42 and department = finance", "minion"),
        ["web02"]
    );

    // After a restart the index is built again from the store.
    c.master_mut().terminate();
    c.start_master();
    assert_eq!(
        listed(&c, "department = finance or owner = bob", "minion"),
        ["web01", "web02"]
    );
    assert_eq!(listed(&c, "inlet_temp_c >= 35", "minion"), ["web01"]);
}
