//! Release summaries in the embedded store: `release_summaries`, one row per deployment and
//! template (its `deployment_uid` the SUMMARIZES link), the summary as `payload`.

use super::{backend_error, exec};
use crate::error::{Error, Result};
use crate::payload::{decode, encode};
use crate::types::{RecordKind, SummaryFilter, SummaryOutcome};
use deploygraph_model::newtypes::format_time;
use deploygraph_model::{Deployment, NewReleaseSummary, ReleaseSummary};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

pub(super) fn record_release_summary(
    conn: &mut Connection,
    new: &NewReleaseSummary,
) -> Result<SummaryOutcome> {
    let failed = || backend_error("record a release summary");
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend_error("begin a transaction"))?;
    let deployment: Option<String> = tx
        .prepare_cached("SELECT payload FROM deployments WHERE uid = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([new.deployment.as_str()], |row| row.get(0))
                .optional()
        })
        .map_err(failed())?;
    let Some(deployment) = deployment else {
        return Err(Error::NotFound {
            what: "deployment",
            uid: new.deployment.as_str().to_owned(),
        });
    };
    let deployment: Deployment = decode(new.deployment.as_str(), &deployment)?;
    let summary = new.clone().of(&deployment);
    let stored: Option<String> = tx
        .prepare_cached("SELECT payload FROM release_summaries WHERE uid = ?1")
        .and_then(|mut stmt| {
            stmt.query_row([summary.uid.as_str()], |row| row.get(0))
                .optional()
        })
        .map_err(failed())?;
    let stored: Option<ReleaseSummary> = stored
        .map(|payload| decode(summary.uid.as_str(), &payload))
        .transpose()?;
    if stored.as_ref() == Some(&summary) {
        return Ok(SummaryOutcome {
            kind: RecordKind::Unchanged,
            summary,
        });
    }
    exec(
        &tx,
        "INSERT INTO release_summaries (uid, deployment_uid, service, environment, template,
             deployed_at_us, settled_at, settled_at_us, payload)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (uid) DO UPDATE SET deployed_at_us = excluded.deployed_at_us,
             settled_at = excluded.settled_at, settled_at_us = excluded.settled_at_us,
             payload = excluded.payload",
        params![
            summary.uid.as_str(),
            summary.deployment.as_str(),
            summary.service.name.as_str(),
            summary.service.environment.as_str(),
            summary.template,
            summary.deployed_at.timestamp_micros(),
            format_time(&summary.settled_at),
            summary.settled_at.timestamp_micros(),
            encode(super::BACKEND, &summary, "encode a release summary")?
        ],
    )
    .map_err(failed())?;
    tx.commit().map_err(backend_error("commit"))?;
    Ok(SummaryOutcome {
        kind: if stored.is_some() {
            RecordKind::Updated
        } else {
            RecordKind::Created
        },
        summary,
    })
}

pub(super) fn release_summaries(
    conn: &Connection,
    filter: &SummaryFilter,
) -> Result<Vec<ReleaseSummary>> {
    let rows: Vec<(String, String)> = conn
        .prepare_cached(
            "SELECT s.uid, s.payload FROM release_summaries s
             JOIN deployments d ON d.uid = s.deployment_uid
             WHERE s.service = ?1 AND s.environment = ?2 AND s.template = ?3
               AND s.deployed_at_us < ?4 AND d.status NOT IN ('failed', 'rolled_back')
             ORDER BY s.deployed_at_us DESC, s.deployment_uid DESC
             LIMIT ?5",
        )
        .and_then(|mut stmt| {
            stmt.query_map(
                params![
                    filter.service.as_str(),
                    filter.environment.as_str(),
                    filter.template,
                    filter.before.timestamp_micros(),
                    i64::try_from(filter.limit).unwrap_or(i64::MAX)
                ],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?
            .collect()
        })
        .map_err(backend_error("read release summaries"))?;
    rows.iter()
        .map(|(uid, payload)| decode(uid, payload))
        .collect()
}
