//! Two clusters, one graph: two `deploygraph serve` processes on one Neo4j, each watching "its"
//! cluster (`--cluster`) of the real API server, see the same workload. Each rollout is recorded
//! once per cluster under that cluster's Service; listings filter by cluster; an alert labelled
//! with a cluster is attributed to that cluster's rollout only, and a CI deployment that names no
//! cluster lands in `default`.

use crate::support::{
    NEO4J, Server, create_namespace, delete_namespace, firing, get_json, neo4j_uri, post_json,
    settled_suspects, unique,
};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn wait(what: &str, servers: &[&Server], mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; logs:\n{}",
            servers
                .iter()
                .map(|s| s.logs())
                .collect::<Vec<_>>()
                .join("\n----\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn items(body: &Value) -> Vec<Value> {
    body["items"].as_array().cloned().unwrap_or_default()
}

#[test]
fn two_clusters_watched_into_one_graph_keep_their_rollouts_apart() {
    let _shared = NEO4J
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime.block_on(deploygraph_k8s::testing::client());
    let ns = unique("e2e-clusters");
    let service = unique("pay");
    create_namespace(&runtime, &client, &ns, json!({}));
    let kubeconfig = std::env::var("KUBECONFIG_TEST")
        .expect("KUBECONFIG_TEST is not set: run through scripts/test (scripts/services up kube)");
    let watcher = |cluster: &str| {
        let lease = format!("watcher-{cluster}");
        Server::start(
            &neo4j_uri(),
            &[
                "--cluster",
                cluster,
                "--watch-kubernetes",
                "--watch-kubeconfig",
                &kubeconfig,
                "--watch-namespace",
                &ns,
                "--watch-environment",
                "production",
                "--lease-namespace",
                &ns,
                "--lease-name",
                &lease,
            ],
        )
    };
    let eu = watcher("eu-1");
    let us = watcher("us-2");
    eu.wait_for("/readyz", Duration::from_secs(60));
    us.wait_for("/readyz", Duration::from_secs(60));

    let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    runtime.block_on(async {
        api.create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "pay", "labels": {"app": service}},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "pay"}},
                         "template": {"metadata": {"labels": {"app": "pay"}},
                                      "spec": {"containers": [{"name": "pay", "image": "registry.local/pay:1.0"}]}}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    });
    let listing = |server: &Server, query: &str| {
        get_json(&format!(
            "{}/v1/deployments?service={service}{query}",
            server.url
        ))
        .1
    };
    wait("one rollout per cluster", &[&eu, &us], || {
        items(&listing(&eu, "")).len() == 2
    });
    let all = items(&listing(&us, ""));
    let clusters: BTreeSet<&str> = all.iter().filter_map(|d| d["cluster"].as_str()).collect();
    assert_eq!(clusters, BTreeSet::from(["eu-1", "us-2"]), "{all:?}");
    assert_ne!(all[0]["uid"], all[1]["uid"]);
    let in_eu = items(&listing(&us, "&cluster=eu-1"));
    assert_eq!(in_eu.len(), 1, "{in_eu:?}");
    assert_eq!(in_eu[0]["cluster"], "eu-1");
    assert_eq!(in_eu[0]["source"], "k8s");
    let eu_rollout = in_eu[0]["uid"].as_str().unwrap().to_owned();
    // A bad cluster is refused naming the parameter.
    let (status, error) = get_json(&format!(
        "{}/v1/deployments?service={service}&cluster=-eu",
        eu.url
    ));
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"]["field"], "cluster", "{error}");

    // A CI deployment of the same service that names no cluster is in `default`.
    let mut ci = crate::support::deployment(&service, 0, 77);
    ci["namespace"] = json!(ns);
    ci["started_at"] = json!(crate::support::rfc3339(
        chrono::Utc::now() - chrono::Duration::minutes(1)
    ));
    let (status, _, recorded) = post_json(&format!("{}/v1/deployments", eu.url), &ci, None);
    assert_eq!(status, 201, "{recorded}");
    assert_eq!(recorded["cluster"], "default");
    let (_, services) = get_json(&format!("{}/v1/services", eu.url));
    let mut ours: Vec<(String, u64)> = items(&services)
        .iter()
        .filter(|s| s["name"] == service.as_str())
        .map(|s| {
            (
                s["cluster"].as_str().unwrap().to_owned(),
                s["deployments"].as_u64().unwrap(),
            )
        })
        .collect();
    ours.sort();
    assert_eq!(
        ours,
        vec![
            ("default".to_owned(), 1),
            ("eu-1".to_owned(), 1),
            ("us-2".to_owned(), 1)
        ]
    );

    // An alert from eu-1's Prometheus (its `cluster` external label) suspects eu-1's rollout,
    // never the same workload's rollout in us-2 nor the CI deployment in `default`.
    let fingerprint = unique("fp");
    let mut notification = firing(
        "HighErrors",
        &fingerprint,
        &service,
        chrono::Utc::now() + chrono::Duration::minutes(1),
        None,
    );
    for pointer in ["/commonLabels", "/alerts/0/labels"] {
        let labels = notification.pointer_mut(pointer).unwrap();
        labels["namespace"] = json!(ns);
        labels["cluster"] = json!("eu-1");
    }
    let (status, _, body) = post_json(
        &format!("{}/v1/alerts/alertmanager", us.url),
        &notification,
        None,
    );
    assert_eq!(status, 200, "{body}");
    let (status, suspects) = settled_suspects(&us.url, &fingerprint);
    assert_eq!(status, 200, "{suspects}");
    let named: Vec<&str> = suspects["suspects"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["uid"].as_str())
        .collect();
    assert_eq!(
        named,
        vec![eu_rollout.as_str()],
        "{suspects}\nlogs of eu-1:\n{}\nlogs of us-2:\n{}",
        eu.logs(),
        us.logs()
    );
    let (_, alerts) = get_json(&format!(
        "{}/v1/alerts?service={service}&cluster=us-2",
        eu.url
    ));
    assert!(items(&alerts).is_empty(), "{alerts}");
    let (_, alerts) = get_json(&format!(
        "{}/v1/alerts?service={service}&cluster=eu-1",
        eu.url
    ));
    assert_eq!(items(&alerts).len(), 1, "{alerts}");
    delete_namespace(&runtime, &client, &ns);
}
