//! Component tests of alert intake, topology, chaos runs and the root-cause queries: the
//! router driven in-process over both stores (SQLite, and the real Neo4j of
//! `scripts/services up neo4j`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use deploygraph_api::{ApiConfig, AppState, router_with_inline_follow_ups};
use deploygraph_store::GraphStore;
use http_body_util::BodyExt;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

const TOKEN: &str = "s3cret";

/// The router with each write's follow-ups (attribution, re-attribution) done before its
/// answer, so the next request sees them.
fn app(store: &Arc<dyn GraphStore>) -> Router {
    router_with_inline_follow_ups(
        AppState::new(
            Arc::clone(store),
            ApiConfig {
                token: Some(SecretString::from(TOKEN.to_owned())),
                ..ApiConfig::default()
            },
        ),
        std::time::Duration::from_secs(30),
    )
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, body)
}

fn with_body(method: &str, path: &str, body: &Value, token: Option<&str>) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    request.body(Body::from(body.to_string())).unwrap()
}

async fn post(app: &Router, path: &str, body: &Value) -> (StatusCode, Value) {
    send(app, with_body("POST", path, body, Some(TOKEN))).await
}

async fn get(app: &Router, path: &str) -> (StatusCode, Value) {
    send(app, Request::get(path).body(Body::empty()).unwrap()).await
}

fn at(minute: i64) -> String {
    let base = chrono::DateTime::parse_from_rfc3339("2026-11-20T10:00:00Z").unwrap();
    (base + chrono::Duration::minutes(minute))
        .to_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn deployment(service: &str, minute: i64, seed: u8, status: &str, changes: Value) -> Value {
    json!({
        "service": service, "namespace": "prod", "environment": "production",
        "version": format!("v1.{seed}.0"),
        "commit": {"sha": format!("{:040x}", u128::from(seed) + 0xabc0000), "author": format!("dev{}@acme.io", seed % 2),
                   "committed_at": at(minute - 30)},
        "images": [{"repository": format!("ghcr.io/acme/{service}"), "tag": format!("v1.{seed}.0"),
                    "digest": format!("sha256:{}", format!("{seed:02x}").repeat(32))}],
        "status": status, "started_at": at(minute), "finished_at": at(minute + 2),
        "changes": changes
    })
}

async fn record(app: &Router, body: &Value) -> String {
    let (status, stored) = post(app, "/v1/deployments", body).await;
    assert!(status.is_success(), "{status} {stored}");
    stored["uid"].as_str().unwrap().to_owned()
}

fn am_alert(fingerprint: &str, service: &str, minute: i64, resolved_minute: Option<i64>) -> Value {
    json!({
        "status": if resolved_minute.is_some() { "resolved" } else { "firing" },
        "labels": {"alertname": "HighErrorRate", "service": service, "namespace": "prod",
                   "environment": "production", "severity": "critical", "type": "error-rate"},
        "annotations": {"summary": format!("{service} 5xx above 5%")},
        "startsAt": at(minute),
        "endsAt": resolved_minute.map_or("0001-01-01T00:00:00Z".to_owned(), at),
        "generatorURL": "http://prometheus/graph", "fingerprint": fingerprint
    })
}

fn webhook(alerts: Vec<Value>) -> Value {
    json!({"version": "4", "groupKey": "{}:{alertname=\"HighErrorRate\"}", "truncatedAlerts": 0,
           "status": "firing", "receiver": "deploygraph", "groupLabels": {}, "commonLabels": {},
           "commonAnnotations": {}, "externalURL": "http://alertmanager", "alerts": alerts})
}

async fn alerts_of(app: &Router, service: &str) -> Vec<Value> {
    let (status, body) = get(app, &format!("/v1/alerts?service={service}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].as_array().unwrap().clone()
}

async fn webhook_intake_dedupes_resolves_and_refuses_bad_input(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let service = unique("intake");
    let fp = unique("fp");
    let body = webhook(vec![
        am_alert(&fp, &service, 30, None),
        am_alert(&unique("fp"), &service, 31, None),
    ]);
    let (status, _) = send(
        &app,
        with_body("POST", "/v1/alerts/alertmanager", &body, None),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, out) = post(&app, "/v1/alerts/alertmanager", &body).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(
        (out["received"].as_u64(), out["created"].as_u64()),
        (Some(2), Some(2))
    );
    // Alertmanager retries: the same delivery is a no-op.
    let (_, out) = post(&app, "/v1/alerts/alertmanager", &body).await;
    assert_eq!(out["unchanged"], 2, "{out}");
    assert_eq!(alerts_of(&app, &service).await.len(), 2);
    let (_, out) = post(
        &app,
        "/v1/alerts/alertmanager",
        &webhook(vec![am_alert(&fp, &service, 30, Some(50))]),
    )
    .await;
    assert_eq!(out["updated"], 1, "{out}");
    let stored = alerts_of(&app, &service).await;
    let resolved = stored
        .iter()
        .find(|a| a["fingerprint"] == fp.as_str())
        .unwrap();
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["ends_at"], at(50));
    assert_eq!(resolved["type"], "error-rate");
    // Bad input names the field and writes nothing.
    let mut no_fp = am_alert("x", &service, 40, None);
    no_fp.as_object_mut().unwrap().remove("fingerprint");
    for (bad, field) in [
        (json!({"version": "3", "alerts": []}), "version"),
        (
            webhook(vec![am_alert(&unique("fp"), &service, 40, None), no_fp]),
            "alerts[1].fingerprint",
        ),
    ] {
        let (status, out) = post(&app, "/v1/alerts/alertmanager", &bad).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
        assert_eq!(out["error"]["field"], field);
    }
    assert_eq!(
        alerts_of(&app, &service).await.len(),
        2,
        "a refused delivery wrote nothing"
    );
}

async fn suspects_rank_recent_deployments_and_dependencies(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let (svc, db, other) = (unique("pay"), unique("db"), unique("other"));
    let old = record(&app, &deployment(&svc, -100, 1, "succeeded", json!([]))).await;
    let new = record(
        &app,
        &deployment(&svc, -10, 2, "succeeded", json!([{"path": "values.redis.pool.size", "kind": "value", "before": "50", "after": "10"}])),
    )
    .await;
    let dep = record(&app, &deployment(&db, -5, 3, "succeeded", json!([]))).await;
    record(&app, &deployment(&other, -3, 4, "failed", json!([]))).await;
    let fp = unique("fp");
    post(
        &app,
        "/v1/alerts/alertmanager",
        &webhook(vec![am_alert(&fp, &svc, 0, None)]),
    )
    .await;
    let (status, view) = get(&app, &format!("/v1/alerts/{fp}/suspects")).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let ranked: Vec<&str> = view["suspects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["deployment"]["uid"].as_str().unwrap())
        .collect();
    assert_eq!(ranked.first(), Some(&new.as_str()), "{view}");
    assert!(!ranked.contains(&dep.as_str()), "no topology yet: {view}");
    assert!(ranked.len() <= 2 && (ranked.len() == 1 || ranked[1] == old));
    let top = &view["suspects"][0];
    let score = top["confidence_score"].as_f64().unwrap();
    assert!(score > 0.0 && score <= 1.0);
    assert!(
        top["reasons"][0]
            .as_str()
            .unwrap()
            .contains("min before the alert"),
        "{top}"
    );
    assert_eq!(
        top["deployment"]["changes"][0]["path"],
        "values.redis.pool.size"
    );
    // With the topology, the dependency's deployment is a suspect too, after recomputing.
    let (status, out) = send(
        &app,
        with_body(
            "PUT",
            &format!("/v1/services/{svc}/dependencies"),
            &json!({"namespace": "prod", "environment": "production", "depends_on": [db]}),
            Some(TOKEN),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let (status, view) = post(&app, &format!("/v1/alerts/{fp}/attribution"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let dep_view = view["suspects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["deployment"]["uid"] == dep.as_str())
        .unwrap_or_else(|| panic!("the dependency's deployment is a suspect: {view}"));
    assert_eq!(
        dep_view["reasons"][1].as_str().unwrap(),
        format!("1 hop: {svc} → {db}"),
        "{dep_view}"
    );
    // Each suspect's confidence is a probability; with "no recorded change" they sum to 1.
    let explained: f64 = view["suspects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["confidence_score"].as_f64().unwrap())
        .sum();
    let unexplained = view["unexplained"].as_f64().unwrap();
    assert!((explained + unexplained - 1.0).abs() < 1e-6, "{view}");
    // Recomputing again does not duplicate.
    let (_, again) = post(&app, &format!("/v1/alerts/{fp}/attribution"), &json!({})).await;
    assert_eq!(
        again["suspects"].as_array().unwrap().len(),
        view["suspects"].as_array().unwrap().len()
    );
    let (status, _) = get(&app, "/v1/alerts/no-such-fingerprint/suspects").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Seen from each suspect: the alert, its place among the suspects, the same confidence.
    let suspects = view["suspects"].as_array().unwrap();
    for (i, suspect) in suspects.iter().enumerate() {
        let uid = suspect["deployment"]["uid"].as_str().unwrap();
        let (status, attributed) = get(&app, &format!("/v1/deployments/{uid}/alerts")).await;
        assert_eq!(status, StatusCode::OK, "{attributed}");
        assert_eq!(attributed["deployment"], uid);
        assert_eq!(attributed["truncated"], false);
        let items = attributed["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{attributed}");
        assert_eq!(items[0]["alert"]["fingerprint"], fp.as_str());
        assert_eq!(items[0]["rank"], i + 1, "{attributed}");
        assert_eq!(items[0]["suspects"], suspects.len());
        assert_eq!(items[0]["confidence_score"], suspect["confidence_score"]);
        assert_eq!(items[0]["reasons"], suspect["reasons"]);
        assert_eq!(items[0]["verdict"], Value::Null);
    }
    // A reviewer's verdict shows on the deployment's side too.
    let (status, out) = post(
        &app,
        &format!("/v1/alerts/{fp}/suspects/{new}/verdict"),
        &json!({"verdict": "confirmed", "by": "oncall"}),
    )
    .await;
    assert!(status.is_success(), "{out}");
    let (_, attributed) = get(&app, &format!("/v1/deployments/{new}/alerts")).await;
    assert_eq!(attributed["items"][0]["verdict"]["verdict"], "confirmed");
    assert_eq!(attributed["items"][0]["verdict"]["by"], "oncall");
    let (status, _) = get(&app, "/v1/deployments/deployment-none/alerts").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn a_deployment_reported_after_its_alert_is_attributed(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let svc = unique("late");
    let fp = unique("fp");
    post(
        &app,
        "/v1/alerts/alertmanager",
        &webhook(vec![am_alert(&fp, &svc, 0, None)]),
    )
    .await;
    let (_, view) = get(&app, &format!("/v1/alerts/{fp}/suspects")).await;
    assert!(view["suspects"].as_array().unwrap().is_empty());
    let uid = record(&app, &deployment(&svc, -15, 5, "succeeded", json!([]))).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, view) = get(&app, &format!("/v1/alerts/{fp}/suspects")).await;
        if view["suspects"][0]["deployment"]["uid"] == uid.as_str() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not re-attributed: {view}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// An alert whose name says what broke (`KubeContainerTerminated` with kube-state-metrics'
/// reason label `OOMKilled`) points the SRE at the change whose key can break it: the memory
/// limit cut's reasons say it can, the pool-size change's that it cannot; an alert that names
/// only errors says nothing of symptoms, and the probabilities are the same under both.
async fn an_alert_s_symptom_points_at_the_key_that_can_cause_it(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let memory = "spec.template.spec.containers[0].resources.limits.memory";
    // The same two changes on two services; one service's alert names its symptom.
    let mut seen = Vec::new();
    for (seed, oom) in [(6, true), (8, false)] {
        let svc = unique(if oom { "oom" } else { "errors" });
        let cut_body = deployment(
            &svc,
            -30,
            seed,
            "succeeded",
            json!([{"path": memory, "kind": "resources", "before": "1Gi", "after": "512Mi"}]),
        );
        let cut = record(&app, &cut_body).await;
        // The same image: only the pool size changed.
        let mut pool_body = deployment(
            &svc,
            -12,
            seed + 1,
            "succeeded",
            json!([{"path": "values.redis.pool.size", "kind": "value", "before": "50", "after": "10"}]),
        );
        pool_body["images"] = cut_body["images"].clone();
        let pool = record(&app, &pool_body).await;
        let fp = unique("fp");
        let mut alert = am_alert(&fp, &svc, 0, None);
        if oom {
            alert["labels"]["alertname"] = json!("KubeContainerTerminated");
            alert["labels"]["reason"] = json!("OOMKilled");
            alert["annotations"]["summary"] = json!(format!("a container of {svc} was terminated"));
        }
        let (status, out) = post(&app, "/v1/alerts/alertmanager", &webhook(vec![alert])).await;
        assert_eq!(status, StatusCode::OK, "{out}");
        let (status, view) = get(&app, &format!("/v1/alerts/{fp}/suspects")).await;
        assert_eq!(status, StatusCode::OK, "{view}");
        let of = |uid: &str| -> (f64, Vec<String>) {
            let s = view["suspects"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["deployment"]["uid"] == uid)
                .unwrap_or_else(|| panic!("{uid} is a suspect: {view}"));
            let reasons = s["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_owned())
                .collect();
            (s["confidence_score"].as_f64().unwrap(), reasons)
        };
        seen.push((of(&cut), of(&pool)));
    }
    let [
        ((cut_oom, cut_said), (pool_oom, pool_said)),
        ((cut_errors, cut_plain), (pool_errors, pool_plain)),
    ] = <[_; 2]>::try_from(seen).unwrap();
    assert_eq!((cut_oom, pool_oom), (cut_errors, pool_errors));
    assert!(
        cut_said.contains(&format!(
            "KubeContainerTerminated names memory, crashing or unready pods: {memory} 1Gi → 512Mi can cause that"
        )),
        "{cut_said:?}"
    );
    assert!(
        pool_said.contains(
            &"KubeContainerTerminated names memory, crashing or unready pods: none of the keys \
              it changed can cause that"
                .to_owned()
        ),
        "{pool_said:?}"
    );
    // An alert that names only errors says nothing of symptoms.
    assert!(
        !cut_plain
            .iter()
            .chain(&pool_plain)
            .any(|r| r.contains(" names ")),
        "{cut_plain:?} {pool_plain:?}"
    );
}

async fn chaos_in_progress_takes_the_blame(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let svc = unique("chaos");
    record(&app, &deployment(&svc, -10, 6, "succeeded", json!([]))).await;
    let run = json!({
        "uid": deploygraph_model::Uid::derive("chaos-run", &[&unique("run")]).as_str(),
        "scenario": "pod-delete", "experiment": "pod-delete",
        "target": {"name": svc, "namespace": "prod", "environment": "production"},
        "verdict": "Awaited", "phase": "Running", "started_at": at(-2)
    });
    let (status, out) = post(&app, "/v1/chaos/runs", &run).await;
    assert_eq!(status, StatusCode::CREATED, "{out}");
    let (status, _) = post(&app, "/v1/chaos/runs", &run).await;
    assert_eq!(status, StatusCode::OK);
    let fp = unique("fp");
    post(
        &app,
        "/v1/alerts/alertmanager",
        &webhook(vec![am_alert(&fp, &svc, 0, None)]),
    )
    .await;
    let (_, view) = get(&app, &format!("/v1/alerts/{fp}/suspects")).await;
    assert_eq!(view["chaos"]["run_uid"], run["uid"], "{view}");
    assert_eq!(view["chaos"]["run"]["experiment"], "pod-delete");
    assert!(view["suspects"].as_array().unwrap().is_empty(), "{view}");
    let mut bad = run.clone();
    bad["ended_at"] = json!(at(-10));
    let (status, out) = post(&app, "/v1/chaos/runs", &bad).await;
    assert_eq!(
        (status, out["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("ended_at"))
    );
    let (status, listed) = get(&app, &format!("/v1/chaos/runs?service={svc}")).await;
    assert_eq!(
        (status, listed["items"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(1)),
        "{listed}"
    );
    // A run against a release is listed for that release only.
    let release = record(&app, &deployment(&svc, -1, 7, "succeeded", json!([]))).await;
    let mut against = run.clone();
    against["uid"] = json!(deploygraph_model::Uid::derive("chaos-run", &[&unique("run")]).as_str());
    against["against"] = json!(release);
    let (status, out) = post(&app, "/v1/chaos/runs", &against).await;
    assert_eq!(status, StatusCode::CREATED, "{out}");
    let (status, listed) = get(&app, &format!("/v1/chaos/runs?deployment={release}")).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let uids: Vec<&Value> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["uid"])
        .collect();
    assert_eq!(uids, vec![&against["uid"]], "{listed}");
    let (status, out) = get(&app, "/v1/chaos/runs?deployment=").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    // Checked even when the service is unknown (whose page is empty without asking further).
    let (status, out) = get(
        &app,
        &format!(
            "/v1/chaos/runs?service={}&deployment=%C3%A6j%7C",
            unique("nosuch")
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    assert!(out.to_string().contains("deployment"), "{out}");
    let (status, trend) = get(&app, &format!("/v1/services/{svc}/resilience")).await;
    assert_eq!(status, StatusCode::OK, "{trend}");
    assert_eq!(trend["runs"][0]["scenario"], "pod-delete");
    assert_eq!(trend["runs"][0]["verdict"], "Awaited");
    let (status, got) = get(
        &app,
        &format!("/v1/chaos/runs/{}", run["uid"].as_str().unwrap()),
    )
    .await;
    assert_eq!(
        (status, got["phase"].as_str()),
        (StatusCode::OK, Some("Running"))
    );
}

async fn timeline_factors_dora_and_report(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let svc = unique("review");
    let key = json!([{"path": "values.db.maxConnections", "kind": "value", "before": "100", "after": "20"}]);
    let mut failed = Vec::new();
    for (i, minute) in [-300i64, -200, -100].into_iter().enumerate() {
        failed.push(
            record(
                &app,
                &deployment(&svc, minute, 10 + i as u8, "failed", key.clone()),
            )
            .await,
        );
    }
    let good = record(&app, &deployment(&svc, -20, 20, "succeeded", json!([]))).await;
    let fp = unique("fp");
    post(
        &app,
        "/v1/alerts/alertmanager",
        &webhook(vec![am_alert(&fp, &svc, 0, Some(30))]),
    )
    .await;
    // The judge failed the top suspect's canary (recorded after the alert's attribution).
    let (status, canary) = post(
        &app,
        "/v1/canary/analyses",
        &json!({
            "deployment": good, "template": "http", "verdict": "fail",
            "baseline_kind": "side_by_side", "started_at": at(-19), "decided_at": at(-15),
            "analyses": 4, "rule": "critical metric http-error-ratio failed",
            "metrics": [
                {"name": "http-error-ratio", "kind": "ratio", "outcome": "fail", "critical": true,
                 "rule": "the canary's error ratio is 4.9 points above the baseline's (p < 1e-9)",
                 "evidence": {"p_value": 1e-10}},
                {"name": "http-latency-p99", "kind": "distribution", "outcome": "pass",
                 "rule": "no significant shift", "evidence": {}}
            ]
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{canary}");
    // The judge also failed two of the failed deployments on the error ratio.
    for (uid, minute) in [(&failed[0], -299), (&failed[1], -199)] {
        let (status, canary) = post(
            &app,
            "/v1/canary/analyses",
            &json!({
                "deployment": uid, "template": "http", "verdict": "fail",
                "baseline_kind": "side_by_side", "started_at": at(minute),
                "decided_at": at(minute + 2), "analyses": 2,
                "metrics": [{"name": "http-error-ratio", "kind": "ratio", "outcome": "fail",
                             "critical": true, "rule": "more errors", "evidence": {}}]
            }),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{canary}");
    }

    let (status, t) = get(
        &app,
        &format!(
            "/v1/services/{svc}/timeline?since={}&until={}",
            at(-400),
            at(60)
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{t}");
    let kinds: Vec<&str> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "deployment",
            "canary_started",
            "canary_decided",
            "deployment",
            "canary_started",
            "canary_decided",
            "deployment",
            "deployment",
            "canary_started",
            "canary_decided",
            "alert_firing",
            "alert_resolved"
        ]
    );
    // Alert events carry the alert's fingerprint (its address in the API); others do not.
    for e in t["events"].as_array().unwrap() {
        let is_alert = e["kind"].as_str().unwrap().starts_with("alert_");
        assert_eq!(e.get("fingerprint").is_some(), is_alert, "{e}");
    }
    let fingerprint = t["events"].as_array().unwrap().last().unwrap()["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = get(&app, &format!("/v1/alerts/{fingerprint}/suspects")).await;
    assert_eq!(status, StatusCode::OK);

    let (status, f) = get(&app, &format!("/v1/services/{svc}/common-factors?last=3")).await;
    assert_eq!(status, StatusCode::OK, "{f}");
    assert_eq!(f["deployments"].as_array().unwrap().len(), 3);
    assert_eq!(f["deployments"][0], failed[2].as_str(), "newest first");
    let factor = f["factors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["kind"] == "config_key")
        .unwrap();
    assert_eq!(
        (factor["value"].as_str(), factor["count"].as_u64()),
        (Some("values.db.maxConnections"), Some(3))
    );
    let canary_factor = f["factors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["kind"] == "canary_failed")
        .unwrap_or_else(|| panic!("a failed canary is a factor: {f}"));
    assert_eq!(
        (
            canary_factor["value"].as_str(),
            canary_factor["count"].as_u64()
        ),
        (Some("http-error-ratio"), Some(2))
    );
    let (status, bad) = get(&app, &format!("/v1/services/{svc}/common-factors?last=0")).await;
    assert_eq!(
        (status, bad["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("last"))
    );

    let (status, d) = get(
        &app,
        &format!(
            "/v1/dora?service={svc}&since={}&until={}",
            at(-1440),
            at(1440)
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{d}");
    let m = &d["services"][0];
    assert_eq!(m["deployments"], 4);
    assert_eq!(m["deployment_frequency_per_day"], 2.0);
    assert!(m["failed_changes"].as_u64().unwrap() >= 3);
    assert_eq!(m["lead_time"]["median_seconds"], 32.0 * 60.0);
    assert_eq!(m["time_to_restore"]["median_seconds"], 30.0 * 60.0);

    let request = Request::get(format!("/v1/reports/incident?alert={fp}"))
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/markdown; charset=utf-8"
    );
    let markdown = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(markdown.contains("## Suspects"), "{markdown}");
    assert!(
        markdown.contains(&good),
        "the top suspect is in the report: {markdown}"
    );
    assert!(markdown.contains("```mermaid\nflowchart LR"), "{markdown}");
    assert!(markdown.contains("TRIGGERS"), "{markdown}");
    assert!(
        markdown.contains("## Canary analyses of the suspect deployments")
            && markdown.contains(&format!("- `{good}` ({svc} "))
            && markdown.contains("**fail** against the side_by_side baseline")
            && markdown.contains(
                "  - http-error-ratio (critical) failed: the canary's error ratio is 4.9 points"
            )
            && !markdown.contains("http-latency-p99 failed"),
        "{markdown}"
    );
    let (status, json_report) = get(
        &app,
        &format!("/v1/reports/incident?alert={fp}&format=json"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_report["suspects"]["alert"]["fingerprint"], fp.as_str());
    assert_eq!(
        json_report["canary_analyses"][0]["deployment"],
        good.as_str()
    );
    assert_eq!(json_report["canary_analyses"][0]["verdict"], "fail");
    let (status, _) = get(&app, "/v1/reports/incident").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// Several services that depend on one alert together: the shared dependency's change is the
/// candidate that explains the others too, and its reasons say so; an alert that started
/// before the change landed is not one of them, and a change on one alerting service explains
/// no other.
/// Each of `services` depends on `dependency`.
async fn depend_on(app: &Router, services: &[&String], dependency: &str) {
    for service in services {
        let (status, out) = send(
            app,
            with_body(
                "PUT",
                &format!("/v1/services/{service}/dependencies"),
                &json!({"namespace": "prod", "environment": "production", "depends_on": [dependency]}),
                Some(TOKEN),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{out}");
    }
}

async fn an_alert_storm_names_the_alerts_a_shared_dependency_explains(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let (db, web1, web2, web3) = (unique("db"), unique("web1"), unique("web2"), unique("web3"));
    depend_on(&app, &[&web1, &web2, &web3], &db).await;
    let shared = record(
        &app,
        &deployment(&db, -22, 1, "succeeded", json!([{"path": "values.db.maxConnections", "kind": "value", "before": "100", "after": "10"}])),
    )
    .await;
    let own = record(&app, &deployment(&web1, -7, 2, "succeeded", json!([]))).await;
    let (fp1, fp2, fp3) = (unique("fp"), unique("fp"), unique("fp"));
    // web3's alert started before the shared change landed (-20): not one of its co-alerts.
    post(
        &app,
        "/v1/alerts/alertmanager",
        &webhook(vec![
            am_alert(&fp1, &web1, 0, None),
            am_alert(&fp2, &web2, 2, None),
            am_alert(&fp3, &web3, -30, None),
        ]),
    )
    .await;
    let (status, view) = get(&app, &format!("/v1/alerts/{fp1}/suspects")).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let reasons_of = |uid: &str| -> Vec<String> {
        view["suspects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["deployment"]["uid"] == uid)
            .unwrap_or_else(|| panic!("{uid} is a suspect: {view}"))["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_owned())
            .collect()
    };
    let shared_reasons = reasons_of(&shared);
    assert!(
        shared_reasons.contains(&format!(
            "1 other alert started after it on {web2}, which depend on {db}"
        )),
        "{shared_reasons:?}"
    );
    let own_reasons = reasons_of(&own);
    assert!(
        !own_reasons.iter().any(|r| r.contains("other alert")),
        "{own_reasons:?}"
    );
}

/// Alertmanager sends one notification per group: the first alert of a storm is attributed
/// before the others are recorded, and is attributed again once they are.
async fn a_storm_in_several_notifications_revisits_its_first_alerts(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let (db, web1, web2, lone) = (unique("db"), unique("web1"), unique("web2"), unique("lone"));
    depend_on(&app, &[&web1, &web2], &db).await;
    let shared = record(
        &app,
        &deployment(&db, -22, 1, "succeeded", json!([{"path": "values.db.maxConnections", "kind": "value", "before": "100", "after": "10"}])),
    )
    .await;
    record(&app, &deployment(&web1, -7, 2, "succeeded", json!([]))).await;
    record(&app, &deployment(&lone, -5, 3, "succeeded", json!([]))).await;
    let (fp1, fp2, fp3) = (unique("fp"), unique("fp"), unique("fp"));
    let shared_suspect = |view: &Value| -> (f64, Vec<String>) {
        let s = view["suspects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["deployment"]["uid"] == shared.as_str())
            .unwrap_or_else(|| panic!("{shared} is a suspect: {view}"));
        (
            s["confidence_score"].as_f64().unwrap(),
            s["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_owned())
                .collect(),
        )
    };
    post(
        &app,
        "/v1/alerts/alertmanager",
        &webhook(vec![am_alert(&fp1, &web1, 0, None)]),
    )
    .await;
    let (_, alone) = get(&app, &format!("/v1/alerts/{fp1}/suspects")).await;
    let (before, reasons) = shared_suspect(&alone);
    assert!(
        !reasons.iter().any(|r| r.contains("other alert")),
        "{reasons:?}"
    );
    // An alert on a service that shares nothing with web1's: web1's answer stays.
    post(
        &app,
        "/v1/alerts/alertmanager",
        &webhook(vec![am_alert(&fp3, &lone, 1, None)]),
    )
    .await;
    let (_, view) = get(&app, &format!("/v1/alerts/{fp1}/suspects")).await;
    assert_eq!(shared_suspect(&view).0, before, "{view}");
    // The storm's next notification.
    post(
        &app,
        "/v1/alerts/alertmanager",
        &webhook(vec![am_alert(&fp2, &web2, 2, None)]),
    )
    .await;
    let (status, view) = get(&app, &format!("/v1/alerts/{fp1}/suspects")).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["attribution_pending"], false, "{view}");
    let (after, reasons) = shared_suspect(&view);
    assert!(
        reasons.contains(&format!(
            "1 other alert started after it on {web2}, which depend on {db}"
        )),
        "{reasons:?}"
    );
    assert!(after > before, "{before} -> {after}");
    let first =
        deploygraph_model::Uid::from_stored(view["alert"]["uid"].as_str().unwrap().to_owned());
    assert_eq!(
        store
            .follow_up_stats(Some(std::slice::from_ref(&first)))
            .await
            .unwrap()
            .total(),
        0,
        "the revisit was done with the notification's follow-ups"
    );
}

deploygraph_store::both_stores!(
    webhook_intake_dedupes_resolves_and_refuses_bad_input,
    suspects_rank_recent_deployments_and_dependencies,
    a_deployment_reported_after_its_alert_is_attributed,
    an_alert_s_symptom_points_at_the_key_that_can_cause_it,
    chaos_in_progress_takes_the_blame,
    timeline_factors_dora_and_report,
    an_alert_storm_names_the_alerts_a_shared_dependency_explains,
    a_storm_in_several_notifications_revisits_its_first_alerts,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cypher_is_read_only_on_neo4j_and_unsupported_on_sqlite() {
    let (_none, neo_store) = deploygraph_store::testing::neo4j().await;
    let neo = app(&neo_store);
    let svc = unique("cypher");
    record(&neo, &deployment(&svc, -10, 7, "succeeded", json!([]))).await;
    let fp = unique("fp");
    post(
        &neo,
        "/v1/alerts/alertmanager",
        &webhook(vec![am_alert(&fp, &svc, 0, None)]),
    )
    .await;
    // The issue's query, with parameters.
    let (status, out) = post(
        &neo,
        "/v1/cypher",
        &json!({"query": "MATCH (d:DeploymentEvent)-[r:TRIGGERS]->(a:Alert) WHERE a.type = $type AND a.fingerprint = $fp RETURN d.commit AS commit, d.timestamp AS timestamp, r.confidence_score AS score",
                "params": {"type": "error-rate", "fp": fp}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["rows"].as_array().unwrap().len(), 1, "{out}");
    let columns: Vec<&str> = out["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let at = |name: &str| columns.iter().position(|c| *c == name).unwrap();
    let row = &out["rows"][0];
    assert_eq!(
        row[at("commit")],
        format!("{:040x}", 7u128 + 0xabc0000).as_str()
    );
    assert!(row[at("score")].as_f64().unwrap() > 0.0);
    // A write is refused by the database, and says so.
    let (status, out) = post(
        &neo,
        "/v1/cypher",
        &json!({"query": "CREATE (n:Intruder) RETURN n"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{out}");
    assert_eq!(out["error"]["code"], "query_refused");
    assert!(
        out["error"]["message"].as_str().unwrap().contains("read"),
        "{out}"
    );
    // The row cap.
    let (_, out) = post(
        &neo,
        "/v1/cypher",
        &json!({"query": "UNWIND range(1, 50) AS x RETURN x", "limit": 5}),
    )
    .await;
    assert_eq!(
        (
            out["rows"].as_array().unwrap().len(),
            out["truncated"].as_bool()
        ),
        (5, Some(true))
    );
    let (status, out) = post(&neo, "/v1/cypher", &json!({"query": ""})).await;
    assert_eq!(
        (status, out["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("query"))
    );

    let (_dir, lite_store) = deploygraph_store::testing::sqlite().await;
    let lite = app(&lite_store);
    let (status, out) = post(&lite, "/v1/cypher", &json!({"query": "RETURN 1"})).await;
    // No Cypher on SQLite: the endpoint is absent there (404), not a server error.
    assert_eq!(status, StatusCode::NOT_FOUND, "{out}");
    assert_eq!(out["error"]["code"], "unsupported");
}
