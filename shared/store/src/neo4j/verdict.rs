//! Reviewers' verdicts on Neo4j: `(x:DeploymentEvent|Change)-[:CAUSED {by, at, note}]->(:Alert)`
//! for a confirmed subject, `-[:REJECTED {by, at, note}]->` for a rejected one; at most one of
//! them per subject and alert.
//!
//! A verdict takes the alert's write lock first, as attribution does, so two reviewers of one
//! alert write one after the other: the second sees the first's relationship and replaces it,
//! never leaving a CAUSED beside a REJECTED.

use super::{BACKEND, Neo4jStore, decode_failed, failed, opt_str, rows_in, uid_values};
use crate::error::{Error, Result};
use crate::types::{RecordKind, VerdictOutcome};
use deploygraph_model::{SubjectKind, SuspectVerdict, Uid, VerdictKind, parse_time};
use neo4rs::{BoltType, Txn, query};

/// The label of a subject: fixed strings of this module.
fn label(subject: SubjectKind) -> &'static str {
    match subject {
        SubjectKind::Deployment => "DeploymentEvent",
        SubjectKind::Change => "Change",
    }
}

/// The verdict a row of `alert, subject, subject_uid, kind, by, at, note` holds.
fn verdict_from_row(
    row: &neo4rs::Row,
    dec: &impl Fn(neo4rs::DeError) -> Error,
) -> Result<SuspectVerdict> {
    let subject_uid: String = row.get("subject_uid").map_err(dec)?;
    let corrupt = |e: Box<dyn std::error::Error + Send + Sync>| Error::Corrupt {
        uid: subject_uid.clone(),
        source: e,
    };
    let subject: String = row.get("subject").map_err(dec)?;
    let kind: String = row.get("kind").map_err(dec)?;
    let at: String = row.get("at").map_err(dec)?;
    Ok(SuspectVerdict {
        alert_uid: Uid::from_stored(row.get::<String>("alert").map_err(dec)?),
        subject: SubjectKind::parse(&subject)
            .ok_or_else(|| corrupt(format!("unknown subject kind {subject:?}").into()))?,
        verdict: VerdictKind::ALL
            .into_iter()
            .find(|k| k.relationship() == kind)
            .ok_or_else(|| corrupt(format!("unknown verdict relationship {kind:?}").into()))?,
        by: row.get("by").map_err(dec)?,
        at: parse_time(&at).map_err(|e| corrupt(Box::new(e)))?,
        note: row.get("note").map_err(dec)?,
        subject_uid: Uid::from_stored(subject_uid.clone()),
    })
}

/// The columns of [`verdict_from_row`] for `(x)-[r]->(a)`.
const VERDICT_COLUMNS: &str = "a.uid AS alert,
    CASE WHEN x:Change THEN 'change' ELSE 'deployment' END AS subject, x.uid AS subject_uid,
    type(r) AS kind, r.`by` AS `by`, toString(r.at) AS at, r.note AS note";

async fn record_in(txn: &mut Txn, verdict: &SuspectVerdict) -> Result<Option<VerdictOutcome>> {
    let operation = "record a verdict";
    let dec = decode_failed(operation);
    // The alert's write lock (setting a property to its own value changes nothing).
    let alert = rows_in(
        txn,
        query("MATCH (a:Alert {uid: $alert}) SET a.uid = a.uid RETURN a.uid AS uid")
            .param("alert", verdict.alert_uid.as_str()),
        operation,
    )
    .await?;
    let label = label(verdict.subject);
    let stored = rows_in(
        txn,
        query(&format!(
            "MATCH (x:{label} {{uid: $subject}}), (a:Alert {{uid: $alert}})
             OPTIONAL MATCH (x)-[r:CAUSED|REJECTED]->(a)
             RETURN x.uid AS found, {VERDICT_COLUMNS}
             ORDER BY r.at DESC"
        ))
        .param("subject", verdict.subject_uid.as_str())
        .param("alert", verdict.alert_uid.as_str()),
        operation,
    )
    .await?;
    if alert.is_empty() || stored.is_empty() {
        return Ok(None);
    }
    let existing = match stored.first() {
        Some(row) if row.get::<Option<String>>("kind").map_err(&dec)?.is_some() => {
            Some(verdict_from_row(row, &dec)?)
        }
        _ => None,
    };
    if let Some(existing) = existing.as_ref().filter(|s| s.says_the_same(verdict)) {
        return Ok(Some(VerdictOutcome {
            kind: RecordKind::Unchanged,
            verdict: existing.clone(),
        }));
    }
    // The relationship type is one of the two of `VerdictKind::relationship`.
    let relationship = verdict.verdict.relationship();
    txn.run(
        query(&format!(
            "MATCH (x:{label} {{uid: $subject}}), (a:Alert {{uid: $alert}})
             OPTIONAL MATCH (x)-[old:CAUSED|REJECTED]->(a)
             DELETE old
             WITH DISTINCT x, a
             CREATE (x)-[:{relationship} {{`by`: $by, at: $at, note: $note}}]->(a)"
        ))
        .param("subject", verdict.subject_uid.as_str())
        .param("alert", verdict.alert_uid.as_str())
        .param("by", verdict.by.as_str())
        .param("at", BoltType::from(verdict.at))
        .param("note", opt_str(verdict.note.as_deref())),
    )
    .await
    .map_err(failed(operation))?;
    Ok(Some(VerdictOutcome {
        kind: if existing.is_some() {
            RecordKind::Updated
        } else {
            RecordKind::Created
        },
        verdict: verdict.clone(),
    }))
}

impl Neo4jStore {
    pub(super) async fn verdict_record(
        &self,
        verdict: &SuspectVerdict,
    ) -> Result<Option<VerdictOutcome>> {
        crate::retry::run(BACKEND, "record a verdict", super::is_retryable, || async {
            let mut txn = self.begin().await?;
            let result = record_in(&mut txn, verdict).await;
            self.settle(txn, result).await
        })
        .await
    }

    pub(super) async fn verdict_list(&self, alerts: &[Uid]) -> Result<Vec<SuspectVerdict>> {
        let operation = "read verdicts";
        let uids = uid_values(alerts);
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .rows(
                query(&format!(
                    "UNWIND $uids AS u
                     MATCH (x)-[r:CAUSED|REJECTED]->(a:Alert {{uid: u}})
                     WHERE x:DeploymentEvent OR x:Change
                     RETURN {VERDICT_COLUMNS}
                     ORDER BY alert, subject_uid"
                ))
                .param("uids", uids),
                operation,
            )
            .await?;
        let dec = decode_failed(operation);
        rows.iter().map(|row| verdict_from_row(row, &dec)).collect()
    }
}
