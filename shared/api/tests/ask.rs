//! Component tests of `GET /v1/ask`: questions in English and Chinese answered over both stores
//! (SQLite, and the real Neo4j of `scripts/services up neo4j`) with exactly what the endpoint
//! they map to answers; the Cypher each answer shows runs read-only on Neo4j with its
//! parameters; questions that cannot be mapped are a 422 naming `q` with the forms understood
//! and the closest services.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use support::{TOKEN, app, at, send, unique, webhook};

async fn get(app: &Router, path: &str) -> (StatusCode, Value) {
    let (status, _, body) = send(app, Request::get(path).body(Body::empty()).unwrap()).await;
    (status, body)
}

async fn post(app: &Router, path: &str, body: &Value) -> (StatusCode, Value) {
    let request = Request::post(path)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::from(body.to_string()))
        .unwrap();
    let (status, _, body) = send(app, request).await;
    (status, body)
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn ask(app: &Router, q: &str) -> (StatusCode, Value) {
    get(app, &format!("/v1/ask?q={}", encode(q))).await
}

fn deployment(service: &str, minute: i64, seed: u8, status: &str) -> Value {
    json!({
        "service": service, "namespace": "prod", "environment": "production",
        "version": format!("v1.{seed}.0"),
        "commit": {"sha": format!("{:040x}", u128::from(seed) + 0xabc0000)},
        "images": [{"repository": format!("ghcr.io/acme/{service}"), "tag": format!("v1.{seed}.0"),
                    "digest": format!("sha256:{}", format!("{seed:02x}").repeat(32))}],
        "changes": [{"path": "values.redis.pool.size", "kind": "value",
                     "before": format!("{}", 50 + u32::from(seed)), "after": "10"}],
        "status": status, "started_at": at(minute), "finished_at": at(minute + 1)
    })
}

/// Records a service with three failed deployments sharing a config key, a healthy one and an
/// alert after the last; its name and the alert's fingerprint.
async fn world(app: &Router) -> (String, String) {
    let service = unique("askpay");
    for (minute, seed, status) in [
        (-300, 1, "failed"),
        (-200, 2, "failed"),
        (-100, 3, "failed"),
        (-20, 4, "succeeded"),
    ] {
        let (status, out) = post(
            app,
            "/v1/deployments",
            &deployment(&service, minute, seed, status),
        )
        .await;
        assert!(status.is_success(), "{out}");
    }
    let fingerprint = format!("{:016x}", rand::random::<u64>() | 1);
    let (status, out) = post(
        app,
        "/v1/alerts/alertmanager",
        &webhook(&fingerprint, &service, 5),
    )
    .await;
    assert!(status.is_success(), "{out}");
    (service, fingerprint)
}

/// Asks `q`, checks it was read as `intent` of `service`, and that its answer is what its
/// endpoint answers; the answer.
async fn answered_as(app: &Router, q: &str, intent: &str, service: &str) -> Value {
    let (status, out) = ask(app, q).await;
    assert_eq!(status, StatusCode::OK, "{q}: {out}");
    assert_eq!(out["understood"]["intent"], intent, "{q}: {out}");
    assert_eq!(out["understood"]["service"]["name"], service, "{q}: {out}");
    assert!(!out["understood_as"].as_str().unwrap().is_empty(), "{out}");
    let endpoint = out["endpoint"].as_str().unwrap();
    let (status, direct) = get(app, endpoint).await;
    assert_eq!(status, StatusCode::OK, "{endpoint}: {direct}");
    let mut answer = out["answer"].clone();
    let mut direct = direct;
    // DORA says when it computed; nothing else differs.
    for v in [&mut answer, &mut direct] {
        if let Some(o) = v.as_object_mut() {
            o.remove("computed_at");
            o.remove("generated_at");
        }
    }
    assert_eq!(answer, direct, "{q}: the answer is not {endpoint}'s");
    out
}

async fn questions_are_answered_by_the_queries_they_map_to(app: &Router) -> Vec<Value> {
    let (service, fingerprint) = world(app).await;
    let mut answers = Vec::new();
    let out = answered_as(
        app,
        &format!("which deploy caused the {service} alert?"),
        "suspects",
        &service,
    )
    .await;
    assert_eq!(
        out["answer"]["alert"]["fingerprint"],
        fingerprint.as_str(),
        "{out}"
    );
    let suspects = out["answer"]["suspects"].as_array().unwrap();
    assert!(!suspects.is_empty(), "{out}");
    answers.push(out);
    let out = answered_as(
        app,
        &format!("What do the last three failed {service} deployments have in common?"),
        "common_factors",
        &service,
    )
    .await;
    assert_eq!(out["understood"]["count"], 3, "{out}");
    assert!(
        out["answer"].to_string().contains("values.redis.pool.size"),
        "the shared key is a common factor: {out}"
    );
    answers.push(out);
    let out = answered_as(
        app,
        &format!("{service} 最近两次部署失败的共性是什么"),
        "common_factors",
        &service,
    )
    .await;
    assert_eq!(out["understood"]["count"], 2, "{out}");
    answers.push(out);
    let out = answered_as(
        app,
        &format!("failed deployments of {service} since 2026-11-19"),
        "deployments",
        &service,
    )
    .await;
    assert_eq!(out["answer"]["items"].as_array().unwrap().len(), 3, "{out}");
    assert_eq!(out["understood"]["status"], "failed", "{out}");
    answers.push(out);
    let out = answered_as(
        app,
        &format!("{service} 2026-11-20 的时间线"),
        "timeline",
        &service,
    )
    .await;
    assert!(
        out["answer"].to_string().contains("HighErrorRate fired"),
        "the day's timeline holds the alert: {out}"
    );
    answers.push(out);
    answers.push(
        answered_as(
            app,
            &format!("DORA metrics of {service} since 2026-11-19"),
            "dora",
            &service,
        )
        .await,
    );
    answers.push(
        answered_as(
            app,
            &format!("has {service} been chaos tested"),
            "resilience",
            &service,
        )
        .await,
    );
    let out = answered_as(
        app,
        &format!("alerts on {service} since 2026-11-19"),
        "alerts",
        &service,
    )
    .await;
    assert_eq!(out["answer"]["items"].as_array().unwrap().len(), 1, "{out}");
    answers.push(out);
    answers
}

/// The same service in two clusters, each with its own deployments and alert: a question naming
/// a cluster is answered from that cluster only, and without one from both.
async fn questions_in_one_cluster(app: &Router) -> Vec<Value> {
    let service = unique("askmulti");
    let tag = unique("c");
    let (east, west) = (format!("{tag}-east"), format!("{tag}-west"));
    for (cluster, failed) in [(&east, 2), (&west, 1)] {
        for (i, minute) in [-300i64, -200, -100].into_iter().enumerate() {
            let status = if i < failed { "failed" } else { "succeeded" };
            let mut d = deployment(&service, minute, u8::try_from(i).unwrap() + 10, status);
            d["cluster"] = json!(cluster);
            let (status, out) = post(app, "/v1/deployments", &d).await;
            assert!(status.is_success(), "{out}");
        }
        let fingerprint = format!("{:016x}", rand::random::<u64>() | 1);
        let mut hook = webhook(&fingerprint, &service, 5);
        hook["alerts"][0]["labels"]["cluster"] = json!(cluster);
        let (status, out) = post(app, "/v1/alerts/alertmanager", &hook).await;
        assert!(status.is_success(), "{out}");
    }
    // DORA: one row per cluster, each with its own deployments and failures.
    let (status, dora) = get(
        app,
        &format!("/v1/dora?service={service}&since=2026-11-19T00:00:00Z"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{dora}");
    let rows: Vec<(String, u64, u64)> = dora["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["cluster"].as_str().unwrap().to_owned(),
                r["deployments"].as_u64().unwrap(),
                r["failed_changes"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut expected = vec![(east.clone(), 3, 2), (west.clone(), 3, 1)];
    expected.sort();
    let mut got = rows.clone();
    got.sort();
    // A blamed deployment counts as failed too: at least the failed rollouts.
    assert_eq!(got.len(), 2, "{dora}");
    for ((c, n, failed), (ec, en, efailed)) in got.iter().zip(&expected) {
        assert_eq!((c, n), (ec, en), "{dora}");
        assert!(failed >= efailed, "{dora}");
    }
    let mut answers = Vec::new();
    for (q, cluster, items) in [
        (
            format!("failed deployments of {service} in cluster {east} since 2026-11-19"),
            Some(&east),
            2,
        ),
        (
            format!("failed deployments of {service} in {west} since 2026-11-19"),
            Some(&west),
            1,
        ),
        (
            format!("failed deployments of {service} since 2026-11-19"),
            None,
            3,
        ),
        (format!("{service} 在 {west} 集群的告警"), Some(&west), 1),
        (format!("alerts on {service} since 2026-11-19"), None, 2),
    ] {
        let intent = if q.contains("deployments") {
            "deployments"
        } else {
            "alerts"
        };
        let out = answered_as(app, &q, intent, &service).await;
        assert_eq!(
            out["understood"]["cluster"].as_str(),
            cluster.map(String::as_str),
            "{q}: {out}"
        );
        assert_eq!(
            out["answer"]["items"].as_array().unwrap().len(),
            items,
            "{q}: {out}"
        );
        if let Some(c) = cluster {
            assert!(
                out["endpoint"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("cluster={c}")),
                "{out}"
            );
            assert!(
                out["understood_as"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("in cluster {c}")),
                "{out}"
            );
            for item in out["answer"]["items"].as_array().unwrap() {
                assert_eq!(item["cluster"].as_str(), Some(c.as_str()), "{q}: {item}");
            }
        }
        answers.push(out);
    }
    // Every other question form takes the cluster too and answers as its endpoint does.
    for (q, intent) in [
        (
            format!("timeline of {service} in cluster {east} since 2026-11-19"),
            "timeline",
        ),
        (
            format!("DORA metrics of {service} in cluster {east} since 2026-11-19"),
            "dora",
        ),
        (
            format!(
                "what do the last two failed {service} deployments in cluster {east} have in common"
            ),
            "common_factors",
        ),
        (
            format!("which deploy caused the {service} alert in cluster {west}"),
            "suspects",
        ),
        (
            format!("has {service} been chaos tested in cluster {west}"),
            "resilience",
        ),
    ] {
        let out = answered_as(app, &q, intent, &service).await;
        assert!(out["understood"]["cluster"].is_string(), "{q}: {out}");
        if intent == "suspects" {
            // Reasons name the service with its cluster, which is not the default one.
            let text = out["answer"]["suspects"].to_string();
            assert!(text.contains(&format!("{service} [{west}]")), "{out}");
        }
        if intent == "dora" {
            let rows = out["answer"]["services"].as_array().unwrap();
            assert_eq!(rows.len(), 1, "{out}");
            assert_eq!(rows[0]["cluster"].as_str(), Some(east.as_str()), "{out}");
        }
        answers.push(out);
    }
    answers
}

async fn questions_it_cannot_map_are_refused(app: &Router) {
    // No question.
    let (status, out) = get(app, "/v1/ask?q=%20%20").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    assert_eq!(out["error"]["code"], "not_understood", "{out}");
    for path in ["/v1/ask", "/v1/ask?q="] {
        let (status, out) = get(app, path).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {out}");
        assert_eq!(out["error"]["code"], "invalid_field", "{out}");
        assert_eq!(out["error"]["field"], "q", "{out}");
    }
    let (status, out) = ask(app, &"why ".repeat(200)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    assert_eq!(out["error"]["code"], "invalid_field", "{out}");
    assert_eq!(out["error"]["field"], "q", "{out}");
    // Not a form.
    let (status, out) = ask(app, "what is the meaning of life?").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    assert_eq!(out["error"]["code"], "not_understood", "{out}");
    assert_eq!(out["error"]["field"], "q", "{out}");
    assert!(out["forms"].as_array().unwrap().len() >= 10, "{out}");
    // A form, without a service the graph knows: never a guess.
    let (status, out) = ask(app, "timeline of zzqx-nothing-like-it").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
    assert!(out["closest_services"].is_array(), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn questions_on_the_embedded_store() {
    let (_dir, store) = deploygraph_store::testing::sqlite().await;
    let app = app(&store);
    questions_are_answered_by_the_queries_they_map_to(&app).await;
    questions_in_one_cluster(&app).await;
    questions_it_cannot_map_are_refused(&app).await;
    // A misspelt service: read, and said so; the closest service offered when it is too far.
    let (service, _) = world(&app).await;
    let typo = format!("{}x", &service);
    let (status, out) = ask(&app, &format!("timeline of {typo}")).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(
        out["understood"]["service"]["name"],
        service.as_str(),
        "{out}"
    );
    assert_eq!(out["understood"]["service"]["how"], "spelling", "{out}");
    assert!(
        out["understood_as"].as_str().unwrap().contains("read from"),
        "{out}"
    );
    // An alert that is not there is said so, not invented.
    let (status, out) = ask(&app, &format!("what caused the {service} alert yesterday")).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert!(out["answer"].is_null(), "{out}");
    assert!(out["note"].as_str().unwrap().contains("no alert"), "{out}");
    // A suspects question naming nothing to find the alert by.
    let (status, out) = ask(&app, "what caused the alert on zzqx").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn questions_on_neo4j_with_cypher_that_runs() {
    let (_none, store) = deploygraph_store::testing::neo4j().await;
    let app = app(&store);
    let mut answers = questions_are_answered_by_the_queries_they_map_to(&app).await;
    answers.extend(questions_in_one_cluster(&app).await);
    for out in answers {
        let (status, rows) = post(
            &app,
            "/v1/cypher",
            &json!({"query": out["cypher"]["query"], "params": out["cypher"]["params"]}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{}: {rows}", out["cypher"]);
        assert!(rows["rows"].is_array(), "{rows}");
        // The rows are the question's facts.
        let intent = out["understood"]["intent"].as_str().unwrap();
        let count = rows["rows"].as_array().unwrap().len();
        match intent {
            "deployments" | "alerts" => assert_eq!(
                count,
                out["answer"]["items"].as_array().unwrap().len(),
                "{}: {rows}",
                out["question"]
            ),
            "suspects" | "common_factors" | "timeline" | "dora" => {
                assert!(count > 0, "{intent}: {rows}")
            }
            _ => {}
        }
    }
    questions_it_cannot_map_are_refused(&app).await;
}
