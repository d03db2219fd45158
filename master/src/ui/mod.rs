//! The web UI under `/ui` on the API's TLS listener: server-rendered pages
//! from templates compiled into the binary, static files embedded, htmx
//! for partial updates and server-sent events for live job returns.
//!
//! People log in with a name and password (argon2id); a session is an
//! HttpOnly, Secure, SameSite=Strict cookie with an expiry, and every form
//! carries the session's CSRF token, checked before any handler runs.
//! Writes go through the API's own handlers with the session's user as
//! the caller, so roles and operator ACLs are exactly the API's.

mod pages;
mod session;
mod view;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use tracing::warn;

use crate::api::{ApiState, Caller};
use crate::error::MasterError;
pub use session::Sessions;

/// Largest form body the UI takes (a saved view, a field edit, a job).
const MAX_FORM_BYTES: usize = 256 * 1024;

/// The Content-Security-Policy of every page: scripts and styles only from
/// the master's own static files, no inline script or style, no frames.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The templates, compiled into the binary.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("macros.html", include_str!("templates/macros.html")),
    ("login.html", include_str!("templates/login.html")),
    ("error.html", include_str!("templates/error.html")),
    ("dashboard.html", include_str!("templates/dashboard.html")),
    ("assets.html", include_str!("templates/assets.html")),
    ("asset.html", include_str!("templates/asset.html")),
    ("diff.html", include_str!("templates/diff.html")),
    ("keys.html", include_str!("templates/keys.html")),
    ("confirm.html", include_str!("templates/confirm.html")),
    ("jobs.html", include_str!("templates/jobs.html")),
    ("preview.html", include_str!("templates/preview.html")),
    ("job.html", include_str!("templates/job.html")),
    ("changes.html", include_str!("templates/changes.html")),
    ("audit.html", include_str!("templates/audit.html")),
];

/// The static files, embedded: name, content type, bytes.
const STATIC: &[(&str, &str, &[u8])] = &[
    (
        "htmx.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("static/htmx.min.js"),
    ),
    (
        "ui.js",
        "text/javascript; charset=utf-8",
        include_bytes!("static/ui.js"),
    ),
    (
        "ui.css",
        "text/css; charset=utf-8",
        include_bytes!("static/ui.css"),
    ),
];

/// The UI's own state: its templates, sessions and login limits.
pub struct Ui {
    env: minijinja::Environment<'static>,
    /// Logged-in sessions and failed logins.
    pub sessions: Sessions,
}

impl Ui {
    /// Compiles the templates.
    pub fn new() -> Result<Ui, MasterError> {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        for (name, text) in TEMPLATES {
            env.add_template(name, text)
                .map_err(|e| MasterError::Template {
                    name: (*name).to_owned(),
                    reason: format!("{e:#}"),
                })?;
        }
        view::register(&mut env);
        Ok(Ui {
            env,
            sessions: Sessions::default(),
        })
    }

    /// Renders a template to a page with the UI's headers.
    fn render(&self, status: StatusCode, name: &str, ctx: minijinja::Value) -> Response {
        let html = self.env.get_template(name).and_then(|t| t.render(ctx));
        match html {
            Ok(html) => (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                html,
            )
                .into_response(),
            Err(e) => {
                warn!(template = name, error = %format!("{e:#}"), "UI page failed to render");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    format!("the page {name} could not be rendered: {e}"),
                )
                    .into_response()
            }
        }
    }
}

/// A served static file, or 404.
async fn static_file(axum::extract::Path(name): axum::extract::Path<String>) -> Response {
    match STATIC.iter().find(|(n, _, _)| *n == name) {
        Some((_, ctype, bytes)) => (
            [
                (header::CONTENT_TYPE, *ctype),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

/// The headers every UI answer carries.
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// Who is logged in on this request, and the session's CSRF token.
#[derive(Debug, Clone)]
pub struct Login {
    /// The session's CSRF token, put in every form.
    pub csrf: String,
}

/// Establishes the session's user (else sends a browser to the login
/// page) and, on every POST, checks the form's CSRF token before anything
/// runs.
async fn guard(State(st): State<ApiState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path.starts_with("/ui/static/") || path == "/ui/login" {
        return next.run(req).await;
    }
    let peer = req.extensions().get::<std::net::SocketAddr>().copied();
    let found = session::cookie(req.headers(), session::SESSION_COOKIE)
        .and_then(|id| st.ui.sessions.get(&id).map(|s| (id, s)));
    let Some((id, s)) = found else {
        if matches!(*req.method(), Method::GET | Method::HEAD) {
            let back = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| "/ui".into());
            let to = format!(
                "/ui/login?{}",
                serde_urlencoded::to_string([("next", back)]).unwrap_or_default()
            );
            return Redirect::to(&to).into_response();
        }
        return pages::error_page(
            &st,
            None,
            StatusCode::UNAUTHORIZED,
            "Log in first: this session is unknown or has expired. Nothing was changed.",
        );
    };
    let user = match st.shared.users.get(&s.user) {
        Ok(u) => u,
        Err(_) => {
            st.ui.sessions.end(&id);
            return Redirect::to("/ui/login").into_response();
        }
    };
    let caller = Caller {
        user,
        token_id: None,
    };
    let login = Login { csrf: s.csrf };
    let req = if req.method() == Method::POST {
        let (parts, body) = req.into_parts();
        let bytes = match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
            Ok(b) => b,
            Err(_) => {
                return pages::error_page(
                    &st,
                    Some((&caller, &login)),
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("The form is over {MAX_FORM_BYTES} bytes. Nothing was changed."),
                );
            }
        };
        let given = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| session::form_field(&bytes, "csrf"));
        if !given.is_some_and(|g| session::same(&g, &login.csrf)) {
            warn!(user = %caller.user.name, peer = ?peer, path = %parts.uri.path(), "refused a UI form: missing or wrong CSRF token");
            return pages::error_page(
                &st,
                Some((&caller, &login)),
                StatusCode::FORBIDDEN,
                "The form's CSRF token is missing or wrong (reload the page and try again). Nothing was changed.",
            );
        }
        Request::from_parts(parts, axum::body::Body::from(bytes))
    } else {
        req
    };
    let mut req = req;
    req.extensions_mut().insert(caller);
    req.extensions_mut().insert(login);
    next.run(req).await
}

/// The UI's routes, for the TLS listener.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/ui", get(pages::dashboard))
        .route("/ui/", get(|| async { Redirect::permanent("/ui") }))
        .route("/ui/static/{name}", get(static_file))
        .route("/ui/login", get(pages::login_form).post(pages::login))
        .route("/ui/logout", post(pages::logout))
        .route("/ui/assets", get(pages::assets))
        .route("/ui/assets/export", get(pages::export))
        .route("/ui/views", post(pages::save_view))
        .route("/ui/views/delete", post(pages::delete_view))
        .route(
            "/ui/assets/{key}",
            get(pages::asset).post(pages::edit_asset),
        )
        .route("/ui/assets/{key}/status", post(pages::set_status))
        .route("/ui/assets/{key}/diff", get(pages::diff))
        .route("/ui/keys", get(pages::keys))
        .route(
            "/ui/keys/{id}/{act}",
            get(pages::confirm_key).post(pages::key_action),
        )
        .route("/ui/jobs", get(pages::jobs).post(pages::run_job))
        .route("/ui/jobs/preview", get(pages::preview))
        .route("/ui/jobs/{jid}", get(pages::job))
        .route("/ui/jobs/{jid}/stream", get(pages::job_stream))
        .route("/ui/changes", get(pages::changes))
        .route("/ui/audit", get(pages::audit))
        .route("/ui/audit/export", get(pages::audit_export))
        .route("/ui/{*rest}", get(pages::not_found).post(pages::not_found))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// Shared by the UI's handlers.
pub type UiState = Arc<Ui>;
