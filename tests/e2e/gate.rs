//! `deploygraph gate` against real TLS listeners on loopback (rcgen certificates).

use crate::support::{run, stderr, stdout, temp_path};
use deploygraph_probe::testing::{Ca, closed_port, kubelet_node, leaf, serve, silent};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Runs the binary off the async runtime, which keeps serving the TLS listeners meanwhile.
async fn gate(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || run(&args))
        .await
        .unwrap()
}

fn ca_file(ca: &Ca) -> String {
    let path = temp_path("ca.pem");
    std::fs::write(&path, ca.pem()).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_endpoint_passes_with_exit_0() {
    let ca = Ca::new("gate CA");
    let port = serve(leaf(Some(&ca), &["localhost"], -1, 24 * 90)).await;
    let out = gate(vec![
        "gate".into(),
        "--tls".into(),
        format!("127.0.0.1:{port}@localhost"),
        "--ca-file".into(),
        ca_file(&ca),
        "--output".into(),
        "json".into(),
    ])
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["verdict"]["pass"], true);
    assert_eq!(report["checks"][0]["status"], "pass");
    assert_eq!(
        report["checks"][0]["certificates"][0]["sans"][0],
        "localhost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_silent_and_closed_endpoints_fail_the_gate_within_its_deadline() {
    let ca = Ca::new("gate CA");
    let expired = serve(leaf(Some(&ca), &["localhost"], -48, -1)).await;
    let hanging = silent().await;
    let closed = closed_port();
    let started = Instant::now();
    let out = gate(vec![
        "gate".into(),
        "--tls".into(),
        format!("127.0.0.1:{expired}@localhost"),
        "--tls".into(),
        format!("127.0.0.1:{hanging}@localhost"),
        "--tls".into(),
        format!("127.0.0.1:{closed}@localhost"),
        "--ca-file".into(),
        ca_file(&ca),
        "--timeout".into(),
        "30s".into(),
        "--deadline".into(),
        "2s".into(),
        "--output".into(),
        "json".into(),
    ])
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the gate never hangs past its deadline"
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let statuses: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["fail", "unknown", "unknown"]);
    assert!(stderr(&out).contains("gate failed"), "{}", stderr(&out));

    // With unknown allowed, only the expired certificate fails it.
    let junit = gate(vec![
        "gate".into(),
        "--tls".into(),
        format!("127.0.0.1:{expired}@localhost"),
        "--tls".into(),
        format!("127.0.0.1:{closed}@localhost"),
        "--ca-file".into(),
        ca_file(&ca),
        "--allow-unknown".into(),
        "--output".into(),
        "junit".into(),
    ])
    .await;
    assert_eq!(junit.status.code(), Some(1));
    let xml = stdout(&junit);
    assert!(xml.contains("failures=\"1\" errors=\"1\""), "{xml}");
    assert!(xml.contains("<failure message=\"expired"), "{xml}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_drives_the_gate_and_its_errors_name_the_field() {
    let ca = Ca::new("gate CA");
    let port = serve(leaf(Some(&ca), &["localhost"], -1, 2)).await;
    let config = temp_path("gate.yaml");
    std::fs::write(
        &config,
        format!("checkend: 600\ndeadline: 5s\nca_file: {}\ntls:\n  - target: 127.0.0.1:{port}\n    server_name: localhost\n", ca_file(&ca)),
    )
    .unwrap();
    let config_arg = config.display().to_string();
    // Expires in 2 h: passes a 10-minute threshold, fails the default-day one given as a flag.
    let out = gate(vec!["gate".into(), "--config".into(), config_arg.clone()]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stdout(&out).contains("gate passed"), "{}", stdout(&out));
    let out = gate(vec![
        "gate".into(),
        "--config".into(),
        config_arg,
        "--checkend".into(),
        "86400".into(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("threshold"), "{}", stdout(&out));

    let bad = temp_path("bad.yaml");
    std::fs::write(&bad, "tls:\n  - target: nohost\n").unwrap();
    let out = gate(vec![
        "gate".into(),
        "--config".into(),
        bad.display().to_string(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("tls[0].target"), "{}", stderr(&out));
    let out = gate(vec!["gate".into()]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("nothing to check"),
        "{}",
        stderr(&out)
    );
    let out = gate(vec!["gate".into(), "--tls".into(), "no-port".into()]).await;
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_record_and_snapshot_store_what_was_checked() {
    let ca = Ca::new("gate CA");
    let good = serve(leaf(Some(&ca), &["localhost"], -1, 24 * 90)).await;
    let bad = serve(leaf(Some(&ca), &["localhost"], -48, -1)).await;
    let store = crate::support::sqlite_uri();
    let out = gate(vec![
        "gate".into(),
        "--tls".into(),
        format!("127.0.0.1:{good}@localhost"),
        "--tls".into(),
        format!("127.0.0.1:{bad}@localhost"),
        "--ca-file".into(),
        ca_file(&ca),
        "--record".into(),
        "--deployment".into(),
        "deployment-0e2e0000000000000000000000000001".into(),
        "--cluster".into(),
        "prod-eu".into(),
        "--store".into(),
        store.clone(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("recorded snapshot snapshot-"),
        "{}",
        stderr(&out)
    );

    let mermaid = gate(vec![
        "snapshot".into(),
        "--tls".into(),
        format!("127.0.0.1:{good}@localhost"),
        "--ca-file".into(),
        ca_file(&ca),
        "--mermaid".into(),
        "--store".into(),
        store.clone(),
    ])
    .await;
    assert_eq!(mermaid.status.code(), Some(0), "{}", stderr(&mermaid));
    assert!(
        stdout(&mermaid).starts_with("flowchart LR\n"),
        "{}",
        stdout(&mermaid)
    );
    assert!(
        stdout(&mermaid).contains("class c0 pass"),
        "{}",
        stdout(&mermaid)
    );

    let server = tokio::task::spawn_blocking(move || crate::support::Server::start(&store, &[]))
        .await
        .unwrap();
    let url = format!(
        "{}/v1/deployments/deployment-0e2e0000000000000000000000000001/snapshot",
        server.url
    );
    let (status, snapshot) = tokio::task::spawn_blocking(move || crate::support::get_json(&url))
        .await
        .unwrap();
    assert_eq!(status, 200, "{snapshot}");
    assert_eq!(snapshot["verdict"], "fail");
    assert_eq!(snapshot["cluster"], "prod-eu");
    let statuses: Vec<&str> = snapshot["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["pass", "fail"]);
    assert_eq!(
        snapshot["checks"][0]["certificates"][0]["sans"][0],
        "localhost"
    );
    tokio::task::spawn_blocking(move || drop(server))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_checks_each_nodes_kubelet_certificate() {
    let kubeconfig = std::env::var("KUBECONFIG_TEST")
        .expect("KUBECONFIG_TEST is not set: run through scripts/test (scripts/services up kube)");
    let nodes: kube::Api<k8s_openapi::api::core::v1::Node> =
        kube::Api::all(deploygraph_k8s::testing::client().await);
    let label = crate::support::unique("gate");
    let ca = Ca::new("kubelet CA");
    let (good, expiring) = (format!("{label}-good"), format!("{label}-expiring"));
    let good_port = serve(leaf(Some(&ca), &[&good], -1, 24 * 300)).await;
    let expiring_port = serve(leaf(Some(&ca), &[&expiring], -1, 3)).await;
    let labelled = ("deploygraph.io/gate-e2e", label.as_str());
    kubelet_node(&nodes, &good, labelled, Some(good_port)).await;
    kubelet_node(&nodes, &expiring, labelled, Some(expiring_port)).await;
    let args = |selector: &str| {
        vec![
            "gate".to_owned(),
            "--kubeconfig".into(),
            kubeconfig.clone(),
            "--k8s-node-certs".into(),
            "--k8s-node-selector".into(),
            selector.to_owned(),
            "--k8s-node-ca".into(),
            ca_file(&ca),
            "--output".into(),
            "json".into(),
        ]
    };
    let out = gate(args(&format!("deploygraph.io/gate-e2e={label}"))).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 2, "{report}");
    let of = |node: &str| {
        checks
            .iter()
            .find(|c| {
                c["target"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("node {node} kubelet 127.0.0.1:"))
            })
            .unwrap_or_else(|| panic!("{node}: {report}"))
    };
    assert_eq!(of(&good)["status"], "pass", "{report}");
    assert_eq!(of(&expiring)["status"], "fail", "{report}");
    assert!(
        of(&expiring)["detail"]
            .as_str()
            .unwrap()
            .contains("expires in"),
        "{report}"
    );
    // Only the healthy Node selected: the gate passes.
    nodes
        .patch(
            &expiring,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(
                serde_json::json!({"metadata": {"labels": {"deploygraph.io/gate-e2e": "retired"}}}),
            ),
        )
        .await
        .unwrap();
    let out = gate(args(&format!("deploygraph.io/gate-e2e={label}"))).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    // The selector needs --k8s-node-certs.
    let out = gate(vec![
        "gate".to_owned(),
        "--kubeconfig".into(),
        kubeconfig.clone(),
        "--k8s-node-selector".into(),
        "a=b".into(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    for node in [&good, &expiring] {
        nodes
            .delete(node, &kube::api::DeleteParams::default())
            .await
            .unwrap();
    }
}
