//! The CLI against the embedded store: record, query, exit codes, migrations.

use crate::support::{digest, run, sqlite_uri, stderr, stdout, temp_path};
use serde_json::Value;

fn record(store: &str, extra: &[&str]) -> std::process::Output {
    let image = format!("ghcr.io/acme/payments:v2.3.0@{}", digest(1));
    let mut args = vec![
        "record",
        "deployment",
        "--store",
        store,
        "--service",
        "payments",
        "--environment",
        "production",
        "--commit",
        "9fceb02d0ae598e95dc970b74767f19372d61af8",
        "--image",
        &image,
        "--status",
        "succeeded",
        "--started-at",
        "2026-11-20T10:05:00Z",
    ];
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn record_then_query_on_the_embedded_store() {
    let store = sqlite_uri();
    let first = record(&store, &["--output", "json"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let recorded: Value = serde_json::from_str(&stdout(&first)).unwrap();
    let again = record(&store, &[]);
    assert!(again.status.success());
    assert!(
        stdout(&again).starts_with("already recorded"),
        "{}",
        stdout(&again)
    );

    let query = run(&[
        "query",
        "deployments",
        "--store",
        &store,
        "--service",
        "payments",
        "--output",
        "json",
    ]);
    assert!(query.status.success(), "{}", stderr(&query));
    let page: Value = serde_json::from_str(&stdout(&query)).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["uid"], recorded["uid"]);
    assert_eq!(page["items"][0]["images"][0]["tag"], "v2.3.0");

    let text = run(&["query", "deployments", "--store", &store]);
    assert!(stdout(&text).contains("payments"), "{}", stdout(&text));
}

#[test]
fn usage_errors_exit_2_and_name_the_flag() {
    let store = sqlite_uri();
    for (extra, flag) in [
        (vec!["--commit", "not-a-sha"], "--commit"),
        (vec!["--started-at", "yesterday"], "--started-at"),
        (vec!["--status", "done"], "--status"),
    ] {
        let out = record(&store, &extra);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(flag), "{}", stderr(&out));
    }
    let bad_image = run(&[
        "record",
        "deployment",
        "--store",
        &store,
        "--service",
        "payments",
        "--environment",
        "production",
        "--commit",
        "9fceb02",
        "--image",
        "ghcr.io/acme/payments:v1",
        "--status",
        "succeeded",
    ]);
    assert_eq!(bad_image.status.code(), Some(2));
    assert!(stderr(&bad_image).contains("--image"));
    let missing = run(&["record", "deployment", "--service", "payments"]);
    assert_eq!(missing.status.code(), Some(2));
    let bad_store = run(&["migrate", "--store", "postgres://x"]);
    assert_eq!(bad_store.status.code(), Some(2));
    assert!(
        stderr(&bad_store).contains("--store"),
        "{}",
        stderr(&bad_store)
    );
    // Nothing was written by any of them.
    let query = run(&[
        "query",
        "deployments",
        "--store",
        &store,
        "--output",
        "json",
    ]);
    let page: Value = serde_json::from_str(&stdout(&query)).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 0);
}

#[test]
fn a_reused_id_is_rejected_with_exit_1() {
    let store = sqlite_uri();
    assert!(
        record(&store, &["--id", "run-1", "--release-version", "v1"])
            .status
            .success()
    );
    let out = record(&store, &["--id", "run-1", "--release-version", "v2"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("run-1"), "{}", stderr(&out));
}

#[test]
fn an_edited_applied_migration_is_refused_by_name() {
    let dir = temp_path("migrations");
    for backend in ["sqlite", "neo4j"] {
        let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../migrations")
            .join(backend);
        std::fs::create_dir_all(dir.join(backend)).unwrap();
        for entry in std::fs::read_dir(source).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, dir.join(backend).join(path.file_name().unwrap())).unwrap();
        }
    }
    let store = sqlite_uri();
    let dir_arg = dir.display().to_string();
    let first = run(&["migrate", "--store", &store, "--migrations-dir", &dir_arg]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stdout(&first).contains("applied 0001_init.sql"),
        "{}",
        stdout(&first)
    );
    let second = run(&["migrate", "--store", &store, "--migrations-dir", &dir_arg]);
    assert!(
        stdout(&second).contains("up to date"),
        "{}",
        stdout(&second)
    );

    let file = dir.join("sqlite/0001_init.sql");
    let mut body = std::fs::read_to_string(&file).unwrap();
    body.push_str("\nCREATE INDEX extra ON services (sla_tier);\n");
    std::fs::write(&file, body).unwrap();
    let refused = run(&["migrate", "--store", &store, "--migrations-dir", &dir_arg]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("0001_init.sql"),
        "{}",
        stderr(&refused)
    );
    assert!(
        stderr(&refused).contains("changed after it was applied"),
        "{}",
        stderr(&refused)
    );
}
