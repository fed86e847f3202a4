//! Fuzz target for CDEvents ingest (`POST /v1/events`), driven through the router exactly as a
//! producer's request arrives (binary and structured mode), over the embedded store: whatever
//! the body, the answer is a 2xx or a 4xx with the JSON error body, never a 5xx or a panic.
//!
//! `cargo test` runs it as a bounded smoke run (its seed corpus under
//! `tests/__fuzz__/cdevents/corpus`, then random inputs for a few seconds); `cargo bolero test`
//! runs it coverage-guided (docs/fuzzing.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{Request, header};
use deploygraph_api::{ApiConfig, AppState, router};
use deploygraph_model::fuzzing::json_input;
use deploygraph_store::sqlite::SqliteStore;
use deploygraph_store::{GraphStore as _, MigrationSource};
use http_body_util::BodyExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

/// How long the smoke run generates random inputs under `cargo test`.
const SMOKE_TIME: Duration = Duration::from_secs(3);
/// And at most this many.
const SMOKE_ITERATIONS: usize = 20_000;

const CDEVENT_WORDS: &[&str] = &[
    "context",
    "specversion",
    "version",
    "0.4.1",
    "id",
    "source",
    "/ci/pipeline",
    "type",
    "dev.cdevents.service.deployed.0.2.0",
    "dev.cdevents.service.upgraded.0.2.0",
    "dev.cdevents.service.rolledback.0.2.0",
    "dev.cdevents.service.removed.0.2.0",
    "dev.cdevents.service.deployed.0.3.0",
    "dev.cdevents.pipelinerun.finished.0.2.0",
    "dev.cdevents.incident.detected.0.2.0",
    "timestamp",
    "subject",
    "service/payments",
    "content",
    "environment",
    "artifactId",
    "pkg:oci/payments@sha256%3A0b31b1c02ff458ad9b7b81cbdf8f028bd54699fa151f221d1e8de6817db93427?repository_url=ghcr.io/acme/payments&tag=v2.3.0",
    "pkg:oci/x@sha256%3Aabc",
    "customData",
    "customDataContentType",
    "application/json",
    "commit",
    "sha",
    "service",
    "namespace",
    "actor",
    "data",
];

#[test]
fn cdevents() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let app = runtime.block_on(async {
        let store = SqliteStore::open(&dir.path().join("fuzz.db"), MigrationSource::Embedded)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        router(AppState::new(Arc::new(store), ApiConfig::default()))
    });
    // The router and the runtime are only ever used whole, from one thread at a time.
    let state = AssertUnwindSafe((runtime, app));
    bolero::check!()
        .with_test_time(SMOKE_TIME)
        .with_iterations(SMOKE_ITERATIONS)
        .for_each(|input: &[u8]| {
            let (runtime, app) = &*state;
            let body = json_input(input, CDEVENT_WORDS).into_owned();
            // Structured mode (`application/cloudevents+json`) and plain JSON.
            let content_type = if input.len().is_multiple_of(2) {
                "application/json"
            } else {
                "application/cloudevents+json"
            };
            let request = Request::post("/v1/events")
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(body.clone()))
                .unwrap();
            let (status, bytes) = runtime.block_on(async {
                let response = app.clone().oneshot(request).await.unwrap();
                let status = response.status();
                (
                    status,
                    response.into_body().collect().await.unwrap().to_bytes(),
                )
            });
            assert!(
                status.is_success() || status.is_client_error(),
                "{status} for {}: {}",
                String::from_utf8_lossy(&body),
                String::from_utf8_lossy(&bytes)
            );
            if status.is_client_error() {
                let error: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                assert!(error["error"]["code"].is_string(), "{error}");
                assert!(error["error"]["message"].is_string(), "{error}");
            }
        });
}
