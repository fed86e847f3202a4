//! A store decorator for the watcher tests: the real store, except for the deployment and
//! change writes a test chooses to fail, with the error it chooses.
#![allow(dead_code)]

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deploygraph_model::{
    Alert, AlertOutcome, ChaosRun, Deployment, Environment, InfraSnapshot, ServiceName, ServiceRef,
    Trigger, Uid,
};
use deploygraph_store::{
    AlertFilter, AppliedMigration, ChaosFilter, DeploymentFilter, Error, GraphStore, Page,
    RecordOutcome, Result, ServiceHistory, ServiceSummary, StoredAttribution, StoredDeployment,
    cypher,
};
use std::sync::Arc;

/// Decides the fate of one deployment write: `Some(error)` fails it.
pub type Fault = Box<dyn Fn(&Deployment) -> Option<Error> + Send + Sync>;

/// Decides the fate of one change write: `Some(error)` fails it.
pub type ChangeFault = Box<dyn Fn(&deploygraph_model::Change) -> Option<Error> + Send + Sync>;

/// `inner`, with the deployment writes `fault` fails and the change writes `change_fault`
/// fails.
pub struct FaultyStore {
    inner: Arc<dyn GraphStore>,
    fault: Fault,
    change_fault: ChangeFault,
}

impl FaultyStore {
    /// `inner`, failing the deployment writes `fault` says.
    pub fn wrap(
        inner: Arc<dyn GraphStore>,
        fault: impl Fn(&Deployment) -> Option<Error> + Send + Sync + 'static,
    ) -> Arc<dyn GraphStore> {
        Arc::new(Self {
            inner,
            fault: Box::new(fault),
            change_fault: Box::new(|_| None),
        })
    }

    /// `inner`, failing the change writes `fault` says.
    pub fn wrap_changes(
        inner: Arc<dyn GraphStore>,
        fault: impl Fn(&deploygraph_model::Change) -> Option<Error> + Send + Sync + 'static,
    ) -> Arc<dyn GraphStore> {
        Arc::new(Self {
            inner,
            fault: Box::new(|_| None),
            change_fault: Box::new(fault),
        })
    }
}

/// What a store says when it refuses a record for good (a constraint, say).
pub fn rejected() -> Error {
    Error::Backend {
        backend: "test",
        operation: "record deployments",
        source: "the record violates a constraint".into(),
    }
}

/// What a store says while it is down.
pub fn unavailable() -> Error {
    Error::Unavailable {
        backend: "test",
        source: "connection refused".into(),
    }
}

#[async_trait]
impl GraphStore for FaultyStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn migrate(&self) -> Result<Vec<AppliedMigration>> {
        self.inner.migrate().await
    }
    async fn ready(&self) -> Result<()> {
        self.inner.ready().await
    }
    async fn record_deployments(&self, batch: Vec<Deployment>) -> Result<Vec<RecordOutcome>> {
        if let Some(e) = batch.iter().find_map(|d| (self.fault)(d)) {
            return Err(e);
        }
        self.inner.record_deployments(batch).await
    }
    async fn get_deployment(&self, uid: &Uid) -> Result<Option<StoredDeployment>> {
        self.inner.get_deployment(uid).await
    }
    async fn list_deployments(&self, filter: &DeploymentFilter) -> Result<Page<StoredDeployment>> {
        self.inner.list_deployments(filter).await
    }
    async fn record_snapshot(&self, snapshot: &InfraSnapshot) -> Result<()> {
        self.inner.record_snapshot(snapshot).await
    }
    async fn get_snapshot(&self, uid: &Uid) -> Result<Option<InfraSnapshot>> {
        self.inner.get_snapshot(uid).await
    }
    async fn snapshot_for_deployment(&self, uid: &Uid) -> Result<Option<InfraSnapshot>> {
        self.inner.snapshot_for_deployment(uid).await
    }
    async fn latest_snapshot(&self, cluster: Option<&str>) -> Result<Option<InfraSnapshot>> {
        self.inner.latest_snapshot(cluster).await
    }
    async fn list_services(&self) -> Result<Vec<ServiceSummary>> {
        self.inner.list_services().await
    }
    async fn list_snapshots(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<InfraSnapshot>> {
        self.inner.list_snapshots(since, until, limit).await
    }
    async fn find_services(
        &self,
        name: &ServiceName,
        namespace: Option<&str>,
        environment: Option<&Environment>,
        cluster: Option<&deploygraph_model::Cluster>,
    ) -> Result<Vec<ServiceRef>> {
        self.inner
            .find_services(name, namespace, environment, cluster)
            .await
    }
    async fn record_alerts(&self, alerts: Vec<Alert>) -> Result<Vec<(Alert, AlertOutcome)>> {
        self.inner.record_alerts(alerts).await
    }
    async fn get_alert(&self, uid: &Uid) -> Result<Option<Alert>> {
        self.inner.get_alert(uid).await
    }
    async fn get_alerts(&self, uids: &[Uid]) -> Result<Vec<Alert>> {
        self.inner.get_alerts(uids).await
    }
    async fn set_alert_service_metrics(
        &self,
        uid: &Uid,
        metrics: &std::collections::BTreeMap<String, deploygraph_model::ServiceMetric>,
    ) -> Result<bool> {
        self.inner.set_alert_service_metrics(uid, metrics).await
    }
    async fn set_alert_onset(
        &self,
        uid: &Uid,
        onset: &deploygraph_model::MetricOnset,
    ) -> Result<bool> {
        self.inner.set_alert_onset(uid, onset).await
    }
    async fn list_alerts(&self, filter: &AlertFilter) -> Result<Vec<Alert>> {
        self.inner.list_alerts(filter).await
    }
    async fn alert_services(&self, alert: &Uid) -> Result<Vec<ServiceRef>> {
        self.inner.alert_services(alert).await
    }
    async fn set_dependencies(
        &self,
        service: &ServiceRef,
        depends_on: &[ServiceRef],
    ) -> Result<()> {
        self.inner.set_dependencies(service, depends_on).await
    }
    async fn apply_topology(&self, update: &deploygraph_store::TopologyUpdate) -> Result<()> {
        self.inner.apply_topology(update).await
    }
    async fn service_topology(
        &self,
        service: &ServiceRef,
    ) -> Result<deploygraph_model::topology::ServiceTopologyView> {
        self.inner.service_topology(service).await
    }
    async fn dependencies(&self, service: &ServiceRef) -> Result<Vec<ServiceRef>> {
        self.inner.dependencies(service).await
    }
    async fn record_verdict(
        &self,
        verdict: &deploygraph_model::SuspectVerdict,
    ) -> Result<Option<deploygraph_store::VerdictOutcome>> {
        self.inner.record_verdict(verdict).await
    }
    async fn verdicts(&self, alerts: &[Uid]) -> Result<Vec<deploygraph_model::SuspectVerdict>> {
        self.inner.verdicts(alerts).await
    }
    async fn top_triggers(&self, alerts: &[Uid]) -> Result<Vec<deploygraph_model::Trigger>> {
        self.inner.top_triggers(alerts).await
    }
    async fn triggered_by(
        &self,
        subjects: &[Uid],
    ) -> Result<Vec<deploygraph_store::SubjectTrigger>> {
        self.inner.triggered_by(subjects).await
    }
    async fn get_deployments(&self, uids: &[Uid]) -> Result<Vec<StoredDeployment>> {
        self.inner.get_deployments(uids).await
    }
    async fn dependents(&self, service: &ServiceRef) -> Result<Vec<ServiceRef>> {
        self.inner.dependents(service).await
    }
    async fn claim_follow_ups(
        &self,
        claim: deploygraph_store::Claim<'_>,
    ) -> Result<Vec<deploygraph_store::FollowUp>> {
        self.inner.claim_follow_ups(claim).await
    }
    async fn finish_follow_up(
        &self,
        kind: deploygraph_store::FollowUpKind,
        subject: &Uid,
        enqueued_at: DateTime<Utc>,
    ) -> Result<()> {
        self.inner
            .finish_follow_up(kind, subject, enqueued_at)
            .await
    }
    async fn follow_up_stats(
        &self,
        subjects: Option<&[Uid]>,
    ) -> Result<deploygraph_store::FollowUpStats> {
        self.inner.follow_up_stats(subjects).await
    }
    async fn defer_revisit(
        &self,
        alert: &Uid,
        claimed: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.inner.defer_revisit(alert, claimed, until, now).await
    }
    async fn enqueue_revisits(&self, alerts: &[Uid], now: DateTime<Utc>) -> Result<Vec<Uid>> {
        self.inner.enqueue_revisits(alerts, now).await
    }
    async fn deployments_between(
        &self,
        services: &[Uid],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<StoredDeployment>> {
        self.inner.deployments_between(services, from, to).await
    }
    async fn service_history(
        &self,
        service: &Uid,
        before: DateTime<Utc>,
    ) -> Result<ServiceHistory> {
        self.inner.service_history(service, before).await
    }
    async fn key_history(
        &self,
        paths: &[String],
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<deploygraph_store::KeyHistory>> {
        self.inner.key_history(paths, before, limit).await
    }
    async fn record_changes(
        &self,
        batch: Vec<deploygraph_model::Change>,
    ) -> Result<Vec<deploygraph_store::ChangeOutcome>> {
        if let Some(e) = batch.iter().find_map(|c| (self.change_fault)(c)) {
            return Err(e);
        }
        self.inner.record_changes(batch).await
    }
    async fn get_change(&self, uid: &Uid) -> Result<Option<deploygraph_model::Change>> {
        self.inner.get_change(uid).await
    }
    async fn get_changes(&self, uids: &[Uid]) -> Result<Vec<deploygraph_model::Change>> {
        self.inner.get_changes(uids).await
    }
    async fn changes_between(
        &self,
        services: &[Uid],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<deploygraph_model::Change>> {
        self.inner.changes_between(services, from, to).await
    }
    async fn list_changes(
        &self,
        filter: &deploygraph_store::ChangeFilter,
    ) -> Result<Vec<deploygraph_model::Change>> {
        self.inner.list_changes(filter).await
    }
    async fn replace_attribution(
        &self,
        alert: &Uid,
        triggers: &[Trigger],
        chaos: Option<(&Uid, &str)>,
    ) -> Result<()> {
        self.inner.replace_attribution(alert, triggers, chaos).await
    }
    async fn attribution(&self, alert: &Uid) -> Result<StoredAttribution> {
        self.inner.attribution(alert).await
    }
    async fn record_chaos_run(&self, run: &ChaosRun) -> Result<()> {
        self.inner.record_chaos_run(run).await
    }
    async fn get_chaos_run(&self, uid: &Uid) -> Result<Option<ChaosRun>> {
        self.inner.get_chaos_run(uid).await
    }
    async fn list_chaos_runs(&self, filter: &ChaosFilter) -> Result<Vec<ChaosRun>> {
        self.inner.list_chaos_runs(filter).await
    }

    async fn record_canary_analysis(
        &self,
        analysis: &deploygraph_model::NewCanaryAnalysis,
    ) -> deploygraph_store::Result<deploygraph_store::CanaryOutcome> {
        self.inner.record_canary_analysis(analysis).await
    }

    async fn canary_analyses(
        &self,
        deployments: &[deploygraph_model::Uid],
    ) -> deploygraph_store::Result<Vec<deploygraph_model::CanaryAnalysis>> {
        self.inner.canary_analyses(deployments).await
    }

    async fn list_canary_analyses(
        &self,
        filter: &deploygraph_store::CanaryFilter,
    ) -> deploygraph_store::Result<Vec<deploygraph_model::CanaryAnalysis>> {
        self.inner.list_canary_analyses(filter).await
    }
    async fn record_release_summary(
        &self,
        summary: &deploygraph_model::NewReleaseSummary,
    ) -> deploygraph_store::Result<deploygraph_store::SummaryOutcome> {
        self.inner.record_release_summary(summary).await
    }
    async fn release_summaries(
        &self,
        filter: &deploygraph_store::SummaryFilter,
    ) -> deploygraph_store::Result<Vec<deploygraph_model::ReleaseSummary>> {
        self.inner.release_summaries(filter).await
    }

    async fn record_rollback(
        &self,
        rollback: &deploygraph_model::NewRollback,
    ) -> deploygraph_store::Result<deploygraph_store::RollbackOutcome> {
        self.inner.record_rollback(rollback).await
    }

    async fn rollbacks(
        &self,
        deployments: &[deploygraph_model::Uid],
    ) -> deploygraph_store::Result<Vec<deploygraph_model::Rollback>> {
        self.inner.rollbacks(deployments).await
    }

    async fn list_rollbacks(
        &self,
        filter: &deploygraph_store::RollbackFilter,
    ) -> deploygraph_store::Result<Vec<deploygraph_model::Rollback>> {
        self.inner.list_rollbacks(filter).await
    }

    async fn certificates_securing(
        &self,
        services: &[deploygraph_model::Uid],
    ) -> deploygraph_store::Result<Vec<deploygraph_store::SecuredCertificate>> {
        self.inner.certificates_securing(services).await
    }
    async fn record_gate_override(
        &self,
        gate_override: &deploygraph_model::GateOverride,
    ) -> deploygraph_store::Result<bool> {
        self.inner.record_gate_override(gate_override).await
    }
    async fn link_gate_overrides(
        &self,
        deployment: &deploygraph_model::Uid,
        workload: (&str, &str, &str),
        template_hash: &str,
        started_at: chrono::DateTime<chrono::Utc>,
    ) -> deploygraph_store::Result<usize> {
        self.inner
            .link_gate_overrides(deployment, workload, template_hash, started_at)
            .await
    }
    async fn list_gate_overrides(
        &self,
        filter: &deploygraph_store::GateOverrideFilter,
    ) -> deploygraph_store::Result<Vec<deploygraph_model::GateOverride>> {
        self.inner.list_gate_overrides(filter).await
    }
    async fn read_cypher(&self, request: &cypher::CypherRequest) -> Result<cypher::CypherResult> {
        self.inner.read_cypher(request).await
    }
}
