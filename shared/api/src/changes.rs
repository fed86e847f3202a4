//! Changes that are not rollouts over HTTP: `POST /v1/changes` (one change, or a batch) and
//! `GET /v1/changes/{uid}`.
//!
//! A change is recorded once: posting it again answers `unchanged`, and other facts under its
//! uid (a reused `id`) are a conflict. A new change's follow-up (re-attributing the alerts in
//! the window after it, on its services and their dependents) is written with it.

use crate::AppState;
use crate::error::ApiError;
use crate::handlers::{from_value, parse_json};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use deploygraph_model::change::limits;
use deploygraph_model::{Change, ChangeEventInput, Source, Uid};
use deploygraph_store::{ChangeOutcome, RecordKind};
use serde_json::{Value, json};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;
use utoipa::openapi::schema::{ArrayBuilder, OneOfBuilder};
use utoipa::openapi::{Ref, RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

/// The body of `POST /v1/changes`: one change, or an array of 1 to 1000 of them.
pub struct ChangesRequest;

impl PartialSchema for ChangesRequest {
    fn schema() -> RefOr<Schema> {
        let one = Ref::from_schema_name("ChangeEventInput");
        RefOr::T(Schema::OneOf(
            OneOfBuilder::new()
                .item(one.clone())
                .item(
                    ArrayBuilder::new()
                        .items(one)
                        .min_items(Some(1))
                        .max_items(Some(limits::BATCH)),
                )
                .description(Some(
                    "One change, or a batch of them recorded in one transaction (all or none \
                     valid: an invalid item is a 422 naming it, `[3].kind`).",
                ))
                .build(),
        ))
    }
}

impl ToSchema for ChangesRequest {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ChangesRequest")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((
            ChangeEventInput::name().into_owned(),
            ChangeEventInput::schema(),
        ));
        <ChangeEventInput as ToSchema>::schemas(schemas);
    }
}

/// Records `changes` in one transaction; the outcome of each, in order.
pub(crate) async fn record(
    state: &AppState,
    changes: Vec<Change>,
) -> Result<Vec<ChangeOutcome>, ApiError> {
    let kinds: Vec<&'static str> = changes.iter().map(|c| c.kind.as_str()).collect();
    let started = Instant::now();
    // A write once started runs to its end even when the client goes away.
    let store = Arc::clone(&state.store);
    let result = crate::detached(async move { store.record_changes(changes).await }).await;
    state.metrics.store_call("record_changes", started);
    let outcomes = result.map_err(|e| {
        for kind in &kinds {
            state.metrics.change(kind, "unavailable");
        }
        ApiError::from_store(&e, state.config.retry_after_secs)
    })?;
    let mut created = Vec::new();
    for o in &outcomes {
        state
            .metrics
            .change(o.change.kind.as_str(), o.kind.as_str());
        if o.kind == RecordKind::Created {
            // The store wrote the follow-up (re-attribution around it) with the change.
            created.push(o.change.uid.clone());
        }
        tracing::info!(change.uid = %o.change.uid, change.kind = o.change.kind.as_str(), services = %o.change.service_names(), outcome = o.kind.as_str(), "recorded change");
    }
    if !created.is_empty() {
        state.followed_up(created);
    }
    Ok(outcomes)
}

/// `POST /v1/changes`: one change (201 created, 200 already recorded, 409 conflict naming
/// `id`), or a batch (200 with the outcome of each).
#[utoipa::path(post, path = "/v1/changes", tag = "changes",
    request_body(content = ChangesRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "One change, recorded: the change", body = crate::openapi::JsonObject, headers(("Location" = String))),
        (status = 200, description = "One change, already recorded with the same facts: the change. Or a batch, stored: `{received, created, unchanged, conflicts, changes: [{uid, kind, outcome, conflict?}]}` (a conflicting item is not written; the others are)", body = crate::openapi::JsonObject),
        (status = 409, description = "One change whose `id` was already used for a different change", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn record_changes(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body: Value = parse_json(&state, &headers, body)?;
    if !body.is_array() {
        let input: ChangeEventInput = from_value(body)?;
        let change = input.validate(Source::Api)?;
        let outcome = record(&state, vec![change])
            .await?
            .pop()
            .ok_or_else(ApiError::internal)?;
        let status = match outcome.kind {
            RecordKind::Conflict => {
                return Err(ApiError::conflict(
                    "id",
                    outcome
                        .conflict
                        .unwrap_or_else(|| "conflicting change".into()),
                ));
            }
            RecordKind::Created => StatusCode::CREATED,
            // A store records (never queues).
            RecordKind::Updated | RecordKind::Unchanged | RecordKind::Queued => StatusCode::OK,
        };
        let location = format!("/v1/changes/{}", outcome.change.uid);
        return Ok((status, [(header::LOCATION, location)], Json(outcome.change)).into_response());
    }
    let inputs: Vec<ChangeEventInput> = from_value(body)?;
    if inputs.is_empty() || inputs.len() > limits::BATCH {
        return Err(ApiError::invalid(
            "",
            format!("a batch holds 1 to {} changes", limits::BATCH),
        ));
    }
    let changes = inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            input
                .validate(Source::Api)
                .map_err(|e| e.within(&format!("[{i}]")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let received = changes.len();
    let outcomes = record(&state, changes).await?;
    let count = |kind: RecordKind| outcomes.iter().filter(|o| o.kind == kind).count();
    let items: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            let mut item = json!({
                "uid": o.change.uid,
                "kind": o.change.kind,
                "outcome": o.kind.as_str(),
            });
            if let Some(conflict) = &o.conflict {
                item["conflict"] = json!(conflict);
            }
            item
        })
        .collect();
    Ok(Json(json!({
        "received": received,
        "created": count(RecordKind::Created),
        "unchanged": count(RecordKind::Unchanged),
        "conflicts": count(RecordKind::Conflict),
        "changes": items,
    }))
    .into_response())
}

/// `GET /v1/changes/{uid}`.
#[utoipa::path(get, path = "/v1/changes/{uid}", tag = "changes",
    params(("uid" = String, Path, description = "A change's uid")),
    responses(
        (status = 200, description = "The change", body = crate::openapi::JsonObject),
        (status = 404, description = "No such change", body = crate::openapi::ErrorBody),
    ))]
pub(crate) async fn get_change(
    State(state): State<AppState>,
    Path(uid): Path<String>,
) -> Result<Response, ApiError> {
    let Ok(parsed) = Uid::parse(&uid) else {
        return Err(ApiError::not_found(format!("no change {uid:?}")));
    };
    let started = Instant::now();
    let found = state.store.get_change(&parsed).await;
    state.metrics.store_call("get_change", started);
    found
        .map_err(|e| ApiError::from_store(&e, state.config.retry_after_secs))?
        .map(|change| Json(change).into_response())
        .ok_or_else(|| ApiError::not_found(format!("no change {uid:?}")))
}
