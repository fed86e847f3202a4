//! `deploygraph serve --watch-kubernetes` against the real API server: a rollout made with the
//! Kubernetes API shows up in the HTTP API, its status follows the controller's, and the metric
//! counts it; so does the edit of a ConfigMap a workload mounts.

use crate::support::{Server, create_namespace, get_json, sqlite_uri, unique};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use std::time::{Duration, Instant};

fn kubeconfig() -> String {
    std::env::var("KUBECONFIG_TEST")
        .expect("KUBECONFIG_TEST is not set: run through scripts/test (scripts/services up kube)")
}

fn wait(what: &str, server: &Server, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; log:\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn serve_records_rollouts_it_watches() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime.block_on(deploygraph_k8s::testing::client());
    let ns = unique("e2e-watch");
    let service = unique("shop");
    create_namespace(&runtime, &client, &ns, json!({}));
    let kubeconfig = kubeconfig();
    let server = Server::start(
        &sqlite_uri(),
        &[
            "--watch-kubernetes",
            "--watch-helm",
            "--watch-kubeconfig",
            &kubeconfig,
            "--watch-namespace",
            &ns,
            "--watch-environment",
            "staging",
            "--watch-selector",
            "tier=web",
            "--lease-namespace",
            &ns,
        ],
    );
    let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    runtime.block_on(async {
        api.create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "shop", "labels": {"app": service, "tier": "web"},
                             "annotations": {"org.opencontainers.image.revision": "0123456789abcdef0123456789abcdef01234567"}},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "shop"}},
                         "template": {"metadata": {"labels": {"app": "shop"}},
                                      "spec": {"containers": [{"name": "shop", "image": "registry.local/shop:1.0"}]}}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    });
    // A corrupt Helm release Secret is skipped and counted.
    runtime.block_on(async {
        let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
        let mut secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
            "metadata": {"name": "sh.helm.release.v1.broken.v1",
                         "labels": {"owner": "helm", "name": "broken", "version": "1"}},
            "type": "helm.sh/release.v1"}))
        .unwrap();
        secret.data = Some(
            [(
                "release".to_owned(),
                k8s_openapi::ByteString(b"%%%".to_vec()),
            )]
            .into(),
        );
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    });
    // Outside the selector: not recorded.
    let ignored = unique("batch");
    runtime.block_on(async {
        api.create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "batch", "labels": {"app": ignored}},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "batch"}},
                         "template": {"metadata": {"labels": {"app": "batch"}},
                                      "spec": {"containers": [{"name": "batch", "image": "registry.local/batch:1.0"}]}}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    });
    let url = format!("/v1/deployments?service={service}");
    let mut listed = json!(null);
    wait("the rollout in the API", &server, || {
        listed = get_json(&format!("{}{url}", server.url)).1;
        listed["items"].as_array().is_some_and(|i| i.len() == 1)
    });
    let rollout = &listed["items"][0];
    assert_eq!(rollout["source"], "k8s");
    assert_eq!(rollout["environment"], "staging");
    assert_eq!(rollout["namespace"], ns.as_str());
    assert_eq!(
        rollout["commit"]["sha"],
        "0123456789abcdef0123456789abcdef01234567"
    );
    assert_eq!(rollout["status"], "in_progress");
    assert_eq!(rollout["workload"]["kind"], "Deployment");
    // The controller reports it available.
    runtime.block_on(async {
        api.patch_status(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                "readyReplicas": 1, "availableReplicas": 1,
                "conditions": [{"type": "Available", "status": "True"}]}}),
            ),
        )
        .await
        .unwrap();
    });
    wait("success", &server, || {
        get_json(&format!("{}{url}", server.url)).1["items"][0]["status"] == "succeeded"
    });
    let others = get_json(&format!("{}/v1/deployments?service={ignored}", server.url)).1;
    assert_eq!(
        others["items"].as_array().map(Vec::len),
        Some(0),
        "{others}"
    );
    let metrics = || {
        crate::support::http()
            .get(format!("{}/metrics", server.url))
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    let text = metrics();
    assert!(
        text.contains(
            r#"deploygraph_rollouts_recorded_total{kind="Deployment",outcome="created"} 1"#
        ),
        "{text}"
    );
    // The Helm watcher runs on its own: wait for it to count the corrupt Secret.
    wait("the corrupt Helm release counted", &server, || {
        metrics()
            .contains(r#"deploygraph_watch_objects_skipped_total{reason="helm_release_corrupt"} 1"#)
    });

    // A ConfigMap a workload mounts, edited with the Kubernetes API: a change on the workload's
    // service in its timeline, counted. The workload is created once the ConfigMaps are
    // watched, so the watcher reads the ConfigMap when it sees the workload, before its rollout.
    wait("the ConfigMap watch", &server, || {
        server.logs().contains("watching the ConfigMaps")
    });
    let cart = unique("cart");
    runtime.block_on(async {
        let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
            Api::namespaced(client.clone(), &ns);
        config_maps
            .create(
                &PostParams::default(),
                &serde_json::from_value(
                    json!({"metadata": {"name": "cart-config"}, "data": {"MAX_ITEMS": "10"}}),
                )
                .unwrap(),
            )
            .await
            .unwrap();
        api.create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "cart", "labels": {"app": cart, "tier": "web"}},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "cart"}},
                         "template": {"metadata": {"labels": {"app": "cart"}},
                                      "spec": {"volumes": [{"name": "config", "configMap": {"name": "cart-config"}}],
                                               "containers": [{"name": "cart", "image": "registry.local/cart:1.0"}]}}}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    });
    wait("the cart rollout", &server, || {
        get_json(&format!("{}/v1/deployments?service={cart}", server.url)).1["items"]
            .as_array()
            .is_some_and(|i| i.len() == 1)
    });
    runtime.block_on(async {
        let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
            Api::namespaced(client.clone(), &ns);
        config_maps
            .patch(
                "cart-config",
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"MAX_ITEMS": "20"}})),
            )
            .await
            .unwrap();
    });
    let timeline = format!(
        "{}/v1/services/{cart}/timeline?environment=staging",
        server.url
    );
    let mut events = json!(null);
    wait("the ConfigMap edit in the timeline", &server, || {
        events = get_json(&timeline).1["events"].clone();
        events
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["kind"] == "change"))
    });
    let change = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "change")
        .unwrap();
    let summary = change["summary"].as_str().unwrap();
    assert!(
        summary.contains("data.MAX_ITEMS 10 -> 20") && summary.contains("cart-config"),
        "{summary}"
    );
    let stored = get_json(&format!(
        "{}/v1/changes/{}",
        server.url,
        change["uid"].as_str().unwrap()
    ))
    .1;
    assert_eq!(stored["kind"], "config_map");
    assert_eq!(stored["source"], "k8s");
    assert!(
        metrics().contains(
            r#"deploygraph_changes_recorded_total{kind="config_map",outcome="created"} 1"#
        ),
        "{}",
        metrics()
    );
}
