//! Rollbacks over HTTP: `POST /v1/rollbacks` records a rollback of a stored deployment
//! (`deploygraph canary analyze --rollback` posts one once its request was accepted); a
//! deployment's rollbacks are listed beside its canary analyses by
//! `GET /v1/deployments/{uid}/canary`.
//!
//! A rollback's uid is derived from its deployment, time, target and namespace: the first
//! record is created (201), the same one again is a no-op (200), other facts under the same
//! uid are a 409. An unknown deployment (or named restored deployment) is a 404 naming the
//! field, and nothing is written.

use crate::AppState;
use crate::error::ApiError;
use crate::handlers::parse_json;
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use deploygraph_model::RollbackInput;
use deploygraph_store::RecordKind;
use std::sync::Arc;
use std::time::Instant;

/// `POST /v1/rollbacks`: records a rollback of a stored deployment.
#[utoipa::path(post, path = "/v1/rollbacks", tag = "canary",
    request_body(content = RollbackInput, content_type = "application/json"),
    responses(
        (status = 201, description = "Recorded: the rollback, with its uid, the undone deployment's service and the restored deployment (when known); unless `dry_run`, the deployment's status is now `rolled_back`", body = crate::openapi::JsonObject, headers(("Location" = String))),
        (status = 200, description = "The same rollback was already stored: the rollback", body = crate::openapi::JsonObject, headers(("Location" = String))),
        (status = 404, description = "The deployment (`field`: `deployment`) or the restored one (`restored`) is not stored; nothing was written", body = crate::openapi::ErrorBody),
        (status = 409, description = "Its uid holds other facts, or the restored deployment is of another service or environment; nothing was written", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn record_rollback(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let input: RollbackInput = parse_json(&state, &headers, body)?;
    let (kind, rollback) = record(&state, input).await?;
    let status = match kind {
        RecordKind::Created => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    let location = format!("/v1/deployments/{}/canary", rollback.deployment);
    Ok((status, [(header::LOCATION, location)], Json(rollback)).into_response())
}

/// Validates and stores a rollback (the handler's, and `serve`'s own for the rollouts it rolls
/// back): how it was stored and the rollback; a new rollback that made its deployment
/// `rolled_back` wakes the follow-ups it left in the store.
///
/// # Errors
/// 422 for invalid input, 404 naming `deployment` or `restored`, 409 for a conflict, 503 for a
/// store outage.
pub async fn record(
    state: &AppState,
    input: RollbackInput,
) -> Result<(RecordKind, deploygraph_model::Rollback), ApiError> {
    let rollback = input.validate()?;
    let started = Instant::now();
    // A write once started runs to its end even when the client goes away.
    let store = Arc::clone(&state.store);
    let result = crate::detached(async move { store.record_rollback(&rollback).await }).await;
    state.metrics.store_call("record_rollback", started);
    let outcome = result.map_err(|e| match e {
        deploygraph_store::Error::NotFound { what, uid } => ApiError {
            field: Some(
                if what == "deployment" {
                    "deployment"
                } else {
                    "restored"
                }
                .into(),
            ),
            ..ApiError::not_found(format!("{what} {uid} is not stored"))
        },
        e => ApiError::from_store(&e, state.config.retry_after_secs),
    })?;
    if outcome.kind == RecordKind::Conflict {
        let message = outcome
            .conflict
            .unwrap_or_else(|| "conflicting rollback".into());
        let field = if message.starts_with("restored:") {
            "restored"
        } else {
            "deployment"
        };
        return Err(ApiError::conflict(field, message));
    }
    let r = &outcome.rollback;
    tracing::info!(
        rollback.uid = %r.uid,
        deployment.uid = %r.deployment,
        service = %r.service.name,
        target = %r.target,
        dry_run = r.dry_run,
        outcome = outcome.kind.as_str(),
        "recorded rollback"
    );
    if outcome.kind == RecordKind::Created && !r.dry_run {
        state.followed_up([r.deployment.clone()]);
    }
    Ok((outcome.kind, outcome.rollback))
}
