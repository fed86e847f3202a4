//! Admission gate benchmark: how long the gate takes to answer an AdmissionReview, against the
//! API server's webhook timeout (10 s by default, the chart's 5 s). Over TLS on loopback, as
//! the API server calls it (one connection per review, handshake included, as the API server's
//! client pool may do), with a store holding `BENCH_SNAPSHOTS` snapshots of which the newest
//! fails, `BENCH_REVIEWS` reviews of each kind, `BENCH_CONCURRENCY` at once:
//! - a pod-template change (reads the newest snapshot, refused),
//! - a scale-only change (the baseline in the same run: judged without reading the store),
//! - an override (reads the snapshot and records the override before answering).
//!
//! `cargo bench -p deploygraph-api --bench admission` (SQLite); with
//! `scripts/services up neo4j && eval "$(scripts/services env)"` and `BENCH_STORES=sqlite,neo4j`
//! also on Neo4j.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{Duration as Span, Utc};
use deploygraph_api::admission::{self, Config};
use deploygraph_api::tls::{CertFiles, TlsListener};
use deploygraph_api::{ApiConfig, AppState};
use deploygraph_model::{CheckRecord, InfraSnapshot, Verdict};
use deploygraph_store::GraphStore;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn deployment(image: &str, replicas: u32, annotations: &Value) -> Value {
    json!({
        "metadata": {"name": "web", "namespace": "shop", "annotations": annotations},
        "spec": {"replicas": replicas, "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": image}]}}}
    })
}

fn review(uid: &str, object: &Value, old: &Value) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": uid, "operation": "UPDATE", "namespace": "shop", "name": "web",
            "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
            "userInfo": {"username": "bench"}, "object": object, "oldObject": old}})
}

async fn fill(store: &Arc<dyn GraphStore>, snapshots: usize) {
    let now = Utc::now();
    for i in 0..snapshots {
        let newest = i + 1 == snapshots;
        let check = CheckRecord {
            kind: "tls".into(),
            target: format!("api-{i}.shop.example:443"),
            status: if newest { Verdict::Fail } else { Verdict::Pass },
            detail: "certificate expires in 2 days (< 7 days)".into(),
            latency_ms: 3,
            certificates: Vec::new(),
            uses: Vec::new(),
        };
        let at = now - Span::seconds(i64::try_from(snapshots - i).unwrap());
        store
            .record_snapshot(&InfraSnapshot::new(at, None, None, vec![check]))
            .await
            .unwrap();
    }
}

/// A kind of review: its name, how to make the `i`th, and whether it is admitted.
type Kind<'a> = (&'a str, Box<dyn Fn(usize) -> Value + 'a>, bool);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

async fn run_kind(
    client: &reqwest::Client,
    url: &str,
    reviews: Vec<Value>,
    concurrency: usize,
    expect_allowed: bool,
) -> (Vec<Duration>, Duration) {
    let started = Instant::now();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = Vec::new();
    for review in reviews {
        let (client, url, permit) = (client.clone(), url.to_owned(), Arc::clone(&semaphore));
        tasks.push(tokio::spawn(async move {
            let _permit = permit.acquire_owned().await.unwrap();
            let t = Instant::now();
            let answer: Value = client
                .post(&url)
                .json(&review)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let took = t.elapsed();
            assert_eq!(answer["response"]["allowed"], expect_allowed, "{answer}");
            took
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.push(task.await.unwrap());
    }
    latencies.sort_unstable();
    (latencies, started.elapsed())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let reviews = env_usize("BENCH_REVIEWS", 1000);
    let snapshots = env_usize("BENCH_SNAPSHOTS", 10_000);
    let concurrency = env_usize("BENCH_CONCURRENCY", 8);
    let stores = std::env::var("BENCH_STORES").unwrap_or_else(|_| "sqlite".into());
    println!(
        "admission gate: {reviews} reviews of each kind, {concurrency} at once, over TLS (a new connection each), {snapshots} snapshots stored"
    );
    for backend in stores.split(',') {
        let (_dir, store) = match backend {
            "sqlite" => deploygraph_store::testing::sqlite().await,
            "neo4j" => deploygraph_store::testing::neo4j().await,
            other => panic!("BENCH_STORES: unknown store {other}"),
        };
        let t = Instant::now();
        fill(&store, snapshots).await;
        println!(
            "{backend}: {snapshots} snapshots stored in {:.1?}",
            t.elapsed()
        );

        let ca = deploygraph_probe::testing::Ca::new("bench CA");
        let leaf = deploygraph_probe::testing::leaf(Some(&ca), &["gate.bench"], -1, 24);
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        std::fs::write(&cert, &leaf.pem).unwrap();
        std::fs::write(&key, &leaf.key_pem).unwrap();
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = tcp.local_addr().unwrap();
        let listener =
            TlsListener::new(tcp, Arc::new(CertFiles::open(&cert, &key).unwrap()), None).unwrap();
        let app = admission::router(
            AppState::new(Arc::clone(&store), ApiConfig::default()),
            Config::default(),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
            .resolve("gate.bench", address)
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let url = format!(
            "https://gate.bench:{}/v1/admission/validate",
            address.port()
        );

        let old = deployment("registry.local/web:v1", 2, &json!({}));
        let none = json!({});
        let kinds: [Kind<'_>; 3] = [
            (
                "scale only (baseline: no store read)",
                Box::new(|i| {
                    review(
                        &format!("s-{i}"),
                        &deployment("registry.local/web:v1", 3, &none),
                        &old,
                    )
                }),
                true,
            ),
            (
                "pod-template change (newest snapshot read, refused)",
                Box::new(|i| {
                    review(
                        &format!("t-{i}"),
                        &deployment("registry.local/web:v2", 2, &none),
                        &old,
                    )
                }),
                false,
            ),
            (
                "override (snapshot read, override recorded)",
                Box::new(|i| {
                    review(
                        &format!("o-{i}-{}", rand::random::<u32>()),
                        &deployment(
                            "registry.local/web:v2",
                            2,
                            &json!({"deploygraph.io/gate-override": "bench"}),
                        ),
                        &old,
                    )
                }),
                true,
            ),
        ];
        for (name, make, allowed) in &kinds {
            let batch: Vec<Value> = (0..reviews).map(make).collect();
            let (latencies, wall) = run_kind(&client, &url, batch, concurrency, *allowed).await;
            println!(
                "{backend}: {name}: p50 {:.1?}, p99 {:.1?}, max {:.1?}; {:.0} reviews/s",
                percentile(&latencies, 50.0),
                percentile(&latencies, 99.0),
                latencies.last().unwrap(),
                reviews as f64 / wall.as_secs_f64()
            );
        }
    }
}
