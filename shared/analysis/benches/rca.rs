//! Root-cause query benchmark: latency of the suspects and common-factors queries on a graph of
//! 1,000 services, 100,000 deployments and 100,000 alerts, and on a graph ten times smaller (the
//! baseline, generated and measured in the same run), on SQLite and on Neo4j. Prints Markdown
//! tables for docs/benchmarks.md: latency percentiles per query, then where the time goes (every
//! `GraphStore` call timed).
//!
//! ```sh
//! scripts/services up neo4j && eval "$(scripts/services env)"
//! cargo bench -p deploygraph-analysis --bench rca -- both      # or sqlite | neo4j | cleanup
//! ```
//!
//! Options (environment): `BENCH_SERVICES` (1000), `BENCH_DEPLOYMENTS` (100000), `BENCH_ALERTS`
//! (100000), `BENCH_SAMPLES` (300), `BENCH_BATCH` (1000), `BENCH_MAX_ALERT_MINUTES` (15: give up
//! when recording the alerts would take longer). `BENCH_RCA_BACKEND` selects the backend when no
//! argument does.
//!
//! The Neo4j server is shared with the test suite: every service this benchmark creates is named
//! `bench-rca-<run>-…`, and everything it wrote is deleted at the end, also after a panic or
//! Ctrl-C. `-- cleanup` deletes what killed runs left behind.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use deploygraph_analysis::attribution::Settings;
use deploygraph_analysis::engine;
use deploygraph_model::fixture::minute;
use deploygraph_model::{
    Alert, AlertOutcome, ChaosRun, Deployment, DeploymentStatus, Environment, InfraSnapshot,
    ServiceName, ServiceRef, Trigger, Uid,
};
use deploygraph_store::neo4j::{Neo4jOptions, Neo4jStore};
use deploygraph_store::sqlite::SqliteStore;
use deploygraph_store::{
    AlertFilter, AppliedMigration, ChaosFilter, DeploymentFilter, GraphStore, MigrationSource,
    Page, RecordKind, RecordOutcome, ServiceHistory, ServiceSummary, StoredAttribution,
    StoredDeployment,
};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Every name this benchmark writes to a shared Neo4j starts with this.
const NAME_ROOT: &str = "bench-rca-";

/// Config keys a deployment changes: a small vocabulary, so that failures share keys.
const CONFIG_KEYS: [&str; 8] = [
    "values.replicas",
    "values.redis.pool.size",
    "values.resources.limits.memory",
    "values.logLevel",
    "values.timeouts.upstream",
    "values.featureFlags.newCheckout",
    "values.db.maxConnections",
    "values.hpa.targetCPU",
];

/// Keys failed deployments change more often than others.
const RISKY_KEYS: [&str; 2] = [
    "values.db.maxConnections",
    "values.featureFlags.newCheckout",
];

const AUTHORS: usize = 12;
const DAYS: i64 = 90;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// Timing every store call
// ---------------------------------------------------------------------------------------------

/// A [`GraphStore`] that times every call it delegates, by method.
struct Timed {
    inner: Arc<dyn GraphStore>,
    calls: Mutex<BTreeMap<&'static str, Vec<std::time::Duration>>>,
}

impl Timed {
    fn new(inner: Arc<dyn GraphStore>) -> Self {
        Self {
            inner,
            calls: Mutex::new(BTreeMap::new()),
        }
    }

    async fn time<T>(&self, method: &'static str, call: impl Future<Output = T>) -> T {
        let started = Instant::now();
        let out = call.await;
        let took = started.elapsed();
        self.calls
            .lock()
            .expect("timings lock")
            .entry(method)
            .or_default()
            .push(took);
        out
    }

    /// The calls timed since the last take.
    fn take(&self) -> BTreeMap<&'static str, Vec<std::time::Duration>> {
        std::mem::take(&mut *self.calls.lock().expect("timings lock"))
    }
}

#[async_trait]
impl GraphStore for Timed {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn migrate(&self) -> deploygraph_store::Result<Vec<AppliedMigration>> {
        self.time("migrate", self.inner.migrate()).await
    }
    async fn ready(&self) -> deploygraph_store::Result<()> {
        self.time("ready", self.inner.ready()).await
    }
    async fn record_deployments(
        &self,
        batch: Vec<Deployment>,
    ) -> deploygraph_store::Result<Vec<RecordOutcome>> {
        self.time("record_deployments", self.inner.record_deployments(batch))
            .await
    }
    async fn get_deployment(
        &self,
        uid: &Uid,
    ) -> deploygraph_store::Result<Option<StoredDeployment>> {
        self.time("get_deployment", self.inner.get_deployment(uid))
            .await
    }
    async fn list_deployments(
        &self,
        filter: &DeploymentFilter,
    ) -> deploygraph_store::Result<Page<StoredDeployment>> {
        self.time("list_deployments", self.inner.list_deployments(filter))
            .await
    }
    async fn record_snapshot(&self, snapshot: &InfraSnapshot) -> deploygraph_store::Result<()> {
        self.time("record_snapshot", self.inner.record_snapshot(snapshot))
            .await
    }
    async fn get_snapshot(&self, uid: &Uid) -> deploygraph_store::Result<Option<InfraSnapshot>> {
        self.time("get_snapshot", self.inner.get_snapshot(uid))
            .await
    }
    async fn snapshot_for_deployment(
        &self,
        uid: &Uid,
    ) -> deploygraph_store::Result<Option<InfraSnapshot>> {
        self.time(
            "snapshot_for_deployment",
            self.inner.snapshot_for_deployment(uid),
        )
        .await
    }
    async fn latest_snapshot(
        &self,
        cluster: Option<&str>,
    ) -> deploygraph_store::Result<Option<InfraSnapshot>> {
        self.time("latest_snapshot", self.inner.latest_snapshot(cluster))
            .await
    }
    async fn list_services(&self) -> deploygraph_store::Result<Vec<ServiceSummary>> {
        self.time("list_services", self.inner.list_services()).await
    }
    async fn list_snapshots(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> deploygraph_store::Result<Vec<InfraSnapshot>> {
        self.time(
            "list_snapshots",
            self.inner.list_snapshots(since, until, limit),
        )
        .await
    }
    async fn find_services(
        &self,
        name: &ServiceName,
        namespace: Option<&str>,
        environment: Option<&Environment>,
        cluster: Option<&deploygraph_model::Cluster>,
    ) -> deploygraph_store::Result<Vec<ServiceRef>> {
        self.time(
            "find_services",
            self.inner
                .find_services(name, namespace, environment, cluster),
        )
        .await
    }
    async fn record_alerts(
        &self,
        alerts: Vec<Alert>,
    ) -> deploygraph_store::Result<Vec<(Alert, AlertOutcome)>> {
        self.time("record_alerts", self.inner.record_alerts(alerts))
            .await
    }
    async fn get_alert(&self, uid: &Uid) -> deploygraph_store::Result<Option<Alert>> {
        self.time("get_alert", self.inner.get_alert(uid)).await
    }
    async fn get_alerts(&self, uids: &[Uid]) -> deploygraph_store::Result<Vec<Alert>> {
        self.time("get_alerts", self.inner.get_alerts(uids)).await
    }
    async fn set_alert_service_metrics(
        &self,
        uid: &Uid,
        metrics: &std::collections::BTreeMap<String, deploygraph_model::ServiceMetric>,
    ) -> deploygraph_store::Result<bool> {
        self.inner.set_alert_service_metrics(uid, metrics).await
    }
    async fn set_alert_onset(
        &self,
        uid: &Uid,
        onset: &deploygraph_model::MetricOnset,
    ) -> deploygraph_store::Result<bool> {
        self.inner.set_alert_onset(uid, onset).await
    }
    async fn list_alerts(&self, filter: &AlertFilter) -> deploygraph_store::Result<Vec<Alert>> {
        self.time("list_alerts", self.inner.list_alerts(filter))
            .await
    }
    async fn alert_services(&self, alert: &Uid) -> deploygraph_store::Result<Vec<ServiceRef>> {
        self.time("alert_services", self.inner.alert_services(alert))
            .await
    }
    async fn set_dependencies(
        &self,
        service: &ServiceRef,
        depends_on: &[ServiceRef],
    ) -> deploygraph_store::Result<()> {
        self.time(
            "set_dependencies",
            self.inner.set_dependencies(service, depends_on),
        )
        .await
    }
    async fn apply_topology(
        &self,
        update: &deploygraph_store::TopologyUpdate,
    ) -> deploygraph_store::Result<()> {
        self.time("apply_topology", self.inner.apply_topology(update))
            .await
    }
    async fn service_topology(
        &self,
        service: &ServiceRef,
    ) -> deploygraph_store::Result<deploygraph_model::topology::ServiceTopologyView> {
        self.time("service_topology", self.inner.service_topology(service))
            .await
    }
    async fn dependencies(
        &self,
        service: &ServiceRef,
    ) -> deploygraph_store::Result<Vec<ServiceRef>> {
        self.time("dependencies", self.inner.dependencies(service))
            .await
    }
    async fn dependents(&self, service: &ServiceRef) -> deploygraph_store::Result<Vec<ServiceRef>> {
        self.time("dependents", self.inner.dependents(service))
            .await
    }
    async fn dependents_of_each(
        &self,
        services: &[ServiceRef],
    ) -> deploygraph_store::Result<Vec<Vec<ServiceRef>>> {
        self.time(
            "dependents_of_each",
            self.inner.dependents_of_each(services),
        )
        .await
    }
    async fn dependencies_of_each(
        &self,
        services: &[ServiceRef],
    ) -> deploygraph_store::Result<Vec<Vec<ServiceRef>>> {
        self.time(
            "dependencies_of_each",
            self.inner.dependencies_of_each(services),
        )
        .await
    }
    async fn alerts_of_services(
        &self,
        services: &[ServiceName],
        filter: &AlertFilter,
    ) -> deploygraph_store::Result<Vec<Alert>> {
        self.time(
            "alerts_of_services",
            self.inner.alerts_of_services(services, filter),
        )
        .await
    }
    async fn defer_revisit(
        &self,
        alert: &Uid,
        claimed: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> deploygraph_store::Result<()> {
        self.time(
            "defer_revisit",
            self.inner.defer_revisit(alert, claimed, until, now),
        )
        .await
    }
    async fn enqueue_revisits(
        &self,
        alerts: &[Uid],
        now: DateTime<Utc>,
    ) -> deploygraph_store::Result<Vec<Uid>> {
        self.time("enqueue_revisits", self.inner.enqueue_revisits(alerts, now))
            .await
    }
    async fn claim_follow_ups(
        &self,
        claim: deploygraph_store::Claim<'_>,
    ) -> deploygraph_store::Result<Vec<deploygraph_store::FollowUp>> {
        self.time("claim_follow_ups", self.inner.claim_follow_ups(claim))
            .await
    }
    async fn finish_follow_up(
        &self,
        kind: deploygraph_store::FollowUpKind,
        subject: &Uid,
        enqueued_at: DateTime<Utc>,
    ) -> deploygraph_store::Result<()> {
        self.time(
            "finish_follow_up",
            self.inner.finish_follow_up(kind, subject, enqueued_at),
        )
        .await
    }
    async fn follow_up_stats(
        &self,
        subjects: Option<&[Uid]>,
    ) -> deploygraph_store::Result<deploygraph_store::FollowUpStats> {
        self.time("follow_up_stats", self.inner.follow_up_stats(subjects))
            .await
    }
    async fn deployments_between(
        &self,
        services: &[Uid],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> deploygraph_store::Result<Vec<StoredDeployment>> {
        self.time(
            "deployments_between",
            self.inner.deployments_between(services, from, to),
        )
        .await
    }
    async fn service_history(
        &self,
        service: &Uid,
        before: DateTime<Utc>,
    ) -> deploygraph_store::Result<ServiceHistory> {
        self.time(
            "service_history",
            self.inner.service_history(service, before),
        )
        .await
    }
    async fn service_histories(
        &self,
        queries: &[(Uid, DateTime<Utc>)],
    ) -> deploygraph_store::Result<Vec<ServiceHistory>> {
        self.time("service_histories", self.inner.service_histories(queries))
            .await
    }
    async fn key_history(
        &self,
        paths: &[String],
        before: DateTime<Utc>,
        limit: u32,
    ) -> deploygraph_store::Result<Vec<deploygraph_store::KeyHistory>> {
        self.time("key_history", self.inner.key_history(paths, before, limit))
            .await
    }
    async fn record_changes(
        &self,
        batch: Vec<deploygraph_model::Change>,
    ) -> deploygraph_store::Result<Vec<deploygraph_store::ChangeOutcome>> {
        self.time("record_changes", self.inner.record_changes(batch))
            .await
    }
    async fn get_change(
        &self,
        uid: &Uid,
    ) -> deploygraph_store::Result<Option<deploygraph_model::Change>> {
        self.time("get_change", self.inner.get_change(uid)).await
    }
    async fn get_changes(
        &self,
        uids: &[Uid],
    ) -> deploygraph_store::Result<Vec<deploygraph_model::Change>> {
        self.time("get_changes", self.inner.get_changes(uids)).await
    }
    async fn changes_between(
        &self,
        services: &[Uid],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> deploygraph_store::Result<Vec<deploygraph_model::Change>> {
        self.time(
            "changes_between",
            self.inner.changes_between(services, from, to),
        )
        .await
    }
    async fn list_changes(
        &self,
        filter: &deploygraph_store::ChangeFilter,
    ) -> deploygraph_store::Result<Vec<deploygraph_model::Change>> {
        self.time("list_changes", self.inner.list_changes(filter))
            .await
    }
    async fn replace_attribution(
        &self,
        alert: &Uid,
        triggers: &[Trigger],
        chaos: Option<(&Uid, &str)>,
    ) -> deploygraph_store::Result<()> {
        self.time(
            "replace_attribution",
            self.inner.replace_attribution(alert, triggers, chaos),
        )
        .await
    }
    async fn attribution(&self, alert: &Uid) -> deploygraph_store::Result<StoredAttribution> {
        self.time("attribution", self.inner.attribution(alert))
            .await
    }
    async fn record_verdict(
        &self,
        verdict: &deploygraph_model::SuspectVerdict,
    ) -> deploygraph_store::Result<Option<deploygraph_store::VerdictOutcome>> {
        self.time("record_verdict", self.inner.record_verdict(verdict))
            .await
    }
    async fn verdicts(
        &self,
        alerts: &[Uid],
    ) -> deploygraph_store::Result<Vec<deploygraph_model::SuspectVerdict>> {
        self.time("verdicts", self.inner.verdicts(alerts)).await
    }
    async fn top_triggers(&self, alerts: &[Uid]) -> deploygraph_store::Result<Vec<Trigger>> {
        self.time("top_triggers", self.inner.top_triggers(alerts))
            .await
    }
    async fn triggered_by(
        &self,
        subjects: &[Uid],
    ) -> deploygraph_store::Result<Vec<deploygraph_store::SubjectTrigger>> {
        self.time("triggered_by", self.inner.triggered_by(subjects))
            .await
    }
    async fn get_deployments(
        &self,
        uids: &[Uid],
    ) -> deploygraph_store::Result<Vec<StoredDeployment>> {
        self.time("get_deployments", self.inner.get_deployments(uids))
            .await
    }
    async fn record_chaos_run(&self, run: &ChaosRun) -> deploygraph_store::Result<()> {
        self.time("record_chaos_run", self.inner.record_chaos_run(run))
            .await
    }
    async fn get_chaos_run(&self, uid: &Uid) -> deploygraph_store::Result<Option<ChaosRun>> {
        self.time("get_chaos_run", self.inner.get_chaos_run(uid))
            .await
    }
    async fn list_chaos_runs(
        &self,
        filter: &ChaosFilter,
    ) -> deploygraph_store::Result<Vec<ChaosRun>> {
        self.time("list_chaos_runs", self.inner.list_chaos_runs(filter))
            .await
    }

    async fn record_canary_analysis(
        &self,
        analysis: &deploygraph_model::NewCanaryAnalysis,
    ) -> deploygraph_store::Result<deploygraph_store::CanaryOutcome> {
        self.time(
            "record_canary_analysis",
            self.inner.record_canary_analysis(analysis),
        )
        .await
    }

    async fn canary_analyses(
        &self,
        deployments: &[deploygraph_model::Uid],
    ) -> deploygraph_store::Result<Vec<deploygraph_model::CanaryAnalysis>> {
        self.time("canary_analyses", self.inner.canary_analyses(deployments))
            .await
    }

    async fn list_canary_analyses(
        &self,
        filter: &deploygraph_store::CanaryFilter,
    ) -> deploygraph_store::Result<Vec<deploygraph_model::CanaryAnalysis>> {
        self.time(
            "list_canary_analyses",
            self.inner.list_canary_analyses(filter),
        )
        .await
    }
    async fn record_release_summary(
        &self,
        summary: &deploygraph_model::NewReleaseSummary,
    ) -> deploygraph_store::Result<deploygraph_store::SummaryOutcome> {
        self.time(
            "record_release_summary",
            self.inner.record_release_summary(summary),
        )
        .await
    }
    async fn release_summaries(
        &self,
        filter: &deploygraph_store::SummaryFilter,
    ) -> deploygraph_store::Result<Vec<deploygraph_model::ReleaseSummary>> {
        self.time("release_summaries", self.inner.release_summaries(filter))
            .await
    }

    async fn record_rollback(
        &self,
        rollback: &deploygraph_model::NewRollback,
    ) -> deploygraph_store::Result<deploygraph_store::RollbackOutcome> {
        self.time("record_rollback", self.inner.record_rollback(rollback))
            .await
    }

    async fn rollbacks(
        &self,
        deployments: &[deploygraph_model::Uid],
    ) -> deploygraph_store::Result<Vec<deploygraph_model::Rollback>> {
        self.time("rollbacks", self.inner.rollbacks(deployments))
            .await
    }

    async fn list_rollbacks(
        &self,
        filter: &deploygraph_store::RollbackFilter,
    ) -> deploygraph_store::Result<Vec<deploygraph_model::Rollback>> {
        self.time("list_rollbacks", self.inner.list_rollbacks(filter))
            .await
    }

    async fn certificates_securing(
        &self,
        services: &[deploygraph_model::Uid],
    ) -> deploygraph_store::Result<Vec<deploygraph_store::SecuredCertificate>> {
        self.time(
            "certificates_securing",
            self.inner.certificates_securing(services),
        )
        .await
    }
    async fn record_gate_override(
        &self,
        gate_override: &deploygraph_model::GateOverride,
    ) -> deploygraph_store::Result<bool> {
        self.time(
            "record_gate_override",
            self.inner.record_gate_override(gate_override),
        )
        .await
    }
    async fn link_gate_overrides(
        &self,
        deployment: &deploygraph_model::Uid,
        workload: (&str, &str, &str),
        template_hash: &str,
        started_at: chrono::DateTime<chrono::Utc>,
    ) -> deploygraph_store::Result<usize> {
        self.time(
            "link_gate_overrides",
            self.inner
                .link_gate_overrides(deployment, workload, template_hash, started_at),
        )
        .await
    }
    async fn list_gate_overrides(
        &self,
        filter: &deploygraph_store::GateOverrideFilter,
    ) -> deploygraph_store::Result<Vec<deploygraph_model::GateOverride>> {
        self.time(
            "list_gate_overrides",
            self.inner.list_gate_overrides(filter),
        )
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// The graph
// ---------------------------------------------------------------------------------------------

/// How big a graph to generate.
#[derive(Debug, Clone, Copy)]
struct Size {
    label: &'static str,
    /// Distinguishes the graphs' names within a run.
    tag: &'static str,
    services: usize,
    deployments: usize,
    alerts: usize,
}

/// What a generated graph holds, for picking samples.
struct Graph {
    services: Vec<ServiceName>,
    alerts: Vec<Alert>,
    generation: Vec<(String, f64, usize)>,
}

/// A service index skewed towards low indices (density ∝ 1/√i): a few services deploy and alert
/// far more often than the rest, as in real fleets. With 1,000 services and 100,000 deployments
/// the busiest gets about 3,000 deployments, the median one about 70.
fn skewed(rng: &mut StdRng, n: usize) -> usize {
    let u: f64 = rng.random();
    ((u * u) * n as f64).floor().min((n - 1) as f64) as usize
}

/// Generates and records the graph through the `GraphStore` API.
async fn generate(
    store: &dyn GraphStore,
    run: &str,
    run_bits: u64,
    size: Size,
    batch: usize,
    rng: &mut StdRng,
) -> Graph {
    let services: Vec<ServiceName> = (0..size.services)
        .map(|i| {
            ServiceName::parse(&format!("{run}-{}{i:04}", size.tag)).expect("valid service name")
        })
        .collect();
    let mut generation = Vec::new();

    // Deployments, oldest first (as CI reports them), so FOLLOWS chains grow at their ends.
    let started = Instant::now();
    let minutes = DAYS * 24 * 60;
    let mut plan: Vec<(i64, usize)> = (0..size.deployments)
        .map(|_| (rng.random_range(0..minutes), skewed(rng, size.services)))
        .collect();
    plan.sort_unstable();
    let mut releases = vec![(0u32, 0u64); size.services];
    let mut deployments = Vec::with_capacity(plan.len());
    for (j, (at, s)) in plan.into_iter().enumerate() {
        let name = services[s].as_str();
        let roll: f64 = rng.random();
        let status = if roll < 0.06 {
            DeploymentStatus::Failed
        } else if roll < 0.10 {
            DeploymentStatus::RolledBack
        } else {
            DeploymentStatus::Succeeded
        };
        // One deployment in five redeploys the current release (same tag and image).
        let (release, image) = &mut releases[s];
        if *release == 0 || rng.random_bool(0.8) {
            *release += 1;
            *image = (run_bits << 32) | (u64::from(size.tag.as_bytes()[0]) << 24) | j as u64;
        }
        let changed = rng.random_range(0..=3);
        let mut keys: Vec<&str> = CONFIG_KEYS.choose_multiple(rng, changed).copied().collect();
        if status != DeploymentStatus::Succeeded && rng.random_bool(0.6) {
            let risky = RISKY_KEYS.choose(rng).copied().unwrap_or(RISKY_KEYS[0]);
            if !keys.contains(&risky) {
                keys.push(risky);
            }
        }
        let mut builder = Deployment::test()
            .service(name)
            .version(&format!("v1.{release}.0"))
            .commit(&format!(
                "{run_bits:08x}{:02x}{j:030x}",
                size.tag.as_bytes()[0]
            ))
            .image_seed(*image)
            .started_at_minute(at)
            .status(status)
            .finished_at(minute(at + rng.random_range(3..15)));
        for key in keys {
            let before = rng.random_range(1..100u32).to_string();
            let after = rng.random_range(1..100u32).to_string();
            builder = builder.change(key, &before, &after);
        }
        let mut d = builder.build();
        // Each service has three regular authors; the repository names the service, so the
        // Commit nodes are this run's alone (see `cleanup_neo4j`).
        if let Some(commit) = d.commit.as_mut() {
            commit.author = Some(format!(
                "dev{}@acme.io",
                (s + rng.random_range(0..3)) % AUTHORS
            ));
            commit.repo = Some(format!("github.com/acme/{name}"));
        }
        deployments.push(d);
    }
    let mut done = 0;
    let mut last_report = Instant::now();
    for chunk in deployments.chunks(batch) {
        let outcomes = store
            .record_deployments(chunk.to_vec())
            .await
            .expect("record deployments");
        assert!(
            outcomes.iter().all(|o| o.kind == RecordKind::Created),
            "every deployment is new"
        );
        done += chunk.len();
        if last_report.elapsed().as_secs() >= 10 || done == deployments.len() {
            last_report = Instant::now();
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "  {}: {done}/{} deployments, {secs:.0} s, {:.0}/s",
                size.label,
                deployments.len(),
                done as f64 / secs
            );
        }
    }
    let secs = started.elapsed().as_secs_f64();
    generation.push(("deployments".to_owned(), secs, deployments.len()));

    // Topology: each service depends on 0–3 others, preferably the busy "core" services.
    let started = Instant::now();
    let mut edges = 0;
    for (i, name) in services.iter().enumerate() {
        let mut deps: Vec<usize> = Vec::new();
        for _ in 0..rng.random_range(0..=3) {
            let d = skewed(rng, size.services);
            if d != i && !deps.contains(&d) {
                deps.push(d);
            }
        }
        edges += deps.len();
        let deps: Vec<ServiceRef> = deps
            .into_iter()
            .map(|d| ServiceRef::test(services[d].as_str()))
            .collect();
        store
            .set_dependencies(&ServiceRef::test(name.as_str()), &deps)
            .await
            .expect("set dependencies");
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "  {}: {edges} DEPENDS_ON over {} services, {secs:.1} s",
        size.label, size.services
    );
    generation.push((
        "set_dependencies (per service)".to_owned(),
        secs,
        size.services,
    ));

    // Alerts: 30% shortly after a failed or rolled-back deployment, 30% shortly after any
    // deployment, 40% at random on a (skewed) random service; most resolve.
    let started = Instant::now();
    let failed: Vec<&Deployment> = deployments
        .iter()
        .filter(|d| d.status != DeploymentStatus::Succeeded)
        .collect();
    let epoch = minute(0);
    let mut alerts: Vec<Alert> = (0..size.alerts)
        .map(|j| {
            let roll: f64 = rng.random();
            let (service, at) = if roll < 0.6 {
                let d = if roll < 0.3 {
                    failed.choose(rng).copied()
                } else {
                    deployments.choose(rng)
                }
                .expect("deployments");
                (
                    d.service.as_str().to_owned(),
                    (d.started_at - epoch).num_minutes() + rng.random_range(1..60),
                )
            } else {
                (
                    services[skewed(rng, size.services)].as_str().to_owned(),
                    rng.random_range(0..minutes),
                )
            };
            let alert = Alert::test(&format!("{run}-{}fp{j}", size.tag), &service, at);
            if rng.random_bool(0.8) {
                alert.resolved_at(at + rng.random_range(5..120))
            } else {
                alert
            }
        })
        .collect();
    alerts.sort_by_key(|a| a.starts_at);
    let budget = env_usize("BENCH_MAX_ALERT_MINUTES", 15) as f64 * 60.0;
    let mut done = 0;
    let mut last_report = Instant::now();
    for (n, chunk) in alerts.chunks(batch).enumerate() {
        let outcomes = store
            .record_alerts(chunk.to_vec())
            .await
            .expect("record alerts");
        assert!(
            outcomes.iter().all(|(_, o)| *o == AlertOutcome::Created),
            "every alert is new"
        );
        done += chunk.len();
        let secs = started.elapsed().as_secs_f64();
        let rate = done as f64 / secs;
        if n == 0 {
            let projected = alerts.len() as f64 / rate;
            eprintln!(
                "  {}: first {done} alerts in {secs:.1} s ({rate:.0}/s); all {} would take {:.0} s",
                size.label,
                alerts.len(),
                projected
            );
            assert!(
                projected <= budget,
                "recording {} alerts at {rate:.0}/s would take {:.0} min, over BENCH_MAX_ALERT_MINUTES",
                alerts.len(),
                projected / 60.0
            );
        } else if last_report.elapsed().as_secs() >= 10 || done == alerts.len() {
            last_report = Instant::now();
            eprintln!(
                "  {}: {done}/{} alerts, {secs:.0} s, {rate:.0}/s",
                size.label,
                alerts.len()
            );
        }
    }
    let secs = started.elapsed().as_secs_f64();
    generation.push(("alerts".to_owned(), secs, alerts.len()));
    Graph {
        services,
        alerts,
        generation,
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------------------------

/// Latencies of one query, with where the time went.
struct Measured {
    query: &'static str,
    samples: Vec<std::time::Duration>,
    calls: BTreeMap<&'static str, Vec<std::time::Duration>>,
    note: String,
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nearest-rank percentile of sorted durations.
fn percentile(sorted: &[std::time::Duration], p: f64) -> std::time::Duration {
    if sorted.is_empty() {
        return std::time::Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn mean(values: &[std::time::Duration]) -> std::time::Duration {
    if values.is_empty() {
        return std::time::Duration::ZERO;
    }
    values.iter().sum::<std::time::Duration>() / values.len() as u32
}

async fn measure(store: &Timed, graph: &Graph, samples: usize, rng: &mut StdRng) -> Vec<Measured> {
    let settings = Settings::default();
    let warmup = 20.min(graph.alerts.len() / 10);
    let picked: Vec<&Alert> = graph
        .alerts
        .choose_multiple(rng, samples + warmup)
        .collect();
    let (warm, picked) = picked.split_at(warmup);
    // Warm-up: Neo4j compiles each query on first use.
    for alert in warm {
        engine::attribute_alert(store, alert, &settings, Utc::now())
            .await
            .expect("attribute");
        engine::suspects(store, (*alert).clone())
            .await
            .expect("suspects");
    }
    for _ in 0..warmup {
        let service = graph.services.choose(rng).expect("services");
        engine::common_factors_of(store, service, (None, None), 3, Duration::hours(2))
            .await
            .expect("common factors");
    }
    store.take();

    let mut out = Vec::new();
    let mut times = Vec::with_capacity(samples);
    let (mut suspects, mut with_suspects) = (0usize, 0usize);
    for alert in picked {
        let started = Instant::now();
        engine::attribute_alert(store, alert, &settings, Utc::now())
            .await
            .expect("attribute");
        let view = engine::suspects(store, (*alert).clone())
            .await
            .expect("suspects");
        times.push(started.elapsed());
        suspects += view.suspects.len();
        with_suspects += usize::from(!view.suspects.is_empty());
    }
    out.push(Measured {
        query: "suspects, on demand (attribute_alert + suspects)",
        samples: times,
        calls: store.take(),
        note: format!(
            "{:.0}% of alerts got a suspect, {:.2} suspects per alert",
            100.0 * with_suspects as f64 / picked.len().max(1) as f64,
            suspects as f64 / picked.len().max(1) as f64
        ),
    });

    // The same alerts again, in another order, now with their TRIGGERS stored.
    let mut again: Vec<&Alert> = picked.to_vec();
    again.shuffle(rng);
    let mut times = Vec::with_capacity(samples);
    let mut suspects = 0usize;
    for alert in again {
        let started = Instant::now();
        let view = engine::suspects(store, alert.clone())
            .await
            .expect("suspects");
        times.push(started.elapsed());
        suspects += view.suspects.len();
    }
    out.push(Measured {
        query: "suspects, stored (suspects)",
        samples: times,
        calls: store.take(),
        note: format!(
            "{:.2} stored suspects per alert",
            suspects as f64 / picked.len().max(1) as f64
        ),
    });

    let mut times = Vec::with_capacity(samples);
    let (mut examined, mut factors) = (0usize, 0usize);
    for _ in 0..samples {
        let service = graph.services.choose(rng).expect("services");
        let started = Instant::now();
        let view = engine::common_factors_of(store, service, (None, None), 3, Duration::hours(2))
            .await
            .expect("common factors");
        times.push(started.elapsed());
        examined += view.deployments.len();
        factors += view.factors.len();
    }
    out.push(Measured {
        query: "common factors (last 3, window 2 h)",
        samples: times,
        calls: store.take(),
        note: format!(
            "{:.2} failed deployments examined, {:.2} factors per service",
            examined as f64 / samples.max(1) as f64,
            factors as f64 / samples.max(1) as f64
        ),
    });

    // DORA over every service and the whole graph (an unbounded period: every deployment and
    // alert is read), a few times.
    let mut times = Vec::new();
    let mut services = 0usize;
    for _ in 0..3 {
        let started = Instant::now();
        let view = engine::dora_metrics(
            store,
            None,
            (None, None),
            Utc::now() - Duration::days(3650),
            Utc::now() + Duration::days(365),
        )
        .await
        .expect("dora");
        times.push(started.elapsed());
        services = view.services.len();
    }
    out.push(Measured {
        query: "DORA, every service, whole graph",
        samples: times,
        calls: store.take(),
        note: format!("{services} service rows"),
    });
    out
}

/// One backend and graph size's results.
struct Row {
    backend: &'static str,
    size: Size,
    measured: Vec<Measured>,
    generation: Vec<(String, f64, usize)>,
    /// /proc/loadavg before and after measuring: other work on the machine skews latencies.
    load: (String, String),
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Generates the baseline graph and the full graph in `store` and measures each.
async fn run_backend(
    store: Arc<dyn GraphStore>,
    run: String,
    run_bits: u64,
    sizes: Vec<Size>,
) -> Vec<Row> {
    let backend = store.backend();
    let timed = Timed::new(store);
    timed.migrate().await.expect("migrate");
    let batch = env_usize("BENCH_BATCH", 1000);
    let samples = env_usize("BENCH_SAMPLES", 300);
    let mut rng = StdRng::seed_from_u64(0x5eed_0000 ^ run_bits);
    let mut rows = Vec::new();
    for size in sizes {
        eprintln!(
            "{backend}: generating {} ({} services, {} deployments, {} alerts)",
            size.label, size.services, size.deployments, size.alerts
        );
        let started = Instant::now();
        let graph = generate(&timed, &run, run_bits, size, batch, &mut rng).await;
        timed.take();
        eprintln!(
            "{backend}: {} generated in {:.0} s; measuring {samples} samples per query",
            size.label,
            started.elapsed().as_secs_f64()
        );
        let load_before = loadavg();
        let measured = measure(&timed, &graph, samples, &mut rng).await;
        let load = (load_before, loadavg());
        for m in &measured {
            let mut sorted = m.samples.clone();
            sorted.sort_unstable();
            eprintln!(
                "{backend} {}: {}: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms ({})",
                size.label,
                m.query,
                ms(percentile(&sorted, 50.0)),
                ms(percentile(&sorted, 95.0)),
                ms(percentile(&sorted, 99.0)),
                m.note
            );
        }
        rows.push(Row {
            backend,
            size,
            measured,
            generation: graph.generation,
            load,
        });
    }
    rows
}

// ---------------------------------------------------------------------------------------------
// Neo4j: connecting and cleaning up
// ---------------------------------------------------------------------------------------------

fn neo4j_uri() -> String {
    std::env::var("NEO4J_TEST_URI").expect(
        "NEO4J_TEST_URI: start Neo4j with scripts/services up neo4j && eval \"$(scripts/services env)\"",
    )
}

/// Deletes, in bounded transactions, everything written under services named `prefix…`: their
/// deployments with their changes, validation results and follow-ups, their commits and images
/// (whose repository names the service), their alerts (with TRIGGERS and follow-ups), and the
/// services. (Follow-ups left behind would make every later run's follow-up reads slower.)
async fn cleanup_neo4j(prefix: &str) -> neo4rs::Result<u64> {
    let graph = neo4rs::Graph::new(neo4j_uri(), "", "")?;
    let repo = |host: &str| format!("{host}/acme/{prefix}");
    let steps: [(&str, String, &str); 5] = [
        (
            "deployments",
            prefix.to_owned(),
            "MATCH (d:DeploymentEvent) WHERE d.service STARTS WITH $p
             WITH d LIMIT 5000
             OPTIONAL MATCH (d)-[:CHANGED|VALIDATED_BY]->(x)
             WITH d, collect(x) AS own
             OPTIONAL MATCH (f:FollowUp {subject: d.uid})
             WITH d, own, collect(f) AS queued
             FOREACH (x IN own + queued | DETACH DELETE x)
             DETACH DELETE d
             RETURN count(*) AS n",
        ),
        (
            "commits",
            repo("github.com"),
            "MATCH (c:Commit) WHERE c.repo STARTS WITH $p
             WITH c LIMIT 10000 DETACH DELETE c RETURN count(*) AS n",
        ),
        (
            "images",
            repo("ghcr.io"),
            "MATCH (i:Image) WHERE i.repository STARTS WITH $p
             WITH i LIMIT 10000 DETACH DELETE i RETURN count(*) AS n",
        ),
        (
            "alerts",
            prefix.to_owned(),
            "MATCH (a:Alert) WHERE a.service STARTS WITH $p
             WITH a LIMIT 10000
             OPTIONAL MATCH (f:FollowUp {subject: a.uid})
             WITH a, collect(f) AS queued
             FOREACH (f IN queued | DELETE f)
             DETACH DELETE a RETURN count(*) AS n",
        ),
        (
            "services",
            prefix.to_owned(),
            "MATCH (s:Service) WHERE s.name STARTS WITH $p
             WITH s LIMIT 10000 DETACH DELETE s RETURN count(*) AS n",
        ),
    ];
    let mut total = 0u64;
    for (what, p, text) in steps {
        let mut deleted = 0u64;
        loop {
            let mut rows = graph
                .execute(neo4rs::query(text).param("p", p.as_str()))
                .await?;
            let n: i64 = match rows.next().await? {
                Some(row) => row.get("n").unwrap_or(0),
                None => 0,
            };
            while rows.next().await?.is_some() {}
            if n == 0 {
                break;
            }
            deleted += n as u64;
        }
        eprintln!("neo4j cleanup: {deleted} {what} under {prefix}");
        total += deleted;
    }
    // What is left that this prefix names (0 expected).
    let mut rows = graph
        .execute(
            neo4rs::query(
                "CALL { MATCH (s:Service) WHERE s.name STARTS WITH $p RETURN count(s) AS n
                        UNION ALL
                        MATCH (a:Alert) WHERE a.service STARTS WITH $p RETURN count(a) AS n
                        UNION ALL
                        MATCH (d:DeploymentEvent) WHERE d.service STARTS WITH $p RETURN count(d) AS n }
                 RETURN sum(n) AS n",
            )
            .param("p", prefix),
        )
        .await?;
    if let Some(row) = rows.next().await? {
        let left: i64 = row.get("n").unwrap_or(-1);
        eprintln!("neo4j cleanup: {left} nodes left under {prefix}");
    }
    Ok(total)
}

/// Runs the Neo4j measurement and deletes what it wrote whether it finishes, panics or is
/// interrupted.
async fn run_neo4j(run: String, run_bits: u64, sizes: Vec<Size>) -> Vec<Row> {
    let store: Arc<dyn GraphStore> = Arc::new(
        Neo4jStore::connect(
            &neo4j_uri(),
            "",
            &SecretString::from(String::new()),
            Neo4jOptions::default(),
            MigrationSource::Embedded,
        )
        .expect("neo4j"),
    );
    // The trailing dash keeps another run whose id starts with this one's out of reach.
    let prefix = format!("{run}-");
    let mut work = tokio::spawn(run_backend(store, run, run_bits, sizes));
    let outcome = tokio::select! {
        outcome = &mut work => outcome,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("interrupted: deleting what this run wrote to Neo4j");
            work.abort();
            let _ = work.await;
            if let Err(e) = cleanup_neo4j(&prefix).await {
                eprintln!("neo4j cleanup failed: {e}; run `-- cleanup` later");
            }
            std::process::exit(130);
        }
    };
    if let Err(e) = cleanup_neo4j(&prefix).await {
        eprintln!("neo4j cleanup failed: {e}; run `-- cleanup` later");
    }
    match outcome {
        Ok(rows) => rows,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => panic!("neo4j measurement: {e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or_else(
            || "unknown memory".to_owned(),
            |kb| format!("{} GiB", kb / 1024 / 1024),
        );
    format!("{cores} cores, {cpu}, {mem}")
}

fn print_report(rows: &[Row]) {
    println!("Machine: {}\n", machine());
    println!("| backend | graph | query | samples | p50 ms | p95 ms | p99 ms | mean ms |");
    println!("|---|---|---|---:|---:|---:|---:|---:|");
    for row in rows {
        for m in &row.measured {
            let mut sorted = m.samples.clone();
            sorted.sort_unstable();
            println!(
                "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
                row.backend,
                row.size.label,
                m.query,
                sorted.len(),
                ms(percentile(&sorted, 50.0)),
                ms(percentile(&sorted, 95.0)),
                ms(percentile(&sorted, 99.0)),
                ms(mean(&sorted)),
            );
        }
    }
    println!("\nLoad average (1, 5, 15 min) before and after measuring:\n");
    for row in rows {
        println!(
            "- {} {}: {} → {}",
            row.backend, row.size.label, row.load.0, row.load.1
        );
    }
    println!("\nGeneration through the GraphStore API:\n");
    println!("| backend | graph | what | items | seconds | items/s |");
    println!("|---|---|---|---:|---:|---:|");
    for row in rows {
        for (what, secs, n) in &row.generation {
            println!(
                "| {} | {} | {what} | {n} | {secs:.1} | {:.0} |",
                row.backend,
                row.size.label,
                *n as f64 / secs
            );
        }
    }
    println!("\nWhere the time goes (every GraphStore call timed):");
    for row in rows {
        for m in &row.measured {
            let samples = m.samples.len().max(1) as f64;
            let total: f64 = m.samples.iter().map(|d| ms(*d)).sum();
            println!(
                "\n{} {}, {} — {}\n",
                row.backend, row.size.label, m.query, m.note
            );
            println!(
                "| store call | calls per query | mean ms per call | p95 ms per call | ms per query | share |"
            );
            println!("|---|---:|---:|---:|---:|---:|");
            let mut calls: Vec<_> = m.calls.iter().collect();
            calls.sort_by(|a, b| {
                let sum = |v: &Vec<std::time::Duration>| v.iter().sum::<std::time::Duration>();
                sum(b.1).cmp(&sum(a.1))
            });
            for (method, durations) in calls {
                let mut sorted = durations.clone();
                sorted.sort_unstable();
                let sum: f64 = sorted.iter().map(|d| ms(*d)).sum();
                println!(
                    "| {method} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0}% |",
                    sorted.len() as f64 / samples,
                    ms(mean(&sorted)),
                    ms(percentile(&sorted, 95.0)),
                    sum / samples,
                    100.0 * sum / total.max(f64::MIN_POSITIVE)
                );
            }
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes --bench; the first other argument selects the backend.
    let choice = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .or_else(|| std::env::var("BENCH_RCA_BACKEND").ok())
        .unwrap_or_else(|| "both".to_owned());
    if choice == "cleanup" {
        let n = cleanup_neo4j(NAME_ROOT).await.expect("neo4j cleanup");
        eprintln!("deleted {n} nodes left by earlier runs");
        return;
    }
    let (sqlite, neo4j) = match choice.as_str() {
        "sqlite" => (true, false),
        "neo4j" => (false, true),
        "both" => (true, true),
        other => panic!("unknown backend {other:?}: use sqlite, neo4j, both or cleanup"),
    };
    let services = env_usize("BENCH_SERVICES", 1000);
    let deployments = env_usize("BENCH_DEPLOYMENTS", 100_000);
    let alerts = env_usize("BENCH_ALERTS", 100_000);
    let sizes = vec![
        Size {
            label: "baseline: 1/10 graph",
            tag: "s",
            services: (services / 10).max(2),
            deployments: deployments / 10,
            alerts: alerts / 10,
        },
        Size {
            label: "full graph",
            tag: "l",
            services,
            deployments,
            alerts,
        },
    ];
    let run_bits = u64::from(rand::random::<u32>() | 0x1000_0000);
    let run = format!("{NAME_ROOT}{:06x}", run_bits & 0xff_ffff);
    eprintln!("run {run}");

    let mut rows = Vec::new();
    if sqlite {
        let dir = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn GraphStore> = Arc::new(
            SqliteStore::open(&dir.path().join("rca.db"), MigrationSource::Embedded)
                .await
                .expect("sqlite"),
        );
        rows.extend(run_backend(store, run.clone(), run_bits, sizes.clone()).await);
    }
    if neo4j {
        rows.extend(run_neo4j(run.clone(), run_bits, sizes).await);
    }
    print_report(&rows);
}
