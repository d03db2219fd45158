//! Jobs a Salt user can trust: checked arguments, `cmd.run`'s options, the
//! small functions, batches, job control and Ctrl-C, through real
//! processes on 127.0.0.1.

use serde_json::{Value, json};
use tests::{Cluster, ClusterOpts, jid_of, text, wait_until};

fn cluster_with(ids: &[&str]) -> Cluster {
    let mut c = Cluster::start(ClusterOpts::default());
    c.start_accepted(ids);
    c
}

#[test]
fn keyword_arguments_are_checked_and_cmd_run_honours_its_options() {
    let c = cluster_with(&["web01"]);

    let (v, stderr, code) = c.run_json(&["web01", "cmd.run", "id -un", "bogus_kw=1"]);
    assert_eq!(code, 1, "{stderr}");
    let msg = v["web01"].as_str().expect("error text");
    assert!(msg.contains("unknown keyword argument 'bogus_kw'"), "{msg}");
    assert!(msg.contains("runas"), "{msg}");

    let (v, stderr, code) = c.run_json(&["web01", "cmd.run", "id -un", "runas=nobody"]);
    if nix::unistd::geteuid().is_root() {
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(v["web01"], json!("nobody"));
    } else {
        assert_eq!(code, 1);
        assert!(
            v["web01"]
                .as_str()
                .expect("e")
                .contains("needs the minion to run as root")
        );
    }

    let (v, stderr, code) = c.run_json(&[
        "-t",
        "30",
        "web01",
        "cmd.run",
        "sleep 20; echo not killed",
        "timeout=1",
    ]);
    assert_eq!(code, 1);
    assert!(
        v["web01"]
            .as_str()
            .expect("e")
            .contains("timed out after 1 s"),
        "{v}"
    );
    assert!(stderr.contains("web01: 124"), "{stderr}");

    let dir = c.dir.path().display().to_string();
    let (v, stderr, code) = c.run_json(&[
        "web01",
        "cmd.run",
        "pwd; echo \"$GREETING\"; cat",
        &format!("cwd={dir}"),
        "env={GREETING: hello}",
        "stdin=piped in",
        "shell=/bin/bash",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(v["web01"], json!(format!("{dir}\nhello\npiped in")));

    let (v, _, code) = c.run_json(&["web01", "cmd.run", "echo '$HOME' ;", "python_shell=false"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["web01"], json!("$HOME ;"));

    let (v, _, code) = c.run_json(&["web01", "test.ping", "extra"]);
    assert_eq!(code, 1);
    assert!(
        v["web01"]
            .as_str()
            .expect("e")
            .contains("takes at most 0 positional arguments (1 given)"),
        "{v}"
    );
}

#[test]
fn cmd_script_test_sleep_and_version_grains_get_and_sys_doc() {
    let c = cluster_with(&["web01"]);
    let scripts = c.dir.path().join("srv/scripts");
    std::fs::create_dir_all(&scripts).expect("mkdir");
    std::fs::write(
        scripts.join("hello.sh"),
        "#!/bin/sh\necho \"args: $1|$2\"\necho oops >&2\nexit 2\n",
    )
    .expect("script");

    let (v, _, code) = c.run_json(&["web01", "cmd.script", "cmdb://scripts/hello.sh", "a 'b c'"]);
    assert_eq!(code, 1);
    assert_eq!(v["web01"]["stdout"], json!("args: a|b c"));
    assert_eq!(v["web01"]["stderr"], json!("oops"));
    assert_eq!(v["web01"]["retcode"], json!(2));

    let (v, _, code) = c.run_json(&["web01", "test.sleep", "0.2"]);
    assert_eq!((code, &v), (0, &json!({"web01": true})));
    let (v, _, _) = c.run_json(&["web01", "test.version"]);
    assert_eq!(v["web01"], json!(env!("CARGO_PKG_VERSION")));

    let (v, _, code) = c.run_json(&["web01", "grains.get", "kernel"]);
    assert_eq!(code, 0);
    assert_eq!(v["web01"], json!("Linux"));
    let (v, _, _) = c.run_json(&["web01", "grains.get", "no_such:fact", "fallback"]);
    assert_eq!(v["web01"], json!("fallback"));

    let (v, _, code) = c.run_json(&["web01", "sys.doc", "cmd.run"]);
    assert_eq!(code, 0);
    let doc = v["web01"]["cmd.run"].as_str().expect("doc");
    assert!(doc.starts_with("cmd.run CMD [cwd=…]"), "{doc}");
    let (v, _, _) = c.run_json(&["web01", "sys.list_functions"]);
    let funs = v["web01"].as_array().expect("list");
    for f in [
        "cmd.script",
        "grains.get",
        "sys.doc",
        "test.sleep",
        "test.version",
    ] {
        assert!(funs.contains(&json!(f)), "{f} missing from {funs:?}");
    }
}

/// `(start, end)` seconds that `date +%s.%N; …; date +%s.%N` printed.
fn span(v: &Value) -> (f64, f64) {
    let s = v.as_str().expect("output");
    let mut times = s.lines().map(|l| l.trim().parse::<f64>().expect("time"));
    (times.next().expect("start"), times.next().expect("end"))
}

#[test]
fn a_batch_of_two_over_four_minions_never_runs_more_than_two_at_once() {
    let c = cluster_with(&["b1", "b2", "b3", "b4"]);
    let (v, stderr, code) = c.run_json(&[
        "-b",
        "2",
        "b*",
        "cmd.run",
        "date +%s.%N; sleep 1; date +%s.%N",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let spans: Vec<(f64, f64)> = ["b1", "b2", "b3", "b4"]
        .iter()
        .map(|m| span(&v[m]))
        .collect();
    // At each start, count the runs under way (the minions' own clocks).
    let most = spans
        .iter()
        .map(|(s, _)| spans.iter().filter(|(a, b)| a <= s && s < b).count())
        .max()
        .expect("spans");
    assert_eq!(most, 2, "{spans:?}");

    // --batch-wait holds a freed place before the next minion starts.
    let (v, stderr, code) = c.run_json(&[
        "-b",
        "1",
        "--batch-wait",
        "1",
        "-L",
        "b1,b2",
        "cmd.run",
        "date +%s.%N; date +%s.%N",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let (first, second) = (span(&v["b1"]), span(&v["b2"]));
    let gap = second.0.max(first.0) - first.1.min(second.1);
    assert!(gap >= 0.9, "second started {gap} s after the first ended");

    for bad in ["0", "many", "150%"] {
        let out = c.cmdb(&["run", "-b", bad, "b*", "test.ping"]);
        assert_eq!(out.status.code(), Some(1));
        let err = text(&out.stderr);
        assert!(
            err.contains(&format!("batch \"{bad}\" is not a number of minions")),
            "{err}"
        );
    }
}

#[test]
fn a_killed_job_loses_its_whole_process_group_and_returns_that_it_was_killed() {
    let c = cluster_with(&["web01"]);
    let pidfile = c.dir.path().join("sleep.pid");
    let cmd = format!("sleep 60 & echo $! > {}; wait", pidfile.display());
    let out = c.cmdb(&["run", "--async", "web01", "cmd.run", &cmd]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let jid = jid_of(&out);
    wait_until("the command wrote its child's pid", || {
        std::fs::read_to_string(&pidfile).is_ok_and(|s| s.trim().parse::<i32>().is_ok())
    });
    let sleep_pid: i32 = std::fs::read_to_string(&pidfile)
        .expect("pid")
        .trim()
        .parse()
        .expect("pid");

    let active = c.cmdb(&["jobs", "active", "--out", "json"]);
    assert!(active.status.success(), "{}", text(&active.stderr));
    let active: Value = serde_json::from_slice(&active.stdout).expect("json");
    assert_eq!(active[&jid]["Function"], json!("cmd.run"), "{active}");
    assert_eq!(active[&jid]["Pending"], json!(1), "{active}");

    let table = text(&c.cmdb(&["jobs", "active", "--out", "table"]).stdout);
    let header = table.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("JID") && header.ends_with("PENDING  RUNNING_ON"),
        "{table}"
    );
    assert!(table.contains(&jid), "{table}");

    let acks = c.minion("web01").count("return acknowledged");
    let kill = c.cmdb(&["jobs", "kill", &jid, "--out", "json"]);
    assert!(kill.status.success(), "{}", text(&kill.stderr));
    let report: Value = serde_json::from_slice(&kill.stdout).expect("json");
    assert_eq!(report, json!({"web01": "killed"}));
    // The kill's own return and the killed job's return.
    c.minion("web01")
        .wait_for_n("return acknowledged", acks + 2);
    wait_until("the job's background sleep is gone", || {
        !std::path::Path::new(&format!("/proc/{sleep_pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{sleep_pid}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
    });

    let show = c.cmdb(&["jobs", "show", &jid, "--out", "json"]);
    let show: Value = serde_json::from_slice(&show.stdout).expect("json");
    assert_eq!(show[&jid]["Result"]["web01"], json!("the job was killed"));
    assert_eq!(show[&jid]["Retcodes"]["web01"], json!(137));

    let again = c.cmdb(&["jobs", "kill", &jid]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("is not running"),
        "{}",
        text(&again.stderr)
    );
    let active = c.cmdb(&["jobs", "active", "--out", "json"]);
    let active: Value = serde_json::from_slice(&active.stdout).expect("json");
    assert!(active.get(&jid).is_none(), "{active}");
}

#[test]
fn ctrl_c_on_a_waiting_run_leaves_the_job_running_and_prints_its_jid() {
    let c = cluster_with(&["web01"]);
    let mut run = c.spawn_cmdb(&["run", "-t", "30", "web01", "test.sleep", "3"]);
    c.master().wait_for("published job");
    // The CLI learns the jid from the master's answer; the minion taking
    // the job comes after that answer was sent.
    c.minion("web01").wait_for("running job");
    run.signal(nix::sys::signal::Signal::SIGINT);
    let status = run.wait_exit();
    assert_eq!(status.code(), Some(130), "{}", run.logs());
    let jid = run
        .lines_with("This job's jid is: ")
        .first()
        .and_then(|l| l.rsplit(' ').next().map(str::to_owned))
        .unwrap_or_else(|| panic!("no jid line in: {}", run.logs()));
    assert!(
        run.logs().contains(&format!("cmdb jobs show {jid}")),
        "{}",
        run.logs()
    );

    c.minion("web01").wait_for("return acknowledged");
    let show = c.cmdb(&["jobs", "show", &jid, "--out", "json"]);
    let show: Value = serde_json::from_slice(&show.stdout).expect("json");
    assert_eq!(show[&jid]["Result"]["web01"], json!(true), "{show}");
}

#[test]
fn big_returns_arrive_in_parts_and_one_over_the_limit_is_an_error_naming_its_size() {
    let c = cluster_with(&["web01"]);
    let (v, stderr, code) = c.run_json(&[
        "-t",
        "60",
        "web01",
        "cmd.run",
        "head -c 6000000 /dev/zero | tr '\\0' a",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let out = v["web01"].as_str().expect("output");
    assert_eq!(out.len(), 6_000_000);
    assert!(out.bytes().all(|b| b == b'a'));
    assert!(c.master().count("assembled a large return") >= 1);

    let (v, stderr, code) = c.run_json(&[
        "-t",
        "60",
        "web01",
        "cmd.run",
        "head -c 70000000 /dev/zero | tr '\\0' b",
    ]);
    assert_eq!(code, 1, "{stderr}");
    let msg = v["web01"].as_str().expect("error");
    assert!(msg.starts_with("the return of 7000"), "{msg}");
    assert!(
        msg.ends_with("bytes is over max_return_bytes (67108864 bytes) and was not sent"),
        "{msg}"
    );

    // A master with a smaller limit refuses the first part; the minion
    // says so in the return's place instead of retrying.
    let mut small = Cluster::start(ClusterOpts {
        master_extra: "max_return_bytes = 2097152".into(),
    });
    small.start_accepted(&["web02"]);
    let (v, stderr, code) = small.run_json(&[
        "-t",
        "60",
        "web02",
        "cmd.run",
        "head -c 3000000 /dev/zero | tr '\\0' c",
    ]);
    assert_eq!(code, 1, "{stderr}");
    let msg = v["web02"].as_str().expect("error");
    assert!(msg.contains("the master refused it"), "{msg}");
    assert!(
        msg.contains("over max_return_bytes (2097152 bytes)"),
        "{msg}"
    );
    assert_eq!(
        small.minion("web02").count("refused a return as too large"),
        1
    );
}

#[test]
fn a_return_the_master_never_takes_is_warned_about_once_then_dropped() {
    let mut c = Cluster::start(ClusterOpts::default());
    c.start_minion_with("web01", "web01", "return_retry_secs = 2\n")
        .wait_for("key pending acceptance");
    assert!(c.key(&["-a", "web01", "-y"]).status.success());
    c.minion("web01").wait_for("minion ready");
    let out = c.cmdb(&["run", "--async", "web01", "test.sleep", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    c.minion("web01").wait_for("running job");
    c.master_mut().kill();
    c.minion("web01")
        .wait_for("giving up on a return the master did not take");
    assert_eq!(c.minion("web01").count("return not delivered; retrying"), 1);
    assert!(!c.minion("web01").logs().contains("return acknowledged"));
}

#[test]
fn cmdb_minion_call_runs_a_function_here_locally_or_with_the_masters_files() {
    let c = cluster_with(&["web01"]);
    let minion = tests::bin_dir().join("cmdb-minion");
    let call = |cfg: &std::path::Path, args: &[&str]| {
        std::process::Command::new(&minion)
            .arg("-c")
            .arg(cfg)
            .arg("call")
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("cmdb-minion call")
    };

    // --local: no master, state files from the config's file_roots.
    let roots = c.dir.path().join("local-srv");
    std::fs::create_dir_all(&roots).expect("mkdir");
    let target = c.dir.path().join("made-locally.txt");
    std::fs::write(
        roots.join("hello.sls"),
        format!(
            "hello_file:\n  file.managed:\n    - name: {}\n    - contents: hi from call\n",
            target.display()
        ),
    )
    .expect("sls");
    let local_cfg = c.dir.path().join("local.toml");
    std::fs::write(
        &local_cfg,
        format!(
            "master = \"127.0.0.1\"\nret_port = 1\nid = \"solo\"\nstate_dir = \"{}\"\nfile_roots = [\"{}\"]\n",
            c.dir.path().join("solo-state").display(),
            roots.display()
        ),
    )
    .expect("config");
    let out = call(
        &local_cfg,
        &["--local", "--out", "json", "state.apply", "hello"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    let result = v["local"].as_object().expect("states");
    assert_eq!(result.len(), 1, "{v}");
    assert_eq!(
        std::fs::read_to_string(&target).expect("made"),
        "hi from call\n"
    );

    let out = call(&local_cfg, &["--local", "test.ping"]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "local:\n    True\n");
    let out = call(&local_cfg, &["--local", "cmd.run", "echo oops; exit 3"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("retcode: 3"),
        "{}",
        text(&out.stdout)
    );
    let out = call(&local_cfg, &["--local", "cp.push", "/etc/hostname"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("cannot run with --local"));
    let out = call(&local_cfg, &["--local", "test.ping", "bogus=1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("'bogus'"));

    // Without --local: files come from the master, with the minion's own
    // key, while its daemon goes on answering.
    std::fs::create_dir_all(c.dir.path().join("srv")).expect("mkdir");
    std::fs::write(c.dir.path().join("srv/greet.txt"), "from the master").expect("w");
    let dest = c.dir.path().join("greet-copy.txt");
    let out = call(
        &c.dir.path().join("web01.toml"),
        &[
            "--out",
            "json",
            "cp.get_file",
            "cmdb://greet.txt",
            dest.to_str().expect("p"),
        ],
    );
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&dest).expect("copied"),
        "from the master"
    );
    let (v, stderr, code) = c.run_json(&["web01", "test.ping"]);
    assert_eq!((code, v), (0, json!({"web01": true})), "{stderr}");
}
