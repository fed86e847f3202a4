//! Alerts, topology, attribution and chaos runs on Neo4j.

use super::{
    BACKEND, Neo4jStore, decode_failed, failed, int, map, opt_str, rows_in, stored_from_row,
    uid_values,
};
use crate::error::{Error, Result};
use crate::payload::{decode, encode};
use crate::types::{
    AlertFilter, ChaosFilter, ServiceHistory, StoredAttribution, StoredDeployment, SubjectTrigger,
};
use chrono::{DateTime, Utc};
use deploygraph_model::{
    Alert, AlertOutcome, AlertStatus, ChaosRun, Cluster, Environment, InfraSnapshot, ServiceName,
    ServiceRef, SubjectKind, Trigger, Uid, merge_alert, parse_time,
};
use neo4rs::{BoltType, Query, Txn, query};
use std::collections::BTreeMap;

/// The `uid, payload` rows of a read, decoded.
pub(super) fn payloads<T: serde::de::DeserializeOwned>(
    rows: &[neo4rs::Row],
    operation: &'static str,
) -> Result<Vec<T>> {
    let dec = decode_failed(operation);
    rows.iter()
        .map(|row| {
            let uid: String = row.get("uid").map_err(&dec)?;
            let payload: String = row.get("payload").map_err(&dec)?;
            decode(&uid, &payload)
        })
        .collect()
}

pub(super) fn service_row(s: &ServiceRef) -> BoltType {
    map(vec![
        ("uid", s.uid().as_str().into()),
        ("name", s.name.as_str().into()),
        ("namespace", opt_str(s.namespace.as_deref())),
        ("environment", s.environment.as_str().into()),
        ("cluster", s.cluster.as_str().into()),
    ])
}

/// The service a row names in its `name`, `namespace`, `environment` and `cluster` columns
/// (no cluster: the default one). The outer error is a column that does not decode, the inner
/// one a value the model refuses.
pub(super) fn service_of(
    row: &neo4rs::Row,
    operation: &'static str,
) -> Result<std::result::Result<ServiceRef, deploygraph_model::Error>> {
    let dec = decode_failed(operation);
    let name: String = row.get("name").map_err(&dec)?;
    let namespace: Option<String> = row.get("namespace").map_err(&dec)?;
    let environment: String = row.get("environment").map_err(&dec)?;
    let cluster: Option<String> = row.get("cluster").map_err(&dec)?;
    Ok((|| {
        Ok(ServiceRef {
            name: ServiceName::parse(&name)?,
            namespace,
            environment: Environment::parse(&environment)?,
            cluster: Cluster::parse_field(cluster.as_deref(), "cluster")?,
        })
    })())
}

pub(super) fn service_refs(
    rows: &[neo4rs::Row],
    operation: &'static str,
) -> Result<Vec<ServiceRef>> {
    let mut refs = Vec::with_capacity(rows.len());
    for row in rows {
        if let Ok(service) = service_of(row, operation)? {
            refs.push(service);
        }
    }
    Ok(refs)
}

const FIND_SERVICES: &str = "
MATCH (s:Service {name: $name})
WHERE ($namespace IS NULL OR s.namespace = $namespace)
  AND ($environment IS NULL OR s.environment = $environment)
  AND ($cluster IS NULL OR s.cluster = $cluster)
RETURN s.name AS name, s.namespace AS namespace, s.environment AS environment,
       s.cluster AS cluster
ORDER BY environment, namespace, cluster";

fn find_services_query(
    name: &ServiceName,
    namespace: Option<&str>,
    environment: Option<&Environment>,
    cluster: Option<&Cluster>,
) -> Query {
    query(FIND_SERVICES)
        .param("name", name.as_str())
        .param("namespace", opt_str(namespace))
        .param("environment", opt_str(environment.map(Environment::as_str)))
        .param("cluster", opt_str(cluster.map(Cluster::as_str)))
}

fn status_str(status: AlertStatus) -> &'static str {
    match status {
        AlertStatus::Firing => "firing",
        AlertStatus::Resolved => "resolved",
    }
}

fn alert_props(alert: &Alert) -> Result<BoltType> {
    let labels: Vec<BoltType> = alert
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}").into())
        .collect();
    Ok(map(vec![
        ("uid", alert.uid.as_str().into()),
        ("fingerprint", alert.fingerprint.as_str().into()),
        ("name", alert.name.as_str().into()),
        ("type", alert.alert_type.as_str().into()),
        ("severity", opt_str(alert.severity.as_deref())),
        ("status", status_str(alert.status).into()),
        ("starts_at", alert.starts_at.into()),
        ("starts_at_us", alert.starts_at.timestamp_micros().into()),
        ("ends_at", alert.ends_at.into()),
        ("labels", BoltType::from(labels)),
        ("summary", opt_str(alert.summary.as_deref())),
        ("generator_url", opt_str(alert.generator_url.as_deref())),
        (
            "service",
            opt_str(alert.service.as_ref().map(ServiceName::as_str)),
        ),
        ("namespace", opt_str(alert.namespace.as_deref())),
        (
            "environment",
            opt_str(alert.environment.as_ref().map(Environment::as_str)),
        ),
        (
            "cluster",
            opt_str(alert.cluster.as_ref().map(Cluster::as_str)),
        ),
        ("payload", encode(BACKEND, alert, "encode an alert")?.into()),
    ]))
}

/// Takes the write locks of the Service nodes a batch's new alerts fire on (creating the
/// missing ones) in one statement, in uid order. Every writer of shared nodes takes their
/// locks this way (deployments: Service, then Commit, Image and HelmRevision, each by uid), so
/// concurrent notifications on the same few services wait for each other instead of
/// deadlocking.
const LOCK_SERVICES: &str = "
UNWIND $services AS s
MERGE (n:Service {uid: s.uid})
ON CREATE SET n.name = s.name, n.namespace = s.namespace, n.environment = s.environment,
              n.cluster = s.cluster
SET n.last_recorded_at = datetime()";

/// Creates alert occurrences (merged on uid, so concurrent first deliveries are one node),
/// linked FIRED_ON their services, whose locks the batch holds already.
const CREATE_ALERTS: &str = "
UNWIND $rows AS r
MERGE (a:Alert {uid: r.props.uid})
ON CREATE SET a = r.props
WITH a, r
UNWIND r.services AS su
MATCH (svc:Service {uid: su})
MERGE (a)-[:FIRED_ON]->(svc)";

const UPDATE_ALERTS: &str = "
UNWIND $rows AS r
MATCH (a:Alert {uid: r.props.uid})
SET a.status = r.props.status, a.ends_at = r.props.ends_at, a.severity = r.props.severity,
    a.summary = r.props.summary, a.labels = r.props.labels, a.payload = r.props.payload";

/// The stored Services every label key `(name, namespace, environment)` matches, in one query.
const FIND_SERVICES_BATCH: &str = "
UNWIND $keys AS k
MATCH (s:Service {name: k.name})
WHERE (k.namespace IS NULL OR s.namespace = k.namespace)
  AND (k.environment IS NULL OR s.environment = k.environment)
  AND (k.cluster IS NULL OR s.cluster = k.cluster)
RETURN k.i AS i, s.name AS name, s.namespace AS namespace, s.environment AS environment,
       s.cluster AS cluster
ORDER BY i, environment, namespace, cluster";

type ServiceKey = (
    ServiceName,
    Option<String>,
    Option<Environment>,
    Option<Cluster>,
);

/// The Services each new alert fires on: the stored ones its labels match; with an
/// environment and none stored, the one its labels name. One query for the whole batch.
async fn fired_on(txn: &mut Txn, alerts: &[&Alert]) -> Result<Vec<Vec<ServiceRef>>> {
    let mut keys: Vec<ServiceKey> = alerts
        .iter()
        .filter_map(|a| {
            let name = a.service.clone()?;
            Some((
                name,
                a.namespace.clone(),
                a.environment.clone(),
                a.cluster.clone(),
            ))
        })
        .collect();
    keys.sort();
    keys.dedup();
    let mut found: Vec<Vec<ServiceRef>> = vec![Vec::new(); keys.len()];
    if !keys.is_empty() {
        let rows: Vec<BoltType> = keys
            .iter()
            .enumerate()
            .map(|(i, (name, namespace, environment, cluster))| {
                map(vec![
                    ("i", int(i)),
                    ("name", name.as_str().into()),
                    ("namespace", opt_str(namespace.as_deref())),
                    (
                        "environment",
                        opt_str(environment.as_ref().map(Environment::as_str)),
                    ),
                    ("cluster", opt_str(cluster.as_ref().map(Cluster::as_str))),
                ])
            })
            .collect();
        let rows = rows_in(
            txn,
            query(FIND_SERVICES_BATCH).param("keys", rows),
            "find services",
        )
        .await?;
        let dec = decode_failed("find services");
        for row in &rows {
            let i: i64 = row.get("i").map_err(&dec)?;
            let refs = service_refs(std::slice::from_ref(row), "find services")?;
            if let Some(slot) = usize::try_from(i).ok().and_then(|i| found.get_mut(i)) {
                slot.extend(refs);
            }
        }
    }
    Ok(alerts
        .iter()
        .map(|alert| {
            let Some(name) = &alert.service else {
                return Vec::new();
            };
            let key = (
                name.clone(),
                alert.namespace.clone(),
                alert.environment.clone(),
                alert.cluster.clone(),
            );
            let stored = keys
                .binary_search(&key)
                .ok()
                .and_then(|i| found.get(i))
                .filter(|f| !f.is_empty());
            match stored {
                Some(services) => services.clone(),
                None => alert
                    .environment
                    .as_ref()
                    .map(|environment| ServiceRef {
                        name: name.clone(),
                        namespace: alert.namespace.clone(),
                        environment: environment.clone(),
                        cluster: alert.cluster.clone().unwrap_or_default(),
                    })
                    .into_iter()
                    .collect(),
            }
        })
        .collect())
}

/// Records a batch of alert deliveries in `txn`: reads what is stored, merges in memory, then
/// writes with a few `UNWIND` statements whose rows are sorted by the uid of the node they lock
/// (services first, then alerts), so concurrent batches never wait on each other in a cycle.
async fn record_alerts_in(
    txn: &mut Txn,
    alerts: Vec<Alert>,
    chunk: usize,
) -> Result<Vec<(Alert, AlertOutcome)>> {
    let uids: Vec<BoltType> = alerts.iter().map(|a| a.uid.as_str().into()).collect();
    let rows = rows_in(
        txn,
        query(
            "UNWIND $uids AS u MATCH (a:Alert {uid: u}) RETURN a.uid AS uid, a.payload AS payload",
        )
        .param("uids", uids),
        "read alerts",
    )
    .await?;
    let stored: Vec<Alert> = payloads(&rows, "read alerts")?;
    let mut current: BTreeMap<Uid, (Alert, bool, bool)> = stored
        .into_iter()
        .map(|a| (a.uid.clone(), (a, false, false)))
        .collect();
    let mut outcomes = Vec::with_capacity(alerts.len());
    for alert in alerts {
        let uid = alert.uid.clone();
        let previous = current.get(&uid).map(|(a, _, _)| a);
        let (merged, outcome) = merge_alert(previous, alert);
        let entry = current
            .entry(uid)
            .or_insert_with(|| (merged.clone(), false, false));
        entry.0 = merged.clone();
        entry.1 |= outcome == AlertOutcome::Created;
        entry.2 |= outcome == AlertOutcome::Updated;
        outcomes.push((merged, outcome));
    }
    // In uid order (the map's), which is the order the alerts' locks are taken in.
    let created: Vec<&Alert> = current
        .values()
        .filter(|(_, created, _)| *created)
        .map(|(a, _, _)| a)
        .collect();
    let updated: Vec<&Alert> = current
        .values()
        .filter(|(_, created, updated)| !*created && *updated)
        .map(|(a, _, _)| a)
        .collect();
    if !created.is_empty() {
        let services = fired_on(txn, &created).await?;
        let mut locks: BTreeMap<Uid, &ServiceRef> = BTreeMap::new();
        for s in services.iter().flatten() {
            locks.entry(s.uid()).or_insert(s);
        }
        let locks: Vec<BoltType> = locks.values().map(|s| service_row(s)).collect();
        for part in locks.chunks(chunk) {
            txn.run(query(LOCK_SERVICES).param("services", part.to_vec()))
                .await
                .map_err(failed("record alerts"))?;
        }
        let rows = created
            .iter()
            .zip(&services)
            .map(|(alert, services)| {
                let uids: Vec<BoltType> =
                    services.iter().map(|s| s.uid().as_str().into()).collect();
                Ok(map(vec![
                    ("props", alert_props(alert)?),
                    ("services", BoltType::from(uids)),
                ]))
            })
            .collect::<Result<Vec<_>>>()?;
        for part in rows.chunks(chunk) {
            txn.run(query(CREATE_ALERTS).param("rows", part.to_vec()))
                .await
                .map_err(failed("record alerts"))?;
        }
    }
    if !updated.is_empty() {
        let rows = updated
            .iter()
            .map(|alert| Ok(map(vec![("props", alert_props(alert)?)])))
            .collect::<Result<Vec<_>>>()?;
        for part in rows.chunks(chunk) {
            txn.run(query(UPDATE_ALERTS).param("rows", part.to_vec()))
                .await
                .map_err(failed("record alerts"))?;
        }
    }
    super::follow_up::enqueue(
        txn,
        crate::FollowUpKind::Alert,
        created.iter().map(|a| &a.uid),
        Utc::now(),
    )
    .await?;
    Ok(outcomes)
}

/// Per service name, its `$limit` newest alerts started in `[$since, $until]` (in
/// `$environment` when not null): one range of the `alert_service` index each, read backwards
/// (the name is fixed, so ordering by it too lets the planner stop at the limit).
const ALERTS_OF_SERVICES: &str = "
UNWIND $services AS name
CALL {
  WITH name
  MATCH (a:Alert)
  WHERE a.service = name AND a.starts_at_us >= $since AND a.starts_at_us <= $until
    AND ($environment IS NULL OR a.environment = $environment)
  WITH a ORDER BY a.service DESC, a.starts_at_us DESC, a.uid DESC LIMIT $limit
  RETURN a
}
RETURN a.uid AS uid, a.payload AS payload";

fn alerts_query(filter: &AlertFilter) -> Query {
    let mut clauses: Vec<&str> = Vec::new();
    let mut params: Vec<(&str, BoltType)> = Vec::new();
    if let Some(service) = &filter.service {
        clauses.push("a.service = $service");
        params.push(("service", service.as_str().into()));
    }
    if let Some(environment) = &filter.environment {
        clauses.push("a.environment = $environment");
        params.push(("environment", environment.as_str().into()));
    }
    if let Some(cluster) = &filter.cluster {
        clauses.push(
            "(a.cluster = $cluster OR (a.cluster IS NULL
              AND EXISTS { (a)-[:FIRED_ON]->(:Service {cluster: $cluster}) }))",
        );
        params.push(("cluster", cluster.as_str().into()));
    }
    if let Some(fingerprint) = &filter.fingerprint {
        clauses.push("a.fingerprint = $fingerprint");
        params.push(("fingerprint", fingerprint.as_str().into()));
    }
    if let Some(since) = filter.since {
        clauses.push("a.starts_at_us >= $since");
        params.push(("since", since.timestamp_micros().into()));
    }
    if let Some(until) = filter.until {
        clauses.push("a.starts_at_us <= $until");
        params.push(("until", until.timestamp_micros().into()));
    }
    if let Some(cursor) = &filter.cursor {
        clauses.push("(a.starts_at_us < $cursor_us OR (a.starts_at_us = $cursor_us AND a.uid < $cursor_uid))");
        params.push(("cursor_us", cursor.started_at_us.into()));
        params.push(("cursor_uid", cursor.uid.as_str().into()));
    }
    clauses.push("a.starts_at_us > -9223372036854775807");
    let text = format!(
        "MATCH (a:Alert) WHERE {}
         RETURN a.uid AS uid, a.payload AS payload
         ORDER BY a.starts_at_us DESC, a.uid DESC LIMIT $limit",
        clauses.join(" AND ")
    );
    let mut q = query(&text).param("limit", int(filter.limit));
    for (name, value) in params {
        q = q.param(name, value);
    }
    q
}

fn chaos_query(filter: &ChaosFilter) -> Query {
    let mut clauses: Vec<&str> = Vec::new();
    let mut params: Vec<(&str, BoltType)> = Vec::new();
    if !filter.services.is_empty() {
        clauses.push("c.service_uid IN $services");
        let services: Vec<BoltType> = filter.services.iter().map(|s| s.as_str().into()).collect();
        params.push(("services", BoltType::from(services)));
    }
    if let Some(against) = &filter.against {
        clauses.push("c.against_uid = $against");
        params.push(("against", against.as_str().into()));
    }
    if let Some(since) = filter.since {
        clauses.push("(c.ended_at_us IS NULL OR c.ended_at_us >= $since)");
        params.push(("since", since.timestamp_micros().into()));
    }
    if let Some(until) = filter.until {
        clauses.push("c.started_at_us <= $until");
        params.push(("until", until.timestamp_micros().into()));
    }
    if let Some(cursor) = &filter.cursor {
        clauses.push("(c.started_at_us < $cursor_us OR (c.started_at_us = $cursor_us AND c.uid < $cursor_uid))");
        params.push(("cursor_us", cursor.started_at_us.into()));
        params.push(("cursor_uid", cursor.uid.as_str().into()));
    }
    clauses.push("c.started_at_us > -9223372036854775807");
    let text = format!(
        "MATCH (c:ChaosRun) WHERE {}
         RETURN c.uid AS uid, c.payload AS payload
         ORDER BY c.started_at_us DESC, c.uid DESC LIMIT $limit",
        clauses.join(" AND ")
    );
    let mut q = query(&text).param("limit", int(filter.limit));
    for (name, value) in params {
        q = q.param(name, value);
    }
    q
}

const RECORD_CHAOS_RUN: &str = "
MERGE (svc:Service {uid: $service.uid})
ON CREATE SET svc.name = $service.name, svc.namespace = $service.namespace,
              svc.environment = $service.environment, svc.cluster = $service.cluster
MERGE (c:ChaosRun {uid: $props.uid})
SET c += $props
WITH c, svc
OPTIONAL MATCH (c)-[old:TARGETED]->(other:Service) WHERE other.uid <> svc.uid
DELETE old
MERGE (c)-[:TARGETED]->(svc)
WITH c
OPTIONAL MATCH (d:DeploymentEvent {uid: $against})
FOREACH (x IN CASE WHEN d IS NULL THEN [] ELSE [d] END | MERGE (c)-[:AGAINST]->(x))";

fn chaos_props(run: &ChaosRun) -> Result<BoltType> {
    Ok(map(vec![
        ("uid", run.uid.as_str().into()),
        ("scenario", run.scenario.as_str().into()),
        ("experiment", run.experiment.as_str().into()),
        ("engine", opt_str(run.engine.as_deref())),
        ("service_uid", run.target.uid().as_str().into()),
        ("service", run.target.name.as_str().into()),
        ("namespace", opt_str(run.target.namespace.as_deref())),
        ("environment", run.target.environment.as_str().into()),
        ("cluster", run.target.cluster.as_str().into()),
        ("verdict", run.verdict.as_str().into()),
        ("phase", run.phase.as_str().into()),
        ("probe_success_pct", run.probe_success_pct.into()),
        ("started_at", run.started_at.into()),
        ("started_at_us", run.started_at.timestamp_micros().into()),
        ("ended_at", run.ended_at.into()),
        (
            "ended_at_us",
            run.ended_at.map(|t| t.timestamp_micros()).into(),
        ),
        ("recovery_seconds", run.recovery_seconds.into()),
        ("error_reason", opt_str(run.error_reason.as_deref())),
        (
            "against_uid",
            opt_str(run.against.as_ref().map(Uid::as_str)),
        ),
        (
            "payload",
            encode(BACKEND, run, "encode a chaos run")?.into(),
        ),
    ]))
}

/// A TRIGGERS row (`subject`, `subject_uid`, `confidence_score`, `reasons`, `computed_at`), or
/// `None` when the relationship was deleted by an attribution that committed after this read
/// found it (its properties then read as nulls): it is being replaced, not part of the answer.
fn trigger_from_row(
    row: &neo4rs::Row,
    alert: Uid,
    dec: &impl Fn(neo4rs::DeError) -> Error,
) -> Result<Option<Trigger>> {
    let subject: Option<String> = row.get("subject").map_err(dec)?;
    let subject_uid: Option<String> = row.get("subject_uid").map_err(dec)?;
    let computed_at: Option<String> = row.get("computed_at").map_err(dec)?;
    let confidence_score: Option<f64> = row.get("confidence_score").map_err(dec)?;
    let reasons: Option<Vec<String>> = row.get("reasons").map_err(dec)?;
    let (
        Some(subject),
        Some(subject_uid),
        Some(computed_at),
        Some(confidence_score),
        Some(reasons),
    ) = (subject, subject_uid, computed_at, confidence_score, reasons)
    else {
        return Ok(None);
    };
    let corrupt = |source: Box<dyn std::error::Error + Send + Sync>| Error::Corrupt {
        uid: subject_uid.clone(),
        source,
    };
    Ok(Some(Trigger {
        subject: SubjectKind::parse(&subject)
            .ok_or_else(|| corrupt(format!("unknown subject kind {subject:?}").into()))?,
        alert_uid: alert,
        confidence_score,
        reasons,
        computed_at: parse_time(&computed_at).map_err(|e| corrupt(Box::new(e)))?,
        subject_uid: Uid::from_stored(subject_uid),
    }))
}

/// Per service of `$services` (`{service, latest, queries: [{i, before}]}`): its deployments that
/// started before the latest `before` asked (one index range), each with the start of the first
/// alert it is blamed for ([`crate::is_blamed`]: CAUSED it, or TRIGGERS it at `$blamed` or more
/// without a REJECTED for it; one walk of the deployment's relationships, REJECTED only behind a
/// TRIGGERS at the blame confidence), then counted for each `before` asked of that service: a
/// deployment counts as blamed when that alert also started before `before`. Attribution asks
/// of a busy service at each of its candidates' starts: its history is read once, not once per
/// candidate.
const SERVICE_HISTORIES: &str = "
UNWIND $services AS s
CALL {
  WITH s
  MATCH (d:DeploymentEvent)
  WHERE d.service_uid = s.service AND d.started_at_us < s.latest
  WITH d.started_at_us AS at, [(d)-[r:CAUSED|TRIGGERS]->(a:Alert)
    WHERE type(r) = 'CAUSED'
       OR (r.confidence_score >= $blamed AND NOT EXISTS { MATCH (d)-[:REJECTED]->(a) })
    | a.starts_at_us] AS blamers
  WITH at, reduce(first = null, t IN blamers |
                  CASE WHEN first IS NULL OR t < first THEN t ELSE first END) AS first_blamed
  RETURN collect(at) AS starts,
         collect(CASE WHEN first_blamed IS NOT NULL THEN [at, first_blamed] END) AS blamed
}
UNWIND s.queries AS q
RETURN q.i AS i, size([t IN starts WHERE t < q.before]) AS deployments,
       size([b IN blamed WHERE b[0] < q.before AND b[1] < q.before]) AS followed";

/// The suspect a TRIGGERS relationship starts at, as `subject` and `subject_uid` columns
/// (`x` is the start node).
const SUBJECT_COLUMNS: &str =
    "CASE WHEN x:Change THEN 'change' ELSE 'deployment' END AS subject, x.uid AS subject_uid";

impl Neo4jStore {
    /// Begins an explicit (write) transaction after this process's latest commits.
    pub(super) async fn begin(&self) -> Result<Txn> {
        let bookmarks = self.bookmarks.current();
        self.graph
            .start_txn_as(
                neo4rs::Operation::Write,
                (!bookmarks.is_empty()).then_some(bookmarks),
            )
            .await
            .map_err(failed("begin a transaction"))
    }

    /// Commits `txn` when `result` is a success (keeping its bookmark for the reads and
    /// transactions after it), else rolls it back; `result` either way.
    pub(super) async fn settle<T>(&self, txn: Txn, result: Result<T>) -> Result<T> {
        match result {
            Ok(value) => {
                if let Some(bookmark) = txn.commit().await.map_err(failed("commit"))? {
                    self.bookmarks.committed(bookmark);
                }
                Ok(value)
            }
            Err(e) => {
                if let Err(rollback) = txn.rollback().await {
                    tracing::debug!(error.message = %rollback, "rollback after a failed write failed");
                }
                Err(e)
            }
        }
    }

    async fn read(&self, q: Query, operation: &'static str) -> Result<Vec<neo4rs::Row>> {
        self.rows(q, operation).await
    }

    pub(super) async fn rca_find_services(
        &self,
        name: &ServiceName,
        namespace: Option<&str>,
        environment: Option<&Environment>,
        cluster: Option<&Cluster>,
    ) -> Result<Vec<ServiceRef>> {
        let rows = self
            .read(
                find_services_query(name, namespace, environment, cluster),
                "find services",
            )
            .await?;
        service_refs(&rows, "find services")
    }

    pub(super) async fn rca_record_alerts(
        &self,
        alerts: Vec<Alert>,
    ) -> Result<Vec<(Alert, AlertOutcome)>> {
        let chunk = self.options.chunk_size.max(1);
        crate::retry::run(BACKEND, "record alerts", super::is_retryable, || async {
            let mut txn = self.begin().await?;
            let result = record_alerts_in(&mut txn, alerts.clone(), chunk).await;
            self.settle(txn, result).await
        })
        .await
    }

    pub(super) async fn rca_get_alert(&self, uid: &Uid) -> Result<Option<Alert>> {
        let rows = self
            .read(
                query("MATCH (a:Alert {uid: $uid}) RETURN a.uid AS uid, a.payload AS payload")
                    .param("uid", uid.as_str()),
                "read an alert",
            )
            .await?;
        Ok(payloads(&rows, "read an alert")?.pop())
    }

    pub(super) async fn rca_get_alerts(&self, uids: &[Uid]) -> Result<Vec<Alert>> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let mut uids: Vec<&str> = uids.iter().map(Uid::as_str).collect();
        uids.sort_unstable();
        uids.dedup();
        let rows = self
            .read(
                query(
                    "UNWIND $uids AS uid
                     MATCH (a:Alert {uid: uid})
                     RETURN a.uid AS uid, a.payload AS payload ORDER BY a.uid",
                )
                .param("uids", uids),
                "read alerts",
            )
            .await?;
        payloads(&rows, "read alerts")
    }

    pub(super) async fn rca_set_alert_onset(
        &self,
        uid: &Uid,
        onset: &deploygraph_model::MetricOnset,
    ) -> Result<bool> {
        let at = onset.at();
        self.rca_edit_alert_payload(
            query(
                "MATCH (a:Alert {uid: $uid})
                 SET a.onset_at = $at, a.onset_at_us = $at_us
                 RETURN a.uid AS uid, a.payload AS payload",
            )
            .param("uid", uid.as_str())
            .param("at", at)
            .param("at_us", at.map(|t| t.timestamp_micros())),
            uid,
            "record an alert's onset",
            |alert| alert.onset = Some(onset.clone()),
        )
        .await
    }

    pub(super) async fn rca_set_alert_service_metrics(
        &self,
        uid: &Uid,
        metrics: &std::collections::BTreeMap<String, deploygraph_model::ServiceMetric>,
    ) -> Result<bool> {
        self.rca_edit_alert_payload(
            query(
                "MATCH (a:Alert {uid: $uid})
                 SET a.payload = a.payload
                 RETURN a.uid AS uid, a.payload AS payload",
            )
            .param("uid", uid.as_str()),
            uid,
            "record an alert's service metrics",
            |alert| alert.service_metrics = Some(metrics.clone()),
        )
        .await
    }

    /// Edits the stored payload of the alert `uid` with `edit`, `false` when there is none.
    /// `lock` (which may set properties of its own) matches the alert, returning its uid and
    /// payload: as the transaction's first statement it takes the node's write lock (a
    /// concurrent redelivery's update waits), so the payload read under it is the one replaced.
    async fn rca_edit_alert_payload(
        &self,
        lock: Query,
        uid: &Uid,
        what: &'static str,
        edit: impl Fn(&mut Alert),
    ) -> Result<bool> {
        const WRITE: &str = "MATCH (a:Alert {uid: $uid}) SET a.payload = $payload";
        crate::retry::run(BACKEND, what, super::is_retryable, || async {
            let mut txn = self.begin().await?;
            let result = async {
                let rows = rows_in(&mut txn, lock.clone(), what).await?;
                let Some(mut alert) = payloads::<Alert>(&rows, what)?.pop() else {
                    return Ok(false);
                };
                edit(&mut alert);
                let payload = encode(BACKEND, &alert, "encode an alert")?;
                txn.run(
                    query(WRITE)
                        .param("uid", uid.as_str())
                        .param("payload", payload),
                )
                .await
                .map_err(failed(what))?;
                Ok(true)
            }
            .await;
            self.settle(txn, result).await
        })
        .await
    }

    pub(super) async fn rca_list_alerts(&self, filter: &AlertFilter) -> Result<Vec<Alert>> {
        let rows = self.read(alerts_query(filter), "list alerts").await?;
        payloads(&rows, "list alerts")
    }

    pub(super) async fn rca_alerts_of_services(
        &self,
        services: &[ServiceName],
        filter: &AlertFilter,
    ) -> Result<Vec<Alert>> {
        let mut names: Vec<&str> = services.iter().map(ServiceName::as_str).collect();
        names.sort_unstable();
        names.dedup();
        if names.is_empty() || filter.limit == 0 {
            return Ok(Vec::new());
        }
        let names: Vec<BoltType> = names.into_iter().map(BoltType::from).collect();
        let environment = filter
            .environment
            .as_ref()
            .map_or(BoltType::Null(neo4rs::BoltNull), |e| e.as_str().into());
        let micros = |t: Option<DateTime<Utc>>, none: i64| t.map_or(none, |t| t.timestamp_micros());
        let rows = self
            .read(
                query(ALERTS_OF_SERVICES)
                    .param("services", names)
                    .param("environment", environment)
                    .param("since", micros(filter.since, i64::MIN + 1))
                    .param("until", micros(filter.until, i64::MAX))
                    .param("limit", int(filter.limit)),
                "list the alerts of services",
            )
            .await?;
        payloads(&rows, "list the alerts of services")
    }

    pub(super) async fn rca_alert_services(&self, alert: &Uid) -> Result<Vec<ServiceRef>> {
        let rows = self
            .read(
                query(
                    "MATCH (:Alert {uid: $uid})-[:FIRED_ON]->(s:Service)
                     RETURN s.name AS name, s.namespace AS namespace, s.environment AS environment,
                            s.cluster AS cluster
                     ORDER BY environment, namespace, cluster",
                )
                .param("uid", alert.as_str()),
                "read an alert's services",
            )
            .await?;
        service_refs(&rows, "read an alert's services")
    }

    pub(super) async fn rca_deployments_between(
        &self,
        services: &[Uid],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<StoredDeployment>> {
        let services: Vec<BoltType> = services.iter().map(|s| s.as_str().into()).collect();
        let rows = self
            .read(
                query(
                    "UNWIND $services AS su
                     MATCH (d:DeploymentEvent)
                     WHERE d.service_uid = su AND d.started_at_us >= $from AND d.started_at_us <= $to
                     OPTIONAL MATCH (d)-[:FOLLOWS]->(p:DeploymentEvent)
                     RETURN d.uid AS uid, d.payload AS payload, p.uid AS follows
                     ORDER BY d.started_at_us DESC, d.uid DESC",
                )
                .param("services", services)
                .param("from", from.timestamp_micros())
                .param("to", to.timestamp_micros()),
                "read deployments in a window",
            )
            .await?;
        rows.iter().map(stored_from_row).collect()
    }

    pub(super) async fn rca_service_histories(
        &self,
        queries: &[(Uid, DateTime<Utc>)],
    ) -> Result<Vec<ServiceHistory>> {
        const OPERATION: &str = "read services' history";
        if queries.is_empty() {
            return Ok(Vec::new());
        }
        // By service: the latest time asked, and each query with its index.
        let mut by_service: BTreeMap<&str, (i64, Vec<BoltType>)> = BTreeMap::new();
        for (i, (service, before)) in queries.iter().enumerate() {
            let before = before.timestamp_micros();
            let (latest, asked) = by_service
                .entry(service.as_str())
                .or_insert((i64::MIN, Vec::new()));
            *latest = (*latest).max(before);
            asked.push(map(vec![("i", int(i)), ("before", before.into())]));
        }
        let services: Vec<BoltType> = by_service
            .into_iter()
            .map(|(service, (latest, asked))| {
                map(vec![
                    ("service", service.into()),
                    ("latest", latest.into()),
                    ("queries", BoltType::from(asked)),
                ])
            })
            .collect();
        let rows = self
            .read(
                query(SERVICE_HISTORIES)
                    .param("services", services)
                    .param("blamed", crate::BLAMED_CONFIDENCE),
                OPERATION,
            )
            .await?;
        let dec = decode_failed(OPERATION);
        let mut out = vec![ServiceHistory::default(); queries.len()];
        for row in rows {
            let i: i64 = row.get("i").map_err(&dec)?;
            let deployments: i64 = row.get("deployments").map_err(&dec)?;
            let followed: i64 = row.get("followed").map_err(&dec)?;
            if let Some(slot) = usize::try_from(i).ok().and_then(|i| out.get_mut(i)) {
                *slot = ServiceHistory {
                    deployments: u32::try_from(deployments).unwrap_or(u32::MAX),
                    followed_by_alerts: u32::try_from(followed).unwrap_or(u32::MAX),
                };
            }
        }
        Ok(out)
    }

    pub(super) async fn rca_replace_attribution(
        &self,
        alert: &Uid,
        triggers: &[Trigger],
        chaos: Option<(&Uid, &str)>,
    ) -> Result<()> {
        let row = |t: &Trigger| {
            let reasons: Vec<BoltType> = t.reasons.iter().map(|r| r.as_str().into()).collect();
            map(vec![
                ("uid", t.subject_uid.as_str().into()),
                ("confidence_score", t.confidence_score.into()),
                ("reasons", BoltType::from(reasons)),
                ("computed_at", t.computed_at.into()),
            ])
        };
        let rows = |kind: SubjectKind| -> Vec<BoltType> {
            triggers
                .iter()
                .filter(|t| t.subject == kind)
                .map(row)
                .collect()
        };
        let (deployments, changes) = (rows(SubjectKind::Deployment), rows(SubjectKind::Change));
        let alert = alert.as_str().to_owned();
        let chaos = chaos.map(|(run, reason)| (run.as_str().to_owned(), reason.to_owned()));
        crate::retry::run(
            BACKEND,
            "record an attribution",
            super::is_retryable,
            || async {
                let mut txn = self.begin().await?;
                let result = replace_attribution_in(
                    &mut txn,
                    &alert,
                    [&deployments, &changes],
                    chaos.as_ref(),
                )
                .await;
                self.settle(txn, result).await
            },
        )
        .await
    }

    pub(super) async fn rca_attribution(&self, alert: &Uid) -> Result<StoredAttribution> {
        let operation = "read an attribution";
        // The suspects and the chaos run, read together.
        let (rows, chaos) = tokio::try_join!(
            self.read(
                query(&format!(
                    "MATCH (x)-[r:TRIGGERS]->(:Alert {{uid: $uid}})
                     WHERE x:DeploymentEvent OR x:Change
                     RETURN {SUBJECT_COLUMNS}, r.confidence_score AS confidence_score,
                            r.reasons AS reasons, toString(r.computed_at) AS computed_at
                     ORDER BY confidence_score DESC, subject_uid"
                ))
                .param("uid", alert.as_str()),
                operation,
            ),
            self.read(
                query(
                    "MATCH (c:ChaosRun)-[r:RAISED]->(:Alert {uid: $uid})
                     RETURN c.uid AS run, r.reason AS reason ORDER BY c.started_at_us DESC LIMIT 1",
                )
                .param("uid", alert.as_str()),
                operation,
            ),
        )?;
        let dec = decode_failed(operation);
        let mut triggers = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(trigger) = trigger_from_row(row, alert.clone(), &dec)? {
                triggers.push(trigger);
            }
        }
        let (chaos_run, chaos_reason) = match chaos.first() {
            Some(row) => (
                Some(Uid::from_stored(row.get::<String>("run").map_err(&dec)?)),
                row.get::<Option<String>>("reason").map_err(&dec)?,
            ),
            None => (None, None),
        };
        Ok(StoredAttribution {
            triggers,
            chaos_run,
            chaos_reason,
        })
    }

    pub(super) async fn rca_top_triggers(&self, alerts: &[Uid]) -> Result<Vec<Trigger>> {
        let operation = "read top triggers";
        let uids = uid_values(alerts);
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .read(
                query(&format!(
                    "UNWIND $uids AS u
                     MATCH (x)-[r:TRIGGERS]->(:Alert {{uid: u}})
                     WHERE x:DeploymentEvent OR x:Change
                     WITH u, {SUBJECT_COLUMNS}, r
                     ORDER BY u, r.confidence_score DESC, subject_uid
                     WITH u, collect({{subject: subject, subject_uid: subject_uid,
                                      confidence_score: r.confidence_score, reasons: r.reasons,
                                      computed_at: toString(r.computed_at)}})[0] AS top
                     RETURN u AS alert, top.subject AS subject, top.subject_uid AS subject_uid,
                            top.confidence_score AS confidence_score, top.reasons AS reasons,
                            top.computed_at AS computed_at
                     ORDER BY alert"
                ))
                .param("uids", uids),
                operation,
            )
            .await?;
        let dec = decode_failed(operation);
        let mut triggers = Vec::with_capacity(rows.len());
        for row in &rows {
            let alert = Uid::from_stored(row.get::<String>("alert").map_err(&dec)?);
            if let Some(trigger) = trigger_from_row(row, alert, &dec)? {
                triggers.push(trigger);
            }
        }
        Ok(triggers)
    }

    pub(super) async fn rca_triggered_by(&self, subjects: &[Uid]) -> Result<Vec<SubjectTrigger>> {
        let operation = "read the triggers of subjects";
        let uids = uid_values(subjects);
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        // Each subject's alerts, then every suspect of each alert ranked as `attribution`
        // ranks them; the subject's place in that list is its rank.
        let rows = self
            .read(
                query(&format!(
                    "UNWIND $uids AS u
                     CALL (u) {{
                         MATCH (s:DeploymentEvent {{uid: u}}) RETURN s
                         UNION
                         MATCH (s:Change {{uid: u}}) RETURN s
                     }}
                     MATCH (s)-[:TRIGGERS]->(a:Alert)
                     MATCH (x)-[r:TRIGGERS]->(a)
                     WHERE x:DeploymentEvent OR x:Change
                     WITH s, a, {SUBJECT_COLUMNS}, r
                     ORDER BY r.confidence_score DESC, subject_uid
                     WITH s, a, collect({{subject: subject, subject_uid: subject_uid,
                                         confidence_score: r.confidence_score, reasons: r.reasons,
                                         computed_at: toString(r.computed_at)}}) AS ranked
                     WITH a, ranked, [i IN range(0, size(ranked) - 1)
                                      WHERE ranked[i].subject_uid = s.uid][0] AS at
                     WITH a, ranked, at, ranked[at] AS mine
                     RETURN a.uid AS alert, mine.subject AS subject, mine.subject_uid AS subject_uid,
                            mine.confidence_score AS confidence_score, mine.reasons AS reasons,
                            mine.computed_at AS computed_at, at + 1 AS rank, size(ranked) AS suspects
                     ORDER BY subject_uid, confidence_score DESC, alert"
                ))
                .param("uids", uids),
                operation,
            )
            .await?;
        let dec = decode_failed(operation);
        let mut found = Vec::with_capacity(rows.len());
        for row in &rows {
            let alert = Uid::from_stored(row.get::<String>("alert").map_err(&dec)?);
            let rank: i64 = row.get("rank").map_err(&dec)?;
            let suspects: i64 = row.get("suspects").map_err(&dec)?;
            if let Some(trigger) = trigger_from_row(row, alert, &dec)? {
                found.push(SubjectTrigger {
                    trigger,
                    rank: u32::try_from(rank).unwrap_or(u32::MAX),
                    suspects: u32::try_from(suspects).unwrap_or(u32::MAX),
                });
            }
        }
        Ok(found)
    }

    pub(super) async fn rca_get_deployments(&self, uids: &[Uid]) -> Result<Vec<StoredDeployment>> {
        let uids = uid_values(uids);
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self
            .read(
                query(
                    "UNWIND $uids AS u
                     MATCH (d:DeploymentEvent {uid: u})
                     OPTIONAL MATCH (d)-[:FOLLOWS]->(p:DeploymentEvent)
                     RETURN d.uid AS uid, d.payload AS payload, p.uid AS follows
                     ORDER BY uid",
                )
                .param("uids", uids),
                "read deployments",
            )
            .await?;
        rows.iter().map(stored_from_row).collect()
    }

    pub(super) async fn rca_record_chaos_run(&self, run: &ChaosRun) -> Result<()> {
        let q = query(RECORD_CHAOS_RUN)
            .param("service", service_row(&run.target))
            .param("props", chaos_props(run)?)
            .param("against", opt_str(run.against.as_ref().map(Uid::as_str)));
        crate::retry::run(
            BACKEND,
            "record a chaos run",
            super::is_retryable,
            || async {
                let mut txn = self.begin().await?;
                let result = txn
                    .run(q.clone())
                    .await
                    .map(drop)
                    .map_err(failed("record a chaos run"));
                self.settle(txn, result).await
            },
        )
        .await
    }

    pub(super) async fn rca_get_chaos_run(&self, uid: &Uid) -> Result<Option<ChaosRun>> {
        let rows = self
            .read(
                query("MATCH (c:ChaosRun {uid: $uid}) RETURN c.uid AS uid, c.payload AS payload")
                    .param("uid", uid.as_str()),
                "read a chaos run",
            )
            .await?;
        Ok(payloads(&rows, "read a chaos run")?.pop())
    }

    pub(super) async fn rca_list_chaos_runs(&self, filter: &ChaosFilter) -> Result<Vec<ChaosRun>> {
        let rows = self.read(chaos_query(filter), "list chaos runs").await?;
        payloads(&rows, "list chaos runs")
    }

    pub(super) async fn rca_list_snapshots(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<InfraSnapshot>> {
        let rows = self
            .read(
                query(
                    "MATCH (s:InfraSnapshot)
                     WHERE s.taken_at_us >= $since AND s.taken_at_us <= $until
                     RETURN s.uid AS uid, s.payload AS payload
                     ORDER BY s.taken_at_us DESC LIMIT $limit",
                )
                .param("since", since.timestamp_micros())
                .param("until", until.timestamp_micros())
                .param("limit", int(limit)),
                "list snapshots",
            )
            .await?;
        payloads(&rows, "list snapshots")
    }
}

/// Replaces the alert's TRIGGERS (and RAISED) in `txn`: `rows` are the triggers from
/// deployments, then those from changes.
async fn replace_attribution_in(
    txn: &mut Txn,
    alert: &str,
    rows: [&Vec<BoltType>; 2],
    chaos: Option<&(String, String)>,
) -> Result<()> {
    let chaos: Vec<BoltType> = chaos
        .map(|(run, reason)| {
            map(vec![
                ("run", run.as_str().into()),
                ("reason", reason.as_str().into()),
            ])
        })
        .into_iter()
        .collect();
    let [deployments, changes] = rows;
    txn.run(
        query(REPLACE_ATTRIBUTION)
            .param("alert", alert)
            .param("deployments", deployments.clone())
            .param("changes", changes.clone())
            .param("chaos", chaos),
    )
    .await
    .map(|_| ())
    .map_err(failed("record an attribution"))
}

/// An alert's attribution in one statement: the alert's write lock first (two attributions of
/// one alert — the webhook's and a late deployment's — then run one after the other, and the
/// second sees and replaces the first's edges instead of adding its own beside them), then its
/// TRIGGERS replaced by `$deployments` and `$changes`, then the RAISED of the chaos run in
/// `$chaos` (a list of at most one). Each unit subquery runs once for the alert's row, whether
/// it finds anything or not.
const REPLACE_ATTRIBUTION: &str = "
MATCH (a:Alert {uid: $alert})
SET a.attributed_at = datetime()
WITH a
CALL (a) {
  MATCH (x)-[old:TRIGGERS]->(a) WHERE x:DeploymentEvent OR x:Change
  DELETE old
}
CALL (a) {
  UNWIND $deployments AS t
  MATCH (x:DeploymentEvent {uid: t.uid})
  CREATE (x)-[:TRIGGERS {confidence_score: t.confidence_score, reasons: t.reasons,
                         computed_at: t.computed_at}]->(a)
}
CALL (a) {
  UNWIND $changes AS t
  MATCH (x:Change {uid: t.uid})
  CREATE (x)-[:TRIGGERS {confidence_score: t.confidence_score, reasons: t.reasons,
                         computed_at: t.computed_at}]->(a)
}
CALL (a) {
  UNWIND $chaos AS c
  MATCH (r:ChaosRun {uid: c.run})
  MERGE (r)-[raised:RAISED]->(a) SET raised.reason = c.reason
}";
