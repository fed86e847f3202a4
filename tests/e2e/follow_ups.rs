//! One ingest pipeline: a deployment reported after the alert it caused is considered for that
//! alert whatever recorded it — `record deployment --store`, the HTTP API, or the Kubernetes
//! watcher of `serve` — and so is a dependency's deployment for its dependents' alerts, and a
//! ConfigMap edit the watcher records.

use crate::support::{
    Server, create_namespace, digest, run, settled_suspects, sqlite_uri, stderr, stdout, temp_path,
    unique,
};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::time::Instant;

pub(crate) const TOKEN: &str = "f0llow-ups";

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn json_of(args: &[String]) -> Value {
    let out = run(args);
    assert!(
        out.status.success(),
        "deploygraph {} exited {:?}\n{}",
        args.join(" "),
        out.status.code(),
        stderr(&out)
    );
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

fn notification(
    fingerprint: &str,
    service: &str,
    namespace: &str,
    starts_at: DateTime<Utc>,
) -> Value {
    let labels = json!({"alertname": "HighLatency", "service": service, "namespace": namespace,
                        "environment": "production", "severity": "critical"});
    json!({
        "version": "4", "groupKey": "{}:{alertname=\"HighLatency\"}", "truncatedAlerts": 0,
        "status": "firing", "receiver": "deploygraph", "groupLabels": {"alertname": "HighLatency"},
        "commonLabels": labels, "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
        "alerts": [{"status": "firing", "labels": labels, "annotations": {},
                    "startsAt": at(starts_at), "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "http://prometheus:9090/graph", "fingerprint": fingerprint}]
    })
}

/// web depends on api; an alert on web; then a deployment of api that started 10 minutes
/// before the alert is recorded. Through the store in this process and through a server
/// alike, the alert's suspects name it.
#[test]
fn a_late_dependency_deployment_is_a_suspect_whatever_records_it() {
    for remote in [false, true] {
        let store = sqlite_uri();
        let server = remote.then(|| Server::start(&store, &["--token", TOKEN]));
        let target = match &server {
            Some(server) => strings(&["--server", &server.url, "--token", TOKEN]),
            None => strings(&["--store", &store]),
        };
        let (web, api) = (unique("web"), unique("api"));
        let topology = temp_path("topology.yaml");
        std::fs::write(
            &topology,
            format!(
                "services:\n  - name: {web}\n    namespace: prod\n    environment: production\n    depends_on: [{api}]\n"
            ),
        )
        .unwrap();
        let mut apply = strings(&["topology", "apply", &topology.display().to_string()]);
        apply.extend(target.iter().cloned());
        apply.extend(strings(&["--output", "json"]));
        json_of(&apply);

        let alert_at =
            DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap() - Duration::minutes(30);
        let fingerprint = format!("{:016x}", rand::random::<u64>());
        let file = temp_path("alert.json");
        std::fs::write(
            &file,
            notification(&fingerprint, &web, "prod", alert_at).to_string(),
        )
        .unwrap();
        let mut record_alert = strings(&["record", "alert", &file.display().to_string()]);
        record_alert.extend(target.iter().cloned());
        record_alert.extend(strings(&["--output", "json"]));
        json_of(&record_alert);

        let image = format!("ghcr.io/acme/{api}@{}", digest(9));
        let started = at(alert_at - Duration::minutes(10));
        let mut record = strings(&[
            "record",
            "deployment",
            "--service",
            &api,
            "--namespace",
            "prod",
            "--environment",
            "production",
            "--commit",
            "9fceb02d0ae598e95dc970b74767f19372d61af8",
            "--image",
            &image,
            "--status",
            "succeeded",
            "--started-at",
            &started,
            "--change",
            "values.timeout=30s->5s",
            "--output",
            "json",
        ]);
        record.extend(target.iter().cloned());
        let recorded = json_of(&record);

        // `query suspects` waits while the server's workers have the re-attribution pending.
        let mut suspects = strings(&[
            "query",
            "suspects",
            "--alert",
            &fingerprint,
            "--output",
            "json",
        ]);
        suspects.extend(target.iter().cloned());
        let mut view = json_of(&suspects);
        let deadline = Instant::now() + std::time::Duration::from_secs(30);
        while view["suspects"][0]["deployment"]["uid"] != recorded["uid"]
            && Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(200));
            view = json_of(&suspects);
        }
        assert_eq!(
            view["suspects"][0]["deployment"]["uid"], recorded["uid"],
            "remote={remote}: the late dependency deployment is the suspect: {view}"
        );
    }
}

/// The Kubernetes watcher of `serve` records a rollout after an alert it precedes was stored:
/// the pipeline re-attributes the alert to it, as it does for the API's deployments.
/// A new namespace and a `serve` on SQLite whose Kubernetes watcher watches it (and holds its
/// lease there).
pub(crate) fn watching_server(
    runtime: &tokio::runtime::Runtime,
    prefix: &str,
) -> (kube::Client, String, Server) {
    watching_server_with(runtime, prefix, &[])
}

/// [`watching_server`] with more flags for `serve`.
pub(crate) fn watching_server_with(
    runtime: &tokio::runtime::Runtime,
    prefix: &str,
    extra: &[&str],
) -> (kube::Client, String, Server) {
    let client = runtime.block_on(deploygraph_k8s::testing::client());
    let ns = unique(prefix);
    create_namespace(runtime, &client, &ns, json!({}));
    let kubeconfig = std::env::var("KUBECONFIG_TEST")
        .expect("KUBECONFIG_TEST is not set: run through scripts/test (scripts/services up kube)");
    let mut args = vec![
        "--token",
        TOKEN,
        "--watch-kubernetes",
        "--watch-kubeconfig",
        &kubeconfig,
        "--watch-namespace",
        &ns,
        "--watch-environment",
        "production",
        "--lease-namespace",
        &ns,
    ];
    args.extend_from_slice(extra);
    let server = Server::start(&sqlite_uri(), &args);
    (client, ns, server)
}

#[test]
fn a_rollout_the_watcher_records_late_is_a_suspect() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (client, ns, server) = watching_server(&runtime, "e2e-late");
    let service = unique("cart");
    // The alert starts a minute from now: the rollout made next starts before it, and is
    // recorded after it.
    let alert_at = Utc::now() + Duration::minutes(1);
    let fingerprint = format!("{:016x}", rand::random::<u64>());
    let (status, _, body) = crate::support::post_json(
        &format!("{}/v1/alerts/alertmanager", server.url),
        &notification(&fingerprint, &service, &ns, alert_at),
        Some(TOKEN),
    );
    assert_eq!(status, 200, "{body}");
    let (_, before) = settled_suspects(&server.url, &fingerprint);
    assert!(
        before["suspects"].as_array().unwrap().is_empty(),
        "{before}"
    );

    let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    runtime.block_on(async {
        api.create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "cart", "labels": {"app": service}},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "cart"}},
                         "template": {"metadata": {"labels": {"app": "cart"}},
                                      "spec": {"containers": [{"name": "cart", "image": "registry.local/cart:2.0"}]}}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    });
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, view) = settled_suspects(&server.url, &fingerprint);
        let top = &view["suspects"][0]["deployment"];
        if top["source"] == "k8s" && top["service"] == service.as_str() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the watcher's rollout never became the suspect: {view}\n{}",
            server.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // The follow-up is counted once it is finished, a moment after its attribution is stored.
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let text = crate::support::http()
            .get(format!("{}/metrics", server.url))
            .send()
            .unwrap()
            .text()
            .unwrap();
        if text.contains("deploygraph_follow_ups_total{kind=\"deployment\",outcome=\"done\"}") {
            break;
        }
        assert!(Instant::now() < deadline, "{text}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A ConfigMap a Deployment mounts is edited with the Kubernetes API shortly before an alert on
/// the Deployment's service: the watcher of `serve` records the edit, its follow-up
/// re-attributes the alert, and the edit is one of the alert's suspects with its key diff.
#[test]
fn a_config_map_edit_the_watcher_records_is_a_suspect() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (client, ns, server) = watching_server(&runtime, "e2e-cm");
    let service = unique("orders");
    // Once ConfigMaps are watched, a new workload's ConfigMap is read before its rollout is
    // recorded: the rollout in the API means the edit below is compared with it.
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while !server.logs().contains("watching the ConfigMaps") {
        assert!(
            Instant::now() < deadline,
            "the ConfigMaps are never watched: {}",
            server.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), &ns);
    runtime.block_on(async {
        config_maps
            .create(
                &PostParams::default(),
                &serde_json::from_value(
                    json!({"metadata": {"name": "orders-db"}, "data": {"POOL_SIZE": "50"}}),
                )
                .unwrap(),
            )
            .await
            .unwrap();
        Api::<Deployment>::namespaced(client.clone(), &ns)
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": "orders", "labels": {"app": service}},
                    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "orders"}},
                             "template": {"metadata": {"labels": {"app": "orders"}},
                                          "spec": {"containers": [{"name": "orders", "image": "registry.local/orders:1.0",
                                                   "envFrom": [{"configMapRef": {"name": "orders-db"}}]}]}}}
                }))
                .unwrap(),
            )
            .await
            .unwrap();
    });
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while crate::support::get_json(&format!("{}/v1/deployments?service={service}", server.url)).1
        ["items"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        assert!(Instant::now() < deadline, "the rollout is never recorded: {}", server.logs());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The alert starts a minute from now; the edit lands before it.
    let fingerprint = format!("{:016x}", rand::random::<u64>());
    let (status, _, body) = crate::support::post_json(
        &format!("{}/v1/alerts/alertmanager", server.url),
        &notification(
            &fingerprint,
            &service,
            &ns,
            Utc::now() + Duration::minutes(1),
        ),
        Some(TOKEN),
    );
    assert_eq!(status, 200, "{body}");
    runtime.block_on(async {
        config_maps
            .patch(
                "orders-db",
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"POOL_SIZE": "5"}})),
            )
            .await
            .unwrap();
    });
    let deadline = Instant::now() + std::time::Duration::from_secs(60);
    let suspect = loop {
        let (_, view) = settled_suspects(&server.url, &fingerprint);
        if let Some(found) = view["suspects"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["subject"] == "change").cloned())
        {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "the ConfigMap edit never became a suspect: {view}\n{}",
            server.logs()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let change = &suspect["change"];
    assert_eq!(change["kind"], "config_map", "{suspect}");
    assert_eq!(change["source"], "k8s");
    assert_eq!(
        change["diff"],
        json!([{"key": "data.POOL_SIZE", "before": "50", "after": "5"}]),
        "{suspect}"
    );
    assert!(
        suspect["confidence_score"].as_f64().unwrap() > 0.0,
        "{suspect}"
    );
}
