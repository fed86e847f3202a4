//! Rollbacks in the embedded store: one `rollbacks` row per rollback, its `deployment_uid`
//! the UNDID link and its `restored_uid` the RESTORED one; a rollback that is not a dry run
//! sets the undone deployment's status to `rolled_back` in the same transaction, and enqueues
//! the deployment's follow-up there when the status changed (attribution reads it).

use super::rca::uid_list;
use super::{backend_error, exec, follow_up};
use crate::error::{Error, Result};
use crate::payload::{decode, decode_all, encode};
use crate::types::{RecordKind, RollbackFilter, RollbackOutcome};
use deploygraph_model::newtypes::format_time;
use deploygraph_model::{Deployment, DeploymentStatus, NewRollback, Rollback, ServiceRef, Uid};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params, params_from_iter};

/// The undone deployment's row: its service, service uid, the deployment it follows, payload.
type UndoneRow = (super::rca::ServiceRow, String, Option<String>, String);

/// The undone deployment as the rollback needs it.
struct Undone {
    service: ServiceRef,
    service_uid: String,
    follows: Option<String>,
    payload: String,
}

pub(super) fn record_rollback(conn: &mut Connection, new: &NewRollback) -> Result<RollbackOutcome> {
    let failed = || backend_error("record a rollback");
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend_error("begin a transaction"))?;
    let row: Option<UndoneRow> = tx
        .prepare_cached(
            "SELECT service, namespace, environment, cluster, service_uid, follows_uid, payload
             FROM deployments WHERE uid = ?1",
        )
        .and_then(|mut stmt| {
            stmt.query_row([new.deployment.as_str()], |row| {
                Ok((
                    super::rca::service_ref(row)?,
                    row.get(4)?,
                    row.get(5)?,
                    row.get(6)?,
                ))
            })
            .optional()
        })
        .map_err(failed())?;
    let Some((service, service_uid, follows, payload)) = row else {
        return Err(Error::NotFound {
            what: "deployment",
            uid: new.deployment.as_str().to_owned(),
        });
    };
    let corrupt = |e: deploygraph_model::Error| Error::Corrupt {
        uid: new.deployment.as_str().to_owned(),
        source: Box::new(e),
    };
    let undone = Undone {
        service: super::rca::parse_ref(service).map_err(corrupt)?,
        service_uid,
        follows,
        payload,
    };
    let restored = match &new.restored {
        Some(uid) => {
            let service: Option<String> = tx
                .prepare_cached("SELECT service_uid FROM deployments WHERE uid = ?1")
                .and_then(|mut stmt| stmt.query_row([uid.as_str()], |row| row.get(0)).optional())
                .map_err(failed())?;
            match service {
                None => {
                    return Err(Error::NotFound {
                        what: "restored deployment",
                        uid: uid.as_str().to_owned(),
                    });
                }
                Some(s) if s != undone.service_uid => {
                    return Ok(RollbackOutcome {
                        kind: RecordKind::Conflict,
                        rollback: new.clone().of(undone.service, new.restored.clone()),
                        conflict: Some(format!(
                            "restored: deployment {uid} is not of the undone deployment's service and environment"
                        )),
                    });
                }
                Some(_) => Some(uid.clone()),
            }
        }
        None => undone.follows.clone().map(Uid::from_stored),
    };
    let rollback = new.clone().of(undone.service.clone(), restored);
    let stored: Option<String> = tx
        .prepare_cached("SELECT payload FROM rollbacks WHERE uid = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([rollback.uid.as_str()], |row| row.get(0))
                .optional()
        })
        .map_err(failed())?;
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
    exec(
        &tx,
        "INSERT INTO rollbacks (uid, deployment_uid, restored_uid, service_uid, service, namespace,
             environment, reason, actor, at, at_us, target, target_namespace, dry_run, payload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        params![
            rollback.uid.as_str(),
            rollback.deployment.as_str(),
            rollback.restored.as_ref().map(Uid::as_str),
            undone.service_uid,
            rollback.service.name.as_str(),
            rollback.service.namespace,
            rollback.service.environment.as_str(),
            rollback.reason,
            rollback.by,
            format_time(&rollback.at),
            rollback.at.timestamp_micros(),
            rollback.target,
            rollback.namespace,
            rollback.dry_run,
            encode(super::BACKEND, &rollback, "encode a rollback")?
        ],
    )
    .map_err(failed())?;
    if !rollback.dry_run {
        let mut deployment: Deployment = decode(rollback.deployment.as_str(), &undone.payload)?;
        if deployment
            .status
            .can_advance_to(DeploymentStatus::RolledBack)
        {
            deployment.status = DeploymentStatus::RolledBack;
            exec(
                &tx,
                "UPDATE deployments SET status = ?2, payload = ?3 WHERE uid = ?1",
                params![
                    rollback.deployment.as_str(),
                    deployment.status.as_str(),
                    encode(super::BACKEND, &deployment, "encode a deployment")?
                ],
            )
            .map_err(backend_error("mark a deployment rolled back"))?;
            // The status is evidence about the deployment (attribution's `rolled_back`): its
            // follow-up re-attributes the alerts after it, as a status recorded otherwise does.
            follow_up::enqueue(
                &tx,
                crate::FollowUpKind::Deployment,
                &rollback.deployment,
                chrono::Utc::now(),
            )?;
        }
    }
    tx.commit().map_err(backend_error("commit"))?;
    Ok(RollbackOutcome {
        kind: RecordKind::Created,
        rollback,
        conflict: None,
    })
}

pub(super) fn rollbacks(conn: &Connection, deployments: &[Uid]) -> Result<Vec<Rollback>> {
    if deployments.is_empty() {
        return Ok(Vec::new());
    }
    let list = uid_list(deployments)?;
    let rows: Vec<(String, String)> = conn
        .prepare_cached(
            "SELECT uid, payload FROM rollbacks
             WHERE deployment_uid IN (SELECT value FROM json_each(?1))
             ORDER BY at_us DESC, uid DESC",
        )
        .and_then(|mut stmt| {
            stmt.query_map([list], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect()
        })
        .map_err(backend_error("read rollbacks"))?;
    decode_all(&rows)
}

pub(super) fn list_rollbacks(conn: &Connection, filter: &RollbackFilter) -> Result<Vec<Rollback>> {
    // Each clause is a fixed string of this function; every value is a parameter.
    let mut clauses: Vec<&str> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    if !filter.services.is_empty() {
        clauses.push("service_uid IN (SELECT value FROM json_each(?))");
        values.push(Value::Text(uid_list(&filter.services)?));
    }
    if let Some(since) = filter.since {
        clauses.push("at_us >= ?");
        values.push(Value::Integer(since.timestamp_micros()));
    }
    if let Some(until) = filter.until {
        clauses.push("at_us <= ?");
        values.push(Value::Integer(until.timestamp_micros()));
    }
    if let Some(cursor) = &filter.cursor {
        clauses.push("(at_us < ? OR (at_us = ? AND uid < ?))");
        values.push(Value::Integer(cursor.started_at_us));
        values.push(Value::Integer(cursor.started_at_us));
        values.push(Value::Text(cursor.uid.clone()));
    }
    let where_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    values.push(Value::Integer(
        i64::try_from(filter.limit).unwrap_or(i64::MAX),
    ));
    let sql = format!(
        "SELECT uid, payload FROM rollbacks {where_sql} ORDER BY at_us DESC, uid DESC LIMIT ?"
    );
    let rows: Vec<(String, String)> = conn
        .prepare(&sql)
        .and_then(|mut stmt| {
            stmt.query_map(params_from_iter(values), |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?
            .collect()
        })
        .map_err(backend_error("list rollbacks"))?;
    decode_all(&rows)
}
