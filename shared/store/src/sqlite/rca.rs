//! Alerts, topology, attribution and chaos runs in the embedded store.

use super::{backend_error, decode_rows, exec, stored_deployment};
use crate::error::{Error, Result};
use crate::payload::{decode, encode};
use crate::types::{
    AlertFilter, ChaosFilter, ServiceHistory, StoredAttribution, StoredDeployment, SubjectTrigger,
};
use chrono::{DateTime, Utc};
use deploygraph_model::newtypes::format_time;
use deploygraph_model::{
    Alert, AlertOutcome, ChaosRun, Cluster, Environment, ServiceName, ServiceRef, SubjectKind,
    Trigger, Uid, merge_alert,
};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params, params_from_iter};

fn limit_value(limit: usize) -> Value {
    Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX))
}

/// A service's columns as read: name, namespace, environment, cluster.
pub(super) type ServiceRow = (String, Option<String>, String, String);

/// Reads columns 0..4 (name, namespace, environment, cluster).
pub(super) fn service_ref(row: &rusqlite::Row<'_>) -> rusqlite::Result<ServiceRow> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

/// The service of a stored row.
///
/// # Errors
/// A name, environment or cluster the model does not accept.
pub(super) fn parse_ref(
    row: ServiceRow,
) -> std::result::Result<ServiceRef, deploygraph_model::Error> {
    let (name, namespace, environment, cluster) = row;
    Ok(ServiceRef {
        name: ServiceName::parse(&name)?,
        namespace,
        environment: Environment::parse(&environment)?,
        cluster: deploygraph_model::Cluster::parse(&cluster)?,
    })
}

pub(super) fn to_refs(rows: Vec<ServiceRow>) -> Vec<ServiceRef> {
    rows.into_iter()
        .filter_map(|row| parse_ref(row).ok())
        .collect()
}

pub(super) fn ensure_service(
    tx: &rusqlite::Transaction<'_>,
    service: &ServiceRef,
) -> rusqlite::Result<()> {
    exec(
        tx,
        "INSERT INTO services (uid, name, namespace, environment, cluster)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (uid) DO NOTHING",
        params![
            service.uid().as_str(),
            service.name.as_str(),
            service.namespace,
            service.environment.as_str(),
            service.cluster.as_str()
        ],
    )
    .map(|_| ())
}

pub(super) fn find_services(
    conn: &Connection,
    name: &ServiceName,
    namespace: Option<&str>,
    environment: Option<&Environment>,
    cluster: Option<&Cluster>,
) -> Result<Vec<ServiceRef>> {
    let failed = backend_error("find services");
    let mut stmt = conn
        .prepare_cached(
            "SELECT name, namespace, environment, cluster FROM services
             WHERE name = ?1 AND (?2 IS NULL OR namespace = ?2) AND (?3 IS NULL OR environment = ?3)
               AND (?4 IS NULL OR cluster = ?4)
             ORDER BY environment, namespace, cluster",
        )
        .map_err(backend_error("find services"))?;
    let rows = stmt
        .query_map(
            params![
                name.as_str(),
                namespace,
                environment.map(Environment::as_str),
                cluster.map(Cluster::as_str)
            ],
            service_ref,
        )
        .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
        .map_err(failed)?;
    Ok(to_refs(rows))
}

/// The Services a new alert fires on: the stored ones its labels match; with an environment
/// and none stored, the one its labels name.
fn fired_on(tx: &rusqlite::Transaction<'_>, alert: &Alert) -> Result<Vec<ServiceRef>> {
    let Some(name) = &alert.service else {
        return Ok(Vec::new());
    };
    let found = find_services(
        tx,
        name,
        alert.namespace.as_deref(),
        alert.environment.as_ref(),
        alert.cluster.as_ref(),
    )?;
    if !found.is_empty() {
        return Ok(found);
    }
    Ok(alert
        .environment
        .as_ref()
        .map(|environment| ServiceRef {
            name: name.clone(),
            namespace: alert.namespace.clone(),
            environment: environment.clone(),
            cluster: alert.cluster.clone().unwrap_or_default(),
        })
        .into_iter()
        .collect())
}

fn read_alert(conn: &Connection, uid: &str) -> Result<Option<Alert>> {
    let row: Option<String> = conn
        .prepare_cached("SELECT payload FROM alerts WHERE uid = ?1")
        .and_then(|mut stmt| stmt.query_row([uid], |row| row.get(0)).optional())
        .map_err(backend_error("read an alert"))?;
    row.map(|payload| decode(uid, &payload)).transpose()
}

fn write_alert(tx: &rusqlite::Transaction<'_>, alert: &Alert, insert: bool) -> Result<()> {
    let failed = backend_error("record an alert");
    let payload = encode(super::BACKEND, alert, "encode an alert")?;
    let status = match alert.status {
        deploygraph_model::AlertStatus::Firing => "firing",
        deploygraph_model::AlertStatus::Resolved => "resolved",
    };
    if !insert {
        exec(
            tx,
            "UPDATE alerts SET status = ?2, ends_at = ?3, severity = ?4, summary = ?5, payload = ?6
             WHERE uid = ?1",
            params![
                alert.uid.as_str(),
                status,
                alert.ends_at.as_ref().map(format_time),
                alert.severity,
                alert.summary,
                payload
            ],
        )
        .map_err(failed)?;
        return Ok(());
    }
    exec(
        tx,
        "INSERT INTO alerts (uid, fingerprint, name, type, severity, status, starts_at, starts_at_us,
                             ends_at, service, namespace, environment, summary, payload, cluster)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        params![
            alert.uid.as_str(),
            alert.fingerprint,
            alert.name,
            alert.alert_type,
            alert.severity,
            status,
            format_time(&alert.starts_at),
            alert.starts_at.timestamp_micros(),
            alert.ends_at.as_ref().map(format_time),
            alert.service.as_ref().map(ServiceName::as_str),
            alert.namespace,
            alert.environment.as_ref().map(Environment::as_str),
            alert.summary,
            payload,
            alert.cluster.as_ref().map(Cluster::as_str)
        ],
    )
    .map_err(backend_error("record an alert"))?;
    for service in fired_on(tx, alert)? {
        ensure_service(tx, &service).map_err(backend_error("record an alert"))?;
        exec(
            tx,
            "INSERT INTO alert_services (alert_uid, service_uid) VALUES (?1, ?2)
             ON CONFLICT DO NOTHING",
            params![alert.uid.as_str(), service.uid().as_str()],
        )
        .map_err(backend_error("record an alert"))?;
    }
    Ok(())
}

pub(super) fn record_alerts(
    conn: &mut Connection,
    alerts: Vec<Alert>,
) -> Result<Vec<(Alert, AlertOutcome)>> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend_error("begin a transaction"))?;
    let mut outcomes = Vec::with_capacity(alerts.len());
    for alert in alerts {
        let stored = read_alert(&tx, alert.uid.as_str())?;
        let (merged, outcome) = merge_alert(stored.as_ref(), alert);
        match outcome {
            AlertOutcome::Created => write_alert(&tx, &merged, true)?,
            AlertOutcome::Updated => write_alert(&tx, &merged, false)?,
            AlertOutcome::Unchanged => {}
        }
        outcomes.push((merged, outcome));
    }
    // The follow-ups' enqueue time is taken last, just before the commit: an attribution that
    // started a moment after it read the alerts committed here (the pipeline's revisits rely
    // on it, with a margin).
    let now = Utc::now();
    for (merged, outcome) in &outcomes {
        if *outcome == AlertOutcome::Created {
            super::follow_up::enqueue(&tx, crate::FollowUpKind::Alert, &merged.uid, now)?;
        }
    }
    tx.commit().map_err(backend_error("commit"))?;
    Ok(outcomes)
}

/// Sets the stored alert's metric onset (its payload), `false` when no alert has `uid`.
pub(super) fn set_alert_onset(
    conn: &mut Connection,
    uid: &Uid,
    onset: &deploygraph_model::MetricOnset,
) -> Result<bool> {
    edit_alert(conn, uid, |alert| alert.onset = Some(onset.clone()))
}

/// Sets the stored alert's service metrics (its payload), `false` when no alert has `uid`.
pub(super) fn set_alert_service_metrics(
    conn: &mut Connection,
    uid: &Uid,
    metrics: &std::collections::BTreeMap<String, deploygraph_model::ServiceMetric>,
) -> Result<bool> {
    edit_alert(conn, uid, |alert| {
        alert.service_metrics = Some(metrics.clone());
    })
}

/// Edits the stored alert `uid` with `edit` in one immediate transaction, `false` when there
/// is none.
fn edit_alert(conn: &mut Connection, uid: &Uid, edit: impl FnOnce(&mut Alert)) -> Result<bool> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend_error("begin a transaction"))?;
    let Some(mut alert) = read_alert(&tx, uid.as_str())? else {
        return Ok(false);
    };
    edit(&mut alert);
    write_alert(&tx, &alert, false)?;
    tx.commit().map_err(backend_error("commit"))?;
    Ok(true)
}

pub(super) fn get_alert(conn: &Connection, uid: &Uid) -> Result<Option<Alert>> {
    read_alert(conn, uid.as_str())
}

pub(super) fn get_alerts(conn: &Connection, uids: &[Uid]) -> Result<Vec<Alert>> {
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    let list = uid_list(uids)?;
    let rows: Vec<(String, String)> = conn
        .prepare_cached(
            "SELECT uid, payload FROM alerts WHERE uid IN (SELECT value FROM json_each(?1))
             ORDER BY uid",
        )
        .and_then(|mut stmt| {
            stmt.query_map([list], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect()
        })
        .map_err(backend_error("read alerts"))?;
    rows.iter()
        .map(|(uid, payload)| decode(uid, payload))
        .collect()
}

pub(super) fn list_alerts(conn: &Connection, filter: &AlertFilter) -> Result<Vec<Alert>> {
    let mut clauses: Vec<&str> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    if let Some(service) = &filter.service {
        clauses.push("service = ?");
        values.push(Value::Text(service.as_str().to_owned()));
    }
    if let Some(environment) = &filter.environment {
        clauses.push("environment = ?");
        values.push(Value::Text(environment.as_str().to_owned()));
    }
    if let Some(cluster) = &filter.cluster {
        clauses.push(
            "(cluster = ? OR (cluster IS NULL AND uid IN (
                SELECT a.alert_uid FROM alert_services a JOIN services s ON s.uid = a.service_uid
                WHERE s.cluster = ?)))",
        );
        values.push(Value::Text(cluster.as_str().to_owned()));
        values.push(Value::Text(cluster.as_str().to_owned()));
    }
    if let Some(fingerprint) = &filter.fingerprint {
        clauses.push("fingerprint = ?");
        values.push(Value::Text(fingerprint.clone()));
    }
    if let Some(since) = filter.since {
        clauses.push("starts_at_us >= ?");
        values.push(Value::Integer(since.timestamp_micros()));
    }
    if let Some(until) = filter.until {
        clauses.push("starts_at_us <= ?");
        values.push(Value::Integer(until.timestamp_micros()));
    }
    if let Some(cursor) = &filter.cursor {
        clauses.push("(starts_at_us < ? OR (starts_at_us = ? AND uid < ?))");
        values.push(Value::Integer(cursor.started_at_us));
        values.push(Value::Integer(cursor.started_at_us));
        values.push(Value::Text(cursor.uid.clone()));
    }
    let where_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    values.push(limit_value(filter.limit));
    let sql = format!(
        "SELECT uid, payload FROM alerts {where_sql} ORDER BY starts_at_us DESC, uid DESC LIMIT ?"
    );
    let failed = backend_error("list alerts");
    let rows: Vec<(String, String)> = conn
        .prepare_cached(&sql)
        .and_then(|mut stmt| {
            stmt.query_map(params_from_iter(values), |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?
            .collect()
        })
        .map_err(failed)?;
    rows.iter()
        .map(|(uid, payload)| decode(uid, payload))
        .collect()
}

pub(super) fn alert_services(conn: &Connection, alert: &Uid) -> Result<Vec<ServiceRef>> {
    let rows = conn
        .prepare_cached(
            "SELECT s.name, s.namespace, s.environment, s.cluster FROM alert_services a
             JOIN services s ON s.uid = a.service_uid WHERE a.alert_uid = ?1
             ORDER BY s.environment, s.namespace",
        )
        .and_then(|mut stmt| stmt.query_map([alert.as_str()], service_ref)?.collect())
        .map_err(backend_error("read an alert's services"))?;
    Ok(to_refs(rows))
}

pub(super) fn deployments_between(
    conn: &Connection,
    services: &[Uid],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<StoredDeployment>> {
    let mut rows = Vec::new();
    let mut stmt = conn
        .prepare_cached(
            "SELECT uid, payload, follows_uid FROM deployments
             WHERE service_uid = ?1 AND started_at_us BETWEEN ?2 AND ?3",
        )
        .map_err(backend_error("read deployments in a window"))?;
    for service in services {
        let found = stmt
            .query_map(
                params![
                    service.as_str(),
                    from.timestamp_micros(),
                    to.timestamp_micros()
                ],
                stored_deployment,
            )
            .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
            .map_err(backend_error("read deployments in a window"))?;
        rows.extend(found);
    }
    let mut deployments = decode_rows(rows)?;
    deployments.sort_by(|a, b| {
        b.deployment
            .started_at
            .cmp(&a.deployment.started_at)
            .then_with(|| b.deployment.uid.cmp(&a.deployment.uid))
    });
    Ok(deployments)
}

pub(super) fn service_history(
    conn: &Connection,
    service: &Uid,
    before: DateTime<Utc>,
) -> Result<ServiceHistory> {
    conn.prepare_cached(
        // Blamed (`crate::is_blamed`) for an alert that started before `before`: confirmed
        // for it, or a suspect of it at the blame confidence that no reviewer rejected for it.
        "SELECT count(*),
                coalesce(sum(
                    EXISTS (SELECT 1 FROM deployment_verdicts v JOIN alerts a ON a.uid = v.alert_uid
                            WHERE v.deployment_uid = d.uid AND v.verdict = 'confirmed'
                              AND a.starts_at_us < ?2)
                    OR EXISTS (SELECT 1 FROM triggers t JOIN alerts a ON a.uid = t.alert_uid
                               WHERE t.deployment_uid = d.uid AND t.confidence_score >= ?3
                                 AND a.starts_at_us < ?2
                                 AND NOT EXISTS (SELECT 1 FROM deployment_verdicts r
                                                 WHERE r.deployment_uid = d.uid
                                                   AND r.alert_uid = t.alert_uid
                                                   AND r.verdict = 'rejected'))), 0)
         FROM deployments d WHERE d.service_uid = ?1 AND d.started_at_us < ?2",
    )
    .and_then(|mut stmt| {
        stmt.query_row(
            params![
                service.as_str(),
                before.timestamp_micros(),
                crate::BLAMED_CONFIDENCE
            ],
            |row| {
                let deployments: i64 = row.get(0)?;
                let followed: i64 = row.get(1)?;
                Ok(ServiceHistory {
                    deployments: u32::try_from(deployments).unwrap_or(u32::MAX),
                    followed_by_alerts: u32::try_from(followed).unwrap_or(u32::MAX),
                })
            },
        )
    })
    .map_err(backend_error("read a service's history"))
}

pub(super) fn replace_attribution(
    conn: &mut Connection,
    alert: &Uid,
    triggers: &[Trigger],
    chaos: Option<(&Uid, &str)>,
) -> Result<()> {
    let failed = || backend_error("record an attribution");
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend_error("begin a transaction"))?;
    for table in [
        "DELETE FROM triggers WHERE alert_uid = ?1",
        "DELETE FROM change_triggers WHERE alert_uid = ?1",
    ] {
        exec(&tx, table, [alert.as_str()]).map_err(failed())?;
    }
    for t in triggers {
        let insert = match t.subject {
            SubjectKind::Deployment => {
                "INSERT INTO triggers (alert_uid, deployment_uid, confidence_score, reasons, computed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)"
            }
            SubjectKind::Change => {
                "INSERT INTO change_triggers (alert_uid, change_uid, confidence_score, reasons, computed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)"
            }
        };
        exec(
            &tx,
            insert,
            params![
                alert.as_str(),
                t.subject_uid.as_str(),
                t.confidence_score,
                encode(super::BACKEND, &t.reasons, "encode reasons")?,
                format_time(&t.computed_at)
            ],
        )
        .map_err(failed())?;
    }
    if let Some((run, reason)) = chaos {
        exec(
            &tx,
            "INSERT INTO chaos_raised (run_uid, alert_uid, reason) VALUES (?1, ?2, ?3)
             ON CONFLICT (run_uid, alert_uid) DO UPDATE SET reason = excluded.reason",
            params![run.as_str(), alert.as_str(), reason],
        )
        .map_err(failed())?;
    }
    tx.commit().map_err(backend_error("commit"))
}

/// The TRIGGERS of deployments and of changes as one relation: `alert_uid, subject,
/// subject_uid, confidence_score, reasons, computed_at`.
const ALL_TRIGGERS: &str = "
    SELECT alert_uid, 'deployment' AS subject, deployment_uid AS subject_uid, confidence_score,
           reasons, computed_at
    FROM triggers
    UNION ALL
    SELECT alert_uid, 'change' AS subject, change_uid AS subject_uid, confidence_score,
           reasons, computed_at
    FROM change_triggers";

type TriggerRow = (String, String, String, f64, String, String);

fn trigger_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TriggerRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

fn to_trigger(
    (alert, subject, subject_uid, confidence_score, reasons, computed_at): TriggerRow,
) -> Result<Trigger> {
    let corrupt = |e: Box<dyn std::error::Error + Send + Sync>| Error::Corrupt {
        uid: subject_uid.clone(),
        source: e,
    };
    Ok(Trigger {
        subject: SubjectKind::parse(&subject)
            .ok_or_else(|| corrupt(format!("unknown subject kind {subject:?}").into()))?,
        alert_uid: Uid::from_stored(alert),
        confidence_score,
        reasons: decode(&subject_uid, &reasons)?,
        computed_at: deploygraph_model::parse_time(&computed_at)
            .map_err(|e| corrupt(Box::new(e)))?,
        subject_uid: Uid::from_stored(subject_uid),
    })
}

pub(super) fn attribution(conn: &Connection, alert: &Uid) -> Result<StoredAttribution> {
    let failed = || backend_error("read an attribution");
    let rows: Vec<TriggerRow> = conn
        .prepare_cached(&format!(
            "SELECT * FROM ({ALL_TRIGGERS}) WHERE alert_uid = ?1
             ORDER BY confidence_score DESC, subject_uid"
        ))
        .and_then(|mut stmt| stmt.query_map([alert.as_str()], trigger_row)?.collect())
        .map_err(failed())?;
    let triggers = rows
        .into_iter()
        .map(to_trigger)
        .collect::<Result<Vec<_>>>()?;
    let chaos: Option<(String, String)> = conn
        .prepare_cached(
            "SELECT r.run_uid, r.reason FROM chaos_raised r JOIN chaos_runs c ON c.uid = r.run_uid
             WHERE r.alert_uid = ?1 ORDER BY c.started_at_us DESC LIMIT 1",
        )
        .and_then(|mut stmt| {
            stmt.query_row([alert.as_str()], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
        })
        .map_err(failed())?;
    Ok(StoredAttribution {
        triggers,
        chaos_run: chaos.as_ref().map(|(uid, _)| Uid::from_stored(uid.clone())),
        chaos_reason: chaos.map(|(_, reason)| reason),
    })
}

/// A list of uids as one JSON parameter, for `IN (SELECT value FROM json_each(?))`: one
/// statement whatever the list's length, within SQLite's limit on parameters.
pub(super) fn uid_list(uids: &[Uid]) -> Result<String> {
    let uids: Vec<&str> = uids.iter().map(Uid::as_str).collect();
    encode(super::BACKEND, &uids, "encode uids")
}

pub(super) fn top_triggers(conn: &Connection, alerts: &[Uid]) -> Result<Vec<Trigger>> {
    let failed = || backend_error("read top triggers");
    if alerts.is_empty() {
        return Ok(Vec::new());
    }
    let list = uid_list(alerts)?;
    let rows: Vec<TriggerRow> = conn
        .prepare_cached(&format!(
            "SELECT alert_uid, subject, subject_uid, confidence_score, reasons, computed_at FROM (
                 SELECT t.*, row_number() OVER (
                     PARTITION BY alert_uid ORDER BY confidence_score DESC, subject_uid
                 ) AS rank
                 FROM ({ALL_TRIGGERS}) t WHERE alert_uid IN (SELECT value FROM json_each(?1))
             ) WHERE rank = 1 ORDER BY alert_uid"
        ))
        .and_then(|mut stmt| stmt.query_map([list], trigger_row)?.collect())
        .map_err(failed())?;
    rows.into_iter().map(to_trigger).collect()
}

pub(super) fn triggered_by(conn: &Connection, subjects: &[Uid]) -> Result<Vec<SubjectTrigger>> {
    if subjects.is_empty() {
        return Ok(Vec::new());
    }
    let list = uid_list(subjects)?;
    // The alerts these subjects are suspects of, then every suspect of those alerts ranked as
    // `attribution` ranks them, keeping these subjects' rows.
    let rows: Vec<(TriggerRow, i64, i64)> = conn
        .prepare_cached(&format!(
            "WITH mine AS (
                 SELECT alert_uid FROM triggers
                 WHERE deployment_uid IN (SELECT value FROM json_each(?1))
                 UNION
                 SELECT alert_uid FROM change_triggers
                 WHERE change_uid IN (SELECT value FROM json_each(?1))
             )
             SELECT alert_uid, subject, subject_uid, confidence_score, reasons, computed_at,
                    rank, suspects
             FROM (
                 SELECT t.*, row_number() OVER (
                     PARTITION BY alert_uid ORDER BY confidence_score DESC, subject_uid
                 ) AS rank, count(*) OVER (PARTITION BY alert_uid) AS suspects
                 FROM ({ALL_TRIGGERS}) t WHERE alert_uid IN (SELECT alert_uid FROM mine)
             )
             WHERE subject_uid IN (SELECT value FROM json_each(?1))
             ORDER BY subject_uid, confidence_score DESC, alert_uid"
        ))
        .and_then(|mut stmt| {
            stmt.query_map([list], |row| {
                Ok((trigger_row(row)?, row.get(6)?, row.get(7)?))
            })?
            .collect()
        })
        .map_err(backend_error("read the triggers of subjects"))?;
    rows.into_iter()
        .map(|(row, rank, suspects)| {
            Ok(SubjectTrigger {
                trigger: to_trigger(row)?,
                rank: u32::try_from(rank).unwrap_or(u32::MAX),
                suspects: u32::try_from(suspects).unwrap_or(u32::MAX),
            })
        })
        .collect()
}

pub(super) fn get_deployments(conn: &Connection, uids: &[Uid]) -> Result<Vec<StoredDeployment>> {
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    let list = uid_list(uids)?;
    let rows = conn
        .prepare_cached(
            "SELECT uid, payload, follows_uid FROM deployments
             WHERE uid IN (SELECT value FROM json_each(?1)) ORDER BY uid",
        )
        .and_then(|mut stmt| {
            stmt.query_map([list], stored_deployment)?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(backend_error("read deployments"))?;
    decode_rows(rows)
}

pub(super) fn record_chaos_run(conn: &mut Connection, run: &ChaosRun) -> Result<()> {
    let failed = || backend_error("record a chaos run");
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend_error("begin a transaction"))?;
    ensure_service(&tx, &run.target).map_err(failed())?;
    exec(
        &tx,
        "INSERT INTO chaos_runs (uid, scenario, experiment, engine, service_uid, service, namespace,
             environment, verdict, phase, probe_success_pct, started_at, started_at_us, ended_at,
             ended_at_us, recovery_seconds, error_reason, against_uid, payload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)
         ON CONFLICT (uid) DO UPDATE SET scenario = excluded.scenario, experiment = excluded.experiment,
             engine = excluded.engine, service_uid = excluded.service_uid, service = excluded.service,
             namespace = excluded.namespace, environment = excluded.environment,
             verdict = excluded.verdict, phase = excluded.phase,
             probe_success_pct = excluded.probe_success_pct, started_at = excluded.started_at,
             started_at_us = excluded.started_at_us, ended_at = excluded.ended_at,
             ended_at_us = excluded.ended_at_us, recovery_seconds = excluded.recovery_seconds,
             error_reason = excluded.error_reason, against_uid = excluded.against_uid,
             payload = excluded.payload",
        params![
            run.uid.as_str(),
            run.scenario,
            run.experiment,
            run.engine,
            run.target.uid().as_str(),
            run.target.name.as_str(),
            run.target.namespace,
            run.target.environment.as_str(),
            run.verdict.as_str(),
            run.phase,
            run.probe_success_pct,
            format_time(&run.started_at),
            run.started_at.timestamp_micros(),
            run.ended_at.as_ref().map(format_time),
            run.ended_at.map(|t| t.timestamp_micros()),
            run.recovery_seconds,
            run.error_reason,
            run.against.as_ref().map(Uid::as_str),
            encode(super::BACKEND, run, "encode a chaos run")?
        ],
    )
    .map_err(failed())?;
    tx.commit().map_err(backend_error("commit"))
}

pub(super) fn get_chaos_run(conn: &Connection, uid: &Uid) -> Result<Option<ChaosRun>> {
    let row: Option<String> = conn
        .prepare_cached("SELECT payload FROM chaos_runs WHERE uid = ?1")
        .and_then(|mut stmt| stmt.query_row([uid.as_str()], |row| row.get(0)).optional())
        .map_err(backend_error("read a chaos run"))?;
    row.map(|payload| decode(uid.as_str(), &payload))
        .transpose()
}

pub(super) fn list_chaos_runs(conn: &Connection, filter: &ChaosFilter) -> Result<Vec<ChaosRun>> {
    let mut clauses: Vec<String> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    if !filter.services.is_empty() {
        clauses.push(format!(
            "service_uid IN ({})",
            vec!["?"; filter.services.len()].join(", ")
        ));
        values.extend(
            filter
                .services
                .iter()
                .map(|s| Value::Text(s.as_str().to_owned())),
        );
    }
    if let Some(against) = &filter.against {
        clauses.push("against_uid = ?".to_owned());
        values.push(Value::Text(against.as_str().to_owned()));
    }
    if let Some(since) = filter.since {
        clauses.push("(ended_at_us IS NULL OR ended_at_us >= ?)".to_owned());
        values.push(Value::Integer(since.timestamp_micros()));
    }
    if let Some(until) = filter.until {
        clauses.push("started_at_us <= ?".to_owned());
        values.push(Value::Integer(until.timestamp_micros()));
    }
    if let Some(cursor) = &filter.cursor {
        clauses.push("(started_at_us < ? OR (started_at_us = ? AND uid < ?))".to_owned());
        values.push(Value::Integer(cursor.started_at_us));
        values.push(Value::Integer(cursor.started_at_us));
        values.push(Value::Text(cursor.uid.clone()));
    }
    let where_sql = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    values.push(limit_value(filter.limit));
    let sql = format!(
        "SELECT uid, payload FROM chaos_runs {where_sql} ORDER BY started_at_us DESC, uid DESC LIMIT ?"
    );
    let rows: Vec<(String, String)> = conn
        .prepare(&sql)
        .and_then(|mut stmt| {
            stmt.query_map(params_from_iter(values), |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?
            .collect()
        })
        .map_err(backend_error("list chaos runs"))?;
    rows.iter()
        .map(|(uid, payload)| decode(uid, payload))
        .collect()
}

pub(super) fn list_snapshots(
    conn: &Connection,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<deploygraph_model::InfraSnapshot>> {
    let rows: Vec<(String, String)> = conn
        .prepare_cached(
            "SELECT uid, payload FROM infra_snapshots WHERE taken_at_us BETWEEN ?1 AND ?2
             ORDER BY taken_at_us DESC LIMIT ?3",
        )
        .and_then(|mut stmt| {
            stmt.query_map(
                params![
                    since.timestamp_micros(),
                    until.timestamp_micros(),
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?
            .collect()
        })
        .map_err(backend_error("list snapshots"))?;
    rows.iter()
        .map(|(uid, payload)| decode(uid, payload))
        .collect()
}
