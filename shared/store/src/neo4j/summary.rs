//! Release summaries on Neo4j: `(:ReleaseSummary)-[:SUMMARIZES]->(:DeploymentEvent)`, one per
//! deployment and template.
//!
//! The node holds the template, window, `settled_at` (a datetime for Cypher users, and
//! microseconds), the metrics as a JSON string (`{name: {"kind", "data"}}`), the deployment's
//! service, environment and start (`deployed_at_us`, for the history index) and the whole
//! summary as `payload`, which reads decode. A later record replaces the properties.

use super::{BACKEND, Neo4jStore, decode_failed, failed, int, map, opt_str, rows_in};
use crate::error::{Error, Result};
use crate::payload::{decode, encode};
use crate::types::{RecordKind, SummaryFilter, SummaryOutcome};
use deploygraph_model::{Deployment, NewReleaseSummary, ReleaseSummary};
use neo4rs::{BoltType, Txn, query};

fn summary_props(s: &ReleaseSummary) -> Result<BoltType> {
    Ok(map(vec![
        ("uid", s.uid.as_str().into()),
        ("deployment_uid", s.deployment.as_str().into()),
        ("service", s.service.name.as_str().into()),
        ("namespace", opt_str(s.service.namespace.as_deref())),
        ("environment", s.service.environment.as_str().into()),
        ("version", opt_str(s.version.as_deref())),
        ("deployed_at_us", s.deployed_at.timestamp_micros().into()),
        ("template", s.template.as_str().into()),
        ("window", s.window.as_str().into()),
        ("settled_at", s.settled_at.into()),
        ("settled_at_us", s.settled_at.timestamp_micros().into()),
        (
            "metrics",
            encode(BACKEND, &s.metrics, "encode a release summary's metrics")?.into(),
        ),
        (
            "payload",
            encode(BACKEND, s, "encode a release summary")?.into(),
        ),
    ]))
}

/// The summary's properties replaced and its SUMMARIZES link made; the caller has checked, in
/// the same transaction, that the deployment exists.
const RECORD_RELEASE_SUMMARY: &str = "
MATCH (d:DeploymentEvent {uid: $deployment})
MERGE (s:ReleaseSummary {uid: $props.uid})
SET s += $props
MERGE (s)-[:SUMMARIZES]->(d)";

async fn record_in(txn: &mut Txn, new: &NewReleaseSummary) -> Result<SummaryOutcome> {
    let operation = "record a release summary";
    let dec = decode_failed(operation);
    // The deployment's write lock, so two records of its summaries run one after the other.
    let found = rows_in(
        txn,
        query(
            "MATCH (d:DeploymentEvent {uid: $deployment}) SET d.uid = d.uid
             WITH d OPTIONAL MATCH (s:ReleaseSummary {uid: $uid})
             RETURN d.payload AS deployment, s.payload AS payload",
        )
        .param("deployment", new.deployment.as_str())
        .param("uid", new.uid.as_str()),
        operation,
    )
    .await?;
    let Some(row) = found.first() else {
        return Err(Error::NotFound {
            what: "deployment",
            uid: new.deployment.as_str().to_owned(),
        });
    };
    let deployment: String = row.get("deployment").map_err(&dec)?;
    let deployment: Deployment = decode(new.deployment.as_str(), &deployment)?;
    let stored: Option<String> = row.get("payload").map_err(&dec)?;
    let stored: Option<ReleaseSummary> = stored
        .map(|payload| decode(new.uid.as_str(), &payload))
        .transpose()?;
    let summary = new.clone().of(&deployment);
    if stored.as_ref() == Some(&summary) {
        return Ok(SummaryOutcome {
            kind: RecordKind::Unchanged,
            summary,
        });
    }
    txn.run(
        query(RECORD_RELEASE_SUMMARY)
            .param("deployment", summary.deployment.as_str())
            .param("props", summary_props(&summary)?),
    )
    .await
    .map_err(failed(operation))?;
    Ok(SummaryOutcome {
        kind: if stored.is_some() {
            RecordKind::Updated
        } else {
            RecordKind::Created
        },
        summary,
    })
}

impl Neo4jStore {
    pub(super) async fn summary_record(&self, new: &NewReleaseSummary) -> Result<SummaryOutcome> {
        crate::retry::run(
            BACKEND,
            "record a release summary",
            super::is_retryable,
            || async {
                let mut txn = self.begin().await?;
                let result = record_in(&mut txn, new).await;
                self.settle(txn, result).await
            },
        )
        .await
    }

    pub(super) async fn summaries_before(
        &self,
        filter: &SummaryFilter,
    ) -> Result<Vec<ReleaseSummary>> {
        let operation = "read release summaries";
        let rows = self
            .rows(
                query(
                    "MATCH (s:ReleaseSummary)-[:SUMMARIZES]->(d:DeploymentEvent)
                     WHERE s.service = $service AND s.environment = $environment
                       AND s.template = $template AND s.deployed_at_us < $before
                       AND NOT d.status IN ['failed', 'rolled_back']
                     RETURN s.uid AS uid, s.payload AS payload
                     ORDER BY s.deployed_at_us DESC, s.deployment_uid DESC
                     LIMIT $limit",
                )
                .param("service", filter.service.as_str())
                .param("environment", filter.environment.as_str())
                .param("template", filter.template.as_str())
                .param("before", filter.before.timestamp_micros())
                .param("limit", int(filter.limit)),
                operation,
            )
            .await?;
        let dec = decode_failed(operation);
        rows.iter()
            .map(|row| {
                let uid: String = row.get("uid").map_err(&dec)?;
                let payload: String = row.get("payload").map_err(&dec)?;
                decode(&uid, &payload)
            })
            .collect()
    }
}
