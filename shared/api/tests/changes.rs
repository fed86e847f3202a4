//! Component tests of `POST /v1/changes` and `GET /v1/changes/{uid}`, and of changes as suspects:
//! the router driven in-process over both stores (SQLite, and the real Neo4j of
//! `scripts/services up neo4j`), each write's follow-ups done before its answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use deploygraph_store::GraphStore;
use serde_json::{Value, json};
use std::sync::Arc;
use support::{TOKEN, app, at, send, unique, webhook};

fn request(path: &str, body: String, content_type: &str, token: Option<&str>) -> Request<Body> {
    with_method("POST", path, body, content_type, token)
}

fn with_method(
    method: &str,
    path: &str,
    body: String,
    content_type: &str,
    token: Option<&str>,
) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::CONTENT_TYPE, content_type);
    if let Some(t) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    request.body(Body::from(body)).unwrap()
}

async fn post(app: &Router, path: &str, body: &Value) -> (StatusCode, Value) {
    let (status, _, body) = send(
        app,
        request(path, body.to_string(), "application/json", Some(TOKEN)),
    )
    .await;
    (status, body)
}

/// `PUT /v1/services/{service}/dependencies`: `service` depends on `depends_on`.
async fn depends(app: &Router, service: &str, depends_on: &str) {
    let body =
        json!({"namespace": "prod", "environment": "production", "depends_on": [depends_on]});
    let (status, _, answer) = send(
        app,
        with_method(
            "PUT",
            &format!("/v1/services/{service}/dependencies"),
            body.to_string(),
            "application/json",
            Some(TOKEN),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

async fn get(app: &Router, path: &str) -> (StatusCode, Value) {
    let (status, _, body) = send(app, Request::get(path).body(Body::empty()).unwrap()).await;
    (status, body)
}

fn change(services: &[&str], minute: i64) -> Value {
    let services: Vec<Value> = services
        .iter()
        .map(|s| json!({"name": s, "namespace": "prod", "environment": "production"}))
        .collect();
    json!({
        "kind": "feature_flag", "services": services, "actor": "alice@acme.io", "at": at(minute),
        "diff": [{"key": "checkout.new_flow", "before": "false", "after": "true"}],
        "link": "https://flags.acme.io/audit/42", "summary": "new checkout flow for 10%"
    })
}

fn deployment(service: &str, minute: i64, seed: u8) -> Value {
    json!({
        "service": service, "namespace": "prod", "environment": "production",
        "version": format!("v1.{seed}.0"),
        "commit": {"sha": format!("{:040x}", u128::from(seed) + 0xabc0000)},
        "images": [{"repository": format!("ghcr.io/acme/{service}"), "tag": format!("v1.{seed}.0"),
                    "digest": format!("sha256:{}", format!("{seed:02x}").repeat(32))}],
        "status": "succeeded", "started_at": at(minute), "finished_at": at(minute + 1)
    })
}

async fn suspects(app: &Router, fingerprint: &str) -> Value {
    let (status, view) = get(app, &format!("/v1/alerts/{fingerprint}/suspects")).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["attribution_pending"], false, "{view}");
    view
}

async fn a_change_is_recorded_once_and_read_back(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let service = unique("flagged");
    let body = change(&[&service], 5);
    // Writes need the token.
    let (status, _, refused) = send(
        &app,
        request("/v1/changes", body.to_string(), "application/json", None),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused}");
    assert_eq!(refused["error"]["code"], "unauthorized");

    let (status, headers, created) = send(
        &app,
        request(
            "/v1/changes",
            body.to_string(),
            "application/json",
            Some(TOKEN),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let uid = created["uid"].as_str().unwrap().to_owned();
    assert!(uid.starts_with("change-event-"), "{uid}");
    assert_eq!(headers[header::LOCATION], format!("/v1/changes/{uid}"));
    assert_eq!(created["kind"], "feature_flag");
    assert_eq!(created["actor"], "alice@acme.io");
    assert_eq!(created["at"], at(5));
    assert_eq!(created["source"], "api");
    assert_eq!(
        created["services"],
        json!([{"name": service, "namespace": "prod", "environment": "production"}])
    );
    assert_eq!(
        created["diff"],
        json!([{"key": "checkout.new_flow", "before": "false", "after": "true"}])
    );
    // A retried post is unchanged, with the same change.
    let (status, again) = post(&app, "/v1/changes", &body).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again, created);
    let (status, read) = get(&app, &format!("/v1/changes/{uid}")).await;
    assert_eq!(status, StatusCode::OK, "{read}");
    assert_eq!(read, created);
    for unknown in [
        "change-event-00000000000000000000000000000000".to_owned(),
        "x%20y".to_owned(),
        "a".repeat(65),
    ] {
        let (status, missing) = get(&app, &format!("/v1/changes/{unknown}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{unknown}: {missing}");
        assert_eq!(missing["error"]["code"], "not_found");
    }
    // An idempotency key reused for other facts conflicts, naming `id`.
    let mut keyed = change(&[&service], 6);
    keyed["id"] = json!(unique("flag-audit"));
    let (status, _) = post(&app, "/v1/changes", &keyed).await;
    assert_eq!(status, StatusCode::CREATED);
    keyed["summary"] = json!("another flow");
    let (status, conflict) = post(&app, "/v1/changes", &keyed).await;
    assert_eq!(status, StatusCode::CONFLICT, "{conflict}");
    assert_eq!(conflict["error"]["field"], "id");

    // A batch: one transaction, the outcome of each.
    let fresh = change(&[&service], 7);
    let (status, batch) = post(
        &app,
        "/v1/changes",
        &json!([body.clone(), fresh.clone(), fresh, keyed]),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{batch}");
    assert_eq!(
        (
            &batch["received"],
            &batch["created"],
            &batch["unchanged"],
            &batch["conflicts"]
        ),
        (&json!(4), &json!(1), &json!(2), &json!(1)),
        "{batch}"
    );
    let outcomes: Vec<&str> = batch["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["unchanged", "created", "unchanged", "conflict"]);
    assert_eq!(batch["changes"][0]["uid"], uid.as_str());
    assert!(batch["changes"][3]["conflict"].is_string(), "{batch}");
    assert!(batch["changes"][0].get("conflict").is_none(), "{batch}");
}

async fn bad_changes_are_refused_naming_the_field(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let service = unique("refused");
    let good = change(&[&service], 5);
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
        (with("kind", json!("flag")), "kind"),
        (without("kind"), "kind"),
        (without("services"), "services"),
        (with("services", json!([])), "services"),
        (
            with(
                "services",
                json!([{"name": "Payments", "environment": "production"}]),
            ),
            "services[0].name",
        ),
        (
            with(
                "services",
                json!([{"name": "payments", "environment": "production", "namespace": "Prod"}]),
            ),
            "services[0].namespace",
        ),
        (
            with("services", json!([{"name": "payments"}])),
            "services[0].environment",
        ),
        (without("actor"), "actor"),
        (with("actor", json!("")), "actor"),
        (without("at"), "at"),
        (with("at", json!("yesterday")), "at"),
        (with("at", json!("2999-01-01T00:00:00Z")), "at"),
        (with("diff", json!([{"before": "a"}])), "diff[0].key"),
        (
            with(
                "diff",
                json!([{"key": "a", "after": "1"}, {"key": "a", "after": "2"}]),
            ),
            "diff[1].key",
        ),
        (
            with("diff", json!([{"key": "a", "value": "1"}])),
            "diff[0].value",
        ),
        (with("link", json!("ftp://flags")), "link"),
        (with("link", json!("https://a b")), "link"),
        (with("summary", json!(42)), "summary"),
        (with("unknown", json!(1)), "unknown"),
        (json!([good.clone(), with("kind", json!("x"))]), "[1].kind"),
    ];
    for (body, field) in cases {
        let (status, refused) = post(&app, "/v1/changes", &body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {refused}"
        );
        assert_eq!(refused["error"]["code"], "invalid_field", "{refused}");
        assert_eq!(refused["error"]["field"], field, "{refused}");
    }
    let (status, refused) = post(&app, "/v1/changes", &json!([])).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let (status, _, refused) = send(
        &app,
        request("/v1/changes", "{".into(), "application/json", Some(TOKEN)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let (status, _, refused) = send(
        &app,
        request("/v1/changes", good.to_string(), "text/plain", Some(TOKEN)),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{refused}");
    // Nothing of a refused batch was written.
    let (_, timeline) = get(
        &app,
        &format!(
            "/v1/services/{service}/timeline?since={}&until={}",
            at(0),
            at(60)
        ),
    )
    .await;
    assert_eq!(timeline["events"], json!([]), "{timeline}");
}

async fn secrets_in_a_change_are_never_stored(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let service = unique("rotated");
    let mut body = change(&[&service], 5);
    body["kind"] = json!("config_map");
    body["diff"] = json!([
        {"key": "data.DB_PASSWORD", "before": "hunter2", "after": "hunter3"},
        {"key": "data.DATABASE_URL", "after": "postgres://app:s3cr3t@db/orders"}
    ]);
    body["link"] = json!("https://ci.acme.io/run/7?access_token=tok123");
    let (status, created) = post(&app, "/v1/changes", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (_, read) = get(
        &app,
        &format!("/v1/changes/{}", created["uid"].as_str().unwrap()),
    )
    .await;
    let text = read.to_string();
    for secret in ["hunter2", "hunter3", "s3cr3t", "tok123"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert!(text.contains("<redacted>"), "{text}");
    assert_eq!(read["diff"][0]["key"], "data.DATABASE_URL");
}

async fn a_change_before_an_alert_is_a_suspect(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let (service, db) = (unique("checkout"), unique("db"));
    depends(&app, &service, &db).await;
    // An older, quiet deployment of the service; a flag flip minutes before the alert.
    let (status, _) = post(&app, "/v1/deployments", &deployment(&service, -100, 1)).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, flip) = post(&app, "/v1/changes", &change(&[&service], -5)).await;
    assert_eq!(status, StatusCode::CREATED, "{flip}");
    let mut migration = change(&[&db], -20);
    migration["kind"] = json!("migration");
    migration["diff"] = json!([]);
    let (status, migration) = post(&app, "/v1/changes", &migration).await;
    assert_eq!(status, StatusCode::CREATED, "{migration}");
    let fp = unique("fp");
    let (status, out) = post(&app, "/v1/alerts/alertmanager", &webhook(&fp, &service, 0)).await;
    assert_eq!(status, StatusCode::OK, "{out}");

    // Both changes are suspects (their order is the fitted model's to decide).
    let view = suspects(&app, &fp).await;
    let ranked = view["suspects"].as_array().unwrap();
    assert!(
        ranked.iter().any(|s| s["uid"] == migration["uid"]),
        "{view}"
    );
    let top = ranked
        .iter()
        .find(|s| s["uid"] == flip["uid"])
        .unwrap_or_else(|| panic!("the flag flip is not a suspect: {view}"));
    assert_eq!(top["subject"], "change", "{view}");
    assert_eq!(top["uid"], flip["uid"], "{view}");
    assert_eq!(top["change"], flip, "{view}");
    assert!(top.get("deployment").is_none(), "{view}");
    let reasons: Vec<&str> = top["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        reasons.contains(&format!("changed {service}, the alerting service").as_str()),
        "{reasons:?}"
    );
    assert!(reasons.contains(&"the change was applied"), "{reasons:?}");
    // The old deployment keeps its shape.
    if let Some(d) = ranked.iter().find(|s| s["subject"] == "deployment") {
        assert_eq!(d["uid"], d["deployment"]["uid"], "{view}");
        assert!(d.get("change").is_none(), "{view}");
    }

    // The service timeline and the incident report show it.
    let (status, timeline) = get(
        &app,
        &format!(
            "/v1/services/{service}/timeline?since={}&until={}",
            at(-30),
            at(5)
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{timeline}");
    let events = timeline["events"].as_array().unwrap();
    let event = events
        .iter()
        .find(|e| e["kind"] == "change")
        .unwrap_or_else(|| panic!("{timeline}"));
    assert_eq!(event["uid"], flip["uid"]);
    assert!(
        event["summary"]
            .as_str()
            .unwrap()
            .contains("checkout.new_flow false -> true"),
        "{event}"
    );
    let (status, report) = get(
        &app,
        &format!("/v1/reports/incident?alert={fp}&format=json"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let listed: Vec<&Value> = report["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["uid"])
        .collect();
    assert_eq!(listed, [&flip["uid"], &migration["uid"]], "{report}");
    let (status, _, markdown) = send(
        &app,
        Request::get(format!("/v1/reports/incident?alert={fp}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let markdown = markdown.as_str().unwrap();
    assert!(markdown.contains(". feature_flag change of"), "{markdown}");
    assert!(
        markdown.contains("## Other changes in the window"),
        "{markdown}"
    );
    assert!(markdown.contains("AFFECTS"), "{markdown}");
}

async fn a_late_change_reattributes_an_earlier_alert(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let (service, db) = (unique("orders"), unique("db"));
    depends(&app, &service, &db).await;
    let fp = unique("fp");
    let (status, _) = post(&app, "/v1/alerts/alertmanager", &webhook(&fp, &service, 0)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(suspects(&app, &fp).await["suspects"], json!([]));
    // The Terraform apply on the dependency is reported after the alert it caused.
    let mut apply = change(&[&db], -10);
    apply["kind"] = json!("terraform");
    apply["diff"] = json!([{"key": "aws_db_instance.orders.instance_class",
                            "before": "db.r6g.large", "after": "db.t4g.medium"}]);
    let (status, apply) = post(&app, "/v1/changes", &apply).await;
    assert_eq!(status, StatusCode::CREATED, "{apply}");
    let view = suspects(&app, &fp).await;
    assert_eq!(view["suspects"][0]["uid"], apply["uid"], "{view}");
    assert_eq!(view["suspects"][0]["subject"], "change", "{view}");
    assert!(
        view["suspects"][0]["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r.as_str() == Some(&format!("1 hop: {service} → {db}"))),
        "{view}"
    );
    // Another change of the dependency, reported later still, joins the suspects.
    let (status, _) = post(&app, "/v1/changes", &change(&[&db], -10)).await;
    assert_eq!(status, StatusCode::CREATED);
    let view = suspects(&app, &fp).await;
    assert_eq!(view["suspects"].as_array().unwrap().len(), 2, "{view}");
}

deploygraph_store::both_stores!(
    a_change_is_recorded_once_and_read_back,
    bad_changes_are_refused_naming_the_field,
    secrets_in_a_change_are_never_stored,
    a_change_before_an_alert_is_a_suspect,
    a_late_change_reattributes_an_earlier_alert,
);

/// The OpenAPI document declares both operations, the body as one change or a batch.
#[test]
fn the_document_declares_the_changes_endpoints() {
    let doc = serde_json::to_value(deploygraph_api::openapi_document()).unwrap();
    let post = &doc["paths"]["/v1/changes"]["post"];
    assert!(post["security"].is_array(), "{post}");
    for status in ["200", "201", "401", "409", "422", "503"] {
        assert!(post["responses"][status].is_object(), "{status}: {post}");
    }
    let request = &doc["components"]["schemas"]["ChangesRequest"];
    assert_eq!(
        request["oneOf"].as_array().map(Vec::len),
        Some(2),
        "{request}"
    );
    let input = &doc["components"]["schemas"]["ChangeEventInput"];
    let required: Vec<&str> = input["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(required, ["kind", "services", "actor", "at"], "{input}");
    assert!(
        doc["paths"]["/v1/changes/{uid}"]["get"]["responses"]["404"].is_object(),
        "{doc}"
    );
}
