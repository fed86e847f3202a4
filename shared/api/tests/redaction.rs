//! Secrets in recorded config changes and in an incident's custom data are redacted before
//! they are stored: by key name, and by value (a password in a URL, a token) whatever the key,
//! through the HTTP API on SQLite.
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

fn post(path: &str, body: &Value) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn a_password_in_a_config_value_is_stored_redacted_whatever_its_key() {
    let (app, _dir) = app().await;
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
    let digest = format!("sha256:{}", "ab".repeat(32));
    let event = json!({
        "service": "payments", "namespace": "prod", "environment": "production",
        "commit": {"sha": "9fceb02d0ae598e95dc970b74767f19372d61af8"},
        "images": [{"repository": "ghcr.io/acme/payments", "tag": "v2.3.0", "digest": digest}],
        "status": "succeeded", "started_at": "2026-11-20T10:05:00Z",
        "changes": [
            {"path": "env.DATABASE_URL", "kind": "env",
             "before": "postgres://u:old@host/db", "after": "postgres://u:p@host/db"},
            {"path": "values.client.header", "kind": "value", "after": format!("Bearer {jwt}")},
            {"path": "values.image.digest", "kind": "value", "after": digest},
            {"path": "values.docs", "kind": "value", "after": "https://docs.example.com/a?page=2"}
        ]
    });
    let (status, created) = send(&app, post("/v1/deployments", &event)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let uid = created["uid"].as_str().unwrap().to_owned();
    let (status, stored) = send(&app, get(&format!("/v1/deployments/{uid}"))).await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    let (_, listed) = send(&app, get("/v1/deployments?service=payments")).await;
    for body in [&created, &stored, &listed["items"][0]] {
        let change = |path: &str| {
            body["changes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["path"] == path)
                .unwrap_or_else(|| panic!("{path} in {body}"))
                .clone()
        };
        let url = change("env.DATABASE_URL");
        assert_eq!(url["before"], "postgres://u:<redacted>@host/db", "{body}");
        assert_eq!(url["after"], "postgres://u:<redacted>@host/db", "{body}");
        assert_eq!(change("values.client.header")["after"], "Bearer <redacted>");
        // Near misses are kept as they are.
        assert_eq!(change("values.image.digest")["after"], digest.as_str());
        assert_eq!(
            change("values.docs")["after"],
            "https://docs.example.com/a?page=2"
        );
        let text = body.to_string();
        assert!(
            !text.contains("u:p@") && !text.contains("u:old@") && !text.contains(jwt),
            "{text}"
        );
    }
}

#[tokio::test]
async fn secrets_in_an_incidents_custom_data_are_stored_redacted() {
    let (app, _dir) = app().await;
    let incident = json!({
        "context": {"specversion": "0.5.1", "id": "ev-1", "source": "/monitoring/prod1",
                    "type": "dev.cdevents.incident.detected.0.3.0", "timestamp": "2026-11-20T10:20:00Z"},
        "subject": {"id": "incident-123", "source": "/monitoring/prod1",
                    "content": {"description": "p99 above 1s", "environment": {"id": "production"},
                                "service": {"id": "/cluster/shop/payments"}}},
        "customData": {"dsn": "postgres://u:p@host/db", "api_token": "plain-looking",
                       "runbook": "https://runbooks.example.com/p99", "replicas": 3}
    });
    let envelope = json!({"specversion": "1.0", "id": "ev-1", "source": "/monitoring/prod1",
                          "type": "dev.cdevents.incident.detected.0.3.0",
                          "time": "2026-11-20T10:20:00Z", "datacontenttype": "application/json",
                          "data": incident});
    let request = Request::post("/v1/events")
        .header(header::CONTENT_TYPE, "application/cloudevents+json")
        .body(Body::from(envelope.to_string()))
        .unwrap();
    let (status, alert) = send(&app, request).await;
    assert_eq!(status, StatusCode::CREATED, "{alert}");
    let (status, listed) = send(&app, get("/v1/alerts?service=payments")).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    for labels in [&alert["labels"], &listed["items"][0]["labels"]] {
        assert_eq!(labels["dsn"], "postgres://u:<redacted>@host/db", "{labels}");
        assert_eq!(labels["api_token"], "<redacted>", "{labels}");
        assert_eq!(
            labels["runbook"], "https://runbooks.example.com/p99",
            "{labels}"
        );
        assert_eq!(labels["replicas"], "3", "{labels}");
    }
}
