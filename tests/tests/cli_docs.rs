//! Shell completions and man pages come from the CLI's own definitions and
//! need no master or config file.

use std::process::Command;

use tests::text;

#[test]
fn completions_and_man_pages_need_no_master() {
    let cmdb = tests::bin_dir().join("cmdb");
    for (shell, marker) in [
        ("bash", "_cmdb()"),
        ("zsh", "#compdef cmdb"),
        ("fish", "complete -c cmdb"),
    ] {
        let out = Command::new(&cmdb)
            .args(["-c", "/nonexistent/master.toml", "completions", shell])
            .output()
            .expect("cmdb");
        assert!(out.status.success(), "{}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(
            script.contains(marker) && script.contains("events"),
            "{shell}: {script}"
        );
    }
    let out = Command::new(&cmdb)
        .args(["completions", "bash", "--program", "cmdb-key"])
        .output()
        .expect("cmdb");
    assert!(
        text(&out.stdout).contains("--accept-all"),
        "{}",
        text(&out.stdout)
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(&cmdb)
        .arg("manpages")
        .arg(dir.path())
        .output()
        .expect("cmdb");
    assert!(out.status.success(), "{}", text(&out.stderr));
    for page in [
        "cmdb.1",
        "cmdb-run.1",
        "cmdb-events.1",
        "cmdb-user-add.1",
        "cmdb-key.1",
    ] {
        let body = std::fs::read_to_string(dir.path().join(page)).unwrap_or_default();
        assert!(body.contains(".TH"), "{page} missing or empty");
    }
    let run = std::fs::read_to_string(dir.path().join("cmdb-run.1")).unwrap_or_default();
    assert!(run.contains("timeout"), "{run}");
}
