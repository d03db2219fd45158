//! `/v1/keys`: minion keys with fingerprints; accept, reject, delete.

use axum::extract::{Path, State};
use axum::{Extension, Json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiQuery, ApiState, Caller, PageQuery, doc};
use crate::service::keys::{self, KeyView, Widen};
use crate::service::{Page, page_limit};
use store::access::Role;

#[utoipa::path(get, path = "/v1/keys", tag = "keys", params(PageQuery), responses((status = 200, description = "keys by minion id and state", body = Page<KeyView>), doc::BadRequest, doc::Refused, doc::Failed, doc::Unavailable))]
async fn list(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Page<KeyView>>, ApiError> {
    caller.require(Role::Admin, "manage keys")?;
    let limit = page_limit(q.limit, 1000)?;
    let key = |k: &KeyView| format!("{}/{}", k.id, k.state);
    let mut all = keys::list(st.shared.pki.as_ref())?;
    all.sort_by_key(key);
    Ok(Json(Page::of(all, key, q.cursor.as_deref(), limit, false)))
}

#[utoipa::path(post, path = "/v1/keys/{id}/accept", tag = "keys", params(("id" = String, Path, description = "minion id"), Widen), responses((status = 200, description = "the accepted key", body = KeyView), doc::BadRequest, doc::Refused, doc::NotFound, doc::Conflict, doc::Failed, doc::Unavailable))]
pub(crate) async fn accept(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiQuery(w): ApiQuery<Widen>,
) -> Result<Json<KeyView>, ApiError> {
    caller.require(Role::Admin, "manage keys")?;
    let view = keys::accept(st.shared.pki.as_ref(), &id, w)?;
    key_event(&st, &id, "accept", &caller);
    Ok(Json(view))
}

#[utoipa::path(post, path = "/v1/keys/{id}/reject", tag = "keys", params(("id" = String, Path, description = "minion id"), Widen), responses((status = 200, description = "the rejected key", body = KeyView), doc::BadRequest, doc::Refused, doc::NotFound, doc::Failed, doc::Unavailable))]
pub(crate) async fn reject(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiQuery(w): ApiQuery<Widen>,
) -> Result<Json<KeyView>, ApiError> {
    caller.require(Role::Admin, "manage keys")?;
    let view = keys::reject(st.shared.pki.as_ref(), &id, w)?;
    st.shared.keyring.want_rotation();
    key_event(&st, &id, "reject", &caller);
    Ok(Json(view))
}

#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys", params(("id" = String, Path, description = "minion id")), responses((status = 200, description = "the deleted keys", body = Vec<KeyView>), doc::BadRequest, doc::Refused, doc::NotFound, doc::Failed, doc::Unavailable))]
pub(crate) async fn delete(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Vec<KeyView>>, ApiError> {
    caller.require(Role::Admin, "manage keys")?;
    let views = keys::delete(st.shared.pki.as_ref(), &id)?;
    st.shared.keyring.want_rotation();
    key_event(&st, &id, "delete", &caller);
    Ok(Json(views))
}

fn key_event(st: &ApiState, id: &str, act: &str, caller: &Caller) {
    let ev = crate::events::KeyEvent {
        id,
        act,
        user: &caller.user.name,
    };
    st.shared.events.emit(|| "cmdb/key".into(), &ev);
}

/// The key routes.
pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(delete))
        .routes(routes!(accept))
        .routes(routes!(reject))
}
