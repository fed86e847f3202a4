//! What the component tests of the router share: a router over a store with the write token,
//! each write's follow-ups done before its answer, and a request sender reading JSON back.
#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use deploygraph_api::{ApiConfig, AppState, router_with_inline_follow_ups};
use deploygraph_store::GraphStore;
use http_body_util::BodyExt;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

/// The write token the router is configured with.
pub const TOKEN: &str = "s3cret";

/// The router over `store`, with [`TOKEN`], doing follow-ups inline.
pub fn app(store: &Arc<dyn GraphStore>) -> Router {
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

/// `prefix` with a random suffix (the Neo4j database is shared between tests).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

/// Sends `request`: the status, the headers and the body as JSON (a string when it is not).
pub async fn send(app: &Router, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, headers, body)
}

/// `minute` minutes after the tests' base time (2026-11-20T10:00:00Z), as the API writes times.
pub fn at(minute: i64) -> String {
    let base = chrono::DateTime::parse_from_rfc3339("2026-11-20T10:00:00Z").unwrap();
    (base + chrono::Duration::minutes(minute))
        .to_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// An Alertmanager notification (webhook version 4) of one firing `HighErrorRate` alert on
/// `service` in prod/production, started at [`at`]`(minute)`.
pub fn webhook(fingerprint: &str, service: &str, minute: i64) -> Value {
    json!({"version": "4", "groupKey": "{}:{alertname=\"HighErrorRate\"}", "truncatedAlerts": 0,
    "status": "firing", "receiver": "deploygraph", "groupLabels": {}, "commonLabels": {},
    "commonAnnotations": {}, "externalURL": "http://alertmanager",
    "alerts": [{
        "status": "firing",
        "labels": {"alertname": "HighErrorRate", "service": service, "namespace": "prod",
                   "environment": "production", "severity": "critical"},
        "annotations": {"summary": format!("{service} 5xx above 5%")},
        "startsAt": at(minute), "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph", "fingerprint": fingerprint
    }]})
}
