//! Component tests of `POST /v1/agent/records`, what `deploygraph agent` delivers its spool
//! to: the router driven in-process over both stores (SQLite, and the real Neo4j of
//! `scripts/services up neo4j`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use deploygraph_model::{Change, Deployment};
use deploygraph_store::{GraphStore, RecordKind};
use serde_json::{Value, json};
use std::sync::Arc;
use support::{TOKEN, app, send, unique};

async fn post(app: &Router, body: &Value, token: Option<&str>) -> (StatusCode, Value) {
    let mut request = Request::builder()
        .method("POST")
        .uri("/v1/agent/records")
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(t) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let (status, _, body) = send(app, request.body(Body::from(body.to_string())).unwrap()).await;
    (status, body)
}

fn batch(cluster: &str, deployments: &[&Deployment], changes: &[&Change]) -> Value {
    let mut records: Vec<Value> = Vec::new();
    for d in deployments {
        records.push(json!({"seq": records.len() + 1, "deployment": d}));
    }
    for c in changes {
        records.push(json!({"seq": records.len() + 1, "change": c}));
    }
    json!({"cluster": cluster, "records": records})
}

/// A batch is recorded as the watchers' own writes would be; sent again (an agent that did not
/// hear the answer), it is stored once; the secret-looking values it carries are redacted.
async fn a_batch_is_recorded_once_however_often_it_is_sent(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let service = unique("agent-shop");
    let first = Deployment::test()
        .service(&service)
        .cluster("eu-1")
        .image_seed(1)
        .started_at_minute(0)
        .build();
    let mut second = Deployment::test()
        .service(&service)
        .cluster("eu-1")
        .image_seed(2)
        .started_at_minute(10)
        .change("env.DB_PASSWORD", "hunter2", "hunter3")
        .build();
    // As a careless sender would: the value in clear.
    second.changes[0].after = Some("plain-secret".into());
    let mut change = Change::test()
        .service(&service)
        .at_minute(5)
        .key("data.LOG_LEVEL", "info", "debug")
        .build();
    change.services[0].cluster = deploygraph_model::Cluster::parse("eu-1").unwrap();
    let body = batch("eu-1", &[&first, &second], &[&change]);
    let (status, answer) = post(&app, &body, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let outcomes: Vec<(u64, &str)> = answer["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["seq"].as_u64().unwrap(), r["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(outcomes, [(1, "created"), (2, "created"), (3, "created")]);
    let (status, again) = post(&app, &body, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert!(
        again["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["outcome"] == RecordKind::Unchanged.as_str()),
        "{again}"
    );
    let stored = store.get_deployment(&second.uid).await.unwrap().unwrap();
    assert_eq!(stored.follows.as_ref(), Some(&first.uid));
    assert_eq!(stored.deployment.cluster.as_str(), "eu-1");
    assert_ne!(
        stored.deployment.changes[0].after.as_deref(),
        Some("plain-secret")
    );
    assert!(store.get_change(&change.uid).await.unwrap().is_some());
    deploygraph_store::testing::discard_follow_ups(
        store.as_ref(),
        &[first.uid.clone(), second.uid.clone(), change.uid.clone()],
    )
    .await;
}

/// Without the token: 401. A record of another cluster, one with both or neither subject, a
/// malformed one, an empty batch: 422 naming it, and nothing of the batch is written.
async fn bad_batches_are_refused_whole(store: Arc<dyn GraphStore>) {
    let app = app(&store);
    let service = unique("agent-bad");
    let good = Deployment::test().service(&service).cluster("eu-1").build();
    let elsewhere = Deployment::test()
        .service(&service)
        .cluster("us-2")
        .image_seed(7)
        .build();
    let (status, _) = post(&app, &batch("eu-1", &[&good], &[]), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let cases = [
        (
            batch("eu-1", &[&good, &elsewhere], &[]),
            "records[1].deployment.cluster",
        ),
        (
            json!({"cluster": "eu-1", "records": [{"seq": 1}]}),
            "records[0]",
        ),
        (
            json!({"cluster": "eu-1", "records": [{"seq": 1, "deployment": good, "change": {}}]}),
            "records[0].change",
        ),
        (
            json!({"cluster": "eu-1", "records": [{"seq": 1, "deployment": {"uid": "x"}}]}),
            "records[0].deployment",
        ),
        (json!({"cluster": "eu-1", "records": []}), "records"),
        (
            json!({"cluster": "no such cluster!", "records": []}),
            "cluster",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = post(&app, &body, Some(TOKEN)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert!(
            answer["error"]["field"]
                .as_str()
                .is_some_and(|f| f.starts_with(field)),
            "{field}: {answer}"
        );
    }
    assert!(store.get_deployment(&good.uid).await.unwrap().is_none());
}

deploygraph_store::both_stores!(
    a_batch_is_recorded_once_however_often_it_is_sent,
    bad_batches_are_refused_whole,
);
