//! `/v1/keys`: minion keys with fingerprints; accept, reject, delete.

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};

use super::{ApiError, ApiQuery, ApiState, Caller};
use crate::access::Role;
use crate::service::keys::{self, KeyView, Widen};

async fn list(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<KeyView>>, ApiError> {
    caller.require(Role::Admin, "manage keys")?;
    Ok(Json(keys::list(&st.shared.pki)?))
}

async fn accept(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiQuery(w): ApiQuery<Widen>,
) -> Result<Json<KeyView>, ApiError> {
    caller.require(Role::Admin, "manage keys")?;
    Ok(Json(keys::accept(&st.shared.pki, &id, w)?))
}

async fn reject(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiQuery(w): ApiQuery<Widen>,
) -> Result<Json<KeyView>, ApiError> {
    caller.require(Role::Admin, "manage keys")?;
    Ok(Json(keys::reject(&st.shared.pki, &id, w)?))
}

async fn delete(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Vec<KeyView>>, ApiError> {
    caller.require(Role::Admin, "manage keys")?;
    Ok(Json(keys::delete(&st.shared.pki, &id)?))
}

/// The key routes.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/keys", get(list))
        .route("/v1/keys/{id}", axum::routing::delete(delete))
        .route("/v1/keys/{id}/accept", post(accept))
        .route("/v1/keys/{id}/reject", post(reject))
}
