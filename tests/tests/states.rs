//! States and file distribution through real processes.

use std::path::Path;

use serde_json::{Value, json};
use tests::raw::RawDealer;
use tests::{Cluster, ClusterOpts, read_key, text};

fn srv(c: &Cluster) -> std::path::PathBuf {
    let d = c.dir.path().join("srv");
    std::fs::create_dir_all(&d).expect("srv");
    d
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn states_of(v: &Value) -> Vec<&Value> {
    let mut s: Vec<&Value> = v.as_object().expect("state results").values().collect();
    s.sort_by_key(|x| x["__run_num__"].as_u64());
    s
}

#[test]
fn state_apply_test_mode_then_real_then_idempotent_on_three_minions() {
    let mut c = Cluster::start(ClusterOpts::default());
    c.start_accepted(&["web01", "web02", "web03"]);
    let out = c.dir.path().join("out");
    write(&srv(&c).join("files/motd"), "managed by cmdb\n");
    write(
        &srv(&c).join("demo.sls"),
        &format!(
            "motd:\n  file.managed:\n    - name: {o}/motd\n    - source: cmdb://files/motd\n    - mode: \"0644\"\n    - makedirs: true\nconfig_dir:\n  file.directory:\n    - name: {o}/conf.d\n    - makedirs: true\n    - require:\n      - file: motd\nstamp:\n  cmd.run:\n    - name: echo applied >> {o}/stamp\n    - onchanges:\n      - file: motd\n",
            o = out.display()
        ),
    );
    let (v, stderr, code) = c.run_json(&["*", "state.apply", "demo", "test=true"]);
    assert_eq!(code, 0, "{stderr} {v}");
    for m in ["web01", "web02", "web03"] {
        let s = states_of(&v[m]);
        assert_eq!(s[0]["result"], Value::Null, "test mode: would change");
        assert!(
            s[0]["comment"]
                .as_str()
                .expect("c")
                .contains("would be created")
        );
    }
    assert!(!out.exists(), "test mode changed nothing");

    let (v, stderr, code) = c.run_json(&["web01", "state.apply", "demo"]);
    assert_eq!(code, 0, "{stderr}");
    let s = states_of(&v["web01"]);
    assert_eq!(s[0]["changes"]["diff"], "New file");
    assert_eq!(s[1]["result"], true);
    assert_eq!(s[2]["changes"]["stdout"], "");
    assert_eq!(
        std::fs::read_to_string(out.join("motd")).expect("motd"),
        "managed by cmdb\n"
    );
    assert!(out.join("conf.d").is_dir());

    let (v, _, code) = c.run_json(&["web01", "state.apply", "demo"]);
    assert_eq!(code, 0);
    let s = states_of(&v["web01"]);
    assert!(
        s.iter().all(|x| x["changes"] == json!({})),
        "second run changes nothing: {s:?}"
    );
    assert!(s[2]["comment"].as_str().expect("c").contains("onchanges"));
    assert_eq!(
        std::fs::read_to_string(out.join("stamp")).expect("stamp"),
        "applied\n"
    );

    let nested = text(&c.cmdb(&["run", "web01", "state.apply", "demo"]).stdout);
    assert!(
        nested.contains("          ID: motd\n    Function: file.managed"),
        "{nested}"
    );
    assert!(nested.contains("Summary for web01"), "{nested}");
    assert!(nested.contains("Succeeded: 3 (changed=0)"), "{nested}");
}

#[test]
fn failing_states_fail_the_run_and_skip_dependents() {
    let mut c = Cluster::start(ClusterOpts::default());
    c.start_accepted(&["web01"]);
    let marker = c.dir.path().join("never");
    write(
        &srv(&c).join("broken.sls"),
        &format!(
            "boom:\n  cmd.run:\n    - name: exit 4\nafter:\n  file.managed:\n    - name: {}\n    - contents: x\n    - require:\n      - cmd: boom\n",
            marker.display()
        ),
    );
    let (v, _, code) = c.run_json(&["web01", "state.apply", "broken"]);
    assert_eq!(code, 1);
    let s = states_of(&v["web01"]);
    assert_eq!(s[0]["result"], false);
    assert_eq!(s[1]["result"], false);
    assert!(
        s[1]["comment"]
            .as_str()
            .expect("c")
            .contains("requisite failed")
    );
    assert!(!marker.exists());

    write(
        &srv(&c).join("cycle.sls"),
        "a:\n  cmd.run:\n    - require:\n      - cmd: b\nb:\n  cmd.run:\n    - require:\n      - cmd: a\n",
    );
    let (v, _, code) = c.run_json(&["web01", "state.apply", "cycle"]);
    assert_eq!(code, 1);
    assert!(v["web01"].as_str().expect("error").contains("cycle"), "{v}");

    write(
        &srv(&c).join("typo.sls"),
        "ok:\n  cmd.run: []\nbad:\n  nomodule:\n    - 7\n",
    );
    let (v, _, _) = c.run_json(&["web01", "state.apply", "typo"]);
    assert!(
        v["web01"]
            .as_str()
            .expect("error")
            .contains("typo, line 3, state \"bad\""),
        "{v}"
    );
    let (v, _, _) = c.run_json(&["web01", "state.apply", "missing"]);
    assert!(
        v["web01"]
            .as_str()
            .expect("error")
            .contains("no state file missing.sls"),
        "{v}"
    );
}

#[test]
fn highstate_follows_top_sls_and_show_sls_compiles() {
    let mut c = Cluster::start(ClusterOpts::default());
    c.start_accepted(&["web01", "db01"]);
    let out = c.dir.path().join("hs");
    write(
        &srv(&c).join("top.sls"),
        "base:\n  'web*':\n    - web\n  '*':\n    - common\n",
    );
    write(
        &srv(&c).join("web/init.sls"),
        &format!(
            "webdir:\n  file.directory:\n    - name: {}/web\n    - makedirs: true\n",
            out.display()
        ),
    );
    write(
        &srv(&c).join("common.sls"),
        &format!(
            "include:\n  - web\ncommondir:\n  file.directory:\n    - name: {}/common\n    - makedirs: true\n",
            out.display()
        ),
    );
    let (v, stderr, code) = c.run_json(&["web01", "state.highstate"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(v["web01"].as_object().expect("states").len(), 2);
    assert!(out.join("web").is_dir() && out.join("common").is_dir());
    let (v, _, code) = c.run_json(&["db01", "state.show_sls", "common"]);
    assert_eq!(code, 0);
    assert_eq!(v["db01"]["commondir"]["__sls__"], "common");
    assert_eq!(v["db01"]["webdir"]["file"][0], "directory");
}

#[test]
fn pkg_state_checks_dpkg_without_installing() {
    if !Path::new("/usr/bin/dpkg-query").exists() {
        return;
    }
    let mut c = Cluster::start(ClusterOpts::default());
    c.start_accepted(&["web01"]);
    write(
        &srv(&c).join("pkgs.sls"),
        "dpkg:\n  pkg.installed: []\nnot-a-real-package-cmdb:\n  pkg.installed: []\n",
    );
    let (v, stderr, code) = c.run_json(&["web01", "state.apply", "pkgs", "test=true"]);
    assert_eq!(code, 0, "{stderr}");
    let s = states_of(&v["web01"]);
    assert_eq!(s[0]["result"], true);
    assert!(
        s[0]["comment"]
            .as_str()
            .expect("c")
            .contains("already installed")
    );
    assert_eq!(s[1]["result"], Value::Null);
    assert!(
        s[1]["comment"]
            .as_str()
            .expect("c")
            .contains("would be installed")
    );
}

#[test]
fn file_paths_outside_their_roots_are_refused_both_ways() {
    let mut c = Cluster::start(ClusterOpts::default());
    c.start_accepted(&["web01"]);
    std::fs::write(c.dir.path().join("secret"), "top secret").expect("w");
    std::os::unix::fs::symlink(c.dir.path().join("secret"), srv(&c).join("link")).expect("ln");
    let dest = c.dir.path().join("got");
    for src in ["cmdb://../secret", "cmdb:///etc/passwd", "cmdb://link"] {
        let (v, _, code) = c.run_json(&["web01", "cp.get_file", src, dest.to_str().expect("p")]);
        assert_eq!(code, 1, "{src}");
        assert!(
            v["web01"].as_str().expect("e").contains("refused"),
            "{src}: {v}"
        );
    }
    assert!(!dest.exists());

    let mk = keys::read_public(&c.master_pub()).expect("master key");
    let web01 = read_key(&c.minion_state("web01").join("minion.pem"));
    let mut d = RawDealer::connect(&c.ret_endpoint());
    let r = d.request(
        "web01",
        &web01,
        protocol::RequestBody::FileRead(protocol::FileRead {
            path: "../secret".into(),
            offset: 0,
            len: 10,
        }),
        &mk,
    );
    assert!(
        matches!(
            r.body,
            protocol::ReplyBody::Error {
                kind: protocol::ErrorKind::PathRefused,
                ..
            }
        ),
        "{:?}",
        r.body
    );

    let local = c.dir.path().join("report.txt");
    std::fs::write(&local, "pushed").expect("w");
    for up in ["../web02/x", "/etc/evil", "a/../../b"] {
        let (v, _, code) = c.run_json(&[
            "web01",
            "cp.push",
            local.to_str().expect("p"),
            &format!("upload_path={up}"),
        ]);
        assert_eq!(code, 1, "{up}");
        assert!(
            v["web01"].as_str().expect("e").contains("refused"),
            "{up}: {v}"
        );
    }
    let (v, stderr, code) = c.run_json(&["web01", "cp.push", local.to_str().expect("p")]);
    assert_eq!(code, 0, "{stderr}");
    let rel = local.to_str().expect("p").trim_start_matches('/');
    assert_eq!(v["web01"]["path"], rel);
    let stored = c.master_state().join("minion_files/web01").join(rel);
    assert_eq!(std::fs::read_to_string(stored).expect("stored"), "pushed");
    assert!(!c.master_state().join("minion_files/web02").exists());
}

#[test]
fn a_large_file_reaches_three_minions_intact() {
    let mut c = Cluster::start(ClusterOpts::default());
    // Fifty 1 MiB reads each, in a debug build on a busy machine: a request
    // may take longer than the harness's 2 s, which would read as a master
    // gone away.
    for m in ["web01", "web02", "web03"] {
        c.start_minion_with(m, m, "request_timeout = 20\n")
            .wait_for("key pending acceptance");
    }
    assert!(c.key(&["-A", "-y"]).status.success());
    for m in ["web01", "web02", "web03"] {
        c.minion(m).wait_for("minion ready");
    }
    let big = srv(&c).join("big.bin");
    let mut data = vec![0u8; 50 * 1024 * 1024 + 12345];
    let mut x: u32 = 2_463_534_242;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    std::fs::write(&big, &data).expect("write big");
    let threads: Vec<_> = ["web01", "web02", "web03"]
        .into_iter()
        .map(|m| {
            let dest = c.dir.path().join(format!("{m}.bin"));
            let cfg = c.master_config();
            let bin = tests::bin_dir().join("cmdb");
            std::thread::spawn(move || {
                let out = std::process::Command::new(bin)
                    .arg("-c")
                    .arg(cfg)
                    .args([
                        "run",
                        m,
                        "cp.get_file",
                        "cmdb://big.bin",
                        dest.to_str().expect("p"),
                        "-t",
                        "120",
                        "--out",
                        "json",
                    ])
                    .output()
                    .expect("run");
                (out.status.code(), dest, text(&out.stderr))
            })
        })
        .collect();
    for t in threads {
        let (code, dest, stderr) = t.join().expect("thread");
        assert_eq!(code, Some(0), "{stderr}");
        let got = std::fs::read(&dest).expect("copied");
        assert!(got == data, "{} differs from the source", dest.display());
    }
}

#[test]
fn file_recurse_of_a_thousand_files_is_idempotent() {
    let mut c = Cluster::start(ClusterOpts::default());
    c.start_accepted(&["web01"]);
    let tree = srv(&c).join("tree");
    for i in 0..1000 {
        write(
            &tree.join(format!("d{}/f{i}.txt", i % 10)),
            &format!("file {i}\n"),
        );
    }
    let dest = c.dir.path().join("dest");
    write(
        &srv(&c).join("tree.sls"),
        &format!(
            "{}:\n  file.recurse:\n    - source: cmdb://tree\n    - makedirs: true\n    - clean: true\n",
            dest.display()
        ),
    );
    let (v, stderr, code) = c.run_json(&["-t", "60", "web01", "state.apply", "tree"]);
    assert_eq!(code, 0, "{stderr} {v}");
    let s = states_of(&v["web01"]);
    assert_eq!(s[0]["changes"].as_object().map(|m| m.len()), Some(1000));
    assert_eq!(
        std::fs::read_to_string(dest.join("d7/f997.txt")).expect("copied"),
        "file 997\n"
    );
    let (v, _, code) = c.run_json(&["-t", "60", "web01", "state.apply", "tree"]);
    assert_eq!(code, 0);
    assert_eq!(states_of(&v["web01"])[0]["changes"], json!({}), "{v}");
    std::fs::write(tree.join("d3/f3.txt"), "edited\n").expect("edit");
    std::fs::write(dest.join("extra"), "x").expect("extra");
    let (v, _, _) = c.run_json(&["-t", "60", "web01", "state.apply", "tree"]);
    let changes = states_of(&v["web01"])[0]["changes"].clone();
    assert_eq!(
        changes,
        json!({
            dest.join("d3/f3.txt").display().to_string(): "updated",
            dest.join("extra").display().to_string(): "removed",
        })
    );
}
