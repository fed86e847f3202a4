//! Changes that are not rollouts on Neo4j: `(:Change)-[:AFFECTS]->(:Service)`, written in one
//! transaction with their follow-ups.
//!
//! A batch first takes the write locks of its Service nodes (in uid order, as every writer of
//! shared nodes does), then reads what is stored under its uids — after the locks, so a
//! concurrent writer of the same change is seen — reconciles ([`crate::plan::plan_changes`])
//! and creates the new changes.

use super::{BACKEND, Neo4jStore, decode_failed, failed, int, map, opt_str, rows_in, uid_values};
use crate::error::Result;
use crate::payload::{decode, encode};
use crate::types::{ChangeFilter, ChangeOutcome};
use chrono::{DateTime, Utc};
use deploygraph_model::{Change, Uid};
use neo4rs::{BoltType, Query, Txn, query};
use std::collections::{BTreeMap, HashMap};

/// Takes the write locks of the batch's Service nodes (creating the missing ones), then reads
/// the changes stored under the batch's uids.
const LOCK_AND_READ: &str = "
UNWIND $services AS s
MERGE (n:Service {uid: s.uid})
ON CREATE SET n.name = s.name, n.namespace = s.namespace, n.environment = s.environment,
              n.cluster = s.cluster
SET n.last_recorded_at = datetime()
WITH count(n) AS locked
UNWIND $uids AS u
MATCH (c:Change {uid: u})
RETURN c.uid AS uid, c.payload AS payload";

/// Creates changes, linked AFFECTS their services (whose locks the batch holds), each with a
/// `ChangeKey` per key it changed (`HAS_KEY`, the key history's index, migration 0011).
const INSERT_CHANGES: &str = "
UNWIND $rows AS r
MERGE (c:Change {uid: r.uid})
ON CREATE SET c += r.props
FOREACH (path IN r.props.keys |
  MERGE (c)-[:HAS_KEY]->(:ChangeKey {path: path, at_us: r.props.at_us, change_uid: r.uid}))
WITH c, r
UNWIND r.services AS su
MATCH (s:Service {uid: su})
MERGE (c)-[:AFFECTS]->(s)";

fn change_row(c: &Change) -> Result<BoltType> {
    let services: Vec<BoltType> = c.services.iter().map(|s| s.uid().as_str().into()).collect();
    let keys: Vec<BoltType> = c.diff.iter().map(|k| k.key.as_str().into()).collect();
    Ok(map(vec![
        ("uid", c.uid.as_str().into()),
        ("services", BoltType::from(services)),
        (
            "props",
            map(vec![
                ("uid", c.uid.as_str().into()),
                ("client_id", opt_str(c.id.as_deref())),
                ("kind", c.kind.as_str().into()),
                ("actor", c.actor.as_str().into()),
                ("at", c.at.into()),
                ("at_us", c.at.timestamp_micros().into()),
                ("service_names", c.service_names().into()),
                ("keys", BoltType::from(keys)),
                ("link", opt_str(c.link.as_deref())),
                ("summary", opt_str(c.summary.as_deref())),
                ("source", c.source.as_str().into()),
                ("content_fingerprint", c.content_fingerprint().into()),
                ("payload", encode(BACKEND, c, "encode a change")?.into()),
            ]),
        ),
    ]))
}

async fn record_changes_in(
    txn: &mut Txn,
    batch: Vec<Change>,
    chunk: usize,
) -> Result<Vec<ChangeOutcome>> {
    let mut services: BTreeMap<Uid, BoltType> = BTreeMap::new();
    for c in &batch {
        for s in &c.services {
            services.entry(s.uid()).or_insert_with(|| {
                map(vec![
                    ("uid", s.uid().as_str().into()),
                    ("name", s.name.as_str().into()),
                    ("namespace", opt_str(s.namespace.as_deref())),
                    ("environment", s.environment.as_str().into()),
                ])
            });
        }
    }
    let uids = uid_values(batch.iter().map(|c| &c.uid));
    let rows = rows_in(
        txn,
        query(LOCK_AND_READ)
            .param("services", services.into_values().collect::<Vec<_>>())
            .param("uids", uids),
        "read changes",
    )
    .await?;
    let dec = decode_failed("read changes");
    let mut stored = HashMap::new();
    for row in &rows {
        let uid: String = row.get("uid").map_err(&dec)?;
        let payload: String = row.get("payload").map_err(&dec)?;
        let change: Change = decode(&uid, &payload)?;
        stored.insert(uid, change);
    }
    let mut plan = crate::plan::plan_changes(stored, batch);
    plan.inserts.sort_by(|a, b| a.uid.cmp(&b.uid));
    let rows = plan
        .inserts
        .iter()
        .map(change_row)
        .collect::<Result<Vec<_>>>()?;
    for part in rows.chunks(chunk) {
        txn.run(query(INSERT_CHANGES).param("rows", part.to_vec()))
            .await
            .map_err(failed("write changes"))?;
    }
    super::follow_up::enqueue(
        txn,
        crate::FollowUpKind::Change,
        plan.inserts.iter().map(|c| &c.uid),
        Utc::now(),
    )
    .await?;
    Ok(plan.outcomes)
}

fn changes(rows: &[neo4rs::Row], operation: &'static str) -> Result<Vec<Change>> {
    let dec = decode_failed(operation);
    rows.iter()
        .map(|row| {
            let uid: String = row.get("uid").map_err(&dec)?;
            let payload: String = row.get("payload").map_err(&dec)?;
            decode(&uid, &payload)
        })
        .collect()
}

/// The listing query: fixed clauses chosen by which filters are set, values as parameters.
fn list_query(filter: &ChangeFilter) -> Query {
    let mut clauses: Vec<&str> = Vec::new();
    let mut params: Vec<(&str, BoltType)> = Vec::new();
    if let Some(since) = filter.since {
        clauses.push("c.at_us >= $since");
        params.push(("since", since.timestamp_micros().into()));
    }
    if let Some(until) = filter.until {
        clauses.push("c.at_us <= $until");
        params.push(("until", until.timestamp_micros().into()));
    }
    if let Some(cursor) = &filter.cursor {
        clauses.push("(c.at_us < $cursor_us OR (c.at_us = $cursor_us AND c.uid < $cursor_uid))");
        params.push(("cursor_us", cursor.started_at_us.into()));
        params.push(("cursor_uid", cursor.uid.as_str().into()));
    }
    // Without a selective filter, a range predicate lets the planner walk the at_us index in
    // order instead of sorting every node.
    clauses.push("c.at_us > -9223372036854775807");
    let matching = if filter.services.is_empty() {
        "MATCH (c:Change)"
    } else {
        params.push(("services", BoltType::from(uid_values(&filter.services))));
        "UNWIND $services AS su MATCH (c:Change)-[:AFFECTS]->(:Service {uid: su})"
    };
    let text = format!(
        "{matching} WHERE {}
         WITH DISTINCT c ORDER BY c.at_us DESC, c.uid DESC LIMIT $limit
         RETURN c.uid AS uid, c.payload AS payload
         ORDER BY c.at_us DESC, c.uid DESC",
        clauses.join(" AND ")
    );
    let mut q = query(&text).param("limit", int(filter.limit));
    for (name, value) in params {
        q = q.param(name, value);
    }
    q
}

impl Neo4jStore {
    pub(super) async fn change_record(&self, batch: Vec<Change>) -> Result<Vec<ChangeOutcome>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let chunk = self.options.chunk_size.max(1);
        crate::retry::run(BACKEND, "record changes", super::is_retryable, || async {
            let mut txn = self.begin().await?;
            let result = record_changes_in(&mut txn, batch.clone(), chunk).await;
            self.settle(txn, result).await
        })
        .await
    }

    pub(super) async fn change_get(&self, uid: &Uid) -> Result<Option<Change>> {
        let rows = self
            .rows(
                query("MATCH (c:Change {uid: $uid}) RETURN c.uid AS uid, c.payload AS payload")
                    .param("uid", uid.as_str()),
                "read a change",
            )
            .await?;
        Ok(changes(&rows, "read a change")?.pop())
    }

    pub(super) async fn change_get_many(&self, uids: &[Uid]) -> Result<Vec<Change>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .rows(
                query(
                    "UNWIND $uids AS u
                     MATCH (c:Change {uid: u})
                     RETURN c.uid AS uid, c.payload AS payload ORDER BY uid",
                )
                .param("uids", uid_values(uids)),
                "read changes",
            )
            .await?;
        changes(&rows, "read changes")
    }

    pub(super) async fn change_between(
        &self,
        services: &[Uid],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Change>> {
        if services.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .rows(
                query(
                    "UNWIND $services AS su
                     MATCH (c:Change)-[:AFFECTS]->(:Service {uid: su})
                     WHERE c.at_us >= $from AND c.at_us <= $to
                     WITH DISTINCT c
                     RETURN c.uid AS uid, c.payload AS payload
                     ORDER BY c.at_us DESC, c.uid DESC",
                )
                .param("services", uid_values(services))
                .param("from", from.timestamp_micros())
                .param("to", to.timestamp_micros()),
                "read changes in a window",
            )
            .await?;
        changes(&rows, "read changes in a window")
    }

    pub(super) async fn change_list(&self, filter: &ChangeFilter) -> Result<Vec<Change>> {
        let rows = self.rows(list_query(filter), "list changes").await?;
        changes(&rows, "list changes")
    }
}
