//! The HTTP API against a real master: over the unix socket as the local
//! administrator, and over TLS with bearer tokens, roles and operator ACLs;
//! the CLI pinning the master's certificate; bad requests answered with
//! problem documents.

use std::process::{Command, Output, Stdio};
use std::time::Instant;

use serde_json::Value;
use tests::{Cluster, ClusterOpts, WAIT, stdout_ok, text};

/// `cmdb` against the master's TLS listener with `token`, with its own
/// config dir for pinned certificates.
fn remote(c: &Cluster, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(tests::bin_dir().join("cmdb"));
    cmd.args(["--url", &format!("https://127.0.0.1:{}", c.api_port)])
        .args(args)
        .env("XDG_CONFIG_HOME", c.dir.path().join("client-config"))
        .env_remove("CMDB_TOKEN")
        .env_remove("CMDB_URL")
        .stdin(Stdio::null());
    if let Some(t) = token {
        cmd.env("CMDB_TOKEN", t);
    }
    cmd.output().expect("run cmdb")
}

fn refused(out: &Output, words: &str) {
    assert!(
        !out.status.success(),
        "expected a refusal: {}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stderr).contains(words),
        "stderr lacks {words:?}: {}",
        text(&out.stderr)
    );
}

fn token_for(c: &Cluster, user: &str, extra: &[&str]) -> String {
    let mut args = vec!["token", "create", user];
    args.extend_from_slice(extra);
    let out = stdout_ok(&c.cmdb(&args));
    out.lines().last().expect("token line").trim().to_owned()
}

/// A request with curl over the unix socket: (status, content type, body).
fn curl(
    c: &Cluster,
    method: &str,
    path: &str,
    body: Option<&str>,
    json: bool,
) -> (u16, String, Value) {
    let sock = c.master_state().join("api.sock");
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "-o",
        "-",
        "-w",
        "\n%{http_code} %{content_type}",
        "--unix-socket",
    ])
    .arg(&sock)
    .args(["-X", method]);
    if let Some(b) = body {
        cmd.args(["--data-binary", b]);
        if json {
            cmd.args(["-H", "content-type: application/json"]);
        }
    }
    cmd.arg(format!("http://cmdb{path}"));
    let out = cmd.output().expect("curl");
    let all = text(&out.stdout);
    let (body, tail) = all.rsplit_once('\n').expect("status line");
    let (status, ctype) = tail.split_once(' ').unwrap_or((tail, ""));
    (
        status.parse().expect("status"),
        ctype.to_owned(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

#[test]
fn roles_and_operator_acls_over_tls_with_tokens() {
    let mut c = Cluster::start(ClusterOpts::default());
    c.start_accepted(&["web01", "db01"]);
    stdout_ok(&c.cmdb(&[
        "user",
        "add",
        "ops",
        "--role",
        "operator",
        "--targets",
        "web*",
        "--functions",
        "test.*",
    ]));
    stdout_ok(&c.cmdb(&["user", "add", "viewer", "--role", "reader"]));
    refused(
        &c.cmdb(&["user", "add", "ops", "--role", "admin"]),
        "exists",
    );
    let ops = token_for(&c, "ops", &["--expires", "90d"]);
    let viewer = token_for(&c, "viewer", &[]);

    // The operator runs what its ACL allows; the returns stream back.
    let out = stdout_ok(&remote(
        &c,
        Some(&ops),
        &["run", "web*", "test.ping", "--out", "json"],
    ));
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v, serde_json::json!({"web01": true}));
    // A target that reaches outside its globs is refused whole.
    let before = stdout_ok(&c.cmdb(&["jobs", "list", "--out", "json"]));
    refused(
        &remote(&c, Some(&ops), &["run", "*", "test.ping"]),
        "may not target db01",
    );
    refused(
        &remote(&c, Some(&ops), &["run", "web01", "cmd.run", "id"]),
        "may not run cmd.run",
    );
    assert_eq!(
        stdout_ok(&c.cmdb(&["jobs", "list", "--out", "json"])),
        before,
        "nothing published"
    );
    c.master().wait_for("refused a job: forbidden");

    // A reader reads but does not run or administer.
    stdout_ok(&remote(&c, Some(&viewer), &["jobs", "list"]));
    stdout_ok(&remote(&c, Some(&viewer), &["asset", "list"]));
    refused(
        &remote(&c, Some(&viewer), &["run", "web01", "test.ping"]),
        "needs the operator role",
    );
    refused(
        &remote(&c, Some(&viewer), &["user", "list"]),
        "needs the admin role",
    );
    refused(
        &remote(&c, Some(&ops), &["token", "list"]),
        "needs the admin role",
    );
    c.master().wait_for("refused a request: forbidden");

    // Writes record the user.
    let out = stdout_ok(&c.cmdb(&["user", "list", "--out", "json"]));
    let users: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(users["ops"]["role"], "operator");
    assert_eq!(users["viewer"]["role"], "reader");
    let jobs: Value = serde_json::from_str(&stdout_ok(&c.cmdb(&["jobs", "list", "--out", "json"])))
        .expect("json");
    assert!(
        jobs.as_object()
            .expect("jobs")
            .values()
            .any(|j| j["User"] == "ops"),
        "{jobs}"
    );
}

#[test]
fn missing_forged_revoked_and_expired_tokens_are_refused() {
    let mut c = Cluster::start(ClusterOpts::default());
    c.start_accepted(&["web01"]);
    stdout_ok(&c.cmdb(&["user", "add", "viewer", "--role", "reader"]));
    let token = token_for(&c, "viewer", &[]);
    stdout_ok(&remote(&c, Some(&token), &["jobs", "list"]));

    refused(&remote(&c, None, &["jobs", "list"]), "no credentials");
    // The last character changed (to one it is not).
    let last = if token.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &token[..token.len() - 1]);
    refused(
        &remote(&c, Some(&forged), &["jobs", "list"]),
        "unknown or malformed token",
    );
    refused(
        &remote(&c, Some("not-a-token"), &["jobs", "list"]),
        "unknown or malformed token",
    );
    c.master().wait_for("refused a request: unauthenticated");

    // Listed without its secret, then revoked.
    let listed = stdout_ok(&c.cmdb(&["token", "list", "--out", "json"]));
    assert!(!listed.contains(&token[token.len() - 20..]), "{listed}");
    let id = token.split('_').nth(1).expect("id");
    assert!(listed.contains(id), "{listed}");
    stdout_ok(&c.cmdb(&["token", "revoke", id]));
    refused(
        &remote(&c, Some(&token), &["jobs", "list"]),
        "unknown or malformed token",
    );
    refused(&c.cmdb(&["token", "revoke", id]), "no token");

    // An expiring token works until its time, then is refused.
    let short = token_for(&c, "viewer", &["--expires", "2s"]);
    stdout_ok(&remote(&c, Some(&short), &["jobs", "list"]));
    let deadline = Instant::now() + WAIT;
    loop {
        let out = remote(&c, Some(&short), &["jobs", "list"]);
        if !out.status.success() {
            refused(&out, "has expired");
            break;
        }
        assert!(Instant::now() < deadline, "the token never expired");
    }
    // Removing a user removes its tokens.
    let again = token_for(&c, "viewer", &[]);
    stdout_ok(&c.cmdb(&["user", "remove", "viewer"]));
    refused(
        &remote(&c, Some(&again), &["jobs", "list"]),
        "unknown or malformed token",
    );
}

#[test]
fn the_cli_pins_the_certificate_and_refuses_a_changed_one() {
    let mut c = Cluster::start(ClusterOpts::default());
    stdout_ok(&c.cmdb(&["user", "add", "viewer", "--role", "reader"]));
    let token = token_for(&c, "viewer", &[]);
    let first = remote(&c, Some(&token), &["jobs", "list"]);
    stdout_ok(&first);
    assert!(
        text(&first.stderr).contains("pinned the certificate"),
        "{}",
        text(&first.stderr)
    );
    let fp = |c: &Cluster| {
        c.master()
            .lines_with("API listening with TLS")
            .last()
            .and_then(|l| l.split("fingerprint=").nth(1).map(|f| f.trim().to_owned()))
            .expect("fingerprint logged")
    };
    let old = fp(&c);
    // The second use checks the pin silently.
    let second = remote(&c, Some(&token), &["jobs", "list"]);
    stdout_ok(&second);
    assert!(
        !text(&second.stderr).contains("pinned"),
        "{}",
        text(&second.stderr)
    );

    // A new certificate: the CLI refuses it and names both fingerprints.
    c.master_mut().terminate();
    std::fs::remove_file(c.master_state().join("pki/api.crt")).expect("rm crt");
    std::fs::remove_file(c.master_state().join("pki/api.key")).expect("rm key");
    c.start_master();
    let new = fp(&c);
    assert_ne!(old, new);
    let out = remote(&c, Some(&token), &["jobs", "list"]);
    refused(&out, &old);
    refused(&out, &new);
}

/// Method, path, body, whether it is JSON, the status and words of the detail.
type Case<'a> = (&'a str, &'a str, Option<&'a str>, bool, u16, &'a str);

#[test]
fn bad_requests_get_problem_documents_and_change_nothing() {
    let mut c = Cluster::start(ClusterOpts::default());
    c.start_accepted(&["web01"]);
    stdout_ok(&c.cmdb(&["run", "*", "collect", "--out", "json"]));
    let (status, ctype, v) = curl(&c, "GET", "/v1/health", None, false);
    assert_eq!((status, v["status"].as_str()), (200, Some("ok")), "{ctype}");
    let cases: &[Case] = &[
        (
            "POST",
            "/v1/jobs",
            Some(r#"{"target":"*","fun":"test.ping","bogus":1}"#),
            true,
            422,
            "bogus",
        ),
        (
            "POST",
            "/v1/jobs",
            Some(r#"{"target":"*","fun":"#),
            true,
            400,
            "",
        ),
        (
            "POST",
            "/v1/jobs",
            Some(r#"{"target":"*","fun":"test.ping"}"#),
            false,
            415,
            "",
        ),
        (
            "POST",
            "/v1/jobs",
            Some(r#"{"target":"(","target_type":"pcre","fun":"test.ping"}"#),
            true,
            400,
            "target",
        ),
        ("GET", "/v1/jobs?limit=5&bogus=1", None, false, 400, "bogus"),
        ("GET", "/v1/jobs/not-a-jid", None, false, 400, ""),
        (
            "GET",
            "/v1/jobs/20200101000000000000",
            None,
            false,
            404,
            "no job",
        ),
        ("GET", "/v1/assets/nope", None, false, 404, "no asset"),
        (
            "PATCH",
            "/v1/assets/web01",
            Some(r#"{"manual":{"colour":"red"}}"#),
            true,
            422,
            "unknown field \"colour\"",
        ),
        (
            "PATCH",
            "/v1/assets/web01",
            Some(r#"{"status":"decommissioned"}"#),
            true,
            200,
            "",
        ),
        (
            "PATCH",
            "/v1/assets/web01",
            Some(r#"{"status":"active"}"#),
            true,
            409,
            "not allowed",
        ),
        (
            "POST",
            "/v1/keys/..%2Fetc/accept",
            None,
            false,
            400,
            "minion id",
        ),
        ("DELETE", "/v1/keys/ghost", None, false, 404, "no key"),
        (
            "POST",
            "/v1/keys/web01/accept",
            None,
            false,
            409,
            "already has an accepted key",
        ),
        ("GET", "/v1/nothing", None, false, 404, "no route"),
    ];
    for (method, path, body, json, want, words) in cases {
        let (status, ctype, v) = curl(&c, method, path, *body, *json);
        assert_eq!(status, *want, "{method} {path}: {v}");
        if *want >= 400 {
            assert_eq!(ctype, "application/problem+json", "{method} {path}");
            assert_eq!(v["status"], *want, "{method} {path}: {v}");
            let detail = v["detail"].as_str().unwrap_or_default();
            assert!(detail.contains(words), "{method} {path}: {detail}");
        }
    }
    // Nothing but the status change was stored.
    let (_, _, h) = curl(&c, "GET", "/v1/assets/web01/history", None, false);
    let changes: Vec<&Value> = h["history"].as_array().expect("history").iter().collect();
    assert_eq!(changes.last().expect("last")["source"], "status", "{h}");
    let (_, _, jobs) = curl(&c, "GET", "/v1/jobs", None, false);
    assert_eq!(jobs["items"].as_array().map(Vec::len), Some(1), "{jobs}");
}

/// A request over the unix socket with extra headers: (status, response
/// headers in lower case, body).
fn curl_with(
    c: &Cluster,
    method: &str,
    path: &str,
    headers: &[&str],
    body: Option<&str>,
) -> (u16, String, Value) {
    let sock = c.master_state().join("api.sock");
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-m", "20", "-D", "-", "-o", "-", "--unix-socket"])
        .arg(&sock)
        .args(["-X", method]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(b) = body {
        cmd.args(["-H", "content-type: application/json", "--data-binary", b]);
    }
    cmd.arg(format!("http://cmdb{path}"));
    let all = text(&cmd.output().expect("curl").stdout);
    let (head, body) = all.split_once("\r\n\r\n").expect("headers");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (
        status,
        head.to_lowercase(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn etag_of(headers: &str) -> String {
    headers
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("an ETag")
        .trim()
        .to_owned()
}

#[test]
fn events_follow_jobs_returns_auth_keys_and_asset_changes() {
    let mut c = Cluster::start(ClusterOpts::default());
    c.start_accepted(&["web01"]);
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(format!(
        "exec '{}' -c '{}' events --out json 1>&2",
        tests::bin_dir().join("cmdb").display(),
        c.master_config().display()
    ));
    let events = tests::Proc::spawn("events", cmd);

    // The stream is live once it reports a job published after it started.
    let deadline = Instant::now() + WAIT;
    while events.count("/new\"") == 0 {
        assert!(Instant::now() < deadline, "no job event: {}", events.logs());
        stdout_ok(&c.cmdb(&["run", "web01", "test.ping"]));
    }
    stdout_ok(&c.cmdb(&["run", "web01", "collect", "--out", "json"]));
    events.wait_for("/ret/web01\"");

    // A new minion's auth, and its acceptance by cmdb-key, which goes
    // through the running master's API.
    c.start_minion("db01");
    events.wait_for("\"result\":\"pending\"");
    let out = c.key(&["-a", "db01", "-y"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    events.wait_for("\"act\":\"accept\"");
    events.wait_for("\"result\":\"accepted\"");

    // If-Match: a write naming the version read goes through; a second
    // write naming the same, now stale, version is refused and changes
    // nothing.
    let (status, head, _) = curl_with(&c, "GET", "/v1/assets/web01", &[], None);
    assert_eq!(status, 200);
    let tag = etag_of(&head);
    let patch = r#"{"manual":{"rack":"R1"}}"#;
    let if_match = format!("if-match: {tag}");
    let (status, head, v) = curl_with(&c, "PATCH", "/v1/assets/web01", &[&if_match], Some(patch));
    assert_eq!(status, 200, "{v}");
    assert_ne!(etag_of(&head), tag);
    events.wait_for("\"source\":\"manual\"");
    let changed = events.lines_with("\"source\":\"manual\"");
    let ev: Value = serde_json::from_str(&changed[0]).expect("event json");
    let asset_id = ev["data"]["asset_id"].as_str().expect("asset id");
    assert_eq!(ev["tag"], format!("cmdb/asset/{asset_id}/changed"));
    assert_eq!(ev["data"]["by"], "root");
    let stale = r#"{"manual":{"rack":"R2"}}"#;
    let (status, _, v) = curl_with(&c, "PATCH", "/v1/assets/web01", &[&if_match], Some(stale));
    assert_eq!(status, 412, "{v}");
    assert!(
        v["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("changed since it was read"),
        "{v}"
    );
    let (_, _, v) = curl_with(&c, "GET", "/v1/assets/web01", &[], None);
    assert_eq!(v["manual"]["rack"], "R1");
    let (status, _, _) = curl_with(
        &c,
        "PATCH",
        "/v1/assets/web01",
        &["if-match: 12x"],
        Some(stale),
    );
    assert_eq!(status, 400);
}

#[test]
fn lists_are_paged_with_limit_cursor_and_next() {
    let mut c = Cluster::start(ClusterOpts::default());
    c.start_accepted(&["web01", "web02", "db01"]);
    stdout_ok(&c.cmdb(&["run", "*", "collect", "--out", "json"]));
    for _ in 0..3 {
        stdout_ok(&c.cmdb(&["run", "*", "test.ping", "--out", "json"]));
    }
    let follow = |path: &str| {
        let mut seen = Vec::new();
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut uri = format!("{path}{sep}limit=2");
        loop {
            let (status, _, page) = curl(&c, "GET", &uri, None, false);
            assert_eq!(status, 200, "{page}");
            let items = page["items"].as_array().expect("items").clone();
            assert!(items.len() <= 2, "{page}");
            seen.extend(items);
            match page["next"].as_str() {
                Some(n) => uri = format!("{path}{sep}limit=2&cursor={n}"),
                None => return seen,
            }
        }
    };
    let assets = follow("/v1/assets");
    let mut ids: Vec<&str> = assets
        .iter()
        .filter_map(|a| a["asset_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 3);
    ids.dedup();
    assert_eq!(ids.len(), 3, "pages overlap");
    let jobs = follow("/v1/jobs");
    assert_eq!(jobs.len(), 4);
    let jids: Vec<&str> = jobs.iter().filter_map(|j| j["jid"].as_str()).collect();
    assert!(
        jids.windows(2).all(|w| w[0] > w[1]),
        "newest first: {jids:?}"
    );
    assert_eq!(follow("/v1/keys").len(), 3);
    let paged = follow("/v1/changes");
    let (_, _, whole) = curl(&c, "GET", "/v1/changes?limit=1000", None, false);
    assert!(!paged.is_empty());
    assert_eq!(
        Some(&paged),
        whole["items"].as_array(),
        "pages differ from one page"
    );

    for (uri, words) in [
        ("/v1/assets?limit=0", "at least 1"),
        ("/v1/assets?limit=5000", "maximum"),
        ("/v1/assets?cursor=zz", "not one this API gave"),
        ("/v1/jobs?cursor=..%2Fx", "not one this API gave"),
    ] {
        let (status, _, v) = curl(&c, "GET", uri, None, false);
        assert_eq!(status, 400, "{uri}: {v}");
        assert!(
            v["detail"].as_str().unwrap_or_default().contains(words),
            "{uri}: {v}"
        );
    }
    // A request without credentials on the TLS listener is counted too.
    refused(&remote(&c, None, &["jobs", "list"]), "no credentials");
    // The figures for Prometheus.
    let metrics = Command::new("curl")
        .args(["-s", "-m", "20", "--unix-socket"])
        .arg(c.master_state().join("api.sock"))
        .arg("http://cmdb/metrics")
        .output()
        .expect("curl");
    let metrics = text(&metrics.stdout);
    for line in [
        "cmdb_jobs_published_total 4",
        "cmdb_returns_stored_total 12",
        "cmdb_minions{state=\"accepted\"} 3",
        "cmdb_minions_presence{presence=\"online\"} 3",
        "cmdb_session_key_holders 3",
        "cmdb_api_requests_total{route=\"/v1/jobs\",method=\"POST\",status=\"201\"} 4",
        "cmdb_api_requests_total{route=\"/v1/assets\",method=\"GET\",status=\"400\"} 3",
        "cmdb_api_requests_total{route=\"unauthenticated\",method=\"GET\",status=\"401\"} 1",
        "cmdb_store_size_bytes ",
    ] {
        assert!(metrics.contains(line), "no {line:?} in:\n{metrics}");
    }
    // The CLI follows the pages.
    let listed = stdout_ok(&c.cmdb(&["asset", "list", "--out", "json"]));
    let listed: Value = serde_json::from_str(&listed).expect("json");
    assert_eq!(listed.as_array().map(Vec::len), Some(3));

    // Sorted lists page too: the cursor holds the sort value, so following
    // `next` gives the one-page order without gaps or overlap, ties (every
    // asset has the same status and CPU count) broken by asset id.
    let ids = |items: &[Value]| -> Vec<String> {
        items
            .iter()
            .map(|a| a["asset_id"].as_str().expect("asset id").to_owned())
            .collect()
    };
    for sort in [
        "-minion",
        "minion",
        "status",
        "-facts.num_cpus",
        "-facts.nope",
    ] {
        let paged = follow(&format!("/v1/assets?sort={sort}"));
        let (status, _, whole) = curl(
            &c,
            "GET",
            &format!("/v1/assets?sort={sort}&limit=1000"),
            None,
            false,
        );
        assert_eq!(status, 200, "{sort}: {whole}");
        let whole = whole["items"].as_array().expect("items").clone();
        assert_eq!(ids(&paged), ids(&whole), "{sort}");
        assert_eq!(paged.len(), 3, "{sort}");
    }
    let names: Vec<String> = follow("/v1/assets?sort=-minion")
        .iter()
        .map(|a| a["minion"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(names, ["web02", "web01", "db01"]);
    // The OpenAPI document describes the parameter and its 400.
    let (_, _, doc) = curl(&c, "GET", "/v1/openapi.json", None, false);
    let list = &doc["paths"]["/v1/assets"]["get"];
    let sort = list["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == "sort")
        .unwrap_or_else(|| panic!("no sort parameter: {list}"));
    assert_eq!(sort["in"], "query", "{sort}");
    assert!(
        sort["description"]
            .as_str()
            .is_some_and(|d| d.contains("descending")),
        "{sort}"
    );
    assert!(list["responses"]["400"].is_object(), "{list}");
    let (_, _, first) = curl(&c, "GET", "/v1/assets?sort=minion&limit=1", None, false);
    let next = first["next"].as_str().expect("next");
    for (uri, words) in [
        (
            "/v1/assets?sort=colour".to_owned(),
            "unknown sort field \"colour\"",
        ),
        ("/v1/assets?sort=facts".to_owned(), "give a key under it"),
        (
            "/v1/assets?sort=minion&cursor=zz".to_owned(),
            "not one this API gave",
        ),
        (
            format!("/v1/assets?sort=-minion&cursor={next}"),
            "keep the sort",
        ),
        (format!("/v1/assets?cursor={next}"), "not one this API gave"),
    ] {
        let (status, ctype, v) = curl(&c, "GET", &uri, None, false);
        assert_eq!(status, 400, "{uri}: {v}");
        assert_eq!(ctype, "application/problem+json", "{uri}");
        assert!(
            v["detail"].as_str().unwrap_or_default().contains(words),
            "{uri}: {v}"
        );
    }
}
