//! Follow-ups on SQLite: the `follow_ups` table, written in the transactions of the facts
//! they are about; claims are atomic because SQLite has one writer.

use super::backend_error;
use crate::error::Result;
use crate::follow_up::{Claim, FollowUp, FollowUpKind, FollowUpStats};
use chrono::{DateTime, Utc};
use deploygraph_model::Uid;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// Enqueues a follow-up inside the write's transaction. One already pending keeps its lease
/// (its worker finishing it leaves it claimable, see [`finish`]) and gets a newer enqueue time;
/// one deferred ([`defer_revisit`]: not claimed, claimable later) becomes claimable at once.
pub(super) fn enqueue(
    tx: &rusqlite::Transaction<'_>,
    kind: FollowUpKind,
    subject: &Uid,
    now: DateTime<Utc>,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO follow_ups (kind, subject, enqueued_at_us, claimable_at_us, attempts)
         VALUES (?1, ?2, ?3, 0, 0)
         ON CONFLICT (kind, subject) DO UPDATE SET
             enqueued_at_us = max(excluded.enqueued_at_us, follow_ups.enqueued_at_us + 1),
             claimable_at_us = CASE WHEN follow_ups.attempts = 0 THEN 0
                                    ELSE follow_ups.claimable_at_us END",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            kind.as_str(),
            subject.as_str(),
            now.timestamp_micros()
        ])
    })
    .map_err(backend_error("enqueue a follow-up"))?;
    Ok(())
}

/// Enqueues a revisit of each of `alerts` (see [`crate::GraphStore::enqueue_revisits`]) in
/// one transaction; the alerts a revisit is pending for, in `alerts`' order.
pub(super) fn enqueue_revisits(
    conn: &mut Connection,
    alerts: &[Uid],
    now: DateTime<Utc>,
) -> Result<Vec<Uid>> {
    let at = now.timestamp_micros();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend_error("begin a transaction"))?;
    let mut pending = Vec::with_capacity(alerts.len());
    {
        // Unclaimed follow-ups of the alert: a first attribution still waiting needs no revisit,
        // a revisit still waiting needs no write (either reads the newer facts when it runs).
        let mut waiting = tx
            .prepare_cached(
                "SELECT kind FROM follow_ups
                 WHERE subject = ?1 AND kind IN ('alert', 'revisit') AND claimable_at_us <= ?2",
            )
            .map_err(backend_error("enqueue revisits"))?;
        let mut skipped: Vec<&Uid> = Vec::new();
        for alert in alerts {
            if pending.contains(alert) || skipped.contains(&alert) {
                continue;
            }
            let kinds: Vec<String> = waiting
                .query_map(params![alert.as_str(), at], |row| row.get(0))
                .and_then(Iterator::collect)
                .map_err(backend_error("enqueue revisits"))?;
            if kinds.iter().any(|k| k == "alert") {
                skipped.push(alert);
                continue;
            }
            if !kinds.iter().any(|k| k == "revisit") {
                enqueue(&tx, FollowUpKind::Revisit, alert, now)?;
            }
            pending.push(alert.clone());
        }
    }
    tx.commit().map_err(backend_error("commit"))?;
    Ok(pending)
}

/// The JSON array of `subjects`, for `json_each` (one parameter, whatever the count).
fn subjects_json(subjects: Option<&[Uid]>) -> Option<String> {
    subjects.map(|s| {
        serde_json::Value::Array(
            s.iter()
                .map(|u| serde_json::Value::String(u.as_str().to_owned()))
                .collect(),
        )
        .to_string()
    })
}

pub(super) fn claim(conn: &mut Connection, claim: &Claim<'_>) -> Result<Vec<FollowUp>> {
    let subjects = subjects_json(claim.subjects);
    let now = claim.now.timestamp_micros();
    let until = (claim.now + claim.lease).timestamp_micros();
    let limit = i64::try_from(claim.limit).unwrap_or(i64::MAX);
    let failed = backend_error("claim follow-ups");
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend_error("begin a transaction"))?;
    // One follow-up of a subject at a time: none whose subject has another one claimed and
    // not yet finished (an alert's first attribution and its revisit would race, the later
    // write of the earlier read winning), and one per subject in a batch. The transaction is
    // IMMEDIATE, so the claims of other processes are committed or not begun.
    let mut rows: Vec<(String, String, i64, i64)> = {
        let mut stmt = tx
            .prepare_cached(
                "SELECT kind, subject, enqueued_at_us, attempts FROM follow_ups f
                 WHERE claimable_at_us <= ?1
                   AND (?2 IS NULL OR subject IN (SELECT value FROM json_each(?2)))
                   AND NOT EXISTS (
                       SELECT 1 FROM follow_ups g
                       WHERE g.subject = f.subject AND g.kind <> f.kind
                         AND g.attempts > 0 AND g.claimable_at_us > ?1)
                 ORDER BY kind = 'revisit', enqueued_at_us, kind, subject LIMIT ?3",
            )
            .map_err(backend_error("claim follow-ups"))?;
        stmt.query_map(params![now, subjects, limit], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .and_then(Iterator::collect)
        .map_err(failed)?
    };
    let mut subjects_claimed = std::collections::HashSet::new();
    rows.retain(|row| subjects_claimed.insert(row.1.clone()));
    let mut claimed = Vec::with_capacity(rows.len());
    {
        let mut update = tx
            .prepare_cached(
                "UPDATE follow_ups SET claimable_at_us = ?3, attempts = attempts + 1
                 WHERE kind = ?1 AND subject = ?2",
            )
            .map_err(backend_error("claim follow-ups"))?;
        for (kind, subject, enqueued_at_us, attempts) in rows {
            update
                .execute(params![kind, subject, until])
                .map_err(backend_error("claim follow-ups"))?;
            let Some(kind) = FollowUpKind::parse(&kind) else {
                continue;
            };
            claimed.push(FollowUp {
                kind,
                subject: Uid::from_stored(subject),
                enqueued_at: DateTime::from_timestamp_micros(enqueued_at_us).unwrap_or_default(),
                attempts: u32::try_from(attempts)
                    .unwrap_or(u32::MAX)
                    .saturating_add(1),
            });
        }
    }
    tx.commit().map_err(backend_error("commit"))?;
    Ok(claimed)
}

/// The enqueue time (µs) of the follow-up of `kind` about `subject`, when one is pending.
fn enqueued_at_of(
    tx: &rusqlite::Transaction<'_>,
    kind: FollowUpKind,
    subject: &Uid,
    operation: &'static str,
) -> Result<Option<i64>> {
    tx.query_row(
        "SELECT enqueued_at_us FROM follow_ups WHERE kind = ?1 AND subject = ?2",
        params![kind.as_str(), subject.as_str()],
        |row| row.get(0),
    )
    .optional()
    .map_err(backend_error(operation))
}

pub(super) fn finish(
    conn: &mut Connection,
    kind: FollowUpKind,
    subject: &Uid,
    enqueued_at: DateTime<Utc>,
) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend_error("begin a transaction"))?;
    match enqueued_at_of(&tx, kind, subject, "finish a follow-up")? {
        None => {}
        Some(at) if at == enqueued_at.timestamp_micros() => {
            tx.execute(
                "DELETE FROM follow_ups WHERE kind = ?1 AND subject = ?2",
                params![kind.as_str(), subject.as_str()],
            )
            .map_err(backend_error("finish a follow-up"))?;
        }
        // Enqueued again while it was being done: claimable at once, for the newer facts.
        Some(_) => {
            tx.execute(
                "UPDATE follow_ups SET claimable_at_us = 0, attempts = 0
                 WHERE kind = ?1 AND subject = ?2",
                params![kind.as_str(), subject.as_str()],
            )
            .map_err(backend_error("finish a follow-up"))?;
        }
    }
    tx.commit().map_err(backend_error("commit"))?;
    Ok(())
}

/// See [`crate::GraphStore::defer_revisit`].
pub(super) fn defer_revisit(
    conn: &mut Connection,
    alert: &Uid,
    claimed: Option<DateTime<Utc>>,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<()> {
    let kind = FollowUpKind::Revisit.as_str();
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend_error("begin a transaction"))?;
    let current = enqueued_at_of(&tx, FollowUpKind::Revisit, alert, "defer a revisit")?;
    let claimable = match (current, claimed) {
        (None, _) => {
            tx.execute(
                "INSERT INTO follow_ups (kind, subject, enqueued_at_us, claimable_at_us, attempts)
                 VALUES (?1, ?2, ?3, ?4, 0)",
                params![
                    kind,
                    alert.as_str(),
                    claimed.unwrap_or(now).timestamp_micros(),
                    until.timestamp_micros()
                ],
            )
            .map_err(backend_error("defer a revisit"))?;
            None
        }
        (Some(at), Some(ours)) if at == ours.timestamp_micros() => Some(until.timestamp_micros()),
        // Enqueued again while it was being done: claimable at once, for the newer facts.
        (Some(_), Some(_)) => Some(0),
        // Another revisit pending: it runs sooner.
        (Some(_), None) => None,
    };
    if let Some(claimable) = claimable {
        tx.execute(
            "UPDATE follow_ups SET claimable_at_us = ?3, attempts = 0
             WHERE kind = ?1 AND subject = ?2",
            params![kind, alert.as_str(), claimable],
        )
        .map_err(backend_error("defer a revisit"))?;
    }
    tx.commit().map_err(backend_error("commit"))?;
    Ok(())
}

pub(super) fn stats(conn: &Connection, subjects: Option<&[Uid]>) -> Result<FollowUpStats> {
    // Two statements: a `?1 IS NULL OR …` test in one would make SQLite scan the whole table,
    // where the subjects' are one search of `follow_ups_subject` each (every suspects read asks
    // this of its alert).
    let (sql, subjects) = match subjects_json(subjects) {
        Some(subjects) => (
            "SELECT kind, attempts = 0 AND claimable_at_us > ?2, count(*), min(enqueued_at_us)
             FROM follow_ups WHERE subject IN (SELECT value FROM json_each(?1))
             GROUP BY 1, 2",
            Some(subjects),
        ),
        None => (
            "SELECT kind, attempts = 0 AND claimable_at_us > ?1, count(*), min(enqueued_at_us)
             FROM follow_ups GROUP BY 1, 2",
            None,
        ),
    };
    let now = Utc::now().timestamp_micros();
    type Row = (String, bool, i64, i64);
    let rows: Vec<Row> = conn
        .prepare_cached(sql)
        .and_then(|mut stmt| {
            fn count(row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            }
            match subjects {
                Some(subjects) => stmt.query_map(params![subjects, now], count)?.collect(),
                None => stmt.query_map(params![now], count)?.collect(),
            }
        })
        .map_err(backend_error("count follow-ups"))?;
    let mut stats = FollowUpStats::default();
    for (kind, deferred, count, oldest) in rows {
        let count = u64::try_from(count).unwrap_or_default();
        if deferred {
            stats.deferred += count;
            continue;
        }
        match FollowUpKind::parse(&kind) {
            Some(FollowUpKind::Alert) => stats.alerts = count,
            Some(FollowUpKind::Deployment) => stats.deployments = count,
            Some(FollowUpKind::Change) => stats.changes = count,
            Some(FollowUpKind::Revisit) => stats.revisits = count,
            None => continue,
        }
        let oldest = DateTime::from_timestamp_micros(oldest);
        stats.oldest = match (stats.oldest, oldest) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    Ok(stats)
}
