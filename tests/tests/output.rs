//! What `cmdb` and `cmdb-key` print: each table's header names that
//! command's columns, and an output format a command does not know is
//! refused by name before anything is done.

use serde_json::Value;
use tests::fixture::fixture_minion;
use tests::{Cluster, ClusterOpts, stdout_ok, text};

/// The column names on the first line of a table.
fn header(table: &str) -> Vec<&str> {
    table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect()
}

/// The rows (after the header) split into cells on runs of spaces.
fn rows(table: &str) -> Vec<Vec<&str>> {
    table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect()
}

#[test]
fn every_table_names_the_columns_of_its_command() {
    let mut c = Cluster::start(ClusterOpts::default());
    fixture_minion(&mut c, "vm01", "vm01", "VMware-42 1a", "");
    fixture_minion(&mut c, "vm02", "vm02", "VMware-42 1a", "");
    let (_, stderr, code) = c.run_json(&["*", "collect"]);
    assert_eq!(code, 0, "{stderr}");
    let out = c.cmdb(&["asset", "set", "vm01", "rack=R7"]);
    stdout_ok(&out);

    // cmdb run keeps MINION and RETURN, which fit it.
    let table = stdout_ok(&c.cmdb(&["run", "*", "test.ping", "--out", "table"]));
    assert_eq!(header(&table), ["MINION", "RETURN"], "{table}");
    assert_eq!(rows(&table), [["vm01", "True"], ["vm02", "True"]]);

    let table = stdout_ok(&c.cmdb(&["jobs", "list", "--out", "table"]));
    assert_eq!(
        header(&table),
        [
            "JID",
            "FUNCTION",
            "ARGUMENTS",
            "TARGET",
            "USER",
            "START_TIME",
            "EXPECTED"
        ],
        "{table}"
    );
    let ping = rows(&table)
        .into_iter()
        .find(|r| r.get(1) == Some(&"test.ping"))
        .unwrap_or_else(|| panic!("no test.ping row: {table}"));
    let jid = ping[0].to_owned();
    assert_eq!((ping[2], ping.last()), ("*", Some(&"2")), "{table}");

    let table = stdout_ok(&c.cmdb(&["jobs", "show", &jid, "--out", "table"]));
    assert_eq!(
        header(&table),
        ["MINION", "STATUS", "RETCODE", "RETURN"],
        "{table}"
    );
    assert_eq!(
        rows(&table),
        [["vm01", "ok", "0", "True"], ["vm02", "ok", "0", "True"]]
    );

    // The asset list and the change feed had their own columns already.
    let table = stdout_ok(&c.cmdb(&["asset", "list"]));
    assert_eq!(
        header(&table),
        [
            "ASSET_ID", "KIND", "MINION", "HOST", "OS", "RELEASE", "SERIAL", "STATUS", "PRESENCE",
            "SITE", "RACK"
        ],
        "{table}"
    );
    let table = stdout_ok(&c.cmdb(&["changes", "--since", "1h"]));
    assert_eq!(
        header(&table),
        ["AT", "ASSET_ID", "MINION", "SOURCE", "PATH", "OLD", "NEW"],
        "{table}"
    );

    let table = stdout_ok(&c.cmdb(&["asset", "show", "vm01", "--out", "table"]));
    assert_eq!(header(&table), ["FIELD", "VALUE"], "{table}");
    let fields = rows(&table);
    for want in [
        vec!["minion", "vm01"],
        vec!["manual.rack", "R7"],
        vec!["facts.os", "Debian"],
        vec!["facts.nics.eno1.mtu", "9000"],
    ] {
        assert!(fields.contains(&want), "no {want:?} in {table}");
    }

    let table = stdout_ok(&c.cmdb(&["asset", "history", "vm01", "--out", "table"]));
    assert_eq!(
        header(&table),
        [
            "VERSION", "AT", "SOURCE", "JID", "USER", "PATH", "OLD", "NEW"
        ],
        "{table}"
    );
    let last = rows(&table).pop().unwrap_or_default();
    assert_eq!(last[0], "1", "{table}");
    assert_eq!(&last[last.len() - 2..], ["manual:rack", "R7"], "{table}");

    let table = stdout_ok(&c.cmdb(&["asset", "diff", "vm01", "--out", "table"]));
    assert_eq!(header(&table), ["PATH", "OLD", "NEW"], "{table}");
    assert_eq!(rows(&table), [["manual:rack", "R7"]], "{table}");

    let table = stdout_ok(&c.cmdb(&["asset", "dups", "--out", "table"]));
    assert_eq!(
        header(&table),
        ["SERIAL", "ASSET_ID", "MINION", "HOST", "STATUS", "PRESENCE"],
        "{table}"
    );
    let minions: Vec<&str> = table
        .lines()
        .skip(1)
        .map(|l| {
            assert!(l.starts_with("VMware-42 1a  "), "{table}");
            l.split_whitespace().nth(3).unwrap_or_default()
        })
        .collect();
    assert_eq!(minions, ["vm01", "vm02"], "{table}");

    stdout_ok(&c.cmdb(&[
        "user",
        "add",
        "ops",
        "--role",
        "operator",
        "--targets",
        "vm*",
    ]));
    let table = stdout_ok(&c.cmdb(&["user", "list", "--out", "table"]));
    assert_eq!(
        header(&table),
        [
            "NAME",
            "ROLE",
            "TARGETS",
            "FUNCTIONS",
            "PUBKEY",
            "PASSWORD",
            "CREATED"
        ],
        "{table}"
    );
    assert!(
        rows(&table)
            .iter()
            .any(|r| r[..3] == ["ops", "operator", "vm*"]),
        "{table}"
    );

    stdout_ok(&c.cmdb(&["token", "create", "ops", "--expires", "1d"]));
    let table = stdout_ok(&c.cmdb(&["token", "list", "--out", "table"]));
    assert_eq!(
        header(&table),
        ["ID", "USER", "CREATED", "EXPIRES", "LAST_USED"],
        "{table}"
    );
    let token = rows(&table).pop().unwrap_or_default();
    assert_eq!((token[1], token[4]), ("ops", "never"), "{table}");

    // cmdb-key: a key listing's STATE and MINION, fingerprints and keys
    // beside them, and each key's new state after a change.
    let table = stdout_ok(&c.key(&["-L", "--out", "table"]));
    assert_eq!(header(&table), ["STATE", "MINION"], "{table}");
    assert_eq!(
        rows(&table),
        [["accepted", "vm01"], ["accepted", "vm02"]],
        "{table}"
    );
    let table = stdout_ok(&c.key(&["-F", "--out", "table"]));
    assert_eq!(
        header(&table),
        ["STATE", "MINION", "FINGERPRINT"],
        "{table}"
    );
    let first = rows(&table).into_iter().next().unwrap_or_default();
    assert_eq!(first[..2], ["local", "master.pub"], "{table}");
    let table = stdout_ok(&c.key(&["-p", "vm01", "--out", "table"]));
    assert_eq!(header(&table), ["STATE", "MINION", "PUBLIC_KEY"], "{table}");
    let table = stdout_ok(&c.key(&["-r", "vm02", "--include-accepted", "-y", "--out", "table"]));
    assert_eq!(header(&table), ["STATE", "MINION"], "{table}");
    assert_eq!(rows(&table), [["rejected", "vm02"]], "{table}");
}

#[test]
fn an_unknown_output_format_is_refused_naming_it_and_the_allowed_ones() {
    let mut c = Cluster::start(ClusterOpts::default());
    c.start_accepted(&["web01"]);
    let cases: &[(&str, &[&str], &str, &str)] = &[
        (
            "cmdb",
            &["run", "*", "test.ping", "--out", "xml"],
            "'xml'",
            "nested, json, yaml, table",
        ),
        (
            "cmdb",
            &["jobs", "list", "--out", "html"],
            "'html'",
            "nested, json, yaml, table",
        ),
        (
            "cmdb",
            &["asset", "list", "--out", "xlsx"],
            "'xlsx'",
            "table, json, csv",
        ),
        (
            "cmdb",
            &["changes", "--out", "tsv"],
            "'tsv'",
            "table, json, csv",
        ),
        // export used to print JSON for any format it did not write.
        (
            "cmdb",
            &["asset", "export", "--format", "table"],
            "'table'",
            "csv, xlsx, json",
        ),
        ("cmdb", &["events", "--out", "yaml"], "'yaml'", "text, json"),
        (
            "cmdb-key",
            &["-L", "--out", "yaml"],
            "'yaml'",
            "text, json, table",
        ),
    ];
    for (bin, args, value, allowed) in cases {
        let out = match *bin {
            "cmdb" => c.cmdb(args),
            _ => c.key(args),
        };
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bin} {args:?}: {stderr}");
        assert!(
            stderr.contains(value) && stderr.contains(allowed),
            "{bin} {args:?}: {stderr}"
        );
        assert!(
            out.stdout.is_empty(),
            "{bin} {args:?}: {}",
            text(&out.stdout)
        );
    }
    // Nothing ran: the job cache holds no job.
    let jobs: Value = serde_json::from_str(&stdout_ok(&c.cmdb(&["jobs", "list", "--out", "json"])))
        .expect("json");
    assert_eq!(jobs, serde_json::json!({}));

    // A daemon's log_format is checked the same way.
    let cfg = c.dir.path().join("bad-format.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = \"{}\"\nlog_format = \"xml\"\n",
            c.dir.path().join("other").display()
        ),
    )
    .expect("write");
    let out = std::process::Command::new(tests::bin_dir().join("cmdb-master"))
        .arg("-c")
        .arg(&cfg)
        .output()
        .expect("cmdb-master");
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("xml") && stderr.contains("text") && stderr.contains("json"),
        "{stderr}"
    );
}
