//! Edits of the ConfigMaps, Secrets and HPAs a workload uses, recorded by the workload watcher
//! as changes that are not rollouts, against the real API server (`scripts/services up kube`)
//! and both stores. The test edits objects as a user would; it waits for what the watcher
//! reports (the changes it records, the objects it remembers), never for a clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use deploygraph_k8s::progress::{Progress, SkipReason};
use deploygraph_k8s::retry::RetryPolicy;
use deploygraph_k8s::watcher::{WatchConfig, WorkloadWatcher};
use deploygraph_model::redact::REDACTED;
use deploygraph_model::{Change, ChangeType, Environment, ServiceName, ServiceRef, Source, Uid};
use deploygraph_store::{ChangeFilter, GraphStore, RecordKind};
use k8s_openapi::api::apps::v1::Deployment as K8sDeployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

fn unique(prefix: &str) -> String {
    format!("{prefix}-{:08x}", rand::random::<u32>())
}

fn production() -> Environment {
    Environment::parse("production").unwrap()
}

async fn namespace(client: &Client) -> String {
    let name = unique("cfg");
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
        )
        .await
        .unwrap();
    name
}

/// A Deployment whose pod template mounts `config_map` and takes its environment from `secret`.
fn deployment(name: &str, service: &str, config_map: &str, secret: Option<&str>) -> K8sDeployment {
    let env_from: Vec<Value> = secret
        .map(|s| json!({"secretRef": {"name": s}}))
        .into_iter()
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": service}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"volumes": [{"name": "config", "configMap": {"name": config_map}}],
                                       "containers": [{"name": "web", "image": "registry.local/web:v1",
                                                       "envFrom": env_from,
                                                       "volumeMounts": [{"name": "config", "mountPath": "/etc/web"}]}]}}}
    }))
    .unwrap()
}

async fn create_config_map(client: &Client, ns: &str, name: &str, data: Value) {
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}, "data": data})).unwrap(),
        )
        .await
        .unwrap();
}

async fn edit_config_map(client: &Client, ns: &str, name: &str, data: Value) {
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"data": data})),
        )
        .await
        .unwrap();
}

/// A watcher of `ns` whose recorded changes arrive on the receiver.
struct Running {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    changes: mpsc::UnboundedReceiver<(Change, RecordKind)>,
    progress: Progress,
    skips: Arc<Mutex<Vec<(String, SkipReason)>>>,
}

impl Running {
    fn start(client: &Client, store: &Arc<dyn GraphStore>, ns: &str) -> Self {
        Self::start_with(client, store, ns, RetryPolicy::default())
    }

    fn start_with(
        client: &Client,
        store: &Arc<dyn GraphStore>,
        ns: &str,
        retry: RetryPolicy,
    ) -> Self {
        let (tx, changes) = mpsc::unbounded_channel();
        let skips = Arc::new(Mutex::new(Vec::new()));
        let skipped = Arc::clone(&skips);
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
        .on_change(move |change, kind| {
            let _ = tx.send((change.clone(), kind));
        })
        .on_skipped(move |object, reason| {
            skipped.lock().unwrap().push((object.to_owned(), reason));
        });
        let progress = watcher.progress();
        let stop = CancellationToken::new();
        let task = tokio::spawn(watcher.run(stop.clone()));
        Self {
            stop,
            task,
            changes,
            progress,
            skips,
        }
    }

    fn skips(&self) -> Vec<(String, SkipReason)> {
        self.skips.lock().unwrap().clone()
    }

    /// The next change the watcher records.
    async fn next_change(&mut self, what: &str) -> Change {
        let (change, kind) = tokio::time::timeout(WAIT, self.changes.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .expect("the watcher runs");
        assert_eq!(kind, RecordKind::Created, "{what}: {change:#?}");
        change
    }

    /// Waits until the watcher remembers `n` ConfigMaps, Secrets and HPAs (their baselines).
    async fn remembers(&self, n: usize) {
        let started = Instant::now();
        while self.progress.configs() != n {
            assert!(
                started.elapsed() < WAIT,
                "timed out waiting for {n} baselines (have {})",
                self.progress.configs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(mut self) -> Vec<Change> {
        self.stop.cancel();
        self.task.await.unwrap();
        let mut rest = Vec::new();
        while let Ok((change, _)) = self.changes.try_recv() {
            rest.push(change);
        }
        rest
    }
}

fn service(ns: &str, name: &str) -> ServiceRef {
    ServiceRef {
        name: ServiceName::parse(name).unwrap(),
        namespace: Some(ns.to_owned()),
        environment: production(),
        cluster: deploygraph_model::Cluster::default(),
    }
}

async fn changes_of(store: &Arc<dyn GraphStore>, service: &ServiceRef) -> Vec<Change> {
    store
        .list_changes(&ChangeFilter {
            services: vec![service.uid()],
            limit: 100,
            ..ChangeFilter::default()
        })
        .await
        .unwrap()
}

fn diff_of(change: &Change) -> Vec<(&str, Option<&str>, Option<&str>)> {
    change
        .diff
        .iter()
        .map(|k| (k.key.as_str(), k.before.as_deref(), k.after.as_deref()))
        .collect()
}

/// The secret values the scenario writes; none may be stored.
const SECRET_VALUES: [&str; 3] = ["hunter2-old", "hunter3-new", "tok-9f8e7d"];

/// A mounted ConfigMap, a Secret taken with `envFrom` and the Deployment's HPA are edited:
/// each is one change on the Deployment's service; an unrelated ConfigMap's edit is nothing.
/// Returns the changes' uids.
async fn edits_of_what_a_deployment_uses_are_changes_on_its_service(
    store: Arc<dyn GraphStore>,
) -> Vec<Uid> {
    let client = deploygraph_k8s::testing::client().await;
    let ns = namespace(&client).await;
    let name = unique("web");
    let web = service(&ns, &name);
    create_config_map(
        &client,
        &ns,
        "web-config",
        json!({"POOL_SIZE": "50", "LOG_LEVEL": "info"}),
    )
    .await;
    create_config_map(&client, &ns, "unrelated", json!({"A": "1"})).await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "web-secrets"},
                "stringData": {"DB_PASSWORD": SECRET_VALUES[0]}}))
            .unwrap(),
        )
        .await
        .unwrap();
    Api::<K8sDeployment>::namespaced(client.clone(), &ns)
        .create(
            &PostParams::default(),
            &deployment("web", &name, "web-config", Some("web-secrets")),
        )
        .await
        .unwrap();
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), &ns);
    hpas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "minReplicas": 1, "maxReplicas": 5,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 70}}}]}}))
        .unwrap(),
    )
    .await
    .unwrap();

    let mut watcher = Running::start(&client, &store, &ns);
    // The ConfigMap and Secret the Deployment uses, and the HPA; not the unrelated ConfigMap.
    watcher.remembers(3).await;

    // (2) The unrelated ConfigMap first, then the mounted one, on the same watch stream: the
    // first change recorded is the mounted one's, so the unrelated edit recorded nothing.
    edit_config_map(&client, &ns, "unrelated", json!({"A": "2"})).await;
    // (1) A mounted ConfigMap edited: one change with the key-level diff.
    edit_config_map(&client, &ns, "web-config", json!({"POOL_SIZE": "10"})).await;
    let config = watcher.next_change("the ConfigMap edit").await;
    assert_eq!(config.kind, ChangeType::ConfigMap);
    assert_eq!(config.source, Source::K8s);
    assert_eq!(config.services, vec![web.clone()]);
    assert_eq!(
        diff_of(&config),
        [("data.POOL_SIZE", Some("50"), Some("10"))]
    );
    assert!(
        config
            .summary
            .as_deref()
            .is_some_and(|s| s.contains("web-config") && s.contains("Deployment/web")),
        "{config:?}"
    );
    assert!(!config.actor.is_empty());
    assert_eq!(
        store.get_change(&config.uid).await.unwrap(),
        Some(config.clone())
    );
    // It went through the path every change takes: its attribution follow-up is enqueued.
    let pending = store
        .follow_up_stats(Some(std::slice::from_ref(&config.uid)))
        .await
        .unwrap();
    assert_eq!(pending.changes, 1, "{pending:?}");

    // (3) The Secret edited: which keys changed, never a value.
    secrets
        .patch(
            "web-secrets",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"DB_PASSWORD": SECRET_VALUES[1], "API_TOKEN": SECRET_VALUES[2]}})),
        )
        .await
        .unwrap();
    let secret = watcher.next_change("the Secret edit").await;
    assert_eq!(secret.kind, ChangeType::Secret);
    assert_eq!(secret.services, vec![web.clone()]);
    assert_eq!(
        diff_of(&secret),
        [
            ("data.API_TOKEN", None, Some(REDACTED)),
            ("data.DB_PASSWORD", Some(REDACTED), Some(REDACTED)),
        ]
    );
    let stored = store
        .get_change(&secret.uid)
        .await
        .unwrap()
        .expect("stored");
    let text = serde_json::to_string(&stored).unwrap();
    for value in SECRET_VALUES {
        assert!(!text.contains(value), "{value} stored: {text}");
    }

    // (4) The HPA's maxReplicas changed.
    hpas.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"maxReplicas": 8}})),
    )
    .await
    .unwrap();
    let hpa = watcher.next_change("the HPA edit").await;
    assert_eq!(hpa.kind, ChangeType::Hpa);
    assert_eq!(hpa.services, vec![web.clone()]);
    assert_eq!(diff_of(&hpa), [("spec.maxReplicas", Some("5"), Some("8"))]);

    // A status-only update of the HPA (its controller's) is not an edit; the ConfigMap's next
    // edit is the next change.
    hpas.patch_status(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"currentReplicas": 3, "desiredReplicas": 4}})),
    )
    .await
    .unwrap();
    edit_config_map(&client, &ns, "web-config", json!({"LOG_LEVEL": "debug"})).await;
    let next = watcher.next_change("the second ConfigMap edit").await;
    assert_eq!(
        diff_of(&next),
        [("data.LOG_LEVEL", Some("info"), Some("debug"))]
    );

    let rest = watcher.stop().await;
    assert!(rest.is_empty(), "nothing else recorded: {rest:#?}");
    let recorded = changes_of(&store, &web).await;
    assert_eq!(recorded.len(), 4, "{recorded:#?}");
    let uids: Vec<Uid> = recorded.iter().map(|c| c.uid.clone()).collect();
    let all = serde_json::to_string(&recorded).unwrap();
    for value in SECRET_VALUES {
        assert!(!all.contains(value), "{value} stored");
    }
    uids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_edits_of_what_a_deployment_uses_are_changes_and_no_secret_reaches_the_file() {
    let (dir, store) = deploygraph_store::testing::sqlite().await;
    edits_of_what_a_deployment_uses_are_changes_on_its_service(Arc::clone(&store)).await;
    drop(store);
    // Every byte the store wrote: the database and its write-ahead log.
    let dir = dir.expect("a SQLite directory");
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for value in SECRET_VALUES {
            assert!(
                !bytes.windows(value.len()).any(|w| w == value.as_bytes()),
                "{value} in the SQLite files"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neo4j_edits_of_what_a_deployment_uses_are_changes_and_no_secret_reaches_the_graph() {
    let (_dir, store) = deploygraph_store::testing::neo4j().await;
    let uids = edits_of_what_a_deployment_uses_are_changes_on_its_service(Arc::clone(&store)).await;
    // Every property of the changes' nodes and relationships, as Neo4j holds them.
    let dump = store
        .read_cypher(&deploygraph_store::cypher::CypherRequest {
            query: "MATCH (c:Change) WHERE c.uid IN $uids OPTIONAL MATCH (c)-[r]-(x) \
                    RETURN properties(c) AS c, collect([properties(r), properties(x)]) AS around"
                .into(),
            params: [(
                "uids".to_owned(),
                json!(uids.iter().map(Uid::as_str).collect::<Vec<_>>()),
            )]
            .into_iter()
            .collect(),
            timeout: Duration::from_secs(10),
            row_cap: 100,
            byte_cap: 1 << 20,
        })
        .await
        .unwrap();
    assert_eq!(dump.rows.len(), 4);
    let text = serde_json::to_string(&dump.rows).unwrap();
    for value in SECRET_VALUES {
        assert!(!text.contains(value), "{value} in the graph: {text}");
    }
    deploygraph_store::testing::discard_follow_ups(store.as_ref(), &uids).await;
}

/// (5) A restarted watcher takes what it lists as its baseline: unchanged objects are not
/// recorded again, and the next edit is compared with the listed content. A workload that
/// starts using an existing ConfigMap after the start reads it as its baseline.
async fn a_restarted_watcher_records_nothing_for_unchanged_objects(store: Arc<dyn GraphStore>) {
    let client = deploygraph_k8s::testing::client().await;
    let ns = namespace(&client).await;
    let name = unique("api");
    let api_service = service(&ns, &name);
    create_config_map(&client, &ns, "api-config", json!({"TIMEOUT_MS": "500"})).await;
    let deployments: Api<K8sDeployment> = Api::namespaced(client.clone(), &ns);
    deployments
        .create(
            &PostParams::default(),
            &deployment("api", &name, "api-config", None),
        )
        .await
        .unwrap();

    let mut first = Running::start(&client, &store, &ns);
    first.remembers(1).await;
    edit_config_map(&client, &ns, "api-config", json!({"TIMEOUT_MS": "250"})).await;
    let edit = first.next_change("the edit before the restart").await;
    assert_eq!(
        diff_of(&edit),
        [("data.TIMEOUT_MS", Some("500"), Some("250"))]
    );
    assert!(first.stop().await.is_empty());

    // Restarted: the list is the baseline, nothing is recorded for it.
    let mut second = Running::start(&client, &store, &ns);
    second.remembers(1).await;
    edit_config_map(&client, &ns, "api-config", json!({"TIMEOUT_MS": "100"})).await;
    let after = second.next_change("the edit after the restart").await;
    assert_eq!(
        diff_of(&after),
        [("data.TIMEOUT_MS", Some("250"), Some("100"))],
        "compared with what the new watcher listed"
    );
    assert_eq!(changes_of(&store, &api_service).await.len(), 2);

    // A ConfigMap that exists before any workload uses it: not remembered until a new
    // Deployment references it, then read as its baseline; its next edit is a change of the
    // new Deployment's service only.
    create_config_map(&client, &ns, "late-config", json!({"RETRIES": "3"})).await;
    let late = unique("late");
    let late_service = service(&ns, &late);
    deployments
        .create(
            &PostParams::default(),
            &deployment("late", &late, "late-config", None),
        )
        .await
        .unwrap();
    second.remembers(2).await;
    edit_config_map(&client, &ns, "late-config", json!({"RETRIES": "5"})).await;
    let late_edit = second.next_change("the edit of the late ConfigMap").await;
    assert_eq!(late_edit.services, vec![late_service]);
    assert_eq!(
        diff_of(&late_edit),
        [("data.RETRIES", Some("3"), Some("5"))]
    );

    // Deleted: forgotten.
    Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .delete("late-config", &Default::default())
        .await
        .unwrap();
    second.remembers(1).await;
    let rest = second.stop().await;
    assert!(rest.is_empty(), "{rest:#?}");
    let uids = [edit.uid, after.uid, late_edit.uid];
    deploygraph_store::testing::discard_follow_ups(store.as_ref(), &uids).await;
}

deploygraph_store::both_stores!(a_restarted_watcher_records_nothing_for_unchanged_objects);

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        attempts: 2,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(20),
        requeue_after: Duration::from_millis(200),
        max_requeue_after: Duration::from_secs(1),
    }
}

fn of_config_map(change: &Change, name: &str) -> bool {
    change
        .summary
        .as_deref()
        .is_some_and(|s| s.contains(&format!("/{name}:")))
}

/// A change the store refuses for good is counted once and skipped: the watcher moves on to
/// the next edit and compares the object's next edit with the refused version, never retrying
/// it. A change the store cannot take yet is set aside and recorded once the store is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_change_is_skipped_and_an_unavailable_store_only_delays_one() {
    let client = deploygraph_k8s::testing::client().await;
    let ns = namespace(&client).await;
    let (_dir, real) = deploygraph_store::testing::sqlite().await;
    let (refuse, down) = (
        Arc::new(AtomicBool::new(true)),
        Arc::new(AtomicBool::new(true)),
    );
    let (refusing, is_down) = (Arc::clone(&refuse), Arc::clone(&down));
    let store = support::FaultyStore::wrap_changes(Arc::clone(&real), move |c| {
        if of_config_map(c, "bad") && refusing.load(Ordering::SeqCst) {
            Some(support::rejected())
        } else if of_config_map(c, "slow") && is_down.load(Ordering::SeqCst) {
            Some(support::unavailable())
        } else {
            None
        }
    });
    let name = unique("multi");
    for cm in ["bad", "good", "slow"] {
        create_config_map(&client, &ns, cm, json!({"LIMIT": "1"})).await;
    }
    let mut spec = deployment("multi", &name, "bad", None);
    let template = spec.spec.as_mut().unwrap().template.spec.as_mut().unwrap();
    template.volumes = Some(
        ["bad", "good", "slow"]
            .iter()
            .map(|cm| {
                serde_json::from_value(json!({"name": cm, "configMap": {"name": cm}})).unwrap()
            })
            .collect(),
    );
    template.containers[0].volume_mounts = None;
    Api::<K8sDeployment>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &spec)
        .await
        .unwrap();
    let mut watcher = Running::start_with(&client, &store, &ns, quick_retries());
    watcher.remembers(3).await;

    // Refused, then the next edit (of another ConfigMap) is recorded.
    edit_config_map(&client, &ns, "bad", json!({"LIMIT": "2"})).await;
    edit_config_map(&client, &ns, "good", json!({"LIMIT": "2"})).await;
    let good = watcher.next_change("the edit after the refused one").await;
    assert!(of_config_map(&good, "good"), "{good:#?}");
    assert_eq!(
        watcher.skips(),
        vec![(format!("{ns}/ConfigMap/bad"), SkipReason::StoreRejected)],
        "counted once, never retried"
    );
    // The store takes it again: the next edit is compared with the refused version.
    refuse.store(false, Ordering::SeqCst);
    edit_config_map(&client, &ns, "bad", json!({"LIMIT": "3"})).await;
    let bad = watcher.next_change("the edit after the refusal").await;
    assert_eq!(diff_of(&bad), [("data.LIMIT", Some("2"), Some("3"))]);

    // Unavailable: set aside (counted) while the watcher goes on, recorded once it is back.
    edit_config_map(&client, &ns, "slow", json!({"LIMIT": "9"})).await;
    let started = Instant::now();
    while watcher.progress.requeued() == 0 {
        assert!(
            started.elapsed() < WAIT,
            "timed out waiting for the edit to be set aside"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        watcher
            .skips()
            .contains(&(format!("{ns}/ConfigMap/slow"), SkipReason::StoreUnavailable))
    );
    down.store(false, Ordering::SeqCst);
    let slow = watcher.next_change("the edit set aside").await;
    assert_eq!(diff_of(&slow), [("data.LIMIT", Some("1"), Some("9"))]);
    let rest = watcher.stop().await;
    assert!(rest.is_empty(), "{rest:#?}");
    assert_eq!(changes_of(&real, &service(&ns, &name)).await.len(), 3);
}
