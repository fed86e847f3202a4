//! Golden uids of what the HTTP API records: a deployment posted as JSON, a change, a CDEvents
//! deployment and incident, an Alertmanager alert.
//!
//! Retried deliveries are idempotent only because the same facts derive the same uid. **A
//! failing golden uid means that data already stored would be duplicated, not updated:
//! changing a derivation needs a migration that rewrites the stored uids, never just a new
//! value here.**
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use deploygraph_api::{ApiConfig, AppState, router};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

/// The API over a migrated SQLite store; the directory guard keeps the store alive.
async fn app() -> (Router, Option<tempfile::TempDir>) {
    let (dir, store) = deploygraph_store::testing::sqlite().await;
    (router(AppState::new(store, ApiConfig::default())), dir)
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, body)
}

fn post(path: &str, content_type: &str, body: &Value) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body.to_string()))
        .unwrap()
}

const CHANGED: &str = "uid derivation changed; stored data would be duplicated (write a migration)";

#[tokio::test]
async fn a_posted_deployment_derives_its_golden_uids() {
    let (app, _dir) = app().await;
    let event = json!({
        "service": "payments", "namespace": "prod", "environment": "production",
        "commit": {"sha": "9fceb02d0ae598e95dc970b74767f19372d61af8", "repo": "github.com/acme/payments"},
        "images": [{"repository": "ghcr.io/acme/payments", "tag": "v2.3.0",
                    "digest": format!("sha256:{}", "ab".repeat(32))}],
        "status": "succeeded", "started_at": "2026-11-20T10:05:00Z"
    });
    let (status, created) = send(&app, post("/v1/deployments", "application/json", &event)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["uid"], "deployment-b6e5f2b01d0057e8b0fddd8beb01db4c",
        "{CHANGED}"
    );
    let mut with_id = event.clone();
    with_id["id"] = json!("ci-run-42");
    let (status, created) = send(&app, post("/v1/deployments", "application/json", &with_id)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["uid"], "deployment-32b5c209ec8fb022ea20206091bbb32e",
        "{CHANGED}"
    );
}

#[tokio::test]
async fn cdevents_derive_their_golden_uids() {
    let (app, _dir) = app().await;
    let envelope = |event: Value| {
        json!({"specversion": "1.0", "id": event["context"]["id"], "source": event["context"]["source"],
               "type": event["context"]["type"], "time": event["context"]["timestamp"],
               "datacontenttype": "application/json", "data": event})
    };
    let deployed = json!({
        "context": {"specversion": "0.5.1", "id": "run-1", "source": "/ci/acme",
                    "type": "dev.cdevents.service.deployed.0.3.0", "timestamp": "2026-11-20T10:05:00Z"},
        "subject": {"id": "payments", "source": "/ci/acme",
                    "content": {"environment": {"id": "production"},
                                "artifactId": format!("pkg:oci/payments@sha256%3A{}?tag=v1", "ab".repeat(32))}}
    });
    let (status, created) = send(
        &app,
        post(
            "/v1/events",
            "application/cloudevents+json",
            &envelope(deployed),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["uid"], "deployment-ef5bfe200f1d8bed38205e7a32864a75",
        "{CHANGED}"
    );
    let incident = json!({
        "context": {"specversion": "0.5.1", "id": "ev-1", "source": "/monitoring/prod1",
                    "type": "dev.cdevents.incident.detected.0.3.0", "timestamp": "2026-11-20T10:20:00Z"},
        "subject": {"id": "incident-123", "source": "/monitoring/prod1",
                    "content": {"description": "p99 above 1s", "environment": {"id": "production"},
                                "service": {"id": "/cluster/shop/payments"}}}
    });
    let (status, alert) = send(
        &app,
        post(
            "/v1/events",
            "application/cloudevents+json",
            &envelope(incident),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{alert}");
    assert_eq!(
        (alert["fingerprint"].clone(), alert["uid"].clone()),
        (
            json!("incident-5258c33ee0e660987c9cad1c6856dde3"),
            json!("alert-3b49a65e517ede3ce37d5fd1defc6d1a")
        ),
        "{CHANGED}"
    );
}

#[tokio::test]
async fn an_alertmanager_alert_derives_its_golden_uid() {
    let (app, _dir) = app().await;
    let webhook = json!({
        "version": "4", "groupKey": "{}:{alertname=\"HighErrorRate\"}", "truncatedAlerts": 0,
        "status": "firing", "receiver": "deploygraph", "groupLabels": {}, "commonLabels": {},
        "commonAnnotations": {}, "externalURL": "http://alertmanager",
        "alerts": [{"status": "firing",
                    "labels": {"alertname": "HighErrorRate", "service": "payments", "namespace": "prod",
                               "environment": "production", "severity": "critical"},
                    "annotations": {}, "startsAt": "2026-11-20T10:20:00Z",
                    "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus/graph",
                    "fingerprint": "3b1d6f0c2a9e4d57"}]
    });
    let (status, out) = send(
        &app,
        post("/v1/alerts/alertmanager", "application/json", &webhook),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let (status, listed) = send(
        &app,
        Request::get("/v1/alerts?service=payments")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(
        listed["items"][0]["uid"], "alert-c4d781147aeb6c777946c6f5d86d4a12",
        "{CHANGED}"
    );
}

#[tokio::test]
async fn a_posted_change_derives_its_golden_uids() {
    let (app, _dir) = app().await;
    let change = json!({
        "kind": "feature_flag",
        "services": [{"name": "payments", "namespace": "prod", "environment": "production"}],
        "actor": "alice@acme.io", "at": "2026-11-20T10:05:00Z",
        "diff": [{"key": "checkout.new_flow", "before": "false", "after": "true"}]
    });
    let (status, created) = send(&app, post("/v1/changes", "application/json", &change)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["uid"], "change-event-9ac82238999f6d4b55c7e37eb1f3f88b",
        "{CHANGED}"
    );
    let mut with_id = change.clone();
    with_id["id"] = json!("flag-audit-42");
    let (status, created) = send(&app, post("/v1/changes", "application/json", &with_id)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        created["uid"], "change-event-583e863dad55bca0a79e2afdbadc0f86",
        "{CHANGED}"
    );
}
