//! Component tests of reviewers' verdicts, `POST /v1/alerts/{fingerprint}/suspects/{uid}/verdict`:
//! the router driven in-process over both stores (SQLite, and the real Neo4j of
//! `scripts/services up neo4j`), each write's follow-ups done before its answer. Refusals write
//! nothing; a verdict is replaced, kept across recomputes, shown in the suspects, the timeline
//! and the incident report, and counted by the service history and DORA.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use deploygraph_model::{Environment, ServiceName, ServiceRef, SubjectKind, Trigger, Uid};
use deploygraph_store::GraphStore;
use serde_json::{Value, json};
use std::sync::Arc;
use support::{TOKEN, app, at, send, unique, webhook};

fn request(path: &str, body: String, content_type: &str, token: Option<&str>) -> Request<Body> {
    let mut request = Request::post(path).header(header::CONTENT_TYPE, content_type);
    if let Some(t) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    request.body(Body::from(body)).unwrap()
}

async fn post(app: &Router, path: &str, body: &Value) -> (StatusCode, HeaderMap, Value) {
    send(
        app,
        request(path, body.to_string(), "application/json", Some(TOKEN)),
    )
    .await
}

async fn get(app: &Router, path: &str) -> (StatusCode, Value) {
    let (status, _, body) = send(app, Request::get(path).body(Body::empty()).unwrap()).await;
    (status, body)
}

fn deployment(service: &str, minute: i64, seed: u8) -> Value {
    json!({
        "service": service, "namespace": "prod", "environment": "production",
        "version": format!("v1.{seed}.0"),
        "commit": {"sha": format!("{:040x}", u128::from(seed) + 0xabc0000)},
        "images": [{"repository": format!("ghcr.io/acme/{service}"), "tag": format!("v1.{seed}.0"),
                    "digest": format!("sha256:{}", format!("{seed:02x}").repeat(32))}],
        "changes": [{"path": "values.redis.pool.size", "kind": "value",
                     "before": format!("{}", 50 + u32::from(seed)), "after": "10"}],
        "status": "succeeded", "started_at": at(minute), "finished_at": at(minute + 1)
    })
}

fn flag_flip(service: &str, minute: i64) -> Value {
    json!({
        "kind": "feature_flag", "actor": "alice@acme.io", "at": at(minute),
        "services": [{"name": service, "namespace": "prod", "environment": "production"}],
        "diff": [{"key": "checkout.new_flow", "before": "false", "after": "true"}]
    })
}

fn verdict_path(fingerprint: &str, uid: &Value) -> String {
    format!(
        "/v1/alerts/{fingerprint}/suspects/{}/verdict",
        uid.as_str().unwrap()
    )
}

async fn suspects(app: &Router, fingerprint: &str) -> Value {
    let (status, view) = get(app, &format!("/v1/alerts/{fingerprint}/suspects")).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    view
}

fn suspect<'a>(view: &'a Value, uid: &Value) -> &'a Value {
    view["suspects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| &s["uid"] == uid)
        .unwrap_or_else(|| panic!("{uid} is not listed: {view}"))
}

fn service_ref(name: &str) -> ServiceRef {
    ServiceRef {
        cluster: Default::default(),
        name: ServiceName::parse(name).unwrap(),
        namespace: Some("prod".into()),
        environment: Environment::parse("production").unwrap(),
    }
}

/// The first occurrence of the alert with `fingerprint`, as stored.
async fn alert_uid(store: &Arc<dyn GraphStore>, fingerprint: &str) -> Uid {
    deploygraph_analysis::engine::find_alert(store.as_ref(), fingerprint, None)
        .await
        .unwrap()
        .unwrap()
        .uid
}

async fn verdicts_are_refused_replaced_and_kept(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let service = unique("pay");
    let (status, _, old) = post(&app, "/v1/deployments", &deployment(&service, -600, 1)).await;
    assert_eq!(status, StatusCode::CREATED, "{old}");
    let (status, _, recent) = post(&app, "/v1/deployments", &deployment(&service, -10, 2)).await;
    assert_eq!(status, StatusCode::CREATED, "{recent}");
    let (status, _, flip) = post(&app, "/v1/changes", &flag_flip(&service, -5)).await;
    assert_eq!(status, StatusCode::CREATED, "{flip}");
    let fp = unique("fp");
    let (status, _, _) = post(&app, "/v1/alerts/alertmanager", &webhook(&fp, &service, 0)).await;
    assert_eq!(status, StatusCode::OK);
    let alert = alert_uid(&store, &fp).await;
    let confirm = json!({"verdict": "confirmed", "by": "alice", "note": "pool size cut to 10"});
    let nothing_written = || async {
        assert_eq!(
            store.verdicts(std::slice::from_ref(&alert)).await.unwrap(),
            vec![],
            "a refused verdict wrote something"
        );
    };

    // Refusals write nothing: no token, an unknown alert, an unknown subject, a bad body.
    let (status, _, refused) = send(
        &app,
        request(
            &verdict_path(&fp, &recent["uid"]),
            confirm.to_string(),
            "application/json",
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused}");
    assert_eq!(refused["error"]["code"], "unauthorized");
    let (status, _, missing) = post(
        &app,
        &verdict_path("no-such-fingerprint", &recent["uid"]),
        &confirm,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    assert_eq!(missing["error"]["code"], "not_found");
    assert!(
        missing["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no-such-fingerprint"),
        "{missing}"
    );
    for unknown in [
        json!("deployment-00000000000000000000000000000000"),
        json!("change-event-00000000000000000000000000000000"),
        json!("x%20y"),
    ] {
        let (status, _, missing) = post(&app, &verdict_path(&fp, &unknown), &confirm).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{unknown}: {missing}");
        assert_eq!(missing["error"]["code"], "not_found");
        assert!(
            missing["error"]["message"]
                .as_str()
                .unwrap()
                .contains("no deployment or change"),
            "{missing}"
        );
    }
    for (body, field) in [
        (json!({"verdict": "maybe", "by": "alice"}), "verdict"),
        (json!({"by": "alice"}), "verdict"),
        (json!({"verdict": null, "by": "alice"}), "verdict"),
        (json!({"verdict": "confirmed"}), "by"),
        (json!({"verdict": "confirmed", "by": ""}), "by"),
        (json!({"verdict": "rejected", "by": "a".repeat(257)}), "by"),
        (
            json!({"verdict": "rejected", "by": "bob", "note": 42}),
            "note",
        ),
        (
            json!({"verdict": "rejected", "by": "bob", "note": "n".repeat(4097)}),
            "note",
        ),
        (
            json!({"verdict": "rejected", "by": "bob", "at": at(0)}),
            "at",
        ),
    ] {
        let (status, _, refused) = post(&app, &verdict_path(&fp, &recent["uid"]), &body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {refused}"
        );
        assert_eq!(refused["error"]["code"], "invalid_field", "{refused}");
        assert_eq!(refused["error"]["field"], field, "{refused}");
    }
    let (status, _, refused) = send(
        &app,
        request(
            &verdict_path(&fp, &recent["uid"]),
            "{".into(),
            "application/json",
            Some(TOKEN),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    let (status, _, refused) = send(
        &app,
        request(
            &verdict_path(&fp, &recent["uid"]),
            confirm.to_string(),
            "text/plain",
            Some(TOKEN),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{refused}");
    nothing_written().await;

    // Confirmed: 201 with the stored verdict; the same again: 200, the same answer.
    let (status, headers, created) = post(&app, &verdict_path(&fp, &recent["uid"]), &confirm).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["alert_uid"], alert.as_str());
    assert_eq!(created["subject"], "deployment");
    assert_eq!(created["subject_uid"], recent["uid"]);
    assert_eq!(created["verdict"], "confirmed");
    assert_eq!(created["by"], "alice");
    assert_eq!(created["note"], "pool size cut to 10");
    let location = headers[header::LOCATION].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("/v1/alerts/{fp}/suspects?starts_at=")),
        "{location}"
    );
    let (status, _, again) = post(&app, &verdict_path(&fp, &recent["uid"]), &confirm).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again, created);
    let (status, shown) = get(&app, &location).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(
        suspect(&shown, &recent["uid"])["verdict"],
        json!({"verdict": "confirmed", "by": "alice", "at": created["at"],
               "note": "pool size cut to 10"})
    );

    // Another reviewer rejects it: the rejection replaces the confirmation.
    let (status, _, replaced) = post(
        &app,
        &verdict_path(&fp, &recent["uid"]),
        &json!({"verdict": "rejected", "by": "bob"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!(replaced["verdict"], "rejected");
    assert!(replaced.get("note").is_none(), "{replaced}");
    let stored = store.verdicts(std::slice::from_ref(&alert)).await.unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].verdict, deploygraph_model::VerdictKind::Rejected);

    // A change is judged like a deployment; a deployment outside the window may be confirmed,
    // and is listed, added by review.
    let (status, _, on_flip) = post(&app, &verdict_path(&fp, &flip["uid"]), &confirm).await;
    assert_eq!(status, StatusCode::CREATED, "{on_flip}");
    assert_eq!(on_flip["subject"], "change");
    let (status, _, on_old) = post(&app, &verdict_path(&fp, &old["uid"]), &confirm).await;
    assert_eq!(status, StatusCode::CREATED, "{on_old}");
    let view = suspects(&app, &fp).await;
    let added = suspect(&view, &old["uid"]);
    assert_eq!(added["added_by_review"], true, "{view}");
    assert_eq!(added["confidence_score"], 0.0, "{view}");
    assert_eq!(added["verdict"]["verdict"], "confirmed", "{view}");
    assert_eq!(added["deployment"]["uid"], old["uid"], "{view}");
    assert_eq!(
        suspect(&view, &recent["uid"])["verdict"]["verdict"],
        "rejected"
    );
    assert!(
        suspect(&view, &recent["uid"])
            .get("added_by_review")
            .is_none(),
        "{view}"
    );
    assert_eq!(
        suspect(&view, &flip["uid"])["verdict"]["by"],
        "alice",
        "{view}"
    );

    // Recomputing the attribution keeps every verdict.
    let (status, _, recomputed) =
        post(&app, &format!("/v1/alerts/{fp}/attribution"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{recomputed}");
    for (uid, kind) in [
        (&recent["uid"], "rejected"),
        (&flip["uid"], "confirmed"),
        (&old["uid"], "confirmed"),
    ] {
        assert_eq!(
            suspect(&recomputed, uid)["verdict"]["verdict"],
            kind,
            "{recomputed}"
        );
    }
    assert_eq!(
        store
            .verdicts(std::slice::from_ref(&alert))
            .await
            .unwrap()
            .len(),
        3
    );

    // The timeline and the incident report show them.
    let (status, timeline) = get(
        &app,
        &format!("/v1/services/{service}/timeline?since={}", at(-30)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{timeline}");
    let judged: Vec<&str> = timeline["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "verdict")
        .map(|e| e["summary"].as_str().unwrap())
        .collect();
    assert_eq!(judged.len(), 3, "{timeline}");
    assert!(
        judged
            .iter()
            .any(|s| s.contains("rejected as the cause of HighErrorRate by bob")),
        "{judged:?}"
    );
    assert!(
        judged
            .iter()
            .any(|s| s.contains("feature_flag change of") && s.contains("confirmed")),
        "{judged:?}"
    );
    let (status, report) = get(
        &app,
        &format!("/v1/reports/incident?alert={fp}&format=json"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        suspect(&report["suspects"], &old["uid"])["verdict"]["verdict"],
        "confirmed"
    );
    let (status, _, markdown) = send(
        &app,
        Request::get(format!("/v1/reports/incident?alert={fp}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let markdown = markdown.as_str().unwrap();
    for expected in [
        "**Rejected as the cause by bob",
        "**Confirmed as the cause by alice",
        "pool size cut to 10",
        "(added by review: not among the computed suspects)",
        "CAUSED by alice",
    ] {
        assert!(markdown.contains(expected), "{expected}: {markdown}");
    }
}

/// The history evidence and DORA's change failure rate count a confirmed deployment as blamed,
/// whatever its probability, and a rejected one never for that alert.
async fn verdicts_feed_history_and_dora(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let service = unique("ledger");
    let (_, _, d1) = post(&app, "/v1/deployments", &deployment(&service, -120, 1)).await;
    let (_, _, d2) = post(&app, "/v1/deployments", &deployment(&service, -60, 2)).await;
    let (fp1, fp2) = (unique("fp"), unique("fp"));
    for (fp, minute) in [(&fp1, -110), (&fp2, -50)] {
        let (status, _, _) = post(
            &app,
            "/v1/alerts/alertmanager",
            &webhook(fp, &service, minute),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (a1, a2) = (alert_uid(&store, &fp1).await, alert_uid(&store, &fp2).await);
    // Attributions fixed by hand, as a recompute would store them: d1 an unlikely suspect of
    // the first alert, d2 the likely cause of the second.
    let uid = |d: &Value| Uid::from_stored(d["uid"].as_str().unwrap().to_owned());
    for (alert, d, score) in [(&a1, &d1, 0.2), (&a2, &d2, 0.9)] {
        store
            .replace_attribution(
                alert,
                &[Trigger {
                    subject: SubjectKind::Deployment,
                    subject_uid: uid(d),
                    alert_uid: alert.clone(),
                    confidence_score: score,
                    reasons: vec!["fixed".into()],
                    computed_at: chrono::Utc::now(),
                }],
                None,
            )
            .await
            .unwrap();
    }
    let service_uid = service_ref(&service).uid();
    let blamed = || async {
        let history = store
            .service_history(&service_uid, chrono::Utc::now())
            .await
            .unwrap();
        let (status, dora) = get(
            &app,
            &format!(
                "/v1/dora?service={service}&since={}&until={}",
                at(-200),
                at(0)
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{dora}");
        assert_eq!(dora["services"][0]["deployments"], 2, "{dora}");
        (
            history.followed_by_alerts,
            dora["services"][0]["failed_changes"].as_u64().unwrap(),
        )
    };
    assert_eq!(blamed().await, (1, 1), "d2 by its probability");
    let (status, _, _) = post(
        &app,
        &verdict_path(&fp1, &d1["uid"]),
        &json!({"verdict": "confirmed", "by": "sre"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        blamed().await,
        (2, 2),
        "d1 confirmed, d2 by its probability"
    );
    let (status, _, _) = post(
        &app,
        &verdict_path(&fp2, &d2["uid"]),
        &json!({"verdict": "rejected", "by": "sre", "note": "the flag flip did it"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(blamed().await, (1, 1), "d1 confirmed, d2 rejected");
    // Rejecting d1 for an alert it is no suspect of leaves its confirmation standing.
    let (status, _, _) = post(
        &app,
        &verdict_path(&fp2, &d1["uid"]),
        &json!({"verdict": "rejected", "by": "sre"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(blamed().await, (1, 1));
}

deploygraph_store::both_stores!(
    verdicts_are_refused_replaced_and_kept,
    verdicts_feed_history_and_dora,
);

/// The OpenAPI document declares the verdict route with its body, answers and token.
#[test]
fn the_document_declares_the_verdict_route() {
    let doc = serde_json::to_value(deploygraph_api::openapi_document()).unwrap();
    let post = &doc["paths"]["/v1/alerts/{fingerprint}/suspects/{uid}/verdict"]["post"];
    assert!(post["security"].is_array(), "{post}");
    for status in [
        "200", "201", "400", "401", "404", "413", "415", "422", "503",
    ] {
        assert!(post["responses"][status].is_object(), "{status}: {post}");
    }
    let input = &doc["components"]["schemas"]["VerdictInput"];
    let required: Vec<&str> = input["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(required, ["verdict", "by"], "{input}");
    assert_eq!(
        doc["components"]["schemas"]["VerdictKind"]["enum"],
        json!(["confirmed", "rejected"])
    );
    let stored = &doc["components"]["schemas"]["StoredVerdict"];
    assert!(stored["properties"]["at"].is_object(), "{stored}");
}
