//! The HTTP API (JSON under `/v1`), served on the local unix socket
//! `api_socket`. Handlers are thin: they extract the request, call a
//! service and map its [`ServiceError`] to an RFC 9457 problem document.

pub mod assets;
pub mod doc;
pub mod events;
pub mod jobs;
pub mod keys;
pub mod signed;
pub mod ssh;
pub mod tls;
pub mod users;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::error::MasterError;
use crate::server::Shared;
use crate::service::ServiceError;
use store::access::{Role, User};

/// Largest request body accepted (a CSV import is the largest).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// What every handler gets.
#[derive(Clone)]
pub struct ApiState {
    /// The master's services.
    pub shared: Arc<Shared>,
    /// Fires on shutdown; open event streams end.
    pub cancel: CancellationToken,
    /// Nonces of signed requests seen within the clock window.
    pub nonces: Arc<signed::NonceCache>,
    /// The web UI: templates and sessions.
    pub ui: Arc<crate::ui::Ui>,
}

/// Who makes a request, as established by the listener.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user; its name is recorded with every write.
    pub user: User,
    /// The token the request came with, if any.
    pub token_id: Option<String>,
}

impl Caller {
    /// The local administrator on the unix socket, named after its uid.
    pub fn local(name: String) -> Caller {
        Caller {
            user: User {
                name,
                role: Role::Admin,
                targets: Vec::new(),
                functions: Vec::new(),
                pubkey: None,
                created_ms: 0,
                password_hash: None,
                views: Default::default(),
            },
            token_id: None,
        }
    }

    /// Refuses (403, logged with who and what) unless the caller has at
    /// least `role`.
    pub fn require(&self, role: Role, what: &str) -> Result<(), ApiError> {
        if self.user.role >= role {
            return Ok(());
        }
        warn!(user = %self.user.name, role = self.user.role.as_str(), needed = role.as_str(), what, "refused a request: forbidden");
        Err(ApiError(ServiceError::Forbidden(format!(
            "user {} ({}) may not {what}; it needs the {} role",
            self.user.name,
            self.user.role.as_str(),
            role.as_str()
        ))))
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the problem type (`about:blank`: the status says it).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The status's reason phrase.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What exactly is wrong.
    pub detail: String,
}

/// A service error on its way out as `application/problem+json`.
#[derive(Debug)]
pub struct ApiError(pub ServiceError);

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let problem = Problem {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.0.to_string(),
        };
        let mut resp = (status, Json(problem)).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/problem+json"),
        );
        resp
    }
}

/// A JSON body whose rejections (syntax, unknown fields, wrong types, a
/// missing content type) are problem documents.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rej) => {
                let detail = rej.body_text();
                Err(ApiError(match rej.status() {
                    StatusCode::UNPROCESSABLE_ENTITY => ServiceError::Unprocessable(detail),
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                        ServiceError::UnsupportedMediaType(detail)
                    }
                    StatusCode::PAYLOAD_TOO_LARGE => ServiceError::TooLarge(detail),
                    _ => ServiceError::Invalid(detail),
                }))
            }
        }
    }
}

/// Query parameters whose rejections (unknown parameters, wrong types) are
/// problem documents.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query)
            .map(ApiQuery)
            .map_err(|e| ApiError(ServiceError::Invalid(format!("query: {e}"))))
    }
}

/// The peer of a unix socket connection: its uid from the kernel.
#[derive(Debug, Clone, Copy)]
pub struct UnixPeer {
    /// The peer's uid, when the kernel told it.
    pub uid: Option<u32>,
}

impl Connected<axum::serve::IncomingStream<'_, UnixListener>> for UnixPeer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, UnixListener>) -> Self {
        UnixPeer {
            uid: stream.io().peer_cred().ok().map(|c| c.uid()),
        }
    }
}

fn user_name(uid: Option<u32>) -> String {
    uid.and_then(|u| {
        nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(u))
            .ok()
            .flatten()
    })
    .map(|u| u.name)
    .or_else(|| uid.map(|u| format!("uid:{u}")))
    .unwrap_or_else(|| "local".into())
}

/// Whoever can open the unix socket is the local administrator; writes are
/// recorded with the name of the peer's uid.
async fn unix_caller(
    ConnectInfo(peer): ConnectInfo<UnixPeer>,
    mut req: Request,
    next: Next,
) -> Response {
    req.extensions_mut()
        .insert(Caller::local(user_name(peer.uid)));
    next.run(req).await
}

/// `limit` and `cursor` of a list.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// At most this many (1 to 1000).
    pub limit: Option<usize>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
}

/// The answer of `GET /v1/health`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

/// Liveness; needs no credentials.
#[utoipa::path(get, path = "/v1/health", tag = "health", security(()), responses((status = 200, description = "the master is up", body = Health)))]
async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The master's figures in the Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "metrics", responses((status = 200, description = "Prometheus text: minions by key state and presence, jobs published, returns stored, store size, API requests by route and status", body = String, content_type = "text/plain; version=0.0.4"), doc::Refused, doc::Failed))]
async fn metrics(axum::extract::State(st): axum::extract::State<ApiState>) -> Response {
    let shared = st.shared.clone();
    let text = tokio::task::spawn_blocking(move || shared.metrics.render(&shared))
        .await
        .unwrap_or_else(|e| format!("# metrics failed: {e}\n"));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// A method as a metric label: the standard ones, else `other`.
pub(crate) fn method_label(m: &axum::http::Method) -> String {
    use axum::http::Method;
    let known = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
    ];
    if known.contains(m) {
        m.as_str().to_owned()
    } else {
        "other".to_owned()
    }
}

/// Counts each request by route pattern, method and status.
async fn count_requests(
    axum::extract::State(st): axum::extract::State<ApiState>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = method_label(req.method());
    let resp = next.run(req).await;
    st.shared
        .metrics
        .api_requests
        .get_or_create(&crate::metrics::RequestLabels {
            route,
            method,
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}

/// Bearer tokens (`cmdb token create`) on the TLS listener.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI document's frame; the paths come from the handlers.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(title = "cmdb", description = "The cmdb master's API: jobs, the asset inventory, keys and users."),
    modifiers(&BearerAuth),
    components(schemas(Problem)),
    security(("bearer" = []))
)]
struct ApiDoc;

/// The OpenAPI 3.1 document of every route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().split_for_parts().1
}

fn routes() -> utoipa_axum::router::OpenApiRouter<ApiState> {
    use utoipa::OpenApi;
    utoipa_axum::router::OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(utoipa_axum::routes!(health))
        .routes(utoipa_axum::routes!(metrics))
        .merge(jobs::routes())
        .merge(ssh::routes())
        .merge(events::routes())
        .merge(assets::routes())
        .merge(keys::routes())
        .merge(users::routes())
}

async fn not_found(
    axum::extract::State(st): axum::extract::State<ApiState>,
    req: Request,
) -> ApiError {
    st.shared
        .metrics
        .api_requests
        .get_or_create(&crate::metrics::RequestLabels {
            route: "unmatched".into(),
            method: method_label(req.method()),
            status: 404,
        })
        .inc();
    ApiError(ServiceError::NotFound(format!(
        "no route {} {}",
        req.method(),
        req.uri().path()
    )))
}

/// Every route, for both listeners.
pub fn router(state: ApiState) -> Router {
    let (router, doc) = routes().split_for_parts();
    let doc = Arc::new(doc);
    router
        .route(
            "/v1/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Binds the unix socket with mode 0600, replacing a stale socket file but
/// refusing to start when another master answers on it.
pub fn bind_unix(path: &Path) -> Result<UnixListener, MasterError> {
    let io = |source| MasterError::Io {
        path: path.to_owned(),
        source,
    };
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(MasterError::Bind {
                addr: path.display().to_string(),
                reason: "another master is running on this socket".into(),
            });
        }
        std::fs::remove_file(path).map_err(io)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    Ok(listener)
}

/// Serves the API on the unix socket until cancelled.
pub async fn serve_unix(listener: UnixListener, state: ApiState) {
    let cancel = state.cancel.clone();
    let app = router(state).layer(axum::middleware::from_fn(unix_caller));
    info!("API listening on the unix socket");
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<UnixPeer>(),
    )
    .with_graceful_shutdown(cancel.cancelled_owned())
    .await;
    if let Err(e) = served {
        warn!(error = %e, "API unix socket failed");
    }
}
