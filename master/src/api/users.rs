//! `/v1/users` and `/v1/tokens`: who may use the API (admins only).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Extension, Json, Router};

use super::{ApiError, ApiJson, ApiState, Caller};
use crate::access::{Role, User};
use crate::service::users::{CreatedToken, NewToken, NewUser, TokenView};

async fn list(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<User>>, ApiError> {
    caller.require(Role::Admin, "manage users")?;
    Ok(Json(st.shared.users.list()?))
}

async fn add(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiJson(new): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    caller.require(Role::Admin, "manage users")?;
    let user = st.shared.users.add(new)?;
    tracing::info!(by = %caller.user.name, user = %user.name, role = user.role.as_str(), "user added");
    Ok((StatusCode::CREATED, Json(user)))
}

async fn remove(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin, "manage users")?;
    st.shared.users.remove(&name)?;
    tracing::info!(by = %caller.user.name, user = %name, "user removed");
    Ok(StatusCode::NO_CONTENT)
}

async fn tokens(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    caller.require(Role::Admin, "manage tokens")?;
    Ok(Json(st.shared.users.tokens()?))
}

async fn create_token(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiJson(new): ApiJson<NewToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    caller.require(Role::Admin, "manage tokens")?;
    let created = st.shared.users.create_token(new)?;
    tracing::info!(by = %caller.user.name, user = %created.view.user, token = %created.view.id, "token created");
    Ok((StatusCode::CREATED, Json(created)))
}

async fn revoke(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin, "manage tokens")?;
    st.shared.users.revoke(&id)?;
    tracing::info!(by = %caller.user.name, token = %id, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// The user and token routes.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/users", get(list).post(add))
        .route("/v1/users/{name}", delete(remove))
        .route("/v1/tokens", get(tokens).post(create_token))
        .route("/v1/tokens/{id}", delete(revoke))
}
