//! The admission gate's router in-process over the embedded store: what it judges, what it
//! answers, what it records, and how it refuses what is not an AdmissionReview.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{Duration as Span, Utc};
use deploygraph_api::admission::{self, Config, Mode};
use deploygraph_api::{ApiConfig, AppState};
use deploygraph_model::{CheckRecord, InfraSnapshot, Verdict};
use deploygraph_store::sqlite::SqliteStore;
use deploygraph_store::{GateOverrideFilter, GraphStore, MigrationSource};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

static DIRS: std::sync::Mutex<Vec<tempfile::TempDir>> = std::sync::Mutex::new(Vec::new());

async fn store() -> Arc<dyn GraphStore> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    DIRS.lock().unwrap().push(dir);
    let store = SqliteStore::open(&path, MigrationSource::Embedded)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    Arc::new(store)
}

fn gate(store: &Arc<dyn GraphStore>, config: Config) -> Router {
    admission::router(
        AppState::new(Arc::clone(store), ApiConfig::default()),
        config,
    )
}

async fn post(app: &Router, body: &Value) -> (StatusCode, Value) {
    let request = Request::post("/v1/admission/validate")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn deployment(image: &str, replicas: u32, annotations: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "annotations": annotations},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": image}]}}}
    })
}

fn review(uid: &str, operation: &str, object: &Value, old: Option<&Value>) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "resource": {"group": "apps", "version": "v1", "resource": "deployments"},
            "namespace": "shop", "name": "web", "operation": operation,
            "userInfo": {"username": "alice@example.com"},
            "object": object, "oldObject": old, "dryRun": false
        }
    })
}

fn check(status: Verdict, detail: &str) -> CheckRecord {
    CheckRecord {
        kind: "tls".into(),
        target: "api.shop.example:443".into(),
        status,
        detail: detail.into(),
        latency_ms: 3,
        certificates: Vec::new(),
        uses: Vec::new(),
    }
}

async fn snapshot(store: &Arc<dyn GraphStore>, age: Span, status: Verdict, cluster: Option<&str>) {
    let snapshot = InfraSnapshot::new(
        Utc::now() - age,
        cluster.map(str::to_owned),
        None,
        vec![
            check(status, "certificate expires in 2 days (< 7 days)"),
            check(Verdict::Pass, "ok"),
        ],
    );
    store.record_snapshot(&snapshot).await.unwrap();
}

fn image_change(uid: &str, annotations: Value) -> Value {
    review(
        uid,
        "UPDATE",
        &deployment("registry.local/web:v2", 2, annotations),
        Some(&deployment("registry.local/web:v1", 2, json!({}))),
    )
}

#[tokio::test]
async fn a_pod_template_change_is_refused_while_the_snapshot_fails_naming_the_checks() {
    let store = store().await;
    let app = gate(&store, Config::default());
    snapshot(&store, Span::minutes(5), Verdict::Fail, None).await;
    let (status, body) = post(&app, &image_change("r-1", json!({}))).await;
    assert_eq!(status, StatusCode::OK);
    let response = &body["response"];
    assert_eq!(body["kind"], "AdmissionReview");
    assert_eq!(response["uid"], "r-1");
    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 403);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("Deployment shop/web")
            && message.contains("tls api.shop.example:443: certificate expires in 2 days")
            && message.contains("deploygraph.io/gate-override"),
        "{message}"
    );

    // Scaling, and metadata, never are: the template did not change.
    let scale = review(
        "r-2",
        "UPDATE",
        &deployment("registry.local/web:v1", 5, json!({"team": "shop"})),
        Some(&deployment("registry.local/web:v1", 2, json!({}))),
    );
    let (_, body) = post(&app, &scale).await;
    assert_eq!(body["response"]["allowed"], true);
    assert!(body["response"]["status"].is_null());
    // Nor deletions, nor other kinds.
    let mut delete = review(
        "r-3",
        "DELETE",
        &Value::Null,
        Some(&deployment("x", 1, json!({}))),
    );
    assert_eq!(post(&app, &delete).await.1["response"]["allowed"], true);
    delete["request"]["kind"]["kind"] = json!("ReplicaSet");
    delete["request"]["operation"] = json!("CREATE");
    delete["request"]["object"] = deployment("x", 1, json!({}));
    assert_eq!(post(&app, &delete).await.1["response"]["allowed"], true);

    // A new workload is a rollout: judged.
    let create = review(
        "r-4",
        "CREATE",
        &deployment("registry.local/web:v1", 1, json!({})),
        None,
    );
    assert_eq!(post(&app, &create).await.1["response"]["allowed"], false);

    // A passing snapshot taken since lets it through.
    snapshot(&store, Span::minutes(1), Verdict::Pass, None).await;
    let (_, body) = post(&app, &image_change("r-5", json!({}))).await;
    assert_eq!(body["response"]["allowed"], true);
}

#[tokio::test]
async fn a_missing_or_stale_snapshot_refuses_and_the_cluster_is_the_configured_one() {
    let store = store().await;
    let config = Config {
        max_snapshot_age: Duration::from_secs(1800),
        cluster: Some("eu-1".into()),
        ..Config::default()
    };
    let app = gate(&store, config);
    let refusal = |body: &Value| {
        body["response"]["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let (_, body) = post(&app, &image_change("s-1", json!({}))).await;
    assert!(
        refusal(&body).contains("no infra snapshot of cluster eu-1 recorded in the last 30m"),
        "{body}"
    );
    // Another cluster's passing snapshot does not count.
    snapshot(&store, Span::minutes(1), Verdict::Pass, Some("us-1")).await;
    let (_, body) = post(&app, &image_change("s-2", json!({}))).await;
    assert_eq!(body["response"]["allowed"], false);
    // Nor does one of this cluster older than the limit.
    snapshot(&store, Span::minutes(45), Verdict::Pass, Some("eu-1")).await;
    let (_, body) = post(&app, &image_change("s-3", json!({}))).await;
    assert_eq!(body["response"]["allowed"], false);
    snapshot(&store, Span::minutes(2), Verdict::Pass, Some("eu-1")).await;
    let (_, body) = post(&app, &image_change("s-4", json!({}))).await;
    assert_eq!(body["response"]["allowed"], true);

    // Without a cluster: the newest snapshot of any, and its age.
    let store = self::store().await;
    let app = gate(&store, Config::default());
    snapshot(&store, Span::hours(3), Verdict::Pass, None).await;
    let (_, body) = post(&app, &image_change("s-5", json!({}))).await;
    assert!(
        refusal(&body).contains("was taken 3h00m ago, more than 1h00m"),
        "{body}"
    );
}

#[tokio::test]
async fn the_override_annotation_admits_with_a_warning_and_is_recorded_once() {
    let store = store().await;
    let app = gate(&store, Config::default());
    snapshot(&store, Span::minutes(5), Verdict::Fail, None).await;
    let annotated = image_change(
        "o-1",
        json!({"deploygraph.io/gate-override": "  INC-4211 hotfix, cert renewal in progress  "}),
    );
    for _ in 0..2 {
        // The API server may send a review again: one override.
        let (_, body) = post(&app, &annotated).await;
        assert_eq!(body["response"]["allowed"], true);
        let warning = body["response"]["warnings"][0].as_str().unwrap();
        assert!(
            warning.starts_with(
                "deploygraph gate overridden by alice@example.com (INC-4211 hotfix, cert renewal in progress)"
            ),
            "{warning}"
        );
    }
    let overrides = store
        .list_gate_overrides(&GateOverrideFilter {
            limit: 10,
            ..GateOverrideFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(overrides.len(), 1);
    let o = &overrides[0];
    assert_eq!(
        (
            o.kind.as_str(),
            o.namespace.as_str(),
            o.name.as_str(),
            o.user.as_str()
        ),
        ("Deployment", "shop", "web", "alice@example.com")
    );
    assert_eq!(o.reason, "INC-4211 hotfix, cert renewal in progress");
    assert_eq!(o.operation, "UPDATE");
    assert!(o.refusal.contains("certificate expires in 2 days"));
    assert!(o.snapshot_uid.is_some() && o.deployment_uid.is_none());

    // A dry run is admitted the same way and records nothing.
    let mut dry = image_change("o-2", json!({"deploygraph.io/gate-override": "trying"}));
    dry["request"]["dryRun"] = json!(true);
    assert_eq!(post(&app, &dry).await.1["response"]["allowed"], true);
    // An empty annotation overrides nothing.
    let empty = image_change("o-3", json!({"deploygraph.io/gate-override": " "}));
    assert_eq!(post(&app, &empty).await.1["response"]["allowed"], false);
    let all = store
        .list_gate_overrides(&GateOverrideFilter {
            limit: 10,
            ..GateOverrideFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
}

#[tokio::test]
async fn warn_mode_admits_what_it_would_refuse_with_the_reason() {
    let store = store().await;
    let app = gate(
        &store,
        Config {
            mode: Mode::Warn,
            ..Config::default()
        },
    );
    snapshot(&store, Span::minutes(5), Verdict::Fail, None).await;
    let (_, body) = post(&app, &image_change("w-1", json!({}))).await;
    assert_eq!(body["response"]["allowed"], true);
    let warning = body["response"]["warnings"][0].as_str().unwrap();
    assert!(
        warning.starts_with("deploygraph gate would refuse this change: infra snapshot")
            && warning.contains("certificate expires in 2 days"),
        "{warning}"
    );
}

#[tokio::test]
async fn malformed_reviews_get_a_400_naming_the_field() {
    let store = store().await;
    let app = gate(&store, Config::default());
    let valid = image_change("m-1", json!({}));
    let mut cases: Vec<(Value, &str)> = vec![
        (json!([1, 2]), "body"),
        (json!({"kind": "AdmissionReview"}), "apiVersion"),
        (
            json!({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}),
            "apiVersion",
        ),
        (
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "Pod"}),
            "kind",
        ),
        (
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}),
            "request",
        ),
    ];
    let mut edit = |f: &dyn Fn(&mut Value), field: &'static str| {
        let mut v = valid.clone();
        f(&mut v);
        cases.push((v, field));
    };
    edit(&|v| v["request"]["uid"] = json!(""), "request.uid");
    edit(&|v| v["request"]["uid"] = json!(7), "request.uid");
    edit(
        &|v| v["request"]["operation"] = json!("PATCH"),
        "request.operation",
    );
    edit(&|v| v["request"]["kind"] = Value::Null, "request.kind");
    edit(&|v| v["request"]["object"] = json!("x"), "request.object");
    edit(
        &|v| v["request"]["oldObject"] = Value::Null,
        "request.oldObject",
    );
    edit(
        &|v| v["request"]["namespace"] = json!(["shop"]),
        "request.namespace",
    );
    for (body, field) in cases {
        let (status, answer) = post(&app, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_review");
    }
    let request = Request::post("/v1/admission/validate")
        .header("content-type", "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // Too large for any AdmissionReview.
    let huge = format!("\"{}\"", "x".repeat(admission::MAX_REVIEW_BYTES + 1));
    let request = Request::post("/v1/admission/validate")
        .body(Body::from(huge))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_store_that_does_not_answer_in_time_gets_a_503_and_scaling_still_passes() {
    // A "Neo4j" that accepts connections and never answers: only the gate's own bound ends
    // the wait.
    let port = deploygraph_probe::testing::silent().await;
    let config =
        deploygraph_store::StoreConfig::parse(&format!("bolt://127.0.0.1:{port}"), None, None)
            .unwrap();
    let store = deploygraph_store::open(&config, MigrationSource::Embedded)
        .await
        .unwrap();
    let config = Config {
        timeout: Duration::from_millis(300),
        ..Config::default()
    };
    let app = gate(&store, config.clone());
    let (status, body) = post(&app, &image_change("d-1", json!({}))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the store did not answer within 300ms"),
        "{body}"
    );
    let scale = review(
        "d-2",
        "UPDATE",
        &deployment("registry.local/web:v1", 5, json!({})),
        Some(&deployment("registry.local/web:v1", 2, json!({}))),
    );
    assert_eq!(post(&app, &scale).await.1["response"]["allowed"], true);
    // In warn mode it is admitted, saying why it could not judge.
    let app = gate(
        &store,
        Config {
            mode: Mode::Warn,
            ..config
        },
    );
    let (status, body) = post(&app, &image_change("d-3", json!({}))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body["response"]["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("deploygraph gate: could not read infra snapshots"),
        "{body}"
    );
}

/// The gate's TLS listener: serves the chain it was given, reads it again after a rotation,
/// and with a client CA refuses clients without a certificate it signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tls_listener_rotates_its_certificate_and_can_require_client_certificates() {
    use deploygraph_api::tls::{CertFiles, TlsListener, read_pem_certs};
    use deploygraph_probe::testing::{Ca, leaf};
    let store = store().await;
    let ca = Ca::new("gate CA");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let first = leaf(Some(&ca), &["gate.local"], -1, 24);
    std::fs::write(&cert, &first.pem).unwrap();
    std::fs::write(&key, &first.key_pem).unwrap();
    let client_ca = Ca::new("API server client CA");
    let client_ca_file = dir.path().join("client-ca.pem");
    std::fs::write(&client_ca_file, client_ca.pem()).unwrap();

    let serve = |client_ca: Option<Vec<_>>| {
        let (store, cert, key) = (Arc::clone(&store), cert.clone(), key.clone());
        async move {
            let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let certs = Arc::new(CertFiles::open(&cert, &key).unwrap());
            let listener = TlsListener::new(tcp, certs, client_ca).unwrap();
            let address = axum::serve::Listener::local_addr(&listener).unwrap();
            let app = gate(&store, Config::default());
            tokio::spawn(async move { axum::serve(listener, app).await });
            address
        }
    };
    let client = |identity: Option<reqwest::Identity>, address: std::net::SocketAddr| {
        let mut builder = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
            .resolve("gate.local", address);
        if let Some(identity) = identity {
            builder = builder.identity(identity);
        }
        builder.build().unwrap()
    };
    let healthz =
        |address: std::net::SocketAddr| format!("https://gate.local:{}/healthz", address.port());

    let open = serve(None).await;
    let plain = client(None, open);
    let served = |c: reqwest::Client, url: String| async move {
        c.get(url).send().await.map(|r| r.status().as_u16())
    };
    assert_eq!(served(plain.clone(), healthz(open)).await.unwrap(), 200);

    // Rotated in place (as a mounted Secret is): the next handshakes get the new certificate,
    // once the files are looked at again (every 10 s).
    let second = leaf(Some(&ca), &["gate.local"], -1, 48);
    std::fs::write(&cert, &second.pem).unwrap();
    std::fs::write(&key, &second.key_pem).unwrap();
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    let strict = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .resolve("gate.local", open)
        .tls_info(true)
        .build()
        .unwrap();
    let response = strict.get(healthz(open)).send().await.unwrap();
    let served_der = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .unwrap()
        .peer_certificate()
        .unwrap()
        .to_vec();
    assert_eq!(served_der, second.chain[0].to_vec());

    // With a client CA: no certificate, no connection; one it signed, served.
    let mutual = serve(Some(read_pem_certs(&client_ca_file).unwrap())).await;
    assert!(served(client(None, mutual), healthz(mutual)).await.is_err());
    let apiserver = leaf(Some(&client_ca), &["kube-apiserver"], -1, 24);
    let identity =
        reqwest::Identity::from_pem(format!("{}{}", apiserver.pem, apiserver.key_pem).as_bytes())
            .unwrap();
    assert_eq!(
        served(client(Some(identity), mutual), healthz(mutual))
            .await
            .unwrap(),
        200
    );
    // Files that are not a certificate and its key are refused at start-up.
    std::fs::write(&key, &first.key_pem).unwrap();
    assert!(
        CertFiles::open(&cert, &key)
            .unwrap_err()
            .contains("tls.key")
    );
}
