//! `/v1/assets` and `/v1/changes`: the inventory.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;

use super::{ApiError, ApiJson, ApiQuery, ApiState, Caller};
use crate::access::Role;
use crate::service::ServiceError;
use crate::service::inventory::{AssetAnswer, AssetRequest, handle};

/// `GET /v1/assets` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only assets whose facts match this grain expression (`key:value`).
    pub grain: Option<String>,
}

/// `GET /v1/assets/{ref}` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShowQuery {
    /// Rebuild this version instead of the latest.
    pub version: Option<u64>,
}

/// `GET /v1/assets/{ref}/diff` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffQuery {
    /// From this version (default: the one before `to`).
    pub from: Option<u64>,
    /// To this version (default: the latest).
    pub to: Option<u64>,
}

/// `GET /v1/changes` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    /// Changes at or after this time, unix milliseconds (default 0).
    pub since_ms: Option<i64>,
}

/// `PATCH /v1/assets/{ref}`: manual fields and a status transition.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetPatch {
    /// Manual fields to set; an empty value removes the field.
    #[serde(default)]
    pub manual: BTreeMap<String, String>,
    /// New operator status.
    pub status: Option<String>,
}

/// `POST /v1/assets/import`: a CSV purchase list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// The file's text.
    pub csv: String,
}

fn answer(st: &ApiState, req: AssetRequest) -> Result<Json<AssetAnswer>, ApiError> {
    Ok(Json(handle(&st.shared, req)?))
}

async fn list(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<AssetAnswer>, ApiError> {
    answer(&st, AssetRequest::List { grain: q.grain })
}

async fn show(
    State(st): State<ApiState>,
    Path(key): Path<String>,
    ApiQuery(q): ApiQuery<ShowQuery>,
) -> Result<Json<AssetAnswer>, ApiError> {
    answer(
        &st,
        AssetRequest::Show {
            key,
            version: q.version,
        },
    )
}

async fn history(
    State(st): State<ApiState>,
    Path(key): Path<String>,
) -> Result<Json<AssetAnswer>, ApiError> {
    answer(&st, AssetRequest::History { key })
}

async fn diff(
    State(st): State<ApiState>,
    Path(key): Path<String>,
    ApiQuery(q): ApiQuery<DiffQuery>,
) -> Result<Json<AssetAnswer>, ApiError> {
    answer(
        &st,
        AssetRequest::Diff {
            key,
            from: q.from,
            to: q.to,
        },
    )
}

async fn patch(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    ApiJson(p): ApiJson<AssetPatch>,
) -> Result<Json<AssetAnswer>, ApiError> {
    caller.require(Role::Operator, "change assets")?;
    if p.manual.is_empty() && p.status.is_none() {
        return Err(
            ServiceError::Unprocessable("nothing to change: give manual or status".into()).into(),
        );
    }
    let mut last = None;
    if !p.manual.is_empty() {
        last = Some(handle(
            &st.shared,
            AssetRequest::Set {
                key: key.clone(),
                fields: p.manual,
                user: caller.user.name.clone(),
            },
        )?);
    }
    if let Some(status) = p.status {
        last = Some(handle(
            &st.shared,
            AssetRequest::Status {
                key,
                status,
                user: caller.user.name,
            },
        )?);
    }
    last.map(Json)
        .ok_or_else(|| ApiError(ServiceError::Internal("no change made".into())))
}

async fn import(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<ImportRequest>,
) -> Result<Json<AssetAnswer>, ApiError> {
    caller.require(Role::Operator, "import assets")?;
    answer(
        &st,
        AssetRequest::Import {
            csv: req.csv,
            user: caller.user.name,
        },
    )
}

async fn dups(State(st): State<ApiState>) -> Result<Json<AssetAnswer>, ApiError> {
    answer(&st, AssetRequest::Dups)
}

async fn changes(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<ChangesQuery>,
) -> Result<Json<AssetAnswer>, ApiError> {
    answer(
        &st,
        AssetRequest::Changes {
            since_ms: q.since_ms.unwrap_or(0),
        },
    )
}

/// The inventory routes.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/assets", get(list))
        .route("/v1/assets/import", post(import))
        .route("/v1/assets/dups", get(dups))
        .route("/v1/assets/{key}", get(show).patch(patch))
        .route("/v1/assets/{key}/history", get(history))
        .route("/v1/assets/{key}/diff", get(diff))
        .route("/v1/changes", get(changes))
}
