//! `/v1/ssh`: jobs over SSH on the hosts of the roster, and re-pinning a
//! host's key. A job's returns are read like any job's, from
//! `/v1/jobs/{jid}` and `/v1/jobs/{jid}/returns`.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use protocol::{Jid, Target};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiJson, ApiState, Caller, doc};
use crate::service::ServiceError;
use crate::service::ssh::{HostKeyPinned, NewSshJob};
use store::access::Role;

/// How `target` is read over roster ids.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(utoipa::ToSchema)]
pub enum SshTargetType {
    /// fnmatch glob on the roster id.
    #[default]
    Glob,
    /// Regular expression anchored at the start of the id.
    Pcre,
    /// Comma-separated ids.
    List,
}

impl SshTargetType {
    /// The target `expr` means under this type.
    pub fn target(self, expr: &str) -> Target {
        match self {
            SshTargetType::Glob => Target::Glob(expr.to_owned()),
            SshTargetType::Pcre => Target::Regex(expr.to_owned()),
            SshTargetType::List => Target::list_from(expr),
        }
    }
}

/// `POST /v1/ssh/jobs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::ToSchema)]
pub struct SshJobRequest {
    /// Target expression over roster ids.
    pub target: String,
    /// How to read it (default `glob`).
    #[serde(default)]
    pub target_type: SshTargetType,
    /// `test.ping`, `collect` (or `grains.items`), `cmd.run` or `cmd.run_all`.
    pub fun: String,
    /// Positional arguments (the command of `cmd.run`).
    #[serde(default)]
    pub args: Vec<String>,
    /// Keyword arguments (none are taken over SSH).
    #[serde(default)]
    pub kwargs: BTreeMap<String, String>,
    /// Seconds each host's session may take, login included (default: the
    /// roster entry's `timeout`, else `[ssh] timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub timeout: Option<u64>,
}

/// The answer to `POST /v1/ssh/jobs`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SshJobCreated {
    /// The job id.
    pub jid: Jid,
    /// Roster ids that will return.
    pub expected: Vec<String>,
    /// Roster entries matched that the job cannot run on (an id that is not
    /// a valid minion id), with why; also kept with the job.
    pub refused: BTreeMap<String, String>,
}

#[utoipa::path(post, path = "/v1/ssh/jobs", tag = "ssh", request_body = SshJobRequest, responses((status = 201, description = "started: each host's result arrives as a return of the job (`GET /v1/jobs/{jid}/returns`)", body = SshJobCreated), doc::BadRequest, doc::Refused, doc::Conflict, doc::BadBody, doc::Failed))]
async fn create(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<SshJobRequest>,
) -> Result<(StatusCode, Json<SshJobCreated>), ApiError> {
    caller.require(Role::Operator, "run jobs")?;
    if req.timeout == Some(0) {
        return Err(ServiceError::Unprocessable("timeout must be at least 1 second".into()).into());
    }
    let started = st
        .shared
        .ssh
        .start(
            &st.shared,
            NewSshJob {
                target: req.target_type.target(&req.target),
                fun: req.fun,
                args: req.args,
                kwargs: req.kwargs,
                user: caller.user.name.clone(),
                timeout: req.timeout,
            },
            Some(&caller.user),
            &st.cancel,
        )
        .inspect_err(|e| {
            if let ServiceError::Forbidden(why) = e {
                tracing::warn!(user = %caller.user.name, reason = %why, "refused a job over SSH: forbidden");
            }
        })?;
    st.shared.metrics.jobs_published.inc();
    Ok((
        StatusCode::CREATED,
        Json(SshJobCreated {
            jid: started.jid,
            expected: started.expected.into_iter().collect(),
            refused: started.refused,
        }),
    ))
}

#[utoipa::path(post, path = "/v1/ssh/hostkeys/{id}/accept", tag = "ssh", params(("id" = String, Path, description = "roster id")), responses((status = 200, description = "the host's pinned key was forgotten and the key it offers now is pinned", body = HostKeyPinned), doc::Refused, doc::NotFound, doc::Conflict, doc::Unavailable, doc::Failed))]
async fn accept_hostkey(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<HostKeyPinned>, ApiError> {
    caller.require(Role::Operator, "pin SSH host keys")?;
    Ok(Json(
        st.shared
            .ssh
            .accept_new_hostkey(&id, Some(&caller.user))
            .await?,
    ))
}

/// The SSH routes.
pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(accept_hostkey))
}
