//! `/v1/jobs`: publish, the job cache, and each job's returns as
//! server-sent events.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::{Extension, Json};
use futures_util::Stream;
use protocol::{Jid, Target};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiJson, ApiQuery, ApiState, Caller, PageQuery, doc};
use crate::service::jobs::{
    ActiveJob, BatchSize, BatchSpec, JobEvent, JobView, KillReport, NewJob,
};
use crate::service::{Page, ServiceError, page_limit};
use store::JobSummary;
use store::access::Role;

/// How `target` is read, as Salt's `tgt_type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum TargetType {
    /// fnmatch glob on the minion id.
    #[default]
    Glob,
    /// Regular expression anchored at the start of the id.
    Pcre,
    /// Comma-separated ids.
    List,
    /// `key:sub:value` on stored facts.
    Grain,
    /// `G@ E@ L@ P@` words and globs with `and`, `or`, `not`.
    Compound,
}

impl TargetType {
    /// The target `expr` means under this type.
    pub fn target(self, expr: &str) -> Target {
        match self {
            TargetType::Glob => Target::Glob(expr.to_owned()),
            TargetType::Pcre => Target::Regex(expr.to_owned()),
            TargetType::List => Target::list_from(expr),
            TargetType::Grain => Target::Grain(expr.to_owned()),
            TargetType::Compound => Target::Compound(expr.to_owned()),
        }
    }
}

/// `POST /v1/jobs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct JobRequest {
    /// Target expression.
    pub target: String,
    /// How to read it (default `glob`).
    #[serde(default)]
    pub target_type: TargetType,
    /// Function.
    pub fun: String,
    /// Positional arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Keyword arguments.
    #[serde(default)]
    pub kwargs: BTreeMap<String, String>,
    /// Start the job on this many minions at a time (`10`) or this share
    /// of them (`25%`); the next starts when one returns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
    /// With `batch`: seconds to wait after a return before the next
    /// minion starts (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub batch_wait: Option<f64>,
    /// With `batch`: seconds to wait for a minion's return before its place
    /// goes to the next one, longer while it reports the job as running
    /// (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub timeout: Option<u64>,
}

/// The answer to `POST /v1/jobs`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobCreated {
    /// The job id.
    pub jid: Jid,
    /// Minions expected to return.
    pub expected: Vec<String>,
}

/// `GET /v1/jobs` parameters.
/// `GET /v1/jobs/{jid}/returns` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReturnsQuery {
    /// Seconds to wait for the next return before asking who still runs
    /// the job (default 5).
    pub timeout: Option<u64>,
}

/// The `done` event of a returns stream.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Done {
    /// Expected minions that did not return.
    pub missing: Vec<String>,
}

#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", request_body = JobRequest, responses((status = 201, description = "published", body = JobCreated), doc::BadRequest, doc::Refused, doc::BadBody, doc::Failed))]
pub(crate) async fn create(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<JobRequest>,
) -> Result<(StatusCode, Json<JobCreated>), ApiError> {
    caller.require(Role::Operator, "run jobs")?;
    let target = req.target_type.target(&req.target);
    target
        .matcher()
        .map_err(|e| ServiceError::Invalid(format!("target: {e}")))?;
    if req.fun.is_empty() {
        return Err(ServiceError::Unprocessable("fun must not be empty".into()).into());
    }
    let batch = match &req.batch {
        Some(size) => {
            let wait = req.batch_wait.unwrap_or(0.0);
            if !wait.is_finite() || !(0.0..=86_400.0).contains(&wait) {
                return Err(ServiceError::Unprocessable(format!(
                    "batch_wait {wait} is not a number of seconds from 0 to 86400"
                ))
                .into());
            }
            Some(BatchSpec {
                size: BatchSize::parse(size)?,
                wait: Duration::from_secs_f64(wait),
                timeout: Duration::from_secs(req.timeout.unwrap_or(5).max(1)),
            })
        }
        None if req.batch_wait.is_some() => {
            return Err(
                ServiceError::Unprocessable("batch_wait is only taken with batch".into()).into(),
            );
        }
        None => None,
    };
    let published = st
        .shared
        .jobs
        .publish(
            NewJob {
                target,
                fun: req.fun,
                args: req.args,
                kwargs: req.kwargs,
                user: caller.user.name.clone(),
                batch,
            },
            false,
            Some(&caller.user),
        )
        .await
        .inspect_err(|e| {
            if let ServiceError::Forbidden(why) = e {
                tracing::warn!(user = %caller.user.name, reason = %why, "refused a job: forbidden");
            }
        })?;
    st.shared.metrics.jobs_published.inc();
    Ok((
        StatusCode::CREATED,
        Json(JobCreated {
            jid: published.jid,
            expected: published.expected.into_iter().collect(),
        }),
    ))
}

#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(PageQuery), responses((status = 200, description = "the job cache, newest first (50 a page unless `limit` says otherwise); each job with how many minions it expects, not their names (those are in `GET /v1/jobs/{jid}`)", body = Page<JobSummary>), doc::BadRequest, doc::Refused, doc::Failed))]
async fn list(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Page<JobSummary>>, ApiError> {
    let limit = page_limit(q.limit, 50)?;
    Ok(Json(st.shared.jobs.list(q.cursor.as_deref(), limit)?))
}

#[utoipa::path(get, path = "/v1/jobs/{jid}", tag = "jobs", params(("jid" = String, Path, description = "job id")), responses((status = 200, description = "the job and its returns", body = JobView), doc::BadRequest, doc::Refused, doc::NotFound, doc::Failed))]
async fn show(
    State(st): State<ApiState>,
    Path(jid): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(st.shared.jobs.show(&jid)?))
}

#[utoipa::path(get, path = "/v1/jobs/active", tag = "jobs", responses((status = 200, description = "jobs a minion reports as running, just published, or with batch minions still to start, oldest first", body = Vec<ActiveJob>), doc::Refused, doc::Failed))]
async fn active(State(st): State<ApiState>) -> Result<Json<Vec<ActiveJob>>, ApiError> {
    Ok(Json(st.shared.jobs.active()?))
}

#[utoipa::path(delete, path = "/v1/jobs/{jid}", tag = "jobs", params(("jid" = String, Path, description = "job id")), responses((status = 200, description = "the job was killed on the minions still running it (each kills its process group and returns that it was killed); a batch starts no more minions", body = KillReport), doc::BadRequest, doc::Refused, doc::NotFound, doc::Conflict, doc::Failed))]
async fn kill(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(jid): Path<String>,
) -> Result<Json<KillReport>, ApiError> {
    caller.require(Role::Operator, "kill jobs")?;
    Ok(Json(st.shared.jobs.kill(&jid, &caller.user).await?))
}

/// One server-sent event of `GET /v1/jobs/{jid}/returns`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // describes the wire format; the stream is built by axum
struct ReturnsEvent {
    /// `ret` for a return, `done` once the job is complete or timed out.
    #[schema(pattern = "^(ret|done)$")]
    event: String,
    /// JSON: a `JobReturn` for `ret`, `{"missing": [minion ids]}` for `done`.
    #[schema(content_media_type = "application/json")]
    data: String,
}

fn sse_event(ev: JobEvent) -> Event {
    let (name, data) = match ev {
        JobEvent::Return(ret) => ("ret", Ok(ret.json.to_string())),
        JobEvent::Done { missing } => ("done", serde_json::to_string(&Done { missing })),
    };
    Event::default()
        .event(name)
        .data(data.unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")))
}

#[utoipa::path(get, path = "/v1/jobs/{jid}/returns", tag = "jobs", params(("jid" = String, Path, description = "job id"), ReturnsQuery), responses((status = 200, description = "server-sent events: `ret` (a JobReturn) for each return, then `done` ({missing})", content_type = "text/event-stream", body = ReturnsEvent), doc::BadRequest, doc::Refused, doc::NotFound, doc::Failed))]
pub(crate) async fn returns(
    State(st): State<ApiState>,
    Path(jid): Path<String>,
    ApiQuery(q): ApiQuery<ReturnsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let rx = st
        .shared
        .jobs
        .subscribe(&jid, q.timeout.unwrap_or(5), st.cancel.clone())?;
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let ev = rx.recv().await?;
        Some((Ok(sse_event(ev)), rx))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The job routes.
pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(active))
        .routes(routes!(show, kill))
        .routes(routes!(returns))
}
