//! A minimal client of the master's HTTP API for the benchmark: one
//! keep-alive HTTP/1.1 connection on the unix socket or on TLS (the master's
//! self-signed certificate pinned by its SHA-256 fingerprint), bearer tokens
//! and RFC 9421 signed requests.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;

/// How a request proves who sends it.
#[derive(Clone)]
pub enum Auth {
    /// Nothing (the unix socket).
    None,
    /// `Authorization: Bearer …`.
    Bearer(String),
    /// Signed afresh for each request as this user with this key.
    Signed {
        /// The user name (`keyid`).
        user: String,
        /// The user's private key.
        key: Arc<keys::SigningKey>,
    },
    /// A web UI session: the `Cookie` header's value.
    Cookie(String),
}

/// A TLS connector that accepts only the certificate `fingerprint`.
pub fn pinned_connector(fingerprint: &str) -> anyhow::Result<tokio_rustls::TlsConnector> {
    Ok(cli::pinning::exact_connector(fingerprint)?)
}

/// One keep-alive connection to the API.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    /// The `Host` header, also the authority of the signed `@target-uri`.
    host: String,
    auth: Auth,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Conn {
    /// Connects to the unix socket `path`.
    pub async fn unix(path: &Path) -> anyhow::Result<Conn> {
        let stream = tokio::net::UnixStream::connect(path)
            .await
            .with_context(|| format!("connecting to {}", path.display()))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Conn {
            sender,
            host: "localhost".into(),
            auth: Auth::None,
        })
    }

    /// Connects with TLS to `127.0.0.1:port`.
    pub async fn tls(
        connector: &tokio_rustls::TlsConnector,
        port: u16,
        auth: Auth,
    ) -> anyhow::Result<Conn> {
        let host = format!("127.0.0.1:{port}");
        let tcp = tokio::net::TcpStream::connect(&host).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from("127.0.0.1")?;
        let stream = connector.connect(name, tcp).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Conn { sender, host, auth })
    }

    /// `GET uri` (path and query): the status and the whole body.
    pub async fn get(&mut self, uri: &str) -> anyhow::Result<(StatusCode, Bytes)> {
        let (status, _, body) = self.send(Method::GET, uri, None).await?;
        Ok((status, body))
    }

    /// A request with an optional URL-encoded form: the status, the
    /// headers and the whole body.
    pub async fn send(
        &mut self,
        method: Method,
        uri: &str,
        form: Option<&[(&str, &str)]>,
    ) -> anyhow::Result<(StatusCode, hyper::HeaderMap, Bytes)> {
        let body = match form {
            Some(f) => Bytes::from(serde_urlencoded::to_string(f)?),
            None => Bytes::new(),
        };
        let mut req = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(hyper::header::HOST, self.host.as_str());
        if form.is_some() {
            req = req.header(
                hyper::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        }
        match &self.auth {
            Auth::None => {}
            Auth::Bearer(t) => {
                req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
            }
            Auth::Cookie(c) => {
                req = req.header(hyper::header::COOKIE, c.as_str());
            }
            Auth::Signed { user, key } => {
                let mut nonce = [0u8; 16];
                getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
                let params = keys::httpsig::Params {
                    keyid: user.clone(),
                    created: unix_now(),
                    nonce: nonce.iter().map(|b| format!("{b:02x}")).collect(),
                    expires: None,
                };
                let target = format!("https://{}{uri}", self.host);
                let signed = keys::httpsig::sign(key, &params, method.as_str(), &target, &body)
                    .map_err(anyhow::Error::msg)?;
                req = req
                    .header("content-digest", signed.content_digest)
                    .header("signature-input", signed.signature_input)
                    .header("signature", signed.signature);
            }
        }
        let req = req.body(Full::new(body))?;
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, headers, body))
    }

    /// Sends the cookie `value` (`name=value`) with every later request.
    pub fn set_cookie(&mut self, value: String) {
        self.auth = Auth::Cookie(value);
    }

    /// `GET uri`, refusing anything but 200.
    pub async fn get_ok(&mut self, uri: &str) -> anyhow::Result<Bytes> {
        let (status, body) = self.get(uri).await?;
        if status != StatusCode::OK {
            bail!("GET {uri}: {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(body)
    }
}
