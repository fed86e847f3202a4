//! Canary analyses over HTTP: `POST /v1/canary/analyses` (the judge's decision on a
//! deployment's rollout, recorded on each decision and at the end) and
//! `GET /v1/deployments/{uid}/canary` (a deployment's analyses and the rollbacks that undid
//! it, newest first); and the hooks that run an analysis on the server for a rollout
//! controller — `GET /v1/canary/judge`, an Argo Rollouts web metric provider ([`judge`]), and
//! `POST /v1/canary/flagger`, a Flagger webhook ([`flagger`]).
//!
//! An analysis' uid is derived from its deployment and start, so each later record of a
//! running analysis replaces the earlier one (200); the first is created (201). An analysis of
//! a deployment that is not stored is a 404 naming `deployment`, and nothing is written.

pub mod flagger;
pub mod judge;
mod record;

pub use judge::HooksConfig;
pub use record::{analysis_input, baseline_of, verdict_of};

use crate::AppState;
use crate::error::ApiError;
use crate::handlers::parse_json;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use deploygraph_model::{CanaryAnalysis, CanaryAnalysisInput};
use deploygraph_store::RecordKind;
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

/// `POST /v1/canary/analyses`: records (or replaces) a canary analysis of a stored deployment.
#[utoipa::path(post, path = "/v1/canary/analyses", tag = "canary",
    request_body(content = CanaryAnalysisInput, content_type = "application/json"),
    responses(
        (status = 201, description = "Recorded: the analysis, with its uid and the deployment's service", body = crate::openapi::JsonObject, headers(("Location" = String))),
        (status = 200, description = "A later decision of the same analysis (same deployment and `started_at`) replaced the stored one, or it was already stored so: the analysis", body = crate::openapi::JsonObject, headers(("Location" = String))),
        (status = 404, description = "The deployment is not stored (`field`: `deployment`); nothing was written", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn record_analysis(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let input: CanaryAnalysisInput = parse_json(&state, &headers, body)?;
    let (kind, analysis) = store_analysis(&state, input).await?;
    let status = match kind {
        RecordKind::Created => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    let location = format!("/v1/deployments/{}/canary", analysis.deployment);
    Ok((status, [(header::LOCATION, location)], Json(analysis)).into_response())
}

/// Records one round of an analysis this server runs itself (`serve`'s analyses of the rollouts
/// its Kubernetes watcher records) exactly as `POST /v1/canary/analyses` records it: validated,
/// stored with its deployment's follow-up, counted, and the follow-ups woken.
///
/// # Errors
/// The API's error: invalid input (422), the deployment not stored (404), a store outage (503).
pub async fn record(
    state: &AppState,
    input: CanaryAnalysisInput,
) -> Result<(RecordKind, CanaryAnalysis), ApiError> {
    store_analysis(state, input).await
}

/// Validates and stores an analysis: how it was stored (created, updated…) and the analysis.
/// A deployment that is not stored is a 404 naming `deployment`; a store outage a 503.
pub(crate) async fn store_analysis(
    state: &AppState,
    input: CanaryAnalysisInput,
) -> Result<(RecordKind, CanaryAnalysis), ApiError> {
    let analysis = input.validate()?;
    let verdict = analysis.verdict.as_str();
    let started = Instant::now();
    // A write once started runs to its end even when the client goes away.
    let store = Arc::clone(&state.store);
    let result =
        crate::detached(async move { store.record_canary_analysis(&analysis).await }).await;
    state.metrics.store_call("record_canary_analysis", started);
    let outcome = result.map_err(|e| match e {
        deploygraph_store::Error::NotFound { what, uid } => {
            state.metrics.canary_analysis(verdict, "not_found");
            ApiError {
                field: Some("deployment".into()),
                ..ApiError::not_found(format!("{what} {uid} is not stored"))
            }
        }
        e => {
            state.metrics.canary_analysis(verdict, "unavailable");
            ApiError::from_store(&e, state.config.retry_after_secs)
        }
    })?;
    state
        .metrics
        .canary_analysis(verdict, outcome.kind.as_str());
    let a = &outcome.analysis;
    tracing::info!(
        canary.uid = %a.uid,
        deployment.uid = %a.deployment,
        service = %a.service.name,
        verdict = a.verdict.as_str(),
        outcome = outcome.kind.as_str(),
        "recorded canary analysis"
    );
    if outcome.kind != RecordKind::Unchanged {
        // A new verdict left the deployment's follow-up (re-attribution) in the store.
        state.followed_up([a.deployment.clone()]);
    }
    Ok((outcome.kind, outcome.analysis))
}

/// `GET /v1/deployments/{uid}/canary`: the deployment's canary analyses, newest first.
#[utoipa::path(get, path = "/v1/deployments/{uid}/canary", tag = "canary",
    params(("uid" = String, Path, description = "A deployment's uid")),
    responses(
        (status = 200, description = "`{deployment, analyses: [...], rollbacks: [...]}`: each analysis with its verdict, baseline, times, rounds, `final` and per-metric verdicts with their evidence, newest first; the rollbacks that undid the deployment (reason, by, at, target, dry_run, the restored deployment), newest first", body = crate::openapi::JsonObject),
        (status = 404, description = "No such deployment", body = crate::openapi::ErrorBody),
    ))]
pub(crate) async fn deployment_analyses(
    State(state): State<AppState>,
    Path(uid): Path<String>,
) -> Result<Response, ApiError> {
    let parsed = crate::handlers::stored_deployment(&state, &uid)
        .await?
        .deployment
        .uid;
    let store_error =
        |e: deploygraph_store::Error| ApiError::from_store(&e, state.config.retry_after_secs);
    let started = Instant::now();
    let analyses = state
        .store
        .canary_analyses(std::slice::from_ref(&parsed))
        .await;
    state.metrics.store_call("canary_analyses", started);
    let analyses = analyses.map_err(store_error)?;
    let started = Instant::now();
    let rollbacks = state.store.rollbacks(std::slice::from_ref(&parsed)).await;
    state.metrics.store_call("rollbacks", started);
    let rollbacks = rollbacks.map_err(store_error)?;
    Ok(
        Json(json!({"deployment": parsed, "analyses": analyses, "rollbacks": rollbacks}))
            .into_response(),
    )
}
