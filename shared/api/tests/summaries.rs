//! Component tests of `POST /v1/deployments/{uid}/summaries` and
//! `GET /v1/services/{name}/summaries`: the router driven in-process over both stores (SQLite,
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

async fn post(app: &Router, deployment: &str, body: &Value) -> (StatusCode, Value) {
    let (status, _, body) = send(
        app,
        request(
            &format!("/v1/deployments/{deployment}/summaries"),
            body.to_string(),
            Some(TOKEN),
        ),
    )
    .await;
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

/// Records a deployment of `service` started at minute `start`; its uid.
async fn deployment(app: &Router, service: &str, seed: u8, start: i64, status: &str) -> String {
    let body = json!({
        "service": service, "namespace": "prod", "environment": "production",
        "version": format!("v1.{seed}.0"),
        "commit": {"sha": format!("{:040x}", u128::from(seed) + 0xabc0000)},
        "images": [{"repository": format!("ghcr.io/acme/{service}"), "tag": format!("v1.{seed}.0"),
                    "digest": format!("sha256:{}", format!("{seed:02x}").repeat(32))}],
        "status": status, "started_at": at(start)
    });
    let (status, _, answer) = send(
        app,
        request("/v1/deployments", body.to_string(), Some(TOKEN)),
    )
    .await;
    assert!(status.is_success(), "{answer}");
    answer["uid"].as_str().unwrap().to_owned()
}

fn summary(errors: u64, settled: i64) -> Value {
    json!({
        "template": "errors-and-latency",
        "window": "10m",
        "settled_at": at(settled),
        "metrics": {
            "error-ratio": {"kind": "ratio", "data": {"numerator": errors, "denominator": 10000}},
            "latency-p99": {"kind": "distribution", "data": {"histogram": {
                "buckets": [{"le": 0.1, "count": 9000}, {"le": 0.5, "count": 9900}],
                "count": 10000}}},
            "gauge": {"kind": "distribution", "data": {"samples":
                (0..2000).map(|i| f64::from(i) / 1000.0).collect::<Vec<_>>()}}
        }
    })
}

fn history(service: &str, query: &str) -> String {
    format!(
        "/v1/services/{service}/summaries?environment=production&template=errors-and-latency{query}"
    )
}

async fn summaries_are_recorded_replaced_and_read_as_a_history(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let service = unique("summarized");
    let mut uids = Vec::new();
    for (i, status) in ["succeeded", "succeeded", "failed", "succeeded"]
        .into_iter()
        .enumerate()
    {
        let minute = i64::try_from(i).unwrap() * 60;
        uids.push(deployment(&app, &service, u8::try_from(i).unwrap(), minute, status).await);
    }

    // Writes need the token; nothing is written without it.
    let (status, _, refused) = send(
        &app,
        request(
            &format!("/v1/deployments/{}/summaries", uids[0]),
            summary(3, 30).to_string(),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused}");
    let (status, empty) = get(&app, &history(&service, "")).await;
    assert_eq!(status, StatusCode::OK, "{empty}");
    assert_eq!(empty["items"], json!([]));

    let (status, created) = post(&app, &uids[0], &summary(3, 30)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert!(
        created["uid"]
            .as_str()
            .unwrap()
            .starts_with("release-summary-")
    );
    assert_eq!(created["deployment"], uids[0].as_str());
    assert_eq!(created["service"]["name"], service.as_str());
    assert_eq!(created["version"], "v1.0.0");
    assert_eq!(created["deployed_at"], at(0));
    assert_eq!(created["window"], "10m");
    // Raw samples are kept bounded: at most 512 weighted points standing for all of them.
    let weighted = created["metrics"]["gauge"]["data"]["weighted"]
        .as_array()
        .unwrap();
    assert!(weighted.len() <= 512, "{}", weighted.len());
    let total: u64 = weighted.iter().map(|p| p["count"].as_u64().unwrap()).sum();
    assert_eq!(total, 2000);
    assert_eq!(
        created["metrics"]["latency-p99"]["data"]["histogram"]["count"],
        10000
    );

    // Whole numbers written as `5.0`, and `data` before `kind`, read as the document says.
    let mut written = summary(4, 40);
    written["metrics"]["error-ratio"] = serde_json::from_str(
        r#"{"data": {"numerator": 4.0, "denominator": 10000.0}, "kind": "ratio"}"#,
    )
    .unwrap();
    let (status, same) = post(&app, &uids[0], &written).await;
    assert_eq!(status, StatusCode::OK, "{same}");
    assert_eq!(same["metrics"]["error-ratio"]["data"]["numerator"], 4);

    // The same deployment and template again: replaced, same uid.
    let (status, replaced) = post(&app, &uids[0], &summary(4, 40)).await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["uid"], created["uid"]);
    for (uid, errors) in uids[1..].iter().zip([5, 50, 6]) {
        let (status, body) = post(&app, uid, &summary(errors, 300)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    // Before the last deployment (minute 180): most recent first, the failed one left out.
    let (status, read) = get(&app, &history(&service, &format!("&before={}", at(180)))).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    let deployments: Vec<&str> = read["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["deployment"].as_str().unwrap())
        .collect();
    assert_eq!(deployments, [uids[1].as_str(), uids[0].as_str()], "{read}");
    assert_eq!(
        read["items"][1]["metrics"]["error-ratio"]["data"]["numerator"],
        4
    );
    assert_eq!(read["before"], at(180));
    // Without `before`: up to now; `limit` bounds it.
    let (_, all) = get(&app, &history(&service, "&limit=1")).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 1, "{all}");
    assert_eq!(all["items"][0]["deployment"], uids[3].as_str());
    // Another template, another environment: nothing.
    let (_, other) = get(
        &app,
        &format!(
            "/v1/services/{service}/summaries?environment=staging&template=errors-and-latency"
        ),
    )
    .await;
    assert_eq!(other["items"], json!([]));
}

async fn unknown_deployments_are_404_and_nothing_is_written(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let ghost = format!("deployment-{:032x}", rand::random::<u128>());
    let (status, refused) = post(&app, &ghost, &summary(1, 10)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{refused}");
    assert_eq!(refused["error"]["code"], "not_found");
    let (status, refused) = post(&app, "not-a-uid", &summary(1, 10)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{refused}");
}

async fn bad_summaries_are_refused_naming_the_field(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let service = unique("refused");
    let uid = deployment(&app, &service, 7, 0, "succeeded").await;
    let good = summary(1, 10);
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
    let metric = |value: Value| {
        let mut body = good.clone();
        body["metrics"]["error-ratio"] = value;
        body
    };
    let cases = [
        (without("template"), "template"),
        (with("template", json!("")), "template"),
        (with("window", json!("five minutes")), "window"),
        (with("window", json!("0s")), "window"),
        (with("settled_at", json!("yesterday")), "settled_at"),
        (with("metrics", json!({})), "metrics"),
        (with("surprise", json!(1)), "surprise"),
        (
            metric(json!({"kind": "ratio", "data": {"numerator": 11, "denominator": 10}})),
            "metrics.error-ratio",
        ),
        (
            metric(json!({"kind": "ratio", "data": {"numerator": -1, "denominator": 10}})),
            "metrics.error-ratio",
        ),
        (
            metric(json!({"kind": "distribution", "data": {"histogram": {
                "buckets": [{"le": 0.5, "count": 1}, {"le": 0.1, "count": 2}], "count": 3}}})),
            "metrics.error-ratio",
        ),
        (
            metric(json!({"kind": "ratio", "data": {"numerator": 1, "denominator": 10, "x": 1}})),
            "metrics.error-ratio",
        ),
        (metric(json!({"kind": "percentile"})), "metrics.error-ratio"),
        (
            metric(json!({"kind": "ratio", "data": [1, 10]})),
            "metrics.error-ratio.data",
        ),
        (
            metric(json!({"kind": "ratio", "data": {"numerator": 1.5, "denominator": 10}})),
            "metrics.error-ratio.data.numerator",
        ),
        (
            metric(json!({"kind": "distribution", "data": {"samples": [1.0], "weighted": []}})),
            "metrics.error-ratio.data",
        ),
    ];
    for (body, field) in cases {
        let (status, refused) = post(&app, &uid, &body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {refused}"
        );
        let named = refused["error"]["field"].as_str().unwrap_or_default();
        assert!(named.starts_with(field), "{field}: {refused}");
    }
    let (status, _, refused) = send(
        &app,
        request(
            &format!("/v1/deployments/{uid}/summaries"),
            "{".into(),
            Some(TOKEN),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    // Nothing of the refused bodies was written.
    let (_, read) = get(&app, &history(&service, "")).await;
    assert_eq!(read["items"], json!([]), "{read}");

    // The history's parameters.
    for (path, field) in [
        (format!("/v1/services/{service}/summaries?template=t"), ""),
        (
            format!("/v1/services/{service}/summaries?environment=production&template="),
            "template",
        ),
        (history(&service, "&limit=0"), "limit"),
        (history(&service, "&limit=51"), "limit"),
        (history(&service, "&before=soon"), "before"),
        (history(&service, "&surprise=1"), "surprise"),
        (
            "/v1/services/Not%20A%20Service/summaries?environment=production&template=t".to_owned(),
            "name",
        ),
    ] {
        let (status, refused) = get(&app, &path).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {refused}"
        );
        if !field.is_empty() {
            assert_eq!(refused["error"]["field"], field, "{path}: {refused}");
        }
    }
}

deploygraph_store::both_stores!(
    summaries_are_recorded_replaced_and_read_as_a_history,
    unknown_deployments_are_404_and_nothing_is_written,
    bad_summaries_are_refused_naming_the_field,
);

/// The OpenAPI document declares both operations, the write with the bearer token, and the
/// body's metrics as the judge's own types.
#[test]
fn the_document_declares_the_summary_endpoints() {
    let doc = serde_json::to_value(deploygraph_api::openapi_document()).unwrap();
    let post = &doc["paths"]["/v1/deployments/{uid}/summaries"]["post"];
    assert!(post["security"].is_array(), "{post}");
    for status in [
        "200", "201", "400", "401", "404", "413", "415", "422", "503",
    ] {
        assert!(post["responses"][status].is_object(), "{status}: {post}");
    }
    let get = &doc["paths"]["/v1/services/{name}/summaries"]["get"];
    for status in ["200", "422", "503"] {
        assert!(get["responses"][status].is_object(), "{status}: {get}");
    }
    let schemas = &doc["components"]["schemas"];
    let input = &schemas["ReleaseSummaryInput"];
    assert_eq!(input["additionalProperties"], false, "{input}");
    let metrics = &schemas["SummaryMetrics"];
    assert_eq!(metrics["maxProperties"], 64, "{metrics}");
    assert_eq!(metrics["propertyNames"]["maxLength"], 256, "{metrics}");
    for name in [
        "MetricData",
        "Counts",
        "Distribution",
        "Histogram",
        "Bucket",
        "WeightedValue",
    ] {
        assert!(schemas[name].is_object(), "{name}: {schemas}");
    }
    assert_eq!(schemas["Counts"]["additionalProperties"], false);
    for name in ["MetricData", "Distribution"] {
        for variant in schemas[name]["oneOf"].as_array().unwrap() {
            assert_eq!(variant["additionalProperties"], false, "{name}: {variant}");
        }
    }
    assert_eq!(
        schemas["Histogram"]["properties"]["buckets"]["maxItems"],
        512
    );
}
