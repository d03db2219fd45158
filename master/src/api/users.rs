//! `/v1/users` and `/v1/tokens`: who may use the API (admins only).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiJson, ApiQuery, ApiState, Caller, PageQuery, Problem, doc};
use crate::service::users::{CreatedToken, NewPassword, NewToken, NewUser, TokenView, UserView};
use crate::service::{Page, ServiceError, page_limit};
use store::access::Role;

#[utoipa::path(get, path = "/v1/users", tag = "users", params(PageQuery), responses((status = 200, description = "users by name", body = Page<UserView>), doc::BadRequest, doc::Refused, doc::Failed))]
async fn list(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Page<UserView>>, ApiError> {
    caller.require(Role::Admin, "manage users")?;
    let limit = page_limit(q.limit, 100)?;
    let users: Vec<UserView> = st.shared.users.list()?.iter().map(UserView::from).collect();
    Ok(Json(Page::of(
        users,
        |u| u.name.clone(),
        q.cursor.as_deref(),
        limit,
        false,
    )))
}

#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = NewUser, responses((status = 201, description = "the new user", body = UserView), doc::BadRequest, doc::Refused, doc::Conflict, doc::BadBody, doc::Failed))]
async fn add(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiJson(new): ApiJson<NewUser>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    caller.require(Role::Admin, "manage users")?;
    let user = st.shared.users.add(new)?;
    tracing::info!(by = %caller.user.name, user = %user.name, role = user.role.as_str(), "user added");
    Ok((StatusCode::CREATED, Json(UserView::from(&user))))
}

#[utoipa::path(put, path = "/v1/users/{name}/password", tag = "users", params(("name" = String, Path, description = "user name")), request_body = NewPassword, responses((status = 204, description = "the web UI password is set; sessions already open stay open"), doc::BadRequest, doc::Refused, doc::NotFound, doc::BadBody, doc::Failed))]
async fn password(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    ApiJson(new): ApiJson<NewPassword>,
) -> Result<StatusCode, ApiError> {
    if name != caller.user.name {
        caller.require(Role::Admin, "set another user's password")?;
    }
    let shared = st.shared.clone();
    let who = name.clone();
    tokio::task::spawn_blocking(move || shared.users.set_password(&who, &new.password))
        .await
        .map_err(|e| ServiceError::Unavailable(format!("password: {e}")))??;
    tracing::info!(by = %caller.user.name, user = %name, "password set");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/v1/users/{name}", tag = "users", params(("name" = String, Path, description = "user name")), responses((status = 204, description = "removed with its tokens"), (status = 409, description = "a user cannot remove itself", body = Problem, content_type = "application/problem+json"), doc::Refused, doc::NotFound, doc::Failed))]
async fn remove(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin, "manage users")?;
    if name == caller.user.name {
        return Err(ServiceError::Conflict(format!(
            "user {name} cannot remove itself; another admin can"
        ))
        .into());
    }
    st.shared.users.remove(&name)?;
    tracing::info!(by = %caller.user.name, user = %name, "user removed");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/tokens", tag = "users", params(PageQuery), responses((status = 200, description = "tokens by id, without secrets", body = Page<TokenView>), doc::BadRequest, doc::Refused, doc::Failed))]
async fn tokens(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Page<TokenView>>, ApiError> {
    caller.require(Role::Admin, "manage tokens")?;
    let limit = page_limit(q.limit, 100)?;
    let mut tokens = st.shared.users.tokens()?;
    tokens.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Json(Page::of(
        tokens,
        |t| t.id.clone(),
        q.cursor.as_deref(),
        limit,
        false,
    )))
}

#[utoipa::path(post, path = "/v1/tokens", tag = "users", request_body = NewToken, responses((status = 201, description = "the token, shown this once", body = CreatedToken), doc::BadRequest, doc::Refused, doc::NotFound, doc::BadBody, doc::Failed, doc::Unavailable))]
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

#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "users", params(("id" = String, Path, description = "token id")), responses((status = 204, description = "revoked"), (status = 409, description = "the token authenticates this request", body = Problem, content_type = "application/problem+json"), doc::Refused, doc::NotFound, doc::Failed))]
async fn revoke(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(Role::Admin, "manage tokens")?;
    if caller.token_id.as_deref() == Some(id.as_str()) {
        return Err(ServiceError::Conflict(format!(
            "token {id} authenticates this request; revoke it from another session"
        ))
        .into());
    }
    st.shared.users.revoke(&id)?;
    tracing::info!(by = %caller.user.name, token = %id, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// The user and token routes.
pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list, add))
        .routes(routes!(remove))
        .routes(routes!(password))
        .routes(routes!(tokens, create_token))
        .routes(routes!(revoke))
}
