//! Component tests of bounded, observable work: capped listings that say so and page to the
//! end, Alertmanager notifications of thousands of alerts, parallel notifications, the write
//! and read budgets with load shedding, and the request timeout — the router driven
//! in-process over both stores.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{DateTime, Utc};
use deploygraph_api::{ApiConfig, AppState, router};
use deploygraph_model::{
    Alert, AlertOutcome, ChaosRun, Deployment, Environment, InfraSnapshot, ServiceName, ServiceRef,
    Trigger, Uid,
};
use deploygraph_store::{
    AlertFilter, AppliedMigration, ChaosFilter, DeploymentFilter, GraphStore, Page, RecordOutcome,
    ServiceHistory, ServiceSummary, StoredAttribution, StoredDeployment,
};
use http_body_util::BodyExt;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use tower::ServiceExt;

const TOKEN: &str = "s3cret";

fn app_with(store: &Arc<dyn GraphStore>, config: ApiConfig) -> Router {
    router(AppState::new(
        Arc::clone(store),
        ApiConfig {
            token: Some(SecretString::from(TOKEN.to_owned())),
            ..config
        },
    ))
}

fn app(store: &Arc<dyn GraphStore>) -> Router {
    app_with(store, ApiConfig::default())
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Option<String>, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, retry_after, body)
}

fn post_request(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(body.into())
        .unwrap()
}

async fn post(app: &Router, path: &str, body: &Value) -> (StatusCode, Value) {
    let (status, _, body) = send(app, post_request(path, body.to_string())).await;
    (status, body)
}

async fn get(app: &Router, path: &str) -> (StatusCode, Value) {
    let (status, _, body) = send(app, Request::get(path).body(Body::empty()).unwrap()).await;
    (status, body)
}

fn at(minute: i64) -> String {
    let base = chrono::DateTime::parse_from_rfc3339("2026-11-20T10:00:00Z").unwrap();
    (base + chrono::Duration::minutes(minute))
        .to_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn am_alert(fingerprint: &str, service: &str, minute: i64) -> Value {
    json!({
        "status": "firing",
        "labels": {"alertname": "HighErrorRate", "service": service, "namespace": "prod",
                   "environment": "production", "severity": "critical", "pod": format!("{service}-{fingerprint}")},
        "annotations": {"summary": format!("{service} 5xx above 5%"),
                        "description": "The 5xx rate of the service has been above 5% for five minutes."},
        "startsAt": at(minute),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=sum%28rate%28http_requests_total%7Bcode%3D~%225..%22%7D%5B5m%5D%29%29",
        "fingerprint": fingerprint
    })
}

fn webhook(alerts: Vec<Value>) -> Value {
    json!({"version": "4", "groupKey": "{}:{alertname=\"HighErrorRate\"}", "truncatedAlerts": 0,
           "status": "firing", "receiver": "deploygraph", "groupLabels": {}, "commonLabels": {},
           "commonAnnotations": {}, "externalURL": "http://alertmanager", "alerts": alerts})
}

fn deployment(service: &str, minute: i64) -> Value {
    json!({
        "service": service, "namespace": "prod", "environment": "production",
        "version": format!("v1.{minute}.0"), "status": "succeeded", "started_at": at(minute),
        "commit": {"sha": format!("{:040x}", rand::random::<u128>())},
        "images": [{"repository": format!("ghcr.io/acme/{service}"),
                    "digest": format!("sha256:{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>())}]
    })
}

/// Follows `next_cursor` from `path` to the last page; every page but the last is full and
/// `truncated`. Returns every page's items.
async fn walk(app: &Router, path: &str, limit: usize, items: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let url = match &cursor {
            Some(c) => format!("{path}&limit={limit}&cursor={c}"),
            None => format!("{path}&limit={limit}"),
        };
        let (status, body) = get(app, &url).await;
        assert_eq!(status, StatusCode::OK, "{url}: {body}");
        let page = body[items].as_array().unwrap().clone();
        let truncated = body["truncated"].as_bool().unwrap();
        match body["next_cursor"].as_str() {
            Some(next) => {
                assert!(truncated, "{body}");
                cursor = Some(next.to_owned());
            }
            None => {
                assert!(!truncated, "{body}");
                all.extend(page);
                return all;
            }
        }
        all.extend(page);
    }
    panic!("the cursor never ended");
}

async fn alert_and_chaos_listings_page_to_the_end(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let service = unique("paged");
    // 26 alerts, several sharing a start time.
    let alerts: Vec<Value> = (0..26)
        .map(|i| am_alert(&unique("fp"), &service, i / 3))
        .collect();
    let (status, body) = post(&app, "/v1/alerts/alertmanager", &webhook(alerts)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, first) = get(&app, &format!("/v1/alerts?service={service}&limit=10")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["items"].as_array().unwrap().len(), 10);
    assert_eq!(first["truncated"], true);
    assert!(first["next_cursor"].is_string());
    let walked = walk(&app, &format!("/v1/alerts?service={service}"), 10, "items").await;
    let uids: Vec<&str> = walked.iter().map(|a| a["uid"].as_str().unwrap()).collect();
    assert_eq!(uids.len(), 26);
    assert_eq!(uids.iter().collect::<BTreeSet<_>>().len(), 26, "no repeats");
    let (_, all) = get(&app, &format!("/v1/alerts?service={service}&limit=100")).await;
    assert_eq!(all["truncated"], false);
    assert_eq!(all["next_cursor"], Value::Null);
    assert_eq!(all["items"].as_array().unwrap(), &walked, "the same order");
    let (status, body) = get(&app, &format!("/v1/alerts?service={service}&cursor=nope")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "cursor");

    for i in 0..7 {
        let run = json!({
            "scenario": "pod-delete", "experiment": "pod-delete",
            "uid": Uid::derive("chaos-run", &[&unique("run")]).as_str(),
            "target": {"name": service, "namespace": "prod", "environment": "production"},
            "verdict": "Pass", "phase": "Completed", "started_at": at(i / 2), "ended_at": at(i / 2 + 1)
        });
        let (status, body) = post(&app, "/v1/chaos/runs", &run).await;
        assert!(status.is_success(), "{body}");
    }
    let runs = walk(
        &app,
        &format!("/v1/chaos/runs?service={service}"),
        3,
        "items",
    )
    .await;
    let uids: BTreeSet<&str> = runs.iter().map(|r| r["uid"].as_str().unwrap()).collect();
    assert_eq!(uids.len(), 7);
}

async fn a_timeline_pages_to_the_end_without_losing_events(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let service = unique("history");
    let mut deployment_uids = Vec::new();
    for minute in (0..40).step_by(4) {
        let (status, body) = post(&app, "/v1/deployments", &deployment(&service, minute)).await;
        assert!(status.is_success(), "{body}");
        deployment_uids.push(body["uid"].as_str().unwrap().to_owned());
    }
    // Alerts at the same minutes as deployments (ties between kinds), one resolved later.
    let mut alerts: Vec<Value> = (0..12)
        .map(|i| am_alert(&unique("fp"), &service, i * 3))
        .collect();
    alerts[2]["status"] = json!("resolved");
    alerts[2]["endsAt"] = json!(at(38));
    let (status, body) = post(&app, "/v1/alerts/alertmanager", &webhook(alerts)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for i in 0..3 {
        let run = json!({
            "scenario": "pod-delete", "experiment": "pod-delete",
            "uid": Uid::derive("chaos-run", &[&unique("run")]).as_str(),
            "target": {"name": service, "namespace": "prod", "environment": "production"},
            "verdict": "Pass", "phase": "Completed", "started_at": at(i * 10 + 1), "ended_at": at(i * 10 + 3)
        });
        assert!(post(&app, "/v1/chaos/runs", &run).await.0.is_success());
    }
    // Canary analyses of three deployments, each started with its deployment (a tie between
    // kinds) and decided two minutes later.
    for (i, uid) in (0_i64..).zip(deployment_uids.iter().take(3)) {
        let analysis = json!({
            "deployment": uid, "template": "http-error-ratio", "verdict": "pass",
            "baseline_kind": "side_by_side", "started_at": at(i * 4), "decided_at": at(i * 4 + 2),
            "analyses": 5, "rule": "every metric passed",
            "metrics": [{"name": "http-error-ratio", "kind": "ratio", "outcome": "pass",
                         "rule": "no significant increase", "evidence": {}}]
        });
        let (status, body) = post(&app, "/v1/canary/analyses", &analysis).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // A snapshot for one of the service's deployments.
    let snapshot = json!({
        "checks": [{"kind": "dns", "target": "db.internal", "status": "pass", "detail": "ok", "latency_ms": 3}],
        "taken_at": at(8), "deployment": deployment_uids[2]
    });
    let (status, body) = post(&app, "/v1/snapshots", &snapshot).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let base = format!(
        "/v1/services/{service}/timeline?since={}&until={}",
        at(-1),
        at(60)
    );
    let (status, whole) = get(&app, &base).await;
    assert_eq!(status, StatusCode::OK, "{whole}");
    assert_eq!(whole["truncated"], false);
    let whole = whole["events"].as_array().unwrap().clone();
    // 10 deployments, 12 alerts + 1 resolution, 3 runs × 2, 3 canary analyses × 2, 1 snapshot.
    assert_eq!(whole.len(), 10 + 13 + 6 + 6 + 1, "{whole:#?}");
    let decided: Vec<&Value> = whole
        .iter()
        .filter(|e| e["kind"] == "canary_decided")
        .collect();
    assert_eq!(decided.len(), 3, "{whole:#?}");
    assert!(
        decided[0]["summary"]
            .as_str()
            .unwrap()
            .contains("PASS after 5 round(s) against the side_by_side baseline"),
        "{whole:#?}"
    );

    // Pages of 4 items walked backwards in time hold, together, the same events.
    let mut pages: Vec<Vec<Value>> = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let url = match &cursor {
            Some(c) => format!("{base}&limit=4&cursor={c}"),
            None => format!("{base}&limit=4"),
        };
        let (status, body) = get(&app, &url).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        pages.push(body["events"].as_array().unwrap().clone());
        match body["next_cursor"].as_str() {
            Some(next) => {
                assert_eq!(body["truncated"], true);
                cursor = Some(next.to_owned());
            }
            None => {
                assert_eq!(body["truncated"], false);
                break;
            }
        }
    }
    assert!(pages.len() >= 8, "{} pages", pages.len());
    let joined: Vec<Value> = pages.into_iter().rev().flatten().collect();
    let key = |e: &Value| {
        (
            e["at"].as_str().unwrap().to_owned(),
            e["kind"].as_str().unwrap().to_owned(),
            e["uid"].as_str().unwrap().to_owned(),
        )
    };
    let mut joined_keys: Vec<_> = joined.iter().map(key).collect();
    let mut whole_keys: Vec<_> = whole.iter().map(key).collect();
    joined_keys.sort();
    whole_keys.sort();
    assert_eq!(joined_keys, whole_keys);
}

/// Alertmanager sends one notification per group: thousands of alerts in one body.
async fn a_notification_of_thousands_of_alerts_is_accepted(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let service = unique("storm");
    let alerts: Vec<Value> = (0..5000)
        .map(|i| am_alert(&format!("{:016x}", rand::random::<u64>()), &service, i % 60))
        .collect();
    let body = webhook(alerts).to_string();
    assert!(
        body.len() > deploygraph_api::DEFAULT_MAX_BODY_BYTES,
        "{} bytes",
        body.len()
    );
    let (status, _, answer) = send(&app, post_request("/v1/alerts/alertmanager", body)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["received"], 5000);
    assert_eq!(answer["created"], 5000);
    // Their attribution is not this test's subject (the follow-up tests' is): no backlog for
    // the pipelines of later tests on the shared Neo4j database.
    let uids: Vec<deploygraph_model::Uid> = answer["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| deploygraph_model::Uid::from_stored(a["uid"].as_str().unwrap()))
        .collect();
    assert_eq!(uids.len(), 5000);
    deploygraph_store::testing::discard_follow_ups(store.as_ref(), &uids).await;
    // Other endpoints keep their own limit.
    let (status, _, answer) = send(
        &app,
        post_request("/v1/deployments", vec![b' '; 2 * 1024 * 1024]),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
}

/// Fifty notifications at once, on the same few services, at the default budgets: none is
/// refused (a refused notification is one Alertmanager must send again).
async fn parallel_notifications_pass_the_default_budgets(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let services: Vec<String> = (0..3).map(|i| unique(&format!("busy{i}"))).collect();
    let mut tasks = Vec::new();
    for n in 0..50 {
        let app = app.clone();
        let services = services.clone();
        tasks.push(tokio::spawn(async move {
            let alerts: Vec<Value> = (0..20)
                .map(|i| am_alert(&unique("fp"), &services[(n + i) % 3], n as i64))
                .collect();
            post(&app, "/v1/alerts/alertmanager", &webhook(alerts)).await
        }));
    }
    let mut refused = Vec::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        if status != StatusCode::OK {
            refused.push(format!("{status} {body}"));
        }
    }
    assert_eq!(refused, Vec::<String>::new());
}

deploygraph_store::both_stores!(
    alert_and_chaos_listings_page_to_the_end,
    a_timeline_pages_to_the_end_without_losing_events,
    parallel_notifications_pass_the_default_budgets,
    a_notification_of_thousands_of_alerts_is_accepted,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_notification_is_refused_with_the_json_error() {
    let (_dir, store) = deploygraph_store::testing::sqlite().await;
    let app = app(&store);
    let body = vec![b' '; deploygraph_api::DEFAULT_ALERTMANAGER_MAX_BODY_BYTES + 1];
    let (status, _, answer) = send(&app, post_request("/v1/alerts/alertmanager", body)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer["error"]["code"], "payload_too_large");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&deploygraph_api::DEFAULT_ALERTMANAGER_MAX_BODY_BYTES.to_string()),
        "{answer}"
    );
}

/// A store whose writes wait at a gate: they hold their concurrency permits until the test
/// opens it. Everything else goes straight to the inner store.
struct GatedStore {
    inner: Arc<dyn GraphStore>,
    gate: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    /// Gate the listing of alerts (a read) instead of the writes.
    reads: bool,
    /// Calls that read one item at a time: one alert's attribution, one deployment.
    single_reads: Arc<AtomicUsize>,
}

impl GatedStore {
    async fn pass(&self) {
        if !self.reads {
            self.wait().await;
        }
    }

    async fn wait(&self) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let permit = self.gate.acquire().await.unwrap();
        permit.forget();
    }
}

#[async_trait]
impl GraphStore for GatedStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn migrate(&self) -> deploygraph_store::Result<Vec<AppliedMigration>> {
        self.inner.migrate().await
    }
    async fn ready(&self) -> deploygraph_store::Result<()> {
        self.inner.ready().await
    }
    async fn record_deployments(
        &self,
        batch: Vec<Deployment>,
    ) -> deploygraph_store::Result<Vec<RecordOutcome>> {
        self.pass().await;
        self.inner.record_deployments(batch).await
    }
    async fn get_deployment(
        &self,
        uid: &Uid,
    ) -> deploygraph_store::Result<Option<StoredDeployment>> {
        self.inner.get_deployment(uid).await
    }
    async fn list_deployments(
        &self,
        filter: &DeploymentFilter,
    ) -> deploygraph_store::Result<Page<StoredDeployment>> {
        self.inner.list_deployments(filter).await
    }
    async fn record_snapshot(&self, snapshot: &InfraSnapshot) -> deploygraph_store::Result<()> {
        self.pass().await;
        self.inner.record_snapshot(snapshot).await
    }
    async fn get_snapshot(&self, uid: &Uid) -> deploygraph_store::Result<Option<InfraSnapshot>> {
        self.inner.get_snapshot(uid).await
    }
    async fn snapshot_for_deployment(
        &self,
        uid: &Uid,
    ) -> deploygraph_store::Result<Option<InfraSnapshot>> {
        self.inner.snapshot_for_deployment(uid).await
    }
    async fn latest_snapshot(
        &self,
        cluster: Option<&str>,
    ) -> deploygraph_store::Result<Option<InfraSnapshot>> {
        self.inner.latest_snapshot(cluster).await
    }
    async fn list_services(&self) -> deploygraph_store::Result<Vec<ServiceSummary>> {
        self.inner.list_services().await
    }
    async fn list_snapshots(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> deploygraph_store::Result<Vec<InfraSnapshot>> {
        self.inner.list_snapshots(since, until, limit).await
    }
    async fn find_services(
        &self,
        name: &ServiceName,
        namespace: Option<&str>,
        environment: Option<&Environment>,
        cluster: Option<&deploygraph_model::Cluster>,
    ) -> deploygraph_store::Result<Vec<ServiceRef>> {
        self.inner
            .find_services(name, namespace, environment, cluster)
            .await
    }
    async fn record_alerts(
        &self,
        alerts: Vec<Alert>,
    ) -> deploygraph_store::Result<Vec<(Alert, AlertOutcome)>> {
        self.pass().await;
        self.inner.record_alerts(alerts).await
    }
    async fn get_alert(&self, uid: &Uid) -> deploygraph_store::Result<Option<Alert>> {
        self.inner.get_alert(uid).await
    }
    async fn get_alerts(&self, uids: &[Uid]) -> deploygraph_store::Result<Vec<Alert>> {
        self.inner.get_alerts(uids).await
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
        if self.reads {
            self.wait().await;
        }
        self.inner.list_alerts(filter).await
    }
    async fn alert_services(&self, alert: &Uid) -> deploygraph_store::Result<Vec<ServiceRef>> {
        self.inner.alert_services(alert).await
    }
    async fn set_dependencies(
        &self,
        service: &ServiceRef,
        depends_on: &[ServiceRef],
    ) -> deploygraph_store::Result<()> {
        self.pass().await;
        self.inner.set_dependencies(service, depends_on).await
    }
    async fn apply_topology(
        &self,
        update: &deploygraph_store::TopologyUpdate,
    ) -> deploygraph_store::Result<()> {
        self.pass().await;
        self.inner.apply_topology(update).await
    }
    async fn service_topology(
        &self,
        service: &ServiceRef,
    ) -> deploygraph_store::Result<deploygraph_model::topology::ServiceTopologyView> {
        self.inner.service_topology(service).await
    }
    async fn dependencies(
        &self,
        service: &ServiceRef,
    ) -> deploygraph_store::Result<Vec<ServiceRef>> {
        self.inner.dependencies(service).await
    }
    async fn deployments_between(
        &self,
        services: &[Uid],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> deploygraph_store::Result<Vec<StoredDeployment>> {
        self.inner.deployments_between(services, from, to).await
    }
    async fn service_history(
        &self,
        service: &Uid,
        before: DateTime<Utc>,
    ) -> deploygraph_store::Result<ServiceHistory> {
        self.inner.service_history(service, before).await
    }
    async fn key_history(
        &self,
        paths: &[String],
        before: DateTime<Utc>,
        limit: u32,
    ) -> deploygraph_store::Result<Vec<deploygraph_store::KeyHistory>> {
        self.inner.key_history(paths, before, limit).await
    }
    async fn record_changes(
        &self,
        batch: Vec<deploygraph_model::Change>,
    ) -> deploygraph_store::Result<Vec<deploygraph_store::ChangeOutcome>> {
        self.pass().await;
        self.inner.record_changes(batch).await
    }
    async fn get_change(
        &self,
        uid: &Uid,
    ) -> deploygraph_store::Result<Option<deploygraph_model::Change>> {
        self.single_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get_change(uid).await
    }
    async fn get_changes(
        &self,
        uids: &[Uid],
    ) -> deploygraph_store::Result<Vec<deploygraph_model::Change>> {
        self.inner.get_changes(uids).await
    }
    async fn changes_between(
        &self,
        services: &[Uid],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> deploygraph_store::Result<Vec<deploygraph_model::Change>> {
        self.inner.changes_between(services, from, to).await
    }
    async fn list_changes(
        &self,
        filter: &deploygraph_store::ChangeFilter,
    ) -> deploygraph_store::Result<Vec<deploygraph_model::Change>> {
        self.inner.list_changes(filter).await
    }
    async fn replace_attribution(
        &self,
        alert: &Uid,
        triggers: &[Trigger],
        chaos: Option<(&Uid, &str)>,
    ) -> deploygraph_store::Result<()> {
        self.inner.replace_attribution(alert, triggers, chaos).await
    }
    async fn attribution(&self, alert: &Uid) -> deploygraph_store::Result<StoredAttribution> {
        self.single_reads.fetch_add(1, Ordering::SeqCst);
        self.inner.attribution(alert).await
    }
    async fn dependents(&self, service: &ServiceRef) -> deploygraph_store::Result<Vec<ServiceRef>> {
        self.inner.dependents(service).await
    }
    async fn claim_follow_ups(
        &self,
        claim: deploygraph_store::Claim<'_>,
    ) -> deploygraph_store::Result<Vec<deploygraph_store::FollowUp>> {
        self.inner.claim_follow_ups(claim).await
    }
    async fn finish_follow_up(
        &self,
        kind: deploygraph_store::FollowUpKind,
        subject: &Uid,
        enqueued_at: DateTime<Utc>,
    ) -> deploygraph_store::Result<()> {
        self.inner
            .finish_follow_up(kind, subject, enqueued_at)
            .await
    }
    async fn follow_up_stats(
        &self,
        subjects: Option<&[Uid]>,
    ) -> deploygraph_store::Result<deploygraph_store::FollowUpStats> {
        self.inner.follow_up_stats(subjects).await
    }
    async fn defer_revisit(
        &self,
        alert: &Uid,
        claimed: Option<DateTime<Utc>>,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> deploygraph_store::Result<()> {
        self.inner.defer_revisit(alert, claimed, until, now).await
    }
    async fn enqueue_revisits(
        &self,
        alerts: &[Uid],
        now: DateTime<Utc>,
    ) -> deploygraph_store::Result<Vec<Uid>> {
        self.inner.enqueue_revisits(alerts, now).await
    }
    async fn record_verdict(
        &self,
        verdict: &deploygraph_model::SuspectVerdict,
    ) -> deploygraph_store::Result<Option<deploygraph_store::VerdictOutcome>> {
        self.inner.record_verdict(verdict).await
    }
    async fn verdicts(
        &self,
        alerts: &[Uid],
    ) -> deploygraph_store::Result<Vec<deploygraph_model::SuspectVerdict>> {
        self.inner.verdicts(alerts).await
    }
    async fn top_triggers(&self, alerts: &[Uid]) -> deploygraph_store::Result<Vec<Trigger>> {
        self.inner.top_triggers(alerts).await
    }
    async fn triggered_by(
        &self,
        subjects: &[Uid],
    ) -> deploygraph_store::Result<Vec<deploygraph_store::SubjectTrigger>> {
        self.inner.triggered_by(subjects).await
    }
    async fn get_deployments(
        &self,
        uids: &[Uid],
    ) -> deploygraph_store::Result<Vec<StoredDeployment>> {
        self.inner.get_deployments(uids).await
    }
    async fn record_chaos_run(&self, run: &ChaosRun) -> deploygraph_store::Result<()> {
        self.pass().await;
        self.inner.record_chaos_run(run).await
    }
    async fn get_chaos_run(&self, uid: &Uid) -> deploygraph_store::Result<Option<ChaosRun>> {
        self.inner.get_chaos_run(uid).await
    }
    async fn list_chaos_runs(
        &self,
        filter: &ChaosFilter,
    ) -> deploygraph_store::Result<Vec<ChaosRun>> {
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
}

type Gated = (Arc<dyn GraphStore>, Arc<Semaphore>, Arc<AtomicUsize>);

fn gate(inner: Arc<dyn GraphStore>, reads: bool) -> Gated {
    let gate = Arc::new(Semaphore::new(0));
    let waiting = Arc::new(AtomicUsize::new(0));
    let store = GatedStore {
        inner,
        gate: Arc::clone(&gate),
        waiting: Arc::clone(&waiting),
        reads,
        single_reads: Arc::new(AtomicUsize::new(0)),
    };
    (Arc::new(store), gate, waiting)
}

/// `inner` with its writes held at a gate.
fn gated(inner: Arc<dyn GraphStore>) -> Gated {
    gate(inner, false)
}

/// `inner` with its alert listings held at a gate.
fn gated_reads(inner: Arc<dyn GraphStore>) -> Gated {
    gate(inner, true)
}

/// Waits (bounded) until `n` writes are held at the gate.
async fn held(waiting: &AtomicUsize, n: usize) {
    for _ in 0..500 {
        if waiting.load(Ordering::SeqCst) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "{} writes reached the store, not {n}",
        waiting.load(Ordering::SeqCst)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_write_budget_sheds_writes_and_leaves_reads_alone() {
    let (_dir, inner) = deploygraph_store::testing::sqlite().await;
    let (store, gate, waiting) = gated(inner);
    let app = app_with(
        &store,
        ApiConfig {
            max_concurrent_writes: 2,
            max_concurrent_reads: 4,
            ..ApiConfig::default()
        },
    );
    let service = unique("shed");
    let mut writes = Vec::new();
    for i in 0..2 {
        let app = app.clone();
        let body = webhook(vec![am_alert(&unique("fp"), &service, i)]);
        writes.push(tokio::spawn(async move {
            post(&app, "/v1/alerts/alertmanager", &body).await
        }));
    }
    held(&waiting, 2).await;
    // The write budget is spent: a read still answers.
    let (status, body) = get(&app, "/v1/alerts?limit=5").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = get(&app, "/healthz").await;
    assert_eq!(status, StatusCode::OK);
    // A third write is refused at once, with the JSON error and Retry-After.
    let (status, retry_after, body) = send(
        &app,
        post_request("/v1/deployments", deployment(&service, 1).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "overloaded");
    assert_eq!(retry_after.as_deref(), Some("5"));
    // The shed request is counted.
    let (_, _, metrics) = send(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(
        metrics.contains("deploygraph_http_requests_shed_total{budget=\"write\"} 1"),
        "{metrics}"
    );
    // Once the held writes finish, writes pass again.
    gate.add_permits(1000);
    for w in writes {
        let (status, body) = w.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, body) = post(&app, "/v1/deployments", &deployment(&service, 1)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_read_budget_sheds_reads_and_leaves_writes_alone() {
    let (_dir, inner) = deploygraph_store::testing::sqlite().await;
    let (store, gate, waiting) = gated_reads(inner);
    let app = app_with(
        &store,
        ApiConfig {
            max_concurrent_reads: 1,
            ..ApiConfig::default()
        },
    );
    let service = unique("reads");
    let held_read = {
        let app = app.clone();
        tokio::spawn(async move { get(&app, "/v1/alerts?limit=5").await })
    };
    held(&waiting, 1).await;
    let (status, retry_after, body) = send(
        &app,
        Request::get("/v1/alerts").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "overloaded");
    assert_eq!(retry_after.as_deref(), Some("5"));
    // Writes have their own budget.
    let (status, body) = post(&app, "/v1/deployments", &deployment(&service, 0)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    gate.add_permits(1000);
    let (status, body) = held_read.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_the_timeout_gets_503_with_the_json_error() {
    let (_dir, inner) = deploygraph_store::testing::sqlite().await;
    let (store, gate, _waiting) = gated(inner);
    let app = app_with(
        &store,
        ApiConfig {
            request_timeout: Duration::from_millis(200),
            ..ApiConfig::default()
        },
    );
    let service = unique("slow");
    let (status, retry_after, body) = send(
        &app,
        post_request("/v1/deployments", deployment(&service, 0).to_string()),
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "timeout");
    assert_eq!(retry_after.as_deref(), Some("5"));
    // Reads are bounded the same way and answer in time when the store does.
    gate.add_permits(1000);
    let (status, _) = get(&app, "/v1/alerts").await;
    assert_eq!(status, StatusCode::OK);
}

/// DORA and the incident report read attributions and deployments in batches: their store
/// calls do not grow with the number of alerts.
async fn dora_and_reports_make_no_per_alert_reads(inner: Arc<dyn GraphStore>) {
    let single_reads = Arc::new(AtomicUsize::new(0));
    let store: Arc<dyn GraphStore> = Arc::new(GatedStore {
        inner,
        gate: Arc::new(Semaphore::new(1_000_000)),
        waiting: Arc::new(AtomicUsize::new(0)),
        reads: false,
        single_reads: Arc::clone(&single_reads),
    });
    let app = app(&store);
    let service = unique("dora");
    let mut deployments = Vec::new();
    for minute in [0, 20, 40] {
        let (status, body) = post(&app, "/v1/deployments", &deployment(&service, minute)).await;
        assert!(status.is_success(), "{body}");
        deployments.push(Uid::from_stored(body["uid"].as_str().unwrap()));
    }
    let alerts: Vec<Value> = (0..40)
        .map(|i| am_alert(&unique("fp"), &service, 1 + i))
        .collect();
    let fingerprint = alerts[0]["fingerprint"].as_str().unwrap().to_owned();
    let (status, body) = post(&app, "/v1/alerts/alertmanager", &webhook(alerts)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // An SRE-grade certainty for a few alerts: their top suspect is a failed change.
    for item in body["alerts"].as_array().unwrap().iter().take(5) {
        let alert = Uid::from_stored(item["uid"].as_str().unwrap());
        let trigger = Trigger {
            subject: deploygraph_model::SubjectKind::Deployment,
            subject_uid: deployments[1].clone(),
            alert_uid: alert.clone(),
            confidence_score: 0.9,
            reasons: vec!["set by the test".into()],
            computed_at: Utc::now(),
        };
        store
            .replace_attribution(&alert, &[trigger], None)
            .await
            .unwrap();
    }
    let (status, dora) = get(
        &app,
        &format!(
            "/v1/dora?service={service}&since={}&until={}",
            at(-60),
            at(120)
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{dora}");
    assert_eq!(dora["services"][0]["deployments"], 3, "{dora}");
    assert_eq!(
        dora["services"][0]["failed_changes"], 1,
        "the alerts' top suspect counts as a failed change: {dora}"
    );
    let before = single_reads.load(Ordering::SeqCst);
    let (status, _) = get(
        &app,
        &format!(
            "/v1/dora?service={service}&since={}&until={}",
            at(-60),
            at(120)
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        single_reads.load(Ordering::SeqCst),
        before,
        "DORA over 40 alerts"
    );
    let (status, report) = get(
        &app,
        &format!("/v1/reports/incident?alert={fingerprint}&format=json"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert!(
        single_reads.load(Ordering::SeqCst) - before <= 1,
        "the report reads its own alert's attribution, nothing per alert or per suspect"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dora_and_reports_make_no_per_alert_reads_on_sqlite() {
    let (_dir, store) = deploygraph_store::testing::sqlite().await;
    dora_and_reports_make_no_per_alert_reads(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dora_and_reports_make_no_per_alert_reads_on_neo4j() {
    let (_dir, store) = deploygraph_store::testing::neo4j().await;
    dora_and_reports_make_no_per_alert_reads(store).await;
}
