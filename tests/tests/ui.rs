//! The web UI over the master's real TLS listener, with curl as the
//! browser: logins and sessions, CSRF tokens, roles, hostile fact values.
//! (The pages in a real browser are checked by scripts/ui-check.sh.)

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;
use tests::fixture::{fixture_minion, plugin};
use tests::{Cluster, ClusterOpts, bin_dir, stdout_ok, text};

/// An answer: status, headers (names lower-case) and body.
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn headers(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of the first hidden `csrf` input.
    fn csrf(&self) -> String {
        hidden(&self.body, "csrf").unwrap_or_else(|| panic!("no csrf field in:\n{}", self.body))
    }
}

/// The value of the first hidden input `name` of a page.
fn hidden(body: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body.find(&marker)? + marker.len();
    let end = body[start..].find('"')?;
    Some(body[start..start + end].to_owned())
}

/// A browser: curl with its own cookie jar, trusting the master's
/// certificate.
struct Browser {
    base: String,
    cacert: PathBuf,
    jar: PathBuf,
    dir: PathBuf,
}

impl Browser {
    fn new(c: &Cluster, name: &str) -> Browser {
        let dir = c.dir.path().join(format!("browser-{name}"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        Browser {
            base: format!("https://127.0.0.1:{}", c.api_port),
            cacert: c.master_state().join("pki").join("api.crt"),
            jar: dir.join("cookies"),
            dir,
        }
    }

    fn send(&self, method: &str, path: &str, form: &[(&str, &str)], cookie: Option<&str>) -> Resp {
        let head = self.dir.join("head");
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-o", "-", "-D"])
            .arg(&head)
            .arg("--cacert")
            .arg(&self.cacert)
            .arg("-b")
            .arg(&self.jar)
            .arg("-c")
            .arg(&self.jar)
            .args(["-X", method]);
        if let Some(c) = cookie {
            cmd.args(["-H", &format!("Cookie: {c}")]);
        }
        for (k, v) in form {
            cmd.arg("--data-urlencode").arg(format!("{k}={v}"));
        }
        if method == "POST" && form.is_empty() {
            cmd.args(["--data", ""]);
        }
        cmd.arg(format!("{}{path}", self.base));
        let out = cmd.output().expect("curl");
        assert!(out.status.success(), "curl failed: {}", text(&out.stderr));
        let head = std::fs::read_to_string(&head).expect("headers");
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        Resp {
            status,
            headers,
            body: text(&out.stdout),
        }
    }

    fn get(&self, path: &str) -> Resp {
        self.send("GET", path, &[], None)
    }

    fn post(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        self.send("POST", path, form, None)
    }

    /// Logs in through the form; the answer of the POST.
    fn login(&self, user: &str, password: &str) -> Resp {
        let form = self.get("/ui/login");
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = form.csrf();
        self.post(
            "/ui/login",
            &[
                ("csrf", &csrf),
                ("user", user),
                ("password", password),
                ("next", "/ui/assets"),
            ],
        )
    }

    /// The CSRF token of the session (from a page with forms).
    fn token(&self) -> String {
        self.get("/ui/assets").csrf()
    }
}

/// `cmdb user add NAME --role ROLE --password` with the password on stdin.
fn add_user(c: &Cluster, name: &str, role: &str, password: &str, extra: &[&str]) {
    let mut child = Command::new(bin_dir().join("cmdb"))
        .arg("-c")
        .arg(c.master_config())
        .args(["user", "add", name, "--role", role, "--password"])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cmdb");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{password}\n{password}\n").as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("cmdb");
    assert!(out.status.success(), "{}", text(&out.stderr));
}

fn asset(c: &Cluster, key: &str) -> Value {
    serde_json::from_str(&stdout_ok(
        &c.cmdb(&["asset", "show", key, "--out", "json"]),
    ))
    .expect("asset json")
}

fn manual(c: &Cluster, key: &str, field: &str) -> Option<String> {
    let a = asset(c, key);
    let a = a.get(key).cloned().unwrap_or(a);
    a["manual"][field].as_str().map(str::to_owned)
}

/// A master with one collected fixture minion `web01`.
fn fleet() -> (Cluster, tests::fixture::HostRoot, PathBuf) {
    let mut c = Cluster::start(ClusterOpts::default());
    let (root, plugins) = fixture_minion(&mut c, "web01", "web01", "CZ2901ABCD", "");
    let (v, err, code) = c.run_json(&["web01", "collect"]);
    assert_eq!(code, 0, "{err} {v}");
    (c, root, plugins)
}

#[test]
fn a_login_gives_a_fresh_secure_session_and_every_form_needs_its_csrf_token() {
    let (c, _root, _plugins) = fleet();
    add_user(&c, "ann", "admin", "correct horse battery", &[]);
    let b = Browser::new(&c, "ann");

    // No session: a page sends the browser to the login form.
    let r = b.get("/ui/assets?q=os%20%3D%20Debian");
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location"),
        Some("/ui/login?next=%2Fui%2Fassets%3Fq%3Dos%2520%253D%2520Debian")
    );
    // The login form's own token is needed.
    let r = b.post(
        "/ui/login",
        &[("user", "ann"), ("password", "correct horse battery")],
    );
    assert_eq!(r.status, 403, "{}", r.body);

    // A session id planted before login is never the one given after it.
    let form = b.get("/ui/login");
    let csrf = form.csrf();
    let planted = "__Host-cmdb_session=planted-by-someone-else";
    let login_cookie = form
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .expect("login cookie")
        .to_owned();
    let r = b.send(
        "POST",
        "/ui/login",
        &[
            ("csrf", &csrf),
            ("user", "ann"),
            ("password", "correct horse battery"),
            ("next", "/ui/assets"),
        ],
        Some(&format!("{planted}; {login_cookie}")),
    );
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/ui/assets"));
    let session = r
        .headers("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("__Host-cmdb_session="))
        .expect("a session cookie")
        .to_owned();
    for flag in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=",
    ] {
        assert!(session.contains(flag), "{flag} missing in {session}");
    }
    assert!(!session.contains("planted-by-someone-else"), "{session}");
    let stranger = Browser::new(&c, "stranger");
    let r = stranger.send("GET", "/ui/assets", &[], Some(planted));
    assert_eq!(r.status, 303, "the planted id is not a session");

    // The session works; every page forbids framing and inline scripts.
    let page = b.get("/ui/assets/web01");
    assert_eq!(page.status, 200, "{}", page.body);
    let csp = page.header("content-security-policy").expect("CSP");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    let token = page.csrf();
    let version = hidden(&page.body, "version").expect("version field");

    // A form without its token, or with another, changes nothing.
    for bad in [None, Some("not-the-token")] {
        let mut form = vec![("version", version.as_str()), ("f.department", "finance")];
        if let Some(t) = bad {
            form.push(("csrf", t));
        }
        let r = b.post("/ui/assets/web01", &form);
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(r.body.contains("CSRF token"), "{}", r.body);
        assert_eq!(manual(&c, "web01", "department"), None);
    }
    // With it, the field is saved through the API and recorded with the user.
    let r = b.post(
        "/ui/assets/web01",
        &[
            ("csrf", &token),
            ("version", &version),
            ("f.department", "finance"),
            ("f.owner", ""),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let saved = r.header("location").expect("location");
    assert!(
        saved.starts_with("/ui/assets/") && saved.ends_with("?done=saved"),
        "{saved}"
    );
    assert_eq!(
        manual(&c, "web01", "department").as_deref(),
        Some("finance")
    );
    let history = stdout_ok(&c.cmdb(&["asset", "history", "web01", "--out", "json"]));
    assert!(history.contains("\"ann\""), "{history}");

    // An edit made on a page opened before that change is refused whole.
    let r = b.post(
        "/ui/assets/web01",
        &[
            ("csrf", &token),
            ("version", &version),
            ("f.department", "ops"),
        ],
    );
    assert_eq!(r.status, 412, "{}", r.body);
    assert!(
        r.body.contains("nothing of your edit was saved"),
        "{}",
        r.body
    );
    assert_eq!(
        manual(&c, "web01", "department").as_deref(),
        Some("finance")
    );

    // A value the master refuses saves nothing and comes back as typed.
    let page = b.get("/ui/assets/web01");
    let version = hidden(&page.body, "version").expect("version field");
    let r = b.post(
        "/ui/assets/web01",
        &[
            ("csrf", &token),
            ("version", &version),
            ("f.owner", "carol"),
            ("f.purchase_date", "31/12/2024"),
        ],
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("Nothing was saved"), "{}", r.body);
    assert!(
        r.body.contains("value=\"31&#x2f;12&#x2f;2024\""),
        "{}",
        r.body
    );
    assert!(r.body.contains("value=\"carol\""), "{}", r.body);
    assert_eq!(manual(&c, "web01", "owner"), None);

    // Pages that do not exist and bad parameters are pages, not JSON.
    for (path, status) in [("/ui/nothing-here", 404), ("/ui/audit?year=abc", 400)] {
        let r = b.get(path);
        assert_eq!(r.status, status, "{path}");
        assert_eq!(
            r.header("content-type"),
            Some("text/html; charset=utf-8"),
            "{path}"
        );
    }

    // Logging out ends the session.
    let r = b.post("/ui/logout", &[("csrf", &token)]);
    assert_eq!(r.status, 303);
    assert_eq!(b.get("/ui/assets").status, 303);
}

#[test]
fn a_reader_sees_no_write_controls_and_its_writes_are_refused() {
    let (c, _root, _plugins) = fleet();
    add_user(&c, "rita", "reader", "reader password", &[]);
    add_user(
        &c,
        "otto",
        "operator",
        "operator password",
        &["--targets", "db*", "--functions", "test.*"],
    );
    let b = Browser::new(&c, "rita");
    assert_eq!(b.login("rita", "reader password").status, 303);
    let jobs_before = stdout_ok(&c.cmdb(&["jobs", "list", "--out", "json"]));

    for path in [
        "/ui",
        "/ui/assets",
        "/ui/assets?q=os%20~%20%27*%27",
        "/ui/assets/web01",
        "/ui/assets/web01/diff",
        "/ui/jobs",
        "/ui/changes",
        "/ui/audit",
    ] {
        let r = b.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        // No form posts to the inventory, keys or jobs: the only ones
        // that post are logout and the reader's own saved views.
        let posts: Vec<&str> = r
            .body
            .match_indices("<form")
            .map(|(i, _)| &r.body[i..i + r.body[i..].find('>').unwrap_or(0)])
            .filter(|f| f.contains("method=\"post\""))
            .collect();
        assert!(!posts.is_empty(), "{path}: the logout form");
        for form in posts {
            assert!(
                form.contains("action=\"/ui/logout\"") || form.contains("action=\"/ui/views"),
                "{path}: {form}"
            );
        }
        assert!(
            !r.body.contains("Run a job") && !r.body.contains(">Save<"),
            "{path}"
        );
    }
    assert!(!b.get("/ui").body.contains("href=\"/ui/keys\""));
    assert_eq!(b.get("/ui/keys").status, 403);
    // Fields show as text; an asset with none says so.
    assert!(b.get("/ui/assets/web01").body.contains("No fields set."));
    stdout_ok(&c.cmdb(&["asset", "set", "web01", "owner=ops"]));
    let page = b.get("/ui/assets/web01").body;
    assert!(
        page.contains("<dt>owner</dt><dd>ops</dd>") && !page.contains("No fields set."),
        "{page}"
    );

    // Writes the pages did not offer are refused by the server.
    let token = b.token();
    let r = b.post(
        "/ui/assets/web01",
        &[("csrf", &token), ("version", "0"), ("f.department", "x")],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(manual(&c, "web01", "department"), None);
    let r = b.post(
        "/ui/jobs",
        &[("csrf", &token), ("target", "web01"), ("fun", "test.ping")],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let r = b.post(
        "/ui/keys/web01/delete",
        &[("csrf", &token), ("state", "accepted")],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(c.keys_json()["minions"][0], "web01");
    assert_eq!(
        stdout_ok(&c.cmdb(&["jobs", "list", "--out", "json"])),
        jobs_before
    );

    // An operator's ACL holds in the UI exactly as in the API.
    let o = Browser::new(&c, "otto");
    assert_eq!(o.login("otto", "operator password").status, 303);
    let token = o.token();
    let preview = o.get("/ui/jobs/preview?partial=1&target=*&target_type=glob");
    assert!(
        preview.body.contains("web01 (not allowed)"),
        "{}",
        preview.body
    );
    let r = o.post(
        "/ui/jobs",
        &[("csrf", &token), ("target", "web01"), ("fun", "test.ping")],
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("web01"), "{}", r.body);
}

#[test]
fn hostile_fact_values_show_as_text_on_every_page() {
    let (c, _root, plugins) = fleet();
    let script = "<script>alert(1)</script>";
    let img = "\"><img src=x onerror=alert(1)>";
    plugin(
        &plugins,
        "hostile",
        &format!(
            "printf '%s' '{}'",
            serde_json::json!({"label": script, "note": img})
                .to_string()
                .replace('\'', "'\\''")
        ),
    );
    let (_, err, code) = c.run_json(&["web01", "collect"]);
    assert_eq!(code, 0, "{err}");
    plugin(
        &plugins,
        "hostile",
        &format!(
            "printf '%s' '{}'",
            serde_json::json!({"label": img, "note": script})
                .to_string()
                .replace('\'', "'\\''")
        ),
    );
    let (_, err, code) = c.run_json(&["web01", "collect"]);
    assert_eq!(code, 0, "{err}");
    let out = c.cmdb(&["asset", "set", "web01", &format!("department={img}")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let jid = stdout_ok(&c.cmdb(&["jobs", "list", "--out", "json"]));
    let jobs: Value = serde_json::from_str(&jid).expect("jobs json");
    let jid = jobs
        .as_object()
        .and_then(|m| m.keys().next().cloned())
        .expect("a job");

    add_user(&c, "ann", "admin", "correct horse battery", &[]);
    let b = Browser::new(&c, "ann");
    assert_eq!(b.login("ann", "correct horse battery").status, 303);
    let asset = asset(&c, "web01");
    let asset = asset.get("web01").cloned().unwrap_or(asset);
    let latest = asset["latest_version"].as_u64().expect("version");
    for path in [
        "/ui".to_owned(),
        "/ui/assets".to_owned(),
        "/ui/assets/web01".to_owned(),
        format!("/ui/assets/web01/diff?from={}&to={latest}", latest - 2),
        "/ui/changes".to_owned(),
        format!("/ui/jobs/{jid}"),
        "/ui/jobs".to_owned(),
    ] {
        let r = b.get(&path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert!(!r.body.contains("<script>alert"), "{path}");
        assert!(!r.body.contains("<img src=x"), "{path}");
        assert!(!r.body.contains("onerror=alert(1)>"), "{path}");
    }
    let page = b.get("/ui/assets/web01").body;
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "{page}"
    );
    let list = b.get("/ui/assets").body;
    assert!(
        list.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"),
        "{list}"
    );
    let diff = b
        .get(&format!(
            "/ui/assets/web01/diff?from={}&to={latest}",
            latest - 2
        ))
        .body;
    assert!(diff.contains("facts:label"), "{diff}");

    // The diff page is titled by the name the asset's own page shows.
    let out = c.cmdb(&["asset", "set", "web01", "name=rack7-web"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let title = |body: &str| {
        body.split("<title>")
            .nth(1)
            .and_then(|t| t.split("</title>").next())
            .unwrap_or_default()
            .to_owned()
    };
    let page = b.get("/ui/assets/web01").body;
    assert!(title(&page).starts_with("rack7-web ·"), "{}", title(&page));
    let diff = b
        .get(&format!(
            "/ui/assets/web01/diff?from={}&to={latest}",
            latest - 2
        ))
        .body;
    assert!(title(&diff).starts_with("rack7-web v"), "{}", title(&diff));
}

#[test]
fn five_failed_logins_lock_the_user_and_twenty_the_address() {
    let (c, _root, _plugins) = fleet();
    add_user(&c, "ann", "admin", "correct horse battery", &[]);
    add_user(&c, "bob", "reader", "another password", &[]);
    let b = Browser::new(&c, "guess");
    for _ in 0..5 {
        let r = b.login("ann", "wrong guess");
        assert_eq!(r.status, 401, "{}", r.body);
        assert!(r.body.contains("Wrong user name or password"));
    }
    let r = b.login("ann", "correct horse battery");
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.contains("Too many failed logins"), "{}", r.body);
    // Others at the same address still log in...
    let bob = Browser::new(&c, "bob");
    assert_eq!(bob.login("bob", "another password").status, 303);
    // ...until the address has failed twenty times.
    for i in 5..20 {
        assert_eq!(b.login(&format!("guess{i}"), "wrong").status, 401);
    }
    let late = Browser::new(&c, "late");
    assert_eq!(late.login("bob", "another password").status, 429);
    assert!(
        c.master()
            .logs()
            .contains("refused a UI login: too many failures")
    );
}

#[test]
fn a_job_run_from_the_ui_is_published_and_its_returns_stream() {
    let (c, _root, _plugins) = fleet();
    add_user(&c, "ann", "admin", "correct horse battery", &[]);
    let b = Browser::new(&c, "ann");
    assert_eq!(b.login("ann", "correct horse battery").status, 303);
    let token = b.token();
    let preview = b.get("/ui/jobs/preview?partial=1&target=web*&target_type=glob");
    assert!(preview.body.contains("<li>web01</li>"), "{}", preview.body);
    let r = b.post(
        "/ui/jobs",
        &[
            ("csrf", &token),
            ("target", "web01"),
            ("target_type", "glob"),
            ("fun", "test.echo"),
            ("args", "'hello from the UI'"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.body);
    let job = r.header("location").expect("location").to_owned();
    assert!(job.starts_with("/ui/jobs/"), "{job}");
    let stream = b.get(&format!("{job}/stream"));
    assert!(stream.body.contains("event: ret"), "{}", stream.body);
    assert!(stream.body.contains("hello from the UI"), "{}", stream.body);
    assert!(stream.body.contains("event: done"), "{}", stream.body);
    let page = b.get(&job);
    assert!(page.body.contains("hello from the UI"), "{}", page.body);
    let jobs = stdout_ok(&c.cmdb(&["jobs", "list", "--out", "json"]));
    assert!(jobs.contains("\"ann\""), "{jobs}");
}
