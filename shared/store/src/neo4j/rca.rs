//! Alerts, topology, attribution and chaos runs on Neo4j.

use super::{
    BACKEND, Neo4jStore, decode_failed, failed, int, map, opt_str, rows_in, stored_from_row,
};
use crate::error::{Error, Result};
use crate::payload::{decode, encode};
use crate::types::{AlertFilter, ChaosFilter, ServiceHistory, StoredAttribution, StoredDeployment};
use chrono::{DateTime, Utc};
use deploygraph_model::{
    Alert, AlertOutcome, AlertStatus, ChaosRun, Environment, InfraSnapshot, ServiceName,
    ServiceRef, Trigger, Uid, merge_alert, parse_time,
};
use neo4rs::{BoltType, Query, Txn, query};

fn payloads<T: serde::de::DeserializeOwned>(
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

fn service_row(s: &ServiceRef) -> BoltType {
    map(vec![
        ("uid", s.uid().as_str().into()),
        ("name", s.name.as_str().into()),
        ("namespace", opt_str(s.namespace.as_deref())),
        ("environment", s.environment.as_str().into()),
    ])
}

fn service_refs(rows: &[neo4rs::Row], operation: &'static str) -> Result<Vec<ServiceRef>> {
    let dec = decode_failed(operation);
    let mut refs = Vec::with_capacity(rows.len());
    for row in rows {
        let name: String = row.get("name").map_err(&dec)?;
        let namespace: Option<String> = row.get("namespace").map_err(&dec)?;
        let environment: String = row.get("environment").map_err(&dec)?;
        if let (Ok(name), Ok(environment)) =
            (ServiceName::parse(&name), Environment::parse(&environment))
        {
            refs.push(ServiceRef {
                name,
                namespace,
                environment,
            });
        }
    }
    Ok(refs)
}

const FIND_SERVICES: &str = "
MATCH (s:Service {name: $name})
WHERE ($namespace IS NULL OR s.namespace = $namespace)
  AND ($environment IS NULL OR s.environment = $environment)
RETURN s.name AS name, s.namespace AS namespace, s.environment AS environment
ORDER BY environment, namespace";

fn find_services_query(
    name: &ServiceName,
    namespace: Option<&str>,
    environment: Option<&Environment>,
) -> Query {
    query(FIND_SERVICES)
        .param("name", name.as_str())
        .param("namespace", opt_str(namespace))
        .param("environment", opt_str(environment.map(Environment::as_str)))
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
        ("payload", encode(BACKEND, alert, "encode an alert")?.into()),
    ]))
}

/// Creates an alert occurrence (merged on uid, so concurrent first deliveries are one node)
/// and links it FIRED_ON its services.
const CREATE_ALERT: &str = "
MERGE (a:Alert {uid: $props.uid})
ON CREATE SET a = $props
WITH a
UNWIND $services AS s
MERGE (svc:Service {uid: s.uid})
ON CREATE SET svc.name = s.name, svc.namespace = s.namespace, svc.environment = s.environment
MERGE (a)-[:FIRED_ON]->(svc)";

const UPDATE_ALERT: &str = "
MATCH (a:Alert {uid: $props.uid})
SET a.status = $props.status, a.ends_at = $props.ends_at, a.severity = $props.severity,
    a.summary = $props.summary, a.labels = $props.labels, a.payload = $props.payload";

async fn fired_on(txn: &mut Txn, alert: &Alert) -> Result<Vec<ServiceRef>> {
    let Some(name) = &alert.service else {
        return Ok(Vec::new());
    };
    let rows = rows_in(
        txn,
        find_services_query(name, alert.namespace.as_deref(), alert.environment.as_ref()),
        "find services",
    )
    .await?;
    let found = service_refs(&rows, "find services")?;
    if !found.is_empty() {
        return Ok(found);
    }
    Ok(alert
        .environment
        .as_ref()
        .map(|environment| ServiceRef {
            name: name.clone(),
            namespace: alert.namespace.clone(),
            environment: environment.clone(),
        })
        .into_iter()
        .collect())
}

async fn record_alerts_in(txn: &mut Txn, alerts: Vec<Alert>) -> Result<Vec<(Alert, AlertOutcome)>> {
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
    let mut outcomes: Vec<(Alert, AlertOutcome)> = Vec::with_capacity(alerts.len());
    for alert in alerts {
        let previous = outcomes
            .iter()
            .rev()
            .map(|(a, _): &(Alert, AlertOutcome)| a)
            .chain(stored.iter())
            .find(|a| a.uid == alert.uid)
            .cloned();
        let (merged, outcome) = merge_alert(previous.as_ref(), alert);
        match outcome {
            AlertOutcome::Created => {
                let services: Vec<BoltType> = fired_on(txn, &merged)
                    .await?
                    .iter()
                    .map(service_row)
                    .collect();
                txn.run(
                    query(CREATE_ALERT)
                        .param("props", alert_props(&merged)?)
                        .param("services", services),
                )
                .await
                .map_err(failed("record an alert"))?;
            }
            AlertOutcome::Updated => {
                txn.run(query(UPDATE_ALERT).param("props", alert_props(&merged)?))
                    .await
                    .map_err(failed("record an alert"))?;
            }
            AlertOutcome::Unchanged => {}
        }
        outcomes.push((merged, outcome));
    }
    super::follow_up::enqueue(
        txn,
        crate::FollowUpKind::Alert,
        outcomes
            .iter()
            .filter(|(_, o)| *o == AlertOutcome::Created)
            .map(|(a, _)| &a.uid),
        Utc::now(),
    )
    .await?;
    Ok(outcomes)
}

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
    if let Some(since) = filter.since {
        clauses.push("(c.ended_at_us IS NULL OR c.ended_at_us >= $since)");
        params.push(("since", since.timestamp_micros().into()));
    }
    if let Some(until) = filter.until {
        clauses.push("c.started_at_us <= $until");
        params.push(("until", until.timestamp_micros().into()));
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
              svc.environment = $service.environment
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

impl Neo4jStore {
    pub(super) async fn in_txn<T>(
        &self,
        work: impl AsyncFnOnce(&mut Txn) -> Result<T>,
    ) -> Result<T> {
        let mut txn = self
            .graph
            .start_txn()
            .await
            .map_err(failed("begin a transaction"))?;
        match work(&mut txn).await {
            Ok(value) => {
                txn.commit().await.map_err(failed("commit"))?;
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
    ) -> Result<Vec<ServiceRef>> {
        let rows = self
            .read(
                find_services_query(name, namespace, environment),
                "find services",
            )
            .await?;
        service_refs(&rows, "find services")
    }

    pub(super) async fn rca_record_alerts(
        &self,
        alerts: Vec<Alert>,
    ) -> Result<Vec<(Alert, AlertOutcome)>> {
        self.in_txn(async move |txn| record_alerts_in(txn, alerts).await)
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

    pub(super) async fn rca_list_alerts(&self, filter: &AlertFilter) -> Result<Vec<Alert>> {
        let rows = self.read(alerts_query(filter), "list alerts").await?;
        payloads(&rows, "list alerts")
    }

    pub(super) async fn rca_alert_services(&self, alert: &Uid) -> Result<Vec<ServiceRef>> {
        let rows = self
            .read(
                query(
                    "MATCH (:Alert {uid: $uid})-[:FIRED_ON]->(s:Service)
                     RETURN s.name AS name, s.namespace AS namespace, s.environment AS environment
                     ORDER BY environment, namespace",
                )
                .param("uid", alert.as_str()),
                "read an alert's services",
            )
            .await?;
        service_refs(&rows, "read an alert's services")
    }

    pub(super) async fn rca_set_dependencies(
        &self,
        service: &ServiceRef,
        depends_on: &[ServiceRef],
    ) -> Result<()> {
        let deps: Vec<BoltType> = depends_on.iter().map(service_row).collect();
        let q = query(
            "MERGE (s:Service {uid: $service.uid})
             ON CREATE SET s.name = $service.name, s.namespace = $service.namespace,
                           s.environment = $service.environment
             WITH s
             OPTIONAL MATCH (s)-[old:DEPENDS_ON]->(:Service)
             DELETE old
             WITH DISTINCT s
             UNWIND $deps AS d
             MERGE (t:Service {uid: d.uid})
             ON CREATE SET t.name = d.name, t.namespace = d.namespace, t.environment = d.environment
             MERGE (s)-[:DEPENDS_ON]->(t)",
        )
        .param("service", service_row(service))
        .param("deps", deps);
        self.in_txn(async move |txn| {
            txn.run(q)
                .await
                .map(drop)
                .map_err(failed("set dependencies"))
        })
        .await
    }

    pub(super) async fn rca_dependencies(&self, service: &ServiceRef) -> Result<Vec<ServiceRef>> {
        let rows = self
            .read(
                query(
                    "MATCH (:Service {uid: $uid})-[:DEPENDS_ON]->(s:Service)
                     RETURN s.name AS name, s.namespace AS namespace, s.environment AS environment
                     ORDER BY name, environment, namespace",
                )
                .param("uid", service.uid().as_str()),
                "read dependencies",
            )
            .await?;
        service_refs(&rows, "read dependencies")
    }

    pub(super) async fn rca_dependents(&self, service: &ServiceRef) -> Result<Vec<ServiceRef>> {
        let rows = self
            .read(
                query(
                    "MATCH (:Service {uid: $uid})<-[:DEPENDS_ON]-(s:Service)
                     RETURN s.name AS name, s.namespace AS namespace, s.environment AS environment
                     ORDER BY name, environment, namespace",
                )
                .param("uid", service.uid().as_str()),
                "read dependents",
            )
            .await?;
        service_refs(&rows, "read dependents")
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

    pub(super) async fn rca_service_history(
        &self,
        service: &Uid,
        before: DateTime<Utc>,
    ) -> Result<ServiceHistory> {
        let rows = self
            .read(
                query(
                    "MATCH (d:DeploymentEvent)
                     WHERE d.service_uid = $service AND d.started_at_us < $before
                     RETURN count(d) AS deployments,
                            count(CASE WHEN EXISTS { (d)-[:TRIGGERS]->(:Alert) } THEN 1 END) AS followed",
                )
                .param("service", service.as_str())
                .param("before", before.timestamp_micros()),
                "read a service's history",
            )
            .await?;
        let dec = decode_failed("read a service's history");
        let Some(row) = rows.first() else {
            return Ok(ServiceHistory::default());
        };
        let deployments: i64 = row.get("deployments").map_err(&dec)?;
        let followed: i64 = row.get("followed").map_err(&dec)?;
        Ok(ServiceHistory {
            deployments: u32::try_from(deployments).unwrap_or(u32::MAX),
            followed_by_alerts: u32::try_from(followed).unwrap_or(u32::MAX),
        })
    }

    pub(super) async fn rca_replace_attribution(
        &self,
        alert: &Uid,
        triggers: &[Trigger],
        chaos: Option<(&Uid, &str)>,
    ) -> Result<()> {
        let rows: Vec<BoltType> = triggers
            .iter()
            .map(|t| {
                let reasons: Vec<BoltType> = t.reasons.iter().map(|r| r.as_str().into()).collect();
                map(vec![
                    ("deployment", t.deployment_uid.as_str().into()),
                    ("confidence_score", t.confidence_score.into()),
                    ("reasons", BoltType::from(reasons)),
                    ("computed_at", t.computed_at.into()),
                ])
            })
            .collect();
        let alert = alert.as_str().to_owned();
        let chaos = chaos.map(|(run, reason)| (run.as_str().to_owned(), reason.to_owned()));
        self.in_txn(async move |txn| {
            // The alert's write lock first: two attributions of one alert (the webhook's and a
            // late deployment's) then run one after the other, and the second sees and replaces
            // the first's edges instead of adding its own beside them.
            txn.run(
                query("MATCH (a:Alert {uid: $alert}) SET a.attributed_at = datetime()")
                    .param("alert", alert.as_str()),
            )
            .await
            .map_err(failed("record an attribution"))?;
            txn.run(
                query(
                    "MATCH (a:Alert {uid: $alert})
                     OPTIONAL MATCH (:DeploymentEvent)-[old:TRIGGERS]->(a)
                     DELETE old
                     WITH DISTINCT a
                     UNWIND $rows AS t
                     MATCH (d:DeploymentEvent {uid: t.deployment})
                     CREATE (d)-[:TRIGGERS {confidence_score: t.confidence_score, reasons: t.reasons,
                                            computed_at: t.computed_at}]->(a)",
                )
                .param("alert", alert.as_str())
                .param("rows", rows),
            )
            .await
            .map_err(failed("record an attribution"))?;
            if let Some((run, reason)) = chaos {
                txn.run(
                    query(
                        "MATCH (c:ChaosRun {uid: $run}), (a:Alert {uid: $alert})
                         MERGE (c)-[r:RAISED]->(a) SET r.reason = $reason",
                    )
                    .param("run", run)
                    .param("alert", alert.as_str())
                    .param("reason", reason),
                )
                .await
                .map_err(failed("record an attribution"))?;
            }
            Ok(())
        })
        .await
    }

    pub(super) async fn rca_attribution(&self, alert: &Uid) -> Result<StoredAttribution> {
        let operation = "read an attribution";
        let rows = self
            .read(
                query(
                    "MATCH (d:DeploymentEvent)-[r:TRIGGERS]->(:Alert {uid: $uid})
                     RETURN d.uid AS deployment, r.confidence_score AS confidence_score,
                            r.reasons AS reasons, toString(r.computed_at) AS computed_at
                     ORDER BY confidence_score DESC, deployment",
                )
                .param("uid", alert.as_str()),
                operation,
            )
            .await?;
        let dec = decode_failed(operation);
        let mut triggers = Vec::with_capacity(rows.len());
        for row in &rows {
            let deployment: String = row.get("deployment").map_err(&dec)?;
            let computed_at: String = row.get("computed_at").map_err(&dec)?;
            triggers.push(Trigger {
                alert_uid: alert.clone(),
                confidence_score: row.get("confidence_score").map_err(&dec)?,
                reasons: row.get("reasons").map_err(&dec)?,
                computed_at: parse_time(&computed_at).map_err(|e| Error::Corrupt {
                    uid: deployment.clone(),
                    source: Box::new(e),
                })?,
                deployment_uid: Uid::from_stored(deployment),
            });
        }
        let chaos = self
            .read(
                query(
                    "MATCH (c:ChaosRun)-[r:RAISED]->(:Alert {uid: $uid})
                     RETURN c.uid AS run, r.reason AS reason ORDER BY c.started_at_us DESC LIMIT 1",
                )
                .param("uid", alert.as_str()),
                operation,
            )
            .await?;
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

    pub(super) async fn rca_record_chaos_run(&self, run: &ChaosRun) -> Result<()> {
        let q = query(RECORD_CHAOS_RUN)
            .param("service", service_row(&run.target))
            .param("props", chaos_props(run)?)
            .param("against", opt_str(run.against.as_ref().map(Uid::as_str)));
        self.in_txn(async move |txn| {
            txn.run(q)
                .await
                .map(drop)
                .map_err(failed("record a chaos run"))
        })
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
