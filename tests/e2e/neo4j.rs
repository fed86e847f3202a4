//! `deploygraph serve` on a real Neo4j: ingest, idempotency, large listings, the graph itself.

use crate::support::{
    NEO4J, Server, deployment, get_json, neo4j_uri, post_json, run, stderr, stdout, unique,
};
use serde_json::{Value, json};

#[test]
fn neo4j_serve_records_idempotently_and_lists_1500_with_limit_1500() {
    let _shared = NEO4J
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let server = Server::start(&neo4j_uri(), &[]);
    server.wait_for("/readyz", std::time::Duration::from_secs(60));
    let service = unique("neo");
    let url = format!("{}/v1/deployments", server.url);

    let (status, _, first) = post_json(&url, &deployment(&service, 0, 0), None);
    assert_eq!(status, 201, "{first}");
    let (status, _, again) = post_json(&url, &deployment(&service, 0, 0), None);
    assert_eq!(status, 200);
    assert_eq!(again["uid"], first["uid"]);
    let mut reused = deployment(&service, 0, 0);
    reused["id"] = json!(unique("id"));
    assert_eq!(post_json(&url, &reused, None).0, 201);
    reused["version"] = json!("other");
    assert_eq!(post_json(&url, &reused, None).0, 409);

    // 1,500 more through the direct-store CLI path would be slow one by one; the server takes
    // them over HTTP, out of order.
    let mut minutes: Vec<u32> = (1..=1500).collect();
    minutes.reverse();
    for m in minutes {
        let (status, _, body) = post_json(&url, &deployment(&service, m, m), None);
        assert_eq!(status, 201, "{body}");
    }
    let (status, page) = get_json(&format!("{url}?service={service}&limit=1500"));
    assert_eq!(status, 200);
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1500, "exactly limit items");
    assert!(page["next_cursor"].is_string());
    for pair in items.windows(2) {
        assert_eq!(
            pair[0]["follows"], pair[1]["uid"],
            "FOLLOWS chain in started_at order"
        );
    }

    let query = run(&[
        "query",
        "deployments",
        "--store",
        &neo4j_uri(),
        "--service",
        &service,
        "--limit",
        "1502",
        "--output",
        "json",
    ]);
    assert!(query.status.success(), "{}", stderr(&query));
    let page: Value = serde_json::from_str(&stdout(&query)).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1502);
}
