//! The CLI's side of the API: HTTP/1.1 over the master's unix socket, or
//! HTTPS with a bearer token to a remote master whose certificate is pinned
//! on first use. Each operator operation becomes one or two API calls;
//! answers come back as [`Answer`]s, problem documents as
//! [`Answer::Error`] with their detail.

use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use protocol::{Jid, MinionId};
use serde::Serialize;
use serde::de::DeserializeOwned;

use master::api::jobs::{Done, JobRequest};
use master::service::inventory::AssetRequest;

/// The answer to starting a job: a `JobCreated`, with the roster
/// entries refused when the job runs over SSH.
#[derive(Debug, serde::Deserialize)]
struct Created {
    /// The job id.
    jid: Jid,
    /// Who will return.
    expected: Vec<String>,
    /// Roster entries refused (jobs over SSH), with why.
    #[serde(default)]
    refused: std::collections::BTreeMap<String, String>,
}

/// A return as the master streams it, its data kept as the JSON text it
/// came in until it is asked for: `--out json` lays the text out as it is,
/// without building the values (a fleet's collect is tens of megabytes).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct StreamedReturn {
    /// Who returned.
    pub minion: MinionId,
    /// Whether it succeeded.
    pub success: bool,
    /// Its return code.
    pub retcode: i32,
    /// What it returned, as JSON text.
    pub data: Box<serde_json::value::RawValue>,
}

impl StreamedReturn {
    /// What it returned.
    pub fn value(&self) -> serde_json::Result<serde_json::Value> {
        serde_json::from_str(self.data.get())
    }
}

/// What the master answered.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A job was published.
    Started {
        /// Its id.
        jid: Jid,
        /// The minions expected to return.
        expected: Vec<String>,
    },
    /// A roster entry the job could not run on (over SSH).
    Refused {
        /// The id as written in the roster.
        id: String,
        /// Why.
        reason: String,
    },
    /// A minion returned.
    Return {
        /// The return.
        ret: StreamedReturn,
    },
    /// The wait is over.
    Done {
        /// Expected minions that did not return.
        missing: Vec<String>,
    },
    /// A JSON answer.
    Value(serde_json::Value),
    /// The request was refused or failed: the problem's detail.
    Error {
        /// What went wrong.
        message: String,
    },
}

/// Refuses a socket owned by anyone but root or the caller: a socket
/// planted by another user could collect every command.
pub fn check_owner(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(path)?.uid();
    let me = nix::unistd::getuid().as_raw();
    if owner != 0 && owner != me {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "refusing API socket {} owned by uid {owner} (neither root nor uid {me})",
                path.display()
            ),
        ));
    }
    Ok(())
}

/// How requests to a remote master authenticate.
#[derive(Clone)]
pub enum Credentials {
    /// None (only `/v1/health` answers).
    None,
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// Every request signed (RFC 9421) with the user's ed25519 key.
    Signed {
        /// The user name (the signature's `keyid`).
        user: String,
        /// The user's private key.
        key: Box<keys::SigningKey>,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Bearer(_) => f.write_str("Bearer(…)"),
            Credentials::Signed { user, .. } => write!(f, "Signed({user})"),
        }
    }
}

/// Where the master's API is.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// The local unix socket (the caller is the local administrator).
    Unix(PathBuf),
    /// A remote master over HTTPS.
    Https {
        /// `host:port`.
        authority: String,
        /// The host, for TLS.
        host: String,
        /// How requests authenticate.
        auth: Credentials,
        /// The file of pinned certificate fingerprints.
        known: PathBuf,
    },
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "{}", p.display()),
            Endpoint::Https { authority, .. } => write!(f, "https://{authority}"),
        }
    }
}

impl Endpoint {
    /// An HTTPS endpoint from a URL `https://host[:port]` (default port
    /// 4507); certificates are pinned in `known`.
    pub fn https(url: &str, auth: Credentials, known: PathBuf) -> Result<Endpoint, String> {
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| format!("{url}: the URL must start with https://"))?;
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(format!("{url}: give https://host[:port] only"));
        }
        let (host, authority) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') && h.contains(':') => {
                return Err(format!("{url}: put an IPv6 address in brackets ({h}:{p})"));
            }
            Some((h, p)) if p.parse::<u16>().is_ok() => (h.to_owned(), authority.to_owned()),
            _ => (authority.to_owned(), format!("{authority}:4507")),
        };
        Ok(Endpoint::Https {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            authority,
            auth,
            known,
        })
    }
}

/// Signs one request as `user` (RFC 9421; a fresh nonce, created now).
fn sign(
    key: &keys::SigningKey,
    user: &str,
    method: &str,
    target_uri: &str,
    body: &[u8],
) -> io::Result<keys::httpsig::Signed> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| io::Error::other(format!("no randomness: {e}")))?;
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let params = keys::httpsig::Params {
        keyid: user.to_owned(),
        created,
        nonce: nonce.iter().map(|b| format!("{b:02x}")).collect(),
        expires: None,
    };
    keys::httpsig::sign(key, &params, method, target_uri, body).map_err(io::Error::other)
}

/// Where `cmdb` pins certificates: `$XDG_CONFIG_HOME/cmdb/known_masters`,
/// else `~/.config/cmdb/known_masters`.
pub fn known_masters_file() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("cmdb").join("known_masters")
}

/// A client of the API.
pub struct Client<'a> {
    endpoint: &'a Endpoint,
    tls: Option<tokio_rustls::TlsConnector>,
    rt: tokio::runtime::Runtime,
}

fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

impl<'a> Client<'a> {
    /// A client of the master at `endpoint`.
    pub fn new(endpoint: &'a Endpoint) -> io::Result<Client<'a>> {
        let tls = match endpoint {
            Endpoint::Unix(socket) => {
                check_owner(socket)?;
                None
            }
            Endpoint::Https {
                authority, known, ..
            } => Some(crate::pinning::connector(authority, known)?),
        };
        Ok(Client {
            endpoint,
            tls,
            rt: runtime()?,
        })
    }

    async fn send(
        &self,
        method: Method,
        uri: &str,
        body: Option<Vec<u8>>,
    ) -> io::Result<Response<Incoming>> {
        let (mut sender, host, auth) = match self.endpoint {
            Endpoint::Https {
                authority,
                host,
                auth,
                ..
            } => {
                let tls = self
                    .tls
                    .as_ref()
                    .ok_or_else(|| io::Error::other("no TLS configuration"))?;
                let tcp = tokio::net::TcpStream::connect(authority.as_str()).await?;
                let name = rustls::pki_types::ServerName::try_from(host.clone()).map_err(|e| {
                    io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: {e}"))
                })?;
                let stream = tls.connect(name, tcp).await?;
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(io::Error::other)?;
                tokio::spawn(conn);
                (sender, authority.clone(), auth.clone())
            }
            Endpoint::Unix(socket) => {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(io::Error::other)?;
                tokio::spawn(conn);
                (sender, "localhost".to_owned(), Credentials::None)
            }
        };
        let has_body = body.is_some();
        let body = body.unwrap_or_default();
        let method_name = method.as_str().to_owned();
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(hyper::header::HOST, host.as_str());
        match &auth {
            Credentials::None => {}
            Credentials::Bearer(t) => {
                req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
            }
            Credentials::Signed { user, key } => {
                let signed = sign(
                    key,
                    user,
                    &method_name,
                    &format!("https://{host}{uri}"),
                    &body,
                )?;
                req = req
                    .header("content-digest", signed.content_digest)
                    .header("signature-input", signed.signature_input)
                    .header("signature", signed.signature);
            }
        }
        if has_body {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(io::Error::other)?;
        sender.send_request(req).await.map_err(io::Error::other)
    }

    async fn call_async(
        &self,
        method: Method,
        uri: &str,
        body: Option<Vec<u8>>,
    ) -> io::Result<Result<Bytes, String>> {
        let resp = self.send(method, uri, body).await?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(io::Error::other)?
            .to_bytes();
        if status.is_success() {
            Ok(Ok(bytes))
        } else {
            Ok(Err(problem_detail(status, &bytes)))
        }
    }

    /// One request with one JSON answer, or the problem's detail.
    pub fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        uri: &str,
        body: Option<&impl Serialize>,
    ) -> io::Result<Result<T, String>> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(io::Error::other)?;
        let got = self.rt.block_on(self.call_async(method, uri, body))?;
        Ok(match got {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("bad answer from the master: {e}")),
            Err(e) => Err(e),
        })
    }

    /// One request whose success has no body (`204 No Content`).
    pub fn call_no_content(
        &self,
        method: Method,
        uri: &str,
        body: Option<&impl Serialize>,
    ) -> io::Result<Result<(), String>> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(io::Error::other)?;
        Ok(self
            .rt
            .block_on(self.call_async(method, uri, body))?
            .map(|_| ()))
    }

    /// Publishes a job and, when `wait`, follows its returns; each answer
    /// goes to `on_answer` as it arrives.
    pub fn run(
        &self,
        job: &JobRequest,
        timeout_secs: u64,
        wait: bool,
        on_answer: impl FnMut(Answer) -> io::Result<()>,
    ) -> io::Result<()> {
        self.run_at("/v1/jobs", job, timeout_secs, wait, on_answer)
    }

    /// Starts a job with a POST of `body` to `path` (`/v1/jobs`, or
    /// `/v1/ssh/jobs` for a job over SSH) and follows it as
    /// [`Client::run`] does.
    pub fn run_at<B: Serialize>(
        &self,
        path: &str,
        body: &B,
        timeout_secs: u64,
        wait: bool,
        mut on_answer: impl FnMut(Answer) -> io::Result<()>,
    ) -> io::Result<()> {
        let created: Created = match self.call(Method::POST, path, Some(body))? {
            Ok(c) => c,
            Err(message) => return on_answer(Answer::Error { message }),
        };
        let jid = created.jid.clone();
        let nobody = created.expected.is_empty();
        on_answer(Answer::Started {
            jid: created.jid,
            expected: created.expected,
        })?;
        for (id, reason) in created.refused {
            on_answer(Answer::Refused { id, reason })?;
        }
        if !wait || nobody {
            return Ok(());
        }
        let uri = format!("/v1/jobs/{jid}/returns?timeout={timeout_secs}");
        let mut done = false;
        let mut problem = None;
        self.follow(
            &uri,
            |name, data| match name {
                "ret" => {
                    let ret: StreamedReturn =
                        serde_json::from_str(data).map_err(io::Error::other)?;
                    on_answer(Answer::Return { ret })?;
                    Ok(true)
                }
                "done" => {
                    let d: Done = serde_json::from_str(data).map_err(io::Error::other)?;
                    done = true;
                    on_answer(Answer::Done { missing: d.missing })?;
                    Ok(false)
                }
                _ => Ok(true),
            },
            &mut problem,
        )?;
        if let Some(message) = problem {
            return on_answer(Answer::Error { message });
        }
        if !done {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the master closed the stream of returns early",
            ));
        }
        Ok(())
    }

    /// Follows a server-sent event stream: each event's name and data go to
    /// `on_event` until it answers false or the master ends the stream. A
    /// refusal of the request lands in `problem`.
    pub fn follow(
        &self,
        uri: &str,
        mut on_event: impl FnMut(&str, &str) -> io::Result<bool>,
        problem: &mut Option<String>,
    ) -> io::Result<()> {
        self.rt.block_on(async {
            let resp = self.send(Method::GET, uri, None).await?;
            let status = resp.status();
            let mut body = resp.into_body();
            if !status.is_success() {
                let bytes = body.collect().await.map_err(io::Error::other)?.to_bytes();
                *problem = Some(problem_detail(status, &bytes));
                return Ok(());
            }
            let mut events = SseParser::default();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(io::Error::other)?;
                let Some(data) = frame.data_ref() else {
                    continue;
                };
                for (name, data) in events.push(data) {
                    if !on_event(&name, &data)? {
                        return Ok(());
                    }
                }
            }
            Ok(())
        })
    }
}

impl Client<'_> {
    /// An inventory operation, as the matching API call.
    pub fn asset(&self, req: AssetRequest) -> io::Result<Result<serde_json::Value, String>> {
        let none: Option<&()> = None;
        let q = |pairs: &[(&str, Option<String>)]| {
            let pairs: Vec<(&str, String)> = pairs
                .iter()
                .filter_map(|(k, v)| v.clone().map(|v| (*k, v)))
                .collect();
            match serde_urlencoded::to_string(&pairs) {
                Ok(s) if !s.is_empty() => format!("?{s}"),
                _ => String::new(),
            }
        };
        match req {
            list @ AssetRequest::List { .. } => self.asset_list(list, None),
            AssetRequest::Show { key, version, at } => self.call(
                Method::GET,
                &format!(
                    "/v1/assets/{}{}",
                    segment(&key),
                    q(&[("version", version.map(|v| v.to_string())), ("at", at)])
                ),
                none,
            ),
            AssetRequest::History { key } => self.call(
                Method::GET,
                &format!("/v1/assets/{}/history", segment(&key)),
                none,
            ),
            AssetRequest::Diff { key, from, to } => self.call(
                Method::GET,
                &format!(
                    "/v1/assets/{}/diff{}",
                    segment(&key),
                    q(&[
                        ("from", from.map(|v| v.to_string())),
                        ("to", to.map(|v| v.to_string()))
                    ])
                ),
                none,
            ),
            AssetRequest::Patch {
                key,
                fields,
                status,
                ..
            } => self.call(
                Method::PATCH,
                &format!("/v1/assets/{}", segment(&key)),
                Some(&serde_json::json!({ "fields": fields, "status": status })),
            ),
            AssetRequest::Add {
                kind,
                fields,
                status,
                ..
            } => self.call(
                Method::POST,
                "/v1/assets",
                Some(&serde_json::json!({ "kind": kind, "fields": fields, "status": status })),
            ),
            AssetRequest::Dups => self.call(Method::GET, "/v1/assets/dups", none),
            AssetRequest::Changes {
                since_ms,
                until_ms,
                q,
                cursor,
                limit,
            } => self.all_pages(
                "/v1/changes",
                &[
                    ("since_ms", Some(since_ms.to_string())),
                    ("until_ms", until_ms.map(|u| u.to_string())),
                    ("q", q),
                    ("limit", Some(limit.to_string())),
                ],
                cursor,
                None,
            ),
            AssetRequest::Audit { year, group_by } => self.call(
                Method::GET,
                &format!(
                    "/v1/reports/audit{}",
                    q(&[
                        ("year", Some(year.to_string())),
                        ("group_by", Some(group_by))
                    ])
                ),
                none,
            ),
        }
    }

    /// The assets a listing selects, following `next` up to `max` items
    /// (none: all), as one JSON array.
    pub fn asset_list(
        &self,
        req: AssetRequest,
        max: Option<usize>,
    ) -> io::Result<Result<serde_json::Value, String>> {
        let AssetRequest::List {
            grain,
            q,
            fields,
            at,
            sort,
            cursor,
            limit,
        } = req
        else {
            return Ok(Err("not a listing".into()));
        };
        self.all_pages(
            "/v1/assets",
            &[
                ("grain", grain),
                ("q", q),
                ("fields", fields),
                ("at", at),
                ("sort", sort),
                ("limit", Some(limit.to_string())),
            ],
            cursor,
            max,
        )
    }

    /// One request whose answer is kept as bytes (a file to save), or the
    /// problem's detail.
    pub fn call_bytes(
        &self,
        method: Method,
        uri: &str,
        body: Option<Vec<u8>>,
    ) -> io::Result<Result<Vec<u8>, String>> {
        Ok(self
            .rt
            .block_on(self.call_async(method, uri, body))?
            .map(|b| b.to_vec()))
    }

    /// Every item of a paged list from `cursor` on, following `next` (up
    /// to `max` items when given): one JSON array.
    pub fn all_pages(
        &self,
        path: &str,
        params: &[(&str, Option<String>)],
        mut cursor: Option<String>,
        max: Option<usize>,
    ) -> io::Result<Result<serde_json::Value, String>> {
        let none: Option<&()> = None;
        let mut items = Vec::new();
        loop {
            let mut pairs: Vec<(&str, String)> = params
                .iter()
                .filter_map(|(k, v)| v.clone().map(|v| (*k, v)))
                .collect();
            if let Some(c) = &cursor {
                pairs.push(("cursor", c.clone()));
            }
            let query = serde_urlencoded::to_string(&pairs).map_err(io::Error::other)?;
            let page: master::service::Page<serde_json::Value> =
                match self.call(Method::GET, &format!("{path}?{query}"), none)? {
                    Ok(p) => p,
                    Err(problem) => return Ok(Err(problem)),
                };
            items.extend(page.items);
            if let Some(max) = max
                && items.len() >= max
            {
                items.truncate(max);
                return Ok(Ok(serde_json::Value::Array(items)));
            }
            match page.next {
                Some(n) => cursor = Some(n),
                None => return Ok(Ok(serde_json::Value::Array(items))),
            }
        }
    }
}

/// Percent-encodes one path segment (everything but unreserved characters).
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn problem_detail(status: StatusCode, body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["detail"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{status}: {}", String::from_utf8_lossy(body)))
}

/// Splits a `text/event-stream` body into (event, data) pairs.
#[derive(Default)]
pub struct SseParser {
    buf: Vec<u8>,
    /// How much of `buf` is known to hold no blank line.
    scanned: usize,
}

impl SseParser {
    /// Feeds bytes; returns the events they completed. A fleet's returns
    /// are tens of megabytes of events: each byte is searched once, and
    /// what is left is moved once per call.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<(String, String)> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        let (mut start, mut from) = (0, self.scanned.saturating_sub(1));
        while let Some(at) = memchr::memmem::find(&self.buf[from..], b"\n\n") {
            let end = from + at;
            if let Some(event) = event(&self.buf[start..end]) {
                out.push(event);
            }
            start = end + 2;
            from = start;
        }
        self.buf.drain(..start);
        self.scanned = self.buf.len();
        out
    }
}

/// The name and data of one event's lines (`None` without data).
fn event(block: &[u8]) -> Option<(String, String)> {
    let text = String::from_utf8_lossy(block);
    let mut name = String::from("message");
    let mut data: Vec<&str> = Vec::new();
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            name = v.trim_start().to_owned();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    match data.as_slice() {
        [] => None,
        [one] => Some((name, (*one).to_owned())),
        _ => Some((name, data.join("\n"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(segment("web 01?#%/"), "web%2001%3F%23%25%2F");
        assert_eq!(segment("db-1.example_x~"), "db-1.example_x~");
    }

    #[test]
    fn sse_events_split_anywhere_come_out_whole_once() {
        let stream = b"event: ret\ndata: {\"a\":1}\n\n:keep-alive\n\nevent: ret\ndata: x\ndata: y\n\nevent: done\ndata: {}\n\n";
        let want = vec![
            ("ret".to_owned(), "{\"a\":1}".to_owned()),
            ("ret".to_owned(), "x\ny".to_owned()),
            ("done".to_owned(), "{}".to_owned()),
        ];
        for a in 0..stream.len() {
            for b in a..stream.len() {
                let mut p = SseParser::default();
                let mut got = p.push(&stream[..a]);
                got.extend(p.push(&stream[a..b]));
                got.extend(p.push(&stream[b..]));
                assert_eq!(got, want, "split at {a} and {b}");
            }
        }
    }

    #[test]
    fn sse_events_split_across_reads() {
        let mut p = SseParser::default();
        assert!(p.push(b"event: ret\nda").is_empty());
        let got = p.push(b"ta: {\"a\":1}\n\n:keep-alive\n\nevent: done\ndata: x\n\n");
        assert_eq!(
            got,
            vec![
                ("ret".to_owned(), "{\"a\":1}".to_owned()),
                ("done".to_owned(), "x".to_owned())
            ]
        );
    }
}
