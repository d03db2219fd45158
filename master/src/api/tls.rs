//! The API's TCP listener: TLS (rustls) with the operator's certificate or
//! a self-signed one made at first start, and authentication of every
//! request but `/v1/health` by signature or bearer token.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::{ApiError, ApiState, Caller, router, signed};
use crate::config::MasterConfig;
use crate::error::MasterError;
use crate::service::ServiceError;

/// How long a client may take over the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// SHA-256 of a certificate (DER), colon-separated hex: what `cmdb` pins.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> MasterError + '_ {
    move |source| MasterError::Io {
        path: path.to_owned(),
        source,
    }
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), MasterError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    f.write_all(data).map_err(io_err(path))
}

/// The certificate chain and key: from `tls_cert`/`tls_key`, or a
/// self-signed pair under `pki/` made at first start and reused after.
fn load_or_make(
    cfg: &MasterConfig,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), MasterError> {
    let (cert_path, key_path) = match (&cfg.api.tls_cert, &cfg.api.tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone()),
        (None, None) => {
            let pki = cfg.pki_dir();
            let (c, k) = (pki.join("api.crt"), pki.join("api.key"));
            if !c.exists() || !k.exists() {
                let names = vec![
                    "localhost".to_owned(),
                    "127.0.0.1".to_owned(),
                    "::1".to_owned(),
                ]
                .into_iter()
                .chain(hostname::get().ok().and_then(|h| h.into_string().ok()))
                .collect::<Vec<_>>();
                let made =
                    rcgen::generate_simple_self_signed(names).map_err(|e| MasterError::Bind {
                        addr: cfg.api.listen.clone(),
                        reason: format!("cannot make a certificate: {e}"),
                    })?;
                write_private(&k, made.signing_key.serialize_pem().as_bytes())?;
                std::fs::write(&c, made.cert.pem()).map_err(io_err(&c))?;
                info!(cert = %c.display(), "made a self-signed API certificate");
            }
            (c, k)
        }
        _ => {
            return Err(MasterError::Bind {
                addr: cfg.api.listen.clone(),
                reason: "set both api.tls_cert and api.tls_key, or neither".into(),
            });
        }
    };
    let bad = |path: &Path, e: &dyn std::fmt::Display| MasterError::Bind {
        addr: cfg.api.listen.clone(),
        reason: format!("{}: {e}", path.display()),
    };
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| bad(&cert_path, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&cert_path, &e))?;
    if certs.is_empty() {
        return Err(bad(&cert_path, &"no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| bad(&key_path, &e))?;
    Ok((certs, key))
}

/// Binds the API's TCP listener with its TLS configuration; logs the
/// certificate's fingerprint.
pub async fn bind(cfg: &MasterConfig) -> Result<(TcpListener, TlsAcceptor), MasterError> {
    let (certs, key) = load_or_make(cfg)?;
    let fp = fingerprint(&certs[0]);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| MasterError::Bind {
            addr: cfg.api.listen.clone(),
            reason: format!("TLS: {e}"),
        })?;
    let listener = TcpListener::bind(&cfg.api.listen)
        .await
        .map_err(|e| MasterError::Bind {
            addr: cfg.api.listen.clone(),
            reason: e.to_string(),
        })?;
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    info!(listen = %addr, fingerprint = %fp, "API listening with TLS");
    Ok((listener, TlsAcceptor::from(Arc::new(tls))))
}

/// A 401 answered before routing, counted under the route label
/// `unauthenticated` (the route is not known yet).
fn unauthenticated(
    st: &ApiState,
    method: &axum::http::Method,
    why: String,
    peer: Option<SocketAddr>,
    path: &str,
) -> Response {
    warn!(peer = ?peer, path, reason = %why, "refused a request: unauthenticated");
    st.shared
        .metrics
        .api_requests
        .get_or_create(&crate::metrics::RequestLabels {
            route: "unauthenticated".into(),
            method: super::method_label(method),
            status: 401,
        })
        .inc();
    let mut resp = ApiError(ServiceError::Unauthenticated(why)).into_response();
    let headers = resp.headers_mut();
    headers.insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    headers.insert(
        "accept-signature",
        header::HeaderValue::from_static(
            "sig1=(\"@method\" \"@target-uri\" \"content-digest\");alg=\"ed25519\"",
        ),
    );
    resp
}

/// Establishes the caller from a signature (`Signature-Input`) or from
/// `Authorization: Bearer <token>`.
async fn authenticate(State(st): State<ApiState>, mut req: Request, next: Next) -> Response {
    if matches!(req.uri().path(), "/v1/health" | "/v1/openapi.json") {
        return next.run(req).await;
    }
    let peer = req.extensions().get::<SocketAddr>().copied();
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    if req.headers().contains_key("signature-input") {
        return match signed::authenticate(&st.shared, &st.nonces, peer, req).await {
            Ok((caller, mut req)) => {
                req.extensions_mut().insert(caller);
                next.run(req).await
            }
            Err(ServiceError::Unauthenticated(why)) => {
                unauthenticated(&st, &method, why, peer, &path)
            }
            Err(other) => ApiError(other).into_response(),
        };
    }
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return unauthenticated(
            &st,
            &method,
            "no credentials: sign the request (Signature-Input) or send Authorization: Bearer <token>"
                .into(),
            peer,
            &path,
        );
    };
    let Some(token) = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")) else {
        return unauthenticated(
            &st,
            &method,
            "the Authorization header is not \"Bearer <token>\"".into(),
            peer,
            &path,
        );
    };
    match st.shared.users.authenticate(token.trim()) {
        Ok(user) => {
            let token_id = store::access::parse_token(token.trim()).map(|(id, _)| id.to_owned());
            req.extensions_mut().insert(Caller { user, token_id });
            next.run(req).await
        }
        Err(ServiceError::Unauthenticated(why)) => unauthenticated(&st, &method, why, peer, &path),
        Err(other) => ApiError(other).into_response(),
    }
}

/// Serves the API over TLS until cancelled.
pub async fn serve(listener: TcpListener, acceptor: TlsAcceptor, state: ApiState) {
    let cancel = state.cancel.clone();
    let app = router(state.clone())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ))
        .merge(crate::ui::router(state));
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = cancel.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            acc = listener.accept() => match acc {
                Ok(a) => a,
                Err(e) => {
                    debug!(error = %e, "API accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // Answers are small writes; without this, Nagle's algorithm holds
        // one in four or five of them for the peer's delayed ACK (~40 ms).
        if let Err(e) = tcp.set_nodelay(true) {
            debug!(peer = %peer, error = %e, "could not set TCP_NODELAY");
        }
        let acceptor = acceptor.clone();
        let app = app.clone();
        let cancel = cancel.clone();
        conns.spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    debug!(peer = %peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    debug!(peer = %peer, "TLS handshake timed out");
                    return;
                }
            };
            let app = app.layer(axum::Extension(peer));
            let svc = hyper_util::service::TowerToHyperService::new(app);
            let conn =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), svc);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        debug!(peer = %peer, error = %e, "API connection ended");
                    }
                }
                _ = cancel.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    conns.shutdown().await;
}
