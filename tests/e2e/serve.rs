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

#[test]
fn serve_refuses_a_non_loopback_address_without_a_token() {
    let out = run(&["serve", "--listen", "0.0.0.0:0", "--store", &sqlite_uri()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("refusing to listen on 0.0.0.0:0"), "{err}");
    assert!(err.contains("--token"), "{err}");
    assert!(err.contains("--insecure-allow-anonymous-writes"), "{err}");
}

/// Starts `serve` on all interfaces with `extra` and waits for `/healthz` on loopback.
fn serve_everywhere(extra: &[&str]) -> (std::process::Child, String, std::path::PathBuf) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let log = crate::support::temp_path("serve-everywhere.log");
    let listen = format!("0.0.0.0:{port}");
    let store = sqlite_uri();
    let mut args = vec![
        "serve",
        "--listen",
        &listen,
        "--store",
        &store,
        "--log-format",
        "json",
    ];
    args.extend_from_slice(extra);
    let child = std::process::Command::new(crate::support::bin())
        .args(&args)
        .env_remove("DEPLOYGRAPH_TOKEN")
        .env_remove("DEPLOYGRAPH_INSECURE_ALLOW_ANONYMOUS_WRITES")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !crate::support::http()
        .get(format!("{url}/healthz"))
        .send()
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "serve did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    (child, url, log)
}

#[test]
fn serve_listens_beyond_loopback_with_a_token_or_the_loud_insecure_flag() {
    let (mut child, url, log) = serve_everywhere(&["--insecure-allow-anonymous-writes"]);
    let (status, _, body) = post_json(
        &format!("{url}/v1/deployments"),
        &deployment(&unique("open"), 1, 1),
        None,
    );
    assert_eq!(status, 201, "{body}");
    let logs = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        logs.lines()
            .any(|l| l.contains("\"WARN\"") && l.contains("INSECURE")),
        "{logs}"
    );
    let _ = child.kill();
    let _ = child.wait();

    let (mut child, url, _) = serve_everywhere(&["--token", "t0ken"]);
    let (status, _, _) = post_json(
        &format!("{url}/v1/deployments"),
        &deployment(&unique("closed"), 1, 1),
        None,
    );
    assert_eq!(status, 401);
    let _ = child.kill();
    let _ = child.wait();
}
