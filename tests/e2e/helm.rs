//! `deploygraph helm decode|diff` on release Secrets saved as `kubectl get secret -o json`
//! prints them: gzip and plain payloads, corrupt ones.

use crate::support::{run, stderr, stdout, temp_path};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use std::io::Write as _;

fn release(revision: u32, replicas: u32, tag: &str, password: &str) -> Value {
    json!({
        "name": "web", "namespace": "prod", "version": revision,
        "info": {"status": if revision == 1 { "superseded" } else { "deployed" },
                 "last_deployed": "2026-11-20T10:00:00Z", "description": "Upgrade complete"},
        "chart": {"metadata": {"name": "web", "version": "1.4.0", "appVersion": tag},
                  "values": {"replicas": 1, "image": {"tag": "latest"}}},
        "config": {"replicas": replicas, "image": {"tag": tag}, "db": {"password": password}},
        "manifest": format!(
            "---\n# Source: web/templates/deployment.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: {replicas}\n  template:\n    spec:\n      containers:\n        - name: web\n          image: ghcr.io/acme/web:{tag}\n"
        )
    })
}

/// Writes a release Secret file: Helm's base64 of (gzip of) the JSON, base64 again as the API does.
fn secret_file(release: &Value, gzip: bool) -> String {
    let json = release.to_string().into_bytes();
    let payload = if gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&json).unwrap();
        enc.finish().unwrap()
    } else {
        json
    };
    let data = STANDARD.encode(STANDARD.encode(payload));
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
        "metadata": {"name": format!("sh.helm.release.v1.web.v{}", release["version"]),
                     "labels": {"owner": "helm", "name": "web", "version": release["version"].to_string()}},
        "data": {"release": data}
    });
    let path = temp_path("secret.json");
    std::fs::write(&path, secret.to_string()).unwrap();
    path.display().to_string()
}

#[test]
fn decode_prints_the_release_summary_with_secrets_redacted() {
    for gzip in [true, false] {
        let file = secret_file(&release(7, 3, "2.1.0", "hunter2"), gzip);
        let out = run(&["helm", "decode", &file, "--output", "json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let summary: Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(summary["revision"], 7);
        assert_eq!(summary["chart"], "web-1.4.0");
        assert_eq!(summary["app_version"], "2.1.0");
        assert_eq!(summary["values"]["db"]["password"], "<redacted>");
        assert_eq!(summary["resources"], 1);
        let text = run(&["helm", "decode", &file]);
        assert!(
            stdout(&text).contains("revision:    7"),
            "{}",
            stdout(&text)
        );
        assert!(!stdout(&text).contains("hunter2"));
    }
}

#[test]
fn diff_reports_values_and_resource_changes() {
    let from = secret_file(&release(1, 2, "2.0.0", "old"), true);
    let to = secret_file(&release(2, 3, "2.1.0", "new"), false);
    let out = run(&[
        "helm",
        "diff",
        "--from-secret",
        &from,
        "--to-secret",
        &to,
        "--output",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let diff: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        (diff["from"].as_u64(), diff["to"].as_u64()),
        (Some(1), Some(2))
    );
    let values = diff["values"].as_array().unwrap();
    let path = |p: &str| {
        values
            .iter()
            .find(|c| c["path"] == p)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(path("values.replicas")["after"], "3");
    assert_eq!(path("values.image.tag")["before"], "2.0.0");
    assert_eq!(path("values.db.password")["after"], "<redacted>");
    let resource = &diff["resources"][0];
    assert_eq!(resource["key"], "prod, web, Deployment (apps)");
    let kinds: Vec<&str> = resource["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"replicas") && kinds.contains(&"image"),
        "{kinds:?}"
    );

    let text = run(&["helm", "diff", "--from-secret", &from, "--to-secret", &to]);
    assert!(
        stdout(&text).contains("prod, web, Deployment (apps) has changed:"),
        "{}",
        stdout(&text)
    );
}

#[test]
fn corrupt_secrets_exit_2_naming_the_file() {
    let path = temp_path("bad.json");
    let bad = json!({"apiVersion": "v1", "kind": "Secret", "data": {"release": STANDARD.encode("not base64 at all!")}});
    std::fs::write(&path, bad.to_string()).unwrap();
    let file = path.display().to_string();
    let out = run(&["helm", "decode", &file]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(&file), "{}", stderr(&out));
    let missing = run(&["helm", "decode", "/nonexistent/secret.json"]);
    assert_eq!(missing.status.code(), Some(2));
}
