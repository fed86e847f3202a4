//! Key history on Neo4j: each path's most recent deployments from the index
//! `ConfigChange (path, started_at_us)` (migration 0010), and its most recent changes that are
//! not rollouts from the index `ChangeKey (path, at_us)` (migration 0011), tallied alike on both
//! backends.

use super::{Neo4jStore, decode_failed};
use crate::error::Result;
use crate::key_history::{Sighting, bounds, tally};
use crate::types::KeyHistory;
use chrono::{DateTime, Utc};
use neo4rs::{BoltType, query};

const OPERATION: &str = "read keys' history";

/// Per path, its `$limit` most recent deployments before `$before`, then its `$limit` most
/// recent changes that are not rollouts before `$before` (each one index range, ordered by the
/// index: the path is fixed, so ordering by it too lets the planner read the index backwards and
/// stop at the limit). Each with whether it was blamed for an alert that started before
/// `$before` ([`crate::is_blamed`]: confirmed by a reviewer, or a TRIGGERS of 0.5 or more not
/// rejected), from one walk of its relationships.
const KEY_HISTORY: &str = "
UNWIND $paths AS path
CALL {
  WITH path
  MATCH (x:ConfigChange)
  WHERE x.path = path AND x.started_at_us < $before
  WITH x ORDER BY x.path DESC, x.started_at_us DESC, x.uid DESC LIMIT $limit
  MATCH (d:DeploymentEvent)-[:CHANGED]->(x)
  RETURN collect(x.started_at_us) AS times, collect(d.uid) AS subjects,
         collect(EXISTS {
           MATCH (d)-[r:CAUSED|TRIGGERS]->(a:Alert)
           WHERE a.starts_at_us < $before
             AND (type(r) = 'CAUSED'
                  OR (r.confidence_score >= $blamed AND NOT EXISTS { MATCH (d)-[:REJECTED]->(a) }))
         }) AS blamed
}
RETURN path, times, subjects, blamed
UNION ALL
UNWIND $paths AS path
CALL {
  WITH path
  MATCH (k:ChangeKey)
  WHERE k.path = path AND k.at_us < $before
  WITH k ORDER BY k.path DESC, k.at_us DESC, k.change_uid DESC LIMIT $limit
  MATCH (c:Change)-[:HAS_KEY]->(k)
  RETURN collect(k.at_us) AS times, collect(c.uid) AS subjects,
         collect(EXISTS {
           MATCH (c)-[r:CAUSED|TRIGGERS]->(a:Alert)
           WHERE a.starts_at_us < $before
             AND (type(r) = 'CAUSED'
                  OR (r.confidence_score >= $blamed AND NOT EXISTS { MATCH (c)-[:REJECTED]->(a) }))
         }) AS blamed
}
RETURN path, times, subjects, blamed";

impl Neo4jStore {
    pub(super) async fn key_history_of(
        &self,
        paths: &[String],
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<KeyHistory>> {
        let (paths, limit) = bounds(paths, limit);
        if paths.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let list: Vec<BoltType> = paths.iter().map(|p| p.as_str().into()).collect();
        let rows = self
            .rows(
                query(KEY_HISTORY)
                    .param("paths", BoltType::from(list))
                    .param("before", before.timestamp_micros())
                    .param("limit", i64::from(limit))
                    .param("blamed", crate::BLAMED_CONFIDENCE),
                OPERATION,
            )
            .await?;
        let dec = decode_failed(OPERATION);
        let mut sightings = Vec::new();
        for row in rows {
            let path: String = row.get("path").map_err(&dec)?;
            let times: Vec<i64> = row.get("times").map_err(&dec)?;
            let subjects: Vec<String> = row.get("subjects").map_err(&dec)?;
            let blamed: Vec<bool> = row.get("blamed").map_err(&dec)?;
            sightings.extend(times.into_iter().zip(subjects).zip(blamed).map(
                |((at_us, subject), blamed)| Sighting {
                    path: path.clone(),
                    at_us,
                    subject,
                    blamed,
                },
            ));
        }
        Ok(tally(sightings, limit))
    }
}
