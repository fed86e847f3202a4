//! Component tests of `POST /v1/rollbacks` and of the rollbacks `GET
//! /v1/deployments/{uid}/canary` lists: the router driven in-process over both stores (SQLite,
//! and the real Neo4j of `scripts/services up neo4j`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use deploygraph_store::GraphStore;
use serde_json::{Value, json};
use std::sync::Arc;
use support::{TOKEN, app, send, unique};

fn request(path: &str, body: String, token: Option<&str>) -> Request<Body> {
    let mut request = Request::builder()
        .method("POST")
        .uri(path)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    request.body(Body::from(body)).unwrap()
}

async fn post(app: &Router, body: &Value) -> (StatusCode, Value) {
    let (status, _, body) =
        send(app, request("/v1/rollbacks", body.to_string(), Some(TOKEN))).await;
    (status, body)
}

async fn get(app: &Router, path: &str) -> (StatusCode, Value) {
    let (status, _, body) = send(app, Request::get(path).body(Body::empty()).unwrap()).await;
    (status, body)
}

fn at(minute: i64) -> String {
    let base = chrono::DateTime::parse_from_rfc3339("2026-11-20T10:00:00Z").unwrap();
    (base + chrono::Duration::minutes(minute))
        .to_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Records a deployment of `service` started at `minute`; its uid.
async fn deployment(app: &Router, service: &str, seed: u8, minute: i64) -> String {
    let body = json!({
        "service": service, "namespace": "prod", "environment": "production",
        "version": format!("v1.{seed}.0"),
        "commit": {"sha": format!("{:040x}", u128::from(seed) + 0xabc0000)},
        "images": [{"repository": format!("ghcr.io/acme/{service}"), "tag": format!("v1.{seed}.0"),
                    "digest": format!("sha256:{}", format!("{seed:02x}").repeat(32))}],
        "status": "succeeded", "started_at": at(minute), "finished_at": at(minute + 1)
    });
    let (status, _, answer) = send(
        app,
        request("/v1/deployments", body.to_string(), Some(TOKEN)),
    )
    .await;
    assert!(status.is_success(), "{answer}");
    answer["uid"].as_str().unwrap().to_owned()
}

fn rollback(deployment: &str, minute: i64) -> Value {
    json!({
        "deployment": deployment,
        "reason": "canary failed: http-error-ratio",
        "by": "deploygraph canary analyze",
        "at": at(minute),
        "target": "deployment/web",
        "namespace": "prod",
    })
}

async fn a_rollback_is_recorded_once_and_rolls_the_deployment_back(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let service = unique("rolled");
    let previous = deployment(&app, &service, 1, 0).await;
    let uid = deployment(&app, &service, 2, 20).await;
    let body = rollback(&uid, 25);

    // Writes need the token; nothing is written without it.
    let (status, _, refused) = send(&app, request("/v1/rollbacks", body.to_string(), None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused}");
    let (_, listed) = get(&app, &format!("/v1/deployments/{uid}/canary")).await;
    assert_eq!(listed["rollbacks"], json!([]), "{listed}");

    // A dry run is recorded; the deployment keeps its status.
    let mut dry = body.clone();
    dry["dry_run"] = json!(true);
    dry["at"] = json!(at(24));
    let (status, dry_created) = post(&app, &dry).await;
    assert_eq!(status, StatusCode::CREATED, "{dry_created}");
    let (_, d) = get(&app, &format!("/v1/deployments/{uid}")).await;
    assert_eq!(d["status"], "succeeded", "{d}");

    let (status, headers, created) = send(
        &app,
        request("/v1/rollbacks", body.to_string(), Some(TOKEN)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        headers[header::LOCATION],
        format!("/v1/deployments/{uid}/canary")
    );
    assert!(
        created["uid"].as_str().unwrap().starts_with("rollback-"),
        "{created}"
    );
    assert_eq!(created["restored"], previous.as_str(), "{created}");
    assert_eq!(created["service"]["name"], service.as_str());
    assert_eq!(created["dry_run"], false);
    let (_, d) = get(&app, &format!("/v1/deployments/{uid}")).await;
    assert_eq!(d["status"], "rolled_back", "{d}");
    let (_, p) = get(&app, &format!("/v1/deployments/{previous}")).await;
    assert_eq!(p["status"], "succeeded", "{p}");

    // Idempotent by uid; other facts under the same uid: 409, nothing changed.
    let (status, again) = post(&app, &body).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again, created);
    let mut other = body.clone();
    other["reason"] = json!("another reason");
    let (status, conflict) = post(&app, &other).await;
    assert_eq!(status, StatusCode::CONFLICT, "{conflict}");
    assert_eq!(conflict["error"]["code"], "conflict");

    let (status, listed) = get(&app, &format!("/v1/deployments/{uid}/canary")).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(
        listed["rollbacks"],
        json!([created, dry_created]),
        "{listed}"
    );
}

async fn unknown_deployments_are_404_naming_the_field(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let ghost = format!("deployment-{:032x}", rand::random::<u128>());
    let (status, refused) = post(&app, &rollback(&ghost, 1)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{refused}");
    assert_eq!(refused["error"]["field"], "deployment");
    assert!(
        store
            .rollbacks(&[deploygraph_model::Uid::from_stored(ghost.clone())])
            .await
            .unwrap()
            .is_empty()
    );
    let uid = deployment(&app, &unique("restored"), 3, 0).await;
    let mut body = rollback(&uid, 2);
    body["restored"] = json!(ghost);
    let (status, refused) = post(&app, &body).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{refused}");
    assert_eq!(refused["error"]["field"], "restored");
    let other = deployment(&app, &unique("elsewhere"), 4, 0).await;
    body["restored"] = json!(other);
    let (status, refused) = post(&app, &body).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error"]["field"], "restored");
    let (_, listed) = get(&app, &format!("/v1/deployments/{uid}/canary")).await;
    assert_eq!(listed["rollbacks"], json!([]), "{listed}");
    let (_, d) = get(&app, &format!("/v1/deployments/{uid}")).await;
    assert_eq!(d["status"], "succeeded", "{d}");
}

async fn bad_rollbacks_are_refused_naming_the_field(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let uid = deployment(&app, &unique("refused"), 5, 0).await;
    let good = rollback(&uid, 3);
    let with = |key: &str, value: Value| {
        let mut body = good.clone();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = good.clone();
        body.as_object_mut().unwrap().remove(key);
        body
    };
    let cases = [
        (without("deployment"), "deployment"),
        (with("deployment", json!("change-event-1")), "deployment"),
        (without("reason"), "reason"),
        (with("reason", json!("")), "reason"),
        (with("by", json!("")), "by"),
        (with("at", json!("yesterday")), "at"),
        (with("target", json!("pod/web")), "target"),
        (with("target", json!("deployment/web:2")), "target"),
        (with("namespace", json!("Prod")), "namespace"),
        (with("dry_run", json!("yes")), "dry_run"),
        (with("restored", json!(uid.clone())), "restored"),
        (with("surprise", json!(1)), "surprise"),
    ];
    for (body, field) in cases {
        let (status, refused) = post(&app, &body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {refused}"
        );
        assert_eq!(refused["error"]["field"], field, "{refused}");
    }
    let (status, _, refused) = send(&app, request("/v1/rollbacks", "{".into(), Some(TOKEN))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let (_, listed) = get(&app, &format!("/v1/deployments/{uid}/canary")).await;
    assert_eq!(listed["rollbacks"], json!([]), "{listed}");
    let (_, d) = get(&app, &format!("/v1/deployments/{uid}")).await;
    assert_eq!(d["status"], "succeeded", "{d}");
}

async fn rollbacks_are_in_the_timeline_and_the_common_factors(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let service = unique("undone");
    deployment(&app, &service, 6, 0).await;
    let a = deployment(&app, &service, 7, 20).await;
    let b = deployment(&app, &service, 8, 40).await;
    for (uid, minute) in [(&a, 25), (&b, 45)] {
        let (status, created) = post(&app, &rollback(uid, minute)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
    }
    let mut dry = rollback(&b, 44);
    dry["dry_run"] = json!(true);
    let (status, created) = post(&app, &dry).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");

    let (status, t) = get(
        &app,
        &format!(
            "/v1/services/{service}/timeline?since={}&until={}",
            at(-10),
            at(60)
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{t}");
    let events: Vec<(&str, &str)> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["summary"].as_str().unwrap()))
        .collect();
    let rolled: Vec<&str> = events
        .iter()
        .filter(|(k, _)| *k == "rolled_back")
        .map(|(_, s)| *s)
        .collect();
    assert_eq!(rolled.len(), 3, "{t}");
    assert!(
        rolled[0].contains("rolled back (deployment/web in prod) by deploygraph canary analyze"),
        "{t}"
    );
    assert!(rolled[1].contains("dry run"), "{t}");

    let (status, f) = get(
        &app,
        &format!("/v1/services/{service}/common-factors?last=3"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{f}");
    assert_eq!(f["deployments"].as_array().unwrap().len(), 2, "{f}");
    let factor = f["factors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["kind"] == "rolled_back")
        .unwrap_or_else(|| panic!("no rolled_back factor: {f}"));
    assert_eq!(factor["value"], "deploygraph canary analyze", "{f}");
    assert_eq!(factor["count"], 2, "{f}");
}

deploygraph_store::both_stores!(
    rollbacks_are_in_the_timeline_and_the_common_factors,
    a_rollback_is_recorded_once_and_rolls_the_deployment_back,
    unknown_deployments_are_404_naming_the_field,
    bad_rollbacks_are_refused_naming_the_field,
);

/// The OpenAPI document declares the write with the bearer token and its responses.
#[test]
fn the_document_declares_the_rollback_endpoint() {
    let doc = serde_json::to_value(deploygraph_api::openapi_document()).unwrap();
    let post = &doc["paths"]["/v1/rollbacks"]["post"];
    assert!(post["security"].is_array(), "{post}");
    for status in ["200", "201", "401", "404", "409", "422"] {
        assert!(post["responses"][status].is_object(), "{status}: {post}");
    }
    let input = &doc["components"]["schemas"]["RollbackInput"];
    let required: Vec<&str> = input["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(
        required,
        ["deployment", "reason", "by", "at", "target"],
        "{input}"
    );
}
