//! The Neo4j backend: neo4rs 0.9 over Bolt 4.4.
//!
//! Writes run in one explicit transaction per batch: the batch's Service nodes are written first,
//! which takes their locks and serializes concurrent writers of the same FOLLOWS chain; stored
//! events are read back and reconciled ([`crate::plan`]); new and advanced events are written
//! with `UNWIND $rows … MERGE` in chunks; the FOLLOWS links of the touched chains are repaired
//! ([`crate::chain`]). Every value is a parameter; labels and relationship types are fixed
//! strings of this module.

use crate::GraphStore;
use crate::chain::{self, ChainNode};
use crate::error::{Error, Result};
use crate::migrations::{self, AppliedMigration, Migration, MigrationSource};
use crate::plan;
use crate::types::{
    AlertFilter, ChangeFilter, ChangeOutcome, ChaosFilter, DeploymentFilter, KeyHistory, Page,
    RecordOutcome, ServiceHistory, ServiceSummary, StoredAttribution, StoredDeployment,
    VerdictOutcome,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deploygraph_model::{
    Alert, AlertOutcome, Change, ChaosRun, Cluster, Deployment, Environment, ImageDigest,
    InfraSnapshot, ServiceName, ServiceRef, SuspectVerdict, Trigger, Uid, ValidationResult,
};
use neo4rs::{BoltType, ConfigBuilder, Graph, Query, Txn, query};
use secrecy::{ExposeSecret, SecretString};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

const BACKEND: &str = "neo4j";

/// The database deploygraph uses unless told otherwise.
pub const DEFAULT_DATABASE: &str = "neo4j";

/// Tunables of the Neo4j connection.
#[derive(Debug, Clone)]
pub struct Neo4jOptions {
    /// Rows fetched per PULL.
    pub fetch_size: usize,
    /// Connection pool size.
    pub max_connections: usize,
    /// Bound on establishing a connection.
    pub connection_timeout: Duration,
    /// Rows per `UNWIND` statement.
    pub chunk_size: usize,
    /// The database every transaction names (`neo4j`, the default database's name on a new
    /// server and on Aura). Named, a routing driver keeps its routing table for its TTL; left
    /// to the server's home database (`None`), neo4rs asks for the table before every
    /// transaction over `neo4j://`.
    pub database: Option<String>,
}

impl Default for Neo4jOptions {
    fn default() -> Self {
        Self {
            fetch_size: 500,
            max_connections: 16,
            connection_timeout: Duration::from_secs(5),
            chunk_size: 2_000,
            database: Some(DEFAULT_DATABASE.to_owned()),
        }
    }
}

mod canary;
mod change;
mod follow_up;
mod gate;
mod key_history;
mod rca;
mod rollback;
mod summary;
mod topology;
mod verdict;

/// How long a user-query connection waits for the server: past the longest query's limit.
fn user_query_read_timeout(options: &Neo4jOptions) -> Duration {
    options
        .connection_timeout
        .max(crate::cypher::USER_QUERY_READ_TIMEOUT)
}

/// The Neo4j store.
pub struct Neo4jStore {
    graph: Graph,
    /// Connections for user Cypher ([`crate::cypher`]), with a read timeout past any query's.
    user_queries: Graph,
    migrations: Vec<Migration>,
    options: Neo4jOptions,
    /// The bookmarks of this process's latest commits ([`Bookmarks`]).
    bookmarks: Bookmarks,
}

/// The bookmarks of the latest transactions this process committed, passed to every
/// transaction it begins and every read: on a Neo4j cluster a read is routed to a follower or
/// read replica, which waits until it has applied those transactions before answering, so a
/// read after a write sees the write (causal consistency, as the official drivers' sessions
/// give). The most recent few are kept: commits that finish together may answer out of order,
/// and the server waits for the newest of those given. Kept only over a routing URI
/// (`neo4j://`): one server named with `bolt://` has applied every transaction it acknowledged,
/// and its reads keep the plain path.
#[derive(Debug)]
struct Bookmarks {
    routed: bool,
    kept: std::sync::Mutex<std::collections::VecDeque<String>>,
}

impl Bookmarks {
    /// How many recent bookmarks are kept and sent.
    const KEPT: usize = 4;

    fn for_uri(uri: &str) -> Self {
        Self {
            routed: uri.starts_with("neo4j"),
            kept: std::sync::Mutex::default(),
        }
    }

    fn current(&self) -> Vec<String> {
        self.kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    fn committed(&self, bookmark: String) {
        if !self.routed {
            return;
        }
        let mut kept = self
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if kept.contains(&bookmark) {
            return;
        }
        if kept.len() == Self::KEPT {
            kept.pop_front();
        }
        kept.push_back(bookmark);
    }
}

/// Connection failures, timeouts and Neo4j's transient errors (deadlocks, leader switches) are
/// outages (503, retry); the rest are failures of the request.
fn classify(operation: &'static str, e: neo4rs::Error) -> Error {
    use neo4rs::Error as E;
    let unavailable = match &e {
        E::IOError { .. }
        | E::ConnectionError
        | E::ConnectionTimedOut
        | E::IncompleteBoltExchange
        | E::ServerUnavailableError(_)
        | E::RoutingTableError(_)
        | E::RoutingTableRefreshFailed(_) => true,
        E::Neo4j(err) => matches!(
            err.kind(),
            neo4rs::Neo4jErrorKind::Transient
                | neo4rs::Neo4jErrorKind::Client(neo4rs::Neo4jClientErrorKind::SessionExpired)
        ),
        _ => false,
    };
    if unavailable {
        Error::Unavailable {
            backend: BACKEND,
            source: Box::new(e),
        }
    } else {
        Error::Backend {
            backend: BACKEND,
            operation,
            source: Box::new(e),
        }
    }
}

/// Whether retrying the whole transaction may succeed ([`crate::retry`]): Neo4j's transient
/// errors (deadlocks, lock timeouts, an unavailable database), a leader switch in a cluster
/// (`NotALeader`, a write on a follower, an expired session), and a connection that broke — a
/// pooled connection the server closed fails on its first use. A connection *timeout* is not
/// retried: one attempt already took the whole timeout, and the outage is reported (503).
fn is_retryable(e: &Error) -> bool {
    let Error::Unavailable { source, .. } = e else {
        return false;
    };
    match source.downcast_ref::<neo4rs::Error>() {
        Some(neo4rs::Error::Neo4j(err)) => {
            err.code().starts_with("Neo.TransientError.")
                || matches!(
                    err.kind(),
                    neo4rs::Neo4jErrorKind::Transient
                        | neo4rs::Neo4jErrorKind::Client(
                            neo4rs::Neo4jClientErrorKind::SessionExpired
                        )
                )
        }
        Some(other) => is_connection_failure(other),
        None => false,
    }
}

/// A connection that broke or a server (or route) that cannot be reached now.
fn is_connection_failure(e: &neo4rs::Error) -> bool {
    use neo4rs::Error as E;
    matches!(
        e,
        E::IOError { .. }
            | E::ConnectionError
            | E::IncompleteBoltExchange
            | E::ServerUnavailableError(_)
            | E::RoutingTableError(_)
            | E::RoutingTableRefreshFailed(_)
    )
}

/// Whether a read is retried: only for a broken connection, since neo4rs retries Neo4j's own
/// transient errors of autocommit queries itself.
fn is_retryable_read(e: &Error) -> bool {
    matches!(e, Error::Unavailable { source, .. }
        if source.downcast_ref::<neo4rs::Error>().is_some_and(is_connection_failure))
}

/// Whether a schema statement failed only because an equivalent rule exists: `IF NOT EXISTS`
/// is not atomic across concurrent transactions.
fn created_concurrently(e: &neo4rs::Error) -> bool {
    matches!(e, neo4rs::Error::Neo4j(err) if err.code().ends_with("AlreadyExists"))
}

fn failed(operation: &'static str) -> impl Fn(neo4rs::Error) -> Error {
    move |e| classify(operation, e)
}

fn decode_failed(operation: &'static str) -> impl Fn(neo4rs::DeError) -> Error {
    move |e| Error::Backend {
        backend: BACKEND,
        operation,
        source: Box::new(e),
    }
}

fn map(pairs: Vec<(&str, BoltType)>) -> BoltType {
    BoltType::from(
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect::<HashMap<String, BoltType>>(),
    )
}

fn opt_str(value: Option<&str>) -> BoltType {
    value.map(str::to_owned).into()
}

/// Uids as a Bolt list parameter, sorted and without repeats (one row per uid for `UNWIND`).
fn uid_values<'a>(uids: impl IntoIterator<Item = &'a Uid>) -> Vec<BoltType> {
    let mut uids: Vec<&str> = uids.into_iter().map(Uid::as_str).collect();
    uids.sort_unstable();
    uids.dedup();
    uids.into_iter().map(Into::into).collect()
}

fn int(value: impl TryInto<i64>) -> BoltType {
    BoltType::from(value.try_into().unwrap_or(i64::MAX))
}

/// An Image node's properties, with its uid.
fn image_row(i: &deploygraph_model::Image) -> (String, BoltType) {
    let uid = i.uid().as_str().to_owned();
    let row = map(vec![
        ("uid", uid.as_str().into()),
        (
            "digest",
            opt_str(i.digest.as_ref().map(ImageDigest::as_str)),
        ),
        ("repository", opt_str(i.repository.as_deref())),
        ("tag", opt_str(i.tag.as_deref())),
    ]);
    (uid, row)
}

/// A HelmRevision node's properties, with its uid.
fn helm_row(h: &deploygraph_model::HelmRevision, cluster: &Cluster) -> (String, BoltType) {
    let uid = h.uid(cluster).as_str().to_owned();
    let row = map(vec![
        ("uid", uid.as_str().into()),
        ("release", h.release.as_str().into()),
        ("namespace", h.namespace.as_str().into()),
        ("revision", i64::from(h.revision).into()),
        ("chart", opt_str(h.chart.as_deref())),
        ("chart_version", opt_str(h.chart_version.as_deref())),
        ("app_version", opt_str(h.app_version.as_deref())),
        ("status", h.status.as_str().into()),
    ]);
    (uid, row)
}

/// A Commit node's properties, with its uid.
fn commit_row(c: &deploygraph_model::Commit) -> (String, BoltType) {
    let uid = c.uid().as_str().to_owned();
    let row = map(vec![
        ("uid", uid.as_str().into()),
        ("sha", c.sha.as_str().into()),
        ("repo", opt_str(c.repo.as_deref())),
        ("author", opt_str(c.author.as_deref())),
        ("message", opt_str(c.message.as_deref())),
        ("committed_at", c.committed_at.into()),
    ]);
    (uid, row)
}

fn deployment_row(d: &Deployment) -> Result<BoltType> {
    let payload = serde_json::to_string(d).map_err(|e| Error::Backend {
        backend: BACKEND,
        operation: "encode a deployment",
        source: Box::new(e),
    })?;
    let images: Vec<BoltType> = d.images.iter().map(|i| image_row(i).1).collect();
    let changes: Vec<BoltType> = d
        .changes
        .iter()
        .map(|c| {
            map(vec![
                ("uid", c.uid(&d.uid).as_str().into()),
                ("path", c.path.as_str().into()),
                ("kind", c.kind.as_str().into()),
                ("before", opt_str(c.before.as_deref())),
                ("after", opt_str(c.after.as_deref())),
                // The deployment's start, so a key's most recent changes are one index range.
                ("started_at_us", d.started_at.timestamp_micros().into()),
            ])
        })
        .collect();
    let validation: Vec<BoltType> = d
        .validation
        .iter()
        .map(|v| validation_row(&d.uid, v))
        .collect();
    let digests: Vec<BoltType> = d
        .images
        .iter()
        .filter_map(|i| i.digest.as_ref().map(|d| d.as_str().into()))
        .collect();
    let helm: Vec<BoltType> = d.helm.iter().map(|h| helm_row(h, &d.cluster).1).collect();
    let commits: Vec<BoltType> = d.commit.iter().map(|c| commit_row(c).1).collect();
    Ok(map(vec![
        ("uid", d.uid.as_str().into()),
        (
            "props",
            map(vec![
                ("client_id", opt_str(d.id.as_deref())),
                ("service", d.service.as_str().into()),
                ("service_uid", d.service_uid().as_str().into()),
                ("namespace", opt_str(d.namespace.as_deref())),
                ("environment", d.environment.as_str().into()),
                ("cluster", d.cluster.as_str().into()),
                ("version", opt_str(d.version.as_deref())),
                ("commit", opt_str(d.commit.as_ref().map(|c| c.sha.as_str()))),
                ("image_digests", BoltType::from(digests)),
                ("status", d.status.as_str().into()),
                ("source", d.source.as_str().into()),
                ("actor", opt_str(d.actor.as_deref())),
                // A CDEvent's own names, for Cypher users: the service as the producer spelled
                // it and the producer (`context.source`).
                (
                    "source_name",
                    opt_str(d.origin.as_ref().map(|o| o.source_name.as_str())),
                ),
                (
                    "event_source",
                    opt_str(d.origin.as_ref().map(|o| o.source.as_str())),
                ),
                ("timestamp", d.started_at.into()),
                ("started_at_us", d.started_at.timestamp_micros().into()),
                ("finished_at", d.finished_at.into()),
                ("content_fingerprint", d.content_fingerprint().into()),
                (
                    "workload_kind",
                    opt_str(d.workload.as_ref().map(|w| w.kind.as_str())),
                ),
                (
                    "workload_name",
                    opt_str(d.workload.as_ref().map(|w| w.name.as_str())),
                ),
                (
                    "template_hash",
                    opt_str(d.workload.as_ref().map(|w| w.template_hash.as_str())),
                ),
                ("payload", payload.into()),
            ]),
        ),
        ("commits", BoltType::from(commits)),
        ("helm", BoltType::from(helm)),
        ("images", BoltType::from(images)),
        ("changes", BoltType::from(changes)),
        ("validation", BoltType::from(validation)),
    ]))
}

fn validation_row(deployment: &Uid, v: &ValidationResult) -> BoltType {
    map(vec![
        ("uid", ValidationResult::uid(deployment).as_str().into()),
        ("coverage_pct", v.coverage_pct.into()),
        ("sast_findings", v.sast_findings.map(i64::from).into()),
        ("tests_passed", v.tests_passed.map(i64::from).into()),
        ("tests_failed", v.tests_failed.map(i64::from).into()),
        ("chaos_pass_rate", v.chaos_pass_rate.into()),
    ])
}

/// Creates deployments with their commit, images, changes and validation, linked to their
/// Service. The deployments are new: the batch holds its services' locks and found none of
/// them stored, so their nodes and relationships are created, not merged (merging a
/// relationship to a dense Service or Commit node scans its relationships); shared nodes
/// (Commit, Image) are merged, filling in properties they lack.
const INSERT_DEPLOYMENTS: &str = "
UNWIND $rows AS r
MATCH (s:Service {uid: r.props.service_uid})
CREATE (d:DeploymentEvent)
SET d = r.props, d.uid = r.uid
CREATE (d)-[:DEPLOYS]->(s)
FOREACH (cm IN r.commits |
  MERGE (c:Commit {uid: cm.uid})
  SET c.sha = cm.sha, c.repo = cm.repo,
      c.author = coalesce(c.author, cm.author), c.message = coalesce(c.message, cm.message),
      c.committed_at = coalesce(c.committed_at, cm.committed_at)
  CREATE (d)-[:BUILT_FROM]->(c))
FOREACH (img IN r.images |
  MERGE (i:Image {uid: img.uid})
  SET i.digest = coalesce(i.digest, img.digest), i.repository = coalesce(i.repository, img.repository), i.tag = coalesce(i.tag, img.tag)
  CREATE (d)-[:RUNS]->(i))
FOREACH (ch IN r.changes |
  CREATE (x:ConfigChange)
  SET x = ch
  CREATE (d)-[:CHANGED]->(x))
FOREACH (v IN r.validation |
  CREATE (x:ValidationResult)
  SET x = v
  CREATE (d)-[:VALIDATED_BY]->(x))
FOREACH (h IN r.helm |
  MERGE (x:HelmRevision {uid: h.uid})
  SET x += h
  MERGE (d)-[:RELEASED_AS]->(x))
WITH d
OPTIONAL MATCH (snap:InfraSnapshot {deployment_uid: d.uid})
FOREACH (x IN CASE WHEN snap IS NULL THEN [] ELSE [snap] END | MERGE (x)-[:TAKEN_FOR]->(d))";

/// Merges the batch's commits (rows sorted by uid) and takes their write locks.
const LOCK_COMMITS: &str = "
UNWIND $rows AS cm
MERGE (c:Commit {uid: cm.uid})
SET c.sha = cm.sha, c.repo = cm.repo,
    c.author = coalesce(c.author, cm.author), c.message = coalesce(c.message, cm.message),
    c.committed_at = coalesce(c.committed_at, cm.committed_at)";

/// Merges the batch's images (rows sorted by uid) and takes their write locks.
const LOCK_IMAGES: &str = "
UNWIND $rows AS img
MERGE (i:Image {uid: img.uid})
SET i.digest = coalesce(i.digest, img.digest), i.repository = coalesce(i.repository, img.repository),
    i.tag = coalesce(i.tag, img.tag)";

/// Merges the batch's Helm revisions (rows sorted by uid) and takes their write locks.
const LOCK_HELM: &str = "
UNWIND $rows AS h
MERGE (x:HelmRevision {uid: h.uid})
SET x += h";

/// Advances a stored deployment's status, finish time, validation and payload.
const UPDATE_DEPLOYMENTS: &str = "
UNWIND $rows AS r
MATCH (d:DeploymentEvent {uid: r.uid})
SET d.status = r.props.status, d.finished_at = r.props.finished_at, d.payload = r.props.payload,
    d.image_digests = r.props.image_digests
WITH d, r
OPTIONAL MATCH (d)-[old:RUNS]->(:Image)
DELETE old
WITH DISTINCT d, r
FOREACH (img IN r.images |
  MERGE (i:Image {uid: img.uid})
  SET i.digest = coalesce(i.digest, img.digest), i.repository = coalesce(i.repository, img.repository),
      i.tag = coalesce(i.tag, img.tag)
  MERGE (d)-[:RUNS]->(i))
FOREACH (h IN r.helm |
  MERGE (x:HelmRevision {uid: h.uid})
  SET x += h
  MERGE (d)-[:RELEASED_AS]->(x))
FOREACH (v IN r.validation |
  MERGE (x:ValidationResult {uid: v.uid})
  SET x += v
  MERGE (d)-[:VALIDATED_BY]->(x))";

/// Takes the write locks of the batch's Service nodes (creating them when new), which
/// serializes writers of the same FOLLOWS chains, then reads what is stored under the batch's
/// uids — after the locks, so a concurrent writer's commit is seen.
const LOCK_AND_READ: &str = "
UNWIND $services AS s
MERGE (n:Service {uid: s.uid})
ON CREATE SET n.name = s.name, n.namespace = s.namespace, n.environment = s.environment,
              n.cluster = s.cluster
SET n.last_recorded_at = datetime()
WITH count(n) AS locked
UNWIND $uids AS u
MATCH (d:DeploymentEvent {uid: u})
RETURN d.uid AS uid, d.payload AS payload";

/// For each touched chain, every deployment from the newest one before the earliest new one
/// (or from the earliest new one), with its current link.
const CHAIN_NODES: &str = "
UNWIND $chains AS g
CALL {
  WITH g
  OPTIONAL MATCH (p:DeploymentEvent {service_uid: g.service_uid})
  WHERE p.started_at_us < g.us
  WITH g, p ORDER BY p.started_at_us DESC LIMIT 1
  RETURN coalesce(p.started_at_us, g.us) AS from_us
}
MATCH (d:DeploymentEvent {service_uid: g.service_uid})
WHERE d.started_at_us >= from_us
OPTIONAL MATCH (d)-[:FOLLOWS]->(f:DeploymentEvent)
RETURN g.service_uid AS chain, d.started_at_us AS us, d.uid AS uid, f.uid AS follows";

/// Replaces the FOLLOWS link of each `newer` deployment.
const RELINK: &str = "
UNWIND $links AS l
MATCH (newer:DeploymentEvent {uid: l.newer}), (older:DeploymentEvent {uid: l.older})
OPTIONAL MATCH (newer)-[old:FOLLOWS]->()
DELETE old
CREATE (newer)-[:FOLLOWS]->(older)";

/// Creates a snapshot with its checks and the certificates they observed (merged by
/// fingerprint), and links it to its deployment when that is recorded already.
const INSERT_SNAPSHOT: &str = "
CREATE (s:InfraSnapshot)
SET s = $props
WITH s
CALL {
  WITH s
  OPTIONAL MATCH (d:DeploymentEvent {uid: s.deployment_uid})
  FOREACH (x IN CASE WHEN d IS NULL THEN [] ELSE [d] END | MERGE (s)-[:TAKEN_FOR]->(x))
}
WITH s
UNWIND $checks AS c
CREATE (k:Check)
SET k = c.props
CREATE (s)-[:INCLUDES]->(k)
WITH k, c
UNWIND c.certificates AS cert
MERGE (x:Certificate {uid: cert.uid})
ON CREATE SET x += cert
CREATE (k)-[:OBSERVED]->(x)";

/// `(Certificate)-[:SECURES {via}]->(Service)` for the Services known under each name and
/// namespace (any environment), stamped with the newest snapshot that saw it.
const LINK_SECURES: &str = "
UNWIND $secures AS u
MATCH (x:Certificate {uid: u.certificate})
MATCH (svc:Service {name: u.service, namespace: u.namespace})
MERGE (x)-[r:SECURES {via: u.via}]->(svc)
WITH r WHERE r.seen_at_us IS NULL OR r.seen_at_us <= $seen_at_us
SET r.snapshot_uid = $snapshot, r.seen_at = $seen_at, r.seen_at_us = $seen_at_us";

fn snapshot_params(snapshot: &InfraSnapshot) -> Result<(BoltType, BoltType)> {
    let payload = serde_json::to_string(snapshot).map_err(|e| Error::Backend {
        backend: BACKEND,
        operation: "encode a snapshot",
        source: Box::new(e),
    })?;
    let props = map(vec![
        ("uid", snapshot.uid.as_str().into()),
        ("taken_at", snapshot.taken_at.into()),
        ("taken_at_us", snapshot.taken_at.timestamp_micros().into()),
        ("verdict", snapshot.verdict.as_str().into()),
        ("cluster", opt_str(snapshot.cluster.as_deref())),
        (
            "deployment_uid",
            opt_str(snapshot.deployment_uid.as_ref().map(Uid::as_str)),
        ),
        ("payload", payload.into()),
    ]);
    let checks: Vec<BoltType> = snapshot
        .checks
        .iter()
        .map(|c| {
            let certificates: Vec<BoltType> = c
                .certificates
                .iter()
                .map(|cert| {
                    let sans: Vec<BoltType> = cert.sans.iter().map(|s| s.as_str().into()).collect();
                    map(vec![
                        ("uid", cert.uid().as_str().into()),
                        ("sha256", cert.sha256.as_str().into()),
                        ("subject", cert.subject.as_str().into()),
                        ("issuer", cert.issuer.as_str().into()),
                        ("sans", BoltType::from(sans)),
                        ("not_before", cert.not_before.into()),
                        ("not_after", cert.not_after.into()),
                        ("is_ca", cert.is_ca.into()),
                    ])
                })
                .collect();
            map(vec![
                (
                    "props",
                    map(vec![
                        ("uid", c.uid(&snapshot.uid).as_str().into()),
                        ("kind", c.kind.as_str().into()),
                        ("target", c.target.as_str().into()),
                        ("status", c.status.as_str().into()),
                        ("detail", c.detail.as_str().into()),
                        ("latency_ms", int(c.latency_ms)),
                    ]),
                ),
                ("certificates", BoltType::from(certificates)),
            ])
        })
        .collect();
    Ok((props, BoltType::from(checks)))
}

fn snapshot_from_row(row: &neo4rs::Row) -> Result<InfraSnapshot> {
    let decode = decode_failed("read a snapshot");
    let uid: String = row.get("uid").map_err(&decode)?;
    let payload: String = row.get("payload").map_err(&decode)?;
    serde_json::from_str(&payload).map_err(|e| Error::Corrupt {
        uid,
        source: Box::new(e),
    })
}

impl Neo4jStore {
    /// A store on the Neo4j server at `uri`. Connections are made lazily, so this succeeds
    /// while the server is down; [`GraphStore::ready`] says whether it is reachable.
    ///
    /// # Errors
    /// [`Error::InvalidUri`] for a URI neo4rs cannot use; [`Error::MigrationFiles`].
    pub fn connect(
        uri: &str,
        user: &str,
        password: &SecretString,
        options: Neo4jOptions,
        source: MigrationSource,
    ) -> Result<Self> {
        let migrations = source.load(BACKEND)?;
        let build = |connection_timeout: Duration, max_connections: usize| {
            let mut config = ConfigBuilder::default()
                .uri(uri)
                .user(user)
                .password(password.expose_secret())
                .fetch_size(options.fetch_size)
                .max_connections(max_connections)
                .connection_timeout(connection_timeout);
            if let Some(database) = &options.database {
                config = config.db(database.as_str());
            }
            let config = config.build().map_err(|e| Error::InvalidUri {
                uri: uri.to_owned(),
                reason: e.to_string(),
            })?;
            Graph::connect(config).map_err(|e| Error::InvalidUri {
                uri: uri.to_owned(),
                reason: e.to_string(),
            })
        };
        let graph = build(options.connection_timeout, options.max_connections)?;
        // User queries get connections of their own: neo4rs bounds every read by the
        // connection timeout, which must outlast the longest query (else a slow query looks
        // like an outage), and a heavy query must not take the store's own connections.
        let user_queries = build(
            user_query_read_timeout(&options),
            options.max_connections.div_ceil(4).max(1),
        )?;
        Ok(Self {
            graph,
            user_queries,
            migrations,
            options,
            bookmarks: Bookmarks::for_uri(uri),
        })
    }

    async fn applied(&self) -> Result<Vec<AppliedMigration>> {
        let mut stream = self
            .graph
            .execute_read(query(
                "MATCH (m:DeploygraphMigration) RETURN m.version AS version, m.name AS name, m.checksum AS checksum
                 ORDER BY m.version",
            ))
            .await
            .map_err(failed("read applied migrations"))?;
        let mut applied = Vec::new();
        while let Some(row) = stream
            .next()
            .await
            .map_err(failed("read applied migrations"))?
        {
            let decode = decode_failed("read applied migrations");
            applied.push(AppliedMigration {
                version: u32::try_from(row.get::<i64>("version").map_err(&decode)?)
                    .unwrap_or(u32::MAX),
                name: row.get("name").map_err(&decode)?,
                checksum: row.get("checksum").map_err(&decode)?,
            });
        }
        Ok(applied)
    }

    async fn rows(&self, q: Query, operation: &'static str) -> Result<Vec<neo4rs::Row>> {
        crate::retry::run(BACKEND, operation, is_retryable_read, || {
            self.rows_once(q.clone(), operation)
        })
        .await
    }

    async fn rows_once(&self, q: Query, operation: &'static str) -> Result<Vec<neo4rs::Row>> {
        let bookmarks = self.bookmarks.current();
        let mut stream = if bookmarks.is_empty() {
            self.graph.execute_read(q).await
        } else {
            // A reader (on a cluster) that has applied this process's latest writes.
            let config = neo4rs::SessionConfig::builder()
                .with_bookmarks(bookmarks)
                .with_fetch_size(self.options.fetch_size)
                .build();
            self.graph.with_session(Some(config)).execute_read(q).await
        }
        .map_err(failed(operation))?;
        let mut rows = Vec::new();
        while let Some(row) = stream.next().await.map_err(failed(operation))? {
            rows.push(row);
        }
        Ok(rows)
    }

    async fn write_batch(&self, batch: Vec<Deployment>) -> Result<Vec<RecordOutcome>> {
        let mut txn = self.begin().await?;
        let result = self.write_in(&mut txn, batch).await;
        self.settle(txn, result).await
    }

    async fn write_in(&self, txn: &mut Txn, batch: Vec<Deployment>) -> Result<Vec<RecordOutcome>> {
        let mut services: BTreeMap<String, BoltType> = BTreeMap::new();
        for d in &batch {
            let uid = d.service_uid();
            services.entry(uid.as_str().to_owned()).or_insert_with(|| {
                map(vec![
                    ("uid", uid.as_str().into()),
                    ("name", d.service.as_str().into()),
                    ("namespace", opt_str(d.namespace.as_deref())),
                    ("environment", d.environment.as_str().into()),
                    ("cluster", d.cluster.as_str().into()),
                ])
            });
        }
        let mut uids: Vec<String> = batch.iter().map(|d| d.uid.as_str().to_owned()).collect();
        uids.sort_unstable();
        uids.dedup();
        let q = query(LOCK_AND_READ)
            .param("services", services.into_values().collect::<Vec<_>>())
            .param("uids", uids);
        let mut stored = HashMap::new();
        for row in rows_in(txn, q, "read deployments").await? {
            let decode = decode_failed("read deployments");
            let uid: String = row.get("uid").map_err(&decode)?;
            let payload: String = row.get("payload").map_err(&decode)?;
            let d = serde_json::from_str(&payload).map_err(|e| Error::Corrupt {
                uid: uid.clone(),
                source: Box::new(e),
            })?;
            stored.insert(uid, d);
        }

        let mut plan = plan::plan(stored, batch);
        // Rows in the order of the shared node they touch; the shared nodes themselves are
        // locked first, each label in uid order (see `LOCK_SHARED`).
        for rows in [&mut plan.inserts, &mut plan.updates] {
            rows.sort_by(|a, b| (a.service_uid(), &a.uid).cmp(&(b.service_uid(), &b.uid)));
        }
        self.lock_shared(txn, &plan.inserts, &plan.updates).await?;
        for (statement, rows) in [
            (INSERT_DEPLOYMENTS, &plan.inserts),
            (UPDATE_DEPLOYMENTS, &plan.updates),
        ] {
            for chunk in rows.chunks(self.options.chunk_size) {
                let rows = chunk
                    .iter()
                    .map(deployment_row)
                    .collect::<Result<Vec<_>>>()?;
                txn.run(query(statement).param("rows", rows))
                    .await
                    .map_err(failed("write deployments"))?;
            }
        }
        self.relink(txn, &plan.inserts).await?;
        follow_up::enqueue(
            txn,
            crate::FollowUpKind::Deployment,
            plan.inserts.iter().chain(&plan.updates).map(|d| &d.uid),
            chrono::Utc::now(),
        )
        .await?;
        Ok(plan.outcomes)
    }

    /// Merges the Commit, Image and HelmRevision nodes the batch links to and takes their write
    /// locks, label by label, each in uid order. Writers that share a commit or an image (one
    /// build rolled out to many services at once) then lock them in one order and wait for
    /// each other instead of deadlocking; the deployment rows merge them again and find them.
    async fn lock_shared(
        &self,
        txn: &mut Txn,
        inserts: &[Deployment],
        updates: &[Deployment],
    ) -> Result<()> {
        let mut commits: BTreeMap<String, BoltType> = BTreeMap::new();
        let mut images: BTreeMap<String, BoltType> = BTreeMap::new();
        let mut helm: BTreeMap<String, BoltType> = BTreeMap::new();
        for d in inserts {
            commits.extend(d.commit.iter().map(commit_row));
        }
        for d in inserts.iter().chain(updates) {
            images.extend(d.images.iter().map(image_row));
            helm.extend(d.helm.iter().map(|h| helm_row(h, &d.cluster)));
        }
        for (statement, rows) in [
            (LOCK_COMMITS, commits),
            (LOCK_IMAGES, images),
            (LOCK_HELM, helm),
        ] {
            let rows: Vec<BoltType> = rows.into_values().collect();
            for chunk in rows.chunks(self.options.chunk_size.max(1)) {
                txn.run(query(statement).param("rows", chunk.to_vec()))
                    .await
                    .map_err(failed("write deployments"))?;
            }
        }
        Ok(())
    }

    async fn relink(&self, txn: &mut Txn, created: &[Deployment]) -> Result<()> {
        let chains: Vec<BoltType> = chain::earliest_by_chain(created)
            .into_iter()
            .map(|(service_uid, us)| {
                map(vec![("service_uid", service_uid.into()), ("us", us.into())])
            })
            .collect();
        if chains.is_empty() {
            return Ok(());
        }
        let mut nodes: BTreeMap<String, Vec<ChainNode>> = BTreeMap::new();
        for row in rows_in(
            txn,
            query(CHAIN_NODES).param("chains", chains),
            "read deployment chains",
        )
        .await?
        {
            let decode = decode_failed("read deployment chains");
            nodes
                .entry(row.get("chain").map_err(&decode)?)
                .or_default()
                .push(ChainNode {
                    started_at_us: row.get("us").map_err(&decode)?,
                    uid: row.get("uid").map_err(&decode)?,
                    follows: row.get("follows").map_err(&decode)?,
                });
        }
        let links: Vec<BoltType> = nodes
            .into_values()
            .flat_map(chain::relink)
            .map(|(newer, older)| map(vec![("newer", newer.into()), ("older", older.into())]))
            .collect();
        for chunk in links.chunks(self.options.chunk_size) {
            txn.run(query(RELINK).param("links", chunk.to_vec()))
                .await
                .map_err(failed("link deployments"))?;
        }
        Ok(())
    }
}

/// Records a snapshot in `txn` unless it is recorded already.
async fn write_snapshot_in(
    txn: &mut Txn,
    uid: &str,
    props: &BoltType,
    checks: &BoltType,
) -> Result<()> {
    let exists = rows_in(
        txn,
        query("MATCH (s:InfraSnapshot {uid: $uid}) RETURN s.uid AS uid").param("uid", uid),
        "read a snapshot",
    )
    .await?;
    if exists.is_empty() {
        txn.run(
            query(INSERT_SNAPSHOT)
                .param("props", props.clone())
                .param("checks", checks.clone()),
        )
        .await
        .map_err(failed("write a snapshot"))?;
    }
    Ok(())
}

/// Every row of `q` run inside `txn`.
async fn rows_in(txn: &mut Txn, q: Query, operation: &'static str) -> Result<Vec<neo4rs::Row>> {
    let mut stream = txn.execute(q).await.map_err(failed(operation))?;
    let mut rows = Vec::new();
    while let Some(row) = stream.next(txn.handle()).await.map_err(failed(operation))? {
        rows.push(row);
    }
    Ok(rows)
}

fn stored_from_row(row: &neo4rs::Row) -> Result<StoredDeployment> {
    let decode = decode_failed("read a deployment");
    let uid: String = row.get("uid").map_err(&decode)?;
    let payload: String = row.get("payload").map_err(&decode)?;
    let follows: Option<String> = row.get("follows").map_err(&decode)?;
    Ok(StoredDeployment {
        deployment: serde_json::from_str(&payload).map_err(|e| Error::Corrupt {
            uid,
            source: Box::new(e),
        })?,
        follows: follows.map(Uid::from_stored),
    })
}

/// The listing query: fixed clauses chosen by which filters are set, values as parameters.
fn list_query(filter: &DeploymentFilter) -> Query {
    let mut clauses: Vec<&str> = Vec::new();
    let mut params: Vec<(&str, BoltType)> = Vec::new();
    if let Some(service) = &filter.service {
        clauses.push("d.service = $service");
        params.push(("service", service.as_str().into()));
    }
    if let Some(environment) = &filter.environment {
        clauses.push("d.environment = $environment");
        params.push(("environment", environment.as_str().into()));
    }
    if let Some(cluster) = &filter.cluster {
        clauses.push("d.cluster = $cluster");
        params.push(("cluster", cluster.as_str().into()));
    }
    if let Some(status) = filter.status {
        clauses.push("d.status = $status");
        params.push(("status", status.as_str().into()));
    }
    if let Some(since) = filter.since {
        clauses.push("d.started_at_us >= $since");
        params.push(("since", since.timestamp_micros().into()));
    }
    if let Some(until) = filter.until {
        clauses.push("d.started_at_us <= $until");
        params.push(("until", until.timestamp_micros().into()));
    }
    if let Some(cursor) = &filter.cursor {
        clauses.push("(d.started_at_us < $cursor_us OR (d.started_at_us = $cursor_us AND d.uid < $cursor_uid))");
        params.push(("cursor_us", cursor.started_at_us.into()));
        params.push(("cursor_uid", cursor.uid.as_str().into()));
    }
    // Without a selective filter, a range predicate lets the planner walk the started_at_us
    // index in order instead of sorting every node.
    clauses.push("d.started_at_us > -9223372036854775807");
    let text = format!(
        "MATCH (d:DeploymentEvent) WHERE {}
         WITH d ORDER BY d.started_at_us DESC, d.uid DESC LIMIT $limit
         OPTIONAL MATCH (d)-[:FOLLOWS]->(p:DeploymentEvent)
         RETURN d.uid AS uid, d.payload AS payload, p.uid AS follows
         ORDER BY d.started_at_us DESC, d.uid DESC",
        clauses.join(" AND ")
    );
    let mut q = query(&text).param("limit", int(filter.limit.saturating_add(1)));
    for (name, value) in params {
        q = q.param(name, value);
    }
    q
}

#[async_trait]
impl GraphStore for Neo4jStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn migrate(&self) -> Result<Vec<AppliedMigration>> {
        self.graph
            .run(query(
                "CREATE CONSTRAINT deploygraph_migration_version IF NOT EXISTS
                 FOR (m:DeploygraphMigration) REQUIRE m.version IS UNIQUE",
            ))
            .await
            .map_err(failed("create the migrations constraint"))?;
        let applied = self.applied().await?;
        let mut done = Vec::new();
        for m in migrations::pending(&self.migrations, &applied)? {
            for statement in m.statements() {
                match self.graph.run(query(&statement)).await {
                    Ok(_) => {}
                    // Another replica migrating at the same time created it first.
                    Err(e) if created_concurrently(&e) => {
                        tracing::debug!(migration = %m.name, "schema rule already created concurrently");
                    }
                    Err(e) => {
                        return Err(match classify("apply a migration", e) {
                            Error::Backend { source, .. } => Error::Backend {
                                backend: BACKEND,
                                operation: "apply a migration",
                                source: format!("{}: {source}", m.name).into(),
                            },
                            other => other,
                        });
                    }
                }
            }
            let record = AppliedMigration {
                version: m.version,
                name: m.name.clone(),
                checksum: m.checksum(),
            };
            self.graph
                .run(
                    query(
                        "MERGE (m:DeploygraphMigration {version: $version})
                         ON CREATE SET m.name = $name, m.checksum = $checksum, m.applied_at = datetime()",
                    )
                    .param("version", i64::from(record.version))
                    .param("name", record.name.as_str())
                    .param("checksum", record.checksum.as_str()),
                )
                .await
                .map_err(failed("record a migration"))?;
            tracing::info!(migration = %record.name, "applied migration");
            done.push(record);
        }
        Ok(done)
    }

    async fn ready(&self) -> Result<()> {
        let applied = self.applied().await?;
        let pending = migrations::pending(&self.migrations, &applied)?.len();
        if pending > 0 {
            return Err(Error::NotMigrated { pending });
        }
        Ok(())
    }

    async fn record_deployments(&self, batch: Vec<Deployment>) -> Result<Vec<RecordOutcome>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // A transaction rolled back by a deadlock or a leader switch runs again from its start.
        crate::retry::run(BACKEND, "record deployments", is_retryable, || {
            self.write_batch(batch.clone())
        })
        .await
    }

    async fn get_deployment(&self, uid: &Uid) -> Result<Option<StoredDeployment>> {
        let rows = self
            .rows(
                query(
                    "MATCH (d:DeploymentEvent {uid: $uid})
                     OPTIONAL MATCH (d)-[:FOLLOWS]->(p:DeploymentEvent)
                     RETURN d.uid AS uid, d.payload AS payload, p.uid AS follows",
                )
                .param("uid", uid.as_str()),
                "read a deployment",
            )
            .await?;
        rows.first().map(stored_from_row).transpose()
    }

    async fn list_deployments(&self, filter: &DeploymentFilter) -> Result<Page<StoredDeployment>> {
        let rows = self.rows(list_query(filter), "list deployments").await?;
        let items = rows
            .iter()
            .map(stored_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_rows(items, filter.limit))
    }

    async fn record_snapshot(&self, snapshot: &InfraSnapshot) -> Result<()> {
        let (props, checks) = snapshot_params(snapshot)?;
        let uid = snapshot.uid.as_str();
        let secures: Vec<BoltType> = snapshot
            .secures()
            .into_iter()
            .map(|(certificate, namespace, service, via)| {
                map(vec![
                    ("certificate", certificate.as_str().into()),
                    ("namespace", namespace.into()),
                    ("service", service.into()),
                    ("via", via.into()),
                ])
            })
            .collect();
        crate::retry::run(BACKEND, "record a snapshot", is_retryable, || async {
            let mut txn = self.begin().await?;
            let mut result = write_snapshot_in(&mut txn, uid, &props, &checks).await;
            if result.is_ok() && !secures.is_empty() {
                result = txn
                    .run(
                        query(LINK_SECURES)
                            .param("secures", secures.clone())
                            .param("snapshot", uid)
                            .param("seen_at", snapshot.taken_at)
                            .param("seen_at_us", snapshot.taken_at.timestamp_micros()),
                    )
                    .await
                    .map(|_| ())
                    .map_err(failed("link a certificate to its services"));
            }
            self.settle(txn, result).await
        })
        .await
    }

    async fn get_snapshot(&self, uid: &Uid) -> Result<Option<InfraSnapshot>> {
        let rows = self
            .rows(
                query(
                    "MATCH (s:InfraSnapshot {uid: $uid}) RETURN s.uid AS uid, s.payload AS payload",
                )
                .param("uid", uid.as_str()),
                "read a snapshot",
            )
            .await?;
        rows.first().map(snapshot_from_row).transpose()
    }

    async fn snapshot_for_deployment(&self, uid: &Uid) -> Result<Option<InfraSnapshot>> {
        let rows = self
            .rows(
                query(
                    "MATCH (s:InfraSnapshot {deployment_uid: $uid})
                     RETURN s.uid AS uid, s.payload AS payload ORDER BY s.taken_at_us DESC LIMIT 1",
                )
                .param("uid", uid.as_str()),
                "read a snapshot",
            )
            .await?;
        rows.first().map(snapshot_from_row).transpose()
    }

    async fn latest_snapshot(&self, cluster: Option<&str>) -> Result<Option<InfraSnapshot>> {
        let q = match cluster {
            None => query(
                "MATCH (s:InfraSnapshot) WHERE s.taken_at_us > -9223372036854775807
                 RETURN s.uid AS uid, s.payload AS payload ORDER BY s.taken_at_us DESC LIMIT 1",
            ),
            Some(cluster) => query(
                "MATCH (s:InfraSnapshot) WHERE s.cluster = $cluster
                   AND s.taken_at_us > -9223372036854775807
                 RETURN s.uid AS uid, s.payload AS payload ORDER BY s.taken_at_us DESC LIMIT 1",
            )
            .param("cluster", cluster),
        };
        let rows = self.rows(q, "read a snapshot").await?;
        rows.first().map(snapshot_from_row).transpose()
    }

    async fn list_services(&self) -> Result<Vec<ServiceSummary>> {
        let rows = self
            .rows(
                query(
                    "MATCH (s:Service)
                     OPTIONAL MATCH (d:DeploymentEvent)-[:DEPLOYS]->(s)
                     WITH s, count(d) AS deployments, max(d.started_at_us) AS last
                     RETURN s.uid AS uid, s.name AS name, s.namespace AS namespace, s.environment AS environment,
                            deployments, last, s.owner AS owner, s.sla_tier AS tier,
                            coalesce(s.cluster, 'default') AS cluster
                     ORDER BY name, environment, namespace, cluster",
                ),
                "list services",
            )
            .await?;
        rows.iter()
            .map(|row| {
                let decode = decode_failed("list services");
                let last: Option<i64> = row.get("last").map_err(&decode)?;
                Ok(ServiceSummary {
                    uid: Uid::from_stored(row.get::<String>("uid").map_err(&decode)?),
                    name: row.get("name").map_err(&decode)?,
                    namespace: row.get("namespace").map_err(&decode)?,
                    environment: row.get("environment").map_err(&decode)?,
                    deployments: u64::try_from(row.get::<i64>("deployments").map_err(&decode)?)
                        .unwrap_or_default(),
                    last_deployed_at: last.and_then(DateTime::from_timestamp_micros),
                    owner: row.get("owner").map_err(&decode)?,
                    tier: row.get("tier").map_err(&decode)?,
                    cluster: row.get("cluster").map_err(&decode)?,
                })
            })
            .collect()
    }

    async fn list_snapshots(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<InfraSnapshot>> {
        self.rca_list_snapshots(since, until, limit).await
    }

    async fn find_services(
        &self,
        name: &ServiceName,
        namespace: Option<&str>,
        environment: Option<&Environment>,
        cluster: Option<&Cluster>,
    ) -> Result<Vec<ServiceRef>> {
        self.rca_find_services(name, namespace, environment, cluster)
            .await
    }

    async fn record_alerts(&self, alerts: Vec<Alert>) -> Result<Vec<(Alert, AlertOutcome)>> {
        self.rca_record_alerts(alerts).await
    }

    async fn get_alert(&self, uid: &Uid) -> Result<Option<Alert>> {
        self.rca_get_alert(uid).await
    }

    async fn get_alerts(&self, uids: &[Uid]) -> Result<Vec<Alert>> {
        self.rca_get_alerts(uids).await
    }

    async fn set_alert_onset(
        &self,
        uid: &Uid,
        onset: &deploygraph_model::MetricOnset,
    ) -> Result<bool> {
        self.rca_set_alert_onset(uid, onset).await
    }

    async fn set_alert_service_metrics(
        &self,
        uid: &Uid,
        metrics: &std::collections::BTreeMap<String, deploygraph_model::ServiceMetric>,
    ) -> Result<bool> {
        self.rca_set_alert_service_metrics(uid, metrics).await
    }

    async fn list_alerts(&self, filter: &AlertFilter) -> Result<Vec<Alert>> {
        self.rca_list_alerts(filter).await
    }

    async fn alert_services(&self, alert: &Uid) -> Result<Vec<ServiceRef>> {
        self.rca_alert_services(alert).await
    }

    async fn apply_topology(&self, update: &crate::TopologyUpdate) -> Result<()> {
        self.topology_apply(update).await
    }

    async fn service_topology(
        &self,
        service: &ServiceRef,
    ) -> Result<deploygraph_model::topology::ServiceTopologyView> {
        self.topology_of(service).await
    }

    async fn dependencies(&self, service: &ServiceRef) -> Result<Vec<ServiceRef>> {
        self.topology_dependencies(service).await
    }

    async fn dependents(&self, service: &ServiceRef) -> Result<Vec<ServiceRef>> {
        self.topology_dependents(service).await
    }

    async fn dependents_of_each(&self, services: &[ServiceRef]) -> Result<Vec<Vec<ServiceRef>>> {
        self.topology_dependents_of_each(services).await
    }

    async fn dependencies_of_each(&self, services: &[ServiceRef]) -> Result<Vec<Vec<ServiceRef>>> {
        self.topology_dependencies_of_each(services).await
    }

    async fn alerts_of_services(
        &self,
        services: &[ServiceName],
        filter: &AlertFilter,
    ) -> Result<Vec<Alert>> {
        self.rca_alerts_of_services(services, filter).await
    }

    async fn claim_follow_ups(&self, claim: crate::Claim<'_>) -> Result<Vec<crate::FollowUp>> {
        self.claim(claim).await
    }

    async fn finish_follow_up(
        &self,
        kind: crate::FollowUpKind,
        subject: &Uid,
        enqueued_at: DateTime<Utc>,
    ) -> Result<()> {
        self.finish(kind, subject, enqueued_at).await
    }

    async fn follow_up_stats(&self, subjects: Option<&[Uid]>) -> Result<crate::FollowUpStats> {
        self.stats(subjects).await
    }

    async fn defer_revisit(
        &self,
        alert: &Uid,
        claimed: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        Neo4jStore::defer_revisit(self, alert, claimed, until, now).await
    }

    async fn enqueue_revisits(&self, alerts: &[Uid], now: DateTime<Utc>) -> Result<Vec<Uid>> {
        self.revisits(alerts, now).await
    }

    async fn deployments_between(
        &self,
        services: &[Uid],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<StoredDeployment>> {
        self.rca_deployments_between(services, from, to).await
    }

    async fn service_history(
        &self,
        service: &Uid,
        before: DateTime<Utc>,
    ) -> Result<ServiceHistory> {
        let mut found = self
            .rca_service_histories(&[(service.clone(), before)])
            .await?;
        Ok(found.pop().unwrap_or_default())
    }

    async fn service_histories(
        &self,
        queries: &[(Uid, DateTime<Utc>)],
    ) -> Result<Vec<ServiceHistory>> {
        self.rca_service_histories(queries).await
    }

    async fn key_history(
        &self,
        paths: &[String],
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<KeyHistory>> {
        self.key_history_of(paths, before, limit).await
    }

    async fn record_changes(&self, batch: Vec<Change>) -> Result<Vec<ChangeOutcome>> {
        self.change_record(batch).await
    }

    async fn get_change(&self, uid: &Uid) -> Result<Option<Change>> {
        self.change_get(uid).await
    }

    async fn get_changes(&self, uids: &[Uid]) -> Result<Vec<Change>> {
        self.change_get_many(uids).await
    }

    async fn changes_between(
        &self,
        services: &[Uid],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Change>> {
        self.change_between(services, from, to).await
    }

    async fn list_changes(&self, filter: &ChangeFilter) -> Result<Vec<Change>> {
        self.change_list(filter).await
    }

    async fn record_verdict(&self, verdict: &SuspectVerdict) -> Result<Option<VerdictOutcome>> {
        self.verdict_record(verdict).await
    }

    async fn verdicts(&self, alerts: &[Uid]) -> Result<Vec<SuspectVerdict>> {
        self.verdict_list(alerts).await
    }

    async fn replace_attribution(
        &self,
        alert: &Uid,
        triggers: &[Trigger],
        chaos: Option<(&Uid, &str)>,
    ) -> Result<()> {
        self.rca_replace_attribution(alert, triggers, chaos).await
    }

    async fn attribution(&self, alert: &Uid) -> Result<StoredAttribution> {
        self.rca_attribution(alert).await
    }

    async fn top_triggers(&self, alerts: &[Uid]) -> Result<Vec<Trigger>> {
        self.rca_top_triggers(alerts).await
    }

    async fn triggered_by(&self, subjects: &[Uid]) -> Result<Vec<crate::SubjectTrigger>> {
        self.rca_triggered_by(subjects).await
    }

    async fn get_deployments(&self, uids: &[Uid]) -> Result<Vec<StoredDeployment>> {
        self.rca_get_deployments(uids).await
    }

    async fn record_chaos_run(&self, run: &ChaosRun) -> Result<()> {
        self.rca_record_chaos_run(run).await
    }

    async fn get_chaos_run(&self, uid: &Uid) -> Result<Option<ChaosRun>> {
        self.rca_get_chaos_run(uid).await
    }

    async fn list_chaos_runs(&self, filter: &ChaosFilter) -> Result<Vec<ChaosRun>> {
        self.rca_list_chaos_runs(filter).await
    }

    async fn record_canary_analysis(
        &self,
        analysis: &deploygraph_model::NewCanaryAnalysis,
    ) -> Result<crate::types::CanaryOutcome> {
        self.canary_record(analysis).await
    }

    async fn canary_analyses(
        &self,
        deployments: &[Uid],
    ) -> Result<Vec<deploygraph_model::CanaryAnalysis>> {
        self.canary_of_deployments(deployments).await
    }

    async fn list_canary_analyses(
        &self,
        filter: &crate::types::CanaryFilter,
    ) -> Result<Vec<deploygraph_model::CanaryAnalysis>> {
        self.canary_list(filter).await
    }

    async fn record_release_summary(
        &self,
        summary: &deploygraph_model::NewReleaseSummary,
    ) -> Result<crate::types::SummaryOutcome> {
        self.summary_record(summary).await
    }

    async fn release_summaries(
        &self,
        filter: &crate::types::SummaryFilter,
    ) -> Result<Vec<deploygraph_model::ReleaseSummary>> {
        self.summaries_before(filter).await
    }

    async fn record_rollback(
        &self,
        rollback: &deploygraph_model::NewRollback,
    ) -> Result<crate::types::RollbackOutcome> {
        self.rollback_record(rollback).await
    }

    async fn rollbacks(&self, deployments: &[Uid]) -> Result<Vec<deploygraph_model::Rollback>> {
        self.rollbacks_of(deployments).await
    }

    async fn list_rollbacks(
        &self,
        filter: &crate::types::RollbackFilter,
    ) -> Result<Vec<deploygraph_model::Rollback>> {
        self.rollback_list(filter).await
    }

    async fn certificates_securing(
        &self,
        services: &[Uid],
    ) -> Result<Vec<crate::types::SecuredCertificate>> {
        self.secured_certificates(services).await
    }

    async fn record_gate_override(
        &self,
        gate_override: &deploygraph_model::GateOverride,
    ) -> Result<bool> {
        self.gate_override_record(gate_override).await
    }

    async fn link_gate_overrides(
        &self,
        deployment: &Uid,
        workload: (&str, &str, &str),
        template_hash: &str,
        started_at: DateTime<Utc>,
    ) -> Result<usize> {
        self.gate_override_link(deployment, workload, template_hash, started_at)
            .await
    }

    async fn list_gate_overrides(
        &self,
        filter: &crate::types::GateOverrideFilter,
    ) -> Result<Vec<deploygraph_model::GateOverride>> {
        self.gate_override_list(filter).await
    }

    async fn read_cypher(
        &self,
        request: &crate::cypher::CypherRequest,
    ) -> Result<crate::cypher::CypherResult> {
        crate::cypher::run_read_only(&self.user_queries, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cypher::MAX_QUERY_TIMEOUT;

    #[test]
    fn user_query_connections_wait_longer_than_the_longest_query() {
        let options = Neo4jOptions::default();
        assert!(user_query_read_timeout(&options) > MAX_QUERY_TIMEOUT);
        assert!(user_query_read_timeout(&options) > options.connection_timeout);
        // The store's own connections keep their short bound for outages.
        assert_eq!(options.connection_timeout, Duration::from_secs(5));
    }
}
