//! Changes that are not rollouts in the embedded store: `changes`, `change_services`
//! (AFFECTS), `change_keys`, and their follow-ups.

use super::{BACKEND, backend_error, exec, follow_up, rca};
use crate::error::Result;
use crate::payload::{decode, decode_all, encode};
use crate::types::{ChangeFilter, ChangeOutcome};
use chrono::{DateTime, Utc};
use deploygraph_model::newtypes::format_time;
use deploygraph_model::{Change, Uid};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params, params_from_iter};
use std::collections::HashMap;

fn write_change(tx: &rusqlite::Transaction<'_>, c: &Change) -> Result<()> {
    let failed = || backend_error("write a change");
    for service in &c.services {
        rca::ensure_service(tx, service).map_err(backend_error("write a service"))?;
    }
    exec(
        tx,
        "INSERT INTO changes (uid, client_id, kind, actor, at, at_us, link, summary, source,
             content_fingerprint, payload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            c.uid.as_str(),
            c.id,
            c.kind.as_str(),
            c.actor,
            format_time(&c.at),
            c.at.timestamp_micros(),
            c.link,
            c.summary,
            c.source.as_str(),
            c.content_fingerprint(),
            encode(BACKEND, c, "encode a change")?
        ],
    )
    .map_err(failed())?;
    for service in &c.services {
        exec(
            tx,
            "INSERT INTO change_services (change_uid, service_uid, at_us) VALUES (?1, ?2, ?3)
             ON CONFLICT DO NOTHING",
            params![
                c.uid.as_str(),
                service.uid().as_str(),
                c.at.timestamp_micros()
            ],
        )
        .map_err(backend_error("link a change to its service"))?;
    }
    for key in &c.diff {
        exec(
            tx,
            "INSERT INTO change_keys (change_uid, key, before, after, at_us)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT DO NOTHING",
            params![
                c.uid.as_str(),
                key.key,
                key.before,
                key.after,
                c.at.timestamp_micros()
            ],
        )
        .map_err(backend_error("write a changed key"))?;
    }
    Ok(())
}

pub(super) fn record_changes(
    conn: &mut Connection,
    batch: Vec<Change>,
) -> Result<Vec<ChangeOutcome>> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend_error("begin a transaction"))?;
    let mut stored = HashMap::new();
    for c in &batch {
        let uid = c.uid.as_str();
        if stored.contains_key(uid) {
            continue;
        }
        if let Some(found) = read_change(&tx, uid)? {
            stored.insert(uid.to_owned(), found);
        }
    }
    let plan = crate::plan::plan_changes(stored, batch);
    let now = Utc::now();
    for c in &plan.inserts {
        write_change(&tx, c)?;
        follow_up::enqueue(&tx, crate::FollowUpKind::Change, &c.uid, now)?;
    }
    tx.commit().map_err(backend_error("commit"))?;
    Ok(plan.outcomes)
}

fn read_change(conn: &Connection, uid: &str) -> Result<Option<Change>> {
    let row: Option<String> = conn
        .prepare_cached("SELECT payload FROM changes WHERE uid = ?1")
        .and_then(|mut stmt| stmt.query_row([uid], |row| row.get(0)).optional())
        .map_err(backend_error("read a change"))?;
    row.map(|payload| decode(uid, &payload)).transpose()
}

pub(super) fn get_change(conn: &Connection, uid: &Uid) -> Result<Option<Change>> {
    read_change(conn, uid.as_str())
}

fn pairs(
    conn: &Connection,
    sql: &str,
    values: impl rusqlite::Params,
    operation: &'static str,
) -> Result<Vec<(String, String)>> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| {
            stmt.query_map(values, |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect()
        })
        .map_err(backend_error(operation))
}

pub(super) fn get_changes(conn: &Connection, uids: &[Uid]) -> Result<Vec<Change>> {
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = pairs(
        conn,
        "SELECT uid, payload FROM changes
         WHERE uid IN (SELECT value FROM json_each(?1)) ORDER BY uid",
        [rca::uid_list(uids)?],
        "read changes",
    )?;
    decode_all(&rows)
}

pub(super) fn changes_between(
    conn: &Connection,
    services: &[Uid],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Change>> {
    if services.is_empty() {
        return Ok(Vec::new());
    }
    let rows = pairs(
        conn,
        "SELECT c.uid, c.payload FROM changes c
         WHERE c.uid IN (
             SELECT cs.change_uid FROM change_services cs
             WHERE cs.service_uid IN (SELECT value FROM json_each(?1))
               AND cs.at_us BETWEEN ?2 AND ?3)
         ORDER BY c.at_us DESC, c.uid DESC",
        params![
            rca::uid_list(services)?,
            from.timestamp_micros(),
            to.timestamp_micros()
        ],
        "read changes in a window",
    )?;
    decode_all(&rows)
}

/// The listing query: fixed clauses chosen by which filters are set, values bound as parameters.
pub(super) fn list_changes(conn: &Connection, filter: &ChangeFilter) -> Result<Vec<Change>> {
    let mut clauses: Vec<&str> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    if !filter.services.is_empty() {
        clauses.push(
            "uid IN (SELECT change_uid FROM change_services
                     WHERE service_uid IN (SELECT value FROM json_each(?)))",
        );
        values.push(Value::Text(rca::uid_list(&filter.services)?));
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
        "SELECT uid, payload FROM changes {where_sql} ORDER BY at_us DESC, uid DESC LIMIT ?"
    );
    let rows = pairs(conn, &sql, params_from_iter(values), "list changes")?;
    decode_all(&rows)
}
