//! Canary analyses in the embedded store: `canary_analyses` (one row per analysis, its
//! `deployment_uid` the ANALYZED link) and `metric_verdicts` (one row per metric, MEASURED).

use super::rca::uid_list;
use super::{backend_error, exec, follow_up};
use crate::error::{Error, Result};
use crate::payload::{decode, decode_all, encode};
use crate::types::{CanaryFilter, CanaryOutcome, RecordKind};
use deploygraph_model::newtypes::format_time;
use deploygraph_model::{CanaryAnalysis, NewCanaryAnalysis, Uid};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params, params_from_iter};

pub(super) fn record_canary_analysis(
    conn: &mut Connection,
    new: &NewCanaryAnalysis,
) -> Result<CanaryOutcome> {
    let failed = || backend_error("record a canary analysis");
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend_error("begin a transaction"))?;
    let service: Option<super::rca::ServiceRow> = tx
        .prepare_cached(
            "SELECT service, namespace, environment, cluster FROM deployments WHERE uid = ?1",
        )
        .and_then(|mut stmt| {
            stmt.query_row([new.deployment.as_str()], super::rca::service_ref)
                .optional()
        })
        .map_err(failed())?;
    let Some(service) = service else {
        return Err(Error::NotFound {
            what: "deployment",
            uid: new.deployment.as_str().to_owned(),
        });
    };
    let corrupt = |e: deploygraph_model::Error| Error::Corrupt {
        uid: new.deployment.as_str().to_owned(),
        source: Box::new(e),
    };
    let service = super::rca::parse_ref(service).map_err(corrupt)?;
    let analysis = new.clone().of(service);
    let stored: Option<String> = tx
        .prepare_cached("SELECT payload FROM canary_analyses WHERE uid = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([analysis.uid.as_str()], |row| row.get(0))
                .optional()
        })
        .map_err(failed())?;
    let stored: Option<CanaryAnalysis> = stored
        .map(|payload| decode(analysis.uid.as_str(), &payload))
        .transpose()?;
    if stored.as_ref() == Some(&analysis) {
        return Ok(CanaryOutcome {
            kind: RecordKind::Unchanged,
            analysis,
        });
    }
    exec(
        &tx,
        "INSERT INTO canary_analyses (uid, deployment_uid, service_uid, service, namespace,
             environment, template, verdict, baseline_kind, started_at, started_at_us, decided_at,
             decided_at_us, analyses, rule, payload, \"final\")
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
         ON CONFLICT (uid) DO UPDATE SET template = excluded.template,
             verdict = excluded.verdict, baseline_kind = excluded.baseline_kind,
             decided_at = excluded.decided_at, decided_at_us = excluded.decided_at_us,
             analyses = excluded.analyses, rule = excluded.rule, payload = excluded.payload,
             \"final\" = excluded.\"final\"",
        params![
            analysis.uid.as_str(),
            analysis.deployment.as_str(),
            analysis.service.uid().as_str(),
            analysis.service.name.as_str(),
            analysis.service.namespace,
            analysis.service.environment.as_str(),
            analysis.template,
            analysis.verdict.as_str(),
            analysis.baseline_kind.as_str(),
            format_time(&analysis.started_at),
            analysis.started_at.timestamp_micros(),
            format_time(&analysis.decided_at),
            analysis.decided_at.timestamp_micros(),
            analysis.analyses,
            analysis.rule,
            encode(super::BACKEND, &analysis, "encode a canary analysis")?,
            analysis.final_round
        ],
    )
    .map_err(failed())?;
    exec(
        &tx,
        "DELETE FROM metric_verdicts WHERE analysis_uid = ?1",
        [analysis.uid.as_str()],
    )
    .map_err(failed())?;
    for (position, m) in analysis.metrics.iter().enumerate() {
        exec(
            &tx,
            "INSERT INTO metric_verdicts (analysis_uid, position, name, kind, outcome, critical,
                 rule, evidence)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                analysis.uid.as_str(),
                i64::try_from(position).unwrap_or(i64::MAX),
                m.name,
                m.kind.as_str(),
                m.outcome.as_str(),
                m.critical,
                m.rule,
                encode(super::BACKEND, &m.evidence, "encode a metric's evidence")?
            ],
        )
        .map_err(failed())?;
    }
    // A new analysis, or a verdict that changed, is new evidence about the deployment: its
    // follow-up re-attributes the alerts after it (as a late deployment's does).
    if stored
        .as_ref()
        .is_none_or(|s| s.verdict != analysis.verdict)
    {
        follow_up::enqueue(
            &tx,
            crate::FollowUpKind::Deployment,
            &analysis.deployment,
            chrono::Utc::now(),
        )?;
    }
    tx.commit().map_err(backend_error("commit"))?;
    Ok(CanaryOutcome {
        kind: if stored.is_some() {
            RecordKind::Updated
        } else {
            RecordKind::Created
        },
        analysis,
    })
}

pub(super) fn canary_analyses(
    conn: &Connection,
    deployments: &[Uid],
) -> Result<Vec<CanaryAnalysis>> {
    if deployments.is_empty() {
        return Ok(Vec::new());
    }
    let list = uid_list(deployments)?;
    let rows: Vec<(String, String)> = conn
        .prepare_cached(
            "SELECT uid, payload FROM canary_analyses
             WHERE deployment_uid IN (SELECT value FROM json_each(?1))
             ORDER BY started_at_us DESC, uid DESC",
        )
        .and_then(|mut stmt| {
            stmt.query_map([list], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect()
        })
        .map_err(backend_error("read canary analyses"))?;
    decode_all(&rows)
}

pub(super) fn list_canary_analyses(
    conn: &Connection,
    filter: &CanaryFilter,
) -> Result<Vec<CanaryAnalysis>> {
    // Each clause is a fixed string of this function; every value is a parameter.
    let mut clauses: Vec<&str> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    if !filter.services.is_empty() {
        clauses.push("service_uid IN (SELECT value FROM json_each(?))");
        values.push(Value::Text(uid_list(&filter.services)?));
    }
    if let Some(since) = filter.since {
        clauses.push("decided_at_us >= ?");
        values.push(Value::Integer(since.timestamp_micros()));
    }
    if let Some(until) = filter.until {
        clauses.push("started_at_us <= ?");
        values.push(Value::Integer(until.timestamp_micros()));
    }
    if let Some(cursor) = &filter.cursor {
        clauses.push("(started_at_us < ? OR (started_at_us = ? AND uid < ?))");
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
        "SELECT uid, payload FROM canary_analyses {where_sql}
         ORDER BY started_at_us DESC, uid DESC LIMIT ?"
    );
    let rows: Vec<(String, String)> = conn
        .prepare(&sql)
        .and_then(|mut stmt| {
            stmt.query_map(params_from_iter(values), |row| {
                Ok((row.get(0)?, row.get(1)?))
            })?
            .collect()
        })
        .map_err(backend_error("list canary analyses"))?;
    decode_all(&rows)
}
