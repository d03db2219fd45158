//! `GET /v1/events`: the master's event bus as server-sent events.

use std::convert::Infallible;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiQuery, ApiState, doc};
use crate::events::BusEvent;
use crate::service::ServiceError;

/// `GET /v1/events` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events whose tag matches this glob (`cmdb/job/*`,
    /// `cmdb/presence/*`); default: every event.
    pub tag: Option<String>,
}

/// One server-sent event of `GET /v1/events`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // describes the wire format; the stream is built by axum
struct EventsItem {
    /// A `BusEvent` as JSON.
    #[schema(content_media_type = "application/json")]
    data: String,
}

fn sse(ev: &BusEvent) -> Event {
    Event::default().data(serde_json::to_string(ev).unwrap_or_default())
}

#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventsQuery), responses((status = 200, description = "server-sent events, each a BusEvent (`tag`, `time_ms`, `data`) as JSON; `cmdb/lagged` when a slow reader missed some", content_type = "text/event-stream", body = EventsItem), doc::BadRequest, doc::Refused, doc::Failed))]
async fn events(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let pattern = q.tag.unwrap_or_else(|| "*".into());
    let pattern = protocol::fnmatch::compile(&pattern, false)
        .map_err(|e| ServiceError::Invalid(format!("tag {pattern:?}: {e}")))?;
    let rx = st.shared.events.subscribe();
    let cancel = st.cancel.clone();
    let stream = futures_util::stream::unfold(
        (rx, pattern, cancel),
        |(mut rx, pattern, cancel)| async move {
            loop {
                let got = tokio::select! {
                    _ = cancel.cancelled() => return None,
                    got = rx.recv() => got,
                };
                match got {
                    Ok(ev) if pattern.is_match(&ev.tag) => {
                        return Some((Ok(sse(&ev)), (rx, pattern, cancel)));
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(missed)) => {
                        let ev = BusEvent {
                            tag: "cmdb/lagged".into(),
                            time_ms: crate::server::now_ms(),
                            data: serde_json::json!({ "missed": missed }),
                        };
                        return Some((Ok(sse(&ev)), (rx, pattern, cancel)));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The event routes.
pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(events))
}
