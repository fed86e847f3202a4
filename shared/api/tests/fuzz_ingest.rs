//! Fuzz targets for the JSON ingest endpoints (`POST /v1/deployments`,
//! `POST /v1/alerts/alertmanager`, `POST /v1/changes`, a suspect's verdict), driven through the router as a client's request arrives, over
//! the embedded store: whatever the body, the answer is a 2xx or a 4xx with the JSON error body,
//! never a 5xx or a panic. (The model's own fuzz targets check what the parsers return.)
//!
//! `cargo test` runs each as a bounded smoke run (its seed corpus under
//! `tests/__fuzz__/<target>/corpus`, then random inputs for a few seconds); `cargo bolero test`
//! runs them coverage-guided (docs/fuzzing.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::body::Body;
use axum::http::{Request, header};
use deploygraph_api::{ApiConfig, AppState, router};
use deploygraph_model::fuzzing::{self, json_input};
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

/// A test that sends its input to `path` and checks the answer.
fn endpoint(path: &'static str, words: &'static [&'static str]) -> impl Fn(&[u8]) {
    endpoint_over(path.to_owned(), words, Vec::new(), Vec::new())
}

/// [`endpoint`] over a store that holds `deployments` and `alerts`.
fn endpoint_over(
    path: String,
    words: &'static [&'static str],
    deployments: Vec<deploygraph_model::Deployment>,
    alerts: Vec<deploygraph_model::Alert>,
) -> impl Fn(&[u8]) {
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
        store.record_deployments(deployments).await.unwrap();
        store.record_alerts(alerts).await.unwrap();
        router(AppState::new(Arc::new(store), ApiConfig::default()))
    });
    // The router and the runtime are only ever used whole, from one thread at a time.
    let state = AssertUnwindSafe((runtime, app, dir));
    move |input: &[u8]| {
        let (runtime, app, _store_dir) = &*state;
        let body = json_input(input, words).into_owned();
        let request = Request::post(path.as_str())
            .header(header::CONTENT_TYPE, "application/json")
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
    }
}

#[test]
fn deployments_endpoint() {
    bolero::check!()
        .with_test_time(SMOKE_TIME)
        .with_iterations(SMOKE_ITERATIONS)
        .for_each(endpoint("/v1/deployments", fuzzing::DEPLOYMENT_WORDS));
}

#[test]
fn alertmanager_endpoint() {
    bolero::check!()
        .with_test_time(SMOKE_TIME)
        .with_iterations(SMOKE_ITERATIONS)
        .for_each(endpoint("/v1/alerts/alertmanager", fuzzing::WEBHOOK_WORDS));
}

const MESH_WORDS: &[&str] = &[
    "edges",
    "service",
    "depends_on",
    "name",
    "namespace",
    "environment",
    "production",
    "shop",
    "web",
    "api",
];

#[test]
fn mesh_endpoint() {
    bolero::check!()
        .with_test_time(SMOKE_TIME)
        .with_iterations(SMOKE_ITERATIONS)
        .for_each(endpoint("/v1/topology/mesh", MESH_WORDS));
}

const PROMETHEUS_WORDS: &[&str] = &[
    "status",
    "success",
    "error",
    "errorType",
    "data",
    "resultType",
    "vector",
    "matrix",
    "result",
    "metric",
    "value",
    "source_workload",
    "source_workload_namespace",
    "source_canonical_service",
    "destination_workload",
    "destination_workload_namespace",
    "destination_canonical_service",
    "client",
    "server",
    "unknown",
    "web",
    "shop",
];

/// Prometheus answers to the call-graph queries: every edge joins two different services with
/// valid names; a failure is an error, never a panic.
#[test]
fn prometheus_answers() {
    use deploygraph_api::mesh::{Query, parse_answer};
    let environment = deploygraph_model::Environment::parse("production").unwrap();
    bolero::check!()
        .with_test_time(SMOKE_TIME)
        .with_iterations(SMOKE_ITERATIONS)
        .for_each(|input: &[u8]| {
            let body = json_input(input, PROMETHEUS_WORDS);
            for query in Query::ALL {
                if let Ok(observed) = parse_answer(
                    query,
                    200,
                    &body,
                    &environment,
                    &deploygraph_model::Cluster::default(),
                ) {
                    for (from, to) in &observed.edges {
                        assert_ne!(from, to);
                        assert!(
                            from.namespace
                                .as_deref()
                                .is_none_or(deploygraph_model::newtypes::is_dns1123_label)
                        );
                    }
                    assert!(observed.edges.windows(2).all(|w| w[0] < w[1]));
                }
            }
        });
}

#[test]
fn changes_endpoint() {
    bolero::check!()
        .with_test_time(SMOKE_TIME)
        .with_iterations(SMOKE_ITERATIONS)
        .for_each(endpoint("/v1/changes", fuzzing::CHANGE_WORDS));
}

/// A reviewer's verdict on a stored deployment of a stored alert: whatever the body, a 2xx (the
/// verdict stored, replaced or unchanged) or a 4xx JSON error naming the field.
#[test]
fn verdict_endpoint() {
    let deployment = deploygraph_model::Deployment::test()
        .service("payments")
        .build();
    let alert = deploygraph_model::Alert::test("fp-fuzz", "payments", 30);
    let path = format!(
        "/v1/alerts/{}/suspects/{}/verdict",
        alert.fingerprint, deployment.uid
    );
    bolero::check!()
        .with_test_time(SMOKE_TIME)
        .with_iterations(SMOKE_ITERATIONS)
        .for_each(endpoint_over(
            path,
            fuzzing::VERDICT_WORDS,
            vec![deployment],
            vec![alert],
        ));
}
