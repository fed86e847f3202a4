//! Reviewers' verdicts in the embedded store: `deployment_verdicts` and `change_verdicts`, one
//! row per subject and alert (CAUSED when `confirmed`, REJECTED when `rejected`).

use super::rca::uid_list;
use super::{backend_error, exec};
use crate::error::{Error, Result};
use crate::types::{RecordKind, VerdictOutcome};
use deploygraph_model::newtypes::format_time;
use deploygraph_model::{SubjectKind, SuspectVerdict, Uid, VerdictKind};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// The verdicts on deployments and on changes as one relation: `alert_uid, subject,
/// subject_uid, verdict, reviewer, at, note`.
const ALL_VERDICTS: &str = "
    SELECT alert_uid, 'deployment' AS subject, deployment_uid AS subject_uid, verdict, reviewer,
           at, note
    FROM deployment_verdicts
    UNION ALL
    SELECT alert_uid, 'change' AS subject, change_uid AS subject_uid, verdict, reviewer, at, note
    FROM change_verdicts";

/// The table, its subject column and the subject's own table, per kind of subject: fixed
/// strings of this module.
fn tables(subject: SubjectKind) -> (&'static str, &'static str, &'static str) {
    match subject {
        SubjectKind::Deployment => ("deployment_verdicts", "deployment_uid", "deployments"),
        SubjectKind::Change => ("change_verdicts", "change_uid", "changes"),
    }
}

type VerdictRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
);

fn verdict_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<VerdictRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
    ))
}

fn to_verdict(
    (alert, subject, subject_uid, verdict, by, at, note): VerdictRow,
) -> Result<SuspectVerdict> {
    let corrupt = |e: Box<dyn std::error::Error + Send + Sync>| Error::Corrupt {
        uid: subject_uid.clone(),
        source: e,
    };
    Ok(SuspectVerdict {
        alert_uid: Uid::from_stored(alert),
        subject: SubjectKind::parse(&subject)
            .ok_or_else(|| corrupt(format!("unknown subject kind {subject:?}").into()))?,
        verdict: VerdictKind::parse(&verdict).map_err(|e| corrupt(Box::new(e)))?,
        by,
        at: deploygraph_model::parse_time(&at).map_err(|e| corrupt(Box::new(e)))?,
        note,
        subject_uid: Uid::from_stored(subject_uid),
    })
}

pub(super) fn record_verdict(
    conn: &mut Connection,
    verdict: &SuspectVerdict,
) -> Result<Option<VerdictOutcome>> {
    let failed = || backend_error("record a verdict");
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend_error("begin a transaction"))?;
    let (table, column, subjects) = tables(verdict.subject);
    let exists = |sql: &str, uid: &Uid| -> Result<bool> {
        tx.prepare_cached(sql)
            .and_then(|mut stmt| stmt.exists([uid.as_str()]))
            .map_err(failed())
    };
    if !exists("SELECT 1 FROM alerts WHERE uid = ?1", &verdict.alert_uid)?
        || !exists(
            &format!("SELECT 1 FROM {subjects} WHERE uid = ?1"),
            &verdict.subject_uid,
        )?
    {
        return Ok(None);
    }
    let stored: Option<VerdictRow> = tx
        .prepare_cached(&format!(
            "SELECT alert_uid, ?3, {column}, verdict, reviewer, at, note FROM {table}
             WHERE alert_uid = ?1 AND {column} = ?2"
        ))
        .and_then(|mut stmt| {
            stmt.query_row(
                params![
                    verdict.alert_uid.as_str(),
                    verdict.subject_uid.as_str(),
                    verdict.subject.as_str()
                ],
                verdict_row,
            )
            .optional()
        })
        .map_err(failed())?;
    let stored = stored.map(to_verdict).transpose()?;
    if let Some(stored) = stored.as_ref().filter(|s| s.says_the_same(verdict)) {
        return Ok(Some(VerdictOutcome {
            kind: RecordKind::Unchanged,
            verdict: stored.clone(),
        }));
    }
    exec(
        &tx,
        &format!(
            "INSERT INTO {table} (alert_uid, {column}, verdict, reviewer, at, note)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (alert_uid, {column}) DO UPDATE SET verdict = excluded.verdict,
                 reviewer = excluded.reviewer, at = excluded.at, note = excluded.note"
        ),
        params![
            verdict.alert_uid.as_str(),
            verdict.subject_uid.as_str(),
            verdict.verdict.as_str(),
            verdict.by,
            format_time(&verdict.at),
            verdict.note
        ],
    )
    .map_err(failed())?;
    tx.commit().map_err(backend_error("commit"))?;
    Ok(Some(VerdictOutcome {
        kind: if stored.is_some() {
            RecordKind::Updated
        } else {
            RecordKind::Created
        },
        verdict: verdict.clone(),
    }))
}

pub(super) fn verdicts(conn: &Connection, alerts: &[Uid]) -> Result<Vec<SuspectVerdict>> {
    if alerts.is_empty() {
        return Ok(Vec::new());
    }
    let list = uid_list(alerts)?;
    let rows: Vec<VerdictRow> = conn
        .prepare_cached(&format!(
            "SELECT * FROM ({ALL_VERDICTS}) WHERE alert_uid IN (SELECT value FROM json_each(?1))
             ORDER BY alert_uid, subject_uid"
        ))
        .and_then(|mut stmt| stmt.query_map([list], verdict_row)?.collect())
        .map_err(backend_error("read verdicts"))?;
    rows.into_iter().map(to_verdict).collect()
}
