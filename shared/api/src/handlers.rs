//! Request handlers. Each parses and validates its input into domain types, makes one store
//! call, and renders the result; errors are [`ApiError`]s.

use crate::AppState;
use crate::cdevents::{Event, Incident};
use crate::error::ApiError;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use deploygraph_model::deployment::DeploymentInput;
use deploygraph_model::infra::{CHECK_KINDS, CHECK_TARGET_MAX_LEN};
use deploygraph_model::schema::parse_input_time;
use deploygraph_model::{Deployment, InfraSnapshot, ServiceName, Source, Uid};
use deploygraph_store::{DeploymentFilter, FilterParams, RecordKind, StoredDeployment};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Instant;

/// Parses a JSON body: 415 without a JSON content type, 413 over the limit, 400 for malformed
/// JSON, 422 naming the field for unknown fields and wrong types.
pub(crate) fn parse_json<T: DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    parse_json_within(state.config.max_body_bytes, headers, body)
}

/// [`parse_json`] for a route with its own body limit, `limit` bytes.
pub(crate) fn parse_json_within<T: DeserializeOwned>(
    limit: usize,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            let m = m.trim();
            m.eq_ignore_ascii_case("application/json") || m.ends_with("+json")
        });
    if !is_json {
        return Err(ApiError::unsupported_media_type());
    }
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(limit)
        } else {
            ApiError::malformed(rejection.body_text())
        }
    })?;
    let mut de = serde_json::Deserializer::from_slice(&body);
    let value = serde_path_to_error::deserialize(crate::strict::Strict(&mut de)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => {
                let message = inner.to_string();
                ApiError::invalid(field_of(&path, &message), message)
            }
            _ => ApiError::malformed(format!("the body is not valid JSON: {inner}")),
        }
    })?;
    de.end()
        .map_err(|e| ApiError::malformed(format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

/// Deserializes a body already parsed as JSON: 422 naming the field, as [`parse_json`].
pub(crate) fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(crate::strict::Strict(value)).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        ApiError::invalid(field_of(&path, &message), message)
    })
}

/// The field a deserialization error is about: its path, and for a missing field the field
/// the message names (serde reports those at the enclosing object).
fn field_of(path: &str, message: &str) -> String {
    let path = if path == "." { "" } else { path };
    match message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        Some(missing) if path.is_empty() => missing.to_owned(),
        Some(missing) => format!("{path}.{missing}"),
        None => path.to_owned(),
    }
}

/// Records `batch` in one transaction, counted in the ingest metrics by source and outcome
/// (`unavailable` when the store is), and wakes the pipeline for the deployments created or
/// advanced: the store wrote their follow-ups (snapshot, re-attribution of the alerts around
/// them on their services and dependents) with them.
pub(crate) async fn record_deployments(
    state: &AppState,
    batch: Vec<Deployment>,
) -> Result<Vec<deploygraph_store::RecordOutcome>, ApiError> {
    let sources: Vec<&'static str> = batch.iter().map(|d| d.source.as_str()).collect();
    let started = Instant::now();
    // A write once started runs to its end even when the client goes away.
    let store = Arc::clone(&state.store);
    let result = crate::detached(async move { store.record_deployments(batch).await }).await;
    state.metrics.store_call("record_deployments", started);
    let outcomes = result.map_err(|e| {
        for source in &sources {
            state.metrics.ingested(source, "unavailable");
        }
        ApiError::from_store(&e, state.config.retry_after_secs)
    })?;
    let mut advanced = Vec::new();
    for o in &outcomes {
        let source = o.deployment.source.as_str();
        state.metrics.ingested(source, o.kind.as_str());
        if matches!(o.kind, RecordKind::Created | RecordKind::Updated) {
            state
                .metrics
                .deployment(source, o.deployment.status.as_str());
            advanced.push(o.deployment.uid.clone());
        }
    }
    if !advanced.is_empty() {
        state.followed_up(advanced);
    }
    Ok(outcomes)
}

/// Records one deployment and renders the outcome: 201 created, 200 already recorded (or
/// advanced), 409 conflict naming `key_field`, the idempotency key's field.
async fn record(
    state: &AppState,
    deployment: Deployment,
    key_field: &str,
) -> Result<Response, ApiError> {
    let uid = deployment.uid.clone();
    let outcome = record_deployments(state, vec![deployment])
        .await?
        .pop()
        .ok_or_else(ApiError::internal)?;
    let kind = outcome.kind;
    if kind == RecordKind::Conflict {
        return Err(ApiError::conflict(
            key_field,
            outcome
                .conflict
                .unwrap_or_else(|| "conflicting deployment".into()),
        ));
    }
    // The write is committed; read it back for its FOLLOWS link. Should that read fail, the
    // record is still acknowledged, with `follows` unknown.
    let stored = match state.store.get_deployment(&uid).await {
        Ok(Some(stored)) => stored,
        Ok(None) | Err(_) => StoredDeployment {
            deployment: outcome.deployment,
            follows: None,
        },
    };
    let status = if kind == RecordKind::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    tracing::info!(deployment.uid = %uid, service = %stored.deployment.service, outcome = kind.as_str(), "recorded deployment");
    let location = format!("/v1/deployments/{uid}");
    Ok((status, [(header::LOCATION, location)], Json(stored)).into_response())
}

/// `POST /v1/deployments`.
#[utoipa::path(post, path = "/v1/deployments", tag = "deployments",
    request_body(content = deploygraph_model::deployment::DeploymentInput, content_type = "application/json"),
    responses(
        (status = 201, description = "Recorded", body = crate::openapi::JsonObject, headers(("Location" = String))),
        (status = 200, description = "Already recorded (or advanced)", body = crate::openapi::JsonObject, headers(("Location" = String))),
        (status = 409, description = "Conflicts with the deployment recorded under its id", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn record_deployment(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let input: DeploymentInput = parse_json(&state, &headers, body)?;
    let deployment = input.validate(Source::Api)?;
    record(&state, deployment, "id").await
}

/// `POST /v1/events`: a CDEvent, bare or in a CloudEvent (binary or structured mode). Service
/// events answer like `POST /v1/deployments`, incidents 201/200 with the alert, other types
/// 202 `{"status":"ignored","type":…}`.
#[utoipa::path(post, path = "/v1/events", tag = "deployments",
    request_body(content(
            (crate::cdevents::CdEventSchema = "application/json"),
            (crate::cdevents::CloudEventSchema = "application/cloudevents+json"),
        ),
        description = "A CDEvent (binary mode: its CloudEvent attributes may come as `ce-specversion`, `ce-id`, `ce-source`, `ce-type` headers, which must agree with its context). In structured mode the body is the CloudEvent (`Content-Type: application/cloudevents+json`) with the CDEvent as `data`; batch mode (`application/cloudevents-batch+json`) is 415."),
    responses(
        (status = 201, description = "Recorded: the deployment, or for an incident the alert with its `outcome`", body = crate::openapi::JsonObject, headers(("Location" = String))),
        (status = 200, description = "Already recorded (or advanced)", body = crate::openapi::JsonObject, headers(("Location" = String))),
        (status = 202, description = "A CDEvent type this server does not record: `{status: \"ignored\", type, message}`", body = crate::openapi::JsonObject),
        (status = 409, description = "Conflicts with the event recorded under its source and id", body = crate::openapi::ErrorBody),
        (status = 415, description = "Not JSON, or CloudEvents batch mode", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn record_cdevent(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let raw: serde_json::Value = parse_json(&state, &headers, body)?;
    match crate::cdevents::read(&headers, raw)? {
        Event::Deployment(deployment) => record(&state, *deployment, "context.id").await,
        Event::Incident(incident) => record_incident(&state, *incident).await,
        Event::Ignored { event_type, kind } => {
            state.metrics.cdevent_ignored(kind);
            tracing::debug!(cdevent.type = %event_type, "ignored a CDEvent");
            Ok((
                StatusCode::ACCEPTED,
                Json(serde_json::json!({
                    "status": "ignored",
                    "type": event_type,
                    "message": "deploygraph records service.deployed, .upgraded, .rolledback, \
                                .removed and incident.detected, .resolved; this event was \
                                acknowledged and not recorded",
                })),
            )
                .into_response())
        }
    }
}

/// Records an incident as an alert occurrence, over what is stored for it: 201 when it is
/// new, else 200, with the alert.
async fn record_incident(state: &AppState, incident: Incident) -> Result<Response, ApiError> {
    let uid = incident.alert.uid.clone();
    tracing::debug!(alert.uid = %uid, resolved = incident.resolved, "cdevents incident");
    let started = Instant::now();
    let stored = state.store.get_alert(&uid).await;
    state.metrics.store_call("get_alert", started);
    let stored = stored.map_err(|e| ApiError::from_store(&e, state.config.retry_after_secs))?;
    let alert = incident.over(stored.as_ref());
    let (alert, outcome) = crate::rca::record_alerts(state, vec![alert])
        .await?
        .pop()
        .ok_or_else(ApiError::internal)?;
    let status = if outcome == deploygraph_model::AlertOutcome::Created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = format!("/v1/alerts/{}/suspects", alert.fingerprint);
    let mut body = serde_json::to_value(&alert).map_err(|_| ApiError::internal())?;
    if let Some(object) = body.as_object_mut() {
        object.insert("outcome".into(), crate::rca::outcome_name(outcome).into());
    }
    Ok((status, [(header::LOCATION, location)], Json(body)).into_response())
}

/// `GET /v1/deployments/{uid}`.
#[utoipa::path(get, path = "/v1/deployments/{uid}", tag = "deployments",
    params(("uid" = String, Path, description = "A deployment's uid")),
    responses(
        (status = 200, description = "The deployment", body = crate::openapi::JsonObject),
        (status = 404, description = "No such deployment", body = crate::openapi::ErrorBody),
    ))]
pub(crate) async fn get_deployment(
    State(state): State<AppState>,
    Path(uid): Path<String>,
) -> Result<Json<StoredDeployment>, ApiError> {
    stored_deployment(&state, &uid).await.map(Json)
}

/// The deployment a path names, read from the store: 404 when the uid is malformed or
/// unknown, 503 when the store is unavailable.
pub(crate) async fn stored_deployment(
    state: &AppState,
    uid: &str,
) -> Result<StoredDeployment, ApiError> {
    let Ok(parsed) = Uid::parse(uid) else {
        return Err(ApiError::not_found(format!("no deployment {uid:?}")));
    };
    let started = Instant::now();
    let found = state.store.get_deployment(&parsed).await;
    state.metrics.store_call("get_deployment", started);
    found
        .map_err(|e| ApiError::from_store(&e, state.config.retry_after_secs))?
        .ok_or_else(|| ApiError::not_found(format!("no deployment {uid:?}")))
}

/// Query-string parameters: an unknown or malformed one is a 422 naming it.
pub(crate) fn query_params<T: DeserializeOwned>(
    query: Result<Query<T>, axum::extract::rejection::QueryRejection>,
) -> Result<T, ApiError> {
    query.map(|Query(p)| p).map_err(|e| {
        let text = e.body_text();
        let field = text
            .split('`')
            .nth(1)
            .filter(|_| text.contains("unknown field"))
            .unwrap_or_default()
            .to_owned();
        ApiError::invalid(field, text)
    })
}

async fn list(state: &AppState, filter: DeploymentFilter) -> Result<Response, ApiError> {
    let started = Instant::now();
    let page = state.store.list_deployments(&filter).await;
    state.metrics.store_call("list_deployments", started);
    let page = page.map_err(|e| ApiError::from_store(&e, state.config.retry_after_secs))?;
    Ok(Json(page).into_response())
}

/// `GET /v1/deployments`.
#[utoipa::path(get, path = "/v1/deployments", tag = "deployments",
    params(deploygraph_store::FilterParams),
    responses((status = 200, description = "A page of deployments, newest first", body = crate::openapi::ListPage)))]
pub(crate) async fn list_deployments(
    State(state): State<AppState>,
    query: Result<Query<FilterParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let filter = query_params(query)?.into_filter()?;
    list(&state, filter).await
}

/// [`FilterParams`] without the service, which the path names.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ServiceDeploymentParams {
    /// As in [`FilterParams`].
    #[param(value_type = Option<deploygraph_model::Environment>)]
    environment: Option<String>,
    /// As in [`FilterParams`].
    #[param(value_type = Option<deploygraph_model::Cluster>)]
    cluster: Option<String>,
    /// As in [`FilterParams`].
    #[param(value_type = Option<deploygraph_model::DeploymentStatus>)]
    status: Option<String>,
    /// As in [`FilterParams`].
    #[param(value_type = Option<deploygraph_model::schema::InputTime>)]
    since: Option<String>,
    /// As in [`FilterParams`].
    #[param(value_type = Option<deploygraph_model::schema::InputTime>)]
    until: Option<String>,
    /// As in [`FilterParams`].
    #[param(value_type = Option<usize>, minimum = 1, maximum = 10000)]
    limit: Option<String>,
    /// As in [`FilterParams`].
    #[param(min_length = 1)]
    cursor: Option<String>,
}

/// `GET /v1/services/{name}/deployments`.
#[utoipa::path(get, path = "/v1/services/{name}/deployments", tag = "deployments",
    params(("name" = deploygraph_model::ServiceName, Path), ServiceDeploymentParams),
    responses((status = 200, description = "A page of the service's deployments", body = crate::openapi::ListPage)))]
pub(crate) async fn service_deployments(
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<ServiceDeploymentParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let p: ServiceDeploymentParams = query_params(query)?;
    ServiceName::parse(&name).map_err(|e| ApiError::invalid("name", e.message))?;
    let params = FilterParams {
        service: Some(name),
        environment: p.environment,
        cluster: p.cluster,
        status: p.status,
        since: p.since,
        until: p.until,
        limit: p.limit,
        cursor: p.cursor,
    };
    list(&state, params.into_filter()?).await
}

/// `GET /v1/services`.
#[utoipa::path(get, path = "/v1/services", tag = "services",
    responses((status = 200, description = "Every service", body = crate::openapi::JsonObject)))]
pub(crate) async fn list_services(State(state): State<AppState>) -> Result<Response, ApiError> {
    let started = Instant::now();
    let services = state.store.list_services().await;
    state.metrics.store_call("list_services", started);
    let services = services.map_err(|e| ApiError::from_store(&e, state.config.retry_after_secs))?;
    Ok(Json(serde_json::json!({ "items": services })).into_response())
}

/// `POST /v1/snapshots` body: checks to run now, or checks that ran elsewhere. Which one is
/// told by the presence of `checks`; unknown fields are rejected in both.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub(crate) enum SnapshotRequest {
    /// Run the checks of a gate configuration now.
    Run(RunChecks),
    /// Record checks that ran elsewhere (`deploygraph gate --record --server`).
    Record(RecordChecks),
}

/// Run the checks of a gate configuration (the YAML file's schema, as JSON) now.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunChecks {
    /// The gate configuration.
    #[schema(value_type = Object)]
    config: serde_json::Map<String, serde_json::Value>,
    /// The deployment the snapshot is for.
    #[schema(value_type = Option<deploygraph_model::schema::DeploymentUid>)]
    deployment: Option<String>,
    /// Cluster or environment name.
    #[schema(max_length = 256)]
    cluster: Option<String>,
}

/// Checks that ran elsewhere; the verdict and uid are derived here, not trusted.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecordChecks {
    /// The checks.
    #[schema(min_items = 1, max_items = 10000)]
    checks: Vec<deploygraph_model::CheckRecord>,
    /// When they ran.
    #[schema(value_type = deploygraph_model::schema::InputTime)]
    taken_at: String,
    /// The deployment the snapshot is for.
    #[schema(value_type = Option<deploygraph_model::schema::DeploymentUid>)]
    deployment: Option<String>,
    /// Cluster or environment name.
    #[schema(max_length = 256)]
    cluster: Option<String>,
}

/// Most checks in one snapshot.
const MAX_CHECKS: usize = 10_000;
/// Longest cluster name.
const MAX_CLUSTER_LEN: usize = 256;

fn snapshot_deployment(deployment: Option<&str>) -> Result<Option<Uid>, ApiError> {
    deployment
        .map(Uid::parse_deployment)
        .transpose()
        .map_err(|e| ApiError::invalid("deployment", e.message))
}

fn snapshot_cluster(cluster: Option<String>) -> Result<Option<String>, ApiError> {
    match cluster {
        Some(c) if c.chars().count() > MAX_CLUSTER_LEN => Err(ApiError::invalid(
            "cluster",
            format!("is longer than {MAX_CLUSTER_LEN} characters"),
        )),
        other => Ok(other.filter(|c| !c.is_empty())),
    }
}

/// A snapshot read from the store as a response: 200, 404 with `missing`, or the store error.
fn snapshot_response(
    state: &AppState,
    found: deploygraph_store::Result<Option<InfraSnapshot>>,
    missing: impl FnOnce() -> String,
) -> Result<Response, ApiError> {
    found
        .map_err(|e| ApiError::from_store(&e, state.config.retry_after_secs))?
        .map(|s| Json(s).into_response())
        .ok_or_else(|| ApiError::not_found(missing()))
}

async fn store_snapshot(state: &AppState, snapshot: InfraSnapshot) -> Result<Response, ApiError> {
    let started = Instant::now();
    let recorded = state.store.record_snapshot(&snapshot).await;
    state.metrics.store_call("record_snapshot", started);
    recorded.map_err(|e| ApiError::from_store(&e, state.config.retry_after_secs))?;
    state.metrics.snapshot(snapshot.verdict.as_str());
    let location = format!("/v1/snapshots/{}", snapshot.uid);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(snapshot),
    )
        .into_response())
}

/// Records checks that ran elsewhere; the verdict and uid are derived here, not trusted.
fn snapshot_from_checks(
    checks: Vec<deploygraph_model::CheckRecord>,
    taken_at: &str,
    cluster: Option<String>,
    deployment: Option<Uid>,
) -> Result<InfraSnapshot, ApiError> {
    let taken_at = parse_input_time("taken_at", taken_at)?;
    if checks.is_empty() || checks.len() > MAX_CHECKS {
        return Err(ApiError::invalid(
            "checks",
            format!("between 1 and {MAX_CHECKS} checks"),
        ));
    }
    for (i, check) in checks.iter().enumerate() {
        if !CHECK_KINDS.contains(&check.kind.as_str()) {
            return Err(ApiError::invalid(
                format!("checks[{i}].kind"),
                format!("{:?} is not one of {}", check.kind, CHECK_KINDS.join(", ")),
            ));
        }
        if check.target.is_empty() || check.target.chars().count() > CHECK_TARGET_MAX_LEN {
            return Err(ApiError::invalid(
                format!("checks[{i}].target"),
                format!("1 to {CHECK_TARGET_MAX_LEN} characters"),
            ));
        }
    }
    Ok(InfraSnapshot::new(taken_at, cluster, deployment, checks))
}

/// The longest a snapshot request may run its checks.
const MAX_SNAPSHOT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// `POST /v1/snapshots`: runs the checks now (only those the server's gate configuration or
/// allow-list permits, see [`crate::snapshot_targets`]), records the snapshot, returns it (201).
#[utoipa::path(post, path = "/v1/snapshots", tag = "snapshots",
    request_body(content = SnapshotRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Recorded", body = crate::openapi::JsonObject, headers(("Location" = String))),
        (status = 403, description = "A check of `config` names a target neither the server's gate configuration nor its allow-list (`--snapshot-allow-target`) permits; the field names it (`config.tls[1]`)", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn take_snapshot(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body: serde_json::Value = parse_json(&state, &headers, body)?;
    if body.get("checks").is_some() {
        let request: RecordChecks = from_value(body)?;
        let deployment = snapshot_deployment(request.deployment.as_deref())?;
        let cluster = snapshot_cluster(request.cluster)?;
        let snapshot =
            snapshot_from_checks(request.checks, &request.taken_at, cluster, deployment)?;
        return store_snapshot(&state, snapshot).await;
    }
    let request: RunChecks = from_value(body)?;
    let deployment = snapshot_deployment(request.deployment.as_deref())?;
    let cluster = snapshot_cluster(request.cluster)?;
    let config = serde_json::Value::Object(request.config);
    let text =
        serde_json::to_string(&config).map_err(|e| ApiError::invalid("config", e.to_string()))?;
    let config_error = |e: deploygraph_probe::config::ConfigError| {
        let field = if e.field.is_empty() {
            "config".to_owned()
        } else {
            format!("config.{}", e.field)
        };
        ApiError::invalid(field, e.message)
    };
    let config = deploygraph_probe::config::parse(&text).map_err(config_error)?;
    if config.ca_file.is_some()
        || !config.cert_files.is_empty()
        || config.apiserver.iter().any(|a| a.ca_file.is_some())
    {
        return Err(ApiError::invalid(
            "config",
            "files on the server (ca_file, cert_files, apiserver ca_file) cannot be named over HTTP",
        ));
    }
    // Before any connection: only targets the server's gate configuration or allow-list names.
    let server_config = match &state.snapshotter {
        Some(snapshotter) => Some(snapshotter.config().map_err(|reason| {
            tracing::warn!(reason = %reason, "the gate configuration is unusable");
            ApiError::internal()
        })?),
        None => None,
    };
    crate::snapshot_targets::authorize(
        &config,
        server_config.as_ref(),
        &state.config.snapshot_allow_targets,
    )?;
    let mut plan = config.plan().map_err(config_error)?;
    plan.options.deadline = plan.options.deadline.min(MAX_SNAPSHOT_DEADLINE);
    let results = deploygraph_probe::runner::run(&plan.checks, &plan.options).await;
    let snapshot = deploygraph_probe::snapshot::from_results(
        &results,
        chrono::Utc::now(),
        cluster,
        deployment,
    );
    store_snapshot(&state, snapshot).await
}

/// `GET /v1/snapshots/{uid}`.
#[utoipa::path(get, path = "/v1/snapshots/{uid}", tag = "snapshots",
    params(("uid" = String, Path, description = "A snapshot's uid")),
    responses(
        (status = 200, description = "The snapshot", body = crate::openapi::JsonObject),
        (status = 404, description = "No such snapshot", body = crate::openapi::ErrorBody),
    ))]
pub(crate) async fn get_snapshot(
    State(state): State<AppState>,
    Path(uid): Path<String>,
) -> Result<Response, ApiError> {
    let found = state
        .store
        .get_snapshot(&Uid::from_stored(uid.as_str()))
        .await;
    snapshot_response(&state, found, || format!("no snapshot {uid:?}"))
}

/// `GET /v1/snapshots/latest`.
#[utoipa::path(get, path = "/v1/snapshots/latest", tag = "snapshots",
    responses(
        (status = 200, description = "The newest snapshot", body = crate::openapi::JsonObject),
        (status = 404, description = "No snapshot yet", body = crate::openapi::ErrorBody),
    ))]
pub(crate) async fn latest_snapshot(State(state): State<AppState>) -> Result<Response, ApiError> {
    let found = state.store.latest_snapshot(None).await;
    snapshot_response(&state, found, || "no snapshot has been recorded".to_owned())
}

/// `GET /v1/deployments/{uid}/snapshot`: the newest snapshot taken for it.
#[utoipa::path(get, path = "/v1/deployments/{uid}/snapshot", tag = "snapshots",
    params(("uid" = String, Path, description = "A deployment's uid")),
    responses(
        (status = 200, description = "The newest snapshot taken for it", body = crate::openapi::JsonObject),
        (status = 404, description = "None was taken", body = crate::openapi::ErrorBody),
    ))]
pub(crate) async fn deployment_snapshot(
    State(state): State<AppState>,
    Path(uid): Path<String>,
) -> Result<Response, ApiError> {
    let found = state
        .store
        .snapshot_for_deployment(&Uid::from_stored(uid.as_str()))
        .await;
    snapshot_response(&state, found, || {
        format!("no snapshot was taken for deployment {uid:?}")
    })
}

/// `GET /v1/openapi.json`.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "This document", body = crate::openapi::JsonObject)))]
pub(crate) async fn openapi(State(state): State<AppState>) -> impl IntoResponse {
    if state.config.read_token.is_some() {
        Json(crate::openapi::document_with_read_token())
    } else {
        Json(crate::openapi::document())
    }
}

/// `GET /healthz`: the process is alive.
#[utoipa::path(get, path = "/healthz", tag = "meta",
    responses((status = 200, description = "Alive", body = crate::openapi::JsonObject)))]
pub(crate) async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

/// `GET /readyz`: the store is reachable and migrated.
#[utoipa::path(get, path = "/readyz", tag = "meta",
    responses(
        (status = 200, description = "The store is reachable and migrated", body = crate::openapi::JsonObject),
        (status = 503, description = "Not ready", body = crate::openapi::JsonObject, headers(("Retry-After" = u64))),
    ))]
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ready().await {
        Ok(()) => Json(serde_json::json!({ "status": "ready", "store": state.store.backend() }))
            .into_response(),
        Err(e) => {
            tracing::warn!(error.message = %e, error.cause_chain = ?e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(
                    header::RETRY_AFTER,
                    state.config.retry_after_secs.to_string(),
                )],
                Json(serde_json::json!({
                    "status": "unavailable",
                    "store": state.store.backend(),
                    "reason": e.to_string(),
                })),
            )
                .into_response()
        }
    }
}

/// Unknown routes.
pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; see /v1/openapi.json")
}
