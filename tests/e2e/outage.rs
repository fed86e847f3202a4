//! Neo4j stopped mid-run: writes get 503 with Retry-After, readiness drops, the CLI retries,
//! and once Neo4j is back every event that got a 2xx is in the graph.

use crate::support::{
    NEO4J, Server, deployment, get_json, neo4j_uri, post_json, run, stderr, unique,
};
use std::process::Command;
use std::time::{Duration, Instant};

fn services(action: &str) {
    let script = std::env::var("DEPLOYGRAPH_SERVICES")
        .expect("DEPLOYGRAPH_SERVICES is not set: run the suite through scripts/test");
    let status = Command::new(script)
        .args([action, "neo4j"])
        .status()
        .unwrap();
    assert!(status.success(), "scripts/services {action} neo4j failed");
}

#[test]
fn a_neo4j_outage_gives_503_and_nothing_acknowledged_is_lost() {
    let _exclusive = NEO4J
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let server = Server::start(&neo4j_uri(), &[]);
    server.wait_for("/readyz", Duration::from_secs(60));
    let service = unique("outage");
    let url = format!("{}/v1/deployments", server.url);
    let acknowledged = std::cell::RefCell::new(Vec::new());
    let post = |seed: u32| {
        let (status, retry_after, body) = post_json(&url, &deployment(&service, seed, seed), None);
        if (200..300).contains(&status) {
            acknowledged
                .borrow_mut()
                .push(body["uid"].as_str().unwrap().to_owned());
        }
        (status, retry_after)
    };
    for seed in 0..20 {
        assert_eq!(post(seed).0, 201);
    }

    services("stop");
    let mut saw_503 = false;
    for seed in 20..40 {
        let (status, retry_after) = post(seed);
        assert!(status == 201 || status == 503, "status {status}");
        if status == 503 {
            saw_503 = true;
            assert!(retry_after.is_some(), "503 carries Retry-After");
        }
    }
    assert!(saw_503, "writes fail while Neo4j is down");
    let (ready, _) = get_json(&format!("{}/readyz", server.url));
    assert_eq!(ready, 503);

    // The CLI keeps retrying while Neo4j comes back.
    let extra = [
        "--started-at",
        "2026-11-05T00:00:00Z",
        "--attempts",
        "30",
        "--output",
        "json",
    ];
    let cli = Command::new(crate::support::bin())
        .args(crate::support::record_args(
            &server.url,
            &service,
            999,
            "succeeded",
            &extra,
        ))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    services("start");

    let out = cli.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the CLI retried until stored: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recorded: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    acknowledged
        .borrow_mut()
        .push(recorded["uid"].as_str().unwrap().to_owned());

    // The server recovers by itself.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if post(40).0 == 201 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes did not recover; log:\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    server.wait_for("/readyz", Duration::from_secs(30));
    let acknowledged = acknowledged.into_inner();
    assert!(acknowledged.len() >= 22);
    for uid in &acknowledged {
        let (status, body) = get_json(&format!("{url}/{uid}"));
        assert_eq!(status, 200, "acknowledged {uid} is missing: {body}");
    }
    let query = run(&[
        "query",
        "deployments",
        "--store",
        &neo4j_uri(),
        "--service",
        &service,
        "--limit",
        "100",
    ]);
    assert!(query.status.success(), "{}", stderr(&query));
}
