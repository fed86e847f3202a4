//! Component tests of the topology endpoints over both stores: sources that keep their own
//! edges (`PUT` dependencies, `POST /v1/topology/backstage`, `POST /v1/topology/mesh`), owners
//! and tiers in the listings, and the Prometheus call-graph importer against answers served
//! here (a real Prometheus is in the end-to-end tests).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use deploygraph_api::mesh::{MeshConfig, MeshImporter};
use deploygraph_api::{ApiConfig, AppState, router};
use deploygraph_model::Environment;
use deploygraph_store::GraphStore;
use http_body_util::BodyExt;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

const TOKEN: &str = "t0pology";

fn app(store: &Arc<dyn GraphStore>) -> Router {
    router(AppState::new(
        Arc::clone(store),
        ApiConfig {
            token: Some(SecretString::from(TOKEN.to_owned())),
            ..ApiConfig::default()
        },
    ))
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

async fn get(app: &Router, path: &str) -> (StatusCode, Value) {
    send(app, Request::get(path).body(Body::empty()).unwrap()).await
}

/// `(dependency, [sources])` of a service, as `GET …/dependencies` answers.
async fn edges(app: &Router, service: &str) -> Vec<(String, Vec<String>)> {
    let (status, body) = get(
        app,
        &format!("/v1/services/{service}/dependencies?environment=production&namespace=shop"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["depends_on"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            assert!(d["last_seen_at"].is_string(), "{d}");
            (
                d["name"].as_str().unwrap().to_owned(),
                d["sources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["source"].as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect()
}

fn catalog(web: &str, api: &str, db: &str) -> String {
    format!(
        "apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: {web}
  annotations:
    deploygraph.io/tier: tier-1
spec:
  type: website
  lifecycle: production
  owner: team-web
  dependsOn: [component:{api}]
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: {api}
spec:
  type: service
  lifecycle: production
  owner: team-api
  dependsOn: [resource:{db}]
"
    )
}

async fn sources_keep_their_own_edges(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let (web, api, db) = (unique("web"), unique("api"), unique("db"));
    // By hand: web depends on db.
    let put = json!({"namespace": "shop", "environment": "production", "depends_on": [db], "owner": "team-web"});
    let (status, body) = send(
        &app,
        with_body(
            "PUT",
            &format!("/v1/services/{web}/dependencies"),
            &put,
            Some(TOKEN),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["owner"], "team-web");

    // From Backstage: web depends on api, api on db; tiers and owners.
    let import = json!({"environment": "production", "namespace": "shop",
                        "files": [{"path": "catalog-info.yaml", "content": catalog(&web, &api, &db)}]});
    let (status, body) = send(
        &app,
        with_body("POST", "/v1/topology/backstage", &import, Some(TOKEN)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["entities"], 2);
    assert_eq!(body["edges"], 2);
    assert_eq!(body["source"], "backstage");

    // From the mesh: web calls api.
    let service =
        |name: &str| json!({"name": name, "namespace": "shop", "environment": "production"});
    let mesh = json!({"edges": [
        {"service": service(&web), "depends_on": service(&api)},
        {"service": service(&web), "depends_on": service(&web)}
    ]});
    let (status, body) = send(
        &app,
        with_body("POST", "/v1/topology/mesh", &mesh, Some(TOKEN)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["edges"], 1,
        "a call of a service to itself is left out"
    );

    let mut expected = vec![
        (api.clone(), vec!["backstage".to_owned(), "mesh".to_owned()]),
        (db.clone(), vec!["manual".to_owned()]),
    ];
    expected.sort();
    assert_eq!(edges(&app, &web).await, expected);

    // A PUT replaces the manual edges only.
    let put = json!({"namespace": "shop", "environment": "production", "depends_on": []});
    let (status, _) = send(
        &app,
        with_body(
            "PUT",
            &format!("/v1/services/{web}/dependencies"),
            &put,
            Some(TOKEN),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        edges(&app, &web).await,
        vec![(api.clone(), vec!["backstage".to_owned(), "mesh".to_owned()])]
    );
    // A new import without the edge drops the Backstage one; the mesh one stays.
    let import = json!({"environment": "production", "namespace": "shop",
                        "files": [{"path": "c.yaml", "content": catalog(&web, &api, &db).replace(&format!("dependsOn: [component:{api}]"), "dependsOn: []")}]});
    let (status, body) = send(
        &app,
        with_body("POST", "/v1/topology/backstage", &import, Some(TOKEN)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        edges(&app, &web).await,
        vec![(api.clone(), vec!["mesh".to_owned()])]
    );

    // Owner and tier in the service view and the listing (Backstage's owner replaced the PUT's).
    let (_, view) = get(
        &app,
        &format!("/v1/services/{web}/dependencies?environment=production&namespace=shop"),
    )
    .await;
    assert_eq!(
        (view["owner"].as_str(), view["tier"].as_str()),
        (Some("team-web"), Some("tier-1"))
    );
    let (_, listing) = get(&app, "/v1/services").await;
    let item = listing["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == api.as_str())
        .unwrap();
    assert_eq!(item["owner"], "team-api");
    assert!(item["tier"].is_null());

    // An alert on web: the incident report names its owner and tier.
    let fp = format!("{:016x}", rand::random::<u64>());
    let webhook = json!({"version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing",
        "receiver": "deploygraph", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://alertmanager", "alerts": [{
            "status": "firing",
            "labels": {"alertname": "HighErrorRate", "service": web, "namespace": "shop", "environment": "production"},
            "annotations": {}, "startsAt": deploygraph_model::format_time(&chrono::Utc::now()),
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prometheus", "fingerprint": fp}]});
    let (status, body) = send(
        &app,
        with_body("POST", "/v1/alerts/alertmanager", &webhook, Some(TOKEN)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, report) = get(
        &app,
        &format!("/v1/reports/incident?alert={fp}&format=json"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["owners"][0]["owner"], "team-web", "{report}");
    assert_eq!(report["owners"][0]["tier"], "tier-1", "{report}");
    let (_, markdown) = get(&app, &format!("/v1/reports/incident?alert={fp}")).await;
    let markdown = markdown.as_str().unwrap();
    assert!(
        markdown.contains(&format!(
            "shop/{web} (production) (owner team-web, tier tier-1)"
        )),
        "{markdown}"
    );
}

async fn bad_input_is_refused_with_the_field(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let import = json!({"environment": "production",
                        "files": [{"path": "teams/web/catalog-info.yaml",
                                   "content": "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: web\nspec:\n  dependsOn: [api]\n"}]});
    // Without the token: 401, nothing read.
    let (status, _) = send(
        &app,
        with_body("POST", "/v1/topology/backstage", &import, None),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = send(
        &app,
        with_body("POST", "/v1/topology/backstage", &import, Some(TOKEN)),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["field"], "files[0]");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("teams/web/catalog-info.yaml: Component web: spec.dependsOn[0]"),
        "{message}"
    );
    for (body, field) in [
        (json!({"files": []}), "environment"),
        (json!({"environment": "production"}), "files"),
        (
            json!({"environment": "production", "namespace": "Bad_NS", "files": []}),
            "namespace",
        ),
        (
            json!({"environment": "production", "files": [{"path": "", "content": ""}]}),
            "files[0].path",
        ),
        (
            json!({"environment": "production", "files": [], "extra": 1}),
            "extra",
        ),
    ] {
        let (status, answer) = send(
            &app,
            with_body("POST", "/v1/topology/backstage", &body, Some(TOKEN)),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
    }
    let edge = |name: &str| {
        json!({"service": {"name": "a", "environment": "production"},
                                   "depends_on": {"name": name, "environment": "production"}})
    };
    for (body, field) in [
        (json!({}), "edges"),
        (
            json!({"edges": [edge("Not_Valid")]}),
            "edges[0].depends_on.name",
        ),
        (
            json!({"edges": [edge("b"), {"service": {"name": "a"}, "depends_on": {"name": "b", "environment": "production"}}]}),
            "edges[1].service.environment",
        ),
    ] {
        let (status, answer) = send(
            &app,
            with_body("POST", "/v1/topology/mesh", &body, Some(TOKEN)),
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
    }
    // A catalog over the route's body limit is refused before it is read.
    let huge = json!({"environment": "production",
                      "files": [{"path": "big.yaml", "content": "#".repeat(deploygraph_api::topology::TOPOLOGY_MAX_BODY_BYTES)}]});
    let (status, _) = send(
        &app,
        with_body("POST", "/v1/topology/backstage", &huge, Some(TOKEN)),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

deploygraph_store::both_stores!(
    sources_keep_their_own_edges,
    bad_input_is_refused_with_the_field
);

/// A Prometheus stand-in: answers every query with `answer` (status, body).
async fn prometheus_stub(answer: (u16, String)) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new().route(
        "/api/v1/query",
        axum::routing::get(move || {
            let (status, body) = answer.clone();
            async move {
                (
                    StatusCode::from_u16(status).unwrap(),
                    [(header::CONTENT_TYPE, "application/json")],
                    body,
                )
            }
        }),
    );
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, task)
}

fn mesh_config(url: &str) -> MeshConfig {
    let mut config = MeshConfig::new(url, Environment::parse("production").unwrap()).unwrap();
    config.timeout = std::time::Duration::from_secs(5);
    config
}

#[tokio::test]
async fn the_importer_records_what_prometheus_reports() {
    let (_dir, store) = deploygraph_store::testing::sqlite().await;
    let (caller, called) = (unique("caller"), unique("called"));
    let body = json!({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"source_workload": caller, "source_workload_namespace": "shop",
                    "destination_workload": called, "destination_workload_namespace": "shop"},
         "value": [1.7e9, "12"]}]}});
    let (url, server) = prometheus_stub((200, body.to_string())).await;
    let state = AppState::new(Arc::clone(&store), ApiConfig::default());
    let importer =
        MeshImporter::new(Arc::clone(&store), state.metrics(), mesh_config(&url)).unwrap();
    // Both queries get the same answer here: one edge, deduplicated.
    assert_eq!(importer.import_once().await, 1);
    let app = router(state);
    assert_eq!(
        edges(&app, &caller).await,
        vec![(called, vec!["mesh".to_owned()])]
    );
    let (_, metrics) = get(&app, "/metrics").await;
    let text = metrics.as_str().unwrap();
    assert!(
        text.contains(
            "deploygraph_topology_prometheus_queries_total{query=\"istio\",outcome=\"ok\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("deploygraph_topology_mesh_edges 1"), "{text}");
    server.abort();
}

#[tokio::test]
async fn a_prometheus_outage_is_counted_and_never_fatal() {
    let (_dir, store) = deploygraph_store::testing::sqlite().await;
    let state = AppState::new(Arc::clone(&store), ApiConfig::default());
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let importer =
        MeshImporter::new(Arc::clone(&store), state.metrics(), mesh_config(&closed)).unwrap();
    assert_eq!(importer.import_once().await, 0);
    // An error answer, and an answer over the size limit.
    let error = json!({"status": "error", "errorType": "bad_data", "error": "unknown function"});
    let (url, server) = prometheus_stub((400, error.to_string())).await;
    let failing =
        MeshImporter::new(Arc::clone(&store), state.metrics(), mesh_config(&url)).unwrap();
    assert_eq!(failing.import_once().await, 0);
    let big = json!({"status": "success", "data": {"resultType": "vector", "result": [], "pad": "x".repeat(4096)}});
    let (big_url, big_server) = prometheus_stub((200, big.to_string())).await;
    let mut small = mesh_config(&big_url);
    small.max_response_bytes = 1024;
    let capped = MeshImporter::new(Arc::clone(&store), state.metrics(), small).unwrap();
    assert_eq!(capped.import_once().await, 0);
    let (_, metrics) = get(&router(state), "/metrics").await;
    let text = metrics.as_str().unwrap();
    for query in ["istio", "service_graph"] {
        assert!(
            text.contains(&format!(
                "deploygraph_topology_prometheus_queries_total{{query=\"{query}\",outcome=\"error\"}} 3"
            )),
            "{text}"
        );
    }
    // The periodic loop keeps going through failures and stops on shutdown.
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(
        Arc::new(importer).run(std::time::Duration::from_millis(10), {
            let stop = stop.clone();
            async move { stop.cancelled().await }
        }),
    );
    stop.cancel();
    running.await.unwrap();
    server.abort();
    big_server.abort();
}
