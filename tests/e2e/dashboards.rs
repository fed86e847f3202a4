//! The alert rules and the Grafana dashboard in `deploy/`, tested for real: `promtool` checks
//! the rules and runs their unit tests; a real Prometheus loads the rules and scrapes a real
//! `serve` (its Kubernetes watcher leading on the real API server) that recorded deployments,
//! an alert, a snapshot and a chaos run through the API, and every query of the dashboard
//! returns series.

use crate::support::{Server, digest, firing, free_port, post_json, rfc3339, temp_path, unique};
use chrono::{Duration, Utc};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

/// The write token of the watching server `follow_ups::watching_server` starts.
const TOKEN: &str = crate::follow_ups::TOKEN;

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(deploy_dir().join("prometheus"))
        .output()
        .expect("promtool (Debian's prometheus package, installed by scripts/test) runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}: {text}");
    text
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let checked = promtool(&["check", "rules", "deploygraph-rules.yaml"]);
    assert!(checked.contains("SUCCESS: 7 rules found"), "{checked}");
    let tested = promtool(&["test", "rules", "deploygraph-rules.test.yaml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// A Prometheus of its own, scraping `target` every second with the rules loaded.
struct Prometheus {
    child: Child,
    url: String,
}

impl Prometheus {
    fn start(target: &str) -> Self {
        let dir = temp_path("prometheus");
        std::fs::create_dir_all(&dir).unwrap();
        let rules = deploy_dir().join("prometheus/deploygraph-rules.yaml");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
                 rule_files: [{rules:?}]\n\
                 scrape_configs:\n  - job_name: deploygraph\n    static_configs:\n      - targets: [{target:?}]\n",
                rules = rules.canonicalize().unwrap().display().to_string(),
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .args([
                &format!("--config.file={}", config.display()),
                &format!("--storage.tsdb.path={}", dir.join("data").display()),
                &format!("--web.listen-address=127.0.0.1:{port}"),
                "--log.level=warn",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus (Debian's package, installed by scripts/test) starts");
        let prometheus = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        prometheus.wait(|p| {
            reqwest::blocking::get(format!("{}/-/ready", p.url))
                .is_ok_and(|r| r.status().is_success())
        });
        prometheus
    }

    fn query(&self, expr: &str) -> Vec<Value> {
        let body: Value = crate::support::http()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", expr)])
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(body["status"], "success", "{expr}: {body}");
        body["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn wait(&self, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + std::time::Duration::from_secs(90);
        while !done(self) {
            assert!(Instant::now() < deadline, "Prometheus did not get there");
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The dashboard's queries: `(panel title, expr)`.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(deploy_dir().join("grafana/deploygraph.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "every panel reads the dashboard's Prometheus"
        );
        for target in panel["targets"].as_array().unwrap() {
            queries.push((
                panel["title"].as_str().unwrap().to_owned(),
                target["expr"].as_str().unwrap().to_owned(),
            ));
        }
    }
    queries
}

fn activity(server: &Server) {
    let base = &server.url;
    let service = unique("dash");
    let now = Utc::now();
    for (minutes, status, seed) in [(30, "succeeded", 1), (10, "failed", 2)] {
        let body = json!({
            "service": service, "namespace": "prod", "environment": "production",
            "commit": {"sha": "9fceb02d0ae598e95dc970b74767f19372d61af8"},
            "images": [{"repository": format!("ghcr.io/acme/{service}"), "tag": format!("v{seed}"), "digest": digest(seed)}],
            "status": status, "started_at": rfc3339(now - Duration::minutes(minutes)),
        });
        let (code, _, out) = post_json(&format!("{base}/v1/deployments"), &body, Some(TOKEN));
        assert_eq!(code, 201, "{out}");
    }
    let fingerprint = format!("{:016x}", rand::random::<u64>() | 1);
    let alert = firing(
        "DashErrors",
        &fingerprint,
        &service,
        now - Duration::minutes(5),
        None,
    );
    let (code, _, out) = post_json(
        &format!("{base}/v1/alerts/alertmanager"),
        &alert,
        Some(TOKEN),
    );
    assert_eq!(code, 200, "{out}");
    let snapshot = json!({
        "taken_at": rfc3339(now),
        "checks": [{"kind": "dns", "target": "kubernetes.default.svc", "status": "fail",
                    "detail": "NXDOMAIN", "latency_ms": 3}],
    });
    let (code, _, out) = post_json(&format!("{base}/v1/snapshots"), &snapshot, Some(TOKEN));
    assert_eq!(code, 201, "{out}");
    let chaos = json!({
        "scenario": "pod-delete", "experiment": "pod-delete", "verdict": "Pass", "phase": "Completed",
        "target": {"name": service, "namespace": "prod", "environment": "production"},
        "started_at": rfc3339(now - Duration::minutes(20)), "ended_at": rfc3339(now - Duration::minutes(19)),
    });
    let (code, _, out) = post_json(&format!("{base}/v1/chaos/runs"), &chaos, Some(TOKEN));
    assert_eq!(code, 201, "{out}");
}

#[test]
fn every_dashboard_query_returns_series_from_a_real_prometheus() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // The admission gate too, so that its decisions are scraped.
    let ca = deploygraph_probe::testing::Ca::new("dashboard gate CA");
    let serving = deploygraph_probe::testing::leaf(Some(&ca), &["127.0.0.1"], -1, 24);
    let dir = crate::support::temp_path("gate");
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    std::fs::write(&cert, &serving.pem).unwrap();
    std::fs::write(&key, &serving.key_pem).unwrap();
    let gate = format!("127.0.0.1:{}", crate::support::free_port());
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let (_client, _ns, server) = crate::follow_ups::watching_server_with(
        &runtime,
        "e2e-dash",
        &[
            "--admission-tls-cert",
            &cert,
            "--admission-tls-key",
            &key,
            "--admission-listen",
            &gate,
        ],
    );
    activity(&server);
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "dash-1", "operation": "CREATE", "namespace": "prod", "name": "web",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "object": {"metadata": {"name": "web"}, "spec": {"template": {"spec": {
                "containers": [{"name": "web", "image": "registry.local/web:v1"}]}}}}}});
    let answer: Value = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .build()
        .unwrap()
        .post(format!("https://{gate}/v1/admission/validate"))
        .json(&review)
        .send()
        .unwrap()
        .json()
        .unwrap();
    // The snapshot `activity` recorded failed: refused.
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    let target = server.url.trim_start_matches("http://").to_owned();
    let prometheus = Prometheus::start(&target);

    // The rules are loaded, and the scrapes see a leading watcher and a ready store.
    prometheus.wait(|p| !p.query("deploygraph_watch_leading == 1").is_empty());
    prometheus.wait(|p| !p.query("deploygraph_store_ready == 1").is_empty());
    let rules: Value = crate::support::http()
        .get(format!("{}/api/v1/rules", prometheus.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let loaded: Vec<&str> = rules["data"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(loaded.len(), 7, "{rules}");
    assert!(loaded.contains(&"DeploygraphStoreDown"), "{loaded:?}");

    // Every query of every panel answers with series (rates need two scrapes of a counter).
    let queries = dashboard_queries();
    assert!(queries.len() >= 13, "{queries:?}");
    for (title, expr) in &queries {
        prometheus.wait(|p| !p.query(expr).is_empty());
        let series = prometheus.query(expr);
        assert!(!series.is_empty(), "{title}: {expr}");
    }
    // The figures are the recorded ones.
    let by_status = prometheus.query("sum by (status) (deploygraph_deployments_recorded_total)");
    let statuses: Vec<&str> = by_status
        .iter()
        .filter_map(|s| s["metric"]["status"].as_str())
        .collect();
    assert!(
        statuses.contains(&"succeeded") && statuses.contains(&"failed"),
        "{by_status:?}"
    );
    let verdicts = prometheus.query("deploygraph_snapshots_taken_total{verdict=\"fail\"}");
    assert_eq!(verdicts.len(), 1, "{verdicts:?}");
    let chaos = prometheus
        .query("deploygraph_chaos_runs_recorded_total{verdict=\"Pass\", outcome=\"created\"}");
    assert_eq!(chaos.len(), 1, "{chaos:?}");
}
