//! `/v1/assets` and `/v1/changes`: the inventory.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiJson, ApiQuery, ApiState, Caller, doc};
use crate::service::inventory::{AssetAnswer, AssetRequest, handle};
use crate::service::inventory::{AssetView, ChangeFeedEntry, DiffView, HistoryView, ImportSummary};
use crate::service::{Page, ServiceError, page_limit};
use store::access::Role;

/// `GET /v1/assets` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only assets whose facts match this grain expression (`key:value`).
    pub grain: Option<String>,
    /// Order by a column (`asset_id` or `id`, `minion`, `host`, `os`,
    /// `release`, `serial`, `status`, `presence`, `site`, `rack`) or a path
    /// into the asset (`facts.mem_total_bytes`, `manual.owner`, `version`,
    /// `created_ms`, `last_collect_ms`); a leading `-` sorts descending.
    /// Numbers sort by value, strings naturally (`web2` before `web10`),
    /// assets without the value last in both directions, ties by asset id.
    /// Default: by asset id. The cursor holds the sort: keep it while
    /// following `next`.
    pub sort: Option<String>,
    /// At most this many (1 to 1000, default 100).
    pub limit: Option<usize>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
}

/// `GET /v1/assets/{ref}` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ShowQuery {
    /// Rebuild this version instead of the latest.
    pub version: Option<u64>,
    /// Rebuild the version it had at this time: a date (`2026-01-31`, as
    /// the day closed, UTC), a date and time (`2026-01-31T14:00:00Z`) or
    /// unix milliseconds.
    pub at: Option<String>,
}

/// `GET /v1/assets/{ref}/diff` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DiffQuery {
    /// From this version (default: the one before `to`).
    pub from: Option<u64>,
    /// To this version (default: the latest).
    pub to: Option<u64>,
}

/// `GET /v1/changes` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ChangesQuery {
    /// Changes at or after this time, unix milliseconds (default 0).
    pub since_ms: Option<i64>,
    /// Changes before this time, unix milliseconds (default: up to now).
    pub until_ms: Option<i64>,
    /// At most this many (1 to 1000, default 1000).
    pub limit: Option<usize>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
}

/// `PATCH /v1/assets/{ref}`: manual fields and a status transition.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
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
#[derive(utoipa::ToSchema)]
pub struct ImportRequest {
    /// The file's text.
    pub csv: String,
}

fn answer(st: &ApiState, req: AssetRequest) -> Result<Json<AssetAnswer>, ApiError> {
    Ok(Json(handle(&st.shared, req)?))
}

#[utoipa::path(get, path = "/v1/assets", tag = "assets", params(ListQuery), responses((status = 200, description = "assets by asset id, or in the order `sort` asks", body = Page<AssetView>), doc::BadRequest, doc::Refused, doc::Failed))]
async fn list(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<AssetAnswer>, ApiError> {
    answer(
        &st,
        AssetRequest::List {
            grain: q.grain,
            sort: q.sort,
            cursor: q.cursor,
            limit: page_limit(q.limit, 100)?,
        },
    )
}

#[utoipa::path(get, path = "/v1/assets/{key}", tag = "assets", params(("key" = String, Path, description = "asset id, minion id, serial, asset tag, name, IP or MAC"), ShowQuery), responses((status = 200, description = "the asset", body = AssetView, headers(("ETag" = String, description = "its latest version, for If-Match"))), doc::BadRequest, doc::Refused, doc::NotFound, doc::Conflict, doc::Failed))]
async fn show(
    State(st): State<ApiState>,
    Path(key): Path<String>,
    ApiQuery(q): ApiQuery<ShowQuery>,
) -> Result<Response, ApiError> {
    let answer = handle(
        &st.shared,
        AssetRequest::Show {
            key,
            version: q.version,
            at: q.at,
        },
    )?;
    Ok(with_etag(answer))
}

#[utoipa::path(get, path = "/v1/assets/{key}/history", tag = "assets", params(("key" = String, Path, description = "asset id, minion id, serial, asset tag, name, IP or MAC")), responses((status = 200, description = "its change records", body = HistoryView), doc::BadRequest, doc::Refused, doc::NotFound, doc::Conflict, doc::Failed))]
async fn history(
    State(st): State<ApiState>,
    Path(key): Path<String>,
) -> Result<Json<AssetAnswer>, ApiError> {
    answer(&st, AssetRequest::History { key })
}

#[utoipa::path(get, path = "/v1/assets/{key}/diff", tag = "assets", params(("key" = String, Path, description = "asset id, minion id, serial, asset tag, name, IP or MAC"), DiffQuery), responses((status = 200, description = "field differences", body = DiffView), doc::BadRequest, doc::Refused, doc::NotFound, doc::Conflict, doc::Failed))]
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

/// `"<version>"`: an asset's ETag.
fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// The version an `If-Match` header names (`None` for `*` or no header).
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError(ServiceError::Invalid("If-Match is not ASCII".into())))?
        .trim();
    if text == "*" {
        return Ok(None);
    }
    text.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .and_then(|t| t.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError(ServiceError::Invalid(format!(
                "If-Match {text:?}: give one ETag as GET answered it, e.g. \"12\""
            )))
        })
}

fn with_etag(answer: AssetAnswer) -> Response {
    let tag = match &answer {
        AssetAnswer::Asset(a) => Some(etag(a.latest_version)),
        _ => None,
    };
    let mut resp = Json(answer).into_response();
    if let Some(tag) = tag {
        resp.headers_mut().insert(header::ETAG, tag);
    }
    resp
}

#[utoipa::path(patch, path = "/v1/assets/{key}", tag = "assets", params(("key" = String, Path, description = "asset id, minion id, serial, asset tag, name, IP or MAC"), ("If-Match" = Option<String>, Header, description = "the ETag a GET answered; a newer version refuses the change (412)")), request_body = AssetPatch, responses((status = 200, description = "the changed asset", body = AssetView, headers(("ETag" = String, description = "its new version"))), doc::BadRequest, doc::Refused, doc::NotFound, doc::Conflict, doc::Precondition, doc::BadBody, doc::Failed))]
async fn patch(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    headers: HeaderMap,
    ApiJson(p): ApiJson<AssetPatch>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator, "change assets")?;
    let answer = handle(
        &st.shared,
        AssetRequest::Patch {
            key,
            manual: p.manual,
            status: p.status,
            if_match: if_match(&headers)?,
            user: caller.user.name.clone(),
        },
    )?;
    if let AssetAnswer::Asset(a) = &answer {
        let ev = crate::events::AssetEvent {
            asset_id: a.asset_id.as_str(),
            version: a.latest_version,
            source: "manual",
            by: &caller.user.name,
        };
        st.shared.events.emit(
            || format!("cmdb/asset/{}/changed", a.asset_id.as_str()),
            &ev,
        );
    }
    Ok(with_etag(answer))
}

#[utoipa::path(post, path = "/v1/assets/import", tag = "assets", request_body = ImportRequest, responses((status = 200, description = "what the import did", body = ImportSummary), doc::BadRequest, doc::Refused, doc::BadBody, doc::Failed))]
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

#[utoipa::path(get, path = "/v1/assets/dups", tag = "assets", responses((status = 200, description = "assets sharing a serial, by serial", body = std::collections::BTreeMap<String, Vec<serde_json::Value>>), doc::Refused, doc::Failed))]
async fn dups(State(st): State<ApiState>) -> Result<Json<AssetAnswer>, ApiError> {
    answer(&st, AssetRequest::Dups)
}

#[utoipa::path(get, path = "/v1/changes", tag = "assets", params(ChangesQuery), responses((status = 200, description = "field changes since the time, oldest first", body = Page<ChangeFeedEntry>), doc::BadRequest, doc::Refused, doc::Failed))]
async fn changes(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<ChangesQuery>,
) -> Result<Json<AssetAnswer>, ApiError> {
    answer(
        &st,
        AssetRequest::Changes {
            since_ms: q.since_ms.unwrap_or(0),
            until_ms: q.until_ms,
            cursor: q.cursor,
            limit: page_limit(q.limit, 1000)?,
        },
    )
}

/// The inventory routes.
pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(import))
        .routes(routes!(dups))
        .routes(routes!(show, patch))
        .routes(routes!(history))
        .routes(routes!(diff))
        .routes(routes!(changes))
}
