//! deploygraph's graph store.
//!
//! [`GraphStore`] is the one interface the rest of deploygraph writes facts through and reads
//! them back from. Two backends implement it and pass one conformance suite
//! (`tests/conformance.rs`):
//!
//! - [`neo4j::Neo4jStore`] — production: Neo4j over Bolt 4.4 (neo4rs), batched
//!   `UNWIND $rows … MERGE` writes, parameters only.
//! - [`sqlite::SqliteStore`] — the zero-setup default: typed SQLite tables in WAL mode.
//!
//! [`open`] picks one from a store URI (`sqlite://PATH`, `neo4j://HOST:PORT`, `bolt://HOST:PORT`).

pub mod chain;
pub mod cypher;
pub mod error;
pub mod follow_up;
mod key_history;
pub mod migrations;
pub mod neo4j;
mod payload;
pub mod plan;
pub mod retry;
pub mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;
mod types;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deploygraph_model::{
    Alert, AlertOutcome, CanaryAnalysis, Change, ChaosRun, Cluster, Deployment, Environment,
    GateOverride, InfraSnapshot, NewCanaryAnalysis, NewReleaseSummary, NewRollback, ReleaseSummary,
    Rollback, ServiceName, ServiceRef, SuspectVerdict, Trigger, Uid,
};
use secrecy::SecretString;
use std::path::PathBuf;
use std::sync::Arc;

pub use error::{Error, Result};
pub use follow_up::{Claim, FollowUp, FollowUpKind, FollowUpStats};
pub use migrations::{AppliedMigration, Migration, MigrationSource};
pub use types::{
    AlertFilter, BLAMED_CONFIDENCE, CanaryFilter, CanaryOutcome, ChangeFilter, ChangeOutcome,
    ChaosFilter, Cursor, DeploymentFilter, FilterParams, GateOverrideFilter, KEY_HISTORY_MAX_LIMIT,
    KEY_HISTORY_MAX_PATHS, KeyHistory, MAX_PAGE_SIZE, Page, RecordKind, RecordOutcome,
    RollbackFilter, RollbackOutcome, SecuredCertificate, ServiceHistory, ServiceSummary,
    StoredAttribution, StoredDeployment, SubjectTrigger, SummaryFilter, SummaryOutcome,
    TopologyMode, TopologyUpdate, VerdictOutcome, is_blamed,
};

/// The default store: an embedded SQLite file in the working directory.
pub const DEFAULT_STORE_URI: &str = "sqlite://deploygraph.db";

/// The graph store deploygraph records facts in.
///
/// Every write is durable when the call returns `Ok`; a store that cannot be reached returns
/// [`Error::Unavailable`], which the HTTP layer turns into 503 with `Retry-After`.
#[async_trait]
pub trait GraphStore: Send + Sync + 'static {
    /// `sqlite` or `neo4j`.
    fn backend(&self) -> &'static str;

    /// Applies pending migrations in order and returns the ones applied now.
    ///
    /// # Errors
    /// [`Error::MigrationChanged`] when an applied migration's file changed; [`Error::Unavailable`].
    async fn migrate(&self) -> Result<Vec<AppliedMigration>>;

    /// Succeeds when the store is reachable and every known migration is applied unchanged.
    ///
    /// # Errors
    /// [`Error::Unavailable`], [`Error::NotMigrated`] or [`Error::MigrationChanged`].
    async fn ready(&self) -> Result<()>;

    /// Records deployments in one transaction: each is created, updated (its status advances),
    /// left unchanged (already recorded) or refused as a conflict (its uid holds other facts).
    /// Conflicts are reported, not written; the rest is committed together.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when nothing could be committed.
    async fn record_deployments(&self, batch: Vec<Deployment>) -> Result<Vec<RecordOutcome>>;

    /// The deployment with `uid`, with the uid of the one it follows.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn get_deployment(&self, uid: &Uid) -> Result<Option<StoredDeployment>>;

    /// Deployments matching `filter`, newest first, `filter.limit` at a time.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn list_deployments(&self, filter: &DeploymentFilter) -> Result<Page<StoredDeployment>>;

    /// Records an infrastructure snapshot with its checks and certificates. Recording the same
    /// snapshot (uid) again is a no-op. When it was taken for a deployment, it is linked
    /// `TAKEN_FOR` it as soon as both exist.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn record_snapshot(&self, snapshot: &InfraSnapshot) -> Result<()>;

    /// The snapshot with `uid`.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn get_snapshot(&self, uid: &Uid) -> Result<Option<InfraSnapshot>>;

    /// The newest snapshot taken for the deployment with `uid`.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn snapshot_for_deployment(&self, uid: &Uid) -> Result<Option<InfraSnapshot>>;

    /// The newest snapshot of `cluster` (its snapshots' `cluster` name), of all when `None`.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn latest_snapshot(&self, cluster: Option<&str>) -> Result<Option<InfraSnapshot>>;

    /// Every service with its deployment count and last deployment time.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn list_services(&self) -> Result<Vec<ServiceSummary>>;

    /// Snapshots taken in `[since, until]`, newest first, at most `limit`.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn list_snapshots(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<InfraSnapshot>>;

    /// Services named `name`, in `namespace`, `environment` and `cluster` when given.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn find_services(
        &self,
        name: &ServiceName,
        namespace: Option<&str>,
        environment: Option<&Environment>,
        cluster: Option<&Cluster>,
    ) -> Result<Vec<ServiceRef>>;

    /// Records alert deliveries in one transaction: each occurrence (fingerprint + start) is
    /// created once, later deliveries update it ([`deploygraph_model::merge_alert`]). A new
    /// occurrence is linked `FIRED_ON` its service: every stored Service with its name (and
    /// namespace and environment when the labels give them); with an environment and no such
    /// Service, the Service is created.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when nothing could be committed.
    async fn record_alerts(&self, alerts: Vec<Alert>) -> Result<Vec<(Alert, AlertOutcome)>>;

    /// The alert occurrence with `uid`.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn get_alert(&self, uid: &Uid) -> Result<Option<Alert>>;

    /// The alert occurrences with these uids, in one read (ordered by uid; unknown uids are
    /// left out).
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn get_alerts(&self, uids: &[Uid]) -> Result<Vec<Alert>>;

    /// Records what the alert's metric did before it ([`deploygraph_model::MetricOnset`]) on
    /// the stored alert; `false` when no alert has `uid`. Later deliveries of the alert keep it.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn set_alert_onset(
        &self,
        uid: &Uid,
        onset: &deploygraph_model::MetricOnset,
    ) -> Result<bool>;

    /// Records what the health metrics of the services around the alert did before it
    /// ([`deploygraph_model::ServiceMetric`], by service name) on the stored alert, replacing
    /// what was recorded; `false` when no alert has `uid`. Later deliveries of the alert keep
    /// it.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn set_alert_service_metrics(
        &self,
        uid: &Uid,
        metrics: &std::collections::BTreeMap<String, deploygraph_model::ServiceMetric>,
    ) -> Result<bool>;

    /// Alerts matching `filter`, newest first.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn list_alerts(&self, filter: &AlertFilter) -> Result<Vec<Alert>>;

    /// The services the alert fired on (`FIRED_ON`).
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn alert_services(&self, alert: &Uid) -> Result<Vec<ServiceRef>>;

    /// Replaces the `manual` `DEPENDS_ON` edges of `service` (the other sources' edges stay),
    /// creating missing Service nodes.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn set_dependencies(
        &self,
        service: &ServiceRef,
        depends_on: &[ServiceRef],
    ) -> Result<()> {
        self.apply_topology(&TopologyUpdate {
            source: deploygraph_model::topology::EdgeSource::Manual,
            seen_at: chrono::Utc::now(),
            mode: TopologyMode::Replace,
            services: vec![deploygraph_model::topology::ServiceTopology {
                service: service.clone(),
                owner: None,
                tier: None,
                depends_on: depends_on.to_vec(),
            }],
        })
        .await
    }

    /// Writes one source's topology in one transaction: creates missing Service nodes, sets
    /// the owner and tier given, and adds (or, with [`TopologyMode::Replace`], replaces) the
    /// source's `DEPENDS_ON` edges of each service, each edge's `last_seen_at` the later of
    /// `seen_at` and its stored one. Edges of other sources are never touched.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn apply_topology(&self, update: &TopologyUpdate) -> Result<()>;

    /// The service's owner and tier, and what it depends on with each edge's sources and
    /// `last_seen_at` (ordered by dependency name, environment, namespace). A service that is
    /// not stored has no owner, no tier and no dependencies.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn service_topology(
        &self,
        service: &ServiceRef,
    ) -> Result<deploygraph_model::topology::ServiceTopologyView>;

    /// The services `service` depends on directly, whatever the source.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn dependencies(&self, service: &ServiceRef) -> Result<Vec<ServiceRef>>;

    /// Deployments of the services with these uids that started in `[from, to]`, newest first.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn deployments_between(
        &self,
        services: &[Uid],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<StoredDeployment>>;

    /// How many deployments of the service started before `before`, and how many of them were
    /// blamed for an alert that also started before `before` — the service's record as it
    /// stood then, so that an attribution never counts its own answer, nor one of a later
    /// alert, as evidence ([`is_blamed`]): CAUSED one, or TRIGGERS one at
    /// [`BLAMED_CONFIDENCE`] or more without a REJECTED verdict for it.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn service_history(&self, service: &Uid, before: DateTime<Utc>)
    -> Result<ServiceHistory>;

    /// [`GraphStore::service_history`] of each `(service, before)` of `queries`, in their order,
    /// in one round trip where the backend allows (attribution asks it of every candidate).
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn service_histories(
        &self,
        queries: &[(Uid, DateTime<Utc>)],
    ) -> Result<Vec<ServiceHistory>> {
        let mut found = Vec::with_capacity(queries.len());
        for (service, before) in queries {
            found.push(self.service_history(service, *before).await?);
        }
        Ok(found)
    }

    /// For each distinct key path (the first [`KEY_HISTORY_MAX_PATHS`] of `paths`): of its
    /// `limit` most recent changes anywhere in the graph that started strictly before `before` —
    /// deployments that changed it (by start; one that changed it in two ways counts once) and
    /// changes that are not rollouts with it (by `at`), ties by the larger uid — how many there
    /// are and how many were blamed for an alert that started before `before` (TRIGGERS with a
    /// confidence of [`BLAMED_CONFIDENCE`] or more). `limit` is at most
    /// [`KEY_HISTORY_MAX_LIMIT`]. Only paths with at least one change are returned, ordered by
    /// path. Bounded work per path: an index
    /// gives each path's most recent deployments, another its most recent changes.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn key_history(
        &self,
        paths: &[String],
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<KeyHistory>>;

    /// Records changes that are not rollouts in one transaction, each linked `AFFECTS` its
    /// services (created when missing): each is created, left unchanged (already recorded with
    /// the same facts) or refused as a conflict (its uid holds other facts); conflicts are
    /// reported, not written. A created change enqueues its follow-up
    /// ([`FollowUpKind::Change`]) in the same transaction.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when nothing could be committed.
    async fn record_changes(&self, batch: Vec<Change>) -> Result<Vec<ChangeOutcome>>;

    /// The change with `uid`.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn get_change(&self, uid: &Uid) -> Result<Option<Change>>;

    /// The changes with these uids, in one query; unknown uids are left out. Ordered by uid.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn get_changes(&self, uids: &[Uid]) -> Result<Vec<Change>>;

    /// Changes of any of the services with these uids that took effect in `[from, to]`, newest
    /// first (ties by the larger uid), each once: attribution's candidates.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn changes_between(
        &self,
        services: &[Uid],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<Change>>;

    /// Changes matching `filter`, newest first (ties by the larger uid), at most
    /// `filter.limit`: timelines.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn list_changes(&self, filter: &ChangeFilter) -> Result<Vec<Change>>;

    /// Replaces the alert's attribution in one transaction: its TRIGGERS relationships become
    /// `triggers` (recomputing never duplicates), each from the deployment or change its
    /// `subject` names, and with `chaos` the run is linked `RAISED`. Reviewers' verdicts
    /// (CAUSED, REJECTED) are never touched.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn replace_attribution(
        &self,
        alert: &Uid,
        triggers: &[Trigger],
        chaos: Option<(&Uid, &str)>,
    ) -> Result<()>;

    /// The alert's stored attribution.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn attribution(&self, alert: &Uid) -> Result<StoredAttribution>;

    /// Records a reviewer's verdict on a subject (a deployment or a change, as
    /// `verdict.subject` says) of an alert, in one transaction:
    /// `(subject)-[:CAUSED {by, at, note}]->(alert)` when confirmed, `-[:REJECTED …]->` when
    /// rejected. It replaces an earlier verdict on the same subject and alert, whichever its
    /// kind (`Updated`), unless that one says the same (verdict, `by`, `note`): then nothing is
    /// written and the stored verdict, with its time, is returned (`Unchanged`). The subject
    /// need not be a suspect. `None`, with nothing written, when the alert or the subject is not
    /// stored.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn record_verdict(&self, verdict: &SuspectVerdict) -> Result<Option<VerdictOutcome>>;

    /// The verdicts on subjects of these alerts, in one query, ordered by alert uid, then
    /// subject uid; unknown uids are left out.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn verdicts(&self, alerts: &[Uid]) -> Result<Vec<SuspectVerdict>>;

    /// The top trigger of each of these alerts — the TRIGGERS relationship with the highest
    /// confidence, from a deployment or a change, ties broken by the smaller subject uid, as
    /// [`GraphStore::attribution`] ranks them — in one query. Alerts without a trigger (and unknown uids) are left out;
    /// the result is ordered by alert uid.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn top_triggers(&self, alerts: &[Uid]) -> Result<Vec<Trigger>>;

    /// The TRIGGERS relationships from these subjects (deployments or changes), each with its
    /// rank among its alert's suspects, in one query: ordered by subject uid, then confidence
    /// (highest first), then alert uid. Unknown uids are left out.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn triggered_by(&self, subjects: &[Uid]) -> Result<Vec<SubjectTrigger>>;

    /// The deployments with these uids, with their FOLLOWS links, in one query; unknown uids
    /// are left out. Ordered by uid.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn get_deployments(&self, uids: &[Uid]) -> Result<Vec<StoredDeployment>>;

    /// Records a chaos run (replacing an earlier record of the same run), linked `TARGETED` to
    /// its service and `AGAINST` its deployment.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn record_chaos_run(&self, run: &ChaosRun) -> Result<()>;

    /// The chaos run with `uid`.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn get_chaos_run(&self, uid: &Uid) -> Result<Option<ChaosRun>>;

    /// Chaos runs matching `filter`, newest first.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn list_chaos_runs(&self, filter: &ChaosFilter) -> Result<Vec<ChaosRun>>;

    /// Records a canary analysis of a stored deployment in one transaction:
    /// `(CanaryAnalysis)-[:ANALYZED]->(DeploymentEvent)` and a `MetricVerdict` per metric
    /// (`MEASURED`), with the deployment's service. A later record of the same analysis (uid)
    /// replaces the stored one — verdict, decision time, rounds and metrics (`Updated`);
    /// the same record again writes nothing (`Unchanged`). A new analysis, or one whose
    /// verdict changed, enqueues the deployment's follow-up ([`FollowUpKind::Deployment`]) in
    /// the same transaction: the verdict is evidence for the attribution of the alerts after it.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the deployment is not stored (nothing is written);
    /// [`Error::Unavailable`].
    async fn record_canary_analysis(&self, analysis: &NewCanaryAnalysis) -> Result<CanaryOutcome>;

    /// The canary analyses of these deployments, in one query, newest first (by `started_at`,
    /// ties by the larger uid); unknown uids have none.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn canary_analyses(&self, deployments: &[Uid]) -> Result<Vec<CanaryAnalysis>>;

    /// Canary analyses matching `filter`, newest first (by `started_at`, ties by the larger
    /// uid), at most `filter.limit`: timelines.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn list_canary_analyses(&self, filter: &CanaryFilter) -> Result<Vec<CanaryAnalysis>>;

    /// Records the settled metric summary of a stored deployment on one template in one
    /// transaction: `(ReleaseSummary)-[:SUMMARIZES]->(DeploymentEvent)`, with the deployment's
    /// service, version and start. One summary per deployment and template: a later record
    /// replaces the stored one (`Updated`); the same record again writes nothing (`Unchanged`).
    ///
    /// # Errors
    /// [`Error::NotFound`] when the deployment is not stored (nothing is written);
    /// [`Error::Unavailable`].
    async fn record_release_summary(&self, summary: &NewReleaseSummary) -> Result<SummaryOutcome>;

    /// The history baseline of a canary, in one query: the summaries matching `filter` (see
    /// [`SummaryFilter`]), the most recent deployment first.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn release_summaries(&self, filter: &SummaryFilter) -> Result<Vec<ReleaseSummary>>;

    /// Records a rollback of a stored deployment in one transaction:
    /// `(Rollback)-[:UNDID]->(DeploymentEvent)` and, for the restored deployment (the one the
    /// rollback names, else the undone deployment's previous one, `FOLLOWS`, when stored),
    /// `(Rollback)-[:RESTORED]->(DeploymentEvent)`; unless it is a dry run, the undone
    /// deployment's status becomes `rolled_back` (when its status can advance to it). The same
    /// rollback again writes nothing (`Unchanged`); other facts under its uid, or a restored
    /// deployment of another service or environment, are a `Conflict` (nothing written).
    ///
    /// # Errors
    /// [`Error::NotFound`] when the deployment (`what`: `deployment`) or the named restored one
    /// (`restored deployment`) is not stored (nothing is written); [`Error::Unavailable`].
    async fn record_rollback(&self, rollback: &NewRollback) -> Result<RollbackOutcome>;

    /// The rollbacks that undid these deployments, in one query, newest first (by `at`, ties
    /// by the larger uid); unknown uids have none.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn rollbacks(&self, deployments: &[Uid]) -> Result<Vec<Rollback>>;

    /// Rollbacks matching `filter`, newest first (by `at`, ties by the larger uid), at most
    /// `filter.limit`: timelines.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn list_rollbacks(&self, filter: &RollbackFilter) -> Result<Vec<Rollback>>;

    /// Records an override of the admission gate; `false` when one is stored under its uid
    /// already (a retried admission review), which is left as it is.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn record_gate_override(&self, gate_override: &GateOverride) -> Result<bool>;

    /// Links the overrides of one workload (`kind`, `namespace`, `name`) that are linked to no
    /// deployment yet, were admitted in `[started_at - 1h, started_at + 1min]` and admitted
    /// this pod template (their `template_hash` is `template_hash`, or they have none) to
    /// `deployment` (`(GateOverride)-[:ADMITTED]->(DeploymentEvent)`), in one transaction; how
    /// many. A deployment that is not stored links nothing.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn link_gate_overrides(
        &self,
        deployment: &Uid,
        workload: (&str, &str, &str),
        template_hash: &str,
        started_at: DateTime<Utc>,
    ) -> Result<usize>;

    /// The certificates securing these Services (by uid), each route's as the newest snapshot
    /// saw it ([`SecuredCertificate::current`]), soonest to expire first.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn certificates_securing(&self, services: &[Uid]) -> Result<Vec<SecuredCertificate>>;

    /// Overrides matching `filter`, newest first (by `at`, ties by the larger uid), at most
    /// `filter.limit`.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn list_gate_overrides(&self, filter: &GateOverrideFilter) -> Result<Vec<GateOverride>>;

    /// The services that depend on `service` directly, whatever the source (the reverse of
    /// [`Self::dependencies`]).
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn dependents(&self, service: &ServiceRef) -> Result<Vec<ServiceRef>>;

    /// [`Self::dependents`] of each of `services`, in their order, in one round trip where the
    /// backend allows (attribution walks the dependents of every candidate's service).
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn dependents_of_each(&self, services: &[ServiceRef]) -> Result<Vec<Vec<ServiceRef>>> {
        let mut found = Vec::with_capacity(services.len());
        for service in services {
            found.push(self.dependents(service).await?);
        }
        Ok(found)
    }

    /// [`Self::dependencies`] of each of `services`, in their order, in one round trip where
    /// the backend allows (attribution walks down from the alert's services a hop at a time).
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn dependencies_of_each(&self, services: &[ServiceRef]) -> Result<Vec<Vec<ServiceRef>>> {
        let mut found = Vec::with_capacity(services.len());
        for service in services {
            found.push(self.dependencies(service).await?);
        }
        Ok(found)
    }

    /// For each distinct name of `services`, [`Self::list_alerts`] of that service in
    /// `filter`'s environment and `[since, until]` (its other fields ignored), at most
    /// `filter.limit` each, newest first; together, in one round trip where the backend
    /// allows (attribution reads the alerts of the services around a candidate).
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn alerts_of_services(
        &self,
        services: &[ServiceName],
        filter: &AlertFilter,
    ) -> Result<Vec<Alert>> {
        let mut found = Vec::new();
        let mut seen: Vec<&ServiceName> = Vec::with_capacity(services.len());
        for service in services {
            if seen.contains(&service) {
                continue;
            }
            seen.push(service);
            let of = AlertFilter {
                service: Some(service.clone()),
                environment: filter.environment.clone(),
                since: filter.since,
                until: filter.until,
                limit: filter.limit,
                ..AlertFilter::default()
            };
            found.extend(self.list_alerts(&of).await?);
        }
        Ok(found)
    }

    /// Claims pending follow-ups whose lease is free (never claimed, or its claim ended),
    /// oldest first, revisits ([`FollowUpKind::Revisit`]) after every other kind (a storm's
    /// first answers come before their refinements): each is leased until
    /// `claim.now + claim.lease` and its attempts counted.
    /// Two claimers never hold the same follow-up at once. Follow-ups are written by
    /// [`Self::record_deployments`] (created or updated deployments), [`Self::record_changes`]
    /// (created changes) and [`Self::record_alerts`] (created alerts) in the same transaction
    /// as their facts.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn claim_follow_ups(&self, claim: Claim<'_>) -> Result<Vec<FollowUp>>;

    /// Removes a follow-up that is done, unless it was enqueued again after `enqueued_at` (then
    /// it stays pending, claimable at once).
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn finish_follow_up(
        &self,
        kind: FollowUpKind,
        subject: &Uid,
        enqueued_at: DateTime<Utc>,
    ) -> Result<()>;

    /// Defers a revisit of `alert` until `until`: what it needs cannot be read yet (its metric
    /// shows no break yet, Prometheus did not answer). `claimed` is the enqueue time of the
    /// alert's revisit the caller claimed and is finishing this way (`None` when it holds none,
    /// e.g. after the alert's first attribution):
    /// - no revisit of the alert pending: one is written, claimable at `until`;
    /// - the claimed one, not enqueued again since: it stays, claimable at `until`;
    /// - the claimed one, enqueued again while it was being done: claimable at once (as
    ///   [`Self::finish_follow_up`] leaves it);
    /// - another one pending (`claimed` is `None`): left as it is (it runs sooner).
    ///
    /// A deferred revisit is claimable at once again when a revisit of the alert is enqueued
    /// ([`Self::enqueue_revisits`]): newer facts are not held back. It is not counted as pending
    /// by [`Self::follow_up_stats`] (but as `deferred`).
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn defer_revisit(
        &self,
        alert: &Uid,
        claimed: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// Pending follow-ups (all, or those about `subjects`), claimed or not; revisits deferred
    /// to a later time are counted apart ([`FollowUpStats::deferred`]).
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn follow_up_stats(&self, subjects: Option<&[Uid]>) -> Result<FollowUpStats>;

    /// Enqueues a re-attribution ([`FollowUpKind::Revisit`]) of each of `alerts` at `now`, in
    /// one transaction. A revisit already pending is coalesced: it gets a newer enqueue time
    /// (one being done is done again, see [`Self::finish_follow_up`]). None is enqueued for an
    /// alert whose first attribution is still waiting unclaimed (a [`FollowUpKind::Alert`]
    /// follow-up not leased at `now`): it sees the newer facts anyway. Returns the alerts a
    /// revisit is pending for, in `alerts`' order.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    async fn enqueue_revisits(&self, alerts: &[Uid], now: DateTime<Utc>) -> Result<Vec<Uid>>;

    /// Runs a user's Cypher query read-only after checking its plan ([`cypher::policy`]), with
    /// its time limit, row cap and byte cap.
    ///
    /// # Errors
    /// [`Error::Unsupported`] on a store that does not speak Cypher; [`Error::QueryRefused`]
    /// (its plan loads files, writes, calls a procedure outside the allow-list; a syntax error),
    /// [`Error::QueryTimedOut`], [`Error::Unavailable`].
    async fn read_cypher(&self, request: &cypher::CypherRequest) -> Result<cypher::CypherResult> {
        let _ = request;
        Err(Error::Unsupported {
            backend: self.backend(),
            what: "Cypher queries",
        })
    }
}

/// Where the store lives and how to log in, parsed from `--store` and the credentials options.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// An embedded SQLite database file.
    Sqlite {
        /// Database file.
        path: PathBuf,
    },
    /// A Neo4j server over Bolt.
    Neo4j {
        /// `neo4j://` or `bolt://` URI.
        uri: String,
        /// User name; empty with authentication disabled.
        user: String,
        /// Password.
        password: SecretString,
        /// Pooled connections per process ([`neo4j::Neo4jOptions::max_connections`] when
        /// unset).
        max_connections: Option<usize>,
        /// The database ([`neo4j::DEFAULT_DATABASE`] when unset).
        database: Option<String>,
    },
}

impl StoreConfig {
    /// Parses a store URI.
    ///
    /// # Errors
    /// [`Error::InvalidUri`] for an unknown scheme, an empty path or a URI without a host.
    pub fn parse(uri: &str, user: Option<String>, password: Option<SecretString>) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidUri {
            uri: uri.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(path) = uri.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(invalid(
                    "sqlite:// needs a file path, e.g. sqlite://deploygraph.db",
                ));
            }
            return Ok(Self::Sqlite {
                path: PathBuf::from(path),
            });
        }
        let parsed = url::Url::parse(uri).map_err(|e| invalid(&e.to_string()))?;
        match parsed.scheme() {
            // `+s`: TLS with the system's roots (Neo4j Aura is `neo4j+s://`); `+ssc`: TLS
            // accepting a self-signed certificate.
            "neo4j" | "bolt" | "neo4j+s" | "bolt+s" | "neo4j+ssc" | "bolt+ssc" => {
                if parsed.host_str().is_none_or(str::is_empty) {
                    return Err(invalid("the URI needs a host, e.g. bolt://127.0.0.1:7687"));
                }
                Ok(Self::Neo4j {
                    uri: uri.to_owned(),
                    user: user.unwrap_or_default(),
                    password: password.unwrap_or_else(|| SecretString::from(String::new())),
                    max_connections: None,
                    database: None,
                })
            }
            other => Err(invalid(&format!(
                "unsupported scheme {other:?}; use sqlite://PATH, neo4j://HOST:PORT (a cluster; neo4j+s:// with TLS, as Aura) or bolt://HOST:PORT (one server)"
            ))),
        }
    }
}

impl StoreConfig {
    /// With a Neo4j store's database `name` (nothing for SQLite, or when `name` is `None`).
    #[must_use]
    pub fn with_database(mut self, name: Option<String>) -> Self {
        if let Self::Neo4j { database, .. } = &mut self {
            *database = name.or(database.take());
        }
        self
    }

    /// With a Neo4j store's connection pool of `max` connections per process (nothing for
    /// SQLite, or when `max` is `None`).
    #[must_use]
    pub fn with_max_connections(mut self, max: Option<usize>) -> Self {
        if let Self::Neo4j {
            max_connections, ..
        } = &mut self
        {
            *max_connections = max.or(*max_connections);
        }
        self
    }
}

/// Opens the store described by `config`. Nothing is migrated; call [`GraphStore::migrate`].
///
/// # Errors
/// [`Error::Unavailable`] when a SQLite file cannot be opened; a Neo4j store connects lazily.
pub async fn open(
    config: &StoreConfig,
    migrations: MigrationSource,
) -> Result<Arc<dyn GraphStore>> {
    Ok(match config {
        StoreConfig::Sqlite { path } => {
            Arc::new(sqlite::SqliteStore::open(path, migrations).await?)
        }
        StoreConfig::Neo4j {
            uri,
            user,
            password,
            max_connections,
            database,
        } => {
            let defaults = neo4j::Neo4jOptions::default();
            Arc::new(neo4j::Neo4jStore::connect(
                uri,
                user,
                password,
                neo4j::Neo4jOptions {
                    max_connections: max_connections.unwrap_or(defaults.max_connections).max(1),
                    database: database.clone().or(defaults.database),
                    ..defaults
                },
                migrations,
            )?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_size_is_kept_for_neo4j_only() {
        let neo4j = StoreConfig::parse("bolt://127.0.0.1:7687", None, None)
            .map(|c| c.with_max_connections(Some(64)));
        assert!(matches!(
            neo4j,
            Ok(StoreConfig::Neo4j {
                max_connections: Some(64),
                ..
            })
        ));
        let unset =
            StoreConfig::parse("neo4j://db:7687", None, None).map(|c| c.with_max_connections(None));
        assert!(matches!(
            unset,
            Ok(StoreConfig::Neo4j {
                max_connections: None,
                ..
            })
        ));
        let named = StoreConfig::parse("neo4j://db:7687", None, None)
            .map(|c| c.with_database(Some("graph".into())));
        assert!(matches!(
            named,
            Ok(StoreConfig::Neo4j {
                database: Some(ref d),
                ..
            }) if d == "graph"
        ));
        let sqlite = StoreConfig::parse("sqlite://x.db", None, None)
            .map(|c| c.with_max_connections(Some(8)));
        assert!(matches!(sqlite, Ok(StoreConfig::Sqlite { .. })));
    }

    #[test]
    fn store_uris_select_the_backend() {
        assert!(matches!(
            StoreConfig::parse("sqlite://x.db", None, None),
            Ok(StoreConfig::Sqlite { .. })
        ));
        assert!(matches!(
            StoreConfig::parse("bolt://127.0.0.1:7687", None, None),
            Ok(StoreConfig::Neo4j { .. })
        ));
        assert!(matches!(
            StoreConfig::parse("neo4j://db:7687", Some("neo4j".into()), None),
            Ok(StoreConfig::Neo4j { .. })
        ));
        assert!(matches!(
            StoreConfig::parse("neo4j+s://abcd1234.databases.neo4j.io", None, None),
            Ok(StoreConfig::Neo4j { .. })
        ));
        for bad in ["sqlite://", "postgres://x", "bolt://", "deploygraph.db"] {
            assert!(StoreConfig::parse(bad, None, None).is_err(), "{bad}");
        }
    }
}
