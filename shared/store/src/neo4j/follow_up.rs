//! Follow-ups on Neo4j: `(:FollowUp {uid, kind, subject, enqueued_at_us, claimable_at_us,
//! attempts})` nodes, written in the transactions of the facts they are about. A claim takes
//! each node's write lock before it reads the lease again, so two claimers never hold one.

use super::{Neo4jStore, decode_failed, failed, int, map, rows_in};
use crate::error::Result;
use crate::follow_up::{Claim, FollowUp, FollowUpKind, FollowUpStats};
use chrono::{DateTime, Utc};
use deploygraph_model::Uid;
use neo4rs::{BoltType, Query, Txn, query};

fn node_uid(kind: FollowUpKind, subject: &str) -> String {
    format!("{}:{subject}", kind.as_str())
}

const ENQUEUE: &str = "
UNWIND $rows AS r
MERGE (f:FollowUp {uid: r.uid})
  ON CREATE SET f.kind = r.kind, f.subject = r.subject, f.enqueued_at_us = r.at,
                f.claimable_at_us = 0, f.attempts = 0
  ON MATCH SET f.enqueued_at_us = CASE WHEN r.at > f.enqueued_at_us THEN r.at
                                       ELSE f.enqueued_at_us + 1 END,
               f.claimable_at_us = CASE WHEN f.attempts = 0 THEN 0 ELSE f.claimable_at_us END";

/// Enqueues follow-ups of `kind` about `subjects` inside the write's transaction. One already
/// pending keeps its lease and gets a newer enqueue time (see [`Neo4jStore::finish`]); one
/// deferred (not claimed, claimable later: [`DEFER_REVISIT`]) becomes claimable at once.
pub(super) async fn enqueue<'a>(
    txn: &mut Txn,
    kind: FollowUpKind,
    subjects: impl IntoIterator<Item = &'a Uid>,
    now: DateTime<Utc>,
) -> Result<()> {
    // Sorted, so concurrent writers lock FollowUp nodes in one order.
    let mut subjects: Vec<&str> = subjects.into_iter().map(Uid::as_str).collect();
    subjects.sort_unstable();
    subjects.dedup();
    if subjects.is_empty() {
        return Ok(());
    }
    let at = now.timestamp_micros();
    let rows: Vec<BoltType> = subjects
        .into_iter()
        .map(|s| {
            map(vec![
                ("uid", node_uid(kind, s).into()),
                ("kind", kind.as_str().into()),
                ("subject", s.into()),
                ("at", at.into()),
            ])
        })
        .collect();
    txn.run(query(ENQUEUE).param("rows", rows))
        .await
        .map_err(failed("enqueue follow-ups"))?;
    Ok(())
}

/// Claims up to `$limit` claimable follow-ups, one per subject, none whose subject has another
/// follow-up claimed and not yet finished (an alert's first attribution and its revisit would
/// race, the later write of the earlier read winning). Every follow-up of a chosen subject is
/// write-locked first (subjects in order, each one's follow-ups in uid order, so concurrent
/// claims lock alike), then the choice is checked again: a concurrent claim of the same
/// subject is committed by then.
const CLAIM: &str = "
MATCH (f:FollowUp)
WHERE f.claimable_at_us <= $now AND ($subjects IS NULL OR f.subject IN $subjects)
WITH f ORDER BY f.kind = 'revisit', f.enqueued_at_us, f.uid LIMIT $limit
WITH f.subject AS subject, collect(f)[0] AS f
ORDER BY subject
CALL (subject) {
  MATCH (g:FollowUp {subject: subject})
  WITH g ORDER BY g.uid
  SET g._lock = true
  REMOVE g._lock
  RETURN collect(g) AS siblings
}
WITH f, siblings
WHERE f.claimable_at_us <= $now
  AND none(g IN siblings WHERE g.uid <> f.uid AND g.attempts > 0 AND g.claimable_at_us > $now)
SET f.claimable_at_us = $until, f.attempts = f.attempts + 1
RETURN f.kind AS kind, f.subject AS subject, f.enqueued_at_us AS at, f.attempts AS attempts";

/// Deletes the follow-up when its enqueue time is still the claimed one; otherwise (enqueued
/// again while it was being done) makes it claimable at once, for the newer facts.
const FINISH: &str = "
MATCH (f:FollowUp {uid: $uid})
SET f._lock = true
REMOVE f._lock
WITH f, f.enqueued_at_us = $at AS done
FOREACH (_ IN CASE WHEN done THEN [] ELSE [1] END |
  SET f.claimable_at_us = 0, f.attempts = 0)
WITH f, done WHERE done
DELETE f
RETURN count(*) AS deleted";

/// Revisits of `$rows`' alerts, except those whose first attribution is still waiting
/// unclaimed; one still waiting unclaimed is left as it is (it reads the newer facts when it
/// runs). Returns the alerts a revisit is pending for.
const ENQUEUE_REVISITS: &str = "
UNWIND $rows AS r
OPTIONAL MATCH (first:FollowUp {uid: r.first})
WITH r, first WHERE first IS NULL OR first.claimable_at_us > r.at
OPTIONAL MATCH (again:FollowUp {uid: r.uid})
WITH r, again IS NOT NULL AND again.claimable_at_us <= r.at AS waiting
FOREACH (_ IN CASE WHEN waiting THEN [] ELSE [1] END |
  MERGE (f:FollowUp {uid: r.uid})
    ON CREATE SET f.kind = r.kind, f.subject = r.subject, f.enqueued_at_us = r.at,
                  f.claimable_at_us = 0, f.attempts = 0
    ON MATCH SET f.enqueued_at_us = CASE WHEN r.at > f.enqueued_at_us THEN r.at
                                         ELSE f.enqueued_at_us + 1 END,
                 f.claimable_at_us = CASE WHEN f.attempts = 0 THEN 0
                                          ELSE f.claimable_at_us END)
RETURN r.subject AS subject";

/// Defers the revisit `$uid` until `$until` (see [`crate::GraphStore::defer_revisit`]): written
/// when none is pending; when `$claimed` is the caller's claimed one, claimable at `$until`
/// (or at once when it was enqueued again meanwhile); another pending one is left as it is.
const DEFER_REVISIT: &str = "
MERGE (f:FollowUp {uid: $uid})
  ON CREATE SET f.kind = 'revisit', f.subject = $subject,
                f.enqueued_at_us = coalesce($claimed, $now), f.claimable_at_us = $until,
                f.attempts = 0
SET f._lock = true
REMOVE f._lock
WITH f
FOREACH (_ IN CASE WHEN $claimed IS NOT NULL AND f.enqueued_at_us = $claimed THEN [1] ELSE [] END |
  SET f.claimable_at_us = $until, f.attempts = 0)
FOREACH (_ IN CASE WHEN $claimed IS NOT NULL AND f.enqueued_at_us <> $claimed THEN [1] ELSE [] END |
  SET f.claimable_at_us = 0, f.attempts = 0)
RETURN f.uid AS uid";

/// Every pending follow-up, by kind and whether it is deferred (the metrics' gauges).
const STATS: &str = "
MATCH (f:FollowUp)
RETURN f.kind AS kind, f.attempts = 0 AND f.claimable_at_us > $now AS deferred,
       count(f) AS n, min(f.enqueued_at_us) AS oldest";

/// The pending follow-ups about `$subjects`, by kind: one seek of the `follow_up_subject` index
/// per subject (a `$subjects IS NULL OR …` test in one query would make the planner scan every
/// FollowUp node, and each suspects read asks this of its alert).
const STATS_OF: &str = "
MATCH (f:FollowUp)
WHERE f.subject IN $subjects
RETURN f.kind AS kind, f.attempts = 0 AND f.claimable_at_us > $now AS deferred,
       count(f) AS n, min(f.enqueued_at_us) AS oldest";

fn subjects_param(subjects: Option<&[Uid]>) -> BoltType {
    match subjects {
        Some(s) => s
            .iter()
            .map(|u| BoltType::from(u.as_str()))
            .collect::<Vec<_>>()
            .into(),
        None => BoltType::Null(neo4rs::BoltNull),
    }
}

impl Neo4jStore {
    /// Runs the query `build` makes in a transaction of its own, again from the start after
    /// a transient failure ([`crate::retry`]).
    async fn retried_rows(
        &self,
        build: impl Fn() -> Query + Send + Sync,
        operation: &'static str,
    ) -> Result<Vec<neo4rs::Row>> {
        crate::retry::run(super::BACKEND, operation, super::is_retryable, || async {
            let mut txn = self.begin().await?;
            let result = rows_in(&mut txn, build(), operation).await;
            self.settle(txn, result).await
        })
        .await
    }

    pub(super) async fn claim(&self, claim: Claim<'_>) -> Result<Vec<FollowUp>> {
        let subjects = subjects_param(claim.subjects);
        let now = claim.now.timestamp_micros();
        let until = (claim.now + claim.lease).timestamp_micros();
        let limit = int(claim.limit);
        let rows = self
            .retried_rows(
                || {
                    query(CLAIM)
                        .param("subjects", subjects.clone())
                        .param("now", now)
                        .param("until", until)
                        .param("limit", limit.clone())
                },
                "claim follow-ups",
            )
            .await?;
        let decode = decode_failed("claim follow-ups");
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            // A node deleted by a finish that committed after this query found it reads as
            // nulls: it is gone, nothing to claim.
            let kind: Option<String> = row.get("kind").map_err(&decode)?;
            let Some(kind) = kind.as_deref().and_then(FollowUpKind::parse) else {
                continue;
            };
            let subject: String = row.get("subject").map_err(&decode)?;
            let at: i64 = row.get("at").map_err(&decode)?;
            let attempts: i64 = row.get("attempts").map_err(&decode)?;
            claimed.push(FollowUp {
                kind,
                subject: Uid::from_stored(subject),
                enqueued_at: DateTime::from_timestamp_micros(at).unwrap_or_default(),
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
            });
        }
        Ok(claimed)
    }

    pub(super) async fn finish(
        &self,
        kind: FollowUpKind,
        subject: &Uid,
        enqueued_at: DateTime<Utc>,
    ) -> Result<()> {
        let uid = node_uid(kind, subject.as_str());
        let ours = enqueued_at.timestamp_micros();
        // One query: the lock first, then the enqueue time read under it decides.
        self.retried_rows(
            || query(FINISH).param("uid", uid.as_str()).param("at", ours),
            "finish a follow-up",
        )
        .await?;
        Ok(())
    }

    pub(super) async fn revisits(&self, alerts: &[Uid], now: DateTime<Utc>) -> Result<Vec<Uid>> {
        // Sorted, so concurrent writers lock FollowUp nodes in one order.
        let mut sorted: Vec<&str> = alerts.iter().map(Uid::as_str).collect();
        sorted.sort_unstable();
        sorted.dedup();
        if sorted.is_empty() {
            return Ok(Vec::new());
        }
        let at = now.timestamp_micros();
        let rows: Vec<BoltType> = sorted
            .into_iter()
            .map(|s| {
                map(vec![
                    ("uid", node_uid(FollowUpKind::Revisit, s).into()),
                    ("first", node_uid(FollowUpKind::Alert, s).into()),
                    ("kind", FollowUpKind::Revisit.as_str().into()),
                    ("subject", s.into()),
                    ("at", at.into()),
                ])
            })
            .collect();
        let rows = self
            .retried_rows(
                || query(ENQUEUE_REVISITS).param("rows", rows.clone()),
                "enqueue revisits",
            )
            .await?;
        let decode = decode_failed("enqueue revisits");
        let mut enqueued = Vec::with_capacity(rows.len());
        for row in rows {
            let subject: String = row.get("subject").map_err(&decode)?;
            enqueued.push(subject);
        }
        let mut pending: Vec<Uid> = Vec::with_capacity(enqueued.len());
        for alert in alerts {
            if enqueued.iter().any(|s| s == alert.as_str()) && !pending.contains(alert) {
                pending.push(alert.clone());
            }
        }
        Ok(pending)
    }

    pub(super) async fn defer_revisit(
        &self,
        alert: &Uid,
        claimed: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let uid = node_uid(FollowUpKind::Revisit, alert.as_str());
        let claimed: BoltType = match claimed {
            Some(at) => at.timestamp_micros().into(),
            None => BoltType::Null(neo4rs::BoltNull),
        };
        self.retried_rows(
            || {
                query(DEFER_REVISIT)
                    .param("uid", uid.as_str())
                    .param("subject", alert.as_str())
                    .param("claimed", claimed.clone())
                    .param("until", until.timestamp_micros())
                    .param("now", now.timestamp_micros())
            },
            "defer a revisit",
        )
        .await?;
        Ok(())
    }

    pub(super) async fn stats(&self, subjects: Option<&[Uid]>) -> Result<FollowUpStats> {
        let stats = match subjects {
            Some(subjects) => query(STATS_OF).param("subjects", subjects_param(Some(subjects))),
            None => query(STATS),
        }
        .param("now", Utc::now().timestamp_micros());
        let rows = self.rows(stats, "count follow-ups").await?;
        let decode = decode_failed("count follow-ups");
        let mut stats = FollowUpStats::default();
        for row in rows {
            // Nodes deleted while this query ran read as nulls: they are not pending.
            let kind: Option<String> = row.get("kind").map_err(&decode)?;
            let n: i64 = row.get("n").map_err(&decode)?;
            let oldest: Option<i64> = row.get("oldest").map_err(&decode)?;
            let n = u64::try_from(n).unwrap_or_default();
            let deferred: Option<bool> = row.get("deferred").map_err(&decode)?;
            if deferred == Some(true) {
                stats.deferred += n;
                continue;
            }
            match kind.as_deref().and_then(FollowUpKind::parse) {
                Some(FollowUpKind::Alert) => stats.alerts = n,
                Some(FollowUpKind::Deployment) => stats.deployments = n,
                Some(FollowUpKind::Change) => stats.changes = n,
                Some(FollowUpKind::Revisit) => stats.revisits = n,
                None => continue,
            }
            let oldest = oldest.and_then(DateTime::from_timestamp_micros);
            stats.oldest = match (stats.oldest, oldest) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(stats)
    }
}
