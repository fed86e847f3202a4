//! Reviewers' verdicts over HTTP: `POST /v1/alerts/{fingerprint}/suspects/{uid}/verdict`.
//!
//! An SRE confirms a subject (a deployment or a change) as the cause of an alert, or rejects
//! it: `(subject)-[:CAUSED {by, at, note}]->(alert)` or `-[:REJECTED {by, at, note}]->`. The
//! subject need not be a computed suspect — the true cause may lie outside the attribution
//! window. A later verdict on the same subject and alert replaces the earlier one; the same
//! verdict again (same `by` and `note`) answers the stored one unchanged. Verdicts survive
//! recomputed attributions and feed the history evidence of later alerts.

use crate::AppState;
use crate::error::ApiError;
use crate::handlers::{parse_json, query_params};
use crate::rca::{OccurrenceParams, occurrence};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DurationRound, TimeDelta, Utc};
use deploygraph_model::{SubjectKind, SuspectVerdict, Uid, VerdictInput, VerdictKind};
use deploygraph_store::RecordKind;
use std::sync::Arc;
use std::time::Instant;

/// A stored verdict, as the verdict route answers it.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Documents the JSON of `deploygraph_model::SuspectVerdict`.
pub(crate) struct StoredVerdict {
    /// The uid of the alert occurrence judged.
    alert_uid: String,
    /// What the subject is.
    subject: SubjectKind,
    /// The deployment's or the change's uid.
    subject_uid: String,
    /// `confirmed` (stored as CAUSED) or `rejected` (stored as REJECTED).
    verdict: VerdictKind,
    /// Who gave it.
    by: String,
    /// When it was given (the time of the first of repeated identical verdicts).
    #[schema(format = DateTime)]
    at: String,
    /// Why; absent when none was given.
    #[schema(nullable = false)]
    note: Option<String>,
}

/// The subject with `uid`: a deployment or a change that is not a rollout.
async fn subject(state: &AppState, uid: &str) -> Result<(SubjectKind, Uid), ApiError> {
    let missing = || ApiError::not_found(format!("no deployment or change with uid {uid:?}"));
    let Ok(parsed) = Uid::parse(uid) else {
        return Err(missing());
    };
    let store_error = |e| ApiError::from_store(&e, state.config.retry_after_secs);
    if state
        .store
        .get_deployment(&parsed)
        .await
        .map_err(store_error)?
        .is_some()
    {
        return Ok((SubjectKind::Deployment, parsed));
    }
    if state
        .store
        .get_change(&parsed)
        .await
        .map_err(store_error)?
        .is_some()
    {
        return Ok((SubjectKind::Change, parsed));
    }
    Err(missing())
}

/// `POST /v1/alerts/{fingerprint}/suspects/{uid}/verdict`: confirm or reject a subject of an
/// alert occurrence (the newest with the fingerprint unless `starts_at`).
#[utoipa::path(post, path = "/v1/alerts/{fingerprint}/suspects/{uid}/verdict", tag = "alerts",
    params(
        ("fingerprint" = deploygraph_model::schema::Fingerprint, Path, description = "The alert's fingerprint"),
        ("uid" = String, Path, description = "A deployment's or a change's uid. It need not be among the computed suspects: a subject outside the attribution window (the true cause may lie there) may be confirmed, and is then listed with the suspects, `added_by_review`."),
        OccurrenceParams,
    ),
    request_body(content = deploygraph_model::VerdictInput, content_type = "application/json",
        description = "The verdict. It is stored as `(subject)-[:CAUSED {by, at, note}]->(alert)` when confirmed, `-[:REJECTED {by, at, note}]->` when rejected, kept when the attribution is recomputed, and used as evidence for later alerts: a confirmed deployment counts as blamed in its service's history and as a failed change in DORA, a rejected one never for this alert."),
    responses(
        (status = 201, description = "The first verdict on this subject for this alert: the stored verdict. `Location` is the alert's suspects, which show it.", body = StoredVerdict, headers(("Location" = String))),
        (status = 200, description = "A verdict was already stored for this subject and alert: it is replaced by this one (the other relationship kind is removed), or, when it says the same (`verdict`, `by` and `note`), left as it was. The stored verdict.", body = StoredVerdict, headers(("Location" = String))),
        (status = 404, description = "No alert with this fingerprint (and `starts_at`), or no deployment or change with this uid (`not_found`, the message names which). Nothing is written.", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn record_verdict(
    State(state): State<AppState>,
    Path((fingerprint, uid)): Path<(String, String)>,
    query: Result<Query<OccurrenceParams>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let p = query_params(query)?;
    let input: VerdictInput = parse_json(&state, &headers, body)?;
    let (verdict, by, note) = input.validate()?;
    let alert = occurrence(&state, &fingerprint, p.starts_at.as_deref()).await?;
    let (subject, subject_uid) = subject(&state, &uid).await?;
    let record = SuspectVerdict {
        alert_uid: alert.uid.clone(),
        subject,
        subject_uid,
        verdict,
        by,
        // Milliseconds: the same instant reads back the same from either store.
        at: Utc::now()
            .duration_trunc(TimeDelta::milliseconds(1))
            .unwrap_or_else(|_| Utc::now()),
        note,
    };
    let started = Instant::now();
    // A write once started runs to its end even when the client goes away.
    let store = Arc::clone(&state.store);
    let recorded = crate::detached(async move { store.record_verdict(&record).await }).await;
    state.metrics.store_call("record_verdict", started);
    let outcome = recorded
        .map_err(|e| ApiError::from_store(&e, state.config.retry_after_secs))?
        // Both were found a moment ago; neither is ever deleted but with its alert.
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no alert with fingerprint {fingerprint:?} or no deployment or change with uid {uid:?}"
            ))
        })?;
    let v = &outcome.verdict;
    tracing::info!(alert.uid = %v.alert_uid, alert.fingerprint = %fingerprint, subject.uid = %v.subject_uid, verdict = v.verdict.as_str(), outcome = outcome.kind.as_str(), "recorded verdict");
    let status = match outcome.kind {
        RecordKind::Created => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    let location = format!(
        "/v1/alerts/{}/suspects?starts_at={}",
        path_segment(&fingerprint),
        deploygraph_model::format_time(&alert.starts_at)
    );
    Ok((
        status,
        [(header::LOCATION, location)],
        Json(outcome.verdict),
    )
        .into_response())
}

/// `value` as one percent-encoded path segment.
fn path_segment(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
