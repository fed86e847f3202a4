//! Gate overrides in the embedded store: one `gate_overrides` row per override, its
//! `deployment_uid` the ADMITTED link (the payload keeps the rest of the facts).

use super::{backend_error, exec};
use crate::error::Result;
use crate::payload::{decode, encode};
use crate::types::GateOverrideFilter;
use chrono::{DateTime, Duration, Utc};
use deploygraph_model::{GateOverride, Uid};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params, params_from_iter};

pub(super) fn record_gate_override(conn: &mut Connection, o: &GateOverride) -> Result<bool> {
    let mut facts = o.clone();
    facts.deployment_uid = None;
    let payload = encode("sqlite", &facts, "encode a gate override")?;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend_error("begin a transaction"))?;
    let stored: Option<i64> = tx
        .prepare_cached("SELECT 1 FROM gate_overrides WHERE uid = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([o.uid.as_str()], |row| row.get(0))
                .optional()
        })
        .map_err(backend_error("record a gate override"))?;
    if stored.is_some() {
        return Ok(false);
    }
    exec(
        &tx,
        "INSERT INTO gate_overrides (uid, at_us, kind, namespace, name, template_hash,
             deployment_uid, payload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL, ?7)",
        params![
            o.uid.as_str(),
            o.at.timestamp_micros(),
            o.kind,
            o.namespace,
            o.name,
            o.template_hash,
            payload
        ],
    )
    .map_err(backend_error("record a gate override"))?;
    tx.commit()
        .map_err(backend_error("commit a gate override"))?;
    Ok(true)
}

pub(super) fn link_gate_overrides(
    conn: &mut Connection,
    deployment: &Uid,
    (kind, namespace, name): (&str, &str, &str),
    template_hash: &str,
    started_at: DateTime<Utc>,
) -> Result<usize> {
    let from = (started_at - Duration::hours(1)).timestamp_micros();
    let to = (started_at + Duration::minutes(1)).timestamp_micros();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend_error("begin a transaction"))?;
    let linked = tx
        .prepare_cached(
            "UPDATE gate_overrides SET deployment_uid = ?1
             WHERE deployment_uid IS NULL AND kind = ?2 AND namespace = ?3 AND name = ?4
               AND at_us BETWEEN ?5 AND ?6
               AND (template_hash IS NULL OR template_hash = ?7)
               AND EXISTS (SELECT 1 FROM deployments WHERE uid = ?1)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                deployment.as_str(),
                kind,
                namespace,
                name,
                from,
                to,
                template_hash
            ])
        })
        .map_err(backend_error("link gate overrides"))?;
    tx.commit()
        .map_err(backend_error("commit gate override links"))?;
    Ok(linked)
}

pub(super) fn list_gate_overrides(
    conn: &Connection,
    filter: &GateOverrideFilter,
) -> Result<Vec<GateOverride>> {
    // Each clause is a fixed string of this function; every value is a parameter.
    let mut clauses: Vec<&str> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    if let Some(namespace) = &filter.namespace {
        clauses.push("namespace = ?");
        values.push(Value::Text(namespace.clone()));
    }
    if let Some(name) = &filter.name {
        clauses.push("name = ?");
        values.push(Value::Text(name.clone()));
    }
    if let Some(deployment) = &filter.deployment {
        clauses.push("deployment_uid = ?");
        values.push(Value::Text(deployment.as_str().to_owned()));
    }
    if let Some(since) = filter.since {
        clauses.push("at_us >= ?");
        values.push(Value::Integer(since.timestamp_micros()));
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
        "SELECT uid, payload, deployment_uid FROM gate_overrides {where_sql}
         ORDER BY at_us DESC, uid DESC LIMIT ?"
    );
    let rows: Vec<(String, String, Option<String>)> = conn
        .prepare(&sql)
        .and_then(|mut stmt| {
            stmt.query_map(params_from_iter(values), |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })?
            .collect()
        })
        .map_err(backend_error("list gate overrides"))?;
    rows.into_iter()
        .map(|(uid, payload, deployment)| {
            let mut o: GateOverride = decode(&uid, &payload)?;
            o.deployment_uid = deployment.map(Uid::from_stored);
            Ok(o)
        })
        .collect()
}
