//! Key history on SQLite: each path's most recent deployments from the index
//! `config_changes (path, started_at_us DESC, uid DESC)` (migration 0012), and the keys of the
//! most recent changes that are not rollouts, tallied alike on both backends.

use super::backend_error;
use crate::error::Result;
use crate::key_history::{Sighting, bounds, tally};
use crate::payload::encode;
use crate::types::{KEY_HISTORY_CHANGE_SCAN, KeyHistory};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

const OPERATION: &str = "read keys' history";

/// The path's `limit` most recent deployments before a time, newest first, with whether each
/// was blamed for an alert ([`crate::is_blamed`]): one index range.
const RECENT_DEPLOYMENTS: &str = "
SELECT cc.started_at_us, cc.deployment_uid,
       EXISTS (SELECT 1 FROM deployment_verdicts v
               WHERE v.deployment_uid = cc.deployment_uid AND v.verdict = 'confirmed')
       OR EXISTS (SELECT 1 FROM triggers t
                  WHERE t.deployment_uid = cc.deployment_uid AND t.confidence_score >= ?4
                    AND NOT EXISTS (SELECT 1 FROM deployment_verdicts v
                                    WHERE v.alert_uid = t.alert_uid
                                      AND v.deployment_uid = t.deployment_uid
                                      AND v.verdict = 'rejected'))
FROM config_changes cc
WHERE cc.path = ?1 AND cc.started_at_us < ?2
ORDER BY cc.started_at_us DESC, cc.uid DESC
LIMIT ?3";

/// The keys among `?4` (a JSON list) of the `?2` most recent changes before `?1`, with whether
/// each change was blamed for an alert.
const RECENT_CHANGES: &str = "
SELECT k.key, c.at_us, c.uid,
       EXISTS (SELECT 1 FROM change_verdicts v
               WHERE v.change_uid = c.uid AND v.verdict = 'confirmed')
       OR EXISTS (SELECT 1 FROM change_triggers t
                  WHERE t.change_uid = c.uid AND t.confidence_score >= ?3
                    AND NOT EXISTS (SELECT 1 FROM change_verdicts v
                                    WHERE v.alert_uid = t.alert_uid
                                      AND v.change_uid = t.change_uid
                                      AND v.verdict = 'rejected'))
FROM (SELECT uid, at_us FROM changes WHERE at_us < ?1 ORDER BY at_us DESC, uid DESC LIMIT ?2) c
JOIN change_keys k ON k.change_uid = c.uid
WHERE k.key IN (SELECT value FROM json_each(?4))";

pub(super) fn key_history(
    conn: &Connection,
    paths: &[String],
    before: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<KeyHistory>> {
    let (paths, limit) = bounds(paths, limit);
    if paths.is_empty() || limit == 0 {
        return Ok(Vec::new());
    }
    let before = before.timestamp_micros();
    let mut sightings = Vec::new();
    let mut stmt = conn
        .prepare_cached(RECENT_DEPLOYMENTS)
        .map_err(backend_error(OPERATION))?;
    for path in &paths {
        let found = stmt
            .query_map(
                params![path, before, limit, crate::BLAMED_CONFIDENCE],
                |row| {
                    Ok(Sighting {
                        path: path.clone(),
                        at_us: row.get(0)?,
                        subject: row.get(1)?,
                        blamed: row.get(2)?,
                    })
                },
            )
            .and_then(Iterator::collect::<rusqlite::Result<Vec<_>>>)
            .map_err(backend_error(OPERATION))?;
        sightings.extend(found);
    }
    let list = encode(super::BACKEND, &paths, "encode paths")?;
    let found = conn
        .prepare_cached(RECENT_CHANGES)
        .and_then(|mut stmt| {
            stmt.query_map(
                params![
                    before,
                    KEY_HISTORY_CHANGE_SCAN,
                    crate::BLAMED_CONFIDENCE,
                    list
                ],
                |row| {
                    Ok(Sighting {
                        path: row.get(0)?,
                        at_us: row.get(1)?,
                        subject: row.get(2)?,
                        blamed: row.get(3)?,
                    })
                },
            )?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .map_err(backend_error(OPERATION))?;
    sightings.extend(found);
    Ok(tally(sightings, limit))
}
