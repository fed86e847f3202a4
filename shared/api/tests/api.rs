//! Component tests: the axum router driven in-process over the embedded store, plus a store
//! double that is down, for the 503 path.
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
use deploygraph_store::sqlite::SqliteStore;
use deploygraph_store::{
    AlertFilter, AppliedMigration, ChaosFilter, DeploymentFilter, GraphStore, MigrationSource,
    Page, RecordOutcome, ServiceHistory, ServiceSummary, StoredAttribution, StoredDeployment,
};
use http_body_util::BodyExt;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

/// Temporary directories of the test stores, removed when the test process exits.
static DIRS: std::sync::Mutex<Vec<tempfile::TempDir>> = std::sync::Mutex::new(Vec::new());

fn temp_db() -> std::path::PathBuf {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    DIRS.lock().unwrap().push(dir);
    path
}

async fn sqlite() -> Arc<dyn GraphStore> {
    let store = SqliteStore::open(&temp_db(), MigrationSource::Embedded)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    Arc::new(store)
}

async fn app_with(config: ApiConfig) -> (Router, Arc<dyn GraphStore>) {
    let store = sqlite().await;
    (router(AppState::new(Arc::clone(&store), config)), store)
}

async fn app() -> Router {
    app_with(ApiConfig::default()).await.0
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, headers, body)
}

fn post(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body.into())
        .unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn digest(seed: u8) -> String {
    format!("sha256:{}", format!("{seed:02x}").repeat(32))
}

fn event() -> Value {
    json!({
        "service": "payments", "namespace": "prod", "environment": "production", "version": "v2.3.0",
        "commit": {"sha": "9fceb02d0ae598e95dc970b74767f19372d61af8", "repo": "github.com/acme/payments",
                   "author": "dev@acme.io", "message": "raise pool", "committed_at": "2026-11-20T10:00:00Z"},
        "images": [{"repository": "ghcr.io/acme/payments", "tag": "v2.3.0", "digest": digest(0xab)}],
        "status": "succeeded", "started_at": "2026-11-20T10:05:00Z", "finished_at": "2026-11-20T10:07:00Z",
        "actor": "ci@acme.io",
        "changes": [{"path": "values.redis.pool.size", "kind": "value", "before": "50", "after": "10"}],
        "validation": {"coverage_pct": 81.5, "sast_findings": 0, "tests_passed": 412, "tests_failed": 0}
    })
}

async fn count(app: &Router) -> usize {
    let (_, _, body) = send(app, get("/v1/deployments?limit=10000")).await;
    body["items"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_deployment_is_created_once_and_reposting_returns_the_same_uid() {
    let app = app().await;
    let (status, headers, first) = send(&app, post("/v1/deployments", event().to_string())).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let uid = first["uid"].as_str().unwrap().to_owned();
    assert_eq!(headers[header::LOCATION], format!("/v1/deployments/{uid}"));
    assert_eq!(first["changes"][0]["after"], "10");
    let (status, _, again) = send(&app, post("/v1/deployments", event().to_string())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["uid"], uid.as_str());
    assert_eq!(count(&app).await, 1);
    let (status, _, fetched) = send(&app, get(&format!("/v1/deployments/{uid}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, first);
}

#[tokio::test]
async fn a_reused_id_with_different_content_is_a_conflict() {
    let app = app().await;
    let mut e = event();
    e["id"] = json!("pipeline-7");
    assert_eq!(
        send(&app, post("/v1/deployments", e.to_string())).await.0,
        StatusCode::CREATED
    );
    e["version"] = json!("v9");
    let (status, _, body) = send(&app, post("/v1/deployments", e.to_string())).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "conflict");
    assert_eq!(body["error"]["field"], "id");
    assert_eq!(count(&app).await, 1);
}

#[tokio::test]
async fn a_later_event_advances_the_status() {
    let app = app().await;
    let mut e = event();
    e["status"] = json!("in_progress");
    e.as_object_mut().unwrap().remove("finished_at");
    let (status, _, first) = send(&app, post("/v1/deployments", e.to_string())).await;
    assert_eq!(status, StatusCode::CREATED);
    e["status"] = json!("failed");
    e["finished_at"] = json!("2026-11-20T10:09:00Z");
    let (status, _, second) = send(&app, post("/v1/deployments", e.to_string())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(second["uid"], first["uid"]);
    assert_eq!(second["status"], "failed");
}

#[tokio::test]
async fn every_bad_input_gets_its_status_names_its_field_and_writes_nothing() {
    let app = app().await;
    let with = |f: &dyn Fn(&mut Value)| {
        let mut e = event();
        f(&mut e);
        e.to_string()
    };
    let cases: Vec<(String, &str, StatusCode, Option<&str>)> = vec![
        (
            "{\"service\":".into(),
            "application/json",
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            "not json".into(),
            "application/json",
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            event().to_string(),
            "text/plain",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            None,
        ),
        (
            with(&|e| e["surprise"] = json!(1)),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("surprise"),
        ),
        (
            with(&|e| e["commit"]["extra"] = json!(1)),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("commit.extra"),
        ),
        (
            with(&|e| e["service"] = json!(42)),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("service"),
        ),
        (
            with(&|e| e["images"][0]["digest"] = json!("sha256:abc")),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("images[0].digest"),
        ),
        (
            with(&|e| e["images"] = json!([])),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("images"),
        ),
        (
            with(&|e| e["commit"]["sha"] = json!("zzz")),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("commit.sha"),
        ),
        (
            with(&|e| e["started_at"] = json!("2026-11-20")),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("started_at"),
        ),
        (
            with(&|e| {
                e.as_object_mut().unwrap().remove("started_at");
            }),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("started_at"),
        ),
        (
            with(&|e| e["status"] = json!("deployed")),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("status"),
        ),
        (
            with(&|e| e["service"] = json!("Payments_Svc")),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("service"),
        ),
        (
            with(&|e| {
                e.as_object_mut().unwrap().remove("environment");
            }),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("environment"),
        ),
        (
            with(&|e| e["validation"]["tests_passed"] = json!(-1)),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("validation.tests_passed"),
        ),
        (
            with(&|e| e["changes"][0]["kind"] = json!("weird")),
            "application/json",
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("changes[0].kind"),
        ),
    ];
    for (body, content_type, expected, field) in cases {
        let request = Request::post("/v1/deployments")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body.clone()))
            .unwrap();
        let (status, _, response) = send(&app, request).await;
        assert_eq!(status, expected, "{body} -> {response}");
        assert!(response["error"]["code"].is_string(), "{response}");
        assert_eq!(
            response["error"]["field"].as_str(),
            field,
            "{body} -> {response}"
        );
    }
    assert_eq!(count(&app).await, 0, "a rejected request writes nothing");
}

#[tokio::test]
async fn a_body_over_the_limit_is_413() {
    let (app, _) = app_with(ApiConfig {
        max_body_bytes: 4096,
        ..ApiConfig::default()
    })
    .await;
    let mut e = event();
    e["commit"]["message"] = json!("x".repeat(5000));
    let (status, _, body) = send(&app, post("/v1/deployments", e.to_string())).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert_eq!(count(&app).await, 0);
}

#[tokio::test]
async fn writes_need_the_token_when_one_is_configured_and_reads_do_not() {
    let (app, _) = app_with(ApiConfig {
        token: Some(SecretString::from("s3cret".to_owned())),
        ..ApiConfig::default()
    })
    .await;
    let (status, headers, _) = send(&app, post("/v1/deployments", event().to_string())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
    let wrong = Request::post("/v1/deployments")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, "Bearer nope")
        .body(Body::from(event().to_string()))
        .unwrap();
    assert_eq!(send(&app, wrong).await.0, StatusCode::UNAUTHORIZED);
    let cdevent = Request::post("/v1/events")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .unwrap();
    assert_eq!(send(&app, cdevent).await.0, StatusCode::UNAUTHORIZED);
    let right = Request::post("/v1/deployments")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, "Bearer s3cret")
        .body(Body::from(event().to_string()))
        .unwrap();
    assert_eq!(send(&app, right).await.0, StatusCode::CREATED);
    assert_eq!(send(&app, get("/v1/deployments")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn cdevents_are_recorded_as_deployments() {
    let app = app().await;
    let event = json!({
        "context": {"version": "0.4.1", "id": "0b7c2c2e-1", "source": "/ci", "type": "dev.cdevents.service.upgraded.0.2.0",
                    "timestamp": "2026-11-21T09:00:00Z"},
        "subject": {"id": "service/checkout", "source": "/ci", "type": "service",
                    "content": {"environment": {"id": "staging"},
                                "artifactId": format!("pkg:oci/checkout@{}?repository_url=ghcr.io/acme/checkout&tag=v5", digest(7).replace(':', "%3A"))}},
        "customData": {"commit": "abcdef1234", "namespace": "shop"}
    });
    let (status, _, body) = send(&app, post("/v1/events", event.to_string())).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["source"], "cdevents");
    assert_eq!(body["service"], "checkout");
    let (status, _, again) = send(&app, post("/v1/events", event.to_string())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["uid"], body["uid"]);
    let (_, _, page) = send(&app, get("/v1/services/checkout/deployments")).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let (_, _, services) = send(&app, get("/v1/services")).await;
    assert_eq!(services["items"][0]["name"], "checkout");
}

#[tokio::test]
async fn listings_filter_page_and_validate_their_parameters() {
    let app = app().await;
    for minute in 0..30 {
        let mut e = event();
        e["started_at"] = json!(format!("2026-11-20T10:{minute:02}:00Z"));
        e.as_object_mut().unwrap().remove("finished_at");
        e["status"] = json!(if minute % 3 == 0 {
            "failed"
        } else {
            "succeeded"
        });
        assert_eq!(
            send(&app, post("/v1/deployments", e.to_string())).await.0,
            StatusCode::CREATED
        );
    }
    let (_, _, page) = send(
        &app,
        get("/v1/deployments?service=payments&status=failed&limit=4"),
    )
    .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 4);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, _, next) = send(
        &app,
        get(&format!(
            "/v1/deployments?status=failed&limit=100&cursor={cursor}"
        )),
    )
    .await;
    assert_eq!(next["items"].as_array().unwrap().len(), 6);
    assert!(next["next_cursor"].is_null());
    let (_, _, window) = send(
        &app,
        get("/v1/deployments?since=2026-11-20T10:10:00Z&until=2026-11-20T10:19:00Z"),
    )
    .await;
    assert_eq!(window["items"].as_array().unwrap().len(), 10);
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=abc", "limit"),
        ("limit=10001", "limit"),
        ("status=done", "status"),
        ("since=yesterday", "since"),
        ("cursor=%21%21", "cursor"),
        ("service=Bad_Name", "service"),
        ("colour=blue", "colour"),
    ] {
        let (status, _, body) = send(&app, get(&format!("/v1/deployments?{query}"))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
    }
    assert_eq!(
        send(&app, get("/v1/deployments/deployment-nope")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&app, get("/v1/nothing-here")).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn health_readiness_metrics_and_openapi_are_served() {
    let app = app().await;
    assert_eq!(send(&app, get("/healthz")).await.0, StatusCode::OK);
    let (status, _, ready) = send(&app, get("/readyz")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ready["store"], "sqlite");
    send(&app, post("/v1/deployments", event().to_string())).await;
    let (_, _, metrics) = send(&app, get("/metrics")).await;
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains(r#"deploygraph_events_ingested_total{source="api",outcome="created"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("deploygraph_store_operation_seconds"),
        "{metrics}"
    );
    let (status, _, doc) = send(&app, get("/v1/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    for (path, method) in [
        ("/v1/deployments", "post"),
        ("/v1/deployments", "get"),
        ("/v1/deployments/{uid}", "get"),
        ("/v1/events", "post"),
        ("/v1/services", "get"),
        ("/v1/services/{name}/deployments", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/metrics", "get"),
        ("/v1/openapi.json", "get"),
        ("/v1/snapshots", "post"),
        ("/v1/snapshots/{uid}", "get"),
        ("/v1/deployments/{uid}/snapshot", "get"),
        ("/v1/snapshots/latest", "get"),
        ("/v1/alerts/alertmanager", "post"),
        ("/v1/alerts", "get"),
        ("/v1/alerts/{fingerprint}/suspects", "get"),
        ("/v1/alerts/{fingerprint}/attribution", "post"),
        ("/v1/services/{name}/dependencies", "put"),
        ("/v1/services/{name}/dependencies", "get"),
        ("/v1/services/{name}/timeline", "get"),
        ("/v1/services/{name}/common-factors", "get"),
        ("/v1/dora", "get"),
        ("/v1/reports/incident", "get"),
        ("/v1/cypher", "post"),
        ("/v1/chaos/runs", "post"),
        ("/v1/chaos/runs/{uid}", "get"),
        ("/v1/chaos/runs", "get"),
        ("/v1/services/{name}/resilience", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is not documented"
        );
    }
}

#[tokio::test]
async fn an_unmigrated_store_is_not_ready() {
    let store: Arc<dyn GraphStore> = Arc::new(
        SqliteStore::open(&temp_db(), MigrationSource::Embedded)
            .await
            .unwrap(),
    );
    let app = router(AppState::new(store, ApiConfig::default()));
    let (status, headers, body) = send(&app, get("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(headers.contains_key(header::RETRY_AFTER));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_is_taken_over_http_recorded_and_read_back() {
    use deploygraph_probe::testing::{Ca, leaf, serve};
    let ca = Ca::new("api test CA");
    let port = serve(leaf(Some(&ca), &["localhost"], -48, -1)).await;
    let (app, _) = app_with(ApiConfig {
        token: Some(SecretString::from("t".to_owned())),
        snapshot_allow_targets: vec![format!("127.0.0.1:{port}")],
        ..ApiConfig::default()
    })
    .await;
    let body = json!({
        "config": {"tls": [format!("127.0.0.1:{port}@localhost")], "allow_untrusted": true, "deadline": "5s"},
        "deployment": format!("deployment-{}", "ab".repeat(16)), "cluster": "prod"
    });
    let request = |body: &Value, token: Option<&str>| {
        let mut r = Request::post("/v1/snapshots").header(header::CONTENT_TYPE, "application/json");
        if let Some(t) = token {
            r = r.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        r.body(Body::from(body.to_string())).unwrap()
    };
    assert_eq!(
        send(&app, request(&body, None)).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _, snapshot) = send(&app, request(&body, Some("t"))).await;
    assert_eq!(status, StatusCode::CREATED, "{snapshot}");
    assert_eq!(snapshot["verdict"], "fail");
    assert!(
        snapshot["checks"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{snapshot}"
    );
    let uid = snapshot["uid"].as_str().unwrap();
    let (status, _, fetched) = send(&app, get(&format!("/v1/snapshots/{uid}"))).await;
    assert_eq!((status, &fetched), (StatusCode::OK, &snapshot));
    let (status, _, for_deployment) = send(
        &app,
        get(&format!(
            "/v1/deployments/deployment-{}/snapshot",
            "ab".repeat(16)
        )),
    )
    .await;
    assert_eq!((status, &for_deployment), (StatusCode::OK, &snapshot));
    assert_eq!(
        send(&app, get("/v1/deployments/deployment-none/snapshot"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );

    for (bad, field) in [
        (json!({"config": {"tls": ["nohost"]}}), "config.tls[0]"),
        (json!({"config": {"cert_files": ["/etc/shadow"]}}), "config"),
        (json!({"config": {}}), "config"),
        (json!({"config": {"tls": []}, "extra": 1}), "extra"),
        (json!({"cluster": "x"}), "config"),
        (
            json!({"checks": [{"kind": "tls", "target": "a:1", "status": "pass", "detail": "", "latency_ms": 1}]}),
            "taken_at",
        ),
        (
            json!({"taken_at": "2026-11-20T10:00:00Z",
                   "checks": [{"kind": "ssh", "target": "a:1", "status": "pass", "detail": "", "latency_ms": 1}]}),
            "checks[0].kind",
        ),
    ] {
        let (status, _, response) = send(&app, request(&bad, Some("t"))).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{bad}: {response}"
        );
        assert_eq!(response["error"]["field"], field, "{bad}: {response}");
    }
}

async fn poll_json(app: &Router, path: &str) -> Value {
    for _ in 0..100 {
        let (status, _, body) = send(app, get(path)).await;
        if status == StatusCode::OK {
            return body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{path} never answered 200");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_deployments_get_snapshots_and_config_edits_apply_without_a_restart() {
    use deploygraph_api::snapshotter::Snapshotter;
    use deploygraph_probe::testing::{Ca, leaf, serve};
    let ca = Ca::new("snapshot CA");
    let first = serve(leaf(Some(&ca), &["localhost"], -1, 24 * 90)).await;
    let second = serve(leaf(Some(&ca), &["localhost"], -48, -1)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gate.yaml");
    let write = |targets: &[u16], extra: &str| {
        let tls: Vec<String> = targets
            .iter()
            .map(|p| format!("  - 127.0.0.1:{p}@localhost\n"))
            .collect();
        std::fs::write(
            &config,
            format!(
                "allow_untrusted: true\ndeadline: 5s\ntls:\n{}{extra}",
                tls.concat()
            ),
        )
        .unwrap();
    };
    write(&[first], "");
    let store = sqlite().await;
    let snapshotter = Arc::new(Snapshotter::new(
        Arc::clone(&store),
        config.clone(),
        Some("prod".into()),
    ));
    let state =
        AppState::new(store, ApiConfig::default()).with_snapshotter(Arc::clone(&snapshotter));
    // The server's follow-up workers take the snapshots.
    let stop = tokio_util::sync::CancellationToken::new();
    let pipeline = state.pipeline();
    let stopped = stop.clone();
    let workers = tokio::spawn(async move { pipeline.run(stopped.cancelled_owned()).await });
    let app = router(state);

    let deploy = |minute: u32| {
        let mut e = event();
        e["started_at"] = json!(format!("2026-11-20T11:{minute:02}:00Z"));
        e.as_object_mut().unwrap().remove("finished_at");
        e
    };
    let (_, _, one) = send(&app, post("/v1/deployments", deploy(1).to_string())).await;
    let snap = poll_json(
        &app,
        &format!("/v1/deployments/{}/snapshot", one["uid"].as_str().unwrap()),
    )
    .await;
    assert_eq!(snap["checks"].as_array().unwrap().len(), 1);
    assert_eq!(
        (snap["verdict"].as_str(), snap["cluster"].as_str()),
        (Some("pass"), Some("prod"))
    );

    write(&[first, second], "");
    let (_, _, two) = send(&app, post("/v1/deployments", deploy(2).to_string())).await;
    let snap = poll_json(
        &app,
        &format!("/v1/deployments/{}/snapshot", two["uid"].as_str().unwrap()),
    )
    .await;
    assert_eq!(
        snap["checks"].as_array().unwrap().len(),
        2,
        "the edited configuration applies"
    );
    assert_eq!(snap["verdict"], "fail");

    write(&[first], "colour: blue\n");
    let (_, _, three) = send(&app, post("/v1/deployments", deploy(3).to_string())).await;
    let snap = poll_json(
        &app,
        &format!(
            "/v1/deployments/{}/snapshot",
            three["uid"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(
        snap["checks"].as_array().unwrap().len(),
        2,
        "an invalid edit keeps the last good configuration"
    );

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let schedule = tokio::spawn(Arc::clone(&snapshotter).run_schedule(
        std::time::Duration::from_millis(200),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let latest = poll_json(&app, "/v1/snapshots/latest").await;
    let mut scheduled = latest;
    for _ in 0..50 {
        if scheduled["deployment_uid"].is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        scheduled = poll_json(&app, "/v1/snapshots/latest").await;
    }
    assert!(
        scheduled["deployment_uid"].is_null(),
        "a scheduled snapshot is for no deployment: {scheduled}"
    );
    stop_tx.send(()).unwrap();
    schedule.await.unwrap();
    stop.cancel();
    workers.await.unwrap();
}

/// A store that is down.
struct DownStore;

fn down() -> deploygraph_store::Error {
    deploygraph_store::Error::Unavailable {
        backend: "neo4j",
        source: "connection refused".into(),
    }
}

#[async_trait]
impl GraphStore for DownStore {
    fn backend(&self) -> &'static str {
        "neo4j"
    }
    async fn migrate(&self) -> deploygraph_store::Result<Vec<AppliedMigration>> {
        Err(down())
    }
    async fn ready(&self) -> deploygraph_store::Result<()> {
        Err(down())
    }
    async fn record_deployments(
        &self,
        _: Vec<Deployment>,
    ) -> deploygraph_store::Result<Vec<RecordOutcome>> {
        Err(down())
    }
    async fn get_deployment(&self, _: &Uid) -> deploygraph_store::Result<Option<StoredDeployment>> {
        Err(down())
    }
    async fn list_deployments(
        &self,
        _: &DeploymentFilter,
    ) -> deploygraph_store::Result<Page<StoredDeployment>> {
        Err(down())
    }
    async fn list_services(&self) -> deploygraph_store::Result<Vec<ServiceSummary>> {
        Err(down())
    }
    async fn record_snapshot(&self, _: &InfraSnapshot) -> deploygraph_store::Result<()> {
        Err(down())
    }
    async fn get_snapshot(&self, _: &Uid) -> deploygraph_store::Result<Option<InfraSnapshot>> {
        Err(down())
    }
    async fn latest_snapshot(
        &self,
        _: Option<&str>,
    ) -> deploygraph_store::Result<Option<InfraSnapshot>> {
        Err(down())
    }
    async fn snapshot_for_deployment(
        &self,
        _: &Uid,
    ) -> deploygraph_store::Result<Option<InfraSnapshot>> {
        Err(down())
    }
    async fn list_snapshots(
        &self,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
        _: usize,
    ) -> deploygraph_store::Result<Vec<InfraSnapshot>> {
        Err(down())
    }
    async fn find_services(
        &self,
        _: &ServiceName,
        _: Option<&str>,
        _: Option<&Environment>,
        _: Option<&deploygraph_model::Cluster>,
    ) -> deploygraph_store::Result<Vec<ServiceRef>> {
        Err(down())
    }
    async fn record_alerts(
        &self,
        _: Vec<Alert>,
    ) -> deploygraph_store::Result<Vec<(Alert, AlertOutcome)>> {
        Err(down())
    }
    async fn get_alert(&self, _: &Uid) -> deploygraph_store::Result<Option<Alert>> {
        Err(down())
    }
    async fn get_alerts(&self, _: &[Uid]) -> deploygraph_store::Result<Vec<Alert>> {
        Err(down())
    }
    async fn set_alert_service_metrics(
        &self,
        _: &Uid,
        _: &std::collections::BTreeMap<String, deploygraph_model::ServiceMetric>,
    ) -> deploygraph_store::Result<bool> {
        Err(down())
    }
    async fn set_alert_onset(
        &self,
        _: &Uid,
        _: &deploygraph_model::MetricOnset,
    ) -> deploygraph_store::Result<bool> {
        Err(down())
    }
    async fn list_alerts(&self, _: &AlertFilter) -> deploygraph_store::Result<Vec<Alert>> {
        Err(down())
    }
    async fn record_verdict(
        &self,
        _: &deploygraph_model::SuspectVerdict,
    ) -> deploygraph_store::Result<Option<deploygraph_store::VerdictOutcome>> {
        Err(down())
    }
    async fn verdicts(
        &self,
        _: &[Uid],
    ) -> deploygraph_store::Result<Vec<deploygraph_model::SuspectVerdict>> {
        Err(down())
    }
    async fn top_triggers(&self, _: &[Uid]) -> deploygraph_store::Result<Vec<Trigger>> {
        Err(down())
    }
    async fn triggered_by(
        &self,
        _: &[Uid],
    ) -> deploygraph_store::Result<Vec<deploygraph_store::SubjectTrigger>> {
        Err(down())
    }
    async fn get_deployments(&self, _: &[Uid]) -> deploygraph_store::Result<Vec<StoredDeployment>> {
        Err(down())
    }
    async fn alert_services(&self, _: &Uid) -> deploygraph_store::Result<Vec<ServiceRef>> {
        Err(down())
    }
    async fn set_dependencies(
        &self,
        _: &ServiceRef,
        _: &[ServiceRef],
    ) -> deploygraph_store::Result<()> {
        Err(down())
    }
    async fn apply_topology(
        &self,
        _: &deploygraph_store::TopologyUpdate,
    ) -> deploygraph_store::Result<()> {
        Err(down())
    }
    async fn service_topology(
        &self,
        _: &ServiceRef,
    ) -> deploygraph_store::Result<deploygraph_model::topology::ServiceTopologyView> {
        Err(down())
    }
    async fn dependencies(&self, _: &ServiceRef) -> deploygraph_store::Result<Vec<ServiceRef>> {
        Err(down())
    }
    async fn dependents(&self, _: &ServiceRef) -> deploygraph_store::Result<Vec<ServiceRef>> {
        Err(down())
    }
    async fn claim_follow_ups(
        &self,
        _: deploygraph_store::Claim<'_>,
    ) -> deploygraph_store::Result<Vec<deploygraph_store::FollowUp>> {
        Err(down())
    }
    async fn finish_follow_up(
        &self,
        _: deploygraph_store::FollowUpKind,
        _: &Uid,
        _: DateTime<Utc>,
    ) -> deploygraph_store::Result<()> {
        Err(down())
    }
    async fn follow_up_stats(
        &self,
        _: Option<&[Uid]>,
    ) -> deploygraph_store::Result<deploygraph_store::FollowUpStats> {
        Err(down())
    }
    async fn defer_revisit(
        &self,
        _: &Uid,
        _: Option<DateTime<Utc>>,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
    ) -> deploygraph_store::Result<()> {
        Err(down())
    }
    async fn enqueue_revisits(
        &self,
        _: &[Uid],
        _: DateTime<Utc>,
    ) -> deploygraph_store::Result<Vec<Uid>> {
        Err(down())
    }
    async fn deployments_between(
        &self,
        _: &[Uid],
        _: DateTime<Utc>,
        _: DateTime<Utc>,
    ) -> deploygraph_store::Result<Vec<StoredDeployment>> {
        Err(down())
    }
    async fn service_history(
        &self,
        _: &Uid,
        _: DateTime<Utc>,
    ) -> deploygraph_store::Result<ServiceHistory> {
        Err(down())
    }
    async fn key_history(
        &self,
        _: &[String],
        _: DateTime<Utc>,
        _: u32,
    ) -> deploygraph_store::Result<Vec<deploygraph_store::KeyHistory>> {
        Err(down())
    }
    async fn record_changes(
        &self,
        _: Vec<deploygraph_model::Change>,
    ) -> deploygraph_store::Result<Vec<deploygraph_store::ChangeOutcome>> {
        Err(down())
    }
    async fn get_change(
        &self,
        _: &Uid,
    ) -> deploygraph_store::Result<Option<deploygraph_model::Change>> {
        Err(down())
    }
    async fn get_changes(
        &self,
        _: &[Uid],
    ) -> deploygraph_store::Result<Vec<deploygraph_model::Change>> {
        Err(down())
    }
    async fn changes_between(
        &self,
        _: &[Uid],
        _: DateTime<Utc>,
        _: DateTime<Utc>,
    ) -> deploygraph_store::Result<Vec<deploygraph_model::Change>> {
        Err(down())
    }
    async fn list_changes(
        &self,
        _: &deploygraph_store::ChangeFilter,
    ) -> deploygraph_store::Result<Vec<deploygraph_model::Change>> {
        Err(down())
    }
    async fn replace_attribution(
        &self,
        _: &Uid,
        _: &[Trigger],
        _: Option<(&Uid, &str)>,
    ) -> deploygraph_store::Result<()> {
        Err(down())
    }
    async fn attribution(&self, _: &Uid) -> deploygraph_store::Result<StoredAttribution> {
        Err(down())
    }
    async fn record_chaos_run(&self, _: &ChaosRun) -> deploygraph_store::Result<()> {
        Err(down())
    }
    async fn get_chaos_run(&self, _: &Uid) -> deploygraph_store::Result<Option<ChaosRun>> {
        Err(down())
    }
    async fn list_chaos_runs(&self, _: &ChaosFilter) -> deploygraph_store::Result<Vec<ChaosRun>> {
        Err(down())
    }

    async fn record_canary_analysis(
        &self,
        analysis: &deploygraph_model::NewCanaryAnalysis,
    ) -> deploygraph_store::Result<deploygraph_store::CanaryOutcome> {
        let _ = analysis;
        Err(down())
    }

    async fn canary_analyses(
        &self,
        deployments: &[deploygraph_model::Uid],
    ) -> deploygraph_store::Result<Vec<deploygraph_model::CanaryAnalysis>> {
        let _ = deployments;
        Err(down())
    }

    async fn list_canary_analyses(
        &self,
        filter: &deploygraph_store::CanaryFilter,
    ) -> deploygraph_store::Result<Vec<deploygraph_model::CanaryAnalysis>> {
        let _ = filter;
        Err(down())
    }
    async fn record_release_summary(
        &self,
        summary: &deploygraph_model::NewReleaseSummary,
    ) -> deploygraph_store::Result<deploygraph_store::SummaryOutcome> {
        let _ = summary;
        Err(down())
    }
    async fn release_summaries(
        &self,
        filter: &deploygraph_store::SummaryFilter,
    ) -> deploygraph_store::Result<Vec<deploygraph_model::ReleaseSummary>> {
        let _ = filter;
        Err(down())
    }
    async fn record_rollback(
        &self,
        rollback: &deploygraph_model::NewRollback,
    ) -> deploygraph_store::Result<deploygraph_store::RollbackOutcome> {
        let _ = rollback;
        Err(down())
    }

    async fn rollbacks(
        &self,
        deployments: &[deploygraph_model::Uid],
    ) -> deploygraph_store::Result<Vec<deploygraph_model::Rollback>> {
        let _ = deployments;
        Err(down())
    }

    async fn list_rollbacks(
        &self,
        filter: &deploygraph_store::RollbackFilter,
    ) -> deploygraph_store::Result<Vec<deploygraph_model::Rollback>> {
        let _ = filter;
        Err(down())
    }

    async fn certificates_securing(
        &self,
        services: &[deploygraph_model::Uid],
    ) -> deploygraph_store::Result<Vec<deploygraph_store::SecuredCertificate>> {
        let _ = services;
        Err(down())
    }
    async fn record_gate_override(
        &self,
        gate_override: &deploygraph_model::GateOverride,
    ) -> deploygraph_store::Result<bool> {
        let _ = gate_override;
        Err(down())
    }
    async fn link_gate_overrides(
        &self,
        deployment: &deploygraph_model::Uid,
        workload: (&str, &str, &str),
        template_hash: &str,
        started_at: chrono::DateTime<chrono::Utc>,
    ) -> deploygraph_store::Result<usize> {
        let _ = (deployment, workload, template_hash, started_at);
        Err(down())
    }
    async fn list_gate_overrides(
        &self,
        filter: &deploygraph_store::GateOverrideFilter,
    ) -> deploygraph_store::Result<Vec<deploygraph_model::GateOverride>> {
        let _ = filter;
        Err(down())
    }
}

#[tokio::test]
async fn a_store_outage_is_503_with_retry_after() {
    let app = router(AppState::new(Arc::new(DownStore), ApiConfig::default()));
    for request in [
        post("/v1/deployments", event().to_string()),
        get("/v1/deployments"),
        post(
            "/v1/changes",
            json!({"kind": "feature_flag", "actor": "alice@acme.io", "at": "2026-11-20T10:05:00Z",
                   "services": [{"name": "payments", "environment": "production"}]})
            .to_string(),
        ),
        get("/v1/changes/change-event-00000000000000000000000000000000"),
        get("/readyz"),
    ] {
        let (status, headers, body) = send(&app, request).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(headers[header::RETRY_AFTER], "5");
    }
    assert_eq!(send(&app, get("/healthz")).await.0, StatusCode::OK);
}

/// `GET /v1/services/{name}/certificates`: what SECURES a service, from the snapshots that
/// checked its Ingresses' TLS Secrets, with days left.
#[tokio::test]
async fn a_services_certificates_are_those_its_ingresses_serve() {
    let app = app().await;
    let (status, _, _) = send(&app, post("/v1/deployments", event().to_string())).await;
    assert_eq!(status, StatusCode::CREATED);
    let not_after = Utc::now() + chrono::Duration::days(5) + chrono::Duration::hours(1);
    let check = json!({
        "kind": "k8s-secret-cert", "target": "prod/api-tls", "status": "fail",
        "detail": "the certificate of ingress prod/api (service payments): expires in 5d 1h",
        "latency_ms": 3,
        "certificates": [{"sha256": "ab".repeat(32), "subject": "CN=api.acme.example",
            "issuer": "CN=acme CA", "sans": ["api.acme.example"],
            "not_before": "2026-01-01T00:00:00Z", "not_after": not_after.to_rfc3339(), "is_ca": false}],
        "uses": [{"kind": "ingress", "namespace": "prod", "name": "api", "services": ["payments"]}]
    });
    let (status, _, body) = send(
        &app,
        post(
            "/v1/snapshots",
            json!({"taken_at": Utc::now().to_rfc3339(), "checks": [check]}).to_string(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _, body) = send(
        &app,
        get("/v1/services/payments/certificates?namespace=prod"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let item = &body["items"][0];
    assert_eq!(item["via"], "ingress prod/api");
    assert_eq!(item["service"]["name"], "payments");
    assert_eq!(item["certificate"]["subject"], "CN=api.acme.example");
    assert_eq!(item["expires_in_days"], 5);
    let (_, _, body) = send(&app, get("/v1/services/checkout/certificates")).await;
    assert_eq!(body["items"], json!([]));
    let (status, _, _) = send(&app, get("/v1/services/Bad_Name/certificates")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}
