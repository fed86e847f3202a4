//! Component tests of `POST /v1/canary/analyses` and `GET /v1/deployments/{uid}/canary`: the
//! router driven in-process over both stores (SQLite, and the real Neo4j of
//! `scripts/services up neo4j`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use deploygraph_store::GraphStore;
use serde_json::{Value, json};
use std::sync::Arc;
use support::{TOKEN, app, at, send, unique, webhook};

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
    let (status, _, body) = send(
        app,
        request("/v1/canary/analyses", body.to_string(), Some(TOKEN)),
    )
    .await;
    (status, body)
}

async fn get(app: &Router, path: &str) -> (StatusCode, Value) {
    let (status, _, body) = send(app, Request::get(path).body(Body::empty()).unwrap()).await;
    (status, body)
}

/// Records a deployment of `service`; its uid.
async fn deployment(app: &Router, service: &str, seed: u8) -> String {
    let body = json!({
        "service": service, "namespace": "prod", "environment": "production",
        "version": format!("v1.{seed}.0"),
        "commit": {"sha": format!("{:040x}", u128::from(seed) + 0xabc0000)},
        "images": [{"repository": format!("ghcr.io/acme/{service}"), "tag": format!("v1.{seed}.0"),
                    "digest": format!("sha256:{}", format!("{seed:02x}").repeat(32))}],
        "status": "in_progress", "started_at": at(0)
    });
    let (status, _, answer) = send(
        app,
        request("/v1/deployments", body.to_string(), Some(TOKEN)),
    )
    .await;
    assert!(status.is_success(), "{answer}");
    answer["uid"].as_str().unwrap().to_owned()
}

fn analysis(deployment: &str, start: i64, verdict: &str, analyses: u32) -> Value {
    json!({
        "deployment": deployment,
        "template": "http-error-ratio",
        "verdict": verdict,
        "baseline_kind": "side_by_side",
        "started_at": at(start),
        "decided_at": at(start + i64::from(analyses)),
        "analyses": analyses,
        "rule": format!("http-error-ratio: {verdict}"),
        "metrics": [{
            "name": "http-error-ratio",
            "kind": "ratio",
            "outcome": verdict,
            "critical": true,
            "rule": "the canary's error ratio (5.00%) is above the baseline's (0.10%) by more than 1 point",
            "evidence": {"metric": "http-error-ratio", "canary": {"samples": 2000, "events": 100},
                         "baseline": {"samples": 2000, "events": 2}, "p_value": 1.5e-12}
        }]
    })
}

async fn an_analysis_is_recorded_replaced_and_read_back(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let service = unique("canaried");
    let uid = deployment(&app, &service, 1).await;
    let body = analysis(&uid, 1, "inconclusive", 1);

    // Writes need the token.
    let (status, _, refused) =
        send(&app, request("/v1/canary/analyses", body.to_string(), None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused}");
    assert_eq!(refused["error"]["code"], "unauthorized");
    let (status, listed) = get(&app, &format!("/v1/deployments/{uid}/canary")).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(
        listed["analyses"],
        json!([]),
        "nothing written without the token"
    );

    let (status, headers, created) = send(
        &app,
        request("/v1/canary/analyses", body.to_string(), Some(TOKEN)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        headers[header::LOCATION],
        format!("/v1/deployments/{uid}/canary")
    );
    let analysis_uid = created["uid"].as_str().unwrap().to_owned();
    assert!(analysis_uid.starts_with("canary-analysis-"), "{created}");
    assert_eq!(created["service"]["name"], service.as_str());
    assert_eq!(created["service"]["environment"], "production");
    assert_eq!(created["verdict"], "inconclusive");

    // The same analysis decided later: replaced, same uid.
    let (status, replaced) = post(&app, &analysis(&uid, 1, "fail", 4)).await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["uid"], analysis_uid.as_str());
    // A second analysis of the deployment, started later.
    let (status, second) = post(&app, &analysis(&uid, 30, "pass", 10)).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");

    let (status, listed) = get(&app, &format!("/v1/deployments/{uid}/canary")).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["deployment"], uid.as_str());
    let analyses = listed["analyses"].as_array().unwrap();
    assert_eq!(analyses.len(), 2, "{listed}");
    assert_eq!(analyses[0]["uid"], second["uid"], "newest first");
    assert_eq!(analyses[1]["uid"], analysis_uid.as_str());
    assert_eq!(analyses[1]["verdict"], "fail");
    assert_eq!(analyses[1]["analyses"], 4);
    assert_eq!(analyses[1]["decided_at"], at(5));
    assert_eq!(analyses[1]["metrics"][0]["outcome"], "fail");
    assert_eq!(
        analyses[1]["metrics"][0]["evidence"]["canary"]["events"],
        100
    );
    let (status, _, metrics) =
        send(&app, Request::get("/metrics").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let text = metrics.as_str().unwrap_or_default();
    for line in [
        "deploygraph_canary_analyses_recorded_total{verdict=\"inconclusive\",outcome=\"created\"} 1",
        "deploygraph_canary_analyses_recorded_total{verdict=\"fail\",outcome=\"updated\"} 1",
    ] {
        assert!(text.contains(line), "{line} in {text}");
    }
}

/// The alert's suspects: (uid, confidence_score, reasons) most likely first.
async fn suspects(app: &Router, fingerprint: &str) -> Vec<(String, f64, Vec<String>)> {
    let (status, view) = get(app, &format!("/v1/alerts/{fingerprint}/suspects")).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["attribution_pending"], false, "{view}");
    view["suspects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["uid"].as_str().unwrap().to_owned(),
                s["confidence_score"].as_f64().unwrap(),
                s["reasons"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect()
}

/// A canary that fails after its deployment's alert fired (the common case: the alert and the
/// analysis see the same regression) is evidence for the alert's attribution: recording it
/// re-attributes the alert, the deployment's probability rises and a reason names the failing
/// metric; a canary that passes lowers it.
async fn a_canary_verdict_recorded_after_the_alert_re_attributes_it(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let service = unique("canaryblame");
    let uid = deployment(&app, &service, 7).await;
    let fp = unique("fp");
    let (status, _, answer) = send(
        &app,
        request(
            "/v1/alerts/alertmanager",
            webhook(&fp, &service, 12).to_string(),
            Some(TOKEN),
        ),
    )
    .await;
    assert!(status.is_success(), "{answer}");
    let before = suspects(&app, &fp).await;
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(before[0].0, uid);
    assert!(
        !before[0].2.iter().any(|r| r.contains("canary analysis")),
        "{before:?}"
    );

    let (status, answer) = post(&app, &analysis(&uid, 1, "fail", 14)).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let failed = suspects(&app, &fp).await;
    assert_eq!(failed[0].0, uid);
    assert!(failed[0].1 > before[0].1, "{failed:?} vs {before:?}");
    assert!(
        failed[0].2.iter().any(|r| r
            == "its canary analysis (http-error-ratio) failed against its side-by-side baseline on http-error-ratio: the canary's error ratio (5.00%) is above the baseline's (0.10%) by more than 1 point"),
        "{failed:?}"
    );

    // A later analysis of the same deployment passed: the newest verdict is the evidence.
    let mut passed = analysis(&uid, 20, "pass", 10);
    passed["metrics"][0]["rule"] = json!("within the allowed 1.00 points, p 0.4");
    let (status, answer) = post(&app, &passed).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let cleared = suspects(&app, &fp).await;
    assert!(cleared[0].1 < before[0].1, "{cleared:?} vs {before:?}");
    assert!(
        cleared[0]
            .2
            .iter()
            .any(|r| r.contains("passed against its side-by-side baseline on 1 metric(s)")),
        "{cleared:?}"
    );
}

async fn unknown_deployments_are_404_and_nothing_is_written(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let ghost = format!("deployment-{:032x}", rand::random::<u128>());
    let (status, refused) = post(&app, &analysis(&ghost, 1, "fail", 2)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{refused}");
    assert_eq!(refused["error"]["code"], "not_found");
    assert_eq!(refused["error"]["field"], "deployment");
    let (status, missing) = get(&app, &format!("/v1/deployments/{ghost}/canary")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    assert!(
        store
            .canary_analyses(&[deploygraph_model::Uid::from_stored(ghost.clone())])
            .await
            .unwrap()
            .is_empty()
    );
    let (status, _) = get(&app, "/v1/deployments/not%20a%20uid/canary").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn bad_analyses_are_refused_naming_the_field(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let uid = deployment(&app, &unique("refused"), 2).await;
    let good = analysis(&uid, 1, "fail", 2);
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
    let metric = |key: &str, value: Value| {
        let mut body = good.clone();
        body["metrics"][0][key] = value;
        body
    };
    let cases = [
        (without("deployment"), "deployment"),
        (with("deployment", json!("change-event-1")), "deployment"),
        (with("verdict", json!("failed")), "verdict"),
        (with("baseline_kind", json!("canary")), "baseline_kind"),
        (with("template", json!("")), "template"),
        (with("started_at", json!("yesterday")), "started_at"),
        (with("decided_at", json!(at(0))), "decided_at"),
        (with("analyses", json!(0)), "analyses"),
        (with("analyses", json!(-1)), "analyses"),
        (with("surprise", json!(1)), "surprise"),
        (metric("kind", json!("histogram")), "metrics[0].kind"),
        (metric("name", json!("")), "metrics[0].name"),
        (metric("evidence", json!("text")), "metrics[0].evidence"),
        (
            metric("evidence", json!({"big": "x".repeat(20_000)})),
            "metrics[0].evidence",
        ),
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
    // Not JSON: 400.
    let (status, _, refused) = send(
        &app,
        request("/v1/canary/analyses", "{".into(), Some(TOKEN)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    // Nothing of the refused bodies was written.
    let (_, listed) = get(&app, &format!("/v1/deployments/{uid}/canary")).await;
    assert_eq!(listed["analyses"], json!([]), "{listed}");
}

deploygraph_store::both_stores!(
    an_analysis_is_recorded_replaced_and_read_back,
    unknown_deployments_are_404_and_nothing_is_written,
    bad_analyses_are_refused_naming_the_field,
    a_canary_verdict_recorded_after_the_alert_re_attributes_it,
);

/// The OpenAPI document declares both operations, the write with the bearer token.
#[test]
fn the_document_declares_the_canary_endpoints() {
    let doc = serde_json::to_value(deploygraph_api::openapi_document()).unwrap();
    let post = &doc["paths"]["/v1/canary/analyses"]["post"];
    assert!(post["security"].is_array(), "{post}");
    for status in ["200", "201", "401", "404", "422"] {
        assert!(post["responses"][status].is_object(), "{status}: {post}");
    }
    let input = &doc["components"]["schemas"]["CanaryAnalysisInput"];
    let required: Vec<&str> = input["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(
        required,
        [
            "deployment",
            "template",
            "verdict",
            "baseline_kind",
            "started_at",
            "decided_at",
            "analyses"
        ],
        "{input}"
    );
    let get = &doc["paths"]["/v1/deployments/{uid}/canary"]["get"];
    assert!(get["responses"]["404"].is_object(), "{get}");
}
