//! Canary analyses on Neo4j: `(:CanaryAnalysis)-[:ANALYZED]->(:DeploymentEvent)` and
//! `(:CanaryAnalysis)-[:MEASURED]->(:MetricVerdict)`, one MetricVerdict per metric.
//!
//! The analysis node holds its verdict, baseline, times (datetimes for Cypher users, and
//! microseconds for the indexes), the deployment's service and the whole analysis as
//! `payload`, which reads decode; each MetricVerdict holds its name, kind, outcome, `critical`,
//! rule and the evidence as a JSON string. A later record replaces the analysis' properties and
//! its MetricVerdicts in one transaction.

use super::rca::payloads;
use super::{BACKEND, Neo4jStore, decode_failed, failed, int, map, opt_str, rows_in};
use crate::error::{Error, Result};
use crate::payload::{decode, encode};
use crate::types::{CanaryFilter, CanaryOutcome, RecordKind};
use deploygraph_model::{CanaryAnalysis, MetricVerdict, NewCanaryAnalysis, Uid};
use neo4rs::{BoltType, Query, Txn, query};

fn analysis_props(a: &CanaryAnalysis) -> Result<BoltType> {
    Ok(map(vec![
        ("uid", a.uid.as_str().into()),
        ("deployment_uid", a.deployment.as_str().into()),
        ("service_uid", a.service.uid().as_str().into()),
        ("service", a.service.name.as_str().into()),
        ("namespace", opt_str(a.service.namespace.as_deref())),
        ("environment", a.service.environment.as_str().into()),
        ("template", a.template.as_str().into()),
        ("verdict", a.verdict.as_str().into()),
        ("baseline_kind", a.baseline_kind.as_str().into()),
        ("started_at", a.started_at.into()),
        ("started_at_us", a.started_at.timestamp_micros().into()),
        ("decided_at", a.decided_at.into()),
        ("decided_at_us", a.decided_at.timestamp_micros().into()),
        ("analyses", int(a.analyses)),
        ("rule", a.rule.as_str().into()),
        ("final", a.final_round.into()),
        (
            "payload",
            encode(BACKEND, a, "encode a canary analysis")?.into(),
        ),
    ]))
}

fn metric_rows(a: &CanaryAnalysis) -> Result<Vec<BoltType>> {
    a.metrics
        .iter()
        .enumerate()
        .map(|(position, m)| {
            Ok(map(vec![
                (
                    "uid",
                    MetricVerdict::uid_in(&a.uid, &m.name).as_str().into(),
                ),
                ("analysis_uid", a.uid.as_str().into()),
                ("position", int(position)),
                ("name", m.name.as_str().into()),
                ("kind", m.kind.as_str().into()),
                ("outcome", m.outcome.as_str().into()),
                ("critical", m.critical.into()),
                ("rule", m.rule.as_str().into()),
                (
                    "evidence",
                    encode(BACKEND, &m.evidence, "encode a metric's evidence")?.into(),
                ),
            ]))
        })
        .collect()
}

/// The analysis' properties replaced, its ANALYZED link made, its MetricVerdicts replaced by
/// `$metrics`. The deployment is matched first: the caller has checked that it exists in the
/// same transaction.
const RECORD_CANARY_ANALYSIS: &str = "
MATCH (d:DeploymentEvent {uid: $deployment})
MERGE (c:CanaryAnalysis {uid: $props.uid})
SET c += $props
MERGE (c)-[:ANALYZED]->(d)
WITH c
CALL {
  WITH c
  OPTIONAL MATCH (c)-[:MEASURED]->(old:MetricVerdict)
  DETACH DELETE old
}
WITH c
UNWIND $metrics AS m
CREATE (c)-[:MEASURED]->(v:MetricVerdict)
SET v = m";

async fn record_in(txn: &mut Txn, new: &NewCanaryAnalysis) -> Result<CanaryOutcome> {
    let operation = "record a canary analysis";
    let dec = decode_failed(operation);
    // The deployment's write lock, so two records of its analyses run one after the other.
    let found = rows_in(
        txn,
        query(
            "MATCH (d:DeploymentEvent {uid: $deployment}) SET d.uid = d.uid
             WITH d OPTIONAL MATCH (c:CanaryAnalysis {uid: $uid})
             RETURN d.service AS name, d.namespace AS namespace, d.environment AS environment,
                    d.cluster AS cluster, c.payload AS payload",
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
    let corrupt = |e: deploygraph_model::Error| Error::Corrupt {
        uid: new.deployment.as_str().to_owned(),
        source: Box::new(e),
    };
    let service = super::rca::service_of(row, operation)?.map_err(corrupt)?;
    let stored: Option<String> = row.get("payload").map_err(&dec)?;
    let stored: Option<CanaryAnalysis> = stored
        .map(|payload| decode(new.uid.as_str(), &payload))
        .transpose()?;
    let analysis = new.clone().of(service);
    if stored.as_ref() == Some(&analysis) {
        return Ok(CanaryOutcome {
            kind: RecordKind::Unchanged,
            analysis,
        });
    }
    txn.run(
        query(RECORD_CANARY_ANALYSIS)
            .param("deployment", analysis.deployment.as_str())
            .param("props", analysis_props(&analysis)?)
            .param("metrics", metric_rows(&analysis)?),
    )
    .await
    .map_err(failed(operation))?;
    // A new analysis, or a verdict that changed, is new evidence about the deployment: its
    // follow-up re-attributes the alerts after it (as a late deployment's does).
    if stored
        .as_ref()
        .is_none_or(|s| s.verdict != analysis.verdict)
    {
        super::follow_up::enqueue(
            txn,
            crate::FollowUpKind::Deployment,
            [&analysis.deployment],
            chrono::Utc::now(),
        )
        .await?;
    }
    Ok(CanaryOutcome {
        kind: if stored.is_some() {
            RecordKind::Updated
        } else {
            RecordKind::Created
        },
        analysis,
    })
}

fn list_query(filter: &CanaryFilter) -> Query {
    // Each clause is a fixed string of this function; every value is a parameter.
    let mut clauses: Vec<&str> = Vec::new();
    let mut params: Vec<(&str, BoltType)> = Vec::new();
    if !filter.services.is_empty() {
        clauses.push("c.service_uid IN $services");
        let services: Vec<BoltType> = filter.services.iter().map(|s| s.as_str().into()).collect();
        params.push(("services", BoltType::from(services)));
    }
    if let Some(since) = filter.since {
        clauses.push("c.decided_at_us >= $since");
        params.push(("since", since.timestamp_micros().into()));
    }
    if let Some(until) = filter.until {
        clauses.push("c.started_at_us <= $until");
        params.push(("until", until.timestamp_micros().into()));
    }
    if let Some(cursor) = &filter.cursor {
        clauses.push(
            "(c.started_at_us < $cursor_us OR (c.started_at_us = $cursor_us AND c.uid < $cursor_uid))",
        );
        params.push(("cursor_us", cursor.started_at_us.into()));
        params.push(("cursor_uid", cursor.uid.as_str().into()));
    }
    // Lets the planner walk the index on `started_at_us` newest first.
    clauses.push("c.started_at_us > -9223372036854775807");
    let text = format!(
        "MATCH (c:CanaryAnalysis) WHERE {}
         RETURN c.uid AS uid, c.payload AS payload
         ORDER BY c.started_at_us DESC, c.uid DESC LIMIT $limit",
        clauses.join(" AND ")
    );
    let mut q = query(&text).param("limit", int(filter.limit));
    for (name, value) in params {
        q = q.param(name, value);
    }
    q
}

impl Neo4jStore {
    pub(super) async fn canary_record(&self, new: &NewCanaryAnalysis) -> Result<CanaryOutcome> {
        crate::retry::run(
            BACKEND,
            "record a canary analysis",
            super::is_retryable,
            || async {
                let mut txn = self.begin().await?;
                let result = record_in(&mut txn, new).await;
                self.settle(txn, result).await
            },
        )
        .await
    }

    pub(super) async fn canary_of_deployments(
        &self,
        deployments: &[Uid],
    ) -> Result<Vec<CanaryAnalysis>> {
        if deployments.is_empty() {
            return Ok(Vec::new());
        }
        let uids: Vec<BoltType> = deployments.iter().map(|u| u.as_str().into()).collect();
        let rows = self
            .rows(
                query(
                    "MATCH (c:CanaryAnalysis)-[:ANALYZED]->(d:DeploymentEvent)
                     WHERE d.uid IN $deployments
                     RETURN c.uid AS uid, c.payload AS payload
                     ORDER BY c.started_at_us DESC, c.uid DESC",
                )
                .param("deployments", uids),
                "read canary analyses",
            )
            .await?;
        payloads(&rows, "read canary analyses")
    }

    pub(super) async fn canary_list(&self, filter: &CanaryFilter) -> Result<Vec<CanaryAnalysis>> {
        let rows = self
            .rows(list_query(filter), "list canary analyses")
            .await?;
        payloads(&rows, "list canary analyses")
    }
}
