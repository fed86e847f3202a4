//! Secure defaults through the router: user Cypher needs the token and is checked from its plan
//! on the real Neo4j (`NEO4J_TEST_URI`), capped in rows and bytes, stopped at its time limit;
//! the read token guards every GET but the health routes; `POST /v1/snapshots` connects only
//! to targets the server allows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use deploygraph_api::snapshotter::Snapshotter;
use deploygraph_api::{ApiConfig, AppState, router};
use deploygraph_store::GraphStore;
use http_body_util::BodyExt;
use secrecy::SecretString;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tower::ServiceExt;

const TOKEN: &str = "write-s3cret";
const READ: &str = "read-s3cret";

fn config() -> ApiConfig {
    ApiConfig {
        token: Some(SecretString::from(TOKEN.to_owned())),
        ..ApiConfig::default()
    }
}

fn app(store: &Arc<dyn GraphStore>, config: ApiConfig) -> Router {
    router(AppState::new(Arc::clone(store), config))
}

async fn neo4j() -> Arc<dyn GraphStore> {
    deploygraph_store::testing::neo4j().await.1
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value, usize) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, body, bytes.len())
}

fn request(method: &str, path: &str, body: Option<&Value>, token: Option<&str>) -> Request<Body> {
    let mut r = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        r = r.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    match body {
        Some(body) => r
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
        None => r.body(Body::empty()).unwrap(),
    }
}

async fn cypher(app: &Router, body: Value) -> (StatusCode, Value) {
    let (status, out, _) = send(app, request("POST", "/v1/cypher", Some(&body), Some(TOKEN))).await;
    (status, out)
}

/// A loopback listener that counts the connections it accepts (and answers none).
async fn counting_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&accepted);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (port, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_cypher_is_never_anonymous() {
    let store = neo4j().await;
    let query = json!({"query": "RETURN 1 AS one"});
    // A server with a token wants it.
    let with_token = app(&store, config());
    let (status, out, _) = send(
        &with_token,
        request("POST", "/v1/cypher", Some(&query), None),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{out}");
    let (status, out, _) = send(
        &with_token,
        request("POST", "/v1/cypher", Some(&query), Some("wrong")),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{out}");
    assert_eq!(cypher(&with_token, query.clone()).await.0, StatusCode::OK);
    // A server without one refuses user Cypher, and says how to enable it.
    let open = app(&store, ApiConfig::default());
    for token in [None, Some(TOKEN)] {
        let (status, out, _) =
            send(&open, request("POST", "/v1/cypher", Some(&query), token)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{out}");
        assert_eq!(out["error"]["code"], "forbidden");
        assert!(
            out["error"]["message"]
                .as_str()
                .unwrap()
                .contains("--token"),
            "{out}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_csv_is_refused_from_the_plan_before_it_reads_a_file_or_url() {
    let app = app(&neo4j().await, config());
    let (status, out) = cypher(
        &app,
        json!({"query": "LOAD CSV FROM 'file:///etc/passwd' AS line RETURN line"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{out}");
    assert_eq!(out["error"]["code"], "query_refused");
    let message = out["error"]["message"].as_str().unwrap();
    assert!(message.contains("LOAD CSV"), "{out}");
    assert!(!message.contains("root:"), "{out}");

    // An URL, given as a parameter: nothing connects to it.
    let (port, accepted) = counting_listener().await;
    for body in [
        json!({"query": format!("LOAD CSV FROM 'http://127.0.0.1:{port}/x.csv' AS line RETURN line")}),
        json!({"query": "LOAD CSV FROM $url AS line RETURN count(line) AS n",
               "params": {"url": format!("http://127.0.0.1:{port}/y.csv")}}),
    ] {
        let (status, out) = cypher(&app, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{out}");
        assert!(
            out["error"]["message"]
                .as_str()
                .unwrap()
                .contains("LOAD CSV"),
            "{out}"
        );
    }
    // Had Neo4j fetched the URL, the connection would have been accepted before it answered.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administration_commands_and_dbms_procedures_are_refused() {
    let app = app(&neo4j().await, config());
    for query in [
        "SHOW USERS",
        "SHOW TRANSACTIONS",
        "SHOW TRANSACTIONS YIELD currentQuery RETURN currentQuery",
        "SHOW DATABASES",
        "SHOW PROCEDURES",
        "SHOW INDEXES",
        "CALL dbms.listConfig()",
        "CALL dbms.listConfig() YIELD name, value RETURN name, value",
        "CALL dbms.components()",
        "RETURN file() AS f",
        "UNWIND [1] AS x CALL { WITH x RETURN x AS y } IN TRANSACTIONS RETURN y",
        "USE system SHOW USERS",
        "CREATE (n:Intruder) RETURN n",
        "MATCH (n:Intruder) DETACH DELETE n",
        "CREATE INDEX intruder IF NOT EXISTS FOR (n:Intruder) ON (n.x)",
        "RETURN apoc.version() AS v",
    ] {
        let (status, out) = cypher(&app, json!({ "query": query })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {out}");
        assert_eq!(out["error"]["code"], "query_refused", "{query}: {out}");
        assert_eq!(out["error"]["field"], "query", "{query}: {out}");
    }
    // The reason names what was refused.
    let (_, out) = cypher(&app, json!({"query": "CALL dbms.listConfig()"})).await;
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("dbms.listConfig"),
        "{out}"
    );
    let (_, out) = cypher(&app, json!({"query": "SHOW TRANSACTIONS"})).await;
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ShowTransactions"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_allowed_procedures_run_with_columns_in_return_order() {
    let store = neo4j().await;
    let app = app(&store, config());
    let (status, out) = cypher(&app, json!({"query": "CALL db.labels()"})).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["columns"], json!(["label"]));
    let (status, out) = cypher(
        &app,
        json!({"query": "CALL db.labels() YIELD label RETURN count(label) > 0 AS any"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let (status, out) = cypher(
        &app,
        json!({"query": "CALL db.schema.visualization() YIELD nodes RETURN [n IN nodes | labels(n)] AS labels"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    // Its virtual nodes themselves cannot be decoded: a refusal that says so, not a 500.
    let (status, out) = cypher(&app, json!({"query": "CALL db.schema.visualization()"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{out}");
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("virtual"),
        "{out}"
    );

    let service = unique("plain");
    let (status, out) = cypher(
        &app,
        json!({"query": "MATCH (s:Service) WHERE s.name = $name RETURN s.name AS name, toLower('X') AS x, duration.between(date('2026-01-01'), date('2026-01-02')) AS d",
               "params": {"name": service}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["rows"], json!([]));
    // Columns come from the plan even without rows.
    assert_eq!(out["columns"], json!(["name", "x", "d"]));

    let (status, out) = cypher(&app, json!({"query": "RETURN 1 AS z, 2 AS a"})).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["columns"], json!(["z", "a"]));
    assert_eq!(out["rows"], json!([[1, 2]]));
    let (_, out) = cypher(
        &app,
        json!({"query": "WITH {k: 1} AS m RETURN m.k, 'b' AS `b, c`, 3 AS a"}),
    )
    .await;
    assert_eq!(out["columns"], json!(["m.k", "b, c", "a"]), "{out}");
    assert_eq!(out["rows"], json!([[1, "b", 3]]));
    // Quotes, escapes and text that looks like a plan or a call stay text in the plan's details.
    let (status, out) = cypher(
        &app,
        json!({"query": r#"RETURN 'a"b\c é', "plan: Some({\"operatorType\": String(\"LoadCSV\")})" AS `x`, 'file()' AS y"#}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["rows"][0][2], "file()", "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_capped_in_bytes_as_well_as_rows() {
    let app = app(&neo4j().await, config());
    // One row of a million integers is about 6.9 MB of JSON: over the 4 MiB default.
    let (status, out, size) = send(
        &app,
        request(
            "POST",
            "/v1/cypher",
            Some(&json!({"query": "RETURN range(1, 1000000) AS l"})),
            Some(TOKEN),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["truncated"], true);
    assert_eq!(out["truncated_by"], "bytes");
    assert_eq!(out["columns"], json!(["l"]));
    assert_eq!(out["rows"], json!([]));
    assert!(size < 4 * 1024 * 1024, "{size} bytes");

    // The request may lower the cap: whole rows only, never a partial one.
    let (status, out, size) = send(
        &app,
        request(
            "POST",
            "/v1/cypher",
            Some(&json!({"query": "UNWIND range(1, 1000) AS x RETURN x, 'padding' AS p", "max_bytes": 200})),
            Some(TOKEN),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["truncated_by"], "bytes");
    let rows = out["rows"].as_array().unwrap();
    assert!(!rows.is_empty() && rows.len() < 1000, "{out}");
    assert!(serde_json::to_string(rows).unwrap().len() <= 200, "{out}");
    assert!(size < 1000, "{size}");
    // The row cap says so too.
    let (_, out) = cypher(
        &app,
        json!({"query": "UNWIND range(1, 50) AS x RETURN x", "limit": 5}),
    )
    .await;
    assert_eq!(
        (out["rows"].as_array().unwrap().len(), &out["truncated_by"]),
        (5, &json!("rows"))
    );
    let (_, out) = cypher(&app, json!({"query": "UNWIND range(1, 5) AS x RETURN x"})).await;
    assert_eq!(out["truncated"], false);
    assert!(out.get("truncated_by").is_none(), "{out}");
    let (status, out) = cypher(&app, json!({"query": "RETURN 1", "max_bytes": 0})).await;
    assert_eq!(
        (status, out["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("max_bytes"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_over_the_default_limit_is_a_504_and_neo4j_stops_it() {
    // The default 10 s limit, which the Bolt client's own 5 s read timeout used to pre-empt.
    let app = app(&neo4j().await, config());
    let marker = unique("slow");
    let query = format!(
        "WITH '{marker}' AS marker UNWIND range(1, 100000) AS a UNWIND range(1, 100000) AS b \
         WITH a, b WHERE a * b = -1 RETURN count(*) AS n"
    );
    let (status, out) = cypher(&app, json!({ "query": query })).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{out}");
    assert_eq!(out["error"]["code"], "query_timed_out");
    assert!(
        out["error"]["message"].as_str().unwrap().contains("10s"),
        "{out}"
    );

    // Neo4j no longer runs it: asked from a connection of the test's own.
    let graph = neo4rs::Graph::new(std::env::var("NEO4J_TEST_URI").unwrap(), "", "").unwrap();
    let mut running = usize::MAX;
    for _ in 0..50 {
        let mut rows = graph
            .execute(
                neo4rs::query(
                    "SHOW TRANSACTIONS YIELD currentQuery WHERE currentQuery CONTAINS $marker \
                     RETURN count(*) AS n",
                )
                .param("marker", marker.as_str()),
            )
            .await
            .unwrap();
        let row = rows.next().await.unwrap().unwrap();
        running = usize::try_from(row.get::<i64>("n").unwrap()).unwrap();
        if running == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(running, 0, "the timed-out query is still running");

    // A lower limit from the request is reported as such.
    let (status, out) = cypher(&app, json!({ "query": query, "timeout_ms": 1500 })).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{out}");
    assert!(
        out["error"]["message"].as_str().unwrap().contains("1.5s"),
        "{out}"
    );
}

#[tokio::test]
async fn the_read_token_guards_every_get_but_the_health_routes_and_the_console_page() {
    let (_dir, store) = deploygraph_store::testing::sqlite().await;
    let app = app(
        &store,
        ApiConfig {
            read_token: Some(SecretString::from(READ.to_owned())),
            ..config()
        },
    );
    // The health routes, and the console's page and assets, which hold no data.
    for path in [
        "/healthz",
        "/readyz",
        "/",
        "/console/console.js",
        "/console/console.css",
    ] {
        let (status, out, _) = send(&app, request("GET", path, None, None)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {out}");
    }
    for path in [
        "/v1/ask?q=timeline",
        "/metrics",
        "/v1/services",
        "/v1/deployments",
        "/v1/alerts",
        "/v1/snapshots/latest",
        "/v1/chaos/runs",
        "/v1/dora",
        "/v1/openapi.json",
        "/v1/no-such-route",
    ] {
        let (status, out, _) = send(&app, request("GET", path, None, None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {out}");
        assert_eq!(out["error"]["code"], "unauthorized", "{path}");
        let (status, _, _) = send(&app, request("GET", path, None, Some("nope"))).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        for token in [READ, TOKEN] {
            let (status, out, _) = send(&app, request("GET", path, None, Some(token))).await;
            assert_ne!(status, StatusCode::UNAUTHORIZED, "{path}: {out}");
        }
    }
    // The read token does not write.
    let (status, _, _) = send(
        &app,
        request("POST", "/v1/chaos/runs", Some(&json!({})), Some(READ)),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Without a read token, reads stay open.
    let open = self::app(&store, config());
    assert_eq!(
        send(&open, request("GET", "/v1/services", None, None))
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_run_only_checks_the_server_allows_and_refused_ones_connect_nowhere() {
    let (dir, store) = deploygraph_store::testing::sqlite().await;
    let (port, accepted) = counting_listener().await;
    let body = |target: String| json!({"config": {"tls": [target], "timeout": "1s", "deadline": "2s"}, "cluster": "c"});
    let post = |app: Router, body: Value| async move {
        send(
            &app,
            request("POST", "/v1/snapshots", Some(&body), Some(TOKEN)),
        )
        .await
    };

    // No gate config, no allow-list: nothing runs on request.
    let bare = app(&store, config());
    let (status, out, _) = post(bare.clone(), body(format!("127.0.0.1:{port}"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{out}");
    assert_eq!(out["error"]["field"], "config");
    // Checks that ran elsewhere are still recorded.
    let (status, out, _) = post(
        bare,
        json!({"taken_at": "2026-11-20T10:00:00Z",
               "checks": [{"kind": "tls", "target": "a:1", "status": "pass", "detail": "", "latency_ms": 1}]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{out}");

    // A gate config with another target, and an allow-list without this one.
    let gate = dir.as_ref().unwrap().path().join("gate.yaml");
    std::fs::write(&gate, "tls: [\"127.0.0.1:1\"]\n").unwrap();
    let snapshotter = Arc::new(Snapshotter::new(Arc::clone(&store), gate.clone(), None));
    let guarded = router(
        AppState::new(
            Arc::clone(&store),
            ApiConfig {
                snapshot_allow_targets: vec!["db.example:5432".into()],
                ..config()
            },
        )
        .with_snapshotter(Arc::clone(&snapshotter)),
    );
    let (status, out, _) = post(
        guarded.clone(),
        json!({"config": {"tls": ["127.0.0.1:1", format!("127.0.0.1:{port}")], "timeout": "1s"}}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{out}");
    assert_eq!(out["error"]["field"], "config.tls[1]");
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{port}")),
        "{out}"
    );
    for refused in [
        json!({"config": {"apiserver": [{"url": format!("https://127.0.0.1:{port}/")}], "timeout": "1s"}}),
        json!({"config": {"coredns": [{"url": format!("http://127.0.0.1:{port}/metrics")}], "timeout": "1s"}}),
        json!({"config": {"dns": [format!("x.example@127.0.0.1:{port}")], "timeout": "1s"}}),
    ] {
        let (status, out, _) = post(guarded.clone(), refused.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{refused}: {out}");
        assert!(
            out["error"]["field"]
                .as_str()
                .unwrap()
                .starts_with("config."),
            "{out}"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "a refused check connected"
    );

    // Once the gate config names the target, the same request runs (and connects).
    std::fs::write(&gate, format!("tls: [\"127.0.0.1:{port}\"]\n")).unwrap();
    let (status, out, _) = post(guarded, body(format!("127.0.0.1:{port}"))).await;
    assert_eq!(status, StatusCode::CREATED, "{out}");
    assert!(accepted.load(Ordering::SeqCst) >= 1);
}
