//! Key history on SQLite: each path's most recent deployments from the index
//! `config_changes (path, started_at_us DESC, uid DESC)` (migration 0012), and its most recent
//! changes that are not rollouts from `change_keys (key, at_us DESC, change_uid DESC)` (migration
//! 0013), tallied alike on both backends.

use super::backend_error;
use crate::error::Result;
use crate::key_history::{Sighting, bounds, tally};
use crate::types::KeyHistory;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

const OPERATION: &str = "read keys' history";

/// The path's `limit` most recent deployments before a time, newest first, with whether each
/// was blamed for an alert that started before that time ([`crate::is_blamed`]): one index
/// range.
const RECENT_DEPLOYMENTS: &str = "
SELECT cc.started_at_us, cc.deployment_uid,
       EXISTS (SELECT 1 FROM deployment_verdicts v JOIN alerts a ON a.uid = v.alert_uid
               WHERE v.deployment_uid = cc.deployment_uid AND v.verdict = 'confirmed'
                 AND a.starts_at_us < ?2)
       OR EXISTS (SELECT 1 FROM triggers t JOIN alerts a ON a.uid = t.alert_uid
                  WHERE t.deployment_uid = cc.deployment_uid AND t.confidence_score >= ?4
                    AND a.starts_at_us < ?2
                    AND NOT EXISTS (SELECT 1 FROM deployment_verdicts v
                                    WHERE v.alert_uid = t.alert_uid
                                      AND v.deployment_uid = t.deployment_uid
                                      AND v.verdict = 'rejected'))
FROM config_changes cc
WHERE cc.path = ?1 AND cc.started_at_us < ?2
ORDER BY cc.started_at_us DESC, cc.uid DESC
LIMIT ?3";

/// The key's `limit` most recent changes that are not rollouts before a time, newest first,
/// with whether each was blamed for an alert that started before that time: one index range.
const RECENT_CHANGES: &str = "
SELECT k.at_us, k.change_uid,
       EXISTS (SELECT 1 FROM change_verdicts v JOIN alerts a ON a.uid = v.alert_uid
               WHERE v.change_uid = k.change_uid AND v.verdict = 'confirmed'
                 AND a.starts_at_us < ?2)
       OR EXISTS (SELECT 1 FROM change_triggers t JOIN alerts a ON a.uid = t.alert_uid
                  WHERE t.change_uid = k.change_uid AND t.confidence_score >= ?4
                    AND a.starts_at_us < ?2
                    AND NOT EXISTS (SELECT 1 FROM change_verdicts v
                                    WHERE v.alert_uid = t.alert_uid
                                      AND v.change_uid = t.change_uid
                                      AND v.verdict = 'rejected'))
FROM change_keys k
WHERE k.key = ?1 AND k.at_us < ?2
ORDER BY k.at_us DESC, k.change_uid DESC
LIMIT ?3";

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
    for sql in [RECENT_DEPLOYMENTS, RECENT_CHANGES] {
        let mut stmt = conn.prepare_cached(sql).map_err(backend_error(OPERATION))?;
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
    }
    Ok(tally(sightings, limit))
}
