//! Time from a rollout's API event to its DeploymentEvent being stored, over 200 rollouts,
//! against the real API server (`scripts/services up kube`), on SQLite and Neo4j.
//!
//! Each rollout is a patch of a Deployment's image; the clock starts when the API server has
//! answered the patch and stops when the watcher's write of that rollout returned. Baseline in
//! the same run: a bare watch of the same Deployment (no decoding into a rollout, no store),
//! clocked from the same patch to the watch event's arrival.
//!
//! `cargo bench -p deploygraph-k8s --bench rollout [-- sqlite|neo4j|both]` (`BENCH_ROLLOUTS`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use deploygraph_k8s::watcher::{WatchConfig, WorkloadWatcher};
use deploygraph_model::Environment;
use deploygraph_store::neo4j::{Neo4jOptions, Neo4jStore};
use deploygraph_store::sqlite::SqliteStore;
use deploygraph_store::{GraphStore, MigrationSource, RecordKind};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::watcher::{self, Event};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn report(label: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    let mean = ms.iter().sum::<f64>() / ms.len() as f64;
    println!(
        "| {label} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        mean,
        ms.last().copied().unwrap_or_default()
    );
}

async fn setup(client: &kube::Client) -> (String, Api<Deployment>) {
    let ns = format!("bench-rollout-{:08x}", rand::random::<u32>());
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .unwrap();
    let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    api.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "metadata": {"name": "web", "labels": {"app": "bench-web"}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "registry.local/web:0"}]}}}
        }))
        .unwrap(),
    )
    .await
    .unwrap();
    (ns, api)
}

async fn patch_image(api: &Api<Deployment>, tag: usize) {
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": format!("registry.local/web:{tag}")}]}}}})),
    )
    .await
    .unwrap();
}

async fn cleanup(client: &kube::Client, ns: &str) {
    let _ = Api::<Namespace>::all(client.clone())
        .delete(ns, &Default::default())
        .await;
}

/// Patch → DeploymentEvent stored, through the watcher into `store`.
async fn through_watcher(client: &kube::Client, store: Arc<dyn GraphStore>, n: usize) -> Vec<f64> {
    let (ns, api) = setup(client).await;
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, Instant)>();
    let watcher = WorkloadWatcher::new(
        client.clone(),
        store,
        WatchConfig {
            namespaces: vec![ns.clone()],
            label_selector: None,
            environment: Environment::parse("production").unwrap(),
            cluster: deploygraph_model::Cluster::default(),
            skip_helm_managed: false,
        },
    )
    .on_recorded(move |d, kind| {
        if kind == RecordKind::Created {
            let tag = d
                .images
                .first()
                .and_then(|i| i.tag.clone())
                .unwrap_or_default();
            let _ = tx.send((tag, Instant::now()));
        }
    });
    let stop = CancellationToken::new();
    let task = tokio::spawn(watcher.run(stop.clone()));
    // The initial rollout (tag 0).
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .unwrap();
    let mut ms = Vec::with_capacity(n);
    for i in 1..=n {
        patch_image(&api, i).await;
        let sent = Instant::now();
        loop {
            let (tag, at) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .unwrap()
                .unwrap();
            if tag == i.to_string() {
                ms.push(at.duration_since(sent).as_secs_f64() * 1000.0);
                break;
            }
        }
    }
    stop.cancel();
    task.await.unwrap();
    cleanup(client, &ns).await;
    ms
}

/// Patch → watch event received, with nothing else.
async fn bare_watch(client: &kube::Client, n: usize) -> Vec<f64> {
    let (ns, api) = setup(client).await;
    let (tx, mut rx) = mpsc::unbounded_channel::<(String, Instant)>();
    let stop = CancellationToken::new();
    let watch_api = api.clone();
    let token = stop.clone();
    let task = tokio::spawn(async move {
        let mut events = watcher::watcher(watch_api, watcher::Config::default()).boxed();
        loop {
            let next =
                tokio::select! { () = token.cancelled() => break, next = events.next() => next };
            let Some(Ok(Event::Apply(d) | Event::InitApply(d))) = next else {
                continue;
            };
            let image = d
                .spec
                .and_then(|s| s.template.spec)
                .and_then(|s| s.containers.first().and_then(|c| c.image.clone()))
                .unwrap_or_default();
            let _ = tx.send((
                image.rsplit(':').next().unwrap_or_default().to_owned(),
                Instant::now(),
            ));
        }
    });
    let mut ms = Vec::with_capacity(n);
    for i in 1..=n {
        patch_image(&api, i).await;
        let sent = Instant::now();
        loop {
            let (tag, at) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
                .await
                .unwrap()
                .unwrap();
            if tag == i.to_string() {
                ms.push(at.duration_since(sent).as_secs_f64() * 1000.0);
                break;
            }
        }
    }
    stop.cancel();
    task.await.unwrap();
    cleanup(client, &ns).await;
    ms
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let which = std::env::args()
        .skip(1)
        .find(|a| matches!(a.as_str(), "sqlite" | "neo4j" | "both"))
        .unwrap_or_else(|| "both".into());
    let n: usize = std::env::var("BENCH_ROLLOUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let client = deploygraph_k8s::testing::client().await;
    println!(
        "| path | rollouts | p50 ms | p99 ms | mean ms | max ms |\n|---|---:|---:|---:|---:|---:|"
    );
    report("baseline: bare watch event", bare_watch(&client, n).await);
    if which != "neo4j" {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("bench.db"), MigrationSource::Embedded)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        report(
            "watcher → SQLite",
            through_watcher(&client, Arc::new(store), n).await,
        );
    }
    if which != "sqlite" {
        let uri =
            std::env::var("NEO4J_TEST_URI").expect("NEO4J_TEST_URI: scripts/services up neo4j");
        let store = Neo4jStore::connect(
            &uri,
            "",
            &secrecy::SecretString::from(String::new()),
            Neo4jOptions::default(),
            MigrationSource::Embedded,
        )
        .unwrap();
        store.migrate().await.unwrap();
        report(
            "watcher → Neo4j",
            through_watcher(&client, Arc::new(store), n).await,
        );
    }
}
