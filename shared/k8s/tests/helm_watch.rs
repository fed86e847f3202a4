//! The Helm watcher against the real API server: release Secrets built by the test (11
//! revisions, gzip and plain payloads, a Helm-4-style record, a failed upgrade and a rollback,
//! corrupt Secrets), recorded into both stores; and with the workload watcher on too, a Helm
//! upgrade is one DeploymentEvent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use deploygraph_k8s::helm_watch::HelmWatcher;
use deploygraph_k8s::progress::SkipReason;
use deploygraph_k8s::watcher::{WatchConfig, WorkloadWatcher};
use deploygraph_model::{
    ChangeKind, Deployment, DeploymentStatus, Environment, ServiceName, Source,
};
use deploygraph_store::{DeploymentFilter, GraphStore};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment as K8sDeployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

fn production() -> Environment {
    Environment::parse("production").unwrap()
}

/// Helm's record of revision `r` of `name`: image tag 1.r, replicas r % 3 + 1, a ConfigMap
/// from revision 3 to 4, a Secret whose value changes; revision 7 failed, 8 rolled back to 6.
fn release(name: &str, ns: &str, r: u32, last: u32, helm4: bool) -> Value {
    let (status, description) = match r {
        7 => (
            "failed",
            "Upgrade \"web\" failed: context deadline exceeded",
        ),
        8 => (
            if r == last { "deployed" } else { "superseded" },
            "Rollback to 6",
        ),
        _ if r == last => ("deployed", "Upgrade complete"),
        _ => ("superseded", "Upgrade complete"),
    };
    let tag = if r == 8 {
        "1.6".to_owned()
    } else {
        format!("1.{r}")
    };
    let replicas = r % 3 + 1;
    let mut manifest = format!(
        "---\n# Source: web/templates/deployment.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  annotations:\n    deploygraph.io/commit: \"{:040x}\"\nspec:\n  replicas: {replicas}\n  template:\n    spec:\n      containers:\n        - name: web\n          image: ghcr.io/acme/web:{tag}\n---\n# Source: web/templates/secret.yaml\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}-db\nstringData:\n  password: pw-{r}\n",
        u128::from(r) + 0xabc
    );
    if (3..=4).contains(&r) {
        manifest.push_str(&format!("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}-flags\ndata:\n  beta: \"on\"\n"));
    }
    let mut record = json!({
        "name": name, "namespace": ns, "version": r,
        "info": {"status": status, "first_deployed": "2026-11-20T09:00:00Z",
                 "last_deployed": format!("2026-11-20T10:{:02}:00Z", r), "description": description},
        "chart": {"metadata": {"name": "web", "version": format!("0.{r}.0"), "appVersion": tag},
                  "values": {"replicas": 1}},
        "config": {"replicas": replicas, "image": {"tag": tag}, "db": {"password": format!("pw-{r}")}},
        "manifest": manifest
    });
    if helm4 {
        // Helm 4 omits zero-valued fields.
        record.as_object_mut().unwrap().remove("namespace");
        record["info"]
            .as_object_mut()
            .unwrap()
            .remove("first_deployed");
    }
    record
}

fn helm_layer(record: &[u8], gzip: bool) -> Vec<u8> {
    let payload = if gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(record).unwrap();
        enc.finish().unwrap()
    } else {
        record.to_vec()
    };
    STANDARD.encode(payload).into_bytes()
}

fn secret(release: &str, revision: u32, data: Vec<u8>) -> Secret {
    let mut s: Secret = serde_json::from_value(json!({
        "metadata": {"name": format!("sh.helm.release.v1.{release}.v{revision}"),
                     "labels": {"owner": "helm", "name": release, "version": revision.to_string(),
                                "status": "deployed"}},
        "type": "helm.sh/release.v1"
    }))
    .unwrap();
    s.data = Some([("release".to_owned(), ByteString(data))].into());
    s
}

async fn namespace(client: &Client) -> String {
    let name = unique("helm");
    let api: Api<Namespace> = Api::all(client.clone());
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
    )
    .await
    .unwrap();
    name
}

async fn rollouts(store: &Arc<dyn GraphStore>, service: &str) -> Vec<Deployment> {
    store
        .list_deployments(&DeploymentFilter {
            service: Some(ServiceName::parse(service).unwrap()),
            limit: 100,
            ..DeploymentFilter::default()
        })
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|s| s.deployment)
        .collect()
}

async fn wait_for(
    store: &Arc<dyn GraphStore>,
    service: &str,
    what: &str,
    check: impl Fn(&[Deployment]) -> bool,
) -> Vec<Deployment> {
    let started = Instant::now();
    loop {
        let found = rollouts(store, service).await;
        if check(&found) {
            return found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}: {} found",
            found.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn helm_revisions_are_recorded_with_their_diffs(store: Arc<dyn GraphStore>) {
    let client = deploygraph_k8s::testing::client().await;
    let ns = namespace(&client).await;
    let name = unique("web");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let pp = PostParams::default();
    // Corrupt Secrets first: they are skipped and counted, and the watcher goes on.
    let broken = unique("broken");
    let corrupt: [(u32, Vec<u8>); 4] = [
        (1, b"%%% not base64 %%%".to_vec()),
        (
            2,
            STANDARD.encode([0x1f, 0x8b, 0x08, 0, 1, 2, 3]).into_bytes(),
        ),
        (3, STANDARD.encode(b"{not json").into_bytes()),
        (
            4,
            STANDARD
                .encode(br#"{"info": {"status": "deployed"}}"#)
                .into_bytes(),
        ),
    ];
    for (r, data) in corrupt {
        secrets
            .create(&pp, &secret(&broken, r, data))
            .await
            .unwrap();
    }
    let last = 11;
    // Created out of order; odd revisions gzipped, revision 10 in Helm 4's shape.
    for r in [2, 1, 10, 11, 3, 9, 4, 8, 5, 7, 6] {
        let record = release(&name, &ns, r, last, r == 10).to_string();
        secrets
            .create(
                &pp,
                &secret(&name, r, helm_layer(record.as_bytes(), r % 2 == 1)),
            )
            .await
            .unwrap();
    }
    let corrupt_seen = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let counter = Arc::clone(&corrupt_seen);
    let watcher = HelmWatcher::new(
        client.clone(),
        Arc::clone(&store),
        vec![ns.clone()],
        production(),
    )
    .on_skipped(move |_, reason| {
        assert_eq!(reason, SkipReason::HelmReleaseCorrupt);
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let task = tokio::spawn(watcher.run(stop.clone()));
    let found = wait_for(&store, &name, "11 revisions", |d| d.len() == 11).await;
    let by_revision = |r: u32| {
        found
            .iter()
            .find(|d| d.helm.as_ref().unwrap().revision == r)
            .unwrap()
    };
    // Newest first by deploy time = revision order, whatever the Secrets' order.
    let order: Vec<u32> = found
        .iter()
        .map(|d| d.helm.as_ref().unwrap().revision)
        .collect();
    assert_eq!(order, (1..=11).rev().collect::<Vec<_>>());
    assert!(found.iter().all(|d| d.source == Source::Helm));
    assert_eq!(by_revision(7).status, DeploymentStatus::Failed);
    assert_eq!(by_revision(8).status, DeploymentStatus::RolledBack);
    assert_eq!(by_revision(11).status, DeploymentStatus::Succeeded);
    assert_eq!(by_revision(11).helm.as_ref().unwrap().status, "deployed");
    assert_eq!(
        by_revision(10).namespace.as_deref(),
        Some(ns.as_str()),
        "Helm 4 record without a namespace"
    );
    assert_eq!(
        by_revision(2).commit_sha(),
        Some(format!("{:040x}", 2u128 + 0xabc).as_str())
    );
    assert_eq!(by_revision(2).images[0].tag.as_deref(), Some("1.2"));
    assert!(by_revision(1).changes.is_empty());
    let changes = |r: u32| -> Vec<(String, ChangeKind, Option<String>, Option<String>)> {
        by_revision(r)
            .changes
            .iter()
            .map(|c| (c.path.clone(), c.kind, c.before.clone(), c.after.clone()))
            .collect()
    };
    let two = changes(2);
    assert!(
        two.contains(&(
            "values.image.tag".into(),
            ChangeKind::Value,
            Some("1.1".into()),
            Some("1.2".into())
        )),
        "{two:?}"
    );
    assert!(
        two.iter()
            .any(|c| c.0 == "values.db.password" && c.2.as_deref() == Some("<redacted>")),
        "{two:?}"
    );
    assert!(
        two.iter()
            .any(|c| c.0.starts_with(&format!("Deployment/{name}:")) && c.0.ends_with(".image")),
        "{two:?}"
    );
    assert!(
        two.iter()
            .all(|c| !c.2.as_deref().unwrap_or_default().starts_with("pw-")
                && !c.3.as_deref().unwrap_or_default().starts_with("pw-")),
        "secrets redacted: {two:?}"
    );
    assert!(
        changes(3)
            .iter()
            .any(|c| c.1 == ChangeKind::Added && c.0 == format!("ConfigMap/{name}-flags")),
        "{:?}",
        changes(3)
    );
    assert!(
        changes(5)
            .iter()
            .any(|c| c.1 == ChangeKind::Removed && c.0 == format!("ConfigMap/{name}-flags")),
        "{:?}",
        changes(5)
    );
    // Revision 10 is diffed against 9, not 1 (names sort v1, v10, v11, v2 …).
    assert!(
        changes(10).contains(&(
            "values.image.tag".into(),
            ChangeKind::Value,
            Some("1.9".into()),
            Some("1.10".into())
        )),
        "{:?}",
        changes(10)
    );
    assert_eq!(corrupt_seen.load(Ordering::SeqCst), 4);
    assert!(rollouts(&store, &broken).await.is_empty());
    stop.cancel();
    task.await.unwrap();

    // Restarted: nothing recorded twice. A release Secret created after the restart comes
    // after the others on the same watch stream: once it is recorded, they have been seen.
    let stop = CancellationToken::new();
    let watcher = HelmWatcher::new(
        client.clone(),
        Arc::clone(&store),
        vec![ns.clone()],
        production(),
    );
    let progress = watcher.progress();
    let task = tokio::spawn(watcher.run(stop.clone()));
    let marker = unique("marker");
    let record = release(&marker, &ns, 1, 1, false).to_string();
    secrets
        .create(
            &pp,
            &secret(&marker, 1, helm_layer(record.as_bytes(), true)),
        )
        .await
        .unwrap();
    wait_for(&store, &marker, "the marker after the restart", |d| {
        d.len() == 1
    })
    .await;
    assert_eq!(rollouts(&store, &name).await.len(), 11);
    // It remembers the Secrets it handled (corrupt ones too), and forgets deleted ones.
    until("16 Secrets remembered", || progress.tracked() == 16).await;
    for r in 1..=4 {
        secrets
            .delete(
                &format!("sh.helm.release.v1.{broken}.v{r}"),
                &Default::default(),
            )
            .await
            .unwrap();
    }
    until("the 4 deleted Secrets forgotten", || {
        progress.tracked() == 12
    })
    .await;

    // With the workload watcher on, the release's own Deployment is left to the Helm watcher.
    let workloads = WorkloadWatcher::new(
        client.clone(),
        Arc::clone(&store),
        WatchConfig {
            namespaces: vec![ns.clone()],
            label_selector: None,
            environment: production(),
            cluster: deploygraph_model::Cluster::default(),
            skip_helm_managed: true,
        },
    );
    let wstop = CancellationToken::new();
    let wtask = tokio::spawn(workloads.run(wstop.clone()));
    let deployments: Api<K8sDeployment> = Api::namespaced(client.clone(), &ns);
    let plain = unique("plain");
    for (workload, service, helm) in [
        (name.as_str(), name.as_str(), true),
        (plain.as_str(), plain.as_str(), false),
    ] {
        let mut annotations = json!({});
        if helm {
            annotations =
                json!({"meta.helm.sh/release-name": name, "meta.helm.sh/release-namespace": ns});
        }
        deployments
            .create(&pp, &serde_json::from_value(json!({
                "metadata": {"name": workload, "labels": {"app": service}, "annotations": annotations},
                "spec": {"replicas": 1, "selector": {"matchLabels": {"app": workload}},
                         "template": {"metadata": {"labels": {"app": workload}},
                                      "spec": {"containers": [{"name": "web", "image": "ghcr.io/acme/web:1.11"}]}}}
            })).unwrap())
            .await
            .unwrap();
    }
    // Created after the Helm-managed one, on the same watch stream: once it is recorded, the
    // Helm-managed one has been handled.
    wait_for(&store, &plain, "the plain Deployment", |d| d.len() == 1).await;
    assert_eq!(
        rollouts(&store, &name).await.len(),
        11,
        "the Helm-managed Deployment is one event, the release's"
    );
    wstop.cancel();
    wtask.await.unwrap();
    stop.cancel();
    task.await.unwrap();
}

deploygraph_store::both_stores!(helm_revisions_are_recorded_with_their_diffs);
