//! The UI's pages. Reads call the services the API's handlers call; every
//! write calls the API's own handler with the session's user as caller.

use std::collections::BTreeMap;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::session::{self, LOGIN_COOKIE, SESSION_COOKIE, SESSION_SECS};
use super::{Login, view};
use crate::api::{ApiError, ApiJson, ApiQuery, ApiState, Caller};
use crate::server::now_ms;
use crate::service::ServiceError;
use crate::service::inventory::{AssetAnswer, AssetRequest, AssetView, handle};
use store::access::Role;

/// Rows on a page of the assets list.
const ASSET_ROWS: usize = 50;
/// The facts, manual and finance paths the assets list shows.
const LIST_FIELDS: &str =
    "host,os,osrelease,num_cpus,mem_total_bytes,ipv4,site,rack,department,owner";

/// Any serialisable value for a template.
fn ser<T: Serialize>(v: T) -> minijinja::Value {
    minijinja::Value::from(minijinja::value::Serde(v))
}

/// What every page's frame needs: who is logged in, what they may do,
/// the CSRF token and the current section.
fn frame(caller: &Caller, login: &Login, nav: &str) -> minijinja::Value {
    context! {
        me => context! { name => caller.user.name.clone(), role => caller.user.role.as_str() },
        can_write => caller.user.role >= Role::Operator,
        is_admin => caller.user.role >= Role::Admin,
        csrf => login.csrf.clone(),
        nav => nav,
    }
}

/// An error page with the status and what went wrong.
pub fn error_page(
    st: &ApiState,
    who: Option<(&Caller, &Login)>,
    status: StatusCode,
    detail: &str,
) -> Response {
    let base = who
        .map(|(c, l)| frame(c, l, ""))
        .unwrap_or_else(|| context! {});
    st.ui.render(
        status,
        "error.html",
        context! {
        status => status.as_u16(),
        title => status.canonical_reason().unwrap_or("Error"),
        detail => detail, ..base },
    )
}

/// A service error as an error page.
fn failed(st: &ApiState, caller: &Caller, login: &Login, e: ServiceError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    error_page(st, Some((caller, login)), status, &e.to_string())
}

/// Runs a blocking service call off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ServiceError::Unavailable(format!("the page's work failed: {e}")))?
}

/// A form body's fields.
fn form(body: &Bytes) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A redirect after a POST (303: the browser GETs the page).
fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// A path segment, percent-encoded.
fn seg(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|e| e.trim_start_matches('=').replace('+', "%20"))
        .unwrap_or_default()
}

/// A page that does not exist.
pub async fn not_found(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Extension(login): Extension<Login>,
    uri: axum::http::Uri,
) -> Response {
    error_page(
        &st,
        Some((&caller, &login)),
        StatusCode::NOT_FOUND,
        &format!("There is no page {}.", uri.path()),
    )
}

// ---------------------------------------------------------------- login

/// `GET /ui/login` parameters.
#[derive(Debug, Default, Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

/// Where to go after login: only a path under `/ui` of this site.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if (n == "/ui" || n.starts_with("/ui/") || n.starts_with("/ui?"))
                && !n.contains("//")
                && !n.contains('\\') =>
        {
            n.to_owned()
        }
        _ => "/ui".to_owned(),
    }
}

fn login_page(st: &ApiState, status: StatusCode, next: &str, error: Option<&str>) -> Response {
    let Some(token) = session::random_token() else {
        return error_page(st, None, StatusCode::SERVICE_UNAVAILABLE, "no randomness");
    };
    let mut resp = st.ui.render(
        status,
        "login.html",
        context! { csrf => token.clone(), next => next, error => error },
    );
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(LOGIN_COOKIE, &token, 3600)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

/// The login form.
pub async fn login_form(State(st): State<ApiState>, ApiQuery(q): ApiQuery<LoginQuery>) -> Response {
    login_page(&st, StatusCode::OK, &safe_next(q.next.as_deref()), None)
}

/// Checks a name and password; on success a new session (a session id
/// the browser brought is never kept).
pub async fn login(
    State(st): State<ApiState>,
    peer: Option<Extension<std::net::SocketAddr>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = form(&body);
    let next = safe_next(field(&fields, "next"));
    let expected = session::cookie(&headers, LOGIN_COOKIE);
    let given = field(&fields, "csrf");
    if !matches!((expected.as_deref(), given), (Some(e), Some(g)) if session::same(e, g)) {
        return login_page(
            &st,
            StatusCode::FORBIDDEN,
            &next,
            Some("The form's CSRF token is missing or wrong; try again."),
        );
    }
    let name = field(&fields, "user").unwrap_or_default().trim().to_owned();
    let password = field(&fields, "password").unwrap_or_default().to_owned();
    let addr = peer
        .map(|Extension(a)| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    if let Some(secs) = st.ui.sessions.locked_for(&name, &addr) {
        tracing::warn!(user = %name, peer = %addr, "refused a UI login: too many failures");
        return login_page(
            &st,
            StatusCode::TOO_MANY_REQUESTS,
            &next,
            Some(&format!(
                "Too many failed logins for this user or address; try again in {} minutes.",
                (secs + 59) / 60
            )),
        );
    }
    let shared = st.shared.clone();
    let who = name.clone();
    let user = blocking(move || shared.users.login(&who, &password)).await;
    match user {
        Ok(Some(user)) => {
            st.ui.sessions.succeeded(&user.name);
            if let Some(old) = session::cookie(&headers, SESSION_COOKIE) {
                st.ui.sessions.end(&old);
            }
            let Some((id, _)) = st.ui.sessions.start(&user.name) else {
                return error_page(
                    &st,
                    None,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "no session could be made",
                );
            };
            tracing::info!(user = %user.name, peer = %addr, "UI login");
            let mut resp = see_other(&next);
            let h = resp.headers_mut();
            for c in [
                session::set_cookie(SESSION_COOKIE, &id, SESSION_SECS),
                session::set_cookie(LOGIN_COOKIE, "", 0),
            ] {
                if let Ok(v) = HeaderValue::from_str(&c) {
                    h.append(header::SET_COOKIE, v);
                }
            }
            resp
        }
        Ok(None) => {
            st.ui.sessions.failed(&name, &addr);
            tracing::warn!(user = %name, peer = %addr, "refused a UI login: wrong name or password");
            login_page(
                &st,
                StatusCode::UNAUTHORIZED,
                &next,
                Some("Wrong user name or password."),
            )
        }
        Err(e) => login_page(
            &st,
            StatusCode::SERVICE_UNAVAILABLE,
            &next,
            Some(&e.to_string()),
        ),
    }
}

/// Ends the session.
pub async fn logout(State(st): State<ApiState>, headers: HeaderMap) -> Response {
    if let Some(id) = session::cookie(&headers, SESSION_COOKIE) {
        st.ui.sessions.end(&id);
    }
    let mut resp = see_other("/ui/login");
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(SESSION_COOKIE, "", 0)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

// ------------------------------------------------------------ dashboard

#[derive(Default)]
struct Counts {
    total: usize,
    status: BTreeMap<String, usize>,
    presence: BTreeMap<String, usize>,
    os: BTreeMap<String, usize>,
    kind: BTreeMap<String, usize>,
    site: BTreeMap<String, usize>,
}

fn label(v: Option<&Value>) -> String {
    match v.map(view::text) {
        Some(s) if !s.is_empty() => s,
        _ => "(none)".into(),
    }
}

/// The fleet by status, presence, OS, kind and site; recent changes.
pub async fn dashboard(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Extension(login): Extension<Login>,
) -> Response {
    let shared = st.shared.clone();
    let counted = blocking(move || {
        let filter = crate::service::inventory::Filter::new(None, None, Some("os,site"), None)?;
        let mut c = Counts::default();
        filter.scan(&shared, None, &mut |v| {
            c.total += 1;
            *c.status.entry(label(Some(&v.status))).or_default() += 1;
            *c.presence.entry(label(Some(&v.presence))).or_default() += 1;
            *c.os.entry(label(v.facts.get("os"))).or_default() += 1;
            *c.kind.entry(v.kind.clone()).or_default() += 1;
            *c.site.entry(label(v.manual.get("site"))).or_default() += 1;
            true
        })?;
        let recent = recent_changes(&shared, 25)?;
        Ok((c, recent))
    })
    .await;
    let (c, recent) = match counted {
        Ok(x) => x,
        Err(e) => return failed(&st, &caller, &login, e),
    };
    let charts = [
        ("Status", &c.status),
        ("Presence", &c.presence),
        ("Kind", &c.kind),
        ("Operating system", &c.os),
        ("Site", &c.site),
    ]
    .iter()
    .map(|(title, counts)| {
        let bars = view::bars(counts, 8);
        context! { title => *title, height => bars.len() * 20, bars => ser(&bars) }
    })
    .collect::<Vec<_>>();
    st.ui.render(
        StatusCode::OK,
        "dashboard.html",
        context! {
        total => c.total,
        charts => charts,
        names => ser(names_of(&st.shared, &recent)),
        recent => ser(&recent), ..frame(&caller, &login, "dashboard") },
    )
}

/// The names of the assets of some changes (from the asset index), by
/// asset id.
fn names_of(
    shared: &crate::server::Shared,
    items: &[crate::service::inventory::ChangeFeedEntry],
) -> BTreeMap<String, String> {
    items
        .iter()
        .filter_map(|e| {
            let entry = shared.index.get(&e.asset_id)?;
            let name = entry.root.get("name")?.as_str()?.to_owned();
            Some((e.asset_id.as_str().to_owned(), name))
        })
        .collect()
}

/// The newest `n` field changes of the fleet, newest first, read from the
/// shortest window (a minute, ten, an hour, a day, a week) that holds `n`;
/// each window reads at most `4 n` changes, so a burst (a fleet collect,
/// an import) costs no more than a quiet day.
fn recent_changes(
    shared: &crate::server::Shared,
    n: usize,
) -> Result<Vec<crate::service::inventory::ChangeFeedEntry>, ServiceError> {
    let now = now_ms();
    let mut items = Vec::new();
    for window_ms in [60_000_i64, 600_000, 3_600_000, 86_400_000, 7 * 86_400_000] {
        let AssetAnswer::Changes(page) = handle(
            shared,
            AssetRequest::Changes {
                since_ms: now - window_ms,
                until_ms: None,
                q: None,
                cursor: None,
                limit: n * 4,
            },
        )?
        else {
            break;
        };
        items = page.items;
        if items.len() >= n {
            break;
        }
    }
    let skip = items.len().saturating_sub(n);
    Ok(items.into_iter().skip(skip).rev().collect())
}

// --------------------------------------------------------------- assets

/// `GET /ui/assets` parameters.
#[derive(Debug, Default, Deserialize)]
pub struct AssetsQuery {
    q: Option<String>,
    sort: Option<String>,
    cursor: Option<String>,
}

/// A sortable column: its title, its sort key, and the link that sorts by
/// it (the other way when it is the current sort).
#[derive(Serialize)]
struct Column {
    title: &'static str,
    href: String,
    mark: &'static str,
}

fn assets_href(q: &str, sort: &str, cursor: Option<&str>) -> String {
    let mut params: Vec<(&str, &str)> = Vec::new();
    if !q.is_empty() {
        params.push(("q", q));
    }
    if !sort.is_empty() {
        params.push(("sort", sort));
    }
    if let Some(c) = cursor {
        params.push(("cursor", c));
    }
    let qs = serde_urlencoded::to_string(&params).unwrap_or_default();
    if qs.is_empty() {
        "/ui/assets".into()
    } else {
        format!("/ui/assets?{qs}")
    }
}

/// The assets list: the query box, sortable columns, pages, export and
/// saved views.
pub async fn assets(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Extension(login): Extension<Login>,
    ApiQuery(p): ApiQuery<AssetsQuery>,
) -> Response {
    let q = p.q.unwrap_or_default();
    // By name unless the list is asked for in another order.
    let sort = p.sort.unwrap_or_else(|| "name".into());
    let shared = st.shared.clone();
    let (q2, sort2, cursor) = (q.clone(), sort.clone(), p.cursor.clone());
    let listed = blocking(move || {
        handle(
            &shared,
            AssetRequest::List {
                grain: None,
                q: Some(q2).filter(|q| !q.trim().is_empty()),
                fields: Some(LIST_FIELDS.into()),
                at: None,
                sort: Some(sort2).filter(|s| !s.is_empty()),
                cursor,
                limit: ASSET_ROWS,
            },
        )
    })
    .await;
    let (rows, next, error) = match listed {
        Ok(AssetAnswer::Assets(page)) => (page.items, page.next, None),
        Ok(_) => (Vec::new(), None, None),
        Err(e @ ServiceError::Invalid(_)) => (Vec::new(), None, Some(e.to_string())),
        Err(e) => return failed(&st, &caller, &login, e),
    };
    let columns: Vec<Column> = [
        ("Name", "name"),
        ("Kind", "kind"),
        ("Status", "status"),
        ("Presence", "presence"),
        ("OS", "os"),
        ("CPUs", "facts.num_cpus"),
        ("Memory", "facts.mem_total_bytes"),
        ("Site", "site"),
        ("Department", "manual.department"),
        ("Serial", "serial"),
    ]
    .into_iter()
    .map(|(title, key)| {
        let (href_sort, mark) = if sort == key {
            (format!("-{key}"), " ▲")
        } else if sort.strip_prefix('-') == Some(key) {
            (key.to_owned(), " ▼")
        } else {
            (key.to_owned(), "")
        };
        Column {
            title,
            href: assets_href(&q, &href_sort, None),
            mark,
        }
    })
    .collect();
    let export = |format: &str| {
        let mut params = vec![("format", format)];
        if !q.trim().is_empty() {
            params.push(("q", q.as_str()));
        }
        format!(
            "/ui/assets/export?{}",
            serde_urlencoded::to_string(&params).unwrap_or_default()
        )
    };
    let views: Vec<(String, String)> = caller
        .user
        .views
        .iter()
        .map(|(name, query)| (name.clone(), format!("/ui/assets?{query}")))
        .collect();
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let next = next.as_deref().map(|n| assets_href(&q, &sort, Some(n)));
    let first = p.cursor.is_some().then(|| assets_href(&q, &sort, None));
    let (export_csv, export_xlsx) = (export("csv"), export("xlsx"));
    let view_query = serde_urlencoded::to_string(
        [("q", q.as_str()), ("sort", sort.as_str())]
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .collect::<Vec<_>>(),
    )
    .unwrap_or_default();
    st.ui.render(
        status,
        "assets.html",
        context! {
            q => q,
            sort => sort,
            error => error,
            rows => rows.iter().map(row).collect::<Vec<_>>(),
            columns => ser(&columns),
            next => next,
            first => first,
            export_csv => export_csv,
            export_xlsx => export_xlsx,
            views => ser(&views),
            view_query => view_query,
            ..frame(&caller, &login, "assets")
        },
    )
}

/// One row of the assets list.
fn row(v: &AssetView) -> minijinja::Value {
    let fact = |k: &str| v.facts.get(k).map(view::text).unwrap_or_default();
    let manual = |k: &str| v.manual.get(k).map(view::text).unwrap_or_default();
    context! {
        asset_id => v.asset_id.as_str(),
        minion => v.minion.clone(),
        name => v.name.clone().or_else(|| v.minion.clone()).unwrap_or_else(|| v.asset_id.as_str().to_owned()),
        kind => v.kind.clone(),
        status => view::text(&v.status),
        presence => view::text(&v.presence),
        os => [fact("os"), fact("osrelease")].iter().filter(|s| !s.is_empty()).cloned().collect::<Vec<_>>().join(" "),
        cpus => fact("num_cpus"),
        memory => v.facts.get("mem_total_bytes").and_then(Value::as_f64).map(view::bytes).unwrap_or_default(),
        site => manual("site"),
        department => manual("department"),
        serial => v.serial.clone().unwrap_or_default(),
    }
}

/// `GET /ui/assets/export` parameters.
#[derive(Debug, Default, Deserialize)]
pub struct ExportParams {
    format: Option<String>,
    q: Option<String>,
}

/// The assets list's view as CSV or XLSX (the API's export).
pub async fn export(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Extension(login): Extension<Login>,
    ApiQuery(p): ApiQuery<ExportParams>,
) -> Response {
    let query = crate::api::assets::ExportQuery {
        format: p.format,
        q: p.q.filter(|q| !q.trim().is_empty()),
        facts: None,
        at: None,
    };
    match crate::api::assets::export(State(st.clone()), ApiQuery(query)).await {
        Ok(resp) => resp,
        Err(ApiError(e)) => failed(&st, &caller, &login, e),
    }
}

/// Saves the current query and sort as a named view.
pub async fn save_view(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Extension(login): Extension<Login>,
    body: Bytes,
) -> Response {
    let fields = form(&body);
    let name = field(&fields, "name").unwrap_or_default().to_owned();
    let query = field(&fields, "query").unwrap_or_default().to_owned();
    let shared = st.shared.clone();
    let user = caller.user.name.clone();
    let q2 = query.clone();
    match blocking(move || shared.users.save_view(&user, &name, &q2)).await {
        Ok(()) => see_other(&format!("/ui/assets?{query}")),
        Err(e) => failed(&st, &caller, &login, e),
    }
}

/// Deletes a saved view.
pub async fn delete_view(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Extension(login): Extension<Login>,
    body: Bytes,
) -> Response {
    let fields = form(&body);
    let name = field(&fields, "name").unwrap_or_default().to_owned();
    let shared = st.shared.clone();
    let user = caller.user.name.clone();
    match blocking(move || shared.users.delete_view(&user, &name)).await {
        Ok(()) => see_other("/ui/assets"),
        Err(e) => failed(&st, &caller, &login, e),
    }
}

// ---------------------------------------------------------- asset detail

/// `GET /ui/assets/{key}` parameters.
#[derive(Debug, Default, Deserialize)]
pub struct AssetQuery {
    at: Option<String>,
    done: Option<String>,
    history: Option<String>,
}

/// One editable field: its name, section and value now.
#[derive(Serialize)]
struct EditField {
    name: String,
    value: String,
}

/// Entries of the history shown unless all are asked for.
const HISTORY_ROWS: usize = 50;

/// An asset: facts tree, fields (editable for operators), status
/// transitions, relations, history with diffs, and "as of" a date.
pub async fn asset(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Extension(login): Extension<Login>,
    Path(key): Path<String>,
    ApiQuery(p): ApiQuery<AssetQuery>,
) -> Response {
    asset_page(&st, &caller, &login, key, p, None).await
}

/// What an edit that was refused sends back to the page: why, and the
/// values as they were typed.
struct Refused {
    status: StatusCode,
    error: String,
    posted: BTreeMap<String, String>,
}

async fn asset_page(
    st: &ApiState,
    caller: &Caller,
    login: &Login,
    key: String,
    p: AssetQuery,
    refused: Option<Refused>,
) -> Response {
    let (st, caller, login) = (st.clone(), caller.clone(), login.clone());
    let shared = st.shared.clone();
    let at = p.at.clone().filter(|a| !a.trim().is_empty());
    let got = blocking(move || {
        let shown = handle(
            &shared,
            AssetRequest::Show {
                key: key.clone(),
                version: None,
                at,
            },
        )?;
        let history = handle(&shared, AssetRequest::History { key })?;
        let schema = crate::service::entry::schema(&shared)?;
        Ok((shown, history, schema))
    })
    .await;
    let (asset, history, schema) = match got {
        Ok((AssetAnswer::Asset(a), AssetAnswer::History(h), s)) => (a, h, s),
        Ok(_) => {
            return failed(
                &st,
                &caller,
                &login,
                ServiceError::Unavailable("unexpected answer".into()),
            );
        }
        Err(e) => return failed(&st, &caller, &login, e),
    };
    let posted = refused.as_ref().map(|r| &r.posted);
    let text_of = |section: &Value, name: &str| {
        posted
            .and_then(|p| p.get(name).cloned())
            .unwrap_or_else(|| section.get(name).map(view::text).unwrap_or_default())
    };
    let manual: Vec<EditField> = schema
        .manual_names()
        .map(|n| EditField {
            name: n.to_owned(),
            value: text_of(&asset.manual, n),
        })
        .collect();
    let finance: Vec<EditField> = schema
        .finance_names()
        .map(|n| EditField {
            name: n.to_owned(),
            value: text_of(&asset.finance, n),
        })
        .collect();
    let relations: Vec<EditField> = ["runs_on", "located_in", "connected_to"]
        .iter()
        .map(|n| EditField {
            name: (*n).to_owned(),
            value: match (posted.and_then(|p| p.get(*n)), asset.relations.get(*n)) {
                (Some(typed), _) => typed.clone(),
                (None, Some(Value::Array(a))) => {
                    a.iter().map(view::text).collect::<Vec<_>>().join(", ")
                }
                (None, Some(v)) => view::text(v),
                (None, None) => String::new(),
            },
        })
        .collect();
    let status = view::text(&asset.status);
    let transitions: Vec<String> = st
        .shared
        .cfg
        .inventory
        .transitions
        .get(&status)
        .cloned()
        .unwrap_or_default();
    let all_history = p.history.as_deref() == Some("all");
    let total = history.history.len();
    let entries: Vec<_> = history
        .history
        .iter()
        .rev()
        .take(if all_history {
            usize::MAX
        } else {
            HISTORY_ROWS
        })
        .collect();
    let versions: Vec<u64> = history.history.iter().map(|h| h.version).rev().collect();
    let id = asset.asset_id.as_str().to_owned();
    let historic = asset.version != asset.latest_version;
    let status_code = refused.as_ref().map_or(StatusCode::OK, |r| r.status);
    let refused_error = refused.map(|r| r.error);
    st.ui.render(
        status_code,
        "asset.html",
        context! {
        a => ser(&*asset),
        id => id.clone(),
        href => format!("/ui/assets/{}", seg(&id)),
        tree => ser(view::tree(&asset.facts)),
        manual => ser(&manual),
        finance => ser(&finance),
        relations => ser(&relations),
        status => status,
        transitions => transitions,
        history => ser(&entries),
        history_total => total,
        history_more => !all_history && total > HISTORY_ROWS,
        versions => versions,
        at => p.at.unwrap_or_default(),
        historic => historic,
        refused => refused_error,
        done => match p.done.as_deref() {
            Some("saved") => Some("Saved."),
            Some("unchanged") => Some("Nothing was changed: the values are the ones it had."),
            Some("status") => Some("The status was changed."),
            _ => None,
        }, ..frame(&caller, &login, "assets") },
    )
}

/// Saves the edited manual, finance and relation fields: only those that
/// differ from the version the form showed, with `If-Match` on that
/// version (someone else's change in between refuses the whole edit).
pub async fn edit_asset(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Extension(login): Extension<Login>,
    Path(key): Path<String>,
    body: Bytes,
) -> Response {
    let fields = form(&body);
    let Some(version) = field(&fields, "version").and_then(|v| v.parse::<u64>().ok()) else {
        return failed(
            &st,
            &caller,
            &login,
            ServiceError::Invalid("the form has no version".into()),
        );
    };
    let shared = st.shared.clone();
    let k = key.clone();
    let shown = blocking(move || {
        handle(
            &shared,
            AssetRequest::Show {
                key: k,
                version: Some(version),
                at: None,
            },
        )
    })
    .await;
    let asset = match shown {
        Ok(AssetAnswer::Asset(a)) => a,
        Ok(_) => return failed(&st, &caller, &login, ServiceError::NotFound(key)),
        Err(e) => return failed(&st, &caller, &login, e),
    };
    let mut changed: BTreeMap<String, Value> = BTreeMap::new();
    for (k, new) in &fields {
        let Some(name) = k.strip_prefix("f.") else {
            continue;
        };
        let old = [&asset.manual, &asset.finance, &asset.relations]
            .iter()
            .find_map(|s| s.get(name))
            .map(|v| match v {
                Value::Array(a) => a.iter().map(view::text).collect::<Vec<_>>().join(", "),
                other => view::text(other),
            })
            .unwrap_or_default();
        if new.trim() != old.trim() {
            let value = if new.trim().is_empty() {
                Value::Null
            } else {
                Value::String(new.trim().to_owned())
            };
            changed.insert(name.to_owned(), value);
        }
    }
    let id = asset.asset_id.as_str().to_owned();
    if changed.is_empty() {
        return see_other(&format!("/ui/assets/{}?done=unchanged", seg(&id)));
    }
    let typed: BTreeMap<String, String> = fields
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("f.").map(|n| (n.to_owned(), v.clone())))
        .collect();
    let patch = crate::api::assets::AssetPatch {
        fields: changed,
        manual: BTreeMap::new(),
        status: None,
    };
    match patch_if_match(&st, &caller, &id, version, patch).await {
        Ok(_) => see_other(&format!("/ui/assets/{}?done=saved", seg(&id))),
        Err(ApiError(
            e @ (ServiceError::Unprocessable(_)
            | ServiceError::Conflict(_)
            | ServiceError::Invalid(_)),
        )) => {
            let status =
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            let refused = Refused {
                status,
                error: format!(
                    "Nothing was saved: {e}. Your values are kept below; correct them and save again."
                ),
                posted: typed,
            };
            asset_page(
                &st,
                &caller,
                &login,
                id,
                AssetQuery::default(),
                Some(refused),
            )
            .await
        }
        Err(ApiError(ServiceError::PreconditionFailed(why))) => {
            lost_update(&st, &caller, &login, &why)
        }
        Err(ApiError(e)) => failed(&st, &caller, &login, e),
    }
}

/// Calls the API's `PATCH /v1/assets/{ref}` handler with `If-Match`.
async fn write_patch(
    st: &ApiState,
    caller: Caller,
    login: Login,
    id: &str,
    version: u64,
    patch: crate::api::assets::AssetPatch,
    done: &str,
) -> Response {
    match patch_if_match(st, &caller, id, version, patch).await {
        Ok(_) => see_other(&format!("/ui/assets/{}?done={done}", seg(id))),
        Err(ApiError(ServiceError::PreconditionFailed(why))) => {
            lost_update(st, &caller, &login, &why)
        }
        Err(ApiError(e)) => failed(st, &caller, &login, e),
    }
}

/// The API's `PATCH /v1/assets/{ref}` handler, called as `caller` with
/// `If-Match` on `version`.
async fn patch_if_match(
    st: &ApiState,
    caller: &Caller,
    id: &str,
    version: u64,
    patch: crate::api::assets::AssetPatch,
) -> Result<Response, ApiError> {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        headers.insert(header::IF_MATCH, v);
    }
    crate::api::assets::patch(
        State(st.clone()),
        Extension(caller.clone()),
        Path(id.to_owned()),
        headers,
        ApiJson(patch),
    )
    .await
}

/// The page for an edit refused because the asset changed after the form
/// was opened (a 412): nothing was saved.
fn lost_update(st: &ApiState, caller: &Caller, login: &Login, why: &str) -> Response {
    failed(
        st,
        caller,
        login,
        ServiceError::PreconditionFailed(format!(
            "{why}. Someone changed this asset after you opened it; nothing of your edit was saved. Open it again to see the change."
        )),
    )
}

/// Changes the status to one the current status allows.
pub async fn set_status(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Extension(login): Extension<Login>,
    Path(key): Path<String>,
    body: Bytes,
) -> Response {
    let fields = form(&body);
    let (Some(version), Some(status)) = (
        field(&fields, "version").and_then(|v| v.parse::<u64>().ok()),
        field(&fields, "status"),
    ) else {
        return failed(
            &st,
            &caller,
            &login,
            ServiceError::Invalid("the form needs a version and a status".into()),
        );
    };
    let patch = crate::api::assets::AssetPatch {
        fields: BTreeMap::new(),
        manual: BTreeMap::new(),
        status: Some(status.to_owned()),
    };
    write_patch(&st, caller, login, &key, version, patch, "status").await
}

/// `GET /ui/assets/{key}/diff` parameters.
#[derive(Debug, Default, Deserialize)]
pub struct DiffParams {
    from: Option<String>,
    to: Option<String>,
}

/// A version number from a form, or why not.
fn version_param(name: &str, v: Option<&str>) -> Result<Option<u64>, ServiceError> {
    match v.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(t) => t
            .parse()
            .map(Some)
            .map_err(|_| ServiceError::Invalid(format!("{name} {t:?}: give a version number"))),
    }
}

/// Two versions side by side: every field that differs, its value in
/// each.
pub async fn diff(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Extension(login): Extension<Login>,
    Path(key): Path<String>,
    ApiQuery(p): ApiQuery<DiffParams>,
) -> Response {
    let (from, to) = match (
        version_param("from", p.from.as_deref()),
        version_param("to", p.to.as_deref()),
    ) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return failed(&st, &caller, &login, e),
    };
    let shared = st.shared.clone();
    let got = blocking(move || {
        let d = handle(
            &shared,
            AssetRequest::Diff {
                key: key.clone(),
                from,
                to,
            },
        )?;
        let h = handle(&shared, AssetRequest::History { key: key.clone() })?;
        // The name the asset's own page is titled by.
        let shown = handle(
            &shared,
            AssetRequest::Show {
                key,
                version: None,
                at: None,
            },
        )?;
        Ok((d, h, shown))
    })
    .await;
    let (d, h, a) = match got {
        Ok((AssetAnswer::Diff(d), AssetAnswer::History(h), AssetAnswer::Asset(a))) => (d, h, a),
        Ok(_) => {
            return failed(
                &st,
                &caller,
                &login,
                ServiceError::Unavailable("unexpected answer".into()),
            );
        }
        Err(e) => return failed(&st, &caller, &login, e),
    };
    let when = |v: u64| {
        h.history
            .iter()
            .rev()
            .find(|e| e.version <= v)
            .map(|e| view::format_ms(e.at_ms))
            .unwrap_or_default()
    };
    let id = d.asset_id.as_str().to_owned();
    let versions: Vec<u64> = h.history.iter().map(|e| e.version).rev().collect();
    st.ui.render(
        StatusCode::OK,
        "diff.html",
        context! {
        id => id.clone(),
        href => format!("/ui/assets/{}", seg(&id)),
        name => a.name.clone().or_else(|| h.minion.clone()).unwrap_or_else(|| id.clone()),
        from => d.from,
        to => d.to,
        from_at => when(d.from),
        to_at => when(d.to),
        changes => ser(&d.changes),
        versions => versions, ..frame(&caller, &login, "assets") },
    )
}

// ----------------------------------------------------------------- keys

/// Minion keys by state with fingerprints (admins).
pub async fn keys(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Extension(login): Extension<Login>,
) -> Response {
    if let Err(ApiError(e)) = caller.require(Role::Admin, "manage keys") {
        return failed(&st, &caller, &login, e);
    }
    let pki = st.shared.pki.clone();
    match blocking(move || crate::service::keys::list(pki.as_ref())).await {
        Ok(mut all) => {
            all.sort_by(|a, b| {
                let rank = |s: &str| match s {
                    "pending" => 0,
                    "accepted" => 1,
                    "rejected" => 2,
                    _ => 3,
                };
                rank(&a.state)
                    .cmp(&rank(&b.state))
                    .then_with(|| a.id.cmp(&b.id))
            });
            let keys: Vec<_> = all
                .iter()
                .map(|k| {
                    context! {
                        id => k.id.clone(),
                        state => k.state.clone(),
                        fingerprint => k.fingerprint.clone(),
                        acts => ser(key_acts(&k.state)),
                        seg => seg(&k.id),
                    }
                })
                .collect();
            st.ui.render(
                StatusCode::OK,
                "keys.html",
                context! { keys => keys, ..frame(&caller, &login, "keys") },
            )
        }
        Err(e) => failed(&st, &caller, &login, e),
    }
}

/// What may be done with a key in `state`.
fn key_acts(state: &str) -> &'static [&'static str] {
    match state {
        "pending" => &["accept", "reject", "delete"],
        "accepted" => &["reject", "delete"],
        "rejected" => &["accept", "delete"],
        _ => &["delete"],
    }
}

/// `/ui/keys/{id}/{act}` confirmation parameters.
#[derive(Debug, Default, Deserialize)]
pub struct KeyParams {
    state: Option<String>,
}

/// Asks to confirm an accept, reject or delete, showing the fingerprint.
pub async fn confirm_key(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Extension(login): Extension<Login>,
    Path((id, act)): Path<(String, String)>,
    ApiQuery(p): ApiQuery<KeyParams>,
) -> Response {
    if let Err(ApiError(e)) = caller.require(Role::Admin, "manage keys") {
        return failed(&st, &caller, &login, e);
    }
    let pki = st.shared.pki.clone();
    let all = match blocking(move || crate::service::keys::list(pki.as_ref())).await {
        Ok(all) => all,
        Err(e) => return failed(&st, &caller, &login, e),
    };
    let state = p.state.unwrap_or_else(|| "pending".into());
    let Some(key) = all.iter().find(|k| k.id == id && k.state == state) else {
        return failed(
            &st,
            &caller,
            &login,
            ServiceError::NotFound(format!("no {state} key of {id}")),
        );
    };
    if !key_acts(&key.state).contains(&act.as_str()) {
        return failed(
            &st,
            &caller,
            &login,
            ServiceError::Invalid(format!("a {} key cannot be {act}ed", key.state)),
        );
    }
    st.ui.render(
        StatusCode::OK,
        "confirm.html",
        context! {
        id => id.clone(),
        seg => seg(&id),
        act => act,
        state => key.state.clone(),
        fingerprint => key.fingerprint.clone(), ..frame(&caller, &login, "keys") },
    )
}

/// Accepts, rejects or deletes a key through the API's handlers.
pub async fn key_action(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Extension(login): Extension<Login>,
    Path((id, act)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let fields = form(&body);
    let state = field(&fields, "state").unwrap_or("pending");
    let widen = crate::service::keys::Widen {
        include_rejected: state == "rejected",
        include_denied: false,
        include_accepted: state == "accepted",
        force: false,
    };
    let done = match act.as_str() {
        "accept" => crate::api::keys::accept(
            State(st.clone()),
            Extension(caller.clone()),
            Path(id.clone()),
            ApiQuery(widen),
        )
        .await
        .map(|_| ()),
        "reject" => crate::api::keys::reject(
            State(st.clone()),
            Extension(caller.clone()),
            Path(id.clone()),
            ApiQuery(widen),
        )
        .await
        .map(|_| ()),
        "delete" => crate::api::keys::delete(
            State(st.clone()),
            Extension(caller.clone()),
            Path(id.clone()),
        )
        .await
        .map(|_| ()),
        other => Err(ApiError(ServiceError::NotFound(format!(
            "no key action {other:?}: accept, reject or delete"
        )))),
    };
    match done {
        Ok(()) => see_other("/ui/keys"),
        Err(ApiError(e)) => failed(&st, &caller, &login, e),
    }
}

// ----------------------------------------------------------------- jobs

/// `GET /ui/jobs` parameters.
#[derive(Debug, Default, Deserialize)]
pub struct JobsParams {
    cursor: Option<String>,
}

const TARGET_TYPES: &[&str] = &["glob", "list", "pcre", "grain", "compound"];

/// The run form (operators) and the job history.
pub async fn jobs(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Extension(login): Extension<Login>,
    ApiQuery(p): ApiQuery<JobsParams>,
) -> Response {
    let shared = st.shared.clone();
    let cursor = p.cursor.clone();
    match blocking(move || shared.jobs.list(cursor.as_deref(), 50)).await {
        Ok(page) => {
            let jobs: Vec<_> = page
                .items
                .iter()
                .map(|j| {
                    context! {
                        jid => j.jid.to_string(),
                        target => j.target.describe(),
                        fun => j.fun.clone(),
                        args => j.args.join(" "),
                        expected => j.expected_count,
                        user => j.user.clone(),
                        started_ms => j.started_ms,
                    }
                })
                .collect();
            st.ui.render(
                StatusCode::OK,
                "jobs.html",
                context! {
                    jobs => jobs,
                    target_types => ser(TARGET_TYPES),
                    next => page.next.map(|n| format!("/ui/jobs?{}", serde_urlencoded::to_string([("cursor", n)]).unwrap_or_default())), ..frame(&caller, &login, "jobs") },
            )
        }
        Err(e) => failed(&st, &caller, &login, e),
    }
}

/// `GET /ui/jobs/preview` parameters.
#[derive(Debug, Default, Deserialize)]
pub struct PreviewParams {
    target: Option<String>,
    target_type: Option<String>,
    partial: Option<String>,
}

fn target_type(name: &str) -> Result<crate::api::jobs::TargetType, ServiceError> {
    use crate::api::jobs::TargetType;
    Ok(match name {
        "" | "glob" => TargetType::Glob,
        "list" => TargetType::List,
        "pcre" => TargetType::Pcre,
        "grain" => TargetType::Grain,
        "compound" => TargetType::Compound,
        other => {
            return Err(ServiceError::Invalid(format!(
                "target type {other:?}: give glob, list, pcre, grain or compound"
            )));
        }
    })
}

/// The minions a target selects, as the run form shows them before the
/// job is published (marked where the user may not target them).
pub async fn preview(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Extension(login): Extension<Login>,
    ApiQuery(p): ApiQuery<PreviewParams>,
) -> Response {
    let target = p.target.unwrap_or_default();
    let result = match target_type(p.target_type.as_deref().unwrap_or("glob")) {
        Ok(tt) if !target.trim().is_empty() => {
            let shared = st.shared.clone();
            let t = tt.target(&target);
            blocking(move || shared.jobs.expected_for(&t))
                .await
                .map(Some)
        }
        Ok(_) => Ok(None),
        Err(e) => Err(e),
    };
    let (minions, error) = match result {
        Ok(Some(set)) => (
            set.into_iter()
                .map(|id| context! { allowed => caller.user.may_target(&id), id => id })
                .collect::<Vec<_>>(),
            None,
        ),
        Ok(None) => (Vec::new(), None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let template = if p.partial.is_some() {
        "preview.html"
    } else {
        "jobs.html"
    };
    st.ui.render(
        StatusCode::OK,
        template,
        context! {
        preview => context! { target => target, minions => minions, error => error, shown => true },
        target_types => ser(TARGET_TYPES),
        jobs => Vec::<()>::new(), ..frame(&caller, &login, "jobs") },
    )
}

/// Publishes a job through the API's `POST /v1/jobs` handler, then shows
/// its page (where the returns arrive live).
pub async fn run_job(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Extension(login): Extension<Login>,
    body: Bytes,
) -> Response {
    let fields = form(&body);
    let get = |n: &str| field(&fields, n).unwrap_or_default().trim().to_owned();
    let tt = match target_type(&get("target_type")) {
        Ok(t) => t,
        Err(e) => return failed(&st, &caller, &login, e),
    };
    let fun = get("fun");
    let line = get("args");
    // A command takes the whole line, as typed.
    let words = if fun.starts_with("cmd.") && !line.is_empty() {
        vec![line]
    } else {
        match shlex::split(&line) {
            Some(w) => w,
            None => {
                return failed(
                    &st,
                    &caller,
                    &login,
                    ServiceError::Invalid("the arguments have an unclosed quote".into()),
                );
            }
        }
    };
    let target = get("target");
    let shared = st.shared.clone();
    let t = tt.target(&target);
    match blocking(move || shared.jobs.expected_for(&t)).await {
        Ok(set) if set.is_empty() => {
            return failed(
                &st,
                &caller,
                &login,
                ServiceError::Unprocessable(format!(
                    "no accepted minion matches the target {target:?}; nothing was run"
                )),
            );
        }
        Ok(_) => {}
        Err(e) => return failed(&st, &caller, &login, e),
    }
    let (mut args, mut kwargs) = (Vec::new(), BTreeMap::new());
    let whole = fun.starts_with("cmd.");
    for w in words {
        if whole {
            args.push(w);
            continue;
        }
        match w.split_once('=') {
            Some((k, v)) if !k.is_empty() && k.chars().all(|c| c.is_alphanumeric() || c == '_') => {
                kwargs.insert(k.to_owned(), v.to_owned());
            }
            _ => args.push(w),
        }
    }
    let req = crate::api::jobs::JobRequest {
        target: get("target"),
        target_type: tt,
        fun,
        args,
        kwargs,
        batch: None,
        batch_wait: None,
        timeout: None,
    };
    match crate::api::jobs::create(State(st.clone()), Extension(caller.clone()), ApiJson(req)).await
    {
        Ok((_, axum::Json(created))) => see_other(&format!("/ui/jobs/{}", created.jid)),
        Err(ApiError(e)) => failed(&st, &caller, &login, e),
    }
}

/// A job and its returns; while it runs, returns arrive on the page live.
pub async fn job(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Extension(login): Extension<Login>,
    Path(jid): Path<String>,
) -> Response {
    let shared = st.shared.clone();
    let j = jid.clone();
    let shown = blocking(move || shared.jobs.show(&j)).await;
    let view = match shown {
        Ok(v) => v,
        Err(e) => return failed(&st, &caller, &login, e),
    };
    let returned: std::collections::BTreeSet<String> = view
        .returns
        .iter()
        .map(|r| r.minion.as_str().to_owned())
        .collect();
    let missing: Vec<String> = view
        .job
        .expected
        .iter()
        .filter(|m| !returned.contains(*m))
        .cloned()
        .collect();
    let returns: Vec<_> = view
        .returns
        .iter()
        .map(|r| {
            context! {
                minion => r.minion.as_str(),
                success => r.success,
                retcode => r.retcode,
                data => ret_text(&r.data),
                ended_ms => r.ended_ms,
            }
        })
        .collect();
    st.ui.render(
        StatusCode::OK,
        "job.html",
        context! {
        jid => jid.clone(),
        job => context! {
            target => view.job.target.describe(),
            fun => view.job.fun.clone(),
            args => view.job.args.join(" "),
            user => view.job.user.clone(),
            started_ms => view.job.started_ms,
            expected => view.job.expected.len(),
        },
        returns => returns,
        missing => missing,
        stream => format!("/ui/jobs/{jid}/stream"), ..frame(&caller, &login, "jobs") },
    )
}

/// A return's data as text: a string as it is, anything else as indented
/// JSON.
fn ret_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

/// The job's returns as server-sent events (the API's stream).
pub async fn job_stream(State(st): State<ApiState>, Path(jid): Path<String>) -> Response {
    match crate::api::jobs::returns(
        State(st.clone()),
        Path(jid),
        ApiQuery(crate::api::jobs::ReturnsQuery { timeout: None }),
    )
    .await
    {
        Ok(sse) => sse.into_response(),
        Err(e) => e.into_response(),
    }
}

// -------------------------------------------------------------- changes

/// `GET /ui/changes` parameters.
#[derive(Debug, Default, Deserialize)]
pub struct ChangesParams {
    since: Option<String>,
    q: Option<String>,
    cursor: Option<String>,
}

/// The fleet's change feed: since a time, for the assets a query selects.
pub async fn changes(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Extension(login): Extension<Login>,
    ApiQuery(p): ApiQuery<ChangesParams>,
) -> Response {
    let since_text = p.since.clone().unwrap_or_else(|| "24h".into());
    let since_ms = match since(&since_text) {
        Ok(ms) => ms,
        Err(e) => return failed(&st, &caller, &login, e),
    };
    let shared = st.shared.clone();
    let q = p.q.clone().filter(|q| !q.trim().is_empty());
    let cursor = p.cursor.clone();
    let got = blocking(move || {
        handle(
            &shared,
            AssetRequest::Changes {
                since_ms,
                until_ms: None,
                q,
                cursor,
                limit: 200,
            },
        )
    })
    .await;
    let (items, next, error) = match got {
        Ok(AssetAnswer::Changes(page)) => (page.items, page.next, None),
        Ok(_) => (Vec::new(), None, None),
        Err(e @ ServiceError::Invalid(_)) => (Vec::new(), None, Some(e.to_string())),
        Err(e) => return failed(&st, &caller, &login, e),
    };
    let q = p.q.unwrap_or_default();
    let next = next.map(|n| {
        format!(
            "/ui/changes?{}",
            serde_urlencoded::to_string([
                ("since", since_text.as_str()),
                ("q", q.as_str()),
                ("cursor", n.as_str())
            ])
            .unwrap_or_default()
        )
    });
    st.ui.render(
        if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        },
        "changes.html",
        context! {
        since => since_text,
        q => q,
        error => error,
        names => ser(names_of(&st.shared, &items)),
        items => ser(&items),
        next => next, ..frame(&caller, &login, "changes") },
    )
}

/// A time: `24h`, `7d`, `30m` ago, or a date or time as the API reads it.
fn since(text: &str) -> Result<i64, ServiceError> {
    let t = text.trim();
    let unit = |u: char| match u {
        'm' => Some(60_000),
        'h' => Some(3_600_000),
        'd' => Some(86_400_000),
        _ => None,
    };
    if let Some(last) = t.chars().last()
        && let Some(ms) = unit(last)
        && let Ok(n) = t[..t.len() - 1].parse::<i64>()
    {
        return Ok(now_ms() - n.saturating_mul(ms));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        // A date means from its start.
        return d
            .and_hms_opt(0, 0, 0)
            .map(|s| s.and_utc().timestamp_millis())
            .ok_or_else(|| ServiceError::Invalid(format!("since: {t:?} is not a date")));
    }
    inventory::lookup::parse_time(t).map_err(|e| ServiceError::Invalid(format!("since: {e}")))
}

// ---------------------------------------------------------------- audit

/// `GET /ui/audit` parameters.
#[derive(Debug, Default, Deserialize)]
pub struct AuditParams {
    year: Option<String>,
    group_by: Option<String>,
    format: Option<String>,
}

/// The audit's year: as given (1970 to 2200), else this year.
fn audit_year(given: Option<&str>) -> Result<i32, ServiceError> {
    match given.map(str::trim).filter(|y| !y.is_empty()) {
        None => Ok(this_year()),
        Some(y) => y
            .parse::<i32>()
            .ok()
            .filter(|y| (1970..=2200).contains(y))
            .ok_or_else(|| {
                ServiceError::Invalid(format!("year {y:?}: give a year such as {}", this_year()))
            }),
    }
}

fn this_year() -> i32 {
    use chrono::Datelike;
    chrono::Utc::now().year()
}

/// The year-end audit as a table, with its exports.
pub async fn audit(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Extension(login): Extension<Login>,
    ApiQuery(p): ApiQuery<AuditParams>,
) -> Response {
    let year = match audit_year(p.year.as_deref()) {
        Ok(y) => y,
        Err(e) => return failed(&st, &caller, &login, e),
    };
    let group_by = p.group_by.unwrap_or_else(|| "department".into());
    let shared = st.shared.clone();
    let g = group_by.clone();
    match blocking(move || crate::service::inventory::audit(&shared, year, &g)).await {
        Ok(report) => {
            let (headers, rows) = report.table();
            let rows: Vec<Vec<String>> = rows
                .iter()
                .map(|r| r.iter().map(view::text).collect())
                .collect();
            let link = |format: &str| {
                format!(
                    "/ui/audit/export?{}",
                    serde_urlencoded::to_string([
                        ("year", year.to_string()),
                        ("group_by", group_by.clone()),
                        ("format", format.to_owned()),
                    ])
                    .unwrap_or_default()
                )
            };
            st.ui.render(
                StatusCode::OK,
                "audit.html",
                context! {
                year => year,
                group_by => group_by.clone(),
                groupings => ser(["department", "business_line", "site"]),
                headers => headers,
                rows => rows,
                csv => link("csv"),
                xlsx => link("xlsx"), ..frame(&caller, &login, "audit") },
            )
        }
        Err(e) => failed(&st, &caller, &login, e),
    }
}

/// The audit as CSV or XLSX (the API's report).
pub async fn audit_export(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Extension(login): Extension<Login>,
    ApiQuery(p): ApiQuery<AuditParams>,
) -> Response {
    let year = match audit_year(p.year.as_deref()) {
        Ok(y) => y,
        Err(e) => return failed(&st, &caller, &login, e),
    };
    let query = crate::api::assets::AuditQuery {
        year,
        group_by: p.group_by,
        format: p.format,
    };
    match crate::api::assets::audit(State(st.clone()), ApiQuery(query)).await {
        Ok(resp) => resp,
        Err(ApiError(e)) => failed(&st, &caller, &login, e),
    }
}
