//! Agents over HTTP: `POST /v1/agent/records` takes what a `deploygraph agent`'s watchers
//! recorded inside a cluster — rollouts and changes that are not rollouts, as the watchers built
//! them, uids included — and records them as `serve`'s own watchers would (one transaction for
//! the rollouts, one for the changes, follow-ups with them). The agent keeps each batch in its
//! durable spool until this answers 200, and sends it again after any other answer or none:
//! recording is idempotent by uid, so a batch sent twice is stored once (`unchanged`).
//!
//! A batch names its cluster, and every record must be of it: an agent's token lets it write
//! its own cluster's facts, not rename another's. Values are redacted again here (the watchers
//! redact, but this is a network boundary). A bad record fails the whole batch with a 422
//! naming it (`records[3].deployment.started_at`), and nothing is written.

use crate::AppState;
use crate::error::ApiError;
use crate::handlers::{parse_json_within, record_deployments};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use deploygraph_model::{Change, Cluster, ConfigChange, Deployment, KeyChange, Uid};
use deploygraph_store::RecordKind;
use serde::Deserialize;
use serde_json::{Value, json};

/// The most records in one batch.
pub const MAX_RECORDS: usize = 500;

/// The largest body of one batch: [`MAX_RECORDS`] rollouts with their template diffs.
pub const AGENT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// One batch from an agent.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AgentBatch)]
pub(crate) struct Batch {
    /// The cluster every record is of.
    #[schema(value_type = deploygraph_model::Cluster)]
    cluster: String,
    /// The records, in the order the agent spooled them.
    #[schema(min_items = 1, max_items = 500)]
    records: Vec<Record>,
}

/// One spooled record: exactly one of a rollout or a change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AgentRecord)]
pub(crate) struct Record {
    /// Its place in the agent's spool (echoed in the answer).
    seq: u64,
    /// A rollout, as the agent's watchers built it (the model's deployment, uid included).
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::JsonObject>)]
    deployment: Option<Deployment>,
    /// A change that is not a rollout (a ConfigMap, Secret or HPA edit), as the watchers built
    /// it.
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::JsonObject>)]
    change: Option<Change>,
}

/// A record checked: its cluster, one subject, values redacted.
enum Checked {
    Deployment(u64, Box<Deployment>),
    Change(u64, Change),
}

fn check(i: usize, record: Record, cluster: &Cluster) -> Result<Checked, ApiError> {
    let field = |name: &str| format!("records[{i}].{name}");
    match (record.deployment, record.change) {
        (Some(mut d), None) => {
            if d.cluster != *cluster {
                return Err(ApiError::invalid(
                    field("deployment.cluster"),
                    format!(
                        "{:?} is not the batch's cluster {:?}",
                        d.cluster.as_str(),
                        cluster.as_str()
                    ),
                ));
            }
            d.changes = d
                .changes
                .into_iter()
                .map(|c| ConfigChange::new(c.path, c.kind, c.before, c.after))
                .collect();
            Ok(Checked::Deployment(record.seq, Box::new(d)))
        }
        (None, Some(mut c)) => {
            if c.services.is_empty() {
                return Err(ApiError::invalid(
                    field("change.services"),
                    "a change affects at least one service",
                ));
            }
            if let Some(j) = c.services.iter().position(|s| s.cluster != *cluster) {
                return Err(ApiError::invalid(
                    field(&format!("change.services[{j}].cluster")),
                    format!("not the batch's cluster {:?}", cluster.as_str()),
                ));
            }
            c.diff = c
                .diff
                .into_iter()
                .map(|k| KeyChange::new(k.key, k.before, k.after, false))
                .collect();
            Ok(Checked::Change(record.seq, c))
        }
        _ => Err(ApiError::invalid(
            format!("records[{i}]"),
            "a record holds exactly one of `deployment` and `change`",
        )),
    }
}

/// `POST /v1/agent/records`: records an agent's batch.
#[utoipa::path(post, path = "/v1/agent/records", tag = "agent",
    request_body(content = Batch, content_type = "application/json",
        description = "1 to 500 records, each exactly one of `deployment` and `change`, as the agent's watchers built them (the model's objects, whose fields are checked by the server: a bad one is a 422 naming it)"),
    responses(
        (status = 200, description = "Stored: `{received, records: [{seq, uid, outcome, conflict?}]}` (`created`, `updated`, `unchanged` or `conflict`; a conflicting record is not written)", body = crate::openapi::JsonObject),
        (status = 422, description = "A record is malformed or of another cluster: nothing written", body = crate::openapi::ErrorBody),
    ),
    security(("bearer" = [])))]
pub(crate) async fn record_batch(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let batch: Batch = parse_json_within(AGENT_MAX_BODY_BYTES, &headers, body)?;
    let cluster =
        Cluster::parse(&batch.cluster).map_err(|e| ApiError::invalid("cluster", e.message))?;
    if batch.records.is_empty() || batch.records.len() > MAX_RECORDS {
        return Err(ApiError::invalid(
            "records",
            format!("a batch holds 1 to {} records", MAX_RECORDS),
        ));
    }
    let received = batch.records.len();
    let mut deployments = Vec::new();
    let mut changes = Vec::new();
    for (i, record) in batch.records.into_iter().enumerate() {
        match check(i, record, &cluster)? {
            Checked::Deployment(seq, d) => deployments.push((seq, *d)),
            Checked::Change(seq, c) => changes.push((seq, c)),
        }
    }
    let mut items: Vec<(u64, Value)> = Vec::with_capacity(received);
    if !deployments.is_empty() {
        let (seqs, batch): (Vec<u64>, Vec<Deployment>) = deployments.into_iter().unzip();
        for (seq, o) in seqs
            .into_iter()
            .zip(record_deployments(&state, batch).await?)
        {
            tracing::info!(deployment.uid = %o.deployment.uid, service = %o.deployment.service, cluster = %cluster, outcome = o.kind.as_str(), "recorded an agent's rollout");
            items.push((
                seq,
                outcome(&o.deployment.uid, o.kind, o.conflict.as_deref()),
            ));
        }
    }
    if !changes.is_empty() {
        let (seqs, batch): (Vec<u64>, Vec<Change>) = changes.into_iter().unzip();
        for (seq, o) in seqs
            .into_iter()
            .zip(crate::changes::record(&state, batch).await?)
        {
            items.push((seq, outcome(&o.change.uid, o.kind, o.conflict.as_deref())));
        }
    }
    items.sort_by_key(|(seq, _)| *seq);
    Ok(Json(json!({
        "received": received,
        "records": items.into_iter().map(|(seq, mut item)| {
            item["seq"] = json!(seq);
            item
        }).collect::<Vec<_>>(),
    }))
    .into_response())
}

fn outcome(uid: &Uid, kind: RecordKind, conflict: Option<&str>) -> Value {
    let mut item = json!({"uid": uid, "outcome": kind.as_str()});
    if let Some(conflict) = conflict {
        item["conflict"] = json!(conflict);
    }
    item
}
