//! Gate overrides on Neo4j: `(:GateOverride)-[:ADMITTED]->(:DeploymentEvent)`.
//!
//! The node holds the workload (kind, namespace, name), its time (a datetime for Cypher users,
//! microseconds for the indexes), who and why, and the facts as `payload`; `deployment_uid`
//! repeats the ADMITTED link for reads.

use super::{BACKEND, Neo4jStore, decode_failed, map, opt_str, rows_in};
use crate::error::Result;
use crate::payload::{decode, encode};
use crate::types::GateOverrideFilter;
use chrono::{DateTime, Duration, Utc};
use deploygraph_model::{GateOverride, Uid};
use neo4rs::{BoltType, Query, query};

fn props(o: &GateOverride) -> Result<BoltType> {
    let mut facts = o.clone();
    facts.deployment_uid = None;
    Ok(map(vec![
        ("uid", o.uid.as_str().into()),
        ("at", o.at.into()),
        ("at_us", o.at.timestamp_micros().into()),
        ("cluster", opt_str(o.cluster.as_deref())),
        ("kind", o.kind.as_str().into()),
        ("namespace", o.namespace.as_str().into()),
        ("name", o.name.as_str().into()),
        ("template_hash", opt_str(o.template_hash.as_deref())),
        ("user", o.user.as_str().into()),
        ("reason", o.reason.as_str().into()),
        (
            "payload",
            encode(BACKEND, &facts, "encode a gate override")?.into(),
        ),
    ]))
}

fn list_query(filter: &GateOverrideFilter) -> Query {
    // Each clause is a fixed string of this function; every value is a parameter.
    let mut clauses: Vec<&str> = vec!["o.at_us > -9223372036854775807"];
    let mut params: Vec<(&str, BoltType)> = Vec::new();
    if let Some(namespace) = &filter.namespace {
        clauses.push("o.namespace = $namespace");
        params.push(("namespace", namespace.as_str().into()));
    }
    if let Some(name) = &filter.name {
        clauses.push("o.name = $name");
        params.push(("name", name.as_str().into()));
    }
    if let Some(deployment) = &filter.deployment {
        clauses.push("o.deployment_uid = $deployment");
        params.push(("deployment", deployment.as_str().into()));
    }
    if let Some(since) = filter.since {
        clauses.push("o.at_us >= $since");
        params.push(("since", since.timestamp_micros().into()));
    }
    let text = format!(
        "MATCH (o:GateOverride) WHERE {}
         RETURN o.uid AS uid, o.payload AS payload, o.deployment_uid AS deployment
         ORDER BY o.at_us DESC, o.uid DESC LIMIT $limit",
        clauses.join(" AND ")
    );
    let mut q = query(&text).param("limit", super::int(filter.limit));
    for (name, value) in params {
        q = q.param(name, value);
    }
    q
}

impl Neo4jStore {
    pub(super) async fn gate_override_record(&self, o: &GateOverride) -> Result<bool> {
        let props = props(o)?;
        crate::retry::run(
            BACKEND,
            "record a gate override",
            super::is_retryable,
            || async {
                let mut txn = self.begin().await?;
                let result = rows_in(
                    &mut txn,
                    query(
                        "MERGE (o:GateOverride {uid: $uid})
                         ON CREATE SET o += $props, o.created_now = true
                         WITH o, coalesce(o.created_now, false) AS created
                         REMOVE o.created_now
                         RETURN created",
                    )
                    .param("uid", o.uid.as_str())
                    .param("props", props.clone()),
                    "record a gate override",
                )
                .await
                .and_then(|rows| {
                    let created = rows
                        .first()
                        .map(|r| r.get::<bool>("created"))
                        .transpose()
                        .map_err(decode_failed("record a gate override"))?;
                    Ok(created.unwrap_or(false))
                });
                self.settle(txn, result).await
            },
        )
        .await
    }

    pub(super) async fn gate_override_link(
        &self,
        deployment: &Uid,
        (kind, namespace, name): (&str, &str, &str),
        template_hash: &str,
        started_at: DateTime<Utc>,
    ) -> Result<usize> {
        let q = query(
            "MATCH (d:DeploymentEvent {uid: $deployment})
             MATCH (o:GateOverride {namespace: $namespace, name: $name})
             WHERE o.kind = $kind AND o.at_us >= $from AND o.at_us <= $to
               AND o.deployment_uid IS NULL
               AND (o.template_hash IS NULL OR o.template_hash = $template_hash)
             CREATE (o)-[:ADMITTED]->(d)
             SET o.deployment_uid = d.uid
             RETURN count(o) AS linked",
        )
        .param("deployment", deployment.as_str())
        .param("kind", kind)
        .param("namespace", namespace)
        .param("name", name)
        .param("template_hash", template_hash)
        .param("from", (started_at - Duration::hours(1)).timestamp_micros())
        .param("to", (started_at + Duration::minutes(1)).timestamp_micros());
        crate::retry::run(
            BACKEND,
            "link gate overrides",
            super::is_retryable,
            || async {
                let mut txn = self.begin().await?;
                let result = rows_in(&mut txn, q.clone(), "link gate overrides")
                    .await
                    .and_then(|rows| {
                        let linked = rows
                            .first()
                            .map(|r| r.get::<i64>("linked"))
                            .transpose()
                            .map_err(decode_failed("link gate overrides"))?;
                        Ok(usize::try_from(linked.unwrap_or(0)).unwrap_or(0))
                    });
                self.settle(txn, result).await
            },
        )
        .await
    }

    pub(super) async fn gate_override_list(
        &self,
        filter: &GateOverrideFilter,
    ) -> Result<Vec<GateOverride>> {
        let operation = "list gate overrides";
        let rows = self.rows(list_query(filter), operation).await?;
        let dec = decode_failed(operation);
        rows.iter()
            .map(|row| {
                let uid: String = row.get("uid").map_err(&dec)?;
                let payload: String = row.get("payload").map_err(&dec)?;
                let deployment: Option<String> = row.get("deployment").map_err(&dec)?;
                let mut o: GateOverride = decode(&uid, &payload)?;
                o.deployment_uid = deployment.map(Uid::from_stored);
                Ok(o)
            })
            .collect()
    }
}

impl Neo4jStore {
    pub(super) async fn secured_certificates(
        &self,
        services: &[Uid],
    ) -> Result<Vec<crate::types::SecuredCertificate>> {
        use deploygraph_model::CertificateRecord;
        if services.is_empty() {
            return Ok(Vec::new());
        }
        let operation = "read certificates securing services";
        let uids: Vec<BoltType> = services.iter().map(|u| u.as_str().into()).collect();
        let rows = self
            .rows(
                query(
                    "MATCH (x:Certificate)-[r:SECURES]->(s:Service) WHERE s.uid IN $services
                     RETURN x.sha256 AS sha256, x.subject AS subject, x.issuer AS issuer,
                            x.sans AS sans, x.not_before AS not_before, x.not_after AS not_after,
                            x.is_ca AS is_ca, s.uid AS uid, s.name AS name,
                            s.namespace AS namespace, s.environment AS environment,
                            s.cluster AS cluster, r.via AS via, r.snapshot_uid AS snapshot, r.seen_at_us AS seen",
                )
                .param("services", uids),
                operation,
            )
            .await?;
        let dec = decode_failed(operation);
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let uid: String = row.get("uid").map_err(&dec)?;
            let corrupt = |e: String| crate::error::Error::Corrupt {
                uid: uid.clone(),
                source: e.into(),
            };
            let seen: i64 = row.get("seen").map_err(&dec)?;
            let snapshot: String = row.get("snapshot").map_err(&dec)?;
            out.push(crate::types::SecuredCertificate {
                certificate: CertificateRecord {
                    sha256: row.get("sha256").map_err(&dec)?,
                    subject: row.get("subject").map_err(&dec)?,
                    issuer: row.get("issuer").map_err(&dec)?,
                    sans: row.get("sans").map_err(&dec)?,
                    not_before: row.get("not_before").map_err(&dec)?,
                    not_after: row.get("not_after").map_err(&dec)?,
                    is_ca: row.get("is_ca").map_err(&dec)?,
                },
                service: super::rca::service_of(&row, operation)?
                    .map_err(|e| corrupt(e.to_string()))?,
                via: row.get("via").map_err(&dec)?,
                snapshot_uid: Uid::from_stored(snapshot),
                seen_at: chrono::DateTime::from_timestamp_micros(seen).unwrap_or_default(),
            });
        }
        Ok(crate::types::SecuredCertificate::current(out))
    }
}
