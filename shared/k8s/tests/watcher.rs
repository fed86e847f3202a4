//! The workload watcher against the real API server (`scripts/services up kube`), recording
//! into both stores. The test plays the controllers: it patches specs as a user would and
//! writes rollout status through the status subresource as the Deployment controller would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use deploygraph_k8s::leader::LeaseConfig;
use deploygraph_k8s::progress::{Progress, SkipReason};
use deploygraph_k8s::retry::RetryPolicy;
use deploygraph_k8s::watcher::{WatchConfig, WorkloadWatcher, run_elected};
use deploygraph_model::{ChangeKind, Deployment, DeploymentStatus, Environment, ServiceName};
use deploygraph_store::{DeploymentFilter, GraphStore};
use k8s_openapi::api::apps::v1::{Deployment as K8sDeployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

async fn config() -> Config {
    let path = std::env::var("KUBECONFIG_TEST").unwrap_or_else(|_| {
        panic!("KUBECONFIG_TEST is not set: these tests need the real API server; run scripts/test")
    });
    Config::from_custom_kubeconfig(
        Kubeconfig::read_from(path).unwrap(),
        &KubeConfigOptions::default(),
    )
    .await
    .unwrap()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

fn production() -> Environment {
    Environment::parse("production").unwrap()
}

async fn namespace(client: &Client) -> String {
    let name = unique("watch");
    let api: Api<Namespace> = Api::all(client.clone());
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
    )
    .await
    .unwrap();
    name
}

fn deployment(name: &str, service: &str, image: &str) -> K8sDeployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": service},
                     "annotations": {"deploygraph.io/commit": "9fceb02d0ae598e95dc970b74767f19372d61af8",
                                     "kubernetes.io/change-cause": "ci@acme.io: release"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "web", "image": image,
                                       "env": [{"name": "MODE", "value": "blue"},
                                               {"name": "DB_PASSWORD", "value": "hunter2"}],
                                       "resources": {"limits": {"memory": "256Mi"}}}]}}}
    }))
    .unwrap()
}

/// What the Deployment controller writes when a rollout finished (or failed).
async fn set_status(api: &Api<K8sDeployment>, name: &str, condition: Value) {
    let current = api.get(name).await.unwrap();
    let generation = current.metadata.generation.unwrap();
    let replicas = current.spec.unwrap().replicas.unwrap();
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"observedGeneration": generation, "replicas": replicas,
            "updatedReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas, "conditions": [condition]}})),
    )
    .await
    .unwrap();
}

fn available() -> Value {
    json!({"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"})
}

fn deadline_exceeded() -> Value {
    json!({"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"})
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
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}: {found:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn start(
    client: &Client,
    store: &Arc<dyn GraphStore>,
    ns: &str,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let watcher = WorkloadWatcher::new(
        client.clone(),
        Arc::clone(store),
        WatchConfig {
            namespaces: vec![ns.to_owned()],
            label_selector: None,
            environment: production(),
            cluster: deploygraph_model::Cluster::default(),
            skip_helm_managed: false,
        },
    );
    let stop = CancellationToken::new();
    (stop.clone(), tokio::spawn(watcher.run(stop)))
}

async fn rollouts_are_recorded_updated_and_survive_a_restart(store: Arc<dyn GraphStore>) {
    let client = deploygraph_k8s::testing::client().await;
    let ns = namespace(&client).await;
    let service = unique("web");
    let api: Api<K8sDeployment> = Api::namespaced(client.clone(), &ns);
    let (stop, task) = start(&client, &store, &ns);

    api.create(
        &PostParams::default(),
        &deployment("web", &service, "registry.local/web:v1"),
    )
    .await
    .unwrap();
    let found = wait_for(&store, &service, "the first rollout", |d| d.len() == 1).await;
    let first = &found[0];
    assert_eq!(first.status, DeploymentStatus::InProgress);
    assert_eq!(
        first.commit_sha(),
        Some("9fceb02d0ae598e95dc970b74767f19372d61af8")
    );
    assert_eq!(first.actor.as_deref(), Some("ci@acme.io: release"));
    assert_eq!(first.namespace.as_deref(), Some(ns.as_str()));
    assert_eq!(first.images[0].tag.as_deref(), Some("v1"));
    let template = first.workload.as_ref().unwrap().template.to_string();
    assert!(
        !template.contains("hunter2"),
        "secret env values are not stored: {template}"
    );

    set_status(&api, "web", available()).await;
    wait_for(&store, &service, "success", |d| {
        d[0].status == DeploymentStatus::Succeeded
    })
    .await;

    // A new image, env and memory limit: a new rollout with its diff; then it fails.
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "web",
            "image": "registry.local/web:v2", "env": [{"name": "MODE", "value": "green"},
            {"name": "DB_PASSWORD", "value": "hunter3"}], "resources": {"limits": {"memory": "512Mi"}}}]}}}})),
    )
    .await
    .unwrap();
    let found = wait_for(&store, &service, "the second rollout", |d| d.len() == 2).await;
    let kinds: Vec<(String, ChangeKind)> = found[0]
        .changes
        .iter()
        .map(|c| (c.path.clone(), c.kind))
        .collect();
    for expected in [
        (
            "Deployment/web:spec.template.spec.containers.web.image",
            ChangeKind::Image,
        ),
        (
            "Deployment/web:spec.template.spec.containers.web.env.MODE.value",
            ChangeKind::Env,
        ),
    ] {
        assert!(
            kinds
                .iter()
                .any(|(p, k)| p == expected.0 && *k == expected.1),
            "{expected:?} in {kinds:?}"
        );
    }
    assert!(
        kinds
            .iter()
            .any(|(p, _)| p.contains("resources.limits.memory")),
        "{kinds:?}"
    );
    assert!(
        found[0]
            .changes
            .iter()
            .all(|c| c.after.as_deref() != Some("hunter3")),
        "{:?}",
        found[0].changes
    );
    assert!(
        found[0].started_at > found[1].started_at,
        "the newer rollout starts later"
    );
    set_status(&api, "web", deadline_exceeded()).await;
    wait_for(&store, &service, "failure", |d| {
        d[0].status == DeploymentStatus::Failed
    })
    .await;

    // Scaling is not a rollout.
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 3}})),
    )
    .await
    .unwrap();
    // A Pod running v2 reports the digest the kubelet resolved; the next status write makes
    // the watcher look.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(
            json!({"metadata": {"name": "web-1", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "registry.local/web:v2"}]}}),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let digest = format!("sha256:{}", "ab".repeat(32));
    pods.patch_status(
        "web-1",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"containerStatuses": [{"name": "web", "image": "registry.local/web:v2",
            "imageID": format!("registry.local/web@{digest}"), "ready": true, "restartCount": 0}]}})),
    )
    .await
    .unwrap();
    set_status(&api, "web", deadline_exceeded()).await;
    wait_for(&store, &service, "the digest", |d| {
        d[0].images[0]
            .digest
            .as_ref()
            .is_some_and(|g| g.as_str() == digest)
    })
    .await;
    // The digest may come from the Pod's own event, before the scaling is seen: a Deployment
    // created now comes after both on the Deployment stream.
    let seen = unique("seen");
    api.create(
        &PostParams::default(),
        &deployment("seen", &seen, "registry.local/seen:v1"),
    )
    .await
    .unwrap();
    wait_for(&store, &seen, "a later Deployment", |d| d.len() == 1).await;
    assert_eq!(
        rollouts(&store, &service).await.len(),
        2,
        "neither scaling nor a digest is a rollout"
    );

    // Down while the template returns to v1: the restarted watcher records it once, as a
    // rollback, and nothing twice.
    stop.cancel();
    task.await.unwrap();
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "web",
            "image": "registry.local/web:v1", "env": [{"name": "MODE", "value": "blue"},
            {"name": "DB_PASSWORD", "value": "hunter2"}], "resources": {"limits": {"memory": "256Mi"}}}]}}}})),
    )
    .await
    .unwrap();
    let (stop, task) = start(&client, &store, &ns);
    let found = wait_for(&store, &service, "the rollback", |d| d.len() == 3).await;
    assert_eq!(found[0].status, DeploymentStatus::RolledBack);
    stop.cancel();
    task.await.unwrap();
    let (stop, task) = start(&client, &store, &ns);
    // A Deployment created after the restart comes after `web` on the same watch stream: once
    // it is recorded, `web` has been seen again.
    let marker = unique("marker");
    api.create(
        &PostParams::default(),
        &deployment("marker", &marker, "registry.local/marker:v1"),
    )
    .await
    .unwrap();
    wait_for(&store, &marker, "the marker after the restart", |d| {
        d.len() == 1
    })
    .await;
    assert_eq!(
        rollouts(&store, &service).await.len(),
        3,
        "a restart records nothing twice"
    );

    // StatefulSets are watched too.
    let sts_service = unique("db");
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    sts.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "db", "labels": {"app": sts_service}},
            "spec": {"serviceName": "db", "replicas": 1, "selector": {"matchLabels": {"app": "db"}},
                     "template": {"metadata": {"labels": {"app": "db"}},
                                  "spec": {"containers": [{"name": "db", "image": "postgres:16"}]}}}}))
        .unwrap(),
    )
    .await
    .unwrap();
    let found = wait_for(&store, &sts_service, "the StatefulSet", |d| d.len() == 1).await;
    assert_eq!(found[0].workload.as_ref().unwrap().kind, "StatefulSet");
    // And DaemonSets.
    let ds_service = unique("agent");
    let ds: Api<k8s_openapi::api::apps::v1::DaemonSet> = Api::namespaced(client.clone(), &ns);
    ds.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "agent", "labels": {"app": ds_service}},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "template": {"metadata": {"labels": {"app": "agent"}},
                                  "spec": {"containers": [{"name": "agent", "image": "registry.local/agent:3"}]}}}}))
        .unwrap(),
    )
    .await
    .unwrap();
    let found = wait_for(&store, &ds_service, "the DaemonSet", |d| d.len() == 1).await;
    assert_eq!(found[0].workload.as_ref().unwrap().kind, "DaemonSet");
    stop.cancel();
    task.await.unwrap();
}

deploygraph_store::both_stores!(rollouts_are_recorded_updated_and_survive_a_restart);

/// Skips a watcher reported, by reason.
#[derive(Clone, Default)]
struct Skips(Arc<Mutex<Vec<(String, SkipReason)>>>);

impl Skips {
    fn count(&self, reason: SkipReason) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, r)| *r == reason)
            .count()
    }

    fn objects(&self) -> Vec<(String, SkipReason)> {
        self.0.lock().unwrap().clone()
    }
}

fn watcher_with(
    client: &Client,
    store: &Arc<dyn GraphStore>,
    ns: &str,
    retry: RetryPolicy,
) -> (WorkloadWatcher, Skips, Progress) {
    let skips = Skips::default();
    let seen = skips.clone();
    let watcher = WorkloadWatcher::new(
        client.clone(),
        Arc::clone(store),
        WatchConfig {
            namespaces: vec![ns.to_owned()],
            label_selector: None,
            environment: production(),
            cluster: deploygraph_model::Cluster::default(),
            skip_helm_managed: false,
        },
    )
    .retry(retry)
    .on_skipped(move |object, reason| {
        seen.0.lock().unwrap().push((object.to_owned(), reason));
    });
    let progress = watcher.progress();
    (watcher, skips, progress)
}

async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        attempts: 2,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
        requeue_after: Duration::from_millis(200),
        max_requeue_after: Duration::from_secs(1),
    }
}

fn workload_is(d: &Deployment, name: &str) -> bool {
    d.workload.as_ref().is_some_and(|w| w.name == name)
}

/// One record the store refuses for good is logged, counted once and skipped; the rollout
/// after it is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_the_store_rejects_does_not_stop_the_next_rollout() {
    let client = deploygraph_k8s::testing::client().await;
    let ns = namespace(&client).await;
    let (_dir, real) = deploygraph_store::testing::sqlite().await;
    let store = support::FaultyStore::wrap(Arc::clone(&real), |d| {
        workload_is(d, "bad").then(support::rejected)
    });
    let (watcher, skips, _) = watcher_with(&client, &store, &ns, quick_retries());
    let stop = CancellationToken::new();
    let task = tokio::spawn(watcher.run(stop.clone()));
    let api: Api<K8sDeployment> = Api::namespaced(client.clone(), &ns);
    let (bad, good) = (unique("bad"), unique("good"));
    api.create(
        &PostParams::default(),
        &deployment("bad", &bad, "registry.local/bad:v1"),
    )
    .await
    .unwrap();
    api.create(
        &PostParams::default(),
        &deployment("good", &good, "registry.local/good:v1"),
    )
    .await
    .unwrap();
    // Same stream, later object: once `good` is recorded, `bad` has been handled.
    wait_for(&real, &good, "the rollout after the rejected one", |d| {
        d.len() == 1
    })
    .await;
    assert_eq!(
        skips.objects(),
        vec![(format!("{ns}/Deployment/bad"), SkipReason::StoreRejected)],
        "counted once, with its object, never retried as an outage"
    );
    assert!(rollouts(&real, &bad).await.is_empty());
    // And the watcher goes on: the next rollout of `good` is recorded too.
    set_status(&api, "good", available()).await;
    wait_for(&real, &good, "the update after the rejected one", |d| {
        d[0].status == DeploymentStatus::Succeeded
    })
    .await;
    assert_eq!(skips.count(SkipReason::StoreRejected), 1);
    stop.cancel();
    task.await.unwrap();
}

/// A store that stays unavailable through the retries: the workload is counted, set aside
/// while the watcher goes on, and recorded once the store is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_the_store_cannot_take_yet_is_set_aside_and_recorded_later() {
    let client = deploygraph_k8s::testing::client().await;
    let ns = namespace(&client).await;
    let (_dir, real) = deploygraph_store::testing::sqlite().await;
    let down = Arc::new(AtomicBool::new(true));
    let is_down = Arc::clone(&down);
    let store = support::FaultyStore::wrap(Arc::clone(&real), move |d| {
        (workload_is(d, "slow") && is_down.load(Ordering::SeqCst)).then(support::unavailable)
    });
    let (watcher, skips, progress) = watcher_with(&client, &store, &ns, quick_retries());
    let stop = CancellationToken::new();
    let task = tokio::spawn(watcher.run(stop.clone()));
    let api: Api<K8sDeployment> = Api::namespaced(client.clone(), &ns);
    let (slow, next) = (unique("slow"), unique("next"));
    api.create(
        &PostParams::default(),
        &deployment("slow", &slow, "registry.local/slow:v1"),
    )
    .await
    .unwrap();
    api.create(
        &PostParams::default(),
        &deployment("next", &next, "registry.local/next:v1"),
    )
    .await
    .unwrap();
    wait_for(&real, &next, "the rollout after the one set aside", |d| {
        d.len() == 1
    })
    .await;
    assert!(skips.count(SkipReason::StoreUnavailable) >= 1);
    assert!(rollouts(&real, &slow).await.is_empty());
    until("the workload to be set aside", || progress.requeued() == 1).await;
    // The store comes back: the workload set aside is recorded without any new event.
    down.store(false, Ordering::SeqCst);
    let found = wait_for(&real, &slow, "the rollout set aside", |d| d.len() == 1).await;
    assert_eq!(found[0].status, DeploymentStatus::InProgress);
    until("nothing set aside", || progress.requeued() == 0).await;
    assert_eq!(skips.count(SkipReason::StoreRejected), 0);
    stop.cancel();
    task.await.unwrap();
}

/// Deleted workloads leave the watcher's memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_workloads_are_forgotten() {
    let client = deploygraph_k8s::testing::client().await;
    let ns = namespace(&client).await;
    let (_dir, store) = deploygraph_store::testing::sqlite().await;
    let (watcher, _, progress) = watcher_with(&client, &store, &ns, RetryPolicy::default());
    let stop = CancellationToken::new();
    let task = tokio::spawn(watcher.run(stop.clone()));
    let api: Api<K8sDeployment> = Api::namespaced(client.clone(), &ns);
    let names = ["one", "two", "three"];
    for name in names {
        api.create(
            &PostParams::default(),
            &deployment(name, &unique(name), "registry.local/web:v1"),
        )
        .await
        .unwrap();
    }
    until("three workloads remembered", || progress.tracked() == 3).await;
    for name in &names[..2] {
        api.delete(name, &Default::default()).await.unwrap();
    }
    until("the deleted two forgotten", || progress.tracked() == 1).await;
    stop.cancel();
    task.await.unwrap();
}

/// A Pod that starts reporting its image digest updates its rollout, with no other event of
/// the workload: the watcher reads Pods from its cache and re-checks on their changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_reporting_a_digest_updates_its_rollout_by_itself() {
    let client = deploygraph_k8s::testing::client().await;
    let ns = namespace(&client).await;
    let (_dir, store) = deploygraph_store::testing::sqlite().await;
    let (stop, task) = start(&client, &store, &ns);
    let service = unique("digest");
    let api: Api<K8sDeployment> = Api::namespaced(client.clone(), &ns);
    api.create(
        &PostParams::default(),
        &deployment("web", &service, "registry.local/web:v7"),
    )
    .await
    .unwrap();
    wait_for(&store, &service, "the rollout", |d| d.len() == 1).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    // A Pod of another workload reporting the same image is not taken.
    for (name, app) in [("other-1", "other"), ("web-1", "web")] {
        pods.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name, "labels": {"app": app}},
                "spec": {"containers": [{"name": "web", "image": "registry.local/web:v7"}]}}))
            .unwrap(),
        )
        .await
        .unwrap();
    }
    let digest = |byte: &str| format!("sha256:{}", byte.repeat(32));
    for (name, byte) in [("other-1", "cd"), ("web-1", "ef")] {
        pods.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"containerStatuses": [{"name": "web", "image": "registry.local/web:v7",
                "imageID": format!("registry.local/web@{}", digest(byte)), "ready": true, "restartCount": 0}]}})),
        )
        .await
        .unwrap();
    }
    let found = wait_for(&store, &service, "the digest", |d| {
        d[0].images[0].digest.is_some()
    })
    .await;
    assert_eq!(
        found[0].images[0]
            .digest
            .as_ref()
            .map(|d| d.as_str().to_owned()),
        Some(digest("ef"))
    );
    assert_eq!(found.len(), 1, "a digest is not a rollout");
    stop.cancel();
    task.await.unwrap();
}

/// Two replicas campaign for one Lease: only the leader records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_replicas_only_the_leader_records() {
    let client = deploygraph_k8s::testing::client().await;
    let ns = namespace(&client).await;
    let (_dir, store) = deploygraph_store::testing::sqlite().await;
    let service = unique("led");
    let counts: Vec<Arc<AtomicUsize>> = (0..2).map(|_| Arc::new(AtomicUsize::new(0))).collect();
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    for (i, count) in counts.iter().enumerate() {
        let (client, store, ns, count) = (
            client.clone(),
            Arc::clone(&store),
            ns.clone(),
            Arc::clone(count),
        );
        let lease = LeaseConfig {
            lease_duration: Duration::from_secs(3),
            renew_deadline: Duration::from_secs(2),
            retry_period: Duration::from_millis(200),
            ..LeaseConfig::new(&ns, "deploygraph-watcher", &format!("replica-{i}"))
        };
        let make_client = client.clone();
        tasks.push(tokio::spawn(run_elected(
            client,
            lease,
            stop.clone(),
            move |token| {
                let count = Arc::clone(&count);
                let watcher = WorkloadWatcher::new(
                    make_client.clone(),
                    Arc::clone(&store),
                    WatchConfig {
                        namespaces: vec![ns.clone()],
                        label_selector: None,
                        environment: production(),
                        cluster: deploygraph_model::Cluster::default(),
                        skip_helm_managed: false,
                    },
                )
                .on_recorded(move |_, _| {
                    count.fetch_add(1, Ordering::SeqCst);
                });
                vec![tokio::spawn(watcher.run(token))]
            },
        )));
    }
    let api: Api<K8sDeployment> = Api::namespaced(client.clone(), &ns);
    api.create(
        &PostParams::default(),
        &deployment("web", &service, "registry.local/web:v1"),
    )
    .await
    .unwrap();
    wait_for(&store, &service, "the rollout", |d| d.len() == 1).await;
    set_status(&api, "web", available()).await;
    wait_for(&store, &service, "success", |d| {
        d[0].status == DeploymentStatus::Succeeded
    })
    .await;
    let recorded: Vec<usize> = counts.iter().map(|c| c.load(Ordering::SeqCst)).collect();
    assert!(
        recorded.contains(&0) && recorded.iter().sum::<usize>() == 2,
        "{recorded:?}"
    );
    stop.cancel();
    for t in tasks {
        t.await.unwrap();
    }
}

async fn apply(client: &Client, ns: &str, manifest: &str) {
    for doc in manifest.replace("NAMESPACE", ns).split("\n---\n") {
        let value: Value = serde_norway::from_str(doc).unwrap();
        let kind = value["kind"].as_str().unwrap().to_owned();
        let pp = PostParams::default();
        macro_rules! create_or_replace {
            ($t:ty, $api:expr) => {{
                let api: Api<$t> = $api;
                let mut object: $t = serde_json::from_value(value.clone()).unwrap();
                let name = object.metadata.name.clone().unwrap();
                match api.create(&pp, &object).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        object.metadata.resource_version =
                            api.get(&name).await.unwrap().metadata.resource_version;
                        api.replace(&name, &pp, &object).await.unwrap();
                    }
                    Err(e) => panic!("{kind} {name}: {e}"),
                }
            }};
        }
        match kind.as_str() {
            "ServiceAccount" => {
                create_or_replace!(ServiceAccount, Api::namespaced(client.clone(), ns))
            }
            "ClusterRole" => create_or_replace!(ClusterRole, Api::all(client.clone())),
            "ClusterRoleBinding" => {
                create_or_replace!(ClusterRoleBinding, Api::all(client.clone()))
            }
            "Role" => create_or_replace!(Role, Api::namespaced(client.clone(), ns)),
            "RoleBinding" => create_or_replace!(RoleBinding, Api::namespaced(client.clone(), ns)),
            other => panic!("unexpected kind {other} in deploy/rbac.yaml"),
        }
    }
}

/// The watcher, elected, runs as a ServiceAccount bound to exactly deploy/rbac.yaml.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_runs_with_the_shipped_least_privilege_rbac() {
    let admin = deploygraph_k8s::testing::client().await;
    let ns = namespace(&admin).await;
    let manifest = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/rbac.yaml"),
    )
    .unwrap();
    apply(&admin, &ns, &manifest).await;
    let sa: Api<ServiceAccount> = Api::namespaced(admin.clone(), &ns);
    let token: Value = sa
        .create_subresource(
            "token",
            "deploygraph",
            &PostParams::default(),
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                    "spec": {"expirationSeconds": 600}}),
        )
        .await
        .unwrap();
    let mut config = config().await;
    config.auth_info = kube::config::AuthInfo {
        token: Some(SecretString::from(
            token["status"]["token"].as_str().unwrap().to_owned(),
        )),
        ..kube::config::AuthInfo::default()
    };
    let as_sa = Client::try_from(config).unwrap();
    // Not an admin: it can read ConfigMaps (the ones workloads use are watched) but not write
    // them, nor workloads.
    let denied: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(as_sa.clone(), &ns);
    assert!(denied.list(&Default::default()).await.is_ok());
    assert!(matches!(
        denied
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap()
            )
            .await,
        Err(kube::Error::Api(e)) if e.code == 403
    ));
    let workloads: Api<K8sDeployment> = Api::namespaced(as_sa.clone(), &ns);
    assert!(matches!(
        workloads
            .create(&PostParams::default(), &deployment("x", "x", "registry.local/x:v1"))
            .await,
        Err(kube::Error::Api(e)) if e.code == 403
    ));

    let (_dir, store) = deploygraph_store::testing::sqlite().await;
    let stop = CancellationToken::new();
    let lease = LeaseConfig {
        retry_period: Duration::from_millis(200),
        ..LeaseConfig::new(&ns, "deploygraph-watcher", "sa-replica")
    };
    let (watch_client, watch_store) = (as_sa.clone(), Arc::clone(&store));
    let task = tokio::spawn(run_elected(as_sa, lease, stop.clone(), move |token| {
        let watcher = WorkloadWatcher::new(
            watch_client.clone(),
            Arc::clone(&watch_store),
            WatchConfig {
                namespaces: Vec::new(),
                label_selector: None,
                environment: production(),
                cluster: deploygraph_model::Cluster::default(),
                skip_helm_managed: false,
            },
        );
        let helm = deploygraph_k8s::helm_watch::HelmWatcher::new(
            watch_client.clone(),
            Arc::clone(&watch_store),
            Vec::new(),
            production(),
        );
        vec![
            tokio::spawn(watcher.run(token.clone())),
            tokio::spawn(helm.run(token)),
        ]
    }));
    let service = unique("rbac");
    let api: Api<K8sDeployment> = Api::namespaced(admin.clone(), &ns);
    api.create(
        &PostParams::default(),
        &deployment("web", &service, "registry.local/web:v1"),
    )
    .await
    .unwrap();
    wait_for(
        &store,
        &service,
        "the rollout seen with least privilege",
        |d| d.len() == 1,
    )
    .await;
    // And a Helm release revision, read with the same role.
    let release = unique("rel");
    let record = json!({"name": release, "namespace": ns, "version": 1,
        "info": {"status": "deployed", "last_deployed": "2026-11-20T10:00:00Z"},
        "chart": {"metadata": {"name": "web", "version": "1.0.0"}},
        "manifest": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n"});
    let mut secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": {"name": format!("sh.helm.release.v1.{release}.v1"),
                     "labels": {"owner": "helm", "name": release, "version": "1"}},
        "type": "helm.sh/release.v1"}))
    .unwrap();
    secret.data = Some(
        [(
            "release".to_owned(),
            k8s_openapi::ByteString(
                base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    record.to_string(),
                )
                .into_bytes(),
            ),
        )]
        .into(),
    );
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    wait_for(
        &store,
        &release,
        "the Helm revision seen with least privilege",
        |d| d.len() == 1,
    )
    .await;
    // A ConfigMap a workload mounts, and the workload's HPA, edited: changes seen with the
    // same role. The workload's rollout is recorded after the watcher noted (and read) what
    // it references.
    let flagged = unique("flagged");
    let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(admin.clone(), &ns);
    config_maps
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "flags"}, "data": {"checkout": "off"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let mut mounted = deployment("flagged", &flagged, "registry.local/flagged:v1");
    let spec = mounted
        .spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap();
    spec.volumes = Some(vec![
        serde_json::from_value(json!({"name": "flags", "configMap": {"name": "flags"}})).unwrap(),
    ]);
    api.create(&PostParams::default(), &mounted).await.unwrap();
    wait_for(
        &store,
        &flagged,
        "the rollout of the workload using flags",
        |d| d.len() == 1,
    )
    .await;
    config_maps
        .patch(
            "flags",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"checkout": "on"}})),
        )
        .await
        .unwrap();
    let flagged_service = deploygraph_model::ServiceRef {
        cluster: Default::default(),
        name: ServiceName::parse(&flagged).unwrap(),
        namespace: Some(ns.clone()),
        environment: production(),
    };
    let changes = |store: Arc<dyn GraphStore>, service: deploygraph_model::ServiceRef| async move {
        store
            .list_changes(&deploygraph_store::ChangeFilter {
                services: vec![service.uid()],
                limit: 10,
                ..deploygraph_store::ChangeFilter::default()
            })
            .await
            .unwrap()
    };
    let started = Instant::now();
    while changes(Arc::clone(&store), flagged_service.clone())
        .await
        .is_empty()
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for the ConfigMap edit"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The ConfigMap streams run: an HPA created now is seen from its creation.
    let hpas: Api<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler> =
        Api::namespaced(admin.clone(), &ns);
    hpas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "flagged"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "flagged"},
                     "maxReplicas": 3}}))
        .unwrap(),
    )
    .await
    .unwrap();
    hpas.patch(
        "flagged",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"maxReplicas": 6}})),
    )
    .await
    .unwrap();
    let started = Instant::now();
    while changes(Arc::clone(&store), flagged_service.clone())
        .await
        .len()
        < 2
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for the HPA edit"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    task.await.unwrap();
}
