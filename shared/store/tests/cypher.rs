//! Read-only user Cypher ([`deploygraph_store::cypher`]) against a real Neo4j server
//! (`NEO4J_TEST_URI`, started by `scripts/services up neo4j`). Neo4j Community has one database,
//! so fixtures are isolated by a unique `run` property and removed afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use deploygraph_store::Error;
use deploygraph_store::cypher::{CypherRequest, CypherResult, TruncatedBy, run_read_only};
use neo4rs::{ConfigBuilder, Graph, query};
use serde_json::{Map, Value, json};
use std::time::{Duration, Instant};

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

/// One connection only, so every query reuses the connection the previous one left behind;
/// a small fetch size, so results arrive in several batches.
fn graph() -> Graph {
    let uri = std::env::var("NEO4J_TEST_URI").expect(
        "NEO4J_TEST_URI is not set: the Cypher tests need a real Neo4j server; \
         run them through scripts/test (or `eval \"$(scripts/services env)\"` after `scripts/services up neo4j`)",
    );
    let config = ConfigBuilder::default()
        .uri(uri)
        .user("")
        .password("")
        .fetch_size(3)
        .max_connections(1)
        .build()
        .unwrap();
    Graph::connect(config).unwrap()
}

fn request(query: &str, params: Value) -> CypherRequest {
    let Value::Object(params) = params else {
        panic!("parameters are a JSON object");
    };
    CypherRequest {
        query: query.to_owned(),
        params,
        timeout: Duration::from_secs(10),
        row_cap: 100,
        byte_cap: deploygraph_store::cypher::DEFAULT_BYTE_CAP,
    }
}

/// The value in column `name` of row `row`.
fn cell<'r>(result: &'r CypherResult, row: usize, name: &str) -> &'r Value {
    let column = result
        .columns
        .iter()
        .position(|c| c == name)
        .unwrap_or_else(|| panic!("no column {name:?} in {:?}", result.columns));
    &result.rows[row][column]
}

async fn remove_fixture(graph: &Graph, run: &str) {
    graph
        .run(query("MATCH (n:CypherTest {run: $run}) DETACH DELETE n").param("run", run))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_read_returns_nodes_relationships_paths_and_scalars_as_json() {
    let graph = graph();
    let run = unique("read");
    graph
        .run(
            query(
                "CREATE (a:CypherTest:Service {run: $run, name: 'api', at: datetime('2024-05-01T10:00:00+02:00')})
                        -[:CALLS {weight: 2}]->
                        (b:CypherTest {run: $run, name: 'db', tags: ['x', 'y']})",
            )
            .param("run", run.as_str()),
        )
        .await
        .unwrap();

    let result = run_read_only(
        &graph,
        &request(
            "MATCH p = (a:CypherTest {run: $run})-[r:CALLS]->(b)
             RETURN a, r, b, p, a.name AS name, $n + 1 AS next, $ratio * 2 AS ratio, $list AS list,
                    $map AS map, $missing IS NULL AS absent, a.at AS at,
                    datetime({year: 2024, month: 1, day: 2, hour: 3, timezone: 'Europe/Berlin'}) AS zoned,
                    localdatetime('2024-05-01T10:00:00.5') AS local, date('2024-05-01') AS day,
                    duration('P1DT2H30M') AS took, point({x: 1.0, y: 2.0}) AS where",
            json!({
                "run": run,
                "n": 41,
                "ratio": 0.25,
                "list": [1, "x", null, true],
                "map": {"k": {"nested": [false, 1.5]}},
                "missing": null,
            }),
        ),
    )
    .await;
    remove_fixture(&graph, &run).await;
    let result = result.unwrap();

    assert_eq!(
        result.columns,
        [
            "a", "r", "b", "p", "name", "next", "ratio", "list", "map", "absent", "at", "zoned",
            "local", "day", "took", "where"
        ],
        "columns keep the RETURN order"
    );
    assert_eq!(result.rows.len(), 1);
    assert!(!result.truncated);

    let a = cell(&result, 0, "a");
    let mut labels: Vec<&str> = a["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    labels.sort_unstable();
    assert_eq!(labels, ["CypherTest", "Service"]);
    assert_eq!(a["properties"]["name"], "api");
    assert_eq!(a["properties"]["at"], "2024-05-01T10:00:00+02:00");
    let b = cell(&result, 0, "b");
    assert_eq!(b["properties"]["tags"], json!(["x", "y"]));

    let r = cell(&result, 0, "r");
    assert_eq!(r["type"], "CALLS");
    assert_eq!(r["properties"], json!({"weight": 2}));
    assert_eq!(r["start"], a["id"]);
    assert_eq!(r["end"], b["id"]);

    let p = cell(&result, 0, "p").as_array().unwrap();
    assert_eq!(p.len(), 3, "node, relationship, node: {p:?}");
    assert_eq!(p[0]["properties"]["name"], "api");
    assert_eq!(p[1]["type"], "CALLS");
    assert_eq!(p[1]["start"], a["id"]);
    assert_eq!(p[2]["properties"]["name"], "db");

    assert_eq!(cell(&result, 0, "name"), "api");
    assert_eq!(cell(&result, 0, "next"), &json!(42));
    assert_eq!(cell(&result, 0, "ratio"), &json!(0.5));
    assert_eq!(cell(&result, 0, "list"), &json!([1, "x", null, true]));
    assert_eq!(
        cell(&result, 0, "map"),
        &json!({"k": {"nested": [false, 1.5]}})
    );
    assert_eq!(cell(&result, 0, "absent"), &json!(true));
    assert_eq!(cell(&result, 0, "at"), "2024-05-01T10:00:00+02:00");
    assert_eq!(cell(&result, 0, "zoned"), "2024-01-02T03:00:00+01:00");
    assert_eq!(cell(&result, 0, "local"), "2024-05-01T10:00:00.500");
    assert_eq!(cell(&result, 0, "day"), "2024-05-01");
    assert_eq!(cell(&result, 0, "took"), "P1DT2H30M");
    assert_eq!(
        cell(&result, 0, "where"),
        &json!({"srid": 7203, "x": 1.0, "y": 2.0})
    );

    // The rendered result is what the HTTP layer sends.
    let body = serde_json::to_value(&result).unwrap();
    assert_eq!(body["truncated"], false);
    assert_eq!(body["columns"].as_array().unwrap().len(), 16);
}

#[tokio::test]
async fn writes_are_refused_from_their_plan() {
    let graph = graph();
    let run = unique("write");
    graph
        .run(query("CREATE (:CypherTest {run: $run, name: 'keep'})").param("run", run.as_str()))
        .await
        .unwrap();

    // Names unique to this run, so that what a failed run may have created cannot turn a write
    // of this one into a no-op (`IF NOT EXISTS` on an equivalent index writes nothing).
    let suffix = run.replace('-', "_");
    let index = format!("cypher_test_{suffix}");
    let writes = [
        "CREATE (n:CypherTest {run: $run, name: 'created'})".to_owned(),
        "MERGE (n:CypherTest {run: $run, name: 'merged'})".to_owned(),
        "MATCH (n:CypherTest {run: $run}) SET n.name = 'changed'".to_owned(),
        "MATCH (n:CypherTest {run: $run}) DETACH DELETE n".to_owned(),
        "MATCH (n:CypherTest {run: $run}) SET n:Extra RETURN n".to_owned(),
        format!("CALL db.createLabel('CypherTest_{suffix}')"),
        format!("CREATE INDEX {index} IF NOT EXISTS FOR (n:CypherTest) ON (n.{suffix})"),
        // A write behind a read, in a subquery, is refused all the same.
        "MATCH (n:CypherTest {run: $run}) CALL { WITH n CREATE (:CypherTest {run: n.run}) } RETURN n"
            .to_owned(),
    ];
    let mut outcomes = Vec::new();
    for write in &writes {
        outcomes.push((
            write,
            run_read_only(&graph, &request(write, json!({"run": run}))).await,
        ));
    }
    let mut names = graph
        .execute(
            query("MATCH (n:CypherTest {run: $run}) RETURN n.name AS name, labels(n) AS labels")
                .param("run", run.as_str()),
        )
        .await
        .unwrap();
    let mut left = Vec::new();
    while let Some(row) = names.next().await.unwrap() {
        left.push((
            row.get::<String>("name").unwrap(),
            row.get::<Vec<String>>("labels").unwrap(),
        ));
    }
    // The test's pool has one connection, which a stream holds until it is dropped.
    drop(names);
    let mut indexes = graph
        .execute(
            query("SHOW INDEXES YIELD name WHERE name = $index RETURN count(*) AS n")
                .param("index", index.as_str()),
        )
        .await
        .unwrap();
    let new_indexes = indexes
        .next()
        .await
        .unwrap()
        .unwrap()
        .get::<i64>("n")
        .unwrap();
    drop(indexes);
    graph
        .run(query(&format!("DROP INDEX {index} IF EXISTS")))
        .await
        .unwrap();
    remove_fixture(&graph, &run).await;

    for (write, outcome) in outcomes {
        match outcome {
            Err(e @ Error::QueryRefused { .. }) => {
                let message = e.to_string();
                // The plan names the write operator, the procedure, or the schema command.
                assert!(
                    message.contains("not a read operator")
                        || message.contains("db.createLabel")
                        || message.contains("Neo.ClientError"),
                    "{write}: {message}"
                );
                assert!(!e.is_unavailable());
            }
            other => panic!("{write}: expected a refused write, got {other:?}"),
        }
    }
    assert_eq!(
        left,
        [("keep".to_owned(), vec!["CypherTest".to_owned()])],
        "nothing was written"
    );
    assert_eq!(new_indexes, 0, "no index was created");
}

#[tokio::test]
async fn a_slow_query_is_stopped_by_the_server_at_its_timeout() {
    let graph = graph();
    let marker = unique("slow");
    // 10^10 rows with constant memory: minutes of work unless something stops it.
    let slow = format!(
        "/* {marker} */ UNWIND range(1, 100000) AS a UNWIND range(1, 100000) AS b
         WITH a + b AS x WHERE x < 0 RETURN count(*) AS n"
    );
    let mut req = request(&slow, json!({}));
    req.timeout = Duration::from_secs(1);

    let started = Instant::now();
    let outcome = run_read_only(&graph, &req).await;
    let elapsed = started.elapsed();

    let e = match outcome {
        Err(e @ Error::QueryTimedOut { .. }) => e,
        other => panic!("expected a timeout, got {other:?}"),
    };
    assert!(e.to_string().contains("timed out"), "{e}");
    let Error::QueryTimedOut { limit, source } = &e else {
        unreachable!()
    };
    assert_eq!(*limit, Duration::from_secs(1));
    let source = source
        .as_ref()
        .expect("the server stopped the query, not the client-side backstop");
    assert!(
        source.to_string().contains("TransactionTimedOut"),
        "Neo4j's timeout error: {source}"
    );
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(6), "{elapsed:?}");

    // Nothing of it is left running on the server.
    let mut still_running = graph
        .execute(
            query(
                "SHOW TRANSACTIONS YIELD currentQuery WHERE currentQuery CONTAINS $marker
                 AND NOT currentQuery CONTAINS 'SHOW TRANSACTIONS' RETURN count(*) AS n",
            )
            .param("marker", marker.as_str()),
        )
        .await
        .unwrap();
    let n = still_running
        .next()
        .await
        .unwrap()
        .unwrap()
        .get::<i64>("n")
        .unwrap();
    drop(still_running);
    assert_eq!(n, 0, "the timed-out query still runs on the server");

    // The only connection of the pool is usable again.
    let after = run_read_only(&graph, &request("RETURN 1 AS one", json!({})))
        .await
        .unwrap();
    assert_eq!(after.rows, [[json!(1)]]);
}

#[tokio::test]
async fn rows_beyond_the_cap_are_not_read() {
    let graph = graph();
    // A billion rows: reading them all would not finish within the test's time.
    let mut req = request("UNWIND range(1, 1000000000) AS x RETURN x", json!({}));
    req.row_cap = 5;
    let started = Instant::now();
    let result = run_read_only(&graph, &req).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(result.columns, ["x"]);
    assert_eq!(
        result.rows,
        [[json!(1)], [json!(2)], [json!(3)], [json!(4)], [json!(5)]]
    );
    assert!(result.truncated);

    // Exactly the cap is not truncated; the same (only) connection serves the next query.
    let mut req = request("UNWIND range(1, $n) AS x RETURN x", json!({"n": 5}));
    req.row_cap = 5;
    let result = run_read_only(&graph, &req).await.unwrap();
    assert_eq!(result.rows.len(), 5);
    assert!(!result.truncated);

    let mut req = request("UNWIND range(1, 3) AS x RETURN x", json!({}));
    req.row_cap = 0;
    let result = run_read_only(&graph, &req).await.unwrap();
    assert!(result.rows.is_empty());
    assert!(result.truncated);
    assert_eq!(result.truncated_by, Some(TruncatedBy::Rows));

    let result = run_read_only(
        &graph,
        &request("MATCH (n:CypherTestNothing) RETURN n", json!({})),
    )
    .await
    .unwrap();
    assert!(result.rows.is_empty());
    assert!(!result.truncated);
}

#[tokio::test]
async fn a_syntax_error_is_the_clients_fault() {
    let graph = graph();
    let e = run_read_only(&graph, &request("MATCH (n RETURN n", json!({})))
        .await
        .unwrap_err();
    match &e {
        Error::QueryRefused { code, reason } => {
            assert_eq!(
                code.as_deref(),
                Some("Neo.ClientError.Statement.SyntaxError")
            );
            assert!(
                reason.contains("Invalid input"),
                "Neo4j's message: {reason}"
            );
        }
        other => panic!("expected a refused query, got {other:?}"),
    }
    assert!(!e.is_unavailable());

    let e = run_read_only(&graph, &request("RETURN $absent + 1 AS x", json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::QueryRefused { code: Some(code), .. } if code.ends_with("ParameterMissing")),
        "{e:?}"
    );

    let mut params = Map::new();
    params.insert("big".into(), json!(u64::MAX));
    let mut req = request("RETURN $big AS x", json!({}));
    req.params = params;
    let e = run_read_only(&graph, &req).await.unwrap_err();
    assert!(
        matches!(&e, Error::QueryRefused { code: None, .. }),
        "{e:?}"
    );
}
