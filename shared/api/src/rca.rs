//! Alerts, topology, chaos runs and the root-cause queries over HTTP.

use crate::AppState;
use crate::error::ApiError;
use crate::handlers::{parse_json, parse_json_within, query_params};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use deploygraph_analysis::engine;
use deploygraph_analysis::timeline::{TimelineCursor, TimelinePage};
use deploygraph_model::alertmanager::Notification;
use deploygraph_model::chaos::ChaosRunInput;
use deploygraph_model::schema::{InputTime, is_fingerprint, parse_input_time};
use deploygraph_model::{
    Alert, AlertOutcome, ChaosRun, Cluster, Environment, ServiceName, ServiceRef, Uid,
};
use deploygraph_store::{AlertFilter, Cursor, MAX_PAGE_SIZE};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

fn store_error(state: &AppState) -> impl Fn(deploygraph_store::Error) -> ApiError + '_ {
    move |e| ApiError::from_store(&e, state.config.retry_after_secs)
}

fn time(field: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    value
        .map(|v| parse_input_time(field, v).map_err(ApiError::from))
        .transpose()
}

fn service(field: &str, value: &str) -> Result<ServiceName, ApiError> {
    ServiceName::parse(value).map_err(|e| ApiError::invalid(field, e.message))
}

fn fingerprint(field: &str, value: String) -> Result<String, ApiError> {
    if is_fingerprint(&value) {
        Ok(value)
    } else {
        Err(ApiError::invalid(
            field,
            format!("{value:?} is not an alert fingerprint"),
        ))
    }
}

fn environment(value: Option<&str>) -> Result<Option<Environment>, ApiError> {
    value
        .map(|v| Environment::parse(v).map_err(|e| ApiError::invalid("environment", e.message)))
        .transpose()
}

/// The `cluster` parameter.
pub(crate) fn cluster(value: Option<&str>) -> Result<Option<Cluster>, ApiError> {
    value
        .map(|v| Cluster::parse(v).map_err(|e| ApiError::invalid("cluster", e.message)))
        .transpose()
}

fn namespace(value: Option<String>) -> Result<Option<String>, ApiError> {
    match value.filter(|n| !n.is_empty()) {
        Some(ns) if !deploygraph_model::newtypes::is_dns1123_label(&ns) => Err(ApiError::invalid(
            "namespace",
            format!("{ns:?} is not a DNS-1123 label"),
        )),
        other => Ok(other),
    }
}

/// The `deployment` parameter: a deployment's uid.
fn deployment_param(value: Option<&str>) -> Result<Option<Uid>, ApiError> {
    value
        .map(|uid| {
            Uid::parse_deployment(uid).map_err(|e| ApiError::invalid("deployment", e.message))
        })
        .transpose()
}

fn limit(value: Option<&str>, default: usize, max: usize) -> Result<usize, ApiError> {
    match value {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid(
                "limit",
                format!("must be an integer from 1 to {max}"),
            )),
        },
    }
}

fn window(
    since: Option<&str>,
    until: Option<&str>,
    default: Duration,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let until = time("until", until)?.unwrap_or_else(Utc::now);
    let since = time("since", since)?.unwrap_or(until - default);
    if since > until {
        return Err(ApiError::invalid("since", "is after until"));
    }
    Ok((since, until))
}

/// The wire name of an alert outcome.
pub(crate) fn outcome_name(outcome: AlertOutcome) -> &'static str {
    match outcome {
        AlertOutcome::Created => "created",
        AlertOutcome::Updated => "updated",
        AlertOutcome::Unchanged => "unchanged",
    }
}

/// Stores alerts durably (each new occurrence with its attribution follow-up) and counts them.
/// Alertmanager notifications and CDEvents incidents both come this way.
pub(crate) async fn record_alerts(
    state: &AppState,
    alerts: Vec<Alert>,
) -> Result<Vec<(Alert, AlertOutcome)>, ApiError> {
    let started = Instant::now();
    // A write once started runs to its end even when the client goes away: the alerts are
    // stored with their follow-ups, and Alertmanager's retry finds them `unchanged`.
    let store = Arc::clone(&state.store);
    let recorded = crate::detached(async move { store.record_alerts(alerts).await }).await;
    state.metrics.store_call("record_alerts", started);
    let recorded = recorded.map_err(store_error(state))?;
    let mut created = Vec::new();
    for (alert, outcome) in &recorded {
        let name = outcome_name(*outcome);
        state.metrics.alert(name);
        if *outcome == AlertOutcome::Created {
            // The store wrote the attribution follow-up with the alert; the pipeline does it,
            // whether or not this request's client stays connected.
            created.push(alert.uid.clone());
        }
        tracing::info!(alert.uid = %alert.uid, alert.fingerprint = %alert.fingerprint, alert.name = %alert.name, outcome = name, "recorded alert");
    }
    if !created.is_empty() {
        state.followed_up(created);
    }
    Ok(recorded)
}

/// `POST /v1/alerts/alertmanager`: an Alertmanager webhook notification. The alerts are
/// durably stored before the 200; each new occurrence is then attributed by the follow-up
/// pipeline.
#[utoipa::path(post, path = "/v1/alerts/alertmanager", tag = "alerts",
    request_body(content = deploygraph_model::alertmanager::Notification, content_type = "application/json",
        description = "An Alertmanager webhook notification. Fields Alertmanager may add later are accepted and ignored."),
    responses((status = 200, description = "Stored; each new occurrence is attributed by the follow-up pipeline (its suspects say `attribution_pending` until then)", body = crate::openapi::JsonObject)),
    security(("bearer" = [])))]
pub(crate) async fn alertmanager(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let notification: Notification =
        parse_json_within(state.config.alertmanager_max_body_bytes, &headers, body)?;
    let alerts = notification.into_alerts(&state.config.alert_mapping)?;
    let received = alerts.len();
    let recorded = record_alerts(&state, alerts).await?;
    let mut counts = [0usize; 3];
    let mut items = Vec::with_capacity(recorded.len());
    for (alert, outcome) in &recorded {
        let index = match outcome {
            AlertOutcome::Created => 0,
            AlertOutcome::Updated => 1,
            AlertOutcome::Unchanged => 2,
        };
        counts[index] += 1;
        items.push(json!({
            "uid": alert.uid,
            "fingerprint": alert.fingerprint,
            "outcome": outcome_name(*outcome),
            "service": alert.service,
        }));
    }
    Ok(Json(json!({
        "received": received,
        "created": counts[0],
        "updated": counts[1],
        "unchanged": counts[2],
        "alerts": items,
    }))
    .into_response())
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AlertParams {
    /// Only alerts on this service.
    #[param(value_type = Option<ServiceName>)]
    service: Option<String>,
    /// Only alerts in this environment.
    #[param(value_type = Option<Environment>)]
    environment: Option<String>,
    /// Only alerts in this cluster (their `cluster` label, or without one, a service they fired
    /// on).
    #[param(value_type = Option<deploygraph_model::Cluster>)]
    cluster: Option<String>,
    /// Only occurrences of this fingerprint.
    #[param(value_type = Option<deploygraph_model::schema::Fingerprint>)]
    fingerprint: Option<String>,
    /// Started at or after.
    #[param(value_type = Option<InputTime>)]
    since: Option<String>,
    /// Started at or before.
    #[param(value_type = Option<InputTime>)]
    until: Option<String>,
    /// Most alerts (default 100).
    #[param(value_type = Option<usize>, minimum = 1, maximum = 10000)]
    limit: Option<String>,
    /// Continue after a previous page (its `next_cursor`).
    #[param(min_length = 1)]
    cursor: Option<String>,
}

/// A store cursor from the `cursor` parameter.
fn cursor(value: Option<&str>) -> Result<Option<Cursor>, ApiError> {
    value
        .map(|c| {
            Cursor::decode(c)
                .map_err(|_| ApiError::invalid("cursor", "not a cursor this server issued"))
        })
        .transpose()
}

/// A page of a newest-first listing from up to `limit + 1` items: the extra one only says
/// the listing goes on. `{items, truncated, next_cursor}`; `next_cursor` continues after the
/// last item (`position` gives its time and uid).
fn page<T: serde::Serialize>(
    items: Vec<T>,
    limit: usize,
    position: impl Fn(&T) -> Cursor,
) -> Response {
    Json(page_body(items, limit, position)).into_response()
}

/// The body of [`page`].
pub(crate) fn page_body<T: serde::Serialize>(
    mut items: Vec<T>,
    limit: usize,
    position: impl Fn(&T) -> Cursor,
) -> serde_json::Value {
    let truncated = items.len() > limit;
    items.truncate(limit);
    let next_cursor = truncated
        .then(|| items.last().map(|last| position(last).encode()))
        .flatten();
    json!({ "items": items, "truncated": truncated, "next_cursor": next_cursor })
}

/// `GET /v1/alerts`.
#[utoipa::path(get, path = "/v1/alerts", tag = "alerts",
    params(AlertParams),
    responses((status = 200, description = "A page of alerts, newest first: `{items, truncated, next_cursor}`. When `truncated`, more alerts match; pass `next_cursor` as `cursor` for the next page.", body = crate::openapi::ListPage)))]
pub(crate) async fn list_alerts(
    State(state): State<AppState>,
    query: Result<Query<AlertParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = query_params(query)?;
    let filter = AlertFilter {
        service: p
            .service
            .as_deref()
            .map(|s| service("service", s))
            .transpose()?,
        environment: environment(p.environment.as_deref())?,
        cluster: cluster(p.cluster.as_deref())?,
        fingerprint: p
            .fingerprint
            .map(|f| fingerprint("fingerprint", f))
            .transpose()?,
        since: time("since", p.since.as_deref())?,
        until: time("until", p.until.as_deref())?,
        limit: limit(p.limit.as_deref(), 100, MAX_PAGE_SIZE)?,
        cursor: cursor(p.cursor.as_deref())?,
    };
    let started = Instant::now();
    let alerts = state
        .store
        .list_alerts(&AlertFilter {
            limit: filter.limit + 1,
            ..filter.clone()
        })
        .await;
    state.metrics.store_call("list_alerts", started);
    let alerts = alerts.map_err(store_error(&state))?;
    Ok(page(alerts, filter.limit, |a: &Alert| {
        Cursor::at(a.starts_at, &a.uid)
    }))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct OccurrenceParams {
    /// Which occurrence (default: the newest).
    #[param(value_type = Option<InputTime>)]
    pub(crate) starts_at: Option<String>,
}

pub(crate) async fn occurrence(
    state: &AppState,
    fingerprint: &str,
    starts_at: Option<&str>,
) -> Result<Alert, ApiError> {
    let at = time("starts_at", starts_at)?;
    engine::find_alert(state.store.as_ref(), fingerprint, at)
        .await
        .map_err(store_error(state))?
        .ok_or_else(|| ApiError::not_found(format!("no alert with fingerprint {fingerprint:?}")))
}

/// `GET /v1/alerts/{fingerprint}/suspects`: the stored attribution.
#[utoipa::path(get, path = "/v1/alerts/{fingerprint}/suspects", tag = "alerts",
    params(("fingerprint" = deploygraph_model::schema::Fingerprint, Path), OccurrenceParams),
    responses(
        (status = 200, description = "The stored attribution", body = crate::openapi::JsonObject),
        (status = 404, description = "No such alert", body = crate::openapi::ErrorBody),
    ))]
pub(crate) async fn suspects(
    State(state): State<AppState>,
    Path(fingerprint): Path<String>,
    query: Result<Query<OccurrenceParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = query_params(query)?;
    let alert = occurrence(&state, &fingerprint, p.starts_at.as_deref()).await?;
    let started = Instant::now();
    let view = engine::suspects(state.store.as_ref(), alert).await;
    state.metrics.store_call("suspects", started);
    Ok(Json(view.map_err(store_error(&state))?).into_response())
}

/// The most alerts `GET /v1/deployments/{uid}/alerts` returns (newest first).
const ATTRIBUTED_ALERTS_MAX: usize = 200;

/// `GET /v1/deployments/{uid}/alerts`: the alerts the deployment is a suspect of.
#[utoipa::path(get, path = "/v1/deployments/{uid}/alerts", tag = "alerts",
    params(("uid" = String, Path, description = "A deployment's uid")),
    responses(
        (status = 200, description = "`{deployment, items: [{alert, confidence_score, reasons, rank, suspects, computed_at, verdict}], truncated}`: the alerts attributed to the deployment (TRIGGERS from it), newest first, at most 200; `rank` is its place among the alert's `suspects` (1 = top suspect) and `verdict` a reviewer's verdict on it for that alert, or null", body = crate::openapi::JsonObject),
        (status = 404, description = "No such deployment", body = crate::openapi::ErrorBody),
    ))]
pub(crate) async fn deployment_alerts(
    State(state): State<AppState>,
    Path(uid): Path<String>,
) -> Result<Response, ApiError> {
    let parsed = crate::handlers::stored_deployment(&state, &uid)
        .await?
        .deployment
        .uid;
    let started = Instant::now();
    let triggers = state
        .store
        .triggered_by(std::slice::from_ref(&parsed))
        .await;
    state.metrics.store_call("triggered_by", started);
    let triggers = triggers.map_err(store_error(&state))?;
    let store = state.store.as_ref();
    let uids: Vec<Uid> = triggers
        .iter()
        .map(|t| t.trigger.alert_uid.clone())
        .collect();
    // One read for the alerts and one for the verdicts, however many alerts blame it.
    let started = Instant::now();
    let alerts = store.get_alerts(&uids).await;
    state.metrics.store_call("get_alerts", started);
    let mut alerts: std::collections::BTreeMap<Uid, Alert> = alerts
        .map_err(store_error(&state))?
        .into_iter()
        .map(|a| (a.uid.clone(), a))
        .collect();
    let verdicts = store.verdicts(&uids).await.map_err(store_error(&state))?;
    let mut items: Vec<(Alert, serde_json::Value)> = triggers
        .into_iter()
        .filter_map(|t| {
            let alert = alerts.remove(&t.trigger.alert_uid)?;
            let verdict = verdicts
                .iter()
                .find(|v| v.alert_uid == alert.uid && v.subject_uid == parsed);
            let item = json!({
                "alert": alert,
                "confidence_score": t.trigger.confidence_score,
                "reasons": t.trigger.reasons,
                "rank": t.rank,
                "suspects": t.suspects,
                "computed_at": t.trigger.computed_at,
                "verdict": verdict,
            });
            Some((alert, item))
        })
        .collect();
    items.sort_by(|(a, _), (b, _)| {
        b.starts_at
            .cmp(&a.starts_at)
            .then_with(|| a.uid.cmp(&b.uid))
    });
    let truncated = items.len() > ATTRIBUTED_ALERTS_MAX;
    items.truncate(ATTRIBUTED_ALERTS_MAX);
    let items: Vec<serde_json::Value> = items.into_iter().map(|(_, item)| item).collect();
    Ok(Json(json!({"deployment": parsed, "items": items, "truncated": truncated})).into_response())
}

/// How long `POST /v1/alerts/{fingerprint}/attribution` waits for the recomputation (it
/// answers with `attribution_pending` beyond).
const RECOMPUTE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// `POST /v1/alerts/{fingerprint}/attribution`: recompute, then the suspects.
#[utoipa::path(post, path = "/v1/alerts/{fingerprint}/attribution", tag = "alerts",
    params(("fingerprint" = deploygraph_model::schema::Fingerprint, Path), OccurrenceParams),
    responses(
        (status = 200, description = "Recomputed", body = crate::openapi::JsonObject),
        (status = 404, description = "No such alert", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn reattribute(
    State(state): State<AppState>,
    Path(fingerprint): Path<String>,
    query: Result<Query<OccurrenceParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = query_params(query)?;
    let alert = occurrence(&state, &fingerprint, p.starts_at.as_deref()).await?;
    // Through the alert's own follow-ups, like every other write of its attribution: one at a
    // time, so a worker holding older reads cannot overwrite the recomputed answer.
    let store = state.store.as_ref();
    let subject = std::slice::from_ref(&alert.uid);
    store
        .enqueue_revisits(subject, Utc::now())
        .await
        .map_err(store_error(&state))?;
    let drained = state
        .pipeline()
        .drain(subject, RECOMPUTE_WAIT)
        .await
        .map_err(store_error(&state))?;
    if drained.pending > 0 {
        tracing::warn!(alert.uid = %alert.uid, "the recomputed attribution is still pending: another worker holds the alert");
    }
    let view = engine::suspects(state.store.as_ref(), alert)
        .await
        .map_err(store_error(&state))?;
    Ok(Json(view).into_response())
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ServiceParams {
    /// The service's namespace (empty: none).
    #[param(value_type = Option<deploygraph_model::schema::Namespace>)]
    namespace: Option<String>,
    /// The service's environment.
    #[param(value_type = Option<Environment>)]
    environment: Option<String>,
    /// The service's cluster.
    #[param(value_type = Option<deploygraph_model::Cluster>)]
    cluster: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct TimelineParams {
    /// Only this environment.
    #[param(value_type = Option<Environment>)]
    environment: Option<String>,
    /// Only this cluster.
    #[param(value_type = Option<deploygraph_model::Cluster>)]
    cluster: Option<String>,
    /// From (default: a day before `until`); not after `until`.
    #[param(value_type = Option<InputTime>)]
    since: Option<String>,
    /// To (default: now).
    #[param(value_type = Option<InputTime>)]
    until: Option<String>,
    /// Most items (default and at most 10000): a deployment, a change, an alert with its
    /// resolution, a snapshot, a chaos run with its end.
    #[param(value_type = Option<usize>, minimum = 1, maximum = 10000)]
    limit: Option<String>,
    /// Continue with the items before a previous page (its `next_cursor`).
    #[param(min_length = 1)]
    cursor: Option<String>,
}

/// `GET /v1/services/{name}/timeline` (default: the last 24 h).
#[utoipa::path(get, path = "/v1/services/{name}/timeline", tag = "services",
    params(("name" = deploygraph_model::ServiceName, Path), TimelineParams),
    responses((status = 200, description = "Events oldest first. When the window holds more than `limit` items, `truncated` is true, the page holds the newest items, and `next_cursor` (as `cursor`) gives the ones before them.", body = crate::openapi::JsonObject)))]
pub(crate) async fn timeline(
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<TimelineParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = query_params(query)?;
    let name = service("name", &name)?;
    let env = environment(p.environment.as_deref())?;
    let cluster = cluster(p.cluster.as_deref())?;
    let (since, until) = window(p.since.as_deref(), p.until.as_deref(), Duration::hours(24))?;
    let page = TimelinePage {
        limit: limit(p.limit.as_deref(), MAX_PAGE_SIZE, MAX_PAGE_SIZE)?,
        cursor: p
            .cursor
            .as_deref()
            .map(|c| {
                TimelineCursor::decode(c)
                    .ok_or_else(|| ApiError::invalid("cursor", "not a cursor this server issued"))
            })
            .transpose()?,
    };
    let started = Instant::now();
    let view = engine::timeline(
        state.store.as_ref(),
        &name,
        env.as_ref(),
        cluster.as_ref(),
        since,
        until,
        &page,
    )
    .await;
    state.metrics.store_call("timeline", started);
    let view = view.map_err(store_error(&state))?;
    Ok(Json(view).into_response())
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct FactorParams {
    /// Only this environment.
    #[param(value_type = Option<Environment>)]
    environment: Option<String>,
    /// Only this cluster.
    #[param(value_type = Option<deploygraph_model::Cluster>)]
    cluster: Option<String>,
    /// How many of the latest failures (default 3).
    #[param(value_type = Option<usize>, minimum = 1, maximum = 100)]
    last: Option<String>,
}

/// `GET /v1/services/{name}/common-factors?last=3`.
#[utoipa::path(get, path = "/v1/services/{name}/common-factors", tag = "services",
    params(("name" = deploygraph_model::ServiceName, Path), FactorParams),
    responses((status = 200, description = "What the last failures share", body = crate::openapi::JsonObject)))]
pub(crate) async fn common_factors(
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<FactorParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = query_params(query)?;
    let name = service("name", &name)?;
    let env = environment(p.environment.as_deref())?;
    let cluster = cluster(p.cluster.as_deref())?;
    let last = match p.last.as_deref() {
        None => 3,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| ApiError::invalid("last", "must be an integer from 1 to 100"))?,
    };
    let started = Instant::now();
    let view = engine::common_factors_of(
        state.store.as_ref(),
        &name,
        (env.as_ref(), cluster.as_ref()),
        last,
        state.config.attribution.window,
    )
    .await;
    state.metrics.store_call("common_factors", started);
    Ok(Json(view.map_err(store_error(&state))?).into_response())
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct DoraParams {
    /// Only this service.
    #[param(value_type = Option<ServiceName>)]
    service: Option<String>,
    /// Only this environment.
    #[param(value_type = Option<Environment>)]
    environment: Option<String>,
    /// Only this cluster.
    #[param(value_type = Option<deploygraph_model::Cluster>)]
    cluster: Option<String>,
    /// From (default: 30 days before `until`); not after `until`.
    #[param(value_type = Option<InputTime>)]
    since: Option<String>,
    /// To (default: now).
    #[param(value_type = Option<InputTime>)]
    until: Option<String>,
}

/// `GET /v1/dora` (default: the last 30 days).
#[utoipa::path(get, path = "/v1/dora", tag = "services",
    params(DoraParams),
    responses((status = 200, description = "DORA metrics", body = crate::openapi::JsonObject)))]
pub(crate) async fn dora(
    State(state): State<AppState>,
    query: Result<Query<DoraParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = query_params(query)?;
    let name = p
        .service
        .as_deref()
        .map(|s| service("service", s))
        .transpose()?;
    let env = environment(p.environment.as_deref())?;
    let cluster = cluster(p.cluster.as_deref())?;
    let (since, until) = window(p.since.as_deref(), p.until.as_deref(), Duration::days(30))?;
    let view = engine::dora_metrics(
        state.store.as_ref(),
        name.as_ref(),
        (env.as_ref(), cluster.as_ref()),
        since,
        until,
    )
    .await
    .map_err(store_error(&state))?;
    Ok(Json(view).into_response())
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ReportParams {
    /// The alert's fingerprint.
    #[param(value_type = deploygraph_model::schema::Fingerprint, required = true)]
    alert: Option<String>,
    /// Which occurrence (default: the newest).
    #[param(value_type = Option<InputTime>)]
    starts_at: Option<String>,
    /// `markdown` (default) or `json`.
    #[param(value_type = Option<ReportFormat>)]
    format: Option<String>,
}

/// How the incident report is rendered.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub(crate) enum ReportFormat {
    /// Markdown (the default).
    Markdown,
    /// JSON.
    Json,
}

/// `GET /v1/reports/incident?alert=FINGERPRINT&format=markdown|json`.
#[utoipa::path(get, path = "/v1/reports/incident", tag = "alerts",
    params(ReportParams),
    responses(
        (status = 200, description = "The report", content(
            (String = "text/markdown"),
            (crate::openapi::JsonObject = "application/json"),
        )),
        (status = 404, description = "No such alert", body = crate::openapi::ErrorBody),
    ))]
pub(crate) async fn incident_report(
    State(state): State<AppState>,
    query: Result<Query<ReportParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = query_params(query)?;
    let fingerprint = fingerprint(
        "alert",
        p.alert
            .ok_or_else(|| ApiError::invalid("alert", "is required (an alert fingerprint)"))?,
    )?;
    let markdown = match p.format.as_deref() {
        None | Some("markdown") => true,
        Some("json") => false,
        Some(_) => return Err(ApiError::invalid("format", "must be markdown or json")),
    };
    let alert = occurrence(&state, &fingerprint, p.starts_at.as_deref()).await?;
    let report = engine::incident_report(
        state.store.as_ref(),
        alert,
        &state.config.attribution,
        Utc::now(),
    )
    .await
    .map_err(store_error(&state))?;
    if markdown {
        Ok((
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            deploygraph_analysis::report::markdown(&report),
        )
            .into_response())
    } else {
        Ok(Json(report).into_response())
    }
}

/// `POST /v1/cypher` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CypherBody {
    /// A read-only Cypher query.
    #[schema(min_length = 1)]
    query: String,
    /// Its parameters.
    #[serde(default)]
    #[schema(value_type = Object, nullable = false)]
    params: serde_json::Map<String, serde_json::Value>,
    /// Lower the server's time limit (milliseconds).
    #[schema(minimum = 1, maximum = 18446744073709551615_u64)]
    timeout_ms: Option<u64>,
    /// Lower the server's row cap.
    #[schema(minimum = 1, maximum = 18446744073709551615_u64)]
    limit: Option<usize>,
    /// Most bytes of JSON the rows may take (at most the server's cap).
    #[schema(minimum = 1, maximum = 18446744073709551615_u64)]
    max_bytes: Option<usize>,
}

/// `POST /v1/cypher`: a read-only query on Neo4j, checked from its plan first (needs the write
/// token). The request may lower the server's time limit, row cap and byte cap, not raise them.
#[utoipa::path(post, path = "/v1/cypher", tag = "query",
    request_body(content = CypherBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Columns and rows; `truncated_by` (`rows` or `bytes`) when a cap cut them", body = crate::openapi::JsonObject),
        (status = 400, description = "The query is refused (`query_refused`): not read-only, loads files or URLs, calls a procedure outside the allow-list, an administration command, or not valid Cypher", body = crate::openapi::ErrorBody),
        (status = 403, description = "The server has no write token, so Cypher is off", body = crate::openapi::ErrorBody),
        (status = 404, description = "The store does not speak Cypher (SQLite): `unsupported`", body = crate::openapi::ErrorBody),
        (status = 504, description = "The query ran past its time limit (`query_timed_out`)", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn cypher(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body: CypherBody = parse_json(&state, &headers, body)?;
    if body.query.is_empty() {
        return Err(ApiError::invalid("query", "is required"));
    }
    let max = state.config.cypher_timeout;
    let timeout = body
        .timeout_ms
        .map_or(max, |ms| std::time::Duration::from_millis(ms).min(max));
    if timeout.is_zero() {
        return Err(ApiError::invalid("timeout_ms", "must be at least 1"));
    }
    let row_cap = match body.limit {
        Some(0) => return Err(ApiError::invalid("limit", "must be at least 1")),
        Some(n) => n.min(state.config.cypher_max_rows),
        None => state.config.cypher_max_rows,
    };
    let byte_cap = match body.max_bytes {
        Some(0) => return Err(ApiError::invalid("max_bytes", "must be at least 1")),
        Some(n) => n.min(state.config.cypher_max_bytes),
        None => state.config.cypher_max_bytes,
    };
    let request = deploygraph_store::cypher::CypherRequest {
        query: body.query,
        params: body.params,
        timeout,
        row_cap,
        byte_cap,
    };
    let started = Instant::now();
    let result = state.store.read_cypher(&request).await;
    state.metrics.store_call("read_cypher", started);
    match result {
        Ok(rows) => Ok(Json(rows).into_response()),
        Err(e) => {
            tracing::info!(error.message = %e, "user query not answered");
            Err(ApiError::from_store(&e, state.config.retry_after_secs))
        }
    }
}

/// `POST /v1/chaos/runs`: records (or updates) a chaos run.
#[utoipa::path(post, path = "/v1/chaos/runs", tag = "chaos",
    request_body(content = deploygraph_model::chaos::ChaosRunInput, content_type = "application/json"),
    responses(
        (status = 201, description = "Recorded", body = crate::openapi::JsonObject, headers(("Location" = String))),
        (status = 200, description = "Updated", body = crate::openapi::JsonObject, headers(("Location" = String))),
    ),
    security(("bearer" = [])))]
pub(crate) async fn record_chaos_run(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let input: ChaosRunInput = parse_json(&state, &headers, body)?;
    let run = input.validate()?;
    let existed = state
        .store
        .get_chaos_run(&run.uid)
        .await
        .map_err(store_error(&state))?
        .is_some();
    state
        .store
        .record_chaos_run(&run)
        .await
        .map_err(store_error(&state))?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    state.metrics.chaos_run(
        run.verdict.as_str(),
        if existed { "updated" } else { "created" },
    );
    let location = format!("/v1/chaos/runs/{}", run.uid);
    Ok((status, [(header::LOCATION, location)], Json(run)).into_response())
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ChaosListParams {
    /// Only runs against this service.
    #[param(value_type = Option<ServiceName>)]
    service: Option<String>,
    /// Only runs in this environment.
    #[param(value_type = Option<Environment>)]
    environment: Option<String>,
    /// Only this cluster.
    #[param(value_type = Option<deploygraph_model::Cluster>)]
    cluster: Option<String>,
    /// Only runs against this deployment (its uid).
    #[param(value_type = Option<deploygraph_model::schema::DeploymentUid>)]
    deployment: Option<String>,
    /// Most runs (default 100).
    #[param(value_type = Option<usize>, minimum = 1, maximum = 10000)]
    limit: Option<String>,
    /// Continue after a previous page (its `next_cursor`).
    #[param(min_length = 1)]
    cursor: Option<String>,
}

/// `GET /v1/chaos/runs?service=&environment=&deployment=&limit=&cursor=`: newest first.
#[utoipa::path(get, path = "/v1/chaos/runs", tag = "chaos",
    params(ChaosListParams),
    responses((status = 200, description = "A page of runs, newest first: `{items, truncated, next_cursor}`", body = crate::openapi::ListPage)))]
pub(crate) async fn list_chaos_runs(
    State(state): State<AppState>,
    query: Result<Query<ChaosListParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = query_params(query)?;
    let env = environment(p.environment.as_deref())?;
    let cluster = cluster(p.cluster.as_deref())?;
    let size = limit(p.limit.as_deref(), 100, MAX_PAGE_SIZE)?;
    let after = cursor(p.cursor.as_deref())?;
    // Every parameter is checked before the store is asked (an unknown service answers an
    // empty page early).
    let against = deployment_param(p.deployment.as_deref())?;
    let service_name = p
        .service
        .as_deref()
        .map(|name| service("service", name))
        .transpose()?;
    let services = match service_name {
        Some(name) => {
            let found = state
                .store
                .find_services(&name, None, env.as_ref(), cluster.as_ref())
                .await
                .map_err(store_error(&state))?;
            if found.is_empty() {
                return Ok(page(Vec::<ChaosRun>::new(), size, |r| {
                    Cursor::at(r.started_at, &r.uid)
                }));
            }
            found.iter().map(ServiceRef::uid).collect()
        }
        None => Vec::new(),
    };
    let runs = state
        .store
        .list_chaos_runs(&deploygraph_store::ChaosFilter {
            services,
            against,
            limit: size + 1,
            cursor: after,
            ..deploygraph_store::ChaosFilter::default()
        })
        .await
        .map_err(store_error(&state))?;
    Ok(page(runs, size, |r: &ChaosRun| {
        Cursor::at(r.started_at, &r.uid)
    }))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct GateOverrideParams {
    /// Only overrides of workloads in this namespace (empty: any).
    #[param(value_type = Option<deploygraph_model::schema::Namespace>)]
    namespace: Option<String>,
    /// Only overrides of workloads of this name.
    #[param(min_length = 1, max_length = 253)]
    name: Option<String>,
    /// Only the overrides that admitted this deployment (its uid).
    #[param(value_type = Option<deploygraph_model::schema::DeploymentUid>)]
    deployment: Option<String>,
    /// Only overrides at or after this time.
    #[param(value_type = Option<InputTime>)]
    since: Option<String>,
    /// Most overrides (default 100).
    #[param(value_type = Option<usize>, minimum = 1, maximum = 10000)]
    limit: Option<String>,
}

/// `GET /v1/gate/overrides?namespace=&name=&deployment=&since=&limit=`: the admission gate's
/// overrides (the break-glass annotation), newest first.
#[utoipa::path(get, path = "/v1/gate/overrides", tag = "snapshots",
    params(GateOverrideParams),
    responses((status = 200, description = "Overrides, newest first: `{items, truncated}`; each names the workload, who, why, what the gate would have refused and, once recorded, the deployment it admitted (`deployment_uid`)", body = crate::openapi::JsonObject)))]
pub(crate) async fn list_gate_overrides(
    State(state): State<AppState>,
    query: Result<Query<GateOverrideParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = query_params(query)?;
    let size = limit(p.limit.as_deref(), 100, MAX_PAGE_SIZE)?;
    let deployment = deployment_param(p.deployment.as_deref())?;
    if p.name
        .as_deref()
        .is_some_and(|n| n.is_empty() || n.chars().count() > 253)
    {
        return Err(ApiError::invalid("name", "must be 1 to 253 characters"));
    }
    let mut items = state
        .store
        .list_gate_overrides(&deploygraph_store::GateOverrideFilter {
            namespace: namespace(p.namespace)?,
            name: p.name,
            deployment,
            since: time("since", p.since.as_deref())?,
            limit: size + 1,
        })
        .await
        .map_err(store_error(&state))?;
    let truncated = items.len() > size;
    items.truncate(size);
    Ok(Json(json!({"items": items, "truncated": truncated})).into_response())
}

/// `GET /v1/services/{name}/certificates?namespace=&environment=`: the certificates securing
/// the service (`(Certificate)-[:SECURES]->(Service)`, through the Ingresses and Gateways whose
/// TLS Secrets infra snapshots checked), soonest to expire first.
#[utoipa::path(get, path = "/v1/services/{name}/certificates", tag = "snapshots",
    params(("name" = deploygraph_model::ServiceName, Path), ServiceParams),
    responses((status = 200, description = "`{items: [{certificate, service, via, snapshot_uid, seen_at, expires_in_days}]}`: each route's certificate as the newest snapshot that checked it saw it", body = crate::openapi::JsonObject)))]
pub(crate) async fn service_certificates(
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<ServiceParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = query_params(query)?;
    let name = service("name", &name)?;
    let env = environment(p.environment.as_deref())?;
    let ns = namespace(p.namespace)?;
    let cluster = cluster(p.cluster.as_deref())?;
    let found = state
        .store
        .find_services(&name, ns.as_deref(), env.as_ref(), cluster.as_ref())
        .await
        .map_err(store_error(&state))?;
    let uids: Vec<Uid> = found.iter().map(ServiceRef::uid).collect();
    let secured = state
        .store
        .certificates_securing(&uids)
        .await
        .map_err(store_error(&state))?;
    let now = Utc::now();
    let items: Vec<serde_json::Value> = secured
        .into_iter()
        .map(|s| {
            let days = (s.certificate.not_after - now).num_days();
            let mut item = json!(s);
            item["expires_in_days"] = json!(days);
            item
        })
        .collect();
    Ok(Json(json!({"items": items})).into_response())
}

/// `GET /v1/services/{name}/resilience?environment=`: verdicts per scenario across releases.
#[utoipa::path(get, path = "/v1/services/{name}/resilience", tag = "chaos",
    params(("name" = deploygraph_model::ServiceName, Path), ServiceParams),
    responses((status = 200, description = "Verdicts per scenario across releases, from the newest 10000 runs (`truncated` when older ones were left out)", body = crate::openapi::JsonObject)))]
pub(crate) async fn resilience(
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<ServiceParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let p = query_params(query)?;
    let name = service("name", &name)?;
    namespace(p.namespace)?;
    let env = environment(p.environment.as_deref())?;
    let cluster = cluster(p.cluster.as_deref())?;
    let (rows, truncated) = deploygraph_chaos::resilience::of_service(
        state.store.as_ref(),
        &name,
        env.as_ref(),
        cluster.as_ref(),
    )
    .await
    .map_err(store_error(&state))?;
    Ok(Json(json!({ "service": name, "runs": rows, "truncated": truncated })).into_response())
}

/// `GET /v1/chaos/runs/{uid}`.
#[utoipa::path(get, path = "/v1/chaos/runs/{uid}", tag = "chaos",
    params(("uid" = String, Path, description = "A chaos run's uid")),
    responses(
        (status = 200, description = "The run", body = crate::openapi::JsonObject),
        (status = 404, description = "No such run", body = crate::openapi::ErrorBody),
    ))]
pub(crate) async fn get_chaos_run(
    State(state): State<AppState>,
    Path(uid): Path<String>,
) -> Result<Response, ApiError> {
    let Ok(parsed) = Uid::parse(&uid) else {
        return Err(ApiError::not_found(format!("no chaos run {uid:?}")));
    };
    state
        .store
        .get_chaos_run(&parsed)
        .await
        .map_err(store_error(&state))?
        .map(|run| Json(run).into_response())
        .ok_or_else(|| ApiError::not_found(format!("no chaos run {uid:?}")))
}
