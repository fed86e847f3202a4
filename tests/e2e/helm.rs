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

/// Runs the real `helm` against the test API server.
fn helm(args: &[&str], home: &std::path::Path) {
    let bin = std::env::var("HELM_TEST_BIN").expect("HELM_TEST_BIN is not set: run scripts/test");
    let out = std::process::Command::new(bin)
        .args(args)
        .env(
            "KUBECONFIG",
            std::env::var("KUBECONFIG_TEST").expect("KUBECONFIG_TEST"),
        )
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn chart(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(
        dir.join("Chart.yaml"),
        "apiVersion: v2\nname: web\nversion: 0.1.0\nappVersion: \"1.0\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("values.yaml"),
        "replicas: 1\nimage:\n  tag: \"1.0\"\ndb:\n  password: first\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("templates/deployment.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: {{ .Values.replicas }}\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n        - name: web\n          image: ghcr.io/acme/web:{{ .Values.image.tag }}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("templates/secret.yaml"),
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: web-db\nstringData:\n  password: {{ .Values.db.password }}\n",
    )
    .unwrap();
}

#[test]
fn diff_reads_revisions_that_real_helm_stored_in_the_cluster() {
    let home = temp_path("helm-home");
    let chart_dir = home.join("chart");
    chart(&chart_dir);
    let namespace = crate::support::unique("helm");
    let chart_arg = chart_dir.display().to_string();
    helm(
        &[
            "install",
            "web",
            &chart_arg,
            "-n",
            &namespace,
            "--create-namespace",
        ],
        &home,
    );
    helm(
        &[
            "upgrade",
            "web",
            &chart_arg,
            "-n",
            &namespace,
            "--set",
            "replicas=3",
            "--set",
            "image.tag=1.1",
            "--set",
            "db.password=second",
        ],
        &home,
    );
    let kubeconfig = std::env::var("KUBECONFIG_TEST").unwrap();
    let out = run(&[
        "helm",
        "diff",
        "web",
        "-n",
        &namespace,
        "--kubeconfig",
        &kubeconfig,
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
    let value = |p: &str| {
        values
            .iter()
            .find(|c| c["path"] == p)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        (
            value("values.replicas")["before"].as_str(),
            value("values.replicas")["after"].as_str()
        ),
        (Some("1"), Some("3"))
    );
    assert_eq!(value("values.db.password")["after"], "<redacted>");
    let resources = diff["resources"].as_array().unwrap();
    let deployment = resources
        .iter()
        .find(|r| r["key"] == format!("{namespace}, web, Deployment (apps)"))
        .unwrap();
    let kinds: Vec<&str> = deployment["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"replicas") && kinds.contains(&"image"),
        "{kinds:?}"
    );
    let secret = resources
        .iter()
        .find(|r| r["key"] == format!("{namespace}, web-db, Secret (v1)"))
        .unwrap();
    assert!(
        !secret.to_string().contains("second"),
        "secret values never leave redacted: {secret}"
    );

    let missing = run(&[
        "helm",
        "diff",
        "nope",
        "-n",
        &namespace,
        "--kubeconfig",
        &kubeconfig,
    ]);
    assert_eq!(missing.status.code(), Some(1), "{}", stderr(&missing));
    let bad = run(&[
        "helm",
        "diff",
        "web",
        "-n",
        &namespace,
        "--kubeconfig",
        &kubeconfig,
        "--from",
        "7",
    ]);
    assert_eq!(bad.status.code(), Some(1), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("it has 1, 2"), "{}", stderr(&bad));
}
