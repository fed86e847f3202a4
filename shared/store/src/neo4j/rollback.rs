//! Rollbacks on Neo4j: `(:Rollback)-[:UNDID]->(:DeploymentEvent)` and
//! `(:Rollback)-[:RESTORED]->(:DeploymentEvent)`.
//!
//! The Rollback node holds its reason, `by`, time (a datetime for Cypher users, microseconds
//! for the indexes), target, `dry_run`, the undone deployment's service and the whole rollback
//! as `payload`, which reads decode. A rollback that is not a dry run sets the undone
//! deployment's `status` (and its payload's) to `rolled_back` in the same transaction, and
//! enqueues the deployment's follow-up there when the status changed (attribution reads it).

use super::rca::payloads;
use super::{BACKEND, Neo4jStore, decode_failed, failed, map, opt_str, rows_in};
use crate::error::{Error, Result};
use crate::payload::{decode, encode};
use crate::types::{RecordKind, RollbackFilter, RollbackOutcome};
use deploygraph_model::{Deployment, DeploymentStatus, NewRollback, Rollback, Uid};
use neo4rs::{BoltType, Query, Txn, query};

fn rollback_props(r: &Rollback) -> Result<BoltType> {
    Ok(map(vec![
        ("uid", r.uid.as_str().into()),
        ("deployment_uid", r.deployment.as_str().into()),
        (
            "restored_uid",
            opt_str(r.restored.as_ref().map(Uid::as_str)),
        ),
        ("service_uid", r.service.uid().as_str().into()),
        ("service", r.service.name.as_str().into()),
        ("namespace", opt_str(r.service.namespace.as_deref())),
        ("environment", r.service.environment.as_str().into()),
        ("reason", r.reason.as_str().into()),
        ("by", r.by.as_str().into()),
        ("at", r.at.into()),
        ("at_us", r.at.timestamp_micros().into()),
        ("target", r.target.as_str().into()),
        ("target_namespace", opt_str(r.namespace.as_deref())),
        ("dry_run", r.dry_run.into()),
        ("payload", encode(BACKEND, r, "encode a rollback")?.into()),
    ]))
}

/// The Rollback, its UNDID link and, when `$restored` is set, its RESTORED link. The
/// deployments were read in the same transaction.
const RECORD_ROLLBACK: &str = "
MATCH (d:DeploymentEvent {uid: $deployment})
CREATE (r:Rollback)
SET r = $props
CREATE (r)-[:UNDID]->(d)
WITH r
OPTIONAL MATCH (p:DeploymentEvent {uid: $restored})
FOREACH (_ IN CASE WHEN p IS NULL THEN [] ELSE [1] END | CREATE (r)-[:RESTORED]->(p))";

async fn record_in(txn: &mut Txn, new: &NewRollback) -> Result<RollbackOutcome> {
    let operation = "record a rollback";
    let dec = decode_failed(operation);
    // The deployment's write lock, so two rollbacks of it run one after the other.
    let found = rows_in(
        txn,
        query(
            "MATCH (d:DeploymentEvent {uid: $deployment}) SET d.uid = d.uid
             WITH d
             OPTIONAL MATCH (d)-[:FOLLOWS]->(previous:DeploymentEvent)
             OPTIONAL MATCH (r:Rollback {uid: $uid})
             OPTIONAL MATCH (given:DeploymentEvent {uid: $restored})
             RETURN d.service AS name, d.namespace AS namespace, d.environment AS environment,
                    d.cluster AS cluster, d.service_uid AS service_uid, d.payload AS deployment,
                    previous.uid AS previous, r.payload AS stored,
                    given.uid AS given, given.service_uid AS given_service
             LIMIT 1",
        )
        .param("deployment", new.deployment.as_str())
        .param("uid", new.uid.as_str())
        .param("restored", opt_str(new.restored.as_ref().map(Uid::as_str))),
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
    let service_uid: String = row.get("service_uid").map_err(&dec)?;
    let restored = match &new.restored {
        Some(uid) => {
            let given: Option<String> = row.get("given").map_err(&dec)?;
            let given_service: Option<String> = row.get("given_service").map_err(&dec)?;
            if given.is_none() {
                return Err(Error::NotFound {
                    what: "restored deployment",
                    uid: uid.as_str().to_owned(),
                });
            }
            if given_service.as_deref() != Some(service_uid.as_str()) {
                return Ok(RollbackOutcome {
                    kind: RecordKind::Conflict,
                    rollback: new.clone().of(service, new.restored.clone()),
                    conflict: Some(format!(
                        "restored: deployment {uid} is not of the undone deployment's service and environment"
                    )),
                });
            }
            Some(uid.clone())
        }
        None => {
            let previous: Option<String> = row.get("previous").map_err(&dec)?;
            previous.map(Uid::from_stored)
        }
    };
    let rollback = new.clone().of(service, restored);
    let stored: Option<String> = row.get("stored").map_err(&dec)?;
    if let Some(stored) = stored {
        let stored: Rollback = decode(rollback.uid.as_str(), &stored)?;
        return Ok(if stored == rollback {
            RollbackOutcome {
                kind: RecordKind::Unchanged,
                rollback: stored,
                conflict: None,
            }
        } else {
            RollbackOutcome {
                kind: RecordKind::Conflict,
                conflict: Some(format!(
                    "rollback {} is stored with other facts (reason, by, restored or dry_run)",
                    stored.uid
                )),
                rollback: stored,
            }
        });
    }
    txn.run(
        query(RECORD_ROLLBACK)
            .param("deployment", rollback.deployment.as_str())
            .param("props", rollback_props(&rollback)?)
            .param(
                "restored",
                opt_str(rollback.restored.as_ref().map(Uid::as_str)),
            ),
    )
    .await
    .map_err(failed(operation))?;
    if !rollback.dry_run {
        let payload: String = row.get("deployment").map_err(&dec)?;
        let mut deployment: Deployment = decode(rollback.deployment.as_str(), &payload)?;
        if deployment
            .status
            .can_advance_to(DeploymentStatus::RolledBack)
        {
            deployment.status = DeploymentStatus::RolledBack;
            txn.run(
                query(
                    "MATCH (d:DeploymentEvent {uid: $deployment})
                     SET d.status = $status, d.payload = $payload",
                )
                .param("deployment", rollback.deployment.as_str())
                .param("status", deployment.status.as_str())
                .param(
                    "payload",
                    encode(BACKEND, &deployment, "encode a deployment")?,
                ),
            )
            .await
            .map_err(failed("mark a deployment rolled back"))?;
            // The status is evidence about the deployment (attribution's `rolled_back`): its
            // follow-up re-attributes the alerts after it, as a status recorded otherwise does.
            super::follow_up::enqueue(
                txn,
                crate::FollowUpKind::Deployment,
                [&rollback.deployment],
                chrono::Utc::now(),
            )
            .await?;
        }
    }
    Ok(RollbackOutcome {
        kind: RecordKind::Created,
        rollback,
        conflict: None,
    })
}

fn list_query(filter: &RollbackFilter) -> Query {
    // Each clause is a fixed string of this function; every value is a parameter.
    let mut clauses: Vec<&str> = Vec::new();
    let mut params: Vec<(&str, BoltType)> = Vec::new();
    if !filter.services.is_empty() {
        clauses.push("r.service_uid IN $services");
        let services: Vec<BoltType> = filter.services.iter().map(|s| s.as_str().into()).collect();
        params.push(("services", BoltType::from(services)));
    }
    if let Some(since) = filter.since {
        clauses.push("r.at_us >= $since");
        params.push(("since", since.timestamp_micros().into()));
    }
    if let Some(until) = filter.until {
        clauses.push("r.at_us <= $until");
        params.push(("until", until.timestamp_micros().into()));
    }
    if let Some(cursor) = &filter.cursor {
        clauses.push("(r.at_us < $cursor_us OR (r.at_us = $cursor_us AND r.uid < $cursor_uid))");
        params.push(("cursor_us", cursor.started_at_us.into()));
        params.push(("cursor_uid", cursor.uid.as_str().into()));
    }
    clauses.push("r.at_us > -9223372036854775807");
    let text = format!(
        "MATCH (r:Rollback) WHERE {}
         RETURN r.uid AS uid, r.payload AS payload
         ORDER BY r.at_us DESC, r.uid DESC LIMIT $limit",
        clauses.join(" AND ")
    );
    let mut q = query(&text).param("limit", super::int(filter.limit));
    for (name, value) in params {
        q = q.param(name, value);
    }
    q
}

impl Neo4jStore {
    pub(super) async fn rollback_record(&self, new: &NewRollback) -> Result<RollbackOutcome> {
        crate::retry::run(
            BACKEND,
            "record a rollback",
            super::is_retryable,
            || async {
                let mut txn = self.begin().await?;
                let result = record_in(&mut txn, new).await;
                self.settle(txn, result).await
            },
        )
        .await
    }

    pub(super) async fn rollbacks_of(&self, deployments: &[Uid]) -> Result<Vec<Rollback>> {
        if deployments.is_empty() {
            return Ok(Vec::new());
        }
        let uids: Vec<BoltType> = deployments.iter().map(|u| u.as_str().into()).collect();
        let rows = self
            .rows(
                query(
                    "MATCH (r:Rollback)-[:UNDID]->(d:DeploymentEvent)
                     WHERE d.uid IN $deployments
                     RETURN r.uid AS uid, r.payload AS payload
                     ORDER BY r.at_us DESC, r.uid DESC",
                )
                .param("deployments", uids),
                "read rollbacks",
            )
            .await?;
        payloads(&rows, "read rollbacks")
    }

    pub(super) async fn rollback_list(&self, filter: &RollbackFilter) -> Result<Vec<Rollback>> {
        let rows = self.rows(list_query(filter), "list rollbacks").await?;
        payloads(&rows, "list rollbacks")
    }
}
