//! `deploygraph serve` on the embedded store: ingest over HTTP, the CLI against the server,
//! graceful shutdown, token auth.

use crate::support::{
    Server, deployment, get_json, post_json, record_args, run, sqlite_uri, stderr, stdout, unique,
};
use serde_json::Value;

#[test]
fn serve_ingests_lists_and_stops_gracefully_on_sigterm() {
    let mut server = Server::start(&sqlite_uri(), &["--token", "t0ken"]);
    let service = unique("svc");
    let url = format!("{}/v1/deployments", server.url);
    let (status, _, _) = post_json(&url, &deployment(&service, 1, 1), None);
    assert_eq!(status, 401);
    let (status, _, created) = post_json(&url, &deployment(&service, 1, 1), Some("t0ken"));
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["changes"][0]["after"], "<redacted>",
        "secrets are redacted"
    );
    assert!(
        !server.logs().contains("new-secret"),
        "secrets never reach the log"
    );

    // The CLI posts to the server.
    let extra = [
        "--token",
        "t0ken",
        "--namespace",
        "prod",
        "--started-at",
        "2026-11-01T00:05:00Z",
        "--output",
        "json",
    ];
    let out = run(&record_args(&server.url, &service, 2, "failed", &extra));
    assert!(out.status.success(), "{}", stderr(&out));
    let recorded: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(recorded["follows"], created["uid"]);

    // A rejection is exit 1 with the server's message.
    let out = run(&record_args(
        &server.url,
        &service,
        2,
        "failed",
        &["--token", "wrong"],
    ));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));

    let query = run(&[
        "query",
        "deployments",
        "--server",
        &server.url,
        "--service",
        &service,
        "--output",
        "json",
    ]);
    assert!(query.status.success(), "{}", stderr(&query));
    let page: Value = serde_json::from_str(&stdout(&query)).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let (status, services) = get_json(&format!("{}/v1/services", server.url));
    assert_eq!(status, 200);
    assert!(
        services["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == service.as_str())
    );

    let exit = server.stop();
    assert!(
        exit.success(),
        "exit status {exit:?}; log:\n{}",
        server.logs()
    );
    let logs = server.logs();
    assert!(
        logs.lines()
            .all(|l| l.is_empty() || serde_json::from_str::<Value>(l).is_ok()),
        "json logs:\n{logs}"
    );
    assert!(logs.contains("shutting down"), "{logs}");
}
