//! The asset model through real processes: assets entered by hand, typed
//! manual and finance fields, relations on both ends (VMs related to their
//! hosts from the guests the hosts report), lookups by any reference, and
//! assets as they were at a past time.

use serde_json::Value;
use tests::fixture::fixture_minion;
use tests::{Cluster, ClusterOpts, json_out, text, wait_until};

/// `cmdb asset show REF --out json`.
fn show(c: &Cluster, reference: &str) -> Value {
    json_out(&c.cmdb(&["asset", "show", reference, "--out", "json"]))
}

/// The stderr of a `cmdb` command that must fail.
fn refused(out: &std::process::Output) -> String {
    assert!(
        !out.status.success(),
        "expected a refusal, got: {}",
        text(&out.stdout)
    );
    text(&out.stderr)
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

fn collect(c: &Cluster, target: &str) {
    let (_, stderr, code) = c.run_json(&[target, "collect"]);
    assert_eq!(code, 0, "{stderr}");
}

fn links(v: &Value) -> Vec<(String, String)> {
    v["links"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            (
                l["relation"].as_str().unwrap_or_default().to_owned(),
                l["name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// A cluster relating VMs every second, with a KVM host `hv01` running
/// one guest and that guest as the minion `vm01`, neither collected yet.
fn host_and_guest() -> Cluster {
    let mut c = Cluster::start(ClusterOpts {
        master_extra: "[inventory]\nrelate_every_secs = 1\n".into(),
    });
    // A KVM host running one guest, and that guest as a minion of its own.
    let vm_uuid = "6f1e0c52-3d7a-4b8e-9a61-0c2f3e4d5a6b";
    let (host_root, _) = fixture_minion(&mut c, "hv01", "hv01", "HV0001", "");
    let qemu = host_root.path.join("run/libvirt/qemu");
    std::fs::create_dir_all(&qemu).expect("mkdir");
    std::fs::write(
        qemu.join("vm01.xml"),
        format!(
            "<domstatus state='running'>\n<domain type='kvm' id='1'>\n<name>vm01</name>\n\
             <uuid>{vm_uuid}</uuid>\n</domain>\n</domstatus>\n"
        ),
    )
    .expect("write");
    let (vm_root, _) = fixture_minion(&mut c, "vm01", "vm01", "VM0001", "");
    let dmi = vm_root.path.join("sys/class/dmi/id");
    std::fs::write(dmi.join("sys_vendor"), "QEMU\n").expect("write");
    std::fs::write(
        dmi.join("product_uuid"),
        format!("{}\n", vm_uuid.to_uppercase()),
    )
    .expect("write");
    c
}

#[test]
fn a_switch_entered_by_hand_is_found_by_serial_and_related_on_both_ends() {
    let c = host_and_guest();
    collect(&c, "*");
    let host = show(&c, "hv01");
    let host_id = host["asset_id"].as_str().expect("id").to_owned();
    assert_eq!(host["kind"], "server");
    assert_eq!(show(&c, "vm01")["kind"], "vm");
    // The master relates the VM to its host from the guests it reports.
    wait_until("vm01 runs on hv01", || {
        show(&c, "vm01")["relations"]["runs_on"] == host_id.as_str()
    });
    assert_eq!(
        links(&show(&c, "vm01")),
        [("runs_on".into(), "hv01".into())]
    );
    assert_eq!(links(&show(&c, "hv01")), [("hosts".into(), "vm01".into())]);
    let history = json_out(&c.cmdb(&["asset", "history", "vm01", "--out", "json"]));
    assert!(
        history["history"]
            .as_array()
            .expect("history")
            .iter()
            .any(|h| {
                h["source"] == "collect"
                    && h["changes"]
                        .as_array()
                        .is_some_and(|cs| cs.iter().any(|ch| ch["path"] == "relations:runs_on"))
            }),
        "the relation is a versioned change: {history}"
    );

    // A rack and a switch in it, entered by hand.
    let out = c.cmdb(&["asset", "add", "rack", "name=rack-12", "site=FRA1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = c.cmdb(&[
        "asset",
        "add",
        "switch",
        "name=sw-core-1",
        "serial=FOC1234X",
        "located_in=rack-12",
        "department=Network",
        "purchase_cost=4200",
        "purchase_date=2025-03-01",
        "depreciation_years=5",
        "currency=eur",
        "rack_unit=42",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("switch sw-core-1: "),
        "{}",
        text(&out.stdout)
    );
    let sw = show(&c, "foc1234x");
    assert_eq!(sw["kind"], "switch");
    assert_eq!(sw["serial"], "FOC1234X");
    assert_eq!(sw["status"], "active");
    assert_eq!(sw["manual"]["department"], "Network");
    assert_eq!(sw["manual"]["rack_unit"], 42);
    assert_eq!(sw["finance"]["purchase_cost"], "4200.00");
    assert_eq!(sw["finance"]["purchase_date"], "2025-03-01");
    assert_eq!(sw["finance"]["currency"], "EUR");
    // 4200.00 over 5 years from March 2025: 70.00 a month, this month
    // included.
    let today = chrono::Utc::now().date_naive();
    use chrono::Datelike;
    let months = ((today.year() - 2025) * 12 + today.month() as i32 - 3 + 1).clamp(0, 60);
    let book = 420_000 - (420_000 * i64::from(months) + 30) / 60;
    assert_eq!(
        sw["book_value"],
        format!("{}.{:02}", book / 100, book % 100),
        "{sw}"
    );
    assert_eq!(links(&sw), [("located_in".into(), "rack-12".into())]);
    assert_eq!(
        links(&show(&c, "rack-12")),
        [("contains".into(), "sw-core-1".into())]
    );
    // Cabled: shown once on each end.
    let out = c.cmdb(&["asset", "set", "hv01", "connected_to=sw-core-1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        links(&show(&c, "sw-core-1")),
        [
            ("connected_to".into(), "hv01".into()),
            ("located_in".into(), "rack-12".into())
        ]
    );
    assert!(links(&show(&c, "hv01")).contains(&("connected_to".into(), "sw-core-1".into())));

    // Bad input names what is wrong and writes nothing.
    let before = c.cmdb(&["asset", "list", "--out", "json"]);
    for (args, words) in [
        (
            vec!["asset", "add", "spaceship", "name=x"],
            vec!["spaceship", "switch", "pdu"],
        ),
        (
            vec!["asset", "add", "switch", "purchase_date=2025-13-01"],
            vec!["purchase_date", "2025-13-01"],
        ),
        (
            vec!["asset", "add", "switch", "purchase_cost=12.345"],
            vec!["purchase_cost", "12.345"],
        ),
        (
            vec!["asset", "add", "switch", "rack_unit=top"],
            vec!["rack_unit", "top"],
        ),
        (
            vec!["asset", "add", "switch", "serial=FOC1234X"],
            vec!["FOC1234X", "already"],
        ),
        (
            vec!["asset", "set", "sw-core-1", "colour=red"],
            vec!["colour"],
        ),
        (
            vec!["asset", "set", "vm01", "runs_on=vm01"],
            vec!["runs_on", "itself"],
        ),
        (
            vec!["asset", "set", "vm01", "runs_on=hv01,sw-core-1"],
            vec!["runs_on", "one asset"],
        ),
        (
            vec!["asset", "set", "vm01", "located_in=nowhere-9"],
            vec!["located_in", "nowhere-9"],
        ),
    ] {
        let err = refused(&c.cmdb(&args));
        for w in words {
            assert!(err.contains(w), "{args:?}: {w:?} not in {err}");
        }
    }
    assert_eq!(
        json_out(&before).as_array().map(Vec::len),
        json_out(&c.cmdb(&["asset", "list", "--out", "json"]))
            .as_array()
            .map(Vec::len),
        "a refused entry wrote nothing"
    );

    // Lookups by IP, MAC and asset tag; an ambiguous reference lists its
    // matches. Both minions run on this one machine, so they report the
    // same addresses.
    let ip = host["facts"]["ipv6"]
        .as_array()
        .and_then(|a| a.iter().filter_map(Value::as_str).next())
        .expect("an address")
        .to_owned();
    let err = refused(&c.cmdb(&["asset", "show", &ip]));
    assert!(
        err.contains("ambiguous") && err.matches("by IP address").count() == 2,
        "{err}"
    );
    let mac = host["facts"]["hwaddr_interfaces"]
        .as_object()
        .and_then(|m| {
            m.values()
                .filter_map(Value::as_str)
                .find(|m| *m != "00:00:00:00:00:00")
        })
        .expect("a MAC")
        .to_uppercase()
        .replace(':', "-");
    let err = refused(&c.cmdb(&["asset", "show", &mac]));
    assert!(err.matches("by MAC address").count() == 2, "{err}");
    let out = c.cmdb(&["asset", "set", "hv01", "asset_tag=INV-0042"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(show(&c, "inv-0042")["asset_id"], host_id.as_str());
    for _ in 0..2 {
        let out = c.cmdb(&["asset", "add", "pdu", "name=pdu-a"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let err = refused(&c.cmdb(&["asset", "show", "pdu-a"]));
    assert!(
        err.contains("ambiguous") && err.matches("pdu pdu-a").count() == 2,
        "{err}"
    );
    let err = refused(&c.cmdb(&["asset", "show", "no-such-thing"]));
    assert!(err.contains("no asset \"no-such-thing\""), "{err}");
}

#[test]
fn vms_are_related_to_their_hosts_while_asset_writes_never_pause() {
    let c = host_and_guest();
    collect(&c, "*");
    let host_id = show(&c, "hv01")["asset_id"]
        .as_str()
        .expect("id")
        .to_owned();
    // A pass waits for writes to pause for 3 s; an edit every few
    // hundred milliseconds never lets them, and the pass runs when it has
    // waited five periods (5 s here) instead.
    let mut edits = 0u32;
    wait_until("vm01 runs on hv01 while hv01 is edited", || {
        edits += 1;
        let out = c.cmdb(&["asset", "set", "hv01", &format!("notes=edit {edits}")]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        show(&c, "vm01")["relations"]["runs_on"] == host_id.as_str()
    });
    assert!(
        edits > 3,
        "the pass came before writes went on: {edits} edits"
    );
}

#[test]
fn an_asset_is_shown_as_it_was_at_a_time() {
    let c = Cluster::start(ClusterOpts::default());
    let out = c.cmdb(&["asset", "add", "pdu", "name=pdu-7", "owner=alice"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let first = show(&c, "pdu-7");
    let created = first["created_ms"].as_i64().expect("created");
    let out = c.cmdb(&["asset", "set", "pdu-7", "owner=bob"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let history = json_out(&c.cmdb(&["asset", "history", "pdu-7", "--out", "json"]));
    let changed = history["history"][1]["at_ms"].as_i64().expect("changed");
    assert!(changed >= created);
    let at = |t: i64| {
        json_out(&c.cmdb(&[
            "asset",
            "show",
            "pdu-7",
            "--at",
            &t.to_string(),
            "--out",
            "json",
        ]))
    };
    if changed > created {
        let then = at(changed - 1);
        assert_eq!(then["manual"]["owner"], "alice");
        assert_eq!(then["version"], 0);
    }
    let now = at(changed);
    assert_eq!(now["manual"]["owner"], "bob");
    assert_eq!(now["version"], 1);
    // A date reads as the end of that day (UTC).
    let today = chrono::DateTime::from_timestamp_millis(changed)
        .expect("time")
        .format("%Y-%m-%d")
        .to_string();
    let by_date = json_out(&c.cmdb(&["asset", "show", "pdu-7", "--at", &today, "--out", "json"]));
    assert_eq!(by_date["manual"]["owner"], "bob");
    let err = refused(&c.cmdb(&["asset", "show", "pdu-7", "--at", "2001-01-01"]));
    assert!(err.contains("did not exist at 2001-01-01"), "{err}");
    let err = refused(&c.cmdb(&["asset", "show", "pdu-7", "--at", "yesterday"]));
    assert!(err.contains("\"yesterday\" is not a time"), "{err}");
}

/// Assets of a fixture fleet entered by hand, with finance figures whose
/// audit totals are worked out below.
fn enter_fleet(c: &Cluster) {
    let rows = [
        // kind, name, department, cost, bought, years, status
        (
            "server",
            "db-1",
            "finance",
            "4800",
            "2024-03-15",
            "4",
            "active",
        ),
        (
            "server",
            "db-2",
            "finance",
            "1000",
            "2025-01-10",
            "3",
            "active",
        ),
        (
            "switch",
            "sw-1",
            "network",
            "1200",
            "2023-07-01",
            "5",
            "active",
        ),
        (
            "pdu",
            "pdu-1",
            "network",
            "600",
            "2025-06-01",
            "5",
            "planned",
        ),
        (
            "server",
            "old-1",
            "finance",
            "2400",
            "2021-01-01",
            "4",
            "active",
        ),
    ];
    for (kind, name, dept, cost, bought, years, status) in rows {
        let out = c.cmdb(&[
            "asset",
            "add",
            kind,
            &format!("name={name}"),
            &format!("department={dept}"),
            &format!("purchase_cost={cost}"),
            &format!("purchase_date={bought}"),
            &format!("depreciation_years={years}"),
            "--status",
            status,
        ]);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
    }
    let out = c.cmdb(&[
        "asset",
        "set",
        "db-1",
        "warranty_end=2026-03-15",
        "business_line=games",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // old-1 retires (within this year: counted as retired in it).
    let out = c.cmdb(&["asset", "status", "old-1", "decommissioned"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

fn names(v: &Value) -> Vec<String> {
    let mut n: Vec<String> = v
        .as_array()
        .expect("list")
        .iter()
        .map(|a| a["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    n.sort();
    n
}

#[test]
fn queries_select_over_facts_manual_and_finance_and_point_at_errors() {
    let mut c = Cluster::start(ClusterOpts::default());
    fixture_minion(&mut c, "web01", "web01", "WEB0001", "");
    collect(&c, "web01");
    enter_fleet(&c);
    let out = c.cmdb(&[
        "asset",
        "set",
        "web01",
        "department=finance",
        "purchase_cost=9000.50",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list = |q: &str| {
        names(&json_out(
            &c.cmdb(&["asset", "list", "--where", q, "--out", "json"]),
        ))
    };
    assert_eq!(
        list("department = finance and kind = server"),
        ["db-1", "db-2", "old-1", "web01"]
    );
    assert_eq!(
        list("finance.purchase_cost >= 2400 and not status = decommissioned"),
        ["db-1", "web01"]
    );
    assert_eq!(list("kind in (switch, pdu)"), ["pdu-1", "sw-1"]);
    assert_eq!(
        list("name ~ 'db-*' or warranty_end < 2027-01-01"),
        ["db-1", "db-2"]
    );
    assert_eq!(list("facts.mem_total_bytes >= 1K and os ~ '*'"), ["web01"]);
    assert_eq!(list("purchase_date < 2024-01-01"), ["old-1", "sw-1"]);
    assert_eq!(list("manual.business_line = GAMES"), ["db-1"]);
    // --fields picks the columns; --limit stops early.
    let out = c.cmdb(&[
        "asset",
        "list",
        "--where",
        "kind = server",
        "--fields",
        "department,purchase_cost",
        "--sort",
        "name",
        "--limit",
        "2",
    ]);
    let table = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        lines[0].contains("DEPARTMENT") && lines[0].contains("PURCHASE_COST"),
        "{table}"
    );
    assert!(
        lines[1].contains("finance") && lines[1].contains("4800.00"),
        "{table}"
    );
    // The API answers the same language, with fields trimming the facts.
    let page = api_get(
        &c,
        "/v1/assets?q=kind%20%3D%20server%20and%20department%20%3D%20finance&fields=os,purchase_cost&sort=name&limit=10",
    );
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 4, "{page}");
    let web = items.iter().find(|a| a["name"] == "web01").expect("web01");
    assert_eq!(web["facts"].as_object().map(|f| f.len()), Some(1), "{web}");
    assert!(web["facts"]["os"].is_string(), "{web}");
    assert_eq!(
        web["finance"],
        serde_json::json!({"purchase_cost": "9000.50"})
    );
    assert_eq!(web["manual"], serde_json::json!({}));
    // Parse errors point at the column.
    for (q, col) in [
        ("os =", "column 5"),
        ("(os = a", "column 8"),
        ("os == a", "column 5"),
        ("kind in (a,", "column 12"),
    ] {
        let err = refused(&c.cmdb(&["asset", "list", "--where", q]));
        assert!(err.contains(col), "{q:?}: {col} not in {err}");
        assert!(err.contains('^'), "{q:?}: no caret in {err}");
    }
    // Changes of the assets a query selects.
    let out = c.cmdb(&[
        "changes",
        "--since",
        "1h",
        "--where",
        "name = sw-1",
        "--out",
        "json",
    ]);
    let feed = json_out(&out);
    assert!(!feed.as_array().expect("feed").is_empty());
    assert!(
        feed.as_array()
            .expect("feed")
            .iter()
            .all(|e| e["asset_id"] == show(&c, "sw-1")["asset_id"]),
        "{feed}"
    );
}

#[test]
fn the_year_end_audit_matches_totals_worked_out_by_hand() {
    let c = Cluster::start(ClusterOpts::default());
    enter_fleet(&c);
    let r = json_out(&c.cmdb(&["report", "audit", "--year", "2025", "--out", "json"]));
    let group = |name: &str| {
        r["groups"]
            .as_array()
            .expect("groups")
            .iter()
            .find(|g| g["group"] == name)
            .unwrap_or_else(|| panic!("no group {name}: {r}"))
            .clone()
    };
    // finance: db-1 (4800.00 over 4 years from March 2024: 100.00 a month,
    // 1200.00 in 2025, book 2600.00), db-2 (1000.00 over 3 years from
    // January 2025: 12/36 = 333.33, book 666.67), old-1 (2400.00 over 4
    // years from January 2021: fully depreciated at the end of 2024).
    let fin = group("finance");
    assert_eq!(fin["assets"], 3);
    assert_eq!(fin["totals"]["EUR"]["purchase_cost"], "8200.00");
    assert_eq!(fin["totals"]["EUR"]["book_value"], "3266.67");
    assert_eq!(fin["totals"]["EUR"]["depreciation"], "1533.33");
    assert_eq!(fin["bought"], 1);
    assert_eq!(fin["retired"], 0);
    assert_eq!(fin["warranty_next_year"], 1);
    assert_eq!(fin["by_status"]["decommissioned"], 1);
    // network: sw-1 (1200.00 over 5 years from July 2023: 20.00 a month,
    // 240.00 in 2025, book 600.00), pdu-1 (600.00 over 5 years from June
    // 2025: 7 months of 10.00, book 530.00).
    let net = group("network");
    assert_eq!(net["assets"], 2);
    assert_eq!(net["by_kind"]["pdu"], 1);
    assert_eq!(net["totals"]["EUR"]["purchase_cost"], "1800.00");
    assert_eq!(net["totals"]["EUR"]["book_value"], "1130.00");
    assert_eq!(net["totals"]["EUR"]["depreciation"], "310.00");
    assert_eq!(r["total"]["assets"], 5);
    assert_eq!(r["total"]["totals"]["EUR"]["purchase_cost"], "10000.00");
    assert_eq!(r["total"]["totals"]["EUR"]["book_value"], "4396.67");
    assert_eq!(r["total"]["totals"]["EUR"]["depreciation"], "1843.33");
    // old-1 was decommissioned this year.
    let this_year = chrono::Utc::now().format("%Y").to_string();
    let now = json_out(&c.cmdb(&["report", "audit", "--year", &this_year, "--out", "json"]));
    let fin_now = now["groups"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["group"] == "finance"))
        .expect("finance");
    assert_eq!(fin_now["retired"], 1, "{now}");
    // The same figures as a table, CSV and XLSX.
    let table = text(&c.cmdb(&["report", "audit", "--year", "2025"]).stdout);
    assert!(table.starts_with("GROUP"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("network") && l.contains("1130.00")),
        "{table}"
    );
    let csv = text(
        &c.cmdb(&["report", "audit", "--year", "2025", "--out", "csv"])
            .stdout,
    );
    assert!(csv.starts_with("group,currency,assets,"), "{csv}");
    assert!(csv.lines().any(|l| l.starts_with("total,EUR,5,")), "{csv}");
    let file = c.dir.path().join("audit.xlsx");
    let out = c.cmdb(&[
        "report",
        "audit",
        "--year",
        "2025",
        "--out",
        "xlsx",
        "-o",
        file.to_str().expect("path"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows = read_xlsx(&file);
    let total = rows.iter().find(|r| r[0] == "total").expect("total row");
    assert_eq!(total[6], "4396.67", "{total:?}");
    // By site: nobody has one.
    let by_site = json_out(&c.cmdb(&[
        "report",
        "audit",
        "--year",
        "2025",
        "--group-by",
        "site",
        "--out",
        "json",
    ]));
    assert_eq!(by_site["groups"][0]["group"], "(none)");
    let err = refused(&c.cmdb(&["report", "audit", "--year", "2025", "--group-by", "colour"]));
    assert!(
        err.contains("colour") && err.contains("business_line"),
        "{err}"
    );
}

/// Every row of the first sheet of an XLSX file as text, read with calamine
/// (not with the code that wrote it): dates as YYYY-MM-DD, whole numbers
/// without decimals, amounts with two.
fn read_xlsx(path: &std::path::Path) -> Vec<Vec<String>> {
    use calamine::{Data, Reader};
    let mut book: calamine::Xlsx<_> = calamine::open_workbook(path).expect("open xlsx");
    let range = book.worksheet_range_at(0).expect("a sheet").expect("sheet");
    range
        .rows()
        .map(|r| {
            r.iter()
                .map(|d| match d {
                    Data::Empty => String::new(),
                    Data::String(s) => s.clone(),
                    Data::Float(f) if f.fract() == 0.0 => format!("{}", *f as i64),
                    Data::Float(f) => format!("{f:.2}"),
                    Data::Int(i) => i.to_string(),
                    Data::Bool(b) => b.to_string(),
                    Data::DateTime(dt) => dt.as_datetime().expect("date").date().to_string(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect()
}

/// Writes rows of text as an XLSX sheet with rust_xlsxwriter: numbers as
/// numbers, everything else as text.
fn write_xlsx(path: &std::path::Path, rows: &[Vec<String>]) {
    let mut book = rust_xlsxwriter::Workbook::new();
    let ws = book.add_worksheet();
    ws.set_name("edited").expect("name");
    for (r, row) in rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            // Asset ids stay text, as the export wrote them and as a
            // spreadsheet keeps a text cell: an id is random hex, and one
            // such as "9e99…" or all digits would parse as a number.
            let id = rows[0].get(c).is_some_and(|h| h == "asset_id");
            let (r, c) = (r as u32, c as u16);
            match cell.parse::<f64>() {
                Ok(n) if r > 0 && !cell.is_empty() && !id => ws.write_number(r, c, n),
                _ => ws.write_string(r, c, cell),
            }
            .expect("write");
        }
    }
    book.save(path).expect("save");
}

#[test]
fn an_xlsx_round_trip_changes_exactly_the_edited_cell() {
    let mut c = Cluster::start(ClusterOpts::default());
    fixture_minion(&mut c, "web01", "web01", "WEB0001", "");
    collect(&c, "web01");
    enter_fleet(&c);
    let out = c.cmdb(&["asset", "set", "web01", "cost_center=CC-7", "owner=dave"]);
    assert!(!out.status.success(), "cost_center is not configured yet");
    let file = c.dir.path().join("assets.xlsx");
    let out = c.cmdb(&[
        "asset",
        "export",
        "--format",
        "xlsx",
        "-o",
        file.to_str().expect("path"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut rows = read_xlsx(&file);
    let header = rows[0].clone();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}: {header:?}"))
    };
    assert_eq!(rows.len(), 7, "a header and six assets");
    let sw = rows
        .iter()
        .position(|r| r[col("name")] == "sw-1")
        .expect("sw-1");
    assert_eq!(rows[sw][col("purchase_cost")], "1200", "{:?}", rows[sw]);
    assert_eq!(rows[sw][col("purchase_date")], "2023-07-01");
    assert_eq!(rows[sw][col("kind")], "switch");
    let web = rows
        .iter()
        .position(|r| r[col("minion")] == "web01")
        .expect("web01");
    assert_eq!(rows[web][col("facts.host")], "web01");
    rows[sw][col("owner")] = "carol".into();
    let edited = c.dir.path().join("edited.xlsx");
    write_xlsx(&edited, &rows);
    let sw_before = show(&c, "sw-1");

    // A dry run says what would change and changes nothing.
    let dry = json_out(&c.cmdb(&[
        "asset",
        "import",
        edited.to_str().expect("path"),
        "--dry-run",
        "--out",
        "json",
    ]));
    assert_eq!(dry["matched"], 6, "{dry}");
    assert_eq!(dry["created"], 0, "{dry}");
    assert_eq!(dry["unchanged"], 5, "{dry}");
    let changes = dry["changes"].as_array().expect("changes");
    assert_eq!(changes.len(), 1, "{dry}");
    assert_eq!(changes[0]["path"], "manual:owner");
    assert_eq!(changes[0]["new"], "carol");
    assert_eq!(changes[0]["asset_id"], sw_before["asset_id"]);
    assert_eq!(show(&c, "sw-1")["version"], sw_before["version"]);

    let out = c.cmdb(&["asset", "import", edited.to_str().expect("path")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout)
            .contains("imported 6 rows: 6 matched existing assets (5 unchanged), 0 new assets"),
        "{}",
        text(&out.stdout)
    );
    let sw_after = show(&c, "sw-1");
    assert_eq!(sw_after["manual"]["owner"], "carol");
    assert_eq!(
        sw_after["version"],
        sw_before["version"].as_u64().expect("v") + 1
    );
    let history = json_out(&c.cmdb(&["asset", "history", "sw-1", "--out", "json"]));
    let last = history["history"]
        .as_array()
        .and_then(|h| h.last())
        .expect("last")
        .clone();
    assert_eq!(last["source"], "import");
    assert_eq!(last["changes"].as_array().map(Vec::len), Some(1), "{last}");

    // A formula's cached value is what is read; new rows become planned
    // assets matched later by serial.
    let mut book = rust_xlsxwriter::Workbook::new();
    let ws = book.add_worksheet();
    for (i, h) in ["serial", "kind", "name", "purchase_cost", "purchase_date"]
        .iter()
        .enumerate()
    {
        ws.write_string(0, i as u16, *h).expect("w");
    }
    ws.write_string(1, 0, "NEW-0001").expect("w");
    ws.write_string(1, 1, "storage").expect("w");
    ws.write_string(1, 2, "nas-1").expect("w");
    ws.write_formula(
        1,
        3,
        rust_xlsxwriter::Formula::new("=1000+200").set_result("1200"),
    )
    .expect("w");
    ws.write_string(1, 4, "2025-02-01").expect("w");
    let formula = c.dir.path().join("formula.xlsx");
    book.save(&formula).expect("save");
    let out = c.cmdb(&["asset", "import", formula.to_str().expect("path")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let nas = show(&c, "NEW-0001");
    assert_eq!(nas["finance"]["purchase_cost"], "1200.00");
    assert_eq!(nas["kind"], "storage");
    assert_eq!(nas["status"], "planned");

    // Rows without an asset id or serial are matched by minion id.
    let by_minion = c.dir.path().join("by-minion.csv");
    std::fs::write(&by_minion, "minion,owner,rack_unit\nweb01,erin,U7\n").expect("write");
    let out = c.cmdb(&["asset", "import", by_minion.to_str().expect("path")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let web = show(&c, "web01");
    assert_eq!(
        (
            web["manual"]["owner"].clone(),
            web["manual"]["rack_unit"].clone()
        ),
        (Value::from("erin"), Value::from(7))
    );

    // Bad files name the place and write nothing.
    let count = || {
        json_out(&c.cmdb(&["asset", "list", "--out", "json"]))
            .as_array()
            .map(Vec::len)
    };
    let before = count();
    for (name, body, words) in [
        (
            "unknown.csv",
            "name,colour\nx,red\n",
            vec!["line 1, column 2", "unknown column \"colour\""],
        ),
        (
            "date.csv",
            "name,purchase_date\nok-1,2025-01-01\nbad-1,2025-02-30\n",
            vec![
                "line 3, column 2 (purchase_date)",
                "2025-02-30",
                "not a date",
            ],
        ),
        (
            "dup.csv",
            "serial,name\nDUP-1,a\nDUP-1,b\n",
            vec!["line 3", "serial DUP-1 is also on row 2"],
        ),
        (
            "status.csv",
            "asset_id,status\nnot-an-id,active\n",
            vec!["line 2, column 1 (asset_id)", "not an asset id"],
        ),
        (
            "money.csv",
            "name,purchase_cost\nx,12.345\n",
            vec!["line 2, column 2 (purchase_cost)"],
        ),
    ] {
        let path = c.dir.path().join(name);
        std::fs::write(&path, body).expect("write");
        let err = refused(&c.cmdb(&["asset", "import", path.to_str().expect("path")]));
        for w in words {
            assert!(err.contains(w), "{name}: {w:?} not in {err}");
        }
    }
    assert_eq!(count(), before, "nothing written by a refused import");
    let bogus = c.dir.path().join("bogus.xlsx");
    std::fs::write(&bogus, b"PK\x03\x04garbage").expect("write");
    let err = refused(&c.cmdb(&["asset", "import", bogus.to_str().expect("path")]));
    assert!(err.contains("not an XLSX workbook"), "{err}");
}
