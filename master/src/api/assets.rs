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
use crate::service::inventory::{AssetView, ChangeFeedEntry, DiffView, HistoryView};
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
    /// Only assets this query selects: comparisons on any path
    /// (`facts.os = Debian`, `finance.warranty_end < 2027-01-01`,
    /// `facts.mem_total_bytes >= 64G`, `status in (active, maintenance)`,
    /// `name ~ 'web*'`) joined with `and`, `or`, `not` and parentheses; a
    /// bare name is looked up under facts, then manual, then finance.
    pub q: Option<String>,
    /// Only these paths of each asset's facts, manual, finance and
    /// relations, comma-separated (`os,facts.num_cpus,department`); the
    /// asset's id, kind, name, status and other top fields always come.
    pub fields: Option<String>,
    /// Every asset as it was at this time (a date, a date and time, or
    /// unix milliseconds); assets created later are left out.
    pub at: Option<String>,
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
    /// Only changes of the assets this query selects, as they are now (the
    /// language of `GET /v1/assets?q=`).
    pub q: Option<String>,
    /// At most this many (1 to 1000, default 1000).
    pub limit: Option<usize>,
    /// The `next` of the previous page.
    pub cursor: Option<String>,
}

/// `PATCH /v1/assets/{ref}`: fields, relations and a status transition,
/// in one versioned change.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct AssetPatch {
    /// Fields by name: manual ones (`name`, `site`, `rack`, `rack_unit`,
    /// `owner`, `department`, `business_line`, `asset_tag`, `notes`,
    /// `serial`, configured extras), finance ones (`vendor`,
    /// `purchase_date`, `purchase_cost`, `currency`, `warranty_end`,
    /// `depreciation_years`), `kind`, and relations (`runs_on`,
    /// `located_in`, `connected_to`: asset references, several as a list
    /// or separated by commas). Null or an empty text removes the field.
    #[serde(default)]
    pub fields: BTreeMap<String, serde_json::Value>,
    /// Manual fields as text (the same as giving them in `fields`).
    #[serde(default)]
    pub manual: BTreeMap<String, String>,
    /// New operator status.
    pub status: Option<String>,
}

/// `POST /v1/assets`: an asset entered by hand.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct NewAsset {
    /// Its kind: `server`, `vm`, `container_host`, `switch`, `router`,
    /// `firewall`, `load_balancer`, `storage`, `pdu`, `rack`, `site`,
    /// `patch_panel`, `other` or a configured one.
    pub kind: String,
    /// Fields by name, as for `PATCH /v1/assets/{key}`.
    #[serde(default)]
    pub fields: BTreeMap<String, serde_json::Value>,
    /// Its status (default `active`; `planned` for one not delivered yet).
    pub status: Option<String>,
}

/// `POST /v1/assets/import`: a spreadsheet, CSV or XLSX (one of them).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct ImportRequest {
    /// A CSV file's text (header row first).
    pub csv: Option<String>,
    /// An XLSX file, base64 (its first sheet is read; formulas are never
    /// evaluated, their cached values are used).
    pub xlsx: Option<String>,
    /// Only report what would change; write nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// `GET /v1/assets/export` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `csv`, `xlsx` or `json` (default csv).
    pub format: Option<String>,
    /// Only assets this query selects (as for `GET /v1/assets`).
    pub q: Option<String>,
    /// The fact columns, comma-separated keys (default: host, fqdn, os,
    /// osrelease, manufacturer, productname, uuid, virtual, cpu_model,
    /// num_cpus, mem_total_bytes, ipv4).
    pub facts: Option<String>,
    /// Every asset as it was at this time.
    pub at: Option<String>,
}

/// `GET /v1/reports/audit` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// The year.
    pub year: i32,
    /// `department`, `business_line` or `site` (default department).
    pub group_by: Option<String>,
    /// `json`, `csv` or `xlsx` (default json).
    pub format: Option<String>,
}

fn answer(st: &ApiState, req: AssetRequest) -> Result<Json<AssetAnswer>, ApiError> {
    Ok(Json(handle(&st.shared, req)?))
}

#[utoipa::path(get, path = "/v1/assets", tag = "assets", params(ListQuery), responses((status = 200, description = "assets by asset id, or in the order `sort` asks", body = Page<AssetView>), doc::BadRequest, doc::Refused, doc::Failed))]
async fn list(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    if q.grain.is_none() && q.fields.is_none() && q.at.is_none() && q.sort.is_none() {
        let body = crate::service::inventory::whole_assets_json(
            &st.shared,
            q.q.as_deref(),
            q.cursor.as_deref(),
            page_limit(q.limit, 100)?,
        )?;
        return Ok((
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response());
    }
    answer(
        &st,
        AssetRequest::List {
            grain: q.grain,
            q: q.q,
            fields: q.fields,
            at: q.at,
            sort: q.sort,
            cursor: q.cursor,
            limit: page_limit(q.limit, 100)?,
        },
    )
    .map(IntoResponse::into_response)
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
pub(crate) async fn patch(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(key): Path<String>,
    headers: HeaderMap,
    ApiJson(p): ApiJson<AssetPatch>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator, "change assets")?;
    let mut fields = p.fields;
    for (k, v) in p.manual {
        fields.insert(k, serde_json::Value::String(v));
    }
    let answer = handle(
        &st.shared,
        AssetRequest::Patch {
            key,
            fields,
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

#[utoipa::path(post, path = "/v1/assets", tag = "assets", request_body = NewAsset, responses((status = 201, description = "the new asset", body = AssetView, headers(("ETag" = String, description = "its version"))), doc::BadRequest, doc::Refused, doc::Conflict, doc::BadBody, doc::Failed))]
async fn add(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiJson(new): ApiJson<NewAsset>,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator, "enter assets")?;
    let answer = handle(
        &st.shared,
        AssetRequest::Add {
            kind: new.kind,
            fields: new.fields,
            status: new.status,
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
            || format!("cmdb/asset/{}/created", a.asset_id.as_str()),
            &ev,
        );
    }
    let mut resp = with_etag(answer);
    *resp.status_mut() = axum::http::StatusCode::CREATED;
    Ok(resp)
}

#[utoipa::path(post, path = "/v1/assets/import", tag = "assets", request_body = ImportRequest, responses((status = 200, description = "what the import did, or would do in a dry run", body = crate::service::sheets::ImportSummary), doc::BadRequest, doc::Refused, doc::Conflict, doc::Precondition, doc::BadBody, doc::Failed))]
async fn import(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<ImportRequest>,
) -> Result<Json<crate::service::sheets::ImportSummary>, ApiError> {
    use base64::Engine;
    caller.require(Role::Operator, "import assets")?;
    let table = match (req.csv, req.xlsx) {
        (Some(csv), None) => inventory::sheet::read_csv(csv.as_bytes()),
        (None, Some(b64)) => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| {
                    ApiError(ServiceError::Unprocessable(format!(
                        "xlsx: not base64 ({e})"
                    )))
                })?;
            inventory::sheet::read_xlsx(&bytes)
        }
        _ => {
            return Err(ApiError(ServiceError::Unprocessable(
                "give one file: csv (its text) or xlsx (base64)".into(),
            )));
        }
    }
    .map_err(|e| ApiError(ServiceError::Unprocessable(e.to_string())))?;
    let shared = st.shared.clone();
    let user = caller.user.name.clone();
    let summary = tokio::task::spawn_blocking(move || {
        crate::service::sheets::import(&shared, &table, &user, req.dry_run)
    })
    .await
    .map_err(|e| ApiError(ServiceError::Unavailable(format!("import failed: {e}"))))??;
    Ok(Json(summary))
}

/// A file to download: its bytes, type and name.
fn download(bytes: Vec<u8>, content_type: &str, name: &str) -> Response {
    let mut resp = bytes.into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// A table as CSV or XLSX, or `None` for another format.
fn table_file(
    format: &str,
    sheet: &str,
    headers: &[String],
    rows: &[Vec<inventory::sheet::Cell>],
) -> Result<Option<Response>, ApiError> {
    Ok(match format {
        "csv" => Some(download(
            inventory::sheet::write_csv(headers, rows),
            "text/csv; charset=utf-8",
            &format!("{sheet}.csv"),
        )),
        "xlsx" => Some(download(
            inventory::sheet::write_xlsx(sheet, headers, rows)
                .map_err(|e| ApiError(ServiceError::Unavailable(e.to_string())))?,
            XLSX,
            &format!("{sheet}.xlsx"),
        )),
        _ => None,
    })
}

#[utoipa::path(get, path = "/v1/assets/export", tag = "assets", params(ExportQuery), responses((status = 200, description = "the assets as a spreadsheet: CSV (text/csv), XLSX, or a JSON array of assets", content((String = "text/csv"), (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"), (Vec<AssetView> = "application/json"))), doc::BadRequest, doc::Refused, doc::Failed))]
pub(crate) async fn export(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let format = q.format.unwrap_or_else(|| "csv".into());
    if !matches!(format.as_str(), "csv" | "xlsx" | "json") {
        return Err(ApiError(ServiceError::Invalid(format!(
            "format {format:?}: give csv, xlsx or json"
        ))));
    }
    let facts: Vec<String> = match &q.facts {
        Some(f) => f
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(|f| f.strip_prefix("facts.").unwrap_or(f).to_owned())
            .collect(),
        None => crate::service::sheets::DEFAULT_FACTS
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
    };
    let shared = st.shared.clone();
    let (q_text, at) = (q.q, q.at);
    let json = format == "json";
    let export = tokio::task::spawn_blocking(move || {
        crate::service::sheets::export(&shared, q_text.as_deref(), at.as_deref(), &facts, json)
    })
    .await
    .map_err(|e| ApiError(ServiceError::Unavailable(format!("export failed: {e}"))))??;
    if json {
        return Ok(Json(export.assets).into_response());
    }
    table_file(&format, "assets", &export.columns, &export.rows)?
        .ok_or_else(|| ApiError(ServiceError::Invalid(format!("format {format:?}"))))
}

#[utoipa::path(get, path = "/v1/reports/audit", tag = "reports", params(AuditQuery), responses((status = 200, description = "the year-end audit: per group, assets by kind and status, purchase cost, book value at year end, depreciation, assets bought and retired in the year, warranties ending the next year; as JSON, CSV or XLSX", content((inventory::audit::AuditReport = "application/json"), (String = "text/csv"), (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))), doc::BadRequest, doc::Refused, doc::Failed))]
pub(crate) async fn audit(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Response, ApiError> {
    let format = q.format.unwrap_or_else(|| "json".into());
    if !matches!(format.as_str(), "csv" | "xlsx" | "json") {
        return Err(ApiError(ServiceError::Invalid(format!(
            "format {format:?}: give json, csv or xlsx"
        ))));
    }
    let shared = st.shared.clone();
    let group_by = q.group_by.unwrap_or_else(|| "department".into());
    let year = q.year;
    let report = tokio::task::spawn_blocking(move || {
        crate::service::inventory::audit(&shared, year, &group_by)
    })
    .await
    .map_err(|e| ApiError(ServiceError::Unavailable(format!("audit failed: {e}"))))??;
    if format == "json" {
        return Ok(Json(report).into_response());
    }
    let (headers, rows) = report.table();
    let rows: Vec<Vec<inventory::sheet::Cell>> = rows
        .iter()
        .map(|r| r.iter().map(inventory::sheet::to_cell).collect())
        .collect();
    table_file(&format, &format!("audit-{year}"), &headers, &rows)?
        .ok_or_else(|| ApiError(ServiceError::Invalid(format!("format {format:?}"))))
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
            q: q.q,
            cursor: q.cursor,
            limit: page_limit(q.limit, 1000)?,
        },
    )
}

/// The inventory routes.
pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list, add))
        .routes(routes!(import))
        .routes(routes!(export))
        .routes(routes!(audit))
        .routes(routes!(dups))
        .routes(routes!(show, patch))
        .routes(routes!(history))
        .routes(routes!(diff))
        .routes(routes!(changes))
}
