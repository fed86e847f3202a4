//! Prometheus metrics an operator graphs: requests by route and status, events ingested by
//! source and outcome, store latency.

use crate::AppState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use deploygraph_analysis::pipeline::{Observer, Outcome};
use deploygraph_store::{FollowUp, FollowUpKind, FollowUpStats};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IngestLabels {
    source: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RolloutLabels {
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SkipLabels {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChangeLabels {
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CanaryLabels {
    verdict: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OnsetLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookLabels {
    hook: String,
    verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabels {
    r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FollowUpLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FollowUpOutcomeLabels {
    kind: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BudgetLabels {
    budget: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopologyQueryLabels {
    query: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeploymentLabels {
    source: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AdmissionLabels {
    decision: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChaosLabels {
    verdict: String,
    outcome: String,
}

/// The metrics registry and its families.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    ingested: Family<IngestLabels, Counter>,
    alerts: Family<AlertLabels, Counter>,
    changes: Family<ChangeLabels, Counter>,
    canary_analyses: Family<CanaryLabels, Counter>,
    canary_hooks: Family<HookLabels, Counter>,
    alert_onsets: Family<OnsetLabels, Counter>,
    service_metric_reads: Family<OnsetLabels, Counter>,
    service_metric_queries: Counter,
    rollouts: Family<RolloutLabels, Counter>,
    skipped: Family<SkipLabels, Counter>,
    cdevents_ignored: Family<TypeLabels, Counter>,
    store_seconds: Family<StoreLabels, Histogram>,
    follow_ups_queued: Gauge,
    follow_ups_pending: Family<FollowUpLabels, Gauge>,
    follow_ups_oldest: Gauge<f64, AtomicU64>,
    follow_ups_deferred: Gauge,
    follow_ups_done: Family<FollowUpOutcomeLabels, Counter>,
    shed: Family<BudgetLabels, Counter>,
    timeouts: Counter,
    store_retries: Counter,
    topology_queries: Family<TopologyQueryLabels, Counter>,
    topology_edges: Gauge,
    topology_store_failures: Counter,
    deployments: Family<DeploymentLabels, Counter>,
    snapshots: Family<VerdictLabels, Counter>,
    admission_reviews: Family<AdmissionLabels, Counter>,
    chaos_runs: Family<ChaosLabels, Counter>,
    watch_leading: Gauge,
    store_ready: Gauge,
    /// The store's retry count when `store_retries` was last brought up to date.
    store_retries_seen: std::sync::atomic::AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every deploygraph metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("deploygraph");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        let ingested = Family::<IngestLabels, Counter>::default();
        registry.register(
            "events_ingested",
            "Deployment events by source and outcome",
            ingested.clone(),
        );
        let alerts = Family::<AlertLabels, Counter>::default();
        registry.register(
            "alerts_received",
            "Alertmanager alerts by outcome (created, updated, unchanged)",
            alerts.clone(),
        );
        let changes = Family::<ChangeLabels, Counter>::default();
        registry.register(
            "changes_recorded",
            "Changes that are not rollouts (POST /v1/changes), by kind and outcome (created, unchanged, conflict)",
            changes.clone(),
        );
        let canary_analyses = Family::<CanaryLabels, Counter>::default();
        registry.register(
            "canary_analyses_recorded",
            "Canary analysis decisions (POST /v1/canary/analyses), by verdict and outcome (created, updated, unchanged, not_found)",
            canary_analyses.clone(),
        );
        let canary_hooks = Family::<HookLabels, Counter>::default();
        registry.register(
            "canary_hook_analyses",
            "Canary analyses run for a rollout controller, by hook (argo: GET /v1/canary/judge, flagger: POST /v1/canary/flagger) and verdict (pass, fail, inconclusive, no_data)",
            canary_hooks.clone(),
        );
        let alert_onsets = Family::<OnsetLabels, Counter>::default();
        registry.register(
            "alert_onsets",
            "Alert metric onsets read from Prometheus before attribution, by outcome (found, not_found: read but no onset, too_early: no break yet in the minutes after the alert, unavailable: Prometheus did not answer; the last two are asked again when the alert is next attributed, by a revisit deferred for it at the latest)",
            alert_onsets.clone(),
        );
        let service_metric_reads = Family::<OnsetLabels, Counter>::default();
        registry.register(
            "service_metric_reads",
            "Services' health metrics read from Prometheus around alerts before attribution, by outcome (moved, steady, no_series, unavailable: Prometheus did not answer, the alert's services are read again when it is next attributed)",
            service_metric_reads.clone(),
        );
        let service_metric_queries = Counter::default();
        registry.register(
            "service_metric_queries",
            "Range queries sent to Prometheus for services' health metrics: a service's reading for an alert is reused, without a query, for other alerts that started at the same moment with the same window, for 30 s",
            service_metric_queries.clone(),
        );
        let rollouts = Family::<RolloutLabels, Counter>::default();
        registry.register(
            "rollouts_recorded",
            "Rollouts the Kubernetes watcher recorded, by workload kind and outcome",
            rollouts.clone(),
        );
        let skipped = Family::<SkipLabels, Counter>::default();
        registry.register(
            "watch_objects_skipped",
            "Objects the watchers skipped, by reason: store_rejected (the store refused the record), store_unavailable (set aside after the retries, tried again later), helm_release_corrupt, helm_release_too_large",
            skipped.clone(),
        );
        let cdevents_ignored = Family::<TypeLabels, Counter>::default();
        registry.register(
            "cdevents_ignored",
            "CDEvents acknowledged and not recorded, by type without version (pipelinerun.finished; other for types outside the spec)",
            cdevents_ignored.clone(),
        );
        let store_seconds = Family::<StoreLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "store_operation_seconds",
            "Store call latency",
            store_seconds.clone(),
        );
        let follow_ups_queued = Gauge::default();
        registry.register(
            "follow_ups_queue_depth",
            "Follow-ups claimed by this process and waiting for a worker or being done",
            follow_ups_queued.clone(),
        );
        let follow_ups_pending = Family::<FollowUpLabels, Gauge>::default();
        registry.register(
            "follow_ups_pending",
            "Follow-ups pending in the store (claimed or not), by kind (alert, deployment)",
            follow_ups_pending.clone(),
        );
        let follow_ups_oldest = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "follow_ups_oldest_age_seconds",
            "Age of the oldest pending follow-up in the store (0 when none is pending)",
            follow_ups_oldest.clone(),
        );
        let follow_ups_deferred = Gauge::default();
        registry.register(
            "follow_ups_deferred",
            "Revisits of alerts deferred in the store, to read later what their attribution could not read yet (a metric that shows no break yet, a Prometheus that did not answer); not counted as pending",
            follow_ups_deferred.clone(),
        );
        let follow_ups_done = Family::<FollowUpOutcomeLabels, Counter>::default();
        registry.register(
            "follow_ups",
            "Follow-ups this process did, by kind and outcome (done, missing, failed, abandoned)",
            follow_ups_done.clone(),
        );
        let shed = Family::<BudgetLabels, Counter>::default();
        registry.register(
            "http_requests_shed",
            "Requests answered 503 overloaded because their concurrency budget (write or read) was spent",
            shed.clone(),
        );
        let timeouts = Counter::default();
        registry.register(
            "http_request_timeouts",
            "Requests stopped at the server's request timeout (503 timeout)",
            timeouts.clone(),
        );
        let store_retries = Counter::default();
        registry.register(
            "store_retries",
            "Store transactions run again after a transient failure (a deadlock, a leader switch, a broken connection, a busy database)",
            store_retries.clone(),
        );
        let topology_queries = Family::<TopologyQueryLabels, Counter>::default();
        registry.register(
            "topology_prometheus_queries",
            "Call-graph queries to Prometheus (serve --topology-prometheus-url), by query (istio, service_graph) and outcome (ok, error)",
            topology_queries.clone(),
        );
        let topology_edges = Gauge::default();
        registry.register(
            "topology_mesh_edges",
            "Mesh DEPENDS_ON edges recorded by the last call-graph poll that found any",
            topology_edges.clone(),
        );
        let topology_store_failures = Counter::default();
        registry.register(
            "topology_mesh_store_failures",
            "Call-graph polls whose edges the store did not take (tried again at the next poll)",
            topology_store_failures.clone(),
        );
        let deployments = Family::<DeploymentLabels, Counter>::default();
        registry.register(
            "deployments_recorded",
            "Deployment records written (created, or advanced to a new status), by source and the status written",
            deployments.clone(),
        );
        let snapshots = Family::<VerdictLabels, Counter>::default();
        registry.register(
            "snapshots_taken",
            "Infra snapshots taken through the API (POST /v1/snapshots, deploygraph snapshot and gate with --server), by verdict",
            snapshots.clone(),
        );
        let admission_reviews = Family::<AdmissionLabels, Counter>::default();
        registry.register(
            "admission_reviews",
            "AdmissionReviews answered by the admission gate, by decision: allowed (not a pod-template change, or the snapshot passed), denied, warned (--admission-mode warn), overridden (the break-glass annotation), invalid (400), error (the store did not answer in time: 503, the webhook's failurePolicy decides)",
            admission_reviews.clone(),
        );
        let chaos_runs = Family::<ChaosLabels, Counter>::default();
        registry.register(
            "chaos_runs_recorded",
            "Chaos run records (POST /v1/chaos/runs), by verdict and outcome (created, updated)",
            chaos_runs.clone(),
        );
        let watch_leading = Gauge::default();
        registry.register(
            "watch_leading",
            "1 while this process holds the watchers' Lease and runs them, 0 while it campaigns (only with serve --watch-*)",
            watch_leading.clone(),
        );
        let store_ready = Gauge::default();
        registry.register(
            "store_ready",
            "1 when the store answered a readiness check at this scrape (reachable and migrated), 0 when it did not within 2 s",
            store_ready.clone(),
        );
        Self {
            deployments,
            snapshots,
            admission_reviews,
            chaos_runs,
            watch_leading,
            store_ready,
            registry,
            requests,
            ingested,
            alerts,
            changes,
            canary_analyses,
            canary_hooks,
            alert_onsets,
            service_metric_reads,
            service_metric_queries,
            rollouts,
            skipped,
            cdevents_ignored,
            store_seconds,
            follow_ups_queued,
            follow_ups_pending,
            follow_ups_oldest,
            follow_ups_deferred,
            follow_ups_done,
            shed,
            timeouts,
            store_retries,
            topology_queries,
            topology_edges,
            topology_store_failures,
            store_retries_seen: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Counts one rollout write of the watcher.
    pub fn rollout(&self, kind: &str, outcome: &str) {
        self.rollouts
            .get_or_create(&RolloutLabels {
                kind: kind.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Counts one object a watcher skipped.
    pub fn skipped(&self, reason: &str) {
        self.skipped
            .get_or_create(&SkipLabels {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts one CDEvent acknowledged and not recorded; `kind` comes from a fixed list.
    pub fn cdevent_ignored(&self, kind: &str) {
        self.cdevents_ignored
            .get_or_create(&TypeLabels {
                r#type: kind.to_owned(),
            })
            .inc();
    }

    /// Counts one received alert.
    pub fn alert(&self, outcome: &str) {
        self.alerts
            .get_or_create(&AlertLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Counts one change that is not a rollout, by its kind and what recording it did.
    pub fn change(&self, kind: &str, outcome: &str) {
        self.changes
            .get_or_create(&ChangeLabels {
                kind: kind.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Counts one canary analysis decision posted, by its verdict and what recording it did.
    pub fn canary_analysis(&self, verdict: &str, outcome: &str) {
        self.canary_analyses
            .get_or_create(&CanaryLabels {
                verdict: verdict.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Counts one service health metric read, by outcome (`moved`, `steady`, `no_series`,
    /// `unavailable`).
    pub fn service_metric_read(&self, outcome: &str) {
        self.service_metric_reads
            .get_or_create(&OnsetLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Counts one range query sent to Prometheus for a service's health metric.
    pub fn service_metric_query(&self) {
        self.service_metric_queries.inc();
    }

    /// Counts one alert metric onset read, by outcome (`found`, `not_found`, `unavailable`).
    pub fn alert_onset(&self, outcome: &str) {
        self.alert_onsets
            .get_or_create(&OnsetLabels {
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Counts one analysis a canary hook ran, by hook (`argo`, `flagger`) and verdict.
    pub fn canary_hook(&self, hook: &str, verdict: &str) {
        self.canary_hooks
            .get_or_create(&HookLabels {
                hook: hook.to_owned(),
                verdict: verdict.to_owned(),
            })
            .inc();
    }

    /// Counts one deployment record written, by its source and the status written.
    pub fn deployment(&self, source: &str, status: &str) {
        self.deployments
            .get_or_create(&DeploymentLabels {
                source: source.to_owned(),
                status: status.to_owned(),
            })
            .inc();
    }

    /// Counts one infra snapshot taken, by its verdict.
    pub fn snapshot(&self, verdict: &str) {
        self.snapshots
            .get_or_create(&VerdictLabels {
                verdict: verdict.to_owned(),
            })
            .inc();
    }

    /// Counts one AdmissionReview answered, by decision.
    pub fn admission_review(&self, decision: &str) {
        self.admission_reviews
            .get_or_create(&AdmissionLabels {
                decision: decision.to_owned(),
            })
            .inc();
    }

    /// Counts one chaos run record, by its verdict and what recording it did.
    pub fn chaos_run(&self, verdict: &str, outcome: &str) {
        self.chaos_runs
            .get_or_create(&ChaosLabels {
                verdict: verdict.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Whether this process leads the watchers (holds their Lease).
    pub fn set_leading(&self, leading: bool) {
        self.watch_leading.set(i64::from(leading));
    }

    /// Counts one ingested event.
    pub fn ingested(&self, source: &str, outcome: &str) {
        self.ingested
            .get_or_create(&IngestLabels {
                source: source.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Observes one store call.
    pub fn store_call(&self, operation: &str, started: Instant) {
        self.store_seconds
            .get_or_create(&StoreLabels {
                operation: operation.to_owned(),
            })
            .observe(started.elapsed().as_secs_f64());
    }

    /// Counts one request shed by its concurrency budget.
    pub fn shed(&self, budget: &str) {
        self.shed
            .get_or_create(&BudgetLabels {
                budget: budget.to_owned(),
            })
            .inc();
    }

    /// Counts one call-graph query to Prometheus (`istio`, `service_graph`; `ok`, `error`).
    pub fn topology_query(&self, query: &str, outcome: &str) {
        self.topology_queries
            .get_or_create(&TopologyQueryLabels {
                query: query.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }

    /// Sets the mesh edges the last poll recorded.
    pub fn topology_edges(&self, edges: usize) {
        self.topology_edges
            .set(i64::try_from(edges).unwrap_or(i64::MAX));
    }

    /// Counts one poll whose edges the store did not take.
    pub fn topology_store_failure(&self) {
        self.topology_store_failures.inc();
    }

    /// Counts one request stopped at the request timeout.
    pub fn timed_out(&self) {
        self.timeouts.inc();
    }

    /// Registers families of the caller's own (the agent's spool) beside these, under the
    /// same `deploygraph_` prefix, before the metrics are shared.
    #[must_use]
    pub fn with_extra(mut self, register: impl FnOnce(&mut Registry)) -> Self {
        register(&mut self.registry);
        self
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        // The store counts its retries process-wide; the counter catches up with it here.
        let now = deploygraph_store::retry::retries();
        let seen = self
            .store_retries_seen
            .fetch_max(now, std::sync::atomic::Ordering::Relaxed);
        if now > seen {
            self.store_retries.inc_by(now - seen);
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::error!("failed to encode metrics");
        }
        out
    }
}

impl Observer for Metrics {
    fn queue_depth(&self, depth: usize) {
        self.follow_ups_queued
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }

    fn pending(&self, stats: &FollowUpStats) {
        for kind in FollowUpKind::ALL {
            self.follow_ups_pending
                .get_or_create(&FollowUpLabels {
                    kind: kind.as_str().to_owned(),
                })
                .set(i64::try_from(stats.of(kind)).unwrap_or(i64::MAX));
        }
        let age = stats.oldest.map_or(0.0, |oldest| {
            (chrono::Utc::now() - oldest).num_milliseconds().max(0) as f64 / 1000.0
        });
        self.follow_ups_oldest.set(age);
        self.follow_ups_deferred
            .set(i64::try_from(stats.deferred).unwrap_or(i64::MAX));
    }

    fn finished(&self, follow_up: &FollowUp, outcome: Outcome) {
        self.follow_ups_done
            .get_or_create(&FollowUpOutcomeLabels {
                kind: follow_up.kind.as_str().to_owned(),
                outcome: outcome.as_str().to_owned(),
            })
            .inc();
    }
}

/// Counts every API request by its route template (not its raw path, which would explode the
/// label set).
pub(crate) async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// `GET /metrics`.
#[utoipa::path(get, path = "/metrics", tag = "meta",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain")))]
pub(crate) async fn render(State(state): State<AppState>) -> impl IntoResponse {
    // Whether the store answers, checked at each scrape, so an alert rule can say it is down.
    let ready = tokio::time::timeout(std::time::Duration::from_secs(2), state.store.ready())
        .await
        .is_ok_and(|r| r.is_ok());
    state.metrics.store_ready.set(i64::from(ready));
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}
