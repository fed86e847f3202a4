//! Service topology on Neo4j: one `(:Service)-[:DEPENDS_ON {source, last_seen_at}]->(:Service)`
//! relationship per pair and source; `owner` and `sla_tier` on the Service node.

use super::rca::service_row;
use super::{BACKEND, Neo4jStore, decode_failed, failed, map, opt_str};
use crate::error::{Error, Result};
use crate::types::{TopologyMode, TopologyUpdate};
use deploygraph_model::topology::{DependencyEdge, EdgeSource, ServiceTopologyView};
use deploygraph_model::{Environment, ServiceName, ServiceRef, parse_time};
use neo4rs::{BoltType, query};

const SERVICES: &str = "
UNWIND $services AS row
MERGE (s:Service {uid: row.uid})
ON CREATE SET s.name = row.name, s.namespace = row.namespace, s.environment = row.environment,
              s.cluster = row.cluster
SET s.owner = coalesce(row.owner, s.owner), s.sla_tier = coalesce(row.tier, s.sla_tier)";

const REMOVE_UNLISTED: &str = "
UNWIND $services AS row
MATCH (:Service {uid: row.uid})-[r:DEPENDS_ON {source: $source}]->(t:Service)
WHERE NOT t.uid IN row.keep
DELETE r";

const EDGES: &str = "
UNWIND $edges AS e
MATCH (s:Service {uid: e.from})
MERGE (t:Service {uid: e.to.uid})
ON CREATE SET t.name = e.to.name, t.namespace = e.to.namespace, t.environment = e.to.environment,
              t.cluster = e.to.cluster
MERGE (s)-[r:DEPENDS_ON {source: $source}]->(t)
SET r.last_seen_at = CASE
    WHEN r.last_seen_at IS NULL OR r.last_seen_at < $seen_at THEN $seen_at
    ELSE r.last_seen_at END";

const SERVICE_TOPOLOGY: &str = "
OPTIONAL MATCH (s:Service {uid: $uid})
OPTIONAL MATCH (s)-[r:DEPENDS_ON]->(t:Service)
RETURN s.owner AS owner, s.sla_tier AS tier, t.name AS name, t.namespace AS namespace,
       t.environment AS environment, t.cluster AS cluster, r.source AS source,
       toString(r.last_seen_at) AS last_seen_at
ORDER BY name, environment, namespace, source";

impl Neo4jStore {
    pub(super) async fn topology_apply(&self, update: &TopologyUpdate) -> Result<()> {
        let services = update.normalized();
        let rows: Vec<BoltType> = services
            .iter()
            .map(|s| {
                let keep: Vec<BoltType> = s
                    .depends_on
                    .iter()
                    .map(|d| d.uid().as_str().into())
                    .collect();
                map(vec![
                    ("uid", s.service.uid().as_str().into()),
                    ("name", s.service.name.as_str().into()),
                    ("namespace", opt_str(s.service.namespace.as_deref())),
                    ("environment", s.service.environment.as_str().into()),
                    ("cluster", s.service.cluster.as_str().into()),
                    ("owner", opt_str(s.owner.as_deref())),
                    ("tier", opt_str(s.tier.as_deref())),
                    ("keep", keep.into()),
                ])
            })
            .collect();
        let edges: Vec<BoltType> = services
            .iter()
            .flat_map(|s| {
                let from = s.service.uid();
                s.depends_on
                    .iter()
                    .map(move |d| map(vec![("from", from.as_str().into()), ("to", service_row(d))]))
            })
            .collect();
        let source = update.source.as_str();
        let chunk = self.options.chunk_size.max(1);
        crate::retry::run(
            BACKEND,
            "write the topology",
            super::is_retryable,
            || async {
                let mut txn = self.begin().await?;
                let result = async {
                    for rows in rows.chunks(chunk) {
                        txn.run(query(SERVICES).param("services", rows.to_vec()))
                            .await
                            .map_err(failed("write the topology"))?;
                        if update.mode == TopologyMode::Replace {
                            txn.run(
                                query(REMOVE_UNLISTED)
                                    .param("services", rows.to_vec())
                                    .param("source", source),
                            )
                            .await
                            .map_err(failed("write the topology"))?;
                        }
                    }
                    for edges in edges.chunks(chunk) {
                        txn.run(
                            query(EDGES)
                                .param("edges", edges.to_vec())
                                .param("source", source)
                                .param("seen_at", update.seen_at),
                        )
                        .await
                        .map_err(failed("write the topology"))?;
                    }
                    Ok(())
                }
                .await;
                self.settle(txn, result).await
            },
        )
        .await
    }

    pub(super) async fn topology_of(&self, service: &ServiceRef) -> Result<ServiceTopologyView> {
        let operation = "read a service's topology";
        let uid = service.uid();
        let rows = self
            .rows(
                query(SERVICE_TOPOLOGY).param("uid", uid.as_str()),
                operation,
            )
            .await?;
        let dec = decode_failed(operation);
        let corrupt = |reason: String| Error::Corrupt {
            uid: uid.as_str().to_owned(),
            source: reason.into(),
        };
        let (mut owner, mut tier) = (None, None);
        let mut sightings = Vec::with_capacity(rows.len());
        for row in &rows {
            owner = row.get::<Option<String>>("owner").map_err(&dec)?;
            tier = row.get::<Option<String>>("tier").map_err(&dec)?;
            let name: Option<String> = row.get("name").map_err(&dec)?;
            let environment: Option<String> = row.get("environment").map_err(&dec)?;
            let source: Option<String> = row.get("source").map_err(&dec)?;
            let seen: Option<String> = row.get("last_seen_at").map_err(&dec)?;
            let (Some(name), Some(environment), Some(source)) = (name, environment, source) else {
                continue;
            };
            let cluster: Option<String> = row.get("cluster").map_err(&dec)?;
            let (Ok(name), Ok(environment), Ok(cluster)) = (
                ServiceName::parse(&name),
                Environment::parse(&environment),
                deploygraph_model::Cluster::parse_field(cluster.as_deref(), "cluster"),
            ) else {
                continue;
            };
            let source = EdgeSource::parse(&source).map_err(|e| corrupt(e.to_string()))?;
            let seen = seen
                .as_deref()
                .map(parse_time)
                .transpose()
                .map_err(|e| corrupt(e.to_string()))?
                .ok_or_else(|| corrupt("a DEPENDS_ON relationship has no last_seen_at".into()))?;
            let dependency = ServiceRef {
                name,
                namespace: row.get("namespace").map_err(&dec)?,
                environment,
                cluster,
            };
            sightings.push((dependency, source, seen));
        }
        Ok(ServiceTopologyView {
            service: service.clone(),
            owner,
            tier,
            depends_on: DependencyEdge::group(sightings),
        })
    }

    pub(super) async fn topology_dependencies(
        &self,
        service: &ServiceRef,
    ) -> Result<Vec<ServiceRef>> {
        let rows = self
            .rows(
                query(
                    "MATCH (:Service {uid: $uid})-[:DEPENDS_ON]->(s:Service)
                     RETURN DISTINCT s.name AS name, s.namespace AS namespace, s.environment AS environment,
                            s.cluster AS cluster
                     ORDER BY name, environment, namespace",
                )
                .param("uid", service.uid().as_str()),
                "read dependencies",
            )
            .await?;
        super::rca::service_refs(&rows, "read dependencies")
    }

    pub(super) async fn topology_dependents(
        &self,
        service: &ServiceRef,
    ) -> Result<Vec<ServiceRef>> {
        let rows = self
            .rows(
                query(
                    "MATCH (:Service {uid: $uid})<-[:DEPENDS_ON]-(s:Service)
                     RETURN DISTINCT s.name AS name, s.namespace AS namespace, s.environment AS environment,
                            s.cluster AS cluster
                     ORDER BY name, environment, namespace",
                )
                .param("uid", service.uid().as_str()),
                "read dependents",
            )
            .await?;
        super::rca::service_refs(&rows, "read dependents")
    }

    pub(super) async fn topology_dependents_of_each(
        &self,
        services: &[ServiceRef],
    ) -> Result<Vec<Vec<ServiceRef>>> {
        self.neighbours_of_each(
            services,
            "UNWIND $uids AS of
             MATCH (:Service {uid: of})<-[:DEPENDS_ON]-(s:Service)
             RETURN DISTINCT of, s.name AS name, s.namespace AS namespace,
                    s.environment AS environment, s.cluster AS cluster
             ORDER BY of, name, environment, namespace",
            "read dependents",
        )
        .await
    }

    pub(super) async fn topology_dependencies_of_each(
        &self,
        services: &[ServiceRef],
    ) -> Result<Vec<Vec<ServiceRef>>> {
        self.neighbours_of_each(
            services,
            "UNWIND $uids AS of
             MATCH (:Service {uid: of})-[:DEPENDS_ON]->(s:Service)
             RETURN DISTINCT of, s.name AS name, s.namespace AS namespace,
                    s.environment AS environment, s.cluster AS cluster
             ORDER BY of, name, environment, namespace",
            "read dependencies",
        )
        .await
    }

    /// The services `statement` finds for each of `services` (its rows carry `of`, the uid
    /// asked about), in `services`' order.
    async fn neighbours_of_each(
        &self,
        services: &[ServiceRef],
        statement: &'static str,
        operation: &'static str,
    ) -> Result<Vec<Vec<ServiceRef>>> {
        if services.is_empty() {
            return Ok(Vec::new());
        }
        let uids: Vec<BoltType> = services.iter().map(|s| s.uid().as_str().into()).collect();
        let rows = self
            .rows(query(statement).param("uids", uids), operation)
            .await?;
        let dec = decode_failed(operation);
        let mut by_uid: std::collections::HashMap<String, Vec<neo4rs::Row>> =
            std::collections::HashMap::new();
        for row in rows {
            let of: String = row.get("of").map_err(&dec)?;
            by_uid.entry(of).or_default().push(row);
        }
        services
            .iter()
            .map(|s| {
                by_uid.get(s.uid().as_str()).map_or_else(
                    || Ok(Vec::new()),
                    |rows| super::rca::service_refs(rows, operation),
                )
            })
            .collect()
    }
}
