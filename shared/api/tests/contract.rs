//! The API's contract: the generated OpenAPI document declares what the validators enforce,
//! every write refuses unknown fields, request uids are checked, input times are bounded, and
//! query parameters follow one rule (an empty value is invalid, as the schema says).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use deploygraph_api::{ApiConfig, AppState, router};
use deploygraph_model::newtypes::{
    COMMIT_SHA_PATTERN, DIGEST_PATTERN, ENVIRONMENT_MAX_LEN, ENVIRONMENT_PATTERN, NAME_MAX_LEN,
    SERVICE_NAME_PATTERN,
};
use deploygraph_model::schema::{FINGERPRINT_MAX_LEN, FINGERPRINT_PATTERN};
use deploygraph_model::uid::{CHAOS_RUN_PREFIX, DEPLOYMENT_PREFIX};
use deploygraph_model::{ServiceName, Uid};
use deploygraph_store::GraphStore;
use deploygraph_store::sqlite::SqliteStore;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

static DIRS: std::sync::Mutex<Vec<tempfile::TempDir>> = std::sync::Mutex::new(Vec::new());

async fn app() -> Router {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(
        &dir.path().join("store.db"),
        deploygraph_store::MigrationSource::Embedded,
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    DIRS.lock().unwrap().push(dir);
    let store: Arc<dyn GraphStore> = Arc::new(store);
    router(AppState::new(store, ApiConfig::default()))
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, body)
}

async fn post(app: &Router, path: &str, body: &Value) -> (StatusCode, Value) {
    send(
        app,
        Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await
}

async fn get(app: &Router, path: &str) -> (StatusCode, Value) {
    send(app, Request::get(path).body(Body::empty()).unwrap()).await
}

/// The status and the field a 4xx names.
fn refusal(out: &(StatusCode, Value)) -> (StatusCode, Option<&str>) {
    (out.0, out.1["error"]["field"].as_str())
}

fn deployment() -> Value {
    json!({
        "service": "payments", "environment": "production",
        "commit": {"sha": "9fceb02d0ae598e95dc970b74767f19372d61af8"},
        "images": [{"digest": format!("sha256:{}", "ab".repeat(32))}],
        "status": "succeeded", "started_at": "2026-11-20T10:05:00Z"
    })
}

fn chaos_run() -> Value {
    json!({
        "scenario": "pod-delete", "experiment": "pod-delete",
        "target": {"name": "payments", "namespace": "prod", "environment": "production"},
        "verdict": "Awaited", "phase": "Running", "started_at": "2026-11-20T10:00:00Z"
    })
}

fn webhook(alert: Value) -> Value {
    json!({
        "version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0, "status": "firing",
        "receiver": "deploygraph", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://am", "alerts": [alert]
    })
}

fn firing() -> Value {
    json!({"status": "firing", "labels": {"alertname": "HighErrors", "service": "payments"},
           "annotations": {}, "startsAt": "2026-11-20T10:15:00Z",
           "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "http://prom", "fingerprint": "a1b2c3d4"})
}

#[tokio::test]
async fn a_chaos_run_with_an_unknown_field_is_refused_naming_it() {
    let app = app().await;
    let mut run = chaos_run();
    run["surprise"] = json!(1);
    let out = post(&app, "/v1/chaos/runs", &run).await;
    assert_eq!(
        refusal(&out).0,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        out.1
    );
    assert!(
        out.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("surprise"),
        "{}",
        out.1
    );
    let mut run = chaos_run();
    run["target"]["team"] = json!("sre");
    let out = post(&app, "/v1/chaos/runs", &run).await;
    assert_eq!(
        refusal(&out),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("target.team")),
        "{}",
        out.1
    );
}

#[tokio::test]
async fn chaos_run_uids_are_a_chaos_runs_or_assigned_by_the_server() {
    let app = app().await;
    let run_uid = Uid::derive(CHAOS_RUN_PREFIX, &["x"]);
    let deployment_uid = Uid::derive(DEPLOYMENT_PREFIX, &["id", "x"]);
    for bad in [
        format!("{run_uid}\n"),
        format!("{run_uid}\t"),
        "x/../../y".to_owned(),
        format!("{run_uid}\0"),
        deployment_uid.to_string(),
        String::new(),
    ] {
        let mut run = chaos_run();
        run["uid"] = json!(bad);
        let out = post(&app, "/v1/chaos/runs", &run).await;
        assert_eq!(
            refusal(&out),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("uid")),
            "{bad:?}: {}",
            out.1
        );
    }
    let (status, listed) = get(&app, "/v1/chaos/runs").await;
    assert_eq!(
        (status, listed["items"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(0)),
        "nothing refused was stored: {listed}"
    );

    // Without a uid the server derives one, as the runner does, and its Location works.
    let (status, created) = post(&app, "/v1/chaos/runs", &chaos_run()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let uid = created["uid"].as_str().unwrap();
    assert!(
        Uid::parse_derived(CHAOS_RUN_PREFIX, uid).is_ok(),
        "{created}"
    );
    let (status, again) = post(&app, "/v1/chaos/runs", &chaos_run()).await;
    assert_eq!((status, again["uid"].as_str()), (StatusCode::OK, Some(uid)));
    let (status, fetched) = get(&app, &format!("/v1/chaos/runs/{uid}")).await;
    assert_eq!(
        (status, fetched["uid"].as_str()),
        (StatusCode::OK, Some(uid))
    );

    // `against` names a deployment, nothing else.
    let mut run = chaos_run();
    run["against"] = json!(run_uid.as_str());
    let out = post(&app, "/v1/chaos/runs", &run).await;
    assert_eq!(
        refusal(&out),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("against"))
    );
}

#[tokio::test]
async fn input_times_before_2000_or_more_than_a_day_ahead_are_refused_naming_the_field() {
    let app = app().await;
    let ahead = (chrono::Utc::now() + chrono::Duration::hours(25))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for (field, value) in [
        ("started_at", "0498-08-21T00:00:00Z"),
        ("started_at", "9999-12-31T00:00:00Z"),
        ("started_at", "1999-12-31T23:59:59Z"),
        ("started_at", ahead.as_str()),
        ("finished_at", "9999-12-31T00:00:00Z"),
    ] {
        let mut body = deployment();
        body[field] = json!(value);
        let out = post(&app, "/v1/deployments", &body).await;
        assert_eq!(
            refusal(&out),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{value}: {}",
            out.1
        );
    }
    let mut body = deployment();
    body["commit"]["committed_at"] = json!("0001-01-01T00:00:00Z");
    let out = post(&app, "/v1/deployments", &body).await;
    assert_eq!(
        refusal(&out),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("commit.committed_at")
        )
    );
    // A day ahead is clock skew, not a typo.
    let mut body = deployment();
    body["started_at"] = json!(
        (chrono::Utc::now() + chrono::Duration::hours(23))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let (status, out) = post(&app, "/v1/deployments", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{out}");

    let mut run = chaos_run();
    run["started_at"] = json!("9999-12-31T00:00:00Z");
    let out = post(&app, "/v1/chaos/runs", &run).await;
    assert_eq!(
        refusal(&out),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("started_at"))
    );

    let snapshot = json!({"checks": [{"kind": "dns", "target": "payments.prod", "status": "pass",
                                      "detail": "ok", "latency_ms": 3}],
                          "taken_at": "1970-01-01T00:00:00Z"});
    let out = post(&app, "/v1/snapshots", &snapshot).await;
    assert_eq!(
        refusal(&out),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("taken_at"))
    );

    let mut alert = firing();
    alert["startsAt"] = json!("1999-01-01T00:00:00Z");
    let out = post(&app, "/v1/alerts/alertmanager", &webhook(alert)).await;
    assert_eq!(
        refusal(&out),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("alerts[0].startsAt")),
        "{}",
        out.1
    );
    // Alertmanager's zero endsAt of a firing alert is not a time out of range.
    let (status, out) = post(&app, "/v1/alerts/alertmanager", &webhook(firing())).await;
    assert_eq!(status, StatusCode::OK, "{out}");

    let out = get(&app, "/v1/alerts?since=0001-01-01T00:00:00Z").await;
    assert_eq!(
        refusal(&out),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("since"))
    );
    let out = get(&app, "/v1/deployments?until=9999-01-01T00:00:00Z").await;
    assert_eq!(
        refusal(&out),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("until"))
    );
}

#[tokio::test]
async fn every_write_body_refuses_unknown_fields() {
    let app = app().await;
    let mut body = deployment();
    body["extra"] = json!(true);
    let out = post(&app, "/v1/deployments", &body).await;
    assert_eq!(out.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", out.1);
    let out = post(
        &app,
        "/v1/snapshots",
        &json!({"checks": [{"kind": "dns", "target": "a", "status": "pass", "detail": "",
                            "latency_ms": 1, "extra": 1}],
                "taken_at": "2026-11-20T10:00:00Z"}),
    )
    .await;
    assert_eq!(
        refusal(&out),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("checks[0].extra")),
        "{}",
        out.1
    );
    let out = post(
        &app,
        "/v1/snapshots",
        &json!({"config": {}, "taken_at": "2026-11-20T10:00:00Z"}),
    )
    .await;
    assert_eq!(out.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", out.1);
    let out = send(
        &app,
        Request::put("/v1/services/payments/dependencies")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(
                json!({"environment": "production",
                       "depends_on": [{"name": "redis", "team": "data"}]})
                .to_string(),
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(out.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", out.1);
    // User Cypher needs the token; with it, an unknown field is refused before the store.
    let cypher = app_with(ApiConfig {
        token: Some("write".to_owned().into()),
        ..ApiConfig::default()
    })
    .await;
    let out = send(
        &cypher,
        Request::post("/v1/cypher")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, "Bearer write")
            .body(Body::from(
                json!({"query": "RETURN 1", "extra": 1}).to_string(),
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(out.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", out.1);
    // Alertmanager's format is third-party: a field a later Alertmanager adds is accepted…
    let mut hook = webhook(firing());
    hook["newInAlertmanager9"] = json!({"x": 1});
    let (status, out) = post(&app, "/v1/alerts/alertmanager", &hook).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    // …but a known field of the wrong type is refused, naming it.
    let mut hook = webhook(firing());
    hook["groupKey"] = json!(5);
    let out = post(&app, "/v1/alerts/alertmanager", &hook).await;
    assert_eq!(
        refusal(&out),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("groupKey")),
        "{}",
        out.1
    );
}

#[tokio::test]
async fn an_empty_query_parameter_is_refused_as_the_document_declares() {
    let app = app().await;
    let (_, doc) = get(&app, "/v1/openapi.json").await;
    for (path, param, query) in [
        ("/v1/alerts", "service", "service="),
        ("/v1/alerts", "fingerprint", "fingerprint="),
        ("/v1/alerts", "environment", "environment="),
        ("/v1/deployments", "cursor", "cursor="),
        ("/v1/dora", "service", "service="),
        ("/v1/chaos/runs", "service", "service="),
        ("/v1/reports/incident", "alert", "alert="),
    ] {
        let out = get(&app, &format!("{path}?{query}")).await;
        assert_eq!(
            refusal(&out),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(param)),
            "{path}?{query}: {}",
            out.1
        );
        let declared = doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == param)
            .unwrap_or_else(|| panic!("{path} does not declare {param}"));
        let schema = resolve(&doc, &declared["schema"]);
        assert_eq!(
            schema["minLength"],
            json!(1),
            "{path} {param}: {declared} / {schema}"
        );
    }
}

/// The schema `value` is, following a `$ref` or the non-null branch of a nullable one.
fn resolve(doc: &Value, value: &Value) -> Value {
    if let Some(reference) = value["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap();
        return resolve(doc, &doc["components"]["schemas"][name]);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(branches) = value[key].as_array()
            && let Some(branch) = branches.iter().find(|b| b["type"] != "null")
        {
            return resolve(doc, branch);
        }
    }
    value.clone()
}

#[tokio::test]
async fn the_document_declares_the_validators_patterns_and_lengths() {
    let app = app().await;
    let (status, doc) = get(&app, "/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let schemas = &doc["components"]["schemas"];
    let string = |name: &str| schemas[name].clone();
    assert_eq!(string("ServiceName")["pattern"], SERVICE_NAME_PATTERN);
    assert_eq!(string("ServiceName")["maxLength"], json!(NAME_MAX_LEN));
    assert_eq!(string("Environment")["pattern"], ENVIRONMENT_PATTERN);
    assert_eq!(
        string("Environment")["maxLength"],
        json!(ENVIRONMENT_MAX_LEN)
    );
    assert_eq!(string("ImageDigest")["pattern"], DIGEST_PATTERN);
    assert_eq!(string("CommitSha")["pattern"], COMMIT_SHA_PATTERN);
    assert_eq!(string("Fingerprint")["pattern"], FINGERPRINT_PATTERN);
    assert_eq!(
        string("Fingerprint")["maxLength"],
        json!(FINGERPRINT_MAX_LEN)
    );
    assert_eq!(
        string("ChaosRunUid")["pattern"],
        Uid::pattern(CHAOS_RUN_PREFIX)
    );
    assert_eq!(string("InputTime")["format"], "date-time");
    assert!(
        string("InputTime")["pattern"]
            .as_str()
            .unwrap()
            .starts_with("^(2000-"),
        "{}",
        string("InputTime")
    );

    // Required fields and unknown fields, as the handlers' types say.
    let deployment = &schemas["DeploymentInput"];
    assert_eq!(deployment["additionalProperties"], json!(false));
    for field in [
        "service",
        "environment",
        "commit",
        "images",
        "status",
        "started_at",
    ] {
        assert!(
            deployment["required"]
                .as_array()
                .unwrap()
                .contains(&json!(field)),
            "{field}: {deployment}"
        );
    }
    assert_eq!(
        schemas["ChaosRunInput"]["additionalProperties"],
        json!(false)
    );
    assert_eq!(
        schemas["DeploymentStatus"]["enum"],
        json!([
            "in_progress",
            "succeeded",
            "failed",
            "rolled_back",
            "removed"
        ])
    );
    let webhook = &schemas["AlertmanagerWebhook"];
    // A string (or null, read as absent): a number is refused, as the server does.
    assert_eq!(
        webhook["properties"]["groupKey"]["type"],
        json!(["string", "null"]),
        "{webhook}"
    );
    assert_ne!(webhook["additionalProperties"], json!(false), "{webhook}");

    // The error body and what every operation may answer besides success.
    assert_eq!(
        schemas["ErrorBody"]["properties"]["error"]["$ref"],
        "#/components/schemas/ErrorDetail"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let post = &doc["paths"]["/v1/deployments"]["post"];
    for status in ["400", "401", "413", "415", "422", "503"] {
        assert_eq!(
            post["responses"][status]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody",
            "{status}: {post}"
        );
    }
    assert!(post["security"].is_array(), "{post}");
    let list = &doc["paths"]["/v1/alerts"]["get"];
    let limit = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    assert_eq!(
        (
            &resolve(&doc, &limit["schema"])["minimum"],
            &resolve(&doc, &limit["schema"])["maximum"]
        ),
        (&json!(1), &json!(deploygraph_store::MAX_PAGE_SIZE)),
        "{limit}"
    );
}

/// Every route the router serves, by method and path, read from the router's source: a route
/// added there without its `#[utoipa::path]` fails this test.
fn routes() -> Vec<(String, String)> {
    let source = include_str!("../src/lib.rs");
    let mut routes = Vec::new();
    for chunk in source.split(".route(").skip(1) {
        let path = chunk.split('"').nth(1).unwrap().to_owned();
        let after = chunk.splitn(3, '"').nth(2).unwrap();
        let method = after
            .trim_start_matches([',', ' ', '\n'])
            .split('(')
            .next()
            .unwrap()
            .trim()
            .to_owned();
        assert!(
            ["get", "post", "put", "delete", "patch"].contains(&method.as_str()),
            "cannot read the route {path}: {method}"
        );
        routes.push((method, path));
    }
    routes
}

#[tokio::test]
async fn the_document_and_the_router_have_the_same_operations() {
    let app = app().await;
    let (_, doc) = get(&app, "/v1/openapi.json").await;
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    documented.sort();
    let mut routed = routes();
    assert!(routed.len() >= 29, "{routed:?}");
    routed.sort();
    routed.dedup();
    // The web console's page and assets are HTML, script and style, not operations of the API:
    // exactly these, each served with its own type and the console's security policy.
    let (console, mut routed): (Vec<_>, Vec<_>) = routed
        .into_iter()
        .partition(|(_, path)| path == "/" || path.starts_with("/console/"));
    assert_eq!(
        console,
        [
            ("get".to_owned(), "/".to_owned()),
            ("get".to_owned(), "/console/console.css".to_owned()),
            ("get".to_owned(), "/console/console.js".to_owned()),
        ]
    );
    for ((_, path), kind) in console
        .iter()
        .zip(["text/html", "text/css", "text/javascript"])
    {
        let response = app
            .clone()
            .oneshot(Request::get(path.as_str()).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers();
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with(kind),
            "{path}: {headers:?}"
        );
        assert!(
            headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .starts_with("default-src 'none'"),
            "{path}"
        );
    }
    routed.sort();
    assert_eq!(documented, routed);
    // Each documented operation is served: with its parameters filled in, the router answers
    // something other than "no such endpoint" (404 from the fallback) or 405.
    let name = ServiceName::parse("payments").unwrap();
    for (method, path) in &documented {
        let concrete = path
            .replace("{uid}", "deployment-0")
            .replace("{name}", name.as_str())
            .replace("{fingerprint}", "a1b2");
        let request = Request::builder()
            .method(method.to_uppercase().as_str())
            .uri(&concrete)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let (status, body) = send(&app, request).await;
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert!(
            !(status == StatusCode::NOT_FOUND
                && body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("no such endpoint"))),
            "{method} {path} is documented but not routed"
        );
    }
}

async fn app_with(config: ApiConfig) -> Router {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(
        &dir.path().join("store.db"),
        deploygraph_store::MigrationSource::Embedded,
    )
    .await
    .unwrap();
    store.migrate().await.unwrap();
    DIRS.lock().unwrap().push(dir);
    let store: Arc<dyn GraphStore> = Arc::new(store);
    router(AppState::new(store, config))
}

#[tokio::test]
async fn with_a_read_token_the_document_secures_every_read_but_the_health_routes() {
    let open = app().await;
    let (status, doc) = get(&open, "/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["paths"]["/v1/alerts"]["get"]["security"].is_null(),
        "{doc}"
    );
    assert!(doc["paths"]["/v1/alerts"]["get"]["responses"]["401"].is_null());

    let guarded = app_with(ApiConfig {
        token: Some("write".to_owned().into()),
        read_token: Some("read".to_owned().into()),
        ..ApiConfig::default()
    })
    .await;
    let (status, _) = get(&guarded, "/v1/openapi.json").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the document is a read too"
    );
    let (status, doc) = send(
        &guarded,
        Request::get("/v1/openapi.json")
            .header(header::AUTHORIZATION, "Bearer read")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{doc}");
    let paths = doc["paths"].as_object().unwrap();
    for (path, item) in paths {
        let Some(op) = item.get("get") else { continue };
        let open_route = path == "/healthz" || path == "/readyz";
        assert_eq!(op["security"].is_null(), open_route, "{path}: {op}");
        assert_eq!(op["responses"]["401"].is_null(), open_route, "{path}: {op}");
    }
    assert!(paths.contains_key("/metrics"));
    // And the server holds what it declares.
    for path in ["/healthz", "/readyz"] {
        assert_eq!(get(&guarded, path).await.0, StatusCode::OK, "{path}");
    }
    for path in ["/metrics", "/v1/alerts", "/v1/services"] {
        assert_eq!(
            get(&guarded, path).await.0,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_cypher_operation_declares_the_token_its_refusals_and_its_caps() {
    let (_, doc) = get(&app().await, "/v1/openapi.json").await;
    let op = &doc["paths"]["/v1/cypher"]["post"];
    assert_eq!(op["security"][0]["bearer"], json!([]), "{op}");
    for status in ["400", "401", "403", "404", "504"] {
        assert!(op["responses"][status].is_object(), "{status}: {op}");
    }
    let body = &doc["components"]["schemas"]["CypherBody"]["properties"];
    assert_eq!(body["max_bytes"]["minimum"], 1, "{body}");
    let snapshot = &doc["paths"]["/v1/snapshots"]["post"]["responses"];
    assert!(snapshot["403"].is_object(), "{snapshot}");
}
