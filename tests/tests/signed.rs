//! Signed requests (RFC 9421, ed25519) on the master's TLS listener: `cmdb
//! --key` with an OpenSSH key made by ssh-keygen, and hand-made requests
//! for every way a signature can fail, each a 401 problem document that
//! says why and changes nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use keys::SigningKey;
use keys::httpsig::{Params, sign};
use serde_json::Value;
use tests::{Cluster, ClusterOpts, stdout_ok, text};

/// An OpenSSH ed25519 key pair made by ssh-keygen: (private key file, the
/// key for signing by hand).
fn keygen(dir: &Path, name: &str) -> (PathBuf, SigningKey) {
    let path = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .expect("ssh-keygen");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let key = keys::openssh::read_private(&path).expect("read key");
    (path, key)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn nonce() -> String {
    let mut b = [0u8; 12];
    getrandom::fill(&mut b).expect("random");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A request over TLS with curl: (status, body).
fn curl(
    c: &Cluster,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &str,
) -> (u16, Value) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sk", "-o", "-", "-w", "\n%{http_code}", "-X", method]);
    for (k, v) in headers {
        cmd.args(["-H", &format!("{k}: {v}")]);
    }
    if !body.is_empty() {
        cmd.args([
            "-H",
            "content-type: application/json",
            "--data-binary",
            body,
        ]);
    }
    cmd.arg(format!("https://127.0.0.1:{}{path}", c.api_port));
    let out = cmd.output().expect("curl");
    let all = text(&out.stdout);
    let (body, status) = all.rsplit_once('\n').expect("status line");
    (
        status.trim().parse().expect("status"),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

/// The three signature headers for a request.
fn signed(
    c: &Cluster,
    key: &SigningKey,
    params: &Params,
    method: &str,
    path: &str,
    body: &str,
) -> Vec<(String, String)> {
    let uri = format!("https://127.0.0.1:{}{path}", c.api_port);
    let s = sign(key, params, method, &uri, body.as_bytes()).expect("sign");
    vec![
        ("content-digest".into(), s.content_digest),
        ("signature-input".into(), s.signature_input),
        ("signature".into(), s.signature),
    ]
}

fn params(keyid: &str) -> Params {
    Params {
        keyid: keyid.into(),
        created: now(),
        nonce: nonce(),
        expires: None,
    }
}

fn refused(answer: (u16, Value), words: &str) {
    let (status, v) = answer;
    assert_eq!(status, 401, "{v}");
    let detail = v["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(words), "detail lacks {words:?}: {detail}");
}

#[test]
fn signed_requests_pass_and_every_signature_failure_is_refused() {
    let c = Cluster::start(ClusterOpts::default());
    let (alice_file, alice) = keygen(c.dir.path(), "alice");
    let (_, carol) = keygen(c.dir.path(), "carol");
    let pubfile = format!("{}.pub", alice_file.display());
    stdout_ok(&c.cmdb(&[
        "user", "add", "alice", "--role", "reader", "--pubkey", &pubfile,
    ]));
    let carol_line = keys::openssh::public_to_line(&carol.verifying_key());
    stdout_ok(&c.cmdb(&[
        "user",
        "add",
        "carol",
        "--role",
        "admin",
        "--pubkey",
        &carol_line,
    ]));
    stdout_ok(&c.cmdb(&["user", "add", "bob", "--role", "reader"]));

    // The CLI signs every request with --key.
    let out = Command::new(tests::bin_dir().join("cmdb"))
        .args(["--url", &format!("https://127.0.0.1:{}", c.api_port)])
        .args(["--key"])
        .arg(&alice_file)
        .args(["--user", "alice", "jobs", "list", "--out", "json"])
        .env("XDG_CONFIG_HOME", c.dir.path().join("client-config"))
        .env_remove("CMDB_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("cmdb");
    stdout_ok(&out);

    // A good signature, then the same request replayed.
    let p = params("alice");
    let h = signed(&c, &alice, &p, "GET", "/v1/jobs", "");
    assert_eq!(curl(&c, "GET", "/v1/jobs", &h, "").0, 200);
    refused(curl(&c, "GET", "/v1/jobs", &h, ""), "already used");

    // Outside the clock window, either way.
    for created in [now() - 1000, now() + 1000] {
        let p = Params {
            created,
            ..params("alice")
        };
        let h = signed(&c, &alice, &p, "GET", "/v1/jobs", "");
        refused(curl(&c, "GET", "/v1/jobs", &h, ""), "clock_skew_secs");
    }

    // Made before the master started (its nonces are gone with the old
    // process), though within the clock window.
    let p = Params {
        created: now() - 120,
        ..params("alice")
    };
    let h = signed(&c, &alice, &p, "GET", "/v1/jobs", "");
    refused(
        curl(&c, "GET", "/v1/jobs", &h, ""),
        "before this master started",
    );

    // Unknown keyid; a user without a key; another user's key: the same
    // answer (the log tells them apart).
    for keyid in ["mallory", "bob", "carol"] {
        let h = signed(&c, &alice, &params(keyid), "GET", "/v1/jobs", "");
        refused(
            curl(&c, "GET", "/v1/jobs", &h, ""),
            "does not verify for keyid",
        );
    }
    assert!(c.master().count("no such user") >= 1);
    assert!(c.master().count("has no public key") >= 1);

    // Signed for another master: refused even with a good signature.
    let other = format!("https://other-master.example:{}/v1/jobs", c.api_port);
    let s = sign(&carol, &params("carol"), "GET", &other, b"").expect("sign");
    let h = vec![
        ("content-digest".to_owned(), s.content_digest),
        ("signature-input".to_owned(), s.signature_input),
        ("signature".to_owned(), s.signature),
        (
            "host".to_owned(),
            format!("other-master.example:{}", c.api_port),
        ),
    ];
    refused(curl(&c, "GET", "/v1/jobs", &h, ""), "not this master");
    // Another master on this host (another port) is another master.
    let port = c.api_port.wrapping_add(1);
    let other = format!("https://127.0.0.1:{port}/v1/jobs");
    let s = sign(&carol, &params("carol"), "GET", &other, b"").expect("sign");
    let h = vec![
        ("content-digest".to_owned(), s.content_digest),
        ("signature-input".to_owned(), s.signature_input),
        ("signature".to_owned(), s.signature),
        ("host".to_owned(), format!("127.0.0.1:{port}")),
    ];
    refused(curl(&c, "GET", "/v1/jobs", &h, ""), "not this master");

    // Signed for one path, sent to another; signed as GET, sent as DELETE.
    let h = signed(&c, &carol, &params("carol"), "GET", "/v1/jobs", "");
    refused(curl(&c, "GET", "/v1/users", &h, ""), "does not verify");
    let h = signed(&c, &carol, &params("carol"), "GET", "/v1/users/bob", "");
    refused(
        curl(&c, "DELETE", "/v1/users/bob", &h, ""),
        "does not verify",
    );

    // A body changed after signing.
    let body = r#"{"name":"eve","role":"admin"}"#;
    let h = signed(&c, &carol, &params("carol"), "POST", "/v1/users", body);
    let changed = r#"{"name":"eve2","role":"admin"}"#;
    refused(
        curl(&c, "POST", "/v1/users", &h, changed),
        "does not match the body",
    );
    // A digest header swapped for the changed body's: the signature breaks.
    let mut swapped = h.clone();
    swapped[0].1 = keys::httpsig::content_digest(changed.as_bytes());
    refused(
        curl(&c, "POST", "/v1/users", &swapped, changed),
        "does not verify",
    );

    // Malformed and incomplete headers.
    let mut bad = signed(&c, &carol, &params("carol"), "GET", "/v1/jobs", "");
    bad[1].1 = "sig1=(\"@method\");created=1;keyid=\"carol\";nonce=\"x\"".into();
    refused(curl(&c, "GET", "/v1/jobs", &bad, ""), "must cover exactly");
    let mut bad = signed(&c, &carol, &params("carol"), "GET", "/v1/jobs", "");
    bad[2].1 = "sig1=:AAAA:".into();
    refused(curl(&c, "GET", "/v1/jobs", &bad, ""), "64");
    let mut bad = signed(&c, &carol, &params("carol"), "GET", "/v1/jobs", "");
    bad.remove(0);
    refused(
        curl(&c, "GET", "/v1/jobs", &bad, ""),
        "content-digest header",
    );

    // None of it wrote anything; the one good write goes through.
    let users = stdout_ok(&c.cmdb(&["user", "list", "--out", "json"]));
    assert!(!users.contains("eve"), "{users}");
    assert!(users.contains("bob"), "{users}");
    let h = signed(&c, &carol, &params("carol"), "POST", "/v1/users", body);
    assert_eq!(curl(&c, "POST", "/v1/users", &h, body).0, 201);
    // Every refusal was logged with its reason.
    let logged = c
        .master()
        .lines_with("refused a request: unauthenticated")
        .len();
    assert!(logged >= 12, "{logged} refusals logged");
}

#[test]
fn a_pubkey_that_is_not_ed25519_is_refused_when_adding_the_user() {
    let c = Cluster::start(ClusterOpts::default());
    let out = c.cmdb(&[
        "user",
        "add",
        "rsa",
        "--role",
        "reader",
        "--pubkey",
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDFake rsa@desk",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("pubkey"),
        "{}",
        text(&out.stderr)
    );
    let users = stdout_ok(&c.cmdb(&["user", "list", "--out", "json"]));
    assert!(!users.contains("rsa"), "{users}");
}

#[test]
fn an_if_match_precondition_is_signed_with_the_request() {
    let c = Cluster::start(ClusterOpts::default());
    let (_, dora) = keygen(c.dir.path(), "dora");
    let line = keys::openssh::public_to_line(&dora.verifying_key());
    stdout_ok(&c.cmdb(&[
        "user", "add", "dora", "--role", "operator", "--pubkey", &line,
    ]));
    stdout_ok(&c.cmdb(&["asset", "add", "pdu", "name=pdu-9"]));
    let path = "/v1/assets/pdu-9";
    let body = r#"{"fields":{"owner":"dora"}}"#;
    let uri = format!("https://127.0.0.1:{}{path}", c.api_port);
    let with = |s: keys::httpsig::Signed, if_match: &str| {
        vec![
            ("content-digest".to_owned(), s.content_digest),
            ("signature-input".to_owned(), s.signature_input),
            ("signature".to_owned(), s.signature),
            ("if-match".to_owned(), if_match.to_owned()),
        ]
    };
    let sign_for = |version: &str| {
        keys::httpsig::sign_with_if_match(
            &dora,
            &params("dora"),
            "PATCH",
            &uri,
            body.as_bytes(),
            Some(version),
        )
        .expect("sign")
    };
    // A precondition the signature does not cover.
    let plain = sign(&dora, &params("dora"), "PATCH", &uri, body.as_bytes()).expect("sign");
    refused(
        curl(&c, "PATCH", path, &with(plain, "\"0\""), body),
        "does not cover",
    );
    // Signed for one version, sent with another.
    refused(
        curl(&c, "PATCH", path, &with(sign_for("\"0\""), "\"3\""), body),
        "does not verify",
    );
    // Signed, but the asset is not at that version: 412.
    let (status, v) = curl(&c, "PATCH", path, &with(sign_for("\"3\""), "\"3\""), body);
    assert_eq!(status, 412, "{v}");
    // Signed and current.
    let (status, v) = curl(&c, "PATCH", path, &with(sign_for("\"0\""), "\"0\""), body);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["manual"]["owner"], "dora");
    assert_eq!(v["version"], 1);
}
