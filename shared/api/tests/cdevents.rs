//! CDEvents on `POST /v1/events` as producers send them: every example the CDEvents spec
//! publishes (v0.2 to the draft, `tests/fixtures/cdevents`, unchanged) in CloudEvents binary
//! and structured mode, incidents attributed like alerts, idempotency on source + id — on
//! SQLite and on the real Neo4j of `scripts/services up neo4j`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use deploygraph_api::{ApiConfig, AppState, router_with_inline_follow_ups};
use deploygraph_model::Uid;
use deploygraph_store::GraphStore;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use tower::ServiceExt;

/// The router with each write's follow-ups (attribution, re-attribution) done before its
/// answer, so the next request sees them.
fn app(store: &Arc<dyn GraphStore>) -> Router {
    router_with_inline_follow_ups(
        AppState::new(Arc::clone(store), ApiConfig::default()),
        std::time::Duration::from_secs(30),
    )
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, body)
}

async fn get(app: &Router, path: &str) -> (StatusCode, Value) {
    send(app, Request::get(path).body(Body::empty()).unwrap()).await
}

/// CloudEvents binary mode: the CDEvent's bytes as the body, its context in `ce-*` headers.
fn binary(raw: &str) -> Request<Body> {
    let event: Value = serde_json::from_str(raw).unwrap();
    let context = &event["context"];
    Request::post("/v1/events")
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .header("ce-specversion", "1.0")
        .header("ce-id", context["id"].as_str().unwrap())
        .header("ce-source", context["source"].as_str().unwrap())
        .header("ce-type", context["type"].as_str().unwrap())
        .header("ce-time", context["timestamp"].as_str().unwrap())
        .header("ce-subject", event["subject"]["id"].as_str().unwrap_or("-"))
        .body(Body::from(raw.to_owned()))
        .unwrap()
}

/// CloudEvents structured mode: an envelope whose `data` is the CDEvent.
fn structured(event: &Value) -> Request<Body> {
    let context = &event["context"];
    let envelope = json!({
        "specversion": "1.0", "id": context["id"], "source": context["source"],
        "type": context["type"], "time": context["timestamp"], "subject": event["subject"]["id"],
        "datacontenttype": "application/json", "data": event,
    });
    Request::post("/v1/events")
        .header(header::CONTENT_TYPE, "application/cloudevents+json")
        .body(Body::from(envelope.to_string()))
        .unwrap()
}

/// The spec's examples: (release folder, file stem, the file's text), in a stable order.
fn examples() -> Vec<(String, String, String)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cdevents");
    let mut out = Vec::new();
    let mut releases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    releases.sort();
    for release in releases {
        let mut files: Vec<_> = std::fs::read_dir(&release)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for file in files {
            out.push((
                release.file_name().unwrap().to_string_lossy().into_owned(),
                file.file_stem().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&file).unwrap(),
            ));
        }
    }
    out
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

fn ago(minutes: i64) -> String {
    (chrono::Utc::now() - chrono::Duration::minutes(minutes))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The answer to the first post of a record in this run: 201 on a fresh store; on a store kept
/// between runs (Neo4j) 201 the first time ever, else 200. Later posts: 200.
fn expected(new_in_this_run: bool, fresh: bool, got: StatusCode) -> StatusCode {
    match (new_in_this_run, fresh) {
        (true, true) => StatusCode::CREATED,
        (true, false) if got == StatusCode::CREATED => StatusCode::CREATED,
        _ => StatusCode::OK,
    }
}

/// Every published example is accepted unchanged, in both modes; the structured copy of an
/// event already posted in binary mode is the same event (200, same record).
async fn every_spec_example_is_accepted_in_both_modes(store: Arc<dyn GraphStore>, fresh: bool) {
    let app = app(&store);
    let mut seen_deployments = std::collections::HashSet::new();
    let mut seen_alerts = std::collections::HashSet::new();
    let (mut services, mut incidents, mut ignored) = (0, 0, 0);
    for (release, stem, raw) in examples() {
        let what = format!("{release}/{stem}");
        let event: Value = serde_json::from_str(&raw).unwrap();
        let event_type = event["context"]["type"].as_str().unwrap().to_owned();
        let (status, first) = send(&app, binary(&raw)).await;
        let (again_status, again) = send(&app, structured(&event)).await;
        if stem.starts_with("service_") {
            services += 1;
            let uid = first["uid"]
                .as_str()
                .unwrap_or_else(|| panic!("{what}: {status} {first}"));
            let new = seen_deployments.insert(uid.to_owned());
            assert_eq!(status, expected(new, fresh, status), "{what}: {first}");
            assert_eq!(again_status, StatusCode::OK, "{what}: {again}");
            assert_eq!(again, first, "{what}: the same record in both modes");
            let (status, stored) = get(&app, &format!("/v1/deployments/{uid}")).await;
            assert_eq!(status, StatusCode::OK, "{what}");
            assert_eq!(stored["source"], "cdevents", "{what}");
            assert_eq!(stored["service"], "mysubject123", "{what}");
            assert_eq!(stored["environment"], "test123", "{what}");
            assert_eq!(stored["origin"]["source_name"], "mySubject123", "{what}");
            assert_eq!(stored["origin"]["source"], "/event/source/123", "{what}");
            assert_eq!(stored["id"], event["context"]["id"], "{what}");
            assert!(stored.get("commit").is_none(), "{what}: no commit invented");
            let kind = stem.trim_start_matches("service_");
            let status = match kind {
                "deployed" | "upgraded" => "succeeded",
                "rolledback" => "rolled_back",
                _ => "removed",
            };
            assert_eq!(stored["status"], status, "{what}");
            if kind == "removed" {
                assert_eq!(stored["images"], json!([]), "{what}");
            } else {
                assert_eq!(
                    stored["images"][0]["digest"],
                    "sha256:0b31b1c02ff458ad9b7b81cbdf8f028bd54699fa151f221d1e8de6817db93427",
                    "{what}"
                );
            }
        } else if stem.starts_with("incident_") {
            incidents += 1;
            let fingerprint = Uid::derive("incident", &["/monitoring/prod1", "incident-123"]);
            assert_eq!(
                first["fingerprint"],
                fingerprint.as_str(),
                "{what}: {first}"
            );
            let uid = first["uid"].as_str().unwrap().to_owned();
            let new = seen_alerts.insert(uid);
            assert_eq!(status, expected(new, fresh, status), "{what}: {first}");
            assert_eq!(again_status, StatusCode::OK, "{what}: {again}");
            assert_eq!(again["outcome"], "unchanged", "{what}: {again}");
            assert_eq!(first["service"], "myapp", "{what}");
            assert_eq!(first["environment"], "prod1", "{what}");
            assert_eq!(first["labels"]["service"], "myApp", "{what}");
            if stem == "incident_resolved" {
                assert_eq!(first["status"], "resolved", "{what}");
            } else if status == StatusCode::CREATED {
                assert_eq!(first["status"], "firing", "{what}");
            }
        } else {
            ignored += 1;
            for (status, body) in [(status, &first), (again_status, &again)] {
                assert_eq!(status, StatusCode::ACCEPTED, "{what}: {body}");
                assert_eq!(body["status"], "ignored", "{what}");
                assert_eq!(body["type"], event_type.as_str(), "{what}");
            }
        }
    }
    assert_eq!((services, incidents, ignored), (20, 10, 16));
    // One Alert for the incident whatever the releases and modes: resolved is final.
    let fingerprint = Uid::derive("incident", &["/monitoring/prod1", "incident-123"]);
    let (_, alerts) = get(&app, &format!("/v1/alerts?fingerprint={fingerprint}")).await;
    assert_eq!(alerts["items"].as_array().unwrap().len(), 1, "{alerts}");
    assert_eq!(alerts["items"][0]["status"], "resolved");

    let (_, metrics) = get(&app, "/metrics").await;
    let metrics = metrics.as_str().unwrap();
    for line in [
        "deploygraph_cdevents_ignored_total{type=\"pipelinerun.finished\"} 10",
        "deploygraph_cdevents_ignored_total{type=\"taskrun.started\"} 10",
        "deploygraph_cdevents_ignored_total{type=\"artifact.published\"} 10",
        "deploygraph_cdevents_ignored_total{type=\"custom\"} 2",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

fn service_event(id: &str, source: &str, service: &str, environment: &str, at: &str) -> Value {
    json!({
        "context": {"specversion": "0.5.1", "id": id, "source": source,
                    "type": "dev.cdevents.service.deployed.0.3.0", "timestamp": at},
        "subject": {"id": service, "source": source,
                    "content": {"environment": {"id": environment},
                                "artifactId": format!("pkg:oci/app@sha256%3A{}?tag=v1", "ab".repeat(32))}}
    })
}

/// The same id from two sources is two events; a retry is the same event.
async fn idempotency_is_on_source_and_id(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let id = unique("run");
    let service = unique("svc");
    let at = ago(30);
    let a = service_event(&id, "/ci/a", &service, "production", &at);
    let b = service_event(&id, "/ci/b", &service, "production", &at);
    let (status, first) = send(&app, binary(&a.to_string())).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, other) = send(&app, structured(&b)).await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    assert_ne!(first["uid"], other["uid"]);
    let (status, retry) = send(&app, structured(&a)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(retry["uid"], first["uid"]);
    assert_eq!(retry["origin"]["source"], "/ci/a");
    // The same key for another rollout is a producer reusing ids: refused, nothing written.
    let mut reused = a.clone();
    reused["subject"]["content"]["artifactId"] =
        json!(format!("pkg:oci/app@sha256%3A{}?tag=v2", "cd".repeat(32)));
    let (status, body) = send(&app, structured(&reused)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["field"], "context.id");
    let (_, page) = get(&app, &format!("/v1/services/{service}/deployments")).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2, "{page}");
}

/// An incident is an alert on the service it names, in its whole environment, attributed to
/// the deployment before it there and not to the one in another environment; resolving it
/// is final.
async fn incidents_are_alerts_attributed_to_the_deployment_before_them(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let name = unique("Checkout");
    let service = name.to_lowercase();
    let source = unique("/ci/pipeline");
    let prod = service_event(&unique("d"), &source, &name, "prod/eu/cluster-a", &ago(20));
    let staging = service_event(
        &unique("d"),
        &source,
        &name,
        "staging/eu/cluster-a",
        &ago(19),
    );
    let (status, prod) = send(&app, binary(&prod.to_string())).await;
    assert_eq!(status, StatusCode::CREATED, "{prod}");
    assert_eq!(prod["environment"], "prod/eu/cluster-a");
    let (status, staging) = send(&app, structured(&staging)).await;
    assert_eq!(status, StatusCode::CREATED, "{staging}");
    assert_eq!(staging["environment"], "staging/eu/cluster-a");
    let (_, services) = get(&app, "/v1/services").await;
    let environments: Vec<&str> = services["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == service.as_str())
        .map(|s| s["environment"].as_str().unwrap())
        .collect();
    assert_eq!(
        environments.len(),
        2,
        "two environments, not one: {services}"
    );

    let incident = unique("incident");
    let monitor = unique("/monitoring");
    let detected_at = ago(10);
    let incident_event = |kind: &str, at: &str| {
        json!({
            "context": {"specversion": "0.5.1", "id": unique("ev"), "source": monitor,
                        "type": format!("dev.cdevents.incident.{kind}.0.3.0"), "timestamp": at},
            "subject": {"id": incident, "source": monitor,
                        "content": {"description": "p99 above 1s",
                                    "environment": {"id": "prod/eu/cluster-a"},
                                    "service": {"id": format!("/clusterA/shop/{name}")}}}
        })
    };
    let (status, alert) = send(&app, structured(&incident_event("detected", &detected_at))).await;
    assert_eq!(status, StatusCode::CREATED, "{alert}");
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["service"], service.as_str());
    let fingerprint = alert["fingerprint"].as_str().unwrap().to_owned();
    assert_eq!(
        fingerprint,
        Uid::derive("incident", &[&monitor, &incident]).to_string()
    );
    let (status, view) = get(&app, &format!("/v1/alerts/{fingerprint}/suspects")).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let suspects: Vec<&str> = view["suspects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["deployment"]["uid"].as_str().unwrap())
        .collect();
    assert_eq!(suspects, [prod["uid"].as_str().unwrap()], "{view}");

    let resolved_at = ago(2);
    let resolved = incident_event("resolved", &resolved_at);
    let (status, alert) = send(&app, binary(&resolved.to_string())).await;
    assert_eq!(status, StatusCode::OK, "{alert}");
    assert_eq!(alert["status"], "resolved");
    assert_eq!(alert["outcome"], "updated");
    assert_eq!(
        chrono::DateTime::parse_from_rfc3339(alert["starts_at"].as_str().unwrap()).unwrap(),
        chrono::DateTime::parse_from_rfc3339(&detected_at).unwrap(),
        "it started when it was detected"
    );
    // A late retry of the detection does not reopen it.
    let (status, alert) = send(&app, structured(&incident_event("detected", &detected_at))).await;
    assert_eq!(status, StatusCode::OK, "{alert}");
    assert_eq!(alert["status"], "resolved");
    let (_, alerts) = get(&app, &format!("/v1/alerts?fingerprint={fingerprint}")).await;
    assert_eq!(alerts["items"].as_array().unwrap().len(), 1);
    let starts_at = alerts["items"][0]["starts_at"].as_str().unwrap();
    let (status, _) = get(
        &app,
        &format!("/v1/alerts/{fingerprint}/suspects?starts_at={starts_at}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "found by its start too");
}

/// Malformed events and unsupported versions of recorded types are 4xx naming the field.
async fn bad_events_name_the_field(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let good = service_event(&unique("d"), "/ci", "payments", "production", &ago(5));
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            {
                let mut e = good.clone();
                e["context"]["specversion"] = json!("0.9.0");
                binary(&e.to_string())
            },
            StatusCode::UNPROCESSABLE_ENTITY,
            "context.specversion",
        ),
        (
            {
                let mut e = good.clone();
                e["subject"]["content"]
                    .as_object_mut()
                    .unwrap()
                    .remove("artifactId");
                structured(&e)
            },
            StatusCode::UNPROCESSABLE_ENTITY,
            "subject.content.artifactId",
        ),
        (
            Request::post("/v1/events")
                .header(header::CONTENT_TYPE, "application/json")
                .header("ce-specversion", "1.0")
                .header("ce-id", "not-the-id")
                .header("ce-source", "/ci")
                .header("ce-type", "dev.cdevents.service.deployed.0.3.0")
                .body(Body::from(good.to_string()))
                .unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "ce-id",
        ),
        (
            Request::post("/v1/events")
                .header(header::CONTENT_TYPE, "application/cloudevents+json")
                .body(Body::from(
                    json!({"specversion": "1.0", "id": "1", "source": "/ci",
                                         "type": "dev.cdevents.service.deployed.0.3.0"})
                    .to_string(),
                ))
                .unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "data",
        ),
        (
            {
                let mut e = good.clone();
                e["customData"] = json!([null, null]);
                binary(&e.to_string())
            },
            StatusCode::UNPROCESSABLE_ENTITY,
            "customData",
        ),
        (
            {
                let mut e = good.clone();
                e["context"]["timestamp"] = json!("1999-12-31T23:59:59Z");
                binary(&e.to_string())
            },
            StatusCode::UNPROCESSABLE_ENTITY,
            "context.timestamp",
        ),
    ];
    for (request, status, field) in cases {
        let (got, body) = send(&app, request).await;
        assert_eq!(got, status, "{field}: {body}");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    let (_, page) = get(&app, "/v1/services/payments/deployments").await;
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["id"] != good["context"]["id"]),
        "nothing was written"
    );
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_spec_example_is_accepted_in_both_modes() {
        let (_dir, store) = deploygraph_store::testing::sqlite().await;
        super::every_spec_example_is_accepted_in_both_modes(store, true).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idempotency_is_on_source_and_id() {
        let (_dir, store) = deploygraph_store::testing::sqlite().await;
        super::idempotency_is_on_source_and_id(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn incidents_are_alerts_attributed_to_the_deployment_before_them() {
        let (_dir, store) = deploygraph_store::testing::sqlite().await;
        super::incidents_are_alerts_attributed_to_the_deployment_before_them(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_events_name_the_field() {
        let (_dir, store) = deploygraph_store::testing::sqlite().await;
        super::bad_events_name_the_field(store).await;
    }
}

mod neo4j {
    /// Neo4j is shared between runs, so an example may already be recorded from an earlier
    /// run (200 instead of 201); everything else is checked as on a fresh store.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_spec_example_is_accepted_in_both_modes() {
        let (_dir, store) = deploygraph_store::testing::neo4j().await;
        super::every_spec_example_is_accepted_in_both_modes(store, false).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idempotency_is_on_source_and_id() {
        let (_dir, store) = deploygraph_store::testing::neo4j().await;
        super::idempotency_is_on_source_and_id(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn incidents_are_alerts_attributed_to_the_deployment_before_them() {
        let (_dir, store) = deploygraph_store::testing::neo4j().await;
        super::incidents_are_alerts_attributed_to_the_deployment_before_them(store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_events_name_the_field() {
        let (_dir, store) = deploygraph_store::testing::neo4j().await;
        super::bad_events_name_the_field(store).await;
    }
}
